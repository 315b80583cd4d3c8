"""The fault soak (issue 10): 100,000 calls over 64 keep-alive connections while, in turn, a worker
of the live version is SIGKILLed, a new version is published and the function is rolled back.

Bounded by count (100,000) and by time (``TIME_CAP``; the faults are triggered by progress, so the
test fails rather than passes if the cap cuts the load short before they have all happened). Every
request's outcome is counted; the promise checked is the issue's: no request is lost except those
in flight on the killed worker, and those get a JSON 502/503 instead of a dropped connection.
Nothing asserts on timing; latency figures go to benchmarks/reliability.
"""

from __future__ import annotations

import sys

import pytest

from adversarial.live import SOAK_FLAGS, SOAK_PROCESSES, call, start
from adversarial.soak import SOAK_FUNCTION, publish_soaked, run_soak

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SCM_RIGHTS handoff; POSIX only")

REQUESTS = 100_000
CONNECTIONS = 64
TIME_CAP = 90.0


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    started = start(tmp_path_factory.mktemp("soak"), *SOAK_FLAGS)
    yield started
    started.stop()


def test_a_killed_worker_a_publish_and_a_rollback_lose_no_request(live):
    key, v2 = publish_soaked(live)

    report = run_soak(live, key, v2, total=REQUESTS, connections=CONNECTIONS, time_cap=TIME_CAP,
                      processes=SOAK_PROCESSES)

    assert [w["name"] for w in report.windows] == ["worker killed", "new version published", "rolled back"]
    assert sum(report.outcomes.values()) == report.completed  # every request has exactly one outcome
    problems = report.problems()
    assert not problems, "\n".join(problems + [f"outcomes: {report.outcomes}", f"fault windows: {report.windows}"])
    # The rollback left v1 live, answering as v1 does.
    live.keys[SOAK_FUNCTION] = key
    assert live.admin_get(f"/api/functions/{SOAK_FUNCTION}")[1]["live_version"] == 1
    assert call(live, SOAK_FUNCTION, [41]) == (200, 42)
