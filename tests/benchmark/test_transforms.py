"""Batched train/eval geometry and normalisation on the device."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from benchmark.recipes import RECIPES
from benchmark.transforms import Pipeline, center_crop, pad_crop, random_flip, resized_crop


def test_pad_crop_picks_a_window_of_the_padded_image_and_flip_mirrors():
    x = torch.arange(2 * 1 * 6 * 6, dtype=torch.float32).view(2, 1, 6, 6)
    out = random_flip(pad_crop(x, 1, torch.Generator().manual_seed(0)), torch.Generator().manual_seed(1))
    assert out.shape == x.shape
    for i in range(2):
        padded = torch.nn.functional.pad(x[i], (1, 1, 1, 1))
        windows = [padded[:, r : r + 6, c : c + 6] for r in range(3) for c in range(3)]
        assert any(torch.equal(out[i], w) or torch.equal(out[i], w.flip(-1)) for w in windows)
    assert torch.equal(pad_crop(x, 0, torch.Generator()), x)


def test_resized_crop_samples_inside_the_image_and_flips():
    # A horizontal ramp: a crop of it is an increasing (or, flipped, decreasing) ramp within [0, 127].
    ramp = torch.arange(128, dtype=torch.float32).expand(64, 3, 128, 128).contiguous()
    out = resized_crop(ramp, 112, (0.08, 1.0), True, torch.Generator().manual_seed(0))
    assert out.shape == (64, 3, 112, 112)
    assert out.min() >= 0 and out.max() <= 127
    slopes = out[:, 0, 56, -1] - out[:, 0, 56, 0]
    assert (slopes > 0).any() and (slopes < 0).any()  # both orientations occur
    assert torch.allclose(out[:, :, 0, :], out[:, :, -1, :])  # rows stay constant: no vertical mixing
    widths = slopes.abs()  # the crop's width in source pixels, about sqrt(area · ratio)
    assert widths.min() > 0.25 * 128 * 0.5 and widths.max() <= 128


def test_resized_crop_is_seeded():
    x = torch.rand(8, 1, 32, 32)
    first = resized_crop(x, 24, (0.3, 1.0), True, torch.Generator().manual_seed(5))
    assert torch.equal(first, resized_crop(x, 24, (0.3, 1.0), True, torch.Generator().manual_seed(5)))


def test_center_crop_takes_the_middle_window():
    x = torch.arange(10 * 10, dtype=torch.float32).view(1, 1, 10, 10)
    assert torch.equal(center_crop(x, 4), x[..., 3:7, 3:7])
    assert center_crop(x, None) is x
    with pytest.raises(ValueError, match="centre-crop"):
        center_crop(x, 12)


def test_pipeline_normalises_into_channels_last_floats():
    recipe = replace(RECIPES.get("original"), image_size=4)
    pipeline = Pipeline(recipe, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), torch.device("cpu"))
    images = torch.full((2, 3, 6, 6), 255, dtype=torch.uint8)
    out = pipeline.eval(images)
    assert out.shape == (2, 3, 4, 4) and out.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(out, torch.full_like(out, 2.0))  # (255 - 127.5) / 63.75
    trained = pipeline.train(images, torch.Generator().manual_seed(0))
    assert trained.shape == (2, 3, 4, 4) and torch.allclose(trained, torch.full_like(trained, 2.0))
