"""BNS + IP-DPP (docs/methods.md §16): BNS losses against hand-computed values, the two-view batches, the
stage schedule, and stage 2's subset selection switching on within a 5-epoch recipe."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from baselines.base import METHODS, StepContext
from baselines.bns_ipdpp import (
    _random_members,
    bns_code_loss,
    bns_paper_loss,
    uniform_per_class,
)
from benchmark.errors import UserError
from benchmark.models import BACKBONES
from benchmark.recipes import RECIPES

RECIPE = RECIPES.get("fashion")
COUNTS = np.array([40, 12, 3])
LABELS = np.repeat(np.arange(3), COUNTS)


def _method(**hparams):
    return METHODS.get("bns-ipdpp")(hparams, COUNTS)


def _logsig(x: float) -> float:
    return -math.log1p(math.exp(-x))


def test_paper_loss_by_hand_one_anchor_per_class():
    # q = v = e_0, e_1, classes 0, 1, τ = 0.5: L_i = −[log σ(1/τ) + log σ(0)] for both anchors and orders.
    e = torch.eye(2)
    loss = bns_paper_loss(e, e, torch.tensor([0, 1]), 2, 16, 0.5, torch.Generator().manual_seed(0))
    assert math.isclose(float(loss), -_logsig(2.0) + math.log(2.0), rel_tol=1e-6)


def test_paper_loss_by_hand_with_a_same_class_anchor():
    # Embeddings e0 = (1, 0), e1 = (0.6, 0.8), e2 = (0, 1) in both views; labels 0, 0, 1; τ = 0.5 so
    # s/τ: e0·e0 = 2, e0·e1 = 1.2, e0·e2 = 0, e1·e1 = 2, e1·e2 = 1.6, e2·e2 = 2. m = 2 and n = 16 exceed
    # what the batch has, so every same-class anchor and every negative is used.
    z = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    l0 = -(_logsig(2) + _logsig(0) + _logsig(1.2) + _logsig(-1.6)) / 2  # A = {q0, q1}, v⁻ = {v2}
    l1 = -(_logsig(2) + _logsig(-1.6) + _logsig(1.2) + _logsig(0)) / 2  # A = {q1, q0}, v⁻ = {v2}
    l2 = -(_logsig(2) + _logsig(0) + _logsig(-1.6))  # A = {q2}, v⁻ = {v0, v1}
    loss = bns_paper_loss(z, z, torch.tensor([0, 0, 1]), 2, 16, 0.5, torch.Generator().manual_seed(0))
    assert math.isclose(float(loss), (l0 + l1 + l2) / 3, rel_tol=1e-6)
    # m = 0, n = 1: only the anchor itself; the one negative of anchors 0 and 1 is v2, anchor 2's is v0 or
    # v1, drawn separately in each view order.
    loss = bns_paper_loss(z, z, torch.tensor([0, 0, 1]), 0, 1, 0.5, torch.Generator().manual_seed(0))
    fixed = -(_logsig(2) + _logsig(0)) - (_logsig(2) + _logsig(-1.6))
    rest = (-(_logsig(2) + _logsig(0)), -(_logsig(2) + _logsig(-1.6)))
    candidates = [fixed / 3 + (a + b) / 6 for a in rest for b in rest]
    assert any(math.isclose(float(loss), c, rel_tol=1e-6) for c in candidates)


def test_random_members_are_uniform_subsets_of_the_allowed_of_the_right_size():
    mask = torch.tensor([[True, True, True, False], [False, False, True, False], [False] * 4])
    g = torch.Generator().manual_seed(0)
    seen = torch.zeros(4)
    for _ in range(300):
        chosen = _random_members(mask, 2, g)
        assert chosen.sum(1).tolist() == [2, 1, 0] and not (chosen.bool() & ~mask).any()
        seen += chosen[0]
    assert (seen[:3] > 150).all() and seen[3] == 0  # each allowed column in about 2/3 of the draws
    first = _random_members(mask, 2, torch.Generator().manual_seed(7))
    assert torch.equal(first, _random_members(mask, 2, torch.Generator().manual_seed(7)))


def test_code_loss_by_hand():
    # Views [e0, e1, e0, e1], labels [0, 1, 0, 1], τ = 0.5: for every view pos = exp(2) (its other
    # view), neg = (1/4)·(exp(0) + exp(0)) = 0.5.
    e = torch.eye(2)
    loss = bns_code_loss(e, e, torch.tensor([0, 1]), 0.5)
    assert math.isclose(float(loss), -(_logsig(math.exp(2)) + _logsig(-0.5)), rel_tol=1e-6)
    # A class with one view-pair only has P(a) = {its other view}; a lone view would get pos = 0.
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    loss = bns_code_loss(z[:2], z[1:], torch.tensor([0, 0]), 0.5)
    sims = F.normalize(torch.cat([z[:2], z[1:]]), dim=1)
    scaled = torch.exp(sims @ sims.T / 0.5)
    pos = (scaled.sum(1) - scaled.diagonal()) / 3
    assert math.isclose(float(loss), float(-F.logsigmoid(pos).mean() + math.log(2)), rel_tol=1e-6)


def test_stages_scale_with_the_recipe():
    bns, ipdpp = _method().stages(RECIPE)  # fashion: E = 30, batch 128
    assert (bns.name, bns.epochs, bns.lr, bns.weight_decay) == ("bns", 30, 1e-3 * 128 / 256, 0.05)
    assert (bns.optimizer, bns.betas, bns.schedule, bns.warmup_epochs) == (
        "adamw",
        (0.9, 0.95),
        "warmup-cosine",
        1,
    )
    assert not bns.freeze_backbone and ipdpp.freeze_backbone
    assert (ipdpp.epochs, ipdpp.warmup_epochs, ipdpp.lr) == (30, 1, 0.2 * 128 / 256)  # the head's own lr
    assert _method(head_lr_per_256=1e-3).stages(RECIPE)[1].lr == bns.lr  # the paper's
    assert _method(variant="code").stages(RECIPE)[1].lr == bns.lr  # the code fine-tunes at the one lr
    assert _method().resample_period(ipdpp) == 3
    long = dataclasses.replace(RECIPE, epochs=100)
    bns, ipdpp = _method().stages(long)
    assert (bns.warmup_epochs, ipdpp.warmup_epochs, _method().resample_period(ipdpp)) == (2, 5, 10)
    bns, ipdpp = _method(variant="code").stages(long)
    assert not ipdpp.freeze_backbone and _method(variant="code").resample_period(ipdpp) == 20
    assert _method(stage2_fraction=0.1).stages(long)[1].epochs == 10


def test_options_are_validated():
    for bad in ({"loss": "x"}, {"sampler": "greedy"}, {"variant": "x"}, {"tau": 0.0}, {"k_factor": 0}):
        with pytest.raises(UserError):
            _method(**bad)
    with pytest.raises(UserError, match="variant=code sets sampler"):
        _method(variant="code", sampler="exact-k")


def test_stage1_batches_hold_both_views_of_each_image_and_weight_decay_skips_biases_and_norms():
    method = _method()
    bns, ipdpp = method.stages(RECIPE)
    assert method.batch_size(RECIPE, bns) == 256 and method.batch_size(RECIPE, ipdpp) == 128
    order = method.epoch_order(LABELS, np.random.default_rng(0), StepContext(bns, 0))
    assert np.array_equal(order[0::2], order[1::2])
    assert np.array_equal(np.sort(order[0::2]), np.arange(len(LABELS)))
    torch.manual_seed(0)
    model = method.build_model(BACKBONES.get("small-cnn")(1), 3)
    decayed, plain = method.param_groups(model, bns)
    assert all(p.ndim > 1 for p in decayed["params"]) and plain["weight_decay"] == 0.0
    assert len(decayed["params"]) + len(plain["params"]) == len(list(model.parameters()))
    assert {id(p) for p in model.projector.parameters()} <= {
        id(p) for p in decayed["params"] + plain["params"]
    }


def test_stage1_loss_is_bns_plus_a_detached_probe():
    method = _method()
    bns, _ = method.stages(RECIPE)
    torch.manual_seed(0)
    model = method.build_model(BACKBONES.get("small-cnn")(1), 3)
    images = torch.randn(8, 1, 12, 12)
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 0, 0])
    context = StepContext(bns, 0, indices=torch.tensor([4, 4, 9, 9, 1, 1, 7, 7]))
    context.generator.manual_seed(0)
    loss = method.loss(model, images, labels, context)
    features = model.features(images)
    probe = F.cross_entropy(model.head(features), labels)
    embedded = model.embed(features)
    expected = bns_paper_loss(
        embedded[0::2], embedded[1::2], labels[0::2], 2, 16, 0.5, torch.Generator().manual_seed(0)
    )
    assert math.isclose(loss.item(), (expected + probe).item(), rel_tol=1e-5)
    probe.backward()
    assert model.projector[0].weight.grad is None and model.head.weight.grad is not None


class _FakeSession:
    """Logits that make class 0's first 30 items confident and its last 10 uncertain."""

    def __init__(self) -> None:
        self.train_labels = LABELS
        self.device = torch.device("cpu")
        self.calls: list[np.ndarray] = []

    def logits_of(self, model, split, indices=None):
        assert split == "train"
        self.calls.append(np.asarray(indices))
        logits = torch.zeros(len(indices), 3)
        for row, i in enumerate(indices):
            logits[row, LABELS[i]] = 6.0 if i < 30 else -3.0
        return logits


def test_stage2_starts_uniform_then_reselects_by_ip_dpp_within_a_5_epoch_recipe():
    method = _method(k_factor=2)  # k = 2·3 = 6: class 0 (40) and class 1 (12) are sampled, class 2 kept
    assert method.k == 6
    _, ipdpp = method.stages(dataclasses.replace(RECIPE, epochs=5))
    assert method.resample_period(ipdpp) == 1
    session = _FakeSession()
    generator = torch.Generator().manual_seed(0)
    uncertain = []
    for epoch in range(5):
        method.begin_epoch(None, StepContext(ipdpp, epoch, generator=generator), session)
        subset = method.subset
        assert len(subset) == 6 + 6 + 3 and set(np.flatnonzero(LABELS == 2)) <= set(subset)
        uncertain.append(int(((subset >= 30) & (subset < 40)).sum()))
        order = method.epoch_order(LABELS, np.random.default_rng(epoch), StepContext(ipdpp, epoch))
        assert np.array_equal(np.sort(order), subset)
    assert [r["sampler"] for r in method.resamplings] == ["uniform"] + ["exact-k"] * 4
    assert len(session.calls) == 4 and all(len(c) == 52 for c in session.calls)  # classes 0 and 1 only
    assert method.probability_images == 4 * 52
    assert np.mean(uncertain[1:]) > 6 * 10 / 40  # more than uniform's expected share
    report = method.report()
    assert report["provisional"] == {"m": 2, "n": 16, "tau": 0.5}
    assert (report["k_per_class"], report["whole_classes"], report["subset_size"]) == (6, 1, 15)
    assert (report["dpp_active"], report["classes_sampled"]) == (True, 2)
    restored = _method(k_factor=2)
    restored.load_state_dict(method.state_dict())
    assert np.array_equal(restored.subset, method.subset) and restored.report() == report


def test_code_variant_keeps_one_seed_42_uniform_subset_and_fine_tunes_everything():
    method = _method(variant="code", k_factor=2)
    _, ipdpp = method.stages(dataclasses.replace(RECIPE, epochs=10))
    assert method.resample_period(ipdpp) == 2 and not ipdpp.freeze_backbone
    session = _FakeSession()
    subsets = []
    for epoch in range(10):
        method.begin_epoch(None, StepContext(ipdpp, epoch, generator=torch.Generator()), session)
        subsets.append(method.subset)
    assert all(np.array_equal(s, subsets[0]) for s in subsets) and not session.calls
    assert np.array_equal(subsets[0], uniform_per_class(LABELS, 6, np.random.default_rng(42)))
    assert [r["epoch"] for r in method.resamplings] == [1, 3, 5, 7, 9]
    torch.manual_seed(0)
    model = method.begin_stage(method.build_model(BACKBONES.get("small-cnn")(1), 3), ipdpp)
    trained = {id(p) for g in method.param_groups(model, ipdpp) for p in g["params"]}
    assert {id(p) for p in model.backbone.parameters()} <= trained
    assert not {id(p) for p in model.projector.parameters()} & trained


def test_the_two_views_are_one_batch_unit_only_in_stage_one():
    method = _method()
    assert [method.batch_unit(stage) for stage in method.stages(RECIPE)] == [2, 1]


def test_ip_dpp_is_reported_inactive_when_the_largest_class_is_at_most_k_factor_times_the_smallest():
    """k = 10·N_min keeps every class whole when n_max ≤ 10·n_min (every ALT run: Train-CBL is balanced)."""
    assert (_method().report()["dpp_active"], _method().report()["classes_sampled"]) == (True, 1)  # 40 > 30
    balanced = METHODS.get("bns-ipdpp")({}, np.array([30, 12, 3]))
    assert (balanced.report()["dpp_active"], balanced.report()["classes_sampled"]) == (False, 0)
    assert balanced.report()["whole_classes"] == 3
