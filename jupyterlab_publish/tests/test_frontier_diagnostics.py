"""Diagnostics before pickling: unpicklable captures named with the path to them and a fix (the
frontier, by type, without pickling), and the pickled size of each capture (api.analyze, with
cloudpickle) against a warning and an error threshold."""

from __future__ import annotations

import fnmatch
import functools
import json
import socket
import sqlite3
import threading

import cloudpickle
import pytest
from frontier_sites import notebook

from jupyterlab_publish import api
from jupyterlab_publish.bundle.capture_sizes import parse_size, size_thresholds
from jupyterlab_publish.errors import PublishError
from jupyterlab_publish.frontier import analyze_function
from jupyterlab_publish.kernel import handlers


def problems(fn) -> tuple[list, list]:
    report = analyze_function(fn)
    return [(e.code, e.path) for e in report.errors], [(w.code, w.path) for w in report.warnings]


def test_connection_inside_a_dict_is_named_by_its_path():
    connection = sqlite3.connect(":memory:")
    try:
        ns = notebook("def predictor(x):\n    return helpers['db'].execute(x)\n", helpers={"db": connection, "n": 1})
        report = analyze_function(ns["predictor"])
        (error,) = report.errors
        assert error.code == "unpicklable_connection"
        assert error.path == "predictor → helpers['db'] (sqlite3.Connection)"
        assert error.message.startswith("predictor → helpers['db'] (sqlite3.Connection) is a database connection")
        assert "connect inside the function" in error.hint
        with pytest.raises(TypeError):  # what the diagnosis saves the user from finding out later
            cloudpickle.dumps(ns["predictor"])
    finally:
        connection.close()


@pytest.mark.parametrize(
    "make, code",
    [
        (threading.Lock, "unpicklable_lock"),
        (threading.RLock, "unpicklable_lock"),
        (threading.Event, "unpicklable_lock"),
        (lambda: (i for i in range(3)), "unpicklable_generator"),
    ],
)
def test_process_bound_objects_are_errors(make, code):
    ns = notebook("def f():\n    return guard\n", guard=make())
    assert problems(ns["f"])[0] == [(code, f"f → guard ({_type(ns['guard'])})")]
    with pytest.raises(Exception):
        cloudpickle.dumps(ns["guard"])


def _type(value) -> str:
    cls = type(value)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def test_socket_held_by_an_instance_attribute_of_a_closure():
    with socket.socket() as sock:
        ns = notebook(
            """
            class Client:
                def __init__(self, sock):
                    self.sock = sock
            def make(client):
                def f():
                    return client.sock
                return f
            """
        )
        errors, _ = problems(ns["make"](ns["Client"](sock)))
        assert errors == [("unpicklable_socket", "f → client.sock (socket.socket)")]


def test_open_files(tmp_path):
    path = tmp_path / "data.txt"
    path.write_text("hello")
    with open(path) as text, open(path, "rb") as binary, open(tmp_path / "out.txt", "w") as written:
        closed = open(path)
        closed.close()
        ns = notebook(
            "def f():\n    return text, binary, written, closed\n",
            text=text, binary=binary, written=written, closed=closed,
        )
        errors, warnings = problems(ns["f"])
    assert sorted(errors) == [
        ("file_snapshot", "f → text (_io.TextIOWrapper)"),
        ("unpicklable_file", "f → binary (_io.BufferedReader)"),
        ("unpicklable_file", "f → closed (_io.TextIOWrapper)"),
        ("unpicklable_file", "f → written (_io.TextIOWrapper)"),
    ]
    # a text file open for reading would pickle as a copy of what is left to read, so the service
    # would answer differently from the notebook (issue 11): an error too, not a warning
    assert warnings == []


def test_lru_cache_wrapper_of_a_notebook_function_is_an_error_that_still_walks_its_code():
    ns = notebook(
        """
        import functools
        import numpy as np
        @functools.lru_cache(maxsize=None)
        def norm(n):
            return float(np.sqrt(n))
        def f(n):
            return norm(n)
        """
    )
    report = analyze_function(ns["f"])
    assert [(e.code, e.path) for e in report.errors] == [
        ("unpicklable_lru_cache", "f → norm (functools._lru_cache_wrapper)")
    ]
    assert "lru_cache on an inner function" in report.errors[0].hint
    assert [r.name for r in report.requirements] == ["numpy"]  # the wrapped code was still walked


def test_lru_cache_wrappers_that_pickle_by_name_are_fine():
    ns = notebook("def f(p):\n    return compile_pattern(p)\n", compile_pattern=fnmatch._compile_pattern)
    assert problems(ns["f"]) == ([], [])
    made_here = functools.lru_cache(json.dumps)  # named json.dumps, but it is not json.dumps
    ns = notebook("def f(x):\n    return dumps(x)\n", dumps=made_here)
    assert problems(ns["f"])[0] == [("unpicklable_lru_cache", "f → dumps (functools._lru_cache_wrapper)")]


def test_dbapi_lookalike_is_a_warning():
    ns = notebook(
        """
        class Warehouse:
            def cursor(self):
                return None
            def commit(self):
                return None
        warehouse = Warehouse()
        def f():
            return warehouse.cursor()
        """
    )
    assert problems(ns["f"]) == ([], [("db_connection", "f → warehouse (__main__.Warehouse)")])


def test_standard_streams_and_memory_buffers_are_fine():
    import io
    import sys

    ns = notebook("def f():\n    return out, buf\n", out=sys.stdout, buf=io.BytesIO(b"x"))
    assert problems(ns["f"]) == ([], [])


# --- sizes (api.analyze pickles each capture into a byte counter) -----------------------------------


def test_each_capture_gets_its_pickled_size():
    blob = bytes(3000)
    ns = notebook("def f():\n    return len(blob), table\n", blob=blob, table={"a": [1, 2, 3]})
    report = api.analyze(ns["f"])
    sizes = {c.name: (c.size, c.size_status) for c in report.captured}
    assert sizes == {
        "blob": (len(cloudpickle.dumps(blob)), "measured"),
        "table": (len(cloudpickle.dumps({"a": [1, 2, 3]})), "measured"),
    }
    assert report.errors == [] and report.warnings == []


def test_warning_and_error_thresholds():
    ns = notebook("def f():\n    return big, small\n", big=bytes(2_000_000), small=bytes(600_000))
    report = api.analyze(ns["f"], size_warning="500kB", size_limit="1.5MB")
    big, small = sorted(report.captured, key=lambda c: c.name)
    assert (big.name, big.size_status) == ("big", "over_limit") and big.size > 1_500_000
    assert (small.name, small.size_status) == ("small", "measured")
    assert [(e.code, e.path) for e in report.errors] == [("capture_too_large", "f → big")]
    assert [(w.code, w.path) for w in report.warnings] == [("capture_large", "f → small")]
    assert "600.0 kB" in report.warnings[0].message


def test_thresholds_from_the_environment(monkeypatch):
    monkeypatch.setenv("JUPYTERLAB_PUBLISH_SIZE_WARNING", "1kB")
    monkeypatch.setenv("JUPYTERLAB_PUBLISH_SIZE_LIMIT", "1MiB")
    assert size_thresholds() == size_thresholds(1000, 2**20)
    ns = notebook("def f():\n    return blob\n", blob=bytes(5000))
    assert [w.code for w in api.analyze(ns["f"]).warnings] == ["capture_large"]
    assert api.analyze(ns["f"], size_warning=10_000).warnings == []  # an argument wins


@pytest.mark.parametrize("setting, value", [("WARNING", "lots"), ("LIMIT", "-5"), ("SECONDS", "soon")])
def test_bad_threshold_settings_are_refused(monkeypatch, setting, value):
    monkeypatch.setenv(f"JUPYTERLAB_PUBLISH_SIZE_{setting}", value)
    with pytest.raises(PublishError) as info:
        size_thresholds()
    assert info.value.code == "bad_request" and f"JUPYTERLAB_PUBLISH_SIZE_{setting}" in info.value.message


def test_warning_above_limit_and_unit_parsing():
    with pytest.raises(PublishError, match="above the size limit"):
        size_thresholds("2GB", "1GB")
    assert [parse_size(t, "x") for t in ("12", "1.5 MB", "2GiB", "3k")] == [12, 1_500_000, 2 * 2**30, 3000]


def test_sizing_stops_at_its_time_budget(monkeypatch):
    monkeypatch.setenv("JUPYTERLAB_PUBLISH_SIZE_SECONDS", "1e-9")  # over before the first capture
    ns = notebook("def f():\n    return blob\n", blob=bytes(10))
    report = api.analyze(ns["f"])
    assert [(c.size, c.size_status) for c in report.captured] == [(None, "timed_out")]
    assert [w.code for w in report.warnings] == ["size_unmeasured"]


def test_known_unpicklable_captures_are_not_sized_again():
    ns = notebook("def f():\n    return guard, n\n", guard=threading.Lock(), n=[1])
    report = api.analyze(ns["f"])
    assert {c.name: c.size_status for c in report.captured} == {"guard": "failed", "n": "measured"}
    assert [e.code for e in report.errors] == ["unpicklable_lock"]


def test_a_capture_that_fails_to_pickle_for_another_reason_becomes_an_error():
    class Refuses:
        def __reduce__(self):
            raise RuntimeError("no copies")

    ns = notebook("def f():\n    return thing\n", thing=Refuses())
    report = api.analyze(ns["f"])
    (error,) = report.errors
    assert error.code == "unpicklable" and "RuntimeError: no copies" in error.message and error.path == "f → thing"


def test_the_kernel_reply_carries_errors_sizes_and_the_new_fields():
    connection = sqlite3.connect(":memory:")
    try:
        namespace = notebook("def predictor(x):\n    return db, weights\n", db=connection, weights=[0.5] * 10)
        reply = handlers.analyze({"function": "predictor", "size_warning": 10}, namespace)
    finally:
        connection.close()
    assert json.loads(json.dumps(reply)) == reply
    assert [e["path"] for e in reply["errors"]] == ["predictor → db (sqlite3.Connection)"]
    assert {c["name"]: c["size_status"] for c in reply["captured"]} == {"db": "failed", "weights": "measured"}
    assert [w["code"] for w in reply["warnings"]] == ["capture_large"]
    assert {"hints", "lock", "preload_modules"} <= set(reply)


def test_the_kernel_reply_has_the_shape_of_the_shared_fixture(protocol_fixtures):
    """The analyze result in protocol/fixtures/messages.json (which jest feeds to the dialog's model)
    has exactly the fields the kernel sends, at every level."""
    (fixture,) = [m["result"] for m in protocol_fixtures["replies"]["valid"] if m.get("id") == "r2"]
    connection = sqlite3.connect(":memory:")
    try:
        namespace = notebook(
            "import pandas as pd\ndef predictor(x):\n    return pd.read_parquet(x), helpers, table\n",
            helpers={"db": connection}, table=[1.0] * 10,
        )
        reply = handlers.analyze({"function": "predictor", "size_warning": 10}, namespace)
    finally:
        connection.close()
    assert set(reply) == set(fixture)
    for field in ("requirements", "captured", "warnings", "errors", "lock"):
        assert reply[field] and {frozenset(item) for item in reply[field]} == {frozenset(fixture[field][0])}, field
    assert set(fixture["hints"][0]) == {"distribution", "version", "reason", "module"}
