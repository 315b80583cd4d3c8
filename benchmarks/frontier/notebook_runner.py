"""Run one case's notebook in a fresh process and analyse its function with the in-process methods.

    .venv/bin/python notebook_runner.py REQUEST.json

The code cells run in order in a fresh ``__main__`` module with the notebook's directory as the
working directory and first on ``sys.path``, as ipykernel runs them, so the function is a live
object that cloudpickle pickles by value. Then, in this order: the function is pickled (local
modules registered by value) for the clean-environment runs; each method analyses it, timed on the
first call and over repeats; the function answers the sample. The analysis code is imported before
the cells run, as the kernel imports it at bootstrap. After the cells ran, each method's one-time
costs (the installed-distribution index, lazy imports) are paid by analysing an unrelated function
first, as in a kernel that has analysed before; they are timed separately.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
import baselines  # noqa: E402  (stdlib only)
from clean_call import plain  # noqa: E402
from notebook_exec import run_notebook  # noqa: E402

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]  # keep the runner's files out of reach

import cloudpickle  # noqa: E402
import jinja2  # noqa: E402  (used by no case: the warm-up function's requirement)

from jupyterlab_publish import api, frontier  # noqa: E402

IN_PROCESS = {
    "engine": api.analyze,  # what jupyterlab_publish.analyze(fn) resolves to
    "closure-vars": baselines.closure_vars_only,
    "closure-vars+bytecode": baselines.closure_vars_and_bytecode,
}


def _engine_details(report) -> dict:
    """Requirements, plus the plugin-engine hints the engine offers (the user accepts them)."""
    hints = [h for h in getattr(report, "hints", None) or [] if _hint_name(h)]
    return {
        "declared": [r.name for r in report.requirements],
        "why": {r.name: r.why for r in report.requirements},
        "hints": {_hint_name(h): str(getattr(h, "reason", "")) for h in hints},
        "local_modules": [m.name for m in report.local_modules],
        "warnings": [f"{w.code}: {w.message}" for w in report.warnings],
        "errors": [f"{w.code}: {w.message}" for w in getattr(report, "errors", None) or []],
    }


def _hint_name(hint) -> str | None:
    return getattr(hint, "distribution", None) or getattr(hint, "name", None)


def _timed(fn, published, repeat: int) -> tuple[object, float, float]:
    start = time.perf_counter()
    result = fn(published)
    first = time.perf_counter() - start
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn(published)
        times.append(time.perf_counter() - start)
    return result, first, statistics.median(times) if times else first


def _warm_up_function():
    # A distribution with dependencies of its own, so the engine's lock code runs once here.
    return jinja2.Template("{{ x }}").render(x=1)


def _warm_up() -> dict:
    """What a kernel pays once, before the first function it analyses: timed, not counted per case."""
    start = time.perf_counter()
    frontier.find_distribution("cloudpickle")  # builds the engine's distribution index
    index = time.perf_counter() - start
    start = time.perf_counter()
    api.analyze(_warm_up_function)  # lazy imports and first-use caches of the engine
    first = time.perf_counter() - start
    start = time.perf_counter()
    baselines.warm()
    return {"engine_index_s": index, "engine_first_analysis_s": first,
            "packages_distributions_s": time.perf_counter() - start}


def _preflight(published, sample: list, runs: int) -> dict:
    """The product's own pre-flight check on the engine's list: bundle, then time ``preflight``."""
    try:
        from jupyterlab_publish.bundle import build_bundle
        from jupyterlab_publish.bundle.preflight import preflight

        report = api.analyze(published)
        requirements = [{"name": r.name, "version": r.version, "why": r.why} for r in report.requirements]
        times = []
        for _ in range(runs):
            with tempfile.TemporaryDirectory(prefix="frontier-preflight-") as tmp:
                bundle = build_bundle(published, Path(tmp) / "bundle", name="frontier-bench", requirements=requirements,
                                      sample=list(sample), local_modules=report.local_module_names)
                start = time.perf_counter()
                preflight(bundle)
                times.append(time.perf_counter() - start)
        return {"seconds": times}
    except Exception:
        return {"error": traceback.format_exc(limit=4)}


def main() -> None:
    request = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    out: dict = {"methods": {}}
    try:
        namespace = run_notebook(Path(request["notebook"]))
        # After the cells: the engine's index is keyed on sys.path, which the notebook's directory joined.
        out["warm"] = _warm_up()
        published = eval(request["function"], namespace)  # noqa: S307 (our own corpus)

        for name in request["local"]:
            cloudpickle.register_pickle_by_value(sys.modules[name])
        try:
            Path(request["pickle"]).write_bytes(cloudpickle.dumps(published))
        finally:
            for name in request["local"]:
                cloudpickle.unregister_pickle_by_value(sys.modules[name])

        for method in request["methods"]:
            try:
                result, first, warm = _timed(IN_PROCESS[method], published, request["repeat"])
                entry = _engine_details(result) if method == "engine" else {"declared": result}
                entry.update(seconds=first, seconds_repeated=warm)
            except Exception:
                entry = {"declared": [], "error": traceback.format_exc(limit=3)}
            out["methods"][method] = entry

        out["answer"] = plain(published(*request["sample"]))
        if request.get("preflight_runs"):
            out["preflight"] = _preflight(published, request["sample"], request["preflight_runs"])
        out["ok"] = True
    except BaseException:
        out["ok"] = False
        out["error"] = traceback.format_exc(limit=5)
    Path(request["out"]).write_text(json.dumps(out), encoding="utf-8")


if __name__ == "__main__":
    main()
