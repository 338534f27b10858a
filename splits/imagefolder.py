"""imagefolder-glt: the ImageNet-GLT construction on any ImageFolder tree (bring your own dataset).

`--data-root DIR` holds one sub-folder per class (or `DIR/train/<class>/…`); any number of classes.
The build is imagenet-glt's (docs/benchmarks.md): per-class K-means on pretrained features merged by
size rank into 3 attributes, classes ranked by image count (ties by a seeded hash of the name),
groups many/medium/few = the first 40%, the next 45%, the last 15% of ranks, 7:2:1 over attributes,
Test-GBL, Test-CBL, Test-GLT, Val and Train carved in the original's order.

What is scaled: ImageNet's per-class sizes assume classes of about 1,300 images. Here every size is
multiplied by s = (median class size) / 1,300: Test-GBL per class and attribute TEST_SIZE =
max(4, round(20·s)), VAL_SIZE = max(4, round(10·s)), the BL pool max(10, round(145·s)), and the
default Pareto profile's n_max, σ and n_min (1,500, 993.25 and 18 at s = 1; n_min at least 1).
`--test-size`, `--val-size`, `--profile` and `--counts-file` override them. The summary states the
factor and the sizes used.

`--name NAME` is the benchmark's name: the manifest is written to `<manifests>/NAME` and carries it,
and `glt-bench run --benchmark NAME` trains on it (images read from `--data-root`).
"""

from __future__ import annotations

import re
import statistics
from dataclasses import replace
from pathlib import Path

from benchmark.benchmarks import BENCHMARKS, BenchmarkDef
from benchmark.errors import UserError
from benchmark.manifest import Manifest
from splits import features as feats
from splits.imagenet import DEFAULT_PROFILES, ImageNetVariant, load_images
from splits.imagenet import build as build_imagenet

NAME = "imagefolder-glt"
REFERENCE_CLASS_SIZE = 1300  # ILSVRC-2012's usual class size, which the original constants assume
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
REFERENCE = ImageNetVariant(NAME)


def scale_variant(variant: ImageNetVariant, counts: list[int]) -> ImageNetVariant:
    """The ImageNet-GLT constants scaled by the median class size over 1,300."""
    median = statistics.median(counts)
    s = median / REFERENCE_CLASS_SIZE
    pareto = DEFAULT_PROFILES["pareto"]
    profile = {
        "alpha": pareto["alpha"],
        "sigma": round(pareto["sigma"] * s, 4),
        "n_min": max(1, round(pareto["n_min"] * s)),
        "n_max": max(2, round(pareto["n_max"] * s)),
    }
    exp = {
        "n_max": max(2, round(DEFAULT_PROFILES["exp"]["n_max"] * s)),
        "ratio": DEFAULT_PROFILES["exp"]["ratio"],
    }
    sizes = {
        "test_size": max(4, round(REFERENCE.test_size * s)),
        "val_size": max(4, round(REFERENCE.val_size * s)),
        "bl_size": max(10, round(REFERENCE.bl_size * s)),
    }
    scaled = {"factor": round(s, 6), "median_class_size": median, **sizes, "pareto": profile, "exp": exp}
    note = (
        f"note: sizes scaled by s = median class size {median:g} / {REFERENCE_CLASS_SIZE} = {s:.4g}: "
        f"test size {sizes['test_size']}, val size {sizes['val_size']}, "
        f"BL pool {sizes['bl_size']} per class, pareto(α {profile['alpha']}, σ {profile['sigma']}, "
        f"n_min {profile['n_min']}, n_max {profile['n_max']}) (command-line options replace these)"
    )
    return replace(
        variant,
        **sizes,
        profiles={"pareto": profile, "exp": exp},
        scaled=None,
        extra={"scaled": scaled, "based_on": NAME},
        notes=(note,),
    )


def build(
    out: Path,
    *,
    name: str | None = None,
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
    """Build the GLT manifests of an ImageFolder tree under the benchmark name `name`."""
    if name is None:
        raise UserError(
            f"{NAME} needs --name NAME: the benchmark's name for `glt-bench run --benchmark NAME`"
        )
    if not NAME_PATTERN.fullmatch(name):
        raise UserError(f"--name {name!r}: use lower-case letters, digits, '.', '_' or '-' (at most 64)")
    if name in BENCHMARKS.names() and name != NAME:
        raise UserError(f"--name {name!r} is a built-in benchmark; choose another name")
    if data_root is None:
        raise UserError(f"{NAME} needs --data-root DIR: a folder with one sub-folder of images per class")
    variant = ImageNetVariant(name, scaled=scale_variant)
    return build_imagenet(
        variant, out, data_root=data_root, seed=seed, extractor=extractor, weights=weights,
        num_clusters=num_clusters, profile=profile, counts_file=counts_file, cache_dir=cache_dir,
        device=device, workers=workers, features=features, test_size=test_size, val_size=val_size,
    )  # fmt: skip


BENCHMARKS.register(NAME)(
    BenchmarkDef(
        name=NAME,
        summary="any ImageFolder tree (--name): the ImageNet-GLT construction, sizes scaled",
        build=build,
        load_images=load_images,
        mean=feats.IMAGENET_MEAN,
        std=feats.IMAGENET_STD,
        recipe="default",
    )
)
