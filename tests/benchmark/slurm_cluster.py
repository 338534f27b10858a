"""A real one-node Slurm cluster in a temporary folder (Debian's slurm-wlm and munge), for the sweep tests
and the submission bench: no systemd, nothing under /etc touched, daemons stopped by their pids."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

PACKAGES = ("slurm-wlm", "munge")
COMMANDS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel", "sinfo")
MUNGE_KEY = Path("/etc/munge/munge.key")


def missing_reason() -> str | None:
    """Why no cluster can be started here (None when it can): installs the packages as root first."""
    if os.geteuid() != 0:
        return "a one-node Slurm cluster needs root here (slurmd runs as root, munged as munge)"
    if all(_which(name) for name in COMMANDS) and MUNGE_KEY.exists():
        return None
    if not shutil.which("apt-get"):
        return f"slurm-wlm and munge are not installed and there is no apt-get to install {PACKAGES}"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], capture_output=True, env=env, check=False)
    done = subprocess.run(
        ["apt-get", "install", "-y", "-qq", *PACKAGES], capture_output=True, text=True, env=env, check=False
    )
    if done.returncode != 0 or not all(_which(name) for name in COMMANDS):
        return f"apt-get install {' '.join(PACKAGES)} failed: {done.stderr.strip().splitlines()[-1:]}"
    return None


def _which(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")


@dataclass
class Cluster:
    """A running one-node cluster: its config file, the environment its clients need, its daemons."""

    root: Path
    conf: Path
    node: str
    pids: dict[str, int] = field(default_factory=dict)
    munge_dir: Path | None = None

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def stop(self) -> None:
        """Cancel this cluster's jobs, then stop the daemons it started, by their pids (slurmd first,
        munged last)."""
        if "slurmctld" in self.pids:
            subprocess.run(["scancel", "--full", f"--user={os.geteuid()}"], env=self.env, check=False)
            for _ in range(100):  # until slurmd has ended their steps (and their processes)
                done = subprocess.run(
                    ["squeue", "--noheader"], env=self.env, capture_output=True, text=True, check=False
                )
                if done.returncode != 0 or not done.stdout.strip():
                    break
                time.sleep(0.2)
        for name in ("slurmd", "slurmctld", "munged"):
            pid = self.pids.pop(name, None)
            if pid is None:
                continue
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            for _ in range(100):
                if not _alive(pid):
                    break
                time.sleep(0.1)
            else:
                os.kill(pid, signal.SIGKILL)
        if self.munge_dir is not None:
            shutil.rmtree(self.munge_dir, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


def _read_pid(path: Path, timeout: float = 20) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return int(path.read_text().strip())
        time.sleep(0.05)
    raise RuntimeError(f"{path} did not appear within {timeout:.0f} s")


def start(root: Path, cpus: int = 2) -> Cluster:
    """Write a slurm.conf under `root`, start munged, slurmctld and slurmd; return once the node is idle."""
    root.mkdir(parents=True, exist_ok=True)
    node = socket.gethostname()
    for sub in ("state", "spool", "log"):
        (root / sub).mkdir(exist_ok=True)
    conf = root / "slurm.conf"
    conf.write_text(
        "\n".join(
            [
                "ClusterName=gltbench",
                f"SlurmctldHost={node}",
                "SlurmUser=root",
                "SlurmdUser=root",
                "AuthType=auth/munge",
                "ProctrackType=proctrack/linuxproc",
                "TaskPlugin=task/none",
                "SwitchType=switch/none",
                "MpiDefault=none",
                "JobRequeue=1",
                "ReturnToService=2",
                "SchedulerType=sched/backfill",
                "SelectType=select/cons_tres",
                "SelectTypeParameters=CR_CPU",
                "AccountingStorageType=accounting_storage/none",
                "JobAcctGatherType=jobacct_gather/none",
                "SchedulerParameters=sched_interval=1",
                "MessageTimeout=30",
                "KillWait=5",
                "MinJobAge=600",
                f"SlurmctldPort={_free_port()}",
                f"SlurmdPort={_free_port()}",
                f"SlurmctldPidFile={root}/slurmctld.pid",
                f"SlurmdPidFile={root}/slurmd.pid",
                f"StateSaveLocation={root}/state",
                f"SlurmdSpoolDir={root}/spool",
                f"SlurmctldLogFile={root}/log/slurmctld.log",
                f"SlurmdLogFile={root}/log/slurmd.log",
                f"NodeName={node} CPUs={cpus} RealMemory=2000 State=UNKNOWN",
                f"PartitionName=debug Nodes={node} Default=YES MaxTime=INFINITE State=UP",
                "",
            ]
        )
    )
    cluster = Cluster(root, conf, node)
    # munged runs as `munge`, which cannot enter a private temp folder: its files get their own folder.
    socket_dir = cluster.munge_dir = Path(tempfile.mkdtemp(prefix="glt-bench-munge-"))
    socket_dir.chmod(0o755)
    shutil.chown(socket_dir, "munge", "munge")
    munge_socket = socket_dir / "munge.socket.2"
    try:
        subprocess.run(
            ["runuser", "-u", "munge", "--", _which("munged"), f"--socket={munge_socket}",
             f"--pid-file={socket_dir}/munged.pid", f"--log-file={socket_dir}/munged.log",
             f"--seed-file={socket_dir}/munged.seed", "--force"],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        cluster.pids["munged"] = _read_pid(socket_dir / "munged.pid")
        # The daemons and clients reach munged through this socket. cred_expire (default 120 s) is also
        # how long a requeued job waits before it may start again: 20 s keeps the requeue test short.
        with conf.open("a") as handle:
            handle.write(f"AuthInfo=socket={munge_socket},cred_expire=20\n")
        env = cluster.env
        subprocess.run([_which("slurmctld"), "-f", str(conf)], check=True, env=env, capture_output=True)
        cluster.pids["slurmctld"] = _read_pid(root / "slurmctld.pid")
        subprocess.run([_which("slurmd"), "-f", str(conf)], check=True, env=env, capture_output=True)
        cluster.pids["slurmd"] = _read_pid(root / "slurmd.pid")
        _wait_idle(cluster)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _wait_idle(cluster: Cluster, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    state = ""
    while time.monotonic() < deadline:
        done = subprocess.run(
            ["sinfo", "--noheader", "--format=%T"], capture_output=True, text=True, env=cluster.env
        )
        state = done.stdout.strip()
        if state == "idle":
            return
        if state in ("down", "drained", "down*"):
            subprocess.run(
                ["scontrol", "update", f"NodeName={cluster.node}", "State=RESUME"],
                capture_output=True, env=cluster.env, check=False,
            )  # fmt: skip
        time.sleep(0.3)
    log = (cluster.root / "log" / "slurmctld.log").read_text()[-2000:]
    raise RuntimeError(f"the Slurm node is {state!r}, not idle, after {timeout:.0f} s; slurmctld log:\n{log}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
