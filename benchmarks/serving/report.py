"""REPORT.md from results.json: the machine, the table, the ratios and the issue's goals."""

from __future__ import annotations

import json
import statistics
from typing import Optional

NA = "n/a (not available)"
GOAL_SHARE_OF_BARE = 0.80
GOAL_P99_MS = 10.0
GOAL_WARM_S = 3.0
GOAL_BATCH_GAIN = 5.0


def _row(results: dict, server: str, function: str, connections: int) -> Optional[dict]:
    for row in results.get("serving", []):
        if (row["server"], row["function"], row["connections"]) == (server, function, connections):
            return row
    return None


def _status(ok: Optional[bool]) -> str:
    return NA if ok is None else ("**met**" if ok else "**not met**")


def _errors(row: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in row["errors"].items()) or "0"


def _bare_for(results: dict, key: str) -> str:
    """The bare endpoint with as many worker processes as the function server ran."""
    processes = (results.get("worker_processes") or {}).get(key) or (2 if key == "fs-2" else 1)
    return "bare-2" if processes >= 2 else "bare-1"


def _serve_command(results: dict) -> str:
    features = results.get("features") or {}
    if features.get("serve_command_is_cli", True):
        return "`jupyter publish serve`"
    return ("`python -m jupyterlab_publish.functions serve` (`jupyter publish serve` lacked `--processes` at the "
            "time of the run; the two take the same flags once both are done)")


def _header(results: dict) -> list:
    m = results["machine"]
    s = results["settings"]
    packages = ", ".join(f"{k} {v}" for k, v in m["packages"].items())
    lines = ["# Serving benchmark (issue 4)", ""]
    if results.get("note"):
        lines += [f"> **{results['note']}**", ""]
    lines += [
        f"Measured {results['date_utc']} (this machine's clock, which may be unreliable) in one run of "
        f"`python3 benchmarks/serving/run.py` ({results.get('wall_s', '?')} s). Raw figures: `results.json`.",
        "",
        f"- Machine: {m['nproc']} cores ({m['cpu']}, {m['arch']}), {m['ram_gib']} GiB RAM, Linux {m['kernel']}; "
        f"load average {results['load_average_start']} at the start, {results.get('load_average_end')} at the end.",
        f"- Python {m['python']}; {packages}.",
        f"- Load generator {m['wrk']}, {s['wrk_threads']} thread, {s['duration_s']:g} s per point after "
        f"{s['warmup_s']:g} s of unmeasured warm-up, POSTing one JSON body over keep-alive connections to "
        f"127.0.0.1. **wrk runs on the same {m['nproc']} cores as the servers**, so every figure includes "
        "the load generator's share of the CPU.",
        f"- {m['uv']}; project at {m['project_commit']}.",
        "- Flask: `app.run(threaded=True)` (Werkzeug's development server, HTTP/1.0: a new connection per "
        "request; request log on, to a file). Bare: Starlette on uvicorn with httptools + uvloop, an "
        "`async def` endpoint calling the function inline, no access log. Function server: "
        f"{_serve_command(results)} with its default settings (and `--processes 2` when available), functions "
        "published through `jupyterlab_publish.publish(..., sample=...)`, called with their key if they have one.",
        "- Functions (`functions.py`): `add(a, b)`, body `[1, 2]`; `predict(row)`, a scikit-learn "
        "LogisticRegression fitted on iris, one row per request, body `[[5.1, 3.5, 1.4, 0.2]]`.",
        "",
    ]
    return lines


def _table(results: dict) -> list:
    lines = ["## Requests/s and latency", ""]
    servers = []
    for row in results.get("serving", []):
        if (row["server"], row["label"], row["processes"]) not in servers:
            servers.append((row["server"], row["label"], row["processes"]))
    for function in ("add", "predict"):
        lines += [f"### `{function}`", "", "| server | worker processes | connections | req/s | p50 ms | p99 ms | errors |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | --- |"]
        for key, label, processes in servers:
            for connections in results["settings"]["connections"]:
                row = _row(results, key, function, connections)
                if row:
                    lines.append(f"| {label} | {processes or '?'} | {connections} | {row['rps']:,.0f} | {row['p50_ms']:.2f} "
                                 f"| {row['p99_ms']:.2f} | {_errors(row)} |")
        lines.append("")
    if not (results.get("features") or {}).get("serve_processes_flag"):
        lines += [f"Function server with `--processes 2`: {NA} (`jupyter publish serve` has no `--processes` flag).", ""]
    for key, message in (results.get("failures") or {}).items():
        lines += [f"**{key} failed** (no figures): `{' '.join(message.split())}`", ""]
    return lines


def _ratio(a: Optional[dict], b: Optional[dict]) -> Optional[float]:
    return a["rps"] / b["rps"] if a and b and b["rps"] else None


def _ratios(results: dict) -> tuple:
    """Markdown lines, and the function-server/bare comparisons at the highest connection count."""
    top = max(results["settings"]["connections"])
    lines = [f"## Ratios (requests/s at {top} connections)", "", "| ratio | add | predict |", "| --- | ---: | ---: |"]
    shares = []
    fmt = lambda r: f"{r:.2f}×" if r is not None else NA  # noqa: E731
    for key, label in (("fs-1", "function server (default) / bare"), ("fs-2", "function server --processes 2 / bare")):
        bare = _bare_for(results, key)
        per = {f: _ratio(_row(results, key, f, top), _row(results, bare, f, top)) for f in ("add", "predict")}
        shares += [(key, bare, f, r) for f, r in per.items() if r is not None]
        lines.append(f"| {label} (same worker processes: {bare.replace('bare-', '')}) | {fmt(per['add'])} "
                     f"| {fmt(per['predict'])} |")
    for bare, label in (("bare-1", "bare 1 worker / Flask"), ("bare-2", "bare 2 workers / Flask")):
        per = {f: _ratio(_row(results, bare, f, top), _row(results, "flask", f, top)) for f in ("add", "predict")}
        lines.append(f"| {label} | {fmt(per['add'])} | {fmt(per['predict'])} |")
    gain = _batch_gain(results)
    lines += [f"| batching gain (batched / unbatched predict, function server) | | {fmt(gain)} |", "",
              "The issue quotes about 14× (one worker) to 24× (two workers) for bare / Flask on this kind of "
              "2-core machine.", ""]
    return lines, shares, top


def _batch_gain(results: dict) -> Optional[float]:
    batching = results.get("batching") or {}
    return _ratio(batching.get("batched"), batching.get("unbatched"))


def _publish(results: dict) -> list:
    p = results.get("publish") or {}
    if not p:
        return ["## Publish times", "", f"{NA}: the function server part did not run.", ""]
    warm = p["warm_s"]
    envs = p.get("environments_found") or []
    same = p["requirements_cold"] == p["requirements_warm"]
    lines = [
        "## Publish times (`jupyterlab_publish.publish` wall time, server already running)", "",
        "| publish | seconds |", "| --- | ---: |",
        f"| cold: `predict`, fresh state directory, empty environment cache | {p['cold_s']:.2f} |",
        f"| warm: another function with the same requirements ({len(warm)} runs, median; max) | "
        f"{statistics.median(warm):.2f}; {max(warm):.2f} |", "",
        "Cold means a new server state directory and new, empty XDG data/cache homes for the server (so no "
        "function environment is cached), but **uv's download cache is warm** (the benchmark env installed the "
        "same wheels with uv just before), so no package is downloaded. The kernel-side distribution index "
        "was built before timing, as a kernel that has run `analyze` has it.",
        f"Requirements: `{', '.join(p['requirements_cold']) or 'none'}`"
        + ("" if same else f" (cold) vs `{', '.join(p['requirements_warm'])}` (warm: differ!)") + ".",
    ]
    if envs:
        lines.append(f"Per-lock environments built during the run: {len(envs)} (e.g. `{envs[0]}`).")
    else:
        lines.append("No per-lock environment (pyvenv.cfg) appeared under the state directory or the isolated "
                     "homes: either workers still run on the server's interpreter (feature not there yet) or "
                     "environments are cached elsewhere, in which case *cold* was not cold.")
    return lines + [""]


def _batching(results: dict) -> list:
    b = results.get("batching") or {}
    lines = [f"## Batching (predict, function server default settings, {b.get('connections', 64)} connections)", ""]
    if not b:
        return lines + [f"{NA}: the function server part did not run.", ""]
    lines += ["| predict | req/s | p50 ms | p99 ms | errors |", "| --- | ---: | ---: | ---: | --- |"]
    for key in ("unbatched", "batched"):
        row = b.get(key)
        if row:
            lines.append(f"| {key} | {row['rps']:,.0f} | {row['p50_ms']:.2f} | {row['p99_ms']:.2f} | {_errors(row)} |")
        else:
            lines.append(f"| {key} | {NA} | | | |")
    if b.get("batched"):
        says = json.dumps(b.get("server_says"))
        lines += ["", f"Batched through {b['how']} (max batch size {b['max_batch_size']}, max wait "
                  f"{b['max_wait_ms']} ms); the endpoint's info (`GET` on its URL) says `\"batching\": {says}`."]
    return lines + [""]


def _goals(results: dict, shares: list, top: int) -> list:
    lines = ["## The issue's goals", "", "| goal | measured | status |", "| --- | --- | --- |"]
    if shares:
        worst = min(shares, key=lambda s: s[3])
        listed = "; ".join(f"{k} {f} {r:.1%} of {b}" for k, b, f, r in shares)
        lines.append(f"| function server ≥ {GOAL_SHARE_OF_BARE:.0%} of bare throughput ({top} conns, same worker "
                     f"processes) | {listed} | {_status(worst[3] >= GOAL_SHARE_OF_BARE)} |")
    else:
        lines.append(f"| function server ≥ {GOAL_SHARE_OF_BARE:.0%} of bare throughput | {NA} | {NA} |")
    p99s = [(k, _row(results, k, "add", 64)) for k in ("fs-1", "fs-2")]
    p99s = [(k, r["p99_ms"]) for k, r in p99s if r]
    lines.append(f"| p99 ≤ {GOAL_P99_MS:g} ms at 64 connections, trivial function | "
                 + ("; ".join(f"{k}: {v:.2f} ms" for k, v in p99s) or NA) + " | "
                 + _status(all(v <= GOAL_P99_MS for _, v in p99s) if p99s else None) + " |")
    warm = (results.get("publish") or {}).get("warm_s")
    median = statistics.median(warm) if warm else None
    lines.append(f"| warm publish ≤ {GOAL_WARM_S:g} s | " + (f"{median:.2f} s (median)" if warm else NA) + " | "
                 + _status(median <= GOAL_WARM_S if warm else None) + " |")
    b = results.get("batching") or {}
    gain = _batch_gain(results)
    if gain is not None:
        equal_p99 = b["batched"]["p99_ms"] <= b["unbatched"]["p99_ms"]
        lines.append(f"| batching ≥ {GOAL_BATCH_GAIN:g}× at equal p99 | {gain:.2f}×, p99 {b['batched']['p99_ms']:.2f} ms "
                     f"batched vs {b['unbatched']['p99_ms']:.2f} ms unbatched | "
                     f"{_status(gain >= GOAL_BATCH_GAIN and equal_p99)} |")
    else:
        lines.append(f"| batching ≥ {GOAL_BATCH_GAIN:g}× at equal p99 | {NA} | {NA} |")
    return lines + [""]


def _missing(results: dict) -> list:
    f = results.get("features") or {}
    missing = []
    if not f.get("serve_processes_flag"):
        missing.append("`jupyter publish serve --processes N`")
    if not f.get("batching"):
        missing.append("batching (`jupyterlab_publish.vectorized` / `publish(batching=True)`)")
    if results.get("publish") and not results["publish"].get("environments_found"):
        missing.append("per-lock uv environments (none found)")
    if results.get("keys_required") is False:
        missing.append("function keys (`Deployment.key` was None: endpoints are public)")
    if not missing:
        return []
    return ["## Features not available at the time of this run", ""] + [f"- {m}" for m in missing] + [""]


def render(results: dict) -> str:
    ratios, shares, top = _ratios(results)
    lines = (_header(results) + _table(results) + ratios + _publish(results) + _batching(results)
             + _goals(results, shares, top) + _missing(results))
    return "\n".join(lines).rstrip() + "\n"
