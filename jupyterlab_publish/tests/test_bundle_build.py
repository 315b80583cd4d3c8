"""build_bundle and read_bundle: what a bundle holds, how it is verified, and how builds fail."""

import hashlib
import json
import shutil
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import cloudpickle
import pytest

from jupyterlab_publish.bundle import Bundle, build_bundle, read_bundle
from jupyterlab_publish.state.atomic import atomic_directory
from jupyterlab_publish.errors import PublishError
from jupyterlab_publish.runtime import service


def notebook(source, **names):
    """Run ``source`` the way a notebook cell runs: in a namespace called __main__."""
    ns = {"__name__": "__main__", **names}
    exec(textwrap.dedent(source), ns)
    return ns


SCALER = """
    factor = {"value": 3}

    def scale(values, offset=0):
        '''Multiply each value and add an offset.'''
        return [v * factor["value"] + offset for v in values]

    def positive(values, offset=0):
        if any(v < 0 for v in values):
            raise ValueError("values must be positive")
"""


@pytest.fixture
def scaler():
    return notebook(SCALER)


def files_under(path: Path) -> list:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def test_build_writes_a_bundle_that_reads_back_verified(tmp_path, scaler):
    bundle = build_bundle(
        scaler["scale"],
        tmp_path / "scale-v1",
        name="scale",
        requirements=[{"name": "numpy", "version": "2.0.1", "why": "scale → numpy"}],
        validator=scaler["positive"],
        sample=[[1, 2]],
        provenance={"notebook": "analysis.ipynb", "cell_id": "c-42"},
    )
    assert isinstance(bundle, Bundle) and bundle.name == "scale"
    assert files_under(bundle.path) == sorted(
        ["manifest.json", "function.pkl", "validator.pkl", "requirements.txt", "requirements.lock", *service.RUNTIME_FILES]
    )
    manifest = json.loads((bundle.path / "manifest.json").read_text())
    assert manifest == bundle.manifest
    assert manifest["format"] == "jupyterlab-publish-bundle" and manifest["format_version"] == 1
    assert manifest["function"] == {
        "name": "scale",
        "qualname": "scale",
        "signature": "(values, offset=0)",
        "doc": "Multiply each value and add an offset.",
    }
    assert manifest["validator"] == {"name": "positive"}
    assert manifest["python"]["minor"] == "{}.{}".format(*sys.version_info[:2])
    assert manifest["python"]["implementation"] == sys.implementation.name
    assert manifest["cloudpickle"] == cloudpickle.__version__
    assert manifest["requirements"] == [
        {"name": "numpy", "version": "2.0.1", "why": "scale → numpy", "requirement": "numpy==2.0.1"}
    ]
    assert manifest["runtime_requirements"][0] == f"cloudpickle=={cloudpickle.__version__}"
    assert manifest["sample"] == [[1, 2]] and manifest["sample_output"] == [3, 6]
    assert manifest["entrypoint"] == "service.py"
    assert manifest["created"].endswith("Z")
    provenance = manifest["provenance"]
    assert provenance["notebook"] == "analysis.ipynb" and provenance["cell_id"] == "c-42"
    # exec()'d code has no source file, so the hash falls back to the bytecode.
    expected = hashlib.sha256(scaler["scale"].__code__.co_code).hexdigest()
    assert provenance["source_hash"] == f"sha256:{expected}"
    assert provenance["package_version"] == "0.1.0"
    for name, digest in manifest["files"].items():
        assert hashlib.sha256((bundle.path / name).read_bytes()).hexdigest() == digest
    # The runtime travels verbatim.
    assert (bundle.path / "service.py").read_bytes() == Path(service.__file__).read_bytes()

    again = read_bundle(bundle.path)
    assert again.manifest == manifest and again.path == bundle.path
    assert again.requirements_txt == (bundle.path / "requirements.txt").read_text()


def test_notebook_functions_travel_by_value_to_a_fresh_process(tmp_path, scaler):
    bundle = build_bundle(scaler["scale"], tmp_path / "b", name="scale")
    # A separate interpreter has no notebook namespace: the pickle must carry code and globals.
    script = "import cloudpickle, sys; fn = cloudpickle.loads(open(sys.argv[1], 'rb').read()); print(fn([1], offset=1))"
    out = subprocess.run(
        [sys.executable, "-c", script, str(bundle.path / "function.pkl")],
        capture_output=True, text=True, timeout=60, check=True,
    )
    assert out.stdout.strip() == "[4]"


def test_local_modules_are_pickled_by_value_then_unregistered(tmp_path, monkeypatch):
    modules = tmp_path / "src"
    modules.mkdir()
    (modules / "jp_local_helpers.py").write_text("def double(x):\n    return 2 * x\n")
    monkeypatch.syspath_prepend(str(modules))
    ns = notebook(
        """
        import jp_local_helpers
        def twice(x):
            return jp_local_helpers.double(x)
        """
    )
    try:
        bundle = build_bundle(ns["twice"], tmp_path / "b", name="twice", local_modules=["jp_local_helpers"])
        assert bundle.manifest["local_modules"] == ["jp_local_helpers"]
        assert "jp_local_helpers" not in cloudpickle.list_registry_pickle_by_value()
        # The module's directory is not on this interpreter's path: only the pickle has its code.
        script = "import cloudpickle, sys; print(cloudpickle.loads(open(sys.argv[1], 'rb').read())(21))"
        out = subprocess.run(
            [sys.executable, "-c", script, str(bundle.path / "function.pkl")],
            capture_output=True, text=True, timeout=60, cwd=tmp_path,
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "42"
    finally:
        sys.modules.pop("jp_local_helpers", None)


def test_unknown_local_module_is_a_bad_request(tmp_path, scaler):
    with pytest.raises(PublishError) as caught:
        build_bundle(scaler["scale"], tmp_path / "b", name="scale", local_modules=["no_such_module_xyz"])
    assert caught.value.code == "bad_request" and "no_such_module_xyz" in caught.value.message
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize(
    "damage, named",
    [
        (lambda p: (p / "function.pkl").write_bytes(b"not the pickle"), "function.pkl"),
        (lambda p: (p / "requirements.txt").write_text("evil==1.0\n"), "requirements.txt"),
        (lambda p: (p / "service.py").unlink(), "service.py"),
        (lambda p: (p / "notes.txt").write_text("hello"), "notes.txt"),
        (lambda p: (p / "__pycache__").mkdir(), "__pycache__"),
    ],
)
def test_tampered_bundles_are_rejected_naming_the_file(tmp_path, scaler, damage, named):
    bundle = build_bundle(scaler["scale"], tmp_path / "b", name="scale")
    damage(bundle.path)
    with pytest.raises(PublishError) as caught:
        read_bundle(bundle.path)
    assert caught.value.code == "invalid_bundle"
    assert named in caught.value.message
    assert caught.value.hint


def test_a_manifest_cannot_point_outside_the_bundle(tmp_path, scaler):
    bundle = build_bundle(scaler["scale"], tmp_path / "b", name="scale")
    manifest = dict(bundle.manifest)
    manifest["files"] = {**manifest["files"], "../secret": "0" * 64}
    (bundle.path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(PublishError) as caught:
        read_bundle(bundle.path)
    assert caught.value.code == "invalid_bundle" and "../secret" in caught.value.message


@pytest.mark.parametrize("content", ["", "{not json", json.dumps({"format": "something-else"})])
def test_a_broken_manifest_is_rejected(tmp_path, scaler, content):
    bundle = build_bundle(scaler["scale"], tmp_path / "b", name="scale")
    (bundle.path / "manifest.json").write_text(content)
    with pytest.raises(PublishError) as caught:
        read_bundle(bundle.path)
    assert caught.value.code == "invalid_bundle" and "manifest.json" in caught.value.message


def test_reading_something_that_is_not_a_bundle(tmp_path):
    with pytest.raises(PublishError) as caught:
        read_bundle(tmp_path / "missing")
    assert caught.value.code == "invalid_bundle"
    with pytest.raises(PublishError) as caught:
        read_bundle(tmp_path)
    assert caught.value.code == "invalid_bundle" and "manifest.json" in caught.value.message


def test_unpicklable_capture_fails_atomically_and_names_the_path(tmp_path):
    ns = notebook(
        """
        helpers = {"scale": 2, "lock": threading.Lock()}
        def predictor(x):
            with helpers["lock"]:
                return x * helpers["scale"]
        """,
        threading=threading,
    )
    dest = tmp_path / "deep" / "er" / "predictor"
    with pytest.raises(PublishError) as caught:
        build_bundle(ns["predictor"], dest, name="predictor")
    error = caught.value
    assert error.code == "unpicklable"
    assert "predictor → helpers['lock']" in error.message
    assert "_thread.lock" in error.message
    assert "lock" in error.hint.lower()
    assert error.details["problems"][0]["path"] == "predictor → helpers['lock']"
    assert list(tmp_path.iterdir()) == []  # not even the parent directories remain


def test_unpicklable_validator_is_reported_too(tmp_path, scaler):
    ns = notebook(
        """
        guard = threading.Lock()
        def check(values, offset=0):
            with guard:
                return True
        """,
        threading=threading,
    )
    with pytest.raises(PublishError) as caught:
        build_bundle(scaler["scale"], tmp_path / "b", name="scale", validator=ns["check"])
    assert caught.value.code == "unpicklable" and "check → guard" in caught.value.message
    assert list(tmp_path.iterdir()) == []


def test_provenance_must_be_json(tmp_path, scaler):
    with pytest.raises(PublishError) as caught:
        build_bundle(scaler["scale"], tmp_path / "b", name="scale", provenance={"notebook": object()})
    assert caught.value.code == "bad_request"
    assert list(tmp_path.iterdir()) == []


def test_a_failure_while_writing_leaves_nothing(tmp_path):
    dest = tmp_path / "new" / "bundle"
    with pytest.raises(OSError):
        with atomic_directory(dest) as tmp:
            assert tmp.parent == dest.parent and tmp.name.startswith(".bundle.")
            (tmp / "function.pkl").write_bytes(b"half")
            raise OSError("disk full")
    assert list(tmp_path.iterdir()) == []

    with atomic_directory(dest) as tmp:
        (tmp / "a").write_bytes(b"x")
    assert sorted(p.name for p in dest.parent.iterdir()) == ["bundle"]
    assert (dest / "a").read_bytes() == b"x"


def test_the_destination_must_not_exist(tmp_path, scaler):
    (tmp_path / "b").mkdir()
    with pytest.raises(PublishError) as caught:
        build_bundle(scaler["scale"], tmp_path / "b", name="scale")
    assert caught.value.code == "bad_request" and "exists" in caught.value.message
    assert list((tmp_path / "b").iterdir()) == []


def test_sample_by_keyword_and_converted_output(tmp_path):
    ns = notebook(
        """
        import numpy as np
        def stats(values, scale=1.0):
            arr = np.asarray(values) * scale
            return {"mean": arr.mean(), "values": arr}
        """
    )
    bundle = build_bundle(ns["stats"], tmp_path / "b", name="stats", sample={"values": [1, 2, 3], "scale": 2})
    assert bundle.manifest["sample"] == {"values": [1, 2, 3], "scale": 2}
    assert bundle.manifest["sample_output"] == {"mean": 4.0, "values": [2.0, 4.0, 6.0]}


def test_sample_that_raises_is_sample_failed(tmp_path, scaler):
    with pytest.raises(PublishError) as caught:
        build_bundle(scaler["scale"], tmp_path / "b", name="scale", sample=[["a", None]])
    error = caught.value
    assert error.code == "sample_failed"
    assert "TypeError" in error.message and "scale" in error.message
    assert "Traceback" in error.details["traceback"]
    assert not (tmp_path / "b").exists()


def test_sample_answer_without_json_form_is_sample_failed(tmp_path):
    ns = notebook("def opaque(x):\n    return object()\n")
    with pytest.raises(PublishError) as caught:
        build_bundle(ns["opaque"], tmp_path / "b", name="opaque", sample=[1])
    assert caught.value.code == "sample_failed" and "object" in caught.value.message


@pytest.mark.parametrize(
    "sample, says",
    [
        ([[1], 2, 3], "do not match scale(values, offset=0)"),  # too many positional arguments
        ({"value": [1]}, "do not match"),  # unknown keyword
        (5, "JSON array or object"),  # neither positional nor keyword arguments
        ([object()], "not JSON"),  # cannot be sent by a client at all
    ],
)
def test_sample_that_does_not_fit_is_invalid_sample(tmp_path, scaler, sample, says):
    with pytest.raises(PublishError) as caught:
        build_bundle(scaler["scale"], tmp_path / "b", name="scale", sample=sample)
    assert caught.value.code == "invalid_sample"
    assert says in caught.value.message
    assert not (tmp_path / "b").exists()


def test_validator_rejecting_the_sample_is_invalid_sample(tmp_path, scaler):
    with pytest.raises(PublishError) as caught:
        build_bundle(scaler["scale"], tmp_path / "b", name="scale", validator=scaler["positive"], sample=[[-1]])
    assert caught.value.code == "invalid_sample"
    assert caught.value.message == "the validator rejects the sample input: values must be positive"

    ns = notebook("def never(values, offset=0):\n    return False\n")
    with pytest.raises(PublishError) as caught:
        build_bundle(scaler["scale"], tmp_path / "c", name="scale", validator=ns["never"], sample=[[1]])
    assert caught.value.code == "invalid_sample"
    assert "the validator rejects the sample input" in caught.value.message
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["", "1st", "has space", "slash/name", "Upper", "under_score", "x" * 64, None])
def test_invalid_endpoint_names(tmp_path, scaler, name):
    with pytest.raises(PublishError) as caught:
        build_bundle(scaler["scale"], tmp_path / "b", name=name)
    assert caught.value.code == "invalid_name"


def test_not_callable(tmp_path):
    with pytest.raises(PublishError) as caught:
        build_bundle(42, tmp_path / "b", name="answer")
    assert caught.value.code == "not_callable"


def test_source_hash_prefers_the_source(tmp_path, monkeypatch):
    (tmp_path / "jp_sourced.py").write_text("def f(x):\n    return x + 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import jp_sourced

    try:
        bundle = build_bundle(jp_sourced.f, tmp_path / "b", name="f")
    finally:
        sys.modules.pop("jp_sourced", None)
    digest = hashlib.sha256(b"def f(x):\n    return x + 1\n").hexdigest()
    assert bundle.manifest["provenance"]["source_hash"] == f"sha256:{digest}"


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_git_commit_of_the_notebooks_directory(tmp_path, scaler):
    repo = tmp_path / "project"
    repo.mkdir()
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", "-c", "commit.gpgsign=false"]
    subprocess.run([*git, "init", "-q"], cwd=repo, check=True, timeout=30)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "start"], cwd=repo, check=True, timeout=30)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True).stdout
    notebook_path = repo / "analysis.ipynb"
    bundle = build_bundle(scaler["scale"], tmp_path / "b", name="scale", provenance={"notebook": str(notebook_path)})
    assert bundle.manifest["provenance"]["git_commit"] == head.strip()
