"""`glt-bench sweep` and `status` without Slurm: sweep files, planning, local launcher, status, retries."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from benchmark import cli, sweep
from benchmark.errors import UserError
from benchmark.runner import run

MINI = "fashion-glt-mini"


def write_sweep(path: Path, *lines: str) -> Path:
    path.write_text("# a comment line\n\n" + "\n".join(lines) + "\n", encoding="utf-8")
    return path


def sweep_args(sweep_file: Path, manifests: Path, out: Path, *extra: str) -> list[str]:
    return [str(sweep_file), "--benchmark", MINI, "--manifests", str(manifests), "--out", str(out), *extra]


def test_seeds_and_time_limits_parse():
    assert sweep.parse_seeds("2,0,1,1") == [0, 1, 2] and sweep.parse_seeds("0-2,5") == [0, 1, 2, 5]
    for bad in ("", "a", "1-x"):
        with pytest.raises(UserError, match="--seeds"):
            sweep.parse_seeds(bad)
    times = ("90", "1:30", "1:30:00", "0:00:30", "1-00:00:00", "2-01:30", "2-12", "1-0:0:1")
    assert [sweep.minutes(t) for t in times] == [90, 2, 90, 1, 1440, 2970, 3600, 1441]  # sbatch's meanings
    with pytest.raises(UserError, match="--time"):
        sweep.minutes("soon")


def test_lines_times_seeds_become_run_argument_lists(tmp_path: Path):
    path = write_sweep(tmp_path / "s.txt", "--method ce  # inline comment", "--method la --benchmark other")
    options = sweep.Options(out=tmp_path / "runs", benchmark=MINI, device="cpu")
    entries = sweep.expand(path, [0, 1], options)
    assert [(e.line, e.seed) for e in entries] == [
        (f"{path}:3", 0), (f"{path}:3", 1), (f"{path}:4", 0), (f"{path}:4", 1),
    ]  # fmt: skip
    first = entries[0].argv
    assert first[:4] == ("--benchmark", MINI, "--method", "ce") and "--resume" in first
    assert first[first.index("--seed") + 1] == "0" and first[first.index("--out") + 1] == str(
        tmp_path / "runs"
    )
    assert sweep._run_benchmark(entries[2].argv) == "other"  # a line's own benchmark wins
    assert len({e.key for e in entries}) == 4 and entries[0].key == sweep.expand(path, [0], options)[0].key


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("--method ce --seed 3", "--seed is set by the sweep"),
        ("--method ce --out=x", "--out is set by the sweep"),
        ("--method 'ce", "line 3: No closing quotation"),
        ("# nothing", "holds no run configuration"),
    ],
)
def test_bad_sweep_files_give_one_line(tmp_path: Path, text: str, message: str):
    runner = CliRunner()
    path = write_sweep(tmp_path / "s.txt", text)
    result = runner.invoke(cli.main, ["sweep", *sweep_args(path, tmp_path, tmp_path / "runs")])
    assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "runs").exists()


def test_a_bad_run_option_is_named_before_anything_starts(mini_manifest_dir: Path, tmp_path: Path):
    path = write_sweep(tmp_path / "s.txt", "--method ce --set nosuch=1")
    result = CliRunner().invoke(cli.main, ["sweep", *sweep_args(path, mini_manifest_dir, tmp_path / "runs")])
    assert result.exit_code == 1 and "no hyperparameter 'nosuch'" in result.output
    assert not list((tmp_path / "runs").rglob("record.json"))


def test_status_reads_the_state_files(tmp_path: Path):
    """done / running / queued / failed / never started, from fabricated state (no torch, no Slurm)."""
    path = write_sweep(tmp_path / "s.txt", "--method ce", "--method la", "--method focal")
    options = sweep.Options(out=tmp_path / "runs", benchmark=MINI)
    entries = sweep.expand(path, [0, 1], options)
    state = sweep.state_dir(options.out)
    state.mkdir(parents=True)

    def entry(i: int, **fields) -> None:
        run = f"{MINI}/x/run{i}"
        sweep.write_json(
            state / f"{entries[i].key}.json", {"argv": list(entries[i].argv), "runs": [run], **fields}
        )

    entry(0)  # done: its record exists
    (options.out / MINI / "x" / "run0").mkdir(parents=True)
    (options.out / MINI / "x" / "run0" / "record.json").write_text("{}")
    entry(1, launcher="slurm", job_id="7_1")  # running in Slurm
    entry(2, launcher="slurm", job_id="7_2")  # pending in Slurm
    entry(3, launcher="local", log="/logs/3.log")
    sweep.write_json(state / f"{entries[3].key}.status.json", {"state": "failed", "error": "Boom: last line"})
    entry(4, launcher="slurm", job_id="6_0")  # left the queue without a record
    sweep.write_json(
        state / f"{entries[4].key}.status.json", {"state": "requeued", "requeues": 2, "host": "elsewhere"}
    )
    rows = sweep.status(entries, options, queue={"7_1": "RUNNING", "7_2": "PENDING"})
    assert [r.state for r in rows] == ["done", "running", "queued", "failed", "failed", "never started"]
    assert rows[3].detail == "Boom: last line" and rows[3].log == "/logs/3.log"
    assert "without a record" in rows[4].detail and "requeued 2×" in rows[4].detail
    text = sweep.format_status(rows, width=10)
    assert "error: Boom: last line" in text and "log:   /logs/3.log" in text
    assert text.splitlines()[-1] == (
        "[##--------] 1/6 done (17%): 1 done, 1 running, 1 queued, 2 failed, 1 never started"
    )
    # a local job whose process is alive here is running
    sweep.write_json(
        state / f"{entries[5].key}.status.json",
        {"state": "running", "host": socket.gethostname(), "pid": os.getpid()},
    )
    entry(5, launcher="local")
    assert sweep.status(entries[5:], options, queue={})[0].state == "running"


def test_where_it_ran_reads_slurm_variables(monkeypatch: pytest.MonkeyPatch):
    for name, value in {
        "GLT_BENCH_LAUNCHER": "slurm",
        "SLURM_ARRAY_JOB_ID": "41",
        "SLURM_ARRAY_TASK_ID": "3",
        "SLURM_JOB_ID": "44",
        "SLURMD_NODENAME": "gpu017",
    }.items():
        monkeypatch.setenv(name, value)
    where = sweep.where_it_ran(1800, "cuda", 4)
    assert where == {
        "launcher": "slurm", "job_id": "41_3", "node": "gpu017", "gpu_model": None, "gpus": 4,
        "wall_seconds": 1800, "gpu_hours": 2.0,
    }  # fmt: skip
    monkeypatch.delenv("SLURM_ARRAY_JOB_ID")
    assert (
        sweep.where_it_ran(10, "cpu", 2)["job_id"] == "44" and sweep.where_it_ran(10, "cpu", 2)["gpus"] == 0
    )


def test_local_sweep_runs_each_config_once_with_runs_own_hashes(mini_manifest_dir: Path, tmp_path: Path):
    out = tmp_path / "runs"
    path = write_sweep(tmp_path / "s.txt", "--method ce --protocol glt --epochs 1")
    args = ["sweep", *sweep_args(path, mini_manifest_dir, out, "--seeds", "0,1", "--jobs", "2")]
    runner = CliRunner()
    first = runner.invoke(cli.main, args)
    assert first.exit_code == 0, first.output
    assert "2 runs: 0 done, 0 queued or running, 2 to start" in first.output
    entries = sweep.expand(
        path, [0, 1], sweep.Options(out=out, manifest_dir=mini_manifest_dir, benchmark=MINI)
    )
    for entry in entries:
        state = json.loads((sweep.state_dir(out) / f"{entry.key}.json").read_text())
        (folder,) = state["runs"]
        record = json.loads((out / folder / "record.json").read_text())
        assert record["seed"] == entry.seed and record["ran_on"]["launcher"] == "local"
        assert record["environment"]["argv"][:2] == ["glt-bench", "run"]
    # `run` itself finds the sweep's record under the same config hash and skips it
    (done,) = run(
        benchmark=MINI, method="ce", protocols=["glt"], manifest_dir=mini_manifest_dir, out=out, epochs=1
    )
    assert str(done.parent.relative_to(out)) in {
        json.loads((sweep.state_dir(out) / f"{e.key}.json").read_text())["runs"][0] for e in entries
    }
    again = runner.invoke(cli.main, args)
    assert again.exit_code == 0 and "2 runs: 2 done, 0 queued or running, 0 to start" in again.output
    status = runner.invoke(cli.main, ["status", *sweep_args(path, mini_manifest_dir, out, "--seeds", "0,1")])
    assert status.exit_code == 0 and "2/2 done (100%)" in status.output
    # once planned, neither the status nor a re-submission imports torch or the methods
    code = (
        "import sys\nfrom benchmark.cli import main\ntry:\n    main(sys.argv[1:])\n"
        "except SystemExit as exit:\n    assert not exit.code, exit.code\n"
        "print(sorted(m for m in ('torch', 'baselines', 'splits') if m in sys.modules))"
    )
    for verb in ("status", "sweep"):
        command = [
            sys.executable,
            "-c",
            code,
            verb,
            *sweep_args(path, mini_manifest_dir, out, "--seeds", "0,1"),
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        assert done.returncode == 0 and done.stdout.splitlines()[-1] == "[]", done.stdout + done.stderr


def test_a_failing_run_is_reported_with_its_error_and_log(mini_manifest_dir: Path, tmp_path: Path):
    out, missing = tmp_path / "runs", tmp_path / "no-such-data"
    path = write_sweep(tmp_path / "s.txt", "--method ce --protocol glt --epochs 1")
    args = sweep_args(path, mini_manifest_dir, out, "--seeds", "0", "--data-root", str(missing))
    result = CliRunner().invoke(cli.main, ["sweep", *args, "--retries", "0"])
    assert result.exit_code == 1 and "1 runs failed" in result.output and "--status" in result.output
    status = CliRunner().invoke(cli.main, ["status", *args])
    lines = status.output.splitlines()
    assert lines[1].startswith("failed") and str(missing) in lines[2] and "log:" in lines[3]
    log = Path(lines[3].split("log:", 1)[1].strip())
    assert log.exists() and str(missing) in log.read_text()


def test_a_crash_is_retried_then_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """execute() reruns a crashed run `retries` times; a one-line error (UserError) is never retried."""
    out = tmp_path / "runs"
    entry = sweep.Entry("s.txt:1", 0, ("--method", "ce"))
    sweep.write_json(sweep._entry_path(out, entry.key), {"argv": list(entry.argv)})
    monkeypatch.setattr(sweep, "plan_entry", lambda argv, device, world: ["x/run"])
    calls = []

    def crash_then_succeed(argv, **kwargs):
        calls.append(argv)
        if len(calls) == 1:
            raise RuntimeError("CUDA error: an illegal memory access\nlast line")

    monkeypatch.setattr(cli.main, "main", crash_then_succeed)
    sweep.execute(out, entry.key, retries=1)
    status = json.loads(sweep._status_path(out, entry.key).read_text())
    assert len(calls) == 2 and status["state"] == "done" and status["attempt"] == 2
    calls.clear()
    with pytest.raises(RuntimeError):
        sweep.execute(out, entry.key, retries=0)
    status = json.loads(sweep._status_path(out, entry.key).read_text())
    assert status["state"] == "failed" and status["error"] == "RuntimeError: last line"

    def user_error(argv, **kwargs):
        calls.append(argv)
        raise UserError("bad config")

    calls.clear()
    monkeypatch.setattr(cli.main, "main", user_error)
    with pytest.raises(UserError):
        sweep.execute(out, entry.key, retries=3)
    assert (
        len(calls) == 1
        and json.loads(sweep._status_path(out, entry.key).read_text())["error"] == "bad config"
    )
