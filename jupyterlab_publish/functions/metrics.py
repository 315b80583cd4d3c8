"""Prometheus ``/metrics`` for the function server, gathered from its workers.

Invocations are counted where they are served: in each worker process (handed-off connections
never pass through the server). The server asks every live worker for its ``/stats`` JSON at
scrape time and renders one exposition with prometheus_client, labelled by function and version.
Counters restart from zero when a worker restarts, which Prometheus' ``rate()`` handles.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Iterable

import httpx
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
SCRAPE_TIMEOUT = 2.0


@dataclasses.dataclass
class WorkerStats:
    function: str
    version: int
    stats: dict


async def fetch_stats(client: httpx.AsyncClient, function: str, version: int, url: str):
    """One worker's ``/stats``, or None if it does not answer (it is restarting, or too old)."""
    try:
        response = await client.get(url + "/stats", timeout=SCRAPE_TIMEOUT)
        if response.status_code == 200:
            return WorkerStats(function, version, response.json())
    except (httpx.HTTPError, ValueError):
        pass
    return None


class _Snapshot:
    """A collector over stats already fetched: collect() must not do I/O."""

    def __init__(self, workers: Iterable[WorkerStats], server: dict):
        self.workers = [w for w in workers if w is not None]
        self.server = server

    def collect(self):
        labels = ["function", "version"]
        requests = CounterMetricFamily(
            "jupyterlab_publish_requests", "Function invocations answered, by HTTP status.", labels=labels + ["status"]
        )
        errors = CounterMetricFamily(
            "jupyterlab_publish_errors", "Invocations answered with a 5xx status.", labels=labels
        )
        latency = HistogramMetricFamily(
            "jupyterlab_publish_request_seconds", "Time to answer an invocation.", labels=labels
        )
        in_flight = GaugeMetricFamily("jupyterlab_publish_in_flight", "Invocations being served now.", labels=labels)
        batches = CounterMetricFamily("jupyterlab_publish_batches", "Batched calls of vectorised functions.",
                                      labels=labels)
        merged = self._merge()
        for (function, version), stats in sorted(merged.items()):
            key = [function, str(version)]
            for status, count in sorted(stats["requests"].items()):
                requests.add_metric(key + [status], count)
            errors.add_metric(key, sum(c for s, c in stats["requests"].items() if s.startswith("5")))
            buckets = [(_bound(le), count) for le, count in zip(stats["latency_buckets"], stats["latency_counts"])]
            buckets.append(("+Inf", stats["latency_count"]))
            latency.add_metric(key, buckets, stats["latency_sum"])
            in_flight.add_metric(key, stats["in_flight"])
            batches.add_metric(key, stats["batches"])
        yield from (requests, errors, latency, in_flight, batches)
        yield _counter("jupyterlab_publish_publishes", "Versions published successfully.",
                       self.server.get("publishes", 0))
        yield _counter("jupyterlab_publish_worker_restarts", "Workers restarted after a crash or hang.",
                       self.server.get("worker_restarts", 0))
        live = GaugeMetricFamily("jupyterlab_publish_live_functions", "Functions with a live version.")
        live.add_metric([], self.server.get("live_functions", 0))
        yield live

    def _merge(self) -> dict:
        """Sum the processes of one version (a version may run several worker processes)."""
        merged: dict = {}
        for worker in self.workers:
            stats = worker.stats
            key = (worker.function, worker.version)
            into = merged.setdefault(key, {
                "requests": {}, "latency_buckets": list(stats.get("latency_buckets", [])),
                "latency_counts": [0] * len(stats.get("latency_buckets", [])),
                "latency_sum": 0.0, "latency_count": 0, "in_flight": 0, "batches": 0,
            })
            for status, count in (stats.get("requests") or {}).items():
                into["requests"][str(status)] = into["requests"].get(str(status), 0) + int(count)
            if list(stats.get("latency_buckets", [])) == into["latency_buckets"]:
                into["latency_counts"] = [a + int(b) for a, b in zip(into["latency_counts"], stats["latency_counts"])]
                into["latency_sum"] += float(stats.get("latency_sum", 0.0))
                into["latency_count"] += int(stats.get("latency_count", 0))
            into["in_flight"] += int(stats.get("in_flight", 0))
            into["batches"] += int(stats.get("batches", 0))
        return merged


def _bound(le) -> str:
    return repr(float(le))


def _counter(name: str, documentation: str, value) -> CounterMetricFamily:
    family = CounterMetricFamily(name, documentation)
    family.add_metric([], value)
    return family


def render(workers: Iterable[WorkerStats], server: dict) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(workers, server))
    return generate_latest(registry)


async def gather(client: httpx.AsyncClient, targets: Iterable[tuple]) -> list:
    """Fetch ``/stats`` from ``(function, version, url)`` targets concurrently."""
    return list(await asyncio.gather(*(fetch_stats(client, f, v, url) for f, v, url in targets)))


__all__ = ["CONTENT_TYPE", "WorkerStats", "gather", "render"]
