"""The module-frontier benchmark of issue 3: every method on every case, in one run, one environment.

    python3 benchmarks/frontier/run.py                       # everything (about 15 minutes)
    python3 benchmarks/frontier/run.py --methods engine      # re-measure only this engine, merge
    python3 benchmarks/frontier/run.py --cases c0,p03 --no-clean
    python3 benchmarks/frontier/run.py --report-only         # re-render REPORT.md from results.json

Makes its own environment with uv (benchmarks/frontier/.venv: the libraries the cases use, pipreqs,
MLflow, and this project installed editable) and re-runs itself there. Each case becomes a notebook
(work/<case>/notebook/), which runs in a fresh process per case (notebook_runner.py); the methods
analyse the live function; every declared list is judged (scoring.py) and proven in a clean
environment (clean_env.py). Writes results.json and REPORT.md next to this file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
VENV = HERE / ".venv"
WORK = HERE / "work"
RESULTS = HERE / "results.json"
TOOLS = HERE / "tools.txt"

METHODS = ["truth", "engine", "closure-vars", "closure-vars+bytecode", "pipreqs", "mlflow", "pip-freeze"]
IN_PROCESS = ["engine", "closure-vars", "closure-vars+bytecode"]
# Derived from the engine's own analysis (no extra run): its requirements plus the plugin-engine
# hints it offers, as if the user accepted every hint in the Publish dialog.
WITH_HINTS = "engine+hints"
# The product's pre-flight check is timed on these (numpy / scikit-learn functions).
PREFLIGHT_CASES = {"b01_global_module": 3, "c01_fitted_kmeans": 3}
# pip freeze declares ~150 distributions: its list is stored once (results[FREEZE_LIST]), each case
# keeps only counts, and its clean runs are measured on these few cases only.
FREEZE_LIST = "pip_freeze_list"
FREEZE_CLEAN_CASES = ["c01_fitted_kmeans", "p02_unused_imports_same_cell", "l01_from_utils_numpy"]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- the benchmark's own environment ----------------------------------------------------------
def _uv_outside() -> str:
    found = shutil.which("uv") or str(Path(sys.prefix) / "bin" / "uv")
    if not Path(found).exists():
        raise SystemExit("uv is needed to build the benchmark environment: pip install uv")
    return found


def ensure_environment() -> Path:
    python = VENV / "bin" / "python"
    stamp = VENV / ".tools-installed"
    wanted = TOOLS.read_text(encoding="utf-8")
    if stamp.exists() and stamp.read_text(encoding="utf-8") == wanted and python.exists():
        return python
    uv = _uv_outside()
    log(f"setting up {VENV} with uv (the libraries of the cases, pipreqs, MLflow, this project)")
    if not python.exists():
        subprocess.run([uv, "venv", "--quiet", "--python", sys.executable, str(VENV)], check=True)
    subprocess.run(
        [uv, "pip", "install", "--quiet", "--python", str(python), "-r", str(TOOLS), "-e", str(REPO)], check=True
    )
    # Bytecode compiled up front, as pip does: imports then cost what they cost users, even where
    # PYTHONDONTWRITEBYTECODE is set (it stops the interpreter from caching compiled modules).
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    subprocess.run([str(python), "-m", "compileall", "-q", "-j", "0", site], check=False,
                   stdout=subprocess.DEVNULL)
    stamp.write_text(wanted, encoding="utf-8")
    return python


def in_environment() -> bool:
    return Path(sys.prefix).resolve() == VENV.resolve()


# --- facts about the run ------------------------------------------------------------------------
def _output(command: list[str]) -> str:
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _proc_field(path: str, key: str) -> str:
    """``key: value`` from /proc/cpuinfo or /proc/meminfo (empty where there is no /proc)."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return ""
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith(key)), "")


def machine() -> dict:
    from scoring import installed_version

    memory_kib = _proc_field("/proc/meminfo", "MemTotal").split()[:1]
    packages = ["jupyterlab-publish", "cloudpickle", "numpy", "pandas", "scikit-learn", "scipy", "pyarrow",
                "mlflow", "pipreqs", "uv"]
    return {
        "date_utc": _output(["date", "-u"]),
        "machine": platform.machine(),
        "cpu": _proc_field("/proc/cpuinfo", "model name") or platform.processor(),
        "cores": os.cpu_count(),
        "memory": f"{int(memory_kib[0]) / 1024**2:.0f} GiB" if memory_kib else "",
        "python": platform.python_version(),
        "load_average_start": [round(x, 2) for x in os.getloadavg()],
        "versions": {name: installed_version(name) for name in packages},
        "commit": _output(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"]),
        # the engine measured may be work in progress: say so in the report
        "frontier_uncommitted": _output(
            ["git", "-C", str(REPO), "status", "--porcelain", "--", "jupyterlab_publish/frontier",
             "jupyterlab_publish/api.py"]
        ).splitlines(),
    }


# --- methods ------------------------------------------------------------------------------------
def run_script(script: str, request: dict, path: Path, timeout: float) -> dict:
    path.write_text(json.dumps(request), encoding="utf-8")
    out = Path(request["out"])
    out.unlink(missing_ok=True)
    try:
        done = subprocess.run([sys.executable, str(HERE / script), str(path)], capture_output=True, text=True,
                              timeout=timeout, cwd=path.parent)
    except subprocess.TimeoutExpired:
        return {"error": f"{script} timed out after {timeout:.0f} s"}
    if not out.exists():
        return {"error": f"{script} exited {done.returncode}: {done.stderr.strip()[-800:]}"}
    return json.loads(out.read_text(encoding="utf-8"))


def run_notebook_methods(item, paths: dict, methods: list[str], repeat: int) -> dict:
    request = {
        "notebook": str(paths["notebook"]), "function": item.function, "sample": list(item.sample),
        "local": list(item.local), "pickle": str(paths["pickle"]), "methods": methods, "repeat": repeat,
        "out": str(paths["run"] / "notebook.json"),
        "preflight_runs": PREFLIGHT_CASES.get(item.id, 0) if "engine" in methods else 0,
    }
    return run_script("notebook_runner.py", request, paths["run"] / "notebook-request.json", timeout=600)


def run_mlflow(item, paths: dict) -> dict:
    request = {
        "notebook": str(paths["notebook"]), "function": item.function, "sample": list(item.sample),
        "local": list(item.local), "model_dir": str(paths["run"] / "mlflow-model"),
        "log": str(paths["run"] / "mlflow.log"), "out": str(paths["run"] / "mlflow.json"),
    }
    return run_script("mlflow_probe.py", request, paths["run"] / "mlflow-request.json", timeout=900)


class Pipreqs:
    """pipreqs's own import scan (notebooks included) and import-name mapping, run in-process.

    The CLI then resolves names against PyPI's JSON API (one request per name), or with
    --use-local against top_level.txt files, which today's numpy/pandas/scikit-learn wheels no
    longer ship. Here its mapped names are resolved against installed metadata by PEP 503 name,
    which is what PyPI's answer amounts to for installed distributions, without the network.
    """

    def __init__(self) -> None:
        from pipreqs import pipreqs as module

        module.scan_noteboooks = True  # --scan-notebooks (the flag's own spelling in pipreqs)
        module.handle_scan_noteboooks()
        self.module = module
        self._warm_up()

    def _warm_up(self) -> None:
        """Its first notebook scan imports nbconvert's exporter: a one-time cost, not per case."""
        import tempfile

        import nbformat

        with tempfile.TemporaryDirectory(prefix="frontier-pipreqs-") as tmp:
            notebook = nbformat.v4.new_notebook()
            notebook.cells = [nbformat.v4.new_code_cell("import json")]
            nbformat.write(notebook, str(Path(tmp) / "warm.ipynb"))
            self.module.get_all_imports(tmp)

    def declared(self, directory: Path) -> tuple[list[str], float, list[str]]:
        from scoring import canonical, installed

        start = time.perf_counter()
        names = self.module.get_pkg_names(self.module.get_all_imports(str(directory)))
        seconds = time.perf_counter() - start
        found, unknown = [], []
        for name in names:
            dist = installed().get(canonical(name))
            (found if dist is not None else unknown).append(dist.metadata["Name"] if dist else name)
        return found + unknown, seconds, unknown


def pip_freeze() -> tuple[list[str], float]:
    start = time.perf_counter()
    text = subprocess.run([sys.executable, "-m", "pip", "freeze"], capture_output=True, text=True, check=True).stdout
    seconds = time.perf_counter() - start
    names = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "-e")) and "==" in line:
            names.append(line.split("==")[0])
        elif " @ " in line:
            names.append(line.split(" @ ")[0])
    return names, seconds


# --- the run --------------------------------------------------------------------------------------
def case_paths(item) -> dict:
    from casebook import write_case

    root = WORK / item.id
    shutil.rmtree(root / "notebook", ignore_errors=True)
    run = root / "run"
    run.mkdir(parents=True, exist_ok=True)
    notebook = write_case(item, root / "notebook")
    return {"notebook": notebook, "run": run, "pickle": run / "function.pkl", "sample": run / "sample.json"}


def measure(cases, methods: list[str], args, results: dict) -> None:
    pipreqs = Pipreqs() if "pipreqs" in methods else None
    freeze = pip_freeze() if "pip-freeze" in methods else None
    in_process = [m for m in IN_PROCESS if m in methods]
    for number, item in enumerate(cases, 1):
        started = time.monotonic()
        paths = case_paths(item)
        entry = results["cases"].setdefault(item.id, {})
        entry.update(category=item.category, needs=sorted(item.needs), why=item.why, function=item.function,
                     sample=list(item.sample), local=list(item.local))
        entry.setdefault("methods", {})
        notebook = run_notebook_methods(item, paths, in_process, args.repeat)
        entry["notebook_error"] = None if notebook.get("ok") else notebook.get("error", "unknown error")
        entry["answer"] = notebook.get("answer")
        entry["index_build_s"] = notebook.get("warm")
        if "preflight" in notebook:
            entry["preflight"] = notebook["preflight"]
        paths["sample"].write_text(json.dumps(list(item.sample)), encoding="utf-8")
        found: dict[str, dict] = {}
        if "truth" in methods:
            found["truth"] = {"declared": sorted(item.needs)}
        for method in in_process:
            found[method] = notebook.get("methods", {}).get(method) or {"declared": [], "error": entry["notebook_error"]}
        if "engine" in found:
            engine = found["engine"]
            found[WITH_HINTS] = {"declared": [*engine.get("declared", []), *engine.get("hints", {})],
                                 "hints": engine.get("hints", {}), "seconds": engine.get("seconds"),
                                 "seconds_repeated": engine.get("seconds_repeated")}
        if pipreqs is not None:
            declared, seconds, unknown = pipreqs.declared(paths["notebook"].parent)
            found["pipreqs"] = {"declared": declared, "seconds": seconds, "not_installed": unknown}
        if "mlflow" in methods:
            found["mlflow"] = run_mlflow(item, paths)
        if freeze is not None:
            results[FREEZE_LIST] = freeze[0]
            found["pip-freeze"] = {"declared": freeze[0], "seconds": freeze[1]}
        for method, result in found.items():
            result["clean"] = {"ran": False, "why": "clean runs not requested"}
            entry["methods"][method] = result
        for method, result in entry["methods"].items():  # earlier runs' too: judged by today's truth
            _judge(method, result, item.needs, results)
        summary = " ".join(f"{m}={'✓' if r['exact'] else '✗'}" for m, r in found.items())
        log(f"[{number}/{len(cases)}] {item.id} ({time.monotonic() - started:.1f} s) {summary}"
            + (f"  NOTEBOOK ERROR {entry['notebook_error'].splitlines()[-1]}" if entry["notebook_error"] else ""))


def _judge(method: str, result: dict, needs, results: dict) -> None:
    from scoring import judge

    if method != "pip-freeze":
        result.update(judge(needs, result.get("declared", [])))
        return
    verdict = judge(needs, results.get(FREEZE_LIST, []))
    result.pop("declared", None)
    result.update(verdict, counted=len(verdict["counted"]), extra=len(verdict["extra"]))


def clean_runs(cases, methods: list[str], args, results: dict) -> dict:
    from clean_env import CleanRunner, Job, names_for
    from scoring import counted

    jobs = []
    for item in cases:
        entry = results["cases"][item.id]
        if entry.get("notebook_error"):
            continue
        run = WORK / item.id / "run"
        for method in methods:
            result = entry["methods"].get(method)
            if result is None:
                continue
            if method == "pip-freeze" and item.id not in FREEZE_CLEAN_CASES:
                result["clean"] = {"ran": False, "why": "pip freeze: clean runs measured on a few cases only"}
                continue
            declared = results[FREEZE_LIST] if method == "pip-freeze" else result["counted"]
            jobs.append(Job(item.id, method, names_for(counted(declared)), run / "function.pkl",
                            run / "sample.json", entry["answer"]))
    runner = CleanRunner(_uv_inside(), WORK / "clean", args.clean_budget)
    started = time.monotonic()
    runner.run(jobs, log=log)
    for job in jobs:
        results["cases"][job.case_id]["methods"][job.method]["clean"] = job.outcome
    return {
        "environments": runner.environments,
        "install_seconds_median": statistics.median(runner.install_seconds) if runner.install_seconds else None,
        "total_seconds": time.monotonic() - started,
        "runs": len(jobs),
    }


def _uv_inside() -> str:
    from uv import find_uv_bin

    return find_uv_bin()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated, of {', '.join(METHODS)}")
    parser.add_argument("--cases", help="comma-separated case-id prefixes or categories")
    parser.add_argument("--repeat", type=int, default=20, help="extra timed calls per in-process method")
    parser.add_argument("--no-clean", action="store_true", help="skip the clean-environment runs")
    parser.add_argument("--clean-budget", type=float, default=3600, help="seconds allowed for clean runs")
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args()

    if not in_environment():
        python = ensure_environment()
        os.execv(str(python), [str(python), str(Path(__file__).resolve()), *sys.argv[1:]])

    sys.path.insert(0, str(HERE))
    from casebook import load_cases, select
    from report import write_report

    if args.report_only:
        write_report(json.loads(RESULTS.read_text(encoding="utf-8")), HERE / "REPORT.md")
        return
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise SystemExit(f"unknown methods {unknown}; choose from {METHODS}")
    cases = select(load_cases(), args.cases)
    partial = set(methods) != set(METHODS) or args.cases
    results = json.loads(RESULTS.read_text(encoding="utf-8")) if partial and RESULTS.exists() else {"cases": {}}
    started = time.monotonic()
    results["machine"] = machine()
    log(f"{len(cases)} cases, methods: {', '.join(methods)}")
    measure(cases, methods, args, results)
    if not args.no_clean:
        measured = methods + ([WITH_HINTS] if "engine" in methods else [])
        results["clean_runs"] = clean_runs(cases, measured, args, results)
    results["machine"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    results["machine"]["run_seconds"] = round(time.monotonic() - started, 1)
    results["last_run"] = {"methods": methods, "cases": [c.id for c in cases], "clean": not args.no_clean}
    RESULTS.write_text(json.dumps(results, indent=1, sort_keys=True), encoding="utf-8")
    write_report(results, HERE / "REPORT.md")
    log(f"wrote {RESULTS.relative_to(REPO)} and REPORT.md in {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
