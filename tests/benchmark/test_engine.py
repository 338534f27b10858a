"""The training engine: augmentation, lr schedule, model selection, compute accounting, determinism."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from baselines.base import METHODS, Stage
from benchmark import engine
from benchmark.models import BACKBONES
from benchmark.recipes import RECIPES
from benchmark.selection import SELECTION_RULES

RECIPE = replace(RECIPES.get("fashion"), epochs=3, batch_size=16)


def toy_sets(seed: int = 0) -> tuple[engine.ImageSet, engine.ImageSet]:
    """Two classes that differ in brightness: learnable in a few steps."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(64) % 2
    images = (torch.rand(64, 1, 28, 28, generator=g) * 60 + labels[:, None, None, None] * 150).to(torch.uint8)
    return engine.ImageSet(images[:48], labels[:48]), engine.ImageSet(images[48:], labels[48:])


def train_once(seed: int = 0, rule: str = "val_acc") -> engine.TrainOutcome:
    train_set, val_set = toy_sets()
    method = METHODS.get("ce")({}, np.array([24, 24]))
    torch.manual_seed(seed)
    model = method.build_model(BACKBONES.get("small-cnn")(1), 2)
    normalize = engine.Normalizer((0.5,), (0.25,), torch.device("cpu"))
    return engine.train(method, model, train_set, val_set, RECIPE, normalize, seed=seed, selection_rule=rule)


def test_training_learns_counts_compute_and_selects_on_val():
    outcome = train_once()
    assert outcome.images_processed == 3 * 48
    assert outcome.optimizer_steps == 3 * 3 and outcome.epochs == 3
    scores = [h["val_acc"] for h in outcome.val_history]
    best = int(np.argmax(scores))  # the earliest best epoch
    assert outcome.selected == {"stage": "main", "epoch": best + 1}
    assert max(scores) == 1.0


def test_cpu_training_is_deterministic():
    first, second = train_once(), train_once()
    assert first.val_history == second.val_history
    for a, b in zip(first.model.state_dict().values(), second.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_last_rule_selects_the_final_epoch():
    assert train_once(rule="last").selected["epoch"] == 3


def test_selection_rules_score_as_named():
    y, p = np.array([0, 0, 0, 1]), np.array([0, 0, 0, 0])
    assert SELECTION_RULES.get("val_acc")(y, p, 2, 1) == 0.75
    assert SELECTION_RULES.get("val_bacc")(y, p, 2, 1) == 0.5


def test_cosine_schedule_anneals_to_zero():
    stage = Stage("main", 4, 0.1, 0.9, 5e-4, "cosine")
    factors = [engine._lr_factor(stage, e) for e in range(4)]
    assert factors[0] == 1.0 and np.allclose(factors, [1, 0.853553, 0.5, 0.146447], atol=1e-6)


def test_augment_crops_within_padding_and_flips():
    x = torch.arange(2 * 1 * 6 * 6, dtype=torch.float32).view(2, 1, 6, 6)
    recipe = replace(RECIPE, crop_padding=1, flip=True)
    out = engine.augment(x, recipe, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    for i in range(2):
        padded = torch.nn.functional.pad(x[i], (1, 1, 1, 1))
        windows = [padded[:, r : r + 6, c : c + 6] for r in range(3) for c in range(3)]
        assert any(torch.equal(out[i], w) or torch.equal(out[i], w.flip(-1)) for w in windows)
    no_aug = replace(RECIPE, crop_padding=0, flip=False)
    assert torch.equal(engine.augment(x, no_aug, torch.Generator()), x)
