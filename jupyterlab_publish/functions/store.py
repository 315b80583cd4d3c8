"""The server's record of functions and their versions, in sqlite.

Invariants the schema enforces: at most one live version per function (a partial unique index),
and a version's status is one of staging / live / retired / failed. Switching the live version is
one transaction, so a crash leaves either the old or the new version live, never neither.

A function's invocation key lives here too (the state directory is 0700 and the file 0600): made
at its first publish, the same for every later version. ``went_live`` orders the switches, so a
rollback without a target returns to the version that was live before the current one.

All calls come from the server's event-loop thread; each is a few small statements.
"""

from __future__ import annotations

import datetime
import json
import os
import sqlite3
from pathlib import Path
from typing import Callable, Optional

SCHEMA = """
CREATE TABLE IF NOT EXISTS functions (
    name    TEXT PRIMARY KEY,
    created TEXT NOT NULL,
    key     TEXT,
    public  INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS versions (
    name       TEXT NOT NULL,
    version    INTEGER NOT NULL,
    status     TEXT NOT NULL CHECK (status IN ('staging', 'live', 'retired', 'failed')),
    created    TEXT NOT NULL,
    bundle_dir TEXT NOT NULL,
    manifest   TEXT NOT NULL,
    went_live  INTEGER,
    PRIMARY KEY (name, version)
);
CREATE UNIQUE INDEX IF NOT EXISTS one_live_version ON versions (name) WHERE status = 'live';
"""

# Columns added after the first release: (table, column, definition). A state directory made by an
# older server gains them on open; functions published before keys existed get one on first use.
_ADDED_COLUMNS = (
    ("functions", "key", "TEXT"),
    ("functions", "public", "INTEGER NOT NULL DEFAULT 0"),
    ("versions", "went_live", "INTEGER"),
)


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _version(row: sqlite3.Row) -> dict:
    return {
        "name": row["name"],
        "version": row["version"],
        "status": row["status"],
        "created": row["created"],
        "bundle_dir": row["bundle_dir"],
        "manifest": json.loads(row["manifest"]),
        "went_live": row["went_live"],
    }


def _owner_only(path: Path) -> None:
    """Create ``path`` as 0600 if missing, and narrow it (and its -wal, -shm, -journal) to 0600 if not."""
    os.close(os.open(str(path), os.O_RDWR | os.O_CREAT, 0o600))
    for file in (path, *(path.with_name(path.name + suffix) for suffix in ("-wal", "-shm", "-journal"))):
        try:
            os.chmod(file, 0o600)
        except FileNotFoundError:
            pass


class Store:
    def __init__(self, path: Path):
        # It holds the invocation keys: owner only, before SQLite opens it, because SQLite gives the
        # -wal and -shm files it creates the database file's mode (0644 under a usual umask).
        _owner_only(Path(path))
        # isolation_level=None: we issue BEGIN ourselves, so transactions are exactly what we say.
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(SCHEMA)
        self._add_missing_columns()

    def _add_missing_columns(self) -> None:
        for table, column, definition in _ADDED_COLUMNS:
            present = {row["name"] for row in self._db.execute(f"PRAGMA table_info({table})")}
            if column not in present:
                self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")

    def close(self) -> None:
        self._db.close()

    # -- reads -----------------------------------------------------------------------------------

    def function_exists(self, name: str) -> bool:
        return self._db.execute("SELECT 1 FROM functions WHERE name = ?", (name,)).fetchone() is not None

    def function(self, name: str) -> Optional[dict]:
        """``{"name", "created", "key", "public"}`` of a published function, or None."""
        row = self._db.execute("SELECT name, created, key, public FROM functions WHERE name = ?", (name,)).fetchone()
        return {**dict(row), "public": bool(row["public"])} if row else None

    def version(self, name: str, version: int) -> Optional[dict]:
        row = self._db.execute("SELECT * FROM versions WHERE name = ? AND version = ?", (name, version)).fetchone()
        return _version(row) if row else None

    def previously_live(self, name: str) -> Optional[dict]:
        """The retired version that went live most recently: the one a plain rollback returns to."""
        row = self._db.execute(
            "SELECT * FROM versions WHERE name = ? AND status = 'retired'"
            " ORDER BY COALESCE(went_live, 0) DESC, version DESC LIMIT 1", (name,)
        ).fetchone()
        return _version(row) if row else None

    def live_version(self, name: str) -> Optional[dict]:
        row = self._db.execute("SELECT * FROM versions WHERE name = ? AND status = 'live'", (name,)).fetchone()
        return _version(row) if row else None

    def live_versions(self) -> list:
        rows = self._db.execute("SELECT * FROM versions WHERE status = 'live' ORDER BY name").fetchall()
        return [_version(row) for row in rows]

    def versions(self, name: str) -> list:
        rows = self._db.execute("SELECT * FROM versions WHERE name = ? ORDER BY version", (name,)).fetchall()
        return [_version(row) for row in rows]

    def functions(self) -> list:
        rows = self._db.execute("SELECT name, created, public FROM functions ORDER BY name").fetchall()
        return [{**dict(row), "public": bool(row["public"])} for row in rows]

    def staging_versions(self) -> list:
        rows = self._db.execute("SELECT * FROM versions WHERE status = 'staging'").fetchall()
        return [_version(row) for row in rows]

    def known_bundle_dirs(self) -> set:
        return {row[0] for row in self._db.execute("SELECT bundle_dir FROM versions")}

    # -- writes ----------------------------------------------------------------------------------

    def add_staging(self, name: str, bundle_dir_of: Callable[[int], Path]) -> int:
        """Claim the next version number for ``name`` with a 'staging' row; return it.

        ``bundle_dir_of(version)`` names the directory, which depends on the number claimed.
        """
        with self._transaction():
            (latest,) = self._db.execute("SELECT MAX(version) FROM versions WHERE name = ?", (name,)).fetchone()
            version = (latest or 0) + 1
            self._db.execute(
                "INSERT INTO versions (name, version, status, created, bundle_dir, manifest)"
                " VALUES (?, ?, 'staging', ?, ?, '{}')",
                (name, version, _now(), str(bundle_dir_of(version))),
            )
        return version

    def set_manifest(self, name: str, version: int, manifest: dict) -> None:
        self._db.execute(
            "UPDATE versions SET manifest = ? WHERE name = ? AND version = ?", (json.dumps(manifest), name, version)
        )

    def remove_version(self, name: str, version: int) -> None:
        self._db.execute("DELETE FROM versions WHERE name = ? AND version = ?", (name, version))

    def set_key(self, name: str, key: str) -> None:
        """Give a function that has none (published before keys existed) its key."""
        self._db.execute("UPDATE functions SET key = ? WHERE name = ? AND key IS NULL", (key, name))

    def promote(self, name: str, version: int, *, key: str, public: bool) -> Optional[int]:
        """Make a staging version live and retire the old one, atomically; return the old number.

        The function's row is created with ``key`` on its first publish (an existing key is kept:
        callers hold it); ``public`` is what this publish asked for.
        """
        with self._transaction():
            old = self._switch(name, version, "staging")
            self._db.execute(
                "INSERT INTO functions (name, created, key, public) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET public = excluded.public,"
                " key = COALESCE(functions.key, excluded.key)",
                (name, _now(), key, int(public)),
            )
        return old

    def roll_back(self, name: str, version: int) -> Optional[int]:
        """Make a retired version live again and retire the current one, atomically; return the old number."""
        with self._transaction():
            return self._switch(name, version, "retired")

    def _switch(self, name: str, version: int, from_status: str) -> Optional[int]:
        old = self._db.execute("SELECT version FROM versions WHERE name = ? AND status = 'live'", (name,)).fetchone()
        self._db.execute("UPDATE versions SET status = 'retired' WHERE name = ? AND status = 'live'", (name,))
        changed = self._db.execute(
            "UPDATE versions SET status = 'live',"
            " went_live = (SELECT COALESCE(MAX(went_live), 0) + 1 FROM versions WHERE name = ?)"
            " WHERE name = ? AND version = ? AND status = ?",
            (name, name, version, from_status),
        ).rowcount
        if changed != 1:
            raise RuntimeError(f"{name} v{version} is not {from_status}; cannot make it live")
        return old[0] if old else None

    def delete_function(self, name: str) -> None:
        with self._transaction():
            self._db.execute("DELETE FROM versions WHERE name = ?", (name,))
            self._db.execute("DELETE FROM functions WHERE name = ?", (name,))

    def _transaction(self):
        return _Transaction(self._db)


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK if the body raises."""

    def __init__(self, db: sqlite3.Connection):
        self._db = db

    def __enter__(self):
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type, exc, tb):
        self._db.execute("ROLLBACK" if exc_type else "COMMIT")
        return False
