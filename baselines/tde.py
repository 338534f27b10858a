"""Deconfound-TDE (`tde`; Tang, Huang & Zhang, NeurIPS 2020; docs/methods.md §12).

- Classifier (`TDEClassifier`): the feature f is split into K equal parts f^k (K = `heads`, 2) and
  z_c = (τ/K)·Σ_k w_c^k·f̂^k / (‖w_c^k‖ + γ), f̂^k = f^k/‖f^k‖, τ = 16, γ = 1/32; weights drawn
  uniformly from ±1/√d as in the original. Trained with plain CE, shuffle sampler, base schedule.
- Moving-average feature d (a float32 buffer of the classifier, so checkpoints and the selected
  weights hold it): d ← 0.995·d + 0.005·mean over the batch of f, once per training step, from the
  same forward pass as the loss (inside `loss`, without gradient). The mean is taken in float32 of
  the features as the forward pass produced them (bf16 under autocast), over the global batch when
  data-parallel, so every rank keeps the same d. d starts at 0, as in the original.
- Prediction (counterfactual removal, `logits`): per head f̂^k − α·cos(f^k, d^k)·d̂^k replaces f̂^k
  before the dot product; α = 0 gives the training logits exactly.
- α (`alpha`, default −1 = by benchmark): 0 for models trained on Train-CBL; otherwise 2.0 on
  imagenet-glt and 1.0 on mscoco-glt, fashion-glt and fashion-glt-mini (§12); any other benchmark
  needs `--set alpha=…`. A value ≥ 0 overrides. The original selects its checkpoint on Val with the
  TDE logits (its `run_val` applies the removal with the current d), so Val here uses α too: α is
  resolved from the session at the first `begin_epoch` (and again in `finish`), before any Val pass.
  The record reports the α used.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from baselines.base import METHODS, Method, StepContext
from benchmark.errors import UserError
from benchmark.models import Network
from benchmark.parallel import rank_and_world

if TYPE_CHECKING:
    from benchmark.engine import Session

# α for models trained on each benchmark's Train-GLT split (§12); Train-CBL models use 0.
GLT_ALPHAS = {"imagenet-glt": 2.0, "mscoco-glt": 1.0, "fashion-glt": 1.0, "fashion-glt-mini": 1.0}


def benchmark_alpha(benchmark: str, train_split: str) -> float:
    """The counterfactual strength α §12 gives for a benchmark and training split."""
    if train_split == "train_cbl":
        return 0.0
    if benchmark not in GLT_ALPHAS:
        raise UserError(
            f"tde: no default α for benchmark {benchmark!r} (known: {', '.join(sorted(GLT_ALPHAS))}); "
            "pass --set alpha=VALUE (≥ 0)"
        )
    return GLT_ALPHAS[benchmark]


class TDEClassifier(nn.Module):
    """Multi-head cosine classifier with the moving-average feature d and counterfactual removal."""

    def __init__(
        self, feature_dim: int, num_classes: int, heads: int = 2, tau: float = 16.0, gamma: float = 1 / 32
    ) -> None:
        super().__init__()
        if heads < 1 or feature_dim % heads:
            raise UserError(f"tde: heads must divide the feature dimension {feature_dim}, got {heads}")
        bound = 1.0 / math.sqrt(feature_dim)
        self.weight = nn.Parameter(torch.empty(num_classes, feature_dim).uniform_(-bound, bound))
        self.register_buffer("moving_average", torch.zeros(feature_dim))
        self.heads, self.tau, self.gamma = heads, tau, gamma

    def forward(self, features: torch.Tensor, alpha: float = 0.0) -> torch.Tensor:
        """z_c = (τ/K)·Σ_k (f̂^k − α·cos(f^k, d^k)·d̂^k)·w_c^k/(‖w_c^k‖ + γ), in float32."""
        size = features.shape[1] // self.heads
        with torch.autocast(features.device.type, enabled=False):
            parts = features.float().split(size, dim=1)
            weights = self.weight.float().split(size, dim=1)
            averages = self.moving_average.float().split(size)
            logits = 0.0
            for f, w, d in zip(parts, weights, averages, strict=True):
                f_hat, d_hat = F.normalize(f, dim=1), F.normalize(d, dim=0)
                f_hat = f_hat - alpha * (f_hat @ d_hat)[:, None] * d_hat
                logits = logits + f_hat @ (w / (w.norm(dim=1, keepdim=True) + self.gamma)).T
            return logits * (self.tau / self.heads)

    @torch.no_grad()
    def update_average(self, features: torch.Tensor, decay: float) -> None:
        """d ← decay·d + (1 − decay)·(batch mean of f), the mean over every data-parallel rank."""
        with torch.autocast(features.device.type, enabled=False):
            f = features.detach().float()
            total = torch.cat([f.sum(0), f.new_tensor([len(f)])])
            if rank_and_world()[1] > 1:
                dist.all_reduce(total)
            self.moving_average.mul_(decay).add_(total[:-1] / total[-1], alpha=1.0 - decay)


@METHODS.register("tde")
class DeconfoundTDE(Method):
    name = "tde"
    summary = "Deconfound-TDE: multi-head cosine classifier, counterfactual removal of the mean feature"
    defaults: ClassVar[dict[str, Any]] = {
        "heads": 2,
        "tau": 16.0,
        "gamma": 0.03125,
        "average_decay": 0.995,  # d ← decay·d + (1 − decay)·mean f
        "alpha": -1.0,  # −1: by benchmark (§12); ≥ 0: this value
    }

    def __init__(self, hparams: dict[str, Any], class_counts: np.ndarray) -> None:
        super().__init__(hparams, class_counts)
        alpha = self.hparams["alpha"]
        if alpha < 0 and alpha != -1.0:
            raise UserError(f"tde: alpha must be ≥ 0, or -1 for the benchmark's value; got {alpha}")
        if not 0.0 <= self.hparams["average_decay"] < 1.0:
            raise UserError(f"tde: average_decay must be in [0, 1), got {self.hparams['average_decay']}")
        self.alpha: float | None = alpha if alpha >= 0 else None

    def resolve_alpha(self, session: Session) -> float:
        """α from the hyperparameter, or from the session's benchmark and training split."""
        if self.hparams["alpha"] >= 0:
            self.alpha = self.hparams["alpha"]
        else:
            self.alpha = benchmark_alpha(session.benchmark, session.train_split)
        return self.alpha

    def build_model(self, backbone: nn.Module, num_classes: int) -> nn.Module:
        hp = self.hparams
        head = TDEClassifier(backbone.feature_dim, num_classes, hp["heads"], hp["tau"], hp["gamma"])
        return Network(backbone, head)

    def begin_epoch(self, model: nn.Module, context: StepContext, session: Session) -> None:
        if self.alpha is None:
            self.resolve_alpha(session)

    def loss(
        self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor, context: StepContext
    ) -> torch.Tensor:
        features = model.features(images)
        model.head.update_average(features, self.hparams["average_decay"])
        return F.cross_entropy(model.head(features), labels)

    def finish(self, model: nn.Module, session: Session) -> nn.Module:
        self.resolve_alpha(session)
        return model

    def logits(self, model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        if self.alpha is None:
            raise RuntimeError("tde: α is resolved from the session at the first epoch or in finish()")
        return model.head(model.features(images), alpha=self.alpha)

    def report(self) -> dict[str, Any]:
        return {"alpha": self.alpha}
