"""DRO-LT (`dro-lt`; Samuel & Chechik, ICCV 2021; docs/methods.md §15): a distributional-robustness loss
on penultimate features around class centroids with learned radii ε, then classifier retraining.

Three stages (the public code's phases):
- `phase0`: a plain CE model: the recipe's own stage (shuffle, CE), marked `pretrained`, so
  `glt-bench run --from RUN` of a `ce` run replaces it.
- `phase1`, feature learning: backbone trainable, classifier frozen; SGD lr 0.005, momentum 0.9,
  weight decay 1e-4, constant lr; batches of 128 from ClassAwareSampler(4).
  Loss λ·L_CE + (1 − λ)·L_DRO with k = 2, λ = 0.5 (`variant=paper`), or L_CE + L_DRO with k = 1
  (`variant=code`, below). L_CE is CE on the frozen classifier's logits with class weights n_c/n_max, as
  torch's weighted mean (divided by the batch's summed weights, like the original's
  `CrossEntropyLoss(weight=…)`). L_DRO is `dro_loss` on the features around this epoch's centroids.
- `phase2`, classifier retraining from the selected phase-1 weights: backbone frozen in eval mode,
  plain CE, SGD lr 0.01, momentum 0.9, weight decay 1e-4, constant lr, the same class-aware loader.

Phase lengths. §15 states 80 + 20 epochs for the 100-epoch base schedule; with §0's scaling a recipe
of E epochs gives phase 1 max(1, ⌊0.8E⌋) and phase 2 max(1, ⌊0.2E⌋) epochs, after the E epochs of
phase 0: 100 + 80 + 20 for the base recipes, 30 + 24 + 6 for `fashion`, 5 + 4 + 1 for a 5-epoch
recipe (options `phase1_fraction`, `phase2_fraction`). A class-aware epoch holds min(n_max·C, 4N)
draws (4N = 26,856 on fashion-glt's train_glt), so a phase-1 epoch trains on about 4× a CE epoch.
On fashion-glt with `fashion` that is 30 CE epochs (201k images), then 24 × 26,856 = 645k phase-1
images plus as many in the centroid passes and 24 × 6,714 in the selection passes (forward only),
then 6 × 26,856 = 161k phase-2 images (backbone forward only): about 5–6× a `ce` run's compute.

ε (`Radii`, attached to the network as `model.radii` when phase 1 begins, so checkpoints hold it and
a `ce` run's weights still fit phase 0). Default `eps=inv_sqrt`: fixed ε_c = eps_init·n_c^(−1/2) /
mean_c' n_c'^(−1/2) (mean ε = eps_init), the paper's own non-learned choice, which keeps the radii
what the method means them to be: larger for rarer classes. `eps=learned` (one value per class) and
`eps=shared` (one for all) start at `eps_init`, are trained by the phase-1 optimiser (weight decay
applies) and clamped to ≥ 0 after every step. They collapse: ε_c only enters the bound as a penalty
on class c's positives, so ∂L/∂ε_c ≥ 0 and SGD only shrinks it (measured on fashion-glt-mini, see the
README's findings), leaving a prototype-contrastive loss. The record reports the final ε (`epsilon`):
that of the selected phase-1 epoch, which phase 2 leaves unchanged, and ε after every phase-1 epoch
(`epsilon_per_epoch`), where a collapse shows even when an early epoch is selected.

`variant=code` is the public code (`dvirsamuel/DRO-LT`, `losses.py` and `main.py`): k = 1, L_CE + L_DRO
unweighted, learned per-class ε (init 1) that is never projected (it goes negative, turning the
penalty into a bonus), temperature 0.07 (its argparse default) unless `temperature` is given, and ε
assigned the way `pairwise[mask] = a[mask] − ε[batch_targets]` does: the mask's True entries, taken
row by row (class by class), receive ε of the batch's labels in sample order, which is class c's own
ε only when the batch is sorted by label (labels [2, 2, 0, 0, 1, 1] with ε = (10, 20, 30) give class
0's positives ε₂ = 30, class 1's ε₀ = 10, class 2's ε₁ = 20).

Centroids: at the start of every phase-1 epoch the method draws the epoch's class-aware order itself,
from a seed taken from the engine's seeded step generator (whose state the engine checkpoints, so a
resumed run draws the same orders), runs one eval-mode pass without gradients over those draws'
augmented views (`Session.features(…, augment=True)`, with the session's own augmentation stream, so
the views differ from the training step's views of the same draws), takes plain per-class means, and
returns the same order from `epoch_order`. The pass forwards as many images as the epoch trains on:
the record reports them as `centroid_pass_images`.

Selection: after every phase-1 epoch the method computes the class means of clean (un-augmented)
training features and, during phase 1, `logits` are the cosine similarities of a sample's features
to these means, so the run's Val rule scores nearest-centroid predictions; that pass forwards N
images per epoch (`selection_pass_images`). Phase 0, phase 2 and the final prediction use the
classifier's logits.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from baselines.base import METHODS, Method, Stage, StepContext, milestone
from baselines.samplers import class_aware
from benchmark.errors import UserError
from benchmark.recipes import Recipe

if TYPE_CHECKING:
    from benchmark.engine import Session

VARIANTS = {"paper": 2.0, "code": 1.0}  # variant → k, the multiple of ε_c taken off each positive
CODE_TEMPERATURE = 0.07  # the public code's argparse default
EPS_OPTIONS = ("learned", "shared", "inv_sqrt")
PHASES = ("phase0", "phase1", "phase2")
FEATURE_CHUNK = 8192  # images per feature pass when accumulating class sums (a multiple of 512)


def dro_loss(
    features: torch.Tensor,
    labels: torch.Tensor,
    centroids: torch.Tensor,
    radii: torch.Tensor,
    k: float = 2.0,
    temperature: float = 1.0,
    sample_order_radii: bool = False,
) -> torch.Tensor:
    """L_DRO of §15 for a batch: features B×d, labels B, centroids C×d (constants), radii C.

    For each class c in the batch, s_{c,j} = (−‖μ_c − z_j‖ − k·ε_c·[y_j = c]) / T over the batch, and
    L_c = −mean_{i: y_i = c} log softmax_j(s_{c,·})_i; the result is the mean of L_c over those classes.
    `sample_order_radii` reproduces the public code's assignment: the positives, read row by row,
    get ε of `labels` in sample order (right only for a batch sorted by label).
    """
    present = torch.unique(labels)
    positive = labels[None, :] == present[:, None]  # M×B
    distance = torch.cdist(centroids[present], features, compute_mode="donot_use_mm_for_euclid_dist")
    if sample_order_radii:
        offsets = torch.zeros_like(distance)
        offsets[positive] = radii[labels].to(offsets.dtype)  # row-major fill, as `pairwise[mask] = …`
    else:
        offsets = radii[present, None] * positive
    scores = -(distance + k * offsets) / temperature
    log_prob = scores - torch.logsumexp(scores, dim=1, keepdim=True)
    per_class = -(log_prob * positive).sum(1) / positive.sum(1)
    return per_class.mean()


def class_means(batches: Iterable[tuple[torch.Tensor, torch.Tensor]], num_classes: int) -> torch.Tensor:
    """Plain per-class means (C×d) of features given as (features, labels) batches, summed in float64;
    a class without samples gets zeros."""
    sums, counts = None, torch.zeros(num_classes, dtype=torch.float64)
    for features, labels in batches:
        if sums is None:
            sums = torch.zeros(num_classes, features.shape[1], dtype=torch.float64)
        sums.index_add_(0, labels, features.double())
        counts += torch.bincount(labels, minlength=num_classes)
    if sums is None:
        raise ValueError("class_means needs at least one batch")
    return (sums / counts.clamp(min=1)[:, None]).float()


def inv_sqrt_radii(class_counts: np.ndarray, scale: float = 1.0) -> torch.Tensor:
    """Fixed ε_c ∝ n_c^(−1/2) with mean `scale` (an absent class counts as one sample)."""
    inv = np.maximum(np.asarray(class_counts, dtype=np.float64), 1.0) ** -0.5
    return torch.as_tensor(scale * inv / inv.mean(), dtype=torch.float32)


class Radii(nn.Module):
    """The uncertainty radii ε: learned per class, one learned value shared by all, or fixed."""

    def __init__(self, values: torch.Tensor, num_classes: int, learned: bool) -> None:
        super().__init__()
        self.num_classes = num_classes
        if learned:
            self.value = nn.Parameter(values.clone())
        else:
            self.register_buffer("value", values.clone())

    def forward(self) -> torch.Tensor:
        """ε_c for every class (C values)."""
        return self.value.expand(self.num_classes)

    @torch.no_grad()
    def project(self) -> None:
        """Back onto ε ≥ 0."""
        self.value.clamp_(min=0.0)


@METHODS.register("dro-lt")
class DROLT(Method):
    name = "dro-lt"
    summary = "DRO-LT: CE model, then DRO loss around class centroids + class-aware classifier retraining"
    defaults: ClassVar[dict[str, Any]] = {
        "variant": "paper",  # paper (k = 2, λ·CE + (1 − λ)·DRO) | code (k = 1, CE + DRO)
        "eps": "inv_sqrt",  # inv_sqrt (fixed, ∝ n_c^(−1/2)) | learned | shared (both collapse to 0)
        "eps_init": 1.0,
        "lam": 0.5,  # λ of variant=paper
        "temperature": 1.0,
        "batch_size": 128,  # phases 1 and 2
        "samples_per_class": 4,  # ClassAwareSampler's run length
        "phase1_fraction": 0.8,  # of the recipe's epochs, at least one
        "phase1_lr": 0.005,
        "phase2_fraction": 0.2,
        "phase2_lr": 0.01,
        "momentum": 0.9,
        "weight_decay": 1e-4,
    }

    def __init__(self, hparams: dict[str, Any], class_counts: np.ndarray) -> None:
        super().__init__(hparams, class_counts)
        h = self.hparams
        for key, allowed in (("variant", tuple(VARIANTS)), ("eps", EPS_OPTIONS)):
            if h[key] not in allowed:
                raise UserError(f"dro-lt: {key} must be one of {', '.join(allowed)}, got {h[key]!r}")
        checks = (
            ("eps_init", h["eps_init"] >= 0, ">= 0"),
            ("lam", 0 <= h["lam"] <= 1, "in [0, 1]"),
            ("temperature", h["temperature"] > 0, "> 0"),
            ("batch_size", h["batch_size"] >= 1, ">= 1"),
            ("samples_per_class", h["samples_per_class"] >= 1, ">= 1"),
            ("phase1_fraction", h["phase1_fraction"] > 0, "> 0"),
            ("phase2_fraction", h["phase2_fraction"] > 0, "> 0"),
        )
        for key, ok, wanted in checks:
            if not ok:
                raise UserError(f"dro-lt: {key} must be {wanted}, got {h[key]}")
        if self.code:
            if "eps" in hparams and hparams["eps"] != "learned":
                raise UserError("dro-lt: variant=code learns one ε per class (eps=learned); leave eps out")
            h["eps"] = "learned"
            if "temperature" not in hparams:
                h["temperature"] = CODE_TEMPERATURE
        self.k = VARIANTS[h["variant"]]
        self._nearest_centroid = False  # whether `logits` are phase 1's cosine similarities
        self._order: np.ndarray | None = None  # this phase-1 epoch's draws, from begin_epoch
        self.centroids: torch.Tensor | None = None  # μ̂ of those draws (C×d, on the device)
        self.clean_means: torch.Tensor | None = None  # clean training class means, for selection
        self._epsilon: list[float] | None = None
        self.epsilon_per_epoch: list[list[float]] = []  # ε after each phase-1 epoch (collapse visible)
        self.centroid_pass_images = 0
        self.selection_pass_images = 0

    # --- schedule and network -------------------------------------------------------------
    def stages(self, recipe: Recipe) -> list[Stage]:
        h = self.hparams
        common = {"momentum": h["momentum"], "weight_decay": h["weight_decay"], "schedule": "constant"}
        return [
            self.base_stage(recipe, "phase0", pretrained=True),
            Stage("phase1", self.phase_epochs(h["phase1_fraction"], recipe), h["phase1_lr"], **common),
            Stage(
                "phase2", self.phase_epochs(h["phase2_fraction"], recipe), h["phase2_lr"], **common,
                freeze_backbone=True,
            ),
        ]  # fmt: skip

    @staticmethod
    def phase_epochs(fraction: float, recipe: Recipe) -> int:
        """max(1, ⌊fraction·E⌋): §15's 80 and 20 of 100 epochs, scaled to the recipe (§0)."""
        return max(1, milestone(fraction, recipe.epochs))

    def batch_size(self, recipe: Recipe, stage: Stage) -> int:
        return recipe.batch_size if stage.name == "phase0" else self.hparams["batch_size"]

    def make_radii(self, device: torch.device | str = "cpu") -> Radii:
        """ε for the `eps` option, initialised (§15)."""
        num_classes, init = len(self.class_counts), self.hparams["eps_init"]
        if self.hparams["eps"] == "inv_sqrt":
            return Radii(inv_sqrt_radii(self.class_counts, init).to(device), num_classes, learned=False)
        size = 1 if self.hparams["eps"] == "shared" else num_classes
        return Radii(torch.full((size,), float(init), device=device), num_classes, learned=True)

    def begin_stage(self, model: nn.Module, stage: Stage) -> nn.Module:
        self._nearest_centroid = stage.name == "phase1"
        if stage.name == "phase1":
            model.radii = self.make_radii(next(model.parameters()).device)
        model.head.requires_grad_(stage.name != "phase1")
        return model

    def param_groups(self, model: nn.Module, stage: Stage) -> list[dict[str, Any]]:
        if stage.name == "phase1":  # the backbone and learned radii; the classifier is frozen
            return [{"params": [*model.backbone.parameters(), *model.radii.parameters()]}]
        if stage.name == "phase2":
            return [{"params": list(model.head.parameters())}]
        return super().param_groups(model, stage)

    # --- one epoch ------------------------------------------------------------------------
    def epoch_order(self, labels: np.ndarray, rng: np.random.Generator, context: StepContext) -> np.ndarray:
        name = context.stage.name
        if name == "phase1":
            if self._order is None:
                raise RuntimeError("dro-lt: begin_epoch draws the phase-1 order (with its centroids) first")
            order, self._order = self._order, None
            return order
        if name == "phase2":
            return class_aware(labels, rng, self.hparams["samples_per_class"])
        return super().epoch_order(labels, rng, context)

    def begin_epoch(self, model: nn.Module, context: StepContext, session: Session) -> None:
        if context.stage.name != "phase1":
            return
        seed = int(torch.randint(0, 2**62, (), generator=context.generator))
        labels = np.asarray(session.train_labels)
        self._order = class_aware(labels, np.random.default_rng(seed), self.hparams["samples_per_class"])
        self.centroids = self._class_means(model, session, self._order, augment=True)
        self.centroid_pass_images += len(self._order)

    def _class_means(
        self, model: nn.Module, session: Session, indices: np.ndarray, augment: bool
    ) -> torch.Tensor:
        """Per-class means of the training features at `indices` (C×d on the device), in chunks."""
        labels = torch.as_tensor(np.asarray(session.train_labels)[indices])
        starts = range(0, len(indices), FEATURE_CHUNK)
        batches = (
            (
                session.features(model, "train", indices[s : s + FEATURE_CHUNK], augment=augment),
                labels[s : s + FEATURE_CHUNK],
            )
            for s in starts
        )
        return class_means(batches, len(self.class_counts)).to(session.device)

    def loss(
        self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor, context: StepContext
    ) -> torch.Tensor:
        if context.stage.name != "phase1":
            return F.cross_entropy(model(images).float(), labels)
        if self.centroids is None:
            raise RuntimeError("dro-lt: the phase-1 centroids are computed in begin_epoch")
        features = model.features(images)
        weights = self.ce_weights(features.device)
        ce = F.cross_entropy(model.head(features).float(), labels, weight=weights)
        dro = dro_loss(
            features.float(), labels, self.centroids, model.radii(), self.k, self.hparams["temperature"],
            sample_order_radii=self.code,
        )  # fmt: skip
        if self.code:
            return ce + dro
        lam = self.hparams["lam"]
        return lam * ce + (1.0 - lam) * dro

    def ce_weights(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """w_c = n_c / n_max: instance-balanced CE in expectation under class-aware batches."""
        counts = torch.as_tensor(self.class_counts, dtype=torch.float32, device=device)
        return counts / counts.max()

    @property
    def code(self) -> bool:
        return self.hparams["variant"] == "code"

    def after_step(self, model: nn.Module, context: StepContext) -> None:
        if context.stage.name == "phase1" and not self.code:  # the public code leaves ε unconstrained
            model.radii.project()

    def end_epoch(self, model: nn.Module, context: StepContext, session: Session) -> None:
        if context.stage.name != "phase1":
            return
        self.epsilon_per_epoch.append([round(float(e), 6) for e in model.radii().detach().cpu()])
        everything = np.arange(len(session.train_labels))
        self.clean_means = self._class_means(model, session, everything, augment=False)
        self.selection_pass_images += len(everything)

    def finish(self, model: nn.Module, session: Session) -> nn.Module:
        self._nearest_centroid = False
        self._epsilon = [float(e) for e in model.radii().detach().cpu()]
        return model

    # --- prediction and bookkeeping -------------------------------------------------------
    def logits(self, model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        if not self._nearest_centroid:
            return model(images)
        if self.clean_means is None:
            raise RuntimeError("dro-lt: phase-1 logits need the clean class means of end_epoch")
        features = F.normalize(model.features(images).float(), dim=1)
        return features @ F.normalize(self.clean_means.to(features.device), dim=1).T

    def state_dict(self) -> dict[str, Any]:
        # Centroids and clean means need no saving: each epoch recomputes them before they are used.
        return {
            "centroid_pass_images": self.centroid_pass_images,
            "selection_pass_images": self.selection_pass_images,
            "epsilon_per_epoch": self.epsilon_per_epoch,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.centroid_pass_images = int(state["centroid_pass_images"])
        self.selection_pass_images = int(state["selection_pass_images"])
        self.epsilon_per_epoch = [list(e) for e in state.get("epsilon_per_epoch", [])]

    def report(self) -> dict[str, Any]:
        return {
            "epsilon": self._epsilon,
            "epsilon_per_epoch": self.epsilon_per_epoch,
            "centroid_pass_images": self.centroid_pass_images,
            "selection_pass_images": self.selection_pass_images,
        }
