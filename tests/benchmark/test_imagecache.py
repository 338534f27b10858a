"""The one-time image cache: geometry, boxes, formats, reuse, bad files and determinism."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmark import imagecache
from benchmark.errors import UserError

RED, BLUE = (220, 20, 20), (20, 20, 220)


def _picture(width: int, height: int, square: tuple[int, int, int]) -> Image.Image:
    """Blue background with a red square of side `square[2]` whose top-left corner is (x, y)."""
    pixels = np.full((height, width, 3), BLUE, dtype=np.uint8)
    x, y, side = square
    pixels[y : y + side, x : x + side] = RED
    return Image.fromarray(pixels)


def _centred(width: int, height: int, side: int) -> Image.Image:
    return _picture(width, height, ((width - side) // 2, (height - side) // 2, side))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    (data / "a").mkdir(parents=True)
    _centred(400, 300, 90).save(data / "a" / "wide.JPEG", quality=95, subsampling=0)
    _centred(180, 480, 54).save(data / "a" / "tall.JPEG", quality=95, subsampling=0)
    _centred(60, 60, 18).save(data / "a" / "small.JPEG", quality=95, subsampling=0)
    _centred(300, 200, 60).convert("L").save(data / "a" / "grey.JPEG", quality=95, subsampling=0)
    _centred(200, 150, 45).convert("P", palette=Image.Palette.ADAPTIVE).save(data / "a" / "palette.png")
    return data


PATHS = ["a/wide.JPEG", "a/tall.JPEG", "a/small.JPEG", "a/grey.JPEG", "a/palette.png"]


def _red_mask(image: np.ndarray) -> np.ndarray:
    return (image[0].astype(int) - image[2].astype(int)) > 0


def test_shape_dtype_and_centred_feature(root: Path, tmp_path: Path) -> None:
    images = imagecache.prepare(PATHS, root, tmp_path / "cache.npy", size=32, workers=1)
    assert images.shape == (5, 3, 32, 32) and images.dtype == np.uint8
    assert not images.flags.writeable
    for path, image in zip(PATHS[:3] + PATHS[4:], np.delete(images, 3, axis=0), strict=True):
        rows, cols = np.nonzero(_red_mask(image))
        assert abs(rows.mean() - 15.5) < 0.6 and abs(cols.mean() - 15.5) < 0.6, path
        assert 9 <= np.ptp(rows) + 1 <= 11  # the red square is about 0.3 of the shorter side
    grey = images[3].astype(int)
    assert np.array_equal(grey[0], grey[1]) and np.array_equal(grey[1], grey[2])


def test_default_size_is_128(root: Path, tmp_path: Path) -> None:
    images = imagecache.prepare(PATHS[:1], root, tmp_path / "cache.npy", workers=1)
    assert images.shape == (1, 3, 128, 128)


def test_bbox_is_cropped_before_resizing(tmp_path: Path) -> None:
    (tmp_path / "img").mkdir()
    _picture(400, 300, (40, 100, 80)).save(tmp_path / "img" / "object.JPEG", quality=95, subsampling=0)
    paths = ["img/object.JPEG"] * 2
    boxes = [[40, 100, 80, 80], [20, 80, 120, 120]]  # the square itself; the square with a margin
    images = imagecache.prepare(paths, tmp_path, tmp_path / "cache.npy", size=24, boxes=boxes, workers=1)
    assert _red_mask(images[0][:, 2:-2, 2:-2]).all()
    rows, cols = np.nonzero(_red_mask(images[1]))
    assert abs(rows.mean() - 11.5) < 0.6 and abs(cols.mean() - 11.5) < 0.6
    assert np.ptp(cols) + 1 == pytest.approx(16, abs=1)


def test_wide_box_is_padded_to_a_square_with_black(tmp_path: Path) -> None:
    (tmp_path / "img").mkdir()
    _picture(400, 300, (0, 0, 0)).save(tmp_path / "img" / "blue.JPEG", quality=95, subsampling=0)
    image = imagecache.prepare(
        ["img/blue.JPEG"], tmp_path, tmp_path / "cache.npy", size=40, boxes=[[100, 100, 200, 100]], workers=1
    )[0]
    assert image[:, :9].max() == 0 and image[:, -9:].max() == 0  # 10 black rows above and below
    assert (image[2, 11:29] > 150).all() and (image[0, 11:29] < 60).all()  # the box: blue


def test_box_outside_the_image_is_a_user_error(root: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="outside"):
        imagecache.prepare(PATHS[:1], root, tmp_path / "c.npy", size=16, boxes=[[500, 0, 10, 10]], workers=1)


def test_valid_cache_is_reused_without_decoding(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache.npy"
    first = np.array(imagecache.prepare(PATHS, root, cache, size=16, workers=1))
    stamp = cache.stat().st_mtime_ns

    def no_decoding(*args: object) -> None:
        raise AssertionError("decoded again")

    monkeypatch.setattr(imagecache, "_decode", no_decoding)
    again = imagecache.prepare(PATHS, root, cache, size=16, workers=1)
    assert np.array_equal(first, again) and cache.stat().st_mtime_ns == stamp
    with pytest.raises(AssertionError, match="decoded again"):  # other inputs: rebuilt
        imagecache.prepare(PATHS, root, cache, size=20, workers=1)


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize(("content", "reason"), [(b"not an image", "cannot decode"), (None, "not found")])
def test_bad_image_is_a_user_error_and_leaves_no_cache(
    root: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    workers: int,
    content: bytes | None,
    reason: str,
) -> None:
    monkeypatch.setattr(imagecache, "CHUNK", 2)
    if content is not None:
        (root / "a" / "bad.JPEG").write_bytes(content)
    out = tmp_path / "out"
    with pytest.raises(UserError, match=rf"{reason}.*bad\.JPEG"):
        imagecache.prepare([*PATHS, "a/bad.JPEG"], root, out / "cache.npy", size=16, workers=workers)
    assert list(out.iterdir()) == []


def test_truncated_jpeg_is_a_user_error(root: Path, tmp_path: Path) -> None:
    data = (root / "a" / "wide.JPEG").read_bytes()
    (root / "a" / "cut.JPEG").write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match=r"cut\.JPEG"):
        imagecache.prepare(["a/cut.JPEG"], root, tmp_path / "cache.npy", size=16, workers=1)


def test_same_output_with_one_or_two_workers(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(imagecache, "CHUNK", 2)
    paths = PATHS * 3
    one = imagecache.prepare(paths, root, tmp_path / "one.npy", size=24, workers=1)
    two = imagecache.prepare(paths, root, tmp_path / "two.npy", size=24, workers=2)
    assert np.array_equal(one, two)
