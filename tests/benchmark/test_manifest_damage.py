"""A damaged manifest is one line naming the file, whatever the damage: flipped bytes, missing keys."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmark.errors import UserError
from benchmark.manifest import Manifest


def _one_line_or_nothing(root: Path, check) -> str | None:
    """The UserError message of `check(Manifest(root))`, None when it passes; any other exception fails."""
    try:
        check(Manifest(root))
    except UserError as exc:
        assert "\n" not in str(exc) and len(str(exc)) < 400, str(exc)
        return str(exc)
    return None


@pytest.mark.parametrize(
    ("name", "mask"), [("splits/val_glt.parquet", 0xFF), ("labels/test_gbl.parquet", 0x01)]
)
def test_every_single_byte_flip_of_a_split_file_is_one_line_or_harmless(
    tiny_manifest: Manifest, name: str, mask: int
):
    root = tiny_manifest.root
    target = root / name
    split = target.stem
    original = target.read_bytes()
    refused = 0
    for position in range(len(original)):
        damaged = bytearray(original)
        damaged[position] ^= mask
        target.write_bytes(bytes(damaged))
        refused += _one_line_or_nothing(root, lambda m: m.verify_split(split, labels=True)) is not None
    assert refused > len(original) // 2  # most flips are caught (the rest hit bytes no reader uses)


def test_metadata_with_missing_keys_or_the_wrong_shape_is_one_line(tiny_manifest: Manifest):
    root = tiny_manifest.root
    metadata = json.loads((root / "metadata.json").read_text())
    required = ("format", "benchmark", "content_sha256", "classes", "splits")  # others are informative
    variants = {
        f"lacks the key(s) {key}": {k: v for k, v in metadata.items() if k != key} for key in required
    }
    variants["is not a JSON object"] = ["a", "list"]
    variants["has a `classes` entry"] = {**metadata, "classes": [{"id": 0}]}
    variants["has a `splits` entry"] = {**metadata, "splits": {"val_glt": {"rows": 3}}}
    for expected, shape in variants.items():
        (root / "metadata.json").write_text(json.dumps(shape))
        message = _one_line_or_nothing(root, lambda m: m.verify())
        assert message is not None and expected in message and "metadata.json" in message, (expected, message)
