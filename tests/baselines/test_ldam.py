"""LDAM-DRW (docs/methods.md §5): margins, DRW weights, cosine head, schedule and loss by hand."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from torch import nn

from baselines.base import METHODS, StepContext
from baselines.ldam import CosineClassifier, effective_number_weights, ldam_loss, ldam_margins
from benchmark.models import BACKBONES
from benchmark.recipes import RECIPES

COUNTS = np.array([16, 1, 81])  # n^(−1/4) = (1/2, 1, 1/3)


def test_margins_follow_n_to_the_minus_quarter_with_largest_half():
    assert ldam_margins(COUNTS).tolist() == pytest.approx([0.25, 0.5, 1 / 6])
    assert ldam_margins(np.array([10_000, 625, 16]), max_margin=1.0).tolist() == pytest.approx(
        [0.2, 0.4, 1.0]
    )


def test_effective_number_weights_formula_and_sum():
    # β = 1/2, n = (1, 2, 3): raw (1, 2/3, 4/7), sum 47/21, scaled to sum 3
    assert effective_number_weights(np.array([1, 2, 3]), beta=0.5).tolist() == pytest.approx(
        [63 / 47, 42 / 47, 36 / 47]
    )
    counts = np.array([5000, 300, 20, 3])
    weights = effective_number_weights(counts)
    raw = [(1 - 0.9999) / (1 - 0.9999**n) for n in counts]
    assert weights.tolist() == pytest.approx([r * 4 / sum(raw) for r in raw], rel=1e-6)
    assert weights.sum().item() == pytest.approx(4.0)
    assert torch.all(weights[1:] > weights[:-1])  # rarer classes weigh more


def test_cosine_classifier_outputs_cosines_without_bias():
    torch.manual_seed(0)
    head = CosineClassifier(4, 3)
    assert [name for name, _ in head.named_parameters()] == ["weight"]
    assert head.weight.norm(dim=1).tolist() == pytest.approx([1.0] * 3, rel=1e-6)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[2.0, 0, 0, 0], [0, 3.0, 0, 0], [1.0, 1.0, 0, 0]]))
    out = head(torch.tensor([[5.0, 0, 0, 0], [1.0, 1.0, 0, 0]]))
    s = 1 / math.sqrt(2)
    assert out.tolist()[0] == pytest.approx([1.0, 0.0, s])
    assert out.tolist()[1] == pytest.approx([s, s, 1.0])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert head(torch.randn(2, 4)).dtype == torch.float32


def test_loss_on_a_two_by_three_example():
    cosines = torch.tensor([[0.5, 0.2, -0.1], [0.1, 0.3, 0.0]])
    labels = torch.tensor([0, 2])
    margins = ldam_margins(COUNTS)  # (1/4, 1/2, 1/6)
    # s = 30: row 0 → (30·(0.5 − 1/4), 6, −3) = (7.5, 6, −3); row 1 → (3, 9, 30·(0 − 1/6)) = (3, 9, −5)
    l0 = -7.5 + math.log(math.exp(7.5) + math.exp(6) + math.exp(-3))
    l1 = 5 + math.log(math.exp(3) + math.exp(9) + math.exp(-5))
    assert ldam_loss(cosines, labels, margins).item() == pytest.approx((l0 + l1) / 2, rel=1e-5)
    w = torch.tensor([0.5, 1.0, 2.0])
    weighted = ldam_loss(cosines, labels, margins, weight=w).item()
    assert weighted == pytest.approx((0.5 * l0 + 2.0 * l1) / 2.5, rel=1e-5)


def test_stage_weight_decay_and_compounding_multistep_milestones():
    method = METHODS.get("ldam-drw")({}, COUNTS)
    recipe = RECIPES.get("fashion")
    (stage,) = method.stages(recipe)
    assert stage.weight_decay == 2e-4 and stage.lr == recipe.lr and stage.momentum == recipe.momentum
    assert (stage.schedule, stage.milestones, stage.gamma) == ("multistep", (24, 27), 0.01)
    (short,) = method.stages(dataclasses.replace(recipe, epochs=5))
    assert short.milestones == (4, 4)


def test_drw_switches_on_at_four_fifths_of_a_five_epoch_stage():
    method = METHODS.get("ldam-drw")({}, COUNTS)
    (stage,) = method.stages(dataclasses.replace(RECIPES.get("fashion"), epochs=5))
    cosines = torch.tensor([[0.5, 0.2, -0.1], [0.1, 0.3, 0.0]])
    labels = torch.tensor([0, 2])
    margins = ldam_margins(COUNTS)
    drw = effective_number_weights(COUNTS)
    for epoch in range(5):
        context = StepContext(stage=stage, epoch=epoch)
        weights = method.class_weights(context)
        loss = method.loss(nn.Identity(), cosines, labels, context)
        if epoch < 4:  # every class weighs 1 before the milestone
            assert weights is None
            assert torch.allclose(loss, ldam_loss(cosines, labels, margins))
        else:
            assert torch.equal(weights, drw)
            assert torch.allclose(loss, ldam_loss(cosines, labels, margins, weight=drw))
            assert not torch.allclose(loss, ldam_loss(cosines, labels, margins))


def test_the_method_builds_a_cosine_head_and_predicts_its_argmax():
    method = METHODS.get("ldam-drw")({}, COUNTS)
    assert method.hparams["scale"] == 30.0 and method.hparams["beta"] == 0.9999
    model = method.build_model(BACKBONES.get("small-cnn")(1), 3)
    assert isinstance(model.head, CosineClassifier)
    images = torch.randn(2, 1, 28, 28)
    model.eval()
    logits = method.logits(model, images)
    features = model.features(images).detach().double()
    weight = model.head.weight.detach().double()
    cosines = (features / features.norm(dim=1, keepdim=True)) @ (weight / weight.norm(dim=1, keepdim=True)).T
    assert torch.allclose(logits.double(), cosines, atol=1e-6)  # prediction: the plain cosines
    # Training: s·(cos − m_y) on the true class only, margins (1/4, 1/2, 1/6) for counts (16, 1, 81).
    labels = torch.tensor([1, 2])
    (stage,) = method.stages(RECIPES.get("fashion"))
    loss = method.loss(model, images, labels, StepContext(stage=stage, epoch=0)).item()
    by_hand = 0.0
    for row, label in zip(cosines.tolist(), labels.tolist(), strict=True):
        z = [30 * (c - ([0.25, 0.5, 1 / 6][j] if j == label else 0.0)) for j, c in enumerate(row)]
        by_hand += (math.log(sum(math.exp(v) for v in z)) - z[label]) / 2
    assert loss == pytest.approx(by_hand, rel=1e-4)
