"""Peak memory of an imagenet-glt build from `--features` (issue 11's target: peak RSS ≤ 1.3 × the
float32 size of the features, i.e. ≤ 13 GiB for ImageNet's 1,281,167 × 2048).

Writes an uncompressed `.npz` of CLASSES × 1,300 rows × 2048 float32 (default 100 classes: 130,000
rows, 1.07 GB) to a temporary folder without holding it in memory, runs the whole build (hashing,
finite check, per-class clustering in 2 worker processes, carving, manifest) in a child process and
reports the child's peak RSS and that of its largest worker, with the extrapolation to ImageNet: the
interpreter's baseline plus what the build added, scaled by the number of rows.

Usage: PYTHONPATH=. python bench/features_memory.py [CLASSES]
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

PER_CLASS, DIM, IMAGENET_ROWS = 1300, 2048, 1_281_167
CHILD = """
import json, resource, sys, time
from pathlib import Path
baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
import torch, splits  # noqa: F401  (the interpreter as a build sees it)
from splits.imagenet import IMAGENET_GLT, build
baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.perf_counter()
manifest = build(IMAGENET_GLT, Path(sys.argv[2]), features=Path(sys.argv[1]), workers=2, device="cpu",
                 cache_dir=Path(sys.argv[3]))
print(json.dumps({"baseline_kib": baseline, "peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "workers_peak_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
                  "seconds": time.perf_counter() - started, "sha256": manifest.content_hash}))
"""


def write_npz(path: Path, classes: int) -> None:
    """paths + features (float32, C-order) as a stored npz, written block by block."""
    rows = classes * PER_CLASS
    paths = np.array([f"n{c:08d}/n{c:08d}_{i:04d}.JPEG" for c in range(classes) for i in range(PER_CLASS)])
    rng = np.random.default_rng(0)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        with archive.open("paths.npy", "w", force_zip64=True) as handle:
            np.lib.format.write_array(handle, paths, allow_pickle=False)
        with archive.open("features.npy", "w", force_zip64=True) as handle:
            header = {"descr": "<f4", "fortran_order": False, "shape": (rows, DIM)}
            np.lib.format.write_array_header_2_0(handle, header)
            for _ in range(classes):  # six overlapping modes per class, non-negative like CNN features
                centres = rng.normal(scale=0.7, size=(6, DIM)).astype(np.float32)
                modes = rng.choice(6, size=PER_CLASS, p=[0.24, 0.18, 0.17, 0.16, 0.13, 0.12])
                block = np.maximum(centres[modes] + rng.normal(size=(PER_CLASS, DIM)).astype(np.float32), 0)
                handle.write(block.astype("<f4").tobytes())


def main(classes: int) -> None:
    rows = classes * PER_CLASS
    size = rows * DIM * 4
    with tempfile.TemporaryDirectory(prefix="glt-features-bench-") as folder:
        path = Path(folder) / "features.npz"
        started = time.perf_counter()
        write_npz(path, classes)
        seconds = time.perf_counter() - started
        print(f"wrote {rows:,} × {DIM} float32 ({size / 2**30:.2f} GiB) in {seconds:.0f} s", flush=True)
        out, cache = str(Path(folder) / "manifest"), str(Path(folder) / "cache")
        result = subprocess.run(
            [sys.executable, "-c", CHILD, str(path), out, cache],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
    report = json.loads(result.stdout.strip().splitlines()[-1])
    baseline, peak = report["baseline_kib"] * 1024, report["peak_kib"] * 1024
    target = 1.3 * size
    print(f"build: {report['seconds']:.0f} s; interpreter baseline {baseline / 2**30:.2f} GiB")
    print(
        f"peak RSS {peak / 2**30:.2f} GiB = {peak / size:.2f} × the float32 features "
        f"(target ≤ 1.3 × = {target / 2**30:.2f} GiB): {'OK' if peak <= target else 'OVER'}; "
        f"largest clustering worker {report['workers_peak_kib'] / 2**20:.2f} GiB"
    )
    imagenet = IMAGENET_ROWS * DIM * 4
    extrapolated = baseline + (peak - baseline) * IMAGENET_ROWS / rows
    print(
        f"extrapolated to ImageNet ({IMAGENET_ROWS:,} × {DIM}, {imagenet / 2**30:.1f} GiB of float32): "
        f"peak ≈ {extrapolated / 2**30:.2f} GiB (target ≤ {1.3 * imagenet / 2**30:.1f} GiB)"
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100)
