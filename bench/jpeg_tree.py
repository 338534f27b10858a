"""A generated ImageNet-like JPEG tree for the throughput benches: `n0000000k/n0000000k_i.JPEG`.

Each image is 500×375 RGB at JPEG quality 90: smooth random colour gradients with a mid-frequency
texture and pixel noise on top, so that files weigh about 50–110 KB like ImageNet photographs and
decode at a realistic speed. The same seed gives the same files.
"""

from __future__ import annotations

import os
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from PIL import Image

WIDTH, HEIGHT, QUALITY = 500, 375, 90


def _field(rng: np.random.Generator, cells: tuple[int, int], amplitude: float) -> np.ndarray:
    """Random colours on a coarse grid, bicubically upsampled to the image size (float, H×W×3)."""
    coarse = rng.normal(0.0, amplitude, (cells[1], cells[0], 3)).astype(np.float32)
    planes = [Image.fromarray(coarse[:, :, c]) for c in range(3)]  # mode "F"
    return np.stack([np.asarray(p.resize((WIDTH, HEIGHT), Image.Resampling.BICUBIC)) for p in planes], axis=2)


def make_image(seed: int, label: int, index: int) -> Image.Image:
    """One image, determined by (seed, label, index)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, label, index]))
    pixels = rng.uniform(60, 200, 3).astype(np.float32)
    pixels = pixels + _field(rng, (4, 3), 50) + _field(rng, (120, 90), rng.uniform(10, 25))
    pixels += rng.standard_normal((HEIGHT, WIDTH, 3), dtype=np.float32) * rng.uniform(5, 12)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def relative_path(label: int, index: int) -> str:
    return f"n{label:08d}/n{label:08d}_{index}.JPEG"


def _write(job: tuple[Path, int, int, int]) -> int:
    root, seed, label, index = job
    make_image(seed, label, index).save(root / relative_path(label, index), quality=QUALITY)
    return 1


def generate(
    root: str | Path, *, classes: int, per_class: int, seed: int = 0, workers: int | None = None
) -> tuple[list[str], np.ndarray]:
    """Write `classes` × `per_class` JPEGs under `root`; return their relative paths and labels."""
    root = Path(root)
    for label in range(classes):
        (root / relative_path(label, 0)).parent.mkdir(parents=True, exist_ok=True)
    jobs = [(root, seed, label, index) for label in range(classes) for index in range(per_class)]
    with get_context("fork").Pool(workers or os.cpu_count()) as pool:
        for _ in pool.imap_unordered(_write, jobs, chunksize=16):
            pass
    labels = np.repeat(np.arange(classes, dtype=np.int64), per_class)
    return [relative_path(label, index) for _, _, label, index in jobs], labels
