"""publish() refuses up front what the analysis reports as errors, and pickles over the size limit.

Each refusal must name the captured value, carry the fix, and leave nothing behind: no bundle in a
temporary directory and nothing on the target.
"""

from __future__ import annotations

import tempfile
import textwrap
import threading

import nbformat
import pytest

import jupyterlab_publish
from jupyterlab_publish.cli import main
from jupyterlab_publish.errors import PublishError


def notebook(source, **names):
    """Run ``source`` the way a notebook cell runs: in a namespace called __main__."""
    namespace = {"__name__": "__main__", **names}
    exec(textwrap.dedent(source), namespace)
    return namespace


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    """A private temporary directory for publish()'s bundle, to prove none is left behind."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    return tmp


def refused(fn, target, **options):
    """Publish ``fn`` to ``target`` (a directory), expecting a refusal; return it and the stages seen."""
    stages = []
    with pytest.raises(PublishError) as caught:
        jupyterlab_publish.publish(fn, target=f"dir:{target}", requirements=[],
                                   progress=lambda stage, *_: stages.append(stage), **options)
    assert not target.exists() or list(target.iterdir()) == []  # nothing pushed
    return caught.value, stages


def test_a_captured_lock_is_refused_before_pickling(tmp_path, scratch):
    ns = notebook(
        """
        lock = threading.Lock()
        def predictor(x):
            with lock:
                return x
        """,
        threading=threading,
    )
    error, stages = refused(ns["predictor"], tmp_path / "out")
    assert error.code == "unpicklable"
    assert "predictor → lock (_thread.lock)" in error.message
    assert "create the lock inside the function" in error.hint
    assert "run it again, and publish again" in error.hint
    assert error.details["errors"] == [
        {"code": "unpicklable_lock", "message": error.details["errors"][0]["message"],
         "hint": error.details["errors"][0]["hint"], "path": "predictor → lock (_thread.lock)"}
    ]
    assert stages == ["analysing"]  # not pickled, not bundled
    assert list(scratch.iterdir()) == []


def test_a_captured_open_file_is_refused_with_its_path(tmp_path, scratch):
    data = tmp_path / "data.bin"
    data.write_bytes(b"\x00\x01")
    with open(data, "rb") as handle:
        ns = notebook("def reader():\n    return handle.read()\n", handle=handle)
        error, stages = refused(ns["reader"], tmp_path / "out")
    assert error.code == "unpicklable"
    assert "reader → handle (_io.BufferedReader) is an open file" in error.message
    assert "open it inside the function" in error.hint
    assert [e["code"] for e in error.details["errors"]] == ["unpicklable_file"]
    assert stages == ["analysing"] and list(scratch.iterdir()) == []


def test_a_captured_text_file_open_for_reading_is_refused_with_the_file_path(tmp_path, scratch):
    # cloudpickle would ship what is left to read: the service would answer differently (issue 11).
    data = tmp_path / "words.txt"
    data.write_text("alpha\nbeta\n")
    with open(data) as words:
        ns = notebook("def first():\n    return words.readline()\n", words=words)
        error, stages = refused(ns["first"], tmp_path / "out")
    assert error.code == "unpicklable"
    assert f"first → words (_io.TextIOWrapper) is an open text file ({data})" in error.message
    assert "Read the contents into a variable before publishing" in error.hint
    assert [e["code"] for e in error.details["errors"]] == ["file_snapshot"]
    assert stages == ["analysing"] and list(scratch.iterdir()) == []


def test_undefined_globals_are_refused_with_their_names(tmp_path, scratch):
    # After a kernel restart only the function's cell ran: `model` and `scale` do not exist.
    ns = notebook("def predict(x):\n    return model.predict(scale(x))\n")
    error, stages = refused(ns["predict"], tmp_path / "out")
    assert error.code == "not_defined"
    assert "it uses model, scale, not defined in the kernel" in error.message
    assert "Run the cell that defines model, scale" in error.hint
    assert error.details["names"] == ["model", "scale"]
    assert stages == ["analysing"] and list(scratch.iterdir()) == []


def test_every_error_is_listed_and_each_hint_given_once(tmp_path, scratch):
    ns = notebook(
        """
        read_lock, write_lock = threading.Lock(), threading.RLock()
        def store(x):
            with read_lock, write_lock:
                return x
        def check(x):
            with guard:
                return True
        """,
        threading=threading,
        guard=threading.Lock(),
    )
    error, _ = refused(ns["store"], tmp_path / "out", validator=ns["check"])
    assert "3 captured values will not work" in error.message
    for path in ("store → read_lock (_thread.lock)", "store → write_lock (_thread.RLock)", "check → guard"):
        assert path in error.message
    assert error.hint.count("Locks and threads belong to one process") == 1
    assert len(error.details["errors"]) == 3


def test_a_pickle_over_the_size_limit_is_refused_before_pushing(tmp_path, scratch, monkeypatch):
    monkeypatch.setenv("JUPYTERLAB_PUBLISH_SIZE_WARNING", "100kB")
    monkeypatch.setenv("JUPYTERLAB_PUBLISH_SIZE_LIMIT", "1MB")
    ns = notebook("def weigh():\n    return len(blob)\n", blob=bytes(2_000_000))
    error, stages = refused(ns["weigh"], tmp_path / "out", preflight=False)
    assert error.code == "unpicklable"
    assert "over the size limit of 1.0 MB" in error.message and "JUPYTERLAB_PUBLISH_SIZE_LIMIT" in error.hint
    assert error.details["size"] > 2_000_000 and error.details["limit"] == 1_000_000
    assert "pushing" not in stages and list(scratch.iterdir()) == []

    # Under a limit it fits, the same function publishes: the refusal was the size, nothing else.
    monkeypatch.setenv("JUPYTERLAB_PUBLISH_SIZE_LIMIT", "3MB")
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "jupyter-data"))  # the signing key lands here
    deployment = jupyterlab_publish.publish(ns["weigh"], target=f"dir:{tmp_path / 'out'}", requirements=[],
                                            preflight=False)
    assert deployment.version == 1 and (tmp_path / "out" / "weigh" / "v1").is_dir()


def test_the_cli_prints_the_list_and_the_hint(tmp_path, capsys):
    # Runs a real kernel (a few seconds): the path the README documents for publishing without a browser.
    path = tmp_path / "locked.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        "import threading\nlock = threading.Lock()\ndef predictor(x):\n    with lock:\n        return x\n"
    )]
    nbformat.write(nb, str(path))
    assert main(["notebook", str(path), "--function", "predictor", "--target", f"dir:{tmp_path / 'out'}"]) == 1
    err = capsys.readouterr().err
    assert "error: Cannot publish predictor: a captured value will not work once published:" in err
    assert "\n  - predictor → lock (_thread.lock) is a lock or thread" in err
    assert "\nhint: Locks and threads belong to one process" in err
    assert not (tmp_path / "out").exists()
