"""Decoupling (Kang et al., ICLR 2020; docs/methods.md §6): learn a representation, then re-balance the
classifier: cRT (`crt`), LWS (`lws`) and τ-norm (`tau-norm`).

Stage 1 is another registered one-stage method, `ce` by default (option `stage1`), run exactly as
that method runs alone: its network, sampler, batch size, loss, transform, hooks and prediction
logits. Its stage is marked `pretrained`, so `glt-bench run --from RUN` can replace it by a finished
run of that method. Options for it travel in one string, `stage1_set="key=value,key=value"`, typed
by that method's defaults; otherwise it has its own defaults, except that a stage-1 `ifl` defaults
to `loss=ce` (§14 "Combinations": cRT + IFL and LWS + IFL retrain an IFL model trained with CE).
Stage 1's own `finish` is not applied: stage 2 replaces or rescales its classifier.

Stage 2 (cRT, LWS: the "stage 2 schedule" of §0): backbone frozen and in eval mode (the engine does
both for `freeze_backbone`), ClassAwareSampler, plain CE, cosine to 0, and the recipe's lr, momentum
and weight decay (the original's stage 2 used lr 0.1 = its base lr). Only the head trains.
Its length is `stage2_fraction` of the recipe's epochs, at least one: max(1, ⌊0.1·E⌋). §0 states the
10 stage-2 epochs for the 100-epoch base schedule and scales every epoch count stated there with the
recipe, so the base recipes keep 10 and `fashion` (30 epochs) gets 3; a fixed 10 would also make
stage 2, whose class-aware epochs hold up to 4N images, cost more than stage 1 in short recipes.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from baselines.base import METHODS, Method, Stage, StepContext, parse_overrides
from baselines.samplers import class_aware
from benchmark.errors import UserError
from benchmark.metrics import balanced_accuracy
from benchmark.recipes import Recipe

if TYPE_CHECKING:
    from benchmark.engine import Session

# Stage-1 defaults that differ from the method's own when it runs under decoupling (§14).
STAGE1_PRESETS: dict[str, dict[str, Any]] = {"ifl": {"loss": "ce"}}
TAUS = tuple(round(0.1 * k, 1) for k in range(11))  # τ ∈ {0, 0.1, …, 1.0}


class ScaledLinear(nn.Module):
    """LWS head: z_c = s_c·w_cᵀf with the stage-1 weights W fixed (a buffer) and scales s (init 1)."""

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("weight", weight.detach().clone())
        self.scales = nn.Parameter(torch.ones(weight.shape[0], device=weight.device))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return F.linear(features, self.weight) * self.scales


def tau_normalised(weight: torch.Tensor, tau: float) -> torch.Tensor:
    """w̃_c = w_c / ‖w_c‖^τ, row by row (τ = 0 leaves W unchanged)."""
    return weight / weight.norm(dim=1, keepdim=True).pow(tau)


def choose_tau(features: torch.Tensor, weight: torch.Tensor, labels: np.ndarray) -> float:
    """The τ of TAUS whose normalised classifier has the highest mean per-class recall on the given
    (Val) features; ties go to the smaller τ."""
    best_tau, best_score = TAUS[0], -1.0
    for tau in TAUS:
        preds = (features @ tau_normalised(weight, tau).T).argmax(1).numpy()
        score = balanced_accuracy(labels, preds, weight.shape[0])
        if score > best_score:
            best_tau, best_score = tau, score
    return best_tau


class Decoupled(Method):
    """Stage 1 by the `stage1` method, then (cRT, LWS) a class-balanced stage 2 on the frozen backbone."""

    defaults: ClassVar[dict[str, Any]] = {"stage1": "ce", "stage1_set": "", "stage2_fraction": 0.1}
    retrains: ClassVar[bool] = True  # whether there is a stage 2 (τ-norm has none)

    def __init__(self, hparams: dict[str, Any], class_counts: np.ndarray) -> None:
        super().__init__(hparams, class_counts)
        inner_class = METHODS.get(self.hparams["stage1"])
        if issubclass(inner_class, Decoupled):
            raise UserError(f"{self.name}: stage1 must be a one-stage method, not {inner_class.name!r}")
        if self.retrains and not self.hparams["stage2_fraction"] > 0:
            raise UserError(
                f"{self.name}: stage2_fraction must be > 0, got {self.hparams['stage2_fraction']}"
            )
        pairs = [pair for pair in self.hparams["stage1_set"].split(",") if pair]
        inner_hparams = {**STAGE1_PRESETS.get(inner_class.name, {}), **parse_overrides(pairs, inner_class)}
        self.inner = inner_class(inner_hparams, class_counts)
        self._in_stage1 = True  # which stage's logits and transform apply

    # --- schedule and network -------------------------------------------------------------
    def stages(self, recipe: Recipe) -> list[Stage]:
        inner_stages = self.inner.stages(recipe)
        if len(inner_stages) != 1:
            raise UserError(f"{self.name}: stage1 must be a one-stage method, not {self.inner.name!r}")
        stages = [replace(inner_stages[0], name="stage1", pretrained=True)]
        if self.retrains:
            stages.append(self.stage2_stage(recipe, self.hparams["stage2_fraction"]))
        return stages

    def batch_size(self, recipe: Recipe, stage: Stage) -> int:
        return self.inner.batch_size(recipe, stage) if stage.pretrained else recipe.batch_size

    def build_model(self, backbone: nn.Module, num_classes: int) -> nn.Module:
        model = self.inner.build_model(backbone, num_classes)
        if not isinstance(getattr(model, "head", None), nn.Module):
            raise UserError(
                f"{self.name}: stage1={self.inner.name!r} has no single classifier head to retrain; "
                "choose a one-head method such as ce, balanced-softmax or ifl"
            )
        return model

    def begin_stage(self, model: nn.Module, stage: Stage) -> nn.Module:
        self._in_stage1 = stage.pretrained
        if stage.pretrained:
            return self.inner.begin_stage(model, stage)
        model.head = self.stage2_head(model.head)
        return model

    def stage2_head(self, head: nn.Module) -> nn.Module:
        """The classifier stage 2 trains, built from stage 1's (cRT, LWS)."""
        raise NotImplementedError

    def param_groups(self, model: nn.Module, stage: Stage) -> list[dict[str, Any]]:
        if stage.pretrained:
            return self.inner.param_groups(model, stage)
        return [{"params": [p for p in model.head.parameters() if p.requires_grad]}]

    # --- one epoch ------------------------------------------------------------------------
    def epoch_order(self, labels: np.ndarray, rng: np.random.Generator, context: StepContext) -> np.ndarray:
        if context.stage.pretrained:
            return self.inner.epoch_order(labels, rng, context)
        return class_aware(labels, rng)

    def begin_epoch(self, model: nn.Module, context: StepContext, session: Session) -> None:
        self._in_stage1 = context.stage.pretrained
        if context.stage.pretrained:
            self.inner.begin_epoch(model, context, session)

    def transform(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return self.inner.transform(images, generator) if self._in_stage1 else images

    def loss(
        self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor, context: StepContext
    ) -> torch.Tensor:
        if context.stage.pretrained:
            return self.inner.loss(model, images, labels, context)
        return F.cross_entropy(model(images).float(), labels)

    def after_step(self, model: nn.Module, context: StepContext) -> None:
        if context.stage.pretrained:
            self.inner.after_step(model, context)

    def end_epoch(self, model: nn.Module, context: StepContext, session: Session) -> None:
        if context.stage.pretrained:
            self.inner.end_epoch(model, context, session)

    # --- prediction and bookkeeping -------------------------------------------------------
    def logits(self, model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        return self.inner.logits(model, images) if self._in_stage1 else model(images)

    def state_dict(self) -> dict[str, Any]:
        return {"stage1": self.inner.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.inner.load_state_dict(state["stage1"])

    def report(self) -> dict[str, Any]:
        return {"stage1": {"method": self.inner.name, "hparams": self.inner.hparams, **self.inner.report()}}


@METHODS.register("crt")
class ClassifierRetraining(Decoupled):
    """cRT: a freshly initialised bias-free linear classifier trained on the frozen features."""

    name = "crt"
    summary = "decoupling cRT: stage-1 features, fresh classifier retrained class-balanced (Kang et al. 2020)"

    def stage2_head(self, head: nn.Module) -> nn.Module:
        # Drawn from torch's global RNG, which the engine seeds.
        out_features, in_features = head.weight.shape
        return nn.Linear(in_features, out_features, bias=False, device=head.weight.device)


@METHODS.register("lws")
class LearnableWeightScaling(Decoupled):
    """LWS: stage 1's classifier kept, frozen; only per-class scales s_c (init 1) train."""

    name = "lws"
    summary = "decoupling LWS: stage-1 classifier frozen, per-class scales learned class-balanced"

    def stage2_head(self, head: nn.Module) -> nn.Module:
        return ScaledLinear(head.weight)


@METHODS.register("tau-norm")
class TauNormalisation(Decoupled):
    """τ-norm: no retraining; w̃_c = w_c/‖w_c‖^τ with τ ∈ {0, 0.1, …, 1} chosen by Val balanced accuracy.

    `finish` replaces the head by a bias-free linear layer holding the normalised weights, so the
    prediction logits and the saved model carry τ, and the record reports it."""

    name = "tau-norm"
    summary = "decoupling τ-norm: stage-1 classifier rows divided by ‖w_c‖^τ, τ chosen on Val"
    defaults: ClassVar[dict[str, Any]] = {"stage1": "ce", "stage1_set": ""}
    retrains = False

    def __init__(self, hparams: dict[str, Any], class_counts: np.ndarray) -> None:
        super().__init__(hparams, class_counts)
        self.tau: float | None = None

    def finish(self, model: nn.Module, session: Session) -> nn.Module:
        weight = model.head.weight.detach()
        self.tau = choose_tau(session.features(model, "val"), weight.float().cpu(), session.val_labels)
        head = nn.Linear(weight.shape[1], weight.shape[0], bias=False, device=weight.device)
        with torch.no_grad():
            head.weight.copy_(tau_normalised(weight, self.tau))
        model.head = head
        self._in_stage1 = False
        return model

    def report(self) -> dict[str, Any]:
        return {**super().report(), "tau": self.tau}
