"""Writes a reader never sees half-done: a file replaced at once, a directory that appears whole.

Each is built under a temporary name beside its destination and renamed, so readers (a target,
the function server, a kernel reading server.json) see the old state or the new, never a part;
a failure half-way leaves nothing behind — not even the parent directories we had to create.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from ..errors import PublishError


def write_atomically(path: Path, text: str, mode: int = 0o644) -> None:
    """Write ``text`` to ``path`` so readers see the old file or the whole new one, never a part."""
    path = Path(path)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=str(path.parent))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


def write_file(path: Path, data: bytes) -> None:
    """Write and fsync, so a renamed directory never holds empty files after a crash."""
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _exists_error(dest: Path) -> PublishError:
    return PublishError(
        "bad_request",
        f"{dest} exists already; a bundle is written to a new directory",
        "Choose a directory that does not exist yet, or remove the old one first.",
    )


@contextlib.contextmanager
def atomic_directory(dest):
    """Yield a temporary directory that becomes ``dest`` when the block succeeds."""
    dest = Path(dest).absolute()
    if dest.exists() or dest.is_symlink():
        raise _exists_error(dest)
    created = _make_parents(dest.parent)
    # mkdtemp's 0700 mode is kept on purpose: pickles run code when loaded, so others may not edit.
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent))
    try:
        yield tmp
        if dest.exists() or dest.is_symlink():  # appeared while we were building
            raise _exists_error(dest)
        os.rename(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for directory in reversed(created):
            with contextlib.suppress(OSError):
                directory.rmdir()
        raise


def _make_parents(directory: Path) -> list:
    missing = []
    while not directory.exists():
        missing.append(directory)
        directory = directory.parent
    for path in reversed(missing):
        path.mkdir(exist_ok=True)  # tolerate a concurrent creator
    return list(reversed(missing))  # outermost first: removal goes innermost first
