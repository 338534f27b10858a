"""IFL (docs/methods.md §14): environments, α schedule, centre updates, statistics and loss options."""

from __future__ import annotations

import dataclasses
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from baselines.base import METHODS, Method, StepContext
from baselines.ifl import CentredNetwork, intra_weights
from baselines.mixup import mix_batch
from baselines.randaug import RandAugment
from baselines.samplers import distribution
from benchmark.errors import UserError
from benchmark.models import BACKBONES
from benchmark.recipes import RECIPES

RECIPE = dataclasses.replace(RECIPES.get("fashion"), epochs=5)
STAGE = Method.base_stage(RECIPE)
COUNTS = np.array([2, 2])
LABELS = np.array([0, 0, 1, 1])


class Features(nn.Module):
    """A backbone whose features are its inputs (a bias-free linear map initialised to identity)."""

    feature_dim = 2

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(2, 2, bias=False)
        with torch.no_grad():
            self.linear.weight.copy_(torch.eye(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


def _ifl(counts: np.ndarray = COUNTS, **hparams):
    return METHODS.get("ifl")(hparams, counts)


def _model(method) -> CentredNetwork:
    torch.manual_seed(0)
    return method.build_model(Features(), 2)


def _context(epoch: int, indices=(0, 1, 2, 3)) -> StepContext:
    return StepContext(STAGE, epoch, torch.tensor(indices), torch.Generator().manual_seed(0))


def test_alpha_and_environment_updates_switch_on_within_five_epochs():
    method = _ifl()
    assert [method.center_weight(e, 5) for e in range(5)] == [0.0, 0.0, 0.0, 0.001, 0.005]
    assert [method.center_weight(e, 100) for e in (59, 60, 79, 80, 99)] == [0.0, 0.001, 0.001, 0.005, 0.005]
    assert method.update_epochs(5) == [3, 4] and method.update_epochs(100) == [60, 80]


def test_environment_update_happens_at_the_end_of_epoch_floor_06e_and_applies_from_the_next():
    labels = np.repeat([0, 1], 10)
    method = _ifl(np.array([10, 10]))
    session = SimpleNamespace(train_labels=labels)
    logits = torch.zeros(20, 2)
    for epoch in range(3):  # epochs 0–2 end without an update
        method.begin_epoch(None, _context(epoch), session)
        method._record(logits, torch.from_numpy(labels), torch.arange(20))
        method.end_epoch(None, _context(epoch), session)
        assert np.all(method.env_weights == 1)
    method.begin_epoch(None, _context(3), session)
    seen = np.arange(0, 20, 2)  # only even indices drawn in epoch 3
    method._record(logits[seen], torch.from_numpy(labels[seen]), torch.from_numpy(seen))
    method.end_epoch(None, _context(3), session)
    assert np.all(method.env_weights[0] == 1)
    assert np.all(method.env_weights[1][1::2] == 0) and np.allclose(method.env_weights[1][seen], 0.2)
    order = method.epoch_order(labels, np.random.default_rng(0), _context(4))
    assert len(order) == 40 and np.all(order[1::2] % 2 == 0)  # env 2's draws: only seen indices


def test_epoch_is_two_n_images_half_from_each_environment_per_step():
    method = _ifl(np.array([3, 3]))
    method.env_weights[1] = [0, 0, 0, 1, 1, 1]  # env 2 draws class 1 only
    assert method.batch_size(RECIPE, STAGE) == RECIPE.batch_size
    order = method.epoch_order(np.repeat([0, 1], 3), np.random.default_rng(0), _context(0))
    assert len(order) == 12
    for batch in order.reshape(-1, 4):  # any even batch size: half env 1, half env 2
        assert np.all(batch[1::2] >= 3)
    again = method.epoch_order(np.repeat([0, 1], 3), np.random.default_rng(0), _context(0))
    assert np.array_equal(order, again)


def test_intra_weights_by_hand():
    # p = 0.2 … 1.0: s̃ = 0, .25, .5, .75, 1 → h = 1, .75, .5, .25, 0 (+1e-5); head = mean of the 4
    # smallest = .37501, tail = 1.00001, r = 2.66670, γ = ln 4 / ln r = 1.4134; w ∝ h^γ:
    # 1, .6659, .3754, .1410, ~0 (sum 2.1823) → .4582, .3051, .1720, .0646, 0.
    prob = np.array([0.2, 0.4, 0.6, 0.8, 1.0, 0.3, 0.9, -1.0])
    labels = np.array([0, 0, 0, 0, 0, 1, 1, 1])
    weights, gammas = intra_weights(prob, labels, 3)
    assert np.allclose(weights[:5], [0.4582, 0.3051, 0.1720, 0.0646, 0.0], atol=2e-4)
    assert gammas[0] == pytest.approx(1.4134, abs=1e-3)
    assert np.array_equal(weights[5:], [0.5, 0.5, 0.0])  # n_c < 5 → 1/n_c; not drawn → 0
    assert np.isnan(gammas[1]) and np.isnan(gammas[2])


def test_env2_is_class_balanced_and_weights_the_hardest_fifth_about_four_times():
    # Per class: 20 hard samples (p = 0), one at p = 1 and 79 at p = 0.5: h = 1, ~0 and 0.5, so
    # head = 79·0.5/80, r ≈ 2.025, γ ≈ 1.96 and the hard fifth weighs ≈ 0.5^−γ·80/79 ≈ 3.95× the rest.
    rng = np.random.default_rng(0)
    prob = np.tile(np.concatenate([np.zeros(20), [1.0], np.full(79, 0.5)]), 3)
    labels = np.repeat([0, 1, 2], 100)
    prob[labels == 2] *= 0.5  # a rescaled class: same h after min–max scaling
    order = rng.permutation(300)
    weights, _ = intra_weights(prob[order], labels[order], 3)
    assert np.allclose(np.bincount(labels[order], weights), 1.0)
    for c in range(3):
        w = weights[labels[order] == c]
        hard = prob[order][labels[order] == c] == 0
        assert w[hard].mean() / w[~hard].mean() == pytest.approx(3.95, abs=0.05)
    draws = distribution(weights, rng, 300_000)
    assert np.allclose(np.bincount(labels[order][draws]) / len(draws), 1 / 3, atol=0.005)


def test_statistics_keep_the_last_value_per_index():
    method = _ifl(np.array([3, 3]))
    method.begin_epoch(None, _context(0), SimpleNamespace())
    logits = torch.tensor([[0.0, 0.0], [math.log(3), 0.0], [0.0, math.log(3)], [math.log(4), 0.0]])
    labels = torch.tensor([0, 0, 1, 0])
    method._record(logits, labels, torch.tensor([5, 2, 5, 1]))  # index 5 twice in one batch
    assert method._prob[:6].tolist() == pytest.approx([-1, 0.8, 0.75, -1, -1, 0.75])
    method._record(logits[:1], labels[:1], torch.tensor([2]))  # a later step overwrites
    assert method._prob[2].item() == pytest.approx(0.5)
    method.begin_epoch(None, _context(1), SimpleNamespace())
    assert method._prob is None  # a new epoch starts a new record


def test_centres_stay_while_alpha_is_zero_and_then_move_toward_their_batch_mean():
    # B = 4, classes 0, 0, 1, 1, centres at 0. ∇_c L_center = 2·n_c/B·(c − mean_c), lr 0.5:
    # c_0 → 0 − 0.5·(2·2/4)·(0 − (2, 0)) = (1, 0); c_1 → 0.5·((0, 2) + (10, 10))/2 = (2.5, 3).
    images = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0], [10.0, 10.0]])
    labels = torch.tensor([0, 0, 1, 1])
    for epoch, expected in ((2, [[0.0, 0.0], [0.0, 0.0]]), (3, [[1.0, 0.0], [2.5, 3.0]])):  # α = 0, 0.001
        method = _ifl()
        model = _model(method)
        with torch.no_grad():
            model.centres.zero_()
        groups = method.param_groups(model, STAGE)
        assert groups[1] == {
            "params": [model.centres], "lr": 0.5, "momentum": 0.0, "weight_decay": 0.0, "scheduled": False
        }  # fmt: skip
        optimizer = torch.optim.SGD(
            groups, lr=STAGE.lr, momentum=STAGE.momentum, weight_decay=STAGE.weight_decay
        )
        method.loss(model, images, labels, _context(epoch)).backward()
        optimizer.step()
        assert torch.allclose(model.centres, torch.tensor(expected))


def test_the_network_sees_alpha_times_the_centre_loss_and_the_value_is_l():
    method = _ifl(loss="ce")
    model = _model(method)
    images = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0], [10.0, 10.0]])
    labels = torch.tensor([0, 0, 1, 1])
    loss = method.loss(model, images, labels, _context(4))  # α = 0.005
    loss.backward()
    got = model.backbone.linear.weight.grad.clone()
    model.zero_grad()
    features = model.features(images)
    centre = (features - model.centres[labels]).pow(2).sum(1).mean()
    expected = F.cross_entropy(model.head(features), labels) + 0.005 * centre
    assert torch.allclose(loss, expected)
    expected.backward()
    assert torch.allclose(got, model.backbone.linear.weight.grad)


def test_loss_options():
    images, labels = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 1.0]]), torch.tensor([0, 1, 1])
    counts = np.array([3, 1])
    log_prior = torch.log(torch.tensor([0.75, 0.25]))
    for loss, shift in (("bs", log_prior), ("ce", torch.zeros(2)), ("la-posthoc", torch.zeros(2))):
        method = _ifl(counts, loss=loss)
        model = _model(method)
        z = model(images)
        got = method.loss(model, images, labels, _context(0, (0, 1, 2)))  # α = 0: classification only
        assert torch.allclose(got, F.cross_entropy(z + shift, labels))
        posthoc = log_prior if loss == "la-posthoc" else torch.zeros(2)
        assert torch.allclose(method.logits(model, images), z - posthoc)
    with pytest.raises(UserError, match="bs, ce, la-posthoc"):
        _ifl(loss="focal")
    with pytest.raises(UserError, match="intra, simple_aug"):
        _ifl(env_type="inter")


def test_triplet_centre_loss_uses_the_most_confident_wrong_class_as_negative():
    # f = (0, 0), c_y = (1, 0); the head prefers class 2 among the wrong ones, c_2 = (0, 3):
    # max(‖f − c_y‖ − ‖f − c_2‖ + 1, 0) = max(1 − 3 + 1, 0) = 0; with c_2 = (0, 0.5): 1 − 0.5 + 1 = 1.5.
    method = _ifl(np.array([1, 1, 1]), triplet=True)
    features, logits = torch.zeros(1, 2), torch.tensor([[0.0, 1.0, 2.0]])
    centres = torch.tensor([[1.0, 0.0], [0.0, 0.1], [0.0, 3.0]])
    label = torch.tensor([0])
    assert method.center_loss(features, logits, centres, label).item() == pytest.approx(0.0, abs=1e-5)
    centres[2] = torch.tensor([0.0, 0.5])
    assert method.center_loss(features, logits, centres, label).item() == pytest.approx(1.5, abs=1e-5)


def test_mixup_mixes_both_losses_with_the_same_lambda():
    method = _ifl(loss="ce", mixup=True)
    model = _model(method)
    images = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0], [10.0, 10.0]])
    labels = torch.tensor([0, 0, 1, 1])
    loss = method.loss(model, images, labels, _context(4))
    mixed, labels_b, lam = mix_batch(images, labels, 1.0, torch.Generator().manual_seed(0))
    f = model.features(mixed)
    z = model.head(f)

    def centre(y: torch.Tensor) -> torch.Tensor:
        return (f - model.centres[y]).pow(2).sum(1).mean()

    expected = lam * F.cross_entropy(z, labels) + (1 - lam) * F.cross_entropy(z, labels_b)
    expected = expected + 0.005 * (lam * centre(labels) + (1 - lam) * centre(labels_b))
    assert torch.allclose(loss, expected)
    assert method._prob[:4].tolist() == pytest.approx(z.softmax(1)[torch.arange(4), labels].tolist())


def test_randaug_option_applies_the_randaugment_transform():
    images = torch.randint(0, 256, (3, 1, 28, 28), dtype=torch.uint8)
    assert torch.equal(_ifl().transform(images, torch.Generator().manual_seed(1)), images)
    got = _ifl(randaug=True).transform(images, torch.Generator().manual_seed(1))
    assert torch.equal(got, RandAugment("original")(images, torch.Generator().manual_seed(1)))


def test_state_round_trip_continues_identically_and_report():
    labels = np.repeat([0, 1], 10)
    method = _ifl(np.array([10, 10]))
    method.begin_stage(None, STAGE)
    method.begin_epoch(None, _context(3), SimpleNamespace())
    method._record(torch.randn(20, 2), torch.from_numpy(labels), torch.arange(20))
    method.end_epoch(None, _context(3), SimpleNamespace(train_labels=labels))
    resumed = _ifl(np.array([10, 10]))
    resumed.load_state_dict(method.state_dict())
    a = method.epoch_order(labels, np.random.default_rng(9), _context(4))
    assert np.array_equal(a, resumed.epoch_order(labels, np.random.default_rng(9), _context(4)))
    report = method.report()
    assert report["center_milestones"] == [0, 3, 4] and report["center_weights"] == [0.0, 0.001, 0.005]
    assert report["env_update_epochs"] == [3, 4] and all(1 <= g <= 10 for g in report["env_gamma"])


def _expert_ifl(experts: str):
    method = _ifl(np.array([2, 1, 1]), experts=experts)
    torch.manual_seed(0)
    return method, method.build_model(BACKBONES.get("small-cnn")(1), 3)


def test_expert_combinations_take_the_expert_network_schedule_and_centres_on_concatenated_features():
    ride, model = _expert_ifl("ride")
    (stage,) = ride.stages(RECIPE)
    assert (stage.schedule, stage.milestones, stage.gamma, stage.weight_decay) == (
        "multistep",
        (3, 4),
        0.1,
        2e-4,
    )
    assert model.centres.shape == (3, 3 * 48) and model.backbone.feature_dim == 144
    assert any(p is model.centres for p in model.parameters())
    groups = ride.param_groups(model, stage)
    assert groups[1]["params"] == [model.centres] and groups[1]["lr"] == 0.5
    tade, _ = _expert_ifl("tade")
    assert tade.stages(RECIPE) == [Method.base_stage(RECIPE)]
    assert ride.report()["experts"] == 3
    with pytest.raises(UserError, match="none, ride, tade"):
        _ifl(experts="moe")
    with pytest.raises(UserError, match="leave loss, mixup and triplet"):
        _ifl(experts="ride", loss="ce")


def test_ride_ifl_centre_loss_is_one_minus_cosine():
    # f = (1, 0), c = (1, 1): 1 − 1/√2; f = (0, 2), c = (0, −1): 1 − (−1) = 2.
    method = _ifl(np.array([1, 1]), experts="ride")
    features = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    centres = torch.tensor([[1.0, 1.0], [0.0, -1.0]])
    got = method.center_loss(features, torch.zeros(2, 2), centres, torch.tensor([0, 1]))
    assert got.item() == pytest.approx((1 - 1 / math.sqrt(2) + 2) / 2, rel=1e-6)
    square = _ifl(np.array([1, 1]), experts="tade").center_loss(
        features, torch.zeros(2, 2), centres, torch.tensor([0, 1])
    )
    assert square.item() == pytest.approx((1 + 9) / 2)  # TADE + IFL keeps the squared distance


def test_expert_combination_losses_add_alpha_times_the_centre_loss_and_record_the_mean_expert_softmax():
    images = torch.randn(4, 1, 12, 12)
    labels = torch.tensor([0, 0, 1, 2])
    for experts in ("ride", "tade"):
        method, model = _expert_ifl(experts)
        model.eval()  # fixed BatchNorm statistics: the forward passes below see the same network
        method.begin_epoch(model, _context(4), SimpleNamespace())
        loss = method.loss(model, images, labels, _context(4))  # α = 0.005
        with torch.no_grad():
            f = model.features(images)
            z = model.expert_logits(f)
            centre = method.center_loss(f, z.mean(0), model.centres, labels)
            expected = method.experts.classification_loss(z, labels, _context(4)) + 0.005 * centre
            assert torch.allclose(loss, expected)
            probs = z.mean(0).softmax(1)[torch.arange(4), labels]
            assert method._prob[:4].tolist() == pytest.approx(probs.tolist())
            assert torch.allclose(method.logits(model, images), z.mean(0))
