"""Class-count profiles (GLT-SPEC §8): how many images the class of rank i keeps in the LT family."""

from __future__ import annotations

import hashlib
import itertools
import math
from pathlib import Path

from benchmark.errors import UserError


def exp_profile(num_classes: int, n_max: int, ratio: float) -> list[int]:
    """n_i = ⌊n_max · ratio^(−i/(C−1))⌋, the CIFAR-LT / LDAM-DRW profile."""
    if num_classes == 1:
        return [n_max]
    return [math.floor(n_max * ratio ** (-i / (num_classes - 1))) for i in range(num_classes)]


def pareto_profile(num_classes: int, alpha: float, sigma: float, n_min: int, n_max: int) -> list[int]:
    """Evenly spaced Pareto(α) quantiles, shifted so the last class has n_min, clipped at n_max."""
    last = ((num_classes - 0.5) / num_classes) ** (-1 / alpha)
    return [
        min(n_max, math.floor(n_min + sigma * (((i + 0.5) / num_classes) ** (-1 / alpha) - last)))
        for i in range(num_classes)
    ]


def read_counts_file(path: str | Path, num_classes: int) -> list[int]:
    """A text file of C non-increasing positive integers, one per line."""
    try:
        lines = Path(path).read_text(encoding="utf-8").split()
        counts = [int(line) for line in lines]
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UserError(f"cannot read counts file {path}: {exc}; give one integer per line") from None
    if len(counts) != num_classes:
        raise UserError(
            f"counts file {path} has {len(counts)} entries; the benchmark has {num_classes} classes"
        )
    if min(counts) <= 0 or any(a < b for a, b in itertools.pairwise(counts)):
        raise UserError(f"counts file {path} must hold positive, non-increasing integers")
    return counts


def profile_sha256(counts: list[int]) -> str:
    """sha256 of the list written one per line with a final newline."""
    return hashlib.sha256("".join(f"{n}\n" for n in counts).encode()).hexdigest()
