"""Atomic writes: complete files only, readable like any other file the user creates."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from benchmark.atomic import write_text


def test_written_files_follow_the_umask_not_mkstemps_0600(tmp_path: Path):
    old = os.umask(0o022)
    try:
        write_text(tmp_path / "index.html", "<p>hi</p>")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "index.html").stat().st_mode) == 0o644
    assert (tmp_path / "index.html").read_text() == "<p>hi</p>"
    assert [p.name for p in tmp_path.iterdir()] == ["index.html"]  # no temporary left behind
