"""Training recipes: backbone, input handling and optimiser schedule, by name (docs/benchmarks.md §6)."""

from __future__ import annotations

from dataclasses import dataclass

from benchmark.registry import Registry


@dataclass(frozen=True)
class Recipe:
    """Everything about training that is not the method.

    `augment` is the engine's batched train-time geometry: "pad-crop" (random crop after zero padding
    by `crop_padding` pixels) or "resized-crop" (random resized crop to `image_size`, area fraction in
    `crop_scale`, aspect ratio in [3/4, 4/3]); either is followed by a random flip when `flip`. At
    evaluation the images are centre-cropped to `image_size` (None: used as stored).
    """

    name: str
    backbone: str
    epochs: int
    batch_size: int
    lr: float
    momentum: float  # explicit, never implied (docs/benchmarks.md §7d)
    weight_decay: float
    schedule: str  # "cosine": annealed to 0, stepped once per epoch
    augment: str
    flip: bool
    crop_padding: int = 0
    crop_scale: tuple[float, float] = (0.08, 1.0)
    image_size: int | None = None


RECIPES: Registry[Recipe] = Registry("recipe")

for _recipe in (
    # CPU-sized: the embedded default (README "Decisions").
    Recipe("fashion", "small-cnn", 30, 128, 0.05, 0.9, 5e-4, "cosine", "pad-crop", True, crop_padding=2),
    # The original's effective setting: ResNeXt-50 32x4d from scratch at 112 px, momentum 0.
    Recipe("original", "resnext50_32x4d", 100, 256, 0.1, 0.0, 5e-4, "cosine", "resized-crop", True,
           image_size=112),
    # The same with the momentum the original's config file meant (docs/benchmarks.md §7d).
    Recipe("default", "resnext50_32x4d", 100, 256, 0.1, 0.9, 5e-4, "cosine", "resized-crop", True,
           image_size=112),
):  # fmt: skip
    RECIPES.register(_recipe.name)(_recipe)
