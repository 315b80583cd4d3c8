"""Find the functions a cell defines and whether the kernel holds the version in the cell."""

from __future__ import annotations

import ast
import builtins
import inspect
import types
from typing import Any, Callable

from ..errors import PublishError


def transform_cell(code: str) -> str:
    """Turn IPython syntax (``%magic``, ``!cmd``) into Python, as the kernel did when it ran the cell."""
    get_ipython: Callable[[], Any] | None = getattr(builtins, "get_ipython", None)
    shell = get_ipython() if get_ipython else None
    if shell is not None and hasattr(shell, "transform_cell"):
        return shell.transform_cell(code)
    return code


def list_functions(code: str, namespace: dict[str, Any]) -> list[dict[str, Any]]:
    """Describe each top-level ``def`` of the cell, in order, with its live state in ``namespace``."""
    source = transform_cell(code)
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
    so compiling the unchanged cell again under the same file name gives an equal code object.
    """
    live_code = getattr(inspect.unwrap(live), "__code__", None)
    if live_code is None:
        return False
    # dont_inherit: this module's `from __future__` flags must not leak into the cell's code.
    cell_code = compile(source, live_code.co_filename, "exec", dont_inherit=True)
    for const in cell_code.co_consts:
        if isinstance(const, types.CodeType) and const.co_name == name:
            return const != live_code
    return True


def _first_line(doc: str | None) -> str:
    return doc.strip().splitlines()[0] if doc and doc.strip() else ""
