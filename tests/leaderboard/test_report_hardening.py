"""The report against hostile records: spreadsheet formulas in the CSV (checked with Python's csv
and, where installed, LibreOffice), LaTeX that must compile with pdflatex whatever the names, any
Unicode in the page and the plots, and malformed records skipped with a warning naming the file."""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import shutil
import subprocess
from pathlib import Path

import pytest

from leaderboard.exports import csv_text, latex_escape
from leaderboard.plots import table_plots
from leaderboard.report import write_report
from leaderboard.store import load_records
from leaderboard.tables import leaderboard_tables

HOSTILE = (
    "team\r=cmd|' /C calc'!A0",
    "a\n@SUM(1+1)*cmd|' /C calc'!A0",
    '\u2028+HYPERLINK("http://x")',
    "[oops]x",
    "[5cm]hidden",
    "Zürich naïve ﬁ 中文 🙂 ضد",
    "bad\udcffname\u202egnp.exe",
    "_leading underscore",
)


def hostile_records(make_record, make_metrics) -> list[dict]:
    """A submission per hostile name, with calibration data so that every figure draws its legend."""
    records = []
    for seed, name in enumerate(HOSTILE):
        metrics = make_metrics(0.3 + 0.05 * seed, 0.4)
        metrics.update(ece=0.1, nll=1.2, brier=0.5)
        metrics["reliability"] = {
            "count": [0] * 12 + [5, 5, 10],
            "confidence": [None] * 12 + [0.85, 0.9, 0.99],
            "accuracy": [None] * 12 + [0.6, 0.8, 0.9],
        }
        records.append(
            make_record(
                name,
                seed,
                {"glt": metrics},
                kind="submission",
                name=name,
                description=name,
                url="https://example.org/" + name,
                train_split="train_glt",
            )
        )
    return records


@pytest.fixture
def site_of(tmp_path: Path, stamp, make_record, make_metrics):
    out = tmp_path / "site"
    write_report(hostile_records(make_record, make_metrics), out, stamp)
    return out


def test_csv_fields_are_quoted_one_line_and_never_formulas(site_of):
    raw = site_of.joinpath("leaderboard.csv").read_text(encoding="utf-8")
    rows = list(csv.reader(io.StringIO(raw)))
    assert len(raw.splitlines()) == len(rows)  # no field spans lines: a bare CR never starts a new row
    header, *body = rows
    ours = [row for row in body if row[0] == "fashion-glt"]
    assert len(ours) == len(HOSTILE)
    for row in ours:
        for field in row:
            assert "\r" not in field and "\n" not in field and "\u2028" not in field
            assert not field.startswith(("=", "+", "-", "@")), field
    labels = {row[header.index("method")] for row in ours}
    assert "'=cmd|' /C calc'!A0" not in labels and "team =cmd|' /C calc'!A0" in labels
    assert '\'+HYPERLINK("http://x")' in labels  # the line separator folded away, the + defused
    line = next(line for line in raw.splitlines() if "HYPERLINK" in line)
    assert line.startswith('"fashion-glt","glt","\'+HYPERLINK')
    assert ',"submitted","",6,"2","",40.00,"",38.00,' in line  # text quoted, numbers not


def test_csv_text_neutralises_formulas_after_any_line_break():
    assert csv_text("x\r\n=1+1") == "x =1+1" and csv_text("\n=1+1") == "'=1+1" and csv_text("-2") == "'-2"
    assert csv_text(" \t@x") == "'@x" and csv_text("plain") == "plain"


@pytest.mark.skipif(shutil.which("soffice") is None, reason="LibreOffice (soffice) is not installed")
def test_libreoffice_evaluates_no_formula_of_the_export(site_of, tmp_path):
    control = tmp_path / "control.csv"
    control.write_text('name,value\n"=1+41",1\n', encoding="utf-8")  # proves the import evaluates formulas
    target = tmp_path / "board.csv"
    shutil.copy(site_of / "leaderboard.csv", target)
    profile = tmp_path / "lo-profile"
    subprocess.run(
        [
            "soffice",
            f"-env:UserInstallation=file://{profile}",
            "--headless",
            "--convert-to",
            "fods",
            "--outdir",
            str(tmp_path),
            str(control),
            str(target),
        ],
        check=True,
        capture_output=True,
        timeout=180,
    )
    assert "table:formula" in (tmp_path / "control.fods").read_text(encoding="utf-8")
    sheet = (tmp_path / "board.fods").read_text(encoding="utf-8")
    assert "table:formula" not in sheet and "HYPERLINK" in sheet


def test_latex_is_ascii_and_guards_rows_that_start_with_a_bracket(site_of):
    tex = site_of.joinpath("leaderboard.tex").read_text(encoding="utf-8")
    assert tex.isascii()
    rows = [line for line in tex.splitlines() if line.endswith(r"\\")]
    assert rows and all(line.startswith("{}") for line in rows)
    assert r"{}[5cm]hidden &" in tex and r"{}[oops]x &" in tex
    assert latex_escape("Zürich naïve ﬁ 中文 🙂") == "Zurich naive fi (U+4E2D)(U+6587) (U+1F642)"
    assert latex_escape("a → b ± c – d") == r"a $\rightarrow$ b $\pm$ c -- d"


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex (texlive-latex-base) is not installed")
def test_latex_export_compiles_with_pdflatex(site_of, tmp_path):
    shutil.copy(site_of / "leaderboard.tex", tmp_path / "leaderboard.tex")
    (tmp_path / "doc.tex").write_text(
        "\\documentclass{article}\n\\usepackage{booktabs,graphicx}\n\\begin{document}\n"
        "\\input{leaderboard.tex}\n\\end{document}\n",
        encoding="ascii",
    )
    done = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "doc.tex"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout[-2000:]
    assert (tmp_path / "doc.pdf").stat().st_size > 1000


def test_any_unicode_renders_in_the_page_and_the_plots(site_of, make_record, make_metrics):
    html = site_of.joinpath("index.html").read_bytes().decode("utf-8")  # valid UTF-8 throughout
    assert "Zürich naïve ﬁ 中文 🙂 ضد" in html and "bad\ufffdname\ufffdgnp.exe" in html
    (table,) = leaderboard_tables(hostile_records(make_record, make_metrics))
    assert len(table_plots(table)) == 5


def write_records(folder: Path, records: list) -> None:
    for index, record in enumerate(records):
        (folder / f"r{index:02d}").mkdir(parents=True)
        text = record if isinstance(record, str) else json.dumps(record)
        (folder / f"r{index:02d}" / "record.json").write_text(text, encoding="utf-8")


def test_malformed_records_are_skipped_with_a_warning_naming_the_file(
    tmp_path, make_record, make_metrics, stamp, caplog
):
    good = make_record("ce", 0, {"clt": make_metrics(0.5, 0.5)})
    good.pop("_path")
    broken = [
        {**good, "results": [{}]},
        {**good, "results": "none"},
        {**good, "kind": "forged"},
        {**good, "method": 7},
        {**good, "results": [{"protocol": "clt", "metrics": None}]},
    ]
    odd_values = {
        **good,
        "seed": 5,
        "hparams": ["not", "a", "dict"],
        "compute": "cpu",
        "environment": None,
        "results": [
            {
                "protocol": "clt",
                "metrics": {
                    "acc": "high",
                    "prec": [1],
                    "f1": True,
                    "acc_many": {"x": 1},
                    "acc_ci95": ["a", None],
                    "acc_per_class": {},
                    "train_count_per_class": "x",
                    "reliability": {"count": "x"},
                },
            }
        ],
    }
    write_records(tmp_path / "runs", [good, *broken])
    with caplog.at_level(logging.WARNING, logger="glt_bench"):
        stored = load_records(tmp_path / "runs")
        # The store checks what it loads; the report checks again whatever it is handed.
        page = write_report([*stored, *broken, odd_values], tmp_path / "site", stamp).read_text(
            encoding="utf-8"
        )
    skipped = [m for m in caplog.messages if m.startswith("skipping")]
    assert len(skipped) == 2 * len(broken)
    assert all(len(m.splitlines()) == 1 for m in skipped)
    assert all(any(f"r{i:02d}/record.json" in m for m in skipped) for i in range(1, len(broken) + 1))
    (table,) = leaderboard_tables([*stored, odd_values])
    odd = next(row for row in table.rows if row.seeds == [5])
    assert odd.cells["acc"] is None and odd.cells["prec"] is None and odd.cells["f1"] is None
    assert odd.per_class is None and odd.reliability is None and odd.label.startswith("ce #")
    assert "fashion-glt · CLT" in page


def test_non_finite_numbers_handed_in_memory_count_as_missing(make_record, make_metrics):
    metrics = make_metrics(0.5, 0.5)
    metrics.update(acc=math.nan, prec=math.inf, acc_ci95=[math.nan, 1.0])
    (table,) = leaderboard_tables([make_record("ce", 0, {"clt": metrics})])
    assert table.rows[0].cells["acc"] is None and table.rows[0].cells["prec"] is None
    assert table.rows[0].cells["f1"].ci95 is not None
    assert [p.title for p in table_plots(table)] == [
        "Per-class accuracy against training frequency",
        "Many / medium / few",
        "Attribute-wise accuracy",
    ]
