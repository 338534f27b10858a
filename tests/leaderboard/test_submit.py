"""Submissions: scored and stored as records, nothing stored when invalid, safe under concurrency."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import numpy as np
import pytest

from benchmark.atomic import atomic_path
from benchmark.errors import UserError
from benchmark.manifest import Manifest
from leaderboard import predictions as predictions_module
from leaderboard.predictions import write_predictions
from leaderboard.store import load_records
from leaderboard.submit import submit


def predictions_file(manifest: Manifest, path: Path, flip: int = 0) -> Path:
    """Perfect Test-GBL predictions, except the first `flip` rows shifted by one class."""
    truth = manifest.test_labels("test_gbl")
    preds = truth["label"].to_numpy().copy()
    preds[:flip] = (preds[:flip] + 1) % manifest.num_classes
    binding = {"benchmark": manifest.benchmark, "split": "test_gbl", "manifest_sha256": manifest.content_hash}
    write_predictions(path, truth["sample_id"].to_numpy(), preds, binding)
    return path


def test_submission_is_scored_and_stored(tiny_manifest: Manifest, tmp_path: Path):
    path = predictions_file(tiny_manifest, tmp_path / "mine.csv", flip=3)
    record_path = submit(
        path, tiny_manifest, "glt", tmp_path / "runs", name="<b>team</b>", description="d", url="u", seed=2
    )
    record = json.loads(record_path.read_text())
    assert record["kind"] == "submission" and record["method"] == "<b>team</b>" and record["seed"] == 2
    assert record["results"][0]["metrics"]["acc"] == pytest.approx(1 - 3 / 12)
    stored = record_path.parent / record["results"][0]["predictions"]
    assert stored.read_bytes() == path.read_bytes()
    assert "/" not in record_path.parent.name.replace("-", "") and "<" not in str(record_path)
    assert [r["kind"] for r in load_records(tmp_path / "runs")] == ["submission"]


def test_invalid_submission_stores_nothing(tiny_manifest: Manifest, tmp_path: Path):
    path = predictions_file(tiny_manifest, tmp_path / "mine.csv")
    with pytest.raises(UserError, match="split"):
        submit(path, tiny_manifest, "clt", tmp_path / "runs", name="x")
    assert not (tmp_path / "runs").exists()


def test_oversize_file_is_rejected(tiny_manifest: Manifest, tmp_path: Path, monkeypatch):
    path = predictions_file(tiny_manifest, tmp_path / "mine.csv")
    monkeypatch.setattr(predictions_module, "MAX_BYTES", 64)
    with pytest.raises(UserError, match="over the 0 MiB limit"):
        submit(path, tiny_manifest, "glt", tmp_path / "runs", name="x")


def _submit_one(args: tuple[str, str, int]) -> str:
    manifest_root, runs, k = args
    manifest = Manifest(manifest_root)
    path = predictions_file(manifest, Path(runs).parent / f"p{k}.csv", flip=k)
    return str(submit(path, manifest, "glt", Path(runs), name=f"team{k}", seed=k))


def test_eight_concurrent_submissions_all_land(tiny_manifest: Manifest, tmp_path: Path):
    runs = tmp_path / "runs"
    with multiprocessing.get_context("fork").Pool(8) as pool:
        paths = pool.map(_submit_one, [(str(tiny_manifest.root), str(runs), k) for k in range(8)])
    records = load_records(runs)
    assert len(set(paths)) == 8 and len(records) == 8
    accuracies = sorted(r["results"][0]["metrics"]["acc"] for r in records)
    assert accuracies == pytest.approx(sorted(1 - np.arange(8) / 12))
    assert not list(runs.rglob("*.tmp"))


def test_a_crash_mid_write_leaves_no_file(tmp_path: Path):
    target = tmp_path / "record.json"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text('{"half": ')
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []
