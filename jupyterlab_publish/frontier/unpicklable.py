"""Captured objects that cannot travel in a pickle, recognised by type before anything is pickled.

Each kind has a severity: an ``error`` fails (pickling raises, or the service cannot load or use
what arrives), a ``warning`` is likely wrong but may work. The analyzer checks every object its
bounded walk of the captured values visits; ``bundle/diagnose.py`` retraces a real pickling
failure and uses the same hints.
"""

from __future__ import annotations

import functools
import io
import socket
import sqlite3
import sys
import types
from dataclasses import dataclass
from typing import Callable

from .objects import found_by_qualname

ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True)
class Unpicklable:
    code: str
    severity: str
    what: str  # "a lock", "an open file", ...
    hint: str
    consequence: str = "it cannot be pickled"
    # walk what it holds anyway (an lru_cache wrapper's function still needs its packages)
    descend: bool = False


LOCK = Unpicklable(
    "unpicklable_lock", ERROR, "a lock or thread",
    "Locks and threads belong to one process: create the lock inside the function, or at the top of "
    "a local module, instead of capturing it.",
)
SOCKET = Unpicklable(
    "unpicklable_socket", ERROR, "a socket",
    "A socket cannot travel to another process: open the connection inside the function.",
)
OPEN_FILE = Unpicklable(
    "unpicklable_file", ERROR, "an open file",
    "An open file cannot travel: open it inside the function, or read what you need into a variable "
    "(bytes, str, a DataFrame) before publishing.",
)
FILE_SNAPSHOT = Unpicklable(
    "file_snapshot", ERROR, "an open text file",
    "Read the contents into a variable before publishing (text = f.read(), or a DataFrame), or open "
    "the file inside the function from a path the service can reach.",
    # cloudpickle pickles it (what is left to read, as an in-memory copy), so the published function
    # would answer differently from the notebook's: refused like any other open file.
    consequence="the service would get a copy of what is left to read, not the file",
)
GENERATOR = Unpicklable(
    "unpicklable_generator", ERROR, "a generator",
    "A generator cannot be saved mid-iteration: capture list(...) of its values, or the function that "
    "creates it.",
)
DB_CONNECTION = Unpicklable(
    "unpicklable_connection", ERROR, "a database connection",
    "Database and network clients cannot travel: connect inside the function (or lazily on first call), "
    "reading the connection string from an environment variable.",
)
DB_LOOKALIKE = Unpicklable(
    "db_connection", WARNING, "what looks like a database connection or client",
    DB_CONNECTION.hint,
    consequence="it most likely cannot be pickled, or cannot connect from the service",
)
LRU_CACHE = Unpicklable(
    "unpicklable_lru_cache", ERROR, "a functools.lru_cache wrapper made in the notebook",
    "cloudpickle stores an lru_cache wrapper by name, and the service has no notebook to find it in. "
    "Apply the cache inside the published function (a dict, or functools.lru_cache on an inner "
    "function), or move the cached function into a local module file.",
    consequence="it pickles by name, and the service cannot find that name",
    descend=True,
)

# Modules whose objects are all process-bound synchronisation or threads.
_LOCK_MODULES = frozenset({"_thread", "threading", "multiprocessing.synchronize", "asyncio.locks"})
_GENERATOR_TYPES = (types.GeneratorType, types.CoroutineType, types.AsyncGeneratorType)
_CONNECTION_TYPES = (sqlite3.Connection, sqlite3.Cursor, socket.socket)
# Client libraries whose connection-like objects hold sockets and pools.
_CLIENT_MODULES = ("psycopg", "psycopg2", "pymysql", "MySQLdb", "sqlalchemy", "pymongo", "redis", "oracledb")
_CLIENT_WORDS = ("Connection", "Cursor", "Engine", "Session", "Client", "Pool")
# Plain in-memory buffers pickle fine.
_MEMORY_FILES = (io.StringIO, io.BytesIO)


def _looks_like_dbapi(cls: type) -> bool:
    """PEP 249: connections have cursor() and commit(), cursors have execute() and fetchone()."""
    has = lambda name: callable(getattr(cls, name, None))  # noqa: E731
    return (has("cursor") and has("commit")) or (has("execute") and has("fetchone"))


@functools.lru_cache(maxsize=1024)
def _by_type(cls: type) -> Unpicklable | None | Callable:
    """The verdict for every instance of ``cls``, or a function deciding per instance."""
    module = getattr(cls, "__module__", "") or ""
    if module in _LOCK_MODULES:
        return LOCK
    if issubclass(cls, _GENERATOR_TYPES):
        return GENERATOR
    if issubclass(cls, socket.socket):
        return SOCKET
    if issubclass(cls, (sqlite3.Connection, sqlite3.Cursor)):
        return DB_CONNECTION
    if issubclass(cls, io.IOBase):
        return None if issubclass(cls, _MEMORY_FILES) else _file_verdict
    if cls.__name__ == "_lru_cache_wrapper" and module == "functools":
        return _lru_verdict
    if module.startswith(_CLIENT_MODULES) and any(word in cls.__name__ for word in _CLIENT_WORDS):
        return DB_LOOKALIKE
    if _looks_like_dbapi(cls):
        return DB_LOOKALIKE
    return None


def _file_verdict(value, _by_value) -> Unpicklable | None:
    if value in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        return None  # cloudpickle re-attaches these to the service's own streams
    if not isinstance(value, io.TextIOWrapper):
        return OPEN_FILE
    try:
        if value.closed or not value.readable():
            return OPEN_FILE
    except Exception:
        return OPEN_FILE
    return FILE_SNAPSHOT


def _lru_verdict(value, by_value: Callable[[object], bool]) -> Unpicklable | None:
    # pickle stores the wrapper as "module.qualname" of the function it wraps: that works only for a
    # library function decorated where it is defined, so the name leads back to the wrapper itself.
    wrapped = getattr(value, "__wrapped__", None)
    if isinstance(wrapped, types.FunctionType) and by_value(wrapped):
        return LRU_CACHE
    return None if found_by_qualname(value) else LRU_CACHE


def check(value, by_value: Callable[[object], bool]) -> Unpicklable | None:
    """What is wrong with pickling ``value``, if anything is; ``by_value`` tells notebook code apart."""
    try:
        verdict = _by_type(type(value))
    except TypeError:  # an unhashable metaclass instance: nothing we recognise
        return None
    return verdict(value, by_value) if callable(verdict) else verdict


def file_name(value) -> str | None:
    """The path an open file was opened from, to name it in a message; None for anything else."""
    name = getattr(value, "name", None) if isinstance(value, io.IOBase) else None
    return name if isinstance(name, str) else None


def hint_for(value) -> str | None:
    """The hint for ``value``'s kind, for a pickling failure found by other means."""
    found = check(value, lambda fn: True)
    return found.hint if found is not None else None
