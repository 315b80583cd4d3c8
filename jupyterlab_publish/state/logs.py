"""The end of a log: what an error message shows of a worker's, a server's or a child's output."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_LINES = 20
DEFAULT_MAX_BYTES = 8 * 1024 * 1024
_CHUNK = 64 * 1024


def last_lines(text: str, lines: int = DEFAULT_LINES) -> str:
    """The last ``lines`` lines of ``text`` (surrounding blank lines dropped); "" for ``lines <= 0``."""
    if lines <= 0:
        return ""
    return "\n".join(text.strip("\n").splitlines()[-lines:])


def tail(path: Path, lines: int = DEFAULT_LINES, *, max_bytes: int = DEFAULT_MAX_BYTES) -> str:
    """The last ``lines`` lines of a text file, read from its end and from at most its last
    ``max_bytes`` bytes (a log can be large); "" if the file cannot be read."""
    if lines <= 0:
        return ""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            end = position = handle.tell()
            data = b""
            # One line more than asked for, so the first line kept is whole.
            while position > 0 and data.count(b"\n") <= lines and end - position < max_bytes:
                step = min(_CHUNK, position, max_bytes - (end - position))
                position -= step
                handle.seek(position)
                data = handle.read(step) + data
    except OSError:
        return ""
    return last_lines(data.decode("utf-8", errors="replace"), lines)
