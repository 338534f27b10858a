"""Logit Adjustment, loss and post-hoc forms (docs/methods.md §3), against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from baselines.base import METHODS, StepContext
from baselines.focal import focal_loss
from baselines.logit_adjustment import adjusted_cross_entropy
from benchmark.errors import UserError
from benchmark.recipes import RECIPES

COUNTS = np.array([3, 1])  # π = (3/4, 1/4), indexed by class id
CONTEXT = StepContext(stage=METHODS.get("ce")({}, COUNTS).stages(RECIPES.get("fashion"))[0], epoch=0)


def test_adjusted_cross_entropy_is_cross_entropy_of_shifted_logits():
    log_prior = torch.log(torch.tensor([0.75, 0.25]))
    zeros, label = torch.zeros(1, 2), torch.tensor([1])
    # τ = 1: softmax(log π) = π, so the loss of class 1 is −ln(1/4)
    assert adjusted_cross_entropy(zeros, label, log_prior).item() == pytest.approx(math.log(4), rel=1e-6)
    # τ = 2: softmax(2·log π) = (9/16, 1/16)/(10/16), so p_1 = 1/10
    assert adjusted_cross_entropy(zeros, label, log_prior, tau=2.0).item() == pytest.approx(math.log(10))
    logits = torch.randn(5, 2, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 1, 1, 0, 1])
    expected = F.cross_entropy(logits + 0.5 * log_prior, labels)
    assert torch.allclose(adjusted_cross_entropy(logits, labels, log_prior, tau=0.5), expected)


def test_la_trains_on_adjusted_logits_and_predicts_raw_ones():
    method = METHODS.get("la")({}, COUNTS)
    assert method.hparams == {"tau": 1.0}
    loss = method.loss(nn.Identity(), torch.zeros(1, 2), torch.tensor([1]), CONTEXT)
    assert loss.item() == pytest.approx(math.log(4), rel=1e-6)
    logits = torch.tensor([[0.2, 0.1]])
    assert torch.equal(method.logits(nn.Identity(), logits), logits)


def test_la_with_tau_one_is_balanced_softmax():
    logits = torch.randn(8, 3, generator=torch.Generator().manual_seed(1))
    labels = torch.tensor([0, 1, 2, 2, 1, 0, 0, 2])
    counts = np.array([50, 7, 1])
    la = METHODS.get("la")({}, counts).loss(nn.Identity(), logits, labels, CONTEXT)
    bs = METHODS.get("balanced-softmax")({}, counts).loss(nn.Identity(), logits, labels, CONTEXT)
    assert torch.allclose(la, bs)


def test_posthoc_trains_plain_ce_and_subtracts_the_log_prior():
    method = METHODS.get("la-posthoc")({}, COUNTS)
    assert method.hparams == {"tau": 1.0, "base_loss": "ce"}
    logits, labels = torch.tensor([[0.3, -0.2], [0.0, 0.0]]), torch.tensor([0, 1])
    assert torch.allclose(
        method.loss(nn.Identity(), logits, labels, CONTEXT), F.cross_entropy(logits, labels)
    )
    # z − log π: equal raw logits now favour the rare class 1
    adjusted = method.logits(nn.Identity(), torch.zeros(1, 2))
    assert adjusted.tolist()[0] == pytest.approx([-math.log(0.75), -math.log(0.25)], rel=1e-6)
    assert adjusted.argmax(1).item() == 1
    half = METHODS.get("la-posthoc")({"tau": 0.5}, COUNTS).logits(nn.Identity(), torch.zeros(1, 2))
    assert half.tolist()[0] == pytest.approx([-0.5 * math.log(0.75), -0.5 * math.log(0.25)], rel=1e-6)


def test_posthoc_focal_variant_and_bad_base_loss():
    method = METHODS.get("la-posthoc")({"base_loss": "focal"}, COUNTS)
    logits, labels = torch.tensor([[0.3, -0.2], [1.0, 0.0]]), torch.tensor([0, 1])
    assert torch.allclose(method.loss(nn.Identity(), logits, labels, CONTEXT), focal_loss(logits, labels))
    with pytest.raises(UserError, match="ce, focal"):
        METHODS.get("la-posthoc")({"base_loss": "mse"}, COUNTS)
