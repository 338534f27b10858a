"""FeatureFile: precomputed features read by memory map (or streamed into one), checked up front."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from benchmark.errors import UserError
from splits.features import FeatureFile


def sample(rows: int = 50, dim: int = 7, dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    paths = np.array([f"n{c:02d}/{i:03d}.jpg" for c in range(5) for i in range(rows // 5)])
    order = rng.permutation(len(paths))  # rows in any order
    return paths[order], rng.normal(size=(len(paths), dim)).astype(dtype)


def write_parquet(path: Path, paths: np.ndarray, values: list[list[float]], row_group: int = 8) -> Path:
    table = pa.table({"path": paths, "features": pa.array(values, pa.list_(pa.float32()))})
    pq.write_table(table, path, row_group_size=row_group)
    return path


@pytest.mark.parametrize("kind", ["stored", "compressed", "float64", "parquet"])
def test_every_layout_gives_the_same_sorted_rows(tmp_path: Path, kind: str) -> None:
    paths, values = sample(dtype=np.float64 if kind == "float64" else np.float32)
    if kind == "parquet":
        path = write_parquet(tmp_path / "f.parquet", paths, values.tolist())
    else:
        path = tmp_path / "f.npz"
        (np.savez_compressed if kind == "compressed" else np.savez)(path, paths=paths, features=values)
    features = FeatureFile(path, tmp_path / "scratch")
    order = np.argsort(paths)
    np.testing.assert_array_equal(features.paths, paths[order])
    picked = np.array([3, 0, 7])
    got = features.rows(picked)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, values[order][picked].astype(np.float32))
    features.check_finite()
    mapped_in_place = kind in ("stored", "float64")
    assert isinstance(features.values, np.memmap)
    assert (list((tmp_path / "scratch").glob("*.npy")) == []) == mapped_in_place
    features.close()
    assert list((tmp_path / "scratch").glob("*")) == []


def test_parquet_rows_of_unequal_length_are_refused(tmp_path: Path) -> None:
    paths, values = sample()
    rows = values.tolist()
    rows[13] = rows[13][:-1]
    path = write_parquet(tmp_path / "f.parquet", paths, rows)
    with pytest.raises(UserError, match="row 13 holds 6 features, row 0 holds 7") as error:
        FeatureFile(path, tmp_path / "scratch")
    assert "\n" not in str(error.value)
    assert list((tmp_path / "scratch").glob("*")) == []  # the streamed copy is removed


@pytest.mark.parametrize(
    ("write", "message"),
    [
        (lambda p, paths, v: np.savez(p, paths=paths, feats=v), "needs the arrays paths and features"),
        (lambda p, paths, v: np.savez(p, paths=paths[1:], features=v), "expected N paths and an N×D array"),
        (lambda p, paths, v: np.savez(p, paths=paths, features=v[:, 0]), "expected N paths and an N×D array"),
        (
            lambda p, paths, v: np.savez(p, paths=np.r_[paths[:1], paths[:-1]], features=v),
            "lists a path twice",
        ),
        (lambda p, paths, v: np.savez(p, paths=paths, features=v.astype(int)), "float array"),
        (lambda p, paths, v: p.write_bytes(b"PK\x03\x04 broken"), "cannot read --features"),
    ],
)
def test_bad_npz_files_are_one_line_errors(tmp_path: Path, write, message: str) -> None:
    paths, values = sample()
    path = tmp_path / "f.npz"
    write(path, paths, values)
    with pytest.raises(UserError, match=message) as error:
        FeatureFile(path, tmp_path / "scratch")
    assert "\n" not in str(error.value)


def test_non_finite_values_and_other_suffixes_are_refused(tmp_path: Path) -> None:
    paths, values = sample()
    values[17, 2] = np.nan
    np.savez(tmp_path / "f.npz", paths=paths, features=values)
    with pytest.raises(UserError, match="NaN or infinite"):
        FeatureFile(tmp_path / "f.npz", tmp_path).check_finite()
    (tmp_path / "f.csv").write_text("x")
    with pytest.raises(UserError, match=r"give an \.npz"):
        FeatureFile(tmp_path / "f.csv", tmp_path)
    with pytest.raises(UserError, match="is not a file"):
        FeatureFile(tmp_path / "absent.npz", tmp_path)
