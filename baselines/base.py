"""The method contract the engine drives (ARCHITECTURE.md, "Method").

A method is a small class: default hyperparameters, its stage schedule, how it builds its network
on a backbone, the order in which it visits training samples each epoch (its sampler), its training
loss, and how it turns a network's output into logits to predict from (post-hoc adjustments live
there). Optional hooks let it act at stage and epoch boundaries and after each optimiser step. The
engine owns devices, precision, optimisers, schedules, augmentation, checkpoints and selection.

Everything a method learns lives in the model it builds (so checkpoints hold it); anything else it
keeps between epochs goes through `state_dict`/`load_state_dict` as tensors and plain values.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmark.errors import UserError
from benchmark.models import Network
from benchmark.recipes import Recipe
from benchmark.registry import Registry

if TYPE_CHECKING:
    from benchmark.engine import Session
    from benchmark.transforms import Pipeline


@dataclass(frozen=True)
class Stage:
    """One optimisation stage: its length and optimiser settings.

    `schedule` is "cosine" (annealed to 0, stepped per epoch), "multistep" (lr × gamma at each of
    `milestones`, 0-based epochs within the stage), "constant", or "warmup-cosine" (stepped every
    iteration: linear warm-up over `warmup_epochs`, then cosine to 0). `optimizer` is "sgd" (with
    `momentum`, no Nesterov) or "adamw" (with `betas`). A stage with `freeze_backbone`
    trains with the backbone's parameters frozen and the backbone in eval mode (docs/benchmarks.md §7g).
    `pretrained` marks a stage that `glt-bench run --from RUN` may replace by a finished run's weights.
    """

    name: str
    epochs: int
    lr: float
    momentum: float
    weight_decay: float
    schedule: str
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1
    freeze_backbone: bool = False
    pretrained: bool = False
    optimizer: str = "sgd"
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_epochs: int = 0


def milestone(fraction: float, epochs: int) -> int:
    """A milestone stated for the 100-epoch base schedule, scaled to `epochs` (docs/methods.md §0)."""
    return math.floor(fraction * epochs)


@dataclass
class StepContext:
    """What a loss may depend on besides the batch."""

    stage: Stage
    epoch: int  # 0-based, within the stage
    indices: torch.Tensor | None = None  # training-set indices of the batch (CPU), when known
    generator: torch.Generator = field(default_factory=torch.Generator)  # seeded; for random losses


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

    # --- schedule and network -------------------------------------------------------------
    def stages(self, recipe: Recipe) -> list[Stage]:
        return [self.base_stage(recipe)]

    @staticmethod
    def base_stage(recipe: Recipe, name: str = "main", **changes: Any) -> Stage:
        """The recipe's own schedule as a stage, with any field changed."""
        stage = Stage(name, recipe.epochs, recipe.lr, recipe.momentum, recipe.weight_decay, recipe.schedule)
        return Stage(**{**stage.__dict__, **changes})

    def stage2_stage(self, recipe: Recipe, fraction: float, **changes: Any) -> Stage:
        """docs/methods.md §0's stage 2 (cRT, LWS, RIDE stage 2): max(1, ⌊fraction·E⌋) epochs, cosine, on
        the frozen backbone; samplers and heads are the method's."""
        epochs = max(1, milestone(fraction, recipe.epochs))
        return self.base_stage(
            recipe, "stage2", epochs=epochs, schedule="cosine", freeze_backbone=True, **changes
        )

    def batch_size(self, recipe: Recipe, stage: Stage) -> int:
        """Images per optimiser step (a method drawing two batches per step returns twice the size)."""
        return recipe.batch_size

    def batch_unit(self, stage: Stage) -> int:
        """Consecutive samples of a batch that belong together (e.g. BBN's pairs): data-parallel
        shares never split them."""
        return 1

    def build_model(self, backbone: nn.Module, num_classes: int) -> nn.Module:
        """Backbone + linear classifier without bias (the original's head)."""
        return Network(backbone, nn.Linear(backbone.feature_dim, num_classes, bias=False))

    def begin_stage(self, model: nn.Module, stage: Stage) -> nn.Module:
        """Change the network's structure or trainability for a stage (e.g. a fresh classifier).

        Called again, in order, when a run resumes, before the checkpoint's weights are loaded, so it
        must not depend on data. The engine freezes the backbone itself when the stage says so.
        """
        return model

    def param_groups(self, model: nn.Module, stage: Stage) -> list[dict[str, Any]]:
        """Optimiser parameter groups. A group may set its own `lr`, `momentum`, `weight_decay`, and
        `scheduled: False` to keep its lr constant; the rest follow the stage."""
        return [{"params": [p for p in model.parameters() if p.requires_grad]}]

    # --- one epoch ------------------------------------------------------------------------
    def epoch_order(self, labels: np.ndarray, rng: np.random.Generator, context: StepContext) -> np.ndarray:
        """Training-set indices to visit this epoch, consumed `batch_size` at a time: a shuffle."""
        return rng.permutation(len(labels))

    def begin_epoch(self, model: nn.Module, context: StepContext, session: Session) -> None:
        """Before an epoch's first step (e.g. a feature pass for class centroids)."""

    def transform(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Per-batch uint8 augmentation on the CPU before the engine's own (e.g. RandAugment)."""
        return images

    def loss(
        self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor, context: StepContext
    ) -> torch.Tensor:
        return F.cross_entropy(model(images), labels)

    def after_step(self, model: nn.Module, context: StepContext) -> None:
        """After each optimiser step (e.g. projecting a parameter back onto its constraint)."""

    def end_epoch(self, model: nn.Module, context: StepContext, session: Session) -> None:
        """After an epoch's last step, before Val (e.g. updating sampling environments)."""

    def finish(self, model: nn.Module, session: Session) -> nn.Module:
        """After the last stage, on the selected weights (e.g. choosing a post-hoc knob on Val)."""
        return model

    # --- prediction and bookkeeping -------------------------------------------------------
    def adapt(
        self, model: nn.Module, images: torch.Tensor, pipeline: Pipeline, generator: torch.Generator
    ) -> dict[str, Any]:
        """Before a test split is predicted: adapt to its unlabelled uint8 `images` (transductive,
        e.g. TADE's test-time aggregation), using `pipeline.train(images, generator)` for augmented
        views and `pipeline.eval(images)` for the plain one. Returns what the record should show for
        that split; a non-empty return marks the run transductive. Default: nothing."""
        return {}

    def logits(self, model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        """Logits to take the argmax of at prediction time."""
        return model(images)

    def state_dict(self) -> dict[str, Any]:
        """State kept between epochs outside the model (tensors and plain values only)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned (on resume)."""

    def report(self) -> dict[str, Any]:
        """Values chosen or learned during training that the run record should show (e.g. τ)."""
        return {}

    # --- shared helpers -------------------------------------------------------------------
    def log_prior(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """log π_c of the training split, indexed by integer class id (docs/benchmarks.md §7c)."""
        prior = self.class_counts / self.class_counts.sum()
        return torch.log(torch.as_tensor(prior, dtype=torch.float32, device=device) + 1e-12)


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
