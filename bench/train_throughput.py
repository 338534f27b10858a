"""Training throughput end to end from JPEG files: glt-bench's engine against the original pipeline.

ResNeXt-50 32x4d (1000 classes) at 112 px, batch 256, on a generated ImageNet-like JPEG tree
(bench/jpeg_tree.py), in one run:
(b) the original way: a Dataset that decodes each JPEG with PIL, then RandomResizedCrop(112, scale
    (0.08, 1)), flip, ToTensor and Normalize in 4 DataLoader workers; fp32 (PyTorch's default math
    flags), no channels-last; SGD lr 0.1, momentum 0, weight decay 5e-4, cross-entropy. Images/s over
    the steps after a warm-up (the network is warmed up on a synthetic batch first, and the first
    2 × workers steps, which the workers prepared ahead, are not timed).
(a) glt-bench: `benchmark.imagecache.prepare` decodes the JPEGs once into a 128 px uint8 cache (its
    rate is reported apart: a one-time cost per split), then `benchmark.engine.train` runs method `ce`
    with recipe `original` on it (crops, flips, normalisation on the device; bf16 and torch.compile on
    CUDA). Images/s over the epochs after the first, which includes compilation and cuDNN autotuning.
Both read the freshly written files from the page cache. Targets (issue 4, one H100): (a) ≥ 10,000
img/s and (a)/(b) ≥ 9×. On the CPU the bench runs a reduced size; its figures are for the record.

Run from the repository root: `PYTHONPATH=. python3 bench/train_throughput.py [--out FILE.json]`.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T

import baselines  # noqa: F401  (registers the methods)
from baselines.base import METHODS
from bench.jpeg_tree import generate
from benchmark import engine, imagecache
from benchmark.atomic import write_json
from benchmark.models import BACKBONES
from benchmark.recipes import RECIPES
from benchmark.transforms import Pipeline

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # ImageNet (docs/benchmarks.md §6)
NUM_CLASSES, TREE_CLASSES = 1000, 64
TARGETS = {"ours_img_s": 10_000, "ratio": 9.0}  # one H100
REFERENCES = {  # measured on one H100 (issue 4, ENVIRONMENT.md §8)
    "compute_only_compiled_bf16_img_s": 13_646,
    "compute_only_bf16_img_s": 10_868,
    "original_way_img_s": 1_113,
    "original_way_16_workers_img_s": 2_119,
}


@dataclass
class Config:
    device: str
    images: int
    crop: int
    batch: int
    epochs: int
    compile: bool
    workers: int
    loader_workers: int

    @property
    def cache_size(self) -> int:
        """The stored size: 128 for a 112 crop, as Resize(128) + CenterCrop(112)."""
        return round(self.crop * 128 / 112)


class JpegFolder(Dataset):
    """The original loader: decode with PIL and transform, one image per call, in loader workers."""

    def __init__(self, root: Path, paths: list[str], labels: np.ndarray, transform: T.Compose) -> None:
        self.root, self.paths, self.labels, self.transform = root, paths, labels, transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        with Image.open(self.root / self.paths[i]) as image:
            return self.transform(image.convert("RGB")), int(self.labels[i])


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def original_way(config: Config, root: Path, paths: list[str], labels: np.ndarray) -> float:
    """(b): images/s of the original pipeline over the steps after the warm-up."""
    device = torch.device(config.device)
    transform = T.Compose(
        [
            T.RandomResizedCrop(config.crop, scale=(0.08, 1.0)),
            T.RandomHorizontalFlip(),
            T.ToTensor(),
            T.Normalize(MEAN, STD),
        ]
    )
    loader = DataLoader(
        JpegFolder(root, paths, labels, transform),
        batch_size=config.batch,
        shuffle=True,
        num_workers=config.loader_workers,
        pin_memory=device.type == "cuda",
        drop_last=True,
    )
    model = torchvision.models.resnext50_32x4d(num_classes=NUM_CLASSES).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.0, weight_decay=5e-4)

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        loss = torch.nn.functional.cross_entropy(model(x.to(device, non_blocking=True)), y.to(device))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        _sync(device)

    synthetic = torch.randn(config.batch, 3, config.crop, config.crop)
    for _ in range(2):
        step(synthetic, torch.zeros(config.batch, dtype=torch.int64))
    stamps = []
    for x, y in loader:
        step(x, y)
        stamps.append(time.perf_counter())
    skip = min(2 * config.loader_workers, len(stamps) // 2)
    return (len(stamps) - 1 - skip) * config.batch / (stamps[-1] - stamps[skip])


def ours(
    config: Config, root: Path, paths: list[str], labels: np.ndarray, cache: Path
) -> tuple[float, float]:
    """(a): images/s of glt-bench's engine after its first epoch, and the one-time prepare rate."""
    started = time.perf_counter()
    stored = imagecache.prepare(paths, root, cache, size=config.cache_size, workers=config.workers)
    prepare_rate = len(paths) / (time.perf_counter() - started)
    with warnings.catch_warnings():  # the engine only reads the read-only memory map
        warnings.simplefilter("ignore", UserWarning)
        images = torch.from_numpy(stored)
    targets = torch.from_numpy(labels)
    val = min(len(paths), 2 * config.batch)
    recipe = replace(
        RECIPES.get("original"), epochs=config.epochs, batch_size=config.batch, image_size=config.crop
    )
    method = METHODS.get("ce")({}, np.bincount(labels, minlength=NUM_CLASSES))
    model = method.build_model(BACKBONES.get(recipe.backbone)(3), NUM_CLASSES)
    outcome = engine.train(
        method,
        model,
        engine.ImageSet(images, targets),
        engine.ImageSet(images[:val], targets[:val]),
        recipe,
        Pipeline(recipe, MEAN, STD, torch.device(config.device)),
        seed=0,
        compile=config.compile,
    )
    timed = outcome.val_history[1:]
    rate = sum(e["images"] for e in timed) / sum(e["epoch_seconds"] for e in timed)
    return rate, prepare_rate


def device_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return f"CPU ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads)"


def measure(config: Config) -> dict[str, object]:
    """Generate the JPEG tree, run (b) then (a) on it, and collect the figures."""
    with tempfile.TemporaryDirectory(prefix="glt-bench-train-") as tmp:
        root = Path(tmp) / "jpeg"
        started = time.perf_counter()
        per_class = config.images // TREE_CLASSES
        paths, labels = generate(root, classes=TREE_CLASSES, per_class=per_class, workers=config.workers)
        generate_seconds = time.perf_counter() - started
        kilobytes = np.mean([os.path.getsize(root / p) for p in paths]) / 1000
        original = original_way(config, root, paths, labels)  # first: the engine sets TF32/cuDNN flags
        engine_rate, prepare_rate = ours(config, root, paths, labels, Path(tmp) / "cache.npy")
    return {
        "config": {**asdict(config), "images": len(paths), "cache_size": config.cache_size},
        "reduced_cpu_size": not config.device.startswith("cuda"),
        "device": device_name(config.device),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "jpeg_kb_mean": round(float(kilobytes), 1),
        "generate_seconds": round(generate_seconds, 1),
        "ours_img_s": round(engine_rate, 1),
        "original_img_s": round(original, 1),
        "ratio": round(engine_rate / original, 2),
        "prepare_img_s": round(prepare_rate, 1),
        "targets_h100": TARGETS,
        "references_h100": REFERENCES,
    }


def table(result: dict[str, object]) -> str:
    """The figures beside the issue's targets, as printable text."""
    c = result["config"]
    precision = "bf16" if c["device"].startswith("cuda") else "fp32"
    lines = [
        f"ResNeXt-50 32x4d train @{c['crop']} px, batch {c['batch']}, {c['images']:,} JPEGs "
        f"(500×375, mean {result['jpeg_kb_mean']} KB), 1000 classes",
        f"device: {result['device']}; torch {result['torch']}, torchvision {result['torchvision']}",
    ]
    if result["reduced_cpu_size"]:
        lines.append("reduced CPU size, for the record: the targets are for one H100")
    compiled = ", compiled" if c["compile"] else ""
    rows = [
        (
            f"(a) glt-bench: {c['cache_size']} px cache, device aug, {precision}{compiled}",
            f"{result['ours_img_s']:,.0f} img/s",
            f"target ≥ {TARGETS['ours_img_s']:,} (H100; compute-only "
            f"{REFERENCES['compute_only_compiled_bf16_img_s']:,} compiled bf16)",
        ),
        (
            f"(b) original way: PIL in {c['loader_workers']} workers, fp32",
            f"{result['original_img_s']:,.0f} img/s",
            f"reference {REFERENCES['original_way_img_s']:,} (H100, 4 workers)",
        ),
        ("ratio (a)/(b)", f"{result['ratio']:.1f}×", f"target ≥ {TARGETS['ratio']:.0f}× (H100)"),
        (
            f"one-time prepare: decode → {c['cache_size']} px uint8 cache, {c['workers']} processes",
            f"{result['prepare_img_s']:,.0f} img/s",
            "once per split, not per epoch",
        ),
    ]
    width = max(len(r[0]) for r in rows)
    lines += [f"  {name:<{width}}  {value:>14}   {note}" for name, value, note in rows]
    return "\n".join(lines)


def parse_args() -> tuple[Config, Path | None]:
    cuda = torch.cuda.is_available()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if cuda else "cpu")
    parser.add_argument("--images", type=int, help="JPEGs to generate (CUDA: 10,240; CPU: 128)")
    parser.add_argument("--crop", type=int, help="training crop in pixels (CUDA: 112; CPU: 32)")
    parser.add_argument("--batch", type=int, help="batch size (CUDA: 256; CPU: 16)")
    parser.add_argument("--epochs", type=int, default=2, help="engine epochs; all but the first are timed")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, help="torch.compile (CUDA: on)")
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="tree and cache processes")
    parser.add_argument("--loader-workers", type=int, default=4, help="DataLoader workers of (b)")
    parser.add_argument("--out", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args()
    on_cuda = args.device.startswith("cuda")
    config = Config(
        device=args.device,
        images=args.images or (256 * 40 if on_cuda else 128),
        crop=args.crop or (112 if on_cuda else 32),
        batch=args.batch or (256 if on_cuda else 16),
        epochs=args.epochs,
        compile=on_cuda if args.compile is None else args.compile,
        workers=args.workers,
        loader_workers=args.loader_workers,
    )
    if config.images < TREE_CLASSES or config.epochs < 2:
        parser.error(f"--images must be at least {TREE_CLASSES} and --epochs at least 2")
    return config, args.out


def main() -> None:
    config, out = parse_args()
    result = measure(config)
    print(table(result))
    print(json.dumps(result))
    if out is not None:
        write_json(out, result)


if __name__ == "__main__":
    main()
