"""`run` end to end on fashion-glt-mini: every registered method, --from, --resume, torchrun."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from baselines.base import METHODS
from benchmark import engine
from benchmark.errors import UserError
from benchmark.manifest import Manifest
from benchmark.runner import MODEL_FILE, run
from leaderboard.predictions import read_predictions

MINI = "fashion-glt-mini"


def run_mini(manifests: Path, out: Path, method: str, **kwargs) -> tuple[Path, dict]:
    (path,) = run(
        benchmark=MINI, method=method, protocols=["glt"], manifest_dir=manifests, out=out, epochs=1, **kwargs
    )
    return path.parent, json.loads(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("method", METHODS.names())
def test_every_method_trains_one_epoch_and_writes_a_valid_predictions_file(
    mini_manifest_dir: Path, tmp_path: Path, method: str
):
    folder, record = run_mini(mini_manifest_dir, tmp_path, method)
    manifest = Manifest(mini_manifest_dir / MINI)
    # The record: what ran, on which manifest, trained on Train-GLT and selected on Val-GLT.
    assert (record["benchmark"], record["method"], record["seed"]) == (MINI, method, 0)
    assert (record["train_split"], record["val_split"], record["selection_rule"]) == (
        "train_glt", "val_glt", "val_acc",
    )  # fmt: skip
    assert record["manifest_sha256"] == manifest.content_hash
    assert record["hparams"] == METHODS.get(method)({}, manifest.class_counts("train_glt")).hparams
    # Selection on Val: every selected (stage, epoch) is that stage's best Val epoch in the history.
    assert record["selected"]
    for chosen in record["selected"]:
        history = [h for h in record["val_history"] if h["stage"] == chosen["stage"]]
        (entry,) = [h for h in history if h["epoch"] == chosen["epoch"]]
        assert entry["val_acc"] == max(h["val_acc"] for h in history)
    # The predictions file is bound to the manifest and answers Test-GBL's public listing, once each,
    # and the recorded accuracy is that file's accuracy against the manifest's test labels.
    (result,) = record["results"]
    assert (result["protocol"], result["split"]) == ("glt", "test_gbl")
    predictions = read_predictions(folder / result["predictions"], manifest.num_classes)
    assert predictions.binding == {
        "benchmark": MINI,
        "split": "test_gbl",
        "manifest_sha256": manifest.content_hash,
    }
    listing = manifest.public_listing("test_gbl")["sample_id"].tolist()
    assert predictions.sample_ids.to_pylist() == listing
    truth = manifest.test_labels("test_gbl").set_index("sample_id").loc[listing, "label"].to_numpy()
    assert result["metrics"]["acc"] == pytest.approx(float((predictions.predictions == truth).mean()))
    assert record["compute"]["images_processed"] > 0 and record["compute"]["epochs"] >= 1
    assert (folder / MODEL_FILE).exists() and not (folder / engine.CHECKPOINT).exists()


def test_from_run_replaces_the_first_stage(mini_manifest_dir: Path, tmp_path: Path):
    ce_folder, _ = run_mini(mini_manifest_dir, tmp_path, "ce")
    folder, crt = run_mini(mini_manifest_dir, tmp_path, "crt", from_run=ce_folder)
    assert crt["from_run"]["method"] == "ce" and crt["from_run"]["path"] == str(ce_folder)
    assert [s["stage"] for s in crt["selected"]] == [h["stage"] for h in crt["val_history"]][-1:]
    assert crt["compute"]["epochs"] == len(crt["val_history"]) and crt["val_history"][0]["stage"] != "main"
    # The frozen backbone is the CE run's, bit for bit.
    ce_weights = torch.load(ce_folder / MODEL_FILE, weights_only=True)
    crt_weights = torch.load(folder / MODEL_FILE, weights_only=True)
    backbone = [k for k in ce_weights if k.startswith("backbone.")]
    assert backbone and all(torch.equal(ce_weights[k], crt_weights[k]) for k in backbone)
    with pytest.raises(UserError, match="no stage that a finished run can replace"):
        run_mini(mini_manifest_dir, tmp_path, "focal", from_run=ce_folder)
    with pytest.raises(UserError, match="not a finished run folder"):
        run_mini(mini_manifest_dir, tmp_path, "crt", from_run=tmp_path)


def test_a_leftover_checkpoint_needs_resume_or_force(mini_manifest_dir: Path, tmp_path: Path):
    folder, _ = run_mini(mini_manifest_dir, tmp_path, "ce")
    (folder / "record.json").unlink()
    (folder / engine.CHECKPOINT).write_bytes(b"left by a killed run")
    with pytest.raises(UserError, match="--resume"):
        run_mini(mini_manifest_dir, tmp_path, "ce")
    _, record = run_mini(mini_manifest_dir, tmp_path, "ce", force=True)
    assert record["compute"]["resumed_from_epoch"] is None


def test_torchrun_trains_data_parallel_on_two_cpu_processes(mini_manifest_dir: Path, tmp_path: Path):
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
        "-m", "benchmark.cli", "run", "--benchmark", MINI, "--method", "ce", "--protocol", "glt",
        "--epochs", "1", "--manifests", str(mini_manifest_dir), "--out", str(tmp_path),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    (path,) = tmp_path.rglob("record.json")
    record = json.loads(path.read_text(encoding="utf-8"))
    assert record["world_size"] == 2 and record["compute"]["world_size"] == 2
    train_size = len(Manifest(mini_manifest_dir / MINI).split("train_glt"))
    assert record["compute"]["images_processed"] == train_size  # one epoch, shared by the two ranks
