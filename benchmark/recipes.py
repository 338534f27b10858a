"""Training recipes: backbone, input handling and optimiser schedule, registered by name."""

from __future__ import annotations

from dataclasses import dataclass

from benchmark.registry import Registry


@dataclass(frozen=True)
class Recipe:
    """Everything about training that is not the method."""

    name: str
    backbone: str
    epochs: int
    batch_size: int
    lr: float
    momentum: float  # explicit, never implied (GLT-SPEC §7d)
    weight_decay: float
    schedule: str  # "cosine": annealed to 0, stepped once per epoch
    crop_padding: int  # random crop after zero padding by this many pixels (0: no crop)
    flip: bool  # random horizontal flip


RECIPES: Registry[Recipe] = Registry("recipe")

RECIPES.register("fashion")(
    Recipe(
        name="fashion",
        backbone="small-cnn",
        epochs=30,
        batch_size=128,
        lr=0.05,
        momentum=0.9,
        weight_decay=5e-4,
        schedule="cosine",
        crop_padding=2,
        flip=True,
    )
)
