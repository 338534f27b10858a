"""`glt-bench run`: train once per training split, answer each protocol, score, write records."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist

from baselines.base import METHODS, Method
from benchmark import engine
from benchmark.atomic import atomic_path, ensure_writable_dir, remove_temporaries, write_json
from benchmark.benchmarks import BenchmarkDef
from benchmark.benchmarks import resolve as resolve_benchmark
from benchmark.errors import UserError
from benchmark.manifest import BOX_COLUMN, Manifest
from benchmark.models import BACKBONES
from benchmark.protocols import PROTOCOLS, Protocol, by_training_split
from benchmark.provenance import cpu_model, sha256_file
from benchmark.recipes import RECIPES, Recipe
from benchmark.records import RECORD_VERSION, environment, finite_only, result_entry
from benchmark.runlock import run_lock
from benchmark.sweep import where_it_ran
from benchmark.transforms import Pipeline
from leaderboard.predictions import write_predictions
from leaderboard.scoring import score_predictions

log = logging.getLogger("glt_bench")

MODEL_FILE = "model.pt"
CSV_CLASS_LIMIT = 100  # predictions with scores of more classes are written as Parquet, not CSV


@dataclass(frozen=True)
class Compute:
    """How to run: device (auto: CUDA when a GPU is visible), numeric precision, compilation; the
    distributed rank comes from torchrun."""

    device: str = "auto"
    precision: str = "auto"
    compile: bool = False


def _start_distributed(device: str) -> torch.device:
    """Join the torchrun process group when launched by torchrun; the device this rank uses."""
    if device not in ("auto", "cpu", "cuda"):
        raise UserError(f"--device must be auto, cpu or cuda, got {device!r}")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for but no CUDA GPU is visible; use --device cpu")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device == "cuda" else "gloo")
    if device == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    return torch.device("cpu")


def _is_main() -> bool:
    return not dist.is_initialized() or dist.get_rank() == 0


def run(
    *,
    benchmark: str,
    method: str,
    protocols: list[str],
    manifest_dir: Path,
    out: Path,
    seed: int = 0,
    epochs: int | None = None,
    recipe: str | None = None,
    compute: Compute = Compute(),
    data_root: Path | None = None,
    overrides: dict[str, Any] | None = None,
    selection_rule: str = "val_acc",
    from_run: Path | None = None,
    resume: bool = False,
    force: bool = False,
    allow_thread_change: bool = False,
    scores: bool = True,
) -> list[Path]:
    """Train and evaluate; returns the paths of the run records written (or found done).

    Each training holds its run folder's lock (benchmark/runlock.py) from its first check to its
    record; `scores` writes each test sample's class probabilities into the predictions files.
    """
    definition, method_cls, manifest, chosen = resolve(benchmark, method, manifest_dir, recipe, epochs)
    manifest.verify()
    for key, value in (overrides or {}).items():
        if isinstance(value, float) and not math.isfinite(value):
            raise UserError(f"--set {key}={value}: hyperparameters must be finite numbers")
    device = _start_distributed(compute.device)
    world = dist.get_world_size() if dist.is_initialized() else 1
    if _is_main():
        ensure_writable_dir(out)
    pipeline = Pipeline(chosen, definition.mean, definition.std, device)
    records = []
    planned = plan_runs(
        manifest, method_cls, chosen, protocols, out, seed=seed, overrides=overrides,
        selection_rule=selection_rule, device=device, precision=compute.precision, world=world,
        from_run=from_run,
    )  # fmt: skip
    for plan in planned:
        config, answered, run_dir, start = plan.config, plan.answered, plan.run_dir, plan.start
        record_path = run_dir / "record.json"
        if record_path.exists() and not force:
            log.info("already done: %s (use --force to run again)", _done_note(record_path, device))
            records.append(record_path)
            continue
        with run_lock(run_dir) if _is_main() else contextlib.nullcontext():
            if record_path.exists() and not force:  # finished by another process while we planned
                log.info("already done: %s (use --force to run again)", record_path)
                records.append(record_path)
                continue
            remove_temporaries(run_dir)  # of writes killed mid-way; no live writer while we hold the lock
            checkpoint = run_dir / engine.CHECKPOINT
            if checkpoint.exists() and not (resume or force):
                raise UserError(
                    f"{checkpoint} holds an unfinished run of this config: pass --resume to continue it "
                    "or --force to start over"
                )
            if force and not resume:
                checkpoint.unlink(missing_ok=True)
            if _is_main():
                log.info("%s", _plan_line(config, chosen, answered, run_dir, resume and checkpoint.exists()))
            try:
                record = _train_and_answer(
                    manifest, definition, method_cls, config, chosen, pipeline, compute, answered, run_dir,
                    data_root, start[1] if start else None, resume, allow_thread_change, scores,
                )  # fmt: skip
            except engine.Diverged as exc:
                checkpoint.unlink(missing_ok=True)  # the same config diverges again: nothing to resume
                raise engine.Diverged(f"{exc}; nothing was recorded in {run_dir}") from None
            if record is not None:
                record, replaced = finite_only(record)
                for key in replaced:
                    log.warning("warning: %s was NaN or infinite; recorded as null", key)
                write_json(record_path, record)
                checkpoint.unlink(missing_ok=True)
                log.info("record: %s", record_path)
                records.append(record_path)
    return records


def _plan_line(
    config: dict[str, Any], recipe: Recipe, answered: list[Protocol], run_dir: Path, resuming: bool
) -> str:
    """What a training is about to do, in one line, before it starts."""
    device = config["device"]
    if device == "cuda":
        device = f"cuda ({config['world_size']} × {torch.cuda.get_device_name()})"
    protocols = ", ".join(f"{p.name} (test {p.test_split})" for p in answered)
    return (
        f"{'resuming' if resuming else 'training'} {config['method']} on {config['benchmark']} seed "
        f"{config['seed']}: device {device}, {torch.get_num_threads()} CPU threads, precision "
        f"{config['precision']}, recipe {recipe.name} ({recipe.backbone}, {recipe.epochs} epochs, "
        f"batch {recipe.batch_size}), train split {config['train_split']} for {protocols}; "
        f"folder {run_dir}"
    )


def _done_note(record_path: Path, device: torch.device) -> str:
    """The record path, and on the CPU a note when it was trained under another thread count."""
    try:
        threads = json.loads(record_path.read_text(encoding="utf-8"))["compute"].get("threads")
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return str(record_path)
    if device.type != "cpu" or threads in (None, torch.get_num_threads()):
        return str(record_path)
    return f"{record_path}, trained with {threads} CPU threads (this process has {torch.get_num_threads()})"


def resolve(
    benchmark: str, method: str, manifest_dir: Path, recipe: str | None, epochs: int | None
) -> tuple[BenchmarkDef, type[Method], Manifest, Recipe]:
    """The benchmark, method class, manifest and recipe (with `epochs`) that `run` arguments name."""
    definition = resolve_benchmark(benchmark, manifest_dir)
    method_cls = METHODS.get(method)
    manifest = Manifest(manifest_dir / benchmark)
    if manifest.benchmark != benchmark:
        raise UserError(f"{manifest.root} holds {manifest.benchmark!r}, not {benchmark!r}")
    chosen = RECIPES.get(recipe or definition.recipe)
    if epochs is not None:
        if epochs < 1:
            raise UserError(f"--epochs must be at least 1, got {epochs}")
        chosen = replace(chosen, epochs=epochs)
    return definition, method_cls, manifest, chosen


@dataclass(frozen=True)
class PlannedRun:
    """One training of a `run` call: its config (what its hash covers), the protocols it answers, its
    folder, and the finished run replacing its first stage (`--from`), if any."""

    config: dict[str, Any]
    answered: list[Protocol]
    run_dir: Path
    start: tuple[dict[str, Any], dict[str, torch.Tensor]] | None


def plan_runs(
    manifest: Manifest,
    method_cls: type[Method],
    recipe: Recipe,
    protocols: list[str],
    out: Path,
    *,
    seed: int,
    overrides: dict[str, Any] | None,
    selection_rule: str,
    device: torch.device,
    precision: str,
    world: int,
    from_run: Path | None = None,
) -> list[PlannedRun]:
    """The trainings `run` performs and where their records go, named by the hash of their config.

    The one place a config hash is computed: `run` calls it for itself, and a sweep (benchmark/sweep.py)
    calls it for the device and world size its jobs will have, so whatever describes the executing
    process must come in as an argument here, never from the calling process.
    """
    planned = []
    for train_split, answered in by_training_split(protocols).items():
        hparams = method_cls(overrides or {}, manifest.class_counts(train_split)).hparams
        start = _stage_one(from_run, method_cls, recipe, manifest, train_split)
        config = {
            "benchmark": manifest.benchmark,
            "method": method_cls.name,
            "hparams": hparams,
            "recipe": asdict(recipe),
            "train_split": train_split,
            "val_split": answered[0].val_split,
            "selection_rule": selection_rule,
            "seed": seed,
            "manifest_sha256": manifest.content_hash,
            "protocols": sorted(p.name for p in answered),
            "device": device.type,
            "precision": engine.resolve_precision(precision, device),
            "world_size": world,
            **({"from_run": start[0]} if start else {}),
        }
        config_hash = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:10]
        run_dir = out / manifest.benchmark / method_cls.name / f"{train_split}-seed{seed}-{config_hash}"
        planned.append(PlannedRun(config, answered, run_dir, start))
    return planned


def _stage_one(
    from_run: Path | None, method_cls: type[Method], recipe: Recipe, manifest: Manifest, train_split: str
) -> tuple[dict[str, Any], dict[str, torch.Tensor]] | None:
    """The provenance and weights of a finished run that replaces the method's pretrained stages."""
    if from_run is None:
        return None
    record_path, weights_path = Path(from_run) / "record.json", Path(from_run) / MODEL_FILE
    if not record_path.exists() or not weights_path.exists():
        raise UserError(f"--from {from_run}: not a finished run folder (needs record.json and {MODEL_FILE})")
    if not any(s.pretrained for s in method_cls({}, manifest.class_counts(train_split)).stages(recipe)):
        raise UserError(f"--from: method {method_cls.name!r} has no stage that a finished run can replace")
    source = json.loads(record_path.read_text(encoding="utf-8"))
    expected = {
        "benchmark": manifest.benchmark,
        "manifest_sha256": manifest.content_hash,
        "train_split": train_split,
    }
    if source.get("train_split") != train_split:
        trained = source.get("train_split")
        answers = sorted(p.name for p in PROTOCOLS.values() if p.train_split == trained)
        needs = sorted(p.name for p in PROTOCOLS.values() if p.train_split == train_split)
        raise UserError(
            f"--from {from_run} was trained on {trained}, which answers {', '.join(answers) or 'nothing'}; "
            f"{', '.join(needs)} need a {train_split} run: name the protocols it answers with --protocol, "
            f"and run {', '.join(needs)} with --from a {train_split} run"
        )
    for key, value in expected.items():
        if source.get(key) != value:
            raise UserError(f"--from {from_run}: its {key} is {source.get(key)!r}, this run needs {value!r}")
    backbone = source.get("recipe", {}).get("backbone")
    if backbone != recipe.backbone:
        raise UserError(
            f"--from {from_run}: trained a {backbone!r} backbone, "
            f"recipe {recipe.name!r} uses {recipe.backbone!r}"
        )
    weights = engine.load_torch_file(weights_path, "pass a finished run folder whose model.pt is intact")
    provenance = {
        "path": str(from_run),
        "method": source.get("method"),
        "record_sha256": sha256_file(record_path),
    }
    return provenance, weights


def _images(
    manifest: Manifest, definition: BenchmarkDef, listing: pd.DataFrame, data_root: Path | None
) -> np.ndarray:
    """The images of a listing's rows; object crops (a `bbox` column) are cut with their boxes."""
    paths = listing["path"].tolist()
    if BOX_COLUMN in listing:
        return definition.load_images(manifest, paths, data_root, boxes=listing[BOX_COLUMN].tolist())
    return definition.load_images(manifest, paths, data_root)


def _load(
    manifest: Manifest, definition: BenchmarkDef, split: str, data_root: Path | None
) -> engine.ImageSet:
    frame = manifest.split(split)
    images = _images(manifest, definition, frame, data_root)
    return engine.ImageSet(torch.from_numpy(images), torch.from_numpy(frame["label"].to_numpy(np.int64)))


def _adapt_generator(seed: int, split: str) -> torch.Generator:
    """The seeded generator of a method's test-time adaptation to one split (`Method.adapt`)."""
    digest = hashlib.sha256(f"adapt:{seed}:{split}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:7], "little"))


def _train_and_answer(
    manifest: Manifest,
    definition: BenchmarkDef,
    method_cls: type[Method],
    config: dict[str, Any],
    recipe: Recipe,
    pipeline: Pipeline,
    compute: Compute,
    answered: list[Protocol],
    run_dir: Path,
    data_root: Path | None,
    start_weights: dict[str, torch.Tensor] | None,
    resume: bool,
    allow_thread_change: bool = False,
    scores: bool = True,
) -> dict[str, Any] | None:
    """Train, then (on the main rank) predict, score and return the record."""
    started = time.perf_counter()
    seed = config["seed"]
    torch.manual_seed(seed)
    train_set = _load(manifest, definition, config["train_split"], data_root)
    val_set = _load(manifest, definition, config["val_split"], data_root)
    method = method_cls(config["hparams"], manifest.class_counts(config["train_split"]))
    backbone = BACKBONES.get(recipe.backbone)(train_set.images.shape[1])
    model = method.build_model(backbone, manifest.num_classes)
    try:
        outcome = engine.train(
            method, model, train_set, val_set, recipe, pipeline,
            seed=seed, selection_rule=config["selection_rule"], precision=compute.precision,
            compile=compute.compile, checkpoint_dir=run_dir, resume=resume, start_weights=start_weights,
            benchmark=manifest.benchmark, train_split=config["train_split"],
            allow_thread_change=allow_thread_change,
        )  # fmt: skip
    except RuntimeError as error:
        if start_weights is not None and "state_dict" in str(error):
            raise UserError(
                f"--from {config['from_run']['path']}: its weights do not fit the first stage of "
                f"{method_cls.name!r} ({str(error).splitlines()[0]}); pass a run of the matching method"
            ) from None
        raise
    if not _is_main():
        return None
    with atomic_path(run_dir / MODEL_FILE) as tmp:
        torch.save(outcome.model.state_dict(), tmp)
    results = []
    for protocol in answered:
        listing = manifest.public_listing(protocol.test_split)
        images = torch.from_numpy(_images(manifest, definition, listing, data_root))
        adaptation = method.adapt(
            outcome.model, images, pipeline, _adapt_generator(seed, protocol.test_split)
        )
        logits = engine.predict_logits(
            method, outcome.model, engine.ImageSet(images), pipeline, compute.precision
        )
        suffix = ".csv" if manifest.num_classes <= CSV_CLASS_LIMIT or not scores else ".parquet"
        path = run_dir / f"predictions_{protocol.test_split}{suffix}"
        binding = {
            "benchmark": manifest.benchmark,
            "split": protocol.test_split,
            "manifest_sha256": manifest.content_hash,
        }
        probabilities = torch.softmax(logits.float(), 1).numpy() if scores else None
        write_predictions(
            path, listing["sample_id"].to_numpy(), logits.argmax(1).numpy(), binding, probabilities
        )
        metrics = score_predictions(path, manifest, protocol.name)
        log.info(
            "%s %s: acc %.4f  prec %.4f", config["method"], protocol.name, metrics["acc"], metrics["prec"]
        )
        results.append(result_entry(protocol.name, path.name, sha256_file(path), metrics, adaptation))
    summary = outcome.summary()
    del summary["selection_rule"]
    wall_seconds = time.perf_counter() - started
    return {
        "format": RECORD_VERSION,
        "kind": "run",
        **config,
        "selected": summary.pop("selected"),
        "val_history": summary.pop("val_history"),
        "method_report": summary.pop("method_report"),
        "results": results,
        **({"transductive": True} if any("adaptation" in r for r in results) else {}),
        "compute": {
            **summary,
            "train_seconds": round(outcome.train_seconds, 3),
            "gpu_seconds": round(outcome.gpu_seconds, 3),
            "wall_seconds": round(wall_seconds, 3),
            "device": str(pipeline.device),
            "threads": torch.get_num_threads(),
            "cpu": cpu_model(),  # the GPU model is in `ran_on`
        },
        "environment": environment(),
        "ran_on": where_it_ran(wall_seconds, config["device"], config["world_size"]),
    }
