"""Backbones and their split into a shared trunk plus fresh branches (BBN, RIDE, TADE)."""

from __future__ import annotations

import pytest
import torch

from benchmark.models import BACKBONES, split_backbone


@pytest.mark.parametrize(
    ("arch", "point", "width", "dim"),
    [
        ("small-cnn", "last-block", 1.0, 64),
        ("small-cnn", "layer3", 0.75, 48),
        ("resnet18", "last-block", 1.0, 512),
        ("resnet18", "layer3", 0.75, 384),
        ("resnext50_32x4d", "layer3", 0.75, 1536),
        ("resnext50_32x4d", "last-block", 1.0, 2048),
    ],
)
def test_trunk_plus_branch_gives_pooled_features_of_the_stated_width(arch, point, width, dim):
    backbone = BACKBONES.get(arch)(3)
    trunk, branch = split_backbone(backbone, point)
    first, second = branch(width), branch(width)
    assert first.feature_dim == dim
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert first(trunk(x)).shape == (2, dim)
    shared = {id(p) for p in backbone.parameters()}
    assert all(id(p) in shared for p in trunk.parameters())
    assert not any(id(p) in shared for p in first.parameters())
    assert not torch.equal(next(first.parameters()), next(second.parameters()))


def test_resnext_last_block_trunk_drops_only_the_last_block():
    backbone = BACKBONES.get("resnext50_32x4d")(3)
    trunk, _ = split_backbone(backbone, "last-block")
    full = sum(p.numel() for p in backbone.parameters())
    last = sum(p.numel() for p in backbone.net.layer4[-1].parameters())
    assert sum(p.numel() for p in trunk.parameters()) == full - last


def test_unknown_split_point_is_refused():
    with pytest.raises(ValueError, match="unknown split point"):
        split_backbone(BACKBONES.get("small-cnn")(1), "layer9")


@pytest.mark.parametrize("arch", ["small-cnn", "resnet18"])
def test_fresh_backbone_has_the_same_shape_and_new_weights(arch):
    backbone = BACKBONES.get(arch)(1)
    other = backbone.fresh()
    assert type(other) is type(backbone) and other.feature_dim == backbone.feature_dim
    mine, theirs = backbone.state_dict(), other.state_dict()
    assert mine.keys() == theirs.keys()
    assert any(v.is_floating_point() and not torch.equal(v, theirs[k]) for k, v in mine.items())
