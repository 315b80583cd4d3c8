"""The comm protocol between the JupyterLab front end and the kernel (mirror of src/protocol.ts).

Every message is a JSON object with ``type``. The front end sends ``request`` messages carrying an
``id``; the kernel answers with exactly one ``result`` or ``error`` echoing that id, possibly after
``progress`` events. On open, the kernel sends ``hello`` with its versions. The fixture messages in
``protocol/fixtures/messages.json`` are checked by both pytest and jest, and validated against the
JSON Schemas in ``protocol/schema/``, so the sides cannot drift. The written spec, with what changed
in each version, is docs/protocol.md.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from ..errors import ERROR_CODES, PublishError

COMM_TARGET = "jupyterlab_publish"
# Bump on any incompatible change (and say what changed in docs/protocol.md); the front end refuses
# a kernel speaking another version. Versioned apart from the package.
PROTOCOL_VERSION = 5

METHODS = ("list_functions", "analyze", "publish", "cancel", "check_requirements")
STAGES = (
    "analysing",
    "sample",
    "pickling",
    "bundling",
    "preflight",
    "pushing",
    "installing",
    "starting",
    "smoke_test",
    "done",
)

# From this stage on the target may switch traffic: a cancel can no longer promise "nothing changed".
COMMITTED_STAGES = frozenset(STAGES[STAGES.index("pushing"):])

# Terminal colours and cursor moves (uv and pip colour their errors): never part of a message.
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")


def strip_ansi(text: str) -> str:
    return _ANSI_ESCAPE.sub("", text)


# Required parameters per method and their JSON types; optional ones are checked by the handlers.
_REQUIRED_PARAMS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "list_functions": {"code": str},
    "analyze": {"function": str},
    "publish": {"function": str, "name": str},
    "cancel": {"request_id": str},
    "check_requirements": {"texts": list},
}


class ProtocolError(PublishError):
    def __init__(self, message: str, request_id: str | None = None):
        super().__init__("bad_request", message, "Reload JupyterLab; if it persists, report a bug.")
        self.request_id = request_id


@dataclasses.dataclass(frozen=True)
class Request:
    id: str
    method: str
    params: dict[str, Any]


def parse_request(data: Any) -> Request:
    """Validate a message from the front end; raise ProtocolError saying what is wrong."""
    if not isinstance(data, dict):
        raise ProtocolError("a request must be a JSON object")
    request_id = data.get("id")
    if not isinstance(request_id, str) or not request_id:
        raise ProtocolError("a request needs a non-empty string 'id'")
    if data.get("type") != "request":
        raise ProtocolError(f"unexpected message type {data.get('type')!r}", request_id)
    method = data.get("method")
    if method not in METHODS:
        err = PublishError(
            "unknown_method",
            f"the kernel does not know the method {method!r}",
            "Update jupyterlab-publish in the kernel's environment to match JupyterLab's.",
        )
        err.request_id = request_id  # type: ignore[attr-defined]
        raise err
    params = data.get("params", {})
    if not isinstance(params, dict):
        raise ProtocolError("'params' must be a JSON object", request_id)
    for key, kind in _REQUIRED_PARAMS[method].items():
        if not isinstance(params.get(key), kind):
            raise ProtocolError(f"{method} needs the parameter {key!r}", request_id)
    if method == "check_requirements" and not all(isinstance(text, str) for text in params["texts"]):
        raise ProtocolError("check_requirements needs 'texts' to be a list of strings", request_id)
    if method == "publish":
        # A target's token never crosses the comm: the request says where the kernel reads it.
        if "token" in params:
            raise ProtocolError("publish never carries a token: name where it is with 'token_env' or 'token_file'",
                                request_id)
        for key in ("token_env", "token_file"):
            if params.get(key) is not None and not isinstance(params[key], str):
                raise ProtocolError(f"publish needs {key!r} to be a string", request_id)
    return Request(request_id, method, params)


def hello(package_version: str, python_version: str, cloudpickle_version: str) -> dict:
    return {
        "type": "hello",
        "protocol_version": PROTOCOL_VERSION,
        "package_version": package_version,
        "python_version": python_version,
        "cloudpickle_version": cloudpickle_version,
    }


def progress(request_id: str, stage: str, fraction: float, message: str) -> dict:
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}")
    return {
        "type": "progress",
        "id": request_id,
        "stage": stage,
        "fraction": max(0.0, min(1.0, float(fraction))),
        "message": message,
    }


def result(request_id: str, value: dict) -> dict:
    return {"type": "result", "id": request_id, "result": value}


def error(request_id: str | None, err: PublishError) -> dict:
    """The error reply; colour codes a tool wrote into the message, hint or log are removed."""
    assert err.code in ERROR_CODES
    return {"type": "error", "id": request_id, "error": _without_ansi(err.to_dict())}


def _without_ansi(value: Any) -> Any:
    if isinstance(value, str):
        return strip_ansi(value)
    if isinstance(value, dict):
        return {key: _without_ansi(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_without_ansi(item) for item in value]
    return value


def check_reply(data: Any) -> None:
    """Raise ProtocolError unless ``data`` is a well-formed kernel → front end message."""
    if not isinstance(data, dict):
        raise ProtocolError("a reply must be a JSON object")
    kind = data.get("type")
    if kind == "hello":
        if not isinstance(data.get("protocol_version"), int):
            raise ProtocolError("hello needs an integer protocol_version")
        return
    if kind not in ("progress", "result", "error"):
        raise ProtocolError(f"unknown reply type {kind!r}")
    request_id = data.get("id")
    if kind != "error" and not isinstance(request_id, str):
        raise ProtocolError(f"{kind} needs the request id")
    if kind == "progress" and data.get("stage") not in STAGES:
        raise ProtocolError(f"unknown progress stage {data.get('stage')!r}")
    if kind == "result" and not isinstance(data.get("result"), dict):
        raise ProtocolError("result needs an object 'result'")
    if kind == "error":
        err = data.get("error")
        if not isinstance(err, dict) or err.get("code") not in ERROR_CODES:
            raise ProtocolError("error needs an 'error' object with a known code")
