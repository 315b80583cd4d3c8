"""An exclusive, time-bounded lock on a file, so two kernels do not start two local servers.

POSIX uses ``fcntl.flock`` (released by the OS if the holder dies); Windows uses ``msvcrt.locking``
on the first byte. Polling with a non-blocking attempt keeps the wait bounded on both.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

from ..errors import PublishError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None
    import msvcrt


def try_lock(fd: int) -> bool:
    """Take an exclusive lock on ``fd`` without waiting; False if another process holds it."""
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    except OSError:
        return False
    return True


def _unlock(fd: int) -> None:
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_UN)
    else:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)


@contextlib.contextmanager
def exclusive_lock(path: Path, timeout: float):
    """Hold an exclusive lock on ``path`` for the ``with`` body; give up after ``timeout`` s."""
    fd = os.open(str(path), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + timeout
        while not try_lock(fd):
            if time.monotonic() > deadline:
                raise PublishError(
                    "target_unreachable",
                    f"another process has held {path} for more than {timeout:.0f} s",
                    "another kernel may be starting the local function server; try again in a moment",
                )
            time.sleep(0.05)
        try:
            yield
        finally:
            _unlock(fd)
    finally:
        os.close(fd)
