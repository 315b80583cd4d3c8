"""What each captured value weighs once pickled, for the analysis the Publish dialog shows.

frontier/ cannot pickle (standard library only), so the analysis report's captures are sized here:
each value is pickled by cloudpickle into a sink that only counts bytes, and stops as soon as it
passes the error threshold or the time budget, so a 10 GB model costs neither memory nor minutes.
A warning and an error threshold (arguments, then environment variables, then defaults) judge them.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass

import cloudpickle

from jupyterlab_publish.errors import PublishError
from jupyterlab_publish.frontier import FrontierWarning

from .diagnose import GENERIC_HINT
from .pickling import register_modules_by_value

SIZE_WARNING_ENV = "JUPYTERLAB_PUBLISH_SIZE_WARNING"
SIZE_LIMIT_ENV = "JUPYTERLAB_PUBLISH_SIZE_LIMIT"
SIZE_SECONDS_ENV = "JUPYTERLAB_PUBLISH_SIZE_SECONDS"
DEFAULT_SIZE_WARNING = 100 * 10**6  # 100 MB: slow to upload and to load in every worker
DEFAULT_SIZE_LIMIT = 2 * 10**9  # 2 GB: beyond what a function server should hold per worker
DEFAULT_SIZE_SECONDS = 3.0  # for all captures together: the dialog waits for this

_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9,
          "kib": 2**10, "mib": 2**20, "gib": 2**30}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class SizeThresholds:
    warning: int
    limit: int
    seconds: float


def parse_size(value, what: str) -> int:
    """Bytes from ``123``, ``"100MB"``, ``"2 GB"``, ``"512MiB"``."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    match = _SIZE.match(str(value))
    unit = match.group(2).lower() if match else None
    if match is None or unit not in _UNITS or float(match.group(1)) <= 0:
        raise PublishError(
            "bad_request",
            f"{what} is {value!r}, which is not a size",
            "Write a positive number of bytes, optionally with a unit: 100MB, 2GB, 512MiB.",
        )
    return int(float(match.group(1)) * _UNITS[unit])


def size_thresholds(size_warning=None, size_limit=None, seconds=None) -> SizeThresholds:
    """Arguments win over the environment variables, which win over the defaults."""
    warning = parse_size(size_warning if size_warning is not None else os.environ.get(SIZE_WARNING_ENV)
                         or DEFAULT_SIZE_WARNING, f"the size warning threshold ({SIZE_WARNING_ENV})")
    limit = parse_size(size_limit if size_limit is not None else os.environ.get(SIZE_LIMIT_ENV)
                       or DEFAULT_SIZE_LIMIT, f"the size limit ({SIZE_LIMIT_ENV})")
    if warning > limit:
        raise PublishError(
            "bad_request",
            f"the size warning threshold ({human_size(warning)}) is above the size limit ({human_size(limit)})",
            f"Lower {SIZE_WARNING_ENV} or raise {SIZE_LIMIT_ENV}.",
        )
    raw_seconds = seconds if seconds is not None else os.environ.get(SIZE_SECONDS_ENV) or DEFAULT_SIZE_SECONDS
    try:
        budget = float(raw_seconds)
    except ValueError:
        budget = -1.0
    if not budget > 0:
        raise PublishError("bad_request", f"{SIZE_SECONDS_ENV} is {raw_seconds!r}, not a number of seconds",
                           "Give a positive number of seconds, e.g. 3.")
    return SizeThresholds(warning, limit, budget)


def human_size(size: int) -> str:
    for unit, factor in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if size >= factor:
            return f"{size / factor:.1f} {unit}"
    return f"{size} B"


class _Stop(Exception):
    def __init__(self, status: str):
        super().__init__(status)
        self.status = status


class _CountingSink:
    """A file for the pickler that keeps nothing: it counts, and stops the pickler when told to."""

    def __init__(self, limit: int, deadline: float):
        self.count = 0
        self._limit = limit
        self._deadline = deadline

    def write(self, data) -> int:
        size = memoryview(data).nbytes
        self.count += size
        if self.count > self._limit:
            raise _Stop("over_limit")
        if time.monotonic() > self._deadline:
            raise _Stop("timed_out")
        return size


def pickled_size(value, *, limit: int, deadline: float) -> tuple[int, str, Exception | None]:
    """(bytes, status, error): status "measured", "over_limit"/"timed_out" (bytes is a lower bound)
    or "failed" (error says why)."""
    sink = _CountingSink(limit, deadline)
    try:
        cloudpickle.dump(value, sink)
    except _Stop as stop:
        return sink.count, stop.status, None
    except Exception as exc:  # anything pickling raises means the same: it does not pickle
        return sink.count, "failed", exc
    return sink.count, "measured", None


def measure_captures(report, thresholds: SizeThresholds) -> None:
    """Fill in ``size``/``size_status`` of each capture in ``report`` and add size warnings/errors.

    Captures the analysis already knows cannot be pickled are not tried again.
    """
    deadline = time.monotonic() + thresholds.seconds
    with register_modules_by_value(report.local_module_names):  # as the bundle pickles them
        for capture, value in zip(report.captured, report.capture_values):
            if any(_leads_into(capture.path, problem.path) for problem in report.errors):
                capture.size_status = "failed"
                continue
            if time.monotonic() > deadline:
                capture.size_status = "timed_out"
                continue
            capture.size, capture.size_status, error = pickled_size(value, limit=thresholds.limit, deadline=deadline)
            _judge(report, capture, thresholds, error)
    unmeasured = [c.name for c in report.captured if c.size_status == "timed_out"]
    if unmeasured:
        report.warnings.append(_problem(
            "size_unmeasured",
            f"Sizing the captured values took longer than {thresholds.seconds:g} s; the size of "
            f"{', '.join(unmeasured)} is at least what is shown.",
            f"Raise {SIZE_SECONDS_ENV} to measure them fully; publishing pickles them all regardless.",
        ))


def _judge(report, capture, thresholds: SizeThresholds, error: Exception | None) -> None:
    size = capture.size or 0
    if capture.size_status == "failed":
        report.errors.append(_problem(
            "unpicklable",
            f"{capture.path} ({capture.type}) cannot be pickled: {type(error).__name__}: {error}",
            GENERIC_HINT,
            capture.path,
        ))
    elif capture.size_status == "over_limit":
        report.errors.append(_problem(
            "capture_too_large",
            f"{capture.path} ({capture.type}) pickles to more than {human_size(thresholds.limit)}, the "
            "size limit.",
            "Capture less (load the model inside the function from storage the service can reach), or "
            f"raise the limit with {SIZE_LIMIT_ENV} or analyze(..., size_limit=...).",
            capture.path,
        ))
    elif size > thresholds.warning:
        report.warnings.append(_problem(
            "capture_large",
            f"{capture.path} ({capture.type}) pickles to {human_size(size)}: every worker loads it, and "
            "every publish uploads it.",
            "Capture only what the function uses (e.g. a fitted model, not its training data).",
            capture.path,
        ))


def _leads_into(capture_path: str, problem_path: str) -> bool:
    """``f → helpers`` leads into ``f → helpers['db'] (sqlite3.Connection)``."""
    if not problem_path.startswith(capture_path):
        return False
    return problem_path[len(capture_path) : len(capture_path) + 1] in ("", " ", "[", ".", "{")


def _problem(code: str, message: str, hint: str, path: str = "") -> FrontierWarning:
    return FrontierWarning(code, message, hint, path)