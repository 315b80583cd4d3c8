"""find_unpicklable: naming the exact capture that cloudpickle cannot serialise."""

import io
import socket
import sqlite3
import textwrap
import threading

from jupyterlab_publish.bundle import find_unpicklable


def notebook(source, **names):
    ns = {"__name__": "__main__", **names}
    exec(textwrap.dedent(source), ns)
    return ns


def only(problems):
    assert len(problems) == 1, problems
    return problems[0]


def test_a_picklable_function_has_no_problems():
    ns = notebook("import math\nscale = {'k': 2}\ndef f(x, y=3):\n    return math.sqrt(x) * scale['k'] + y\n")
    assert find_unpicklable(ns["f"]) == []


def test_a_lock_inside_a_dict_global():
    ns = notebook(
        "helpers = {'scale': 2, 'lock': threading.Lock()}\ndef predictor(x):\n    return helpers['scale'] * x\n",
        threading=threading,
    )
    problem = only(find_unpicklable(ns["predictor"]))
    assert problem["path"] == "predictor → helpers['lock']"
    assert problem["type"] == "_thread.lock"
    assert "cannot pickle" in problem["error"]
    assert "lock" in problem["hint"].lower()


def test_a_database_connection_in_a_closure():
    ns = notebook(
        """
        def make(conn):
            def query(sql):
                return conn.execute(sql).fetchall()
            return query
        """
    )
    conn = sqlite3.connect(":memory:")
    try:
        problem = only(find_unpicklable(ns["make"](conn)))
    finally:
        conn.close()
    assert problem["path"] == "query → conn"
    assert problem["type"] == "sqlite3.Connection"
    assert "connect inside the function" in problem["hint"]


def test_an_open_file_as_a_default(tmp_path):
    ns = notebook("def log(msg, out=None):\n    out.write(msg)\n")
    with open(tmp_path / "log.txt", "w") as handle:
        ns["log"].__defaults__ = (handle,)
        problem = only(find_unpicklable(ns["log"]))
    assert problem["path"] == "log → default of out"
    assert problem["type"] == "_io.TextIOWrapper"
    assert "open it inside the function" in problem["hint"]


def test_a_keyword_only_default():
    ns = notebook("def f(x, *, lock=None):\n    return x\n")
    ns["f"].__kwdefaults__ = {"lock": threading.RLock()}
    problem = only(find_unpicklable(ns["f"]))
    assert problem["path"] == "f → default of lock" and "RLock" in problem["type"]


def test_through_a_helper_function_and_an_instance_attribute():
    ns = notebook(
        """
        class Client:
            def __init__(self):
                self.name = "api"
                self.sock = socket.socket()

        client = Client()

        def helper(x):
            return client.name, x

        def predictor(x):
            return helper(x)
        """,
        socket=socket,
    )
    try:
        problem = only(find_unpicklable(ns["predictor"]))
    finally:
        ns["client"].sock.close()
    assert problem["path"] == "predictor → helper → client.sock"
    assert problem["type"] == "socket.socket"
    assert "socket" in problem["hint"]


def test_a_generator_in_a_list_and_names_used_only_in_nested_code():
    ns = notebook(
        """
        stream = [1, (i for i in range(3))]
        def f(xs):
            return [stream[0] * x for x in xs]
        """
    )
    problem = only(find_unpicklable(ns["f"]))
    assert problem["path"] == "f → stream[1]"
    assert problem["type"] == "generator"
    assert "list(" in problem["hint"]


def test_every_failing_capture_is_listed_once():
    lock = threading.Lock()
    ns = notebook(
        "a = {'x': lock}\nb = (lock, io.BytesIO(), (i for i in ()))\ndef f():\n    return a, b\n",
        lock=lock,
        io=io,
    )
    paths = [p["path"] for p in find_unpicklable(ns["f"])]
    # The same lock is reached twice but reported once, under the first path; the BytesIO pickles.
    assert paths == ["f → a['x']", "f → b[2]"]


def test_an_unknown_type_gets_the_generic_hint():
    ns = notebook(
        """
        class Opaque:
            def __reduce__(self):
                raise TypeError("no pickling for Opaque")
        thing = Opaque()
        def f():
            return thing
        """
    )
    problem = only(find_unpicklable(ns["f"]))
    assert problem["path"] == "f → thing" and problem["type"] == "__main__.Opaque"
    assert "no pickling for Opaque" in problem["error"]
    assert "inside the function" in problem["hint"]


def test_cycles_do_not_loop():
    ns = notebook("box = {}\ndef f():\n    return box\n")
    ns["box"]["self"] = ns["box"]
    ns["box"]["lock"] = threading.Lock()
    problem = only(find_unpicklable(ns["f"]))
    assert problem["path"] == "f → box['lock']"
