"""Backbones, registered by name, and the backbone + head network every method builds on.

Multi-branch methods (BBN, RIDE, TADE) split a backbone with `split_backbone`: a shared trunk plus
freshly initialised branches that each end in pooled, flattened features.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from benchmark.registry import Registry

BACKBONES: Registry[Callable[[int], nn.Module]] = Registry("backbone")


class SmallCNN(nn.Module):
    """Three conv-BN-ReLU blocks (16/32/64 channels), pooling after the first two: CPU-sized."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.in_channels = in_channels

        def block(cin: int, cout: int) -> list[nn.Module]:
            return [
                nn.Conv2d(cin, cout, 3, padding=1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
            ]

        self.layers = nn.Sequential(
            *block(in_channels, 16), nn.MaxPool2d(2),
            *block(16, 32), nn.MaxPool2d(2),
            *block(32, 64), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )  # fmt: skip
        self.feature_dim = 64

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)

    def fresh(self) -> nn.Module:
        """A newly initialised backbone of the same kind."""
        return SmallCNN(self.in_channels)

    def split(self, point: str) -> tuple[nn.Module, Callable[[float], nn.Module]]:
        """Both split points fall before the third block: the trunk is the first two blocks."""
        _check_point(point)
        in_channels = self.layers[4].out_channels

        def branch(width: float) -> nn.Module:
            channels = round(64 * width)
            layers = nn.Sequential(
                nn.Conv2d(in_channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels),
                nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            )  # fmt: skip
            layers.feature_dim = channels
            return layers

        return self.layers[:8], branch


BACKBONES.register("small-cnn")(SmallCNN)


class TorchvisionBackbone(nn.Module):
    """A torchvision classification network from scratch (no weights), its classifier removed."""

    def __init__(self, arch: str, in_channels: int) -> None:
        super().__init__()
        import torchvision

        net = torchvision.models.get_model(arch, weights=None)
        if in_channels != 3:
            old = net.conv1
            net.conv1 = nn.Conv2d(in_channels, old.out_channels, old.kernel_size, old.stride, old.padding,
                                  bias=False)  # fmt: skip
        self.feature_dim = net.fc.in_features
        net.fc = nn.Identity()
        self.net = net
        self.arch = arch
        self.in_channels = in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def fresh(self) -> nn.Module:
        """A newly initialised backbone of the same kind."""
        return TorchvisionBackbone(self.arch, self.in_channels)

    def split(self, point: str) -> tuple[nn.Module, Callable[[float], nn.Module]]:
        """`last-block`: the trunk is everything but layer4's last residual block (BBN);
        `layer3`: the trunk is the stem to layer2, and each branch has its own layer3 and layer4
        with their widths scaled (RIDE's experts: 0.75 gives ResNeXt-50 1536-d features)."""
        _check_point(point)
        import torchvision

        net = self.net
        stem = [net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2]
        if point == "last-block":
            trunk = nn.Sequential(*stem, net.layer3, *net.layer4[:-1])
        else:
            trunk = nn.Sequential(*stem)

        def branch(width: float) -> nn.Module:
            fresh = torchvision.models.get_model(self.arch, weights=None)
            if point == "last-block":
                if width != 1.0:
                    raise ValueError("a last-block branch keeps the backbone's width")
                layers = [fresh.layer4[-1]]
            else:
                block = type(fresh.layer4[-1])
                fresh.inplanes = fresh.layer3[0].conv1.in_channels
                layers = [
                    fresh._make_layer(block, round(256 * width), len(fresh.layer3), stride=2),
                    fresh._make_layer(block, round(512 * width), len(fresh.layer4), stride=2),
                ]
                _init_like_torchvision(nn.Sequential(*layers))
            out = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
            out.feature_dim = round(512 * width) * type(fresh.layer4[-1]).expansion
            return out

        return trunk, branch


def _init_like_torchvision(module: nn.Module) -> None:
    """torchvision's ResNet initialisation, for layers built after the network's constructor."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


SPLIT_POINTS = ("last-block", "layer3")


def _check_point(point: str) -> None:
    if point not in SPLIT_POINTS:
        raise ValueError(f"unknown split point {point!r}; choose one of {SPLIT_POINTS}")


def split_backbone(backbone: nn.Module, point: str) -> tuple[nn.Module, Callable[[float], nn.Module]]:
    """(shared trunk, branch(width) → a fresh branch with `feature_dim`) of a registered backbone.

    The trunk reuses the backbone's own modules; every branch is newly initialised."""
    if not hasattr(backbone, "split"):
        raise ValueError(f"{type(backbone).__name__} cannot be split into branches")
    return backbone.split(point)


for _arch in ("resnet18", "resnet50", "resnext50_32x4d"):
    BACKBONES.register(_arch)(lambda in_channels, arch=_arch: TorchvisionBackbone(arch, in_channels))


class Network(nn.Module):
    """A backbone producing features and a head producing logits from them."""

    def __init__(self, backbone: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))
