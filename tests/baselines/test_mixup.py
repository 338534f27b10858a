"""Mixup (docs/methods.md §7): seeded λ and σ, the mixed batch and the mixed loss."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from baselines.base import METHODS, StepContext
from baselines.mixup import mix_batch, mixed_cross_entropy, sample_beta
from benchmark.errors import UserError
from benchmark.recipes import RECIPES


def draws(a: float, b: float, n: int, seed: int) -> np.ndarray:
    generator = torch.Generator().manual_seed(seed)
    return np.array([sample_beta(a, b, generator) for _ in range(n)])


def test_beta_draws_are_seeded_and_have_the_right_moments():
    assert np.array_equal(draws(1.0, 1.0, 5, seed=3), draws(1.0, 1.0, 5, seed=3))
    assert not np.array_equal(draws(1.0, 1.0, 5, seed=3), draws(1.0, 1.0, 5, seed=4))
    uniform = draws(1.0, 1.0, 4000, seed=0)  # Beta(1, 1): mean 1/2, variance 1/12
    assert np.all((uniform > 0) & (uniform < 1))
    assert uniform.mean() == pytest.approx(0.5, abs=0.015)
    assert uniform.var() == pytest.approx(1 / 12, abs=0.005)
    skewed = draws(2.0, 5.0, 4000, seed=1)  # Beta(2, 5): mean 2/7, variance 10/392
    assert skewed.mean() == pytest.approx(2 / 7, abs=0.01)
    assert skewed.var() == pytest.approx(10 / 392, abs=0.003)


def test_mix_batch_blends_each_image_with_its_permuted_partner():
    # image i is constant i and has label i, so the mix of i with σ(i) is λ·i + (1 − λ)·σ(i)
    images = torch.arange(6.0).view(6, 1, 1, 1).expand(6, 1, 2, 2)
    labels = torch.arange(6)
    mixed, labels_b, lam = mix_batch(images, labels, 1.0, torch.Generator().manual_seed(0))
    assert sorted(labels_b.tolist()) == list(range(6)) and 0 < lam < 1
    expected = lam * labels.float() + (1 - lam) * labels_b.float()
    assert torch.allclose(mixed, expected.view(6, 1, 1, 1).expand(6, 1, 2, 2))
    again = mix_batch(images, labels, 1.0, torch.Generator().manual_seed(0))
    assert torch.equal(again[0], mixed) and torch.equal(again[1], labels_b) and again[2] == lam


def test_mixed_cross_entropy_by_hand():
    logits = torch.tensor([[0.0, math.log(3.0)]])  # p = (1/4, 3/4)
    loss = mixed_cross_entropy(logits, torch.tensor([0]), torch.tensor([1]), 0.25)
    assert loss.item() == pytest.approx(0.25 * math.log(4) + 0.75 * math.log(4 / 3), rel=1e-6)


def test_method_loss_uses_the_step_generator():
    method = METHODS.get("mixup")({}, np.array([4, 2, 1]))
    assert method.hparams == {"alpha": 1.0}
    (stage,) = method.stages(RECIPES.get("fashion"))
    images = torch.randn(8, 3, generator=torch.Generator().manual_seed(5))  # the identity model: z = x̃
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 0])
    mixed, labels_b, lam = mix_batch(images, labels, 1.0, torch.Generator().manual_seed(9))
    expected = lam * F.cross_entropy(mixed, labels) + (1 - lam) * F.cross_entropy(mixed, labels_b)
    context = StepContext(stage=stage, epoch=0, generator=torch.Generator().manual_seed(9))
    assert torch.allclose(method.loss(nn.Identity(), images, labels, context), expected)


def test_alpha_must_be_positive():
    with pytest.raises(UserError, match="alpha"):
        METHODS.get("mixup")({"alpha": 0.0}, np.array([1, 1]))
