"""Submodules reached by attribute chains (``pkg.sub.deep.VALUE`` after ``import pkg``): found on
disk without importing them, required, and imported by the bundle before unpickling, because
cloudpickle re-imports only the submodules that were imported when it pickled."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from frontier_sites import make_site, notebook

from jupyterlab_publish.bundle import build_bundle
from jupyterlab_publish.frontier import analyze_function
from jupyterlab_publish.frontier.modules import deepest_submodule


@pytest.fixture
def deep_package(tmp_path, monkeypatch):
    """A package that, unlike scipy or scikit-learn, does not import its submodules lazily."""
    site = make_site(tmp_path, monkeypatch)
    site.module("deeppkg/__init__.py", "def helper():\n    return 1\n")
    site.module("deeppkg/sub/__init__.py", "")
    site.module("deeppkg/sub/deep.py", "VALUE = 42\n")
    site.dist("deep-pkg", "1.0", files=("deeppkg/__init__.py", "deeppkg/sub/__init__.py", "deeppkg/sub/deep.py"))
    import deeppkg  # noqa: F401  (imported in the kernel, as the notebook would have)

    yield site
    site.forget_imports()


def run_in_fresh_process(bundle_path, site) -> subprocess.CompletedProcess:
    code = (
        "import sys; from jupyterlab_publish.runtime.service import load_bundle; "
        "print(load_bundle(sys.argv[1]).function())"
    )
    env = {**os.environ, "PYTHONPATH": str(site.root)}
    return subprocess.run([sys.executable, "-c", code, str(bundle_path)], capture_output=True, text=True, env=env,
                          timeout=60)


def test_attribute_chain_into_submodules_not_yet_imported(deep_package):
    ns = notebook("import deeppkg\ndef f():\n    return deeppkg.sub.deep.VALUE\n")
    report = analyze_function(ns["f"])
    assert [(r.name, r.modules) for r in report.requirements] == [("deep-pkg", ["deeppkg.sub.deep"])]
    assert report.requirements[0].why == "f → deeppkg → deeppkg.sub.deep → deep-pkg 1.0"
    assert report.preload_modules == ["deeppkg.sub.deep"]
    assert "deeppkg.sub" not in sys.modules  # found on disk, never imported


def test_import_inside_the_function_then_an_attribute_chain(deep_package):
    ns = notebook("def f():\n    import deeppkg\n    return deeppkg.sub.deep.VALUE\n")
    report = analyze_function(ns["f"])
    assert report.requirements[0].modules == ["deeppkg", "deeppkg.sub.deep"]
    assert report.preload_modules == ["deeppkg.sub.deep"]


def test_attributes_that_are_not_submodules_stop_the_chain(deep_package):
    assert deepest_submodule("deeppkg", ("helper", "sub")) == "deeppkg"
    assert deepest_submodule("deeppkg", ("sub", "nothing_here")) == "deeppkg.sub"
    assert deepest_submodule("deeppkg", ("sub", "deep", "VALUE")) == "deeppkg.sub.deep"
    ns = notebook("import deeppkg\ndef f():\n    return deeppkg.helper()\n")
    report = analyze_function(ns["f"])
    assert report.requirements[0].modules == ["deeppkg"] and report.preload_modules == []


def test_the_bundle_imports_preload_modules_before_unpickling(deep_package, tmp_path):
    ns = notebook("import deeppkg\ndef f():\n    return deeppkg.sub.deep.VALUE\n")
    report = analyze_function(ns["f"])
    requirements = [{"name": "deep-pkg", "version": "1.0"}]

    without = build_bundle(ns["f"], tmp_path / "without", name="f", requirements=requirements)
    failed = run_in_fresh_process(without.path, deep_package)
    # what cloudpickle alone produces: the submodule was never imported in the kernel
    assert failed.returncode != 0 and "has no attribute 'sub'" in failed.stderr

    bundle = build_bundle(ns["f"], tmp_path / "with", name="f", requirements=requirements,
                          preload_modules=report.preload_modules)
    assert bundle.manifest["preload_modules"] == ["deeppkg.sub.deep"]
    done = run_in_fresh_process(bundle.path, deep_package)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "42"


def test_a_preload_module_missing_where_the_bundle_runs_is_named(deep_package, tmp_path):
    ns = notebook("def f():\n    return 1\n")
    bundle = build_bundle(ns["f"], tmp_path / "b", name="f", preload_modules=["deeppkg.sub.deep"])
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # deeppkg is not installed there
    code = "import sys; from jupyterlab_publish.runtime.service import load_bundle; load_bundle(sys.argv[1])"
    done = subprocess.run([sys.executable, "-c", code, str(bundle.path)], capture_output=True, text=True, env=env,
                          timeout=60)
    assert done.returncode != 0
    assert "the function uses the module 'deeppkg.sub.deep', which cannot be imported here" in done.stderr


def test_standard_library_submodules_are_neither_required_nor_preloaded():
    ns = notebook(
        """
        import os, xml.etree.ElementTree, importlib
        def f(text):
            return os.path.join("a", text), xml.etree.ElementTree.fromstring(text), importlib.util.find_spec
        """
    )
    report = analyze_function(ns["f"])
    assert report.requirements == [] and report.preload_modules == [] and report.warnings == []


def test_scipy_stats_through_the_scipy_global():
    import scipy

    ns = notebook("def f(x):\n    return scipy.stats.norm.pdf(x)\n", scipy=scipy)
    report = analyze_function(ns["f"])
    assert [(r.name, r.modules) for r in report.requirements] == [("scipy", ["scipy.stats"])]
    assert report.preload_modules == ["scipy.stats"]
