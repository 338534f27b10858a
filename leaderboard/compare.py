"""`glt-bench compare A B`: the paired significance test between two leaderboard rows.

A and B are each a record (a `record.json` or the run/submission folder holding it) or a row label
as the leaderboard shows it (all seeds of that configuration). For every protocol both answer, the
stored predictions are re-scored (they must equal their records) and compared sample by sample with
the paired bootstrap of `leaderboard.significance`; the p-values are Holm-corrected across the
protocols compared.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.errors import UserError
from benchmark.protocols import PROTOCOLS
from leaderboard.significance import RESAMPLES, corrected, paired_bootstrap
from leaderboard.store import load_records, record_problem
from leaderboard.tables import leaderboard_tables, pct, signed_pct
from leaderboard.verify import EQUAL, Verifier


def _resolve(spec: str, records: list[dict[str, Any]], benchmark: str | None) -> tuple[str, list[dict]]:
    """A display name and the records of a path or a row label."""
    path = Path(spec)
    if path.is_dir():
        path = path / "record.json"
    if path.is_file():
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise UserError(f"{path} is not a readable record ({exc})") from None
        problem = record_problem(record)
        if problem:
            raise UserError(f"{path}: {problem}")
        record["_path"] = str(path.resolve())
        return str(record.get("name") or record.get("method")), [record]
    matches = {}
    for table in leaderboard_tables(records):
        if benchmark in (None, table.benchmark):
            for row in table.rows:
                if row.label == spec and row.kind != "reported":
                    matches.setdefault(table.benchmark, set()).update(row.paths)
    if not matches:
        raise UserError(f"{spec!r} is neither a record path nor a row label of the leaderboard; "
                        "give a run folder or the label as the page shows it")  # fmt: skip
    if len(matches) > 1:
        raise UserError(f"{spec!r} names rows of {', '.join(sorted(matches))}; choose one with --benchmark")
    (paths,) = matches.values()
    return spec, [r for r in records if r.get("_path") in paths]


def _correctness(name: str, records: list[dict], protocol: str, verifier: Verifier) -> np.ndarray:
    arrays = []
    for record in records:
        for result in record["results"]:  # validated by store.record_problem
            if result["protocol"] == protocol:
                check = verifier.check(record, result)
                if check.status != EQUAL or check.correct is None:
                    raise UserError(f"{name}: cannot compare its {protocol} predictions: {check.message}")
                arrays.append(check.correct)
    if len({a.shape for a in arrays}) != 1:
        raise UserError(f"{name}: its {protocol} records answer test splits of different sizes")
    return np.mean(arrays, axis=0)


def compare(a: str, b: str, runs_dir: Path, manifest_dir: Path, benchmark: str | None = None) -> list[str]:
    """The comparison's lines of text, one per protocol both rows answer."""
    records = load_records(runs_dir) if Path(runs_dir).is_dir() else []
    (name_a, records_a), (name_b, records_b) = (_resolve(spec, records, benchmark) for spec in (a, b))
    benchmarks = {str(r.get("benchmark")) for r in [*records_a, *records_b]}
    if len(benchmarks) != 1:
        raise UserError(f"{a!r} and {b!r} are on different benchmarks ({', '.join(sorted(benchmarks))})")
    protocols = [p for p in PROTOCOLS
                 if all(any(x["protocol"] == p for r in rs for x in r["results"])
                        for rs in (records_a, records_b))]  # fmt: skip
    if not protocols:
        raise UserError(f"{a!r} and {b!r} answer no protocol in common")
    verifier = Verifier(runs_dir, manifest_dir)
    pairs = []
    for protocol in protocols:
        correct_a = _correctness(name_a, records_a, protocol, verifier)
        correct_b = _correctness(name_b, records_b, protocol, verifier)
        if correct_a.shape != correct_b.shape:
            raise UserError(f"{protocol}: the two rows answer test splits of different sizes")
        pairs.append((protocol, correct_a, correct_b))
    results = corrected([paired_bootstrap(x, y) for _, x, y in pairs])
    lines = [
        f"A = {name_a} ({len(records_a)} records), B = {name_b} ({len(records_b)} records); paired "
        f"bootstrap over test samples, {RESAMPLES} resamples, Holm over {len(pairs)} protocols"
    ]
    for (protocol, x, y), result in zip(pairs, results, strict=True):
        lo, hi = result.ci95
        verdict = {"better": "A better", "worse": "A worse", "n.s.": "no significant difference"}[
            result.verdict
        ]
        lines.append(
            f"{protocol.upper()}: acc A {pct(x.mean())} vs B {pct(y.mean())}, A − B {signed_pct(result.diff)}"
            " "
            f"[{signed_pct(lo)}, {signed_pct(hi)}], p {result.p:.4f}, Holm p {result.p_holm:.4f}: {verdict}"
        )
    return lines
