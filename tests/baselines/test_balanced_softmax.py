"""Balanced Softmax (docs/methods.md §4) against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from baselines.base import METHODS, StepContext
from benchmark.recipes import RECIPES


def test_loss_is_cross_entropy_of_logits_plus_log_prior():
    method = METHODS.get("balanced-softmax")({}, np.array([1, 3]))  # π = (1/4, 3/4) by class id
    recipe = RECIPES.get("fashion")
    (stage,) = method.stages(recipe)
    assert (stage.schedule, stage.epochs) == (recipe.schedule, recipe.epochs)
    context = StepContext(stage=stage, epoch=0)
    # z = (ln 3, 0): z + log π = (ln 3/4, ln 3/4), so both classes get p = 1/2
    logits = torch.tensor([[math.log(3.0), 0.0]])
    for label in (0, 1):
        loss = method.loss(nn.Identity(), logits, torch.tensor([label]), context)
        assert loss.item() == pytest.approx(math.log(2), rel=1e-6)
    assert torch.equal(method.logits(nn.Identity(), logits), logits)  # predicts argmax z


def test_an_absent_class_gets_log_of_1e_minus_12():
    method = METHODS.get("balanced-softmax")({}, np.array([2, 2, 0]))
    context = StepContext(stage=method.stages(RECIPES.get("fashion"))[0], epoch=0)
    loss = method.loss(nn.Identity(), torch.zeros(1, 3), torch.tensor([0]), context)
    prior = [0.5 + 1e-12, 0.5 + 1e-12, 1e-12]
    assert loss.item() == pytest.approx(-math.log(prior[0] / sum(prior)), rel=1e-6)
