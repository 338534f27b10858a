"""RandAugment (docs/methods.md §8): each operation on constructed images, the policy's draws, seeding."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from baselines import randaug
from baselines.base import METHODS
from baselines.randaug import OPERATIONS, Draw, RandAugment
from benchmark.errors import UserError

RAMP = torch.arange(256, dtype=torch.uint8).view(1, 16, 16)  # every grey level once


def apply(name: str, image: torch.Tensor, level: int = 9, sign: int = 1, centre=(0.5, 0.5)) -> torch.Tensor:
    out = OPERATIONS[name](image, Draw(level, sign, centre))
    assert out.shape == image.shape and out.dtype == torch.uint8
    return out


def test_the_fifteen_operations_of_the_package():
    assert sorted(OPERATIONS) == sorted(
        ["Invert", "Cutout", "Sharpness", "AutoContrast", "Posterize", "ShearX", "ShearY", "TranslateX",
         "TranslateY", "Rotate", "Equalize", "Contrast", "Color", "Solarize", "Brightness"]
    )  # fmt: skip


def test_invert_posterize_and_solarize():
    assert torch.equal(apply("Invert", RAMP), 255 - RAMP)
    assert torch.equal(apply("Posterize", RAMP, level=9), RAMP & 0xF0)  # 4 bits at the top level
    assert torch.equal(apply("Posterize", RAMP, level=5), RAMP & 0xFC)  # round(8 − 4·5/9) = 6 bits
    assert torch.equal(apply("Posterize", RAMP, level=1), RAMP)  # round(8 − 4/9) = 8 bits
    assert torch.equal(apply("Solarize", RAMP, level=9), 255 - RAMP)  # threshold 0: all inverted
    threshold = 256 - 256 * 3 / 9  # 170.67: levels 171 and up are inverted
    assert torch.equal(apply("Solarize", RAMP, level=3), torch.where(RAMP.ge(threshold), 255 - RAMP, RAMP))


def test_cutout_fills_a_grey_square():
    image = torch.zeros(3, 32, 32, dtype=torch.uint8)
    out = apply("Cutout", image, level=9, centre=(0.5, 0.25))  # size 20 around pixel (16, 8)
    expected = image.clone()
    expected[:, 6:26, 0:18] = 128
    assert torch.equal(out, expected)
    small = apply("Cutout", image, level=1, centre=(0.0, 0.0))  # size round(20/9) = 2, clipped at the corner
    assert (small == 128).sum().item() == 3 and torch.all(small[:, 0, 0] == 128)


def test_autocontrast_and_equalize():
    narrow = (50 + torch.arange(64) % 51).to(torch.uint8).view(1, 8, 8)  # levels 50..100
    stretched = apply("AutoContrast", narrow)
    # levels 50..100 stretched to 0..255 (torchvision truncates, so the top may come out 254)
    assert torch.allclose(stretched.float(), (narrow.float() - 50) * 255 / 50, atol=1)
    assert stretched.min().item() == 0 and stretched.max().item() >= 254
    four = (10 + torch.arange(1024) // 256).to(torch.uint8).view(1, 32, 32)  # 10..13, a quarter each
    # PIL's rule: step = (1024 − 256) // 255 = 3, level k → (1 + 256·k) // 3 = 0, 85, 171, 257 → 255
    assert apply("Equalize", four).unique().tolist() == [0, 85, 171, 255]


def test_enhancement_factors_are_one_plus_or_minus_level():
    grey = (100 + torch.arange(64)).to(torch.uint8).view(1, 8, 8)  # mean 131.5
    darker = apply("Brightness", grey, level=9, sign=-1)  # factor 0.1
    assert torch.allclose(darker.float(), (grey.float() * 0.1).round(), atol=1)
    brighter = apply("Brightness", grey, level=9, sign=1)  # factor 1.9, clipped
    assert torch.allclose(brighter.float(), (grey.float() * 1.9).clamp(max=255).round(), atol=1)
    flat = apply("Contrast", grey, level=9, sign=-1)
    assert torch.allclose(flat.float(), 131.5 + 0.1 * (grey.float() - 131.5), atol=1)
    half = apply("Contrast", grey, level=3, sign=-1)  # factor 1 − 0.3 = 0.7
    assert torch.allclose(half.float(), 131.5 + 0.7 * (grey.float() - 131.5), atol=1)
    rgb = torch.tensor([200, 100, 0], dtype=torch.uint8).view(3, 1, 1).expand(3, 4, 4)
    grey_level = 0.2989 * 200 + 0.587 * 100  # torchvision's luma
    washed = apply("Color", rgb, level=9, sign=-1)
    expected = grey_level + 0.1 * (torch.tensor([200.0, 100.0, 0.0]) - grey_level)
    assert torch.allclose(washed[:, 0, 0].float(), expected, atol=1)
    assert torch.equal(apply("Color", grey, level=9, sign=-1), grey)  # no colour to remove
    impulse = torch.zeros(1, 5, 5, dtype=torch.uint8)
    impulse[0, 2, 2] = 130
    # PIL's smoothing kernel (1 1 1; 1 5 1; 1 1 1)/13 gives centre 50, neighbours 10; factor 0.1 blends
    soft = apply("Sharpness", impulse, level=9, sign=-1)
    assert soft[0, 2, 2].item() == 58 and soft[0, 1, 1].item() == 9 and soft[0, 0, 0].item() == 0


def test_translations_shift_by_a_fraction_of_the_size_and_fill_grey():
    image = torch.arange(28 * 28, dtype=torch.int32).remainder(251).to(torch.uint8).view(1, 28, 28)
    shift = round(150 / 331 * 28)  # 13 pixels at the top level
    right = apply("TranslateX", image, sign=1)
    assert torch.equal(right[..., shift:], image[..., :-shift]) and torch.all(right[..., :shift] == 128)
    up = apply("TranslateY", image, sign=-1)
    assert torch.equal(up[:, :-shift], image[:, shift:]) and torch.all(up[:, -shift:] == 128)


def test_shears_about_the_top_left_corner():
    ramp = (torch.arange(8) * 10).repeat(8, 1).view(1, 8, 8).to(torch.uint8)  # value 10·x
    sheared = apply("ShearX", ramp, level=9, sign=1)  # m = 0.3: row y reads x + 0.3·(y + 1/2)
    for y in range(8):
        inside = [x for x in range(8) if x + 0.3 * (y + 0.5) <= 7]
        expected = torch.tensor([10 * (x + 0.3 * (y + 0.5)) for x in inside])
        assert torch.allclose(sheared[0, y, inside].float(), expected, atol=1)
    assert sheared[0, 7, 7].item() == 128
    transposed = apply("ShearY", ramp.transpose(1, 2).contiguous(), level=9, sign=1)
    assert torch.equal(transposed, sheared.transpose(1, 2))


def test_rotate_turns_counter_clockwise_and_fills_the_corners():
    image = torch.zeros(1, 9, 9, dtype=torch.uint8)
    image[0, 4, 4] = 50
    image[0, 4, 8] = 200  # 4 pixels right of the centre
    out = apply("Rotate", image, level=9)  # 30°: it moves to about (4 − 2, 4 + 3.5)
    assert out[0, 4, 4].item() == 50 and out[0, 2, 7].item() == 200 and out[0, 4, 8].item() == 0
    assert all(out[0, r, c].item() == 128 for r, c in [(0, 0), (0, 8), (8, 0), (8, 8)])


@pytest.mark.parametrize("policy", ["original", "torchvision"])
@pytest.mark.parametrize("channels", [1, 3])
def test_policies_are_seeded_and_keep_shape_and_dtype(policy: str, channels: int):
    images = torch.randint(0, 256, (16, channels, 28, 28), dtype=torch.uint8, generator=torch.Generator())
    augment = RandAugment(policy)
    global_state = torch.get_rng_state()
    out = augment(images, torch.Generator().manual_seed(7))
    assert torch.equal(torch.get_rng_state(), global_state)  # the global generator is untouched
    assert out.shape == images.shape and out.dtype == torch.uint8
    assert torch.equal(out, augment(images, torch.Generator().manual_seed(7)))
    assert not torch.equal(out, augment(images, torch.Generator().manual_seed(8)))
    assert not torch.equal(out, images)


def test_original_policy_draws_two_ops_levels_one_to_nine_applied_half_the_time(monkeypatch):
    calls: list[tuple[str, int, int]] = []
    for name in list(OPERATIONS):
        monkeypatch.setitem(
            randaug.OPERATIONS, name, lambda image, draw, name=name: calls.append((name, *draw[:2])) or image
        )
    n = 3000
    RandAugment("original")(torch.zeros(n, 1, 2, 2, dtype=torch.uint8), torch.Generator().manual_seed(0))
    assert len(calls) / (2 * n) == pytest.approx(0.5, abs=0.02)
    names = Counter(name for name, _, _ in calls)
    assert set(names) == set(OPERATIONS) and min(names.values()) > len(calls) / 15 * 0.75
    assert {level for _, level, _ in calls} == set(range(1, 10))
    assert {sign for _, _, sign in calls} == {-1, 1}


def test_method_applies_its_policy_in_transform():
    method = METHODS.get("randaug")({}, np.array([3, 1]))
    assert method.hparams == {"policy": "original", "num_ops": 2, "magnitude": 9}
    images = torch.randint(0, 256, (4, 3, 12, 12), dtype=torch.uint8, generator=torch.Generator())
    out = method.transform(images, torch.Generator().manual_seed(1))
    assert torch.equal(out, RandAugment("original")(images, torch.Generator().manual_seed(1)))
    with pytest.raises(UserError, match="original, torchvision"):
        METHODS.get("randaug")({"policy": "autoaugment"}, np.array([3, 1]))
