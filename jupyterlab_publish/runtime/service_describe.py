"""What a published function looks like from outside: typed parameters, OpenAPI, the docs page.

Part of the runtime copied into every bundle (see ``service.py``); standard library only. The
parameter schemas come from the live function's signature and type hints (int → integer, float →
number, str → string, bool → boolean, list/tuple/List[T] → array, dict → object, Optional/Union →
anyOf, Literal → enum), with defaults and what is required.
"""

from __future__ import annotations

import collections.abc
import datetime
import html
import inspect
import json
import shlex
import types
import typing

try:
    from . import service_contract as contract
except ImportError:  # in a bundle directory the runtime's modules sit side by side
    import service_contract as contract


_SIMPLE_SCHEMAS = {
    bool: {"type": "boolean"}, int: {"type": "integer"}, float: {"type": "number"}, str: {"type": "string"},
    list: {"type": "array"}, tuple: {"type": "array"}, set: {"type": "array"}, frozenset: {"type": "array"},
    dict: {"type": "object"}, datetime.datetime: {"type": "string", "format": "date-time"},
    datetime.date: {"type": "string", "format": "date"},
}
# Annotations that stay strings (``from __future__ import annotations`` with names that no longer
# resolve): only the builtin spellings are trusted.
_NAMED_SCHEMAS = {cls.__name__: schema for cls, schema in _SIMPLE_SCHEMAS.items() if cls.__module__ == "builtins"}
_UNION_TYPES = tuple(t for t in (typing.Union, getattr(types, "UnionType", None)) if t is not None)


def type_schema(annotation, depth: int = 0) -> dict:
    """The JSON Schema of the JSON a parameter annotated ``annotation`` accepts; {} when unknown."""
    if depth > 8 or any(annotation is unknown for unknown in (inspect.Parameter.empty, typing.Any, object)):
        return {}
    if annotation is None or annotation is type(None):
        return {"type": "null"}
    if isinstance(annotation, str):
        return dict(_NAMED_SCHEMAS.get(annotation.strip(), {}))
    simple = _SIMPLE_SCHEMAS.get(annotation) if isinstance(annotation, type) else None
    if simple is not None:
        return dict(simple)
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in _UNION_TYPES:
        options = [type_schema(arg, depth + 1) for arg in args]
        return {} if {} in options else {"anyOf": options}
    if origin is typing.Literal:
        try:
            return {"enum": [contract.json_ready(arg) for arg in args]}
        except TypeError:  # a literal with no JSON form (an enum member, bytes...)
            return {}
    if origin is getattr(typing, "Annotated", None):
        return type_schema(args[0], depth + 1)
    container = origin or annotation
    if not isinstance(container, type):
        return {}
    if issubclass(container, (str, bytes)):
        return {"type": "string"} if issubclass(container, str) else {}
    if issubclass(container, tuple) and args and not (len(args) == 2 and args[1] is Ellipsis):
        items = [type_schema(arg, depth + 1) for arg in args]
        return {"type": "array", "prefixItems": items, "minItems": len(items), "maxItems": len(items)}
    if issubclass(container, collections.abc.Mapping):
        schema = {"type": "object"}
        if len(args) == 2 and type_schema(args[1], depth + 1):
            schema["additionalProperties"] = type_schema(args[1], depth + 1)
        return schema
    if issubclass(container, (collections.abc.Sequence, collections.abc.Set)):
        schema = {"type": "array"}
        if args and type_schema(args[0], depth + 1):
            schema["items"] = type_schema(args[0], depth + 1)
        return schema
    for cls, schema in _SIMPLE_SCHEMAS.items():  # subclasses: IntEnum, str enums, OrderedDict...
        if issubclass(container, cls):
            return dict(schema)
    # numpy and pandas values arrive as JSON lists (of records, for a DataFrame).
    return {"ndarray": {"type": "array"}, "Series": {"type": "array"}, "Index": {"type": "array"},
            "DataFrame": {"type": "array", "items": {"type": "object"}}}.get(container.__name__, {})


def _annotation_text(annotation) -> str:
    if annotation is inspect.Parameter.empty:
        return ""
    if isinstance(annotation, str):
        return annotation
    if isinstance(annotation, type) and not typing.get_args(annotation):
        module = annotation.__module__
        return annotation.__qualname__ if module == "builtins" else f"{module}.{annotation.__qualname__}"
    return repr(annotation).replace("typing.", "")


def describe_parameters(fn) -> list[dict]:
    """Each parameter's name, kind, annotation text, JSON Schema, whether required, and default."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return []
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # names that no longer resolve: fall back to the raw annotations
        hints = {}
    described = []
    for parameter in signature.parameters.values():
        annotation = hints.get(parameter.name, parameter.annotation)
        variadic = parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)
        entry = {
            "name": parameter.name,
            "kind": parameter.kind.name.lower(),
            "type": _annotation_text(annotation),
            "required": parameter.default is parameter.empty and not variadic,
            "schema": type_schema(annotation),
        }
        if parameter.default is not parameter.empty:
            try:
                entry["default"] = contract.json_ready(parameter.default)
            except TypeError:
                pass  # a default with no JSON form is simply not shown
        described.append(entry)
    return described


def _property_schema(entry: dict) -> dict:
    schema = dict(entry["schema"])
    if "default" in entry:
        schema["default"] = entry["default"]
    if entry["type"]:
        schema["description"] = f"{entry['name']}: {entry['type']}"
    return schema


def request_schema(parameters: list, batching: dict | None) -> dict:
    """The request body's schema: the array form and the object form, each parameter typed."""
    if batching is not None:
        first = parameters[0] if parameters else {"name": "items", "schema": {}}
        listed = first["schema"]
        item = listed.get("items", {}) if listed.get("type") == "array" else {}
        return {"oneOf": [
            {"type": "array", "description": "one item", "prefixItems": [item], "minItems": 1, "maxItems": 1},
            {"type": "object", "description": "one item, by name", "properties": {first["name"]: item},
             "required": [first["name"]], "additionalProperties": False},
        ]}
    positional = [p for p in parameters if p["kind"] in ("positional_only", "positional_or_keyword")]
    named = [p for p in parameters if p["kind"] in ("positional_or_keyword", "keyword_only")]
    var_args = next((p for p in parameters if p["kind"] == "var_positional"), None)
    var_kwargs = next((p for p in parameters if p["kind"] == "var_keyword"), None)
    array = {"type": "array", "description": "positional arguments, in order",
             "prefixItems": [_property_schema(p) for p in positional],
             "minItems": sum(p["required"] for p in positional)}
    if var_args is None:
        array["maxItems"] = len(positional)
    else:
        array["items"] = var_args["schema"]
    obj = {"type": "object", "description": "arguments by name",
           "properties": {p["name"]: _property_schema(p) for p in named},
           "required": [p["name"] for p in named if p["required"]],
           "additionalProperties": var_kwargs["schema"] if var_kwargs is not None else False}
    return {"oneOf": [array, obj]}


def openapi_document(served: contract.ServedBundle, *, path: str = "/", auth: bool = False, timeout: bool = False,
                     parameters: list | None = None, with_sample: bool = True) -> dict:
    """An OpenAPI 3.1 description of the service, each parameter typed from the signature's hints.

    ``with_sample=False`` leaves out the sample input and output (a keyed function's, for a caller
    without the key: they may hold real data)."""
    fn = served.manifest.get("function") or {}
    if parameters is None:
        parameters = describe_parameters(served.function)
    error = {"$ref": "#/components/schemas/Error"}

    def error_response(description):
        return {"description": description, "content": {"application/json": {"schema": error}}}

    request_content = {"schema": request_schema(parameters, served.batching)}
    if with_sample and served.manifest.get("sample") is not None:
        request_content["example"] = served.manifest["sample"]
    ok_content = {"schema": {}}
    if with_sample and served.manifest.get("sample_output") is not None:
        ok_content["example"] = served.manifest["sample_output"]
    responses = {
        "200": {"description": "the function's answer", "content": {"application/json": ok_content}},
        "400": error_response("the body is not a JSON array/object or does not bind the signature"),
        "413": error_response("the body is larger than the service accepts"),
        "422": error_response("the validator rejected the input"),
        "500": error_response("the function raised or returned a value with no JSON form"),
    }
    if auth:
        responses["401"] = error_response("the Authorization header is missing or holds a wrong key")
    if timeout:
        responses["504"] = error_response("the function did not answer in time")
    invoke = {
        "operationId": "invoke",
        "summary": f"Call {fn.get('name')}{fn.get('signature')}",
        "description": served.how_to_call,
        "requestBody": {"required": True, "content": {"application/json": request_content}},
        "responses": dict(sorted(responses.items())),
    }
    if auth:
        invoke["security"] = [{"bearer": []}]
    base = path.rstrip("/")
    document = {
        "openapi": "3.1.0",
        "info": {
            "title": served.name,
            "version": served.manifest.get("created") or "1",
            "description": fn.get("doc") or f"{fn.get('name')}{fn.get('signature')}",
        },
        "paths": {
            path: {
                "post": invoke,
                "get": {"operationId": "info", "summary": "Describe the function",
                        "responses": {"200": {"description": "name, signature, parameters, doc and sample"}}},
            },
            f"{base}/docs": {"get": {"operationId": "docs", "summary": "This function's documentation page",
                                     "responses": {"200": {"description": "an HTML page"}}}},
        },
        "components": {
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error", "message"],
                    "properties": {
                        "error": {"type": "string"},
                        "message": {"type": "string"},
                        "hint": {"type": "string"},
                        "type": {"type": "string"},
                    },
                }
            }
        },
    }
    if auth:
        document["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    return document


_DOCS_STYLE = """
body{font:15px/1.5 system-ui,sans-serif;margin:2rem auto;max-width:58rem;padding:0 1rem;color:#1d1d1f;background:#fff}
@media (prefers-color-scheme:dark){body{color:#e6e6e6;background:#161616}
pre,code,textarea,input{background:#222!important;color:#e6e6e6}th,td{border-color:#444!important}}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.15rem;margin-top:1.8rem}
pre,code{font:13px/1.4 ui-monospace,monospace;background:#f4f4f6;border-radius:4px}
pre{padding:.7rem;overflow:auto;white-space:pre-wrap;word-break:break-word}code{padding:.1rem .3rem}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.35rem .6rem;border-bottom:1px solid #ddd}
textarea{width:100%;min-height:6rem;font:13px ui-monospace,monospace;box-sizing:border-box}
input{font:13px ui-monospace,monospace;width:24rem;max-width:100%}button{font-size:14px;margin-top:.5rem}
.muted{color:#777}
"""

_DOCS_SCRIPT = """
(function () {
  var config = JSON.parse(document.getElementById("config").textContent);
  var url = location.origin + (location.pathname.replace(/\\/docs\\/?$/, "") || "/");
  var quote = function (s) { return "'" + s.replace(/'/g, "'\\\\''") + "'"; };
  var curl = "curl -X POST " + quote(url) + " -H 'Content-Type: application/json'" +
    (config.auth ? " -H 'Authorization: Bearer <key>'" : "") + " -d " + quote(config.body);
  document.getElementById("curl").textContent = curl;
  document.getElementById("try").addEventListener("submit", function (event) {
    event.preventDefault();
    var out = document.getElementById("answer");
    var headers = {"Content-Type": "application/json"};
    var key = document.getElementById("key");
    if (key && key.value) { headers["Authorization"] = "Bearer " + key.value; }
    out.textContent = "…";
    fetch(url, {method: "POST", headers: headers, body: document.getElementById("body").value})
      .then(function (r) { return r.text().then(function (t) { out.textContent = r.status + "\\n" + t; }); })
      .catch(function (e) { out.textContent = String(e); });
  });
})();
"""

DOCS_CSP = ("default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'; "
            "base-uri 'none'; form-action 'none'")


def _script_json(value) -> str:
    # JSON inside <script> must not be able to close the element or open a comment.
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def docs_page(served: contract.ServedBundle, parameters: list, *, invoke_url: str, auth: bool,
              with_sample: bool = True) -> str:
    """A self-contained HTML page (no external assets) documenting the function, with a try-it form.

    ``with_sample=False`` leaves out the sample input and output (see ``openapi_document``)."""
    e = html.escape
    fn = served.manifest.get("function") or {}
    sample = served.manifest.get("sample") if with_sample else None
    if sample is None:
        sample = [] if not served.batching else [None]
    body = json.dumps(sample)
    curl = (f"curl -X POST {shlex.quote(invoke_url)} -H 'Content-Type: application/json'"
            + (" -H 'Authorization: Bearer <key>'" if auth else "") + f" -d {shlex.quote(body)}")
    rows = "".join(
        f"<tr><td><code>{e(p['name'])}</code></td><td>{e(p['type']) or '<span class=muted>any</span>'}</td>"
        f"<td>{'yes' if p['required'] else 'no'}</td>"
        f"<td>{'<code>' + e(json.dumps(p['default'])) + '</code>' if 'default' in p else ''}</td></tr>"
        for p in parameters
    )
    how = e(served.how_to_call)
    if served.batching:
        how += (f". Concurrent requests are answered together in batches of up to "
                f"{served.batching['max_batch_size']} items (waiting at most {served.batching['max_wait_ms']:g} ms)")
    if with_sample:
        answer = served.manifest.get("sample_output")
        sample_section = (f"<p>Request</p><pre>{e(json.dumps(served.manifest.get('sample'), indent=2))}</pre>\n"
                          f"<p>Answer</p><pre>{e(json.dumps(answer, indent=2))}</pre>")
    else:
        sample_section = "<p class=muted>The sample is shown only to callers that send the function's key.</p>"
    key_input = ('<p><label>Key <input id="key" type="password" autocomplete="off" '
                 'placeholder="the function key"></label></p>') if auth else ""
    send_key = " Send <code>Authorization: Bearer &lt;key&gt;</code>." if auth else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{e(served.name)}</title><style>{_DOCS_STYLE}</style></head>
<body>
<h1>{e(served.name)}</h1>
<p><code>{e(str(fn.get('name')))}{e(str(fn.get('signature')))}</code></p>
<pre>{e(fn.get('doc') or 'No docstring.')}</pre>
<h2>Parameters</h2>
<table><thead><tr><th>name</th><th>type</th><th>required</th><th>default</th></tr></thead><tbody>{rows}</tbody></table>
<h2>Calling it</h2>
<p>POST JSON to <code>{e(invoke_url)}</code>: {how}.{send_key}</p>
<pre id="curl">{e(curl)}</pre>
<h2>Sample</h2>
{sample_section}
<h2>Try it</h2>
<form id="try">{key_input}<textarea id="body" spellcheck="false">{e(body)}</textarea>
<button type="submit">Call</button></form>
<pre id="answer" class="muted">The answer appears here.</pre>
<p class="muted">The machine-readable description is <a href="openapi.json">openapi.json</a>.</p>
<script type="application/json" id="config">{_script_json({"auth": auth, "body": body})}</script>
<script>{_DOCS_SCRIPT}</script>
</body></html>
"""
