"""Tests for benchmark/manifest.py: layout on disk, content hash, label hiding, verification."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from benchmark.errors import UserError
from benchmark.manifest import (
    SPLITS,
    TEST_SPLITS,
    ClassInfo,
    Manifest,
    canonical_hash,
    gini,
    write_manifest,
)

NUM_CLASSES = 4
SPLIT_SIZES = {
    "train_glt": 30,
    "train_cbl": 24,
    "val_glt": 9,
    "val_cbl": 8,
    "test_cbl": 12,
    "test_gbl": 12,
    "test_glt": 10,
}
BUILD = {"seed": 25, "note": "synthetic"}


def _frame(size: int, offset: int) -> pd.DataFrame:
    rng = np.random.default_rng(offset)
    ids = [f"img/{offset + i:05d}" for i in range(size)]
    labels = rng.integers(0, NUM_CLASSES, size=size)
    frame = pd.DataFrame(
        {
            "sample_id": ids,
            "path": [f"root-free/{i}.png" for i in ids],
            "label": labels.astype(np.int64),
            "attribute": rng.integers(0, 3, size=size).astype(np.int64),
        }
    )
    # Shuffle rows: the writer must sort by sample id itself.
    return frame.sample(frac=1.0, random_state=offset).reset_index(drop=True)


def make_splits() -> dict[str, pd.DataFrame]:
    splits, offset = {}, 0
    for name in SPLITS:
        splits[name] = _frame(SPLIT_SIZES[name], offset)
        offset += 1000
    return splits


def make_classes(splits: dict[str, pd.DataFrame]) -> list[ClassInfo]:
    groups = ["many", "medium", "medium", "few"]
    glt = np.bincount(splits["train_glt"]["label"], minlength=NUM_CLASSES)
    cbl = np.bincount(splits["train_cbl"]["label"], minlength=NUM_CLASSES)
    return [ClassInfo(c, f"class-{c}", groups[c], int(glt[c]), int(cbl[c])) for c in range(NUM_CLASSES)]


def build(root: Path, splits: dict[str, pd.DataFrame] | None = None) -> Manifest:
    splits = make_splits() if splits is None else splits
    return write_manifest(
        root, benchmark="synthetic-glt", classes=make_classes(splits), splits=splits, build=BUILD
    )


def _canonical(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame[["sample_id", "path", "label", "attribute"]].sort_values("sample_id")
    return frame.reset_index(drop=True).astype({"label": "int64", "attribute": "int64"})


def test_round_trip(tmp_path: Path) -> None:
    splits = make_splits()
    manifest = build(tmp_path, splits)
    reopened = Manifest(tmp_path)
    assert reopened.benchmark == "synthetic-glt"
    assert reopened.content_hash == manifest.content_hash
    assert reopened.classes == make_classes(splits)
    assert reopened.num_classes == NUM_CLASSES
    assert list(reopened.class_groups) == ["many", "medium", "medium", "few"]
    assert reopened.metadata["build"] == BUILD
    assert {name: meta["rows"] for name, meta in reopened.metadata["splits"].items()} == SPLIT_SIZES
    for name in SPLITS:
        if name in TEST_SPLITS:
            read = reopened.public_listing(name).merge(reopened.test_labels(name), on="sample_id")
        else:
            read = reopened.split(name)
        pd.testing.assert_frame_equal(_canonical(read), _canonical(splits[name]))
    all_splits = reopened.all_splits()
    assert set(all_splits) == set(SPLITS)
    for name in SPLITS:
        pd.testing.assert_frame_equal(_canonical(all_splits[name]), _canonical(splits[name]))


def test_rows_are_stored_sorted_by_sample_id(tmp_path: Path) -> None:
    manifest = build(tmp_path)
    ids = manifest.split("train_glt")["sample_id"].tolist()
    assert ids == sorted(ids)
    ids = manifest.public_listing("test_gbl")["sample_id"].tolist()
    assert ids == sorted(ids)


def test_hash_independent_of_row_order(tmp_path: Path) -> None:
    splits = make_splits()
    classes = make_classes(splits)
    shuffled = {
        name: frame.sample(frac=1.0, random_state=7).reset_index(drop=True) for name, frame in splits.items()
    }
    assert any(not shuffled[n]["sample_id"].equals(splits[n]["sample_id"]) for n in SPLITS)
    assert canonical_hash(classes, shuffled) == canonical_hash(classes, splits)
    a = build(tmp_path / "a", splits)
    b = build(tmp_path / "b", shuffled)
    assert a.content_hash == b.content_hash == canonical_hash(classes, splits)


def test_hash_is_sha256_hex(tmp_path: Path) -> None:
    digest = build(tmp_path).content_hash
    assert len(digest) == 64
    int(digest, 16)


def test_hash_changes_when_one_label_changes() -> None:
    splits = make_splits()
    classes = make_classes(splits)
    before = canonical_hash(classes, splits)
    changed = {name: frame.copy() for name, frame in splits.items()}
    changed["test_gbl"].loc[3, "label"] = (changed["test_gbl"].loc[3, "label"] + 1) % NUM_CLASSES
    assert canonical_hash(classes, changed) != before


def test_hash_changes_when_attribute_or_path_changes() -> None:
    splits = make_splits()
    classes = make_classes(splits)
    before = canonical_hash(classes, splits)
    changed = {name: frame.copy() for name, frame in splits.items()}
    changed["train_glt"].loc[0, "attribute"] = (changed["train_glt"].loc[0, "attribute"] + 1) % 3
    assert canonical_hash(classes, changed) != before
    changed = {name: frame.copy() for name, frame in splits.items()}
    changed["val_cbl"].loc[0, "path"] = "elsewhere.png"
    assert canonical_hash(classes, changed) != before


def test_test_split_public_listing_has_no_labels(tmp_path: Path) -> None:
    manifest = build(tmp_path)
    for name in TEST_SPLITS:
        listing = manifest.public_listing(name)
        assert list(listing.columns) == ["sample_id", "path"]
        assert len(listing) == SPLIT_SIZES[name]


def test_split_refuses_test_splits(tmp_path: Path) -> None:
    manifest = build(tmp_path)
    for name in TEST_SPLITS:
        with pytest.raises(ValueError):
            manifest.split(name)


def test_test_labels_are_available_to_the_scorer(tmp_path: Path) -> None:
    splits = make_splits()
    manifest = build(tmp_path, splits)
    labels = manifest.test_labels("test_cbl")
    assert list(labels.columns) == ["sample_id", "label", "attribute"]
    expected = _canonical(splits["test_cbl"])[["sample_id", "label", "attribute"]]
    got = (
        labels.sort_values("sample_id")
        .reset_index(drop=True)
        .astype({"label": "int64", "attribute": "int64"})
    )
    pd.testing.assert_frame_equal(got, expected)


def test_split_files_of_test_splits_hold_no_labels(tmp_path: Path) -> None:
    build(tmp_path)
    for name in SPLITS:
        columns = pq.read_table(tmp_path / "splits" / f"{name}.parquet").column_names
        if name in TEST_SPLITS:
            assert columns == ["sample_id", "path"]
            assert (tmp_path / "labels" / f"{name}.parquet").exists()
        else:
            assert columns == ["sample_id", "path", "label", "attribute"]
            assert not (tmp_path / "labels" / f"{name}.parquet").exists()


def test_unknown_split_name_is_rejected(tmp_path: Path) -> None:
    splits = make_splits()
    splits["test_extra"] = splits["test_gbl"]
    with pytest.raises(ValueError):
        build(tmp_path, splits)


def test_reading_a_split_the_manifest_lacks_raises_user_error(tmp_path: Path) -> None:
    splits = make_splits()
    del splits["test_glt"]
    manifest = build(tmp_path, splits)
    with pytest.raises(UserError):
        manifest.public_listing("test_glt")


def _all_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_inputs_give_byte_identical_files(tmp_path: Path) -> None:
    build(tmp_path / "first")
    build(tmp_path / "second")
    first, second = _all_files(tmp_path / "first"), _all_files(tmp_path / "second")
    assert sorted(first) == sorted(second)
    assert "metadata.json" in first
    assert len(first) == 1 + len(SPLITS) + len(TEST_SPLITS)
    for name in first:
        assert first[name] == second[name], name


def test_rewrite_in_place_is_byte_identical(tmp_path: Path) -> None:
    build(tmp_path)
    before = _all_files(tmp_path)
    build(tmp_path)
    assert _all_files(tmp_path) == before  # no stray temporary files either


def test_verify_passes_on_fresh_manifest(tmp_path: Path) -> None:
    build(tmp_path)
    Manifest(tmp_path).verify()
    Manifest(tmp_path).verify(labels=True)


def _alter_test_label(root: Path, split: str = "test_gbl") -> None:
    path = root / "labels" / f"{split}.parquet"
    table = pq.read_table(path)
    labels = table.column("label").to_numpy().copy()
    labels[0] = (labels[0] + 1) % NUM_CLASSES
    table = table.set_column(
        table.column_names.index("label"),
        "label",
        pa.array(labels, type=table.schema.field("label").type),
    )
    pq.write_table(table, path)


def test_verify_detects_altered_test_label(tmp_path: Path) -> None:
    build(tmp_path)
    _alter_test_label(tmp_path)
    with pytest.raises(UserError, match="test_gbl"):
        Manifest(tmp_path).verify(labels=True)
    # The scorer's own read of the held-out labels refuses them too.
    with pytest.raises(UserError):
        Manifest(tmp_path).test_labels("test_gbl")
    Manifest(tmp_path).test_labels("test_cbl")  # untouched splits still read fine


def test_verify_without_labels_never_reads_test_labels(tmp_path: Path) -> None:
    # Training and prediction check only the public part: it must work with no labels/ folder.
    build(tmp_path)
    for path in (tmp_path / "labels").iterdir():
        path.unlink()
    (tmp_path / "labels").rmdir()
    Manifest(tmp_path).verify()
    with pytest.raises(UserError):
        Manifest(tmp_path).verify(labels=True)


def test_verify_detects_altered_test_listing(tmp_path: Path) -> None:
    build(tmp_path)
    path = tmp_path / "splits" / "test_cbl.parquet"
    frame = pq.read_table(path).to_pandas()
    frame.loc[0, "path"] = "swapped.png"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    with pytest.raises(UserError, match="test_cbl"):
        Manifest(tmp_path).verify()


def test_verify_detects_altered_train_row(tmp_path: Path) -> None:
    build(tmp_path)
    path = tmp_path / "splits" / "train_glt.parquet"
    frame = pq.read_table(path).to_pandas()
    frame = frame.iloc[1:]  # drop one row
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    with pytest.raises(UserError):
        Manifest(tmp_path).verify()


@pytest.mark.parametrize(("field", "value"), [("name", "renamed"), ("train_glt", 999), ("group", "few")])
def test_opening_detects_altered_class_table(tmp_path: Path, field: str, value) -> None:
    """The class table (names, groups, the priors n_c) is covered by the content hash."""
    build(tmp_path)
    meta_path = tmp_path / "metadata.json"
    metadata = json.loads(meta_path.read_text(encoding="utf-8"))
    metadata["classes"][0][field] = value
    meta_path.write_text(json.dumps(metadata), encoding="utf-8")
    with pytest.raises(UserError, match="content hash"):
        Manifest(tmp_path)


def test_test_labels_refuses_non_test_split(tmp_path: Path) -> None:
    manifest = build(tmp_path)
    with pytest.raises(ValueError):
        manifest.test_labels("train_glt")


def test_missing_metadata_mentions_build_splits(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="build-splits"):
        Manifest(tmp_path)


def test_corrupt_or_foreign_metadata_is_a_user_error(tmp_path: Path) -> None:
    (tmp_path / "metadata.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(UserError):
        Manifest(tmp_path)
    (tmp_path / "metadata.json").write_text(json.dumps({"format": "other/9"}), encoding="utf-8")
    with pytest.raises(UserError):
        Manifest(tmp_path)


def test_class_counts(tmp_path: Path) -> None:
    splits = make_splits()
    manifest = build(tmp_path, splits)
    expected_glt = np.bincount(splits["train_glt"]["label"], minlength=NUM_CLASSES)
    expected_cbl = np.bincount(splits["train_cbl"]["label"], minlength=NUM_CLASSES)
    counts = manifest.class_counts("train_glt")
    assert counts.dtype == np.int64
    np.testing.assert_array_equal(counts, expected_glt)
    np.testing.assert_array_equal(manifest.class_counts("train_cbl"), expected_cbl)
    assert counts.sum() == SPLIT_SIZES["train_glt"]


def test_gini_of_class_counts() -> None:
    assert gini(np.array([5, 5, 5, 5])) == 0.0
    assert gini(np.array([0, 0, 0, 12])) == pytest.approx(0.75)  # (n − 1)/n for one class holding all
    assert gini(np.array([1, 2, 3, 4])) == pytest.approx(0.25)  # Σ|xi − xj| / (2 n² mean) by hand


def test_card_carries_the_figures_and_hashes(tmp_path: Path) -> None:
    splits = make_splits()
    manifest = write_manifest(
        tmp_path, benchmark="synthetic-glt", classes=make_classes(splits), splits=splits,
        build={"features": {"features_sha256": "f" * 64}},
    )  # fmt: skip
    card = manifest.metadata["card"]
    counts = np.array([info.train_glt for info in manifest.classes])
    assert card["imbalance_ratio"] == pytest.approx(counts.max() / counts.min(), abs=1e-3)
    assert card["gini"] == pytest.approx(gini(counts), abs=1e-4)
    assert card["sizes"] == SPLIT_SIZES and card["many_medium_few"] == "1/2/1"
    att = np.bincount(splits["val_glt"]["attribute"], minlength=3)
    assert card["attribute_imbalance"]["val_glt"] == pytest.approx(att.max() / att.min(), abs=1e-3)
    assert card["features_sha256"] == "f" * 64 and card["content_sha256"] == manifest.content_hash
