"""Balanced Softmax (`balanced-softmax`): train with CE(z + log(π + 1e-12), y), predict argmax z
(Ren et al., NeurIPS 2020; docs/methods.md §4). No meta-sampler."""

from __future__ import annotations

import torch
from torch import nn

from baselines.base import METHODS, Method, StepContext
from baselines.logit_adjustment import adjusted_cross_entropy


@METHODS.register("balanced-softmax")
class BalancedSoftmax(Method):
    name = "balanced-softmax"
    summary = "Balanced Softmax CE(z + log π) (Ren et al. 2020), shuffle sampler"

    def loss(
        self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor, context: StepContext
    ) -> torch.Tensor:
        return adjusted_cross_entropy(model(images), labels, self.log_prior(labels.device))
