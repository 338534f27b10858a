"""Focal loss (`focal`): −(1 − p_y)^γ·log p_y with γ = 2 and no class weight (docs/methods.md §2)."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from baselines.base import METHODS, Method, StepContext


def focal_loss(
    logits: torch.Tensor, labels: torch.Tensor, gamma: float = 2.0, detach_factor: bool = False
) -> torch.Tensor:
    """Mean of −(1 − p_y)^γ·log p_y. With `detach_factor` the factor (1 − p_y)^γ is a constant in
    the backward pass (the original's form); otherwise it is differentiated (the paper's form)."""
    log_p = F.log_softmax(logits.float(), dim=1).gather(1, labels[:, None]).squeeze(1)
    factor = (-torch.expm1(log_p)).pow(gamma)  # 1 − p_y, exact also when p_y is close to 1
    if detach_factor:
        factor = factor.detach()
    return -(factor * log_p).mean()


@METHODS.register("focal")
class Focal(Method):
    name = "focal"
    summary = "focal loss γ = 2 (Lin et al. 2017), shuffle sampler"
    defaults: ClassVar[dict[str, Any]] = {"gamma": 2.0, "detach_factor": False}

    def loss(
        self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor, context: StepContext
    ) -> torch.Tensor:
        return focal_loss(model(images), labels, self.hparams["gamma"], self.hparams["detach_factor"])
