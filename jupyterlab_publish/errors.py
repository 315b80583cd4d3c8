"""Errors with stable codes, shared by the Python API, the comm protocol and the UI.

The front end maps each ``code`` to an action (offer to run the cell, offer a new version, show the
``%pip install`` line...), so codes are part of the protocol: add new ones, never rename.
"""

from __future__ import annotations

# Stable error codes. Keep in sync with ``ErrorCode`` in src/protocol.ts (checked by the shared
# fixtures in protocol/fixtures).
ERROR_CODES = frozenset(
    {
        "bad_request",  # malformed message or parameters
        "unknown_method",  # the kernel does not know the requested method
        "syntax_error",  # the cell does not compile
        "no_function",  # the cell defines no function (or not the one asked for)
        "not_defined",  # the function is in the cell but the cell has not been run
        "stale_cell",  # the cell was edited after it last ran
        "not_callable",  # the name is bound to something that is not a function
        "unpicklable",  # a capture cloudpickle cannot serialise
        "invalid_name",  # the endpoint name is not valid
        "name_taken",  # the endpoint exists already; publish a new version instead
        "invalid_sample",  # the sample input is not valid JSON arguments for the function
        "sample_failed",  # the function raised on the sample input inside the notebook
        "smoke_test_failed",  # the deployed function failed its smoke test; nothing switched
        "invalid_bundle",  # a bundle is missing files or fails its integrity check
        "target_unreachable",  # the deploy target cannot be reached or started
        "target_error",  # the target answered with an error
        "unknown_target",  # no target plugin for the given spec
        "cancelled",  # the user cancelled the request
        "busy",  # another publish is running for this kernel
        "missing_requirement",  # pre-flight: a module comes from an installed distribution not declared
        "preflight_failed",  # pre-flight: the bundle fails or answers differently in a clean environment
        "internal",  # a bug: the message says what happened
    }
)


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

    def to_dict(self) -> dict:
        out = {"code": self.code, "message": self.message, "hint": self.hint}
        if self.details:
            out["details"] = self.details
        return out

    def __str__(self) -> str:
        return f"{self.message}\nHint: {self.hint}" if self.hint else self.message
