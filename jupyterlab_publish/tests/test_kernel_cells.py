"""The stale-cell check against a real IPython shell, which compiles a cell the way ipykernel does."""

import pytest
from IPython.core.interactiveshell import InteractiveShell

from jupyterlab_publish.kernel.cells import list_functions

IMPORT_AND_DEF = "import os\ndef a(n):\n    return os.getcwd()\n"


@pytest.fixture
def shell():
    shell = InteractiveShell.instance()
    yield shell
    InteractiveShell.clear_instance()


def run(shell, code):
    result = shell.run_cell(code, store_history=True)
    assert result.success, result.error_in_exec or result.error_before_exec


def state(shell, code):
    return [(f["name"], f["defined"], f["stale"]) for f in list_functions(code, shell.user_ns)]


@pytest.mark.parametrize(
    "code",
    [
        IMPORT_AND_DEF,  # issue 11: always reported stale (IPython compiles each statement alone)
        "import os.path\nimport json as j\ndef a(n):\n    return os.path.join(j.dumps(n), os.sep)\n",
        "from os import getcwd\nx = 1\n\ndef a(n):\n    return getcwd() + str(x)\n\ndef b(n):\n    return a(n)\n",
        "%env JLP_STALE=1\nimport os\ndef a(n):\n    return os.getcwd()\n",
    ],
)
def test_a_cell_just_run_is_not_stale(shell, code):
    run(shell, code)
    assert all(not stale and defined for _, defined, stale in state(shell, code))


def test_an_edited_def_is_stale(shell):
    run(shell, IMPORT_AND_DEF)
    edited = IMPORT_AND_DEF.replace("getcwd()", "getcwd() + '/'")
    assert state(shell, edited) == [("a", True, True)]
    run(shell, edited)
    assert state(shell, edited) == [("a", True, False)]


def test_a_cell_run_by_plain_exec_is_not_stale():
    # A kernel without IPython runs the cell as one module: the whole-cell compilation matches.
    namespace = {"__name__": "__main__"}
    exec(compile(IMPORT_AND_DEF, "<cell>", "exec"), namespace)
    namespace["a"].__code__ = namespace["a"].__code__.replace(co_filename="<cell>")
    assert [f["stale"] for f in list_functions(IMPORT_AND_DEF, namespace)] == [False]
