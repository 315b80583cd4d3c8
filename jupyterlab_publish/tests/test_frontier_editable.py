"""Editable installs (PEP 660, direct_url.json ``"editable": true``) are requirements that say why
they may not install elsewhere, not local modules; several providers of one module are decided by
which one's RECORD hash matches the file on disk."""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import sys
from pathlib import Path

import pytest
from frontier_sites import make_site, notebook

import jupyterlab_publish
from jupyterlab_publish.frontier import analyze_function, find_distribution
from jupyterlab_publish.frontier.modules import DISTRIBUTION, LOCAL, classify


def _editable_work_tree(dist_name: str) -> str | None:
    text = importlib.metadata.distribution(dist_name).read_text("direct_url.json") or "{}"
    data = json.loads(text)
    return data.get("url", "").removeprefix("file://") if data.get("dir_info", {}).get("editable") else None


def test_this_package_installed_for_development_is_an_editable_requirement():
    work_tree = _editable_work_tree("jupyterlab-publish")
    # `make setup` installs the project editable (pip install -e), as every development checkout has it.
    assert work_tree is not None, "jupyterlab-publish is not installed in editable mode; run `make setup`"
    source = "from jupyterlab_publish.names import check_endpoint_name\ndef f(n):\n    return check_endpoint_name(n)\n"
    ns = notebook(source)
    report = analyze_function(ns["f"])
    assert report.local_modules == []  # before: the work tree looked like code next to the notebook
    (requirement,) = report.requirements
    assert (requirement.name, requirement.version, requirement.editable) == (
        "jupyterlab-publish", jupyterlab_publish.__version__, True
    )
    (warning,) = [w for w in report.warnings if w.code == "editable_install"]
    assert f"editable install from {work_tree}" in warning.message
    assert f"jupyterlab-publish=={jupyterlab_publish.__version__}" in warning.message
    assert report.to_dict()["requirements"][0]["editable"] is True


@pytest.fixture
def work_trees(tmp_path, monkeypatch):
    """Two editable installs the way build backends make them: a .pth root, and a setuptools finder."""
    site = make_site(tmp_path, monkeypatch)
    src = tmp_path / "work" / "src"
    (src / "edpkg").mkdir(parents=True)
    (src / "edpkg" / "__init__.py").write_text("VALUE = 1\n")
    (src / "notebooks").mkdir()
    (src / "notebooks" / "nb_helper_mod.py").write_text("VALUE = 2\n")
    site.dist("ed-pkg", "0.3.dev0", editable_url=(tmp_path / "work").as_uri(),
              extra_files={"_ed_pkg.pth": f"{src}\n"})

    other = tmp_path / "other"
    (other / "finpkg").mkdir(parents=True)
    (other / "finpkg" / "__init__.py").write_text("VALUE = 3\n")
    finder = f"import sys\nMAPPING: dict[str, str] = {{'finpkg': {str(other / 'finpkg')!r}}}\nNAMESPACES = {{}}\n"
    site.dist("fin-pkg", "2.0", editable_url=other.as_uri(),
              extra_files={"__editable___fin_pkg_2_0_finder.py": finder})
    # what the .pth line and the finder would do at interpreter start-up
    for entry in (src, src / "notebooks", other):
        monkeypatch.syspath_prepend(str(entry))
    names = ("edpkg", "nb_helper_mod", "finpkg")
    for name in names:
        importlib.import_module(name)
    yield tmp_path
    for name in names:
        sys.modules.pop(name, None)


def test_pth_editable_install(work_trees):
    origin = classify("edpkg")
    assert origin.kind == DISTRIBUTION
    assert (origin.match.name, origin.match.version, origin.match.editable) == ("ed-pkg", "0.3.dev0", True)
    assert origin.match.location == str(work_trees / "work" / "src")
    assert origin.match.source == "editable install"


def test_setuptools_finder_editable_install(work_trees):
    assert find_distribution("finpkg") == ("fin-pkg", "2.0")
    assert classify("finpkg").match.editable


def test_a_module_elsewhere_in_the_work_tree_is_still_local(work_trees):
    origin = classify("nb_helper_mod")
    assert origin.kind == LOCAL
    ns = notebook("import nb_helper_mod, edpkg\ndef f():\n    return nb_helper_mod.VALUE + edpkg.VALUE\n")
    report = analyze_function(ns["f"])
    assert report.local_module_names == ["nb_helper_mod"]
    assert [(r.name, r.editable) for r in report.requirements] == [("ed-pkg", True)]


@pytest.fixture
def two_providers(tmp_path, monkeypatch):
    site = make_site(tmp_path, monkeypatch)
    site.module("dup_mod.py", "VALUE = 'from zzz-dup, installed last'\n")
    # aaa-dup wrote the file first; zzz-dup overwrote it, so only zzz-dup's RECORD hash matches
    site.dist("aaa-dup", "1.0", files=("dup_mod.py",), wrong_hashes=True)
    site.dist("zzz-dup", "2.0", files=("dup_mod.py",))
    import dup_mod

    yield dup_mod
    site.forget_imports()


def test_several_providers_the_one_whose_record_hash_matches_wins(two_providers):
    match = classify("dup_mod").match
    assert (match.name, match.others) == ("zzz-dup", ("aaa-dup",))
    assert match.reason == (
        "zzz-dup found by RECORD; also provided by aaa-dup, chose zzz-dup (its RECORD hash matches the file on disk)"
    )
    ns = notebook("import dup_mod\ndef f():\n    return dup_mod.VALUE\n")
    report = analyze_function(ns["f"])
    assert [r.name for r in report.requirements] == ["zzz-dup"]
    (warning,) = [w for w in report.warnings if w.code == "ambiguous_distribution"]
    assert "chose zzz-dup (its RECORD hash matches the file on disk)" in warning.message


def test_site_builder_hashes_are_what_installers_write(two_providers):
    # the helper's RECORD rows use the same digest installers write (urlsafe base64 sha256, unpadded)
    dist = importlib.metadata.distribution("zzz-dup")
    (row,) = [f for f in dist.files if f.name == "dup_mod.py"]
    import base64
    import hashlib

    digest = base64.urlsafe_b64encode(hashlib.sha256(Path(two_providers.__file__).read_bytes()).digest())
    assert row.hash.mode == "sha256" and row.hash.value == digest.rstrip(b"=").decode()
