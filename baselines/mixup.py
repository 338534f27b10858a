"""Mixup (`mixup`; Zhang et al., ICLR 2018; docs/methods.md §7): one λ ~ Beta(α, α) and one permutation σ
per batch, x̃ = λx + (1 − λ)x_σ, L = λ·CE(z(x̃), y) + (1 − λ)·CE(z(x̃), y_σ).

`mix_batch` and `mixed_cross_entropy` are public for IFL's Mixup + IFL (§14). Every draw comes from
the step's seeded torch.Generator (the original used unseeded numpy).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from baselines.base import METHODS, Method, StepContext
from benchmark.errors import UserError


def sample_beta(a: float, b: float, generator: torch.Generator) -> float:
    """One draw from Beta(a, b), determined by `generator`.

    torch's Beta and Gamma samplers take no generator, so one 63-bit integer drawn from it seeds a
    numpy Generator that makes the exact Beta draw."""
    seed = int(torch.randint(0, 2**63 - 1, (), generator=generator))
    return float(np.random.default_rng(seed).beta(a, b))


def mix_batch(
    images: torch.Tensor, labels: torch.Tensor, alpha: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """(λx + (1 − λ)x_σ, y_σ, λ) with λ ~ Beta(α, α) and σ a random permutation of the batch."""
    lam = sample_beta(alpha, alpha, generator)
    perm = torch.randperm(len(images), generator=generator).to(images.device)
    return lam * images + (1.0 - lam) * images[perm], labels[perm], lam


def mixed_cross_entropy(
    logits: torch.Tensor, labels_a: torch.Tensor, labels_b: torch.Tensor, lam: float
) -> torch.Tensor:
    """λ·CE(z, y_a) + (1 − λ)·CE(z, y_b)."""
    logits = logits.float()
    return lam * F.cross_entropy(logits, labels_a) + (1.0 - lam) * F.cross_entropy(logits, labels_b)


@METHODS.register("mixup")
class Mixup(Method):
    name = "mixup"
    summary = "mixup with λ ~ Beta(1, 1) per batch (Zhang et al. 2018), shuffle sampler"
    defaults: ClassVar[dict[str, Any]] = {"alpha": 1.0}

    def __init__(self, hparams: dict[str, Any], class_counts: np.ndarray) -> None:
        super().__init__(hparams, class_counts)
        if not self.hparams["alpha"] > 0:
            raise UserError(f"mixup: alpha must be > 0, got {self.hparams['alpha']}")

    def loss(
        self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor, context: StepContext
    ) -> torch.Tensor:
        mixed, labels_b, lam = mix_batch(images, labels, self.hparams["alpha"], context.generator)
        return mixed_cross_entropy(model(mixed), labels, labels_b, lam)
