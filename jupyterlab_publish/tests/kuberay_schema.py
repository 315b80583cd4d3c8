"""KubeRay's RayService CRD (data/kuberay/, see its README) as a validator, for any test that writes
a RayService: ``rayservice_errors(document)`` lists what the API server's schema check would refuse.

The CRD's ``openAPIV3Schema`` is validated with ``jsonschema`` (draft 4, which OpenAPI 3.0's schema
object extends). ``kubectl`` validates strictly by default, refusing fields a schema does not list,
so objects that list their fields get ``additionalProperties: false`` here too. The CRD's CEL rules
(``x-kubernetes-validations``) run only in an API server; ``ruled_fields`` finds any a document sets.
"""

from __future__ import annotations

import functools
from pathlib import Path

import jsonschema
import yaml

CRD = Path(__file__).parent / "data" / "kuberay" / "ray.io_rayservices.yaml"


@functools.lru_cache(maxsize=None)
def crd() -> dict:
    return yaml.load(CRD.read_text("utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def openapi_schema(version: str = "v1") -> dict:
    (found,) = [v for v in crd()["spec"]["versions"] if v["name"] == version]
    return found["schema"]["openAPIV3Schema"]


def strict(schema):
    """``schema`` with unknown fields refused wherever it lists the fields, as strict validation does."""
    if isinstance(schema, dict):
        schema = {key: strict(value) for key, value in schema.items()}
        if ("properties" in schema and "additionalProperties" not in schema
                and not schema.get("x-kubernetes-preserve-unknown-fields")):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    return schema


@functools.lru_cache(maxsize=None)
def validator() -> jsonschema.Draft4Validator:
    schema = strict(openapi_schema())
    jsonschema.Draft4Validator.check_schema(schema)
    return jsonschema.Draft4Validator(schema)


def rayservice_errors(document: dict) -> list[str]:
    """Each place ``document`` breaks the RayService schema, as ``path: message``; [] when valid."""
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator().iter_errors(document)]


def ruled_fields(document: dict) -> list[str]:
    """The paths ``document`` sets whose schema carries CEL rules, which jsonschema cannot check."""

    def walk(schema, value, path):
        if "x-kubernetes-validations" in schema:
            yield path
        if isinstance(value, dict):
            for key, item in value.items():
                if key in schema.get("properties", {}):
                    yield from walk(schema["properties"][key], item, f"{path}.{key}")
        elif isinstance(value, list) and "items" in schema:
            for index, item in enumerate(value):
                yield from walk(schema["items"], item, f"{path}[{index}]")

    return list(walk(openapi_schema(), document, ""))
