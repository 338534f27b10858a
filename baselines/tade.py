"""TADE (`tade`; Zhang et al., NeurIPS 2022, "Self-Supervised Aggregation of Diverse Experts";
docs/methods.md §11): three experts skilled at different test class distributions.

- Network: RIDE's (§10, baselines/experts.py): 3 experts, cosine classifiers scaled by s = 30.
- Loss, summed: expert 1 CE(z_1, y) (forward, long-tailed); expert 2 CE(z_2 + log π, y) (balanced);
  expert 3 CE(z_3 + log π − τ·log π_inv, y), τ = 2 (inverse), where π_inv gives π's values in
  reversed rank order (the rarest class gets the largest prior; ties keep class-id order); logs
  of (· + 1e-9). Base schedule and shuffle sampler.
- Prediction, `aggregation=mean` (default, the GLT row): z̄, the mean of the expert logits. Val
  selection during training always uses it.
- `aggregation=self-supervised` (test-time aggregation, transductive): before a test split is
  predicted (`adapt`), weights w = softmax(a), a ∈ R³ from 0, are learned on that split's unlabelled
  images: `tta_passes` shuffled pass(es) in batches of `tta_batch_size`, each batch two augmented
  views (the engine's train-time geometry), the network in eval mode and without gradients, one SGD
  step (lr 0.025, momentum 0.9, no weight decay) per batch on −mean_i cos(q¹_i, q²_i), q = Σ_k
  w_k·softmax(z_k); the network runs in float32. Then the split is predicted with Σ_k w_k·z_k, and the
  record shows the weights per answered split and marks the run transductive.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from baselines.base import METHODS, Method, StepContext
from baselines.experts import ExpertNetwork
from benchmark.errors import UserError

if TYPE_CHECKING:
    from benchmark.transforms import Pipeline

AGGREGATIONS = ("mean", "self-supervised")
NUM_EXPERTS = 3


def inverse_prior(prior: torch.Tensor) -> torch.Tensor:
    """π_inv: the values of π in reversed rank order, π_inv[c] = sorted(π)[C − 1 − rank(c)]."""
    order = torch.argsort(prior, stable=True)
    out = torch.empty_like(prior)
    out[order] = prior[order].flip(0)
    return out


def tade_loss(
    expert_logits: torch.Tensor, labels: torch.Tensor, prior: torch.Tensor, tau: float
) -> torch.Tensor:
    """CE(z_1, y) + CE(z_2 + log π, y) + CE(z_3 + log π − τ·log π_inv, y) for 3 × B × C logits."""
    log_prior = torch.log(prior + 1e-9)
    shifts = (torch.zeros_like(prior), log_prior, log_prior - tau * torch.log(inverse_prior(prior) + 1e-9))
    expert_logits = expert_logits.float()
    return sum(F.cross_entropy(z + shift, labels) for z, shift in zip(expert_logits, shifts, strict=True))


def aggregate(expert_outputs: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Σ_k w_k·(K × B × C)_k."""
    return (weights[:, None, None] * expert_outputs).sum(0)


def learn_aggregation(
    view_pairs: Iterable[tuple[torch.Tensor, torch.Tensor]], num_experts: int, lr: float, momentum: float
) -> tuple[torch.Tensor, int]:
    """Test-time self-supervised aggregation: w = softmax(a), a from 0, one SGD step per pair of
    K × B × C expert logits of two views, maximising the mean cosine similarity of the aggregated
    predictions Σ_k w_k·softmax(z_k). Returns (w, steps taken)."""
    a = torch.zeros(num_experts, requires_grad=True)
    optimizer = torch.optim.SGD([a], lr=lr, momentum=momentum)
    steps = 0
    for first, second in view_pairs:
        w = a.softmax(0)
        q1 = aggregate(first.float().cpu().softmax(-1), w)
        q2 = aggregate(second.float().cpu().softmax(-1), w)
        loss = -F.cosine_similarity(q1, q2, dim=1).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        steps += 1
    return a.detach().softmax(0), steps


@METHODS.register("tade")
class TADE(Method):
    name = "tade"
    summary = "TADE: forward, balanced and inverse experts on a shared trunk; mean (or test-time) aggregation"
    defaults: ClassVar[dict[str, Any]] = {
        "tau": 2.0,  # expert 3's inverse-prior strength
        "aggregation": "mean",  # mean | self-supervised
        "width": 0.75,
        "scale": 30.0,
        "tta_batch_size": 128,
        "tta_lr": 0.025,
        "tta_momentum": 0.9,
        "tta_passes": 1,
    }

    def __init__(self, hparams: dict[str, Any], class_counts: np.ndarray) -> None:
        super().__init__(hparams, class_counts)
        if self.hparams["aggregation"] not in AGGREGATIONS:
            allowed, got = ", ".join(AGGREGATIONS), self.hparams["aggregation"]
            raise UserError(f"tade: aggregation must be one of {allowed}, got {got!r}")
        for key in ("tta_batch_size", "tta_passes"):
            if self.hparams[key] < 1:
                raise UserError(f"tade: {key} must be at least 1, got {self.hparams[key]}")
        counts = self.class_counts.astype(np.float64)
        self.prior = torch.as_tensor(counts / counts.sum(), dtype=torch.float32)
        self.weights: torch.Tensor | None = None  # learned aggregation weights of the split being answered

    def build_model(self, backbone: nn.Module, num_classes: int) -> nn.Module:
        return ExpertNetwork(backbone, num_classes, NUM_EXPERTS, self.hparams["width"], self.hparams["scale"])

    def classification_loss(
        self, expert_logits: torch.Tensor, labels: torch.Tensor, context: StepContext
    ) -> torch.Tensor:
        """The TADE loss of 3 × B × C expert logits (also TADE + IFL's classification loss, §14)."""
        return tade_loss(expert_logits, labels, self.prior.to(labels.device), self.hparams["tau"])

    def loss(
        self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor, context: StepContext
    ) -> torch.Tensor:
        return self.classification_loss(model.expert_logits(model.features(images)), labels, context)

    # --- prediction -----------------------------------------------------------------------
    @torch.no_grad()
    def _view_pairs(
        self, model: nn.Module, images: torch.Tensor, pipeline: Pipeline, generator: torch.Generator
    ) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
        batch = self.hparams["tta_batch_size"]
        for _ in range(self.hparams["tta_passes"]):
            order = torch.randperm(len(images), generator=generator)
            for start in range(0, len(order), batch):
                x = images[order[start : start + batch]]
                yield tuple(
                    model.expert_logits(model.features(pipeline.train(x, generator))) for _ in range(2)
                )

    def adapt(
        self, model: nn.Module, images: torch.Tensor, pipeline: Pipeline, generator: torch.Generator
    ) -> dict[str, Any]:
        self.weights = None
        if self.hparams["aggregation"] == "mean":
            return {}
        was_training = model.training
        model.eval()
        weights, steps = learn_aggregation(
            self._view_pairs(model, images, pipeline, generator),
            NUM_EXPERTS,
            self.hparams["tta_lr"],
            self.hparams["tta_momentum"],
        )
        model.train(was_training)
        self.weights = weights
        return {
            "aggregation_weights": [round(float(w), 6) for w in weights],
            "images": len(images),
            "steps": steps,
        }

    def logits(self, model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        if self.weights is None:
            return model(images)
        return aggregate(model.expert_logits(model.features(images)), self.weights.to(images.device))

    def report(self) -> dict[str, Any]:
        return {"experts": NUM_EXPERTS}
