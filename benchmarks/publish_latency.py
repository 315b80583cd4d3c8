"""Time the publish path for the example k-means predictor: analysis, and publish to a live URL.

    .venv/bin/python benchmarks/publish_latency.py [--runs 10]

Uses a fresh local function server in a temporary state directory (stopped at the end) and prints
a Markdown table; benchmarks/REPORT.md holds the figures measured on our machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
import urllib.request


def notebook_namespace() -> dict:
    source = """
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
    namespace = {"__name__": "__main__"}
    exec(source, namespace)
    return namespace


def timed(fn, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    runs = parser.parse_args().runs
    os.environ["JUPYTERLAB_PUBLISH_STATE_DIR"] = tempfile.mkdtemp(prefix="publish-bench-")

    import jupyterlab_publish
    from jupyterlab_publish.targets import LocalTarget

    ns = notebook_namespace()
    predictor, validator = ns["predictor"], ns["validator"]
    jupyterlab_publish.analyze(predictor)  # builds the distribution index once, as a kernel would
    analysis = timed(lambda: jupyterlab_publish.analyze(predictor, validator=validator), runs * 100)

    start = time.perf_counter()
    first = jupyterlab_publish.publish(predictor, validator=validator, sample=[[0.5, 0.5]])
    cold = time.perf_counter() - start
    warm = timed(
        lambda: jupyterlab_publish.publish(predictor, validator=validator, sample=[[0.5, 0.5]], new_version=True),
        runs,
    )
    request = urllib.request.Request(first.url, data=b"[[0.5, 0.5]]", headers={"Content-Type": "application/json"})
    assert json.loads(urllib.request.urlopen(request).read()) == predictor([0.5, 0.5])
    LocalTarget().stop()

    ms = lambda seconds: f"{seconds * 1000:.2f} ms"  # noqa: E731
    print(f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}\n")
    print("| measure | median | max |\n| --- | --- | --- |")
    print(f"| analyze(predictor) ({len(analysis)} runs) | {ms(statistics.median(analysis))} | {ms(max(analysis))} |")
    print(f"| publish, server not yet running (1 run) | {ms(cold)} | {ms(cold)} |")
    print(f"| publish a new version, server running ({runs} runs) | {ms(statistics.median(warm))} | {ms(max(warm))} |")


if __name__ == "__main__":
    main()
