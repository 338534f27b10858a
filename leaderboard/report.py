"""The leaderboard: tables computed from records (a pure function), rendered to one HTML page."""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2

from benchmark.atomic import write_text
from benchmark.protocols import PROTOCOLS

COLUMNS = (
    ("acc", "Accuracy"),
    ("prec", "Precision"),
    ("f1", "F1"),
    ("acc_many", "Many acc"),
    ("acc_medium", "Medium acc"),
    ("acc_few", "Few acc"),
    ("acc_worst_att", "Worst-attr acc"),
)


@dataclass
class Row:
    method: str
    kind: str
    seeds: list[int]
    cells: dict[str, tuple[float, float | None] | None]  # metric → (mean, std over seeds or None)


@dataclass
class Table:
    benchmark: str
    protocol: str
    rows: list[Row] = field(default_factory=list)


def _mean_std(values: list[float | None]) -> tuple[float, float | None] | None:
    """Mean and sample std of the values present; std is None for a single value."""
    present = [v for v in values if v is not None]
    if not present:
        return None
    return statistics.fmean(present), statistics.stdev(present) if len(present) > 1 else None


def leaderboard_tables(records: list[dict[str, Any]]) -> list[Table]:
    """One table per benchmark × protocol; a row per method configuration, averaged over seeds."""
    groups: dict[tuple[str, str], dict[tuple, list[tuple[int, dict]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for record in records:
        config = (record["method"], record["kind"], repr(sorted(record.get("hparams", {}).items())),
                  record.get("manifest_sha256"))  # fmt: skip
        for result in record["results"]:
            groups[(record["benchmark"], result["protocol"])][config].append(
                (record["seed"], result["metrics"])
            )
    order = list(PROTOCOLS)
    tables = []
    for benchmark, protocol in sorted(
        groups, key=lambda k: (k[0], order.index(k[1]) if k[1] in order else 99)
    ):
        table = Table(benchmark, protocol)
        for (method, kind, _, _), runs in groups[(benchmark, protocol)].items():
            cells = {key: _mean_std([m.get(key) for _, m in runs]) for key, _ in COLUMNS}
            table.rows.append(Row(method, kind, sorted(seed for seed, _ in runs), cells))
        table.rows.sort(key=lambda row: -(row.cells["acc"] or (-1.0, 0))[0])
        tables.append(table)
    return tables


def render_html(tables: list[Table]) -> str:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("leaderboard", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    return env.get_template("leaderboard.html.j2").render(tables=tables, columns=COLUMNS, protocols=PROTOCOLS)


def write_report(records: list[dict[str, Any]], out: Path) -> Path:
    target = Path(out) / "index.html"
    write_text(target, render_html(leaderboard_tables(records)))
    return target
