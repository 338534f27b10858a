"""Deconfound-TDE (docs/methods.md §12): multi-head cosine logits, moving average, counterfactual, α."""

from __future__ import annotations

import dataclasses
import itertools
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from baselines.base import METHODS, Method, StepContext
from baselines.tde import TDEClassifier, benchmark_alpha
from benchmark.errors import UserError
from benchmark.recipes import RECIPES

RECIPE = dataclasses.replace(RECIPES.get("fashion"), epochs=5)
STAGE = Method.base_stage(RECIPE)
COUNTS = np.array([3, 1])
# f = (3, 4 | 1, 0): per-head unit parts (0.6, 0.8) and (1, 0).
FEATURES = torch.tensor([[3.0, 4.0, 1.0, 0.0]])
# Class 0: ‖w^1‖ = 1, ‖w^2‖ = 2; class 1: ‖w^1‖ = 3, w^2 = 0.
WEIGHT = torch.tensor([[1.0, 0.0, 2.0, 0.0], [0.0, 3.0, 0.0, 0.0]])
G1, G2, G3 = 1 + 1 / 32, 2 + 1 / 32, 3 + 1 / 32  # ‖w_c^k‖ + γ


class Identity(nn.Module):
    """A backbone whose features are its inputs."""

    feature_dim = 4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _tde(**hparams):
    return METHODS.get("tde")(hparams, COUNTS)


def _head(moving_average=(0.0, 0.0, 0.0, 0.0)) -> TDEClassifier:
    head = TDEClassifier(4, 2)
    with torch.no_grad():
        head.weight.copy_(WEIGHT)
        head.moving_average.copy_(torch.tensor(moving_average))
    return head


def _session(benchmark="fashion-glt", train_split="train_glt"):
    return SimpleNamespace(benchmark=benchmark, train_split=train_split)


def _context(epoch: int = 0) -> StepContext:
    return StepContext(STAGE, epoch, torch.arange(2), torch.Generator().manual_seed(0))


def test_defaults_are_the_papers():
    expected = {"heads": 2, "tau": 16.0, "gamma": 0.03125, "average_decay": 0.995, "alpha": -1.0}
    assert _tde().hparams == expected


def test_logits_are_the_scaled_sum_of_per_head_cosines_with_causal_norm():
    # z_c = (16/2)·Σ_k w_c^k·f̂^k/(‖w_c^k‖ + 1/32)
    z0 = 8 * (0.6 * 1 / G1 + 1 * 2 / G2)
    z1 = 8 * (0.8 * 3 / G3)  # head 2 of class 1 is zero
    assert torch.allclose(_head()(FEATURES), torch.tensor([[z0, z1]]))
    # Each head is scale-invariant in f^k.
    scaled = FEATURES * torch.tensor([[5.0, 5.0, 0.1, 0.1]])
    assert torch.allclose(_head()(scaled), _head()(FEATURES))


def test_counterfactual_removal_subtracts_alpha_cos_times_the_unit_average_per_head():
    head = _head(moving_average=(1.0, 1.0, 5.0, 0.0))  # d̂^1 = (1, 1)/√2, d̂^2 = (1, 0)
    # cos(f^1, d^1) = 1.4/√2, cos(f^2, d^2) = 1: f̂^1 → (0.6, 0.8) − 0.7α·(1, 1), f̂^2 → (1 − α, 0).
    for alpha in (1.0, 2.0, 0.5):
        h1 = (0.6 - 0.7 * alpha, 0.8 - 0.7 * alpha)
        z0 = 8 * (h1[0] * 1 / G1 + (1 - alpha) * 2 / G2)
        z1 = 8 * (h1[1] * 3 / G3)
        assert torch.allclose(head(FEATURES, alpha=alpha), torch.tensor([[z0, z1]]))
    # α = 0 is the training logits, and so is any α while d = 0 (another code path: float32 tolerance).
    assert torch.allclose(head(FEATURES, alpha=0.0), head(FEATURES), rtol=1e-6, atol=1e-6)
    assert torch.allclose(_head()(FEATURES, alpha=2.0), _head()(FEATURES), rtol=1e-6, atol=1e-6)


def test_the_moving_average_updates_every_step_from_the_batch_mean_without_gradient():
    method = _tde()
    torch.manual_seed(0)
    model = method.build_model(Identity(), 2)
    first = torch.tensor([[1.0, 2.0, 3.0, 4.0], [3.0, 4.0, 5.0, 6.0]])  # mean (2, 3, 4, 5)
    loss = method.loss(model, first, torch.tensor([0, 1]), _context())
    expected = 0.005 * torch.tensor([2.0, 3.0, 4.0, 5.0])
    assert torch.allclose(model.head.moving_average, expected)
    assert loss.requires_grad and not model.head.moving_average.requires_grad
    assert torch.allclose(loss, F.cross_entropy(model(first), torch.tensor([0, 1])))
    method.loss(model, torch.full((2, 4), 4.0), torch.tensor([0, 1]), _context())
    assert torch.allclose(model.head.moving_average, 0.995 * expected + 0.005 * 4.0)
    # The checkpointed weights hold d.
    assert torch.equal(model.state_dict()["head.moving_average"], model.head.moving_average)


def test_under_bf16_autocast_the_average_stays_float32_and_is_the_mean_of_the_bf16_features():
    method = _tde(average_decay=0.0)  # d = this batch's mean
    backbone = nn.Sequential(nn.Linear(4, 4))
    backbone.feature_dim = 4
    model = method.build_model(backbone, 2)
    x = torch.randn(8, 4, generator=torch.Generator().manual_seed(1))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        method.loss(model, x, torch.zeros(8, dtype=torch.long), _context())
        features = model.features(x)
    assert features.dtype == torch.bfloat16 and model.head.moving_average.dtype == torch.float32
    assert torch.allclose(model.head.moving_average, features.float().mean(0))


def test_alpha_by_benchmark_and_training_split():
    assert benchmark_alpha("imagenet-glt", "train_glt") == 2.0
    for name in ("mscoco-glt", "fashion-glt", "fashion-glt-mini"):
        assert benchmark_alpha(name, "train_glt") == 1.0
    for name in ("imagenet-glt", "mscoco-glt", "fashion-glt", "some-new-benchmark"):
        assert benchmark_alpha(name, "train_cbl") == 0.0
    with pytest.raises(UserError, match="--set alpha="):
        benchmark_alpha("some-new-benchmark", "train_glt")


def test_alpha_is_resolved_at_the_first_epoch_and_in_finish_and_a_set_value_overrides():
    method = _tde()
    assert method.report() == {"alpha": None}
    method.begin_epoch(None, _context(), _session("imagenet-glt"))
    assert method.alpha == 2.0
    method.finish(None, _session("imagenet-glt", "train_cbl"))
    assert method.report() == {"alpha": 0.0}
    overridden = _tde(alpha=0.5)
    overridden.begin_epoch(None, _context(), _session("some-new-benchmark"))
    overridden.finish(None, _session("imagenet-glt", "train_cbl"))
    assert overridden.report() == {"alpha": 0.5}
    with pytest.raises(UserError, match="--set alpha="):
        _tde().begin_epoch(None, _context(), _session("some-new-benchmark"))


def test_invalid_options_are_user_errors():
    with pytest.raises(UserError, match="alpha"):
        _tde(alpha=-0.5)
    with pytest.raises(UserError, match="average_decay"):
        _tde(average_decay=1.0)
    with pytest.raises(UserError, match="heads must divide"):
        _tde(heads=3).build_model(Identity(), 2)


def test_removal_is_active_from_the_first_epochs_val_pass_in_a_five_epoch_run():
    method = _tde()
    torch.manual_seed(0)
    model = method.build_model(Identity(), 2)
    x = torch.randn(4, 4, generator=torch.Generator().manual_seed(2)).abs()
    averages = []
    for epoch in range(RECIPE.epochs):
        method.begin_epoch(model, _context(epoch), _session())
        method.loss(model, x, torch.tensor([0, 1, 0, 1]), _context(epoch))
        averages.append(model.head.moving_average.clone())
        # Val after epoch 0 already predicts with α = 1 (fashion-glt, Train-GLT) and the current d.
        logits = method.logits(model, x)
        assert torch.allclose(logits, model.head(x, alpha=1.0))
        assert not torch.allclose(logits, model(x))
    assert all(not torch.equal(a, b) for a, b in itertools.pairwise(averages))
