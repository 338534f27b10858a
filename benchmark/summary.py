"""The build summary: per split its size, per-group and per-attribute counts."""

from __future__ import annotations

import pandas as pd

from benchmark.manifest import GROUPS, Manifest


def summary_frame(manifest: Manifest) -> pd.DataFrame:
    groups = manifest.class_groups
    rows = {}
    for name, frame in manifest.all_splits().items():
        row = {"rows": len(frame)}
        group_of = pd.Series(groups[frame["label"].to_numpy()])
        row.update({group: int((group_of == group).sum()) for group in GROUPS})
        row.update({f"att{k}": int((frame["attribute"] == k).sum()) for k in range(3)})
        rows[name] = row
    return pd.DataFrame.from_dict(rows, orient="index")


def summary_table(manifest: Manifest) -> str:
    return summary_frame(manifest).to_string()
