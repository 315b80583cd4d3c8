"""Find which captured object makes a function unpicklable, and say what to do about it.

``cloudpickle.dumps(fn)`` fails with a message about a type ("cannot pickle '_thread.lock'
object") but not about *where* that object is. This module retraces what cloudpickle serialises for
a function — the globals its code names, its closure cells and its defaults — tries each on its own,
and descends into the failing ones (dicts, lists, tuples, sets, instance attributes, nested
functions and classes) until it reaches the innermost object that fails, so the user reads
``predictor → helpers['lock']`` instead of a type name. (What each capture weighs once pickled is
``capture_sizes.py``.)
"""

from __future__ import annotations

import builtins
import types

import cloudpickle

from jupyterlab_publish.frontier import unpicklable

MAX_DEPTH = 12  # deeper structures are reported at this depth rather than walked forever

GENERIC_HINT = (
    "Recreate this object inside the function (or lazily on first call), or capture only the plain "
    "data it is built from."
)


def find_unpicklable(fn) -> list:
    """Return one entry per innermost unpicklable object reachable from ``fn``'s captures.

    Each entry is ``{"path", "type", "error", "hint"}``; an empty list means every capture pickles
    on its own (a failure then lies in ``fn`` itself).
    """
    walker = _Walker()
    root = getattr(fn, "__name__", None) or type(fn).__name__  # qualnames of closures read "<locals>"
    for path, value in _children(fn, root):
        walker.check(path, value, depth=1)
    return walker.problems


def type_name(value) -> str:
    cls = type(value)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def hint_for(value) -> str:
    """A next step for the kinds of objects that commonly end up captured by accident."""
    return unpicklable.hint_for(value) or GENERIC_HINT


def _dumps_error(value) -> Exception | None:
    try:
        cloudpickle.dumps(value)
    except Exception as exc:  # cloudpickle surfaces TypeError, PicklingError, AttributeError...
        return exc
    return None


class _Walker:
    def __init__(self):
        self.problems = []
        self._verdicts = {}  # id → does it fail; objects shared by several paths are tried once
        self._alive = []  # keeps walked objects alive so their ids stay unique during the walk

    def check(self, path: str, value, depth: int) -> bool:
        """Record the innermost failures under ``value``; return True if ``value`` fails."""
        if id(value) in self._verdicts:
            return self._verdicts[id(value)]
        self._verdicts[id(value)] = False  # while in progress: a cycle back to it adds nothing
        self._alive.append(value)
        error = _dumps_error(value)
        if error is None:
            return False
        inner_failed = False
        if depth < MAX_DEPTH:
            for child_path, child in _children(value, path):
                inner_failed |= self.check(child_path, child, depth + 1)
        if not inner_failed:
            self.problems.append(
                {
                    "path": path,
                    "type": type_name(value),
                    "error": f"{type(error).__name__}: {error}",
                    "hint": hint_for(value),
                }
            )
        self._verdicts[id(value)] = True
        return True


def _children(value, path: str):
    """Yield (path, object) for what pickling ``value`` also pickles, as far as we can name it."""
    if isinstance(value, types.FunctionType):
        yield from _function_captures(value, path)
    elif isinstance(value, types.MethodType):
        yield f"{path}.__self__", value.__self__
        yield from _function_captures(value.__func__, path)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield f"{path}[{key!r}]", item
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield f"{path}[{index}]", item
    elif isinstance(value, (set, frozenset)):
        for item in value:
            yield f"{path} ∋ {type_name(item)}", item
    elif isinstance(value, type):
        for attr, item in vars(value).items():
            if not (attr.startswith("__") and attr.endswith("__")):
                yield f"{path}.{attr}", item
    elif isinstance(getattr(value, "__dict__", None), dict):
        for attr, item in vars(value).items():
            yield f"{path}.{attr}", item


def _function_captures(fn: types.FunctionType, path: str):
    code = fn.__code__
    fn_globals = fn.__globals__
    for name in sorted(_global_names(code)):
        # co_names also lists attribute names; like cloudpickle, keep those that are globals.
        if name in fn_globals and not _is_builtin(name, fn_globals[name]):
            yield f"{path} → {name}", fn_globals[name]
    for name, cell in zip(code.co_freevars, fn.__closure__ or ()):
        try:
            yield f"{path} → {name}", cell.cell_contents
        except ValueError:  # an empty cell: the variable was never assigned
            continue
    positional = code.co_varnames[: code.co_argcount]
    defaults = fn.__defaults__ or ()
    for name, default in zip(positional[len(positional) - len(defaults):], defaults):
        yield f"{path} → default of {name}", default
    for name, default in (fn.__kwdefaults__ or {}).items():
        yield f"{path} → default of {name}", default


def _global_names(code: types.CodeType) -> set:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):  # nested functions, lambdas, comprehensions
            names |= _global_names(const)
    return names


def _is_builtin(name: str, value) -> bool:
    return getattr(builtins, name, None) is value
