"""Manifests: one Parquet table per split plus `metadata.json`, bound together by a content hash.

On disk (`<manifests>/<benchmark>/`):
- `metadata.json`: benchmark, format version, build settings, class table, split sizes, hashes;
- `splits/<split>.parquet`: labelled splits (`sample_id, path, label, attribute`) and the *public*
  listing of each test split (`sample_id, path` only); a benchmark of object crops (mscoco-glt) adds
  a public `bbox` column after `path`: the crop box `[x, y, w, h]` in integer pixels;
- `labels/<split>.parquet`: the held-out `sample_id, label, attribute` of each test split, read only
  by the scorer.

The content hash is the sha256 of a canonical text form (fixed column order, rows sorted by sample
id, UTF-8, `\\n`) of the class table and every split; paths are relative, so the data root never
enters it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from benchmark.atomic import atomic_path, write_json
from benchmark.errors import UserError

FORMAT_VERSION = "glt-bench-manifest/2"
SPLITS = ("train_glt", "train_cbl", "val_glt", "val_cbl", "test_cbl", "test_gbl", "test_glt")
TEST_SPLITS = frozenset({"test_cbl", "test_gbl", "test_glt"})
PUBLIC_COLUMNS = ("sample_id", "path")
BOX_COLUMN = "bbox"  # optional public column: [x, y, w, h] of an object crop
LABEL_COLUMNS = ("label", "attribute")
GROUPS = ("many", "medium", "few")


@dataclass(frozen=True)
class ClassInfo:
    """One row of the class table; `id` is the class rank by image count (0 = head)."""

    id: int
    name: str
    group: str
    train_glt: int
    train_cbl: int


def public_columns(frame: pd.DataFrame) -> tuple[str, ...]:
    """The public columns a split frame carries: `sample_id, path`, plus `bbox` where present."""
    return (*PUBLIC_COLUMNS, BOX_COLUMN) if BOX_COLUMN in frame.columns else PUBLIC_COLUMNS


def _as_text(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Decimal text of a column; a list (a box) becomes its items joined by commas."""
    if pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
        return pc.binary_join(pc.cast(column, pa.list_(pa.large_string())), pa.scalar(",", pa.large_string()))
    return pc.cast(column, pa.large_string())


def _rows_hash(frame: pd.DataFrame, columns: tuple[str, ...]) -> str:
    """sha256 of tab-separated `columns` as decimal text, one `\\n`-ended line per row, rows sorted
    by sample id (UTF-8 byte order). Built with Arrow kernels: a million rows hash in well under 1 s."""
    table = pa.Table.from_pandas(frame[list(columns)], preserve_index=False).sort_by("sample_id")
    fields = [_as_text(table[column]) for column in columns]
    tab, newline = pa.scalar("\t", pa.large_string()), pa.scalar("\n", pa.large_string())
    lines = pc.binary_join_element_wise(*fields, tab) if len(fields) > 1 else fields[0]
    lines = pc.binary_join_element_wise(lines, pa.scalar("", pa.large_string()), newline)  # line end
    digest = hashlib.sha256()
    for chunk in lines.chunks:
        if chunk.null_count:
            raise ValueError(f"manifest columns {columns} contain missing values")
        if len(chunk):
            _, offsets, data = chunk.buffers()
            offsets = np.frombuffer(offsets, dtype=np.int64)[chunk.offset : chunk.offset + len(chunk) + 1]
            digest.update(memoryview(data)[offsets[0] : offsets[-1]])
    return digest.hexdigest()


def part_hashes(name: str, frame: pd.DataFrame) -> dict[str, str]:
    """Hashes of what a split publishes and, for a test split, of its held-out labels."""
    public = public_columns(frame)
    if name in TEST_SPLITS:
        return {
            "public_sha256": _rows_hash(frame, public),
            "labels_sha256": _rows_hash(frame, ("sample_id", *LABEL_COLUMNS)),
        }
    return {"public_sha256": _rows_hash(frame, (*public, *LABEL_COLUMNS))}


def _combine(classes: list[ClassInfo], parts: dict[str, dict[str, Any]]) -> str:
    digest = hashlib.sha256(f"{FORMAT_VERSION}\n".encode())
    for info in classes:
        line = f"class\t{info.id}\t{info.name}\t{info.group}\t{info.train_glt}\t{info.train_cbl}"
        digest.update(f"{line}\n".encode())
    for name in SPLITS:
        if name in parts:
            part = parts[name]
            line = f"split\t{name}\t{part['rows']}\t{part['public_sha256']}\t{part.get('labels_sha256', '-')}"
            digest.update(f"{line}\n".encode())
    return digest.hexdigest()


def canonical_hash(classes: list[ClassInfo], splits: dict[str, pd.DataFrame]) -> str:
    """The content hash: class table plus, per split, its row count and part hashes."""
    parts = {name: {"rows": len(frame), **part_hashes(name, frame)} for name, frame in splits.items()}
    return _combine(classes, parts)


def _write_parquet(frame: pd.DataFrame, target: Path) -> None:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    with atomic_path(target) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def gini(counts: np.ndarray) -> float:
    """Gini coefficient of class counts: 0 when balanced, towards 1 when one class holds all."""
    values = np.sort(np.asarray(counts, dtype=np.float64))
    if not len(values) or values.sum() == 0:
        return 0.0
    ranks = np.arange(1, len(values) + 1)
    return float((2 * ranks - len(values) - 1) @ values / (len(values) * values.sum()))


def benchmark_card(
    classes: list[ClassInfo], splits: dict[str, pd.DataFrame], build: dict[str, Any], content_hash: str
) -> dict[str, Any]:
    """The figures a reader needs to judge a benchmark at a glance (summaries, the leaderboard):
    Train-GLT's head/tail ratio and Gini of class counts, sizes, many/medium/few class counts,
    per split the largest over the smallest attribute count, and the features' and content hashes."""
    train = np.array([info.train_glt for info in classes], dtype=np.int64)
    groups = [info.group for info in classes]
    attribute_imbalance = {}
    for name in SPLITS:
        if name in splits:
            counts = np.bincount(splits[name]["attribute"].to_numpy().astype(np.int64), minlength=3)
            attribute_imbalance[name] = round(float(counts.max() / counts.min()), 3) if counts.min() else None
    features = build.get("features", {})
    return {
        "classes": len(classes),
        "many_medium_few": "/".join(str(groups.count(group)) for group in GROUPS),
        "imbalance_ratio": round(float(train.max() / train.min()), 3) if len(train) and train.min() else None,
        "gini": round(gini(train), 4),
        "sizes": {name: len(splits[name]) for name in SPLITS if name in splits},
        "attribute_imbalance": attribute_imbalance,
        "features_sha256": features.get("features_sha256", build.get("features_sha256", "")),
        "content_sha256": content_hash,
    }


def write_manifest(
    root: Path,
    *,
    benchmark: str,
    classes: list[ClassInfo],
    splits: dict[str, pd.DataFrame],
    build: dict[str, Any],
) -> Manifest:
    """Write every split, then `metadata.json` last, so a half-written build never looks complete."""
    unknown = set(splits) - set(SPLITS)
    if unknown:
        raise ValueError(f"unknown split names {sorted(unknown)}")
    root = Path(root)
    (root / "metadata.json").unlink(missing_ok=True)
    ordered, parts = {}, {}
    for name, frame in splits.items():
        public = public_columns(frame)
        frame = frame[[*public, *LABEL_COLUMNS]].sort_values("sample_id", kind="stable")
        frame = frame.reset_index(drop=True).astype({"label": "int32", "attribute": "int8"})
        ordered[name] = frame
        parts[name] = {"rows": len(frame), "test": name in TEST_SPLITS, **part_hashes(name, frame)}
        if name in TEST_SPLITS:
            _write_parquet(frame[list(public)], root / "splits" / f"{name}.parquet")
            _write_parquet(frame[["sample_id", *LABEL_COLUMNS]], root / "labels" / f"{name}.parquet")
        else:
            _write_parquet(frame, root / "splits" / f"{name}.parquet")
    content_hash = _combine(classes, parts)
    metadata = {
        "format": FORMAT_VERSION,
        "benchmark": benchmark,
        "card": benchmark_card(classes, ordered, build, content_hash),
        "content_sha256": content_hash,
        "classes": [vars(info) for info in classes],
        "splits": parts,
        "build": build,
    }
    write_json(root / "metadata.json", metadata)
    return Manifest(root)


def _check_shape(metadata: Any, path: Path) -> None:
    """One line naming the first key `metadata.json` lacks or has in the wrong shape."""
    fields = ClassInfo.__dataclass_fields__
    problem = None
    if not isinstance(metadata, dict):
        problem = "is not a JSON object"
    elif missing := [
        k for k in ("format", "benchmark", "content_sha256", "classes", "splits") if k not in metadata
    ]:
        problem = f"lacks the key(s) {', '.join(missing)}"
    elif not isinstance(metadata["classes"], list) or not all(
        isinstance(row, dict) and row.keys() == fields.keys() for row in metadata["classes"]
    ):
        problem = f"has a `classes` entry that is not an object with exactly {', '.join(fields)}"
    elif not isinstance(metadata["splits"], dict) or not all(
        isinstance(part, dict) and {"rows", "public_sha256"} <= part.keys()
        for part in metadata["splits"].values()
    ):
        problem = "has a `splits` entry without rows and public_sha256"
    if problem:
        raise UserError(f"{path} {problem}; rebuild the manifest with `glt-bench build-splits`")


class Manifest:
    """A built benchmark on disk. Test labels are reachable only through `test_labels`."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        path = self.root / "metadata.json"
        try:
            self.metadata: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UserError(
                f"no manifest at {self.root} (metadata.json missing); "
                "build it first with `glt-bench build-splits`"
            ) from None
        except (OSError, ValueError) as exc:
            raise UserError(f"cannot read {path}: {exc}; rebuild with `glt-bench build-splits`") from None
        _check_shape(self.metadata, path)
        if self.metadata.get("format") != FORMAT_VERSION:
            raise UserError(
                f"{path} has format {self.metadata.get('format')!r}, expected {FORMAT_VERSION!r}; "
                "rebuild it with this version of glt-bench"
            )
        if _combine(self.classes, self.metadata["splits"]) != self.content_hash:
            raise UserError(f"{path} does not match its own content hash (edited by hand?); rebuild it")

    @property
    def benchmark(self) -> str:
        return self.metadata["benchmark"]

    @property
    def content_hash(self) -> str:
        return self.metadata["content_sha256"]

    @cached_property
    def classes(self) -> list[ClassInfo]:
        return [ClassInfo(**row) for row in self.metadata["classes"]]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def class_groups(self) -> np.ndarray:
        """Group name of each class id."""
        return np.array([info.group for info in self.classes])

    def class_counts(self, split: str) -> np.ndarray:
        """Training count of each class id in a train split (the prior n_c of docs/benchmarks.md §7c)."""
        return np.array([getattr(info, split) for info in self.classes], dtype=np.int64)

    def _read(self, folder: str, split: str) -> pd.DataFrame:
        if split not in self.metadata["splits"]:
            raise UserError(f"{self.benchmark} has no split {split!r}")
        path = self.root / folder / f"{split}.parquet"
        try:  # the pandas metadata is not needed (no index, Arrow types suffice) and may be damaged
            frame = pq.read_table(path).to_pandas(ignore_metadata=True)
        except (OSError, ValueError, pa.ArrowException) as exc:
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise UserError(f"cannot read {path}: {reason}; rebuild the manifest") from None
        needed = ("sample_id", *LABEL_COLUMNS) if folder == "labels" else PUBLIC_COLUMNS
        needed += LABEL_COLUMNS if folder == "splits" and split not in TEST_SPLITS else ()
        missing = [column for column in needed if column not in frame.columns]
        if missing:
            raise UserError(f"{path} lacks the column(s) {', '.join(missing)}; rebuild the manifest")
        return frame

    def split(self, split: str) -> pd.DataFrame:
        """A labelled (train or val) split."""
        if split in TEST_SPLITS:
            raise ValueError(f"{split} is a test split: read its public listing, never its labels")
        return self._read("splits", split)

    def public_listing(self, split: str) -> pd.DataFrame:
        """`sample_id, path` (and `bbox` where present) of any split, without labels."""
        frame = self._read("splits", split)
        return frame[list(public_columns(frame))]

    def test_labels(self, split: str) -> pd.DataFrame:
        """Held-out labels of a test split, checked against their recorded hash: for the scorer only."""
        if split not in TEST_SPLITS:
            raise ValueError(f"{split} is not a test split")
        return self._checked(
            self._read("labels", split), split, "labels_sha256", ("sample_id", *LABEL_COLUMNS)
        )

    def all_splits(self) -> dict[str, pd.DataFrame]:
        """Every split with its labels (test labels included): for summaries and checks."""
        out = {}
        for name in self.metadata["splits"]:
            if name in TEST_SPLITS:
                out[name] = self.public_listing(name).merge(self.test_labels(name), on="sample_id")
            else:
                out[name] = self.split(name)
        return out

    def _checked(self, frame: pd.DataFrame, split: str, key: str, columns: tuple[str, ...]) -> pd.DataFrame:
        try:
            digest = _rows_hash(frame, columns)
        except (ValueError, TypeError, pa.ArrowException):  # missing values, damaged types
            digest = None
        if digest != self.metadata["splits"][split].get(key):
            raise UserError(
                f"manifest at {self.root}: {split} does not match its recorded {key}; "
                "the files were edited or mixed up, rebuild with `glt-bench build-splits`"
            )
        return frame

    def verify_split(self, split: str, *, labels: bool = False) -> None:
        """Re-hash one split's public part (and its test labels when `labels` is true)."""
        frame = self._read("splits", split)
        if split in TEST_SPLITS:
            self._checked(frame, split, "public_sha256", public_columns(frame))
            if labels:
                self.test_labels(split)
        else:
            self._checked(frame, split, "public_sha256", (*public_columns(frame), *LABEL_COLUMNS))

    def verify(self, *, labels: bool = False) -> None:
        """Re-hash every split against the metadata; test labels only when `labels` is true.

        Training and prediction verify the public part only, so they never read test labels.
        """
        for name in self.metadata["splits"]:
            self.verify_split(name, labels=labels)
