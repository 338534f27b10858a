"""`glt-bench run`: train once per training split, answer each protocol, score, write records."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from baselines.base import METHODS
from benchmark import engine
from benchmark.atomic import write_json
from benchmark.benchmarks import BENCHMARKS
from benchmark.errors import UserError
from benchmark.manifest import Manifest
from benchmark.models import BACKBONES
from benchmark.protocols import by_training_split
from benchmark.provenance import sha256_file
from benchmark.recipes import RECIPES
from benchmark.records import RECORD_VERSION, environment, result_entry
from leaderboard.predictions import write_predictions
from leaderboard.scoring import score_predictions

log = logging.getLogger("glt_bench")


def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for but no CUDA GPU is visible; use --device cpu")
    if name not in ("cpu", "cuda"):
        raise UserError(f"--device must be cpu or cuda, got {name!r}")
    return torch.device(name)


def run(
    *,
    benchmark: str,
    method: str,
    protocols: list[str],
    manifest_dir: Path,
    out: Path,
    seed: int = 0,
    epochs: int | None = None,
    device: str = "cpu",
    data_root: Path | None = None,
    overrides: dict[str, Any] | None = None,
    selection_rule: str = "val_acc",
    force: bool = False,
) -> list[Path]:
    """Train and evaluate; returns the paths of the run records written (or found done)."""
    definition = BENCHMARKS.get(benchmark)
    method_cls = METHODS.get(method)
    manifest = Manifest(manifest_dir / benchmark)
    if manifest.benchmark != benchmark:
        raise UserError(f"{manifest.root} holds {manifest.benchmark!r}, not {benchmark!r}")
    manifest.verify()
    recipe = RECIPES.get(definition.recipe)
    if epochs is not None:
        if epochs < 1:
            raise UserError(f"--epochs must be at least 1, got {epochs}")
        recipe = replace(recipe, epochs=epochs)
    torch_device = resolve_device(device)
    normalize = engine.Normalizer(definition.mean, definition.std, torch_device)
    records = []
    for train_split, answered in by_training_split(protocols).items():
        val_split = answered[0].val_split
        hparams = method_cls(overrides or {}, manifest.class_counts(train_split)).hparams
        config = {
            "benchmark": benchmark,
            "method": method,
            "hparams": hparams,
            "recipe": asdict(recipe),
            "train_split": train_split,
            "val_split": val_split,
            "selection_rule": selection_rule,
            "seed": seed,
            "manifest_sha256": manifest.content_hash,
            "protocols": sorted(p.name for p in answered),
        }
        config_hash = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:10]
        run_dir = out / benchmark / method / f"{train_split}-seed{seed}-{config_hash}"
        record_path = run_dir / "record.json"
        if record_path.exists() and not force:
            log.info("already done: %s (use --force to run again)", record_path)
            records.append(record_path)
            continue
        record = _train_and_answer(
            manifest, definition, method_cls, config, recipe, normalize, answered, run_dir, data_root
        )
        write_json(record_path, record)
        log.info("record: %s", record_path)
        records.append(record_path)
    return records


def _load(manifest: Manifest, definition: Any, split: str, data_root: Path | None) -> engine.ImageSet:
    frame = manifest.split(split)
    images = definition.load_images(manifest, frame["path"].tolist(), data_root)
    return engine.ImageSet(torch.from_numpy(images), torch.from_numpy(frame["label"].to_numpy(np.int64)))


def _train_and_answer(
    manifest, definition, method_cls, config, recipe, normalize, answered, run_dir, data_root
) -> dict[str, Any]:
    started = time.perf_counter()
    seed = config["seed"]
    torch.manual_seed(seed)
    train_set = _load(manifest, definition, config["train_split"], data_root)
    val_set = _load(manifest, definition, config["val_split"], data_root)
    method = method_cls(config["hparams"], manifest.class_counts(config["train_split"]))
    backbone = BACKBONES.get(recipe.backbone)(train_set.images.shape[1])
    model = method.build_model(backbone, manifest.num_classes)
    outcome = engine.train(
        method,
        model,
        train_set,
        val_set,
        recipe,
        normalize,
        seed=seed,
        selection_rule=config["selection_rule"],
    )
    results = []
    for protocol in answered:
        listing = manifest.public_listing(protocol.test_split)
        images = definition.load_images(manifest, listing["path"].tolist(), data_root)
        logits = engine.predict_logits(
            method, outcome.model, engine.ImageSet(torch.from_numpy(images)), normalize
        )
        path = run_dir / f"predictions_{protocol.test_split}.csv"
        binding = {
            "benchmark": manifest.benchmark,
            "split": protocol.test_split,
            "manifest_sha256": manifest.content_hash,
        }
        write_predictions(path, listing["sample_id"].to_numpy(), logits.argmax(1).numpy(), binding)
        metrics = score_predictions(path, manifest, protocol.name)
        log.info(
            "%s %s: acc %.4f  prec %.4f", config["method"], protocol.name, metrics["acc"], metrics["prec"]
        )
        results.append(result_entry(protocol.name, path.name, sha256_file(path), metrics))
    return {
        "format": RECORD_VERSION,
        "kind": "run",
        **config,
        "selected": outcome.selected,
        "val_history": outcome.val_history,
        "results": results,
        "compute": {
            "images_processed": outcome.images_processed,
            "optimizer_steps": outcome.optimizer_steps,
            "epochs": outcome.epochs,
            "train_seconds": round(outcome.train_seconds, 3),
            "wall_seconds": round(time.perf_counter() - started, 3),
            "device": str(normalize.device),
        },
        "environment": environment(),
    }
