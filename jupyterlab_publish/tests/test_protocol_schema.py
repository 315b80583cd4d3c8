"""The JSON Schemas of the comm payloads (protocol/schema/) against the shared fixtures and against
what the Python side really sends, so neither the fixtures nor ``to_dict()`` can drift from them."""

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from jupyterlab_publish import api
from jupyterlab_publish.bundle import build_bundle
from jupyterlab_publish.errors import PublishError
from jupyterlab_publish.kernel import handlers, protocol
from jupyterlab_publish.requirement import Requirement

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "protocol" / "schema"
SCHEMAS = {path.name: json.loads(path.read_text("utf-8")) for path in sorted(SCHEMA_DIR.glob("*.schema.json"))}
REGISTRY = Registry().with_resources(
    (schema["$id"], Resource.from_contents(schema)) for schema in SCHEMAS.values()
)
BASE = SCHEMAS["messages.schema.json"]["$id"].rsplit("/", 1)[0] + "/"


def validator(reference: str) -> Draft202012Validator:
    """A validator for ``reference``: a file name, optionally with a JSON pointer (``x.json#/$defs/y``)."""
    return Draft202012Validator({"$ref": BASE + reference}, registry=REGISTRY)


def valid(reference: str, instance) -> None:
    errors = sorted(validator(reference).iter_errors(instance), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


def notebook(source, **names):
    namespace = {"__name__": "__main__", **names}
    exec(compile(textwrap.dedent(source), "<cell>", "exec", dont_inherit=True), namespace)
    return namespace


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_every_schema_is_a_valid_draft_2020_12_schema_with_its_own_id(name):
    Draft202012Validator.check_schema(SCHEMAS[name])
    assert SCHEMAS[name]["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert SCHEMAS[name]["$id"] == BASE + name


def test_every_valid_fixture_message_matches_the_message_schema(protocol_fixtures):
    for message in protocol_fixtures["requests"]["valid"] + protocol_fixtures["replies"]["valid"]:
        valid("messages.schema.json", message)


def test_every_invalid_fixture_request_is_refused_by_the_schema_too(protocol_fixtures):
    for case in protocol_fixtures["requests"]["invalid"]:
        assert not validator("messages.schema.json").is_valid(case["message"]), case["why"]


def test_each_fixture_result_matches_the_schema_of_its_method(protocol_fixtures):
    methods = {m["id"]: m["method"] for m in protocol_fixtures["requests"]["valid"]}
    results = [m for m in protocol_fixtures["replies"]["valid"] if m["type"] == "result"]
    assert {methods[m["id"]] for m in results} >= {"list_functions", "analyze", "publish", "check_requirements"}
    for message in results:
        valid(f"messages.schema.json#/$defs/results/{methods[message['id']]}", message["result"])
    for message in protocol_fixtures["requests"]["valid"]:
        if message["method"] == "publish":
            valid("publish-params.schema.json", message["params"])


def test_fixture_errors_have_known_codes_and_match_the_error_schema(protocol_fixtures):
    errors = [m["error"] for m in protocol_fixtures["replies"]["valid"] if m["type"] == "error"]
    assert {"bad_request", "not_defined", "missing_requirement", "preflight_failed"} <= {e["code"] for e in errors}
    for error in errors:
        valid("error.schema.json", error)
        protocol.check_reply({"type": "error", "id": None, "error": error})


def test_a_real_analysis_matches_the_analysis_schema():
    model = {"weights": np.arange(3.0), "name": "linear"}
    ns = notebook(
        """
        import numpy as np
        import pandas as pd

        def predictor(x, k=3):
            '''Score x.'''
            return float(np.dot(model["weights"], x)) + len(pd.DataFrame([x]))
        """,
        model=model,
    )
    report = api.analyze(ns["predictor"])  # sizes measured too
    data = report.to_dict()
    assert {r["name"] for r in data["requirements"]} >= {"numpy", "pandas"} and data["captured"] and data["lock"]
    valid("analysis.schema.json", json.loads(json.dumps(data)))
    kernel_result = handlers.analyze({"function": "predictor"}, ns)
    valid("messages.schema.json#/$defs/results/analyze", json.loads(json.dumps(kernel_result)))


def test_a_real_deployment_and_publish_result_match_the_deployment_schema(tmp_path):
    ns = notebook("def double(x):\n    return 2 * x\n")
    deployment = api.publish(ns["double"], name="double", target=f"dir:{tmp_path}", sample=[21], preflight=False,
                             requirements=["cloudpickle"])
    valid("deployment.schema.json", deployment.to_dict())
    params = {"function": "double", "name": "double", "target": f"dir:{tmp_path}", "sample": [21],
              "requirements": [{"requirement": "cloudpickle", "why": "added by you"}], "preflight": False,
              "new_version": True}
    valid("publish-params.schema.json", params)
    result = handlers.publish(params, ns, progress=lambda *args: None, cancel=None)
    assert result["version"] == 2
    valid("messages.schema.json#/$defs/results/publish", result)


def test_a_real_check_requirements_result_and_error_match_their_schemas():
    result = handlers.check_requirements({"texts": ["numpy>=1", "pandas[parquet]", "not one!", "numpy>=999"]}, {})
    assert [r is None for r in result["requirements"]] == [False, False, True, True]
    assert [e["index"] for e in result["errors"]] == [2, 3]
    valid("check-requirements.schema.json", result)
    with pytest.raises(PublishError) as caught:
        api.declared_requirements(["numpy", "pandas>="])
    valid("error.schema.json", caught.value.to_dict())
    valid("messages.schema.json#/$defs/error", protocol.error("r1", caught.value))


def test_manifest_requirements_are_wire_entries(tmp_path):
    ns = notebook("def f(x):\n    return x\n")
    bundle = build_bundle(ns["f"], tmp_path / "b", name="f",
                          requirements=[Requirement.parse("numpy>=1", why="f → np"), {"name": "six", "version": ""}])
    for entry in bundle.manifest["requirements"]:
        valid("requirement.schema.json", entry)
        assert Requirement.from_entry(entry).line() == entry["requirement"]
