"""Re-scoring stored predictions: does every record still say what its predictions file says?

For each result of a record the predictions file beside it is hashed (it must match the record's
`predictions_sha256`), validated and scored again against the manifest the record names, and the
fresh metrics are compared with the stored ones (every stored key the scorer still produces, numbers
within 1e-9). A record made before a metric existed is not drift: keys it lacks are not compared.
The per-sample correctness of each re-scored file is kept for the significance tests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.errors import UserError
from benchmark.manifest import Manifest
from benchmark.metrics import BOOTSTRAP_RESAMPLES
from benchmark.provenance import sha256_file
from leaderboard.scoring import read_aligned, score_aligned

TOLERANCE = 1e-9
EQUAL, DRIFT, UNVERIFIABLE = "equal", "drift", "unverifiable"


@dataclass(frozen=True)
class Check:
    status: str  # equal | drift | unverifiable
    message: str
    correct: np.ndarray | None = None  # per-sample correctness in the split's listing order


def _same(stored: Any, fresh: Any) -> bool:
    if isinstance(stored, bool) or isinstance(fresh, bool):
        return stored == fresh
    if isinstance(stored, int | float) and isinstance(fresh, int | float):
        return math.isclose(stored, fresh, rel_tol=TOLERANCE, abs_tol=TOLERANCE)
    if isinstance(stored, list) and isinstance(fresh, list):
        return len(stored) == len(fresh) and all(_same(a, b) for a, b in zip(stored, fresh, strict=True))
    if isinstance(stored, dict) and isinstance(fresh, dict):
        return stored.keys() == fresh.keys() and all(_same(stored[k], fresh[k]) for k in stored)
    return stored == fresh


def drift(stored: dict[str, Any], fresh: dict[str, Any]) -> list[str]:
    """The stored metric keys whose fresh value differs (or that the scorer no longer produces)."""
    return sorted(key for key, value in stored.items() if key not in fresh or not _same(value, fresh[key]))


class Verifier:
    """Re-scores results against the manifests under `manifest_dir`, one manifest per benchmark."""

    def __init__(self, runs_dir: str | Path, manifest_dir: str | Path) -> None:
        self.runs_dir, self.manifest_dir = Path(runs_dir), Path(manifest_dir)
        self._manifests: dict[str, Manifest | str] = {}

    def _manifest(self, benchmark: str) -> Manifest | str:
        if benchmark not in self._manifests:
            try:
                self._manifests[benchmark] = Manifest(self.manifest_dir / benchmark)
            except (UserError, OSError, ValueError, KeyError, TypeError) as exc:
                self._manifests[benchmark] = (
                    f"no usable manifest of {benchmark} under {self.manifest_dir} ({exc})"
                )
        return self._manifests[benchmark]

    def check(self, record: dict[str, Any], result: dict[str, Any]) -> Check:
        """Re-score one result of a record (loaded by `store.load_records`, so it has `_path`)."""
        name = result.get("predictions")
        if not isinstance(name, str) or not name or Path(name).name != name or name in (".", ".."):
            return Check(UNVERIFIABLE, f"the record names no predictions file beside it ({name!r})")
        path = (self.runs_dir / str(record.get("_path", ""))).parent / name
        if not path.is_file():
            return Check(UNVERIFIABLE, f"{path} is missing")
        if sha256_file(path) != result.get("predictions_sha256"):
            return Check(DRIFT, f"{path} no longer has the sha256 the record stores")
        manifest = self._manifest(str(record.get("benchmark")))
        if isinstance(manifest, str):
            return Check(UNVERIFIABLE, manifest)
        if manifest.content_hash != record.get("manifest_sha256"):
            return Check(UNVERIFIABLE, f"scored on manifest {str(record.get('manifest_sha256'))[:12]}…, "
                         f"{manifest.root} is {manifest.content_hash[:12]}…")  # fmt: skip
        protocol = str(result.get("protocol"))
        stored = result.get("metrics") if isinstance(result.get("metrics"), dict) else {}
        ci = stored.get("ci95") if isinstance(stored.get("ci95"), dict) else {}
        resamples = ci.get("resamples", BOOTSTRAP_RESAMPLES)
        try:
            data = read_aligned(path, manifest, protocol)
            fresh = score_aligned(data, manifest, protocol, resamples=int(resamples))
        except (UserError, ValueError, KeyError, TypeError) as exc:
            return Check(DRIFT, f"{path} no longer scores: {exc}")
        changed = drift(stored, fresh)
        correct = (data.labels == data.predictions).astype(np.float64)
        if changed:
            return Check(DRIFT, f"{path}: re-scored metrics differ in {', '.join(changed[:8])}", correct)
        return Check(EQUAL, f"{path}: re-scored, equal to the record", correct)

    def check_all(self, records: list[dict[str, Any]]) -> dict[tuple[str, str], Check]:
        """Every result of every run and submission, keyed by (record path, protocol)."""
        return {
            (str(record.get("_path")), str(result.get("protocol"))): self.check(record, result)
            for record in records
            if record.get("kind") in ("run", "submission")
            for result in record.get("results", [])
            if isinstance(result, dict)
        }
