"""Calling the function: inline while it is quick, in a thread pool otherwise, or in batches.

Part of the runtime copied into every bundle (see ``service.py``); standard library only. Every
call ends in ``(status, body bytes)``: the validator's refusal (422), the function's error (500),
a timeout (504) or the JSON answer (200), so the HTTP layer only writes bytes.

A thread hop costs more than a trivial call, so a quick function runs inline on the event loop.
The first calls run in threads to find out (a first call may load a model for a minute); a slow
inline call sends the function back to threads, and a window of quick thread calls (growing after
each failed try) brings it back.

Nothing can make the event loop serve others while Python code runs on it, so an inline call is
bounded instead: ``InlineWatchdog`` (one thread, started when a function first goes inline) stops
an inline call that holds the loop longer than ``min(INLINE_LIMIT, --timeout)`` by raising
``InlineOverrun`` inside it (a signal to the main thread, which also breaks a sleep), answers that
call 504 and sends the function back to threads, where ``--timeout`` applies as usual. So every call
gets its answer within the timeout, other calls wait at most ``INLINE_LIMIT`` behind an inline one,
and the fast path costs two attribute stores per call. Moving the call to a thread instead would
run it twice; waiting for it in a thread for every call would cost the hop we avoid. Where no
signal can reach the loop's thread (the loop is not on the main thread), calls stay in threads.
"""

from __future__ import annotations

import asyncio
import bisect
import inspect
import json
import logging
import signal
import threading
import time

try:
    from . import service_contract as contract
    from . import service_errors as errors
except ImportError:  # in a bundle directory the runtime's modules sit side by side
    import service_contract as contract
    import service_errors as errors

QUICK_CALL = 0.001  # seconds: mean duration below which inline is worth it
SLOW_CALL = 0.010  # seconds: one call longer than this blocks other requests too long
FIRST_WINDOW = 5
RETRY_WINDOW = 256
MAX_RETRY_WINDOW = 65536
INLINE_LIMIT = 0.5  # seconds an inline call may hold the event loop before it is stopped (504)
_WATCHDOG_SIGNAL = getattr(signal, "SIGUSR2", None)

# Upper bounds (seconds) of the latency histogram /stats reports (Prometheus' defaults, extended).
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

log = logging.getLogger("jupyterlab_publish.service")


_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


error_body = errors.error_body  # the codes and their statuses: service_errors.py


def encode_result(result) -> tuple:
    try:
        return 200, _ENCODER.encode(contract.json_ready(result)).encode("utf-8")
    except (TypeError, ValueError) as exc:
        return 500, error_body("unserialisable_result",
                               f"the function returned a value that cannot be sent as JSON: {exc}",
                               type=contract.type_name(result))


def function_error(exc: BaseException) -> tuple:
    log.error("the function raised", exc_info=exc)
    return 500, error_body("function_error", str(exc), type=type(exc).__name__)


def timeout_answer(timeout: float) -> tuple:
    return 504, error_body(
        "timeout", f"the function did not answer within {timeout:g} s",
        hint="the call may still be running in the worker; send less work per call, or ask the operator for a "
             "longer --timeout",
    )


def overrun_answer(limit: float) -> tuple:
    return 504, error_body(
        "timeout", f"the call held the worker for more than {limit:g} s and was stopped, so that the calls "
        "waiting behind it are answered (it ran on the event loop because earlier calls were quick)",
        hint="the function now runs in threads, where the worker's --timeout applies: send the call again",
    )


class InlineOverrun(BaseException):
    """Raised inside an inline call that held the event loop too long (a BaseException, like
    KeyboardInterrupt, so the function's own ``except Exception`` does not swallow it)."""


class InlineWatchdog:
    """Stops an inline call that holds the event loop longer than ``limit`` (see the module doc).

    The loop's thread writes ``started`` before each inline call and clears it after; a daemon thread
    polls it. On an overrun it sends ``_WATCHDOG_SIGNAL`` to the loop's (main) thread, whose handler
    raises ``InlineOverrun`` only if that same call is still running, so a late signal is harmless.
    """

    def __init__(self, limit: float):
        self.limit = limit
        self.started = 0.0  # perf_counter() when the inline call in progress began; 0.0: none
        self.calls = 0  # inline calls begun; names the call the watchdog stopped
        self.stopped = -1
        self.thread = None
        self.loop_thread = None

    def start(self) -> bool:
        """Start watching (on the loop's thread); False if no signal can reach this thread."""
        if self.thread is not None:
            return True
        if _WATCHDOG_SIGNAL is None or threading.current_thread() is not threading.main_thread():
            return False
        signal.signal(_WATCHDOG_SIGNAL, self._on_signal)
        self.loop_thread = threading.get_ident()
        self.thread = threading.Thread(target=self._watch, name="jupyterlab-publish-watchdog", daemon=True)
        self.thread.start()
        return True

    def _watch(self) -> None:
        interval = min(0.05, self.limit / 10)
        while True:
            time.sleep(interval)
            started, calls = self.started, self.calls
            if started and calls != self.stopped and time.perf_counter() - started > self.limit:
                self.stopped = calls
                try:
                    signal.pthread_kill(self.loop_thread, _WATCHDOG_SIGNAL)
                except OSError:  # the loop's thread is gone: the process is exiting
                    return

    def _on_signal(self, signum, frame) -> None:
        if self.started and self.stopped == self.calls:
            raise InlineOverrun


class Stats:
    """Counters of every invocation, read by the function server (``GET /stats``) for /metrics."""

    def __init__(self):
        self.statuses: dict = {}
        self.bucket_hits = [0] * (len(LATENCY_BUCKETS) + 1)  # the last slot: above every bound
        self.latency_sum = 0.0
        self.latency_count = 0
        self.in_flight = 0
        self.batches = 0
        self.batch_items = 0

    def observe(self, status: int, seconds: float) -> None:
        statuses = self.statuses
        statuses[status] = statuses.get(status, 0) + 1
        self.bucket_hits[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1  # bound >= seconds: "le"
        self.latency_sum += seconds
        self.latency_count += 1

    def snapshot(self) -> dict:
        cumulative, total = [], 0
        for hits in self.bucket_hits[:-1]:
            total += hits
            cumulative.append(total)
        return {
            "requests": {str(status): n for status, n in sorted(self.statuses.items())},
            "latency_buckets": list(LATENCY_BUCKETS),
            "latency_counts": cumulative,
            "latency_sum": self.latency_sum,
            "latency_count": self.latency_count,
            "in_flight": self.in_flight,
            "batches": self.batches,
            "batch_items": self.batch_items,
        }


class Binder:
    """``bind_arguments`` with the signature computed once and a shortcut for plain signatures."""

    def __init__(self, fn):
        self.fn = fn
        try:
            self.signature = inspect.signature(fn)
        except (TypeError, ValueError):
            self.signature = None
        parameters = list(self.signature.parameters.values()) if self.signature is not None else []
        self.plain = self.signature is not None and all(p.kind is p.POSITIONAL_OR_KEYWORD for p in parameters)
        self.most = len(parameters)
        self.least = sum(p.default is p.empty for p in parameters)
        self.names = frozenset(p.name for p in parameters)
        self.required = frozenset(p.name for p in parameters if p.default is p.empty)

    def check(self, args, kwargs) -> None:
        if self.signature is None:
            return
        if self.plain:  # the common case, decided without building a BoundArguments
            if not kwargs:
                if self.least <= len(args) <= self.most:
                    return
            elif not args and self.required <= kwargs.keys() <= self.names:
                return
        contract.bind_with(self.fn, self.signature, args, kwargs)  # raises ArgumentError, saying why


class Caller:
    """Validator, function and JSON encoding of one call: inline while quick, else in the pool."""

    def __init__(self, fn, validator, executor, timeout: float | None):
        self.fn = fn
        self.validator = validator
        self.executor = executor
        self.timeout = timeout
        self.inline = False  # the first calls run in threads: a first call may load a model for a minute
        self.watchdog = InlineWatchdog(min(INLINE_LIMIT, timeout or INLINE_LIMIT))
        self.may_inline = True  # False once the watchdog cannot run here: then calls stay in threads
        self.window = FIRST_WINDOW
        self._retry = RETRY_WINDOW
        self._seen = 0
        self._slowest = 0.0
        self._cpu = 0.0
        self._mean = 0.0

    @property
    def mode(self) -> str:
        return "inline" if self.inline else "thread"

    def call(self, args, kwargs) -> tuple:
        if self.validator is not None:
            reason = contract.validator_verdict(self.validator, args, kwargs)
            if reason is not None:
                return 422, error_body("invalid_input", reason)
        try:
            result = self.fn(*args, **kwargs)
        except Exception as exc:
            return function_error(exc)
        return encode_result(result)

    def call_inline(self, args, kwargs) -> tuple:
        watchdog = self.watchdog
        watchdog.calls += 1
        started = watchdog.started = time.perf_counter()
        try:
            answer = self.call(args, kwargs)
            watchdog.started = 0.0  # inside the try: a signal landing just before this is still caught
        except InlineOverrun:
            watchdog.started = 0.0
            log.error("an inline call held the event loop for more than %g s and was stopped", watchdog.limit)
            answer = overrun_answer(watchdog.limit)
        elapsed = time.perf_counter() - started
        self._mean += (elapsed - self._mean) * 0.1
        if elapsed > SLOW_CALL or self._mean > QUICK_CALL:
            self.inline = False  # back to threads; each failed try waits longer before the next
            self.window, self._retry = self._retry, min(self._retry * 2, MAX_RETRY_WINDOW)
        return answer

    def _start_watchdog(self) -> bool:
        if self.may_inline and self.watchdog.start():
            return True
        self.may_inline = self.inline = False
        return False

    def call_in_thread(self, args, kwargs) -> tuple:
        started, cpu = time.perf_counter(), time.thread_time()
        answer = self.call(args, kwargs)
        # Wall time catches a call that sleeps or waits; CPU time is not inflated by waiting for the
        # GIL under load, so the mean is taken from it. Races between pool threads only blur these
        # figures, which choose a mode, never an answer.
        self._seen += 1
        self._slowest = max(self._slowest, time.perf_counter() - started)
        self._cpu += time.thread_time() - cpu
        if self._seen >= self.window:
            quick = self._slowest <= SLOW_CALL and self._cpu / self._seen <= QUICK_CALL
            self._seen, self._slowest, self._cpu, self._mean = 0, 0.0, 0.0, 0.0
            self.window = self._retry
            self.inline = quick and self.may_inline
        return answer

    async def __call__(self, args, kwargs) -> tuple:
        if self.inline:
            # Runs on the event loop, watched (module doc): a call slower than SLOW_CALL moves the
            # function to threads at once, one that overruns the watchdog's limit is stopped.
            if self.watchdog.thread is not None or self._start_watchdog():
                return self.call_inline(args, kwargs)
        future = asyncio.get_running_loop().run_in_executor(self.executor, self.call_in_thread, args, kwargs)
        if self.timeout is None:
            return await future
        try:
            return await asyncio.wait_for(future, self.timeout)
        except asyncio.TimeoutError:
            return timeout_answer(self.timeout)


class Batcher:
    """Items of concurrent requests, called together as ``fn(items)`` in the pool."""

    def __init__(self, fn, validator, executor, timeout: float | None, batching: dict, stats: Stats):
        self.fn = fn
        self.validator = validator
        self.executor = executor
        self.timeout = timeout
        self.max_size = batching["max_batch_size"]
        self.max_wait = batching["max_wait_ms"] / 1000.0
        self.stats = stats
        self.items: list = []
        self.waiters: list = []
        self.timer = None

    async def __call__(self, item) -> tuple:
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        self.items.append(item)
        self.waiters.append(waiter)
        if len(self.items) >= self.max_size:
            self.flush(loop)
        elif self.timer is None:
            self.timer = loop.call_later(self.max_wait, self.flush, loop)
        if self.timeout is None:
            return await waiter
        try:  # shielded: one request timing out must not cancel its batch for the others
            return await asyncio.wait_for(asyncio.shield(waiter), self.timeout)
        except asyncio.TimeoutError:
            return timeout_answer(self.timeout)

    def flush(self, loop) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        items, waiters = self.items, self.waiters
        self.items, self.waiters = [], []
        if not items:
            return
        self.stats.batches += 1
        self.stats.batch_items += len(items)
        future = loop.run_in_executor(self.executor, self.run_batch, items)
        future.add_done_callback(lambda done: self._answer(waiters, done))

    @staticmethod
    def _answer(waiters: list, done) -> None:
        if done.cancelled() or done.exception() is not None:
            reason = "cancelled" if done.cancelled() else repr(done.exception())
            answers = [(500, error_body("batch_error", f"the batch could not run: {reason}"))] * len(waiters)
        else:
            answers = done.result()
        for waiter, answer in zip(waiters, answers):
            if not waiter.done():
                waiter.set_result(answer)

    def run_batch(self, items: list) -> list:
        answers: list = [None] * len(items)
        accepted = list(range(len(items)))
        if self.validator is not None:
            accepted = []
            for index, item in enumerate(items):
                reason = contract.validator_verdict(self.validator, [item], {})
                if reason is None:
                    accepted.append(index)
                else:
                    answers[index] = 422, error_body("invalid_input", reason)
        if accepted:
            try:
                results = contract.batch_results(self.fn([items[i] for i in accepted]), len(accepted))
            except contract.BatchError as exc:
                failure = 500, error_body("batch_error", str(exc))
            except Exception as exc:
                failure = function_error(exc)
            else:
                for index, result in zip(accepted, results):
                    answers[index] = encode_result(result)
                return answers
            for index in accepted:  # the whole batch failed: every request in it learns why
                answers[index] = failure
        return answers
