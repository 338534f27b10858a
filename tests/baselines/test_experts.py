"""The 3-expert network of RIDE and TADE (docs/methods.md §10): shapes, backbone, z̄, float32 logits."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from baselines.experts import ExpertNetwork
from baselines.ldam import CosineClassifier
from benchmark.models import BACKBONES


def _network(classes: int = 5) -> ExpertNetwork:
    torch.manual_seed(0)
    return ExpertNetwork(BACKBONES.get("small-cnn")(1), classes)


def test_small_cnn_experts_have_48_d_features_and_predict_the_mean_expert_logits():
    model = _network()
    assert (model.num_experts, model.backbone.expert_dim, model.backbone.feature_dim) == (3, 48, 144)
    x = torch.randn(4, 1, 28, 28)
    model.eval()
    with torch.no_grad():
        features = model.features(x)
        experts = model.expert_logits(features)
        assert features.shape == (4, 144) and experts.shape == (3, 4, 5)
        assert torch.allclose(model(x), experts.mean(0))
        # z_k = 30·cos(f_k, w_k): the third expert sees the third 48-d chunk only.
        head = model.heads[2]
        f = features[:, 96:]
        cos = (f / f.norm(dim=1, keepdim=True)) @ (head.weight / head.weight.norm(dim=1, keepdim=True)).T
        assert torch.allclose(experts[2], 30 * cos, atol=1e-5)
    assert experts.abs().max() <= 30 + 1e-4


def test_backbone_holds_trunk_and_expert_branches_and_the_heads_are_cosine_classifiers():
    model = _network()
    backbone_params = {id(p) for p in model.backbone.parameters()}
    head_params = {id(p) for p in model.heads.parameters()}
    assert not backbone_params & head_params
    assert backbone_params | head_params == {id(p) for p in model.parameters()}
    assert all(isinstance(h, CosineClassifier) for h in model.heads)
    assert len(model.backbone.branches) == 3 and isinstance(model.backbone.trunk, nn.Sequential)
    branch_weights = [next(b.parameters()) for b in model.backbone.branches]
    assert not torch.equal(branch_weights[0], branch_weights[1])  # independently initialised experts


def test_fresh_heads_are_new_unit_norm_classifiers():
    model = _network()
    fresh = model.fresh_heads()
    assert len(fresh) == 3 and not torch.equal(fresh[0].weight, model.heads[0].weight)
    assert fresh[0].weight.shape == (5, 48)
    assert fresh[0].weight.norm(dim=1).tolist() == pytest.approx([1.0] * 5, rel=1e-6)


def test_expert_logits_stay_float32_under_bf16_autocast():
    model = _network()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = model.expert_logits(model.features(torch.randn(2, 1, 28, 28)))
    assert out.dtype == torch.float32
