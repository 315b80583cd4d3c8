"""The Python side of the protocol against the fixture messages shared with jest."""

import pytest

from jupyterlab_publish.errors import ERROR_CODES, PublishError
from jupyterlab_publish.kernel import protocol


def test_constants_match_the_shared_fixtures(protocol_fixtures):
    assert protocol.PROTOCOL_VERSION == protocol_fixtures["protocol_version"]
    assert protocol.COMM_TARGET == protocol_fixtures["comm_target"]
    assert list(protocol.METHODS) == protocol_fixtures["methods"]
    assert list(protocol.STAGES) == protocol_fixtures["stages"]
    assert ERROR_CODES == set(protocol_fixtures["error_codes"])


def test_valid_requests_parse(protocol_fixtures):
    for message in protocol_fixtures["requests"]["valid"]:
        request = protocol.parse_request(message)
        assert (request.id, request.method, request.params) == (message["id"], message["method"], message["params"])


def test_invalid_requests_are_refused_with_their_code(protocol_fixtures):
    for case in protocol_fixtures["requests"]["invalid"]:
        with pytest.raises(PublishError) as info:
            protocol.parse_request(case["message"])
        assert info.value.code == case.get("code", "bad_request"), case["why"]


def test_valid_replies_pass_and_invalid_ones_do_not(protocol_fixtures):
    for message in protocol_fixtures["replies"]["valid"]:
        protocol.check_reply(message)
    for case in protocol_fixtures["replies"]["invalid"]:
        with pytest.raises(PublishError):
            protocol.check_reply(case["message"])


def test_builders_produce_valid_replies():
    err = PublishError("no_function", "This cell defines no function.", "Select a cell with a def.")
    for reply in (
        protocol.hello("0.1.0", "3.11.7", "3.1.2"),
        protocol.progress("r1", "pushing", 1.7, "Pushing"),
        protocol.result("r1", {"ok": True}),
        protocol.error("r1", err),
    ):
        protocol.check_reply(reply)
    assert protocol.progress("r1", "pushing", 1.7, "")["fraction"] == 1.0
    with pytest.raises(ValueError):
        protocol.progress("r1", "teleporting", 0.5, "")


def test_unknown_error_codes_are_a_bug():
    with pytest.raises(ValueError):
        PublishError("whatever", "m")
