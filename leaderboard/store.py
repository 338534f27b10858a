"""The results store: one JSON record per run (or submission) under a runs folder.

Reading is defensive: the report must survive any file under the folder, so a record that is not
strict JSON, not UTF-8 text, or not of the expected shape is skipped with a one-line warning naming
it (`record_problem` says what is wrong), never a crash.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from pathlib import Path
from typing import Any

from benchmark.atomic import remove_temporaries
from benchmark.errors import UserError

log = logging.getLogger("glt_bench")
REQUIRED_KEYS = ("format", "kind", "benchmark", "method", "seed", "manifest_sha256", "results")
TEXT_KEYS = ("name", "description", "url", "train_split", "submitted_at")
ORPHAN_AGE = 3600.0  # seconds: a killed submit's leftovers older than this are removed


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def _bad_text(data: Any) -> bool:
    """True if any string (or key) in `data` cannot be written as UTF-8 (a lone surrogate)."""
    if isinstance(data, str):
        try:
            data.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(data, dict):
        return any(_bad_text(key) or _bad_text(value) for key, value in data.items())
    if isinstance(data, list):
        return any(_bad_text(item) for item in data)
    return False


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _metrics_problem(metrics: Any) -> str | None:
    if not isinstance(metrics, dict):
        return "a result's metrics are not an object"
    for key, value in metrics.items():
        if key.endswith("_ci95"):
            if value is not None and not (
                isinstance(value, list) and len(value) == 2 and all(map(_number, value))
            ):
                return f"metric {key} is not a pair of numbers"
        elif key in ("acc_per_class", "train_count_per_class"):
            if not isinstance(value, list) or not all(v is None or _number(v) for v in value):
                return f"metric {key} is not a list of numbers"
        elif not (value is None or _number(value) or isinstance(value, (dict, list))):
            return f"metric {key} is not a number"
    return None


def record_problem(record: Any) -> str | None:
    """Why `record` is not a usable glt-bench record, or None if it is."""
    if not isinstance(record, dict) or any(key not in record for key in REQUIRED_KEYS):
        return "not a glt-bench record"
    if _bad_text(record):
        return "holds text that is not UTF-8"
    if record["kind"] not in ("run", "submission"):
        return "kind is neither run nor submission"
    if not isinstance(record["benchmark"], str) or not record["benchmark"]:
        return "benchmark is not a name"
    if not (
        isinstance(record["method"], str) or (record["kind"] == "submission" and record["method"] is None)
    ):
        return "method is not a name"
    if not isinstance(record["seed"], int) or isinstance(record["seed"], bool):
        return "seed is not an integer"
    if any(not isinstance(record.get(key, ""), (str, type(None))) for key in TEXT_KEYS):
        return "a text field is not text"
    if record["kind"] == "submission" and not isinstance(record.get("name", record["method"]), str):
        return "a submission without a name"
    results = record["results"]
    if not isinstance(results, list) or not results:
        return "results are not a non-empty list"
    for result in results:
        if not isinstance(result, dict) or not isinstance(result.get("protocol"), str):
            return "a result without a protocol"
        if not isinstance(result.get("predictions_sha256", ""), str):
            return "a result's predictions_sha256 is not text"
        problem = _metrics_problem(result.get("metrics"))
        if problem:
            return problem
    return None


def load_records(runs_dir: str | Path) -> list[dict[str, Any]]:
    """Every usable record under `runs_dir`, sorted by path; others are skipped with a warning."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise UserError(f"no runs folder at {runs_dir}; run `glt-bench run` first or pass --runs DIR")
    records = []
    for path in sorted(runs_dir.rglob("record.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"), parse_constant=_reject_constant)
        except (OSError, ValueError, RecursionError) as exc:
            log.warning("skipping %s: %s", path, str(exc).splitlines()[0][:200] if str(exc) else "unreadable")
            continue
        problem = record_problem(record)
        if problem:
            log.warning("skipping %s: %s", path, problem)
            continue
        record["_path"] = str(path.relative_to(runs_dir))
        records.append(record)
    return records


def clean_orphans(runs_dir: str | Path, older_than: float = ORPHAN_AGE) -> list[Path]:
    """Remove what killed submits left under `<runs>/*/submissions/` more than `older_than` seconds
    ago: temporary files, and folders without a `record.json`. Returns what was removed; a folder
    that cannot be changed (read-only runs) is left alone."""
    removed: list[Path] = []
    now = time.time()
    for inbox in Path(runs_dir).glob("*/submissions"):
        try:
            removed += remove_temporaries(inbox, older_than)
            for folder in inbox.iterdir():
                if not folder.is_dir() or folder.is_symlink():
                    continue
                if (folder / "record.json").exists():
                    removed += remove_temporaries(folder, older_than)
                elif all(now - p.lstat().st_mtime >= older_than for p in [folder, *folder.iterdir()]):
                    shutil.rmtree(folder)
                    removed.append(folder)
        except OSError as exc:
            log.warning("cannot clean %s: %s", inbox, exc.strerror or exc)
    if removed:
        log.info(
            "removed %d leftovers of killed submits (older than %.0f min)", len(removed), older_than / 60
        )
    return removed
