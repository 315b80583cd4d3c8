"""The runtime's error answers: each code with its HTTP status, in one table.

Part of the runtime copied into every bundle (see ``service.py``); standard library only, so it
cannot import ``jupyterlab_publish.errors``: a test checks that every code here is one of
``ERROR_CODES`` there, with the same status. Add codes, never rename: callers act on them.
"""

from __future__ import annotations

import json

STATUS = {
    "bad_request": 400,  # the body is not JSON, or not arguments the function takes
    "unauthorized": 401,  # the function needs its key (Authorization: Bearer <key>)
    "forbidden_origin": 403,  # a Host not served here, or a request from another site (contract 3)
    "not_found": 404,  # no such route on this worker
    "method_not_allowed": 405,  # a method the route does not take
    "payload_too_large": 413,  # the body exceeds --max-body
    "headers_too_large": 431,  # a request head on a handed-off connection exceeds HEAD_LIMIT (contract 3)
    "invalid_input": 422,  # the function's validator refused the input
    "function_error": 500,  # the function raised
    "unserialisable_result": 500,  # the function returned something JSON cannot carry
    "batch_error": 500,  # a batch of a vectorised function failed as a whole
    "bad_gateway": 502,  # the function server this worker relays to did not answer
    "timeout": 504,  # the function did not answer within --timeout
}

_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def payload(code: str, message: str, **extra) -> dict:
    """``{"error": code, "message": ..., **extra}``: the body of every error answer."""
    if code not in STATUS:
        raise ValueError(f"unknown error code {code!r}")
    return {"error": code, "message": message, **extra}


def error_body(code: str, message: str, **extra) -> bytes:
    """The JSON bytes of ``payload(code, message, **extra)``."""
    return _ENCODER.encode(payload(code, message, **extra)).encode("utf-8")


def answer(code: str, message: str, **extra) -> tuple:
    """``(status, body bytes)`` of an error answer, the status taken from ``STATUS``."""
    return STATUS[code], error_body(code, message, **extra)
