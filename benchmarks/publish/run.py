"""Publish latency of the k-means example (issue 11): where the time from Publish to URL goes.

    .venv/bin/python benchmarks/publish/run.py [--runs 10]      (make bench-publish)

Publishes the example's ``predictor`` with its validator and sample to the default target (the
embedded local function server, uv environments, bubblewrap sandbox when available) in a fresh
state directory, as ``publish()`` does for the dialog's Publish button, and records when each stage
began. Measured in one run:

- the first publish on a machine where uv never ran (an empty uv cache: every package is
  downloaded from PyPI), with its own server;
- the first publish: no server running, no environment for the function yet (uv's package cache
  as the run above left it);
- the next publish right after it, while the environment's bytecode is still being written;
- ``--runs`` warm publishes of new versions (server running, environment built and compiled), with
  the pre-flight overlapping the server's start of the version (the default), and as many with
  the pre-flight first and the push after it (the order before issue 11), for comparison.

Writes results.json and REPORT.md beside this file. Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "benchmarks" / "serving"))

from machine import date_utc, describe, load_average  # noqa: E402  (benchmarks/serving/machine.py)

NOTEBOOK = """
import numpy as np
from sklearn.cluster import KMeans
rng = np.random.default_rng(0)
points = rng.random((200, 2))
kmodel = KMeans(n_clusters=3, n_init=10, random_state=0).fit(points)

def predictor(x):
    return int(kmodel.predict(np.asarray([x], dtype=float))[0])

def validator(x):
    return np.asarray(x).shape == (2,)
"""
SAMPLE = [[0.5, 0.5]]


def timed_publish(publish, predictor, validator, **options) -> dict:
    """One publish: total seconds, and the second at which each stage first reported."""
    stages: dict = {}
    started = time.perf_counter()

    def progress(stage, fraction, message):
        stages.setdefault(stage, round(time.perf_counter() - started, 3))

    deployment = publish(predictor, validator=validator, sample=SAMPLE, progress=progress, **options)
    total = time.perf_counter() - started
    return {"seconds": round(total, 3), "stages": stages, "version": deployment.version, "url": deployment.url,
            "key": deployment.key}


def wait_compiled(state: Path, timeout: float = 300.0) -> float:
    from jupyterlab_publish.functions.uv_environments import COMPILED_MARKER

    started = time.monotonic()
    while not any((state / "envs").glob(f"*/{COMPILED_MARKER}")):
        if time.monotonic() - started > timeout:
            raise SystemExit("the environment's bytecode was not written within 5 minutes")
        time.sleep(0.2)
    return time.monotonic() - started


def summary(runs: list) -> dict:
    seconds = [run["seconds"] for run in runs]
    return {"runs": len(runs), "median": round(statistics.median(seconds), 3), "min": round(min(seconds), 3),
            "max": round(max(seconds), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    runs = parser.parse_args().runs
    state = Path(tempfile.mkdtemp(prefix="publish-bench-"))
    os.environ["JUPYTERLAB_PUBLISH_STATE_DIR"] = str(state)

    import jupyterlab_publish
    from jupyterlab_publish.targets import LocalTarget

    namespace = {"__name__": "__main__"}
    exec(NOTEBOOK, namespace)
    predictor, validator = namespace["predictor"], namespace["validator"]
    load_before = load_average()
    analysis = []
    jupyterlab_publish.analyze(predictor)  # builds the distribution index once, as a kernel does
    for _ in range(200):
        started = time.perf_counter()
        jupyterlab_publish.analyze(predictor, validator=validator)
        analysis.append(time.perf_counter() - started)

    publish = jupyterlab_publish.publish
    # A machine whose uv cache is empty (no publish ever ran there): uv downloads every package.
    cold_state = Path(tempfile.mkdtemp(prefix="publish-bench-cold-"))
    os.environ["JUPYTERLAB_PUBLISH_STATE_DIR"] = str(cold_state)
    os.environ["UV_CACHE_DIR"] = str(cold_state / "uv-cache")
    try:
        empty_cache = timed_publish(publish, predictor, validator)
    finally:
        LocalTarget().stop()
        del os.environ["UV_CACHE_DIR"]
        os.environ["JUPYTERLAB_PUBLISH_STATE_DIR"] = str(state)
    try:
        first = timed_publish(publish, predictor, validator)
        right_after = timed_publish(publish, predictor, validator, new_version=True)
        compiled_after = wait_compiled(state)
        overlapped = [timed_publish(publish, predictor, validator, new_version=True) for _ in range(runs)]
        LocalTarget.gates_switch = False  # the pre-flight first, then the push: the order before issue 11
        sequential = [timed_publish(publish, predictor, validator, new_version=True) for _ in range(runs)]
        LocalTarget.gates_switch = True
        request = urllib.request.Request(first["url"], data=json.dumps(SAMPLE).encode(),
                                         headers={"Content-Type": "application/json",
                                                  "Authorization": f"Bearer {first['key']}"})
        answer = json.loads(urllib.request.urlopen(request, timeout=30).read())
        assert answer == predictor(*SAMPLE), (answer, predictor(*SAMPLE))
        sandbox = json.loads((state / "server.json").read_text()).get("sandbox")
    finally:
        LocalTarget().stop()
    for run in [empty_cache, first, right_after, *overlapped, *sequential]:
        run.pop("key")

    results = {
        "date": date_utc(),
        "machine": describe(REPO, str(Path(sys.executable).with_name("uv"))),
        "load_before": load_before,
        "load_after": load_average(),
        "sandbox": sandbox,
        "analyze_ms": {"runs": len(analysis), "median": round(statistics.median(analysis) * 1000, 3),
                       "max": round(max(analysis) * 1000, 3)},
        "first_empty_uv_cache": empty_cache,
        "first": first,
        "right_after_first": right_after,
        "bytecode_written_after_s": round(compiled_after, 1),
        "warm_overlapped": {**summary(overlapped), "each": overlapped},
        "warm_sequential": {**summary(sequential), "each": sequential},
    }
    (HERE / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    (HERE / "REPORT.md").write_text(report(results))
    print((HERE / "REPORT.md").read_text())


def stage_row(label: str, run: dict) -> str:
    marks = ", ".join(f"{stage} {at:.2f}" for stage, at in run["stages"].items())
    return f"| {label} | {run['seconds']:.2f} s | {marks} |"


def report(results: dict) -> str:
    machine = results["machine"]
    overlapped, sequential = results["warm_overlapped"], results["warm_sequential"]
    typical = sorted(overlapped["each"], key=lambda run: run["seconds"])[len(overlapped["each"]) // 2]
    typical_sequential = sorted(sequential["each"], key=lambda run: run["seconds"])[len(sequential["each"]) // 2]
    lines = [
        "# Publish latency (issue 11)",
        "",
        f"Measured {results['date']} in one run of `python benchmarks/publish/run.py` "
        "(`make bench-publish`). Raw figures: `results.json`.",
        "",
        f"- Machine: {machine['nproc']} cores, {machine['ram_gib']} GiB RAM, {machine['cpu']}; "
        f"load average {results['load_before']} before, {results['load_after']} after.",
        f"- Python {machine['python']}; scikit-learn {machine['packages']['scikit-learn']}, numpy "
        f"{machine['packages']['numpy']}; {machine['uv']}; project at {machine['project_commit']}; workers' "
        f"sandbox: {(results['sandbox'] or {}).get('mode')} ({(results['sandbox'] or {}).get('reason')}).",
        "- The function: the k-means example's `predictor` with its validator and the sample `[[0.5, 0.5]]`, "
        "published with `publish()` (what the dialog's Publish button runs in the kernel) to the embedded "
        "local function server in a fresh state directory.",
        "",
        "| publish | seconds to URL | how |",
        "| --- | ---: | --- |",
        f"| first, on a machine where uv never ran: empty uv cache | {results['first_empty_uv_cache']['seconds']:.2f} "
        "| starts the server; uv downloads scikit-learn, scipy, numpy... from PyPI and builds the environment |",
        f"| first: no server running, no environment yet | {results['first']['seconds']:.2f} | starts the server, "
        "builds the function's environment with uv (from uv's package cache) |",
        f"| the next one, right after | {results['right_after_first']['seconds']:.2f} | environment built; its "
        "bytecode still being written in the background |",
        f"| warm: pre-flight while the server starts the version ({overlapped['runs']} runs) | "
        f"median {overlapped['median']:.2f}, min {overlapped['min']:.2f}, max {overlapped['max']:.2f} | "
        "the default since issue 11 |",
        f"| warm: pre-flight first, then the push ({sequential['runs']} runs) | median {sequential['median']:.2f}, "
        f"min {sequential['min']:.2f}, max {sequential['max']:.2f} | the order before issue 11, for comparison |",
        "",
        f"`analyze(predictor)` with the index built: median {results['analyze_ms']['median']:.2f} ms "
        f"({results['analyze_ms']['runs']} runs). The environment's bytecode was complete "
        f"{results['bytecode_written_after_s']:.1f} s after the second publish returned.",
        "",
        "## Where the time goes (second at which each stage began)",
        "",
        "| publish | total | stages |",
        "| --- | ---: | --- |",
        stage_row("first, empty uv cache", results["first_empty_uv_cache"]),
        stage_row("first", results["first"]),
        stage_row("right after the first", results["right_after_first"]),
        stage_row("warm, overlapped (median run)", typical),
        stage_row("warm, sequential (median run)", typical_sequential),
        "",
        "In a warm publish the kernel's part (analysis, sample, pickling, bundle) takes a few "
        "hundredths of a second. The rest is two fresh interpreters that each import scikit-learn and "
        "answer the sample: the pre-flight's (only the declared distributions on its path) and the new "
        "worker's (in the function's own environment, in its sandbox). They now run at the same time "
        "on the two cores; the server holds the started version until the pre-flight passes.",
        "",
        "These are measurements, not test assertions. The click → URL figures in a real browser are "
        "printed by the Galata tests (`click to URL …` lines of `make test-ui`).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
