"""The training engine: augmentation, lr schedule, model selection, compute accounting, determinism."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from baselines.base import METHODS, Method, Stage
from benchmark import engine
from benchmark.models import BACKBONES
from benchmark.recipes import RECIPES
from benchmark.selection import SELECTION_RULES
from benchmark.transforms import Pipeline

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
    pipeline = Pipeline(RECIPE, (0.5,), (0.25,), torch.device("cpu"))
    return engine.train(method, model, train_set, val_set, RECIPE, pipeline, seed=seed, selection_rule=rule)


def test_training_learns_counts_compute_and_selects_on_val():
    outcome = train_once()
    assert outcome.images_processed == 3 * 48
    assert outcome.optimizer_steps == 3 * 3 and outcome.epochs == 3
    scores = [h["val_acc"] for h in outcome.val_history]
    best = int(np.argmax(scores))  # the earliest best epoch
    assert outcome.selected == [{"stage": "main", "epoch": best + 1}]
    assert max(scores) == 1.0


def untimed(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in h.items() if k != "epoch_seconds"} for h in history]


def test_cpu_training_is_deterministic():
    first, second = train_once(), train_once()
    assert untimed(first.val_history) == untimed(second.val_history)
    for a, b in zip(first.model.state_dict().values(), second.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_last_rule_selects_the_final_epoch():
    assert train_once(rule="last").selected[0]["epoch"] == 3


def test_selection_rules_score_as_named():
    y, p = np.array([0, 0, 0, 1]), np.array([0, 0, 0, 0])
    assert SELECTION_RULES.get("val_acc")(y, p, 2, 1) == 0.75
    assert SELECTION_RULES.get("val_bacc")(y, p, 2, 1) == 0.5


def test_cosine_schedule_anneals_to_zero():
    stage = Stage("main", 4, 0.1, 0.9, 5e-4, "cosine")
    factors = [engine._lr_factor(stage, e) for e in range(4)]
    assert factors[0] == 1.0 and np.allclose(factors, [1, 0.853553, 0.5, 0.146447], atol=1e-6)


def test_multistep_schedule_multiplies_at_each_milestone():
    stage = Stage("main", 10, 0.1, 0.9, 2e-4, "multistep", milestones=(8, 9), gamma=0.01)
    factors = [engine._lr_factor(stage, e) for e in range(10)]
    assert factors[:8] == [1.0] * 8 and np.isclose(factors[8], 0.01) and np.isclose(factors[9], 1e-4)


def test_warmup_cosine_schedule_rises_linearly_then_anneals_per_step():
    stage = Stage("main", 10, 0.1, 0.9, 0.05, "warmup-cosine", warmup_epochs=2)
    assert engine._lr_factor(stage, 0) == 0.0
    assert np.isclose(engine._lr_factor(stage, 0.5), 0.25) and np.isclose(engine._lr_factor(stage, 1.5), 0.75)
    assert engine._lr_factor(stage, 2) == 1.0
    assert np.isclose(engine._lr_factor(stage, 6), 0.5) and np.isclose(engine._lr_factor(stage, 10), 0.0)


class AdamWarmup(Method):
    name = "adam-warmup"
    summary = "test double"

    def stages(self, recipe):
        return [self.base_stage(recipe, optimizer="adamw", betas=(0.9, 0.95), schedule="warmup-cosine",
                                warmup_epochs=1, lr=1e-3)]  # fmt: skip


def test_adamw_stage_builds_adamw_and_sets_the_lr_every_step(monkeypatch):
    seen = []
    original = engine._set_lr
    monkeypatch.setattr(engine, "_set_lr", lambda opt, stage, e: (seen.append(e), original(opt, stage, e)))
    train_set, val_set = toy_sets()
    method = AdamWarmup({}, np.array([24, 24]))
    model = method.build_model(BACKBONES.get("small-cnn")(1), 2)
    pipeline = Pipeline(RECIPE, (0.5,), (0.25,), torch.device("cpu"))
    engine.train(method, model, train_set, val_set, RECIPE, pipeline, seed=0)
    steps = -(-len(train_set.labels) // RECIPE.batch_size)
    assert seen[: steps + 1] == [0] + [k / steps for k in range(steps)]
    assert isinstance(engine._optimizer(method, model, method.stages(RECIPE)[0]), torch.optim.AdamW)


class TwoStage(Method):
    """Stage 1 trains everything; stage 2 retrains the head on a frozen backbone."""

    name = "two-stage"
    summary = "test double"

    def stages(self, recipe):
        return [
            self.base_stage(recipe, "first", pretrained=True),
            self.base_stage(recipe, "second", epochs=2, freeze_backbone=True),
        ]


class Interrupted(Exception):
    pass


def two_stage_run(checkpoint_dir=None, resume=False, stop_after=None, start_weights=None):
    train_set, val_set = toy_sets()
    method = TwoStage({}, np.array([24, 24]))
    if stop_after is not None:
        calls = []

        def stop(model, context, session):
            calls.append(1)
            if len(calls) == stop_after:
                raise Interrupted

        method.end_epoch = stop
    torch.manual_seed(0)
    model = method.build_model(BACKBONES.get("small-cnn")(1), 2)
    pipeline = Pipeline(RECIPE, (0.5,), (0.25,), torch.device("cpu"))
    return engine.train(
        method, model, train_set, val_set, RECIPE, pipeline, seed=0,
        checkpoint_dir=checkpoint_dir, resume=resume, start_weights=start_weights,
    )  # fmt: skip


def test_frozen_stage_keeps_backbone_and_batchnorm_statistics(tmp_path):
    outcome = two_stage_run()
    assert [s["stage"] for s in outcome.selected] == ["first", "second"]
    assert outcome.epochs == 3 + 2 and outcome.images_processed == 5 * 48
    # Rerun stage 2 alone from the weights stage 1 ended with: the backbone must come out unchanged.
    first = two_stage_run(checkpoint_dir=tmp_path)
    state = torch.load(tmp_path / engine.CHECKPOINT, weights_only=True)
    assert state["stage"] == 1  # the last checkpoint is stage 2's
    start = {k: v.clone() for k, v in first.model.state_dict().items()}
    again = two_stage_run(start_weights=start)
    assert again.epochs == 2 and again.images_processed == 2 * 48  # the pretrained stage was skipped
    for key, value in again.model.state_dict().items():
        if key.startswith("backbone."):
            assert torch.equal(value, start[key]), key  # weights and BatchNorm running statistics


@pytest.mark.parametrize("stop_after", [2, 4])  # inside stage 1, and inside stage 2
def test_resumed_run_ends_exactly_like_an_uninterrupted_one(tmp_path, stop_after):
    whole = two_stage_run(checkpoint_dir=tmp_path / "whole")
    with pytest.raises(Interrupted):
        two_stage_run(checkpoint_dir=tmp_path / "cut", stop_after=stop_after)
    resumed = two_stage_run(checkpoint_dir=tmp_path / "cut", resume=True)
    assert resumed.resumed_from_epoch == stop_after - 1
    assert untimed(resumed.val_history) == untimed(whole.val_history)
    assert resumed.selected == whole.selected and resumed.images_processed == whole.images_processed
    for a, b in zip(resumed.model.state_dict().values(), whole.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_session_features_of_plain_and_augmented_views():
    train_set, val_set = toy_sets()
    method = METHODS.get("ce")({}, np.array([24, 24]))
    torch.manual_seed(0)
    model = method.build_model(BACKBONES.get("small-cnn")(1), 2)
    pipeline = Pipeline(RECIPE, (0.5,), (0.25,), torch.device("cpu"))

    def session(seed: int) -> engine.Session:
        return engine.Session(
            method, train_set, val_set, pipeline, RECIPE, torch.Generator().manual_seed(seed)
        )

    plain = session(0).features(model, "train", indices=[0, 5, 7])
    assert plain.shape == (3, 64) and torch.equal(
        plain, session(1).features(model, "train", indices=[0, 5, 7])
    )
    augmented = session(0).features(model, "train", augment=True)
    assert augmented.shape == (48, 64) and not torch.equal(augmented[[0, 5, 7]], plain)
    assert torch.equal(augmented, session(0).features(model, "train", augment=True))  # seeded
    assert model.training  # the mode is restored


def test_data_parallel_shares_keep_units_whole_and_cover_the_batch():
    for size, unit, world in [(10, 2, 2), (14, 2, 4), (9, 1, 2), (6, 3, 2)]:
        shares = [engine._share(size, unit, rank, world) for rank in range(world)]
        assert np.array_equal(np.concatenate(shares), np.arange(size))
        assert all(len(s) % unit == 0 and (len(s) == 0 or s[0] % unit == 0) for s in shares)
