"""BBN, the Bilateral-Branch Network with cumulative learning (`bbn`; Zhou et al., CVPR 2020;
docs/methods.md §9; original `models/ResNet_BBN.py` and its `bbn_mix` combiner).

- Network (`BilateralNetwork`): the backbone split at its last residual block
  (`split_backbone(…, "last-block")`; on small-cnn the branch is the third block): a shared trunk,
  a conventional branch f_c and a re-balancing branch f_r (fresh, same width), and a linear
  classifier without bias on the 2d-dim concatenation.
- Trunk (`trunk`): `recipe` (default) splits the recipe's backbone, so BBN is compared with every other
  method on one network (ResNeXt-50 32x4d on the ImageNet recipes); the original BBN
  (`models/ResNet_BBN.py`) is a plain ResNet-50, which `trunk=resnet50` builds instead (from scratch,
  the recipe's input channels).
- Samplers: two DistributionSamplers (§0) drawing N indices each per epoch, uniform per instance
  and reversed (instance weight (n_max/n_c)/n_c, so class c has probability ∝ 1/n_c). A step takes
  B of each (B = the recipe's batch, 2B images per step, ×2 images per epoch). `epoch_order`
  interleaves the two draws (u[0], r[0], u[1], r[1], …), so every engine chunk of 2B holds the pairs
  (u[i], r[i]) at positions (2i, 2i + 1), and a short last chunk still holds whole pairs.
- Cumulative learning: α = 1 − ((e − 1)/T)² at 0-based epoch e of a T-epoch stage, exactly the
  original's `l = 1 - ((epoch - 1) / num_epoch) ** 2` with its 0-based `epoch`: 1 − 1/T² in the first
  epoch, 1 in the second, then decreasing to 1 − ((T − 2)/T)² in the last. The loss runs the
  even (uniform) positions through the trunk and f_c and the odd (reversed) ones through the trunk and
  f_r, as two passes like the original, and classifies z = W·[2α·f_c, 2(1 − α)·f_r] per pair:
  L = α·CE(z, y_c) + (1 − α)·CE(z, y_r).
- Test (`forward`, `features`): one trunk pass, both branches with factor 1 (α = 0.5), i.e. the plain
  concatenation [f_c, f_r].
- Schedule: the recipe's, with multistep lr ×0.1 at ⌊0.6E⌋ and ⌊0.8E⌋ (60 and 80 of 100).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from baselines.base import METHODS, Method, Stage, StepContext, milestone
from baselines.samplers import distribution
from benchmark.errors import UserError
from benchmark.models import BACKBONES, Network, split_backbone
from benchmark.recipes import Recipe

BRANCHES = ("both", "conventional", "rebalancing")
TRUNKS = ("recipe", "resnet50")
MILESTONES = ("milestone_1", "milestone_2")


class BilateralBackbone(nn.Module):
    """Shared trunk + conventional and re-balancing branches; features [f_c, f_r] (2d-dim)."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.trunk, branch = split_backbone(backbone, "last-block")
        self.conventional = branch(1.0)
        self.rebalancing = branch(1.0)
        self.feature_dim = 2 * self.conventional.feature_dim

    def forward(self, x: torch.Tensor, branch: str = "both") -> torch.Tensor:
        """Features of one branch, or of both concatenated from a single trunk pass."""
        shared = self.trunk(x)
        if branch == "conventional":
            return self.conventional(shared)
        if branch == "rebalancing":
            return self.rebalancing(shared)
        if branch != "both":
            raise ValueError(f"unknown branch {branch!r}; choose one of {BRANCHES}")
        return torch.cat([self.conventional(shared), self.rebalancing(shared)], dim=1)


class BilateralNetwork(Network):
    """`BilateralBackbone` + linear classifier without bias; `forward` gives the test-time logits."""

    def __init__(self, backbone: nn.Module, num_classes: int) -> None:
        bilateral = BilateralBackbone(backbone)
        super().__init__(bilateral, nn.Linear(bilateral.feature_dim, num_classes, bias=False))

    def mixed_logits(
        self, conventional: torch.Tensor, rebalancing: torch.Tensor, alpha: float
    ) -> torch.Tensor:
        """z = W·[2α·f_c(x_c), 2(1 − α)·f_r(x_r)] for paired inputs (x_c[i], x_r[i])."""
        f_c = self.backbone(conventional, "conventional")
        f_r = self.backbone(rebalancing, "rebalancing")
        return self.head(torch.cat([2 * alpha * f_c, 2 * (1 - alpha) * f_r], dim=1))


def reversed_weights(labels: np.ndarray, class_counts: np.ndarray) -> np.ndarray:
    """Instance weights (n_max/n_c)/n_c of the reversed sampler: class c gets mass n_max/n_c ∝ 1/n_c."""
    counts = np.asarray(class_counts, dtype=np.float64)
    n = counts[np.asarray(labels)]
    return counts.max() / n / n


def cumulative_alpha(epoch: int, epochs: int) -> float:
    """α = 1 − ((e − 1)/T)² at the 0-based `epoch` e of a T-epoch stage (the original's formula and
    epoch counter)."""
    return 1.0 - ((epoch - 1) / epochs) ** 2


def pairs(batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(conventional, re-balancing) halves of an interleaved batch: positions 0, 2, … and 1, 3, …"""
    if len(batch) % 2:
        raise ValueError(
            f"bbn pairs uniform and reversed draws by position, but got a batch of {len(batch)} "
            "(the engine keeps pairs whole: batch_unit = 2)"
        )
    return batch[0::2], batch[1::2]


@METHODS.register("bbn")
class BBN(Method):
    name = "bbn"
    summary = "BBN: two branches, uniform + reversed sampler, cumulative learning (Zhou et al. 2020)"
    defaults: ClassVar[dict[str, Any]] = {
        "milestone_1": 0.6,  # fractions of E where the lr is multiplied by lr_gamma
        "milestone_2": 0.8,
        "lr_gamma": 0.1,
        "trunk": "recipe",  # recipe | resnet50 (the original BBN's network)
    }

    def __init__(self, hparams: dict[str, Any], class_counts: np.ndarray) -> None:
        super().__init__(hparams, class_counts)
        if self.hparams["trunk"] not in TRUNKS:
            raise UserError(f"bbn: trunk must be one of {', '.join(TRUNKS)}, got {self.hparams['trunk']!r}")
        self.num_train = int(self.class_counts.sum())
        self._epochs: int | None = None

    def batch_unit(self, stage: Stage) -> int:
        return 2  # a uniform and a reversed draw

    # --- schedule and network -------------------------------------------------------------
    def stages(self, recipe: Recipe) -> list[Stage]:
        return [
            self.base_stage(
                recipe,
                schedule="multistep",
                milestones=tuple(milestone(self.hparams[k], recipe.epochs) for k in MILESTONES),
                gamma=self.hparams["lr_gamma"],
            )
        ]

    def batch_size(self, recipe: Recipe, stage: Stage) -> int:
        return 2 * recipe.batch_size

    def build_model(self, backbone: nn.Module, num_classes: int) -> nn.Module:
        if self.hparams["trunk"] == "resnet50":
            backbone = BACKBONES.get("resnet50")(backbone.in_channels)
        return BilateralNetwork(backbone, num_classes)

    def begin_stage(self, model: nn.Module, stage: Stage) -> nn.Module:
        self._epochs = stage.epochs
        return model

    # --- one epoch ------------------------------------------------------------------------
    def epoch_order(self, labels: np.ndarray, rng: np.random.Generator, context: StepContext) -> np.ndarray:
        if len(labels) != self.num_train:
            raise ValueError(
                f"bbn: {len(labels)} training labels, but the class counts sum to {self.num_train}"
            )
        uniform = distribution(np.ones(self.num_train), rng, self.num_train)
        reverse = distribution(reversed_weights(labels, self.class_counts), rng, self.num_train)
        return np.stack([uniform, reverse], axis=1).reshape(-1)

    def loss(
        self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor, context: StepContext
    ) -> torch.Tensor:
        alpha = cumulative_alpha(context.epoch, context.stage.epochs)
        (x_c, x_r), (y_c, y_r) = pairs(images), pairs(labels)
        z = model.mixed_logits(x_c, x_r, alpha).float()
        return alpha * F.cross_entropy(z, y_c) + (1 - alpha) * F.cross_entropy(z, y_r)

    # --- bookkeeping ----------------------------------------------------------------------
    def report(self) -> dict[str, Any]:
        counts = self.class_counts[self.class_counts > 0].astype(np.float64)
        reverse = (counts.max() / counts) / (counts.max() / counts).sum()
        out: dict[str, Any] = {
            # class probabilities of the largest and the smallest class under each sampler
            "uniform_class_prob": [float(counts.max() / counts.sum()), float(counts.min() / counts.sum())],
            "reversed_class_prob": [float(reverse.min()), float(reverse.max())],
        }
        if self._epochs is not None:
            out["alpha_first_last"] = [
                cumulative_alpha(0, self._epochs),
                cumulative_alpha(self._epochs - 1, self._epochs),
            ]
        return out
