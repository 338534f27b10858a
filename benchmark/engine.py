"""The one training loop every method runs in, prediction, and batch augmentation.

The engine owns devices, optimisers, lr schedules, augmentation and model selection on Val; the
method (baselines/base.py) supplies the network, sampler order, loss and prediction logits.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from baselines.base import Method, Stage, StepContext
from benchmark.recipes import Recipe
from benchmark.selection import SELECTION_RULES

log = logging.getLogger("glt_bench")


@dataclass
class ImageSet:
    """Images (uint8 N×C×H×W) with their labels when known."""

    images: torch.Tensor
    labels: torch.Tensor | None = None


@dataclass
class TrainOutcome:
    """The selected network plus what the run record reports about training."""

    model: nn.Module
    selection_rule: str
    selected: dict[str, int | str]  # stage and epoch (1-based) of the selected weights
    val_history: list[dict[str, float | int | str]] = field(default_factory=list)
    images_processed: int = 0
    optimizer_steps: int = 0
    epochs: int = 0
    train_seconds: float = 0.0


class Normalizer:
    """uint8 images → normalised floats on the device, channels-last."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...], device: torch.device) -> None:
        self.mean = torch.tensor(mean, device=device).view(1, -1, 1, 1) * 255
        self.std = torch.tensor(std, device=device).view(1, -1, 1, 1) * 255
        self.device = device

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        x = images.to(self.device, non_blocking=True).float()
        return ((x - self.mean) / self.std).contiguous(memory_format=torch.channels_last)


def augment(x: torch.Tensor, recipe: Recipe, generator: torch.Generator) -> torch.Tensor:
    """Random crop after zero padding and random horizontal flip, per sample, on the batch's device."""
    n, c, h, w = x.shape
    if recipe.crop_padding:
        p = recipe.crop_padding
        padded = F.pad(x, (p, p, p, p))
        dy = torch.randint(0, 2 * p + 1, (n,), generator=generator).to(x.device)
        dx = torch.randint(0, 2 * p + 1, (n,), generator=generator).to(x.device)
        rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
        cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
        batch = torch.arange(n, device=x.device)[:, None, None, None]
        channel = torch.arange(c, device=x.device)[None, :, None, None]
        x = padded[batch, channel, rows, cols]
    if recipe.flip:
        flip = (torch.rand(n, generator=generator) < 0.5).to(x.device)
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    return x


def _lr_factor(stage: Stage, epoch: int) -> float:
    if stage.schedule == "cosine":
        return 0.5 * (1 + np.cos(np.pi * epoch / stage.epochs))
    if stage.schedule == "constant":
        return 1.0
    raise ValueError(f"unknown lr schedule {stage.schedule!r}")


@torch.inference_mode()
def predict_logits(
    method: Method, model: nn.Module, data: ImageSet, normalize: Normalizer, batch_size: int = 512
) -> torch.Tensor:
    """The method's prediction logits for every image, in order, on the CPU."""
    model.eval()
    chunks = [
        method.logits(model, normalize(data.images[start : start + batch_size])).float().cpu()
        for start in range(0, len(data.images), batch_size)
    ]
    return torch.cat(chunks)


def train(
    method: Method,
    model: nn.Module,
    train_set: ImageSet,
    val_set: ImageSet,
    recipe: Recipe,
    normalize: Normalizer,
    *,
    seed: int,
    selection_rule: str = "val_acc",
) -> TrainOutcome:
    """Run every stage of the method; keep the weights the selection rule prefers on Val."""
    rule = SELECTION_RULES.get(selection_rule)
    device = normalize.device
    model = model.to(device).to(memory_format=torch.channels_last)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 1]))
    generator = torch.Generator().manual_seed(seed)
    labels_np = train_set.labels.numpy()
    val_labels = val_set.labels.numpy()
    num_classes = len(method.class_counts)
    outcome = TrainOutcome(model=model, selection_rule=selection_rule, selected={})
    best_score, best_state = -np.inf, None
    started = time.perf_counter()
    for stage in method.stages(recipe):
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.SGD(
            params, lr=stage.lr, momentum=stage.momentum, weight_decay=stage.weight_decay
        )
        progress = tqdm(range(stage.epochs), desc=f"train {method.name} [{stage.name}]", unit="epoch")
        for epoch in progress:
            for group in optimizer.param_groups:
                group["lr"] = stage.lr * _lr_factor(stage, epoch)
            context = StepContext(stage=stage, epoch=epoch)
            model.train()
            order = method.epoch_order(labels_np, rng, context)
            loss_sum = torch.zeros((), device=device)
            for start in range(0, len(order), recipe.batch_size):
                batch = torch.from_numpy(order[start : start + recipe.batch_size])
                images = augment(normalize(train_set.images[batch]), recipe, generator)
                loss = method.loss(model, images, train_set.labels[batch].to(device), context)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                loss_sum += loss.detach() * len(batch)
                outcome.images_processed += len(batch)
                outcome.optimizer_steps += 1
            outcome.epochs += 1
            train_loss = float(loss_sum) / len(order)
            val_pred = predict_logits(method, model, val_set, normalize).argmax(1).numpy()
            score = rule(val_labels, val_pred, num_classes, outcome.epochs)
            outcome.val_history.append(
                {"stage": stage.name, "epoch": epoch + 1, "train_loss": train_loss, selection_rule: score}
            )
            progress.set_postfix(loss=f"{train_loss:.3f}", val=f"{score:.4f}")
            if score > best_score:
                best_score, best_state = score, copy.deepcopy(model.state_dict())
                outcome.selected = {"stage": stage.name, "epoch": epoch + 1}
    outcome.train_seconds = time.perf_counter() - started
    if best_state is not None:
        model.load_state_dict(best_state)
    return outcome
