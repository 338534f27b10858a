"""RIDE (docs/methods.md §10): per-expert LDAM loss, diversity term and temperatures, DRW switch, schedule,
optional stage 2 — against hand-computed values."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from baselines.base import METHODS, StepContext
from baselines.ldam import effective_number_weights, ldam_loss, ldam_margins
from baselines.ride import diversity_temperature, ride_loss
from baselines.samplers import class_aware
from benchmark.errors import UserError
from benchmark.models import BACKBONES
from benchmark.recipes import RECIPES

RECIPE = dataclasses.replace(RECIPES.get("fashion"), epochs=5)
COUNTS = np.array([16, 1, 81])  # margins (1/4, 1/2, 1/6)


def _ride(counts: np.ndarray = COUNTS, **hparams):
    return METHODS.get("ride")(hparams, counts)


def _ce(logits: list[float], label: int) -> float:
    return -logits[label] + math.log(sum(math.exp(v) for v in logits))


def _kl(p: list[float], q: list[float]) -> float:
    return sum(a * math.log(a / b) for a, b in zip(p, q, strict=True))


def _softmax(z: list[float]) -> list[float]:
    e = [math.exp(v) for v in z]
    return [v / sum(e) for v in e]


def test_each_expert_gets_the_ldam_loss_with_the_true_logit_lowered_by_s_times_m_y_and_they_add_up():
    # z_k = 30·cos; label 0 (m = 1/4): expert 1 (7.5, 6, −3), expert 2 30·(0.1 − 1/4, 0.3, 0) = (−4.5, 9, 0).
    logits = 30 * torch.tensor([[[0.5, 0.2, -0.1]], [[0.1, 0.3, 0.0]]])
    labels = torch.tensor([0])
    got = ride_loss(logits, labels, ldam_margins(COUNTS), 30.0, None, torch.ones(3), diversity=0.0)
    assert got.item() == pytest.approx(_ce([7.5, 6, -3], 0) + _ce([-4.5, 9, 0], 0), rel=1e-5)
    w = torch.tensor([0.5, 1.0, 2.0])
    weighted = ride_loss(logits, labels, ldam_margins(COUNTS), 30.0, w, torch.ones(3), diversity=0.0)
    assert weighted.item() == pytest.approx(got.item(), rel=1e-5)  # one sample: the weight cancels
    expected = sum(ldam_loss(z / 30, labels, ldam_margins(COUNTS), 30.0, w) for z in logits)
    assert torch.allclose(weighted, expected)


def test_diversity_term_is_minus_point_two_times_kl_of_the_detached_mean_and_rewards_disagreement():
    # Two classes, no margins; z_1 = (0, 0), z_2 = (ln 3, 0), label 0, T = 1:
    # CE = ln 2 + ln(4/3); z̄ = (ln 3 / 2, 0), p̄ = (√3, 1)/(1 + √3); loss = CE − 0.2·Σ_k KL(p̄ ‖ p_k).
    z = torch.tensor([[[0.0, 0.0]], [[math.log(3), 0.0]]], requires_grad=True)
    labels = torch.tensor([0])
    got = ride_loss(z, labels, torch.zeros(2), 30.0, None, torch.ones(2), diversity=-0.2)
    ce = math.log(2) + math.log(4 / 3)
    p_bar = [math.sqrt(3) / (1 + math.sqrt(3)), 1 / (1 + math.sqrt(3))]
    kl = _kl(p_bar, [0.5, 0.5]) + _kl(p_bar, [0.75, 0.25])
    assert got.item() == pytest.approx(ce - 0.2 * kl, rel=1e-5)
    assert got.item() < ce  # disagreement lowers the loss
    # p̄ is a constant: the gradient is that of CE − 0.2·Σ KL(p̄_fixed ‖ softmax(z_k)).
    got.backward()
    fixed = torch.tensor(p_bar)
    y = z.detach().clone().requires_grad_(True)
    manual = sum(F.cross_entropy(e, labels) for e in y) - 0.2 * sum(
        (fixed * (fixed.log() - e.log_softmax(1))).sum() for e in y
    )
    manual.backward()
    assert torch.allclose(z.grad, y.grad, atol=1e-6)


def test_per_class_temperature_divides_logits_class_by_class_and_scales_by_mean_t_squared():
    # counts (3, 1): w' = 0.02·2·(0.75, 0.25) + 0.98 = (1.01, 0.99) → T = (1, 0.99/1.01), T̄ = mean.
    temperature = diversity_temperature(np.array([3, 1]))
    t = [1.0, 0.99 / 1.01]
    assert temperature.tolist() == pytest.approx(t, rel=1e-6)
    z1, z2 = [0.0, 0.0], [math.log(3), 0.0]
    z = torch.tensor([[z1], [z2]])
    got = ride_loss(z, torch.tensor([0]), torch.zeros(2), 30.0, None, temperature, diversity=-0.2)
    p_bar = _softmax([(a + b) / 2 / tc for a, b, tc in zip(z1, z2, t, strict=True)])
    kl = sum(_kl(p_bar, _softmax([v / tc for v, tc in zip(e, t, strict=True)])) for e in (z1, z2))
    ce = math.log(2) + math.log(4 / 3)  # the CE part sees no temperature
    assert got.item() == pytest.approx(ce - 0.2 * (sum(t) / 2) ** 2 * kl, rel=1e-5)
    assert diversity_temperature(np.array([90, 10])).tolist() == pytest.approx([1.0, 0.984 / 1.016])


def test_drw_weights_and_temperatures_switch_on_past_the_milestone_as_the_originals_epoch_gt_80():
    """The original tests `epoch > 80` on its 0-based epoch: 0-based epoch 81 of 100 is the first with
    re-weighting, and 9 of a 10-epoch stage (⌊0.8·10⌋ = 8)."""
    method = _ride()
    (full,) = method.stages(dataclasses.replace(RECIPE, epochs=100))
    assert [method.reweighting(StepContext(full, e))[0] is None for e in (79, 80, 81, 99)] == [
        True, True, False, False,
    ]  # fmt: skip
    (stage,) = method.stages(dataclasses.replace(RECIPE, epochs=10))
    model = _model(method)
    images, labels = torch.randn(4, 1, 12, 12), torch.tensor([0, 1, 2, 2])
    model.eval()
    losses = []
    for epoch in range(10):
        context = StepContext(stage, epoch)
        weights, temperature = method.reweighting(context)
        if epoch <= 8:
            assert weights is None and temperature.tolist() == [1.0, 1.0, 1.0]
        else:
            assert torch.allclose(weights, effective_number_weights(COUNTS))
            assert torch.allclose(temperature, diversity_temperature(COUNTS))
        with torch.no_grad():
            losses.append(method.loss(model, images, labels, context))
            expert_logits = model.expert_logits(model.features(images))
            assert torch.allclose(losses[-1], method.classification_loss(expert_logits, labels, context))
    assert torch.equal(losses[0], losses[8]) and not torch.allclose(losses[8], losses[9])


def test_schedule_weight_decay_and_multistep_milestones():
    method = _ride()
    (short,) = method.stages(RECIPE)
    assert (short.schedule, short.milestones, short.gamma, short.weight_decay) == (
        "multistep",
        (3, 4),
        0.1,
        2e-4,
    )
    assert (short.lr, short.momentum, short.epochs) == (RECIPE.lr, RECIPE.momentum, 5)
    (full,) = method.stages(dataclasses.replace(RECIPE, epochs=100))
    assert full.milestones == (60, 80)
    assert method.hparams["diversity"] == -0.2 and method.hparams["scale"] == 30.0


def _model(method):
    torch.manual_seed(0)
    return method.build_model(BACKBONES.get("small-cnn")(1), 3)


def test_stage2_retrains_fresh_expert_classifiers_class_aware_on_the_frozen_backbone():
    method = _ride(stage2=True)
    main, stage2 = method.stages(RECIPE)
    assert not main.freeze_backbone and stage2.freeze_backbone
    assert (stage2.name, stage2.epochs, stage2.schedule, stage2.weight_decay) == ("stage2", 1, "cosine", 2e-4)
    assert (stage2.lr, stage2.momentum) == (RECIPE.lr, RECIPE.momentum)
    assert method.stages(dataclasses.replace(RECIPE, epochs=100))[1].epochs == 10
    model = _model(method)
    old = model.heads[0].weight.detach().clone()
    model = method.begin_stage(model, stage2)
    assert not torch.equal(model.heads[0].weight, old)
    (group,) = method.param_groups(model, stage2)
    assert [id(p) for p in group["params"]] == [id(p) for p in model.heads.parameters()]
    labels = np.array([0, 0, 0, 0, 1, 2])
    order = method.epoch_order(labels, np.random.default_rng(3), StepContext(stage2, 0))
    assert np.array_equal(order, class_aware(labels, np.random.default_rng(3)))
    images, y = torch.randn(3, 1, 12, 12), torch.tensor([0, 1, 2])
    model.eval()
    with torch.no_grad():
        z = model.expert_logits(model.features(images))
        expected = sum(F.cross_entropy(e, y) for e in z)
        assert torch.allclose(method.loss(model, images, y, StepContext(stage2, 0)), expected)


def test_bad_options_are_refused_and_report_counts_experts():
    with pytest.raises(UserError, match="num_experts"):
        _ride(num_experts=0)
    assert _ride(num_experts=4).report() == {"experts": 4}
