"""The one Requirement type: what it reads, what it refuses, and the text it writes at the edges."""

import json
import subprocess
import sys

import pytest

from jupyterlab_publish.errors import PublishError
from jupyterlab_publish.requirement import Requirement, canonical_name, parse_requirements


def test_what_pip_accepts_is_read_pin_range_extras_and_marker():
    pin = Requirement.parse("scikit-learn==1.5.2", why="predict → model")
    assert (pin.name, pin.key, pin.specifier, pin.pinned_version, pin.why) == (
        "scikit-learn", "scikit-learn", "==1.5.2", "1.5.2", "predict → model"
    )
    ranged = Requirement.parse("Scikit_Learn >= 1.8")
    assert (ranged.key, ranged.specifier, ranged.pinned_version) == ("scikit-learn", ">=1.8", None)
    assert ranged.allows("1.9.1") and not ranged.allows("1.5.2")
    extras = Requirement.parse("pandas[Parquet, aws]<4,>=2")
    assert extras.extras == ("aws", "parquet") and extras.line() == "pandas[aws,parquet]<4,>=2"
    marked = Requirement.parse("uvloop==0.21.0; sys_platform != 'win32'")
    assert marked.line() == 'uvloop==0.21.0 ; sys_platform != "win32"'
    assert marked.applies() is (sys.platform != "win32")


@pytest.mark.parametrize("text, pinned", [("a==1.*", None), ("a===1.0", None), ("a>=1,==1.2", None), ("a", None),
                                          ("a==2!1.0+cpu", "2!1.0+cpu")])
def test_only_a_single_exact_equality_is_a_pin(text, pinned):
    assert Requirement.parse(text).pinned_version == pinned


def test_equal_means_the_same_requirement_however_spelled_or_explained():
    assert Requirement.parse("NumPy == 2.0", why="a") == Requirement.parse("numpy==2.0", why="b")
    assert Requirement.parse("numpy==2.0") != Requirement.parse("numpy>=2.0")
    assert len({Requirement.parse("x_y"), Requirement.parse("X.Y")}) == 1


def test_the_wire_entry_carries_the_line_and_reads_back():
    entry = Requirement.parse("scikit-learn>=1.8", why="added by you").to_entry()
    assert entry == {"name": "scikit-learn", "version": "", "why": "added by you", "requirement": "scikit-learn>=1.8"}
    assert json.loads(json.dumps(entry)) == entry
    assert Requirement.from_entry(entry) == Requirement.parse("scikit-learn>=1.8")
    assert Requirement.from_entry(entry).why == "added by you"


def test_protocol_2_entries_and_text_are_read_too():
    old = Requirement.from_entry({"name": "uvicorn[standard]", "version": "0.30.6"}, why="default why")
    assert (old.line(), old.extras, old.pinned_version, old.why) == ("uvicorn[standard]==0.30.6", ("standard",),
                                                                     "0.30.6", "default why")
    assert Requirement.from_entry({"name": "joblib", "version": ""}).line() == "joblib"
    assert Requirement.from_entry("numpy>=2", why="w") == Requirement.parse("numpy>=2")
    same = Requirement.parse("six")
    assert Requirement.from_entry(same) is same


@pytest.mark.parametrize(
    "entry, named",
    [
        ("numpy; rm -rf /", "numpy; rm -rf /"),
        ("-e git+https://x", "-e git+https://x"),
        ("numpy\n--index-url http://evil", "index-url"),
        ("pkg @ https://example.com/pkg.whl", "URL"),
        ({"requirement": "numpy=="}, "numpy=="),
        ({"name": "numpy", "version": ">=1.0"}, ">=1.0"),
        ({"name": "numpy>=1"}, "numpy>=1"),
        ({"requirement": "numpy", "why": 3}, "why"),
        (42, "42"),
    ],
)
def test_what_is_not_a_requirement_is_refused_with_a_hint(entry, named):
    with pytest.raises(PublishError) as caught:
        Requirement.from_entry(entry)
    assert caught.value.code == "bad_request" and named in caught.value.message and caught.value.hint


def test_a_list_error_names_the_entry_and_its_index():
    with pytest.raises(PublishError) as caught:
        parse_requirements(["numpy", "pandas>=", "six"])
    assert "#2" in caught.value.message and caught.value.details == {"index": 1, "field": "requirements"}
    with pytest.raises(PublishError):
        parse_requirements("numpy")  # one value, not a list
    with pytest.raises(PublishError) as caught:
        parse_requirements(["numpy"], accept_text=False)
    assert caught.value.details["index"] == 0


def test_tool_written_lines_are_read_or_skipped():
    assert Requirement.read("--index-url https://x") is None
    direct = Requirement.read("pkg @ https://example.com/pkg.whl ; python_version > '3'")
    assert direct.url == "https://example.com/pkg.whl" and direct.line().startswith("pkg @ https://")


def test_names_are_normalised_once():
    assert canonical_name("Scikit_Learn") == canonical_name("scikit.learn") == "scikit-learn"


def test_importing_it_does_not_import_packaging():
    code = "import sys, jupyterlab_publish.requirement; print('packaging' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
