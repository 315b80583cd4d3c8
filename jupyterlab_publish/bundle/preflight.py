"""The pre-flight check: prove a bundle runs with only what it declares, before anything is pushed.

A child interpreter started with ``-I -S`` (no site-packages, no user site, no PYTHON* variables)
sees the standard library plus a directory linking only the declared distributions, their
dependencies and cloudpickle (``clean_site``). It loads the bundle with the bundle's own
``service.py``, answers the sample input, and the answer is compared with the one the notebook gave
when the bundle was built. It runs in an empty working directory with a minimal environment, so a
function that leans on the kernel's files or variables is caught here rather than in production.

Each failure is a PublishError saying what differed: a module no declared distribution provides
(``missing_requirement``, naming the installed distribution that does), a different answer, an
exception, a timeout (``preflight_failed``).
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from jupyterlab_publish.errors import PublishError
from jupyterlab_publish.frontier import find_distribution
from jupyterlab_publish.requirement import Requirement, canonical_name
from jupyterlab_publish.state.logs import tail

from .clean_site import Closure, distribution_closure, link_site
from .format import Bundle

DEFAULT_TIMEOUT = 120.0  # seconds: importing a large stack (torch) alone can take tens of seconds
RELATIVE_TOLERANCE = 1e-9  # the same libraries on the same machine: only summation order may differ
ABSOLUTE_TOLERANCE = 1e-12
RUNTIME_DISTRIBUTIONS = ("cloudpickle",)  # what the child itself imports (service.py needs it)
_CHILD = Path(__file__).with_name("preflight_child.py")
# Variables a service's environment plausibly has too; anything else of the kernel's stays behind.
_ENVIRONMENT_KEPT = (
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "TZ",
    "TMPDIR", "TEMP", "TMP", "SYSTEMROOT", "SYSTEMDRIVE", "WINDIR",
    "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
)
_SHOWN_CHARS = 300  # of each value in a message; the details hold more
_DETAIL_CHARS = 20_000
# What an error shows of the child's output: its last lines, read from the last 4000 bytes.
LOG_LINES = 200
LOG_BYTES = 4000

ProgressCallback = Callable[[str, float, str], None]


@dataclass(frozen=True)
class PreflightResult:
    seconds: float
    distributions: list  # "name version" of everything the clean environment held
    checked_sample: bool

    def to_dict(self) -> dict:
        return {"seconds": round(self.seconds, 3), "distributions": self.distributions,
                "checked_sample": self.checked_sample}


def preflight(
    bundle: Bundle,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> PreflightResult:
    """Run ``bundle``'s function on its sample in a clean environment; raise PublishError if it fails.

    Without a sample the function (and validator) is still unpickled, which catches missing
    imports. Needs the bundle's Python minor version, since the child is this interpreter.
    """
    started = time.monotonic()
    manifest = bundle.manifest
    label = (manifest.get("function") or {}).get("name") or manifest.get("name", "the function")
    _check_python(manifest)
    declared = [Requirement.from_entry(entry) for entry in manifest.get("requirements") or ()]
    closure = distribution_closure([*declared, *map(Requirement.parse, RUNTIME_DISTRIBUTIONS)])
    report = progress or (lambda stage, fraction, message: None)
    report("preflight", 0.1, f"Checking {label} in a clean environment with {len(closure.entries)} distributions")
    # TemporaryDirectory removes the links with shutil.rmtree, which never follows a symlink: the
    # linked distributions themselves are never touched.
    with tempfile.TemporaryDirectory(prefix="jupyterlab-publish-preflight-") as tmp:
        root = Path(tmp)
        site, work = root / "site", root / "work"
        site.mkdir()
        work.mkdir()
        extra_paths = link_site(closure, site)
        request = {
            "bundle": str(Path(bundle.path).resolve()),
            "service": str(Path(bundle.path).resolve() / manifest.get("entrypoint", "service.py")),
            "sys_path": [str(site), *extra_paths],
            "result": str(root / "result.json"),
        }
        (root / "request.json").write_text(json.dumps(request), encoding="utf-8")
        log_path = root / "output.log"
        _run_child(root / "request.json", work, log_path, timeout, cancel, label)
        outcome = _read_outcome(root / "result.json", log_path, label)
    _judge(outcome, manifest, closure, label)
    result = PreflightResult(time.monotonic() - started, closure.describe(), manifest.get("sample") is not None)
    report("preflight", 1.0, f"{label} passed the pre-flight check in {result.seconds:.1f} s")
    return result


def _check_python(manifest: dict) -> None:
    built = (manifest.get("python") or {}).get("minor")
    here = "{}.{}".format(*sys.version_info[:2])
    if built and built != here:
        raise PublishError(
            "preflight_failed",
            f"The bundle was built with Python {built}, but the pre-flight check runs Python {here}.",
            "Run the check from a kernel with the bundle's Python, or publish with preflight=False "
            "and let the target check it.",
        )
    if not sys.executable or not os.path.isfile(sys.executable):
        raise PublishError(
            "preflight_failed",
            "This kernel does not know the path of its own Python interpreter (sys.executable is "
            f"{sys.executable!r}), so the pre-flight check cannot start it.",
            "Publish with preflight=False; the target's smoke test still checks the sample.",
        )


def _child_environment() -> dict[str, str]:
    return {name: os.environ[name] for name in _ENVIRONMENT_KEPT if name in os.environ}


def _run_child(request: Path, cwd: Path, log_path: Path, timeout: float, cancel, label: str) -> None:
    command = [sys.executable, "-I", "-S", "-B", str(_CHILD), str(request)]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command, cwd=cwd, env=_child_environment(), stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=(os.name == "posix"),
        )
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    process.wait(timeout=0.05)
                    return
                except subprocess.TimeoutExpired:
                    pass
                if cancel is not None and cancel.is_set():
                    raise PublishError("cancelled", "Publishing was cancelled.", "Nothing was changed on the target.")
                if time.monotonic() > deadline:
                    raise PublishError(
                        "preflight_failed",
                        f"{label} did not answer the sample input within {timeout:g} s in the pre-flight check.",
                        "Make the sample smaller, or check that the function does not wait for something "
                        "only the notebook provides (input, a server, a lock).",
                        details={"log": tail(log_path, LOG_LINES, max_bytes=LOG_BYTES)},
                    )
        finally:
            if process.poll() is None:
                _kill(process)


def _kill(process: subprocess.Popen) -> None:
    """Stop the child and whatever it started (joblib workers...): it leads its own session."""
    try:
        if os.name == "posix":
            os.killpg(process.pid, signal.SIGKILL)
        else:
            process.kill()
    except (ProcessLookupError, PermissionError):
        pass
    process.wait()


def _read_outcome(path: Path, log_path: Path, label: str) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise PublishError(
            "preflight_failed",
            f"The pre-flight check of {label} ended without an answer: the interpreter crashed or "
            "was killed.",
            "The output below says what happened; a crash in a compiled library often means a "
            "missing shared library.",
            details={"log": tail(log_path, LOG_LINES, max_bytes=LOG_BYTES)},
        ) from None


def _judge(outcome: dict, manifest: dict, closure: Closure, label: str) -> None:
    kind = outcome.get("outcome")
    trace = str(outcome.get("traceback") or outcome.get("message") or "")
    if kind == "missing_module":
        raise _missing_module_error(str(outcome.get("module") or ""), manifest, closure, label, trace)
    if kind == "rejected":
        raise PublishError(
            "preflight_failed",
            f"In a clean environment the validator rejects the sample input: {outcome.get('reason')}",
            "The notebook's validator accepted it: it must depend on something only the notebook has.",
        )
    if kind == "error":
        raise PublishError(
            "preflight_failed",
            f"{label} fails in a clean environment: {outcome.get('message')}",
            "It worked in the notebook, so it depends on something the service will not have: a "
            "file in the notebook's directory, an environment variable, a module imported by "
            "another cell. The traceback below shows where.",
            details={"log": trace},
        )
    if kind != "ok":
        raise PublishError("internal", f"the pre-flight check answered {kind!r}", "This is a bug; please report it.")
    if manifest.get("sample") is None:
        return
    expected, actual = manifest.get("sample_output"), outcome.get("output")
    where = first_difference(expected, actual)
    if where is not None:
        raise PublishError(
            "preflight_failed",
            f"{label} answers the sample differently in a clean environment: at {where}. "
            f"Notebook: {_short(expected)}; clean environment: {_short(actual)}.",
            "The answer depends on something only the notebook has (a file, an environment variable, "
            "a global changed after the function was defined) or is not deterministic (random numbers "
            "without a seed, the time, set order). Fix that, or publish with preflight=False.",
            details={"expected": _clip(expected), "actual": _clip(actual), "where": where,
                     "log": f"notebook:          {_short(expected, 2000)}\nclean environment: {_short(actual, 2000)}"},
        )


def _missing_module_error(module: str, manifest: dict, closure: Closure, label: str, trace: str) -> PublishError:
    found = find_distribution(module) if module else None
    if found is None and "." in module:
        found = find_distribution(module.partition(".")[0])
    if found is None:
        absent = ", ".join(closure.not_installed)
        return PublishError(
            "preflight_failed",
            f"{label} needs the module {module!r}, which no installed distribution provides"
            + (f" (declared but not installed in this kernel, so not checked: {absent})." if absent else "."),
            "If it is a file next to the notebook, import it in the notebook before publishing so it "
            "travels with the function; otherwise install the distribution that provides it in the "
            "kernel, or publish with preflight=False.",
            details={"module": module, "not_installed": closure.not_installed, "log": trace},
        )
    name, version = found
    if canonical_name(name) in closure.entries:
        return PublishError(
            "preflight_failed",
            f"{label} needs the module {module!r} of {name} {version}, which is declared, yet the "
            "module could not be imported in a clean environment.",
            f"Check that {name} is installed completely (pip install --force-reinstall {name}).",
            details={"module": module, "distribution": name, "version": version, "log": trace},
        )
    pin = f"{name}=={version}" if version else name
    requirements = [_pin(r) for r in manifest.get("requirements") or ()] + [pin]
    return PublishError(
        "missing_requirement",
        f"{label} needs the module {module!r}, provided by the installed distribution {name} "
        f"{version}, which is not in the requirements; add it.",
        f"Add {pin} to the requirements and publish again, e.g. requirements={requirements!r}.",
        details={"module": module, "distribution": name, "version": version or "",
                 "requirements": requirements, "log": trace},
    )


def _pin(entry: dict) -> str:
    return Requirement.from_entry(entry).line()


def first_difference(expected: Any, actual: Any, where: str = "result") -> str | None:
    """Where two JSON values differ (numbers within a small relative tolerance), or None."""
    numbers = (int, float)
    if isinstance(expected, bool) or isinstance(actual, bool):
        return None if type(expected) is type(actual) and expected == actual else where
    if isinstance(expected, numbers) and isinstance(actual, numbers):
        same = math.isclose(expected, actual, rel_tol=RELATIVE_TOLERANCE, abs_tol=ABSOLUTE_TOLERANCE)
        return None if same else where
    if isinstance(expected, dict) and isinstance(actual, dict):
        for key in expected:
            if key not in actual:
                return f"{where}[{key!r}] (missing in the clean environment)"
            found = first_difference(expected[key], actual[key], f"{where}[{key!r}]")
            if found:
                return found
        extra = [key for key in actual if key not in expected]
        return f"{where}[{extra[0]!r}] (only in the clean environment)" if extra else None
    if isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            return f"{where} (length {len(expected)} in the notebook, {len(actual)} in the clean environment)"
        for i, (a, b) in enumerate(zip(expected, actual)):
            found = first_difference(a, b, f"{where}[{i}]")
            if found:
                return found
        return None
    return None if type(expected) is type(actual) and expected == actual else where


def _short(value: Any, limit: int = _SHOWN_CHARS) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _clip(value: Any) -> Any:
    """The value itself when small enough for an error message, else its JSON cut short."""
    text = json.dumps(value, ensure_ascii=False)
    return value if len(text) <= _DETAIL_CHARS else text[:_DETAIL_CHARS] + "…"


