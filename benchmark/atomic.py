"""Atomic file writes: write to a temporary file beside the target, then rename over it."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmark.errors import UserError

TEMPORARY_GLOB = ".*.tmp"  # the names atomic_path gives its temporary files


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it onto `target` on success."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; published files should read like any other
    try:
        yield Path(tmp)
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(target: str | Path, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(target: str | Path, data: Any) -> None:
    write_text(target, json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n")


def ensure_writable_dir(path: str | Path, what: str = "--out") -> Path:
    """Create `path` if needed and prove it takes new files, before any long work writes there.

    A probe file is created and removed (permission bits alone do not tell: root ignores them, and a
    read-only mount or an immutable folder refuses root too). Raises UserError naming the folder.
    """
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-probe.", suffix=".tmp", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise UserError(f"{what} {path} is not a writable folder ({reason}); choose another folder") from None
    return path


def remove_temporaries(folder: str | Path, older_than: float = 0.0) -> list[Path]:
    """Delete the temporary files that killed atomic writes left in `folder` (not recursive), those
    last modified over `older_than` seconds ago; returns what was removed. Call it only where no live
    writer can be mid-write (e.g. while holding the folder's lock), or with an age margin."""
    removed = []
    now = time.time()
    for path in Path(folder).glob(TEMPORARY_GLOB):
        with contextlib.suppress(FileNotFoundError):
            if path.is_file() and now - path.stat().st_mtime >= older_than:
                path.unlink()
                removed.append(path)
    return removed
