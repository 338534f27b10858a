"""The CE baseline and the method contract it defines."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from baselines.base import METHODS, Method, StepContext, parse_overrides
from benchmark.errors import UserError
from benchmark.models import BACKBONES
from benchmark.recipes import RECIPES


def test_ce_is_registered_with_one_stage_from_the_recipe():
    method = METHODS.get("ce")({}, np.array([5, 3, 1]))
    recipe = RECIPES.get("fashion")
    (stage,) = method.stages(recipe)
    assert (stage.epochs, stage.lr, stage.momentum, stage.weight_decay) == (
        recipe.epochs,
        recipe.lr,
        recipe.momentum,
        recipe.weight_decay,
    )


def test_ce_loss_equals_cross_entropy_of_the_network_logits():
    torch.manual_seed(0)
    method = METHODS.get("ce")({}, np.array([5, 3, 1]))
    model = method.build_model(BACKBONES.get("small-cnn")(1), 3)
    assert model.head.bias is None  # the original's classifier has no bias
    images, labels = torch.randn(4, 1, 28, 28), torch.tensor([0, 1, 2, 1])
    context = StepContext(stage=method.stages(RECIPES.get("fashion"))[0], epoch=0)
    expected = F.cross_entropy(model(images), labels)
    assert torch.allclose(method.loss(model, images, labels, context), expected)


def test_epoch_order_is_a_seeded_permutation():
    method = METHODS.get("ce")({}, np.array([2, 2]))
    labels = np.array([0, 0, 1, 1, 0])
    first = method.epoch_order(labels, np.random.default_rng(3), None)
    assert sorted(first) == list(range(5))
    assert np.array_equal(first, method.epoch_order(labels, np.random.default_rng(3), None))


class WithKnobs(Method):
    name = "knobs"
    summary = "test double"
    defaults: ClassVar[dict] = {"tau": 1.0, "steps": 2, "detach": False}


def test_overrides_are_typed_like_the_defaults():
    assert parse_overrides(["tau=0.5", "steps=3", "detach=true"], WithKnobs) == {
        "tau": 0.5,
        "steps": 3,
        "detach": True,
    }
    assert WithKnobs({"tau": 2.0}, np.array([1])).hparams == {"tau": 2.0, "steps": 2, "detach": False}


@pytest.mark.parametrize(
    ("pair", "fragment"),
    [
        ("tau", "key=value"),
        ("gamma=1", "no hyperparameter"),
        ("steps=1.5", "not a valid int"),
        ("detach=maybe", "bool"),
    ],
)
def test_bad_overrides_are_user_errors(pair: str, fragment: str):
    with pytest.raises(UserError, match=fragment):
        parse_overrides([pair], WithKnobs)
