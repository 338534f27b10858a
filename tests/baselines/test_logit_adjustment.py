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
    """Against Balanced Softmax written out: −log(n_y·e^{z_y} / Σ_c n_c·e^{z_c}), averaged."""
    logits = torch.randn(8, 3, generator=torch.Generator().manual_seed(1))
    labels = torch.tensor([0, 1, 2, 2, 1, 0, 0, 2])
    counts = np.array([50, 7, 1])
    by_hand = 0.0
    for z, y in zip(logits.tolist(), labels.tolist(), strict=True):
        weighted = [n * math.exp(v) for n, v in zip(counts.tolist(), z, strict=True)]
        by_hand -= math.log(weighted[y] / sum(weighted)) / len(labels)
    la = METHODS.get("la")({}, counts).loss(nn.Identity(), logits, labels, CONTEXT)
    assert la.item() == pytest.approx(by_hand, rel=1e-5)


def test_posthoc_trains_plain_ce_and_subtracts_the_log_prior():
    method = METHODS.get("la-posthoc")({}, COUNTS)
    assert method.hparams == {"tau": 1.0, "base_loss": "ce", "focal_detach": True}
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


def test_posthoc_focal_variant_detaches_the_factor_like_the_original_and_bad_base_loss():
    """FocalLA: the value is −(1 − p_y)²·log p_y either way; the original's gradient treats (1 − p_y)²
    as a constant: ∂/∂z = (1 − p_y)²·(p − e_y), by hand for two classes."""
    logits, labels = torch.tensor([[0.3, -0.2], [1.0, 0.0]]), torch.tensor([0, 1])
    grads = {}
    for detach in (True, False):
        method = METHODS.get("la-posthoc")({"base_loss": "focal", "focal_detach": detach}, COUNTS)
        z = logits.clone().requires_grad_(True)
        loss = method.loss(nn.Identity(), z, labels, CONTEXT)
        assert torch.allclose(loss, focal_loss(logits, labels))
        loss.backward()
        grads[detach] = z.grad
    p = logits.softmax(1)
    p_y = p[torch.arange(2), labels]
    expected = (1 - p_y)[:, None] ** 2 * (p - F.one_hot(labels, 2)) / 2  # mean over the batch of 2
    assert torch.allclose(grads[True], expected, atol=1e-6)
    assert not torch.allclose(grads[False], expected, atol=1e-3)
    assert METHODS.get("la-posthoc")({"base_loss": "focal"}, COUNTS).hparams["focal_detach"] is True
    with pytest.raises(UserError, match="ce, focal"):
        METHODS.get("la-posthoc")({"base_loss": "mse"}, COUNTS)
