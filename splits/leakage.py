"""The leakage check run after every build (issue 3): no sample in two splits of one family, and a
warning, with counts, for identical files (same bytes) on both sides of a train/test pair.

Families are those of docs/benchmarks.md §1: the LT family (`train_glt`, `val_glt`, `test_glt`, and the shared
tests) and the BL family (`train_cbl`, `val_cbl`, shared tests). Train-GLT and Train-CBL, or Train-CBL
and Val-GLT, may share samples: they are never used together.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from benchmark.errors import UserError
from splits.carving import FAMILIES

TRAIN_SPLITS = ("train_glt", "train_cbl")
TEST_SPLITS = ("test_glt", "test_cbl", "test_gbl")
READ_BLOCK = 1 << 20


def _families(split_ids: Mapping[str, np.ndarray]) -> list[list[str]]:
    return [[name for name in names if name in split_ids] for names in FAMILIES.values()]


def check_leakage(
    split_ids: Mapping[str, np.ndarray], content_keys: Mapping[str, str] | None = None
) -> list[str]:
    """Raise UserError if a sample id is in two splits of one family; given `content_keys` (sample id
    → content hash), return one warning line per train/test pair of a family whose samples share
    content, with the number of test samples whose bytes also occur in the train split."""
    for names in _families(split_ids):
        ids = pd.Index(np.concatenate([np.asarray(split_ids[name]) for name in names]))
        if not ids.has_duplicates:
            continue
        for first, second in itertools.combinations(names, 2):
            shared = pd.Index(np.asarray(split_ids[first])).intersection(np.asarray(split_ids[second]))
            if len(shared):
                raise UserError(
                    f"leakage: {len(shared)} sample(s) are in both {first} and {second}, e.g. {shared[0]!s}; "
                    "the build is wrong, report it"
                )
    if content_keys is None:
        return []
    warnings = []
    for names in _families(split_ids):
        for train, test in itertools.product(
            [n for n in names if n in TRAIN_SPLITS], [n for n in names if n in TEST_SPLITS]
        ):
            train_keys = {content_keys[str(s)] for s in split_ids[train]}
            duplicated = sum(content_keys[str(s)] in train_keys for s in split_ids[test])
            if duplicated:
                warnings.append(
                    f"warning: {duplicated} of {len(split_ids[test])} {test} samples have the same bytes as "
                    f"a {train} sample (identical content)"
                )
    return warnings


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, read block by block."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(READ_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def file_digests(root: Path, relative_paths: Sequence[str], workers: int) -> dict[str, str]:
    """sha256 of each file's bytes, keyed by its relative path (read in `workers` threads)."""
    root = Path(root)
    try:
        with ThreadPoolExecutor(max(1, workers)) as pool:
            digests = list(
                tqdm(
                    pool.map(lambda p: file_sha256(root / p), relative_paths),
                    total=len(relative_paths),
                    unit="file",
                    desc="sha256",
                    mininterval=2,
                )
            )
    except OSError as exc:
        raise UserError(f"cannot read {exc.filename}: {exc.strerror}; check the data root {root}") from None
    return dict(zip(relative_paths, digests, strict=True))
