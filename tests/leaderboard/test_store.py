"""The results store: any file under the runs folder is read or skipped with one warning line; leftovers
of killed submits are removed after an hour, live ones never."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import pytest

from benchmark.atomic import write_json
from leaderboard.store import clean_orphans, load_records, record_problem


def good() -> dict[str, Any]:
    return {
        "format": "glt-bench-record/1", "kind": "submission", "benchmark": "b", "method": None,
        "name": "team", "seed": 0, "manifest_sha256": "ab" * 32,
        "results": [{"protocol": "glt", "predictions_sha256": "cd" * 32,
                     "metrics": {"acc": 0.5, "acc_ci95": [0.4, 0.6], "acc_per_class": [0.5, None]}}],
    }  # fmt: skip


MALFORMED = {
    "empty result": ({"results": [{}]}, "a result without a protocol"),
    "no results": ({"results": []}, "results are not a non-empty list"),
    "results not a list": ({"results": {"glt": 1}}, "results are not a non-empty list"),
    "metrics not an object": (
        {"results": [{"protocol": "glt", "metrics": [1]}]},
        "metrics are not an object",
    ),
    "metric text": ({"results": [{"protocol": "glt", "metrics": {"acc": "high"}}]}, "metric acc is not"),
    "interval of one": ({"results": [{"protocol": "glt", "metrics": {"acc_ci95": [1]}}]}, "acc_ci95"),
    "kind": ({"kind": "hack"}, "kind is neither"),
    "seed text": ({"seed": "0"}, "seed is not an integer"),
    "seed bool": ({"seed": True}, "seed is not an integer"),
    "name a list": ({"name": ["x"]}, "a text field is not text"),
    "run without method": ({"kind": "run"}, "method is not a name"),
    "lone surrogate": ({"name": "bad\udcffname"}, "not UTF-8"),
    "surrogate deep": ({"results": [{"protocol": "glt", "metrics": {"x\udcff": 1}}]}, "not UTF-8"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_record_problem_names_what_is_wrong(case: str):
    change, fragment = MALFORMED[case]
    assert record_problem(good()) is None
    problem = record_problem({**good(), **change})
    assert problem is not None and fragment in problem


def test_malformed_records_are_skipped_with_one_line_each(tmp_path: Path, caplog):
    runs = tmp_path / "runs"
    write_json(runs / "b" / "ok" / "record.json", good())
    for i, case in enumerate(sorted(MALFORMED)):
        folder = runs / "b" / f"bad{i}"
        folder.mkdir(parents=True)
        text = json.dumps({**good(), **MALFORMED[case][0]})  # lone surrogates are written as \udcff escapes
        (folder / "record.json").write_text(text)
    (runs / "b" / "nan").mkdir()
    (runs / "b" / "nan" / "record.json").write_text(json.dumps(good()).replace("0.5", "NaN"))
    (runs / "b" / "latin1").mkdir()
    (runs / "b" / "latin1" / "record.json").write_bytes(
        json.dumps(good()).replace("team", "t\xe9am").encode("latin-1")
    )
    (runs / "b" / "deep").mkdir()
    (runs / "b" / "deep" / "record.json").write_text("[" * 100_000 + "]" * 100_000)
    with caplog.at_level(logging.WARNING, logger="glt_bench"):
        records = load_records(runs)
    assert [r["_path"] for r in records] == ["b/ok/record.json"]
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == len(MALFORMED) + 3
    assert all(w.startswith("skipping ") and "record.json" in w and "\n" not in w for w in warnings)
    assert any("nan/record.json" in w and "NaN is not valid JSON" in w for w in warnings)


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then), follow_symlinks=False)


def test_orphans_older_than_an_hour_are_removed(tmp_path: Path):
    inbox = tmp_path / "runs" / "b" / "submissions"
    done, killed, live = inbox / "done", inbox / "killed", inbox / "live"
    for folder in (done, killed, live):
        folder.mkdir(parents=True)
    write_json(done / "record.json", good())
    (done / ".record.json.x.tmp").write_text("{")
    (killed / "predictions.csv").write_text("half")
    (live / "predictions.csv").write_text("being stored")
    (inbox / ".incoming.old.tmp").write_text("x")
    (inbox / ".incoming.new.tmp").write_text("x")
    for path in (
        done / ".record.json.x.tmp",
        killed / "predictions.csv",
        killed,
        inbox / ".incoming.old.tmp",
    ):
        _age(path, 3700)
    _age(live, 3700)  # the folder is old but a file in it is fresh: a live submit, kept
    removed = clean_orphans(tmp_path / "runs")
    assert sorted(p.name for p in removed) == [".incoming.old.tmp", ".record.json.x.tmp", "killed"]
    assert (done / "record.json").exists() and (live / "predictions.csv").exists()
    assert (inbox / ".incoming.new.tmp").exists() and not killed.exists()
    assert clean_orphans(tmp_path / "runs") == []
