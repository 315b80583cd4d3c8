"""Requirement validation and the rendering of requirements.txt."""

import importlib.metadata
import textwrap

import cloudpickle
import pytest

from jupyterlab_publish.bundle import build_bundle
from jupyterlab_publish.bundle.requirements import (
    _release,
    normalize_name,
    plan_requirements,
    render_requirements_txt,
)
from jupyterlab_publish.errors import PublishError

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
        {"name": "scikit-learn", "version": "1.5.2", "why": "f → model (KMeans) → sklearn"},
        {"name": "Pandas", "version": "2.2.3", "why": ""},
        {"name": "joblib", "version": "", "why": ""},
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
    assert plan.runtime == [CP, "Starlette==0.40.0", "uvicorn[standard]==0.30.6", HTTPTOOLS, UVLOOP]


def test_a_declared_accelerator_wins_and_keeps_no_marker():
    plan = plan_requirements([{"name": "uvloop", "version": "0.21.0"}, {"name": "httptools", "version": ""}])
    assert "uvloop==0.21.0" in plan.lines and "httptools" in plan.lines
    assert not any(line.startswith("uvloop") and line != "uvloop==0.21.0" for line in plan.lines)


def test_accelerator_versions_are_compared_with_their_floor():
    assert _release("0.21.0rc1") == (0, 21, 0) and _release("0.6") == (0, 6)
    assert _release("0.19.0") >= _release("0.19") and _release("0.18.9") < _release("0.19")
    assert _release("1.0") > _release("0.19") and _release("nonsense") == ()


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
    assert plan_requirements([{"name": "pkg", "version": version}]).declared[0]["version"] == version


def test_a_single_string_is_not_a_list_of_requirements():
    with pytest.raises(PublishError) as caught:
        plan_requirements("numpy==1.0")
    assert caught.value.code == "bad_request"


def test_normalize_name():
    assert normalize_name("Scikit_Learn") == normalize_name("scikit.learn") == "scikit-learn"


def test_render_requirements_txt_without_entries():
    text = render_requirements_txt("x", [])
    assert text.startswith("# ") and all(line.startswith("#") for line in text.splitlines())
