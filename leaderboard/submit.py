"""`glt-bench submit`: validate and score anyone's predictions file, then store it as a record.

Each submission gets its own folder under `<runs>/<benchmark>/submissions/`, named by the submitter's
name, the protocol and the file's sha256, holding a copy of the file and `record.json` (written
last, atomically). Concurrent submissions never share a temporary file, so none is lost or torn.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
from pathlib import Path
from typing import Any

from benchmark.atomic import atomic_path, write_json
from benchmark.errors import UserError
from benchmark.manifest import Manifest
from benchmark.provenance import sha256_file
from benchmark.records import RECORD_VERSION, environment, result_entry
from leaderboard.scoring import score_predictions


def submission_folder(runs_dir: Path, benchmark: str, name: str, protocol: str, file_sha256: str) -> Path:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.")[:40] or "submission"
    return runs_dir / benchmark / "submissions" / f"{slug}-{protocol}-{file_sha256[:12]}"


def submit(
    predictions: Path,
    manifest: Manifest,
    protocol: str,
    runs_dir: Path,
    *,
    name: str,
    method: str | None = None,
    description: str = "",
    url: str = "",
    seed: int = 0,
) -> Path:
    """Score the file (UserError and nothing stored if invalid); returns the record's path."""
    if not name.strip():
        raise UserError("--name must not be empty: it is the leaderboard row's label")
    metrics = score_predictions(predictions, manifest, protocol)
    file_sha256 = sha256_file(predictions)
    folder = submission_folder(runs_dir, manifest.benchmark, name, protocol, file_sha256)
    stored = folder / f"predictions{Path(predictions).suffix.lower() or '.csv'}"
    with atomic_path(stored) as tmp:
        shutil.copyfile(predictions, tmp)
    record: dict[str, Any] = {
        "format": RECORD_VERSION,
        "kind": "submission",
        "benchmark": manifest.benchmark,
        "method": method or name,
        "name": name,
        "description": description,
        "url": url,
        "seed": seed,
        "hparams": {},
        "manifest_sha256": manifest.content_hash,
        "results": [result_entry(protocol, stored.name, file_sha256, metrics)],
        "submitted_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "environment": environment(),
    }
    write_json(folder / "record.json", record)
    return folder / "record.json"
