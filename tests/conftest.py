"""Shared fixtures: a tiny synthetic manifest and the real fashion-glt-mini build (once per session)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import baselines  # noqa: F401  (registers methods)
import splits  # noqa: F401  (registers benchmarks and extractors)
from benchmark.benchmarks import BENCHMARKS
from benchmark.manifest import SPLITS, ClassInfo, Manifest, write_manifest

FASHION_ROOT = Path("/usr/share/datasets/fashion-mnist")


def make_tiny_manifest(root: Path, rows_per_split: int = 12, num_classes: int = 3) -> Manifest:
    """A synthetic manifest: every split has `rows_per_split` rows cycling through the classes."""
    groups = ["many", "medium", "few"]
    classes = [ClassInfo(c, f"class{c}", groups[c % 3], 4, 4) for c in range(num_classes)]
    frames = {}
    for s, name in enumerate(SPLITS):
        ids = [f"{name}/{i:03d}" for i in range(rows_per_split)]
        frames[name] = pd.DataFrame(
            {
                "sample_id": ids,
                "path": ids,
                "label": np.arange(rows_per_split) % num_classes,
                "attribute": (np.arange(rows_per_split) // num_classes + s) % 3,
            }
        )
    return write_manifest(root, benchmark="tiny", classes=classes, splits=frames, build={"seed": 0})


@pytest.fixture
def tiny_manifest(tmp_path: Path) -> Manifest:
    return make_tiny_manifest(tmp_path / "manifests" / "tiny")


@pytest.fixture(scope="session")
def feature_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("feature-cache")


@pytest.fixture(scope="session")
def mini_manifest_dir(tmp_path_factory: pytest.TempPathFactory, feature_cache: Path) -> Path:
    """A manifests folder holding fashion-glt-mini built from the real data and extractor."""
    if not FASHION_ROOT.exists():
        pytest.fail("Fashion-MNIST is missing: `apt-get install dataset-fashion-mnist` (make test does it)")
    root = tmp_path_factory.mktemp("manifests")
    BENCHMARKS.get("fashion-glt-mini").build(root / "fashion-glt-mini", cache_dir=feature_cache)
    return root


@pytest.fixture
def mini_copy(mini_manifest_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the mini manifests folder that a test may alter."""
    target = tmp_path / "manifests"
    shutil.copytree(mini_manifest_dir, target)
    return target
