"""RIDE (`ride`; Wang et al., ICLR 2021; docs/methods.md §10): diverse distribution-aware experts.

- Network: `ExpertNetwork` (baselines/experts.py), 3 experts of width 0.75 on a shared trunk, each with
  a cosine classifier scaled by s = 30; prediction z̄ = the mean of the expert logits. No router.
- Loss, summed over experts k: the LDAM loss (§5, `ldam_loss`) of z_k, i.e. CE(z_k − s·m_y·e_y, y; w)
  with w = None up to epoch ⌊0.8E⌋ and the effective-number DRW weights (β = 0.9999, Σ = C) after it,
  plus the diversity term λ·T̄²·KL(p̄ ‖ p_k), λ = −0.2 (negative: disagreement with the ensemble
  lowers the loss), p_k = softmax(z_k / T), p̄ = softmax(z̄ / T) detached.
- Temperature: T = 1 up to ⌊0.8E⌋; after it a per-class T_c = w'_c / max w', w'_c = 0.02·C·π_c + 0.98,
  applied as the original does: the logits are divided class by class (z_{k,c} / T_c, a divisor along
  the class dimension), and T̄ = mean_c T_c. Both switch on at the first 0-based epoch past ⌊0.8E⌋,
  i.e. ⌊0.8E⌋ + 1: the original calls `set_epoch` with its 0-based epoch and tests `epoch > 80`, so
  re-weighting starts at 0-based epoch 81 of 100 (24 + 1 = 25 of `fashion`'s 30; never within 5).
- Schedule: weight decay 2e-4, multistep lr × 0.1 at ⌊0.6E⌋ and ⌊0.8E⌋ (0-based epochs).
- Option `stage2=true` (the original's `ride_stage2`): a second stage retrains fresh expert
  classifiers on the frozen backbone (eval mode) with CE summed over experts, under the stage-2
  schedule decoupling uses (§0: ClassAwareSampler, cosine, the recipe's lr and momentum,
  max(1, ⌊0.1·E⌋) epochs) with RIDE's weight decay 2e-4.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from baselines.base import METHODS, Method, Stage, StepContext, milestone
from baselines.experts import ExpertNetwork
from baselines.ldam import effective_number_weights, ldam_loss, ldam_margins
from baselines.samplers import class_aware
from benchmark.errors import UserError
from benchmark.recipes import Recipe

LR_MILESTONES = (0.6, 0.8)  # fractions of the stage's epochs (60 and 80 of 100)


def diversity_temperature(class_counts: np.ndarray, factor: float = 0.02) -> torch.Tensor:
    """T_c = w'_c / max_c' w'_c with w'_c = factor·C·π_c + 1 − factor (the most frequent class gets 1)."""
    counts = np.asarray(class_counts, dtype=np.float64)
    raw = factor * len(counts) * counts / counts.sum() + 1.0 - factor
    return torch.as_tensor(raw / raw.max(), dtype=torch.float32)


def ride_loss(
    expert_logits: torch.Tensor,
    labels: torch.Tensor,
    margins: torch.Tensor,
    scale: float,
    class_weights: torch.Tensor | None,
    temperature: torch.Tensor,
    diversity: float,
) -> torch.Tensor:
    """Σ_k [CE(z_k − s·m_y·e_y, y; w) + λ·T̄²·KL(softmax(z̄/T) ‖ softmax(z_k/T))] for K × B × C logits
    z_k = s·cos, with the per-class temperature T (C,) dividing the logits class by class."""
    expert_logits = expert_logits.float()
    target = (expert_logits.mean(0).detach() / temperature).softmax(1)
    mean_temperature = temperature.mean()
    total = expert_logits.new_zeros(())
    for z in expert_logits:
        total = total + ldam_loss(z / scale, labels, margins, scale, class_weights)
        log_p = (z / temperature).log_softmax(1)
        kl = F.kl_div(log_p, target, reduction="batchmean")
        total = total + diversity * mean_temperature**2 * kl
    return total


@METHODS.register("ride")
class RIDE(Method):
    name = "ride"
    summary = "RIDE: 3 LDAM-DRW experts on a shared trunk, rewarded for diversity (Wang et al. 2021)"
    defaults: ClassVar[dict[str, Any]] = {
        "num_experts": 3,
        "width": 0.75,  # expert layer3–layer4 width (ResNeXt-50: 1536-d features)
        "scale": 30.0,  # s of z_k = s·cos
        "max_margin": 0.5,
        "beta": 0.9999,
        "drw_at": 0.8,  # DRW weights and per-class temperatures at epochs > ⌊drw_at·E⌋ (0-based)
        "diversity": -0.2,  # λ
        "temperature": 1.0,  # T up to ⌊drw_at·E⌋
        "temperature_factor": 0.02,  # w'_c = factor·C·π_c + 1 − factor
        "weight_decay": 2e-4,
        "lr_gamma": 0.1,  # at ⌊0.6E⌋ and ⌊0.8E⌋
        "stage2": False,
        "stage2_fraction": 0.1,  # stage 2 epochs: max(1, ⌊fraction·E⌋)
    }

    def __init__(self, hparams: dict[str, Any], class_counts: np.ndarray) -> None:
        super().__init__(hparams, class_counts)
        if self.hparams["num_experts"] < 1:
            raise UserError(f"ride: num_experts must be at least 1, got {self.hparams['num_experts']}")
        if not self.hparams["width"] > 0:
            raise UserError(f"ride: width must be > 0, got {self.hparams['width']}")
        if self.hparams["stage2"] and not self.hparams["stage2_fraction"] > 0:
            raise UserError(f"ride: stage2_fraction must be > 0, got {self.hparams['stage2_fraction']}")
        self.margins = ldam_margins(self.class_counts, self.hparams["max_margin"])
        self.drw_weights = effective_number_weights(self.class_counts, self.hparams["beta"])
        self.temperatures = diversity_temperature(self.class_counts, self.hparams["temperature_factor"])

    # --- schedule and network -------------------------------------------------------------
    def stages(self, recipe: Recipe) -> list[Stage]:
        wd = self.hparams["weight_decay"]
        main = self.base_stage(
            recipe,
            weight_decay=wd,
            schedule="multistep",
            milestones=tuple(milestone(f, recipe.epochs) for f in LR_MILESTONES),
            gamma=self.hparams["lr_gamma"],
        )
        if not self.hparams["stage2"]:
            return [main]
        return [main, self.stage2_stage(recipe, self.hparams["stage2_fraction"], weight_decay=wd)]

    def build_model(self, backbone: nn.Module, num_classes: int) -> nn.Module:
        return ExpertNetwork(
            backbone, num_classes, self.hparams["num_experts"], self.hparams["width"], self.hparams["scale"]
        )

    def begin_stage(self, model: nn.Module, stage: Stage) -> nn.Module:
        if stage.freeze_backbone:  # stage 2: fresh expert classifiers (global RNG, seeded by the engine)
            model.heads = model.fresh_heads()
        return model

    def param_groups(self, model: nn.Module, stage: Stage) -> list[dict[str, Any]]:
        if stage.freeze_backbone:
            return [{"params": list(model.heads.parameters())}]
        return super().param_groups(model, stage)

    def epoch_order(self, labels: np.ndarray, rng: np.random.Generator, context: StepContext) -> np.ndarray:
        if context.stage.freeze_backbone:
            return class_aware(labels, rng)
        return super().epoch_order(labels, rng, context)

    # --- loss -----------------------------------------------------------------------------
    def reweighting(self, context: StepContext) -> tuple[torch.Tensor | None, torch.Tensor]:
        """(DRW class weights, per-class temperature) of this epoch: (None, T everywhere) up to
        0-based epoch ⌊drw_at·E⌋, (effective-number weights, T_c) after it (the original's `epoch > 80`)."""
        if context.epoch <= milestone(self.hparams["drw_at"], context.stage.epochs):
            return None, torch.full_like(self.temperatures, self.hparams["temperature"])
        return self.drw_weights, self.temperatures

    def classification_loss(
        self, expert_logits: torch.Tensor, labels: torch.Tensor, context: StepContext
    ) -> torch.Tensor:
        """The RIDE loss of K × B × C expert logits (also RIDE + IFL's classification loss, §14)."""
        device = labels.device
        weights, temperature = self.reweighting(context)
        return ride_loss(
            expert_logits,
            labels,
            self.margins.to(device),
            self.hparams["scale"],
            None if weights is None else weights.to(device),
            temperature.to(device),
            self.hparams["diversity"],
        )

    def loss(
        self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor, context: StepContext
    ) -> torch.Tensor:
        expert_logits = model.expert_logits(model.features(images))
        if context.stage.freeze_backbone:  # stage 2: CE summed over experts
            return sum(F.cross_entropy(z, labels) for z in expert_logits.float())
        return self.classification_loss(expert_logits, labels, context)

    def report(self) -> dict[str, Any]:
        return {"experts": self.hparams["num_experts"]}
