"""The admin token: created once, readable only by its owner, compared in constant time."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Optional, Tuple


def ensure_token(path: Path) -> Tuple[str, bool]:
    """Return ``(token, created)``; create the file with mode 0600 if it does not exist yet."""
    try:
        # O_EXCL: if two servers race here only one creates the token; the other reads it.
        fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        token = path.read_text("utf-8").strip()
        if not token:
            raise RuntimeError(f"{path} is empty; delete it and restart the server to make a new token")
        return token, False
    token = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(token + "\n")
    return token, True


def bearer_matches(header: Optional[str], token: str) -> bool:
    """True if an ``Authorization`` header carries exactly ``Bearer <token>``."""
    if not header:
        return False
    scheme, _, value = header.partition(" ")
    return scheme.lower() == "bearer" and secrets.compare_digest(value.strip().encode(), token.encode())
