"""Logit Adjustment (Menon et al., ICLR 2021; docs/methods.md §3): the loss form `la` and the post-hoc
form `la-posthoc`. `adjusted_cross_entropy` is the one logit-adjusted CE of glt-bench; Balanced
Softmax (§4) and IFL's default loss use it too."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from baselines.base import METHODS, Method, StepContext
from baselines.focal import Focal, focal_loss
from benchmark.errors import UserError


def adjusted_cross_entropy(
    logits: torch.Tensor, labels: torch.Tensor, log_prior: torch.Tensor, tau: float = 1.0
) -> torch.Tensor:
    """CE(z + τ·log π, y), averaged over the batch."""
    return F.cross_entropy(logits.float() + tau * log_prior, labels)


@METHODS.register("la")
class LogitAdjustedLoss(Method):
    """Train with CE(z + τ·log π, y); predict argmax z."""

    name = "la"
    summary = "logit-adjusted loss CE(z + τ·log π), τ = 1 (Menon et al. 2021)"
    defaults: ClassVar[dict[str, Any]] = {"tau": 1.0}

    def loss(
        self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor, context: StepContext
    ) -> torch.Tensor:
        return adjusted_cross_entropy(
            model(images), labels, self.log_prior(labels.device), self.hparams["tau"]
        )


BASE_LOSSES = ("ce", "focal")


@METHODS.register("la-posthoc")
class PostHocLogitAdjustment(Method):
    """Train with plain CE (or focal loss, the original's FocalLA); predict argmax(z − τ·log π).

    The focal variant uses γ = 2 (the `focal` default) with the factor (1 − p_y)^γ detached, as the
    original's FocalLA does (`focal_detach=true`, default); `focal_detach=false` differentiates it
    (the focal paper's form)."""

    name = "la-posthoc"
    summary = "CE (or focal) training, post-hoc logits z − τ·log π, τ = 1 (the GLT paper's Logit-Adj)"
    defaults: ClassVar[dict[str, Any]] = {"tau": 1.0, "base_loss": "ce", "focal_detach": True}

    def __init__(self, hparams: dict[str, Any], class_counts: np.ndarray) -> None:
        super().__init__(hparams, class_counts)
        if self.hparams["base_loss"] not in BASE_LOSSES:
            raise UserError(
                f"la-posthoc: base_loss must be one of {', '.join(BASE_LOSSES)}, "
                f"got {self.hparams['base_loss']!r}"
            )

    def loss(
        self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor, context: StepContext
    ) -> torch.Tensor:
        logits = model(images)
        if self.hparams["base_loss"] == "focal":
            return focal_loss(logits, labels, Focal.defaults["gamma"], self.hparams["focal_detach"])
        return F.cross_entropy(logits.float(), labels)

    def logits(self, model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        return model(images).float() - self.hparams["tau"] * self.log_prior(images.device)
