"""The multi-expert network RIDE (§10) and TADE (§11) share (docs/methods.md §10 "Network").

The backbone is split at "layer3" (`benchmark.models.split_backbone`): a shared trunk (ResNeXt-50:
stem … layer2; small-cnn: its first two blocks) and K experts, each its own freshly initialised
layer3–layer4 at width 0.75 (ResNeXt-50: 1536-d features; small-cnn: its third block, 48-d). Every
expert has a normalised linear classifier scaled by s = 30: z_k = 30·cos(f_k, w_{k,c}), computed in
float32 (`CosineClassifier`).

What the engine and the methods see:
- `backbone` (`ExpertBackbone`): trunk + expert branches; its output, `features(x)`, is the K expert
  features concatenated (K·d, `backbone.feature_dim`), and freezing it freezes trunk and branches.
- `heads`: the K expert classifiers; `expert_logits(features)` → K×B×C.
- `forward(x)` = z̄, the mean of the expert logits (the prediction of RIDE and of TADE by default).
"""

from __future__ import annotations

import torch
from torch import nn

from baselines.ldam import CosineClassifier
from benchmark.models import split_backbone

SPLIT_POINT = "layer3"


class ExpertBackbone(nn.Module):
    """Shared trunk, then K expert branches; returns their features concatenated (B × K·d)."""

    def __init__(self, backbone: nn.Module, num_experts: int, width: float) -> None:
        super().__init__()
        if num_experts < 1:
            raise ValueError(f"need at least one expert, got {num_experts}")
        self.trunk, branch = split_backbone(backbone, SPLIT_POINT)
        self.branches = nn.ModuleList(branch(width) for _ in range(num_experts))
        self.expert_dim = self.branches[0].feature_dim
        self.feature_dim = num_experts * self.expert_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shared = self.trunk(x)
        return torch.cat([branch(shared) for branch in self.branches], dim=1)


class ExpertNetwork(nn.Module):
    """K experts on a shared trunk, each with a cosine classifier scaled by `scale`; predicts z̄."""

    def __init__(
        self, backbone: nn.Module, num_classes: int, num_experts: int = 3, width: float = 0.75,
        scale: float = 30.0,
    ) -> None:  # fmt: skip
        super().__init__()
        self.backbone = ExpertBackbone(backbone, num_experts, width)
        self.num_classes = num_classes
        self.scale = scale
        self.heads = self.fresh_heads()

    @property
    def num_experts(self) -> int:
        return len(self.backbone.branches)

    def fresh_heads(self) -> nn.ModuleList:
        """K newly initialised expert classifiers (RIDE's stage 2 retrains these)."""
        return nn.ModuleList(
            CosineClassifier(self.backbone.expert_dim, self.num_classes) for _ in range(self.num_experts)
        )

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def expert_logits(self, features: torch.Tensor) -> torch.Tensor:
        """z_k = s·cos for every expert, K × B × C in float32, from the concatenated features."""
        chunks = features.split(self.backbone.expert_dim, dim=1)
        return torch.stack([self.scale * head(f) for head, f in zip(self.heads, chunks, strict=True)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.expert_logits(self.features(x)).mean(0)
