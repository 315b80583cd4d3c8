"""The serving benchmark of issue 4, in one run on this machine.

    python3 benchmarks/serving/run.py [--duration 5] [--warmup 1] [--connections 1 16 64] [--note TEXT]
    python3 benchmarks/serving/run.py --report-only      # re-render REPORT.md from results.json

Installs what it needs (setup.sh: wrk, and a uv-made env in benchmarks/serving/.venv), re-runs
itself in that env, then serves the same two functions (functions.py) four ways: Flask's
development server, bare Starlette/uvicorn with 1 and 2 workers, and this project's function server
(default settings, and ``--processes 2`` when that flag exists). Every point is a bounded wrk run
against 127.0.0.1. Also times cold and warm publishes and the batching gain. Writes results.json
and REPORT.md next to this file; scratch files (server state, logs, wrk scripts) go to work/.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
VENV = HERE / ".venv"
RESULTS = HERE / "results.json"
SERVER_KEYS = ["flask", "bare-1", "bare-2", "fs"]
REPORT = HERE / "REPORT.md"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    # wrk takes whole seconds.
    parser.add_argument("--duration", type=int, default=5, help="seconds of load per point (default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="seconds of unmeasured load before each point (default 1)")
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--batch-connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1,
                        help="wrk threads (default 1: wrk shares the cores with the servers)")
    parser.add_argument("--warm-runs", type=int, default=3, help="warm publishes to time (default 3)")
    parser.add_argument("--servers", nargs="+", choices=SERVER_KEYS, default=SERVER_KEYS,
                        help="which servers to measure (default: all; fs = the function server)")
    parser.add_argument("--note", default="", help="put at the top of the report (e.g. 'preliminary: loaded machine')")
    parser.add_argument("--report-only", action="store_true", help="only re-render REPORT.md from results.json")
    return parser.parse_args(argv)


def ensure_environment() -> None:
    """Install the tools if missing and continue inside the benchmark env."""
    subprocess.run(["bash", str(HERE / "setup.sh")], check=True)
    if Path(sys.prefix).resolve() != VENV.resolve():
        python = str(VENV / "bin" / "python")
        os.execv(python, [python, str(Path(__file__).resolve()), *sys.argv[1:]])


class Bench:
    def __init__(self, options: argparse.Namespace):
        import load
        import servers

        self.load, self.servers = load, servers
        self.options = options
        self.work = HERE / "work"
        shutil.rmtree(self.work, ignore_errors=True)
        (self.work / "logs").mkdir(parents=True)
        self.rows: list = []

    def point(self, server_key: str, function: str, url: str, body, headers: dict, connections: int) -> dict:
        script = self.load.write_script(self.work / f"{server_key}-{function}.lua", body, headers)
        if self.options.warmup > 0:
            self.load.run_point(url, script, connections, self.options.warmup, self.options.threads)
        result = self.load.run_point(url, script, connections, self.options.duration, self.options.threads)
        print(f"  {server_key:>10} {function:<18} c={connections:<3} {result['rps']:>9.0f} req/s  "
              f"p50 {result['p50_ms']:.2f} ms  p99 {result['p99_ms']:.2f} ms  errors {result['errors'] or 0}",
              flush=True)
        return result

    def sweep(self, server, key: str, label: str, processes: int, endpoints: dict) -> None:
        """Every function at every connection count against one running server."""
        for function, (url, body, headers, expected) in endpoints.items():
            answer = server.wait_answers(url, body, headers)
            if answer != expected:
                raise RuntimeError(f"{label} answered {answer!r} for {function}, expected {expected!r}")
            for connections in self.options.connections:
                result = self.point(key, function, url, body, headers, connections)
                self.rows.append({"server": key, "label": label, "processes": processes, "function": function,
                                  **result})
                server.check_alive()


def local_endpoints(base: str, namespace: dict) -> dict:
    from functions import SERVED

    return {name: (f"{base}/{name}", body, {}, namespace[name](*body)) for name, (_, body) in SERVED.items()}


def run_plain_servers(bench: Bench, namespace: dict) -> None:
    servers = bench.servers
    plans = [
        ("flask", "Flask dev server (threaded)", 1, lambda port, log: servers.flask_server(port, log)),
        ("bare-1", "bare Starlette/uvicorn, 1 worker", 1, lambda port, log: servers.bare_server(port, 1, log)),
        ("bare-2", "bare Starlette/uvicorn, 2 workers", 2, lambda port, log: servers.bare_server(port, 2, log)),
    ]
    for key, label, processes, start in plans:
        if key not in bench.options.servers:
            continue
        print(f"{label}:", flush=True)
        port = servers.free_port()
        server = start(port, bench.work / "logs" / f"{key}.log")
        try:
            bench.sweep(server, key, label, processes, local_endpoints(f"http://127.0.0.1:{port}", namespace))
        finally:
            server.stop()


def time_publishes(bench: Bench, server, namespace: dict) -> tuple:
    """Cold publish (predict: a new environment) and warm ones (same requirements, cached environment).

    Returns the figures and the published predict and predict-unbatched (the first warm publish).
    """
    import jupyterlab_publish

    import publishing
    from functions import PREDICT_BODY

    jupyterlab_publish.analyze(namespace["predict"])  # build the distribution index first, as a kernel has it
    cold = publishing.publish_timed(namespace["predict"], "predict", server, PREDICT_BODY)
    warm = [publishing.publish_timed(namespace["predict_rows"], "predict-unbatched", server, PREDICT_BODY)]
    for run in range(1, bench.options.warm_runs):
        warm.append(publishing.publish_timed(namespace["predict_rows"], f"predict-warm-{run}", server, PREDICT_BODY))
        publishing.delete(server, f"predict-warm-{run}")  # only timed: no idle workers during the load
    figures = {
        "cold_s": cold["seconds"],
        "warm_s": [w["seconds"] for w in warm],
        "requirements_cold": publishing.requirements_of(namespace["predict"]),
        "requirements_warm": publishing.requirements_of(namespace["predict_rows"]),
        "environments_found": publishing.environments_under(server.state_dir, bench.work / "home"),
    }
    print(f"  publish: cold {figures['cold_s']:.2f} s, warm {figures['warm_s']} s; "
          f"environments found: {len(figures['environments_found'])}", flush=True)
    return figures, cold, warm[0]


def run_function_servers(bench: Bench, namespace: dict, features: dict, env: dict) -> dict:
    """The project's server: publish times and batching on the first instance, serving on each.

    A failure (the server is other people's work in progress) is recorded and the other figures kept.
    """
    import publishing
    from functions import ADD_BODY, PREDICT_BODY

    extra = {"publish": {}, "batching": {}, "worker_processes": {}, "failures": {}}
    configs = [("fs-1", "function server (default settings)", [])]
    if features["serve_processes_flag"]:
        configs.append(("fs-2", "function server --processes 2", ["--processes", "2"]))
    for first, (key, label, flags) in zip((True, False), configs):
        print(f"{label}:", flush=True)
        server = None
        try:
            server = bench.servers.FunctionServer(features["serve_command"], bench.work / f"state-{key}", flags,
                                                  bench.work / "logs" / f"{key}.log", env, label)
            if first:
                extra["publish"], predict, unbatched = time_publishes(bench, server, namespace)
            else:
                predict = publishing.publish_timed(namespace["predict"], "predict", server, PREDICT_BODY)
            add = publishing.publish_timed(namespace["add"], "add", server, ADD_BODY)
            extra["keys_required"] = bool(add["headers"])
            endpoints = {name: (p["url"], body, p["headers"], namespace[name](*body))
                         for name, p, body in (("add", add, ADD_BODY), ("predict", predict, PREDICT_BODY))}
            processes = extra["worker_processes"][key] = publishing.worker_processes(server, "add")
            bench.sweep(server, key, label, processes, endpoints)
            if first:
                extra["batching"] = run_batching(bench, server, namespace, features, unbatched)
        except Exception as exc:
            message = f"{type(exc).__name__}: {exc}".strip()
            extra["failures"][key] = message[:2000]
            print(f"  FAILED: {message}", flush=True)
        finally:
            if server is not None:
                server.stop()
    return extra


def run_batching(bench: Bench, server, namespace: dict, features: dict, unbatched: dict) -> dict:
    import publishing
    from functions import PREDICT_BODY

    connections = bench.options.batch_connections
    expected = namespace["predict_rows"](*PREDICT_BODY)
    out = {"connections": connections, "how": features["batching"],
           "max_batch_size": publishing.MAX_BATCH_SIZE, "max_wait_ms": publishing.MAX_WAIT_MS}
    server.wait_answers(unbatched["url"], PREDICT_BODY, unbatched["headers"])
    out["unbatched"] = bench.point("fs-1", "predict-unbatched", unbatched["url"], PREDICT_BODY,
                                   unbatched["headers"], connections)
    if not features["batching"]:
        out["batched"] = None
        return out
    # A fresh copy: the vectorized marker may be set on the function object itself, and the unbatched
    # endpoint must keep being published from an unmarked one.
    fn, options = publishing.vectorize(publishing.notebook_namespace()["predict_rows"], features["batching"])
    batched = publishing.publish_timed(fn, "predict-batched", server, PREDICT_BODY, **options)
    answer = server.wait_answers(batched["url"], PREDICT_BODY, batched["headers"])
    if answer != expected:
        raise RuntimeError(f"the batched predict answered {answer!r}, expected {expected!r}")
    info = publishing.function_info(batched["url"], batched["headers"])
    out["server_says"] = info.get("batching", info.get("error", "no 'batching' in the endpoint's info"))
    out["batched"] = bench.point("fs-1", "predict-batched", batched["url"], PREDICT_BODY, batched["headers"],
                                 connections)
    return out


def measure(options: argparse.Namespace) -> dict:
    import machine
    import publishing

    uv = (VENV / ".installed").read_text().strip() or "uv"
    uv_cache = subprocess.run([uv, "cache", "dir"], capture_output=True, text=True, check=True).stdout.strip()
    uv_python = subprocess.run([uv, "python", "dir"], capture_output=True, text=True).stdout.strip()
    results = {
        "note": options.note,
        "date_utc": machine.date_utc(),
        "load_average_start": machine.load_average(),
        "machine": machine.describe(REPO, uv),
        "settings": {"duration_s": options.duration, "warmup_s": options.warmup, "connections": options.connections,
                     "wrk_threads": options.threads, "batch_connections": options.batch_connections,
                     "uv_cache": uv_cache},
    }
    features = publishing.detect_features()
    results["features"] = features
    print(f"features: {features}", flush=True)
    bench = Bench(options)
    namespace = publishing.notebook_namespace()
    started = time.monotonic()
    run_plain_servers(bench, namespace)
    if "fs" in options.servers:
        env = publishing.isolated_environment(bench.work, uv_cache, uv_python)
        results.update(run_function_servers(bench, namespace, features, env))
    results["serving"] = bench.rows
    results["wall_s"] = round(time.monotonic() - started, 1)
    results["load_average_end"] = machine.load_average()
    return results


def main(argv=None) -> int:
    options = parse_args(argv)
    if options.report_only:
        import report

        REPORT.write_text(report.render(json.loads(RESULTS.read_text("utf-8"))), "utf-8")
        print(f"wrote {REPORT}")
        return 0
    ensure_environment()
    sys.path.insert(0, str(HERE))
    results = measure(options)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n", "utf-8")
    import report

    REPORT.write_text(report.render(results), "utf-8")
    print(f"wrote {RESULTS} and {REPORT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
