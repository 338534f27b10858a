"""Submitting a 243-run sweep and printing its status, whole `glt-bench` processes, against a target of
≤ 5 s each: the 27 configurations of docs/results-sweep.txt × 3 protocols × 3 seeds on fashion-glt-mini
(built with the fast `pixels` extractor in a temporary folder). Against a real one-node Slurm
(tests/benchmark/slurm_cluster.py; the jobs are submitted held and cancelled afterwards) when slurm-wlm
and munge are installed or installable, else as a dry run (planning and state, no sbatch).

Figures: the first submission (plans every run with the runner: imports torch and the methods once),
a second submission (everything planned and queued: submits nothing), and the status table."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "benchmark"))
import slurm_cluster  # noqa: E402

GLT = [sys.executable, "-m", "benchmark.cli"]


def timed(args: list[str], env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run([*GLT, *args], capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"glt-bench {shlex.join(args)} failed:\n{done.stdout}{done.stderr}")
    return seconds, done.stdout


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="glt-sweep-bench-") as tmp:
        tmp = Path(tmp)
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        manifests = tmp / "manifests"
        subprocess.run(
            [*GLT, "build-splits", "--benchmark", "fashion-glt-mini", "--extractor", "pixels",
             "--manifests", str(manifests), "--cache-dir", str(tmp / "cache")],
            check=True, capture_output=True, env=env, cwd=ROOT,
        )  # fmt: skip
        lines = [
            line.strip()
            for line in (ROOT / "docs" / "results-sweep.txt").read_text().splitlines()
            if line.strip() and not line.startswith("#")
        ]
        sweep_file = tmp / "sweep.txt"
        sweep_file.write_text("".join(f"{x} --protocol {p}\n" for x in lines for p in ("clt", "glt", "alt")))
        common = ["--benchmark", "fashion-glt-mini", "--seeds", "0,1,2", "--manifests", str(manifests)]
        common += ["--out", str(tmp / "runs")]
        cluster, reason, array = None, slurm_cluster.missing_reason(), None
        if reason is None:
            cluster = slurm_cluster.start(tmp / "slurm")
            env["SLURM_CONF"] = str(cluster.conf)
            mode = ["--launcher", "slurm", "--slurm", "hold", "--time", "10"]
            print(f"against a local one-node Slurm ({cluster.node}); jobs submitted held")
        else:
            mode = ["--dry-run"]
            print(f"dry run (no Slurm: {reason})")
        try:
            first, out = timed(["sweep", str(sweep_file), *common, *mode], env)
            count = out.splitlines()[0]
            array = next((x.split()[-1] for x in out.splitlines() if "job array" in x), None)
            print(f"first submission ({count}; plans with torch + methods): {first:.2f} s")
            second, out = timed(["sweep", str(sweep_file), *common, *mode], env)
            print(f"second submission ({out.splitlines()[0]}): {second:.2f} s  (target ≤ 5 s)")
            shown, out = timed(["status", str(sweep_file), *common], env)
            print(f"status of {len(out.splitlines()) - 2} runs: {shown:.2f} s  (target ≤ 5 s)")
            print(f"  {out.splitlines()[-1]}")
        finally:
            if cluster is not None:
                if array:
                    subprocess.run(["scancel", array], env=env, check=False)
                cluster.stop()


if __name__ == "__main__":
    main()
