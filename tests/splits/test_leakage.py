"""Tests for splits/leakage.py: ids in two splits of a family, identical files across train and test."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from benchmark.errors import UserError
from splits.leakage import check_leakage, file_digests


def splits(**extra: list[str]) -> dict[str, np.ndarray]:
    base = {
        "train_glt": ["a", "b"],
        "val_glt": ["c"],
        "test_gbl": ["d"],
        "test_cbl": ["e"],
        "train_cbl": ["a"],
    }
    return {name: np.array(ids) for name, ids in {**base, **extra}.items()}


def test_disjoint_families_pass_and_cross_family_overlap_is_allowed() -> None:
    assert check_leakage(splits()) == []  # train_glt and train_cbl share "a": never used together


def test_a_sample_in_two_splits_of_a_family_is_an_error() -> None:
    with pytest.raises(UserError, match=r"both train_cbl and test_gbl, e\.g\. d"):
        check_leakage(splits(train_cbl=["a", "d"]))


def test_identical_content_across_train_and_test_is_counted() -> None:
    keys = {"a": "x", "b": "y", "c": "x", "d": "y", "e": "z"}
    warnings = check_leakage(splits(), keys)
    assert len(warnings) == 1
    assert warnings[0].startswith("warning: 1 of 1 test_gbl samples have the same bytes as a train_glt")


def test_file_digests(tmp_path: Path) -> None:
    for name, data in {"a/1.JPEG": b"one", "b/2.JPEG": b"two"}.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(data)
    digests = file_digests(tmp_path, ["a/1.JPEG", "b/2.JPEG"], workers=2)
    assert digests == {
        "a/1.JPEG": hashlib.sha256(b"one").hexdigest(),
        "b/2.JPEG": hashlib.sha256(b"two").hexdigest(),
    }
    with pytest.raises(UserError, match="cannot read"):
        file_digests(tmp_path, ["missing.JPEG"], workers=1)
