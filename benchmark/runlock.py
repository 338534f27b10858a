"""One live process per run folder: an exclusive lock held for the whole training of a config.

The lock is `fcntl.flock` on `<run folder>/.lock`, so the kernel releases it when its owner exits in
any way (kill -9 included): a lock whose owner is gone is stale by construction and simply taken
over. The file also says who holds it (pid, host, start time, command), for the message a second
process prints. The folder's files are touched only while holding the lock, so `--force` can never
delete a live run's checkpoint.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from benchmark.errors import UserError

LOCK_FILE = ".lock"


def _holder(path: Path) -> str:
    """The owner a lock file names, in words."""
    try:
        owner = json.loads(path.read_text(encoding="utf-8"))
        command = " ".join(owner["argv"])[:120]
        return f"pid {owner['pid']} on {owner['host']} since {owner['started']} ({command})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process (still starting)"


@contextlib.contextmanager
def run_lock(folder: Path) -> Iterator[None]:
    """Hold the folder's lock for the block; a UserError naming the holder if another process has it."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise UserError(
                f"{folder} is in use by {_holder(path)}: wait for that run to finish or stop it; "
                "--force does not take over a live run"
            ) from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the holder removed the file between our open and flock: lock the new one
    try:
        owner = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "argv": sys.argv,
        }
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(owner).encode())
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        os.close(fd)
