"""The description of a served function: typed OpenAPI parameters and the self-contained docs page."""

import hashlib
import html
import json
import re
import textwrap
import typing
import warnings

import pytest

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*httpx2")
    from starlette.testclient import TestClient

from jupyterlab_publish.bundle import build_bundle
from jupyterlab_publish.runtime.service import create_endpoint_app
from jupyterlab_publish.runtime.service_describe import describe_parameters, type_schema

CELL = """
    from typing import List, Literal, Optional

    def predict(x: List[float], scale: float = 1.5, *, label: Optional[str] = None,
                weights: dict[str, int] = {}, flag: bool = False, mode: Literal["fast", "exact"] = "fast",
                count: int = 3):
        '''Predict <b>things</b> & more.

        <script>alert("docstring")</script>'''
        return {"n": len(x) * scale, "label": label, "mode": mode}
"""


def notebook(source):
    ns = {"__name__": "__main__"}
    exec(textwrap.dedent(source), ns)
    return ns


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("docs") / "predict"
    build_bundle(notebook(CELL)["predict"], path, name="predict", sample={"x": [1, 2], "label": "</script><i>"})
    return path


@pytest.fixture(scope="module")
def client(bundle_dir):
    with TestClient(create_endpoint_app(bundle_dir, key_digests=(hashlib.sha256(b"k").digest(),), timeout=5)) as client:
        yield client


@pytest.mark.parametrize(
    "annotation, schema",
    [
        (int, {"type": "integer"}), (float, {"type": "number"}), (str, {"type": "string"}),
        (bool, {"type": "boolean"}), (list, {"type": "array"}), (tuple, {"type": "array"}),
        (dict, {"type": "object"}), (typing.List[int], {"type": "array", "items": {"type": "integer"}}),
        (list[str], {"type": "array", "items": {"type": "string"}}),
        (tuple[int, ...], {"type": "array", "items": {"type": "integer"}}),
        (tuple[int, str], {"type": "array", "prefixItems": [{"type": "integer"}, {"type": "string"}],
                           "minItems": 2, "maxItems": 2}),
        (typing.Dict[str, float], {"type": "object", "additionalProperties": {"type": "number"}}),
        (typing.Optional[int], {"anyOf": [{"type": "integer"}, {"type": "null"}]}),
        (int | str, {"anyOf": [{"type": "integer"}, {"type": "string"}]}),
        (typing.Union[int, typing.Any], {}), (typing.Any, {}),
        (typing.Literal["a", 1], {"enum": ["a", 1]}),
        (typing.Sequence[bool], {"type": "array", "items": {"type": "boolean"}}),
        (typing.Annotated[float, "metres"], {"type": "number"}),
        ("int", {"type": "integer"}), ("SomeUnresolvedName", {}), (object, {}),
    ],
)
def test_type_schema(annotation, schema):
    assert type_schema(annotation) == schema


def test_parameters_come_from_the_signature_and_its_hints():
    params = {p["name"]: p for p in describe_parameters(notebook(CELL)["predict"])}
    assert params["x"] == {"name": "x", "kind": "positional_or_keyword", "type": "List[float]", "required": True,
                           "schema": {"type": "array", "items": {"type": "number"}}}
    assert params["scale"]["default"] == 1.5 and not params["scale"]["required"]
    assert params["label"]["kind"] == "keyword_only" and params["label"]["default"] is None
    assert params["mode"]["schema"] == {"enum": ["fast", "exact"]}


def test_a_default_without_json_form_is_left_out():
    ns = notebook("def f(a, b=object()):\n    return a\n")
    params = describe_parameters(ns["f"])
    assert "default" not in params[1] and params[1]["required"] is False and params[1]["schema"] == {}


def test_the_openapi_document_types_each_parameter(client):
    for path, key in (("/openapi.json", "/"), ("/functions/predict/openapi.json", "/functions/predict")):
        document = client.get(path).json()
        assert document["openapi"] == "3.1.0" and list(document["paths"])[0] == key
        post = document["paths"][key]["post"]
        array, obj = post["requestBody"]["content"]["application/json"]["schema"]["oneOf"]
        # Positional: x and scale (label... are keyword-only); only x is required.
        assert [item["type"] for item in array["prefixItems"]] == ["array", "number"]
        assert (array["minItems"], array["maxItems"]) == (1, 2)
        props = obj["properties"]
        assert set(props) == {"x", "scale", "label", "weights", "flag", "mode", "count"}
        assert obj["required"] == ["x"] and obj["additionalProperties"] is False
        assert props["count"] == {"type": "integer", "default": 3, "description": "count: int"}
        assert props["flag"]["type"] == "boolean" and props["weights"]["additionalProperties"] == {"type": "integer"}
        assert props["label"]["anyOf"] == [{"type": "string"}, {"type": "null"}]
        assert set(post["responses"]) == {"200", "400", "401", "413", "422", "500", "504"}
        assert post["security"] == [{"bearer": []}]
        assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def test_the_docs_page_is_self_contained_and_escaped(client):
    # With the key: a keyed function shows its sample only to callers that send it.
    response = client.get("/functions/predict/docs", headers={"host": "models.example:8765", "authorization": "Bearer k"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in response.headers["content-security-policy"]
    page = response.text
    # Nothing is fetched from elsewhere: no external scripts, styles, images or fonts.
    assert not re.search(r"<(link|img|iframe)\b|\bsrc=|@import|url\(", page)
    # The docstring and the sample are shown, escaped: the only <script> elements are the page's own.
    assert html.escape('<script>alert("docstring")</script>') in page
    assert "Predict &lt;b&gt;things&lt;/b&gt; &amp; more." in page
    assert page.count("<script") == 2 and "</script><i>" not in page
    config = json.loads(re.search(r'<script type="application/json" id="config">(.*?)</script>', page).group(1))
    assert config == {"auth": True, "body": json.dumps({"x": [1, 2], "label": "</script><i>"})}
    # The curl line uses the URL the browser used and a placeholder for the key.
    curl = html.unescape(re.search(r'<pre id="curl">(.*?)</pre>', page, re.S).group(1))
    assert curl.startswith("curl -X POST http://models.example:8765/functions/predict ")
    assert "-H 'Authorization: Bearer <key>'" in curl and '"label": "</script><i>"' in curl
    # The parameters table and a try-it form that calls with fetch().
    assert "<code>count</code></td><td>int</td><td>no</td><td><code>3</code>" in page
    assert '<form id="try">' in page and 'id="key"' in page and "fetch(url" in page


def test_the_docs_page_of_a_public_function_asks_for_no_key(bundle_dir):
    with TestClient(create_endpoint_app(bundle_dir, key_digests=())) as public:
        page = public.get("/docs").text
    curl = html.unescape(re.search(r'<pre id="curl">(.*?)</pre>', page, re.S).group(1))
    assert curl.startswith("curl -X POST http://testserver/ ") and "Authorization" not in curl
    assert 'id="key"' not in page


def test_info_lists_the_parameters(client):
    info = client.get("/functions/predict").json()
    assert [p["name"] for p in info["parameters"]] == ["x", "scale", "label", "weights", "flag", "mode", "count"]
    assert "schema" not in info["parameters"][0] and info["parameters"][0]["type"] == "List[float]"
