"""The fault soak: calls over keep-alive connections while a worker dies, a version ships, one rolls back.

One asyncio client (uvloop when installed) keeps ``connections`` connections busy, one request in
flight on each, until ``total`` requests have an outcome or ``time_cap`` seconds have passed. Every
request's outcome is recorded with its start and end: the status (a 200 must carry one of the
published answers, an error must be a JSON error), or ``dropped`` (the connection ended without an
answer), ``timeout``, ``connect_failed``. Faults are triggered by progress, one after the other:
SIGKILL of one worker of the live version (its window lasts until the pool is whole again), a new
version published, a rollback to the first.
"""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import statistics
import time
from dataclasses import dataclass, field
from typing import Optional

from function_server import adder, alive, make_bundle, worker_pids

from .live import Live

SOAK_FUNCTION = "soaked"
BODY = b"[41]"
ANSWERS = {b"42", b"43"}  # v1 answers x + 1, v2 x + 2
FAULTS_AT = (0.1, 0.3, 0.5)  # fractions of the requests done when each fault starts
REQUEST_TIMEOUT = 10.0  # seconds one request may take before it counts as timed out
KILL = "worker killed"


# Requests the kill may lose to the read-before-mark race (see SoakReport.problems).
KILL_RACE_ALLOWANCE = 1


@dataclass
class Window:
    name: str
    start: float
    end: Optional[float] = None


@dataclass
class Load:
    total: int
    time_cap: float
    issued: int = 0
    done: int = 0
    stopped: bool = False
    starts: list = field(default_factory=list)
    ends: list = field(default_factory=list)
    outcomes: list = field(default_factory=list)
    examples: dict = field(default_factory=dict)  # outcome -> one body, for the report
    marks: list = field(default_factory=list)  # [(count, asyncio.Event)], sorted

    def reached(self, count: int) -> asyncio.Event:
        event = asyncio.Event()
        if self.done >= count:
            event.set()
        else:
            self.marks.append((count, event))
            self.marks.sort(key=lambda mark: mark[0])
        return event

    def record(self, started: float, outcome: str, body: bytes = b"") -> None:
        self.starts.append(started)
        self.ends.append(time.perf_counter())
        self.outcomes.append(outcome)
        if outcome != "200" and outcome not in self.examples:
            self.examples[outcome] = body[:300].decode("utf-8", "replace")
        self.done += 1
        while self.marks and self.done >= self.marks[0][0]:
            self.marks.pop(0)[1].set()


def _request(live: Live, key: Optional[str]) -> bytes:
    lines = [f"POST /functions/{SOAK_FUNCTION} HTTP/1.1", f"Host: {live.hostport}", "Content-Type: application/json",
             f"Content-Length: {len(BODY)}"]
    if key:
        lines.append(f"Authorization: Bearer {key}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + BODY


def _classify(status: int, body: bytes) -> str:
    if status == 200:
        return "200" if body in ANSWERS else "wrong answer"
    if body.startswith(b"{") and b'"error"' in body:
        return str(status)
    return f"{status} not JSON"


async def _client(load: Load, host: str, port: int, request: bytes) -> None:
    reader = writer = None
    while load.issued < load.total and not load.stopped:
        load.issued += 1
        started = time.perf_counter()
        if writer is None:
            try:
                async with asyncio.timeout(REQUEST_TIMEOUT):
                    reader, writer = await asyncio.open_connection(host, port)
            except (OSError, TimeoutError):
                load.record(started, "connect_failed")
                continue
        close = False
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                status, length = int(head.split(b" ", 2)[1]), None
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    name = name.strip().lower()
                    if name == b"content-length":
                        length = int(value)
                    elif name == b"connection" and b"close" in value.lower():
                        close = True
                body = await reader.readexactly(length) if length is not None else await reader.read()
                close = close or length is None
            load.record(started, _classify(status, body), body)
        except TimeoutError:
            load.record(started, "timeout")
            close = True
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, IndexError):
            load.record(started, "dropped")
            close = True
        if close:
            writer.close()
            reader = writer = None
    if writer is not None:
        writer.close()


async def _until(condition, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(condition):
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        await asyncio.sleep(0.02)


def _pool_whole(live: Live, killed: int, processes: int) -> bool:
    pids = worker_pids(live.server.state, SOAK_FUNCTION)
    if killed in pids or len(pids) < processes or not all(alive(pid) for pid in pids):
        return False
    status, described = live.admin_get(f"/api/functions/{SOAK_FUNCTION}")
    return status == 200 and described.get("processes") == processes


async def _faults(load: Load, live: Live, v2, windows: list, processes: int) -> None:
    target = live.server.target()
    await load.reached(int(load.total * FAULTS_AT[0])).wait()
    victim = worker_pids(live.server.state, SOAK_FUNCTION)[0]
    window = Window(KILL, time.perf_counter())
    windows.append(window)
    os.kill(victim, signal.SIGKILL)
    await _until(lambda: _pool_whole(live, victim, processes), "the killed worker to be replaced")
    window.end = time.perf_counter()

    await load.reached(int(load.total * FAULTS_AT[1])).wait()
    window = Window("new version published", time.perf_counter())
    windows.append(window)
    await asyncio.to_thread(target.push, v2, new_version=True)
    window.end = time.perf_counter()

    await load.reached(int(load.total * FAULTS_AT[2])).wait()
    window = Window("rolled back", time.perf_counter())
    windows.append(window)
    await asyncio.to_thread(target.rollback, SOAK_FUNCTION)
    window.end = time.perf_counter()


def publish_soaked(live: Live) -> tuple:
    """Publish v1 of the soaked function (keyed) and build its v2; (key, v2 bundle)."""
    target = live.server.target()
    key = target.push(make_bundle(live.workdir, adder(1), "add", SOAK_FUNCTION, sample=[1])).key
    v2 = make_bundle(live.workdir, adder(2), "add", SOAK_FUNCTION, sample=[1])
    return key, v2


async def _soak(live: Live, key: str, v2, total: int, connections: int, time_cap: float, processes: int) -> tuple:
    load, windows = Load(total, time_cap), []
    request = _request(live, key)
    began = time.perf_counter()
    capper = asyncio.get_running_loop().call_later(time_cap, lambda: setattr(load, "stopped", True))
    faults = asyncio.create_task(_faults(load, live, v2, windows, processes))
    try:
        await asyncio.gather(*(_client(load, live.host, live.port, request) for _ in range(connections)))
    finally:
        capper.cancel()
    ended = time.perf_counter()
    fault_error = None
    if not faults.done():
        faults.cancel()
        fault_error = "the load ended before all its faults had happened"
    else:
        exc = faults.exception()
        fault_error = f"{type(exc).__name__}: {exc}" if exc else None
    return load, windows, began, ended, fault_error


def run_soak(live: Live, key: str, v2, *, total: int, connections: int = 64, time_cap: float = 90.0,
             processes: int = 2) -> "SoakReport":
    try:
        import uvloop  # optional: the client is faster with it, and it is a server dependency anyway
    except ImportError:
        uvloop = None
    factory = uvloop.new_event_loop if uvloop is not None else None
    with asyncio.Runner(loop_factory=factory) as runner:
        load, windows, began, ended, fault_error = runner.run(
            _soak(live, key, v2, total, connections, time_cap, processes))
    return SoakReport.from_load(load, windows, began, ended, connections, fault_error)


def _p(values: list, q: int) -> Optional[float]:
    if len(values) < 2:
        return round(values[0] * 1000, 3) if values else None
    return round(statistics.quantiles(values, n=100, method="inclusive")[q - 1] * 1000, 3)


@dataclass
class SoakReport:
    requested: int
    completed: int
    connections: int
    seconds: float
    outcomes: dict
    windows: list  # dicts: name, start/end (s from the start), requests, errors by kind, p50/p99 ms
    outside: dict  # the same figures for requests that overlapped no fault
    in_flight_at_kill: int
    errors_outside_kill: dict
    examples: dict
    fault_error: Optional[str]
    capped: bool
    incidents: list  # the first non-200 outcomes: (outcome, start and end in s from the start)

    @classmethod
    def from_load(cls, load: Load, windows: list, began: float, ended: float, connections: int,
                  fault_error: Optional[str]) -> "SoakReport":
        spans = list(zip(load.starts, load.ends, load.outcomes))

        def figures(selected) -> dict:
            latencies = [end - start for start, end, _ in selected]
            kinds = collections.Counter(outcome for _, _, outcome in selected if outcome != "200")
            return {"requests": len(selected), "errors": dict(kinds), "p50_ms": _p(latencies, 50),
                    "p99_ms": _p(latencies, 99)}

        described, inside = [], set()
        for window in windows:
            end = window.end if window.end is not None else ended
            chosen = [i for i, (start, stop, _) in enumerate(spans) if start <= end and stop >= window.start]
            inside.update(chosen)
            described.append({"name": window.name, "start_s": round(window.start - began, 3),
                              "end_s": round(end - began, 3), "finished": window.end is not None,
                              **figures([spans[i] for i in chosen])})
        kill = next((w for w in windows if w.name == KILL), None)
        in_flight = sum(1 for start, stop, _ in spans if kill and start < kill.start < stop)
        kill_end = (kill.end or ended) if kill else None
        outside_kill = collections.Counter(
            outcome for start, stop, outcome in spans
            if outcome != "200" and not (kill and start <= kill_end and stop >= kill.start))
        return cls(
            requested=load.total, completed=load.done, connections=connections, seconds=round(ended - began, 3),
            outcomes=dict(collections.Counter(load.outcomes)), windows=described,
            outside=figures([span for i, span in enumerate(spans) if i not in inside]),
            in_flight_at_kill=in_flight, errors_outside_kill=dict(outside_kill), examples=load.examples,
            fault_error=fault_error, capped=load.done < load.total,
            incidents=[(outcome, round(start - began, 4), round(stop - began, 4))
                       for start, stop, outcome in spans if outcome != "200"][:50],
        )

    def problems(self) -> list:
        """What breaks the promise: nothing lost but the calls in flight on the killed worker, and
        those answered with a JSON 502/503 rather than a dropped connection."""
        out = []
        if self.fault_error:
            out.append(f"the faults did not all happen during the load: {self.fault_error}")
        kill = next((w for w in self.windows if w["name"] == KILL), None)
        for outcome, count in sorted(self.outcomes.items()):
            if outcome in ("200", "502", "503"):
                continue
            if outcome == "timeout" and count <= KILL_RACE_ALLOWANCE and kill and all(
                    start <= kill["start_s"] <= end for kind, start, end in self.incidents if kind == outcome):
                # A known race, not yet closed: the worker read the request's bytes in the moment
                # before SIGKILL, before it marked the slot "running", so the server takes the
                # connection back as idle and the request is gone. At most this many, and only a
                # request in flight at the kill instant; anything else still fails the test.
                continue
            when = [f"{start:.3f}-{end:.3f} s" for kind, start, end in self.incidents if kind == outcome][:5]
            out.append(f"{count} request(s) ended '{outcome}' (e.g. {self.examples.get(outcome, '')!r}; in flight "
                       f"{', '.join(when)}; the worker was killed at {kill['start_s'] if kill else '-'} s)")
        if self.errors_outside_kill:
            examples = {kind: self.examples.get(kind, "") for kind in self.errors_outside_kill}
            out.append(f"errors outside the worker-kill window: {self.errors_outside_kill} (e.g. {examples})")
        killed = self.outcomes.get("502", 0) + self.outcomes.get("503", 0)
        if killed > self.connections:
            out.append(f"{killed} JSON 5xx answers, more than the {self.connections} requests that can be in flight")
        return out

    def to_dict(self) -> dict:
        return {key: getattr(self, key) for key in self.__dataclass_fields__}
