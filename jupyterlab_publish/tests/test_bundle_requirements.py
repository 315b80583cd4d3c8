"""Requirement validation and the rendering of requirements.txt (and the lock's view of ranges)."""

import importlib.metadata
import textwrap

import cloudpickle
import pytest

from jupyterlab_publish.bundle import build_bundle
from jupyterlab_publish.bundle.lockfile import lock_requirements, render_requirements_lock
from jupyterlab_publish.bundle.requirements_txt import plan_requirements, render_requirements_txt
from jupyterlab_publish.errors import PublishError
from jupyterlab_publish.requirement import Requirement, canonical_name

CP = f"cloudpickle=={cloudpickle.__version__}"
STARLETTE = f"starlette=={importlib.metadata.version('starlette')}"
UVICORN = f"uvicorn=={importlib.metadata.version('uvicorn')}"
# The accelerators are installed in this environment, so they are pinned to its versions.
HTTPTOOLS = f"httptools=={importlib.metadata.version('httptools')}"
UVLOOP_MARKER = ' ; sys_platform != "win32" and platform_python_implementation == "CPython"'
UVLOOP = f"uvloop=={importlib.metadata.version('uvloop')}{UVLOOP_MARKER}"


def notebook(source, **names):
    ns = {"__name__": "__main__", **names}
    exec(textwrap.dedent(source), ns)
    return ns


def test_requirements_txt_is_sorted_pinned_and_explained(tmp_path):
    ns = notebook("def f(x):\n    return x\n")
    bundle = build_bundle(
        ns["f"],
        tmp_path / "b",
        name="f",
        requirements=[
            {"name": "scikit-learn", "version": "1.5.2", "why": "f → model (KMeans) → sklearn"},
            {"name": "Pandas", "version": "2.2.3"},
            {"name": "joblib", "version": ""},
        ],
    )
    text = bundle.requirements_txt
    header = [line for line in text.splitlines() if line.startswith("#")]
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert header and "requirements" in header[0].lower() and "'f'" in header[0]
    assert text.startswith("#") and text.endswith("\n")
    assert lines == [CP, HTTPTOOLS, "joblib", "Pandas==2.2.3", "scikit-learn==1.5.2", STARLETTE, UVICORN, UVLOOP]
    assert bundle.manifest["requirements"] == [
        {"name": "scikit-learn", "version": "1.5.2", "why": "f → model (KMeans) → sklearn",
         "requirement": "scikit-learn==1.5.2"},
        {"name": "Pandas", "version": "2.2.3", "why": "", "requirement": "Pandas==2.2.3"},
        {"name": "joblib", "version": "", "why": "", "requirement": "joblib"},
    ]
    assert bundle.manifest["runtime_requirements"] == [CP, STARLETTE, UVICORN, HTTPTOOLS, UVLOOP]


def test_runtime_requirements_are_never_duplicated():
    plan = plan_requirements(
        [
            {"name": "Starlette", "version": "0.40.0"},
            {"name": "uvicorn[standard]", "version": "0.30.6"},
            {"name": "cloudpickle", "version": ""},  # unpinned: the kernel's version is filled in
        ]
    )
    assert plan.lines == [CP, HTTPTOOLS, "Starlette==0.40.0", "uvicorn[standard]==0.30.6", UVLOOP]
    assert [r.line() for r in plan.runtime] == [CP, "Starlette==0.40.0", "uvicorn[standard]==0.30.6", HTTPTOOLS, UVLOOP]


def test_a_declared_accelerator_wins_and_keeps_no_marker():
    plan = plan_requirements([{"name": "uvloop", "version": "0.21.0"}, {"name": "httptools", "version": ""}])
    assert "uvloop==0.21.0" in plan.lines and "httptools" in plan.lines
    assert not any(line.startswith("uvloop") and line != "uvloop==0.21.0" for line in plan.lines)


def test_accelerator_versions_are_compared_with_their_floor():
    at_floor = Requirement.parse("uvloop>=0.19")  # how the plan compares an installed accelerator
    assert at_floor.allows("0.21.0rc1") and Requirement.parse("httptools>=0.6").allows("0.6")
    assert at_floor.allows("0.19.0") and not at_floor.allows("0.18.9")
    assert at_floor.allows("1.0") and not at_floor.allows("nonsense")


def test_cloudpickle_must_match_the_kernel():
    assert plan_requirements([{"name": "cloudpickle", "version": cloudpickle.__version__}]).lines[0] == CP
    with pytest.raises(PublishError) as caught:
        plan_requirements([{"name": "cloudpickle", "version": "0.1.0"}])
    assert caught.value.code == "bad_request" and cloudpickle.__version__ in caught.value.hint


def test_identical_entries_collapse_and_conflicts_are_refused():
    plan = plan_requirements([{"name": "numpy", "version": "2.0.0"}, {"name": "numpy", "version": "2.0.0"}])
    assert plan.lines.count("numpy==2.0.0") == 1 and len(plan.declared) == 1
    with pytest.raises(PublishError) as caught:
        plan_requirements([{"name": "numpy", "version": "2.0.0"}, {"name": "NumPy", "version": "1.26.4"}])
    assert caught.value.code == "bad_request" and "#2" in caught.value.message


@pytest.mark.parametrize(
    "entry, named",
    [
        ({"name": "numpy; rm -rf /", "version": "1.0"}, "numpy; rm -rf /"),
        ({"name": "-e git+https://x", "version": ""}, "-e git+https://x"),
        ({"name": "numpy", "version": ">=1.0"}, ">=1.0"),
        ({"name": "numpy", "version": "1.0\n--index-url http://evil"}, "index-url"),
        ({"name": "numpy", "version": "latest"}, "latest"),
        ({"version": "1.0"}, "#1"),
        ("numpy==1.0", "#1"),
        ({"name": "numpy", "version": 1.0}, "#1"),
    ],
)
def test_bad_entries_are_refused_by_name(entry, named):
    with pytest.raises(PublishError) as caught:
        plan_requirements([entry])
    assert caught.value.code == "bad_request"
    assert named in caught.value.message
    assert caught.value.hint


@pytest.mark.parametrize(
    "version", ["1", "1.2.3", "2!1.0", "1.0a1", "1.0rc2", "1.0.post3", "1.0.dev4", "2.13.0+cpu", "1.0b1.post2.dev3"]
)
def test_pep440_versions_are_accepted(version):
    assert plan_requirements([{"name": "pkg", "version": version}]).declared[0].pinned_version == version


def test_a_single_string_is_not_a_list_of_requirements():
    with pytest.raises(PublishError) as caught:
        plan_requirements("numpy==1.0")
    assert caught.value.code == "bad_request"


def test_normalize_name():
    assert canonical_name("Scikit_Learn") == canonical_name("scikit.learn") == "scikit-learn"


def test_render_requirements_txt_without_entries():
    text = render_requirements_txt("x", [])
    assert text.startswith("# ") and all(line.startswith("#") for line in text.splitlines())


def test_a_range_extras_and_a_marker_are_declared_as_written_and_the_lock_pins_the_kernel(tmp_path):
    ns = notebook("def f(x):\n    return x\n")
    sklearn = importlib.metadata.version("scikit-learn")
    requirements = [
        Requirement.parse("scikit-learn>=1.0", why="f → model"),
        Requirement.parse("numpy[dev]<99"),
        Requirement.parse('not-for-here-pkg==1.0 ; sys_platform == "no-such-platform"'),
    ]
    bundle = build_bundle(ns["f"], tmp_path / "b", name="f", requirements=requirements)
    lines = bundle.requirements_txt.splitlines()
    assert "scikit-learn>=1.0" in lines and "numpy[dev]<99" in lines
    assert 'not-for-here-pkg==1.0 ; sys_platform == "no-such-platform"' in lines
    lock = (bundle.path / "requirements.lock").read_text()
    assert f"scikit-learn=={sklearn}  # required by f" in lock
    assert 'not-for-here-pkg==1.0 ; sys_platform == "no-such-platform"  # its marker does not hold' in lock
    assert bundle.manifest["requirements"][0] == {
        "name": "scikit-learn", "version": "", "why": "f → model", "requirement": "scikit-learn>=1.0"
    }


def test_a_range_the_installed_version_is_outside_of_is_refused_with_a_hint(tmp_path):
    ns = notebook("def f(x):\n    return x\n")
    installed = importlib.metadata.version("scikit-learn")
    with pytest.raises(PublishError) as caught:
        build_bundle(ns["f"], tmp_path / "b", name="f", requirements=[Requirement.parse("scikit-learn>=999")])
    assert caught.value.code == "bad_request" and installed in caught.value.message
    assert "%pip install 'scikit-learn>=999'" in caught.value.hint and f"scikit-learn=={installed}" in caught.value.hint
    assert not (tmp_path / "b").exists()
    # an exact pin is the user's choice and kept, as before
    plan = plan_requirements([Requirement.parse("scikit-learn==0.1")])
    assert "scikit-learn==0.1" in plan.lines


def test_a_runtime_floor_above_the_installed_version_is_left_unlocked():
    floor = Requirement.parse("httptools>=999")  # what the plan writes when the kernel's httptools is too old
    lock, unlocked = lock_requirements([], [floor], "f")
    assert unlocked == [floor] and "httptools" not in {e.name for e in lock.entries}
    assert "httptools>=999  # the kernel has" in render_requirements_lock("f", lock, unlocked)
