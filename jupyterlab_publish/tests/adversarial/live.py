"""The server under attack: a real ``jupyter publish serve`` on 127.0.0.1 and five real functions.

- ``keyed``  needs its key; its sample input carries ``SAMPLE_MARK``, which must never be shown
  to a caller without the key.
- ``open``   is public: ``add(x) -> x + 1``.
- ``slow``   is public: ``nap(seconds)`` sleeps, for timeouts and head-of-line blocking.
- ``boom``   needs its key and always raises.
- ``spy``    is public and hostile: it watches what its worker process relays (see FUNCTIONS).

``snapshot`` records what must survive the attacks (versions, worker processes, restarts, answers);
``lost`` compares two snapshots.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from function_server import HTTP_TIMEOUT, Server, make_bundle, worker_pids

SAMPLE_MARK = "sample-7c1f9e-do-not-leak"
# The catalogue's server: a short --request-timeout so the 504 probe is quick, a 1 MiB --max-body
# so the oversized bodies are far over it.
REQUEST_TIMEOUT = 2.0
CATALOGUE_FLAGS = ("--request-timeout", str(REQUEST_TIMEOUT), "--max-body", str(1024**2))
# The soak's server: two processes per version, so one can be killed while the other serves.
SOAK_PROCESSES = 2
SOAK_FLAGS = ("--processes", str(SOAK_PROCESSES))

FUNCTIONS = {
    # name: (source, function, sample, public)
    "keyed": ('def greet(who: str) -> str:\n    return "hello " + who\n', "greet", [SAMPLE_MARK], False),
    "open": ("def add(x):\n    return x + 1\n", "add", [1], True),
    "slow": ("import time\n\ndef nap(seconds: float) -> float:\n    time.sleep(seconds)\n    return seconds\n",
             "nap", [0], True),
    "boom": ('def boom(x):\n    raise ValueError("boom " + str(x))\n', "boom", None, False),
    # Hostile function code: "arm" makes its worker process keep every Authorization header it
    # parses (uvicorn's httptools protocol) or writes (asyncio streams, as a relay does); "look"
    # returns what it kept. Anything that passes through a worker is within reach of its function.
    "spy": (
        "import asyncio\n\nSEEN = []\n\n"
        "def spy(action: str):\n"
        "    if action == 'arm' and not getattr(asyncio.StreamWriter.write, 'spied', False):\n"
        "        original_write = asyncio.StreamWriter.write\n"
        "        def write(self, data):\n"
        "            if b'uthorization' in bytes(data):\n"
        "                SEEN.append(bytes(data).decode('latin-1'))\n"
        "            return original_write(self, data)\n"
        "        write.spied = True\n"
        "        asyncio.StreamWriter.write = write\n"
        "        try:\n"
        "            from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol\n"
        "        except ImportError:\n"
        "            return 'armed'\n"
        "        original_header = HttpToolsProtocol.on_header\n"
        "        def on_header(self, name, value):\n"
        "            if name.lower() == b'authorization':\n"
        "                SEEN.append(value.decode('latin-1'))\n"
        "            return original_header(self, name, value)\n"
        "        HttpToolsProtocol.on_header = on_header\n"
        "    return SEEN[-20:] if action == 'look' else 'ok'\n",
        "spy", ["ping"], True),
}

# (name, JSON arguments, expected status, expected JSON answer or error code)
WITNESS_CALLS = (
    ("keyed", ["x"], 200, "hello x"),
    ("open", [41], 200, 42),
    ("slow", [0], 200, 0),
    ("boom", [1], 500, "function_error"),
    ("spy", ["ping"], 200, "ok"),
)


@dataclass
class Live:
    server: Server
    workdir: Path
    keys: dict = field(default_factory=dict)  # name -> key (None when public)
    cache: dict = field(default_factory=dict)  # things probes build once (bundles)

    @property
    def host(self) -> str:
        return self.server.url.rsplit("//", 1)[1].rsplit(":", 1)[0]

    @property
    def port(self) -> int:
        return int(self.server.url.rsplit(":", 1)[1])

    @property
    def hostport(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def admin(self) -> str:
        return self.server.token

    def key(self, name: str) -> str:
        return self.keys[name]

    def admin_get(self, path: str):
        """(status, JSON) of an admin GET; errors are returned, not raised."""
        request = urllib.request.Request(self.server.url + path, headers={"Authorization": f"Bearer {self.admin}"})
        try:
            with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def stop(self) -> None:
        self.server.stop()


def start(workdir: Path, *flags: str) -> Live:
    """Start a server in ``workdir`` and publish the functions the probes attack."""
    workdir.mkdir(parents=True, exist_ok=True)
    server = Server(workdir / "state", *flags).start()
    live = Live(server, workdir)
    try:
        target = server.target()
        for name, (source, fn, sample, public) in FUNCTIONS.items():
            bundle = make_bundle(workdir, source, fn, name, sample=sample)
            live.keys[name] = target.push(bundle, public=public).key
    except BaseException:
        server.stop()
        raise
    return live


def call(live: Live, name: str, arguments, key=None):
    """(status, JSON body) of one call with the function's key (urllib: an ordinary client)."""
    request = urllib.request.Request(f"{live.server.url}/functions/{name}", data=json.dumps(arguments).encode(),
                                     method="POST", headers={"Content-Type": "application/json"})
    key = live.keys.get(name) if key is None else key
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def snapshot(live: Live) -> dict:
    """What the attacks must leave as it was, per function."""
    out = {}
    for name in FUNCTIONS:
        status, described = live.admin_get(f"/api/functions/{name}")
        out[name] = {
            "described": status,
            "live_version": described.get("live_version") if status == 200 else None,
            "versions": [(v["version"], v["status"]) for v in described.get("versions", [])] if status == 200 else None,
            "restarts": described.get("restarts") if status == 200 else None,
            "workers": sorted(worker_pids(live.server.state, name)),
        }
    return out


def witness(live: Live) -> list:
    """Problems with the functions' answers: each called with its key must answer as published."""
    problems = []
    for name, arguments, status, expected in WITNESS_CALLS:
        got_status, got = call(live, name, arguments)
        answer = got.get("error") if isinstance(got, dict) and status >= 400 else got
        if (got_status, answer) != (status, expected):
            problems.append(f"{name}{arguments} answered {got_status} {got!r}, not {status} {expected!r}")
    return problems


def lost(before: dict, after: dict) -> list:
    """What changed between two snapshots, in words."""
    problems = []
    for name, was in before.items():
        now = after.get(name, {})
        for what in ("described", "live_version", "versions", "restarts", "workers"):
            if now.get(what) != was[what]:
                problems.append(f"{name}: {what} was {was[what]!r}, now {now.get(what)!r}")
    return problems
