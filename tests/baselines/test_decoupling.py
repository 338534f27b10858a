"""Decoupling (docs/methods.md §6): stage list, cRT's fresh head, LWS scales, τ-norm and its choice of τ."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from baselines.base import METHODS, StepContext
from baselines.decoupling import ScaledLinear, choose_tau, tau_normalised
from baselines.ifl import CentredNetwork
from baselines.samplers import class_aware
from benchmark.errors import UserError
from benchmark.models import BACKBONES, Network
from benchmark.recipes import RECIPES

COUNTS = np.array([6, 3, 1])
LABELS = np.repeat(np.arange(3), COUNTS)
RECIPE = RECIPES.get("fashion")


def _method(name: str, **hparams):
    return METHODS.get(name)(hparams, COUNTS)


def _model(method) -> nn.Module:
    torch.manual_seed(0)
    return method.build_model(BACKBONES.get("small-cnn")(1), 3)


def test_crt_and_lws_train_stage1_like_ce_then_a_frozen_class_aware_stage2():
    for name in ("crt", "lws"):
        stage1, stage2 = _method(name).stages(RECIPE)
        assert stage1 == dataclasses.replace(
            METHODS.get("ce")({}, COUNTS).stages(RECIPE)[0], name="stage1", pretrained=True
        )
        assert (stage2.epochs, stage2.lr, stage2.weight_decay) == (3, RECIPE.lr, RECIPE.weight_decay)
        assert (stage2.schedule, stage2.freeze_backbone, stage2.pretrained) == ("cosine", True, False)
    (only,) = _method("tau-norm").stages(RECIPE)
    assert only.pretrained and not only.freeze_backbone


def test_stage2_length_scales_with_the_recipe_and_is_at_least_one_epoch():
    for epochs, expected in ((100, 10), (30, 3), (5, 1), (1, 1)):
        stages = _method("crt").stages(dataclasses.replace(RECIPE, epochs=epochs))
        assert stages[1].epochs == expected
    assert _method("crt", stage2_fraction=0.5).stages(RECIPE)[1].epochs == 15


def test_the_sampler_is_the_stage1_method_s_then_class_aware():
    method = _method("crt")
    stage1, stage2 = method.stages(RECIPE)
    first = method.epoch_order(LABELS, np.random.default_rng(0), StepContext(stage1, 0))
    assert np.array_equal(first, np.random.default_rng(0).permutation(len(LABELS)))
    second = method.epoch_order(LABELS, np.random.default_rng(0), StepContext(stage2, 0))
    assert np.array_equal(second, class_aware(LABELS, np.random.default_rng(0)))


def test_crt_stage2_head_is_fresh_and_only_it_trains():
    method = _method("crt")
    stage1, stage2 = method.stages(RECIPE)
    model = method.begin_stage(_model(method), stage1)
    old_head, backbone_before = model.head, [p.detach().clone() for p in model.backbone.parameters()]
    model = method.begin_stage(model, stage2)
    assert model.head is not old_head and model.head.bias is None
    assert not torch.equal(model.head.weight, old_head.weight)
    groups = method.param_groups(model, stage2)
    assert [p for group in groups for p in group["params"]] == [model.head.weight]
    for p in model.backbone.parameters():  # what the engine does for freeze_backbone
        p.requires_grad_(False)
    model.backbone.eval()
    head_before = model.head.weight.detach().clone()
    optimizer = torch.optim.SGD(groups, lr=stage2.lr)
    images, labels = torch.randn(4, 1, 28, 28), torch.tensor([0, 1, 2, 1])
    loss = method.loss(model, images, labels, StepContext(stage2, 0))
    assert torch.allclose(loss, F.cross_entropy(model(images), labels))
    loss.backward()
    optimizer.step()
    assert not torch.equal(model.head.weight, head_before)
    assert all(torch.equal(a, b) for a, b in zip(model.backbone.parameters(), backbone_before, strict=True))


def test_lws_logits_are_scaled_frozen_stage1_logits():
    method = _method("lws")
    stage2 = method.stages(RECIPE)[1]
    model = _model(method)
    weight = model.head.weight.detach().clone()
    features = torch.randn(5, model.backbone.feature_dim)
    model = method.begin_stage(model, stage2)
    assert isinstance(model.head, ScaledLinear)
    assert torch.allclose(model.head(features), features @ weight.T)  # s = 1 at the start
    with torch.no_grad():
        model.head.scales.copy_(torch.tensor([2.0, 0.5, 3.0]))
    assert torch.allclose(model.head(features), features @ weight.T * torch.tensor([2.0, 0.5, 3.0]))
    groups = method.param_groups(model, stage2)
    assert [p for group in groups for p in group["params"]] == [model.head.scales]
    assert "head.weight" in model.state_dict() and not model.head.weight.requires_grad


def test_tau_normalisation_by_hand():
    weight = torch.tensor([[3.0, 4.0], [0.0, 2.0]])  # row norms 5 and 2
    assert torch.equal(tau_normalised(weight, 0.0), weight)
    assert torch.allclose(tau_normalised(weight, 1.0), torch.tensor([[0.6, 0.8], [0.0, 1.0]]))
    half = torch.tensor([[3 / 5**0.5, 4 / 5**0.5], [0.0, 2 / 2**0.5]])
    assert torch.allclose(tau_normalised(weight, 0.5), half)


def test_tau_is_the_smallest_maximising_balanced_accuracy_on_val():
    # w̃_0 = (10^(1−τ), 0), w̃_1 = (0, 1). Class 0's samples (5, 1) are always right; class 1's (1, 5)
    # are right once 10^(1−τ) < 5, i.e. τ > 0.30: τ ∈ {0.4, …, 1} all reach 1.0, the smallest wins.
    weight = torch.tensor([[10.0, 0.0], [0.0, 1.0]])
    features = torch.tensor([[5.0, 1.0]] * 8 + [[1.0, 5.0]] * 2)
    labels = np.array([0] * 8 + [1] * 2)
    assert choose_tau(features, weight, labels) == 0.4


def test_tau_norm_finish_puts_the_normalised_weights_in_the_head():
    method = _method("tau-norm")
    weight = torch.tensor([[10.0, 0.0], [0.0, 1.0]])
    model = Network(nn.Identity(), nn.Linear(2, 2, bias=False))
    with torch.no_grad():
        model.head.weight.copy_(weight)
    features = torch.tensor([[5.0, 1.0]] * 8 + [[1.0, 5.0]] * 2)
    session = SimpleNamespace(features=lambda m, split: features, val_labels=np.array([0] * 8 + [1] * 2))
    model = method.finish(model, session)
    assert method.report()["tau"] == 0.4
    assert torch.allclose(model.head.weight, tau_normalised(weight, 0.4))
    assert torch.allclose(method.logits(model, features), features @ tau_normalised(weight, 0.4).T)


def test_stage1_can_be_ifl_trained_with_ce_and_takes_its_options():
    method = _method("crt", stage1="ifl", stage1_set="triplet=true")
    assert method.inner.name == "ifl"
    assert method.inner.hparams["loss"] == "ce" and method.inner.hparams["triplet"] is True
    assert _method("lws", stage1="ifl", stage1_set="loss=bs").inner.hparams["loss"] == "bs"
    stage1, stage2 = method.stages(RECIPE)
    assert (method.batch_size(RECIPE, stage1), method.batch_size(RECIPE, stage2)) == (128, 128)
    model = _model(method)
    assert isinstance(model, CentredNetwork)
    groups = method.param_groups(method.begin_stage(model, stage1), stage1)
    assert groups[1]["params"] == [model.centres]  # IFL's own centre group in stage 1
    model = method.begin_stage(model, stage2)
    assert [p for group in method.param_groups(model, stage2) for p in group["params"]] == [model.head.weight]


def test_stage1_loss_and_logits_are_the_stage1_method_s():
    method = _method("crt", stage1="la-posthoc")
    stage1, stage2 = method.stages(RECIPE)
    model = method.begin_stage(_model(method), stage1)
    images = torch.randn(3, 1, 28, 28)
    assert torch.allclose(method.logits(model, images), model(images) - method.log_prior())
    method.begin_stage(model, stage2)
    assert torch.allclose(method.logits(model, images), model(images))


@pytest.mark.parametrize(
    ("hparams", "fragment"),
    [
        ({"stage1": "nope"}, "unknown method"),
        ({"stage1": "crt"}, "one-stage"),
        ({"stage1_set": "gamma=1"}, "no hyperparameter"),
        ({"stage2_fraction": 0.0}, "stage2_fraction"),
    ],
)
def test_bad_stage1_options_are_user_errors(hparams: dict, fragment: str):
    with pytest.raises(UserError, match=fragment):
        _method("crt", **hparams)


@pytest.mark.parametrize("stage1", ["ride", "tade"])
def test_stage1_without_a_single_head_is_a_user_error(stage1):
    method = _method("crt", stage1=stage1)
    with pytest.raises(UserError, match="no single classifier head"):
        method.build_model(BACKBONES.get("small-cnn")(1), 10)
