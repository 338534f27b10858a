"""The results store: one JSON record per run (or submission) under a runs folder."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from benchmark.errors import UserError

log = logging.getLogger("glt_bench")
REQUIRED_KEYS = ("format", "kind", "benchmark", "method", "seed", "manifest_sha256", "results")


def load_records(runs_dir: str | Path) -> list[dict[str, Any]]:
    """Every readable record under `runs_dir`, sorted by path; unreadable ones are skipped with a warning."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise UserError(f"no runs folder at {runs_dir}; run `glt-bench run` first or pass --runs DIR")
    records = []
    for path in sorted(runs_dir.rglob("record.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            log.warning("skipping %s: %s", path, exc)
            continue
        if not isinstance(record, dict) or any(key not in record for key in REQUIRED_KEYS):
            log.warning("skipping %s: not a glt-bench record", path)
            continue
        record["_path"] = str(path.relative_to(runs_dir))
        records.append(record)
    return records
