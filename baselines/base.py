"""The method contract the engine drives (ARCHITECTURE.md, "Method").

A method is a small class: default hyperparameters, its stage schedule, how it builds its network
on a backbone, the order in which it visits training samples each epoch (its sampler), its training
loss, and how it turns a network's output into logits to predict from (post-hoc adjustments live
there). The engine owns devices, optimisers, schedules, augmentation, checkpoints and selection.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmark.errors import UserError
from benchmark.models import Network
from benchmark.recipes import Recipe
from benchmark.registry import Registry


@dataclass(frozen=True)
class Stage:
    """One optimisation stage: its length and optimiser settings."""

    name: str
    epochs: int
    lr: float
    momentum: float
    weight_decay: float
    schedule: str


@dataclass
class StepContext:
    """What a loss may depend on besides the batch."""

    stage: Stage
    epoch: int  # 0-based, within the stage


class Method:
    """Plain empirical risk minimisation; other methods override what they change."""

    name: ClassVar[str]
    summary: ClassVar[str]
    defaults: ClassVar[Mapping[str, Any]] = {}

    def __init__(self, hparams: Mapping[str, Any], class_counts: np.ndarray) -> None:
        unknown = set(hparams) - set(self.defaults)
        if unknown:
            known = ", ".join(sorted(self.defaults)) or "none"
            raise UserError(
                f"method {self.name!r} has no hyperparameter {', '.join(sorted(unknown))}; known: {known}"
            )
        self.hparams = {**self.defaults, **hparams}
        self.class_counts = np.asarray(class_counts, dtype=np.int64)

    def stages(self, recipe: Recipe) -> list[Stage]:
        return [
            Stage("main", recipe.epochs, recipe.lr, recipe.momentum, recipe.weight_decay, recipe.schedule)
        ]

    def build_model(self, backbone: nn.Module, num_classes: int) -> nn.Module:
        """Backbone + linear classifier without bias (the original's head)."""
        return Network(backbone, nn.Linear(backbone.feature_dim, num_classes, bias=False))

    def epoch_order(self, labels: np.ndarray, rng: np.random.Generator, context: StepContext) -> np.ndarray:
        """Training-set indices to visit this epoch: a shuffle by default."""
        return rng.permutation(len(labels))

    def loss(
        self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor, context: StepContext
    ) -> torch.Tensor:
        return F.cross_entropy(model(images), labels)

    def logits(self, model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        """Logits to take the argmax of at prediction time."""
        return model(images)


METHODS: Registry[type[Method]] = Registry("method")


def parse_overrides(pairs: list[str], method: type[Method]) -> dict[str, Any]:
    """`key=value` strings → typed hyperparameters, typed like the method's defaults."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise UserError(f"--set expects key=value, got {pair!r}")
        if key not in method.defaults:
            known = ", ".join(sorted(method.defaults)) or "none"
            raise UserError(f"method {method.name!r} has no hyperparameter {key!r}; known: {known}")
        default = method.defaults[key]
        try:
            if isinstance(default, bool):
                if text.lower() not in ("true", "false", "1", "0"):
                    raise ValueError(text)
                out[key] = text.lower() in ("true", "1")
            else:
                out[key] = type(default)(text)
        except ValueError:
            raise UserError(f"--set {key}: {text!r} is not a valid {type(default).__name__}") from None
    return out
