"""fashion-glt, the embedded default benchmark (docs/benchmarks.md §9), and its smoke-test variant.

Data: Fashion-MNIST (Xiao, Rasul & Vollgraf, 2017; MIT licence, © Zalando SE): 70,000 28×28 grey
images in 10 classes, train and test files pooled. Sample ids `train/00000`…`test/09999`; the id is
also the relative path. Labels are the Fashion-MNIST labels (all classes tie at 7,000, so class rank
= label). Attributes: per-class K-means on ImageNet-pretrained EfficientNet-Lite0 features.
Citation: H. Xiao, K. Rasul, R. Vollgraf, "Fashion-MNIST: a Novel Image Dataset for Benchmarking
Machine Learning Algorithms", arXiv:1708.07747.

`fashion-glt-mini` keeps the first 700 images per class (by sample id) with smaller constants; the
tests and `make test` use it. It is a smoke benchmark, not one to report numbers on.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache, partial
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from benchmark.benchmarks import BENCHMARKS, BenchmarkDef
from benchmark.errors import UserError
from benchmark.manifest import Manifest, write_manifest
from benchmark.provenance import package_versions
from benchmark.summary import write_summary
from splits import features
from splits.attributes import KMEANS_DESCRIPTION, attribute_lists, cluster_classes
from splits.carving import CarvingRule, carve, check_disjoint, class_infos, frequency_groups, rank_classes
from splits.features import default_cache_dir
from splits.leakage import check_leakage
from splits.profiles import exp_profile, profile_sha256

log = logging.getLogger("glt_bench")

CLASS_NAMES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
DEBIAN_ROOT = Path("/usr/share/datasets/fashion-mnist")
# sha256 of the decompressed IDX files: identifies the data whatever its source.
IDX_SHA256 = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
FEATURE_SIZE = 64  # images are upsampled to 64×64 for the extractor


def read_decompressed(path: Path) -> bytes:
    """The bytes of an IDX file, decompressed if it ends in .gz."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            return handle.read()
    except (OSError, EOFError, zlib.error) as exc:
        raise UserError(f"cannot read {path}: {exc}") from None


def parse_idx(data: bytes, expected_dims: int, name: str) -> np.ndarray:
    header = 4 + 4 * expected_dims
    if len(data) < header or data[:3] != b"\x00\x00\x08" or data[3] != expected_dims:
        raise UserError(f"{name} is not an IDX file of uint8 with {expected_dims} dimension(s)")
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(expected_dims)]
    if len(data) != header + int(np.prod(dims)):
        raise UserError(f"{name} holds {len(data) - header} bytes of data; its header promises {dims}")
    return np.frombuffer(data, np.uint8, offset=header).reshape(dims)


@dataclass(frozen=True)
class FashionSource:
    """All 70,000 images in sorted sample-id order (test/… before train/…)."""

    sample_ids: np.ndarray
    images: np.ndarray  # uint8 N×28×28
    labels: np.ndarray  # int64 N
    files: dict[str, str]  # IDX file name → sha256 of its decompressed bytes


def _find_folder(data_root: Path | None, cache_dir: Path) -> Path:
    """The first folder holding the four IDX files (docs/benchmarks.md §9 order)."""

    def complete(folder: Path) -> bool:
        return all((folder / n).exists() or (folder / f"{n}.gz").exists() for n in IDX_SHA256)

    if data_root is not None:
        for folder in (data_root, data_root / "FashionMNIST" / "raw"):
            if complete(folder):
                return folder
        raise UserError(
            f"--data-root {data_root} lacks the four Fashion-MNIST IDX files "
            f"({', '.join(IDX_SHA256)}, plain or .gz)"
        )
    if complete(DEBIAN_ROOT):
        return DEBIAN_ROOT
    downloaded = cache_dir / "fashion-mnist"
    if not complete(downloaded / "FashionMNIST" / "raw"):
        from torchvision.datasets import FashionMNIST

        log.info("Fashion-MNIST not found locally; downloading with torchvision to %s", downloaded)
        try:
            for train in (True, False):
                FashionMNIST(downloaded, train=train, download=True)
        except Exception as exc:
            raise UserError(
                f"Fashion-MNIST is not in {DEBIAN_ROOT} and the download failed ({type(exc).__name__}); "
                "install it with `apt-get install dataset-fashion-mnist` or pass --data-root DIR "
                "with the four IDX files"
            ) from None
    return downloaded / "FashionMNIST" / "raw"


def load_source(data_root: Path | None = None, cache_dir: Path | None = None) -> FashionSource:
    folder = _find_folder(data_root, cache_dir or default_cache_dir())
    arrays, files = {}, {}
    for name, expected in IDX_SHA256.items():
        path = folder / name if (folder / name).exists() else folder / f"{name}.gz"
        dims = 3 if "images" in name else 1
        data = read_decompressed(path)
        files[name] = hashlib.sha256(data).hexdigest()
        if files[name] != expected:
            raise UserError(
                f"{path} is not the Fashion-MNIST release (sha256 {files[name][:12]}…, expected "
                f"{expected[:12]}…); point --data-root at the original IDX files"
            )
        arrays[name] = parse_idx(data, dims, str(path))
    for part in ("t10k", "train"):
        if len(arrays[f"{part}-images-idx3-ubyte"]) != len(arrays[f"{part}-labels-idx1-ubyte"]):
            raise UserError(f"{folder}: {part} images and labels differ in count")
    prefixes = {"t10k": "test", "train": "train"}
    ids = [
        f"{prefixes[part]}/{i:05d}"
        for part in ("t10k", "train")
        for i in range(len(arrays[f"{part}-labels-idx1-ubyte"]))
    ]
    return FashionSource(
        sample_ids=np.array(ids),
        images=np.concatenate([arrays["t10k-images-idx3-ubyte"], arrays["train-images-idx3-ubyte"]]),
        labels=np.concatenate([arrays["t10k-labels-idx1-ubyte"], arrays["train-labels-idx1-ubyte"]]).astype(
            np.int64
        ),
        files=files,
    )


def prepare_for_extractor(batch: torch.Tensor) -> torch.Tensor:
    """uint8 N×28×28 → float RGB N×3×64×64 in [0, 255] (bilinear upsample, grey replicated)."""
    x = batch.unsqueeze(1).float()
    x = F.interpolate(x, size=(FEATURE_SIZE, FEATURE_SIZE), mode="bilinear", align_corners=False)
    return x.expand(-1, 3, -1, -1)


@dataclass(frozen=True)
class FashionVariant:
    """The constants of one fashion benchmark."""

    name: str
    per_class: int | None  # keep the first n images per class (None: all 7,000)
    rule: CarvingRule
    profile: dict[str, float]
    groups: tuple[int, int]  # how many classes are many-shot, medium-shot


def build(
    variant: FashionVariant,
    out: Path,
    *,
    data_root: Path | None = None,
    seed: int = 25,
    extractor: str = "efficientnet-lite0",
    num_clusters: int = 6,
    cache_dir: Path | None = None,
    workers: int | None = None,
) -> Manifest:
    """Load the source, extract (or reuse) features, cluster, carve, check and write the manifest.

    Clustering always runs on the CPU (10 classes take seconds), so fashion-glt is the same manifest
    on every machine."""
    if num_clusters <= 0 or num_clusters % 3:
        raise UserError(f"--num-clusters must be a positive multiple of 3, got {num_clusters}")
    extractor_def = features.EXTRACTORS.get(extractor)
    cache_dir = cache_dir or default_cache_dir()
    started = time.perf_counter()
    source = load_source(data_root, cache_dir)
    keep = np.sort(
        np.concatenate(
            [np.flatnonzero(source.labels == c)[: variant.per_class] for c in range(len(CLASS_NAMES))]
        )
    )
    ids, images, labels = source.sample_ids[keep], source.images[keep], source.labels[keep]
    log.info("source: %d images (%.1f s)", len(ids), time.perf_counter() - started)

    key = hashlib.sha256(
        repr((sorted(source.files.items()), keep.tobytes(), extractor, FEATURE_SIZE)).encode()
    ).hexdigest()[:16]
    cache_path = cache_dir / "features" / f"fashion-mnist-{extractor}-{key}.npy"
    started = time.perf_counter()
    feats = features.cached(
        cache_path, lambda: features.extract(extractor_def, images, prepare_for_extractor)
    )
    log.info("features: %s (%.1f s)", cache_path, time.perf_counter() - started)

    started = time.perf_counter()
    counts = np.bincount(labels, minlength=len(CLASS_NAMES))
    order = rank_classes(counts.tolist(), list(range(len(CLASS_NAMES))))  # all tie: rank = label
    attribute = np.full(len(ids), -1, dtype=np.int64)
    class_of = np.empty(len(ids), dtype=np.int64)
    members = [np.flatnonzero(labels == label) for label in order]
    clustered = cluster_classes(
        lambda i: feats[members[i]], len(order), num_clusters, seed, workers=workers or os.cpu_count() or 1
    )
    lists = []
    for class_id, (class_members, (clusters, _)) in enumerate(zip(members, clustered, strict=True)):
        att_lists = attribute_lists(class_members, clusters, num_clusters, seed, class_id)
        for a, members_of_a in enumerate(att_lists):
            attribute[members_of_a] = a
        class_of[class_members] = class_id
        lists.append(att_lists)
    log.info("clusters: K=%d per class (%.1f s)", num_clusters, time.perf_counter() - started)

    names = [CLASS_NAMES[label] for label in order]
    splits = carve(lists, variant.rule, seed, names)
    check_disjoint(splits)
    content = {
        sample: hashlib.sha256(image.tobytes()).hexdigest() for sample, image in zip(ids, images, strict=True)
    }
    warnings = check_leakage({name: ids[idx] for name, idx in splits.items()}, content)
    for line in warnings:
        log.warning("%s", line)
    frames = {
        name: pd.DataFrame(
            {"sample_id": ids[idx], "path": ids[idx], "label": class_of[idx], "attribute": attribute[idx]}
        )
        for name, idx in splits.items()
    }
    groups = frequency_groups(len(names), *variant.groups)
    classes = class_infos(names, groups, class_of, splits)
    info = {
        "seed": seed,
        "extractor": extractor,
        "num_clusters": num_clusters,
        "clustering": {"device": "cpu", "algorithm": KMEANS_DESCRIPTION},
        "source": {
            "description": "Fashion-MNIST train + test IDX files, pooled"
            + (f"; first {variant.per_class} images per class" if variant.per_class else ""),
            "files_sha256": source.files,
        },
        "features_sha256": hashlib.sha256(feats.tobytes()).hexdigest(),
        "profile": {**variant.profile, "counts": list(variant.rule.lt_counts),
                    "sha256": profile_sha256(list(variant.rule.lt_counts))},
        "carving": {"test_size": variant.rule.test_size, "val_size": variant.rule.val_size,
                    "bl_size": variant.rule.bl_size},
        "leakage_warnings": warnings,
        "versions": package_versions(),
    }  # fmt: skip
    manifest = write_manifest(out, benchmark=variant.name, classes=classes, splits=frames, build=info)
    write_summary(manifest, warnings)
    return manifest


_cached_source = lru_cache(maxsize=1)(load_source)  # a run loads train, val and tests from one read


def load_images(manifest: Manifest, paths: Sequence[str], data_root: Path | None) -> np.ndarray:
    """uint8 N×1×28×28 images of the given relative paths, from the same IDX files as the build."""
    source = _cached_source(data_root)
    expected = manifest.metadata["build"]["source"]["files_sha256"]
    if source.files != expected:
        raise UserError("the Fashion-MNIST files differ from those the manifest was built from")
    positions = np.searchsorted(source.sample_ids, np.asarray(paths))
    positions = np.clip(positions, 0, len(source.sample_ids) - 1)
    if not np.array_equal(source.sample_ids[positions], np.asarray(paths)):
        raise UserError("the manifest lists paths that are not Fashion-MNIST sample ids")
    return source.images[positions][:, None]


def _register(variant: FashionVariant, summary: str) -> None:
    BENCHMARKS.register(variant.name)(
        BenchmarkDef(
            name=variant.name,
            summary=summary,
            build=partial(build, variant),
            load_images=load_images,
            mean=(0.2860,),
            std=(0.3530,),
            recipe="fashion",
        )
    )


FASHION_GLT = FashionVariant(
    name="fashion-glt",
    per_class=None,
    rule=CarvingRule(test_size=60, val_size=30, lt_counts=tuple(exp_profile(10, 2707, 100)), bl_size=490),
    profile={"name": "exp", "n_max": 2707, "ratio": 100},
    groups=(3, 4),
)
FASHION_GLT_MINI = FashionVariant(
    name="fashion-glt-mini",
    per_class=700,
    rule=CarvingRule(test_size=10, val_size=5, lt_counts=tuple(exp_profile(10, 280, 10)), bl_size=100),
    profile={"name": "exp", "n_max": 280, "ratio": 10},
    groups=(3, 4),
)
_register(
    FASHION_GLT, "real Fashion-MNIST, 10 classes, attributes from EfficientNet-Lite0 clusters (default)"
)
_register(FASHION_GLT_MINI, "700 images per class of fashion-glt with smaller splits: a smoke test")
