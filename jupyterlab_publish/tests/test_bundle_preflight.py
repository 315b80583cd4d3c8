"""The pre-flight check: real bundles run by a real ``python -I -S`` child against linked copies of
the distributions installed in this environment (numpy, scikit-learn, pandas) — no mocks."""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

import jupyterlab_publish
from jupyterlab_publish.bundle import build_bundle
from jupyterlab_publish.bundle.clean_site import distribution_closure, link_site
from jupyterlab_publish.bundle.preflight import first_difference, preflight
from jupyterlab_publish.errors import PublishError
from jupyterlab_publish.frontier import invalidate_caches
from jupyterlab_publish.kernel import protocol
from jupyterlab_publish.kernel.channel import Channel
from jupyterlab_publish.requirement import Requirement


def notebook(source, **names):
    """Run ``source`` the way a notebook cell runs: in a namespace called __main__."""
    namespace = {"__name__": "__main__", **names}
    exec(textwrap.dedent(source), namespace)
    return namespace


def pinned(*names):
    return [{"name": n, "version": importlib.metadata.version(n), "why": "test"} for n in names]


def bundle_of(tmp_path, fn, requirements=(), sample=None, validator=None, name="fn"):
    return build_bundle(fn, tmp_path / name, name=name, requirements=list(requirements),
                        sample=sample, validator=validator)


KMEANS = """
    import numpy as np
    from sklearn.cluster import KMeans

    points = np.random.default_rng(0).random((200, 2))
    kmodel = KMeans(n_clusters=3, n_init=3, random_state=0).fit(points)

    def predictor(x):
        return {"cluster": int(kmodel.predict(np.asarray([x]))[0]), "centres": kmodel.cluster_centers_}
"""

PANDAS = """
    import pandas as pd

    def summarise(values):
        return pd.Series(values).describe().to_dict()

    def summarise_lazily(values):
        import pandas
        return pandas.Series(values).describe().to_dict()
"""


@pytest.fixture(scope="module")
def kmeans_bundle(tmp_path_factory):
    ns = notebook(KMEANS)
    return bundle_of(tmp_path_factory.mktemp("kmeans"), ns["predictor"], pinned("numpy", "scikit-learn"),
                     sample=[[0.5, 0.5]])


def test_numpy_and_scikit_learn_function_passes(kmeans_bundle):
    result = preflight(kmeans_bundle)
    held = {entry.split()[0] for entry in result.distributions}
    # the declared ones, their dependencies from metadata, and the runtime's cloudpickle; not pandas
    assert {"numpy", "scikit-learn", "scipy", "joblib", "threadpoolctl", "cloudpickle"} <= held
    assert "pandas" not in held
    assert result.checked_sample is True
    assert kmeans_bundle.manifest["sample_output"]["centres"]  # a float matrix was compared
    assert (kmeans_bundle.path / "function.pkl").is_file()  # the bundle is untouched


def test_undeclared_distribution_is_named_with_its_installed_version(tmp_path):
    ns = notebook(PANDAS)
    bundle = bundle_of(tmp_path, ns["summarise"], pinned("numpy"), sample=[[1, 2, 3]])
    with pytest.raises(PublishError) as info:
        preflight(bundle)
    err = info.value
    pandas_version = importlib.metadata.version("pandas")
    assert err.code == "missing_requirement"
    assert err.details["module"] == "pandas"
    assert (err.details["distribution"], err.details["version"]) == ("pandas", pandas_version)
    assert err.details["requirements"] == [f"numpy=={importlib.metadata.version('numpy')}", f"pandas=={pandas_version}"]
    assert f"pandas {pandas_version}" in err.message and "add it" in err.message
    assert f"pandas=={pandas_version}" in err.hint
    assert "No module named 'pandas'" in err.details["log"]
    protocol.check_reply(protocol.error("r1", err))  # the front end gets it as a valid message


def test_import_inside_the_function_is_caught_when_it_is_called(tmp_path):
    ns = notebook(PANDAS)
    bundle = bundle_of(tmp_path, ns["summarise_lazily"], sample=[[1, 2, 3]])
    with pytest.raises(PublishError) as info:
        preflight(bundle)
    assert info.value.code == "missing_requirement"
    assert info.value.details["distribution"] == "pandas"
    assert "summarise_lazily" in info.value.details["log"]  # raised by the call, not the unpickling


def test_module_no_distribution_provides_is_named(tmp_path, monkeypatch):
    (tmp_path / "pf_local_helper.py").write_text("def twice(x):\n    return 2 * x\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    ns = notebook("""
        def helped(x):
            import pf_local_helper  # a file beside the notebook, not shipped by value
            return pf_local_helper.twice(x)
    """)
    bundle = bundle_of(tmp_path, ns["helped"], [{"name": "pf-surely-not-installed", "version": "1.0"}], sample=[2])
    with pytest.raises(PublishError) as info:
        preflight(bundle)
    err = info.value
    assert err.code == "preflight_failed" and err.details["module"] == "pf_local_helper"
    assert "no installed distribution provides" in err.message
    assert "pf-surely-not-installed" in err.message and err.details["not_installed"] == ["pf-surely-not-installed"]


def test_declaring_the_distribution_fixes_it(tmp_path):
    ns = notebook(PANDAS)
    bundle = bundle_of(tmp_path, ns["summarise"], pinned("pandas"), sample=[[1, 2, 3]])
    result = preflight(bundle)
    held = {entry.split()[0] for entry in result.distributions}
    assert {"pandas", "numpy", "python-dateutil"} <= held  # dependencies come along


def test_answer_depending_on_an_environment_variable_differs(tmp_path, monkeypatch):
    monkeypatch.setenv("JUPYTERLAB_PUBLISH_PREFLIGHT_PROBE", "from-the-kernel")
    ns = notebook("""
        import os

        def mode(x):
            return {"x": x, "mode": os.environ.get("JUPYTERLAB_PUBLISH_PREFLIGHT_PROBE", "default")}
    """)
    bundle = bundle_of(tmp_path, ns["mode"], sample=[1])
    with pytest.raises(PublishError) as info:
        preflight(bundle)
    err = info.value
    assert err.code == "preflight_failed"
    assert "from-the-kernel" in err.message and "default" in err.message
    assert err.details["where"] == "result['mode']"
    assert err.details["expected"] == {"x": 1, "mode": "from-the-kernel"}
    assert err.details["actual"] == {"x": 1, "mode": "default"}


def test_file_only_in_the_kernels_directory_fails_with_the_traceback(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "threshold.txt").write_text("0.5")
    ns = notebook("""
        def above(x):
            with open("threshold.txt") as handle:
                return x > float(handle.read())
    """)
    bundle = bundle_of(tmp_path, ns["above"], sample=[0.7])
    with pytest.raises(PublishError) as info:
        preflight(bundle)
    err = info.value
    assert err.code == "preflight_failed"
    assert "FileNotFoundError" in err.message and "threshold.txt" in err.message
    assert "in above" in err.details["log"]  # the child's traceback tail names the function


def test_validator_that_rejects_in_the_clean_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("JUPYTERLAB_PUBLISH_PREFLIGHT_ALLOW", "1")
    ns = notebook("""
        import os

        def double(x):
            return 2 * x

        def allowed(x):
            if "JUPYTERLAB_PUBLISH_PREFLIGHT_ALLOW" not in os.environ:
                raise ValueError("not allowed here")
    """)
    bundle = bundle_of(tmp_path, ns["double"], sample=[2], validator=ns["allowed"])
    with pytest.raises(PublishError) as info:
        preflight(bundle)
    assert info.value.code == "preflight_failed"
    assert "validator" in info.value.message and "not allowed here" in info.value.message


def test_without_a_sample_the_function_is_still_unpickled(tmp_path):
    ns = notebook(PANDAS)
    ok = bundle_of(tmp_path, ns["summarise"], pinned("pandas"), name="declared")
    assert preflight(ok).checked_sample is False
    missing = bundle_of(tmp_path, ns["summarise"], name="undeclared")
    with pytest.raises(PublishError) as info:
        preflight(missing)
    assert info.value.code == "missing_requirement" and info.value.details["module"] == "pandas"


def test_vectorised_function_answers_its_one_item_as_the_service_does(tmp_path, monkeypatch):
    monkeypatch.setenv("JUPYTERLAB_PUBLISH_PREFLIGHT_PROBE", "3")
    ns = notebook("""
        import os

        def scale_all(xs):
            return [x * int(os.environ.get("JUPYTERLAB_PUBLISH_PREFLIGHT_PROBE", "2")) for x in xs]
    """)
    bundle = build_bundle(ns["scale_all"], tmp_path / "b", name="scale-all", sample=[7], batching=True)
    assert bundle.manifest["sample_output"] == 21
    with pytest.raises(PublishError) as info:
        preflight(bundle)  # the child calls scale_all([7]) and answers 14
    assert (info.value.details["expected"], info.value.details["actual"]) == (21, 14)


def test_timeout_stops_the_child_and_what_it_started(tmp_path, monkeypatch):
    monkeypatch.setenv("JUPYTERLAB_PUBLISH_PREFLIGHT_PROBE", "notebook")  # the child lacks it
    pid_file = tmp_path / "child.pid"
    ns = notebook(f"""
        import os, time

        def stuck(x):
            if "JUPYTERLAB_PUBLISH_PREFLIGHT_PROBE" not in os.environ:
                with open({str(pid_file)!r}, "w") as handle:
                    handle.write(str(os.getpid()))
                time.sleep(60)
            return x
    """)
    bundle = bundle_of(tmp_path, ns["stuck"], sample=[1])
    with pytest.raises(PublishError) as info:
        preflight(bundle, timeout=1.5)
    assert info.value.code == "preflight_failed" and "within 1.5 s" in info.value.message
    assert pid_file.exists()  # the child got as far as calling the function
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid_file.read_text()), 0)  # and it is gone


def test_cancel_stops_the_check(tmp_path, monkeypatch):
    monkeypatch.setenv("JUPYTERLAB_PUBLISH_PREFLIGHT_PROBE", "notebook")
    ns = notebook("""
        import os, time

        def slow(x):
            if "JUPYTERLAB_PUBLISH_PREFLIGHT_PROBE" not in os.environ:
                time.sleep(60)
            return x
    """)
    bundle = bundle_of(tmp_path, ns["slow"], sample=[1])
    cancel = threading.Event()
    threading.Timer(0.5, cancel.set).start()
    with pytest.raises(PublishError) as info:
        preflight(bundle, cancel=cancel)
    assert info.value.code == "cancelled"


def test_bundle_for_another_python_minor_is_refused_before_running(tmp_path):
    ns = notebook("def f(x):\n    return x\n")
    bundle = bundle_of(tmp_path, ns["f"], sample=[1])
    bundle.manifest["python"] = dict(bundle.manifest["python"], minor="3.99")
    with pytest.raises(PublishError) as info:
        preflight(bundle)
    assert info.value.code == "preflight_failed"
    assert "3.99" in info.value.message and "preflight=False" in info.value.hint


@pytest.mark.parametrize(
    "expected, actual, where",
    [
        ({"a": [1.0, 2.0]}, {"a": [1.0, 2.0 * (1 + 1e-12)]}, None),  # summation-order noise
        ({"a": [1.0, 2.0]}, {"a": [1.0, 2.001]}, "result['a'][1]"),
        (1, 1.0, None),
        (True, 1, "result"),
        ([1, 2], [1, 2, 3], "result (length 2 in the notebook, 3 in the clean environment)"),
        ({"a": 1}, {"a": 1, "b": 2}, "result['b'] (only in the clean environment)"),
        ({"a": 1}, {}, "result['a'] (missing in the clean environment)"),
        ("x", "x", None),
        (None, 0, "result"),
    ],
)
def test_answers_are_compared_exactly_but_for_float_noise(expected, actual, where):
    assert first_difference(expected, actual) == where


# ── The publish path ───────────────────────────────────────────────────────────────────────────


def test_publish_checks_before_pushing_and_can_skip_the_check(tmp_path):
    ns = notebook(PANDAS)
    target = tmp_path / "out"
    stages = []
    with pytest.raises(PublishError) as info:
        jupyterlab_publish.publish(ns["summarise"], target=f"dir:{target}", requirements=["numpy"],
                                   sample=[[1, 2, 3]], progress=lambda stage, *_: stages.append(stage))
    assert info.value.code == "missing_requirement"
    assert stages[-1] == "preflight" and "pushing" not in stages
    assert not target.exists() or not any(target.iterdir())  # nothing pushed

    skipped = jupyterlab_publish.publish(ns["summarise"], target=f"dir:{target}", requirements=["numpy"],
                                         sample=[[1, 2, 3]], preflight=False)
    assert skipped.version == 1


class RecordingComm:
    def __init__(self):
        self.sent, self.done = [], threading.Event()

    def send(self, data):
        protocol.check_reply(data)  # everything the kernel sends must be valid protocol
        self.sent.append(data)
        if data["type"] in ("result", "error"):
            self.done.set()


def test_channel_reports_the_stage_and_the_missing_requirement(tmp_path):
    comm, ns = RecordingComm(), notebook(PANDAS)
    channel = Channel(comm, lambda: ns)
    request = {"type": "request", "id": "p1", "method": "publish",
               "params": {"function": "summarise", "name": "summary", "target": f"dir:{tmp_path}",
                          "requirements": [{"name": "numpy", "version": ""}], "sample": [[1, 2]]}}
    channel.handle_message({"content": {"data": request}})
    assert comm.done.wait(60)
    reply = comm.sent[-1]
    assert reply["type"] == "error" and reply["error"]["code"] == "missing_requirement"
    assert reply["error"]["details"]["distribution"] == "pandas"
    stages = [m["stage"] for m in comm.sent if m["type"] == "progress"]
    assert stages[-1] == "preflight" and stages.index("preflight") > stages.index("bundling")


# ── The clean site itself ──────────────────────────────────────────────────────────────────────


def _dist_info(site, name, version, record=None, top_level=None, requires=()):
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    metadata += "".join(f"Requires-Dist: {r}\n" for r in requires)
    (info / "METADATA").write_text(metadata)
    if record is not None:
        (info / "RECORD").write_text("".join(f"{p},,\n" for p in [*record, f"{info.name}/METADATA", f"{info.name}/RECORD"]))
    if top_level is not None:
        (info / "top_level.txt").write_text("\n".join(top_level) + "\n")


def _write(path, text=""):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def fake_site(tmp_path, monkeypatch):
    """A site-packages of hand-made distributions: a shared namespace package, one without
    RECORD, an editable install, and dependencies with extras and markers."""
    site = tmp_path / "site-packages"
    _write(site / "pfns" / "alpha" / "__init__.py", "NAME = 'alpha'\n")
    _write(site / "pfns" / "beta" / "__init__.py", "NAME = 'beta'\n")
    _write(site / "pf_app" / "__init__.py", "import pfns.alpha, pf_legacy, pf_editable\n")
    _write(site / "pf_legacy.py", "LEGACY = True\n")
    _write(tmp_path / "src" / "pf_editable" / "__init__.py", "EDITABLE = True\n")
    _write(site / "_pf_editable.pth", str(tmp_path / "src") + "\n")
    _write(site / "pf_extra_only" / "__init__.py")
    _dist_info(site, "pfns-alpha", "1.0", record=["pfns/alpha/__init__.py"])
    _dist_info(site, "pfns-beta", "1.0", record=["pfns/beta/__init__.py"])
    _dist_info(site, "pf-legacy", "0.1", top_level=["pf_legacy"])
    _dist_info(site, "pf-editable", "0.2", record=["_pf_editable.pth"])
    _write(site / "pf_editable-0.2.dist-info" / "direct_url.json",  # PEP 610: how pip marks editables
           '{"url": "file:///src", "dir_info": {"editable": true}}')
    _dist_info(site, "pf-extra-only", "1.0", record=["pf_extra_only/__init__.py"])
    _dist_info(site, "pf-app", "2.0", record=["pf_app/__init__.py"], requires=[
        "pfns-alpha", "pf-legacy>=0.1", "pf-editable ; python_version >= '3.0'",
        "pf-extra-only ; extra == 'fancy'", "pf-not-installed ; python_version < '3.0'",
    ])
    monkeypatch.syspath_prepend(str(site))
    invalidate_caches()
    yield site
    invalidate_caches()


def requirements(*texts):
    return [Requirement.parse(text) for text in texts]


def _child_imports(paths, code):
    return subprocess.run([sys.executable, "-I", "-S", "-B", "-c", f"import sys; sys.path += {paths!r}\n{code}"],
                          capture_output=True, text=True, timeout=60)


def test_closure_follows_requirements_markers_and_extras(fake_site):
    closure = distribution_closure(requirements("pf-app", "pf-missing-here"))
    assert set(closure.entries) == {"pf-app", "pfns-alpha", "pf-legacy", "pf-editable"}
    assert closure.entries["pfns-alpha"].required_by == ["pf-app"]
    assert closure.not_installed == ["pf-missing-here"]
    assert "pf-extra-only" in distribution_closure(requirements("pf-app[fancy]")).entries


def test_linked_site_holds_only_the_closure(fake_site, tmp_path):
    dest = tmp_path / "linked"
    dest.mkdir()
    extra = link_site(distribution_closure(requirements("pf-app")), dest)
    paths = [str(dest), *extra]
    ok = _child_imports(paths, "import pf_app, pfns.alpha, pf_legacy, pf_editable\n"
                               "import importlib.metadata as m; print(m.version('pf-app'), m.version('pfns-alpha'))")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.split() == ["2.0", "1.0"]
    # the namespace root is shared with pfns-beta: a real directory holding only alpha's portion
    assert (dest / "pfns").is_dir() and not (dest / "pfns").is_symlink()
    assert sorted(p.name for p in (dest / "pfns").iterdir()) == ["alpha"]
    missing = _child_imports(paths, "import pfns.beta")
    assert "No module named 'pfns.beta'" in missing.stderr
    assert _child_imports(paths, "import pf_extra_only").returncode != 0
    shutil.rmtree(dest)  # removing the links leaves the distributions themselves alone
    assert (fake_site / "pfns" / "alpha" / "__init__.py").is_file()
    assert (fake_site / "pf_legacy.py").is_file()


@pytest.fixture
def tabulate_site(tmp_path, monkeypatch):
    """A working stand-in for tabulate (the engine of pandas' to_markdown), installed as a distribution."""
    from frontier_sites import make_site

    site = make_site(tmp_path, monkeypatch, "engine-site")
    site.module("tabulate/__init__.py", """
        __version__ = "0.9.0"

        def tabulate(data, headers=(), tablefmt="", showindex=True, **options):
            return " | ".join(str(column) for column in data.columns)
    """)
    site.dist("tabulate", "0.9.0", files=("tabulate/__init__.py",))
    invalidate_caches()
    yield site
    site.forget_imports()
    invalidate_caches()


def test_a_suggested_engine_missing_at_preflight_says_so_and_accepting_hints_publishes(tmp_path, tabulate_site):
    ns = notebook("""
        import pandas as pd

        def as_markdown(rows):
            return pd.DataFrame(rows).to_markdown()
    """)
    target = tmp_path / "out"
    with pytest.raises(PublishError) as info:
        jupyterlab_publish.publish(ns["as_markdown"], target=f"dir:{target}", sample=[[{"a": 1}]])
    assert info.value.code == "missing_requirement"
    assert info.value.details["distribution"] == "tabulate"
    assert "The analysis suggested it: as_markdown → to_markdown(): pandas loads tabulate" in info.value.message
    assert "accept_hints=True" in info.value.hint and "--accept-hints" in info.value.hint

    deployment = jupyterlab_publish.publish(ns["as_markdown"], target=f"dir:{target}", sample=[[{"a": 1}]],
                                            accept_hints=True)
    requirements = (Path(deployment.bundle_path) / "requirements.txt").read_text()
    assert "tabulate==0.9.0" in requirements
