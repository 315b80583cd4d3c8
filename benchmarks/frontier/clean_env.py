"""Clean-environment runs: install only what a method declared, unpickle the function, answer the sample.

Each distinct declared set gets one fresh uv virtual environment (the same interpreter as the
notebook's, so the pickled bytecode loads), holding that set at the versions installed in the
notebook's environment, their dependencies pinned the same way (a constraints file of the
notebook's environment), and cloudpickle, which the runtime always brings. uv installs from its
cache. Every case whose method declared that set then runs there (``clean_call.py`` with ``-I``,
in an empty working directory, with a minimal environment) and its answer is compared with the
notebook's. The environment is deleted when its cases are done.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from scoring import RUNTIME, canonical, installed, installed_version

HERE = Path(__file__).resolve().parent
CALL_SCRIPT = HERE / "clean_call.py"
CALL_TIMEOUT = 180  # seconds: importing scikit-learn on a loaded machine takes a few
_KEPT_ENVIRONMENT = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR")


@dataclass
class Job:
    case_id: str
    method: str
    names: frozenset[str]
    pickle: Path
    sample: Path
    expected: object
    outcome: dict = field(default_factory=dict)


def constraints_file(path: Path) -> Path:
    """Pin every installed distribution, so dependencies resolve to what the notebook ran with."""
    lines = sorted(
        f"{name}=={dist.version}" for name, dist in installed().items() if name != "jupyterlab-publish"
    )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


class CleanRunner:
    def __init__(self, uv: str, work: Path, budget_seconds: float) -> None:
        self.uv = uv
        self.work = work
        self.deadline = time.monotonic() + budget_seconds
        self.environments = 0
        self.install_seconds: list[float] = []
        work.mkdir(parents=True, exist_ok=True)
        self.constraints = constraints_file(work / "constraints.txt")

    def run(self, jobs: list[Job], log=print) -> None:
        groups: dict[frozenset[str], list[Job]] = {}
        for job in jobs:
            groups.setdefault(job.names, []).append(job)
        for number, (names, members) in enumerate(sorted(groups.items(), key=lambda g: sorted(g[0])), 1):
            if time.monotonic() > self.deadline:
                for job in members:
                    job.outcome = {"ran": False, "why": "time budget for clean runs exhausted"}
                continue
            label = ", ".join(sorted(names)) or "(nothing declared)"
            log(f"  clean env {number}/{len(groups)}: {label[:100]} ({len(members)} runs)")
            self._run_group(names, members)

    def _requirements(self, names: frozenset[str]) -> tuple[list[str], list[str]]:
        pinned, skipped = [], []
        for name in sorted(names | RUNTIME):
            version = installed_version(name)
            if version is None:
                skipped.append(name)  # not installed here: nothing the function could have used
            else:
                pinned.append(f"{name}=={version}")
        return pinned, skipped

    def _run_group(self, names: frozenset[str], members: list[Job]) -> None:
        key = hashlib.sha256("\n".join(sorted(names)).encode()).hexdigest()[:12]
        env_dir = self.work / f"env-{key}"
        shutil.rmtree(env_dir, ignore_errors=True)
        pinned, skipped = self._requirements(names)
        start = time.monotonic()
        error = self._create(env_dir, pinned)
        self.install_seconds.append(time.monotonic() - start)
        self.environments += 1
        try:
            for job in members:
                if error:
                    job.outcome = {"ran": True, "ok": False, "stage": "install", "error": error}
                else:
                    job.outcome = self._call(env_dir, job)
                job.outcome["installed"] = pinned
                if skipped:
                    job.outcome["not_installed_here"] = skipped
        finally:
            shutil.rmtree(env_dir, ignore_errors=True)

    def _create(self, env_dir: Path, pinned: list[str]) -> str | None:
        commands = [
            [self.uv, "venv", "--quiet", "--python", sys.executable, str(env_dir)],
            [self.uv, "pip", "install", "--quiet", "--python", str(env_dir / "bin" / "python"),
             "-c", str(self.constraints), *pinned],
        ]
        for command in commands:
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                return f"{' '.join(command[:3])} failed: {done.stderr.strip()[-400:]}"
        return None

    def _call(self, env_dir: Path, job: Job) -> dict:
        env = {name: os.environ[name] for name in _KEPT_ENVIRONMENT if name in os.environ}
        with tempfile.TemporaryDirectory(prefix="frontier-clean-") as tmp:
            out = Path(tmp) / "out.json"
            command = [str(env_dir / "bin" / "python"), "-I", str(CALL_SCRIPT), str(job.pickle), str(job.sample), str(out)]
            start = time.monotonic()
            try:
                subprocess.run(command, cwd=tmp, env=env, capture_output=True, timeout=CALL_TIMEOUT)
            except subprocess.TimeoutExpired:
                return {"ran": True, "ok": False, "stage": "call", "error": f"timed out after {CALL_TIMEOUT} s"}
            seconds = time.monotonic() - start
            if not out.exists():
                return {"ran": True, "ok": False, "stage": "start", "error": "the interpreter wrote no result"}
            outcome = json.loads(out.read_text(encoding="utf-8"))
        outcome["ran"], outcome["seconds"] = True, round(seconds, 3)
        if outcome.get("ok") and outcome.get("answer") != job.expected:
            outcome.update(ok=False, stage="compare", error=f"answered {outcome['answer']!r}, notebook {job.expected!r}")
        outcome.pop("answer", None)
        return outcome


def names_for(declared) -> frozenset[str]:
    return frozenset(canonical(n) for n in declared) - {"jupyterlab-publish"}
