"""Find the functions a cell defines and whether the kernel holds the version in the cell."""

from __future__ import annotations

import ast
import builtins
import inspect
import types
from typing import Any, Callable

from ..errors import PublishError


def transform_cell(code: str, namespace: dict[str, Any] | None = None) -> str:
    """Turn IPython syntax (``%magic``, ``!cmd``) into Python, as the kernel did when it ran the cell."""
    # IPython puts get_ipython in the user namespace; builtins hold it only while a cell runs.
    get_ipython: Callable[[], Any] | None = (namespace or {}).get("get_ipython") or getattr(
        builtins, "get_ipython", None
    )
    shell = get_ipython() if get_ipython else None
    if shell is not None and hasattr(shell, "transform_cell"):
        return shell.transform_cell(code)
    return code


def list_functions(code: str, namespace: dict[str, Any]) -> list[dict[str, Any]]:
    """Describe each top-level ``def`` of the cell, in order, with its live state in ``namespace``."""
    source = transform_cell(code, namespace)
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise PublishError(
            "syntax_error",
            f"The cell has a syntax error on line {exc.lineno}: {exc.msg}.",
            "Fix the cell and run it, then publish again.",
            {"line": exc.lineno},
        ) from None
    functions = []
    for node in tree.body:
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        live = namespace.get(node.name)
        defined = callable(live)
        functions.append(
            {
                "name": node.name,
                "signature": f"({ast.unparse(node.args)})",
                "doc": _first_line(ast.get_docstring(node)),
                "line": node.lineno,
                "is_async": isinstance(node, ast.AsyncFunctionDef),
                "defined": defined,
                "stale": defined and _differs(live, source, node.name),
            }
        )
    return functions


def resolve_function(name: str, namespace: dict[str, Any]) -> Callable[..., Any]:
    """The live function called ``name``, or an error that says how to make it exist."""
    if name not in namespace:
        raise PublishError(
            "not_defined",
            f"`{name}` is not defined in the kernel: the cell has not been run.",
            "Run the cell, then publish again.",
            {"function": name},
        )
    value = namespace[name]
    if not callable(value):
        raise PublishError(
            "not_callable",
            f"`{name}` is a {type(value).__name__}, not a function.",
            "Publish a function defined with `def`.",
            {"function": name},
        )
    return value


def _differs(live: Any, source: str, name: str) -> bool:
    """True when the kernel's function was compiled from other source than the cell's ``def``.

    Code objects compare their bytecode, constants (nested code included), names and line table,
    so compiling the unchanged cell again under the same file name gives an equal code object, if
    it is compiled the way the kernel compiled it. IPython compiles each top-level statement as a
    module of its own, and the bytecode depends on it: in a module that also holds ``import os``,
    CPython 3.11 compiles ``os.getcwd()`` with LOAD_ATTR, alone with LOAD_METHOD. So the ``def`` is
    compiled both alone (IPython) and within the whole cell (plain ``exec``); either match is fresh.
    """
    live_code = getattr(inspect.unwrap(live), "__code__", None)
    if live_code is None:
        return False
    tree = ast.parse(source)
    nodes = [
        node
        for node in tree.body
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name
    ]
    modules = [ast.Module(body=[node], type_ignores=[]) for node in nodes[-1:]] + [tree]
    for module in modules:
        # dont_inherit: this module's `from __future__` flags must not leak into the cell's code.
        cell_code = compile(module, live_code.co_filename, "exec", dont_inherit=True)
        for const in cell_code.co_consts:
            if isinstance(const, types.CodeType) and const.co_name == name and const == live_code:
                return False
    return True


def _first_line(doc: str | None) -> str:
    return doc.strip().splitlines()[0] if doc and doc.strip() else ""
