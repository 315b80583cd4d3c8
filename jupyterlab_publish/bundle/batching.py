"""Vectorised functions: the ``vectorized`` marker and the ``batching`` option of ``publish``.

A vectorised function takes a list of items and returns a sequence with one result per item. Its
service answers one item per request and calls the function once for the items of concurrent
requests (up to ``max_batch_size`` of them, waiting at most ``max_wait_ms`` after the first).
The options travel in the manifest as ``"batching": {"max_batch_size": int, "max_wait_ms": float}``.
"""

from __future__ import annotations

import inspect
import math

from jupyterlab_publish.errors import PublishError
from jupyterlab_publish.runtime.service import DEFAULT_MAX_BATCH_SIZE, DEFAULT_MAX_WAIT_MS

# Kept on the function object (cloudpickle keeps a function's __dict__), so the JupyterLab dialog,
# which publishes without options, finds what the notebook declared.
BATCHING_ATTRIBUTE = "__jupyterlab_publish_batching__"
MAX_BATCH_SIZE = 100_000
MAX_WAIT_MS = 60_000.0
_HINT = ('Use batching=True (max_batch_size=64, max_wait_ms=2) or a dict such as '
         '{"max_batch_size": 32, "max_wait_ms": 5}.')


def vectorized(fn=None, *, max_batch_size: int = DEFAULT_MAX_BATCH_SIZE, max_wait_ms: float = DEFAULT_MAX_WAIT_MS):
    """Mark ``fn`` as vectorised: it takes a list of items and returns one result per item.

    Use as ``@vectorized`` or ``@vectorized(max_batch_size=32, max_wait_ms=5)``. The function is
    returned unchanged apart from the marker, so it is still called (and pickled) as written.
    """
    options = batching_options({"max_batch_size": max_batch_size, "max_wait_ms": max_wait_ms})

    def mark(function):
        if not callable(function):
            raise PublishError("not_callable", f"@vectorized marks functions, not a {type(function).__name__}",
                               "Put @vectorized on the line above `def`.")
        setattr(function, BATCHING_ATTRIBUTE, dict(options))
        return function

    return mark if fn is None else mark(fn)


def batching_options(value) -> dict | None:
    """``True``/``False``/``None``/a dict → the manifest's batching entry (or None); PublishError if invalid."""
    if value is None or value is False:
        return None
    if value is True:
        value = {}
    if not isinstance(value, dict):
        raise PublishError("bad_request", f"batching must be True, False, None or a dict, not {type(value).__name__}",
                           _HINT)
    unknown = sorted(set(value) - {"max_batch_size", "max_wait_ms"})
    if unknown:
        raise PublishError("bad_request", f"unknown batching option(s): {', '.join(map(str, unknown))}", _HINT)
    size = value.get("max_batch_size", DEFAULT_MAX_BATCH_SIZE)
    wait = value.get("max_wait_ms", DEFAULT_MAX_WAIT_MS)
    if type(size) is not int or not 1 <= size <= MAX_BATCH_SIZE:
        raise PublishError("bad_request", f"max_batch_size must be a whole number from 1 to {MAX_BATCH_SIZE}, "
                           f"not {size!r}", _HINT)
    if isinstance(wait, bool) or not isinstance(wait, (int, float)) or math.isnan(wait) or not 0 <= wait <= MAX_WAIT_MS:
        raise PublishError("bad_request", f"max_wait_ms must be a number of milliseconds from 0 to {MAX_WAIT_MS:g}, "
                           f"not {wait!r}", _HINT)
    return {"max_batch_size": size, "max_wait_ms": float(wait)}


def resolve_batching(fn, batching=None) -> dict | None:
    """The batching entry for ``fn``: the ``batching`` argument if given, else its @vectorized marker."""
    if batching is None:
        batching = getattr(fn, BATCHING_ATTRIBUTE, None)
    options = batching_options(batching)
    if options is not None:
        _check_takes_a_list(fn)
    return options


def _check_takes_a_list(fn) -> None:
    try:
        parameters = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return  # no introspectable signature: the sample run tells
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required_after = [p for p in positional[1:] if p.default is p.empty]
    keyword_only = [p for p in parameters if p.kind is p.KEYWORD_ONLY and p.default is p.empty]
    name = getattr(fn, "__name__", "the function")
    if not positional or required_after or keyword_only:
        raise PublishError(
            "bad_request",
            f"{name}{inspect.signature(fn)} cannot be vectorised: it must be callable with a single list of items",
            "Write it as def f(items): ... returning one result per item, or publish it without batching.",
        )
