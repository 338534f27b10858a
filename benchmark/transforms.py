"""Batched image geometry and normalisation on the training device.

Images travel as uint8 and become floats on the device, where crops, flips and normalisation run on
whole batches (one kernel each instead of per-image PIL work on CPU loader workers). Every random
choice comes from a seeded CPU `torch.Generator`, so a run is reproducible whatever the device.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from benchmark.recipes import Recipe


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A CPU tensor on `device`; to CUDA through pinned memory without blocking the host, so the CPU
    can queue the next step while the GPU works."""
    if device.type != "cuda":
        return t.to(device)
    return t.pin_memory().to(device, non_blocking=True)


class Pipeline:
    """uint8 N×C×H×W batches → normalised, channels-last floats on the device."""

    def __init__(
        self, recipe: Recipe, mean: tuple[float, ...], std: tuple[float, ...], device: torch.device
    ) -> None:
        self.recipe = recipe
        self.device = torch.device(device)
        self.mean = torch.tensor(mean, device=self.device).view(1, -1, 1, 1) * 255
        self.std = torch.tensor(std, device=self.device).view(1, -1, 1, 1) * 255

    def _floats(self, images: torch.Tensor) -> torch.Tensor:
        return to_device(images, self.device).float()

    def _normalise(self, x: torch.Tensor) -> torch.Tensor:
        return ((x - self.mean) / self.std).contiguous(memory_format=torch.channels_last)

    def train(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The recipe's random geometry, then normalisation."""
        recipe = self.recipe
        x = self._floats(images)
        if recipe.augment == "pad-crop":
            x = pad_crop(x, recipe.crop_padding, generator)
            if recipe.flip:
                x = random_flip(x, generator)
        elif recipe.augment == "resized-crop":
            x = resized_crop(x, recipe.image_size or x.shape[-1], recipe.crop_scale, recipe.flip, generator)
        else:
            raise ValueError(f"unknown augmentation {recipe.augment!r}")
        return self._normalise(x)

    def eval(self, images: torch.Tensor) -> torch.Tensor:
        """Centre crop to the recipe's size, then normalisation."""
        return self._normalise(center_crop(self._floats(images), self.recipe.image_size))


def pad_crop(x: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Per sample, a random crop of the original size after zero padding by `padding` pixels."""
    if not padding:
        return x
    n, c, h, w = x.shape
    padded = F.pad(x, (padding, padding, padding, padding))
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    dy, dx = to_device(torch.stack([dy, dx]), x.device)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    channel = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[batch, channel, rows, cols]


def random_flip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each sample mirrored left-right with probability 1/2."""
    flip = to_device(torch.rand(len(x), generator=generator) < 0.5, x.device)
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def resized_crop(
    x: torch.Tensor, size: int, scale: tuple[float, float], flip: bool, generator: torch.Generator
) -> torch.Tensor:
    """Random resized crop (and flip) of every sample in one bilinear `grid_sample`.

    Area fraction ~ U(scale), log aspect ratio ~ U(log 3/4, log 4/3), as torchvision's
    RandomResizedCrop draws them; a box that does not fit is clipped to the image instead of
    redrawn (torchvision retries ten times, then falls back to a centre crop).
    """
    n, _, h, w = x.shape
    area = torch.empty(n).uniform_(scale[0], scale[1], generator=generator) * (h * w)
    log_ratio = torch.empty(n).uniform_(math.log(3 / 4), math.log(4 / 3), generator=generator)
    ratio = torch.exp(log_ratio)
    crop_w = torch.sqrt(area * ratio).clamp(max=w)
    crop_h = torch.sqrt(area / ratio).clamp(max=h)
    # Crop centre, uniform over the positions where the box fits, in normalised [-1, 1] units.
    cx = (torch.rand(n, generator=generator) * 2 - 1) * (1 - crop_w / w)
    cy = (torch.rand(n, generator=generator) * 2 - 1) * (1 - crop_h / h)
    sign = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0) if flip else torch.ones(n)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = sign * crop_w / w
    theta[:, 0, 2] = cx
    theta[:, 1, 1] = crop_h / h
    theta[:, 1, 2] = cy
    grid = F.affine_grid(to_device(theta, x.device), [n, x.shape[1], size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def center_crop(x: torch.Tensor, size: int | None) -> torch.Tensor:
    """The central size×size window (the whole image when size is None)."""
    if size is None:
        return x
    h, w = x.shape[-2:]
    if size > min(h, w):
        raise ValueError(f"cannot centre-crop {size} px from {h}×{w} images")
    top, left = (h - size) // 2, (w - size) // 2
    return x[..., top : top + size, left : left + size]
