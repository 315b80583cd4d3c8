"""The corpus: one Case per notebook, with its ground truth, and the notebooks written from them.

Cases live in ``cases/<category>.py`` as compact ``case(...)`` calls so the ground truth sits next
to the code it judges. ``write_case`` turns one into a real notebook (nbformat v4) plus any local
files (a ``utils.py`` next to the notebook), in a directory of its own.
"""

from __future__ import annotations

import importlib
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

CATEGORIES = ("bytecode", "captured", "precision", "names", "local", "plugins")
NOTEBOOK_NAME = "case.ipynb"


@dataclass(frozen=True)
class Case:
    id: str
    category: str
    cells: tuple[str, ...]
    function: str  # an expression in the notebook's namespace: a name, ``obj.method``, ...
    sample: tuple  # positional arguments, JSON values
    needs: frozenset[str]  # distributions the function truly needs (PyPI names)
    why: str  # one line: why exactly these
    files: dict[str, str] = field(default_factory=dict)  # path next to the notebook -> text
    local: tuple[str, ...] = ()  # local modules shipped by value (cloudpickle.register_pickle_by_value)


def case(id, cells, function, sample, needs, why, *, files=None, local=(), category=""):
    return Case(
        id=id,
        category=category,
        cells=tuple(textwrap.dedent(c).strip("\n") for c in cells),
        function=function,
        sample=tuple(sample),
        needs=frozenset(needs),
        why=why,
        files={path: textwrap.dedent(text).lstrip("\n") for path, text in (files or {}).items()},
        local=tuple(local),
    )


def load_cases() -> list[Case]:
    out: list[Case] = []
    for category in CATEGORIES:
        module = importlib.import_module(f"cases.{category}")
        for item in module.CASES:
            out.append(Case(**{**item.__dict__, "category": category}))
    ids = [c.id for c in out]
    duplicates = {i for i in ids if ids.count(i) > 1}
    if duplicates:
        raise SystemExit(f"duplicate case ids: {sorted(duplicates)}")
    return out


def select(cases: list[Case], patterns: str | None) -> list[Case]:
    """``b01,captured,p0`` keeps cases whose id starts with, or whose category is, any pattern."""
    if not patterns:
        return cases
    wanted = [p.strip() for p in patterns.split(",") if p.strip()]
    chosen = [c for c in cases if any(c.id.startswith(p) or c.category == p for p in wanted)]
    if not chosen:
        raise SystemExit(f"no case matches {patterns!r}")
    return chosen


def write_case(item: Case, directory: Path) -> Path:
    """Write the notebook and its local files into ``directory`` (created); return the notebook."""
    import nbformat

    directory.mkdir(parents=True, exist_ok=True)
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_markdown_cell(f"# {item.id}\n\n{item.why}")]
    notebook.cells += [nbformat.v4.new_code_cell(source) for source in item.cells]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.metadata["benchmark"] = {"function": item.function, "sample": list(item.sample)}
    path = directory / NOTEBOOK_NAME
    nbformat.write(notebook, str(path))
    for relative, text in item.files.items():
        target = directory / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    return path
