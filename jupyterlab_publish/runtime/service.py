"""Serve one published function over HTTP.

This file is copied verbatim into every bundle and runs inside the bundle's own environment, next to
``manifest.json`` and ``function.pkl``:

    python service.py [--host 127.0.0.1] [--port 8000] [--bundle DIR] [--max-body BYTES]

It may therefore import only the standard library, ``cloudpickle``, ``starlette`` and ``uvicorn`` —
never Jupyter and never ``jupyterlab_publish``. The kernel side imports ``json_ready`` and the
argument helpers from here so that the notebook (sample output) and the service (responses) share a
single definition of the calling contract; for that reason starlette and uvicorn are imported lazily,
inside the functions that build and run the app, and this module imports cleanly without them.

The calling contract: ``POST /`` with a JSON array calls ``fn(*array)``, with a JSON object calls
``fn(**object)``; the answer is the JSON form of the return value (see ``json_ready``).
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import inspect
import json
import logging
import math
import platform
import sys
from pathlib import Path

import cloudpickle

BUNDLE_FORMAT = "jupyterlab-publish-bundle"
BUNDLE_FORMAT_VERSION = 1
DEFAULT_HOST = "127.0.0.1"  # loopback by default: exposing a function is the operator's decision
DEFAULT_PORT = 8000
DEFAULT_MAX_BODY = 10 * 1024 * 1024  # 10 MiB: large enough for a batch, small enough to stay safe

CONTRACT = (
    "send a JSON array for positional arguments (e.g. [1, 2]) "
    'or a JSON object for keyword arguments (e.g. {"x": 1})'
)

log = logging.getLogger("jupyterlab_publish.service")


# ── JSON conversion of return values ─────────────────────────────────────────────────────────────


def json_ready(value):
    """Return ``value`` as plain JSON data (dict, list, str, int, float, bool, None).

    numpy scalars become Python scalars, arrays nested lists; a pandas DataFrame becomes a list of
    records, a Series or Index a list; tuples and sets become lists; dates and datetimes ISO strings.
    NaN, infinities and missing-value markers (NaT, pd.NA) become ``None``, because JSON has no
    spelling for them and ``null`` is what pandas itself writes. Anything else raises ``TypeError``
    naming the type and where it sits in the value.

    numpy and pandas are consulted only when already imported: a value of their types cannot exist
    otherwise, and importing them here would slow down every service that does not use them.
    """
    return _convert(value, "result", set())


def _type_name(value) -> str:
    cls = type(value)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def _convert(value, where: str, active: set):
    if value is None or type(value) is bool:
        return value
    if isinstance(value, str):
        return str.__str__(value)  # str subclasses (numpy.str_, str enums) become their plain text
    np = sys.modules.get("numpy")
    if np is not None and isinstance(value, (np.generic, np.ndarray)):
        return _convert_numpy(np, value, where, active)
    if isinstance(value, int):
        return int(value)  # int subclasses (IntEnum) become plain ints
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    pd = sys.modules.get("pandas")
    if pd is not None:
        if value is pd.NaT or value is getattr(pd, "NA", None):
            return None
        if isinstance(value, pd.DataFrame):
            return _convert_container(value.to_dict(orient="records"), where, active)
        if isinstance(value, (pd.Series, pd.Index)):
            return _convert_container(value.tolist(), where, active)
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (dict, list, tuple, set, frozenset)):
        return _convert_container(value, where, active)
    raise TypeError(
        f"{where} is a {_type_name(value)}, which has no JSON form; return lists, dicts, numbers, "
        "strings, booleans or None (numpy, pandas and datetime values are converted for you)"
    )


def _convert_numpy(np, value, where: str, active: set):
    if isinstance(value, np.ndarray):
        if value.ndim == 0:
            return _convert(value[()], where, active)  # a 0-d array is a scalar in disguise
        kind = value.dtype.kind
        if kind in "biu":
            return value.tolist()  # already plain ints/bools: skip the per-element walk
        if kind == "f" and bool(np.isfinite(value).all()):
            return value.tolist()
        if kind in "Mm":
            # tolist() turns nanosecond datetimes into bare integers; convert element by element.
            return [_convert(item, f"{where}[{i}]", active) for i, item in enumerate(value)]
        return _convert(value.tolist(), where, active)
    if isinstance(value, np.datetime64):
        return None if np.isnat(value) else str(value)
    return _convert(value.item(), where, active)


def _convert_container(value, where: str, active: set):
    # A container that contains itself would recurse forever; name it instead.
    marker = id(value)
    if marker in active:
        raise TypeError(f"{where} contains itself; a circular structure has no JSON form")
    active.add(marker)
    try:
        if isinstance(value, dict):
            return {_convert_key(k, where): _convert(v, f"{where}[{k!r}]", active) for k, v in value.items()}
        if isinstance(value, (set, frozenset)):
            try:
                value = sorted(value)  # a stable order makes answers reproducible
            except TypeError:
                value = list(value)
        return [_convert(item, f"{where}[{i}]", active) for i, item in enumerate(value)]
    finally:
        active.discard(marker)


def _convert_key(key, where: str):
    if isinstance(key, str):
        return str.__str__(key)
    if key is None or isinstance(key, (int, float)):
        return key  # json writes these as strings itself
    np = sys.modules.get("numpy")
    if np is not None and isinstance(key, np.generic):
        return _convert_key(key.item(), where)
    if isinstance(key, (datetime.datetime, datetime.date, datetime.time)):
        return key.isoformat()
    raise TypeError(f"{where} has a key of type {_type_name(key)}, which cannot be a JSON object key")


# ── The calling contract ─────────────────────────────────────────────────────────────────────────


class ArgumentError(ValueError):
    """The request (or sample) does not follow the calling contract or the function's signature."""


def split_arguments(payload) -> tuple[list, dict]:
    """JSON array → positional arguments, JSON object → keyword arguments; anything else is refused."""
    if isinstance(payload, list):
        return list(payload), {}
    if isinstance(payload, dict):
        return [], dict(payload)
    raise ArgumentError(f"expected a JSON array or object, got {type(payload).__name__}: {CONTRACT}")


def describe_signature(fn) -> str:
    try:
        return str(inspect.signature(fn))
    except (TypeError, ValueError):  # some builtins and C callables have no introspectable signature
        return "(...)"


def bind_arguments(fn, args: list, kwargs: dict) -> None:
    """Raise ArgumentError if ``fn(*args, **kwargs)`` would fail on binding alone.

    Checking before calling lets a caller tell "you called it wrong" (400) from "it failed" (500).
    """
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return
    try:
        signature.bind(*args, **kwargs)
    except TypeError as exc:
        name = getattr(fn, "__name__", "the function")
        raise ArgumentError(f"the arguments do not match {name}{signature}: {exc}") from None


def validator_verdict(validator, args: list, kwargs: dict) -> str | None:
    """Run the validator; return why it rejects the input, or None when it accepts it.

    A validator rejects by raising (its message is the reason) or by returning False. Returning
    None accepts, so validators written as a series of asserts/raises work without a final return.
    """
    try:
        verdict = validator(*args, **kwargs)
    except Exception as exc:  # any exception is a rejection by contract
        return str(exc) or type(exc).__name__
    if verdict is False or (type(verdict).__name__ == "bool_" and not verdict):  # numpy.bool_
        return "the validator rejected the input"
    return None


# ── Loading a bundle ─────────────────────────────────────────────────────────────────────────────


class BundleError(Exception):
    """The bundle cannot be served; the message says why and what to do."""


class ServedBundle:
    """The manifest and the live callables of a bundle directory."""

    def __init__(self, path: Path, manifest: dict, function, validator):
        self.path = path
        self.manifest = manifest
        self.function = function
        self.validator = validator

    @property
    def name(self) -> str:
        return self.manifest["name"]

    def info(self) -> dict:
        fn = self.manifest.get("function") or {}
        return {
            "name": self.name,
            "function": fn.get("name"),
            "signature": fn.get("signature"),
            "doc": fn.get("doc") or "",
            "sample": self.manifest.get("sample"),
            "sample_output": self.manifest.get("sample_output"),
            "validator": self.validator is not None,
            "created": self.manifest.get("created"),
            "usage": f"POST / — {CONTRACT}",
        }


def load_bundle(bundle_dir) -> ServedBundle:
    path = Path(bundle_dir)
    try:
        manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(f"{path} has no manifest.json: pass --bundle pointing at a bundle directory") from None
    except ValueError as exc:
        raise BundleError(f"{path / 'manifest.json'} is not valid JSON ({exc}); rebuild the bundle") from None
    if manifest.get("format") != BUNDLE_FORMAT or manifest.get("format_version") != BUNDLE_FORMAT_VERSION:
        raise BundleError(
            f"{path} holds format {manifest.get('format')!r} version {manifest.get('format_version')!r}; "
            f"this service reads {BUNDLE_FORMAT!r} version {BUNDLE_FORMAT_VERSION}"
        )
    _check_python(manifest)
    function = _load_pickle(path, manifest, "function.pkl")
    validator = _load_pickle(path, manifest, "validator.pkl") if manifest.get("validator") else None
    return ServedBundle(path, manifest, function, validator)


def _check_python(manifest: dict) -> None:
    # Functions defined in a notebook travel as bytecode, which only the same minor version runs.
    built = (manifest.get("python") or {}).get("minor")
    running = "{}.{}".format(*sys.version_info[:2])
    if built and built != running:
        raise BundleError(
            f"this bundle was built with Python {built} but is running on Python {running}; "
            f"create the environment with Python {built} (pickled functions carry bytecode)"
        )


def _load_pickle(path: Path, manifest: dict, filename: str):
    data_path = path / filename
    try:
        data = data_path.read_bytes()
    except FileNotFoundError:
        raise BundleError(f"{data_path} is missing; rebuild the bundle") from None
    expected = (manifest.get("files") or {}).get(filename)
    if expected != hashlib.sha256(data).hexdigest():
        raise BundleError(f"{data_path} does not match its checksum in manifest.json; rebuild the bundle")
    try:
        return cloudpickle.loads(data)
    except ModuleNotFoundError as exc:
        raise BundleError(
            f"{filename} needs the module {exc.name!r}, which is not installed here; "
            "add its distribution to the bundle's requirements and reinstall"
        ) from None
    except Exception as exc:
        raise BundleError(f"cannot unpickle {filename}: {type(exc).__name__}: {exc}") from None


# ── HTTP ─────────────────────────────────────────────────────────────────────────────────────────


class _BodyTooLarge(Exception):
    pass


async def _read_body(request, limit: int) -> bytes:
    # Trust a declared length to refuse early, but count the stream too: the header may be absent
    # (chunked uploads) or wrong.
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _BodyTooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _call_and_encode(fn, args: list, kwargs: dict) -> tuple[int, dict | bytes]:
    """Call the function and encode its answer; runs in a worker thread (both steps can be slow)."""
    try:
        result = fn(*args, **kwargs)
    except Exception as exc:
        log.exception("the function raised")
        return 500, {"error": "function_error", "type": type(exc).__name__, "message": str(exc)}
    try:
        body = json.dumps(json_ready(result), allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        return 500, {
            "error": "unserialisable_result",
            "type": _type_name(result),
            "message": f"the function returned a value that cannot be sent as JSON: {exc}",
        }
    return 200, body.encode("utf-8")


def openapi_document(served: ServedBundle) -> dict:
    """A minimal OpenAPI 3 description of the service, enough for clients and API browsers."""
    fn = served.manifest.get("function") or {}
    error = {"$ref": "#/components/schemas/Error"}

    def error_response(description):
        return {"description": description, "content": {"application/json": {"schema": error}}}

    request_example = served.manifest.get("sample")
    request_content = {
        "schema": {
            "oneOf": [
                {"type": "array", "description": "positional arguments", "items": {}},
                {"type": "object", "description": "keyword arguments", "additionalProperties": True},
            ]
        }
    }
    if request_example is not None:
        request_content["example"] = request_example
    ok_content = {"schema": {}}
    if served.manifest.get("sample_output") is not None:
        ok_content["example"] = served.manifest["sample_output"]
    return {
        "openapi": "3.0.3",
        "info": {
            "title": served.name,
            "version": served.manifest.get("created") or "1",
            "description": fn.get("doc") or f"{fn.get('name')}{fn.get('signature')}",
        },
        "paths": {
            "/": {
                "post": {
                    "operationId": "invoke",
                    "summary": f"Call {fn.get('name')}{fn.get('signature')}",
                    "description": CONTRACT,
                    "requestBody": {"required": True, "content": {"application/json": request_content}},
                    "responses": {
                        "200": {"description": "the function's answer", "content": {"application/json": ok_content}},
                        "400": error_response("the body is not a JSON array/object or does not bind the signature"),
                        "413": error_response("the body is larger than the service accepts"),
                        "422": error_response("the validator rejected the input"),
                        "500": error_response("the function raised or returned a value with no JSON form"),
                    },
                },
                "get": {
                    "operationId": "info",
                    "summary": "Describe the function",
                    "responses": {"200": {"description": "name, signature, doc and sample"}},
                },
            },
            "/healthz": {
                "get": {"operationId": "health", "summary": "Liveness", "responses": {"200": {"description": "ok"}}}
            },
        },
        "components": {
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error", "message"],
                    "properties": {
                        "error": {"type": "string"},
                        "message": {"type": "string"},
                        "type": {"type": "string"},
                    },
                }
            }
        },
    }


def create_app(bundle_dir, *, max_body: int = DEFAULT_MAX_BODY):
    """Build the Starlette app serving the bundle in ``bundle_dir`` (raises BundleError)."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    served = load_bundle(bundle_dir)
    fn, validator = served.function, served.validator

    def error(status: int, code: str, message: str, **extra) -> JSONResponse:
        return JSONResponse({"error": code, "message": message, **extra}, status_code=status)

    async def invoke(request):
        try:
            body = await _read_body(request, max_body)
        except _BodyTooLarge:
            return error(413, "payload_too_large", f"the request body exceeds {max_body} bytes; send less data "
                         "per call or start the service with a larger --max-body")
        try:
            payload = json.loads(body)
        except ValueError as exc:
            return error(400, "bad_request", f"the body is not valid JSON ({exc}): {CONTRACT}")
        try:
            args, kwargs = split_arguments(payload)
            bind_arguments(fn, args, kwargs)
        except ArgumentError as exc:
            return error(400, "bad_request", str(exc))
        if validator is not None:
            reason = await run_in_threadpool(validator_verdict, validator, args, kwargs)
            if reason is not None:
                return error(422, "invalid_input", reason)
        status, answer = await run_in_threadpool(_call_and_encode, fn, args, kwargs)
        if status == 200:
            return Response(answer, media_type="application/json")
        return JSONResponse(answer, status_code=status)

    async def info(request):
        return JSONResponse(served.info())

    async def healthz(request):
        return JSONResponse(
            {"status": "ok", "name": served.name, "function": served.manifest["function"]["name"],
             "python": platform.python_version()}
        )

    openapi = openapi_document(served)

    async def openapi_json(request):
        return JSONResponse(openapi)

    app = Starlette(
        routes=[
            Route("/", invoke, methods=["POST"]),
            Route("/", info, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/openapi.json", openapi_json, methods=["GET"]),
        ]
    )
    app.state.bundle = served
    return app


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Serve a jupyterlab-publish bundle over HTTP.")
    parser.add_argument("--host", default=DEFAULT_HOST, help="interface to bind (default: %(default)s)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port to bind (default: %(default)s)")
    parser.add_argument(
        "--bundle", type=Path, default=Path(__file__).resolve().parent,
        help="bundle directory (default: the directory of this file)",
    )
    parser.add_argument(
        "--max-body", type=int, default=DEFAULT_MAX_BODY,
        help="largest request body accepted, in bytes (default: %(default)s)",
    )
    options = parser.parse_args(argv)
    try:
        app = create_app(options.bundle, max_body=options.max_body)
    except BundleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    import uvicorn

    print(
        f"serving {app.state.bundle.name!r} at http://{options.host}:{options.port}/",
        file=sys.stderr, flush=True,
    )
    # One process: the function's state (a model, caches) lives once; scale with more services.
    uvicorn.run(app, host=options.host, port=options.port, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
