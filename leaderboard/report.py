"""The leaderboard report: one self-contained HTML page plus Markdown, CSV and LaTeX exports.

A pure function of the records and the paper's reported numbers (`leaderboard.reference`): no clock,
no network. The page inlines its style, script and figures; a Content-Security-Policy allows only that
exact style and script (by hash) and data: images, so the page loads nothing and runs nothing else.
Jinja2 autoescapes every string from the records.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from benchmark.atomic import write_text
from benchmark.metrics import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED
from benchmark.protocols import PROTOCOLS
from leaderboard.exports import to_csv, to_latex, to_markdown
from leaderboard.plots import table_plots
from leaderboard.reference import reference_records
from leaderboard.tables import CI_KEYS, COLUMNS, Table, leaderboard_tables, millions, pct

EXPORTS = {"leaderboard.md": to_markdown, "leaderboard.csv": to_csv, "leaderboard.tex": to_latex}


def report_tables(records: list[dict[str, Any]]) -> list[Table]:
    """The leaderboard's tables: the records' rows with the paper's reported rows merged in."""
    return leaderboard_tables([*records, *reference_records()])


def _policy(style: str, script: str) -> str:
    """A Content-Security-Policy allowing data: images and exactly these inline style and script."""

    def source(text: str) -> str:
        return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode("ascii") + "'"

    return (
        f"default-src 'none'; img-src data:; style-src {source(style)}; script-src {source(script)}; "
        "base-uri 'none'; form-action 'none'"
    )


def render_html(tables: list[Table]) -> str:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("leaderboard", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["pct"] = pct
    env.filters["millions"] = millions
    style = env.get_template("style.css.j2").render()
    script = env.get_template("sort.js.j2").render()
    return env.get_template("leaderboard.html.j2").render(
        sections=[(table, table_plots(table)) for table in tables],
        own_rows=any(row.kind != "reported" for table in tables for row in table.rows),
        columns=COLUMNS,
        ci_keys=CI_KEYS,
        protocols=PROTOCOLS,
        resamples=BOOTSTRAP_RESAMPLES,
        seed=BOOTSTRAP_SEED,
        style=Markup(style),
        script=Markup(script),
        policy=Markup(_policy(style, script)),
    )


def write_report(records: list[dict[str, Any]], out: str | Path) -> Path:
    """Write `index.html` and the exports into `out`, each atomically; returns the page's path."""
    tables = report_tables(records)
    out = Path(out)
    write_text(out / "index.html", render_html(tables))
    for name, export in EXPORTS.items():
        write_text(out / name, export(tables))
    return out / "index.html"
