"""A real one-node Slurm cluster for the sweep tests, started once per session and stopped by its pids."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("slurm_cluster", Path(__file__).with_name("slurm_cluster.py"))
slurm_cluster = sys.modules.setdefault("slurm_cluster", importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(slurm_cluster)


@pytest.fixture(scope="session")
def slurm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[slurm_cluster.Cluster]:
    """slurmctld + slurmd + munged on this machine (2 CPUs); the clients find it through SLURM_CONF."""
    reason = slurm_cluster.missing_reason()
    if reason:
        pytest.skip(reason)
    cluster = slurm_cluster.start(tmp_path_factory.mktemp("slurm"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SLURM_CONF", str(cluster.conf))
        try:
            yield cluster
        finally:
            cluster.stop()


def _refuses_writes(folder: Path) -> bool:
    try:
        (folder / "probe").write_text("x")
    except OSError:
        return True
    (folder / "probe").unlink()
    return False


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """A folder that refuses new files even to root: mode 0555, and immutable where root ignores that."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    immutable = False
    if not _refuses_writes(folder):  # root: permission bits do not stop it, the immutable flag does
        immutable = subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode == 0
    if not _refuses_writes(folder):
        pytest.skip("cannot make a read-only folder here (root without chattr +i)")
    yield folder
    if immutable:
        subprocess.run(["chattr", "-i", str(folder)], check=True)
    folder.chmod(0o755)
