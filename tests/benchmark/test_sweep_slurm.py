"""`glt-bench sweep --launcher slurm` against a real one-node Slurm cluster (tests/benchmark/conftest.py):
records equal the local launcher's, re-submission is idempotent, a signalled job requeues and resumes,
and a two-process job trains data-parallel with ranks from the Slurm allocation (gloo on the CPU)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from benchmark import cli, sweep

MINI = "fashion-glt-mini"
WAIT_S = 420  # the 2-core machine may be shared with other test processes


def invoke(*args: str) -> str:
    result = CliRunner().invoke(cli.main, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def setup(tmp_path: Path, manifests: Path, name: str, lines: list[str], seeds: str, *extra: str):
    path = tmp_path / f"{name}.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    common = [str(path), "--benchmark", MINI, "--manifests", str(manifests), "--seeds", seeds, *extra]
    options = sweep.Options(out=tmp_path / name, manifest_dir=manifests, benchmark=MINI)
    return common, sweep.expand(path, sweep.parse_seeds(seeds), options), options


def wait_done(entries, options, timeout: float = WAIT_S, until=None) -> list[sweep.Row]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = sweep.status(entries, options)
        if until is not None and until(rows):
            return rows
        if until is None and all(r.state in ("done", "failed") for r in rows):
            return rows
        time.sleep(1)
    raise AssertionError(sweep.format_status(sweep.status(entries, options)))


def records(out: Path) -> dict[str, dict]:
    return {
        str(p.parent.relative_to(out)): json.loads(p.read_text()) for p in sorted(out.rglob("record.json"))
    }


def assert_same_results(slurm_records: dict, local_records: dict) -> None:
    assert slurm_records.keys() == local_records.keys() and slurm_records
    for folder, record in slurm_records.items():
        other = local_records[folder]
        assert record["selected"] == other["selected"]
        for ours, theirs in zip(record["results"], other["results"], strict=True):
            assert ours["protocol"] == theirs["protocol"]
            for key in ("acc", "prec", "f1", "acc_few", "acc_worst_att"):
                assert ours["metrics"][key] == pytest.approx(theirs["metrics"][key], abs=1e-9)


def test_slurm_sweep_equals_local_and_resubmits_nothing(slurm, mini_manifest_dir: Path, tmp_path: Path):
    lines = ["--method ce --protocol glt --epochs 1", "--method la --protocol glt --epochs 1"]
    common, entries, options = setup(tmp_path, mini_manifest_dir, "slurm", lines, "0,1")
    started = time.monotonic()
    output = invoke("sweep", *common, "--out", str(options.out), "--launcher", "slurm", "--time", "10")
    assert "4 runs: 0 done, 0 queued or running, 4 to submit" in output and "job ids: " in output
    job_ids = output.split("job ids: ")[1].splitlines()[0].split(", ")
    assert len(job_ids) == 4 and len({j.split("_")[0] for j in job_ids}) == 1  # one job array
    early = sweep.status(entries, options)
    assert {r.state for r in early} <= {"queued", "running", "done"} and [r.job for r in early] == job_ids
    # submitting again while they are queued or running submits nothing
    again = invoke("sweep", *common, "--out", str(options.out), "--launcher", "slurm")
    assert "to submit" in again and "job ids" not in again
    rows = wait_done(entries, options)
    assert [r.state for r in rows] == ["done"] * 4, sweep.format_status(rows)
    print(f"slurm sweep of 4 runs: {time.monotonic() - started:.1f} s")
    status = invoke("sweep", *common, "--out", str(options.out), "--status")
    assert "4/4 done (100%)" in status and all(j in status for j in job_ids)
    final = invoke("sweep", *common, "--out", str(options.out), "--launcher", "slurm")
    assert "4 runs: 4 done, 0 queued or running, 0 to submit" in final
    ours = records(options.out)
    assert {r["ran_on"]["job_id"] for r in ours.values()} == set(job_ids)
    assert all(
        r["ran_on"]["launcher"] == "slurm" and r["ran_on"]["node"] == slurm.node for r in ours.values()
    )
    local_out = tmp_path / "local"
    invoke("sweep", *common, "--out", str(local_out), "--jobs", "2")
    theirs = records(local_out)
    assert all(r["ran_on"]["launcher"] == "local" for r in theirs.values())
    assert_same_results(ours, theirs)


def test_a_signalled_job_requeues_and_resumes_to_the_same_record(
    slurm, mini_manifest_dir: Path, tmp_path: Path
):
    """scancel --signal=USR2 (what Slurm sends before a time limit or a preemption, via submitit's
    --signal=USR2@90) makes the job checkpoint, requeue itself and continue with --resume."""
    lines = ["--method ce --protocol glt --epochs 4"]
    common, entries, options = setup(tmp_path, mini_manifest_dir, "slurm", lines, "0")
    output = invoke("sweep", *common, "--out", str(options.out), "--launcher", "slurm", "--time", "10")
    job = output.split("job ids: ")[1].split()[0]
    (folder,) = json.loads((sweep.state_dir(options.out) / f"{entries[0].key}.json").read_text())["runs"]
    checkpoint = options.out / folder / "checkpoint.pt"
    deadline = time.monotonic() + WAIT_S
    while not checkpoint.exists():  # at least one epoch done, not the last one
        assert time.monotonic() < deadline and not (options.out / folder / "record.json").exists()
        time.sleep(0.2)
    subprocess.run(["scancel", "--signal=USR2", job], check=True, env=slurm.env)
    rows = wait_done(entries, options)
    assert rows[0].state == "done", sweep.format_status(rows)
    job_status = json.loads((sweep.state_dir(options.out) / f"{entries[0].key}.status.json").read_text())
    assert job_status["requeues"] == 1 and job_status["state"] == "done"
    (record,) = records(options.out).values()
    assert record["compute"]["resumed_from_epoch"] >= 1 and record["ran_on"]["job_id"] == job
    local_out = tmp_path / "local"
    invoke("sweep", *common, "--out", str(local_out))
    (uninterrupted,) = records(local_out).values()
    assert uninterrupted["compute"]["resumed_from_epoch"] is None
    assert_same_results(records(options.out), records(local_out))


def test_a_two_process_job_trains_data_parallel(slurm, mini_manifest_dir: Path, tmp_path: Path):
    """--gpus-per-job 2 with --device cpu: two Slurm tasks, ranks and master address from the allocation,
    gloo; the same result as torchrun's two local processes."""
    lines = ["--method ce --protocol glt --epochs 1"]
    extra = ("--gpus-per-job", "2", "--device", "cpu")
    common, entries, _ = setup(tmp_path, mini_manifest_dir, "slurm", lines, "0", *extra)
    options = sweep.Options(
        out=tmp_path / "slurm", manifest_dir=mini_manifest_dir, benchmark=MINI, gpus_per_job=2
    )
    invoke("sweep", *common, "--out", str(options.out), "--launcher", "slurm", "--time", "10")
    rows = wait_done(entries, options)
    assert rows[0].state == "done", sweep.format_status(rows)
    (record,) = records(options.out).values()
    assert record["world_size"] == 2 and record["ran_on"]["launcher"] == "slurm"
    local_out = tmp_path / "local"
    invoke("sweep", *common, "--out", str(local_out))
    (local,) = records(local_out).values()
    assert local["world_size"] == 2
    assert_same_results(records(options.out), records(local_out))
