"""One error family: every code has one HTTP status, and the runtime's own table agrees with it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from jupyterlab_publish.errors import ERROR_CODES, HTTP_STATUS, PublishError
from jupyterlab_publish.runtime import service_errors

PACKAGE = Path(__file__).resolve().parents[1]


def test_every_code_has_one_http_status():
    assert set(HTTP_STATUS) == ERROR_CODES
    assert all(isinstance(status, int) and 400 <= status <= 599 for status in HTTP_STATUS.values())


def test_the_runtimes_codes_are_error_codes_with_the_same_status():
    # The runtime travels in bundles and cannot import errors.py: its table is checked here instead.
    assert set(service_errors.STATUS) <= ERROR_CODES
    assert {code: HTTP_STATUS[code] for code in service_errors.STATUS} == service_errors.STATUS


def _literal_answers(path: Path):
    """(status, code) of every ``return <status>, error_body("<code>", ...)``-like tuple in a module."""
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Tuple) and len(node.elts) == 2:
            status, body = node.elts
            if (isinstance(status, ast.Constant) and isinstance(status.value, int) and isinstance(body, ast.Call)
                    and getattr(body.func, "id", getattr(body.func, "attr", "")) == "error_body"
                    and body.args and isinstance(body.args[0], ast.Constant)):
                yield status.value, body.args[0].value


def test_the_runtimes_literal_statuses_follow_its_table():
    found = [(path.name, status, code) for path in sorted((PACKAGE / "runtime").glob("service*.py"))
             for status, code in _literal_answers(path)]
    wrong = [entry for entry in found if service_errors.STATUS.get(entry[2]) != entry[1]]
    assert not wrong, wrong


def test_every_code_the_servers_sources_raise_is_known():
    # The function server raises PublishError("<code>", ...); a typo would only fail at run time.
    codes = set()
    for path in sorted((PACKAGE / "functions").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if (isinstance(node, ast.Call) and getattr(node.func, "id", "") == "PublishError"
                    and node.args and isinstance(node.args[0], ast.Constant)):
                codes.add(node.args[0].value)
    assert codes and codes <= ERROR_CODES, codes - ERROR_CODES


def test_an_error_body_carries_code_message_hint_and_details_beside_them():
    error = PublishError("smoke_test_failed", "it broke", "fix it", {"log": "tail", "message": "not this one"})
    assert error.http_status == 422
    assert error.http_body() == {"error": "smoke_test_failed", "message": "it broke", "hint": "fix it", "log": "tail"}
    with pytest.raises(ValueError):
        PublishError("no_such_code", "x")
    with pytest.raises(ValueError):
        service_errors.payload("no_such_code", "x")
