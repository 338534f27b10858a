"""DRO-LT (docs/methods.md §15): the DRO loss, ε and its projection, class weights, centroids, the three
phases' layout and trainable parts, nearest-centroid selection logits, and option checks."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from baselines.base import METHODS, Method, StepContext
from baselines.dro_lt import class_means, dro_loss, inv_sqrt_radii
from baselines.samplers import class_aware
from benchmark import engine
from benchmark.errors import UserError
from benchmark.models import BACKBONES
from benchmark.recipes import RECIPES
from benchmark.transforms import Pipeline

RECIPE = RECIPES.get("fashion")
COUNTS = np.array([6, 3, 1])
LABELS = np.repeat(np.arange(3), COUNTS)
POINTS = torch.tensor(
    [[2.0, 0.0], [3.0, 1.0], [4.0, 0.0], [3.0, -1.0], [2.5, 0.5], [3.5, -0.5],
     [0.0, 2.0], [1.0, 3.0], [-1.0, 2.5],
     [-3.0, -3.0]]
)  # fmt: skip  # training "images" of a backbone whose features are its inputs


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


class PointSession:
    """The parts of engine.Session the method uses, over POINTS; an augmented view is shifted by +1."""

    train_labels = LABELS
    device = torch.device("cpu")

    def features(self, model: nn.Module, split: str, indices=None, augment: bool = False) -> torch.Tensor:
        assert split == "train"
        x = POINTS if indices is None else POINTS[torch.as_tensor(indices)]
        with torch.inference_mode():  # as the engine's feature passes
            return model.features(x + 1.0 if augment else x).float()


def _method(**hparams):
    return METHODS.get("dro-lt")(hparams, COUNTS)


def _model(method) -> nn.Module:
    torch.manual_seed(0)
    return method.build_model(Features(), 3)


def _phases(method, recipe=RECIPE):
    return {stage.name: stage for stage in method.stages(recipe)}


def _in_phase1(method, model: nn.Module) -> StepContext:
    """Model through phase 0 into phase 1, first epoch begun; returns the epoch's context."""
    phases = _phases(method)
    for name in ("phase0", "phase1"):
        model = method.begin_stage(model, phases[name])
    context = StepContext(phases["phase1"], 0, generator=torch.Generator().manual_seed(3))
    method.begin_epoch(model, context, PointSession())
    return context


# --- the loss -----------------------------------------------------------------------------
CENTROIDS = torch.tensor([[0.0, 0.0], [0.0, 4.0], [7.0, 7.0]])  # class 2 is not in the batch
BATCH = torch.tensor([[3.0, 0.0], [0.0, 0.0], [0.0, 1.0]])
BATCH_LABELS = torch.tensor([0, 0, 1])
RADII = torch.tensor([0.5, 0.25, 9.0])


def _lse(*values: float) -> float:
    return math.log(sum(math.exp(v) for v in values))


def test_dro_loss_by_hand_for_both_k():
    # Distances: μ_0 → (3, 0, 1), μ_1 → (5, 4, 3). Class 0's positives are samples 0 and 1, class 1's
    # sample 2. k = 2: s_0 = (−4, −1, −1), s_1 = (−5, −4, −3.5); L_c = −mean_pos s + logsumexp s.
    paper = ((2.5 + _lse(-4, -1, -1)) + (3.5 + _lse(-5, -4, -3.5))) / 2
    assert dro_loss(BATCH, BATCH_LABELS, CENTROIDS, RADII, k=2.0).item() == pytest.approx(paper, rel=1e-6)
    # k = 1 (variant code): s_0 = (−3.5, −0.5, −1), s_1 = (−5, −4, −3.25).
    code = ((2.0 + _lse(-3.5, -0.5, -1)) + (3.25 + _lse(-5, -4, -3.25))) / 2
    assert dro_loss(BATCH, BATCH_LABELS, CENTROIDS, RADII, k=1.0).item() == pytest.approx(code, rel=1e-6)
    # T = 2 halves every score: s_0 = (−2, −0.5, −0.5), s_1 = (−2.5, −2, −1.75).
    warm = ((1.25 + _lse(-2, -0.5, -0.5)) + (1.75 + _lse(-2.5, -2, -1.75))) / 2
    loss = dro_loss(BATCH, BATCH_LABELS, CENTROIDS, RADII, k=2.0, temperature=2.0)
    assert loss.item() == pytest.approx(warm, rel=1e-6)


def _naive_dro_loss(features, labels, centroids, radii, k, temperature):
    losses = []
    for c in sorted(set(labels.tolist())):
        scores = []
        for j in range(len(labels)):
            scores.append(
                -((centroids[c] - features[j]).norm() + k * radii[c] * (labels[j] == c)) / temperature
            )
        log_prob = torch.stack(scores).log_softmax(0)
        losses.append(-log_prob[labels == c].mean())
    return torch.stack(losses).mean()


@pytest.mark.parametrize(("k", "temperature"), [(2.0, 1.0), (1.0, 1.0), (2.0, 0.5)])
def test_dro_loss_and_its_gradients_match_a_per_class_loop(k: float, temperature: float):
    g = torch.Generator().manual_seed(0)
    labels = torch.tensor([0, 3, 3, 1, 0, 3, 4, 0, 1, 3, 4, 4])  # class 2 absent
    centroids = torch.randn(5, 6, generator=g)
    results = []
    for loss_fn in (dro_loss, _naive_dro_loss):
        features = torch.randn(len(labels), 6, generator=torch.Generator().manual_seed(1)).requires_grad_()
        radii = torch.rand(5, generator=torch.Generator().manual_seed(2)).requires_grad_()
        loss = loss_fn(features, labels, centroids, radii, k, temperature)
        loss.backward()
        results.append((loss.detach(), features.grad, radii.grad))
    for fast, slow in zip(*results, strict=True):
        assert torch.allclose(fast, slow, atol=1e-6)
    radii_grad = results[0][2]
    assert (radii_grad[[0, 1, 3, 4]] > 0).all() and radii_grad[2] == 0  # so SGD only shrinks ε


def test_class_weights_are_counts_over_the_largest():
    assert torch.allclose(_method().ce_weights(), torch.tensor([1.0, 0.5, 1 / 6]))


@pytest.mark.parametrize("variant", ["paper", "code"])
def test_phase1_loss_combines_weighted_ce_on_the_frozen_classifier_with_dro(variant: str):
    method = _method(variant=variant)
    model = _model(method)
    context = _in_phase1(method, model)
    x, y = torch.tensor([[2.0, 1.0], [0.5, 2.0], [-2.0, -2.5], [3.0, 0.0]]), torch.tensor([0, 1, 2, 0])
    loss = method.loss(model, x, y, context)
    per_sample = F.cross_entropy(model(x), y, reduction="none")
    w = torch.tensor([1.0, 0.5, 1 / 6])[y]
    ce = (w * per_sample).sum() / w.sum()  # torch's weighted mean, as the original's CE(weight=…)
    k, temperature = (2.0, 1.0) if variant == "paper" else (1.0, 0.07)
    dro = dro_loss(x, y, method.centroids, model.radii(), k=k, temperature=temperature)
    expected = 0.5 * ce + 0.5 * dro if variant == "paper" else ce + dro
    assert torch.allclose(loss, expected, atol=1e-6)


# --- trainable parts per phase -------------------------------------------------------------
def test_phase1_trains_backbone_and_eps_but_not_the_classifier():
    method = _method(eps="learned")
    model = _model(method)
    context = _in_phase1(method, model)
    assert not model.head.weight.requires_grad
    (group,) = method.param_groups(model, context.stage)
    assert group["params"] == [*model.backbone.parameters(), model.radii.value]
    head_before = model.head.weight.detach().clone()
    optimizer = torch.optim.SGD(group["params"], lr=0.1)
    x, y = POINTS[[0, 6, 9, 1]], torch.tensor([0, 1, 2, 0])
    method.loss(model, x, y, context).backward()
    assert model.head.weight.grad is None
    assert model.backbone.linear.weight.grad.abs().sum() > 0 and (model.radii.value.grad > 0).all()
    optimizer.step()
    method.after_step(model, context)
    assert torch.equal(model.head.weight, head_before)
    assert (model.radii.value < 1).all()  # ε only shrinks


def test_phase2_trains_only_the_classifier_with_plain_ce():
    method = _method()
    model = _model(method)
    phases = _phases(method)
    for name in ("phase0", "phase1", "phase2"):
        model = method.begin_stage(model, phases[name])
    assert phases["phase2"].freeze_backbone and model.head.weight.requires_grad
    (group,) = method.param_groups(model, phases["phase2"])
    assert group["params"] == [model.head.weight]
    model.backbone.requires_grad_(False)  # what the engine does for freeze_backbone
    x, y = POINTS[[0, 6, 9]], torch.tensor([0, 1, 2])
    loss = method.loss(model, x, y, StepContext(phases["phase2"], 0))
    assert torch.allclose(loss, F.cross_entropy(model(x), y))
    loss.backward()
    assert model.backbone.linear.weight.grad is None and model.head.weight.grad is not None


# --- ε ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("eps", "size"), [("learned", 3), ("shared", 1)])
def test_learned_eps_starts_at_init_and_is_projected_after_every_step(eps: str, size: int):
    method = _method(eps=eps, eps_init=0.75)
    model = _model(method)
    context = _in_phase1(method, model)
    assert model.radii.value.shape == (size,) and torch.equal(model.radii(), torch.full((3,), 0.75))
    assert "radii.value" in model.state_dict()
    with torch.no_grad():
        model.radii.value.copy_(torch.tensor([-1.0, 0.5, -0.2][:size]))
    method.after_step(model, context)
    assert torch.equal(model.radii.value, torch.tensor([0.0, 0.5, 0.0][:size]))


def test_inv_sqrt_eps_is_fixed_with_mean_eps_init():
    inv = torch.tensor([6.0, 3.0, 1.0]) ** -0.5
    assert torch.allclose(inv_sqrt_radii(COUNTS), inv / inv.mean())
    method = _method(eps="inv_sqrt", eps_init=2.0)
    model = _model(method)
    context = _in_phase1(method, model)
    assert torch.allclose(model.radii(), 2 * inv / inv.mean())
    assert list(model.radii.parameters()) == [] and "radii.value" in model.state_dict()
    (group,) = method.param_groups(model, context.stage)
    assert group["params"] == list(model.backbone.parameters())


# --- centroids, selection logits, prediction ---------------------------------------------
def test_class_means_accumulate_over_batches_and_leave_absent_classes_at_zero():
    features = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 0.0]])
    labels = torch.tensor([0, 0, 2])
    whole = class_means([(features, labels)], 3)
    assert torch.equal(whole, torch.tensor([[2.0, 3.0], [0.0, 0.0], [5.0, 0.0]]))
    assert torch.equal(class_means([(features[:1], labels[:1]), (features[1:], labels[1:])], 3), whole)


def test_phase1_centroids_are_means_of_the_epoch_s_augmented_draws():
    method = _method()
    model = _model(method)
    seed = int(torch.randint(0, 2**62, (), generator=torch.Generator().manual_seed(3)))  # as _in_phase1's
    context = _in_phase1(method, model)
    expected_order = class_aware(LABELS, np.random.default_rng(seed))
    assert len(expected_order) == 6 * 3  # n_max·C ≤ 4N
    order = method.epoch_order(LABELS, np.random.default_rng(99), context)  # the engine's rng is unused
    assert np.array_equal(order, expected_order)
    assert torch.allclose(
        method.centroids, class_means([(POINTS[order] + 1.0, torch.as_tensor(LABELS[order]))], 3)
    )
    assert method.report()["centroid_pass_images"] == 18
    with pytest.raises(RuntimeError, match="begin_epoch"):
        method.epoch_order(LABELS, np.random.default_rng(0), context)  # each order is used once


def test_phase1_centroid_pass_uses_the_engine_s_augmented_views_of_the_same_draws():
    train_set = engine.ImageSet(
        (torch.rand(10, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 255).to(torch.uint8),
        torch.as_tensor(LABELS),
    )
    pipeline = Pipeline(RECIPE, (0.5,), (0.25,), torch.device("cpu"))

    def session() -> engine.Session:
        method = METHODS.get("ce")({}, COUNTS)
        return engine.Session(
            method, train_set, train_set, pipeline, RECIPE, torch.Generator().manual_seed(5)
        )

    method = _method()
    torch.manual_seed(0)
    model = method.build_model(BACKBONES.get("small-cnn")(1), 3)
    stage = _phases(method)["phase1"]
    model = method.begin_stage(model, stage)
    context = StepContext(stage, 0, generator=torch.Generator().manual_seed(3))
    method.begin_epoch(model, context, session())
    order = method.epoch_order(LABELS, np.random.default_rng(0), context)
    augmented = session().features(model, "train", order, augment=True)
    expected = class_means([(augmented, torch.as_tensor(LABELS[order]))], 3)
    assert torch.allclose(method.centroids, expected, atol=1e-6)
    assert not torch.allclose(
        method.centroids, class_means([(session().features(model, "train"), train_set.labels)], 3)
    )


def test_phase1_logits_are_cosines_to_clean_training_means_then_the_classifier_s():
    method = _method(eps="learned")
    model = _model(method)
    context = _in_phase1(method, model)
    method.end_epoch(model, context, PointSession())
    means = class_means([(POINTS, torch.as_tensor(LABELS))], 3)  # clean: no +1 shift
    assert torch.allclose(method.clean_means, means)
    x = torch.tensor([[1.0, 1.0], [0.0, -2.0]])
    cosines = F.normalize(x, dim=1) @ F.normalize(means, dim=1).T
    assert torch.allclose(method.logits(model, x), cosines)
    assert method.report()["selection_pass_images"] == len(LABELS)
    method.begin_stage(model, _phases(method)["phase2"])
    assert torch.equal(method.logits(model, x), model(x))
    method.begin_stage(model, _phases(method)["phase1"])  # e.g. a resumed run replaying its stages
    model = method.finish(model, PointSession())
    assert torch.equal(method.logits(model, x), model(x))
    assert method.report()["epsilon"] == [1.0, 1.0, 1.0]
    assert method.report()["epsilon_per_epoch"] == [[1.0, 1.0, 1.0]]  # one phase-1 epoch ended


def test_counters_survive_a_state_dict_round_trip():
    method = _method()
    method.centroid_pass_images, method.selection_pass_images = 18, 10
    method.epsilon_per_epoch = [[0.5, 0.25, 0.0]]
    again = _method()
    again.load_state_dict(method.state_dict())
    assert (again.centroid_pass_images, again.selection_pass_images) == (18, 10)
    assert again.epsilon_per_epoch == [[0.5, 0.25, 0.0]]


# --- stages and options ---------------------------------------------------------------------
@pytest.mark.parametrize(("epochs", "phase1", "phase2"), [(100, 80, 20), (30, 24, 6), (5, 4, 1), (1, 1, 1)])
def test_three_phases_scale_with_the_recipe(epochs: int, phase1: int, phase2: int):
    recipe = dataclasses.replace(RECIPE, epochs=epochs, batch_size=64)
    method = _method()
    stage0, stage1, stage2 = method.stages(recipe)
    assert stage0 == dataclasses.replace(Method.base_stage(recipe), name="phase0", pretrained=True)
    assert (stage1.name, stage1.epochs, stage1.lr, stage1.momentum) == ("phase1", phase1, 0.005, 0.9)
    assert (stage2.name, stage2.epochs, stage2.lr, stage2.momentum) == ("phase2", phase2, 0.01, 0.9)
    for stage in (stage1, stage2):
        assert (stage.weight_decay, stage.schedule, stage.optimizer, stage.pretrained) == (
            1e-4, "constant", "sgd", False
        )  # fmt: skip
    assert not stage1.freeze_backbone and stage2.freeze_backbone
    assert [method.batch_size(recipe, s) for s in (stage0, stage1, stage2)] == [64, 128, 128]


def test_phase0_shuffles_and_phase2_draws_class_aware():
    method = _method()
    phases = _phases(method)
    first = method.epoch_order(LABELS, np.random.default_rng(0), StepContext(phases["phase0"], 0))
    assert np.array_equal(first, np.random.default_rng(0).permutation(len(LABELS)))
    last = method.epoch_order(LABELS, np.random.default_rng(0), StepContext(phases["phase2"], 0))
    assert np.array_equal(last, class_aware(LABELS, np.random.default_rng(0)))


@pytest.mark.parametrize(
    ("hparams", "fragment"),
    [
        ({"eps": "fixed"}, "eps must be one of learned, shared, inv_sqrt"),
        ({"variant": "icc"}, "variant must be one of paper, code"),
        ({"eps_init": -1.0}, "eps_init"),
        ({"lam": 1.5}, "lam"),
        ({"temperature": 0.0}, "temperature"),
        ({"phase1_fraction": 0.0}, "phase1_fraction"),
        ({"samples_per_class": 0}, "samples_per_class"),
    ],
)
def test_bad_options_are_user_errors(hparams: dict, fragment: str):
    with pytest.raises(UserError, match=fragment):
        _method(**hparams)


def test_default_radii_are_fixed_larger_for_rarer_classes_and_reported():
    method = _method()
    assert method.hparams["eps"] == "inv_sqrt" and method.hparams["variant"] == "paper"
    model = _model(method)
    context = _in_phase1(method, model)
    radii = model.radii()
    assert radii[0] < radii[1] < radii[2] and radii.mean().item() == pytest.approx(1.0)
    method.after_step(model, context)
    method.finish(model, PointSession())
    assert method.report()["epsilon"] == pytest.approx(radii.tolist())


def test_code_variant_assigns_radii_in_sample_order_like_the_public_code():
    """`pairwise[mask] = a[mask] − ε[batch_targets]` fills the positives row by row (class 0's, then
    1's, then 2's) with ε of the labels in sample order: labels [2, 2, 0, 0, 1, 1] with ε = (10, 20,
    30) give class 0's positives ε₂ = 30, class 1's ε₀ = 10 and class 2's ε₁ = 20."""
    labels = torch.tensor([2, 2, 0, 0, 1, 1])
    features = torch.randn(6, 4, generator=torch.Generator().manual_seed(0))
    centroids = torch.randn(3, 4, generator=torch.Generator().manual_seed(1))
    radii = torch.tensor([10.0, 20.0, 30.0])
    got = dro_loss(features, labels, centroids, radii, k=1.0, temperature=7.0, sample_order_radii=True)
    as_if = dro_loss(features, labels, centroids, torch.tensor([30.0, 10.0, 20.0]), k=1.0, temperature=7.0)
    right = dro_loss(features, labels, centroids, radii, k=1.0, temperature=7.0)
    assert torch.allclose(got, as_if, rtol=1e-6)
    assert not torch.allclose(got, right, rtol=1e-3)
    ordered = torch.tensor([0, 0, 1, 1, 2, 2])  # a batch sorted by label gets every ε right
    assert torch.allclose(
        dro_loss(features, ordered, centroids, radii, 1.0, 7.0, sample_order_radii=True),
        dro_loss(features, ordered, centroids, radii, 1.0, 7.0),
        rtol=1e-6,
    )


def test_code_variant_learns_unconstrained_per_class_radii_at_temperature_0_07():
    method = _method(variant="code")
    assert (method.hparams["eps"], method.hparams["temperature"], method.k) == ("learned", 0.07, 1.0)
    assert _method(variant="code", temperature=1.0).hparams["temperature"] == 1.0
    model = _model(method)
    context = _in_phase1(method, model)
    with torch.no_grad():
        model.radii.value.copy_(torch.tensor([-1.0, 0.5, -0.2]))
    method.after_step(model, context)
    assert torch.equal(model.radii.value, torch.tensor([-1.0, 0.5, -0.2]))  # never projected
    with pytest.raises(UserError, match="variant=code learns one ε per class"):
        _method(variant="code", eps="inv_sqrt")
