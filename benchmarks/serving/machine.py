"""What the figures were measured on: cores, CPU, memory, load, Python, tool and package versions."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path

PACKAGES = ["jupyterlab-publish", "starlette", "uvicorn", "httptools", "uvloop", "flask", "werkzeug",
            "scikit-learn", "numpy", "cloudpickle"]


def _run(command: list) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=30)
        return (done.stdout or done.stderr).strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    return 0.0


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def load_average() -> list:
    return [round(x, 2) for x in os.getloadavg()]


def date_utc() -> str:
    return _run(["date", "-u"])


def describe(repo: Path, uv: str) -> dict:
    commit = _run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"])
    dirty = bool(_run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"]))
    return {
        "nproc": int(_run(["nproc"]) or os.cpu_count() or 0),
        "cpu": _cpu_model(),
        "arch": platform.machine(),
        "ram_gib": _ram_gib(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "wrk": _run(["wrk", "-v"]).splitlines()[0].split(" Copyright")[0] if _run(["wrk", "-v"]) else "?",
        "uv": _run([uv, "--version"]),
        "packages": {name: _version(name) for name in PACKAGES},
        "project_commit": commit + (" (with uncommitted changes)" if dirty else ""),
    }
