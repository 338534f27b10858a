"""Leaderboard tables, a pure function of the records (and, optionally, of re-scoring checks).

A row is one configuration with one entry per record, i.e. per seed: a run's method, hyperparameters,
recipe, selection rule, manifest and `--from` source; a submission's name; a reported row's method
and source. Each metric cell is the mean and sample std over those records; the bootstrap 95%
interval of a multi-seed row is the mean of the records' interval endpoints (the test-sample
uncertainty of one typical seed; the std carries the seed-to-seed spread), shown only when every
record has one.

Tables come per benchmark × protocol; an `Overview` per benchmark puts each configuration's CLT,
GLT and ALT side by side with its ranks, the GLT − CLT shift and the rank changes, and pairs every
reproduced row with the paper's reported row of the same method (`reference.identity`).

Records may come from anyone: every text is made printable (lone surrogates and control characters
become U+FFFD), every number must be finite to count, and a record whose shape is wrong is skipped
with a warning naming its file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import statistics
import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from benchmark.catalog import METHOD_DEFAULTS
from benchmark.protocols import PROTOCOLS
from leaderboard.reference import identity
from leaderboard.significance import Comparison, corrected, paired_bootstrap

log = logging.getLogger("glt_bench")

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
OVERVIEW_COLUMNS = (
    ("acc", "Acc"),
    ("prec", "Prec"),
    ("acc_few", "Few acc"),
    ("acc_worst_att", "Worst-att acc"),
)
CALIBRATION_SUBSETS = (
    ("", "all"),
    ("_many", "many"),
    ("_medium", "medium"),
    ("_few", "few"),
    ("_att0", "att0"),
    ("_att1", "att1"),
    ("_att2", "att2"),
)
CALIBRATION_METRICS = (("ece", "ECE"), ("nll", "NLL"), ("brier", "Brier"))
CALIBRATION_COLUMNS = tuple(
    (f"{m}{s}", f"{label} {name}") for m, label in CALIBRATION_METRICS for s, name in CALIBRATION_SUBSETS
)
CI_KEYS = ("acc", "prec", "f1")
KINDS = ("run", "submission", "reported")
LEVELS = {"reported": "reported", "submission": "submitted", "run": "trained here"}
RESCORED = "re-scored"
TRAIN_SPLITS = {"train_glt": "Train-GLT", "train_cbl": "Train-CBL"}
BASELINE = "Baseline"


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


@dataclass(frozen=True)
class Reliability:
    """Reliability bins summed over seeds: count, mean confidence and accuracy per bin."""

    count: list[int]
    confidence: list[float | None]
    accuracy: list[float | None]


@dataclass(frozen=True)
class PaperDelta:
    """A reproduced row against the reported row of the same method: this row − the paper's."""

    label: str
    acc: float | None
    prec: float | None


@dataclass
class Row:
    key: str  # the configuration, stable across the protocols of one benchmark
    method: str
    kind: str  # run | submission | reported
    seeds: list[int]
    cells: dict[str, Cell | None]
    provenance: list[list[Fact]]  # one list per record, in seed order
    per_class: PerClass | None
    label: str = ""
    paths: list[str] = field(default_factory=list)  # each entry's record path, in seed order
    details: list[str] = field(default_factory=list)  # declared method, training split, --from source
    links: list[Fact] = field(default_factory=list)  # paper and code links
    caveats: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    conflict: str | None = None  # another paper's value for this cell
    identity: str | None = None  # the canonical (paper) method name
    train_images: float | None = None  # mean over seeds of the training images processed (runs)
    reliability: Reliability | None = None
    rescored: bool | None = None  # every entry re-scored equal (None: not checked)
    correct: np.ndarray | None = None  # per-sample correctness, mean over seeds (when re-scored)
    rank: int | None = None
    paper: PaperDelta | None = None
    vs_baseline: Comparison | None = None

    @property
    def level(self) -> str:
        """reported, submitted, re-scored (a submission whose stored file re-scores equal) or trained here."""
        if self.kind == "submission" and self.rescored:
            return RESCORED
        return LEVELS.get(self.kind, self.kind)

    @property
    def anchor(self) -> str:
        return "row-" + hashlib.sha256(self.key.encode()).hexdigest()[:10]


@dataclass
class Table:
    benchmark: str
    protocol: str
    rows: list[Row]
    baseline: str | None = None  # label of the row the significance tests compare with

    @property
    def anchor(self) -> str:
        return slug(f"{self.benchmark}-{self.protocol}")

    def best(self, key: str, *, lowest: bool = False) -> float | None:
        """The best mean of a column among own rows (runs and submissions), else among reported rows."""
        own = [r for r in self.rows if r.kind != "reported"] or self.rows
        values = [r.cells[key].mean for r in own if r.cells.get(key) is not None]
        return (min if lowest else max)(values) if values else None

    @property
    def calibrated(self) -> bool:
        return any(row.cells.get("ece") is not None for row in self.rows)


@dataclass
class OverviewRow:
    label: str
    kind: str
    rows: dict[str, Row]  # by protocol

    @property
    def first(self) -> Row:
        return next(iter(self.rows.values()))

    def shift(self, key: str) -> float | None:
        """GLT − CLT of a metric's mean."""
        clt, glt = self.rows.get("clt"), self.rows.get("glt")
        if clt is None or glt is None or clt.cells.get(key) is None or glt.cells.get(key) is None:
            return None
        return glt.cells[key].mean - clt.cells[key].mean

    def rank_change(self, before: str, after: str) -> int | None:
        """Places gained from protocol `before` to `after` (positive: moved up)."""
        a, b = self.rows.get(before), self.rows.get(after)
        return None if a is None or b is None or a.rank is None or b.rank is None else a.rank - b.rank


@dataclass
class Overview:
    benchmark: str
    protocols: list[str]
    groups: list[list[OverviewRow]]  # a reproduced row first, then the reported rows paired with it
    tables: dict[str, Table]

    @property
    def anchor(self) -> str:
        return slug(f"{self.benchmark}-overview")

    def best(self, protocol: str, key: str) -> float | None:
        return self.tables[protocol].best(key)


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def pct(value: float) -> str:
    """A fraction as a percentage with two decimals, the format of every table."""
    return f"{100 * value:.2f}"


def signed_pct(value: float | None, missing: str = "–") -> str:
    """A difference of fractions in percentage points with its sign (− for negative)."""
    return missing if value is None else f"{100 * value:+.2f}".replace("-", "−")


def millions(value: float | None, missing: str = "–") -> str:
    """A count in millions with two decimals (training images beside accuracy); below 10,000 in thousands."""
    if value is None:
        return missing
    return f"{value / 1e6:.2f}M" if value >= 10_000 else f"{value / 1e3:.1f}k"


# ---------------------------------------------------------------- records from anyone


def printable(text: Any) -> str:
    """Any value as display text: lone surrogates, control characters and bidirectional overrides
    (which could reorder what the page shows) become U+FFFD; whitespace controls become spaces."""
    text = text if isinstance(text, str) else json.dumps(text, sort_keys=True, default=str)
    text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return "".join(_printable_char(c) for c in text)


BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")


def _printable_char(char: str) -> str:
    if unicodedata.category(char) == "Cc":
        return " " if char.isspace() else "\ufffd"
    return "\ufffd" if char in BIDI_CONTROLS else char


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, dict):
        return {printable(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _is_url(text: str) -> bool:
    """An http(s) address without whitespace: safe to show as a link."""
    return re.match(r"https?://[^\s]+$", text) is not None


def number(value: Any) -> float | None:
    """A finite real number, else None (booleans are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _malformed(record: Any) -> str | None:
    """Why a record cannot be shown, or None."""
    if not isinstance(record, dict):
        return "not a JSON object"
    if record.get("kind") not in KINDS:
        return f"unknown kind {printable(record.get('kind'))[:40]!r}"
    for key in ("benchmark", "method"):
        if key == "method" and record["kind"] == "submission" and record.get(key) is None:
            continue  # a submission's method is what its submitter declared, possibly nothing
        if not isinstance(record.get(key), str) or not record[key]:
            return f"no {key}"
    results = record.get("results")
    if not isinstance(results, list) or not results:
        return "no results"
    for result in results:
        if not isinstance(result, dict) or not isinstance(result.get("protocol"), str):
            return "a result without a protocol"
        if not isinstance(result.get("metrics"), dict):
            return "a result without metrics"
    return None


def usable_records(records: list[Any]) -> list[dict[str, Any]]:
    """The records the board can show, text made printable; the others skipped with a warning."""
    usable = []
    for record in records:
        why = _malformed(record)
        if why:
            where = record.get("_path", "a record") if isinstance(record, dict) else "a record"
            log.warning("skipping %s: %s", printable(where), why)
            continue
        usable.append(_clean(record))
    return usable


# ---------------------------------------------------------------- cells


def _cell(metrics: list[dict[str, Any]], key: str) -> Cell | None:
    values = [v for m in metrics if (v := number(m.get(key))) is not None]
    if not values:
        return None
    std = statistics.stdev(values) if len(values) > 1 else None
    ci = None
    if key in CI_KEYS:
        intervals = [m.get(f"{key}_ci95") for m in metrics]
        if all(
            isinstance(i, list) and len(i) == 2 and all(number(e) is not None for e in i) for i in intervals
        ):
            ci = (statistics.fmean(i[0] for i in intervals), statistics.fmean(i[1] for i in intervals))
    return Cell(statistics.fmean(values), std, ci)


def _per_class(metrics: list[dict[str, Any]]) -> PerClass | None:
    counts = metrics[0].get("train_count_per_class")
    if not isinstance(counts, list) or not counts or any(number(c) is None for c in counts):
        return None
    usable = [m.get("acc_per_class") for m in metrics if m.get("train_count_per_class") == counts]
    if len(usable) != len(metrics) or any(not isinstance(a, list) or len(a) != len(counts) for a in usable):
        return None
    means = []
    for values in zip(*usable, strict=True):
        present = [v for v in values if number(v) is not None]
        means.append(statistics.fmean(present) if present else None)
    return PerClass([int(c) for c in counts], means)


def _reliability(metrics: list[dict[str, Any]]) -> Reliability | None:
    tables = [m.get("reliability") for m in metrics]
    if not all(isinstance(t, dict) for t in tables):
        return None
    try:
        count = np.array([t["count"] for t in tables], dtype=np.float64)
        conf = np.array([[c or 0 for c in t["confidence"]] for t in tables], dtype=np.float64)
        acc = np.array([[a or 0 for a in t["accuracy"]] for t in tables], dtype=np.float64)
    except (KeyError, TypeError, ValueError):
        return None
    if (
        count.ndim != 2
        or conf.shape != count.shape
        or acc.shape != count.shape
        or not np.isfinite(conf).all()
    ):
        return None
    total = count.sum(axis=0)

    def mean(values: np.ndarray) -> list[float | None]:
        weighted = (values * count).sum(axis=0)
        return [float(v / n) if n else None for v, n in zip(weighted, total, strict=True)]

    return Reliability([int(n) for n in total], mean(conf), mean(acc))


def _train_images(records: list[dict[str, Any]]) -> float | None:
    counts = [
        (r.get("compute") or {}).get("images_processed") if isinstance(r.get("compute"), dict) else None
        for r in records
        if r["kind"] == "run"
    ]
    counts = [c for c in counts if isinstance(c, int) and not isinstance(c, bool)]
    return statistics.fmean(counts) if counts and len(counts) == len(records) else None


def gpu_hours(record: dict[str, Any]) -> float | None:
    """`compute.gpu_seconds` / 3600 if recorded, else train time × `world_size` GPUs on CUDA; 0 on the CPU."""
    compute = record.get("compute")
    if not isinstance(compute, dict):
        return None
    if number(compute.get("gpu_seconds")) is not None:
        return compute["gpu_seconds"] / 3600
    if not str(compute.get("device", "")).startswith("cuda"):
        return 0.0
    seconds, gpus = (
        number(compute.get("train_seconds")),
        number(compute.get("world_size", record.get("world_size", 1))),
    )
    return seconds * gpus / 3600 if seconds is not None and gpus is not None else None


def _text(value: Any) -> str:
    if value is None or value == "":
        return "–"
    return printable(value)


def _from_run(record: dict[str, Any]) -> dict[str, Any] | None:
    source = record.get("from_run")
    return source if record["kind"] == "run" and isinstance(source, dict) else None


def _provenance(record: dict[str, Any], result: dict[str, Any]) -> list[Fact]:
    """What a reader needs to trace one entry of a row back to its origin."""
    if record["kind"] == "reported":
        facts = [Fact("source", _text(result.get("source") or record.get("source")))]
        return facts + [Fact("caveat", _text(c)) for c in record.get("caveats") or []]
    compute = record.get("compute") if isinstance(record.get("compute"), dict) else {}
    hours = gpu_hours(record)
    on_cpu = not str(compute.get("device", "")).startswith("cuda")
    hours_text = "–" if hours is None else ("0 (CPU)" if on_cpu and hours == 0 else f"{hours:.3f}")
    images = compute.get("images_processed")
    facts = [Fact("seed", _text(record.get("seed")))]
    if record["kind"] == "submission":
        url = str(record.get("url") or "")
        facts += [
            Fact("name", _text(record.get("name"))),
            Fact("declared method", _text(record.get("method"))),
            Fact("declared training split", _text(record.get("train_split"))),
            Fact("description", _text(record.get("description"))),
            Fact("url", _text(url), link=_is_url(url)),
            Fact("submitted at", _text(record.get("submitted_at"))),
        ]
    else:
        facts += [
            Fact("hyperparameters", _text(record.get("hparams"))),
            Fact("device", _text(compute.get("device"))),
            Fact("images processed", f"{images:,}" if isinstance(images, int) else "–"),
            Fact("GPU-hours", hours_text),
        ]
        source = _from_run(record)
        if source:
            origin = f"{source.get('method')} run {source.get('path')}, record {source.get('record_sha256')}"
            facts.append(Fact("stage 1 from", _text(origin)))
        if record.get("transductive"):
            adapted = result.get("adaptation")
            facts.append(Fact("transductive", "adapted to the unlabelled test inputs: " + _text(adapted)))
    facts += [
        Fact("record", _text(record.get("_path"))),
        Fact("manifest sha256", _text(record.get("manifest_sha256"))),
        Fact(
            "git SHA",
            _text(
                (record.get("environment") or {}).get("git_sha")
                if isinstance(record.get("environment"), dict)
                else None
            ),
        ),
        Fact("predictions sha256", _text(result.get("predictions_sha256"))),
    ]
    return facts


def _config_key(record: dict[str, Any]) -> str:
    """The configuration a record belongs to, the same for all its protocols and seeds."""
    kind = record["kind"]
    if kind == "submission":
        fields = {"name": record.get("name", record["method"]), "train_split": record.get("train_split")}
    elif kind == "reported":
        fields = {"method": record["method"], "source": record.get("source_name", record.get("source"))}
    else:
        source = _from_run(record)
        fields = {key: record.get(key) for key in ("method", "hparams", "recipe", "selection_rule")}
        fields["from"] = source.get("record_sha256") if source else None
    fields.update(kind=kind, manifest_sha256=record.get("manifest_sha256"))
    return json.dumps(fields, sort_keys=True, default=str)


# ---------------------------------------------------------------- labels


def _variants(configs: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Per run configuration of a method with several, the hyperparameters that differ from the
    method's registered defaults (`benchmark.catalog`, a torch-free copy), as `key=value`. A method the
    catalog does not know is compared with the most common value among its configurations instead (a
    key a record lacks counts as a value of its own that wins ties; other ties go to the value whose
    JSON sorts first)."""
    by_method: dict[str, list[str]] = defaultdict(list)
    for key, record in configs.items():
        by_method[record["method"]].append(key)
    variants = {}
    for method, keys in by_method.items():
        if len(keys) < 2:
            continue
        hparams = {k: h if isinstance(h := configs[k].get("hparams"), dict) else {} for k in keys}
        if method in METHOD_DEFAULTS:
            common = {
                name: json.dumps(value, sort_keys=True) for name, value in METHOD_DEFAULTS[method].items()
            }
        else:
            common = {}
            for name in sorted({n for h in hparams.values() for n in h}):
                counts = Counter(
                    json.dumps(h[name], sort_keys=True) if name in h else "" for h in hparams.values()
                )
                common[name] = min(counts, key=lambda value: (-counts[value], value))  # "" (absent) first
        for k in keys:
            changed = {n: v for n, v in hparams[k].items() if json.dumps(v, sort_keys=True) != common.get(n)}
            variants[k] = " ".join(
                f"{n}={printable(v if isinstance(v, str) else str(v))}" for n, v in sorted(changed.items())
            )
    return variants


def _base_label(record: dict[str, Any], variant: str) -> str:
    if record["kind"] == "submission":
        return printable(record.get("name") or record["method"])
    if record["kind"] == "reported":
        return record["method"]
    label = f"{record['method']} {variant}".strip()
    source = _from_run(record)
    if source:
        label += f" ← {printable(source.get('method'))} run {printable(source.get('record_sha256'))[:8]}"
    return label


def _labels(configs: dict[str, dict[str, Any]]) -> dict[str, str]:
    """A distinct label per configuration of one benchmark."""
    variants = _variants({k: r for k, r in configs.items() if r["kind"] == "run"})
    labels = {key: _base_label(record, variants.get(key, "")) for key, record in configs.items()}
    counts = Counter(labels.values())
    for key, record in configs.items():
        if counts[labels[key]] > 1 and record["kind"] == "reported":
            labels[key] += f" ({record.get('source_name')})"
    counts = Counter(labels.values())
    for key in configs:
        if counts[labels[key]] > 1:  # same label: another kind, recipe, rule or manifest
            labels[key] += f" #{hashlib.sha256(key.encode()).hexdigest()[:6]}"
    return labels


# ---------------------------------------------------------------- rows


def _details(record: dict[str, Any], protocol: str) -> tuple[list[str], list[str]]:
    """What the row says under its label, and its warning flags."""
    details, flags = [], []
    if record["kind"] == "submission":
        declared = record.get("method")
        if declared and declared != record.get("name"):
            details.append(f"method: {declared}")
        split = record.get("train_split")
        if split:
            details.append(f"declared trained on {TRAIN_SPLITS.get(split, split)}")
            expected = "train_cbl" if protocol == "alt" else "train_glt"
            if split != expected:
                flags.append(
                    f"declared {TRAIN_SPLITS.get(split, split)}, but {protocol.upper()} "
                    f"trains on {TRAIN_SPLITS[expected]}"
                )
        else:
            details.append("training split not declared")
    if record.get("transductive"):
        details.append("transductive")
    return details, flags


def _build_row(key: str, entries: list[tuple[dict[str, Any], dict[str, Any]]]) -> Row:
    entries = sorted(
        entries,
        key=lambda e: (
            number(e[0].get("seed")) is None,
            number(e[0].get("seed")) or 0,
            str(e[0].get("_path")),
        ),
    )
    record = entries[0][0]
    protocol = entries[0][1]["protocol"]
    metrics = [result["metrics"] for _, result in entries]
    seeds = [
        r["seed"] for r, _ in entries if isinstance(r.get("seed"), int) and not isinstance(r["seed"], bool)
    ]
    details, flags = _details(record, protocol)
    hashes = [result.get("predictions_sha256") for _, result in entries if result.get("predictions_sha256")]
    if len(set(hashes)) < len(hashes):
        flags.append("the same predictions file under several seeds")
    from_method = (_from_run(record) or {}).get("method")
    row = Row(
        key=key,
        method=printable(record.get("method") or record.get("name")),
        kind=record["kind"],
        seeds=sorted(seeds),
        cells={column: _cell(metrics, column) for column, _ in (*COLUMNS, *CALIBRATION_COLUMNS)},
        provenance=[_provenance(r, result) for r, result in entries],
        paths=[str(r.get("_path")) for r, _ in entries],
        per_class=_per_class(metrics),
        details=details,
        flags=flags + [printable(f) for f in record.get("flags") or [] if record["kind"] == "reported"],
        caveats=[printable(c) for c in record.get("caveats") or []] if record["kind"] == "reported" else [],
        identity=record.get("identity")
        if record["kind"] == "reported"
        else identity(
            record.get("method") if record["kind"] == "run" else record.get("method") or record.get("name"),
            record.get("hparams"),
            from_method,
        ),
        train_images=_train_images([r for r, _ in entries]),
        reliability=_reliability(metrics),
    )
    if record["kind"] == "reported":
        row.links = [
            Fact(printable(link.get("label")), printable(link.get("url")), link=True)
            for link in record.get("links") or []
            if isinstance(link, dict) and _is_url(str(link.get("url", "")))
        ]
        conflicts = record.get("conflicts") if isinstance(record.get("conflicts"), dict) else {}
        row.conflict = conflicts.get(protocol)
    elif record["kind"] == "submission":
        url = str(record.get("url") or "")
        if _is_url(url):
            row.links = [Fact("link", printable(url), link=True)]
    return row


def _rank(rows: list[Row]) -> None:
    """Competition ranks by accuracy (1, 2, 2, 4), own rows and reported rows ranked apart."""
    for own in (True, False):
        chosen = [r for r in rows if (r.kind != "reported") == own and r.cells["acc"] is not None]
        for row in chosen:
            row.rank = 1 + sum(other.cells["acc"].mean > row.cells["acc"].mean for other in chosen)


def _pair_with_paper(rows: list[Row]) -> None:
    reported: dict[str, Row] = {}
    for row in rows:
        if row.kind == "reported" and row.identity and row.identity not in reported:
            reported[row.identity] = row
    for row in rows:
        paper = reported.get(row.identity) if row.kind != "reported" else None
        if paper is None:
            continue
        deltas = [
            None
            if row.cells[k] is None or paper.cells[k] is None
            else row.cells[k].mean - paper.cells[k].mean
            for k in ("acc", "prec")
        ]
        row.paper = PaperDelta(paper.label, *deltas)


def _flag_identical_predictions(rows: list[Row], hashes: dict[str, set[str]]) -> None:
    owners: dict[str, list[str]] = defaultdict(list)
    for row in rows:
        for digest in hashes.get(row.key, ()):
            owners[digest].append(row.label)
    for row in rows:
        twins = sorted({label for d in hashes.get(row.key, ()) for label in owners[d] if label != row.label})
        if twins:
            row.flags.append("identical predictions to " + ", ".join(twins))


def _compare_with_baseline(table: Table) -> None:
    """Each re-scored row against the benchmark's Baseline (CE) run, Holm-corrected over the table."""
    candidates = [
        r for r in table.rows if r.identity == BASELINE and r.kind == "run" and r.correct is not None
    ]
    if not candidates:
        return
    baseline = min(candidates, key=lambda r: (r.label != "ce", -len(r.seeds), r.label))
    table.baseline = baseline.label
    others = [
        r
        for r in table.rows
        if r is not baseline and r.correct is not None and r.correct.shape == baseline.correct.shape
    ]
    results = corrected([paired_bootstrap(r.correct, baseline.correct) for r in others])
    for row, comparison in zip(others, results, strict=True):
        row.vs_baseline = comparison


def _apply_checks(row: Row, found: list) -> None:
    """Mark a row re-scored when every entry re-scored equal; keep its mean per-sample correctness
    when every entry has one, of one length."""
    row.rescored = all(c is not None and c.status == "equal" for c in found)
    if (
        all(c is not None and c.correct is not None for c in found)
        and len({c.correct.shape for c in found}) == 1
    ):
        row.correct = np.mean([c.correct for c in found], axis=0)


def _sort_key(row: Row) -> tuple[float, str]:
    acc = row.cells["acc"]
    return (-acc.mean if acc else float("inf"), row.label)


def leaderboard_tables(records: list[dict[str, Any]], checks: dict | None = None) -> list[Table]:
    """Tables ordered by benchmark, then protocol; rows by accuracy, best first.

    `checks` (from `leaderboard.verify.Verifier.check_all`) marks rows whose stored predictions
    re-score equal and gives the per-sample correctness for the significance tests.
    """
    records = usable_records(records)
    groups: dict[tuple[str, str], dict[str, list]] = defaultdict(lambda: defaultdict(list))
    configs: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for record in records:
        key = _config_key(record)
        configs[record["benchmark"]].setdefault(key, record)
        for result in record["results"]:
            groups[(record["benchmark"], result["protocol"])][key].append((record, result))
    labels = {benchmark: _labels(found) for benchmark, found in configs.items()}
    order = {name: i for i, name in enumerate(PROTOCOLS)}
    tables = []
    for benchmark, protocol in sorted(groups, key=lambda k: (k[0], order.get(k[1], len(order)), k[1])):
        found = groups[(benchmark, protocol)]
        rows = []
        hashes = {}
        for key, entries in found.items():
            row = _build_row(key, entries)
            row.label = labels[benchmark][key]
            hashes[key] = {
                str(r.get("predictions_sha256")) for _, r in entries if r.get("predictions_sha256")
            }
            if checks is not None and row.kind != "reported":
                _apply_checks(row, [checks.get((str(rec.get("_path")), protocol)) for rec, _ in entries])
            rows.append(row)
        _rank(rows)
        _pair_with_paper(rows)
        _flag_identical_predictions(rows, hashes)
        table = Table(benchmark, protocol, sorted(rows, key=_sort_key))
        _compare_with_baseline(table)
        tables.append(table)
    return tables


def _overview_order(line: OverviewRow) -> tuple:
    """Own lines before reported ones, then by GLT (else CLT, else ALT) accuracy, best first."""
    for index, protocol in enumerate(("glt", "clt", "alt")):
        row = line.rows.get(protocol)
        if row is not None and row.cells["acc"] is not None:
            return (line.kind == "reported", index, -row.cells["acc"].mean, line.label)
    return (line.kind == "reported", 3, 0.0, line.label)


def overviews(tables: list[Table]) -> list[Overview]:
    """One overview per benchmark: a line per configuration with its protocols side by side, in GLT
    (else CLT, else ALT) accuracy order; each reported row follows the best reproduction of its method."""
    by_benchmark: dict[str, dict[str, Table]] = defaultdict(dict)
    for table in tables:
        by_benchmark[table.benchmark][table.protocol] = table
    out = []
    for benchmark, found in by_benchmark.items():
        protocols = [p for p in PROTOCOLS if p in found]
        lines: dict[str, OverviewRow] = {}
        for protocol in protocols:
            for row in found[protocol].rows:
                lines.setdefault(row.key, OverviewRow(row.label, row.kind, {})).rows[protocol] = row
        ordered = sorted(lines.values(), key=_overview_order)
        groups: list[list[OverviewRow]] = []
        leader: dict[str, list[OverviewRow]] = {}
        for line in ordered:
            ident = line.first.identity
            if line.kind == "reported" and ident in leader:
                leader[ident].append(line)
                continue
            groups.append([line])
            if line.kind != "reported" and ident and ident not in leader:
                leader[ident] = groups[-1]
        out.append(Overview(benchmark, protocols, groups, found))
    return out
