"""Focal loss (docs/methods.md §2) against hand-computed values and gradients."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from baselines.base import METHODS, StepContext
from baselines.focal import focal_loss
from benchmark.recipes import RECIPES

# softmax([0, ln 3]) = [1/4, 3/4]
LOGITS = [[0.0, math.log(3.0)]]


def test_value_is_the_mean_of_the_modulated_log_likelihoods():
    logits = torch.tensor(LOGITS * 2)
    labels = torch.tensor([0, 1])
    # label 0: p = 1/4, −(3/4)²·ln(1/4); label 1: p = 3/4, −(1/4)²·ln(3/4)
    expected = ((3 / 4) ** 2 * math.log(4) + (1 / 4) ** 2 * math.log(4 / 3)) / 2
    assert focal_loss(logits, labels).item() == pytest.approx(expected, rel=1e-6)
    assert focal_loss(logits, labels, detach_factor=True).item() == pytest.approx(expected, rel=1e-6)


def test_gamma_zero_is_cross_entropy():
    logits, labels = torch.randn(6, 4, generator=torch.Generator().manual_seed(0)), torch.arange(6) % 4
    assert torch.allclose(focal_loss(logits, labels, gamma=0.0), F.cross_entropy(logits, labels))


@pytest.mark.parametrize("detach", [False, True])
def test_gradient_of_the_true_logit(detach: bool):
    logits = torch.tensor(LOGITS, requires_grad=True)
    focal_loss(logits, torch.tensor([0]), detach_factor=detach).backward()
    p = 1 / 4
    if detach:  # constant factor (1 − p)² times ∂(−log p)/∂z_y = −(1 − p)
        expected = -((1 - p) ** 2) * (1 - p)
    else:  # dL/dp = 2(1 − p)·log p − (1 − p)²/p, dp/dz_y = p(1 − p)
        expected = (2 * (1 - p) * math.log(p) - (1 - p) ** 2 / p) * p * (1 - p)
    assert logits.grad[0, 0].item() == pytest.approx(expected, rel=1e-5)
    assert logits.grad[0, 1].item() == pytest.approx(-expected, rel=1e-5)  # softmax gradients sum to 0


def test_method_defaults_and_loss():
    method = METHODS.get("focal")({}, np.array([3, 1]))
    assert method.hparams == {"gamma": 2.0, "detach_factor": False}
    recipe = RECIPES.get("fashion")
    (stage,) = method.stages(recipe)
    assert (stage.schedule, stage.epochs, stage.weight_decay) == (
        recipe.schedule,
        recipe.epochs,
        recipe.weight_decay,
    )
    logits, labels = torch.tensor(LOGITS), torch.tensor([0])
    context = StepContext(stage=stage, epoch=0)
    assert torch.allclose(method.loss(nn.Identity(), logits, labels, context), focal_loss(logits, labels))
    detached = METHODS.get("focal")({"detach_factor": True}, np.array([3, 1]))
    assert detached.hparams["detach_factor"] is True
