"""Scoring: validate a predictions file against a split's public listing, join the held-out labels."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from benchmark.errors import UserError
from benchmark.manifest import Manifest
from benchmark.metrics import glt_metrics
from benchmark.protocols import get_protocol
from leaderboard.predictions import align, read_predictions


def score_predictions(path: str | Path, manifest: Manifest, protocol: str) -> dict[str, float | int | None]:
    """GLT metrics of a predictions file under a protocol; UserError on any invalid input."""
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
    aligned = align(predictions, pa.array(listing, pa.string()), path)
    truth = manifest.test_labels(split).set_index("sample_id").reindex(listing)
    return glt_metrics(
        truth["label"].to_numpy(), aligned, manifest.class_groups, truth["attribute"].to_numpy()
    )
