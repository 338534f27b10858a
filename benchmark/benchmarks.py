"""The benchmark registry: each benchmark module registers how to build it and load its images."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from benchmark.manifest import Manifest
from benchmark.registry import Registry


@dataclass(frozen=True)
class BenchmarkDef:
    """What the rest of glt-bench needs to know about one benchmark."""

    name: str
    summary: str
    build: Callable[..., Manifest]  # build(out_dir, *, data_root, seed, extractor, num_clusters, cache_dir)
    load_images: Callable[[Manifest, Sequence[str], Path | None], np.ndarray]  # → uint8 N×C×H×W
    # (a benchmark of object crops also takes `boxes=`, one [x, y, w, h] per path: its `bbox` column)
    mean: tuple[float, ...]  # per-channel pixel statistics of the training images, in [0, 1]
    std: tuple[float, ...]
    recipe: str  # the default training recipe


BENCHMARKS: Registry[BenchmarkDef] = Registry("benchmark")


def resolve(name: str, manifest_dir: Path) -> BenchmarkDef:
    """A registered benchmark, or a user-named one (imagefolder-glt `--name`) whose manifest in
    `manifest_dir` records the registered benchmark it was built by."""
    if name in BENCHMARKS.names():
        return BENCHMARKS.get(name)
    path = Path(manifest_dir) / name / "metadata.json"
    try:
        based_on = json.loads(path.read_text(encoding="utf-8"))["build"]["based_on"]
    except (OSError, ValueError, KeyError, TypeError):
        return BENCHMARKS.get(name)  # the usual "unknown benchmark" error
    return replace(BENCHMARKS.get(based_on), name=name)
