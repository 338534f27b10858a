"""imagenet-glt: ImageNet-GLT rebuilt from the ILSVRC-2012 train folder (docs/benchmarks.md §3, §7, §8).

Data: ILSVRC-2012 (ImageNet-1k), http://image-net.org, under its terms of access (non-commercial
research). `--data-root DIR` is either the train folder itself (one sub-folder per WordNet id) or a
folder holding `train/` (used) and `val/` (ignored: the original carves every split from the train
folder, and pooling val would change the class counts). Sample ids are the relative paths of the
images under DIR (`n01440764/n01440764_10026.JPEG`, or `train/n01440764/…` in the second layout),
listed and sorted whatever the file system's order. Labels: class rank by image count (ties by a
seeded hash of the WordNet id, never by the id itself); groups by rank: the first 40% many, the next
45% medium, the rest few (400/450/150 of 1000). Attributes: per-class K-means on pretrained
features (default `torchvision:resnet50`), merged by size rank; classes cluster in `--workers`
processes on the CPU, or one after another on CUDA. Class profile: `pareto(6, 993.25, 18, 1500)`
unless `--profile`/`--counts-file` says otherwise; the LT family keeps the original's truncation
rule (attribute targets from the profile count itself, each list cut to what it holds).

Order of work: every option that needs no data is checked first, then the listing (or the features
file's paths) with the class sizes, profile and source findings, and only then are files hashed,
features extracted and classes clustered. `--features FILE` replaces extraction by precomputed
features (splits.features.FeatureFile: memory-mapped, never loaded whole): an `.npz` with arrays
`paths` (str, N) and `features` (float, N×D), or a `.parquet` with a `path` column and a list column
`features`. Paths are relative to DIR as above; rows may come in any order. Without `--data-root`
the file's paths are the listing; with it they must match DIR's listing exactly, and every image
the splits use is decode-checked.

Citation: O. Russakovsky et al., "ImageNet Large Scale Visual Recognition Challenge", IJCV 2015;
K. Tang et al., "Invariant Feature Learning for Generalized Long-Tailed Classification", ECCV 2022.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from benchmark import imagecache
from benchmark.benchmarks import BENCHMARKS, BenchmarkDef
from benchmark.errors import UserError
from benchmark.manifest import Manifest, write_manifest
from benchmark.provenance import package_versions
from benchmark.summary import write_summary
from splits import features as feats
from splits.attributes import KMEANS_DESCRIPTION, attribute_lists, cluster_classes
from splits.carving import (
    CarvingRule,
    carve,
    check_disjoint,
    class_infos,
    frequency_groups,
    rank_classes,
    seeded_tie_keys,
)
from splits.doctor import decode_check, imagenet_findings
from splits.leakage import check_leakage, file_digests, file_sha256
from splits.profiles import check_profile_options, parse_profile, profile_sha256, read_counts_file

log = logging.getLogger("glt_bench")

IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")
IMAGE_SIZE = 128  # stored training size: Resize(128) + CenterCrop(112) at test time (docs/benchmarks.md §6)
GROUP_SHARES = (0.40, 0.45)  # many, medium: 400 and 450 of 1000 classes
DEFAULT_PROFILES = {
    "pareto": {"alpha": 6, "sigma": 993.25, "n_min": 18, "n_max": 1500},
    "exp": {"n_max": 1800, "ratio": 20},  # the original's unused `exp` option: ⌊1800·0.05^(c/999)⌋
}


@dataclass(frozen=True)
class ImageNetVariant:
    """The carving constants of one ImageNet benchmark (docs/benchmarks.md §3)."""

    name: str
    test_size: int = 20
    val_size: int = 10
    bl_size: int = 145
    default_profile: str = "pareto"
    profiles: dict[str, dict[str, float]] = field(default_factory=lambda: DEFAULT_PROFILES)
    doctor: Callable[[list[str], list[int]], list[str]] | None = None  # source findings (warnings)
    # A benchmark whose constants follow its data (imagefolder-glt): the variant for these class counts.
    scaled: Callable[[ImageNetVariant, list[int]], ImageNetVariant] | None = None
    extra: dict[str, object] = field(default_factory=dict)  # more build metadata (what was scaled)
    notes: tuple[str, ...] = ()  # lines for the summary


@dataclass(frozen=True)
class Listing:
    """The images used, sorted by relative path, and where they were found."""

    paths: np.ndarray  # relative to the data root, sorted
    description: str


def _is_image(entry: os.DirEntry) -> bool:
    return entry.is_file() and not entry.name.startswith(".") and entry.name.lower().endswith(IMAGE_SUFFIXES)


def _class_dirs(folder: Path) -> list[os.DirEntry]:
    with os.scandir(folder) as entries:
        return [e for e in entries if e.is_dir() and not e.name.startswith(".")]


def list_images(data_root: Path) -> Listing:
    """Every image of the train folder (DIR or DIR/train), sorted by relative path."""
    if not data_root.is_dir():
        raise UserError(f"--data-root {data_root} is not a folder; give the ILSVRC-2012 train folder")
    subdirs = {e.name for e in _class_dirs(data_root)}
    if "train" in subdirs:
        prefix, folder = "train/", data_root / "train"
        ignored = " (val/ ignored: every split comes from the train folder)" if "val" in subdirs else ""
        description = f"ImageFolder layout: {data_root}/train{ignored}"
    else:
        prefix, folder = "", data_root
        description = f"class-folder layout: {data_root}"
    paths, classes = [], 0
    for entry in _class_dirs(folder):
        with os.scandir(entry.path) as files:
            names = [f.name for f in files if _is_image(f)]
        if not names:
            raise UserError(f"class folder {entry.path} holds no images ({'/'.join(IMAGE_SUFFIXES)})")
        paths += [f"{prefix}{entry.name}/{name}" for name in names]
        classes += 1
    if not paths:
        raise UserError(f"{folder} has no class sub-folders; give the ILSVRC-2012 train folder")
    log.info("source: %s, %d classes, %d images", description, classes, len(paths))
    return Listing(np.sort(np.array(paths)), description)


def class_members(paths: np.ndarray) -> dict[str, np.ndarray]:
    """Each class's sample indices (ascending), the class being the folder (WordNet id) of the path."""
    listed = pa.array(paths, type=pa.large_string())  # one chunk, however many paths
    flat = pc.invert(pc.match_substring(listed, "/")).to_numpy(zero_copy_only=False)
    if flat.any():
        raise UserError(f"path {paths[np.argmax(flat)]} has no class folder; give paths as WNID/FILE")
    encoded = pc.replace_substring_regex(listed, pattern=r"/[^/]*$", replacement="").dictionary_encode()
    dirs = encoded.dictionary.to_pylist()
    names, folder_class = np.unique([d.rpartition("/")[2] for d in dirs], return_inverse=True)
    codes = folder_class[encoded.indices.to_numpy()]
    grouped = np.split(np.argsort(codes, kind="stable"), np.cumsum(np.bincount(codes))[:-1])
    return dict(zip(names.tolist(), grouped, strict=True))


def _profile(variant: ImageNetVariant, profile: str | None, counts_file: Path | None, num_classes: int):
    if counts_file is not None:
        counts = read_counts_file(counts_file, num_classes)
        return counts, {"name": "counts", "file": Path(counts_file).name}
    return parse_profile(profile or variant.default_profile, num_classes, variant.profiles)


def _sha256_lines(lines: Sequence[str]) -> str:
    return hashlib.sha256("".join(f"{line}\n" for line in lines).encode()).hexdigest()


def check_options(
    num_clusters: int,
    test_size: int | None,
    val_size: int | None,
    profile: str | None,
    counts_file: Path | None,
) -> None:
    """The checks that need no data: run before any listing, hashing or extraction."""
    if num_clusters <= 0 or num_clusters % 3:
        raise UserError(f"--num-clusters must be a positive multiple of 3, got {num_clusters}")
    if test_size is not None and test_size < 4:
        raise UserError(
            f"--test-size must be at least 4 (Test-CBL takes ⌊3·size/10⌋ ≥ 1 per 7:2:1), got {test_size}"
        )
    check_profile_options(profile, counts_file, DEFAULT_PROFILES)
    if val_size is not None and val_size < 4:
        raise UserError(
            f"--val-size must be at least 4 (Val-CBL takes ⌊3·size/10⌋ ≥ 1 per 7:2:1), got {val_size}"
        )


def check_class_sizes(members: dict[str, np.ndarray], num_clusters: int) -> None:
    """Every class must hold at least K images to form K clusters."""
    name = min(members, key=lambda n: (len(members[n]), n))
    if len(members[name]) < num_clusters:
        raise UserError(
            f"class {name!r} has {len(members[name])} images, fewer than --num-clusters {num_clusters}; "
            "lower --num-clusters or remove the class folder"
        )


def build(
    variant: ImageNetVariant,
    out: Path,
    *,
    data_root: Path | None = None,
    seed: int = 25,
    extractor: str = "torchvision:resnet50",
    weights: Path | None = None,
    num_clusters: int = 6,
    profile: str | None = None,
    counts_file: Path | None = None,
    cache_dir: Path | None = None,
    device: str | None = None,
    workers: int | None = None,
    features: Path | None = None,
    test_size: int | None = None,
    val_size: int | None = None,
) -> Manifest:
    """Check the options, list the images (or read --features), extract features, cluster, carve,
    check and write."""
    check_options(num_clusters, test_size, val_size, profile, counts_file)
    if data_root is None and features is None:
        raise UserError(
            f"{variant.name} needs --data-root DIR (the ILSVRC-2012 train folder) or --features FILE"
        )
    cache_dir = cache_dir or feats.default_cache_dir()
    workers = workers or os.cpu_count() or 1
    extractor_def = feats.resolve(extractor, weights) if features is None else None
    cluster_device = feats.resolve_device(device).type
    listing = list_images(Path(data_root)) if data_root is not None else None
    feature_file = feats.FeatureFile(Path(features), cache_dir) if features is not None else None
    try:
        return _build(
            variant, out, listing=listing, feature_file=feature_file, data_root=data_root, seed=seed,
            extractor=extractor, extractor_def=extractor_def, num_clusters=num_clusters, profile=profile,
            counts_file=counts_file, cache_dir=cache_dir, device=device, cluster_device=cluster_device,
            workers=workers, test_size=test_size, val_size=val_size,
        )  # fmt: skip
    finally:
        if feature_file is not None:
            feature_file.close()


def _build(
    variant: ImageNetVariant, out: Path, *, listing: Listing | None, feature_file: feats.FeatureFile | None,
    data_root: Path | None, seed: int, extractor: str, extractor_def: feats.Extractor | None,
    num_clusters: int, profile: str | None, counts_file: Path | None, cache_dir: Path, device: str | None,
    cluster_device: str, workers: int, test_size: int | None, val_size: int | None,
) -> Manifest:  # fmt: skip
    if feature_file is not None:
        paths = feature_file.paths
        if listing is not None and not np.array_equal(paths, listing.paths):
            extra = np.setxor1d(paths, listing.paths)
            raise UserError(
                f"--features {feature_file.path} does not list the images of {data_root}: "
                f"{len(extra)} path(s) differ, e.g. {extra[0]}"
            )
        source = listing.description if listing else f"paths of --features {feature_file.path.name}"
    else:
        paths, source = listing.paths, listing.description
    members = class_members(paths)
    names = sorted(members)
    num_classes = len(names)
    check_class_sizes(members, num_clusters)
    sizes = [len(members[n]) for n in names]
    if variant.scaled is not None:
        variant = variant.scaled(variant, sizes)
    test_size, val_size = test_size or variant.test_size, val_size or variant.val_size
    lt_counts, profile_info = _profile(variant, profile, counts_file, num_classes)
    findings = variant.doctor(names, sizes) if variant.doctor else []
    for line in findings:
        log.warning("%s", line)

    digests = file_digests(Path(data_root), listing.paths.tolist(), workers) if listing else None
    started = time.perf_counter()
    if feature_file is not None:
        feature_file.check_finite()
        features_info = {"file": feature_file.path.name, "sha256": file_sha256(feature_file.path)}

        def class_features(index: int) -> np.ndarray:
            return feature_file.rows(members[names[index]])
    else:
        listed = {name: paths[idx].tolist() for name, idx in members.items()}
        folder = feats.cache_folder(cache_dir, extractor_def, device)
        per_class = feats.extract_files(
            extractor_def, Path(data_root),
            {name: (listed[name], feats.class_key(listed[name], digests)) for name in listed},
            folder, device=device, workers=workers,
        )  # fmt: skip
        features_info = {
            "extractor": extractor,
            "weights_sha256": extractor_def.weights_sha256 or "default",
            "input": f"resize {extractor_def.resize}, centre crop {extractor_def.crop}",
            "cache": folder.name,
        }

        def class_features(index: int) -> np.ndarray:
            return per_class[names[index]]

    log.info("features: %d classes (%.1f s)", num_classes, time.perf_counter() - started)

    started = time.perf_counter()
    clustered = cluster_classes(
        class_features, num_clusters=num_clusters, count=num_classes, seed=seed, device=cluster_device,
        workers=workers,
    )  # fmt: skip
    features_info["features_sha256"] = hashlib.sha256("".join(d for _, d in clustered).encode()).hexdigest()
    order = rank_classes(sizes, seeded_tie_keys(names, seed))
    attribute = np.full(len(paths), -1, dtype=np.int64)
    class_of = np.full(len(paths), -1, dtype=np.int64)
    lists = []
    for class_id, source_index in enumerate(order):
        name = names[source_index]
        att_lists = attribute_lists(members[name], clustered[source_index][0], num_clusters, seed, class_id)
        for a, chosen in enumerate(att_lists):
            attribute[chosen] = a
        class_of[members[name]] = class_id
        lists.append(att_lists)
    log.info(
        "clusters: K=%d for %d classes on %s (%.1f s)",
        num_clusters, num_classes, cluster_device, time.perf_counter() - started,
    )  # fmt: skip

    rule = CarvingRule(test_size, val_size, tuple(lt_counts), variant.bl_size)
    ranked = [names[i] for i in order]
    splits = carve(lists, rule, seed, ranked)
    check_disjoint(splits)
    warnings = check_leakage(
        {name: paths[idx] for name, idx in splits.items()},
        dict(zip(paths.tolist(), (digests[p] for p in paths.tolist()), strict=True)) if digests else None,
    )
    if digests is None:
        warnings.append("note: no --data-root, so identical files across train and test were not looked for")
    if feature_file is None:
        decoded = "every image was decoded during feature extraction"
    elif data_root is not None:
        used = paths[np.unique(np.concatenate(list(splits.values())))]
        decode_check(Path(data_root), used.tolist(), workers)
        decoded = f"the {len(used)} images the splits use were decode-checked"
    else:
        decoded = "images were NOT decoded (no --data-root): a corrupt file shows only at training time"
        warnings.append(f"note: {decoded}")
    for line in warnings:
        log.warning("%s", line)
    frames = {
        name: pd.DataFrame(
            {"sample_id": paths[idx], "path": paths[idx], "label": class_of[idx], "attribute": attribute[idx]}
        )
        for name, idx in splits.items()
    }
    many = round(GROUP_SHARES[0] * num_classes)
    groups = frequency_groups(num_classes, many, round(sum(GROUP_SHARES) * num_classes) - many)
    infos = class_infos(ranked, groups, class_of, splits)
    info = {
        "seed": seed,
        "num_clusters": num_clusters,
        "clustering": {"device": cluster_device, "algorithm": KMEANS_DESCRIPTION},
        "source": {
            "description": source,
            "images": len(paths),
            "classes": num_classes,
            "listing_sha256": _sha256_lines([f"{p}\t{digests[p]}" for p in paths.tolist()]) if digests else
                              _sha256_lines(paths.tolist()),
            "decoded": decoded,
            "findings": findings,
        },
        "features": features_info,
        "profile": {**profile_info, "counts": list(lt_counts), "sha256": profile_sha256(list(lt_counts))},
        "carving": {"test_size": test_size, "val_size": val_size, "bl_size": variant.bl_size},
        **variant.extra,
        "leakage_warnings": warnings,
        "versions": package_versions(),
    }  # fmt: skip
    manifest = write_manifest(out, benchmark=variant.name, classes=infos, splits=frames, build=info)
    write_summary(manifest, [*variant.notes, *warnings])
    return manifest


def load_images(manifest: Manifest, paths: Sequence[str], data_root: Path | None) -> np.ndarray:
    """uint8 N×3×128×128 images, decoded once into the image cache (a copy-on-write memory map)."""
    if data_root is None:
        raise UserError(f"{manifest.benchmark} needs --data-root DIR: the folder the manifest was built from")
    return imagecache.cached_split(
        manifest.benchmark, paths, data_root, feats.default_cache_dir(), size=IMAGE_SIZE
    )


IMAGENET_GLT = ImageNetVariant("imagenet-glt", doctor=imagenet_findings)
BENCHMARKS.register(IMAGENET_GLT.name)(
    BenchmarkDef(
        name=IMAGENET_GLT.name,
        summary="ILSVRC-2012 train folder, 1000 classes, attributes from per-class clusters (needs the data)",
        build=partial(build, IMAGENET_GLT),
        load_images=load_images,
        mean=feats.IMAGENET_MEAN,
        std=feats.IMAGENET_STD,
        recipe="default",
    )
)
