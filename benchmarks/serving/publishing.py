"""Publish the benchmark's functions to a function server through the public API only.

Features that other work may or may not have landed yet are detected here, never assumed:
``serve --processes``, batching (``jupyterlab_publish.vectorized`` or ``publish(batching=True)``),
``Deployment.key`` and per-lock environments (found by their ``pyvenv.cfg``).
"""

from __future__ import annotations

import inspect
import json
import os
import re
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Optional

import jupyterlab_publish

from servers import SERVE_COMMANDS, FunctionServer, serve_command, serve_help

HERE = Path(__file__).resolve().parent
MAX_BATCH_SIZE = 64
MAX_WAIT_MS = 2


def notebook_namespace() -> dict:
    """functions.py run as a notebook cell: its functions are pickled by value, not by reference."""
    namespace = {"__name__": "__main__"}
    exec(compile((HERE / "functions.py").read_text("utf-8"), "<notebook cell>", "exec"), namespace)
    return namespace


def detect_features() -> dict:
    command = serve_command()
    help_text = serve_help(command)
    # The option's own help entry (not the usage line), with its wrapped continuation lines.
    processes = re.search(r"^\s*--processes\b[^\n]*(?:\n\s{8,}[^-\s][^\n]*)*", help_text, re.MULTILINE)
    default = re.search(r"default:?\s*(\d+)", processes.group(0)) if processes else None
    params = inspect.signature(jupyterlab_publish.publish).parameters
    if hasattr(jupyterlab_publish, "vectorized"):
        batching = "jupyterlab_publish.vectorized"
    elif "batching" in params:
        batching = "publish(batching=True)"
    else:
        batching = None
    return {
        "serve_command": command,
        "serve_command_is_cli": command == SERVE_COMMANDS[0],
        "serve_processes_flag": bool(processes),
        "serve_processes_default": int(default.group(1)) if default else None,
        "batching": batching,
    }


def vectorize(fn, how: Optional[str]):
    """(function, extra publish options) that make ``fn`` a batched endpoint the available way."""
    if how == "jupyterlab_publish.vectorized":
        return jupyterlab_publish.vectorized(max_batch_size=MAX_BATCH_SIZE, max_wait_ms=MAX_WAIT_MS)(fn), {}
    if how == "publish(batching=True)":
        return fn, {"batching": True}
    raise ValueError("batching is not available")


def requirements_of(fn) -> list:
    return sorted(f"{r.name}=={r.version}" for r in jupyterlab_publish.analyze(fn).requirements)


def publish_timed(fn, name: str, server: FunctionServer, sample, **options) -> dict:
    """Publish and return the deployment, its auth headers and the wall time of ``publish``."""
    start = time.perf_counter()
    deployment = jupyterlab_publish.publish(fn, name=name, target=server.url, token=server.token,
                                            sample=sample, **options)
    seconds = time.perf_counter() - start
    key = getattr(deployment, "key", None)
    return {
        "deployment": deployment,
        "url": deployment.url,
        "headers": {"Authorization": f"Bearer {key}"} if key else {},
        "seconds": round(seconds, 3),
    }


def function_info(url: str, headers: dict) -> dict:
    """The endpoint's GET info (what the server says about batching, for instance), or {"error": ...}."""
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            answer = json.loads(response.read() or b"{}")
            return answer if isinstance(answer, dict) else {}
    except (OSError, ValueError) as exc:  # HTTPError is an OSError
        return {"error": f"GET {url}: {exc}"}


def delete(server: FunctionServer, name: str) -> None:
    request = urllib.request.Request(f"{server.url}/api/functions/{name}", method="DELETE",
                                     headers={"Authorization": f"Bearer {server.token}"})
    try:
        urllib.request.urlopen(request, timeout=30).close()
    except OSError:
        pass  # only tidies up; a leftover function costs memory, not correctness


def environments_under(*roots: Path) -> list:
    """Virtual environments (their pyvenv.cfg) under ``roots``: evidence of per-lock environments."""
    found = []
    for root in roots:
        if root.exists():
            found += [str(p.parent) for p in root.rglob("pyvenv.cfg")]
    return found


def worker_processes(server: FunctionServer, name: str) -> int:
    """How many processes in the server's own session run ``name``'s service (Linux /proc)."""
    count = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == server.process.pid:
            continue
        try:
            session = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[3])  # state ppid pgrp session
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
        except (OSError, IndexError, ValueError):
            continue
        if session == server.process.pid and "service" in cmdline and (
            f"/{name}/" in cmdline or f"--name {name} " in cmdline + " "
        ):
            count += 1
    return count


def isolated_environment(work: Path, uv_cache: str, uv_python_dir: str) -> dict:
    """Process env for function servers: empty data/cache homes (so no environment is cached yet),
    but uv's download cache and its Python installs are the warm, shared ones."""
    env = dict(os.environ)
    for var in ("JUPYTERLAB_PUBLISH_STATE_DIR", "JUPYTERLAB_PUBLISH_TOKEN", "JUPYTERLAB_PUBLISH_SERVER_PYTHON"):
        env.pop(var, None)
    home = work / "home"
    env.update({
        "XDG_DATA_HOME": str(home / "data"),
        "XDG_CACHE_HOME": str(home / "cache"),
        "JUPYTER_DATA_DIR": str(home / "data" / "jupyter"),
        "UV_CACHE_DIR": uv_cache,
    })
    if uv_python_dir:
        env["UV_PYTHON_INSTALL_DIR"] = uv_python_dir
    return env
