"""The reliability benchmark of issue 10: the adversarial catalogue and the fault soak, in one run.

    .venv/bin/python benchmarks/reliability/run.py [--requests 100000] [--connections 64] [--time-cap 90]
    .venv/bin/python benchmarks/reliability/run.py --report-only   # re-render REPORT.md from results.json

Runs exactly what ``test_adversarial_catalogue.py`` and ``test_adversarial_soak.py`` run (the
probes and the soak live in ``jupyterlab_publish/tests/adversarial``), each against its own real
``jupyter publish serve`` on 127.0.0.1, and writes results.json and REPORT.md next to this file:
every probe's status and message, and the soak's outcomes and latencies in and outside each fault.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
RESULTS = HERE / "results.json"
REPORT = HERE / "REPORT.md"
# This checkout's package (the servers it starts run it too) and the suite's helpers.
sys.path[:0] = [str(REPO), str(REPO / "jupyterlab_publish" / "tests")]

from adversarial.live import CATALOGUE_FLAGS, SOAK_FLAGS, SOAK_PROCESSES, lost, snapshot, start, witness  # noqa: E402
from adversarial.runner import run_catalogue as run_all  # noqa: E402
from adversarial.soak import publish_soaked, run_soak as soak  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=100_000, help="calls in the fault soak (default 100000)")
    parser.add_argument("--connections", type=int, default=64, help="keep-alive connections (default 64)")
    parser.add_argument("--time-cap", type=float, default=90.0, help="seconds the soak may run at most (default 90)")
    parser.add_argument("--note", default="", help="put at the top of the report (e.g. 'preliminary: loaded machine')")
    parser.add_argument("--report-only", action="store_true", help="only re-render REPORT.md from results.json")
    parser.add_argument("--out", type=Path, default=HERE, help="where to write results.json and REPORT.md "
                        "(default: next to this file; a smoke run writes elsewhere)")
    return parser.parse_args(argv)


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _memory_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 1024**2, 1)
    return 0.0


def _versions() -> dict:
    out = {}
    for name in ("jupyterlab-publish", "starlette", "uvicorn", "httptools", "uvloop", "h11"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def machine() -> dict:
    return {
        "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_gib": _memory_gib(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "packages": _versions(),
        "commit": _git("rev-parse", "--short", "HEAD"),
        "uncommitted_changes": bool(_git("status", "--porcelain", "--untracked-files=no")),
    }


def run_catalogue(workdir: Path) -> dict:
    began = time.monotonic()
    live = start(workdir / "catalogue", *CATALOGUE_FLAGS)
    try:
        before = snapshot(live)
        results = run_all(live)
        nothing_lost = witness(live) + lost(before, snapshot(live))
    finally:
        live.stop()
    return {"seconds": round(time.monotonic() - began, 1), "flags": list(CATALOGUE_FLAGS),
            "probes": [result.row() for result in results], "passed": sum(result.ok for result in results),
            "lost": nothing_lost}


def run_soak(workdir: Path, options: argparse.Namespace) -> dict:
    live = start(workdir / "soak", *SOAK_FLAGS)
    try:
        key, v2 = publish_soaked(live)
        report = soak(live, key, v2, total=options.requests, connections=options.connections,
                      time_cap=options.time_cap, processes=SOAK_PROCESSES)
    finally:
        live.stop()
    return {**report.to_dict(), "flags": list(SOAK_FLAGS), "problems": report.problems()}


# -- the report ------------------------------------------------------------------------------------


def _cell(text) -> str:
    # Probe messages quote what the server sent, control bytes included: keep the table one line.
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text).replace("\n", " "))
    return text.replace("|", "\\|")


def _errors(kinds: dict) -> str:
    return ", ".join(f"{kind}: {count:,}" for kind, count in sorted(kinds.items())) or "none"


def render(results: dict) -> str:
    m, catalogue, soak = results["machine"], results["catalogue"], results["soak"]
    probes = catalogue["probes"]
    failing = [p for p in probes if not p["ok"]]
    lines = ["# Reliability benchmark (issue 10)", ""]
    if results.get("note"):
        lines += [f"> **{results['note']}**", ""]
    lines += [
        f"Measured {results['date']} in one run of `python benchmarks/reliability/run.py "
        f"--requests {soak['requested']} --connections {soak['connections']}` ({results['seconds']} s). "
        "Raw figures: `results.json`.",
        "",
        f"- Machine: {m['nproc']} cores, {m['memory_gib']} GiB RAM, {m['platform']}; load average "
        f"{results['load_before']} before, {results['load_after']} after.",
        f"- Python {m['python']}; " + ", ".join(f"{k} {v}" for k, v in m["packages"].items())
        + f"; project at {m['commit']}{' (with uncommitted changes)' if m['uncommitted_changes'] else ''}.",
        "- Each part starts its own `jupyter publish serve` on 127.0.0.1 (catalogue: "
        f"`{' '.join(catalogue['flags'])}`; soak: `{' '.join(soak['flags'])}`); the client runs on the same cores.",
        "",
        "## Adversarial catalogue",
        "",
        f"{len(probes)} probes in {catalogue['seconds']} s (server start and publishes included): "
        f"**{catalogue['passed']} held, {len(failing)} did not**. "
        + ("After the whole catalogue nothing was lost: every function answered as published, from the same "
           "version and the same worker processes."
           if not catalogue["lost"] else "After the catalogue, **something was lost**: " + "; ".join(catalogue["lost"])),
        "",
        "A probe holds when every answer has an accepted status, every error answer is JSON with a known "
        "`error` code, and it finished within its bound (a timeout counts as a failure).",
        "",
        "| category | probes | held |",
        "| --- | ---: | ---: |",
    ]
    for category in dict.fromkeys(p["category"] for p in probes):
        of = [p for p in probes if p["category"] == category]
        lines.append(f"| {category} | {len(of)} | {sum(p['ok'] for p in of)} |")
    lines += [
        "",
        "| probe | category | sent | status | code | message | s | held |",
        "| --- | --- | --- | --- | --- | --- | ---: | --- |",
    ]
    for p in probes:
        message = p["message"] if p["ok"] else "; ".join(p["problems"])
        lines.append(f"| {p['probe']} | {p['category']} | {_cell(p['what'])} | {_cell(p['status'])} | "
                     f"{_cell(' '.join(p['codes']))} | {_cell(message)[:220]} | {p['seconds']:.2f} | "
                     f"{'yes' if p['ok'] else '**no**'} |")
    lines += [
        "",
        "## Fault soak",
        "",
        f"{soak['completed']:,} of {soak['requested']:,} calls over {soak['connections']} keep-alive connections in "
        f"{soak['seconds']} s ({soak['completed'] / max(soak['seconds'], 1e-9):,.0f}/s)"
        + (" — **stopped by the time cap**" if soak["capped"] else "")
        + f". Outcomes: {_errors(soak['outcomes'])}. Requests in flight when the worker was killed: "
        f"{soak['in_flight_at_kill']}.",
        "",
        "| window | from s | to s | requests | errors by kind | p50 ms | p99 ms |",
        "| --- | ---: | ---: | ---: | --- | ---: | ---: |",
    ]
    for w in soak["windows"]:
        lines.append(f"| {w['name']}{'' if w['finished'] else ' (unfinished)'} | {w['start_s']} | {w['end_s']} | "
                     f"{w['requests']:,} | {_errors(w['errors'])} | {w['p50_ms']} | {w['p99_ms']} |")
    o = soak["outside"]
    lines.append(f"| outside every fault | | | {o['requests']:,} | {_errors(o['errors'])} | {o['p50_ms']} | {o['p99_ms']} |")
    lines += ["", "A request belongs to a window when its time in flight overlaps it. The kill window lasts "
              "from the SIGKILL until the pool has all its processes again; the others last as long as "
              "the publish or rollback call.", ""]
    if soak["problems"]:
        lines += ["The promise (nothing lost but the calls in flight on the killed worker, and those answered "
                  "with a JSON 502/503) **was not kept**:", ""] + [f"- {_cell(p)}" for p in soak["problems"]]
    else:
        lines.append("The promise held: nothing was lost but the calls in flight on the killed worker, and "
                     "those were answered with a JSON 502/503.")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    options = parse_args(argv)
    results_path, report_path = options.out / RESULTS.name, options.out / REPORT.name
    if options.report_only:
        report_path.write_text(render(json.loads(results_path.read_text())))
        return 0
    began = time.monotonic()
    load_before = [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryDirectory(prefix="jlp-reliability-") as scratch:
        catalogue = run_catalogue(Path(scratch))
        soak = run_soak(Path(scratch), options)
    results = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "note": options.note,
        "seconds": round(time.monotonic() - began, 1),
        "machine": machine(),
        "load_before": load_before,
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "catalogue": catalogue,
        "soak": soak,
    }
    options.out.mkdir(parents=True, exist_ok=True)
    results_path.write_text(json.dumps(results, indent=1) + "\n")
    report_path.write_text(render(results))
    print(f"catalogue: {catalogue['passed']}/{len(catalogue['probes'])} probes held; soak: "
          f"{soak['completed']} calls, {soak['outcomes']}; wrote {results_path} and {report_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
