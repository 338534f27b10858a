"""IFL's per-epoch statistics merged across data-parallel ranks (two gloo processes on the CPU): every
rank ends with the record a single process keeps for the same global batches (docs/methods.md §14)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist

import baselines  # noqa: F401  (registers methods)
from baselines.base import METHODS

ROOT = Path(__file__).resolve().parents[2]
COUNTS = np.array([3, 3])
# Two global steps; the engine gives rank 0 the first half of a global batch and rank 1 the second.
STEPS = [
    (torch.tensor([5, 2, 5, 1]), torch.tensor([0, 0, 1, 0])),  # index 5 drawn by both ranks
    (torch.tensor([2, 3]), torch.tensor([0, 1])),  # index 2 again, one step later, on rank 0
]


def _logits(count: int, offset: float) -> torch.Tensor:
    """Distinct logits per position so that every draw has its own probability."""
    return torch.stack([torch.tensor([math.log(2.0 + offset + i), 0.0]) for i in range(count)])


def _worker(out: str) -> None:
    """One torchrun process: record this rank's shares of the global batches, save the merged record."""
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    try:
        method = METHODS.get("ifl")({}, COUNTS)
        for step, (indices, labels) in enumerate(STEPS):
            share = len(indices) // world
            part = slice(rank * share, (rank + 1) * share)
            logits = _logits(len(indices), offset=step)[part]
            method._record(logits, labels[part], indices[part])
        np.save(f"{out}/rank{rank}.npy", method._statistics())
    finally:
        dist.destroy_process_group()


def test_two_gloo_ranks_merge_to_the_single_process_record(tmp_path: Path):
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
        __file__, str(tmp_path),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    single = METHODS.get("ifl")({}, COUNTS)
    for step, (indices, labels) in enumerate(STEPS):
        single._record(_logits(len(indices), offset=step), labels, indices)
    expected = single._statistics()
    # Index 5: rank 1's draw (position 2 of step 0) is the latest; index 2: step 1 on rank 0.
    # softmax of (log v, 0): class 0 gets v/(v + 1)
    assert expected[5] == pytest.approx(1 / 5, rel=1e-6) and expected[2] == pytest.approx(3 / 4, rel=1e-6)
    assert expected[0] == -1 and expected[4] == -1  # never drawn
    for rank in (0, 1):
        merged = np.load(tmp_path / f"rank{rank}.npy")
        assert np.allclose(merged, expected, rtol=1e-6, atol=1e-7)


if __name__ == "__main__":
    _worker(sys.argv[1])
