"""Module -> distribution resolution, on the real environment and on a small site directory built
here with real ``.dist-info`` metadata (RECORD, top_level.txt, namespace packages, clashes)."""

from __future__ import annotations

import importlib
import sys
import textwrap

import numpy as np
import pytest

from jupyterlab_publish.frontier import (
    analyze_function,
    find_distribution,
    installed_version,
)
from jupyterlab_publish.frontier.distributions import get_index
from jupyterlab_publish.frontier.modules import LOCAL, STDLIB, classify
from jupyterlab_publish.requirement import canonical_name


def test_canonical_names():
    assert canonical_name("Scikit_Learn") == "scikit-learn"
    assert canonical_name("zope.interface") == "zope-interface"
    assert canonical_name("a__b--c..d") == "a-b-c-d"


def test_real_environment_name_mismatches_come_from_record():
    import sklearn

    assert find_distribution("sklearn") == ("scikit-learn", sklearn.__version__)
    assert find_distribution("sklearn.cluster._kmeans")[0] == "scikit-learn"
    assert find_distribution("numpy.linalg") == ("numpy", np.__version__)
    assert find_distribution("dateutil.parser")[0] == "python-dateutil"
    assert classify("sklearn").match.source == "RECORD"


def test_stdlib_and_unknown_modules_have_no_distribution():
    assert find_distribution("json") is None
    assert find_distribution("collections.abc") is None
    assert classify("os.path").kind == STDLIB
    assert find_distribution("surely_not_installed_frontier_pkg") is None


def test_installed_version_accepts_any_spelling():
    version = installed_version("scikit-learn")
    assert version and installed_version("Scikit_Learn") == version
    assert installed_version("surely-not-installed-frontier-dist") is None


def test_index_is_built_once_and_reused():
    first = get_index()
    assert get_index() is first


def _dist_info(site, name: str, version: str, record: list[str] | None = None, top_level: list[str] | None = None):
    info = site / f"{name}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    if record is not None:
        (info / "RECORD").write_text("".join(f"{path},,\n" for path in [*record, f"{info.name}/METADATA"]))
    if top_level is not None:
        (info / "top_level.txt").write_text("\n".join(top_level) + "\n")


@pytest.fixture
def fake_site(tmp_path, monkeypatch):
    """A site-packages directory holding a few hand-made distributions."""
    site = tmp_path / "site-packages"
    site.mkdir()
    (site / "fancy").mkdir()
    (site / "fancy" / "__init__.py").write_text("VALUE = 1\n")
    _dist_info(site, "Fancy_Name", "1.0", record=["fancy/__init__.py"])

    (site / "legacy_mod.py").write_text("VALUE = 2\n")
    _dist_info(site, "legacy-dist", "0.3", top_level=["legacy_mod"])  # no RECORD, like old installs

    for part, version in (("part_a", "1.0"), ("part_b", "2.0")):
        (site / "nsfront" / part).mkdir(parents=True)
        (site / "nsfront" / part / "__init__.py").write_text(f"VALUE = {version!r}\n")
        _dist_info(site, f"nsfront-{part[-1]}", version, record=[f"nsfront/{part}/__init__.py"])

    (site / "shared_mod.py").write_text("VALUE = 3\n")
    _dist_info(site, "zeta-dist", "1.0", record=["shared_mod.py"])
    _dist_info(site, "alpha-dist", "1.0", record=["shared_mod.py"])

    (site / "orphan_mod.py").write_text("VALUE = 4\n")

    monkeypatch.syspath_prepend(str(site))
    names = ["fancy", "legacy_mod", "nsfront", "nsfront.part_a", "nsfront.part_b", "shared_mod", "orphan_mod"]
    for name in names:
        importlib.import_module(name)
    yield site
    for name in names:
        sys.modules.pop(name, None)


def test_record_gives_the_distributions_own_name(fake_site):
    assert find_distribution("fancy") == ("Fancy_Name", "1.0")
    assert installed_version("fancy-name") == "1.0"


def test_top_level_txt_when_there_is_no_record(fake_site):
    assert find_distribution("legacy_mod") == ("legacy-dist", "0.3")
    assert classify("legacy_mod").match.source == "top_level.txt"


def test_namespace_package_portions(fake_site):
    assert find_distribution("nsfront.part_a") == ("nsfront-a", "1.0")
    assert find_distribution("nsfront.part_b") == ("nsfront-b", "2.0")
    # the namespace root is shared: one is chosen by name, and the reason names the other
    root = classify("nsfront")
    assert root.match.name == "nsfront-a"
    assert root.match.others == ("nsfront-b",)


def test_namespace_attribute_chain_requires_only_the_portion_used(fake_site):
    namespace = {"__name__": "__main__", "nsfront": sys.modules["nsfront"]}
    exec("def f():\n    return nsfront.part_b.VALUE\n", namespace)
    report = analyze_function(namespace["f"])
    assert [(r.name, r.version, r.modules) for r in report.requirements] == [("nsfront-b", "2.0", ["nsfront.part_b"])]


def test_several_providers_choose_deterministically_and_warn(fake_site):
    assert find_distribution("shared_mod") == ("alpha-dist", "1.0")
    namespace = {"__name__": "__main__", "shared_mod": sys.modules["shared_mod"]}
    exec("def f():\n    return shared_mod.VALUE\n", namespace)
    report = analyze_function(namespace["f"])
    assert [r.name for r in report.requirements] == ["alpha-dist"]
    (warning,) = report.warnings
    assert warning.code == "ambiguous_distribution"
    assert "zeta-dist" in warning.message and "chose alpha-dist" in warning.message


def test_module_in_site_packages_without_metadata_is_a_warning(fake_site):
    namespace = {"__name__": "__main__", "orphan_mod": sys.modules["orphan_mod"]}
    exec("def f():\n    return orphan_mod.VALUE\n", namespace)
    report = analyze_function(namespace["f"])
    assert report.requirements == [] and report.local_modules == []
    assert [w.code for w in report.warnings] == ["unresolved_module"]


def test_module_outside_site_packages_is_local(tmp_path, monkeypatch):
    (tmp_path / "frontier_local_probe.py").write_text(textwrap.dedent("X = 1\n"))
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        importlib.import_module("frontier_local_probe")
        origin = classify("frontier_local_probe")
        assert origin.kind == LOCAL
        assert origin.path == str(tmp_path / "frontier_local_probe.py")
        assert find_distribution("frontier_local_probe") is None
    finally:
        sys.modules.pop("frontier_local_probe", None)


def test_new_installation_is_seen_without_restart(fake_site):
    assert find_distribution("late_mod") is None
    (fake_site / "late_mod.py").write_text("VALUE = 5\n")
    _dist_info(fake_site, "late-dist", "0.1", record=["late_mod.py"])
    importlib.invalidate_caches()
    try:
        assert find_distribution("late_mod") == ("late-dist", "0.1")
    finally:
        sys.modules.pop("late_mod", None)
