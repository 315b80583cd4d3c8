"""The two techniques of the module-frontier write-up, reimplemented as baselines (stdlib only).

A, "closure variables only": ``inspect.getclosurevars`` of the function; modules among its
globals and nonlocals count, functions found there are followed (their module counts too), and any
other value contributes its ``__module__``.

B, "closure variables plus interesting bytecodes": A, plus a walk of the instructions of the
function's code: ``IMPORT_NAME`` (every module on the dotted path), ``LOAD_GLOBAL``/``LOAD_NAME``
of a module or function, ``LOAD_ATTR``/``LOAD_METHOD`` right after a module load when the attribute
is a submodule, and code objects loaded as constants (nested defs, lambdas, comprehensions), which
the write-up walks too. Neither looks at defaults, annotations, or inside captured objects.

Module names become distributions through ``importlib.metadata.packages_distributions()`` by
top-level name; standard-library and unknown (local) modules are dropped.
"""

from __future__ import annotations

import dis
import importlib
import importlib.metadata
import inspect
import sys
import types

_NOT_REQUIREMENTS = frozenset({"__main__", "__mp_main__", "builtins", "__future__"})
_packages: dict[str, list[str]] | None = None


def warm() -> None:
    """Read installed metadata once, as a long-lived kernel would (not part of per-call time)."""
    global _packages
    _packages = importlib.metadata.packages_distributions()


def distributions_for(modules: set[str]) -> list[str]:
    if _packages is None:
        warm()
    out: set[str] = set()
    for name in modules:
        if not isinstance(name, str) or not name:
            continue
        top = name.partition(".")[0]
        if top in _NOT_REQUIREMENTS or top in sys.stdlib_module_names:
            continue
        out.update(_packages.get(top, ()))
    return sorted(out)


def _as_function(value):
    """The function a published callable runs (bound methods, partials, callable instances)."""
    if isinstance(value, types.MethodType):
        return value.__func__
    if isinstance(value, types.FunctionType):
        return value
    func = getattr(value, "func", None)  # functools.partial
    if isinstance(func, types.FunctionType):
        return func
    call = getattr(type(value), "__call__", None)
    return call if isinstance(call, types.FunctionType) else None


def _closure_step(fn, modules: set[str], worklist: list, seen: set[int]) -> None:
    try:
        found = inspect.getclosurevars(fn)
    except (TypeError, ValueError):
        return
    for value in [*found.nonlocals.values(), *found.globals.values()]:
        if inspect.ismodule(value):
            modules.add(value.__name__)
        elif inspect.isfunction(value):
            if id(value) not in seen:
                seen.add(id(value))
                modules.add(value.__module__)
                worklist.append(value)
        else:
            module = getattr(value, "__module__", None)
            if isinstance(module, str):
                modules.add(module)


def _frontier(published, steps) -> list[str]:
    """Run ``steps`` on every function reached from ``published``; the modules they found, as distributions."""
    fn = _as_function(published)
    if fn is None:
        return []
    modules: set[str] = set()
    worklist, seen = [fn], {id(fn)}
    for current in worklist:
        for step in steps:
            step(current, modules, worklist, seen)
    return distributions_for(modules)


def closure_vars_only(published) -> list[str]:
    """Baseline A."""
    return _frontier(published, (_closure_step,))


def _import_path(dotted: str, modules: set[str]) -> None:
    parts = dotted.split(".")
    for end in range(1, len(parts) + 1):
        name = ".".join(parts[:end])
        try:
            importlib.import_module(name)  # as the write-up does: the path must resolve to modules
        except Exception:
            return
        modules.add(name)


def _bytecode_step(fn, modules: set[str], worklist: list, seen: set[int]) -> None:
    namespace = fn.__globals__
    codes = [fn.__code__]
    for code in codes:
        last_module = None
        for instruction in dis.get_instructions(code):
            opname, argval = instruction.opname, instruction.argval
            value = None
            if opname == "IMPORT_NAME" and isinstance(argval, str):
                _import_path(argval, modules)
            elif opname in ("LOAD_GLOBAL", "LOAD_NAME") and isinstance(argval, str):
                value = namespace.get(argval)
                if inspect.ismodule(value):
                    modules.add(value.__name__)
                elif inspect.isfunction(value) and id(value) not in seen:
                    seen.add(id(value))
                    modules.add(value.__module__)
                    worklist.append(value)
            elif opname in ("LOAD_ATTR", "LOAD_METHOD") and last_module is not None:
                value = getattr(last_module, argval, None)
                if inspect.ismodule(value):
                    modules.add(value.__name__)
            elif isinstance(argval, types.CodeType) and id(argval) not in seen:
                seen.add(id(argval))
                codes.append(argval)
            last_module = value if inspect.ismodule(value) else None


def closure_vars_and_bytecode(published) -> list[str]:
    """Baseline B."""
    return _frontier(published, (_closure_step, _bytecode_step))
