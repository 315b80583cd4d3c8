"""The one runner: a probe in, a result out (status, error code, message, time, problems).

Every answer the server gives to a probe must be one of the probe's accepted statuses, and every
error answer (4xx/5xx) must be JSON ``{"error": <a known code>, "message": ...}``. A probe that
outlives its bound (the server neither answered nor closed) fails as hung.
"""

from __future__ import annotations

import concurrent.futures
import time
from dataclasses import dataclass, field

from jupyterlab_publish.errors import ERROR_CODES

from .live import Live
from .probes import CATALOGUE, Probe
from .rawhttp import CLOSED, Garbled, Hung, RawConnection, Response


@dataclass
class Result:
    name: str
    category: str
    what: str
    statuses: list = field(default_factory=list)  # per answer: the status, or "closed"
    codes: list = field(default_factory=list)  # per answer: the error code, if any
    message: str = ""  # the server's first error message, or what went wrong
    elapsed: float = 0.0
    problems: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def status(self) -> str:
        return " ".join(str(s) for s in self.statuses) or "-"

    def row(self) -> dict:
        return {"probe": self.name, "category": self.category, "what": self.what, "status": self.status,
                "codes": [c for c in self.codes if c], "message": self.message, "seconds": round(self.elapsed, 3),
                "ok": self.ok, "problems": self.problems}


def _exchange(live: Live, probe: Probe, deadline: float, answers: list) -> list:
    """Send the probe's requests and read its answers into ``answers`` (kept if it then hangs)."""
    problems = []
    with RawConnection(live.host, live.port, deadline) as conn:
        if probe.stream is not None:
            head, chunk, count = probe.stream(live)
            total = len(head) + len(chunk) * count
            sent = conn.send_stream(head, chunk, count)
            if sent >= total:
                problems.append(f"the server read all {total} bytes before answering")
            answers.append(conn.read_response())
        elif probe.pipelined:
            conn.send(b"".join(build(live) for build in probe.send))
            for _ in probe.expect:
                answers.append(conn.read_response())
        else:
            for build in probe.send:
                conn.send(build(live))  # a refusal may close the connection before all is sent
                answers.append(conn.read_response())
                if answers[-1] == CLOSED:
                    break
        while len(answers) < len(probe.expect) and answers[-1] != CLOSED:
            answers.append(conn.read_response())  # what must follow (the close after a 400)
    return problems


def _judge(probe: Probe, answers: list, result: Result, cut_short: bool) -> None:
    for index, answer in enumerate(answers):
        accepted = probe.expect[index] if index < len(probe.expect) else frozenset()
        if answer == CLOSED:
            result.statuses.append(CLOSED)
            result.codes.append("")
            if CLOSED not in accepted:
                result.problems.append(f"answer {index + 1}: the connection was closed; expected "
                                       f"{sorted(map(str, accepted))}")
            continue
        result.statuses.append(answer.status)
        body = answer.json()
        code = body.get("error") if isinstance(body, dict) and isinstance(body.get("error"), str) else ""
        result.codes.append(code)
        if answer.status >= 400 and not result.message and isinstance(body, dict):
            result.message = str(body.get("message", ""))[:160]
        if answer.status not in accepted:
            detail = code or answer.body[:80]
            result.problems.append(f"answer {index + 1}: {answer.status} ({detail!r}); expected "
                                   f"{sorted(map(str, accepted))}")
        if answer.status >= 400:
            content_type = answer.headers.get("content-type", "")
            if not content_type.startswith("application/json") or code not in ERROR_CODES:
                result.problems.append(f"answer {index + 1}: {answer.status} is not a JSON error with a known code "
                                       f"({content_type or 'no content type'}: {answer.body[:80]!r})")
            elif probe.codes is not None and index < len(probe.codes) and code not in probe.codes[index]:
                result.problems.append(f"answer {index + 1}: error code {code!r}, expected {sorted(probe.codes[index])}")
    missing = len(probe.expect) - len(answers)
    if missing > 0 and not cut_short and not (answers and answers[-1] == CLOSED):
        result.problems.append(f"{missing} answer(s) missing")


def run_probe(live: Live, probe: Probe) -> Result:
    result = Result(probe.name, probe.category, probe.what)
    started = time.monotonic()
    deadline = started + probe.timeout
    answers = []
    try:
        if probe.custom is not None:
            answers, problems = probe.custom(live, deadline)
        else:
            problems = _exchange(live, probe, deadline, answers)
        result.problems += problems
    except Hung as exc:
        if probe.slow:
            result.problems.append(f"the server kept the connection open for {probe.timeout:g} s")
            cut = "still open"
        else:
            result.problems.append(f"hung: {exc} ({probe.timeout:g} s)")
            cut = "hung"
    except Garbled as exc:
        result.problems.append(str(exc))
        cut = "garbled"
    except OSError as exc:
        result.problems.append(f"{type(exc).__name__}: {exc}")
        cut = "error"
    else:
        cut = None
    result.elapsed = time.monotonic() - started
    _judge(probe, answers, result, cut_short=cut is not None)
    if cut is not None:
        result.statuses.append(cut)
    if probe.check is not None and cut is None:
        problem = probe.check(live, [a for a in answers if isinstance(a, Response) or a == CLOSED])
        if problem:
            result.problems.append(problem)
    if result.problems and not result.message:
        result.message = result.problems[0][:160]
    return result


def run_catalogue(live: Live, probes=CATALOGUE) -> list:
    """Every probe once: the quick ones one after another, then the slow clients all at once."""
    results = {probe.name: run_probe(live, probe) for probe in probes if not probe.slow}
    slow = [probe for probe in probes if probe.slow]
    if slow:
        with concurrent.futures.ThreadPoolExecutor(len(slow)) as pool:
            for probe, result in zip(slow, pool.map(lambda p: run_probe(live, p), slow)):
                results[probe.name] = result
    return [results[probe.name] for probe in probes]
