"""The Ray Serve benchmark of issue 12, in one run on this machine.

    .venv/bin/python benchmarks/ray/run.py [--duration 10] [--connections 1 16 64] [--note TEXT]
    .venv/bin/python benchmarks/ray/run.py --quick          # a tiny run that checks the script works

Starts a local Ray head (token auth, 2 CPUs, loopback: the tests' ``RayHead``), deploys a
hand-written bare Serve deployment of ``add`` (bare_app.py) and publishes the same function with
the ``ray`` target, one replica each with the same CPUs; then, alternating between the two, sends
bounded load at 1, 16 and 64 keep-alive connections and records requests/s and p50/p99 latency.
Also times publishes to the warm cluster (with and without the pre-flight check) and measures the
head's memory (PSS summed over every process it started). Writes results.json and REPORT.md next
to this file (``--quick`` writes them under work/quick/ instead, so a check never replaces figures).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO))

import jupyterlab_publish  # noqa: E402
from jupyterlab_publish.targets import get_target  # noqa: E402
from jupyterlab_publish.tests.ray_cluster import TOKEN, RayHead  # noqa: E402

CPUS = 0.5  # per replica, for both deployments
BODY = b"[2, 3]"


def add(a, b):
    """The function both deployments serve (bare_app.py has the same two lines)."""
    return a + b


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of load per point (default 10)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of unmeasured load before each point")
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds per point (default 2)")
    parser.add_argument("--warm-publishes", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="tiny settings, written under work/quick/")
    parser.add_argument("--note", default="")
    options = parser.parse_args(argv)
    if options.quick:
        options.duration, options.warmup, options.connections = 1.0, 0.3, [1, 4]
        options.rounds, options.warm_publishes = 1, 1
    return options


# -- load ----------------------------------------------------------------------------------------


async def _connection(host, port, request, until, latencies, errors):
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < until:
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = None
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if length is None or b" 200 " not in head.split(b"\r\n", 1)[0] + b" ":
                raise RuntimeError(f"unexpected answer: {head[:200]!r}")
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
    except (OSError, asyncio.IncompleteReadError, RuntimeError) as exc:
        errors.append(repr(exc))
    finally:
        writer.close()


async def _load(url, key, connections, duration):
    parts = urlsplit(url)
    headers = [f"POST {parts.path} HTTP/1.1", f"Host: {parts.hostname}:{parts.port}",
               "Content-Type: application/json", f"Content-Length: {len(BODY)}"]
    if key:
        headers.append(f"Authorization: Bearer {key}")
    request = ("\r\n".join(headers) + "\r\n\r\n").encode() + BODY
    latencies, errors = [], []
    until = time.perf_counter() + duration
    started = time.perf_counter()
    await asyncio.gather(*(_connection(parts.hostname, parts.port, request, until, latencies, errors)
                           for _ in range(connections)))
    return latencies, errors, time.perf_counter() - started


def measure(url, key, connections, duration, warmup):
    asyncio.run(_load(url, key, connections, warmup))
    latencies, errors, elapsed = asyncio.run(_load(url, key, connections, duration))
    latencies.sort()

    def quantile(q):
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000 if latencies else None

    return {"requests": len(latencies), "rps": len(latencies) / elapsed, "p50_ms": quantile(0.5),
            "p99_ms": quantile(0.99), "errors": errors[:5], "error_count": len(errors)}


# -- memory --------------------------------------------------------------------------------------


def head_pss_mib(head: RayHead) -> dict:
    total, count = 0, 0
    for pid in head._own_pids():
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
                    count += 1
        except OSError:
            continue
    return {"pss_mib": round(total / 1024, 1), "processes": count}


# -- the run -------------------------------------------------------------------------------------


def run(options) -> dict:
    out_dir = HERE / "work" / "quick" if options.quick else HERE
    out_dir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="ray-bench-"))
    head = RayHead(scratch / "head")
    results = {"machine": {"cores": os.cpu_count(), "python": platform.python_version(),
                           "platform": platform.platform(), "load": os.getloadavg()},
               "settings": {key: getattr(options, key) for key in ("duration", "warmup", "connections", "rounds",
                                                                    "warm_publishes", "quick")},
               "note": options.note}
    try:
        started = time.perf_counter()
        head.start()
        results["head_start_s"] = time.perf_counter() - started
        results["memory_idle"] = head_pss_mib(head)
        bare = {"name": "bare", "route_prefix": "/bare", "import_path": "bare_app:build", "args": {},
                "runtime_env": {"env_vars": {"PYTHONPATH": str(HERE)}},
                "deployments": [{"name": "Bare", "num_replicas": 1, "ray_actor_options": {"num_cpus": CPUS}}]}
        head.request("/api/serve/applications/", method="PUT", body={
            "proxy_location": "HeadOnly", "http_options": {"host": "127.0.0.1", "port": head.serve_port},
            "applications": [bare]})
        head.wait_running("bare")
        spec = f"ray+http://127.0.0.1:{head.dashboard_port}?store=file://{scratch}/store"
        first = time.perf_counter()
        deployment = jupyterlab_publish.publish(add, name="add", target=spec, token=TOKEN, sample=[2, 3],
                                                scale={"replicas": 1, "cpus": CPUS})
        results["publish_first_s"] = time.perf_counter() - first
        publishes = []
        for index in range(options.warm_publishes):
            for preflight in (True, False):
                began = time.perf_counter()
                deployment = jupyterlab_publish.publish(add, name="add", target=spec, token=TOKEN, sample=[2, 3],
                                                        new_version=True, preflight=preflight,
                                                        scale={"replicas": 1, "cpus": CPUS})
                publishes.append({"preflight": preflight, "seconds": time.perf_counter() - began})
        results["publish_warm"] = publishes
        urls = {"bare": (head.serve_url + "/bare", None), "published": (deployment.url, deployment.key)}
        points = []
        for connections in options.connections:
            for round_index in range(options.rounds):
                order = ["bare", "published"] if round_index % 2 == 0 else ["published", "bare"]
                for which in order:
                    url, key = urls[which]
                    point = measure(url, key, connections, options.duration, options.warmup)
                    point.update({"server": which, "connections": connections, "round": round_index})
                    points.append(point)
                    print(f"{which:9} c={connections:<3} {point['rps']:8.0f} req/s  p50 {point['p50_ms']:.2f} ms"
                          f"  p99 {point['p99_ms']:.2f} ms  errors {point['error_count']}", flush=True)
        results["points"] = points
        results["memory_loaded"] = head_pss_mib(head)
        get_target(spec, token=TOKEN).delete("add")
    finally:
        head.stop()
    (out_dir / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    (out_dir / "REPORT.md").write_text(report(results))
    print(f"wrote {out_dir / 'results.json'} and {out_dir / 'REPORT.md'}")
    return results


def report(results: dict) -> str:
    lines = ["# Ray Serve: a published function against a hand-written Serve deployment", ""]
    if results.get("note"):
        lines += [f"> {results['note']}", ""]
    machine, settings = results["machine"], results["settings"]
    lines += [f"Machine: {machine['cores']} cores, Python {machine['python']}, {machine['platform']}, "
              f"load average at start {', '.join(f'{x:.2f}' for x in machine['load'])}.",
              f"Settings: {settings['duration']:g} s per point after {settings['warmup']:g} s of warm-up, "
              f"{settings['rounds']} alternating round(s) per point; one replica of each with {CPUS} CPU; "
              "keep-alive connections, one request in flight each, `[2, 3]` to `add`."
              + (" **Quick check only: not figures.**" if settings["quick"] else ""), "",
              "| connections | bare req/s | published req/s | published / bare | bare p50 / p99 ms | "
              "published p50 / p99 ms |", "| ---: | ---: | ---: | ---: | ---: | ---: |"]
    for connections in settings["connections"]:
        rows = {which: [p for p in results["points"] if p["server"] == which and p["connections"] == connections]
                for which in ("bare", "published")}
        rps = {which: statistics.mean(p["rps"] for p in rows[which]) for which in rows}
        lat = {which: (statistics.median(p["p50_ms"] for p in rows[which]),
                       max(p["p99_ms"] for p in rows[which])) for which in rows}
        lines.append(f"| {connections} | {rps['bare']:.0f} | {rps['published']:.0f} | "
                     f"{rps['published'] / rps['bare']:.0%} | {lat['bare'][0]:.2f} / {lat['bare'][1]:.2f} | "
                     f"{lat['published'][0]:.2f} / {lat['published'][1]:.2f} |")
    errors = sum(p["error_count"] for p in results["points"])
    warm = results["publish_warm"]
    with_pf = [p["seconds"] for p in warm if p["preflight"]]
    without = [p["seconds"] for p in warm if not p["preflight"]]
    lines += ["", f"Errors during load: {errors}.", "",
              "## Publishing to a warm cluster", "",
              f"- first publish (new application): {results['publish_first_s']:.1f} s",
              f"- new version, with the pre-flight check: median {statistics.median(with_pf):.1f} s "
              f"({len(with_pf)} runs)",
              f"- new version, without it (pack, store, apply the config, Serve starts the replica, smoke test): "
              f"median {statistics.median(without):.1f} s ({len(without)} runs)", "",
              "## The head's memory", "",
              f"- after start: {results['memory_idle']['pss_mib']} MiB PSS over {results['memory_idle']['processes']} "
              "processes (the dashboard included: the target needs its REST API)",
              f"- with both applications serving, after the load: {results['memory_loaded']['pss_mib']} MiB over "
              f"{results['memory_loaded']['processes']} processes",
              f"- the head took {results['head_start_s']:.1f} s to answer", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    run(parse_args())
