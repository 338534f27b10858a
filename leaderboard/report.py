"""The leaderboard report: one self-contained HTML page plus Markdown, CSV and LaTeX exports.

A pure function of the records, the paper's reported numbers (`leaderboard.reference`), the optional
re-scoring checks and benchmark cards (`--manifests`), and a stamp (generation date and commit) given
by the caller: no clock, no network. The page inlines its style, script and figures; a
Content-Security-Policy allows only that exact style and script (by hash) and data: images, so the
page loads nothing and runs nothing else. Jinja2 autoescapes every string from the records.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from benchmark.atomic import write_text
from benchmark.metrics import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, ECE_BINS
from benchmark.protocols import PROTOCOLS
from benchmark.provenance import git_sha
from leaderboard.exports import to_csv, to_latex, to_markdown
from leaderboard.plots import table_plots
from leaderboard.reference import DOC, reference_records
from leaderboard.significance import ALPHA, RESAMPLES
from leaderboard.tables import (
    CALIBRATION_COLUMNS,
    CI_KEYS,
    COLUMNS,
    OVERVIEW_COLUMNS,
    Table,
    leaderboard_tables,
    millions,
    overviews,
    pct,
    printable,
    signed_pct,
)

EXPORTS = {  # file name: (format, writer)
    "leaderboard.md": ("Markdown", to_markdown),
    "leaderboard.csv": ("CSV", to_csv),
    "leaderboard.tex": ("LaTeX", to_latex),
}


@dataclass(frozen=True)
class Stamp:
    """When and from which code the page was generated."""

    date: str
    commit: str


def current_stamp() -> Stamp:
    """Now in UTC (or SOURCE_DATE_EPOCH, for reproducible builds) and the code's git SHA."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    now = dt.datetime.fromtimestamp(int(epoch), dt.timezone.utc) if epoch and epoch.isdigit() else None
    now = now or dt.datetime.now(dt.timezone.utc)
    return Stamp(now.strftime("%Y-%m-%d %H:%M UTC"), git_sha())


def report_tables(records: list[dict[str, Any]], checks: dict | None = None) -> list[Table]:
    """The leaderboard's tables: the records' rows with the paper's reported rows merged in."""
    return leaderboard_tables([*records, *reference_records()], checks)


def benchmark_cards(manifest_dir: str | Path, benchmarks: list[str]) -> dict[str, list[tuple[str, str]]]:
    """Each benchmark's card (`metadata["card"]` of its manifest) as key/value text; absent ones skipped."""
    cards = {}
    for benchmark in benchmarks:
        try:
            meta = json.loads((Path(manifest_dir) / benchmark / "metadata.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        card = meta.get("card") if isinstance(meta, dict) else None
        if isinstance(card, dict) and card:
            cards[benchmark] = [(printable(k), printable(v)) for k, v in card.items()]
    return cards


def _policy(style: str, script: str) -> str:
    """A Content-Security-Policy allowing data: images and exactly these inline style and script."""

    def source(text: str) -> str:
        return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode("ascii") + "'"

    return (
        f"default-src 'none'; img-src data:; style-src {source(style)}; script-src {source(script)}; "
        "base-uri 'none'; form-action 'none'"
    )


def render_html(
    tables: list[Table], stamp: Stamp, *, cards: dict | None = None, checked: bool = False, records: int = 0
) -> str:
    """The page. `checked`: the stored predictions were re-scored (levels and significance are known)."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("leaderboard", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["pct"] = pct
    env.filters["signed"] = signed_pct
    env.filters["millions"] = millions
    style = env.get_template("style.css.j2").render()
    script = env.get_template("sort.js.j2").render()
    boards = overviews(tables)
    return env.get_template("leaderboard.html.j2").render(
        boards=boards,
        sections={(t.benchmark, t.protocol): (t, table_plots(t)) for t in tables},
        own_rows=any(row.kind != "reported" for table in tables for row in table.rows),
        columns=COLUMNS,
        overview_columns=OVERVIEW_COLUMNS,
        calibration_columns=CALIBRATION_COLUMNS,
        ci_keys=CI_KEYS,
        protocols=PROTOCOLS,
        resamples=BOOTSTRAP_RESAMPLES,
        seed=BOOTSTRAP_SEED,
        sig_resamples=RESAMPLES,
        alpha=ALPHA,
        ece_bins=ECE_BINS,
        cards=cards or {},
        checked=checked,
        stamp=stamp,
        records=records,
        doc=DOC,
        exports=[(name, label) for name, (label, _) in EXPORTS.items()],
        style=Markup(style),
        script=Markup(script),
        policy=Markup(_policy(style, script)),
    )


def write_report(
    records: list[dict[str, Any]],
    out: str | Path,
    stamp: Stamp,
    *,
    runs_dir: str | Path | None = None,
    manifest_dir: str | Path | None = None,
) -> Path:
    """Write `index.html` and the exports into `out`, each atomically; returns the page's path.

    With `manifest_dir` (and the `runs_dir` the records came from) every stored predictions file is
    re-scored: rows get their verification level and the significance tests against the Baseline.
    """
    checks, cards = None, None
    if manifest_dir is not None:
        from leaderboard.verify import Verifier

        checks = Verifier(runs_dir or ".", manifest_dir).check_all(records)
        cards = benchmark_cards(manifest_dir, sorted({str(r.get("benchmark")) for r in records}))
    tables = report_tables(records, checks)
    out = Path(out)
    page = render_html(tables, stamp, cards=cards, checked=checks is not None, records=len(records))
    write_text(out / "index.html", page)
    for name, (_, export) in EXPORTS.items():
        write_text(out / name, export(tables))
    return out / "index.html"
