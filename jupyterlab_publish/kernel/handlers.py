"""What each protocol method does, given its parameters and the user's namespace."""

from __future__ import annotations

import dataclasses
import inspect
import json
import shlex
import threading
from typing import Any, Callable

from .. import api
from ..errors import PublishError
from .cells import list_functions as _list_functions
from .cells import resolve_function


def list_functions(params: dict[str, Any], namespace: dict[str, Any]) -> dict[str, Any]:
    functions = _list_functions(params["code"], namespace)
    if not functions:
        raise PublishError(
            "no_function",
            "This cell defines no function.",
            "Select a code cell with a `def` statement, e.g. `def predict(x): ...`.",
        )
    return {"functions": functions}


def analyze(params: dict[str, Any], namespace: dict[str, Any]) -> dict[str, Any]:
    fn = resolve_function(params["function"], namespace)
    validator = _optional_function(params.get("validator"), namespace)
    # Size thresholds: optional parameters (bytes or "100MB"), else the environment's, else defaults.
    report = api.analyze(
        fn, validator=validator, size_warning=params.get("size_warning"), size_limit=params.get("size_limit")
    ).to_dict()
    report["suggested_name"] = api.default_endpoint_name(fn)
    report["validators"] = _validator_candidates(namespace, exclude=fn)
    return report


def check_requirements(params: dict[str, Any], namespace: dict[str, Any]) -> dict[str, Any]:
    """Each text the user typed as a requirement entry (with the installed version), or an error.

    The dialog asks this instead of parsing PEP 508 itself: one parser, the kernel's.
    """
    requirements, errors = [], []
    for index, text in enumerate(params["texts"]):
        try:
            requirement, installed = api.check_requirement(text)
        except PublishError as err:
            requirements.append(None)
            errors.append({"index": index, "message": err.message, "hint": err.hint})
        else:
            requirements.append({**requirement.to_entry(), "installed": installed})
    return {"requirements": requirements, "errors": errors}


def publish(
    params: dict[str, Any],
    namespace: dict[str, Any],
    *,
    progress: Callable[[str, float, str], None],
    cancel: threading.Event | None,
) -> dict[str, Any]:
    fn = resolve_function(params["function"], namespace)
    deployment = api.publish(
        fn,
        name=params["name"],
        target=params.get("target") or None,
        token=_target_token(params),
        scale=params.get("scale"),  # checked by the target (Scale.from_dict) before anything is built
        requirements=params.get("requirements"),
        sample=_sample(params),
        validator=_optional_function(params.get("validator"), namespace),
        new_version=bool(params.get("new_version", False)),
        provenance={"notebook": params.get("notebook_path"), "cell_id": params.get("cell_id")},
        progress=progress,
        cancel=cancel,
        preflight=params.get("preflight") is not False,  # absent (older front ends): check
        public=params.get("public") is True,
    )
    return {**deployment.to_dict(), **call_instructions(deployment, fn, params.get("sample"))}


# Where the result dialog tells a user to serve a bundle a ``dir:`` target wrote.
SERVE_PORT = 8000


def call_instructions(deployment, fn: Callable[..., Any], sample: Any) -> dict[str, Any]:
    """``curl`` (a command that calls it), ``curl_note`` (what to change in it) and ``serve`` (for a
    bundle no server serves: the commands that serve it, after which ``curl`` works).

    Without a sample the body is built from the signature, a placeholder per parameter, since an
    empty body answers 400 for any function that takes arguments.
    """
    if sample is not None:
        body, note = json.dumps(sample), ""
    else:
        body, note = _placeholder_body(fn)
    serve = None
    if deployment.url.startswith("file:"):
        bundle = deployment.bundle_path or deployment.url.removeprefix("file://")
        env = f"/tmp/{deployment.name}-env"
        serve = (
            f"python -m venv {shlex.quote(env)} && "
            f"{shlex.quote(env)}/bin/pip install -r {shlex.quote(bundle + '/requirements.txt')} && "
            f"{shlex.quote(env)}/bin/python {shlex.quote(bundle + '/service.py')} --host 127.0.0.1 "
            f"--port {SERVE_PORT} --bundle {shlex.quote(bundle)}"
        )
        deployment = dataclasses.replace(deployment, url=f"http://127.0.0.1:{SERVE_PORT}/functions/{deployment.name}")
    return {"curl": deployment.curl(body), "curl_note": note, "serve": serve}


def _placeholder_body(fn: Callable[..., Any]) -> tuple[str, str]:
    try:
        parameters = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):  # a builtin without a signature: say what to send instead
        return "[]", "Send the function's positional arguments as a JSON array, or its named ones as an object."
    named = [p.name for p in parameters if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if not named:
        return "[]", ""
    body = json.dumps({name: f"<{name}>" for name in named})
    return body, (
        f"No sample was given: replace each <…> with a JSON value for that parameter ({', '.join(named)}); "
        "the body is an object of named arguments, or an array of positional ones."
    )


HANDLERS: dict[str, Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]] = {
    "list_functions": list_functions,
    "analyze": analyze,
    "check_requirements": check_requirements,
}


def _target_token(params: dict[str, Any]) -> str | None:
    """The target's token, read here from where the settings say it is (protocol 5); the token
    itself never crosses the comm. None without ``token_env``/``token_file``: a remote target then
    reads JUPYTERLAB_PUBLISH_TOKEN."""
    if not params.get("token_env") and not params.get("token_file"):
        return None
    # targets/ loads at the first publish, not when the comm opens (the kernel stays lean).
    from ..targets.tokens import resolve_token

    return resolve_token(params.get("token_env"), params.get("token_file"), where="the kernel")


def _sample(params: dict[str, Any]) -> Any:
    sample = params.get("sample")
    if sample is not None and not isinstance(sample, (list, dict)):
        raise PublishError(
            "invalid_sample",
            "The sample input must be a JSON array (positional arguments) or object (named arguments).",
            'For predictor(x) with x = [0.5, 0.5], write [[0.5, 0.5]] or {"x": [0.5, 0.5]}.',
        )
    return sample


def _optional_function(name: Any, namespace: dict[str, Any]) -> Callable[..., Any] | None:
    if not name:
        return None
    return resolve_function(str(name), namespace)


def _validator_candidates(namespace: dict[str, Any], exclude: Any) -> list[str]:
    """Notebook functions the user may pick as the validator."""
    return sorted(
        name
        for name, value in namespace.items()
        if not name.startswith("_")
        and value is not exclude
        and callable(value)
        and getattr(value, "__module__", None) == "__main__"
        and hasattr(value, "__code__")
    )
