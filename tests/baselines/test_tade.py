"""TADE (docs/methods.md §11): the inverse prior, the three expert losses by hand, and the test-time
self-supervised aggregation."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from baselines.base import METHODS, Method, StepContext
from baselines.tade import aggregate, inverse_prior, learn_aggregation, tade_loss
from benchmark.errors import UserError
from benchmark.models import BACKBONES
from benchmark.recipes import RECIPES
from benchmark.transforms import Pipeline

RECIPE = dataclasses.replace(RECIPES.get("fashion"), epochs=5)
COUNTS = np.array([2, 7, 1])  # π = (0.2, 0.7, 0.1)


def _tade(**hparams):
    return METHODS.get("tade")(hparams, COUNTS)


def _model(method):
    torch.manual_seed(0)
    return method.build_model(BACKBONES.get("small-cnn")(1), 3)


def test_inverse_prior_gives_the_rarest_class_the_largest_prior():
    # ranks (ascending): class 2 (0.1), class 0 (0.2), class 1 (0.7) → reversed values 0.7, 0.2, 0.1.
    assert inverse_prior(torch.tensor([0.2, 0.7, 0.1])).tolist() == pytest.approx([0.2, 0.1, 0.7])
    assert inverse_prior(torch.tensor([0.5, 0.3, 0.2])).tolist() == pytest.approx([0.2, 0.3, 0.5])


def test_three_expert_losses_on_a_three_class_example():
    # Zero logits, label 2. Expert 1: CE = ln 3. Expert 2: softmax(log π) = π → −ln 0.1.
    # Expert 3: softmax(log π − 2·log π_inv) ∝ π/π_inv² = (0.2/0.04, 0.7/0.01, 0.1/0.49) = (5, 70, 0.2041).
    prior = torch.tensor([0.2, 0.7, 0.1])
    labels = torch.tensor([2])
    zeros = torch.zeros(3, 1, 3)
    third = 0.1 / 0.49
    expected = math.log(3) - math.log(0.1) - math.log(third / (5 + 70 + third))
    assert tade_loss(zeros, labels, prior, 2.0).item() == pytest.approx(expected, rel=1e-5)
    # Each expert on its own: only expert k's logits differ from zero → only its term changes.
    z = torch.zeros(3, 1, 3)
    z[1, 0] = torch.tensor([1.0, 0.0, 2.0])  # expert 2: softmax of (1 + ln .2, ln .7, 2 + ln .1)
    e2 = [math.exp(1) * 0.2, 0.7, math.exp(2) * 0.1]
    expected2 = math.log(3) - math.log(e2[2] / sum(e2)) - math.log(third / (5 + 70 + third))
    assert tade_loss(z, labels, prior, 2.0).item() == pytest.approx(expected2, rel=1e-5)


def test_method_loss_uses_the_training_prior_and_tau_two():
    method = _tade()
    assert method.hparams["tau"] == 2.0 and method.hparams["aggregation"] == "mean"
    assert method.stages(RECIPE) == [Method.base_stage(RECIPE)]
    model = _model(method)
    model.eval()
    images, labels = torch.randn(4, 1, 12, 12), torch.tensor([0, 1, 2, 1])
    with torch.no_grad():
        z = model.expert_logits(model.features(images))
        got = method.loss(model, images, labels, StepContext(method.stages(RECIPE)[0], 0))
    assert torch.allclose(got, tade_loss(z, labels, torch.tensor([0.2, 0.7, 0.1]), 2.0))


def test_aggregation_moves_toward_the_expert_whose_two_views_agree():
    # Expert 1 predicts the same in both views, expert 2 flips its prediction, expert 3 half flips.
    torch.manual_seed(0)
    base = torch.randn(8, 2) * 3

    def pair() -> tuple[torch.Tensor, torch.Tensor]:
        first = torch.stack([base, base, base / 3])
        second = torch.stack([base, -base, -base / 3])
        return first, second

    weights, steps = learn_aggregation((pair() for _ in range(20)), 3, lr=0.025, momentum=0.9)
    assert steps == 20
    assert weights.sum().item() == pytest.approx(1.0)
    assert weights[0] > 1 / 3 > weights[1] and weights[0] > weights[2] > weights[1]
    none, _ = learn_aggregation([], 3, lr=0.025, momentum=0.9)
    assert none.tolist() == pytest.approx([1 / 3] * 3)  # a = 0 at the start


def test_self_supervised_adapt_learns_weights_per_split_and_predicts_the_weighted_logits():
    method = _tade(aggregation="self-supervised", tta_batch_size=4)
    model = _model(method)
    pipeline = Pipeline(RECIPE, (0.5,), (0.5,), torch.device("cpu"))
    images = torch.randint(0, 256, (10, 1, 12, 12), dtype=torch.uint8)
    x = pipeline.eval(images)
    model.eval()
    with torch.no_grad():
        assert torch.allclose(method.logits(model, x), model(x))  # before adapt (training, Val): mean
    model.train()
    shown = method.adapt(model, images, pipeline, torch.Generator().manual_seed(5))
    assert shown["steps"] == 3 and shown["images"] == 10  # ⌈10/4⌉ batches, one pass
    assert sum(shown["aggregation_weights"]) == pytest.approx(1.0, abs=1e-5)
    assert model.training  # adapt runs the network in eval mode, then restores its mode
    model.eval()
    with torch.no_grad():
        expected = aggregate(model.expert_logits(model.features(x)), method.weights)
        assert torch.allclose(method.logits(model, x), expected)
    again = _tade(aggregation="self-supervised", tta_batch_size=4)
    assert again.adapt(model, images, pipeline, torch.Generator().manual_seed(5)) == shown
    mean = _tade()
    assert mean.adapt(model, images, pipeline, torch.Generator().manual_seed(5)) == {}
    assert mean.weights is None


def test_bad_aggregation_is_refused():
    with pytest.raises(UserError, match="mean, self-supervised"):
        _tade(aggregation="router")
