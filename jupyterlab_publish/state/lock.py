"""The one exclusive file lock: two kernels do not start two local servers, two servers do not
share a state directory, two publishes do not build the same environment at once.

POSIX uses ``fcntl.flock`` (released by the OS if the holder dies); Windows uses ``msvcrt.locking``
on the first byte. Polling with a non-blocking attempt keeps every wait bounded on both.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Callable, Iterator, Optional

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None
    import msvcrt

_POLL_INTERVAL = 0.05


class LockTimeout(TimeoutError):
    """Another process held the lock for longer than the caller was willing to wait."""

    def __init__(self, path: Path, timeout: float):
        super().__init__(f"another process has held {path} for more than {timeout:.0f} s")
        self.path, self.timeout = path, timeout


def _try_lock_fd(fd: int) -> bool:
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    except OSError:
        return False
    return True


def _unlock_fd(fd: int) -> None:
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_UN)
    else:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)


def _open(path: Path) -> int:
    return os.open(str(path), os.O_RDWR | os.O_CREAT, 0o600)


def try_hold(path: Path) -> Optional[int]:
    """Take the lock on ``path`` without waiting and keep it: the open descriptor, or None if another
    process holds it. Closing the descriptor (or the process ending) releases the lock; for a lock
    held for a whole process's life, such as the function server's run lock."""
    fd = _open(path)
    if _try_lock_fd(fd):
        return fd
    os.close(fd)
    return None


@contextlib.contextmanager
def exclusive_lock(path: Path, timeout: float, *,
                   on_timeout: Optional[Callable[[LockTimeout], BaseException]] = None) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` for the ``with`` body; give up after ``timeout`` seconds.

    Giving up raises ``LockTimeout``, or what ``on_timeout(LockTimeout)`` returns: the caller's own
    error, which says what the other holder is probably doing.
    """
    fd = _open(path)
    try:
        deadline = time.monotonic() + timeout
        while not _try_lock_fd(fd):
            if time.monotonic() > deadline:
                expired = LockTimeout(path, timeout)
                raise (on_timeout(expired) if on_timeout is not None else expired) from None
            time.sleep(_POLL_INTERVAL)
        try:
            yield
        finally:
            _unlock_fd(fd)
    finally:
        os.close(fd)
