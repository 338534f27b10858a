"""Learning from Failure (`lff`; Nam et al., NeurIPS 2020; docs/methods.md §13).

- Two full models, a biased and a debiased one (backbone + bias-free linear classifier each), in one
  `LfFNetwork`: the engine's single optimiser and schedule update both every step, its backbone
  freezing reaches both backbones (`BackbonePair`), and `features`/`forward` are the debiased
  model's, so Val selection, prediction and the saved weights' use are the debiased model's (the
  biased one is saved beside it). Compute: every image goes through both models (report
  `models: 2`); the engine's `images_processed` counts each image once.
- Biased model, generalised CE with q = 0.7 (Zhang & Sabuncu 2018), which weights CE's gradient by
  p_y^q so that easy samples dominate. `gce=original` (default): CE·q·p_y^q with the factor p_y^q
  detached, as the original GLT code (`train_lff.py`) and the LfF code train it; `gce=paper`: the
  paper's (1 − p_y^q)/q, whose gradient is the same direction 1/q ≈ 1.43 times larger.
- Debiased model: per-sample weight W = CE_b/(CE_b + CE_d + 1e-8) from the current batch's losses,
  detached (the original's 1e-8), L = mean(W·CE_d). Total loss L_GCE.mean() + mean(W·CE_d); the
  models share no parameters, so each gets only its own term's gradient.
- `ema=true` (the LfF paper and its code): W is computed from per-sample moving averages of both
  losses, kept by dataset index: a sample's first loss is taken as is, later ones as
  ℓ ← α·ℓ + (1 − α)·loss with α = `ema_alpha` = 0.7; each average is divided by the largest average
  of its class for its model before W is formed. Updated over the global batch when data-parallel;
  the averages go through `state_dict`, so a resumed run continues them.
- `posthoc_tau` (LFFLA, §13): predict argmax(z − τ·log π) on the debiased model (post-hoc LA, §3);
  τ = 0 (default) is plain LfF. Val selection uses the same logits.
- The two models are initialised independently (the biased backbone is `backbone.fresh()`), as in
  the original.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from baselines.base import METHODS, Method, StepContext
from benchmark.errors import UserError
from benchmark.models import Network
from benchmark.parallel import rank_and_world


class BackbonePair(nn.Module):
    """The debiased and the biased backbone; called plainly it is the debiased one."""

    def __init__(self, debiased: nn.Module, biased: nn.Module) -> None:
        super().__init__()
        self.debiased, self.biased = debiased, biased
        self.feature_dim = debiased.feature_dim

    def forward(self, x: torch.Tensor, biased: bool = False) -> torch.Tensor:
        return self.biased(x) if biased else self.debiased(x)


class LfFNetwork(Network):
    """The debiased network (`features`, `forward`) plus the biased one (`biased_logits`)."""

    def __init__(self, backbone: BackbonePair, head: nn.Module, biased_head: nn.Module) -> None:
        super().__init__(backbone, head)
        self.biased_head = biased_head

    def biased_logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.biased_head(self.backbone(x, biased=True))


def generalized_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, q: float = 0.7) -> torch.Tensor:
    """Per-sample (1 − p_y^q)/q, with p_y^q = exp(q·log p_y) so that p_y → 0 stays finite."""
    log_p = F.log_softmax(logits.float(), dim=1).gather(1, labels[:, None]).squeeze(1)
    return (1.0 - torch.exp(q * log_p)) / q


def detached_generalized_cross_entropy(
    logits: torch.Tensor, labels: torch.Tensor, q: float = 0.7
) -> torch.Tensor:
    """Per-sample CE·q·p_y^q with p_y^q a constant in the backward pass (the original's form)."""
    ce = F.cross_entropy(logits.float(), labels, reduction="none")
    return ce * q * torch.exp(-q * ce.detach())  # p_y^q = exp(q·log p_y) = exp(−q·CE)


GCE_FORMS = {"original": detached_generalized_cross_entropy, "paper": generalized_cross_entropy}


def failure_weights(loss_biased: torch.Tensor, loss_debiased: torch.Tensor) -> torch.Tensor:
    """W = ℓ_b/(ℓ_b + ℓ_d + 1e-8), detached: high where the biased model fails and the debiased not."""
    loss_biased, loss_debiased = loss_biased.detach(), loss_debiased.detach()
    return loss_biased / (loss_biased + loss_debiased + 1e-8)


class LossAverages:
    """Per-sample moving averages of the two models' losses by dataset index (LfF's EMA)."""

    def __init__(self, size: int, num_classes: int, alpha: float) -> None:
        self.values = torch.zeros(2, size)  # row 0: biased model, row 1: debiased
        self.labels = torch.full((size,), -1, dtype=torch.long)  # −1: never seen
        self.num_classes, self.alpha = num_classes, alpha

    def to(self, device: torch.device) -> None:
        self.values, self.labels = self.values.to(device), self.labels.to(device)

    def update(self, indices: torch.Tensor, labels: torch.Tensor, losses: torch.Tensor) -> None:
        """First loss as is, then ℓ ← α·ℓ + (1 − α)·loss; `losses` is 2×B (biased, debiased)."""
        seen = self.labels[indices] >= 0
        old = self.values[:, indices]
        self.values[:, indices] = torch.where(seen, self.alpha * old + (1 - self.alpha) * losses, losses)
        self.labels[indices] = labels

    def normalised(self, indices: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The averages at `indices`, each divided by the largest average of its class (2×B)."""
        seen = self.labels >= 0
        largest = torch.zeros(2, self.num_classes, device=self.values.device)
        classes = self.labels[seen].expand(2, -1)
        largest.scatter_reduce_(1, classes, self.values[:, seen], "amax")
        return self.values[:, indices] / largest[:, labels].clamp_min(1e-12)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"values": self.values.cpu().clone(), "labels": self.labels.cpu().clone()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.values, self.labels = state["values"].clone(), state["labels"].clone()


def _global_batch(
    indices: torch.Tensor, labels: torch.Tensor, losses: torch.Tensor, size: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every data-parallel rank's (indices, labels, 2×B losses) of this step (the step's indices are
    distinct under the shuffle sampler): one dense all-reduce over the training set."""
    if rank_and_world()[1] == 1:
        return indices, labels, losses
    dense = torch.zeros(3, size, device=losses.device)
    dense[:2, indices] = losses
    dense[2, indices] = labels.float() + 1
    dist.all_reduce(dense)
    present = torch.nonzero(dense[2] > 0).squeeze(1)
    return present, dense[2, present].long() - 1, dense[:2, present]


@METHODS.register("lff")
class LearningFromFailure(Method):
    name = "lff"
    summary = "LfF: a GCE-trained biased model re-weights a debiased one's CE (Nam et al. 2020)"
    defaults: ClassVar[dict[str, Any]] = {
        "q": 0.7,  # GCE exponent of the biased model
        "gce": "original",  # original (CE·q·p^q, factor detached) | paper ((1 − p^q)/q)
        "ema": False,  # W from per-sample loss moving averages (the LfF paper) instead of the batch
        "ema_alpha": 0.7,
        "posthoc_tau": 0.0,  # LFFLA: z − τ·log π at prediction
    }

    def __init__(self, hparams: dict[str, Any], class_counts: np.ndarray) -> None:
        super().__init__(hparams, class_counts)
        if not 0.0 < self.hparams["q"] <= 1.0:
            raise UserError(f"lff: q must be in (0, 1], got {self.hparams['q']}")
        if self.hparams["gce"] not in GCE_FORMS:
            raise UserError(f"lff: gce must be one of {', '.join(GCE_FORMS)}, got {self.hparams['gce']!r}")
        if not 0.0 <= self.hparams["ema_alpha"] < 1.0:
            raise UserError(f"lff: ema_alpha must be in [0, 1), got {self.hparams['ema_alpha']}")
        self.num_train = int(self.class_counts.sum())
        self.averages = (
            LossAverages(self.num_train, len(self.class_counts), self.hparams["ema_alpha"])
            if self.hparams["ema"]
            else None
        )

    def build_model(self, backbone: nn.Module, num_classes: int) -> nn.Module:
        pair = BackbonePair(backbone, backbone.fresh())
        dim = backbone.feature_dim
        heads = [nn.Linear(dim, num_classes, bias=False) for _ in range(2)]
        return LfFNetwork(pair, *heads)

    def loss(
        self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor, context: StepContext
    ) -> torch.Tensor:
        logits_d = model(images).float()
        logits_b = model.biased_logits(images).float()
        ce_d = F.cross_entropy(logits_d, labels, reduction="none")
        ce_b = F.cross_entropy(logits_b, labels, reduction="none")
        if self.averages is None:
            weights = failure_weights(ce_b, ce_d)
        else:
            weights = self._smoothed_weights(ce_b, ce_d, labels, context)
        biased = GCE_FORMS[self.hparams["gce"]](logits_b, labels, self.hparams["q"])
        return biased.mean() + (weights * ce_d).mean()

    def _smoothed_weights(
        self, ce_b: torch.Tensor, ce_d: torch.Tensor, labels: torch.Tensor, context: StepContext
    ) -> torch.Tensor:
        if context.indices is None:
            raise ValueError("lff with ema=true needs each batch's dataset indices (StepContext.indices)")
        indices = context.indices.to(labels.device)
        self.averages.to(labels.device)
        losses = torch.stack([ce_b, ce_d]).detach()
        self.averages.update(*_global_batch(indices, labels, losses, self.num_train))
        smoothed = self.averages.normalised(indices, labels)
        return failure_weights(smoothed[0], smoothed[1])

    def logits(self, model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        return model(images).float() - self.hparams["posthoc_tau"] * self.log_prior(images.device)

    def state_dict(self) -> dict[str, Any]:
        return {} if self.averages is None else {"loss_averages": self.averages.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.averages is not None:
            self.averages.load_state_dict(state["loss_averages"])

    def report(self) -> dict[str, Any]:
        return {"models": 2}
