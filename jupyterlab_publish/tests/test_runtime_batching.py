"""Vectorised functions: marking them, publishing them, and serving concurrent requests in batches."""

import asyncio
import json
import textwrap

import cloudpickle
import httpx
import pytest

import jupyterlab_publish
from jupyterlab_publish.bundle import build_bundle
from jupyterlab_publish.bundle.batching import BATCHING_ATTRIBUTE, batching_options, vectorized
from jupyterlab_publish.errors import PublishError
from jupyterlab_publish.runtime.service import create_endpoint_app

CELL = """
    def scale(points: list[list[float]]) -> list:
        '''Each point times two, and the size of the batch it was computed in.'''
        if any(p == ["boom"] for p in points):
            raise RuntimeError("cannot scale boom")
        if any(p == ["short"] for p in points):
            return []
        return [{"point": [2 * x for x in p] if p != ["nan"] else None, "batch": len(points)} for p in points]

    def no_negatives(point):
        if any(x < 0 for x in point if isinstance(x, (int, float))):
            raise ValueError("no negative coordinates")
"""


def notebook(source):
    ns = {"__name__": "__main__"}
    exec(textwrap.dedent(source), ns)
    return ns


def served(tmp_path, batching, validator=True, sample=None):
    ns = notebook(CELL)
    build_bundle(ns["scale"], tmp_path / "scale", name="scale", batching=batching, sample=sample,
                 validator=ns["no_negatives"] if validator else None)
    return create_endpoint_app(tmp_path / "scale")


def run(app, bodies, path="/"):
    async def main():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://worker") as client:
            return await asyncio.gather(*(client.post(path, json=body) for body in bodies))

    return asyncio.run(main())


def test_concurrent_requests_are_answered_from_one_call(tmp_path):
    # The wait is long, so only the size limit can close this batch: it holds all four requests.
    app = served(tmp_path, {"max_batch_size": 4, "max_wait_ms": 10_000})
    answers = run(app, [[[1, 2]], {"points": [3, 4]}, [[5, 6]], [[7, 8]]])
    assert [a.status_code for a in answers] == [200] * 4
    assert [a.json() for a in answers] == [{"point": p, "batch": 4} for p in ([2, 4], [6, 8], [10, 12], [14, 16])]
    stats = app.state.service.stats.snapshot()
    assert (stats["batches"], stats["batch_items"], stats["requests"]) == (1, 4, {"200": 4})


def test_a_lone_request_is_answered_after_the_wait(tmp_path):
    app = served(tmp_path, {"max_batch_size": 64, "max_wait_ms": 1})
    answer = run(app, [[[1, 1]]])[0]
    assert answer.status_code == 200 and answer.json() == {"point": [2, 2], "batch": 1}


def test_the_validator_judges_each_item(tmp_path):
    app = served(tmp_path, {"max_batch_size": 3, "max_wait_ms": 10_000})
    ok, refused, also_ok = run(app, [[[1, 1]], [[-1, 1]], [[2, 2]]])
    assert refused.status_code == 422 and refused.json()["message"] == "no negative coordinates"
    assert ok.json() == {"point": [2, 2], "batch": 2} and also_ok.json() == {"point": [4, 4], "batch": 2}


@pytest.mark.parametrize(
    "poison, error, says",
    [(["boom"], "function_error", "cannot scale boom"), (["short"], "batch_error", "0 results for a batch of 2")],
)
def test_a_failing_batch_fails_every_request_in_it(tmp_path, poison, error, says):
    app = served(tmp_path, {"max_batch_size": 2, "max_wait_ms": 10_000}, validator=False)
    answers = run(app, [[[1, 1]], [poison]])
    for answer in answers:
        assert answer.status_code == 500 and answer.json()["error"] == error and says in answer.json()["message"]


@pytest.mark.parametrize("body", [[[1], [2]], [], {"items": [1]}, {"points": [1], "other": 2}, 5])
def test_a_request_carries_exactly_one_item(tmp_path, body):
    app = served(tmp_path, True)
    answer = run(app, [body])[0]
    assert answer.status_code == 400
    assert "one item per request" in answer.json()["message"] and '"points"' in answer.json()["message"]


def test_the_openapi_document_describes_one_item(tmp_path):
    app = served(tmp_path, True, sample=[[0.5, 0.5]])
    document = run(app, [None], path="/openapi.json")  # POST is refused...
    assert document[0].status_code == 405

    async def get():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://w") as client:
            return (await client.get("/openapi.json")).json(), (await client.get("/")).json()

    document, info = asyncio.run(get())
    array, obj = document["paths"]["/"]["post"]["requestBody"]["content"]["application/json"]["schema"]["oneOf"]
    item = {"type": "array", "items": {"type": "number"}}
    assert array["prefixItems"] == [item] and array["minItems"] == array["maxItems"] == 1
    assert obj["properties"] == {"points": item} and obj["required"] == ["points"]
    assert info["batching"] == {"max_batch_size": 64, "max_wait_ms": 2.0} and "one item" in info["usage"]


# ── publishing ──────────────────────────────────────────────────────────────────────────────────


def test_vectorized_marks_the_function_and_the_mark_survives_pickling():
    @jupyterlab_publish.vectorized
    def plain(items):
        return items

    @vectorized(max_batch_size=8, max_wait_ms=0.5)
    def tuned(items):
        return items

    assert getattr(plain, BATCHING_ATTRIBUTE) == {"max_batch_size": 64, "max_wait_ms": 2.0}
    assert getattr(tuned, BATCHING_ATTRIBUTE) == {"max_batch_size": 8, "max_wait_ms": 0.5}
    assert tuned([1]) == [1]  # still the function as written
    copy = cloudpickle.loads(cloudpickle.dumps(tuned))
    assert getattr(copy, BATCHING_ATTRIBUTE) == {"max_batch_size": 8, "max_wait_ms": 0.5}


def test_the_bundle_takes_batching_from_the_mark_unless_told_otherwise(tmp_path):
    scale = vectorized(max_batch_size=16)(notebook(CELL)["scale"])
    marked = build_bundle(scale, tmp_path / "a", name="scale", sample=[[1, 2]])
    assert marked.manifest["batching"] == {"max_batch_size": 16, "max_wait_ms": 2.0}
    # The sample is one request's body; its answer is the function's result for that one item.
    assert marked.manifest["sample_output"] == {"point": [2, 4], "batch": 1}
    assert build_bundle(scale, tmp_path / "b", name="scale", batching=False).manifest["batching"] is None
    plain = notebook(CELL)["scale"]
    assert build_bundle(plain, tmp_path / "c", name="scale").manifest["batching"] is None
    assert build_bundle(plain, tmp_path / "d", name="scale", batching=True).manifest["batching"] == {
        "max_batch_size": 64, "max_wait_ms": 2.0}


@pytest.mark.parametrize(
    "value, says",
    [("yes", "must be True"), ({"max_batch_size": 0}, "max_batch_size"), ({"max_batch_size": 2.5}, "max_batch_size"),
     ({"max_batch_size": True}, "max_batch_size"), ({"max_wait_ms": -1}, "max_wait_ms"),
     ({"max_wait_ms": float("nan")}, "max_wait_ms"), ({"size": 3}, "unknown batching option")],
)
def test_invalid_batching_options_are_refused(value, says):
    with pytest.raises(PublishError) as caught:
        batching_options(value)
    assert caught.value.code == "bad_request" and says in caught.value.message and caught.value.hint


@pytest.mark.parametrize(
    "sample, code, says",
    [([[1], [2]], "invalid_sample", "one item per request"), ([["short"]], "sample_failed", "0 results for a batch of 1"),
     ([[-1, 0]], "invalid_sample", "no negative")],
)
def test_the_sample_of_a_vectorised_function_is_checked_as_the_service_would(tmp_path, sample, code, says):
    ns = notebook(CELL)
    with pytest.raises(PublishError) as caught:
        build_bundle(ns["scale"], tmp_path / "x", name="scale", batching=True, sample=sample,
                     validator=ns["no_negatives"])
    assert caught.value.code == code and says in caught.value.message
    assert not (tmp_path / "x").exists()


def test_a_function_that_cannot_take_one_list_is_not_vectorised(tmp_path):
    ns = notebook("def pair(a, b):\n    return [a, b]\n")
    with pytest.raises(PublishError) as caught:
        build_bundle(ns["pair"], tmp_path / "x", name="pair", batching=True)
    assert caught.value.code == "bad_request" and "single list of items" in caught.value.message


def test_publish_passes_batching_to_the_bundle(tmp_path):
    ns = notebook(CELL)
    deployment = jupyterlab_publish.publish(ns["scale"], name="scale", target=f"dir:{tmp_path}", requirements=[],
                                            sample=[[1, 2]], batching={"max_batch_size": 5}, preflight=False)
    manifest = json.loads(next(tmp_path.glob("scale/*/manifest.json")).read_text())
    assert manifest["batching"] == {"max_batch_size": 5, "max_wait_ms": 2.0} and deployment.name == "scale"
