"""Leaderboard tables, a pure function of the records: one table per benchmark × protocol.

A row is one configuration (kind, method, submission name, hyperparameters, recipe, selection rule,
manifest) with one entry per record, i.e. per seed. Each metric cell is the mean and sample std over
those records; the bootstrap 95% interval of a multi-seed row is the mean of the records' interval
endpoints (the test-sample uncertainty of one typical seed; the std carries the seed-to-seed spread),
shown only when every record has one.
"""

from __future__ import annotations

import hashlib
import json
import re
import statistics
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from benchmark.catalog import METHOD_DEFAULTS  # the methods' defaults, without importing torch
from benchmark.protocols import PROTOCOLS

COLUMNS = (
    ("acc", "Acc"),
    ("prec", "Prec"),
    ("f1", "F1"),
    ("acc_many", "Many acc"),
    ("acc_medium", "Medium acc"),
    ("acc_few", "Few acc"),
    ("prec_many", "Many prec"),
    ("prec_medium", "Medium prec"),
    ("prec_few", "Few prec"),
    ("acc_att0", "Att0 acc"),
    ("acc_att1", "Att1 acc"),
    ("acc_att2", "Att2 acc"),
    ("acc_worst_att", "Worst-att acc"),
)
CI_KEYS = ("acc", "prec", "f1")
CONFIG_KEYS = ("kind", "method", "name", "hparams", "recipe", "selection_rule", "manifest_sha256")


@dataclass(frozen=True)
class Cell:
    mean: float
    std: float | None  # sample std over seeds; None for a single seed
    ci95: tuple[float, float] | None


@dataclass(frozen=True)
class Fact:
    """One line of a row's provenance; `link` marks an http(s) address safe to link to."""

    label: str
    text: str
    link: bool = False


@dataclass(frozen=True)
class PerClass:
    train_counts: list[int]
    accuracy: list[float | None]  # mean over seeds; None for a class absent from the test labels


@dataclass
class Row:
    method: str
    kind: str  # run | submission | reported
    seeds: list[int]
    cells: dict[str, Cell | None]
    provenance: list[list[Fact]]  # one list per record
    per_class: PerClass | None
    variant: str | None = None  # what tells it apart from other rows of the same method and kind
    train_images: float | None = None  # mean over seeds of the training images processed (runs)

    @property
    def label(self) -> str:
        return self.method if self.variant is None else f"{self.method} {self.variant}"


@dataclass
class Table:
    benchmark: str
    protocol: str
    rows: list[Row]

    @property
    def anchor(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", f"{self.benchmark}-{self.protocol}".lower()).strip("-")


def pct(value: float) -> str:
    """A fraction as a percentage with two decimals, the format of every table."""
    return f"{100 * value:.2f}"


def millions(value: float | None, missing: str = "–") -> str:
    """A count in millions with two decimals (training images beside accuracy)."""
    return missing if value is None else f"{value / 1e6:.2f}M"


def _train_images(records: list[dict[str, Any]]) -> float | None:
    counts = [(r.get("compute") or {}).get("images_processed") for r in records if r["kind"] == "run"]
    counts = [c for c in counts if isinstance(c, int)]
    return statistics.fmean(counts) if counts and len(counts) == len(records) else None


def _cell(metrics: list[dict[str, Any]], key: str) -> Cell | None:
    values = [m[key] for m in metrics if isinstance(m.get(key), int | float)]
    if not values:
        return None
    std = statistics.stdev(values) if len(values) > 1 else None
    ci = None
    if key in CI_KEYS:
        intervals = [m.get(f"{key}_ci95") for m in metrics]
        if all(isinstance(i, list) and len(i) == 2 for i in intervals):
            ci = (statistics.fmean(i[0] for i in intervals), statistics.fmean(i[1] for i in intervals))
    return Cell(statistics.fmean(values), std, ci)


def _per_class(metrics: list[dict[str, Any]]) -> PerClass | None:
    counts = metrics[0].get("train_count_per_class")
    usable = [m.get("acc_per_class") for m in metrics if counts and m.get("train_count_per_class") == counts]
    if len(usable) != len(metrics) or any(not isinstance(a, list) or len(a) != len(counts) for a in usable):
        return None
    means = []
    for values in zip(*usable, strict=True):
        present = [v for v in values if v is not None]
        means.append(statistics.fmean(present) if present else None)
    return PerClass(list(counts), means)


def gpu_hours(record: dict[str, Any]) -> float | None:
    """`compute.gpu_seconds` / 3600 if recorded, else train time × `world_size` GPUs on CUDA; 0 on the CPU."""
    compute = record.get("compute")
    if not isinstance(compute, dict):
        return None
    if isinstance(compute.get("gpu_seconds"), int | float):
        return compute["gpu_seconds"] / 3600
    if not str(compute.get("device", "")).startswith("cuda"):
        return 0.0
    seconds, gpus = compute.get("train_seconds"), compute.get("world_size", record.get("world_size", 1))
    return seconds * gpus / 3600 if isinstance(seconds, int | float) else None


def _text(value: Any) -> str:
    if value is None or value == "":
        return "–"
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _provenance(record: dict[str, Any], result: dict[str, Any]) -> list[Fact]:
    """What a reader needs to trace one entry of a row back to its origin."""
    if record["kind"] == "reported":
        return [Fact("source", record["source"]), Fact("note", record["note"])]
    compute = record.get("compute") or {}
    hours = gpu_hours(record)
    on_cpu = not str(compute.get("device", "")).startswith("cuda")
    hours_text = "–" if hours is None else ("0 (CPU)" if on_cpu and hours == 0 else f"{hours:.3f}")
    images = compute.get("images_processed")
    facts = [Fact("seed", _text(record.get("seed")))]
    if record["kind"] == "submission":
        url = str(record.get("url") or "")
        facts += [
            Fact("name", _text(record.get("name"))),
            Fact("description", _text(record.get("description"))),
            Fact("url", _text(url), link=bool(re.match(r"https?://", url))),
            Fact("submitted at", _text(record.get("submitted_at"))),
        ]
    else:
        facts += [
            Fact("hyperparameters", _text(record.get("hparams"))),
            Fact("device", _text(compute.get("device"))),
            Fact("images processed", f"{images:,}" if isinstance(images, int) else "–"),
            Fact("GPU-hours", hours_text),
        ]
        if record.get("transductive"):
            adapted = result.get("adaptation")
            facts.append(Fact("transductive", "adapted to the unlabelled test inputs: " + _text(adapted)))
    facts += [
        Fact("record", _text(record.get("_path"))),
        Fact("manifest sha256", _text(record.get("manifest_sha256"))),
        Fact("git SHA", _text((record.get("environment") or {}).get("git_sha"))),
        Fact("predictions sha256", _text(result.get("predictions_sha256"))),
    ]
    return facts


def _config_key(record: dict[str, Any]) -> str:
    return json.dumps({key: record.get(key) for key in CONFIG_KEYS}, sort_keys=True, default=str)


def _build_row(entries: list[tuple[dict[str, Any], dict[str, Any]]]) -> Row:
    record = entries[0][0]
    metrics = [result.get("metrics") or {} for _, result in entries]
    seeds = sorted(r["seed"] for r, _ in entries if isinstance(r.get("seed"), int))
    return Row(
        method=str(record["method"]),
        kind=str(record["kind"]),
        seeds=seeds,
        cells={column: _cell(metrics, column) for column, _ in COLUMNS},
        provenance=[_provenance(r, result) for r, result in entries],
        per_class=_per_class(metrics),
        train_images=_train_images([r for r, _ in entries]),
    )


def _overrides(record: dict[str, Any]) -> str | None:
    """A run's hyperparameters that differ from its method's registered defaults, as `key=value`."""
    if record["kind"] != "run" or record["method"] not in METHOD_DEFAULTS:
        return None
    defaults = METHOD_DEFAULTS[record["method"]]
    changed = {k: v for k, v in (record.get("hparams") or {}).items() if defaults.get(k) != v}
    return " ".join(f"{k}={v}" for k, v in sorted(changed.items())) or None


def _sort_key(row: Row) -> tuple[float, str]:
    acc = row.cells["acc"]
    return (-acc.mean if acc else float("inf"), row.label)


def leaderboard_tables(records: list[dict[str, Any]]) -> list[Table]:
    """Tables ordered by benchmark, then protocol; rows by accuracy, best first."""
    groups: dict[tuple[str, str], dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for record in records:
        for result in record["results"]:
            groups[(record["benchmark"], result["protocol"])][_config_key(record)].append((record, result))
    order = {name: i for i, name in enumerate(PROTOCOLS)}
    tables = []
    for benchmark, protocol in sorted(groups, key=lambda k: (k[0], order.get(k[1], len(order)), k[1])):
        rows = {key: _build_row(entries) for key, entries in groups[(benchmark, protocol)].items()}
        names = [(row.method, row.kind) for row in rows.values()]
        for key, row in rows.items():
            if names.count((row.method, row.kind)) > 1:
                row.variant = _overrides(groups[(benchmark, protocol)][key][0][0])
        labels = [row.label for row in rows.values()]
        for key, row in rows.items():
            if labels.count(row.label) > 1:  # same overrides, another recipe, rule or manifest
                row.variant = f"{row.variant or ''} #{hashlib.sha256(key.encode()).hexdigest()[:6]}".strip()
        tables.append(Table(benchmark, protocol, sorted(rows.values(), key=_sort_key)))
    return tables
