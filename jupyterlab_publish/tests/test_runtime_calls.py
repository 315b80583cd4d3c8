"""How the service calls the function: inline or in threads, timeouts, concurrency, auth, counters.

The app of a real bundle is driven in-process (httpx over ASGI, so requests can run concurrently).
"""

import asyncio
import hashlib
import json
import textwrap

import httpx
import pytest

from jupyterlab_publish.bundle import build_bundle
from jupyterlab_publish.runtime.service import create_endpoint, create_endpoint_app
from jupyterlab_publish.runtime.service_calls import FIRST_WINDOW, LATENCY_BUCKETS, RETRY_WINDOW
from jupyterlab_publish.runtime.service_http import SettingsError, read_key_digests

CELL = """
    import threading
    import time

    state = {}

    def work(seconds=0.0, meet=0):
        '''Sleep, optionally meet `meet` concurrent calls first; answer the most calls seen at once.'''
        lock = state.setdefault("lock", threading.Lock())
        with lock:
            state["active"] = state.get("active", 0) + 1
            state["most"] = max(state.get("most", 0), state["active"])
        try:
            if meet:
                state.setdefault("barrier", threading.Barrier(meet, timeout=30)).wait()
            time.sleep(seconds)
            return state["most"]
        finally:
            with lock:
                state["active"] -= 1
"""


def notebook(source):
    ns = {"__name__": "__main__"}
    exec(textwrap.dedent(source), ns)
    return ns


@pytest.fixture
def bundle_dir(tmp_path):
    build_bundle(notebook(CELL)["work"], tmp_path / "work", name="work", sample=[0])
    return tmp_path / "work"


def run(app, requests):
    """Send ``requests`` ([(method, path, json, headers)]) concurrently; return the responses."""

    async def main():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://worker") as client:
            return await asyncio.gather(*(client.request(m, p, json=j, headers=h or {}) for m, p, j, h in requests))

    return asyncio.run(main())


def post(app, body, path="/", headers=None):
    return run(app, [("POST", path, body, headers)])[0]


def test_a_quick_function_moves_inline_and_a_slow_call_sends_it_back(bundle_dir):
    app = create_endpoint_app(bundle_dir)
    service = app.state.service
    assert service.call_mode == "thread"  # nobody knows yet how long a call takes
    for _ in range(FIRST_WINDOW + 2 * RETRY_WINDOW):  # a window spoilt by a busy machine gets another go
        assert post(app, [0]).status_code == 200
        if service.call_mode == "inline":
            break
    assert service.call_mode == "inline"
    assert post(app, [0.05]).status_code == 200  # 50 ms blocks the loop: too slow to stay inline
    assert service.call_mode == "thread"
    assert run(app, [("GET", "/healthz", None, None)])[0].json()["calls"] == "thread"


def test_a_call_in_a_thread_that_runs_too_long_gets_504(bundle_dir):
    app = create_endpoint_app(bundle_dir, timeout=0.1)
    response = post(app, [1.0])
    assert response.status_code == 504
    body = response.json()
    assert body["error"] == "timeout" and "0.1 s" in body["message"] and body["hint"]
    assert app.state.service.stats.snapshot()["requests"] == {"504": 1}


def test_concurrency_one_runs_one_call_at_a_time(bundle_dir):
    app = create_endpoint_app(bundle_dir, concurrency=1)
    answers = run(app, [("POST", "/", [0.02], None)] * 4)
    assert [a.status_code for a in answers] == [200] * 4
    assert max(a.json() for a in answers) == 1


def test_concurrency_lets_that_many_calls_meet(bundle_dir):
    # Two calls wait for each other at a barrier: they only both return if they run at once.
    app = create_endpoint_app(bundle_dir, concurrency=2)
    answers = run(app, [("POST", "/", {"meet": 2}, None)] * 2)
    assert [a.status_code for a in answers] == [200, 200] and {a.json() for a in answers} == {2}


def test_stats_count_every_invocation(bundle_dir):
    app = create_endpoint_app(bundle_dir, max_body=64)
    answers = run(app, [("POST", "/", [0], None), ("POST", "/functions/work", {"seconds": 0}, None),
                        ("POST", "/", ["x", 1, 2], None), ("POST", "/", [0, 0, "y" * 100], None),
                        ("GET", "/", None, None)])
    assert [a.status_code for a in answers] == [200, 200, 400, 413, 200]
    stats = run(app, [("GET", "/stats", None, None)])[0].json()
    assert stats["requests"] == {"200": 2, "400": 1, "413": 1}  # GETs are not invocations
    assert stats["latency_buckets"] == list(LATENCY_BUCKETS)
    counts = stats["latency_counts"]
    assert len(counts) == len(LATENCY_BUCKETS) and counts == sorted(counts) and counts[-1] <= 4
    assert stats["latency_count"] == 4 and stats["latency_sum"] > 0
    assert stats["in_flight"] == 0 and stats["batches"] == 0 and stats["batch_items"] == 0


def test_wrong_methods_and_unknown_paths_answer_json(bundle_dir):
    app = create_endpoint_app(bundle_dir)
    missing, wrong = run(app, [("GET", "/nope", None, None), ("POST", "/openapi.json", [], None)])
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    assert "/functions/work" in missing.json()["message"]
    assert wrong.status_code == 405 and wrong.json()["error"] == "method_not_allowed"


# ── auth ────────────────────────────────────────────────────────────────────────────────────────


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def test_invoking_needs_one_of_the_keys(bundle_dir):
    app = create_endpoint_app(bundle_dir, key_digests=(digest("function-key"), digest("admin-token")))
    missing, wrong, malformed, function_key, admin_token, lower = run(app, [
        ("POST", "/", [0], None),
        ("POST", "/", [0], {"authorization": "Bearer nope"}),
        ("POST", "/", [0], {"authorization": "Basic function-key"}),
        ("POST", "/", [0], {"authorization": "Bearer function-key"}),
        ("POST", "/functions/work", [0], {"authorization": "Bearer admin-token"}),
        ("POST", "/", [0], {"authorization": "bearer function-key"}),
    ])
    for refused in (missing, wrong, malformed):
        assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Bearer")
        assert refused.json()["error"] == "unauthorized" and "jupyter publish show work" in refused.json()["hint"]
    assert "needs a key" in missing.json()["message"] and "not valid" in wrong.json()["message"]
    assert "Bearer <key>" in malformed.json()["message"]
    assert [r.status_code for r in (function_key, admin_token, lower)] == [200, 200, 200]


def test_pages_stay_open_when_invoking_needs_a_key(bundle_dir):
    app = create_endpoint_app(bundle_dir, key_digests=(digest("k"),))
    answers = run(app, [("GET", p, None, None) for p in ("/", "/openapi.json", "/docs", "/healthz", "/stats")])
    assert [a.status_code for a in answers] == [200] * 5
    assert "401" in answers[1].json()["paths"]["/"]["post"]["responses"]
    assert answers[3].json()["auth"] is True


def test_keys_come_from_the_environment(bundle_dir, monkeypatch):
    monkeypatch.setenv("JUPYTERLAB_PUBLISH_KEYS_SHA256", f"{digest('a').hex().upper()}, {digest('b').hex()},")
    app = create_endpoint(bundle_dir).private_app
    answers = run(app, [("POST", "/", [0], {"authorization": f"Bearer {k}"}) for k in ("a", "b", "c")])
    assert [a.status_code for a in answers] == [200, 200, 401]
    monkeypatch.setenv("JUPYTERLAB_PUBLISH_KEYS_SHA256", "")
    assert post(create_endpoint(bundle_dir).private_app, [0]).status_code == 200  # empty: public


@pytest.mark.parametrize("text", ["abc", "zz" * 32, digest("a").hex() + "00"])
def test_a_malformed_key_digest_is_refused_without_echoing_it(text):
    with pytest.raises(SettingsError) as caught:
        read_key_digests(f"{digest('ok').hex()},{text}", "KEYS")
    assert "entry #2 of KEYS" in str(caught.value) and text not in str(caught.value)


@pytest.mark.parametrize(
    "options, says",
    [({"name": "Bad_Name"}, "--name"), ({"concurrency": 0}, "--concurrency"), ({"timeout": -1}, "--timeout"),
     ({"upstream": "https://x:1"}, "--upstream"), ({"upstream": "http://x:1/api"}, "--upstream")],
)
def test_invalid_settings_are_refused_clearly(bundle_dir, options, says):
    with pytest.raises(SettingsError, match=says):
        create_endpoint(bundle_dir, **options)


def test_relaying_without_an_upstream_is_a_clear_404(bundle_dir):
    service = create_endpoint(bundle_dir, name="work")
    answer = run(service.handoff_app, [("GET", "/api/functions", None, None)])[0]
    assert answer.status_code == 404 and "/functions/work" in answer.json()["message"]
    # ...while the function's own paths answer on a handed-off connection.
    called = run(service.handoff_app, [("POST", "/functions/work", [0], None)])[0]
    assert called.status_code == 200 and json.loads(called.content) == 1
