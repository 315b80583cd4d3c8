"""One load point with wrk: POST a JSON body at N connections for a bounded time.

wrk's Lua ``done`` hook prints the exact figures (request count, duration, percentiles in µs, error
counts) as one JSON line, so nothing is parsed from its human-readable, unit-rounded output.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

MARKER = "WRK_RESULT "

_DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '%s{"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "max_us": %d, '
    .. '"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}\\n',
    "MARKER", summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end
""".replace("MARKER", MARKER)


def _lua_string(text: str) -> str:
    # A Lua long bracket needs no escaping as long as the closing bracket does not occur inside.
    level = "=" * 3
    assert f"]{level}]" not in text
    return f"[{level}[{text}]{level}]"


def write_script(path: Path, body: object, headers: dict) -> Path:
    lines = ['wrk.method = "POST"', f"wrk.body = {_lua_string(json.dumps(body))}"]
    for name, value in {"Content-Type": "application/json", **headers}.items():
        lines.append(f"wrk.headers[ {_lua_string(name)} ] = {_lua_string(value)}")  # "[[" would open a string
    path.write_text("\n".join(lines) + "\n" + _DONE, "utf-8")
    return path


def run_point(url: str, script: Path, connections: int, duration: int, threads: int = 1,
              timeout: int = 10) -> dict:
    """Requests/s, p50/p99 (ms) and error counts of one bounded wrk run."""
    command = [
        "wrk", f"--threads={max(1, min(threads, connections))}", f"--connections={connections}",
        f"--duration={duration}s", f"--timeout={timeout}s", "--latency", f"--script={script}", url,
    ]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=duration + timeout + 60)
    lines = [line for line in completed.stdout.splitlines() if line.startswith(MARKER)]
    # A script error makes wrk fall back to plain GETs (and still exit 0), so its stderr counts too.
    if completed.returncode != 0 or not lines or completed.stderr.strip():
        raise RuntimeError(f"wrk failed ({completed.returncode}): {completed.stdout}\n{completed.stderr}")
    raw = json.loads(lines[-1][len(MARKER):])
    seconds = raw["duration_us"] / 1e6
    errors = {k: raw[k] for k in ("connect", "read", "write", "status", "timeout") if raw[k]}
    return {
        "connections": connections,
        "requests": raw["requests"],
        "seconds": round(seconds, 3),
        "rps": round(raw["requests"] / seconds, 1) if seconds else 0.0,
        "p50_ms": round(raw["p50_us"] / 1000, 3),
        "p99_ms": round(raw["p99_us"] / 1000, 3),
        "max_ms": round(raw["max_us"] / 1000, 3),
        "errors": errors,  # "status" counts non-2xx/3xx answers; the rest are socket errors
    }
