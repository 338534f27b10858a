"""The pieces every record shares, whether written by `run` or by `submit`."""

from __future__ import annotations

import math
import sys
from typing import Any

from benchmark.protocols import get_protocol
from benchmark.provenance import git_sha, package_versions

RECORD_VERSION = "glt-bench-record/1"


def result_entry(
    protocol: str, predictions: str, predictions_sha256: str, metrics: dict, adaptation: dict | None = None
) -> dict[str, Any]:
    """One scored predictions file of a record; `adaptation`, when non-empty, is what the method
    learned from the unlabelled test inputs before predicting them (`Method.adapt`)."""
    return {
        "protocol": protocol,
        "split": get_protocol(protocol).test_split,
        "predictions": predictions,
        "predictions_sha256": predictions_sha256,
        "metrics": metrics,
        **({"adaptation": adaptation} if adaptation else {}),
    }


def environment() -> dict[str, Any]:
    """Package versions, the code's git SHA and the command line."""
    return {"versions": package_versions(), "git_sha": git_sha(), "argv": sys.argv}


def finite_only(data: Any, where: str = "") -> tuple[Any, list[str]]:
    """A copy of JSON-ready `data` with every NaN or infinite float replaced by None (JSON null),
    and the dotted keys of what was replaced: records never carry NaN, which strict JSON forbids."""
    if isinstance(data, float) and not math.isfinite(data):
        return None, [where or "."]
    if isinstance(data, dict):
        pairs = [
            (key, finite_only(value, f"{where}.{key}" if where else str(key))) for key, value in data.items()
        ]
        return {key: value for key, (value, _) in pairs}, [p for _, (_, found) in pairs for p in found]
    if isinstance(data, (list, tuple)):
        items = [finite_only(value, f"{where}[{i}]") for i, value in enumerate(data)]
        return [value for value, _ in items], [p for _, found in items for p in found]
    return data, []
