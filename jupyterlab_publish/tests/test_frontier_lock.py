"""The lock: the transitive closure of the requirements from installed metadata, in the analysis
report and in the bundle (requirements.lock + the manifest's ``lock``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from frontier_sites import make_site, notebook
from sklearn.cluster import KMeans

from jupyterlab_publish.bundle import build_bundle
from jupyterlab_publish.frontier import analyze_function, installed_version
from jupyterlab_publish.frontier.lock import LockRoot, lock_closure
from jupyterlab_publish.requirement import Requirement


@pytest.fixture
def lock_site(tmp_path, monkeypatch):
    """lk-app depends on lk-core (which depends back on lk-app), on lk-plug with its [cli] extra, on
    one distribution only through its own [fancy] extra, on others only on Windows or Python 2, and
    on one that is not installed."""
    site = make_site(tmp_path, monkeypatch)
    site.dist(
        "lk-app",
        "1.0",
        requires=(
            "lk-core>=1",
            'lk-extra-dep; extra == "fancy"',
            'lk-win; sys_platform == "win32"',
            'lk-old; python_version < "3.0"',
            "lk-notinstalled (>=2)",
            "lk-plug[cli]",
        ),
    )
    site.dist("lk-core", "2.0", requires=("lk-app",))
    site.dist("lk-plug", "3.0", requires=('lk-cli-dep; extra == "cli"', 'lk-gui-dep; extra == "gui"'))
    for name in ("lk-extra-dep", "lk-win", "lk-cli-dep", "lk-gui-dep"):
        site.dist(name, "1.0")
    return site


def entries(lock) -> dict:
    return {entry.name: (entry.version, entry.required_by) for entry in lock.entries}


def test_closure_follows_requires_markers_and_requested_extras(lock_site):
    lock = lock_closure([LockRoot("lk-app", "predict")])
    assert entries(lock) == {
        "lk-app": ("1.0", ["lk-core", "predict"]),  # the cycle back from lk-core is recorded too
        "lk-cli-dep": ("1.0", ["lk-plug"]),
        "lk-core": ("2.0", ["lk-app"]),
        "lk-plug": ("3.0", ["lk-app"]),
    }
    assert [(m.name, m.required_by) for m in lock.missing] == [("lk-notinstalled", ["lk-app"])]


def test_extras_of_a_root_are_followed(lock_site):
    lock = lock_closure([LockRoot("lk-app", "predict", extras=("fancy",))])
    assert entries(lock)["lk-extra-dep"] == ("1.0", ["lk-app"])
    assert "lk-win" not in entries(lock)


def test_a_declared_pin_that_differs_from_the_installed_version_is_kept(lock_site):
    lock = lock_closure([LockRoot("lk-core", "predict", version="1.5")])
    assert entries(lock)["lk-core"] == ("1.5", ["lk-app", "predict"])
    assert entries(lock)["lk-app"] == ("1.0", ["lk-core"])


def test_a_lock_root_of_a_requirement_pins_only_an_exact_version(lock_site):
    assert LockRoot.of(Requirement.parse("lk-core==1.5"), "predict") == LockRoot("lk-core", "predict", (), "1.5")
    # a range (and its extras) locks what is installed
    root = LockRoot.of(Requirement.parse("lk-app[fancy]>=0.5"), "predict")
    assert root == LockRoot("lk-app", "predict", ("fancy",), None)
    assert entries(lock_closure([root]))["lk-app"] == ("1.0", ["lk-core", "predict"])


def test_requires_dist_lines_are_read_with_their_extras_and_markers():
    spec = Requirement.read("Some_Name[b, a] (>=1.0); extra == 'x' and python_version >= '3'")
    assert (spec.name, spec.extras, spec.key) == ("Some_Name", ("a", "b"), "some-name")
    assert spec.applies(frozenset({"x"})) is True and spec.applies(frozenset()) is False
    assert Requirement.read("plain").applies(frozenset()) is True
    assert Requirement.read("???") is None
    assert Requirement.read('lk-win; sys_platform == "win32"').applies() is (sys.platform == "win32")


def test_real_environment_lock_of_a_kmeans_predictor():
    model = KMeans(n_clusters=2, n_init=2, random_state=0).fit(np.random.default_rng(0).random((20, 2)))
    ns = notebook("def predictor(x):\n    return int(model.predict([x])[0])\n", model=model)
    report = analyze_function(ns["predictor"])
    assert [r.name for r in report.requirements] == ["numpy", "scikit-learn"]  # the lock adds nothing here
    lock = {entry.name: entry for entry in report.lock}
    assert {"numpy", "scikit-learn", "scipy", "joblib", "threadpoolctl"} <= set(lock)
    assert lock["scikit-learn"].required_by == ["predictor"]
    assert {"predictor", "scikit-learn", "scipy"} <= set(lock["numpy"].required_by)
    assert lock["scipy"].required_by == ["scikit-learn"]
    assert all(entry.version == installed_version(entry.name) for entry in report.lock)
    assert report.to_dict()["lock"][0].keys() == {"name", "version", "required_by"}


@pytest.fixture
def app_module(lock_site):
    lock_site.module("lk_app_mod.py", "def run(x):\n    return x\n")
    info = next(lock_site.root.glob("lk_app-1.0.dist-info"))
    record = info / "RECORD"
    record.write_text(record.read_text() + "lk_app_mod.py,,\n")
    import lk_app_mod

    yield lk_app_mod
    lock_site.forget_imports()


def test_report_lock_and_missing_dependency_warning(app_module):
    ns = notebook("import lk_app_mod\ndef f(x):\n    return lk_app_mod.run(x)\n")
    report = analyze_function(ns["f"])
    assert [r.name for r in report.requirements] == ["lk-app"]
    assert [entry.name for entry in report.lock] == ["lk-app", "lk-cli-dep", "lk-core", "lk-plug"]
    (warning,) = [w for w in report.warnings if w.code == "lock_incomplete"]
    assert "lk-notinstalled (required by lk-app)" in warning.message
    assert "pip install lk-notinstalled" in warning.hint


def test_bundle_carries_requirements_lock_and_manifest_summary(app_module, tmp_path):
    ns = notebook("import lk_app_mod\ndef f(x):\n    return lk_app_mod.run(x)\n")
    bundle = build_bundle(
        ns["f"], tmp_path / "bundle", name="f", requirements=[{"name": "lk-app", "version": "1.0", "why": "f"}]
    )
    manifest = json.loads((bundle.path / "manifest.json").read_text())
    text = (bundle.path / "requirements.lock").read_text()
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert "lk-app==1.0  # required by f, lk-core" in lines
    assert "lk-core==2.0  # required by lk-app" in lines
    assert "# lk-notinstalled is required by lk-app but not installed in the kernel" in text
    cloudpickle_version = installed_version("cloudpickle")
    assert f"cloudpickle=={cloudpickle_version}  # required by service runtime" in lines
    # the manifest summarises exactly the pinned lines
    pinned = [line.split("  #")[0] for line in lines]
    assert pinned == [f"{e['name']}=={e['version']}" for e in manifest["lock"]]
    assert {"name": "lk-plug", "version": "3.0", "required_by": ["lk-app"]} in manifest["lock"]
    assert manifest["files"]["requirements.lock"]


def test_requirements_lock_is_what_pip_accepts(app_module, tmp_path):
    """pip itself reads the file: every pinned line is satisfied by this environment (no index)."""
    ns = notebook("import lk_app_mod\ndef f(x):\n    return lk_app_mod.run(x)\n")
    bundle = build_bundle(ns["f"], tmp_path / "b", name="f", requirements=[{"name": "lk-app", "version": "1.0"}])
    env = {**os.environ, "PYTHONPATH": str(app_module.__file__).rsplit("/", 1)[0], "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--no-index", "--no-deps", "-r",
         str(bundle.path / "requirements.lock")],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Requirement already satisfied: lk-core==2.0" in done.stdout


def test_each_root_of_the_lock_is_required_by_the_function_that_needs_it():
    ns = notebook(
        "import pandas as pd\nimport numpy as np\ndef validate(rows):\n    return pd.DataFrame(rows)\n"
        "def predictor(x):\n    return np.asarray(x)\n"
    )
    report = analyze_function(ns["predictor"], also=[ns["validate"]])
    lock = {entry.name: entry.required_by for entry in report.lock}
    assert lock["pandas"] == ["validate"]
    assert "predictor" in lock["numpy"] and "pandas" in lock["numpy"]
