"""`glt-bench sweep` and `glt-bench status`: many `run`s, locally or as one Slurm job array (submitit).

A sweep file holds one run configuration per line: the arguments after `glt-bench run` (the format of
docs/results-sweep.txt), e.g. `--method ifl --set loss=ce`, optionally with its own `--benchmark`,
`--recipe`, `--epochs` or `--protocol`. Each line × each seed is an *entry*: the argument list of one
`glt-bench run` (always with `--resume`). Its state lives under `<out>/.sweep/`:

- `<key>.json`, written by the submitting side: the entry's arguments, the run folders its records go to
  (planned with the runner's own `plan_runs`, so the config hashes are exactly those `run` computes),
  the manifest and code version the plan was made for, and the launcher and job id that took it;
- `<key>.status.json`, written by the job: running (host, pid, attempt), requeued, done or failed (the
  error's last line and the log);
- `logs/`: one log per local entry, submitit's logs per Slurm job.

The submitting side reads and writes only these small files (plus `sbatch`/`squeue`): it imports torch
and the methods once, and only to plan entries it has not planned before, so a re-submission and a status
of 240 runs take well under a second. The job side (`SweepJob`, or `python -m benchmark.sweep` for the
local launcher) runs `glt-bench run` in-process: a Slurm job that is signalled (time limit, preemption)
requeues itself through submitit's checkpointing and continues from the run's last epoch checkpoint.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import pwd
import re
import shlex
import socket
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmark.atomic import write_json
from benchmark.errors import UserError

STATE_DIR = ".sweep"
LAUNCHERS = ("local", "slurm")
# Options a sweep sets for every entry; a sweep line may not set them itself.
SWEEP_OWNED = {
    "--seed": "--seeds",
    "--out": "--out",
    "--manifests": "--manifests",
    "--device": "--device",
    "--data-root": "--data-root",
    "--gpus": "--gpus-per-job",
    "--resume": "(always on)",
    "--force": "(a sweep never overwrites a record; delete the run folder)",
}
STATES = ("done", "running", "queued", "failed", "never started")
_SQUEUE_RUNNING = {"RUNNING", "COMPLETING", "CONFIGURING", "SIGNALING", "STAGE_OUT"}


# --- the sweep's entries -----------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    """What every entry of a sweep shares: where it reads and writes, and how it is run."""

    out: Path = Path("runs")
    manifest_dir: Path = Path("manifests")
    benchmark: str = "fashion-glt"
    device: str = "cpu"
    data_root: Path | None = None
    gpus_per_job: int = 1
    nodes_per_job: int = 1
    threads: int = 1
    retries: int = 1

    @property
    def processes_per_node(self) -> int:
        """Data-parallel processes per node: one per GPU (with --device cpu: CPU processes, gloo)."""
        return max(1, self.gpus_per_job // self.nodes_per_job)

    @property
    def world_size(self) -> int:
        return self.processes_per_node * self.nodes_per_job


@dataclass(frozen=True)
class Entry:
    """One `glt-bench run` of the sweep: a line of the file with one seed."""

    line: str
    seed: int
    argv: tuple[str, ...]

    @property
    def key(self) -> str:
        return hashlib.sha256(json.dumps(self.argv).encode()).hexdigest()[:16]


def parse_seeds(text: str) -> list[int]:
    """`0,1,2` or `0-4` (or a mix) → a sorted list of distinct seeds."""
    seeds: set[int] = set()
    for part in filter(None, (p.strip() for p in text.split(","))):
        low, sep, high = part.partition("-")
        try:
            seeds.update(range(int(low), int(high) + 1) if sep else [int(part)])
        except ValueError:
            raise UserError(f"--seeds: {part!r} is not a seed or a range like 0-2; give e.g. 0,1,2") from None
    if not seeds:
        raise UserError("--seeds is empty; give e.g. 0,1,2")
    return sorted(seeds)


def read_sweep(path: Path) -> list[tuple[int, list[str]]]:
    """The sweep file's configuration lines as (line number, arguments); `#` comments and blanks skipped."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"cannot read the sweep file {path}: {error}") from None
    lines = []
    for number, raw in enumerate(text.splitlines(), 1):
        try:
            args = shlex.split(raw, comments=True)
        except ValueError as error:
            raise UserError(f"{path} line {number}: {error}; fix the quoting") from None
        for arg in args:
            name = arg.split("=", 1)[0]
            if name in SWEEP_OWNED:
                raise UserError(
                    f"{path} line {number}: {name} is set by the sweep for every run ({SWEEP_OWNED[name]}); "
                    "remove it from the line"
                )
        if args:
            lines.append((number, args))
    if not lines:
        raise UserError(f"{path} holds no run configuration; write one `glt-bench run` argument list a line")
    return lines


def expand(path: Path, seeds: Iterable[int], options: Options) -> list[Entry]:
    """Every line × every seed, as the `glt-bench run` argument lists the jobs will execute."""
    shared_in = ["--benchmark", options.benchmark]  # first, so a line's own --benchmark wins
    shared_out = ["--manifests", str(options.manifest_dir), "--out", str(options.out)]
    shared_out += ["--device", options.device, "--resume"]
    if options.data_root is not None:
        shared_out += ["--data-root", str(options.data_root)]
    entries, seen = [], set()
    for number, args in read_sweep(path):
        for seed in seeds:
            entry = Entry(f"{path}:{number}", seed, (*shared_in, *args, "--seed", str(seed), *shared_out))
            if entry.key not in seen:
                seen.add(entry.key)
                entries.append(entry)
    return entries


# --- state files -------------------------------------------------------------------------------


def state_dir(out: Path) -> Path:
    return Path(out) / STATE_DIR


def _read(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _entry_path(out: Path, key: str) -> Path:
    return state_dir(out) / f"{key}.json"


def _status_path(out: Path, key: str) -> Path:
    return state_dir(out) / f"{key}.status.json"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def _update(path: Path, **changes: Any) -> dict[str, Any]:
    data = {**_read(path), **changes, "updated_at": _now()}
    write_json(path, data)
    return data


def manifest_hash(manifest_dir: Path, benchmark: str) -> str | None:
    """The content hash a manifest's metadata.json states (None when there is no manifest)."""
    return _read(Path(manifest_dir) / benchmark / "metadata.json").get("content_sha256")


def _code_version() -> str:
    """A fingerprint of what a config hash depends on besides the run's arguments and manifest: the
    methods' defaults, the recipes and the runner's source. A change re-plans; other commits do not."""
    from dataclasses import asdict

    from benchmark.catalog import METHOD_DEFAULTS
    from benchmark.recipes import RECIPES

    text = json.dumps(
        [METHOD_DEFAULTS, {name: asdict(r) for name, r in RECIPES}], sort_keys=True, default=str
    )
    runner = (Path(__file__).with_name("runner.py")).read_bytes()
    return hashlib.sha256(text.encode() + runner).hexdigest()[:16]


# --- planning: the runner's own config hashes --------------------------------------------------


def _run_params(argv: Iterable[str]) -> dict[str, Any]:
    """`glt-bench run`'s parsed options for an argument list (its own parser: same defaults, same checks)."""
    import click

    from benchmark.cli import run_cmd

    try:
        with run_cmd.make_context("run", list(argv)) as ctx:
            return dict(ctx.params)
    except click.UsageError as error:
        raise UserError(f"{error.format_message()} (in `glt-bench run {shlex.join(argv)}`)") from None


def plan_entry(argv: Iterable[str], device: str, world_size: int) -> list[str]:
    """The run folders (relative to --out) an entry's records go to, for the device and world size of the
    job that will run it; computed by the runner's `plan_runs`, so the hashes are exactly `run`'s."""
    import torch

    import baselines  # noqa: F401  (registers the methods)
    import splits  # noqa: F401  (registers the benchmarks)
    from baselines.base import parse_overrides
    from benchmark.protocols import PROTOCOLS
    from benchmark.runner import plan_runs, resolve

    params = _run_params(argv)
    _, method_cls, manifest, recipe = resolve(
        params["benchmark"], params["method"], params["manifest_dir"], params["recipe"], params["epochs"]
    )
    protocols = params["protocols"]
    planned = plan_runs(
        manifest, method_cls, recipe, list(PROTOCOLS) if "all" in protocols else sorted(set(protocols)),
        params["out"], seed=params["seed"], overrides=parse_overrides(list(params["overrides"]), method_cls),
        selection_rule=params["selection"], device=torch.device(device),
        precision=params["precision"], world=world_size, from_run=params["from_run"],
    )  # fmt: skip
    return [str(p.run_dir.relative_to(params["out"])) for p in planned]


def ensure_planned(entries: list[Entry], options: Options) -> dict[str, dict[str, Any]]:
    """Each entry's state, planning (once, for all entries at a time) those not planned for this manifest
    and this code version."""
    version, states, todo = None, {}, []
    hashes: dict[str, str | None] = {}
    for entry in entries:
        state = _read(_entry_path(options.out, entry.key))
        benchmark = _run_benchmark(entry.argv)
        if benchmark not in hashes:
            hashes[benchmark] = manifest_hash(options.manifest_dir, benchmark)
        if hashes[benchmark] is None:
            build = f"glt-bench build-splits --benchmark {benchmark} --manifests {options.manifest_dir}"
            raise UserError(f"no manifest of {benchmark} under {options.manifest_dir}: run `{build}` first")
        version = version or _code_version()
        plan_of = {"manifest_sha256": hashes[benchmark], "code": version, "world_size": options.world_size}
        if state.get("plan_of") != plan_of or "runs" not in state:
            todo.append((entry, plan_of))
        states[entry.key] = state
    for entry, plan_of in todo:
        runs = plan_entry(entry.argv, options.device, options.world_size)
        states[entry.key] = _update(
            _entry_path(options.out, entry.key), argv=list(entry.argv), line=entry.line, seed=entry.seed,
            runs=runs, plan_of=plan_of,
        )  # fmt: skip
    return states


def _run_benchmark(argv: Iterable[str]) -> str:
    """The benchmark an argument list runs (the last --benchmark wins, as in click)."""
    argv, benchmark = list(argv), "fashion-glt"
    for i, arg in enumerate(argv):
        if arg == "--benchmark" and i + 1 < len(argv):
            benchmark = argv[i + 1]
        elif arg.startswith("--benchmark="):
            benchmark = arg.split("=", 1)[1]
    return benchmark


# --- status ------------------------------------------------------------------------------------


@dataclass
class Row:
    """One entry's standing in the sweep."""

    entry: Entry
    state: str
    job: str = ""
    detail: str = ""
    log: str = ""


def slurm_queue() -> dict[str, str]:
    """Job id (`123_4` for array elements) → Slurm state, of this user's queued and running jobs."""
    user = pwd.getpwuid(os.getuid()).pw_name  # not --me, which Slurm before 20.11 lacks
    try:
        done = subprocess.run(
            ["squeue", f"--user={user}", "--array", "--noheader", "--format=%i %T"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as error:
        raise UserError(f"cannot ask Slurm for the queue (squeue): {error}") from None
    if done.returncode != 0:
        raise UserError(f"squeue failed: {done.stderr.strip() or done.returncode}")
    queue = {}
    for line in done.stdout.splitlines():
        job, _, state = line.strip().partition(" ")
        queue[job] = state
    return queue


def _pid_alive(host: str, pid: int | None) -> bool:
    if host != socket.gethostname() or not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def status(entries: list[Entry], options: Options, queue: dict[str, str] | None = None) -> list[Row]:
    """Where every entry stands: done, running, queued, failed or never started (reads no torch)."""
    rows = []
    states = {e.key: _read(_entry_path(options.out, e.key)) for e in entries}
    if queue is None and any(s.get("launcher") == "slurm" for s in states.values()):
        queue = slurm_queue()
    for entry in entries:
        state, job_state = states[entry.key], _read(_status_path(options.out, entry.key))
        runs, job = state.get("runs", []), state.get("job_id", "")
        row = Row(entry, "never started", job, log=state.get("log", ""))
        if runs and all((Path(options.out) / run / "record.json").exists() for run in runs):
            row.state = "done"
        elif state.get("launcher") == "slurm" and job in (queue or {}):
            row.state = "running" if queue[job] in _SQUEUE_RUNNING else "queued"
            if queue[job] not in ("RUNNING", "PENDING"):
                row.detail = f"Slurm: {queue[job].lower()}"
        elif job_state.get("state") in ("running", "requeued") and _pid_alive(
            job_state.get("host", ""), job_state.get("pid")
        ):
            row.state = "running"
        elif job_state.get("state") == "failed":
            row.state, row.detail = "failed", job_state.get("error", "")
        elif job_state.get("state") in ("running", "requeued", "done") or (
            state.get("launcher") == "slurm" and job
        ):
            row.state, row.detail = "failed", "the job ended without a record (killed, cancelled or lost)"
        if job_state.get("requeues") and row.state != "done":
            row.detail = f"{row.detail}, requeued {job_state['requeues']}×".lstrip(", ")
        rows.append(row)
    return rows


def format_status(rows: list[Row], width: int = 40) -> str:
    """The status table, a line per entry, failures with their error and log, then the overall bar."""
    lines = [f"{'state':<14} {'seed':>4}  {'job':<12} configuration"]
    for row in rows:
        config = _describe(row.entry.argv)
        lines.append(f"{row.state:<14} {row.entry.seed:>4}  {row.job or '-':<12} {config}")
        if row.state == "failed":
            lines.append(f"{'':>14} error: {row.detail or 'unknown'}")
            if row.log:
                lines.append(f"{'':>14} log:   {row.log}")
        elif row.detail:
            lines.append(f"{'':>14} {row.detail}")
    counts = {name: sum(r.state == name for r in rows) for name in STATES}
    done = counts["done"]
    filled = round(width * done / len(rows)) if rows else 0
    bar = "#" * filled + "-" * (width - filled)
    tally = ", ".join(f"{n} {name}" for name, n in counts.items() if n)
    lines.append(f"[{bar}] {done}/{len(rows)} done ({100 * done / max(1, len(rows)):.0f}%): {tally}")
    return "\n".join(lines)


def _describe(argv: Iterable[str]) -> str:
    """An entry's arguments without those every entry of the sweep shares."""
    argv, kept, skip = list(argv), [], False
    shared = {"--manifests", "--out", "--device", "--data-root", "--seed"}
    for i, arg in enumerate(argv):
        if skip:
            skip = False
            continue
        if arg in shared:
            skip = True
            continue
        if arg == "--resume" or (arg == "--benchmark" and i == 0):
            skip = arg == "--benchmark"
            continue
        kept.append(arg)
    return shlex.join(kept)


# --- submission ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SlurmOptions:
    """The Slurm resources of every job of the array."""

    partition: str | None = None
    time: str = "3:00:00"
    cpus_per_gpu: int = 4
    mem: str | None = None
    account: str | None = None
    qos: str | None = None
    array_parallelism: int = 256
    extra: tuple[str, ...] = ()
    max_requeues: int = 10


def minutes(text: str) -> int:
    """A Slurm time limit in whole minutes, rounded up. Slurm's formats: `M`, `M:S`, `H:M:S`, `D-H`,
    `D-H:M`, `D-H:M:S`."""
    match = re.fullmatch(r"(?:(\d+)-)?(\d+(?::\d+){0,2})", text.strip())
    if not match:
        raise UserError(f"--time {text!r}: give minutes, H:MM:SS or D-HH:MM:SS, as sbatch takes them")
    parts = [int(x) for x in match.group(2).split(":")]
    if match.group(1) is None:  # M, M:S, H:M:S
        hours, mins, secs = parts if len(parts) == 3 else [0, *[*parts, 0][:2]]
    else:  # D-H, D-H:M, D-H:M:S
        hours, mins, secs = [*parts, 0, 0][:3]
        hours += 24 * int(match.group(1))
    return max(1, -(-(hours * 3600 + mins * 60 + secs) // 60))


def _slurm_executor(options: Options, slurm: SlurmOptions):
    import submitit

    extra = {}
    for pair in slurm.extra:  # KEY=VALUE, or KEY alone for a flag such as `hold` or `exclusive`
        key, sep, value = pair.partition("=")
        key = key.strip().lstrip("-").replace("_", "-")
        if not key or (sep and not value):
            raise UserError(
                f"--slurm expects KEY=VALUE or KEY (an sbatch option without dashes), got {pair!r}"
            )
        extra[key] = value if sep else True
    cuda = options.device == "cuda"
    executor = submitit.SlurmExecutor(
        folder=state_dir(options.out) / "logs", max_num_timeout=slurm.max_requeues
    )
    executor.update_parameters(
        job_name="glt-bench",
        time=minutes(slurm.time),
        nodes=options.nodes_per_job,
        ntasks_per_node=options.processes_per_node,
        cpus_per_task=slurm.cpus_per_gpu if cuda else options.threads,
        array_parallelism=slurm.array_parallelism,
        setup=[f"export OMP_NUM_THREADS={slurm.cpus_per_gpu if cuda else options.threads}"],
        **({"gpus_per_node": options.processes_per_node} if cuda else {}),
        **{k: v for k, v in (("partition", slurm.partition), ("mem", slurm.mem),
                             ("account", slurm.account), ("qos", slurm.qos)) if v},
        **({"additional_parameters": extra} if extra else {}),
    )  # fmt: skip
    return executor


@dataclass
class Submitted:
    """What a sweep invocation did."""

    done: int = 0
    active: int = 0
    started: list[str] = field(default_factory=list)  # job ids (Slurm) or entry keys (local)
    failed: int = 0


def submit(
    entries: list[Entry],
    options: Options,
    launcher: str,
    *,
    slurm: SlurmOptions = SlurmOptions(),
    jobs: int = 1,
    dry_run: bool = False,
    echo: Callable[[str], None] = print,
) -> Submitted:
    """Plan every entry, skip those done or queued/running, start the rest with the launcher."""
    if launcher not in LAUNCHERS:
        raise UserError(f"--launcher must be one of {', '.join(LAUNCHERS)}, got {launcher!r}")
    if options.gpus_per_job < 1 or options.nodes_per_job < 1 or options.gpus_per_job % options.nodes_per_job:
        raise UserError(
            f"--gpus-per-job {options.gpus_per_job} must be a positive multiple of "
            f"--nodes-per-job {options.nodes_per_job}"
        )
    if launcher == "local" and options.nodes_per_job > 1:
        raise UserError("--nodes-per-job > 1 needs --launcher slurm")
    if launcher == "slurm":
        minutes(slurm.time)
    state_dir(options.out).mkdir(parents=True, exist_ok=True)
    ensure_planned(entries, options)
    rows = status(entries, options)
    outcome = Submitted(
        done=sum(r.state == "done" for r in rows), active=sum(r.state in ("running", "queued") for r in rows)
    )
    todo = [r.entry for r in rows if r.state not in ("done", "running", "queued")]
    echo(
        f"{len(entries)} runs: {outcome.done} done, {outcome.active} queued or running, "
        f"{len(todo)} to {'start' if launcher == 'local' else 'submit'}"
    )
    if dry_run or not todo:
        return outcome
    for entry in todo:  # a new attempt starts with a clean job status
        _status_path(options.out, entry.key).unlink(missing_ok=True)
    if launcher == "slurm":
        outcome.started = _submit_slurm(todo, options, slurm)
        echo(f"submitted {len(todo)} runs as Slurm job array {outcome.started[0].split('_')[0]}")
    else:
        outcome.failed = _run_local(todo, options, jobs, echo)
        outcome.started = [e.key for e in todo]
    return outcome


def _submit_slurm(todo: list[Entry], options: Options, slurm: SlurmOptions) -> list[str]:
    executor = _slurm_executor(options, slurm)
    jobs = []
    try:
        with executor.batch():
            for entry in todo:
                jobs.append(executor.submit(SweepJob(str(options.out), entry.key, options.retries)))
    except Exception as error:  # submitit raises plain Exceptions with sbatch's message
        message = str(error).strip().splitlines()
        raise UserError(f"sbatch refused the job array: {message[-1] if message else error}") from None
    now = _now()
    for entry, job in zip(todo, jobs, strict=True):
        _update(
            _entry_path(options.out, entry.key), launcher="slurm", job_id=job.job_id, submitted_at=now,
            log=str(job.paths.stderr),
        )  # fmt: skip
    return [job.job_id for job in jobs]


def _run_local(todo: list[Entry], options: Options, jobs: int, echo: Callable[[str], None]) -> int:
    """Run the entries here, `jobs` processes at a time; returns how many failed."""
    logs = state_dir(options.out) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    command = [sys.executable]
    if options.world_size > 1:
        command += ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={options.world_size}"]
    env = {**os.environ, "OMP_NUM_THREADS": str(options.threads), "GLT_BENCH_LAUNCHER": "local"}

    def one(entry: Entry) -> int:
        log = logs / f"{entry.key}.log"
        _update(_entry_path(options.out, entry.key), launcher="local", job_id="", log=str(log))
        with log.open("ab") as handle:
            return subprocess.run(
                [*command, "-m", "benchmark.sweep", str(options.out), entry.key, str(options.retries)],
                stdout=handle, stderr=subprocess.STDOUT, env=env, check=False,
            ).returncode  # fmt: skip

    failed = 0
    with concurrent.futures.ThreadPoolExecutor(max(1, jobs)) as pool:
        futures = {pool.submit(one, entry): entry for entry in todo}
        for number, future in enumerate(concurrent.futures.as_completed(futures), 1):
            entry, code = futures[future], future.result()
            failed += code != 0
            verdict = "done" if code == 0 else f"FAILED (exit {code}, log {logs / f'{entry.key}.log'})"
            echo(f"[{number}/{len(todo)}] {verdict}: seed {entry.seed} {_describe(entry.argv)}")
    return failed


# --- the job side ------------------------------------------------------------------------------


def _rank() -> int:
    return int(os.environ.get("RANK", "0"))


def execute(out: str | Path, key: str, retries: int) -> None:
    """Run one entry in this process (`glt-bench run` in-process), retrying a crash `retries` times;
    rank 0 keeps the entry's status file. A one-line error (bad configuration) is never retried."""
    import click

    from benchmark import cli

    out = Path(out)
    state = _read(_entry_path(out, key))
    if "argv" not in state:
        raise UserError(f"no sweep entry {key} under {state_dir(out)}")
    status_path = _status_path(out, key)
    main_rank = _rank() == 0
    os.environ.setdefault("GLT_BENCH_LAUNCHER", "direct")
    argv = ["run", *state["argv"]]
    for attempt in range(1, retries + 2):
        if main_rank:
            _update(
                status_path, state="running", attempt=attempt, host=socket.gethostname(), pid=os.getpid(),
                job_id=job_id(), started_at=_now(),
            )  # fmt: skip
        saved_argv, sys.argv = sys.argv, ["glt-bench", *argv]  # what the record states as the command
        try:
            if main_rank and attempt == 1:  # planned again where it runs: the folders `run` really writes
                world, device = int(os.environ.get("WORLD_SIZE", "1")), _run_params(state["argv"])["device"]
                _update(_entry_path(out, key), runs=plan_entry(state["argv"], device, world))
            cli.main.main(argv, prog_name="glt-bench", standalone_mode=False)
        except (UserError, click.ClickException) as error:  # the same again would fail the same way
            if main_rank:
                _update(status_path, state="failed", error=_one_line(error))
            raise
        except Exception as error:
            if main_rank:
                _update(status_path, state="failed", error=f"{type(error).__name__}: {_one_line(error)}")
            if attempt > retries:
                raise
            print(f"attempt {attempt} failed ({_one_line(error)}); retrying", file=sys.stderr)
            continue
        finally:
            sys.argv = saved_argv
        if main_rank:
            _update(status_path, state="done", error="")
        return


def _one_line(error: Exception) -> str:
    """An error's last line (a UserError's whole message)."""
    text = error.format_message() if hasattr(error, "format_message") else str(error)
    return (text.strip().splitlines() or [type(error).__name__])[-1]


def job_id() -> str:
    """This process's Slurm job id (`123_4` for an array element), or empty outside Slurm."""
    if os.environ.get("SLURM_ARRAY_JOB_ID"):
        return f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ.get('SLURM_ARRAY_TASK_ID', '')}"
    return os.environ.get("SLURM_JOB_ID", "")


def where_it_ran(wall_seconds: float, device: str, world_size: int) -> dict[str, Any]:
    """The record's `ran_on`: launcher, Slurm job id, node, GPU model, wall time and GPU-hours
    (wall time × GPUs used). Called by the runner when it writes a record."""
    gpus = world_size if device.startswith("cuda") else 0
    gpu_model = None
    torch = sys.modules.get("torch")
    if gpus and torch is not None and torch.cuda.is_available():
        gpu_model = torch.cuda.get_device_name()
    return {
        "launcher": os.environ.get("GLT_BENCH_LAUNCHER", "direct"),
        "job_id": job_id() or None,
        "node": os.environ.get("SLURMD_NODENAME") or socket.gethostname(),
        "gpu_model": gpu_model,
        "gpus": gpus,
        "wall_seconds": round(wall_seconds, 3),
        "gpu_hours": round(wall_seconds * gpus / 3600, 4),
    }


class SweepJob:
    """The callable of one Slurm job: sets up data parallelism across the job's tasks and runs its entry.

    A submitit Checkpointable: when Slurm signals the job (time limit, preemption, `scancel --signal=USR2`)
    submitit calls `checkpoint`, which resubmits the same call; the entry always runs with `--resume`, so
    the requeued job continues from the run's last epoch checkpoint."""

    def __init__(self, out: str, key: str, retries: int) -> None:
        self.out, self.key, self.retries = out, key, retries

    def __call__(self) -> None:
        import submitit

        env = submitit.JobEnvironment()
        os.environ["GLT_BENCH_LAUNCHER"] = "slurm"
        if env.num_tasks > 1:  # torchrun's variables, the master being the first node of the allocation
            submitit.helpers.TorchDistributedEnvironment().export(
                set_cuda_visible_devices=False, overwrite=True
            )
        execute(self.out, self.key, self.retries)

    def checkpoint(self, *args: Any, **kwargs: Any):
        import submitit

        if _rank() == 0:
            path = _status_path(Path(self.out), self.key)
            _update(path, state="requeued", requeues=_read(path).get("requeues", 0) + 1)
        return submitit.helpers.DelayedSubmission(SweepJob(self.out, self.key, self.retries))


def main(argv: list[str] | None = None) -> int:
    """`python -m benchmark.sweep OUT KEY RETRIES`: run one entry here (the local launcher's worker)."""
    import click

    out, key, retries = argv if argv is not None else sys.argv[1:]
    os.environ["GLT_BENCH_LAUNCHER"] = "local"
    try:
        execute(out, key, int(retries))
    except (UserError, click.ClickException) as error:
        print(f"Error: {error}", file=sys.stderr)
        return 1
    except Exception:
        traceback.print_exc()  # into the entry's log: a crash's whole story
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
