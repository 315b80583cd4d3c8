"""Errors with stable codes, shared by the kernel, the comm protocol, the function server, the
bundle runtime and the UI.

The front end maps each ``code`` to an action (offer to run the cell, offer a new version, show the
``%pip install`` line...), so codes are part of the protocol: add new ones, never rename.

``HTTP_STATUS`` is the one place a code gets its HTTP status: the function server answers a
``PublishError`` with it (through Starlette's ``exception_handlers``), and the http target reads
the code back from the answer's body, so the code survives the hop. The bundle runtime cannot
import this package; its own table (``runtime/service_errors.py``) is checked against this one by
the tests.
"""

from __future__ import annotations

# code -> HTTP status. Keep in sync with ``ErrorCode`` in src/protocol.ts and the ``error_codes``
# of protocol/fixtures/messages.json (both checked by tests).
HTTP_STATUS = {
    # -- the kernel and the comm protocol
    "bad_request": 400,  # malformed message or parameters
    "unknown_method": 400,  # the kernel does not know the requested method
    "syntax_error": 422,  # the cell does not compile
    "no_function": 422,  # the cell defines no function (or not the one asked for)
    "not_defined": 409,  # the function is in the cell but the cell has not been run
    "stale_cell": 409,  # the cell was edited after it last ran
    "not_callable": 422,  # the name is bound to something that is not a function
    "unpicklable": 422,  # a capture cloudpickle cannot serialise
    "invalid_name": 400,  # the endpoint name is not valid
    "name_taken": 409,  # the endpoint exists already; publish a new version instead
    "invalid_sample": 400,  # the sample input is not valid JSON arguments for the function
    "sample_failed": 422,  # the function raised on the sample input inside the notebook
    "missing_requirement": 422,  # pre-flight: a module comes from an installed distribution not declared
    "preflight_failed": 422,  # pre-flight: the bundle fails or answers differently in a clean environment
    "cancelled": 499,  # the user cancelled the request (nginx's "client closed request")
    "busy": 409,  # another publish is running for this kernel
    "internal": 500,  # a bug: the message says what happened
    # -- targets
    "unknown_target": 400,  # no target plugin for the given spec
    "unsupported": 501,  # the target lacks the management verb asked for (see Target.capabilities)
    "target_unreachable": 502,  # the deploy target cannot be reached or started
    "target_error": 409,  # the target refused given its state (e.g. nothing to roll back to), or an unknown answer
    "invalid_scale": 400,  # replicas, autoscaling bounds or CPUs that a target cannot honour
    "insecure_target": 400,  # the target is reachable without authentication and was not allowed to be
    # -- the function server (admin API and its proxy of invocations)
    "invalid_bundle": 400,  # a bundle is missing files or fails its integrity check
    "environment_mismatch": 400,  # the server cannot give the bundle the Python or packages it needs
    "smoke_test_failed": 422,  # the deployed function failed its smoke test; nothing switched
    "not_found": 404,  # no such function, version or route
    "unauthorized": 401,  # a missing or wrong admin token or function key
    "forbidden_origin": 403,  # a Host this server does not answer to, or a request from another site's page
    "payload_too_large": 413,  # a bundle or request body over the limit
    "headers_too_large": 431,  # a request's headers exceed the server's limit
    "unavailable": 503,  # the function's worker is not running (restarting, or failed to start)
    "worker_failed": 502,  # the worker failed during the call
    "timeout": 504,  # the function did not answer in time
    # -- the bundle runtime (answers to invocations; also in runtime/service_errors.py)
    "method_not_allowed": 405,  # a method the route does not take
    "invalid_input": 422,  # the function's validator refused the input
    "function_error": 500,  # the function raised
    "unserialisable_result": 500,  # the function returned something JSON cannot carry
    "batch_error": 500,  # a batch of a vectorised function failed as a whole
    "bad_gateway": 502,  # a worker could not reach the function server it relays to
}

ERROR_CODES = frozenset(HTTP_STATUS)

# Keys of an HTTP error body that are not ``details``: ``{"error": code, "message", "hint", **details}``.
HTTP_BODY_KEYS = ("error", "message", "hint")


class PublishError(Exception):
    """An error a user can act on: ``message`` says what happened, ``hint`` what to do next."""

    def __init__(self, code: str, message: str, hint: str = "", details: dict | None = None):
        if code not in ERROR_CODES:
            raise ValueError(f"unknown error code {code!r}")
        super().__init__(message)
        self.code = code
        self.message = message
        self.hint = hint
        self.details = details or {}

    @property
    def http_status(self) -> int:
        return HTTP_STATUS[self.code]

    def to_dict(self) -> dict:
        """The comm protocol's error payload: ``{code, message, hint[, details]}``."""
        out = {"code": self.code, "message": self.message, "hint": self.hint}
        if self.details:
            out["details"] = self.details
        return out

    def http_body(self) -> dict:
        """The JSON body of an HTTP error answer: ``{"error": code, "message", "hint", **details}``.

        Details sit beside the code (a worker's ``log``, a taken ``name``) as servers have always
        sent them; a detail never overrides the three fixed keys.
        """
        body = {"error": self.code, "message": self.message, "hint": self.hint}
        body.update((key, value) for key, value in self.details.items() if key not in HTTP_BODY_KEYS)
        return body

    def __str__(self) -> str:
        return f"{self.message}\nHint: {self.hint}" if self.hint else self.message
