"""Clustering time at ImageNet scale (issue 11's target on the 2-core machine: 1000 classes × 1,300 ×
2048-d clustered in ≤ 15 min).

Each class's features are made in the worker from a seeded generator (six close, overlapping modes
of ImageNet-like unequal sizes, non-negative like pooled CNN features), so nothing of 10 GiB is held;
`splits.attributes.cluster_classes` then runs exactly as a build does (one class per thread, WORKERS
processes; on CUDA one class after another). The time of generating features alone is measured on a
few classes and subtracted. With fewer classes than 1000 the figure is extrapolated linearly.

Usage: PYTHONPATH=. python bench/cluster_time.py [CLASSES [WORKERS [DEVICE]]]
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np
import torch

from splits.attributes import cluster_classes

PER_CLASS, DIM, IMAGENET_CLASSES, TARGET_S = 1300, 2048, 1000, 15 * 60
SHARES = [0.24, 0.18, 0.17, 0.16, 0.13, 0.12]
# Close modes, so Lloyd needs about as many steps as on real features (≈ 20–30 per run; measured on
# EfficientNet-Lite0 features of Fashion-MNIST: 29–34 at 1,300 rows); well-separated ones take 4.
CENTRE_SCALE = 0.15


def class_features(index: int) -> np.ndarray:
    rng = np.random.default_rng(index)
    centres = rng.normal(scale=CENTRE_SCALE, size=(6, DIM)).astype(np.float32)
    modes = rng.choice(6, size=PER_CLASS, p=SHARES)
    return np.maximum(centres[modes] + rng.normal(size=(PER_CLASS, DIM)).astype(np.float32), 0)


def main(classes: int, workers: int, device: str) -> None:
    print(f"{classes} classes × {PER_CLASS} × {DIM}-d, K = 6, {workers} worker(s), device {device}, "
          f"{os.cpu_count()} CPUs")  # fmt: skip
    started = time.perf_counter()
    for index in range(4):
        class_features(index)
    making = (time.perf_counter() - started) / 4
    started = time.perf_counter()
    results = cluster_classes(class_features, classes, 6, seed=25, device=device, workers=workers)
    elapsed = time.perf_counter() - started - making * classes / (workers if device == "cpu" else 1)
    sizes = np.sort(np.bincount(results[0][0], minlength=6))[::-1]
    total = elapsed * IMAGENET_CLASSES / classes
    print(
        f"clustered in {elapsed:.1f} s ({elapsed / classes:.2f} s per class; class 0 sizes {sizes.tolist()})"
    )
    verdict = "OK" if total <= TARGET_S else "OVER"
    print(f"1000 classes: {total / 60:.1f} min (target ≤ {TARGET_S / 60:.0f} min): {verdict}")


if __name__ == "__main__":
    arguments = sys.argv[1:]
    main(
        int(arguments[0]) if arguments else IMAGENET_CLASSES,
        int(arguments[1]) if len(arguments) > 1 else os.cpu_count() or 1,
        arguments[2] if len(arguments) > 2 else ("cuda" if torch.cuda.is_available() else "cpu"),
    )
