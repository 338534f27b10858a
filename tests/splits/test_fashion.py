"""Tests for splits/fashion.py: IDX parsing and locating the Fashion-MNIST files (docs/benchmarks.md §9)."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmark.benchmarks import BENCHMARKS
from benchmark.errors import UserError
from benchmark.manifest import Manifest
from splits.fashion import DEBIAN_ROOT, IDX_SHA256, load_source, parse_idx

IDX_NAMES = tuple(IDX_SHA256)


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file of uint8: magic 0x0000 08 <ndim>, big-endian int32 dims, then row-major data."""
    array = np.asarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim])
    header += b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.tobytes()


def fake_images(n: int = 3) -> np.ndarray:
    return (np.arange(n * 28 * 28) % 251).astype(np.uint8).reshape(n, 28, 28)


def test_idx_bytes_helper_matches_the_documented_magic() -> None:
    assert idx_bytes(fake_images())[:4] == (0x00000803).to_bytes(4, "big") == (2051).to_bytes(4, "big")
    assert idx_bytes(np.zeros(2))[:4] == (0x00000801).to_bytes(4, "big") == (2049).to_bytes(4, "big")


def test_parse_idx_images() -> None:
    images = fake_images(3)
    data = idx_bytes(images)
    assert len(data) == 16 + 3 * 28 * 28
    parsed = parse_idx(data, 3, "images")
    assert parsed.shape == (3, 28, 28)
    assert parsed.dtype == np.uint8
    np.testing.assert_array_equal(parsed, images)


def test_parse_idx_labels() -> None:
    labels = np.array([9, 0, 0, 3, 2], dtype=np.uint8)
    data = idx_bytes(labels)
    assert len(data) == 8 + 5
    parsed = parse_idx(data, 1, "labels")
    np.testing.assert_array_equal(parsed, labels)


def test_parse_idx_empty_is_valid() -> None:
    assert parse_idx(idx_bytes(np.zeros(0)), 1, "labels").shape == (0,)


@pytest.mark.parametrize(
    "magic",
    [
        b"\x00\x00\x09\x03",  # int8 type code, not uint8
        b"\x00\x00\x0d\x03",  # float
        b"\x01\x00\x08\x03",  # nonzero leading bytes
        b"\x1f\x8b\x08\x03",  # looks like a gzip stream
    ],
)
def test_parse_idx_rejects_wrong_magic(magic: bytes) -> None:
    data = magic + idx_bytes(fake_images())[4:]
    with pytest.raises(UserError):
        parse_idx(data, 3, "images")


def test_parse_idx_rejects_wrong_dims() -> None:
    with pytest.raises(UserError):
        parse_idx(idx_bytes(fake_images()), 1, "labels")  # an image file where labels are expected
    with pytest.raises(UserError):
        parse_idx(idx_bytes(np.zeros(5)), 3, "images")  # a label file where images are expected
    with pytest.raises(UserError):
        parse_idx(idx_bytes(np.zeros((2, 28))), 3, "images")


@pytest.mark.parametrize("cut", [1, 28, 28 * 28])
def test_parse_idx_rejects_truncated_data(cut: int) -> None:
    data = idx_bytes(fake_images())
    with pytest.raises(UserError, match="header"):
        parse_idx(data[:-cut], 3, "images")


def test_parse_idx_rejects_trailing_data() -> None:
    with pytest.raises(UserError):
        parse_idx(idx_bytes(fake_images()) + b"\x00", 3, "images")


@pytest.mark.parametrize("size", [0, 3, 10])
def test_parse_idx_rejects_truncated_header(size: int) -> None:
    with pytest.raises(UserError):
        parse_idx(idx_bytes(fake_images())[:size], 3, "images")


def test_load_source_missing_files(tmp_path: Path) -> None:
    with pytest.raises(UserError) as excinfo:
        load_source(data_root=tmp_path, cache_dir=tmp_path / "cache")
    message = str(excinfo.value)
    for name in IDX_NAMES:
        assert name in message


def test_load_source_incomplete_folder(tmp_path: Path) -> None:
    write_fake_files(tmp_path, gz=False)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(UserError, match="t10k-labels-idx1-ubyte"):
        load_source(data_root=tmp_path, cache_dir=tmp_path / "cache")


def write_fake_files(folder: Path, gz: bool) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    contents = {
        "train-images-idx3-ubyte": idx_bytes(fake_images(4)),
        "train-labels-idx1-ubyte": idx_bytes(np.array([0, 1, 2, 3])),
        "t10k-images-idx3-ubyte": idx_bytes(fake_images(2)),
        "t10k-labels-idx1-ubyte": idx_bytes(np.array([4, 5])),
    }
    for name, data in contents.items():
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(data, mtime=0))
        else:
            (folder / name).write_bytes(data)


@pytest.mark.parametrize("gz", [False, True])
def test_load_source_rejects_files_that_are_not_the_release(tmp_path: Path, gz: bool) -> None:
    write_fake_files(tmp_path, gz)
    with pytest.raises(UserError, match="not the Fashion-MNIST release"):
        load_source(data_root=tmp_path, cache_dir=tmp_path / "cache")


def test_load_source_rejects_fake_files_in_torchvision_layout(tmp_path: Path) -> None:
    write_fake_files(tmp_path / "FashionMNIST" / "raw", gz=True)
    with pytest.raises(UserError, match="not the Fashion-MNIST release"):
        load_source(data_root=tmp_path, cache_dir=tmp_path / "cache")


def test_load_source_rejects_corrupt_gzip(tmp_path: Path) -> None:
    for name in IDX_NAMES:
        (tmp_path / f"{name}.gz").write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(UserError):
        load_source(data_root=tmp_path, cache_dir=tmp_path / "cache")


def test_load_source_rejects_truncated_gzip(tmp_path: Path) -> None:
    # A partial download: the gzip stream ends early.
    write_fake_files(tmp_path, gz=True)
    for path in tmp_path.glob("*.gz"):
        path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(UserError):
        load_source(data_root=tmp_path, cache_dir=tmp_path / "cache")


def test_load_source_rejects_corrupt_deflate_stream(tmp_path: Path) -> None:
    # A valid gzip header with a damaged compressed body (bit rot): zlib fails mid-stream.
    # Bad input must surface as a one-line UserError, not a raw zlib.error traceback.
    write_fake_files(tmp_path, gz=True)
    for path in tmp_path.glob("*.gz"):
        data = bytearray(path.read_bytes())
        for i in range(12, min(len(data) - 8, 40)):
            data[i] ^= 0xFF
        path.write_bytes(bytes(data))
    with pytest.raises(UserError):
        load_source(data_root=tmp_path, cache_dir=tmp_path / "cache")


needs_real_data = pytest.mark.skipif(
    not all((DEBIAN_ROOT / f"{name}.gz").exists() for name in IDX_NAMES),
    reason=f"no Fashion-MNIST in {DEBIAN_ROOT} (apt-get install dataset-fashion-mnist)",
)


@pytest.fixture(scope="module")
def real_source():
    return load_source()


@needs_real_data
def test_load_source_real_data(real_source) -> None:
    source = real_source
    assert source.images.shape == (70_000, 28, 28)
    assert source.images.dtype == np.uint8
    assert source.labels.shape == (70_000,)
    assert len(source.sample_ids) == 70_000
    ids = source.sample_ids.tolist()
    assert ids == sorted(ids)
    assert len(set(ids)) == 70_000
    assert ids[0] == "test/00000"
    assert ids[9_999] == "test/09999"
    assert ids[10_000] == "train/00000"
    assert ids[-1] == "train/59999"
    np.testing.assert_array_equal(np.bincount(source.labels), np.full(10, 7000))
    assert source.files == IDX_SHA256
    # Pixel mean of the 60,000 training images (ENVIRONMENT.md §5): 0.2860.
    assert source.images[10_000:].mean() / 255 == pytest.approx(0.2860, abs=5e-4)


@needs_real_data
def test_load_source_from_data_root_torchvision_layout(tmp_path: Path, real_source) -> None:
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for name in IDX_NAMES:
        shutil.copyfile(DEBIAN_ROOT / f"{name}.gz", raw / f"{name}.gz")
    source = load_source(data_root=tmp_path, cache_dir=tmp_path / "cache")
    np.testing.assert_array_equal(source.sample_ids, real_source.sample_ids)
    np.testing.assert_array_equal(source.labels, real_source.labels)
    np.testing.assert_array_equal(source.images, real_source.images)


def test_full_fashion_glt_sizes_and_determinism(tmp_path):
    """The real 70,000-image build (fast `pixels` features) has the sizes of docs/benchmarks.md §9, twice."""
    if not DEBIAN_ROOT.exists():
        pytest.fail("Fashion-MNIST is missing: `apt-get install dataset-fashion-mnist` (make test does it)")
    build = BENCHMARKS.get("fashion-glt").build
    first = build(tmp_path / "a", extractor="pixels", cache_dir=tmp_path / "cache")
    second = Manifest(tmp_path / "a")
    assert first.content_hash == second.content_hash
    rebuilt = build(tmp_path / "b", extractor="pixels", cache_dir=tmp_path / "cache")
    assert rebuilt.content_hash == first.content_hash
    assert (tmp_path / "a" / "metadata.json").read_bytes() == (tmp_path / "b" / "metadata.json").read_bytes()

    frames = first.all_splits()
    sizes = {name: len(frame) for name, frame in frames.items()}
    assert sizes == {
        "test_gbl": 1800, "test_cbl": 1800, "test_glt": 1800, "val_glt": 900,
        "train_glt": 4000, "val_cbl": 900, "train_cbl": 4000,
    }  # fmt: skip
    per_cell = {name: frame.groupby(["label", "attribute"]).size() for name, frame in frames.items()}
    assert set(per_cell["test_gbl"]) == {60}
    for name, expected in {
        "test_cbl": (126, 36, 18),
        "val_cbl": (63, 18, 9),
        "train_cbl": (280, 80, 40),
    }.items():
        counts = per_cell[name].unstack()
        assert (counts.to_numpy() == np.array(expected)).all(), name
    lt = pd.concat([frames[s] for s in ("train_glt", "val_glt", "test_glt")])
    assert lt.groupby("label").size().tolist() == [2705, 1621, 971, 582, 347, 207, 124, 74, 44, 25]
    all_ids = pd.concat(frames.values())["sample_id"]
    assert all_ids.str.fullmatch(r"(train/\d{5}|test/\d{5})").all()


def test_rebuild_with_another_seed_or_k_reuses_cached_features(
    mini_manifest_dir, feature_cache, tmp_path, monkeypatch
):
    """The session build filled the cache; other seeds and K must not extract again."""
    import splits.features

    def no_extraction(*args, **kwargs):
        raise AssertionError("features were extracted again")

    monkeypatch.setattr(splits.features, "extract", no_extraction)
    build = BENCHMARKS.get("fashion-glt-mini").build
    other = build(tmp_path / "m", seed=3, num_clusters=9, cache_dir=feature_cache)
    assert other.metadata["build"]["num_clusters"] == 9
    assert other.content_hash != Manifest(mini_manifest_dir / "fashion-glt-mini").content_hash


def test_without_local_data_or_network_the_error_says_what_to_do(tmp_path, monkeypatch):
    import torchvision.datasets

    import splits.fashion

    def offline(*args, **kwargs):
        raise OSError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(splits.fashion, "DEBIAN_ROOT", tmp_path / "absent")
    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", offline)
    with pytest.raises(UserError, match="apt-get install dataset-fashion-mnist"):
        load_source(cache_dir=tmp_path / "cache")


def test_fashion_glt_hash_is_the_same_with_one_or_two_threads(tmp_path):
    """OMP_NUM_THREADS=1 with one clustering process and OMP_NUM_THREADS=2 with two give one manifest
    (scikit-learn's threaded K-means did not: its cluster sizes of class 2 changed)."""
    if not DEBIAN_ROOT.exists():
        pytest.fail("Fashion-MNIST is missing: `apt-get install dataset-fashion-mnist` (make test does it)")
    hashes = []
    for threads in (1, 2):
        out = tmp_path / f"threads{threads}"
        command = [
            sys.executable, "-m", "benchmark.cli", "build-splits", "--benchmark", "fashion-glt",
            "--extractor", "pixels", "--cache-dir", str(tmp_path / "cache"), "--out", str(out),
            "--workers", str(threads),
        ]  # fmt: skip
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        subprocess.run(command, check=True, env=env, capture_output=True, timeout=600)
        hashes.append(Manifest(out).content_hash)
    assert hashes[0] == hashes[1]
