"""Class-count profiles (docs/benchmarks.md §8): the number of images rank i keeps in the LT family."""

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


def _check_parameters(spec: str, name: str, params: dict[str, float]) -> None:
    """Refuse values that give no profile: counts must be positive integers, the exp ratio ≥ 1, the
    Pareto power positive and its scale non-negative, all finite."""
    rules = {
        "n_max": (lambda v: v.is_integer() and v >= 1, "a positive integer"),
        "n_min": (lambda v: v.is_integer() and v >= 1, "a positive integer"),
        "ratio": (lambda v: v >= 1, "a number ≥ 1 (head/tail ratio)"),
        "alpha": (lambda v: v > 0, "a positive number"),
        "sigma": (lambda v: v >= 0, "a number ≥ 0"),
    }
    for key, value in params.items():
        valid, wanted = rules[key]
        if not math.isfinite(value) or not valid(value):
            raise UserError(f"profile {spec!r}: {key} must be {wanted}, got {value:g}")
    if name == "pareto" and params["n_min"] > params["n_max"]:
        raise UserError(f"profile {spec!r}: n_min must not exceed n_max")


PROFILE_PARAMETERS = {"exp": ("n_max", "ratio"), "pareto": ("alpha", "sigma", "n_min", "n_max")}


def parse_profile(
    spec: str, num_classes: int, defaults: dict[str, dict[str, float]]
) -> tuple[list[int], dict[str, object]]:
    """Counts and description of `exp`/`pareto` (with the benchmark's `defaults` for that family)
    or `exp:N_MAX:RATIO` / `pareto:ALPHA:SIGMA:N_MIN:N_MAX`."""
    name, *values = spec.split(":")
    if name not in PROFILE_PARAMETERS:
        raise UserError(
            f"unknown profile {spec!r}; use {' or '.join(PROFILE_PARAMETERS)} (optionally with :values)"
        )
    keys = PROFILE_PARAMETERS[name]
    if not values:
        if name not in defaults:
            raise UserError(
                f"this benchmark has no default {name} profile; give {name}:{':'.join(keys).upper()}"
            )
        params = dict(defaults[name])
    else:
        try:
            params = {key: float(value) for key, value in zip(keys, values, strict=True)}
        except ValueError:
            raise UserError(f"profile {spec!r}: give {name}:{':'.join(keys).upper()} as numbers") from None
        _check_parameters(spec, name, params)
        params = {k: int(v) if k in ("n_max", "n_min") else v for k, v in params.items()}
    counts = exp_profile(num_classes, **params) if name == "exp" else pareto_profile(num_classes, **params)
    if min(counts) <= 0:
        raise UserError(f"profile {spec!r} gives a class no image; raise its minimum")
    return counts, {"name": name, **params}


def check_profile_options(
    profile: str | None, counts_file: Path | None, defaults: dict[str, dict[str, float]]
) -> None:
    """The checks of `--profile` (syntax and values, on 2 classes) and `--counts-file` (it exists)
    that need no data, so a build stops on them before reading any."""
    if profile is not None:
        parse_profile(profile, 2, defaults)
    if counts_file is not None and not Path(counts_file).is_file():
        raise UserError(f"--counts-file {counts_file} is not a file; give one count per line")
