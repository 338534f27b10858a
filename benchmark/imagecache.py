"""Decode a split's images once into a uint8 array on disk, so that training never decodes JPEGs.

Why: the original pipeline decodes every JPEG in every epoch with PIL (about 350 images/s per CPU
core, ENVIRONMENT.md §8), which leaves a ResNeXt-50 on one H100 waiting for data. glt-bench decodes
each image once with `prepare` into an N×3×S×S uint8 `.npy` file (S = 128 by default), opened as a
read-only memory map; the engine then does the random-resized crops, flips and normalisation on the
GPU in batches.

What is stored: each image is cut to its centre square, which is resized to S×S with Pillow's
antialiased bilinear filter (the filter of torchvision's `Resize`). An object crop (`bbox` = [x, y,
w, h] in pixels, clipped to the image) is instead padded with black to a centred square, as the
original MSCOCO-GLT crops were saved (docs/benchmarks.md §4), and that square is resized to S×S. JPEGs are
first decoded at a reduced scale (`Image.draft`: 1/2, 1/4 or 1/8 in the DCT domain, never below S
on the square's side), which is several times faster than decoding at full size. Grey-scale,
palette and alpha images are converted to RGB.

How it relates to the original transforms:
- test/val `Resize(128) + CenterCrop(112)` equals a 112 centre crop of the 128 cache, up to the
  sub-pixel rounding of the resize;
- train `RandomResizedCrop(112)` samples its boxes from the 128×128 centre square instead of the full
  image: a deliberate approximation (the strips beyond the centre square of a non-square image are
  never seen, and scales are relative to the square), traded for training without decoding.

A cache is valid for the same relative paths, boxes, S and Pillow version; it is keyed by a JSON
sidecar (`<cache>.json`), not by the files' contents or the data root.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Sequence
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import PIL
from PIL import Image
from tqdm import tqdm

from benchmark.atomic import atomic_path, write_json
from benchmark.errors import UserError

FORMAT_VERSION = 1
CHUNK = 64  # images per pool task

Box = Sequence[float]


def _region(box: Box | None, width: int, height: int, path: Path) -> tuple[float, float, float, float]:
    """The (left, top, right, bottom) pixels to keep: the box clipped to the image, or the image."""
    if box is None:
        return 0.0, 0.0, float(width), float(height)
    x, y, w, h = (float(v) for v in box)
    left, top, right, bottom = max(x, 0.0), max(y, 0.0), min(x + w, width), min(y + h, height)
    if right - left < 1 or bottom - top < 1:
        raise UserError(
            f"box {list(box)} of {path} lies outside its {width}×{height} image; fix the box in the manifest"
        )
    return left, top, right, bottom


def load_image(path: Path, size: int, box: Box | None = None, fill: float = 1.0) -> np.ndarray:
    """A centred square resized to size×size, as uint8 3×S×S: the image's largest square, or the box
    padded with black to a square (the part of the square outside the box stays black).

    `fill` < 1 keeps only that share of the square's side: Resize(r) + CenterCrop(c) is fill = c/r.
    """
    with Image.open(path) as image:
        width, height = image.size
        left, top, right, bottom = _region(box, width, height, path)
        side = (min if box is None else max)(right - left, bottom - top) * fill
        # Decode at the strongest DCT reduction (1/2, 1/4, 1/8) that keeps the square's side ≥ size.
        drafted = image.draft("RGB", (math.ceil(width * size / side), math.ceil(height * size / side)))
        scale = drafted[1][2] / width if drafted else 1.0
        x0, y0 = (left + right - side) / 2, (top + bottom - side) / 2  # the square's corner
        shown = max(x0, left), max(y0, top), min(x0 + side, right), min(y0 + side, bottom)
        to_out = size / side
        extent = [max(1, round((shown[i + 2] - shown[i]) * to_out)) for i in (0, 1)]
        part = image.convert("RGB").resize(
            tuple(extent), Image.Resampling.BILINEAR, box=tuple(v * scale for v in shown)
        )
        square = Image.new("RGB", (size, size))
        square.paste(part, (round((shown[0] - x0) * to_out), round((shown[1] - y0) * to_out)))
    return np.asarray(square).transpose(2, 0, 1)


def _decode(root: Path, relative: str, size: int, box: Box | None, fill: float = 1.0) -> np.ndarray:
    path = root / relative
    try:
        return load_image(path, size, box, fill)
    except FileNotFoundError:
        raise UserError(
            f"image not found: {path}; check that the data root {root} holds the dataset"
        ) from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise UserError(
            f"cannot decode image {path} ({error}); replace it with an intact copy from the dataset"
        ) from None


class _Writer:
    """Decodes ranges of images straight into the (shared, file-backed) output array."""

    def __init__(
        self, target: Path, root: Path, paths: Sequence[str], boxes: Sequence[Box | None], size: int
    ) -> None:
        self.out = np.load(target, mmap_mode="r+")
        self.root, self.paths, self.boxes, self.size = root, paths, boxes, size

    def __call__(self, chunk: tuple[int, int]) -> int:
        for i in range(*chunk):
            self.out[i] = _decode(self.root, self.paths[i], self.size, self.boxes[i])
        return chunk[1] - chunk[0]


_writer: _Writer | None = None  # one per pool worker process


def _start_worker(
    target: Path, root: Path, paths: Sequence[str], boxes: Sequence[Box | None], size: int
) -> None:
    global _writer
    _writer = _Writer(target, root, paths, boxes, size)


def _run_chunk(chunk: tuple[int, int]) -> int:
    assert _writer is not None
    return _writer(chunk)


def _signature(paths: Sequence[str], boxes: Sequence[Box | None], size: int) -> dict[str, object]:
    listing = [[p, None if b is None else [float(v) for v in b]] for p, b in zip(paths, boxes, strict=True)]
    digest = hashlib.sha256(json.dumps(listing, separators=(",", ":")).encode()).hexdigest()
    return {
        "format": FORMAT_VERSION,
        "paths_sha256": digest,
        "count": len(paths),
        "size": size,
        "resample": "bilinear",
        "pillow": PIL.__version__,
    }


def _sidecar(cache: Path) -> Path:
    return cache.with_name(cache.name + ".json")


def _open_valid(cache: Path, signature: dict[str, object]) -> np.ndarray | None:
    try:
        if json.loads(_sidecar(cache).read_text(encoding="utf-8")) != signature:
            return None
        images = np.load(cache, mmap_mode="r")
    except (OSError, ValueError):
        return None
    size = signature["size"]
    if images.dtype != np.uint8 or images.shape != (signature["count"], 3, size, size):
        return None
    return images


def prepare(
    paths: Sequence[str],
    root: str | Path,
    cache: str | Path,
    *,
    size: int = 128,
    boxes: Sequence[Box | None] | None = None,
    workers: int | None = None,
) -> np.ndarray:
    """The images at `root/paths` as a read-only N×3×S×S uint8 memory map, decoding them only once.

    `cache` is the `.npy` file to write (or reuse when its sidecar matches the inputs); `workers`
    decoding processes (default: one per CPU) fill it in place. Bad images raise UserError and leave
    no cache behind.
    """
    root, cache = Path(root), Path(cache)
    if not paths:
        raise UserError(f"no images to prepare for {cache}; the split is empty")
    boxes = [None] * len(paths) if boxes is None else list(boxes)
    signature = _signature(paths, boxes, size)
    images = _open_valid(cache, signature)
    if images is not None:
        return images
    _sidecar(cache).unlink(missing_ok=True)
    cache.unlink(missing_ok=True)
    chunks = [(start, min(start + CHUNK, len(paths))) for start in range(0, len(paths), CHUNK)]
    workers = min(workers or os.cpu_count() or 1, len(chunks))
    with atomic_path(cache) as tmp:
        np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(paths), 3, size, size)).flush()
        args = (tmp, root, paths, boxes, size)
        with tqdm(total=len(paths), unit="img", desc=f"prepare {cache.name}") as progress:
            if workers == 1:
                for done in map(_Writer(*args), chunks):
                    progress.update(done)
            else:
                with get_context("fork").Pool(workers, _start_worker, args) as pool:
                    for done in pool.imap_unordered(_run_chunk, chunks):
                        progress.update(done)
    write_json(_sidecar(cache), signature)
    return np.load(cache, mmap_mode="r")


def cached_split(
    name: str,
    paths: Sequence[str],
    root: Path,
    cache_dir: Path,
    *,
    size: int = 128,
    boxes: Sequence[Box] | None = None,
) -> np.ndarray:
    """A split's images via `prepare`, cached under `cache_dir/images` by a key of its paths (and
    boxes), opened copy-on-write: `torch.from_numpy` gets a writable array and the file stays intact."""
    boxes = None if boxes is None else [[int(v) for v in box] for box in boxes]
    key = hashlib.sha256(json.dumps([list(paths), boxes]).encode()).hexdigest()[:16]
    cache = Path(cache_dir) / "images" / f"{name}-{key}-{size}.npy"
    prepare(paths, root, cache, size=size, boxes=boxes)
    return np.load(cache, mmap_mode="c")
