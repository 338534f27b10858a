"""BBN (docs/methods.md §9): reversed sampler, pairing through the engine's chunks, cumulative α, mixed loss,
test-time logits, lr milestones and the bilateral network."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from torch import nn

from baselines.base import METHODS, Method, StepContext
from baselines.bbn import BilateralNetwork, cumulative_alpha, pairs, reversed_weights
from baselines.samplers import distribution
from benchmark.errors import UserError
from benchmark.models import BACKBONES
from benchmark.recipes import RECIPES

RECIPE = dataclasses.replace(RECIPES.get("fashion"), epochs=5)
STAGE = Method.base_stage(RECIPE)
COUNTS = np.array([4, 2, 1])
LABELS = np.repeat([0, 1, 2], COUNTS)


def _bbn(counts: np.ndarray = COUNTS, **hparams):
    return METHODS.get("bbn")(hparams, counts)


class Toy(nn.Module):
    """A splittable 2-d backbone: identity trunk, branches bias-free 2×2 linear maps."""

    feature_dim = 2

    def split(self, point: str):
        assert point == "last-block"

        def branch(width: float) -> nn.Module:
            layer = nn.Linear(2, 2, bias=False)
            layer.feature_dim = 2
            return layer

        return nn.Identity(), branch


def _toy_model() -> BilateralNetwork:
    """f_c = x, f_r = 2x; the head reads f_c[0] into class 0 and f_r[1] into class 1."""
    model = BilateralNetwork(Toy(), 2)
    with torch.no_grad():
        model.backbone.conventional.weight.copy_(torch.eye(2))
        model.backbone.rebalancing.weight.copy_(2 * torch.eye(2))
        model.head.weight.copy_(torch.tensor([[1.0, 0, 0, 0], [0, 0, 0, 1.0]]))
    return model


def test_reversed_sampler_gives_class_mass_inverse_to_count():
    # counts 4, 2, 1 (n_max 4): instance weights (4/n)/n = 1/4, 1, 4 → class masses 1, 2, 4 ∝ 1/n_c.
    weights = reversed_weights(LABELS, COUNTS)
    assert np.allclose(weights, [0.25] * 4 + [1.0] * 2 + [4.0])
    masses = np.bincount(LABELS, weights)
    assert np.allclose(masses / masses.sum(), [1 / 7, 2 / 7, 4 / 7])
    # Drawn through the epoch order: odd positions follow the reversed class probabilities.
    counts = COUNTS * 300
    labels = np.repeat([0, 1, 2], counts)
    order = _bbn(counts).epoch_order(labels, np.random.default_rng(0), StepContext(STAGE, 0))
    assert len(order) == 2 * counts.sum()
    reverse = np.bincount(labels[order[1::2]], minlength=3) / counts.sum()
    uniform = np.bincount(labels[order[0::2]], minlength=3) / counts.sum()
    assert np.allclose(reverse, [1 / 7, 2 / 7, 4 / 7], atol=0.03)
    assert np.allclose(uniform, [4 / 7, 2 / 7, 1 / 7], atol=0.03)


@pytest.mark.parametrize("batch", [1, 3, 4, 7])
def test_engine_chunks_hold_uniform_and_reversed_draw_i_as_a_pair(batch):
    counts = np.array([5, 3, 2])  # N = 10: with B = 3, 4, 7 the last chunk is short
    labels = np.repeat([0, 1, 2], counts)
    method = _bbn(counts)
    recipe = dataclasses.replace(RECIPE, batch_size=batch)
    size = method.batch_size(recipe, STAGE)
    assert size == 2 * batch
    order = method.epoch_order(labels, np.random.default_rng(7), StepContext(STAGE, 0))
    rng = np.random.default_rng(7)  # the same two draws, in the same order
    uniform = distribution(np.ones(10), rng, 10)
    reverse = distribution(reversed_weights(labels, counts), rng, 10)
    for step, start in enumerate(range(0, len(order), size)):  # the engine's chunking
        conventional, rebalancing = pairs(torch.from_numpy(order[start : start + size]))
        assert conventional.tolist() == uniform[step * batch : (step + 1) * batch].tolist()
        assert rebalancing.tolist() == reverse[step * batch : (step + 1) * batch].tolist()
    assert step + 1 == math.ceil(10 / batch)


def test_an_odd_batch_cannot_be_paired():
    with pytest.raises(ValueError, match="batch of 3"):
        pairs(torch.arange(3))


def test_cumulative_alpha_pins_the_originals_epoch_counter():
    """The original: `l = 1 - ((epoch - 1) / num_epoch) ** 2` with 0-based `epoch`, so α = 1 exactly at
    0-based epoch 1, not 0."""
    assert [cumulative_alpha(e, 5) for e in range(5)] == pytest.approx([0.96, 1.0, 0.96, 0.84, 0.64])
    assert cumulative_alpha(0, 100) == pytest.approx(1 - 0.01**2) and cumulative_alpha(1, 100) == 1.0
    assert cumulative_alpha(99, 100) == pytest.approx(1 - 0.98**2)


def test_mixed_loss_by_hand():
    # Last of 5 epochs: α = 1 − (3/5)² = 0.64. Pairs (x_c, x_r): ([1, 0], [0, 1]) and ([0, 0], [0, 0.5]);
    # y_c = (0, 1), y_r = (1, 0). z = [2α·x_c[0], 2(1 − α)·2·x_r[1]] = [1.28, 1.44] and [0, 0.72].
    model = _toy_model()
    images = torch.tensor([[1.0, 0], [0, 1], [0, 0], [0, 0.5]])
    labels = torch.tensor([0, 1, 1, 0])
    loss = _bbn().loss(model, images, labels, StepContext(STAGE, 4))

    def softplus(v: float) -> float:
        return math.log1p(math.exp(v))

    conventional = (softplus(1.44 - 1.28) + softplus(0.0 - 0.72)) / 2  # CE(z, y_c)
    rebalancing = (softplus(1.28 - 1.44) + softplus(0.72 - 0.0)) / 2  # CE(z, y_r)
    assert loss.item() == pytest.approx(0.64 * conventional + 0.36 * rebalancing, rel=1e-6)


def test_re_balancing_branch_gets_no_gradient_in_the_epoch_where_alpha_is_one():
    model = _toy_model()
    images, labels = torch.rand(4, 2), torch.tensor([0, 1, 1, 0])
    for epoch, learns in ((0, True), (1, False), (2, True)):
        model.zero_grad()
        _bbn().loss(model, images, labels, StepContext(STAGE, epoch)).backward()
        assert bool(model.backbone.rebalancing.weight.grad.abs().sum() > 0) is learns
        assert model.backbone.conventional.weight.grad.abs().sum() > 0


def test_test_time_logits_are_the_plain_concatenation():
    model = _toy_model()
    x = torch.tensor([[1.0, -2.0], [0.5, 3.0]])
    assert torch.equal(model.features(x), torch.cat([x, 2 * x], dim=1))
    assert torch.allclose(model(x), torch.stack([x[:, 0], 2 * x[:, 1]], dim=1))
    assert torch.allclose(_bbn().logits(model, x), model.mixed_logits(x, x, 0.5))


@pytest.mark.parametrize(("epochs", "milestones"), [(5, (3, 4)), (30, (18, 24)), (100, (60, 80))])
def test_lr_multistep_at_floor_06e_and_08e(epochs, milestones):
    (stage,) = _bbn().stages(dataclasses.replace(RECIPE, epochs=epochs))
    assert stage.schedule == "multistep" and stage.milestones == milestones and stage.gamma == 0.1
    assert stage.epochs == epochs and stage.lr == RECIPE.lr and stage.weight_decay == RECIPE.weight_decay


def test_branches_share_the_trunk_and_have_their_own_last_block():
    torch.manual_seed(0)
    backbone = BACKBONES.get("small-cnn")(1)
    model = _bbn().build_model(backbone, 3)
    bilateral = model.backbone
    trunk = {id(p) for p in bilateral.trunk.parameters()}
    assert trunk == {id(p) for p in backbone.layers[:8].parameters()}
    conventional = list(bilateral.conventional.parameters())
    rebalancing = list(bilateral.rebalancing.parameters())
    assert {id(p) for p in conventional}.isdisjoint({id(p) for p in rebalancing} | trunk)
    assert conventional[0].shape == rebalancing[0].shape == (64, 32, 3, 3)
    assert not torch.equal(conventional[0], rebalancing[0])
    assert bilateral.feature_dim == 128 and model.head.in_features == 128 and model.head.bias is None
    model.eval()
    x = torch.rand(2, 1, 28, 28)
    with torch.no_grad():
        shared = bilateral.trunk(x)
        both = torch.cat([bilateral.conventional(shared), bilateral.rebalancing(shared)], dim=1)
        assert torch.allclose(model.features(x), both)
        assert torch.allclose(model(x), model.mixed_logits(x, x, 0.5), atol=1e-6)


def test_report_shows_alpha_endpoints_and_sampler_class_probabilities():
    method = _bbn()
    method.begin_stage(None, STAGE)
    report = method.report()
    assert report["alpha_first_last"] == pytest.approx([0.96, 0.64])
    assert report["uniform_class_prob"] == pytest.approx([4 / 7, 1 / 7])
    assert report["reversed_class_prob"] == pytest.approx([1 / 7, 4 / 7])


def test_pairs_are_one_batch_unit_so_data_parallel_shares_keep_them():
    method = _bbn()
    assert method.batch_unit(method.stages(RECIPE)[0]) == 2


def test_report_before_a_stage_has_begun_shows_the_samplers_without_alpha():
    report = _bbn().report()
    assert "alpha_first_last" not in report
    assert report["reversed_class_prob"] == pytest.approx([1 / 7, 4 / 7])


def test_trunk_resnet50_builds_the_original_bbn_network_instead_of_the_recipes():
    small = BACKBONES.get("small-cnn")(1)
    own = _bbn().build_model(small, 3)
    assert own.backbone.trunk[0] is small.layers[0]
    original = _bbn(trunk="resnet50").build_model(small, 3)
    assert original.backbone.feature_dim == 2 * 2048 and original.head.weight.shape == (3, 4096)
    assert type(original.backbone.conventional[0]).__name__ == "Bottleneck"  # ResNet-50's block
    assert original.backbone.trunk[0].in_channels == 1  # the recipe's input channels
    with pytest.raises(UserError, match="trunk must be one of recipe, resnet50"):
        _bbn(trunk="vit")
