"""Folder checks around atomic writes: writability proven up front, leftovers of killed writes removed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from benchmark.atomic import atomic_path, ensure_writable_dir, remove_temporaries
from benchmark.errors import UserError


def test_a_read_only_folder_is_named_in_one_line(read_only_dir: Path):
    with pytest.raises(
        UserError, match=r"^--out .*read-only is not a writable folder \(.*\); choose an"
    ) as e:
        ensure_writable_dir(read_only_dir)
    assert "\n" not in str(e.value)
    with pytest.raises(UserError, match="not a writable folder"):
        ensure_writable_dir(read_only_dir / "below" / "it")
    assert list(read_only_dir.iterdir()) == []


def test_a_path_under_a_file_is_refused_and_a_new_folder_is_made(tmp_path: Path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match=r"--report .*file/sub is not a writable folder"):
        ensure_writable_dir(tmp_path / "file" / "sub", "--report")
    made = ensure_writable_dir(tmp_path / "a" / "b")
    assert made.is_dir() and list(made.iterdir()) == []  # the probe is gone


def test_remove_temporaries_takes_only_atomic_leftovers_old_enough(tmp_path: Path):
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "checkpoint.pt") as tmp:
        tmp.write_text("half")
        raise RuntimeError  # an error inside the block removes its own temporary ...
    assert list(tmp_path.iterdir()) == []
    killed = tmp_path / ".checkpoint.pt.abc123.tmp"  # ... a kill -9 does not: fabricate what it leaves
    killed.write_text("half")
    old = tmp_path / ".predictions_test_gbl.csv.x1.tmp"
    old.write_text("half")
    os.utime(old, (1, 1))
    keep = [tmp_path / "record.json", tmp_path / "notes.tmp", tmp_path / ".hidden"]
    for path in keep:
        path.write_text("{}")
    assert remove_temporaries(tmp_path, older_than=3600) == [old]
    assert sorted(remove_temporaries(tmp_path)) == [killed]
    assert sorted(tmp_path.iterdir()) == sorted(keep)
