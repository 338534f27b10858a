"""The one training loop every method runs in, and prediction.

The engine owns devices, precision (bf16 autocast and channels-last on CUDA), optional
torch.compile, data-parallel training under torchrun, optimisers, lr schedules, batched
augmentation, per-epoch checkpoints with `resume`, model selection on Val and compute accounting.
The method (baselines/base.py) supplies the network, sampler, loss, hooks and prediction logits.
"""

from __future__ import annotations

import copy
import logging
import math
import queue
import resource
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from baselines.base import Method, Stage, StepContext
from benchmark.atomic import atomic_path
from benchmark.errors import UserError
from benchmark.parallel import rank_and_world
from benchmark.recipes import Recipe
from benchmark.selection import SELECTION_RULES
from benchmark.transforms import Pipeline, to_device

log = logging.getLogger("glt_bench")

CHECKPOINT = "checkpoint.pt"
EVAL_BATCH = 512
CHECKPOINT_KEYS = frozenset(
    {"stage", "epoch", "model", "optimizer", "scaler", "method", "rng", "outcome", "best_score", "best_state"}
)
FINITE_CHECK_EVERY = 32  # steps between the (synchronising) non-finite-loss checks on CUDA


class Diverged(UserError):
    """The training loss became NaN or infinite: nothing of the run can be recorded."""


class ThreadCountChanged(UserError):
    """A CPU run would resume under another thread count than its checkpoint was written with."""


def load_torch_file(path: Path, hint: str) -> Any:
    """torch.load with weights_only=True; a damaged or foreign file is one line naming it and `hint`.

    torch's own messages (which suggest weights_only=False, never an option here, and an empty file
    surfaces as EOFError) are replaced by their first line.
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"{path} is missing; {hint}") from None
    except Exception as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise UserError(f"{path} is not a readable torch file ({reason}); {hint}") from None


@dataclass
class ImageSet:
    """Images (uint8 N×C×H×W, possibly a memory-mapped file) with their labels when known."""

    images: torch.Tensor
    labels: torch.Tensor | None = None


@dataclass
class TrainOutcome:
    """The selected network plus what the run record reports about training."""

    model: nn.Module
    selection_rule: str
    selected: list[dict[str, Any]] = field(default_factory=list)  # per stage: name, epoch (1-based)
    val_history: list[dict[str, Any]] = field(default_factory=list)
    images_processed: int = 0
    optimizer_steps: int = 0
    epochs: int = 0
    train_seconds: float = 0.0  # summed over every process of the run (resumes included)
    gpu_seconds: float = 0.0
    peak_memory_bytes: int = 0
    precision: str = "fp32"
    compiled: bool = False
    world_size: int = 1
    resumed_from_epoch: int | None = None
    method_report: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """The JSON-ready part (everything but the model)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "model"}


def resolve_precision(precision: str, device: torch.device) -> str:
    """ "auto" is bf16 autocast on CUDA and fp32 on the CPU."""
    if precision == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    if precision not in ("bf16", "fp16", "fp32"):
        raise ValueError(f"unknown precision {precision!r}")
    return precision


@torch.inference_mode()
def _forward_all(
    model: nn.Module, data: ImageSet, pipeline: Pipeline, fn, indices=None, precision: str = "auto", view=None
) -> torch.Tensor:
    """fn(model, x) over the images (or those at `indices`) in eval mode, in order, as CPU floats;
    `view` turns a uint8 batch into the network's input (default: the pipeline's eval view)."""
    was_training = model.training
    model.eval()
    chosen = np.arange(len(data.images)) if indices is None else np.asarray(indices)
    chunks = []
    for start in range(0, len(chosen), EVAL_BATCH):
        batch = torch.from_numpy(chosen[start : start + EVAL_BATCH])
        with _autocast(pipeline.device, resolve_precision(precision, pipeline.device)):
            chunks.append(fn(model, (view or pipeline.eval)(data.images[batch])).float().cpu())
    model.train(was_training)
    return torch.cat(chunks) if chunks else torch.empty(0)


def predict_logits(
    method: Method, model: nn.Module, data: ImageSet, pipeline: Pipeline, precision: str = "auto"
) -> torch.Tensor:
    """The method's prediction logits for every image, in order, on the CPU."""
    return _forward_all(model, data, pipeline, method.logits, precision=precision)


@dataclass
class Session:
    """What a method's hooks may look at: the data, the pipeline and forward passes over a split."""

    method: Method
    train_set: ImageSet
    val_set: ImageSet
    pipeline: Pipeline
    recipe: Recipe
    generator: torch.Generator  # for augmented views in hooks (never used while batches are in flight)
    precision: str = "auto"
    benchmark: str = ""  # the benchmark's name and the training split (e.g. for per-benchmark knobs)
    train_split: str = ""

    @property
    def device(self) -> torch.device:
        return self.pipeline.device

    @property
    def num_classes(self) -> int:
        return len(self.method.class_counts)

    @property
    def train_labels(self) -> np.ndarray:
        return self.train_set.labels.numpy()

    @property
    def val_labels(self) -> np.ndarray:
        return self.val_set.labels.numpy()

    def _split(self, split: str) -> ImageSet:
        return {"train": self.train_set, "val": self.val_set}[split]

    def val_logits(self, model: nn.Module) -> torch.Tensor:
        return predict_logits(self.method, model, self.val_set, self.pipeline, self.precision)

    def logits_of(self, model: nn.Module, split: str, indices=None) -> torch.Tensor:
        """Raw network outputs in eval mode."""
        return _forward_all(
            model, self._split(split), self.pipeline, lambda m, x: m(x), indices, self.precision
        )

    def features(self, model: nn.Module, split: str, indices=None, augment: bool = False) -> torch.Tensor:
        """Penultimate features in eval mode; with `augment`, of train-time augmented views."""

        def augmented(images: torch.Tensor) -> torch.Tensor:
            return self.pipeline.train(self.method.transform(images, self.generator), self.generator)

        return _forward_all(
            model, self._split(split), self.pipeline, lambda m, x: m.features(x), indices, self.precision,
            view=augmented if augment else None,
        )  # fmt: skip


def _autocast(device: torch.device, precision: str):
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)


def _lr_factor(stage: Stage, epoch: float) -> float:
    """The lr multiplier at `epoch` (fractional within an epoch for "warmup-cosine")."""
    if stage.schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * epoch / stage.epochs))
    if stage.schedule == "warmup-cosine":
        warmup = min(stage.warmup_epochs, stage.epochs)
        if epoch < warmup:
            return epoch / warmup
        return 0.5 * (1 + math.cos(math.pi * (epoch - warmup) / max(stage.epochs - warmup, 1e-12)))
    if stage.schedule == "multistep":
        return stage.gamma ** sum(epoch >= m for m in stage.milestones)
    if stage.schedule == "constant":
        return 1.0
    raise ValueError(f"unknown lr schedule {stage.schedule!r}")


def _optimizer(method: Method, model: nn.Module, stage: Stage) -> torch.optim.Optimizer:
    groups = method.param_groups(model, stage)
    for group in groups:
        group.setdefault("lr", stage.lr)
        group.setdefault("momentum", stage.momentum)
        group.setdefault("weight_decay", stage.weight_decay)
        group.setdefault("scheduled", True)
        group["initial_lr"] = group["lr"]
    if stage.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=stage.lr)
    if stage.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=stage.lr, betas=stage.betas)
    raise ValueError(f"unknown optimizer {stage.optimizer!r}")


def _set_lr(optimizer: torch.optim.Optimizer, stage: Stage, epoch: float) -> None:
    for group in optimizer.param_groups:
        if group["scheduled"]:
            group["lr"] = group["initial_lr"] * _lr_factor(stage, epoch)


def _set_frozen(model: nn.Module, frozen: bool) -> None:
    """Freeze the backbone's parameters (docs/benchmarks.md §7g; `_train_mode` sets eval mode), or undo it."""
    for p in model.backbone.parameters():
        p.requires_grad_(not frozen)


def _train_mode(model: nn.Module, stage: Stage) -> None:
    model.train()
    if stage.freeze_backbone:
        model.backbone.eval()


def _batches(
    order: np.ndarray, batch_size: int, data: ImageSet, method: Method, generator: torch.Generator, pin: bool
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(indices, uint8 images after the method's CPU transform) per step, prepared one ahead in a
    thread on CUDA so that gathering from a memory-mapped file overlaps the GPU's work."""

    def make(start: int) -> tuple[torch.Tensor, torch.Tensor]:
        indices = torch.from_numpy(order[start : start + batch_size])
        images = method.transform(data.images[indices], generator)
        return indices, images.pin_memory() if pin else images

    starts = range(0, len(order), batch_size)
    if not pin:
        yield from (make(s) for s in starts)
        return
    ready: queue.Queue = queue.Queue(maxsize=3)

    def produce() -> None:
        for s in starts:
            ready.put(make(s))

    worker = threading.Thread(target=produce, daemon=True)
    worker.start()
    for _ in starts:
        yield ready.get()
    worker.join()


class _Checkpoints:
    """The full training state after every epoch, written atomically, loaded safely."""

    def __init__(self, directory: Path | None) -> None:
        self.path = None if directory is None else Path(directory) / CHECKPOINT

    def save(self, state: dict[str, Any]) -> None:
        if self.path is None or rank_and_world()[0] != 0:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.path) as tmp:
            torch.save(state, tmp)

    def load(self) -> dict[str, Any] | None:
        if self.path is None or not self.path.exists():
            return None
        hint = "start the run over with --force (instead of --resume)"
        state = load_torch_file(self.path, hint)
        if not isinstance(state, dict) or not state.keys() >= CHECKPOINT_KEYS:
            raise UserError(f"{self.path} is not a training checkpoint (a model.pt in its place?); {hint}")
        return state


def _rng_state(rng: np.random.Generator, generators: list[torch.Generator]) -> dict[str, Any]:
    state = {
        "numpy": rng.bit_generator.state,
        "torch": [g.get_state() for g in generators],
        "global": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(
    state: dict[str, Any], rng: np.random.Generator, generators: list[torch.Generator]
) -> None:
    rng.bit_generator.state = state["numpy"]
    for g, saved in zip(generators, state["torch"], strict=True):
        g.set_state(saved)
    torch.set_rng_state(state["global"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def train(
    method: Method,
    model: nn.Module,
    train_set: ImageSet,
    val_set: ImageSet,
    recipe: Recipe,
    pipeline: Pipeline,
    *,
    seed: int,
    selection_rule: str = "val_acc",
    precision: str = "auto",
    compile: bool = False,
    checkpoint_dir: Path | None = None,
    resume: bool = False,
    start_weights: dict[str, torch.Tensor] | None = None,
    benchmark: str = "",
    train_split: str = "",
    allow_thread_change: bool = False,
) -> TrainOutcome:
    """Run every stage of the method; in each, keep the weights the selection rule prefers on Val.

    `start_weights` (a finished run's selected weights) replace the stages marked `pretrained`.
    With `resume`, training continues from the checkpoint in `checkpoint_dir` and ends exactly
    where an uninterrupted run would have (on the CPU, bit for bit, with the same thread count:
    a CPU checkpoint written under another count is refused unless `allow_thread_change`).
    A NaN or infinite training loss stops the run with `Diverged`, naming the epoch and step.
    """
    rule = SELECTION_RULES.get(selection_rule)
    device = pipeline.device
    precision = resolve_precision(precision, device)
    rank, world = rank_and_world()
    torch.manual_seed(seed)
    model = model.to(device).to(memory_format=torch.channels_last)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 1]))
    # Separate streams: engine geometry and losses; the method's CPU transform (run in the loader
    # thread); augmented views that hooks ask for.
    generator, transform_generator, hook_generator = (
        torch.Generator().manual_seed(int(s.generate_state(1)[0]))
        for s in np.random.SeedSequence([seed, 2]).spawn(3)
    )
    generators = [generator, transform_generator, hook_generator]
    session = Session(
        method, train_set, val_set, pipeline, recipe, hook_generator, precision, benchmark, train_split
    )
    outcome = TrainOutcome(model, selection_rule, precision=precision, compiled=compile, world_size=world)
    stages = method.stages(recipe)
    checkpoints = _Checkpoints(checkpoint_dir)
    saved = checkpoints.load() if resume else None
    first_stage = next((i for i, s in enumerate(stages) if not s.pretrained), len(stages))
    position = (first_stage, 0) if start_weights is not None else (0, 0)
    threads = torch.get_num_threads()
    earlier_seconds = 0.0  # training time of the processes before a resume
    if saved is not None:
        written_with = saved.get("threads")
        if device.type == "cpu" and written_with not in (None, threads) and not allow_thread_change:
            raise ThreadCountChanged(
                f"{checkpoints.path} was written by a process with {written_with} CPU threads, this one "
                f"has {threads}, and CPU results depend on it: resume with OMP_NUM_THREADS={written_with} "
                "(or --threads), or pass --allow-thread-change to mix them knowingly"
            )
        position = (saved["stage"], saved["epoch"])
        outcome.resumed_from_epoch = saved["outcome"]["epochs"]
        earlier_seconds = saved["outcome"].get("train_seconds", 0.0)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    labels_np = train_set.labels.numpy()
    val_labels = val_set.labels.numpy()
    on_cuda = device.type == "cuda"
    if on_cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
        torch.cuda.reset_peak_memory_stats(device)
    started = time.perf_counter()
    compiled = False
    for index, stage in enumerate(stages):
        model = method.begin_stage(model, stage).to(device).to(memory_format=torch.channels_last)
        if start_weights is not None and index == first_stage - 1:
            model.load_state_dict(start_weights)
        if index < position[0]:
            continue
        _set_frozen(model, stage.freeze_backbone)
        if compile and not compiled:
            model.backbone.compile()
            compiled = True
        optimizer = _optimizer(method, model, stage)
        best_score, best_state, start_epoch = -math.inf, None, 0
        if saved is not None and index == position[0]:
            model.load_state_dict(saved["model"])
            optimizer.load_state_dict(saved["optimizer"])
            scaler.load_state_dict(saved["scaler"])
            method.load_state_dict(saved["method"])
            _set_rng_state(saved["rng"], rng, generators)
            for key in ("images_processed", "optimizer_steps", "epochs", "selected", "val_history"):
                setattr(outcome, key, saved["outcome"][key])
            best_score, best_state, start_epoch = saved["best_score"], saved["best_state"], saved["epoch"]
        batch_size = method.batch_size(recipe, stage)
        progress = tqdm(
            range(start_epoch, stage.epochs),
            desc=f"train {method.name} [{stage.name}]",
            unit="epoch",
            initial=start_epoch,
            total=stage.epochs,
            disable=rank != 0,
        )
        per_step = stage.schedule == "warmup-cosine"
        for epoch in progress:
            _set_lr(optimizer, stage, epoch)
            context = StepContext(stage=stage, epoch=epoch, generator=generator)
            _train_mode(model, stage)
            method.begin_epoch(model, context, session)
            _train_mode(model, stage)
            order = method.epoch_order(labels_np, rng, context)
            epoch_started = time.perf_counter()
            loss_sum = torch.zeros((), device=device)
            window: list[torch.Tensor] = []  # the losses since the last non-finite check
            batches = _batches(order, batch_size, train_set, method, transform_generator, on_cuda)
            steps = math.ceil(len(order) / batch_size)
            for step, (indices, images) in enumerate(batches):
                if per_step:
                    _set_lr(optimizer, stage, epoch + step / steps)
                global_size = len(indices)
                if world > 1:  # this rank's share of the global batch, in whole units
                    mine = _share(len(indices), method.batch_unit(stage), rank, world)
                    indices, images = indices[mine], images[mine]
                x = pipeline.train(images, generator)
                y = to_device(train_set.labels[indices], device)
                context.indices = indices
                with _autocast(device, precision):
                    loss = method.loss(model, x, y, context)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if world > 1:
                    _average_gradients(model)
                scaler.step(optimizer)
                scaler.update()
                method.after_step(model, context)
                value = loss.detach().float()
                loss_sum += value * global_size
                window.append(value)
                outcome.images_processed += global_size
                outcome.optimizer_steps += 1
                if not on_cuda or (step + 1) % FINITE_CHECK_EVERY == 0 or step + 1 == steps:
                    _stop_if_diverged(window, step + 1 - len(window), method, stage, epoch, steps, world)
                    window.clear()
            method.end_epoch(model, context, session)
            if on_cuda:
                torch.cuda.synchronize(device)
            epoch_seconds = time.perf_counter() - epoch_started
            outcome.epochs += 1
            train_loss = float(loss_sum) / max(len(order), 1)
            val_pred = session.val_logits(model).argmax(1).numpy()
            score = rule(val_labels, val_pred, session.num_classes, outcome.epochs)
            outcome.val_history.append(
                {
                    "stage": stage.name,
                    "epoch": epoch + 1,
                    "train_loss": round(train_loss, 6),
                    selection_rule: score,
                    "images": len(order),
                    "epoch_seconds": round(epoch_seconds, 4),
                }
            )
            progress.set_postfix(loss=f"{train_loss:.3f}", val=f"{score:.4f}")
            if score > best_score:
                best_score, best_state = score, copy.deepcopy(model.state_dict())
                outcome.selected = [s for s in outcome.selected if s["stage"] != stage.name]
                outcome.selected.append({"stage": stage.name, "epoch": epoch + 1})
            checkpoints.save(
                {
                    "stage": index,
                    "epoch": epoch + 1,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scaler": scaler.state_dict(),
                    "method": method.state_dict(),
                    "rng": _rng_state(rng, generators),
                    "threads": threads,
                    "outcome": {
                        "train_seconds": earlier_seconds + time.perf_counter() - started,
                        "images_processed": outcome.images_processed,
                        "optimizer_steps": outcome.optimizer_steps,
                        "epochs": outcome.epochs,
                        "selected": outcome.selected,
                        "val_history": outcome.val_history,
                    },
                    "best_score": best_score,
                    "best_state": best_state,
                }
            )
        if best_state is not None:
            model.load_state_dict(best_state)
    _set_frozen(model, False)
    model = method.finish(model, session)
    outcome.model = model
    outcome.method_report = method.report()
    outcome.train_seconds = earlier_seconds + time.perf_counter() - started
    if on_cuda:
        outcome.gpu_seconds = outcome.train_seconds * world
        outcome.peak_memory_bytes = int(torch.cuda.max_memory_allocated(device))
    else:
        outcome.peak_memory_bytes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return outcome


def _stop_if_diverged(
    losses: list[torch.Tensor], first: int, method: Method, stage: Stage, epoch: int, steps: int, world: int
) -> None:
    """Raise `Diverged` when any rank has a non-finite loss among `losses`, those of the steps from
    `first` on (one check per window keeps the per-step work on CUDA free of extra kernels)."""
    bad = ~torch.isfinite(torch.stack(losses))
    first_bad = torch.where(bad.any(), bad.int().argmax() + first, -1)
    if world > 1:
        dist.all_reduce(first_bad, op=dist.ReduceOp.MAX)
    step = int(first_bad)
    if step >= 0:
        raise Diverged(
            f"training diverged: the loss of {method.name} became NaN or infinite at epoch {epoch + 1}, "
            f"step {step + 1} of {steps} (stage {stage.name}); lower the learning rate or the --set "
            "value that causes it"
        )


def _share(size: int, unit: int, rank: int, world: int) -> np.ndarray:
    """Positions of `rank`'s contiguous share of a batch of `size`, never splitting a unit of `unit`
    consecutive samples (e.g. BBN's pairs)."""
    units = np.array_split(np.arange(size // unit), world)[rank]
    return (units[:, None] * unit + np.arange(unit)).reshape(-1)


def _average_gradients(model: nn.Module) -> None:
    """Mean of every gradient over the data-parallel ranks, in one flat all-reduce.

    Methods call into their networks in their own ways (features, heads, several models), so the
    engine averages gradients itself rather than relying on DistributedDataParallel's forward hook.
    """
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()
