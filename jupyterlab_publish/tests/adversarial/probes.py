"""The catalogue: every attack and bad input, as data.

A probe names what it sends (requests built from templates, on one connection, one after another
or pipelined), the statuses it accepts for each answer (``CLOSED``: the server may, or must, close
instead), optionally the error codes it accepts, and a check of anything else (a leak, a function
that must not exist). A few probes need choreography (slow clients, concurrent connections); they
are functions with the same result shape. ``runner.py`` runs them all the same way.

Request templates use ``{host}`` (the server's own host:port), ``{admin}`` (the admin token) and
``{key:NAME}`` (a function's key), filled in when the probe runs.
"""

from __future__ import annotations

import concurrent.futures
import json
import re
import socket
import time
from dataclasses import dataclass
from typing import Callable, Optional

from . import bundles
from .live import REQUEST_TIMEOUT, SAMPLE_MARK, Live
from .rawhttp import CLOSED, Hung, RawConnection, request

MiB = 1024**2
# Seconds within which a slow or silent client must have been closed: the server's default
# --header-timeout (10 s) and a margin for a loaded machine; uvicorn's keep-alive timeout is 5 s.
SLOW_CLIENT_BOUND = 15.0
IDLE_CONNECTIONS = 300


def S(*statuses) -> frozenset:
    return frozenset(statuses)


@dataclass(frozen=True)
class Probe:
    name: str
    category: str
    what: str  # a line for the report
    send: tuple = ()  # builders: Live -> bytes, one request each
    expect: tuple = ()  # per answer: the statuses accepted (CLOSED included where it may close)
    pipelined: bool = False  # all requests in one write
    stream: Optional[Callable] = None  # Live -> (head, chunk, count): stop sending once answered
    codes: Optional[tuple] = None  # per answer: error codes accepted (None: any known code)
    check: Optional[Callable] = None  # (Live, answers) -> a problem, or None
    custom: Optional[Callable] = None  # (Live, deadline) -> (answers, problems)
    timeout: float = 3.0  # the hard bound on the whole probe (ms are typical); a timeout is a failure
    slow: bool = False  # a slow-client probe: run with the others of its kind, concurrently


# -- building requests ---------------------------------------------------------------------------


def fill(template: bytes, live: Live) -> bytes:
    out = template.replace(b"{host}", live.hostport.encode()).replace(b"{port}", str(live.port).encode())
    out = out.replace(b"{admin}", live.admin.encode())
    return re.sub(rb"\{key:([a-z-]+)\}", lambda m: live.key(m.group(1).decode()).encode(), out)


def raw(template: bytes):
    return lambda live: fill(template, live)


def req(method: str, path: str, body: bytes = b"", *, key: Optional[str] = None, host: Optional[str] = "{host}",
        headers=(), version: str = "HTTP/1.1"):
    """A well-formed request; ``key`` and ``host`` are templates too ("{key:keyed}", "{admin}")."""
    template = request(method, path, body, host=host, key=key, headers=headers, version=version)
    return raw(template)


def call(name: str, body: bytes = b"[1]", key: Optional[str] = "default", **options):
    """A call of ``name``; by default with its own key when it has one."""
    if key == "default":
        key = "{key:%s}" % name if name in ("keyed", "boom") else None
    return req("POST", f"/functions/{name}", body, key=key, **options)


def admin(method: str, path: str, body: bytes = b"", **options):
    return req(method, path, body, key="{admin}", **options)


# -- checks --------------------------------------------------------------------------------------


def no_sample(live: Live, answers) -> Optional[str]:
    for answer in answers:
        if answer != CLOSED and SAMPLE_MARK.encode() in answer.body:
            return f"the answer shows the keyed function's sample input without its key: {answer.body[:200]!r}"
    return None


def absent(*names: str):
    def check(live: Live, answers) -> Optional[str]:
        for name in names:
            status, _ = live.admin_get(f"/api/functions/{name}")
            if status != 404:
                return f"function {name} exists after a refused publish (GET /api/functions/{name}: {status})"
        return None

    return check


def only_own_paths(live: Live, answers) -> Optional[str]:
    document = answers[0].json() if answers and answers[0] != CLOSED else None
    paths = list((document or {}).get("paths", {}))
    foreign = [p for p in paths if not p.startswith("/functions/open")]
    return f"the OpenAPI document lists the worker's own paths {foreign}" if foreign else None


def docs_page_is_the_servers(live: Live, answers) -> Optional[str]:
    answer = answers[0]
    if answer == CLOSED:
        return None
    problems = []
    if "content-security-policy" not in answer.headers:
        problems.append("the docs page has no Content-Security-Policy")
    ports = {int(p) for p in re.findall(rb"127\.0\.0\.1:(\d+)", answer.body)} - {live.port}
    if ports:
        problems.append(f"the docs page shows a worker's private address (port {sorted(ports)})")
    return "; ".join(problems) or None


def close_announced(live: Live, answers) -> Optional[str]:
    """A server may close after an answer, but must say so (Connection: close) when it does."""
    for previous, answer in zip(answers, answers[1:]):
        if answer == CLOSED and previous != CLOSED and not previous.closes:
            return f"the connection was closed after a {previous.status} that did not say 'Connection: close'"
    return None


def no_cors_grant(live: Live, answers) -> Optional[str]:
    for answer in answers:
        if answer != CLOSED and "access-control-allow-origin" in answer.headers:
            return f"a cross-site preflight was granted: {answer.headers['access-control-allow-origin']}"
    return None


# -- choreographed probes ------------------------------------------------------------------------


def _truncated_body_then_eof(live: Live, deadline: float):
    with RawConnection(live.host, live.port, deadline) as conn:
        conn.send(fill(b"POST /functions/open HTTP/1.1\r\nHost: {host}\r\nContent-Length: 100\r\n\r\n[1", live))
        conn.sock.shutdown(socket.SHUT_WR)  # the client is done: the rest of the body never comes
        return [conn.read_response()], []


def _subpath_flood(live: Live, deadline: float):
    """Many unauthenticated POST /functions/NAME/x at once (finding 1), then an ordinary call."""
    connections = [RawConnection(live.host, live.port, deadline) for _ in range(12)]
    try:
        for conn in connections:
            conn.send(fill(b"POST /functions/open/anything HTTP/1.1\r\nHost: {host}\r\nContent-Length: 3\r\n\r\n[1]",
                           live))
        answers = [conn.read_response() for conn in connections]
    finally:
        for conn in connections:
            conn.close()
    with RawConnection(live.host, live.port, deadline) as conn:
        conn.send(call("open")(live))
        answers.append(conn.read_response())
    return answers, []


def _relayed_body_before_auth(live: Live, deadline: float):
    """A call hands the connection to a worker; an unauthenticated 48 MiB upload follows on it."""
    total = 48 * MiB
    with RawConnection(live.host, live.port, deadline) as conn:
        conn.send(call("open")(live))
        first = conn.read_response()
        head = fill(b"POST /api/functions/open/versions?new_version=true HTTP/1.1\r\nHost: {host}\r\n"
                    b"Content-Type: application/gzip\r\nContent-Length: %d\r\n\r\n" % total, live)
        sent = conn.send_stream(head, bytes(MiB), total // MiB) - len(head)
        second = conn.read_response()
    problems = [f"the server read all {total} bytes of the body before refusing it"] if sent >= total else []
    return [first, second], problems


def _slow_call_after_quick_ones(live: Live, deadline: float):
    """Finding 3: quick calls move ``slow`` inline on the event loop; a 4 s call after them must
    still get its 504 at --request-timeout, and calls to the same worker meanwhile must not wait as
    long as it runs (the bound here is --request-timeout itself: a hang, not a speed, is caught)."""
    for _ in range(8):
        with RawConnection(live.host, live.port, deadline) as conn:
            conn.send(call("slow", b"[0]")(live))
            conn.read_response()
    problems, waits = [], []
    with RawConnection(live.host, live.port, deadline) as slow, \
            RawConnection(live.host, live.port, deadline) as quick:
        slow.send(call("slow", b"[4]")(live))
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pending = pool.submit(slow.read_response)
            while not pending.done():  # quick calls, one after another, while the slow one runs
                asked = time.monotonic()
                quick.send(call("slow", b"[0]")(live))
                quick.read_response()
                waits.append(time.monotonic() - asked)
            answer = pending.result()
    if waits and max(waits) >= REQUEST_TIMEOUT:
        problems.append(f"a call to the same worker waited {max(waits):.1f} s behind the slow one "
                        f"(--request-timeout is {REQUEST_TIMEOUT:g} s): it ran on the event loop")
    return [answer], problems


def _silent(live: Live, deadline: float, prefix: bytes = b"", dribble: bytes = b""):
    with RawConnection(live.host, live.port, deadline) as conn:
        if prefix:
            conn.send(fill(prefix, live))
        # With ``dribble``: one more header line every half second, so bytes keep arriving in time
        # but the head never ends. The server must close (or answer) within its header timeout.
        while dribble and not conn.readable_within(0.5):
            if not conn.send(dribble):
                break  # closed while we were sending
        answers, _ = conn.wait_closed()
        return answers or [CLOSED], []


def _idle_keep_alive(live: Live, deadline: float):
    with RawConnection(live.host, live.port, deadline) as conn:
        conn.send(call("open")(live))
        first = conn.read_response()
        answers, _ = conn.wait_closed()
        return [first] + (answers or [CLOSED]), []


def _many_idle(live: Live, deadline: float):
    """300 connections that never send a byte; an ordinary call still answers, and every idle one
    is closed by the server in time."""
    idle = []
    try:
        for _ in range(IDLE_CONNECTIONS):
            idle.append(RawConnection(live.host, live.port, deadline))
        with RawConnection(live.host, live.port, deadline) as conn:
            conn.send(call("open")(live))
            answers = [conn.read_response()]
        still_open = 0
        for conn in idle:
            try:
                conn.wait_closed()
            except Hung:  # the deadline passed with this one still open
                still_open += 1
        problems = [f"{still_open} of {IDLE_CONNECTIONS} idle connections were still open after "
                    f"{SLOW_CLIENT_BOUND:g} s"] if still_open else []
        return answers, problems
    finally:
        for conn in idle:
            conn.close()


def _secrets_relayed_through_a_worker(live: Live, deadline: float):
    """Function code must not reach the server's secrets: on a connection handed to ``spy``'s worker,
    an admin request and a call of ``keyed`` with its key follow; ``spy`` (armed) must see neither.
    The requests may be answered, or refused with 421 / a close so the client goes elsewhere."""
    with RawConnection(live.host, live.port, deadline) as conn:
        conn.send(call("spy", b'["arm"]')(live))
        answers = [conn.read_response()]
        conn.send(admin("GET", "/api/functions")(live))
        answers.append(conn.read_response())
        conn.send(call("keyed", b'["x"]')(live))
        answers.append(conn.read_response())
    with RawConnection(live.host, live.port, deadline) as conn:
        conn.send(call("spy", b'["look"]')(live))
        answers.append(conn.read_response())
    seen = answers[-1].body.decode("utf-8", "replace") if answers[-1] != CLOSED else ""
    problems = [f"function code in a worker read {what} relayed through its process"
                for what, secret in (("the admin token", live.admin), ("keyed's key", live.key("keyed")))
                if secret in seen]
    return answers, problems


def silent(prefix: bytes = b"", dribble: bytes = b""):
    return lambda live, deadline: _silent(live, deadline, prefix, dribble)


# -- the catalogue ---------------------------------------------------------------------------------

BAD = S(400)
BAD_THEN_CLOSED = (S(400), S(CLOSED))
BIG = 64 * MiB  # over the catalogue server's --max-body (1 MiB) many times
OK_CALL = b"POST /functions/open HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"


def _framing() -> list:
    P = lambda name, what, send, expect, **kw: Probe(name, "framing", what, send, expect, **kw)
    return [
        P("garbage-request-line", "a request line that is not HTTP", (raw(b"GARBAGE\r\n\r\n"),), BAD_THEN_CLOSED),
        P("http-0.9", "an HTTP/0.9 request (no version, no headers)", (raw(b"GET /healthz\r\n\r\n"),),
          (S(200, 400, CLOSED),)),
        P("unknown-http-version", "GET /healthz HTTP/7.1", (raw(b"GET /healthz HTTP/7.1\r\nHost: {host}\r\n\r\n"),),
          (S(400, 505),)),
        P("absurd-method", "method BREW on a function", (raw(OK_CALL.replace(b"POST", b"BREW") + b"Content-Length: 3\r\n\r\n[1]"),),
          (S(400, 405, 501),)),
        P("overlong-method", "an 8 KiB method name", (raw(b"A" * 8192 + b" /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n"),),
          (S(400, 405, 414, 431, 501),)),
        P("nul-in-request-line", "a NUL byte in the request target",
          (raw(b"POST /functions/open\x00 HTTP/1.1\r\nHost: {host}\r\nContent-Length: 3\r\n\r\n[1]"),), BAD_THEN_CLOSED),
        P("cl-te-smuggling", "Content-Length and Transfer-Encoding: chunked, a request smuggled in the body",
          (raw(OK_CALL + b"Content-Length: 60\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
               b"POST /functions/keyed HTTP/1.1\r\nHost: {host}\r\n\r\n"),), BAD_THEN_CLOSED),
        P("te-cl-smuggling", "Transfer-Encoding before Content-Length, a keyless call smuggled",
          (raw(OK_CALL + b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n3\r\n[1]\r\n0\r\n\r\n"
               b"POST /functions/keyed HTTP/1.1\r\nHost: {host}\r\nContent-Length: 5\r\n\r\n[\"x\"]"),), BAD_THEN_CLOSED),
        P("obfuscated-transfer-encoding", "Transfer-Encoding: xchunked with a Content-Length",
          (raw(OK_CALL + b"Transfer-Encoding: xchunked\r\nContent-Length: 3\r\n\r\n[1]"),), (S(400, 501), S(CLOSED))),
        P("space-before-colon", "'Transfer-Encoding : chunked' (space before the colon)",
          (raw(OK_CALL + b"Transfer-Encoding : chunked\r\nContent-Length: 3\r\n\r\n[1]"),), BAD_THEN_CLOSED),
        P("duplicate-content-length", "two different Content-Length headers",
          (raw(OK_CALL + b"Content-Length: 3\r\nContent-Length: 10\r\n\r\n[1]"),), BAD_THEN_CLOSED),
        P("repeated-equal-content-length", "the same Content-Length twice",
          (raw(OK_CALL + b"Content-Length: 3\r\nContent-Length: 3\r\n\r\n[1]"),), (S(200, 400),)),
        P("negative-content-length", "Content-Length: -1", (raw(OK_CALL + b"Content-Length: -1\r\n\r\n[1]"),),
          BAD_THEN_CLOSED),
        P("non-numeric-content-length", "Content-Length: 3x", (raw(OK_CALL + b"Content-Length: 3x\r\n\r\n[1]"),),
          BAD_THEN_CLOSED),
        P("bad-chunk-size", "a chunk size that is not hexadecimal",
          (raw(OK_CALL + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n[1]\r\n0\r\n\r\n"),), BAD_THEN_CLOSED),
        P("overflowing-chunk-size", "a 20-digit chunk size",
          (raw(OK_CALL + b"Transfer-Encoding: chunked\r\n\r\nffffffffffffffffffff\r\n[1]\r\n0\r\n\r\n"),),
          (S(400, 413), S(CLOSED))),
        Probe("truncated-body-then-eof", "framing", "Content-Length: 100, 2 bytes, then the client half-closes",
              expect=(S(400, CLOSED),), custom=_truncated_body_then_eof),
        P("header-without-colon", "a header line without a colon", (raw(OK_CALL + b"Bogus header line\r\n"
          b"Content-Length: 3\r\n\r\n[1]"),), BAD_THEN_CLOSED),
        P("obs-fold", "an obsolete folded header line", (raw(OK_CALL + b"X-Folded: a\r\n  b\r\nContent-Length: 3\r\n\r\n[1]"),),
          (S(200, 400),)),
        P("nul-in-header", "a NUL byte in a header value", (raw(OK_CALL + b"X-Nul: a\x00b\r\nContent-Length: 3\r\n\r\n[1]"),),
          BAD_THEN_CLOSED),
        P("lf-only-line-endings", "bare LF line endings", (raw(b"POST /functions/open HTTP/1.1\nHost: {host}\n"
          b"Content-Length: 3\n\n[1]"),), (S(200, 400),)),
        P("expect-continue-oversize", "Expect: 100-continue with a 50 MiB Content-Length, no body",
          (raw(OK_CALL + b"Expect: 100-continue\r\nContent-Length: 52428800\r\n\r\n"),), (S(413, 417),)),
        P("pipelined-bad-key-second", "two calls in one write, the second with a wrong key",
          (call("keyed", b'["x"]'), call("keyed", b'["x"]', key="wrong-key")), (S(200), S(401)), pipelined=True),
        P("pipelined-public-then-keyless", "a public call then a keyless call of a keyed function, pipelined",
          (call("open"), call("keyed", b'["x"]', key=None)), (S(200), S(401)), pipelined=True),
        P("pipelined-three-mixed", "three pipelined calls: right key, public, another function's key",
          (call("keyed", b'["x"]'), call("open"), call("keyed", b'["x"]', key="{key:boom}")),
          (S(200), S(200), S(401)), pipelined=True),
        P("keep-alive-bad-key-second", "a good call, then a wrong key on the same connection",
          (call("keyed", b'["x"]'), call("keyed", b'["x"]', key="wrong-key")), (S(200), S(401))),
        P("keep-alive-function-key-on-admin", "a call, then the admin API with that function's key",
          (call("keyed", b'["x"]'), req("GET", "/api/functions", key="{key:keyed}")), (S(200), S(401))),
        P("keep-alive-admin-then-keyless", "the admin API, then a keyless call on the same connection",
          (admin("GET", "/api/functions"), call("keyed", b'["x"]', key=None)), (S(200), S(401))),
        P("keep-alive-after-401", "a refused call without a body does not spoil the connection",
          (call("keyed", b"", key=None), call("keyed", b'["x"]')), (S(401), S(200))),
        P("keep-alive-after-401-with-body", "a refused call's unread body: the connection goes on or is closed "
          "as announced", (call("keyed", b'["x"]', key=None), call("keyed", b'["x"]')), (S(401), S(200, CLOSED)),
          check=close_announced),
    ]


def _auth() -> list:
    P = lambda name, what, send, expect, **kw: Probe(name, "auth", what, send, expect, **kw)
    keyed = lambda key, **kw: (call("keyed", b'["x"]', key=key, **kw),)
    return [
        P("missing-key", "a keyed function without Authorization", keyed(None), (S(401),)),
        P("wrong-key", "a wrong key", keyed("wrong-key"), (S(401),)),
        P("basic-scheme", "Authorization: Basic", keyed(None, headers=[("Authorization", "Basic dXNlcjpwYXNz")]), (S(401),)),
        P("bearer-without-key", "'Authorization: Bearer'", keyed(None, headers=[("Authorization", "Bearer")]), (S(401),)),
        P("bearer-blank-key", "'Authorization: Bearer' and spaces", keyed(None, headers=[("Authorization", "Bearer    ")]),
          (S(401),)),
        P("oversize-key", "a 64 KiB bearer key", keyed("k" * 65536), (S(401, 431),)),
        P("key-of-another-function", "boom's key on keyed", keyed("{key:boom}"), (S(401),)),
        P("key-with-suffix", "keyed's key with one more character", keyed("{key:keyed}x"), (S(401),)),
        P("lowercase-scheme", "'bearer' in lower case with the right key",
          keyed(None, headers=[("Authorization", "bearer {key:keyed}")]), (S(200),)),
        P("admin-token-on-function", "the admin token calls any function (the owner's key)", keyed("{admin}"), (S(200),)),
        P("function-key-on-admin-list", "a function key on GET /api/functions",
          (req("GET", "/api/functions", key="{key:keyed}"),), (S(401),)),
        P("function-key-on-admin-publish", "a function key on the publish endpoint",
          (req("POST", "/api/functions/keyed/versions?new_version=true", b"x", key="{key:keyed}"),), (S(401),)),
        P("function-key-on-rollback", "a function key on rollback",
          (req("POST", "/api/functions/keyed/rollback", key="{key:keyed}"),), (S(401),)),
        P("no-token-on-admin", "GET /api/functions without a token", (req("GET", "/api/functions"),), (S(401),)),
        P("token-in-query", "the admin token in the query string", (req("GET", "/api/functions?token={admin}"),),
          (S(401),)),
        P("function-key-on-metrics", "a function key on /metrics", (req("GET", "/metrics", key="{key:keyed}"),),
          (S(401),)),
        P("keep-alive-key-of-previous-function", "boom called with its key, then keyed with boom's key",
          (call("boom"), call("keyed", b'["x"]', key="{key:boom}")), (S(500), S(401))),
    ]


def _paths() -> list:
    P = lambda name, what, send, expect, **kw: Probe(name, "paths", what, send, expect, **kw)
    return [
        P("subpath-post-keyed", "POST /functions/keyed/anything without a key (must not hang)",
          (req("POST", "/functions/keyed/anything", b"[1]"),), (S(401, 404, 405),)),
        P("subpath-post-open", "POST /functions/open/anything", (req("POST", "/functions/open/anything", b"[1]"),),
          (S(404, 405),)),
        P("subpath-get-open", "GET /functions/open/anything", (req("GET", "/functions/open/anything"),), (S(404),)),
        Probe("subpath-flood", "paths", "12 concurrent POST /functions/open/anything, then a call",
              expect=(S(404, 405),) * 12 + (S(200),), custom=_subpath_flood, timeout=4.0),
        P("dotdot-to-admin", "/functions/open/../../api/functions/keyed/rollback with a function key",
          (req("POST", "/functions/open/../../api/functions/keyed/rollback", key="{key:keyed}"),),
          (S(400, 401, 404, 405),)),
        P("dotdot-between-functions", "/functions/open/../keyed without a key",
          (req("POST", "/functions/open/../keyed", b'["x"]'),), (S(400, 401, 404, 405),)),
        P("encoded-slash", "/functions/open%2F..%2Fkeyed", (req("POST", "/functions/open%2F..%2Fkeyed", b'["x"]'),),
          (S(400, 404),)),
        P("encoded-name", "/functions/%6Fpen (percent-encoded 'open')", (req("POST", "/functions/%6Fpen", b"[1]"),),
          (S(200, 404),)),
        P("overlong-name", "a 10,000-character function name", (req("POST", "/functions/" + "a" * 10000, b"[1]"),),
          (S(400, 404, 414, 431),)),
        P("unicode-name", "a function name with a non-ASCII letter", (req("POST", "/functions/\u00f3pen", b"[1]"),),
          (S(400, 404),)),
        P("uppercase-name", "/functions/OPEN", (req("POST", "/functions/OPEN", b"[1]"),), (S(404),)),
        P("unknown-function", "a function that does not exist", (req("POST", "/functions/nosuch", b"[1]"),), (S(404),),
          codes=(S("not_found"),)),
        P("empty-name", "POST /functions/", (req("POST", "/functions/", b"[1]"),), (S(404, 405),)),
        P("double-slashes", "POST //functions//open", (req("POST", "//functions//open", b"[1]"),), (S(400, 404),)),
        P("encoded-nul", "/functions/open%00", (req("POST", "/functions/open%00", b"[1]"),), (S(400, 404),)),
        P("admin-traversal", "GET /api/functions/..%2F..%2Ftoken with the admin token",
          (admin("GET", "/api/functions/..%2F..%2Ftoken"),), (S(400, 404),)),
        P("wrong-method-on-function", "DELETE /functions/open", (req("DELETE", "/functions/open"),), (S(405),)),
        P("wrong-method-on-admin", "PUT /api/functions", (admin("PUT", "/api/functions", b"{}"),), (S(405),)),
    ]


def _bodies() -> list:
    P = lambda name, what, send, expect, **kw: Probe(name, "bodies", what, send, expect, **kw)
    opened = lambda body: (call("open", body),)
    bad = (S(400),)
    big_head = lambda key, length=True: lambda live: fill(
        b"POST /functions/keyed HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        + (b"Authorization: Bearer " + key.encode() + b"\r\n" if key else b"")
        + (b"Content-Length: %d\r\n\r\n" % BIG if length else b"Transfer-Encoding: chunked\r\n\r\n"), live)
    return [
        P("not-json", "a body that is not JSON", (call("keyed", b"hello"),), bad, codes=(S("bad_request"),)),
        P("empty-body", "an empty body", opened(b""), bad),
        P("deep-array-nesting", "100,000 nested '['", opened(b"[" * 100_000), bad),
        P("deep-object-nesting", "50,000 nested objects", opened(b'{"a":' * 50_000), bad),
        P("huge-float", "[1e999] (infinity)", opened(b"[1e999]"), (S(400, 500),),
          codes=(S("bad_request", "unserialisable_result"),)),
        P("huge-integer", "a 100,000-digit integer", opened(b"[" + b"9" * 100_000 + b"]"), bad),
        P("string-not-arguments", "a JSON string instead of arguments", opened(b'"hello"'), bad),
        P("too-many-arguments", "three arguments to a function of one", opened(b"[1, 2, 3]"), bad),
        P("unknown-keyword", "a keyword the function does not take", opened(b'{"y": 1}'), bad),
        P("null-body", "JSON null", opened(b"null"), bad),
        P("invalid-utf8", "bytes that are not UTF-8", opened(b'["\xff\xfe"]'), bad),
        P("function-raises", "a function that raises", (call("boom"),), (S(500),), codes=(S("function_error"),)),
        Probe("over-max-body-no-key", "bodies", "64 MiB declared, no key: refused before it is read",
              expect=(S(401, 413),), stream=lambda live: (big_head(None)(live), bytes(MiB), BIG // MiB)),
        Probe("over-max-body-chunked-no-key", "bodies", "64 MiB chunked, no key: refused before it is read",
              expect=(S(401, 413),),
              stream=lambda live: (big_head(None, length=False)(live), b"100000\r\n" + bytes(MiB) + b"\r\n", BIG // MiB)),
        Probe("over-max-body-with-key", "bodies", "64 MiB declared, with the key: 413 before it is read",
              expect=(S(413),), stream=lambda live: (big_head(live.key("keyed"))(live), bytes(MiB), BIG // MiB)),
        Probe("relayed-upload-before-auth", "bodies",
              "a call, then an unauthenticated 48 MiB upload on the handed-off connection",
              expect=(S(200), S(401, 404, 413, 421)), custom=_relayed_body_before_auth, timeout=5.0),
        Probe("slow-call-after-quick-calls", "bodies",
              "8 quick calls (the function goes inline), then a 4 s call: a 504, and others not stuck behind it",
              expect=(S(504),), codes=(S("timeout"),), custom=_slow_call_after_quick_ones, timeout=7.0),
    ]


def _headers() -> list:
    P = lambda name, what, send, expect, **kw: Probe(name, "headers", what, send, expect, **kw)
    evil = "evil.example"
    forbidden = (S(403),)
    return [
        Probe("96-mib-header", "headers", "a 96 MiB header: 431 before it is read", expect=(S(431),),
              stream=lambda live: (fill(OK_CALL + b"X-Big: ", live), b"a" * MiB, 96)),
        P("many-headers", "20,000 header lines", (raw(OK_CALL + b"".join(b"X-H%d: v\r\n" % i for i in range(20_000))
                                                  + b"Content-Length: 3\r\n\r\n[1]"),), (S(431),)),
        P("host-rebinding-call", "Host: evil.example on a public function", (call("open", host=evil),), forbidden),
        P("host-rebinding-admin", "Host: evil.example on the admin API", (admin("GET", "/api/functions", host=evil),),
          forbidden),
        P("host-rebinding-metrics", "Host: evil.example on /metrics", (admin("GET", "/metrics", host=evil),), forbidden),
        P("host-rebinding-docs", "Host: evil.example on a docs page", (req("GET", "/functions/open/docs", host=evil),),
          forbidden),
        P("host-rebinding-keep-alive", "a good call, then Host: evil.example on the same connection",
          (call("open"), call("open", host=evil)), (S(200), S(403))),
        P("host-rebinding-handed-off-page", "a good call, then the docs page with Host: evil.example",
          (call("open"), req("GET", "/functions/open/docs", host=evil)), (S(200), S(403))),
        P("cross-site-origin-call", "Origin: https://evil.example on a public function",
          (call("open", headers=[("Origin", "https://evil.example")]),), forbidden),
        P("cross-site-origin-admin", "Origin: https://evil.example on rollback with the admin token",
          (admin("POST", "/api/functions/keyed/rollback", headers=[("Origin", "https://evil.example")]),), forbidden),
        P("null-origin", "Origin: null (a sandboxed page)", (call("open", headers=[("Origin", "null")]),), forbidden),
        P("sec-fetch-site-cross-site", "Sec-Fetch-Site: cross-site", (call("open", headers=[("Sec-Fetch-Site", "cross-site")]),),
          forbidden),
        P("cross-site-keep-alive", "a good call, then Sec-Fetch-Site: cross-site on the same connection",
          (call("open"), call("open", headers=[("Sec-Fetch-Site", "cross-site")])), (S(200), S(403))),
        P("cors-preflight", "an OPTIONS preflight from https://evil.example",
          (req("OPTIONS", "/functions/open", headers=[("Origin", "https://evil.example"),
                                                      ("Access-Control-Request-Method", "POST")]),),
          (S(403, 405),), check=no_cors_grant),
        P("localhost-host", "Host: localhost:PORT is this server", (raw(OK_CALL.replace(b"{host}", b"localhost:{port}")
                                                                        + b"Content-Length: 3\r\n\r\n[1]"),), (S(200),)),
        P("same-origin", "Origin: the server itself, Sec-Fetch-Site: same-origin",
          (call("open", headers=[("Origin", "http://{host}"), ("Sec-Fetch-Site", "same-origin")]),), (S(200),)),
        P("no-host-header", "HTTP/1.1 without Host", (call("open", host=None),), (S(200, 400),)),
    ]


def _slow_clients() -> list:
    P = lambda name, what, custom, expect: Probe(name, "slow clients", what, expect=expect, custom=custom,
                                                  timeout=SLOW_CLIENT_BOUND, slow=True)
    closed = (S(CLOSED, 408),)
    return [
        P("silent-connection", "connect and send nothing", silent(), closed),
        P("partial-request-line", "'POST /functi' and then nothing", silent(b"POST /functi"), closed),
        P("dribbled-headers-call", "a call's head, one header line every 0.5 s",
          silent(b"POST /functions/open HTTP/1.1\r\nHost: {host}\r\n", b"X-Drip: 1\r\n"), (S(CLOSED, 408, 431),)),
        P("dribbled-headers-admin", "an admin request's head, one header line every 0.5 s",
          silent(b"GET /api/functions HTTP/1.1\r\nHost: {host}\r\n", b"X-Drip: 1\r\n"), (S(CLOSED, 408, 431),)),
        P("idle-keep-alive", "one call, then the connection left idle", _idle_keep_alive, (S(200), S(CLOSED))),
        P(f"{IDLE_CONNECTIONS}-idle-connections", f"{IDLE_CONNECTIONS} silent connections; a call still answers",
          _many_idle, (S(200),)),
    ]


def _leaks() -> list:
    P = lambda name, what, send, expect, **kw: Probe(name, "leaks", what, send, expect, **kw)
    return [
        P("info-without-key", "GET /functions/keyed without the key", (req("GET", "/functions/keyed"),),
          (S(200, 401),), check=no_sample),
        P("openapi-without-key", "GET /functions/keyed/openapi.json without the key",
          (req("GET", "/functions/keyed/openapi.json"),), (S(200, 401),), check=no_sample),
        P("docs-without-key", "GET /functions/keyed/docs without the key", (req("GET", "/functions/keyed/docs"),),
          (S(200, 401),), check=no_sample),
        P("info-on-handed-off-connection", "a call with the key, then GET /functions/keyed without it",
          (call("keyed", b'["x"]'), req("GET", "/functions/keyed")), (S(200), S(200, 401)), check=no_sample),
        P("metrics-without-token", "GET /metrics without the admin token", (req("GET", "/metrics"),), (S(401),)),
        P("openapi-lists-own-paths", "the OpenAPI document through the server lists only /functions/open",
          (req("GET", "/functions/open/openapi.json"),), (S(200),), check=only_own_paths),
        P("docs-page-through-server", "/functions/open/docs keeps its CSP and shows no worker address",
          (req("GET", "/functions/open/docs"),), (S(200),), check=docs_page_is_the_servers),
        P("metrics-on-handed-off-connection", "a call, then GET /metrics without a token on the same connection",
          (call("open"), req("GET", "/metrics")), (S(200), S(401))),
        Probe("secrets-relayed-through-worker", "leaks",
              "a hostile function watches its worker while the admin API and another function's key pass by",
              expect=(S(200), S(200, 421, CLOSED), S(200, 421, CLOSED), S(200)),
              custom=_secrets_relayed_through_a_worker),
    ]


def _bundles() -> list:
    def upload(variant, name="probe-bundle", pushed_to=None, check_names=None, codes=S("invalid_bundle")):
        pushed_to = pushed_to or name
        head = b"POST /api/functions/%s/versions?new_version=true HTTP/1.1\r\nHost: {host}\r\n" % pushed_to.encode()

        def build(live):
            body = variant(live, name) if variant is not None else b""
            return fill(head + b"Authorization: Bearer {admin}\r\nContent-Type: application/gzip\r\n"
                        b"Content-Length: %d\r\n\r\n" % len(body), live) + body

        return dict(send=(build,), expect=(S(400),), codes=(codes,), check=absent(*(check_names or [pushed_to])),
                    timeout=10.0)

    P = lambda name, what, **kw: Probe(name, "bundles", what, **kw)
    return [
        P("tampered-manifest", "the manifest edited after signing", **upload(bundles.tampered_manifest)),
        P("tampered-file", "function.pkl edited after signing", **upload(bundles.tampered_file)),
        P("foreign-signature", "signed with another server's key", **upload(bundles.foreign_signature)),
        P("unsigned", "no signature.json", **upload(bundles.unsigned)),
        P("manifest-names-another-function", "a bundle of probe-a pushed to /api/functions/probe-b",
          **upload(bundles.genuine, name="probe-a", pushed_to="probe-b", check_names=["probe-a", "probe-b"],
                   codes=S("invalid_bundle", "bad_request"))),
        P("path-traversal", "a member named ../escaped.py", **upload(bundles.traversal)),
        P("absolute-path", "a member with an absolute path", **upload(bundles.absolute)),
        P("symlink", "a member that is a symlink to /etc/passwd", **upload(bundles.symlink)),
        P("hardlink", "a member that is a hard link", **upload(bundles.hardlink)),
        P("duplicate-member", "the same file twice", **upload(bundles.duplicate)),
        P("unlisted-file", "a file the manifest does not list", **upload(bundles.unlisted)),
        P("truncated-archive", "the first half of a genuine archive", **upload(bundles.truncated)),
        P("plain-tar", "a tar that is not gzipped", **upload(bundles.plain_tar)),
        P("not-an-archive", "4 KiB of random bytes", **upload(bundles.not_an_archive)),
        P("empty-upload", "no body at all", **upload(None)),
        P("gzip-bomb", "a 100 KiB archive whose manifest inflates to 96 MiB", **upload(bundles.gzip_bomb)),
        Probe("oversize-upload", "bundles", "Content-Length: 3 GiB: 413 before it is read", expect=(S(413),),
              stream=lambda live: (fill(b"POST /api/functions/probe-big/versions?new_version=true HTTP/1.1\r\n"
                                        b"Host: {host}\r\nAuthorization: Bearer {admin}\r\n"
                                        b"Content-Length: 3221225472\r\n\r\n", live), bytes(MiB), 64)),
        P("invalid-name", "publish to /api/functions/Bad_Name",
          send=(admin("POST", "/api/functions/Bad_Name/versions?new_version=true", b"x"),), expect=(S(400),),
          codes=(S("invalid_name"),)),
        P("name-taken", "publish over keyed without new_version",
          send=(admin("POST", "/api/functions/keyed/versions", b"x"),), expect=(S(409),), codes=(S("name_taken"),)),
    ]


def _admin_inputs() -> list:
    P = lambda name, what, send, expect, **kw: Probe(name, "admin inputs", what, send, expect, **kw)
    rollback = lambda query, name="keyed": (admin("POST", f"/api/functions/{name}/rollback{query}"),)
    logs = lambda query: (admin("GET", f"/api/functions/keyed/logs{query}"),)
    return [
        P("rollback-to-huge", "?to=10**30", rollback("?to=" + "1" + "0" * 30), (S(400, 404),)),
        P("rollback-to-negative", "?to=-1", rollback("?to=-1"), (S(400, 404),)),
        P("rollback-to-zero", "?to=0", rollback("?to=0"), (S(400, 404),)),
        P("rollback-to-text", "?to=abc", rollback("?to=abc"), (S(400),)),
        P("rollback-to-float", "?to=1.5", rollback("?to=1.5"), (S(400),)),
        P("rollback-nothing-earlier", "rollback of a function with one version", rollback(""), (S(409),),
          codes=(S("target_error"),)),
        P("rollback-unknown-function", "rollback of a function that does not exist", rollback("", "nosuch"),
          (S(404),)),
        P("logs-version-huge", "?version=10**30", logs("?version=" + "9" * 31), (S(400, 404),)),
        P("logs-lines-huge", "?lines=10**12", logs("?lines=1000000000000"), (S(400),)),
        P("logs-lines-negative", "?lines=-5", logs("?lines=-5"), (S(400),)),
        P("logs-version-text", "?version=latest", logs("?version=latest"), (S(400),)),
        P("publish-bad-boolean", "?new_version=maybe", (admin("POST", "/api/functions/keyed/versions?new_version=maybe", b"x"),),
          (S(400),)),
        P("publish-bad-public", "?public=2", (admin("POST", "/api/functions/probe-x/versions?public=2", b"x"),), (S(400),)),
        P("describe-unknown", "GET /api/functions/nosuch", (admin("GET", "/api/functions/nosuch"),), (S(404),)),
        P("delete-unknown", "DELETE /api/functions/nosuch", (admin("DELETE", "/api/functions/nosuch"),), (S(404),)),
        P("describe-invalid-name", "GET /api/functions/Bad_Name", (admin("GET", "/api/functions/Bad_Name"),),
          (S(400, 404),)),
    ]


CATALOGUE = _framing() + _auth() + _paths() + _bodies() + _headers() + _slow_clients() + _leaks() + _bundles() \
    + _admin_inputs()

assert len({probe.name for probe in CATALOGUE}) == len(CATALOGUE), "probe names must be unique"
assert all(probe.send or probe.stream or probe.custom for probe in CATALOGUE)
json.dumps([probe.name for probe in CATALOGUE])  # names go into results.json
