"""`run` under hostile conditions: killed and resumed runs, damaged checkpoints, two processes on one
config, diverging losses, read-only folders, bad GPU options, and what it prints for a new user."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from baselines.base import METHODS
from benchmark import engine, runner
from benchmark.cli import main
from benchmark.errors import UserError
from benchmark.manifest import Manifest
from benchmark.runlock import LOCK_FILE
from leaderboard.predictions import read_predictions

MINI = "fashion-glt-mini"
README = Path(__file__).resolve().parents[2] / "README.md"


class Killed(BaseException):
    """Stands for a kill -9 between the last checkpoint and the record."""


def run_mini(manifests: Path, out: Path, method: str = "ce", **kwargs) -> tuple[Path, dict]:
    kwargs.setdefault("protocols", ["glt"])
    (path,) = runner.run(benchmark=MINI, method=method, manifest_dir=manifests, out=out, epochs=1, **kwargs)
    return path.parent, json.loads(path.read_text(encoding="utf-8"))


def the_run_folder(out: Path, method: str) -> Path:
    (folder,) = (out / MINI / method).iterdir()
    return folder


def test_a_killed_run_resumes_only_intact_and_under_its_thread_count(
    mini_manifest_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    def killed(target, data):
        raise Killed

    with monkeypatch.context() as patch:
        patch.setattr(runner, "write_json", killed)
        with pytest.raises(Killed):
            run_mini(mini_manifest_dir, tmp_path)
    folder = the_run_folder(tmp_path, "ce")
    checkpoint = folder / engine.CHECKPOINT
    assert checkpoint.exists() and not (folder / "record.json").exists() and not (folder / LOCK_FILE).exists()
    saved = torch.load(checkpoint, weights_only=True)
    assert saved["threads"] == torch.get_num_threads() and saved["outcome"]["train_seconds"] > 0
    intact = checkpoint.read_bytes()

    # Damaged checkpoints: one line naming the file and suggesting --force, never a traceback.
    damaged = {
        "random bytes": np.random.default_rng(0).bytes(4096),
        "empty": b"",
        "truncated": intact[: len(intact) // 2],
        "a model.pt": (folder / runner.MODEL_FILE).read_bytes(),
    }
    for what, content in damaged.items():
        checkpoint.write_bytes(content)
        with pytest.raises(UserError) as error:
            run_mini(mini_manifest_dir, tmp_path, resume=True)
        message = str(error.value)
        assert str(checkpoint) in message and "--force" in message and "\n" not in message, (what, message)
        assert "weights_only=False" not in message
    checkpoint.write_bytes(intact)

    # Leftovers of killed atomic writes, as a kill -9 mid-write leaves them.
    leftovers = [folder / ".checkpoint.pt.k1ll3d.tmp", folder / ".predictions_test_gbl.csv.x9.tmp"]
    for path in leftovers:
        path.write_bytes(b"half a file")

    before = torch.get_num_threads()
    other = 1 if before != 1 else 2
    torch.set_num_threads(other)
    try:
        with pytest.raises(
            engine.ThreadCountChanged, match=f"with {before} CPU threads, this one has {other}"
        ):
            run_mini(mini_manifest_dir, tmp_path, resume=True)
        assert checkpoint.read_bytes() == intact
        _, record = run_mini(mini_manifest_dir, tmp_path, resume=True, allow_thread_change=True)
    finally:
        torch.set_num_threads(before)
    compute = record["compute"]
    assert compute["resumed_from_epoch"] == 1
    assert compute["train_seconds"] >= saved["outcome"]["train_seconds"]  # the killed process's time counts
    assert compute["threads"] == other and compute["cpu"] and record["ran_on"]["gpu_model"] is None
    assert sorted(p.name for p in folder.iterdir()) == [
        "model.pt", "predictions_test_gbl.csv", "record.json"
    ]  # fmt: skip
    caplog.set_level(logging.INFO, logger="glt_bench")
    run_mini(mini_manifest_dir, tmp_path)  # "already done", and says the record's thread count differs
    assert f"trained with {other} CPU threads (this process has {before})" in caplog.text


def test_a_live_run_keeps_its_folder_and_a_dead_owners_lock_is_taken_over(
    mini_manifest_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    folder, first = run_mini(mini_manifest_dir, tmp_path)
    files = {p.name: p.read_bytes() for p in folder.iterdir()}
    holder = subprocess.Popen(
        [sys.executable, "-c", (
            "import sys, time; from pathlib import Path; from benchmark.runlock import run_lock\n"
            "with run_lock(Path(sys.argv[1])):\n    print('held', flush=True); time.sleep(300)"
        ), str(folder)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(
            UserError, match=rf"is in use by pid {holder.pid} on .*--force does not take over"
        ):
            run_mini(mini_manifest_dir, tmp_path, force=True)
        assert {p.name: p.read_bytes() for p in folder.iterdir() if p.name != LOCK_FILE} == files
    finally:
        holder.kill()  # SIGKILL: no clean-up runs, the lock file stays behind
        holder.wait()
    assert (folder / LOCK_FILE).exists()

    # The stale lock is taken over; meanwhile check Parquet predictions with scores, finite records.
    ce = METHODS.get("ce")
    monkeypatch.setattr(runner, "CSV_CLASS_LIMIT", 5)
    monkeypatch.setattr(ce, "report", lambda self: {"ratio": float("nan"), "steps": 3})
    folder_again, record = run_mini(mini_manifest_dir, tmp_path, force=True)
    assert folder_again == folder and not (folder / LOCK_FILE).exists()
    assert record["method_report"] == {"ratio": None, "steps": 3}
    (result,) = record["results"]
    assert result["predictions"] == "predictions_test_gbl.parquet"
    manifest = Manifest(mini_manifest_dir / MINI)
    predictions = read_predictions(folder / result["predictions"], manifest.num_classes)
    assert predictions.scores.shape == (len(manifest.public_listing("test_gbl")), manifest.num_classes)
    assert np.allclose(predictions.scores.sum(1), 1, atol=1e-5)
    assert np.array_equal(predictions.scores.argmax(1), predictions.predictions)
    assert result["metrics"]["acc"] == pytest.approx(first["results"][0]["metrics"]["acc"], abs=1e-12)

    # --from a Train-GLT run with the default `all`: refused before anything trains or is written.
    with pytest.raises(UserError, match="trained on train_glt, which answers clt, glt; alt need a train_cbl"):
        run_mini(mini_manifest_dir, tmp_path, "crt", from_run=folder, protocols=["clt", "glt", "alt"])
    assert not (tmp_path / MINI / "crt").exists()


def test_non_finite_settings_are_refused_and_a_diverging_loss_stops_at_its_step(
    mini_manifest_dir: Path, tmp_path: Path
):
    for value in ("nan", "inf", "-inf", "1e400"):
        with pytest.raises(UserError, match=r"--set tau=.*: hyperparameters must be finite"):
            run_mini(mini_manifest_dir, tmp_path, "la", overrides={"tau": float(value)})
    assert not (tmp_path / MINI).exists()
    with pytest.raises(engine.Diverged, match=r"NaN or infinite at epoch 1, step 1 of \d+ \(stage") as error:
        run_mini(mini_manifest_dir, tmp_path, "la", overrides={"tau": 1e38})
    assert "\n" not in str(error.value)
    assert (
        list(the_run_folder(tmp_path, "la").iterdir()) == []
    )  # no checkpoint, record or lock to block a rerun


def test_a_read_only_out_is_refused_before_training(
    mini_manifest_dir: Path, read_only_dir: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(engine, "train", lambda *a, **k: pytest.fail("trained into a read-only folder"))
    with pytest.raises(UserError, match="not a writable folder"):
        run_mini(mini_manifest_dir, read_only_dir / "runs")
    done = CliRunner().invoke(
        main, ["report", "--runs", str(read_only_dir), "--out", str(read_only_dir / "r")]
    )
    assert done.exit_code == 1 and "not a writable folder" in done.output
    assert done.output.count("\n") == 1 and "Traceback" not in done.output


def test_gpu_options_are_validated_and_usage_errors_exit_2_as_the_readme_says(
    mini_manifest_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    cli = CliRunner()
    base = ["run", "--benchmark", MINI, "--manifests", str(mini_manifest_dir), "--out", str(tmp_path)]
    for bad in ("0", "-1"):
        done = cli.invoke(main, [*base, "--gpus", bad])
        assert done.exit_code == 2 and "Invalid value for '--gpus'" in done.output
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    done = cli.invoke(main, [*base, "--gpus", "2", "--device", "cuda"])
    assert done.exit_code == 1 and "--gpus 2 needs 2 CUDA GPUs but 0 are visible" in done.output
    assert done.output.count("\n") == 1
    done = cli.invoke(main, [*base, "--method", "la", "--set", "tau=nan"])
    assert done.exit_code == 1 and "must be finite" in done.output
    assert cli.invoke(main, [*base, "--no-such-option"]).exit_code == 2
    readme = " ".join(README.read_text(encoding="utf-8").split())
    assert "Usage errors (an unknown option, a missing or invalid option value) exit with code 2" in readme


def test_auto_device_is_the_default_and_picks_cuda_when_present(monkeypatch: pytest.MonkeyPatch):
    (device_option,) = [p for p in main.commands["run"].params if p.name == "device"]
    assert device_option.default == "auto" and runner.Compute().device == "auto"
    assert runner._start_distributed("auto") == torch.device("cpu") or torch.cuda.is_available()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_device", lambda index: None)
    assert runner._start_distributed("auto") == torch.device("cuda", 0)


def test_run_says_what_it_will_do_and_where_each_predictions_file_went(
    mini_manifest_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO, logger="glt_bench")
    args = ["run", "--benchmark", MINI, "--protocol", "glt", "--epochs", "1"]
    done = CliRunner().invoke(main, [*args, "--manifests", str(mini_manifest_dir), "--out", str(tmp_path)])
    assert done.exit_code == 0, done.output
    folder = the_run_folder(tmp_path, "ce")
    threads = torch.get_num_threads()
    plan = (
        f"training ce on {MINI} seed 0: device cpu, {threads} CPU threads, precision fp32, recipe fashion "
        f"(small-cnn, 1 epochs, batch 128), train split train_glt for glt (test test_gbl); folder {folder}"
    )
    assert plan in caplog.text or torch.cuda.is_available()
    assert f"predictions for glt (test_gbl): {folder / 'predictions_test_gbl.csv'}" in done.output
    record = json.loads((folder / "record.json").read_text(encoding="utf-8"))
    assert record["compute"]["threads"] == threads
    listing = read_predictions(folder / "predictions_test_gbl.csv", 10)
    assert listing.scores is not None and np.allclose(listing.scores.sum(1), 1, atol=1e-5)
    assert re.search(r"\bce\s+glt\s+acc \d+\.\d\d", done.output)  # the metrics line, after the progress bar
