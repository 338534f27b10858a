"""RandAugment (`randaug`; Cubuk et al., CVPR Workshops 2020; docs/methods.md §8): CE training with
RandAugment applied to the uint8 training images of each batch on the CPU.

`policy=original` re-implements the UDA-style policy of PyPI `randaugment` 1.0.2, which the original
used and which fails on current NumPy: per image, 2 operations drawn uniformly with replacement
from 15, each with its own level l drawn from 1–9 and applied with probability 0.5. A level indexes
10 evenly spaced values from 0 to the range's end (value = end·l/9, as the package's
`np.linspace(..., 10)[l]`). As in that package, rotation turns counter-clockwise only (its signed
version is commented out there), the shears, translations and the four enhancement factors take a
random sign, and pixels uncovered by a geometric operation are grey 128; unlike it, Cutout also
fills with grey 128 (the package used (125, 122, 113)) and the shears interpolate bilinearly
(torchvision has no bicubic for tensors). `policy=torchvision` applies
`torchvision.transforms.v2.RandAugment(num_ops=2, magnitude=9)` per image. Both take every random
choice from the generator they are given, so a seed fixes the output.

`RandAugment` is the reusable transform (IFL's RandAug + IFL uses it too).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

import numpy as np
import torch
from torchvision.transforms import InterpolationMode, v2
from torchvision.transforms.v2 import functional as F

from baselines.base import METHODS, Method
from benchmark.errors import UserError

FILL = 128
LEVELS = 10  # a level l in 1..9 picks np.linspace(start, end, LEVELS)[l]
POLICIES = ("original", "torchvision")


class Draw(NamedTuple):
    """The random choices one operation uses."""

    level: int  # 1..9
    sign: int  # ±1
    centre: tuple[float, float]  # uniform in [0, 1)²: Cutout's centre as fractions of height, width


def level_value(level: int, end: float, start: float = 0.0) -> float:
    """The `level`-th of `LEVELS` evenly spaced values from `start` to `end`."""
    return start + (end - start) * level / (LEVELS - 1)


def _shear(image: torch.Tensor, draw: Draw, axis: int) -> torch.Tensor:
    # Shear factor m (tan of the angle) about the top-left corner, as PIL's affine transform did.
    angle = math.degrees(math.atan(draw.sign * level_value(draw.level, 0.3)))
    shear = [angle, 0.0] if axis == 0 else [0.0, angle]
    return F.affine(
        image,
        angle=0.0,
        translate=[0.0, 0.0],
        scale=1.0,
        shear=shear,
        interpolation=InterpolationMode.BILINEAR,
        fill=FILL,
        center=[0.0, 0.0],
    )


def _translate(image: torch.Tensor, draw: Draw, axis: int) -> torch.Tensor:
    size = image.shape[-1] if axis == 0 else image.shape[-2]
    shift = float(round(draw.sign * level_value(draw.level, 150 / 331) * size))
    translate = [shift, 0.0] if axis == 0 else [0.0, shift]
    return F.affine(
        image,
        angle=0.0,
        translate=translate,
        scale=1.0,
        shear=[0.0, 0.0],
        interpolation=InterpolationMode.NEAREST,
        fill=FILL,
    )


def _enhance(
    adjust: Callable[[torch.Tensor, float], torch.Tensor],
) -> Callable[[torch.Tensor, Draw], torch.Tensor]:
    return lambda image, draw: adjust(image, 1.0 + draw.sign * level_value(draw.level, 0.9))


def _cutout(image: torch.Tensor, draw: Draw) -> torch.Tensor:
    # A square of side 2·⌊size/2⌋ centred on a uniform pixel, clipped at the borders.
    half = round(level_value(draw.level, 20)) // 2
    height, width = image.shape[-2:]
    cy, cx = int(draw.centre[0] * height), int(draw.centre[1] * width)
    top, left = max(cy - half, 0), max(cx - half, 0)
    bottom, right = min(cy + half, height), min(cx + half, width)
    return F.erase(image, top, left, bottom - top, right - left, torch.tensor(FILL, dtype=image.dtype))


OPERATIONS: dict[str, Callable[[torch.Tensor, Draw], torch.Tensor]] = {
    "Invert": lambda image, draw: F.invert(image),
    "Cutout": _cutout,
    "Sharpness": _enhance(F.adjust_sharpness),
    "AutoContrast": lambda image, draw: F.autocontrast(image),
    "Posterize": lambda image, draw: F.posterize(image, round(level_value(draw.level, 4, start=8))),
    "ShearX": lambda image, draw: _shear(image, draw, 0),
    "ShearY": lambda image, draw: _shear(image, draw, 1),
    "TranslateX": lambda image, draw: _translate(image, draw, 0),
    "TranslateY": lambda image, draw: _translate(image, draw, 1),
    "Rotate": lambda image, draw: F.rotate(
        image, level_value(draw.level, 30), interpolation=InterpolationMode.NEAREST, fill=FILL
    ),
    "Equalize": lambda image, draw: F.equalize(image),
    "Contrast": _enhance(F.adjust_contrast),
    "Color": _enhance(F.adjust_saturation),
    "Solarize": lambda image, draw: F.solarize(image, level_value(draw.level, 0, start=256)),
    "Brightness": _enhance(F.adjust_brightness),
}


class RandAugment:
    """(uint8 N×C×H×W CPU images, torch.Generator) → augmented uint8 images; C may be 1 or 3.

    `num_ops` operations per image under either policy; `magnitude` (0–30) is torchvision's, used by
    `policy=torchvision` only, since the original policy draws a level for each operation."""

    def __init__(self, policy: str = "original", num_ops: int = 2, magnitude: int = 9) -> None:
        if policy not in POLICIES:
            raise UserError(f"randaug: policy must be one of {', '.join(POLICIES)}, got {policy!r}")
        self.policy = policy
        self.num_ops = num_ops
        self.torchvision = v2.RandAugment(num_ops=num_ops, magnitude=magnitude)

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if self.policy == "torchvision":
            return self._torchvision(images, generator)
        return self._original(images, generator)

    def _original(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        n, k = len(images), self.num_ops
        names = list(OPERATIONS)
        ops = torch.randint(0, len(names), (n, k), generator=generator).tolist()
        levels = torch.randint(1, LEVELS, (n, k), generator=generator).tolist()
        applied = (torch.rand(n, k, generator=generator) < 0.5).tolist()
        signs = (torch.randint(0, 2, (n, k), generator=generator) * 2 - 1).tolist()
        centres = torch.rand(n, k, 2, generator=generator).tolist()
        out = []
        for i, image in enumerate(images):
            for j in range(k):
                if applied[i][j]:
                    draw = Draw(levels[i][j], signs[i][j], tuple(centres[i][j]))
                    image = OPERATIONS[names[ops[i][j]]](image, draw)
            out.append(image)
        return torch.stack(out)

    def _torchvision(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        # torchvision draws from torch's global generator: run it on a private copy seeded from ours.
        seed = int(torch.randint(0, 2**63 - 1, (), generator=generator))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return torch.stack([self.torchvision(image) for image in images])


@METHODS.register("randaug")
class RandAug(Method):
    name = "randaug"
    summary = "CE with RandAugment, 2 ops per image (the original's UDA-style policy by default)"
    defaults: ClassVar[dict[str, Any]] = {"policy": "original", "num_ops": 2, "magnitude": 9}

    def __init__(self, hparams: dict[str, Any], class_counts: np.ndarray) -> None:
        super().__init__(hparams, class_counts)
        self.augment = RandAugment(self.hparams["policy"], self.hparams["num_ops"], self.hparams["magnitude"])

    def transform(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return self.augment(images, generator)
