"""The pieces every record shares, whether written by `run` or by `submit`."""

from __future__ import annotations

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
