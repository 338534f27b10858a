"""Learning from Failure (docs/methods.md §13): GCE, failure weights, separate gradients, EMA, LFFLA."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from baselines.base import METHODS, Method, StepContext
from baselines.lff import (
    LfFNetwork,
    LossAverages,
    detached_generalized_cross_entropy,
    failure_weights,
    generalized_cross_entropy,
)
from benchmark.errors import UserError
from benchmark.recipes import RECIPES

RECIPE = dataclasses.replace(RECIPES.get("fashion"), epochs=5)
STAGE = Method.base_stage(RECIPE)
COUNTS = np.array([3, 1])  # π = (3/4, 1/4)


class Features(nn.Module):
    """A small trainable backbone."""

    feature_dim = 3

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.linear(x))

    def fresh(self) -> Features:
        return Features()


def _lff(**hparams):
    return METHODS.get("lff")(hparams, COUNTS)


def _model(method) -> LfFNetwork:
    torch.manual_seed(0)
    return method.build_model(Features(), 2)


def _context(indices=(0, 1, 2, 3), epoch: int = 0) -> StepContext:
    return StepContext(STAGE, epoch, torch.tensor(indices), torch.Generator().manual_seed(0))


def _batch():
    x = torch.randn(4, 2, generator=torch.Generator().manual_seed(3))
    return x, torch.tensor([0, 1, 0, 0])


def test_defaults_and_report():
    method = _lff()
    assert method.hparams == {"q": 0.7, "gce": "original", "ema": False, "ema_alpha": 0.7, "posthoc_tau": 0.0}
    assert method.report() == {"models": 2}
    assert method.stages(RECIPE) == [STAGE]  # the base schedule; W acts from the first step


def test_generalized_cross_entropy_value_and_gradient_emphasise_easy_samples():
    # p = softmax(0, ln 3) = (1/4, 3/4)
    logits = torch.tensor([[0.0, math.log(3.0)]], requires_grad=True)
    label = torch.tensor([1])
    gce = generalized_cross_entropy(logits, label)
    assert gce.item() == pytest.approx((1 - 0.75**0.7) / 0.7, rel=1e-6)
    (grad,) = torch.autograd.grad(gce.sum(), logits)
    # ∇GCE = p_y^q·∇CE, ∇CE = p − e_y = (1/4, −1/4)
    assert torch.allclose(grad, 0.75**0.7 * torch.tensor([[0.25, -0.25]]))
    # Relative to CE, an easy sample (p_y = 0.9) weighs (0.9/0.1)^0.7 times a hard one (p_y = 0.1).
    two = torch.tensor([[0.0, math.log(9.0)], [0.0, math.log(1 / 9)]], requires_grad=True)
    labels = torch.tensor([1, 1])
    (g_gce,) = torch.autograd.grad(generalized_cross_entropy(two, labels).sum(), two)
    (g_ce,) = torch.autograd.grad(F.cross_entropy(two, labels, reduction="sum"), two)
    ratio = g_gce.norm(dim=1) / g_ce.norm(dim=1)
    assert torch.allclose(ratio, torch.tensor([0.9**0.7, 0.1**0.7]))
    # q = 1 is 1 − p_y; p_y → 0 stays finite.
    assert generalized_cross_entropy(logits, label, q=1.0).item() == pytest.approx(0.25)
    far = torch.tensor([[0.0, -200.0]], requires_grad=True)
    (g,) = torch.autograd.grad(generalized_cross_entropy(far, label).sum(), far)
    assert torch.isfinite(g).all()


def test_the_originals_gce_is_ce_times_q_p_to_the_q_with_the_factor_detached():
    # p = softmax(0, ln 3) = (1/4, 3/4): value CE·q·p_y^q, gradient q·p_y^q·(p − e_y)
    logits = torch.tensor([[0.0, math.log(3.0)]], requires_grad=True)
    label = torch.tensor([1])
    value = detached_generalized_cross_entropy(logits, label)
    assert value.item() == pytest.approx(-math.log(0.75) * 0.7 * 0.75**0.7, rel=1e-6)
    (grad,) = torch.autograd.grad(value.sum(), logits)
    assert torch.allclose(grad, 0.7 * 0.75**0.7 * torch.tensor([[0.25, -0.25]]))
    (paper,) = torch.autograd.grad(generalized_cross_entropy(logits, label).sum(), logits)
    assert torch.allclose(grad, 0.7 * paper)  # the same direction, q times the paper form's
    with pytest.raises(UserError, match="gce must be one of original, paper"):
        _lff(gce="mae")


def test_failure_weights():
    weights = failure_weights(torch.tensor([1.0, 3.0, 0.0]), torch.tensor([1.0, 1.0, 2.0]))
    assert torch.allclose(weights, torch.tensor([0.5, 0.75, 0.0]))
    assert not weights.requires_grad


def test_network_exposes_both_backbones_for_freezing_and_the_debiased_model_for_prediction():
    model = _model(_lff())
    x, _ = _batch()
    debiased, biased = model.backbone.debiased, model.backbone.biased
    assert set(model.backbone.parameters()) == set(debiased.parameters()) | set(biased.parameters())
    assert torch.equal(model.features(x), debiased(x))
    assert torch.equal(model(x), model.head(debiased(x)))
    assert torch.equal(model.biased_logits(x), model.biased_head(biased(x)))
    assert not torch.equal(model.head.weight, model.biased_head.weight)
    keys = {k.split(".")[0] + "." + k.split(".")[1] for k in model.state_dict() if k.startswith("backbone")}
    assert keys == {"backbone.debiased", "backbone.biased"}


@pytest.mark.parametrize("form", ["original", "paper"])
def test_the_biased_model_gets_only_the_gce_gradient_and_the_debiased_only_the_weighted_ce(form):
    method = _lff(gce=form)
    gce = {"original": detached_generalized_cross_entropy, "paper": generalized_cross_entropy}[form]
    model = _model(method)
    x, y = _batch()
    biased = [*model.backbone.biased.parameters(), *model.biased_head.parameters()]
    debiased = [*model.backbone.debiased.parameters(), *model.head.parameters()]
    total = torch.autograd.grad(method.loss(model, x, y, _context()), biased + debiased)
    logits_b, logits_d = model.biased_logits(x), model(x)
    ce_b = F.cross_entropy(logits_b, y, reduction="none").detach()
    ce_d = F.cross_entropy(logits_d, y, reduction="none")
    weights = ce_b / (ce_b + ce_d.detach() + 1e-8)
    gce_only = torch.autograd.grad(gce(logits_b, y).mean(), biased)
    weighted_only = torch.autograd.grad((weights * ce_d).mean(), debiased)
    for got, want in zip(total, [*gce_only, *weighted_only], strict=True):
        assert torch.allclose(got, want, atol=1e-7)
    value = method.loss(model, x, y, _context())
    assert value.item() == pytest.approx((gce(logits_b, y).mean() + (weights * ce_d).mean()).item(), rel=1e-6)


def test_loss_averages_start_at_the_first_loss_then_move_by_alpha_normalised_by_class_maximum():
    averages = LossAverages(size=4, num_classes=2, alpha=0.7)
    labels = torch.tensor([0, 0, 1])
    averages.update(torch.tensor([0, 1, 2]), labels, torch.tensor([[2.0, 4.0, 1.0], [1.0, 1.0, 3.0]]))
    assert torch.allclose(averages.values[:, :3], torch.tensor([[2.0, 4.0, 1.0], [1.0, 1.0, 3.0]]))
    averages.update(torch.tensor([1, 3]), torch.tensor([0, 1]), torch.tensor([[1.0, 5.0], [2.0, 6.0]]))
    # index 1: 0.7·4 + 0.3·1 = 3.1 (biased), 0.7·1 + 0.3·2 = 1.3 (debiased); index 3 first seen.
    assert torch.allclose(averages.values, torch.tensor([[2.0, 3.1, 1.0, 5.0], [1.0, 1.3, 3.0, 6.0]]))
    # Class maxima: biased (3.1, 5), debiased (1.3, 6).
    got = averages.normalised(torch.tensor([0, 1, 2]), labels)
    assert torch.allclose(got, torch.tensor([[2 / 3.1, 1.0, 1 / 5], [1 / 1.3, 1.0, 3 / 6]]))


def test_ema_weights_come_from_the_averages_and_survive_a_state_round_trip():
    method = _lff(ema=True)
    model = _model(method)
    x, y = _batch()
    method.loss(model, x, y, _context((0, 1, 2, 3)))
    # After one step the averages are the batch losses; W uses them divided by the class maxima.
    ce_b = F.cross_entropy(model.biased_logits(x), y, reduction="none").detach()
    ce_d = F.cross_entropy(model(x), y, reduction="none").detach()
    assert torch.allclose(method.averages.values, torch.stack([ce_b, ce_d]))
    state = method.state_dict()
    resumed = _lff(ema=True)
    resumed.load_state_dict(state)
    assert torch.equal(resumed.averages.values, method.averages.values)
    assert torch.equal(resumed.averages.labels, method.averages.labels)
    context = _context((2, 3, 0, 1))
    assert torch.equal(resumed.loss(model, x, y, context), method.loss(model, x, y, context))
    assert torch.equal(resumed.averages.values, method.averages.values)
    assert _lff().state_dict() == {}


def test_ema_needs_indices():
    method = _lff(ema=True)
    x, y = _batch()
    with pytest.raises(ValueError, match="indices"):
        method.loss(_model(method), x, y, StepContext(STAGE, 0))


def test_posthoc_tau_subtracts_the_log_prior_from_the_debiased_logits():
    x, _ = _batch()
    model = _model(_lff())
    assert torch.allclose(_lff().logits(model, x), model(x))
    shifted = _lff(posthoc_tau=1.0).logits(model, x)
    assert torch.allclose(shifted, model(x) - torch.log(torch.tensor([0.75, 0.25])))


def test_invalid_options_are_user_errors():
    with pytest.raises(UserError, match="q must be"):
        _lff(q=0.0)
    with pytest.raises(UserError, match="ema_alpha"):
        _lff(ema_alpha=1.0)


def test_the_two_models_start_from_independent_weights():
    model = _model(_lff())
    assert model.backbone.debiased is not model.backbone.biased
    assert not torch.equal(model.backbone.debiased.linear.weight, model.backbone.biased.linear.weight)
