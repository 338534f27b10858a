"""CPU throughput of the embedded default's two heavy steps, beside ENVIRONMENT.md's references.

- EfficientNet-Lite0 feature extraction at 64 px (reference: 470 img/s at batch 32 on 2 cores);
- small-cnn training steps on 28 px grey images, batch 128 (a 3-conv 16/32/64 net: 2,617 img/s).
"""

from __future__ import annotations

import time

import numpy as np
import torch

from baselines.base import METHODS, StepContext
from benchmark.models import BACKBONES
from benchmark.recipes import RECIPES
from splits.fashion import prepare_for_extractor
from splits.features import EXTRACTORS, extract


def extraction(n: int = 2048) -> float:
    images = np.random.default_rng(0).integers(0, 256, (n, 28, 28), dtype=np.uint8)
    extractor = EXTRACTORS.get("efficientnet-lite0")
    extract(extractor, images[:64], prepare_for_extractor)  # warm-up
    started = time.perf_counter()
    extract(extractor, images, prepare_for_extractor)
    return n / (time.perf_counter() - started)


def training(steps: int = 30, batch: int = 128) -> float:
    torch.manual_seed(0)
    method = METHODS.get("ce")({}, np.ones(10, dtype=np.int64))
    model = method.build_model(BACKBONES.get("small-cnn")(1), 10).to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    x = torch.randn(batch, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,))
    context = StepContext(stage=method.stages(RECIPES.get("fashion"))[0], epoch=0)
    for step in range(steps + 3):
        if step == 3:
            started = time.perf_counter()
        loss = method.loss(model, x, y, context)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return steps * batch / (time.perf_counter() - started)


if __name__ == "__main__":
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"EfficientNet-Lite0 features @64 px, batch 32: {extraction():,.0f} img/s (reference 470)")
    print(f"small-cnn train step @28 px, batch 128: {training():,.0f} img/s (reference 2,617 for 16/32/64)")
