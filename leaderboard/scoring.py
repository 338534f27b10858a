"""Scoring: validate a predictions file against a split's public listing, join the held-out labels.

Besides the GLT metrics, a score carries what the leaderboard shows with them: bootstrap 95%
intervals of accuracy, precision and F1 (`*_ci95`, with the rule in `ci95`), per-class accuracy and
the per-class training counts of the protocol's training split, so the report needs no manifest; and,
when the file carries class scores, their calibration (ECE with 15 bins, NLL, Brier; overall, per
many/medium/few group and per attribute, with the reliability bins).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from benchmark.errors import UserError
from benchmark.manifest import Manifest
from benchmark.metrics import (
    BOOTSTRAP_RESAMPLES,
    BOOTSTRAP_SEED,
    bootstrap_ci95,
    calibration_metrics,
    glt_metrics,
    per_class_accuracy,
)
from benchmark.protocols import get_protocol
from leaderboard.predictions import align, read_predictions


@dataclass(frozen=True)
class Aligned:
    """A validated predictions file joined with the held-out labels, in the split's listing order."""

    labels: np.ndarray
    predictions: np.ndarray
    attributes: np.ndarray
    scores: np.ndarray | None  # N×C as the file gave them, or None


def read_aligned(path: str | Path, manifest: Manifest, protocol: str) -> Aligned:
    """Validate a predictions file against a protocol's test split and join its labels (UserError if not)."""
    split = get_protocol(protocol).test_split
    predictions = read_predictions(path, manifest.num_classes)
    expected = {"benchmark": manifest.benchmark, "split": split, "manifest_sha256": manifest.content_hash}
    for key, value in expected.items():
        if predictions.binding[key] != value:
            raise UserError(
                f"{path} answers {key} {predictions.binding[key]!r} but protocol {protocol} of this "
                f"manifest needs {value!r}; predict on the right split of the current manifest"
            )
    manifest.verify_split(split)
    listing = manifest.public_listing(split)["sample_id"]
    aligned, scores = align(predictions, pa.array(listing, pa.string()), path)
    truth = manifest.test_labels(split).set_index("sample_id").reindex(listing)
    return Aligned(truth["label"].to_numpy(), aligned, truth["attribute"].to_numpy(), scores)


def score_predictions(
    path: str | Path, manifest: Manifest, protocol: str, *, resamples: int = BOOTSTRAP_RESAMPLES
) -> dict[str, Any]:
    """GLT metrics of a predictions file under a protocol; UserError on any invalid input.

    `resamples=0` leaves out the bootstrap intervals (their keys are then `None`).
    """
    return score_aligned(read_aligned(path, manifest, protocol), manifest, protocol, resamples=resamples)


def score_aligned(
    data: Aligned, manifest: Manifest, protocol: str, *, resamples: int = BOOTSTRAP_RESAMPLES
) -> dict[str, Any]:
    """The metrics of `score_predictions` from an already validated and aligned file."""
    labels, aligned = data.labels, data.predictions
    metrics: dict[str, Any] = glt_metrics(labels, aligned, manifest.class_groups, data.attributes)
    metrics.update(bootstrap_ci95(labels, aligned, manifest.num_classes, resamples=resamples))
    metrics["ci95"] = {"method": "percentile bootstrap", "resamples": resamples, "seed": BOOTSTRAP_SEED}
    metrics["acc_per_class"] = per_class_accuracy(labels, aligned, manifest.num_classes)
    metrics["train_count_per_class"] = manifest.class_counts(get_protocol(protocol).train_split).tolist()
    if data.scores is not None:
        metrics.update(calibration_metrics(labels, data.scores, manifest.class_groups, data.attributes))
    return metrics
