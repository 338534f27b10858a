"""The leaderboard is a pure function of the records: golden-file test plus aggregation checks."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from leaderboard.report import leaderboard_tables, render_html, write_report
from leaderboard.store import load_records

GOLDEN = Path(__file__).parent / "golden" / "report.html"


def record(method: str, seed: int, protocol_metrics: dict[str, float], kind: str = "run") -> dict:
    results = [
        {"protocol": p, "metrics": {"acc": acc, "prec": acc / 2, "f1": None, "acc_many": 1.0,
                                    "acc_medium": acc, "acc_few": 0.0, "acc_worst_att": None}}
        for p, acc in protocol_metrics.items()
    ]  # fmt: skip
    return {"format": "glt-bench-record/1", "kind": kind, "benchmark": "fashion-glt", "method": method,
            "seed": seed, "hparams": {}, "manifest_sha256": "abc", "results": results}  # fmt: skip


RECORDS = [
    record("ce", 0, {"clt": 0.5, "glt": 0.4}),
    record("ce", 1, {"clt": 0.7, "glt": 0.5}),
    record("ce", 0, {"alt": 0.6}),
    record("<script>alert(1)</script>", 0, {"glt": 0.9}, kind="submission"),
]


def test_tables_average_over_seeds_and_sort_by_accuracy():
    tables = {(t.benchmark, t.protocol): t for t in leaderboard_tables(RECORDS)}
    assert list(tables) == [("fashion-glt", "clt"), ("fashion-glt", "glt"), ("fashion-glt", "alt")]
    (clt,) = tables[("fashion-glt", "clt")].rows
    assert clt.seeds == [0, 1]
    mean, std = clt.cells["acc"]
    assert mean == pytest.approx(0.6) and std == pytest.approx(0.1414213562)
    assert clt.cells["f1"] is None
    glt = tables[("fashion-glt", "glt")].rows
    assert [row.method for row in glt] == ["<script>alert(1)</script>", "ce"]


def test_report_matches_the_golden_file():
    html = render_html(leaderboard_tables(RECORDS))
    if os.environ.get("GLT_BENCH_UPDATE_GOLDEN"):
        GOLDEN.write_text(html, encoding="utf-8")
    assert html == GOLDEN.read_text(encoding="utf-8")


def test_user_strings_are_escaped():
    html = render_html(leaderboard_tables(RECORDS))
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_store_reads_records_and_skips_junk(tmp_path: Path):
    for i, rec in enumerate(RECORDS):
        (tmp_path / f"r{i}").mkdir()
        (tmp_path / f"r{i}" / "record.json").write_text(json.dumps(rec))
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "record.json").write_text("{not json")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "record.json").write_text("[1, 2]")
    records = load_records(tmp_path)
    assert [r["_path"] for r in records] == [f"r{i}/record.json" for i in range(4)]
    path = write_report(records, tmp_path / "site")
    assert path.read_text(encoding="utf-8") == render_html(leaderboard_tables(RECORDS))
