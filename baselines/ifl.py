"""IFL, Invariant Feature Learning (`ifl`; Tang et al., ECCV 2022; docs/methods.md §14): the original's
two-environment centre-loss training (`center_dual`).

- Environments: two DistributionSamplers (§0) over the training set, each drawing N indices per
  epoch, both uniform until the first update. A step takes B/2 images from each (B = the recipe's
  batch; ⌊B/2⌋ for odd B), so an epoch is N/(B/2) steps and 2N images. `epoch_order` interleaves the
  two draws (e1[0], e2[0], e1[1], …), so every chunk of the batch size holds B/2 draws of each
  environment; the original concatenated the two half-batches, which differs only in the order
  inside a batch (and so in which of two draws of one index in a batch the statistics keep).
- Loss: L = L_cls + α(t)·L_center. L_cls = CE(z + log π, y) (`loss=bs`, default), CE(z, y) (`ce`, the
  "Baseline + IFL"), or CE(z, y) with z − log π at prediction (`la-posthoc`, "Logit-Adj + IFL").
  L_center = mean_i clamp(‖f_i − c_{y_i}‖², 1e-12, 1e12), or with `triplet=true` the triplet margin
  loss (margin 1) of f with positive c_y and negative c_ŷ, ŷ the most confident wrong class.
  α = 0 before epoch ⌊0.6E⌋, 0.001 from it, 0.005 from ⌊0.8E⌋ (0-based; 60 and 80 of 100).
- Centres c ∈ R^{C×d}, initialised N(0, 1), live in the network (`CentredNetwork.centres`, so
  checkpoints hold them) with their own optimiser group: lr 0.5, no momentum, no weight decay,
  constant lr. The original divides their gradient of L by α + 1e-12 so that they follow
  ∇_c L_center. Equivalently here, the loss adds L_center(f.detach(), c) minus its own value: zero in
  value, its gradient reaches only the centres and is ∇_c L_center, while the rest of the network sees
  α·L_center(f, c.detach()). The term is left out while α = 0, so the centres stay at their init.
- Statistics: per epoch, for every processed sample, the softmax probability of its true class from
  the training forward pass (augmented view, unadjusted logits), by dataset index, the last value in
  batch order winning. At the end of epochs ⌊0.6E⌋ and ⌊0.8E⌋ env 2 is rebuilt from that epoch's record
  (`intra_weights`), so the new weights apply from the next epoch; env 1 stays uniform.
  `env_type=simple_aug` keeps both uniform.
- Combinations (§14): BLSoftmax + IFL = the defaults; Baseline + IFL = `loss=ce`; Logit-Adj + IFL =
  `loss=la-posthoc`; Mixup + IFL = `mixup=true loss=ce` (the original `center_dual_mixup` trained
  with CE): mixup (§7) on the whole batch, L_cls and L_center both mixed λ/(1 − λ) over (y, y_σ),
  statistics recorded for y as the original did; RandAug + IFL = `randaug=true`: the `randaug`
  method's RandAugment transform (§8), policy `randaug_policy`. cRT/LWS + IFL are `crt`/`lws` with
  `stage1=ifl` (baselines/decoupling.py).
- Expert combinations (§14), option `experts`: the network is the 3-expert network of RIDE/TADE
  (baselines/experts.py) with centres on the concatenated expert features (3·d; 4608-d on ResNeXt-50),
  L_cls is that method's own loss (with its default hyperparameters) in place of `loss`, and the
  statistics take the softmax of the mean expert logits z̄ (also the prediction). Environments,
  centres, their optimiser and α are IFL's. RIDE + IFL (`center_ride`) = `experts=ride`: the RIDE
  loss (§10) and the cosine centre loss mean_i (1 − cos(f_i, c_{y_i})), under RIDE's schedule
  (weight decay 2e-4, lr × 0.1 at ⌊0.6E⌋ and ⌊0.8E⌋). TADE + IFL (`center_tade`) = `experts=tade`:
  the TADE loss (§11) and the squared-distance centre loss, base schedule, prediction z̄. `loss`,
  `mixup` and `triplet` keep their defaults with `experts` (the expert loss replaces them).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from baselines.base import METHODS, Method, Stage, StepContext, milestone
from baselines.mixup import mix_batch
from baselines.randaug import RandAugment
from baselines.ride import RIDE
from baselines.samplers import distribution
from baselines.tade import TADE
from benchmark.errors import UserError
from benchmark.models import Network
from benchmark.parallel import rank_and_world
from benchmark.recipes import Recipe

if TYPE_CHECKING:
    from benchmark.engine import Session

LOSSES = ("bs", "ce", "la-posthoc")
ENV_TYPES = ("intra", "simple_aug")
EXPERTS: dict[str, type[Method] | None] = {"none": None, "ride": RIDE, "tade": TADE}


class CentredNetwork(Network):
    """Backbone + head, plus the class centres c ∈ R^{C×d} (init N(0, 1)) of IFL's centre loss."""

    def __init__(self, backbone: nn.Module, head: nn.Module, num_classes: int) -> None:
        super().__init__(backbone, head)
        self.centres = nn.Parameter(torch.randn(num_classes, backbone.feature_dim))


def intra_weights(
    prob: np.ndarray, labels: np.ndarray, num_classes: int, scale: float = 4.0
) -> tuple[np.ndarray, np.ndarray]:
    """Env 2's instance weights for `env_type=intra` and each class's exponent γ (NaN where none).

    `prob[i]` is instance i's recorded true-class probability, negative if it was not drawn (weight
    0). Per class c with n recorded instances: n < 5 → 1/n each; otherwise s̃ = (p − min p)/(max p −
    min p + 1e-9), h = |1 − s̃| + 1e-5, r = mean of the ⌊0.2n⌋ largest h / mean of the ⌊0.8n⌋ smallest
    + 1e-5, γ = clamp(ln scale / ln r, 1, 10), w = h^γ + 1e-12 normalised to sum 1 in the class. Every
    class with a recorded instance has mass 1, and the hardest 20% get about `scale`× the rest's
    mean weight.
    """
    weights = np.zeros(len(prob))
    gammas = np.full(num_classes, np.nan)
    seen = prob >= 0
    for c in range(num_classes):
        members = np.flatnonzero(seen & (labels == c))
        n = len(members)
        if n == 0:
            continue
        if n < 5:
            weights[members] = 1.0 / n
            continue
        p = prob[members].astype(np.float64)
        h = np.abs(1.0 - (p - p.min()) / (p.max() - p.min() + 1e-9)) + 1e-5
        ordered = np.sort(h)
        ratio = ordered[n - int(0.2 * n) :].mean() / ordered[: int(0.8 * n)].mean() + 1e-5
        gammas[c] = np.clip(math.log(scale) / math.log(ratio), 1.0, 10.0)
        w = h ** gammas[c] + 1e-12
        weights[members] = w / w.sum()
    return weights, gammas


@METHODS.register("ifl")
class InvariantFeatureLearning(Method):
    name = "ifl"
    summary = "IFL: two sampling environments + centre loss, Balanced Softmax by default (Tang et al. 2022)"
    defaults: ClassVar[dict[str, Any]] = {
        "loss": "bs",  # bs | ce | la-posthoc
        "env_type": "intra",  # intra | simple_aug
        "sample_scale": 4.0,  # target tail/head weight ratio inside a class
        "milestone_1": 0.6,  # fractions of E: α switches and environment updates
        "milestone_2": 0.8,
        "center_weight_1": 0.001,  # α from ⌊milestone_1·E⌋
        "center_weight_2": 0.005,  # α from ⌊milestone_2·E⌋
        "center_lr": 0.5,
        "triplet": False,
        "triplet_margin": 1.0,
        "mixup": False,
        "mixup_alpha": 1.0,
        "randaug": False,
        "randaug_policy": "original",  # original | torchvision (§8)
        "experts": "none",  # none | ride | tade (RIDE + IFL, TADE + IFL)
    }

    def __init__(self, hparams: dict[str, Any], class_counts: np.ndarray) -> None:
        super().__init__(hparams, class_counts)
        for key, allowed in (("loss", LOSSES), ("env_type", ENV_TYPES), ("experts", tuple(EXPERTS))):
            if self.hparams[key] not in allowed:
                raise UserError(f"ifl: {key} must be one of {', '.join(allowed)}, got {self.hparams[key]!r}")
        if self.hparams["mixup"] and not self.hparams["mixup_alpha"] > 0:
            raise UserError(f"ifl: mixup_alpha must be > 0, got {self.hparams['mixup_alpha']}")
        expert_method = EXPERTS[self.hparams["experts"]]
        if expert_method is not None and (
            self.hparams["loss"] != "bs" or self.hparams["mixup"] or self.hparams["triplet"]
        ):
            raise UserError(
                f"ifl: experts={self.hparams['experts']} brings its own classification and centre losses; "
                "leave loss, mixup and triplet at their defaults"
            )
        # RIDE + IFL, TADE + IFL: that method's network, loss and schedule (its default hyperparameters).
        self.experts = None if expert_method is None else expert_method({}, class_counts)
        self.num_train = int(self.class_counts.sum())
        self.env_weights = np.ones((2, self.num_train))
        self.gammas = np.full(len(self.class_counts), np.nan)
        # This epoch's statistics: probabilities (slot N is scratch), stamps, steps recorded.
        self._prob: torch.Tensor | None = None
        self._stamp: torch.Tensor | None = None
        self._steps = 0
        self._epochs: int | None = None
        self._randaug = RandAugment(self.hparams["randaug_policy"]) if self.hparams["randaug"] else None

    # --- schedules ------------------------------------------------------------------------
    def center_weight(self, epoch: int, epochs: int) -> float:
        """α for a 0-based epoch: 0, then center_weight_1 from ⌊0.6E⌋, center_weight_2 from ⌊0.8E⌋."""
        weight = 0.0
        for key in ("1", "2"):
            if epoch >= milestone(self.hparams[f"milestone_{key}"], epochs):
                weight = self.hparams[f"center_weight_{key}"]
        return weight

    def update_epochs(self, epochs: int) -> list[int]:
        """0-based epochs at whose end env 2 is rebuilt: ⌊0.6E⌋ and ⌊0.8E⌋."""
        return sorted({milestone(self.hparams[f"milestone_{key}"], epochs) for key in ("1", "2")})

    # --- schedule and network -------------------------------------------------------------
    def stages(self, recipe: Recipe) -> list[Stage]:
        return super().stages(recipe) if self.experts is None else self.experts.stages(recipe)

    def batch_size(self, recipe: Recipe, stage: Stage) -> int:
        if recipe.batch_size < 2:
            raise UserError("ifl: the recipe's batch size must be at least 2 (half from each environment)")
        return 2 * (recipe.batch_size // 2)

    def build_model(self, backbone: nn.Module, num_classes: int) -> nn.Module:
        if self.experts is None:
            head = nn.Linear(backbone.feature_dim, num_classes, bias=False)
            return CentredNetwork(backbone, head, num_classes)
        model = self.experts.build_model(backbone, num_classes)
        # Centres on the concatenated expert features, init N(0, 1) (registered as a parameter).
        model.centres = nn.Parameter(torch.randn(num_classes, model.backbone.feature_dim))
        return model

    def begin_stage(self, model: nn.Module, stage: Stage) -> nn.Module:
        self._epochs = stage.epochs
        return model

    def param_groups(self, model: nn.Module, stage: Stage) -> list[dict[str, Any]]:
        centres = model.centres
        rest = [p for p in model.parameters() if p.requires_grad and p is not centres]
        return [
            {"params": rest},
            {
                "params": [centres],
                "lr": self.hparams["center_lr"],
                "momentum": 0.0,
                "weight_decay": 0.0,
                "scheduled": False,
            },
        ]

    # --- one epoch ------------------------------------------------------------------------
    def epoch_order(self, labels: np.ndarray, rng: np.random.Generator, context: StepContext) -> np.ndarray:
        if len(labels) != self.num_train:
            raise ValueError(
                f"ifl: {len(labels)} training labels, but the class counts sum to {self.num_train}"
            )
        draws = [distribution(weights, rng, self.num_train) for weights in self.env_weights]
        return np.stack(draws, axis=1).reshape(-1)

    def begin_epoch(self, model: nn.Module, context: StepContext, session: Session) -> None:
        self._prob = self._stamp = None
        self._epochs = context.stage.epochs

    def transform(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return self._randaug(images, generator) if self._randaug else images

    def loss(
        self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor, context: StepContext
    ) -> torch.Tensor:
        if self.hparams["mixup"]:
            images, labels_b, lam = mix_batch(images, labels, self.hparams["mixup_alpha"], context.generator)
            targets = ((labels, lam), (labels_b, 1.0 - lam))
        else:
            targets = ((labels, 1.0),)
        features = model.features(images)
        if self.experts is None:
            logits = model.head(features)
            z = (
                logits.float() + self.log_prior(logits.device)
                if self.hparams["loss"] == "bs"
                else logits.float()
            )
            total = sum(weight * F.cross_entropy(z, y) for y, weight in targets)
        else:
            expert_logits = model.expert_logits(features)
            logits = expert_logits.mean(0)
            total = self.experts.classification_loss(expert_logits, labels, context)
        self._record(logits, labels, context.indices)
        alpha = self.center_weight(context.epoch, context.stage.epochs)
        if alpha == 0:
            return total
        centres = model.centres
        pull = sum(weight * self.center_loss(features, logits, centres.detach(), y) for y, weight in targets)
        own = sum(weight * self.center_loss(features.detach(), logits, centres, y) for y, weight in targets)
        return total + alpha * pull + (own - own.detach())

    def center_loss(
        self, features: torch.Tensor, logits: torch.Tensor, centres: torch.Tensor, labels: torch.Tensor
    ) -> torch.Tensor:
        """mean clamp(‖f − c_y‖², 1e-12, 1e12), the triplet form with c_ŷ of the most confident
        wrong class ŷ as the negative, or with `experts=ride` mean (1 − cos(f, c_y))."""
        features = features.float()
        if self.hparams["experts"] == "ride":
            return (1.0 - F.cosine_similarity(features, centres[labels], dim=1)).mean()
        if self.hparams["triplet"]:
            wrong = logits.detach().float().scatter(1, labels[:, None], -math.inf).argmax(1)
            return F.triplet_margin_loss(
                features, centres[labels], centres[wrong], margin=self.hparams["triplet_margin"]
            )
        distance = (features - centres[labels]).pow(2).sum(1)
        return distance.clamp(1e-12, 1e12).mean()

    @torch.no_grad()
    def _record(self, logits: torch.Tensor, labels: torch.Tensor, indices: torch.Tensor | None) -> None:
        """Keep each sample's true-class probability by dataset index, the latest draw winning.

        A draw's stamp orders it by (step, rank, position in the rank's share). The engine splits a
        global batch into contiguous shares in rank order, so this is the global batch order."""
        if indices is None:
            raise ValueError("ifl needs the dataset indices of each batch (StepContext.indices)")
        device = logits.device
        if self._prob is None:
            self._prob = torch.full((self.num_train + 1,), -1.0, device=device)
            self._stamp = torch.full((self.num_train,), -1, dtype=torch.long, device=device)
            self._steps = 0
        rank, world = rank_and_world()
        indices = indices.to(device)
        stamp = (self._steps * world + rank) * 2**24 + torch.arange(len(indices), device=device)
        self._steps += 1
        self._stamp.scatter_reduce_(0, indices, stamp, "amax")
        prob = logits.float().softmax(1).gather(1, labels[:, None]).squeeze(1)
        # Draws that are not their index's latest write to the scratch slot N instead.
        self._prob[torch.where(self._stamp[indices] == stamp, indices, self.num_train)] = prob

    def _statistics(self) -> np.ndarray:
        """This epoch's record (−1: not drawn), merged over data-parallel ranks."""
        prob, stamp = self._prob[: self.num_train], self._stamp
        if rank_and_world()[1] > 1:
            latest = stamp.clone()
            dist.all_reduce(latest, op=dist.ReduceOp.MAX)
            prob = torch.where(stamp == latest, prob, 0.0)
            dist.all_reduce(prob)  # exactly one rank holds each drawn index's latest value
            prob = torch.where(latest >= 0, prob, -1.0)
        return prob.cpu().numpy()

    def end_epoch(self, model: nn.Module, context: StepContext, session: Session) -> None:
        if self.hparams["env_type"] == "simple_aug":  # both environments stay uniform
            return
        if context.epoch not in self.update_epochs(context.stage.epochs):
            return
        self.env_weights[1], self.gammas = intra_weights(
            self._statistics(),
            np.asarray(session.train_labels),
            len(self.class_counts),
            self.hparams["sample_scale"],
        )

    # --- prediction and bookkeeping -------------------------------------------------------
    def logits(self, model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        if self.hparams["loss"] == "la-posthoc":
            return model(images).float() - self.log_prior(images.device)
        return model(images)

    def state_dict(self) -> dict[str, Any]:
        # The statistics need no saving: the engine checkpoints after end_epoch has used them, and
        # every epoch starts a new record.
        return {
            "env_weights": torch.from_numpy(self.env_weights.copy()),
            "gammas": torch.from_numpy(self.gammas.copy()),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.env_weights = state["env_weights"].numpy().copy()
        self.gammas = state["gammas"].numpy().copy()

    def report(self) -> dict[str, Any]:
        out: dict[str, Any] = {"env_gamma": [None if np.isnan(g) else float(g) for g in self.gammas]}
        if self.experts is not None:
            out.update(self.experts.report())
        if self._epochs is not None:
            out["center_milestones"] = [0] + [
                milestone(self.hparams[f"milestone_{key}"], self._epochs) for key in ("1", "2")
            ]
            out["center_weights"] = [0.0, self.hparams["center_weight_1"], self.hparams["center_weight_2"]]
            out["env_update_epochs"] = self.update_epochs(self._epochs)
        return out
