"""The build summary: per split its size, per-group and per-attribute counts, plus leakage warnings.

Every builder calls `write_summary` once its manifest is written: the text is saved as `summary.txt`
and the same figures as `summary.json` beside `metadata.json`, with the manifest's benchmark card
(imbalance ratio, Gini, sizes, groups, attribute imbalance, hashes). Neither enters the content hash.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from benchmark.atomic import write_json, write_text
from benchmark.manifest import GROUPS, Manifest

SUMMARY_TEXT, SUMMARY_JSON = "summary.txt", "summary.json"


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


def card_lines(card: dict) -> list[str]:
    """The benchmark card (metadata["card"]) as `card: key value` lines; nested dicts flattened."""
    lines = []
    for key, value in card.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k} {v}" for k, v in value.items())
        lines.append(f"card: {key:<20} {value}")
    return lines


def write_summary(manifest: Manifest, warnings: Sequence[str] = ()) -> str:
    """Save the summary beside the manifest (atomically) and return its text."""
    frame = summary_frame(manifest)
    card = manifest.metadata.get("card", {})
    lines = [
        f"{manifest.benchmark}: {manifest.num_classes} classes, content sha256 {manifest.content_hash}",
        frame.to_string(),
        *card_lines(card),
        *(warnings or ["leakage check: no sample in two splits of a family"]),
    ]
    text = "\n".join(lines) + "\n"
    root = Path(manifest.root)
    write_text(root / SUMMARY_TEXT, text)
    write_json(
        root / SUMMARY_JSON,
        {
            "benchmark": manifest.benchmark,
            "content_sha256": manifest.content_hash,
            "splits": {name: {k: int(v) for k, v in row.items()} for name, row in frame.iterrows()},
            "warnings": list(warnings),
            "card": card,
        },
    )
    return text
