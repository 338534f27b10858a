"""IP-DPP selection time for one large class (docs/methods.md §16, "Scale"): the secular-equation path of
baselines/dpp.py on N = 5,000, 20,000 and 61,000 items (MSCOCO-GLT's person class), k = 100, with
the dense eigendecomposition's time beside it where N allows (≤ 5,000). Deterministic inputs: p
uniform in (0, 1) from a seeded generator, rounded through float32 as the softmax gives them."""

from __future__ import annotations

import sys
import time

import numpy as np
import torch

from baselines.dpp import select_items


def timed(p: torch.Tensor, dense_limit: int) -> tuple[float, np.ndarray]:
    started = time.perf_counter()
    picked = select_items(p, 100, "exact-k", np.random.default_rng(0), dense_limit=dense_limit)
    return time.perf_counter() - started, picked


def main(sizes: list[int]) -> None:
    print(f"torch threads: {torch.get_num_threads()}")
    for n in sizes:
        p = torch.rand(n, generator=torch.Generator().manual_seed(n)).double()
        seconds, picked = timed(p, dense_limit=0)
        line = f"N = {n:>6,}: secular {seconds:7.2f} s"
        if n <= 5_000:
            dense_seconds, dense_picked = timed(p, dense_limit=n)
            same = "same" if np.array_equal(picked, dense_picked) else "DIFFERENT"
            line += f", dense {dense_seconds:7.2f} s ({same} selection)"
        print(line, flush=True)


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [5_000, 20_000, 61_000])
