"""Execute a notebook's code cells as ipykernel would: a fresh ``__main__``, cwd and path at the notebook."""

from __future__ import annotations

import __future__
import json
import os
import sys
import types
from pathlib import Path

FUTURE_FLAGS = 0
for _feature in __future__.all_feature_names:
    FUTURE_FLAGS |= getattr(__future__, _feature).compiler_flag


def run_notebook(notebook: Path) -> dict:
    """Run the code cells in order in a fresh ``__main__`` module; return its namespace."""
    module = types.ModuleType("__main__")
    module.__dict__["__builtins__"] = __builtins__
    sys.modules["__main__"] = module
    os.chdir(notebook.parent)
    sys.path.insert(0, str(notebook.parent))
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    flags = 0  # __future__ imports of earlier cells stay in force, as IPython keeps them
    for number, cell in enumerate(c for c in cells if c["cell_type"] == "code"):
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        code = compile(source, f"<cell {number + 1}>", "exec", flags=flags, dont_inherit=True)
        flags |= code.co_flags & FUTURE_FLAGS
        exec(code, module.__dict__)
    return module.__dict__


def run_cell(source: str, namespace: dict) -> None:
    """One more cell, compiled on its own (never with this file's ``from __future__`` flags)."""
    exec(compile(source, "<cell>", "exec", dont_inherit=True), namespace)
