"""Backbones, registered by name, and the backbone + head network every method builds on."""

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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


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
