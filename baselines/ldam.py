"""LDAM-DRW (`ldam-drw`; Cao et al., NeurIPS 2019; docs/methods.md §5).

A cosine classifier z_c = cos θ_c, the label-distribution-aware margin loss
CE(s·(z − m_y·e_y), y; w) with m_c ∝ n_c^(−1/4) (largest 0.5) and s = 30, and deferred
re-weighting (DRW): w_c = 1 before epoch ⌊0.8E⌋, effective-number weights (Cui et al., CVPR 2019)
from it on. The margins, the DRW weights and the cosine head are public here for RIDE (§10).

Schedule: weight decay 2e-4 and lr × 0.01 at ⌊0.8E⌋ and again × 0.01 at ⌊0.9E⌋, i.e. lr·1e-2 from
⌊0.8E⌋ and lr·1e-4 from ⌊0.9E⌋ (a stage with schedule "multistep", milestones (⌊0.8E⌋, ⌊0.9E⌋),
gamma 0.01; the engine multiplies by gamma at each milestone reached). This cumulative reading is
what the original ran: its LDAM config (`scheduler_params: {gamma: 0.01, milestones: [80, 90]}`)
feeds torch's MultiStepLR, which compounds, and Cao et al.'s own schedule likewise drops the lr to
1e-2 and then 1e-4 of its base value. In a 5-epoch recipe both milestones fall on epoch 4, so the
lr is 1e-4 of its base value there.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from baselines.base import METHODS, Method, Stage, StepContext, milestone
from benchmark.models import Network
from benchmark.recipes import Recipe

LR_MILESTONES = (0.8, 0.9)  # fractions of the stage's epochs (80 and 90 of 100)


def _counts(class_counts: np.ndarray) -> np.ndarray:
    # A class absent from training would make every margin 0 and its own weight infinite.
    return np.maximum(np.asarray(class_counts, dtype=np.float64), 1.0)


def ldam_margins(class_counts: np.ndarray, max_margin: float = 0.5) -> torch.Tensor:
    """m_c = max_margin·n_c^(−1/4) / max_c' n_c'^(−1/4): the rarest class gets `max_margin`."""
    inv_fourth_root = _counts(class_counts) ** -0.25
    return torch.as_tensor(max_margin * inv_fourth_root / inv_fourth_root.max(), dtype=torch.float32)


def effective_number_weights(class_counts: np.ndarray, beta: float = 0.9999) -> torch.Tensor:
    """w_c = (1 − β)/(1 − β^{n_c}), normalised to Σ_c w_c = C (Cui et al. 2019)."""
    weights = (1.0 - beta) / (1.0 - np.power(beta, _counts(class_counts)))
    return torch.as_tensor(weights * len(weights) / weights.sum(), dtype=torch.float32)


class CosineClassifier(nn.Module):
    """z_c = cos(f, w_c): L2-normalised features and class weights, no bias, computed in float32."""

    def __init__(self, feature_dim: int, num_classes: int) -> None:
        super().__init__()
        # Uniform directions, unit-norm rows, as the original initialised its LDAM head.
        weight = torch.empty(num_classes, feature_dim).uniform_(-1.0, 1.0)
        self.weight = nn.Parameter(F.normalize(weight, dim=1))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        # Under bf16 autocast the cosines would keep ~3 digits, too coarse once scaled by s = 30.
        with torch.autocast(features.device.type, enabled=False):
            return F.normalize(features.float(), dim=1) @ F.normalize(self.weight.float(), dim=1).T


def ldam_loss(
    cosines: torch.Tensor,
    labels: torch.Tensor,
    margins: torch.Tensor,
    scale: float = 30.0,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """CE(s·(z − m_y·e_y), y; weight): the true-class cosine lowered by its margin, then scaled.
    With a weight, the mean is weighted by the samples' class weights (torch's convention)."""
    shifted = cosines.float() - F.one_hot(labels, cosines.shape[1]) * margins[labels][:, None]
    return F.cross_entropy(scale * shifted, labels, weight=weight)


@METHODS.register("ldam-drw")
class LDAMDRW(Method):
    name = "ldam-drw"
    summary = "LDAM margins on a cosine classifier, deferred re-weighting from ⌊0.8E⌋ (Cao et al. 2019)"
    defaults: ClassVar[dict[str, Any]] = {
        "max_margin": 0.5,
        "scale": 30.0,
        "beta": 0.9999,
        "drw_at": 0.8,
        "weight_decay": 2e-4,
        "lr_gamma": 0.01,
    }

    def __init__(self, hparams: dict[str, Any], class_counts: np.ndarray) -> None:
        super().__init__(hparams, class_counts)
        self.margins = ldam_margins(self.class_counts, self.hparams["max_margin"])
        self.drw_weights = effective_number_weights(self.class_counts, self.hparams["beta"])

    def stages(self, recipe: Recipe) -> list[Stage]:
        return [
            self.base_stage(
                recipe,
                weight_decay=self.hparams["weight_decay"],
                schedule="multistep",
                milestones=tuple(milestone(f, recipe.epochs) for f in LR_MILESTONES),
                gamma=self.hparams["lr_gamma"],
            )
        ]

    def build_model(self, backbone: nn.Module, num_classes: int) -> nn.Module:
        return Network(backbone, CosineClassifier(backbone.feature_dim, num_classes))

    def class_weights(self, context: StepContext) -> torch.Tensor | None:
        """DRW: None (every class weighs 1) before epoch ⌊drw_at·E⌋, effective-number weights after."""
        if context.epoch < milestone(self.hparams["drw_at"], context.stage.epochs):
            return None
        return self.drw_weights

    def loss(
        self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor, context: StepContext
    ) -> torch.Tensor:
        weight = self.class_weights(context)
        return ldam_loss(
            model(images),
            labels,
            self.margins.to(labels.device),
            self.hparams["scale"],
            None if weight is None else weight.to(labels.device),
        )
