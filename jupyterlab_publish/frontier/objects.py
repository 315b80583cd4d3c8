"""A bounded walk over the graph of a captured object (a fitted model, a dict of helpers, ...).

What a pickle of the object needs is, to a close approximation, the modules defining the types of
the objects it holds. The walk is breadth first, so the first path to each type is a shortest one,
and bounded in depth and count because captured objects can be arbitrarily large. Arrays are never
walked element by element: an ndarray has neither ``__dict__`` nor container items to follow.

Modules, functions and classes met on the way are handed back rather than entered: the analyzer
decides whether they are library code (a requirement) or notebook code (walked by its bytecode).
"""

from __future__ import annotations

import collections
import functools
import sys
import types
from dataclasses import dataclass, field
from typing import Callable, Iterator

# Exact types only: a numpy.float64 is a float subclass and does need numpy to unpickle.
SCALAR_TYPES = frozenset(
    {int, float, complex, str, bytes, bool, type(None), bytearray, range, slice, type(Ellipsis), type(NotImplemented)}
)
_DEFINITIONS = (types.ModuleType, types.FunctionType, types.BuiltinFunctionType, type)
_DESCRIPTORS = (
    types.MethodDescriptorType,
    types.WrapperDescriptorType,
    types.ClassMethodDescriptorType,
    types.GetSetDescriptorType,
    types.MemberDescriptorType,
)
_KEY_LABEL_LIMIT = 40

DEFAULT_MAX_DEPTH = 4
DEFAULT_MAX_OBJECTS = 2000


@dataclass(frozen=True)
class Found:
    """A module, function or class reached from the root, and the labelled path to it."""

    value: object
    steps: tuple[str, ...]


@dataclass
class GraphWalk:
    found: list[Found] = field(default_factory=list)
    # (object, steps, verdict) for objects ``check`` objected to
    problems: list[tuple[object, tuple[str, ...], object]] = field(default_factory=list)
    truncated: bool = False
    visited: int = 0


def found_by_qualname(value) -> bool:
    """Whether ``value``'s module gives it back by qualname: then pickle can store it by reference."""
    module = sys.modules.get(getattr(value, "__module__", None) or "")
    qualname = getattr(value, "__qualname__", "")
    if module is None or not isinstance(qualname, str) or not qualname:
        return False
    target = module
    for part in qualname.split("."):
        if part == "<locals>":
            return False
        try:
            target = getattr(target, part)
        except Exception:
            return False
    return target is value


def is_scalar(value: object) -> bool:
    return type(value) in SCALAR_TYPES


def is_definition(value: object) -> bool:
    return isinstance(value, _DEFINITIONS)


def describe(value: object) -> str:
    """Short name for a path label: a module's name, a def's qualname, else the type's qualname."""
    if isinstance(value, types.ModuleType):
        return value.__name__
    if isinstance(value, (types.FunctionType, type)):
        return getattr(value, "__qualname__", value.__name__)
    return type(value).__qualname__


def _key_label(key: object) -> str:
    if is_scalar(key):
        text = repr(key)
        return text if len(text) <= _KEY_LABEL_LIMIT else text[: _KEY_LABEL_LIMIT - 1] + "…"
    return "…"


def _item_children(obj: object) -> Iterator[tuple[str, object]]:
    # Base-class methods, so container subclasses with odd __iter__/items cannot mislead the walk.
    if isinstance(obj, dict):
        for key, value in dict.items(obj):
            if not is_scalar(key):
                yield "key", key
            yield f"[{_key_label(key)}]", value
    elif isinstance(obj, (list, tuple, collections.deque)):
        for position, value in enumerate(obj):
            yield f"[{position}]", value
    elif isinstance(obj, (set, frozenset)):
        for value in obj:
            yield "{…}", value


def _wrapper_children(obj: object) -> Iterator[tuple[str, object]]:
    """Objects that pickle by what they wrap: bound methods, partials, descriptors, type aliases."""
    if isinstance(obj, types.MethodType):
        yield ".__func__", obj.__func__
        yield ".__self__", obj.__self__
    elif isinstance(obj, functools.partial):
        yield ".func", obj.func
        yield ".args", obj.args
        yield ".keywords", obj.keywords
    elif isinstance(obj, (staticmethod, classmethod)):
        yield ".__func__", obj.__func__
    elif isinstance(obj, property):
        for name in ("fget", "fset", "fdel"):
            yield f".{name}", getattr(obj, name)
    elif isinstance(obj, _DESCRIPTORS):
        yield ".__objclass__", getattr(obj, "__objclass__", None)
    elif type(obj).__module__ in ("typing", "types") and hasattr(obj, "__args__"):
        yield ".__origin__", getattr(obj, "__origin__", None)
        yield ".__args__", getattr(obj, "__args__", ())


def _slot_names(cls: type) -> Iterator[str]:
    for klass in cls.__mro__:
        slots = klass.__dict__.get("__slots__", ())
        for name in (slots,) if isinstance(slots, str) else slots:
            if name in ("__dict__", "__weakref__"):
                continue
            # Private slot names are stored mangled, as the compiler would spell them.
            if name.startswith("__") and not name.endswith("__"):
                name = f"_{klass.__name__.lstrip('_')}{name}"
            yield name


def _attribute_children(obj: object) -> Iterator[tuple[str, object]]:
    # object.__getattribute__ bypasses __getattr__ hooks that could invent values or run code.
    try:
        namespace = object.__getattribute__(obj, "__dict__")
    except Exception:
        namespace = None
    if isinstance(namespace, dict):
        for name, value in dict.items(namespace):
            yield f".{name}", value
    for name in _slot_names(type(obj)):
        try:
            yield f".{name}", object.__getattribute__(obj, name)
        except Exception:  # unset slot
            continue


def children(obj: object) -> Iterator[tuple[str, object]]:
    yield from _item_children(obj)
    yield from _wrapper_children(obj)
    yield from _attribute_children(obj)


def walk_object_graph(
    root: object,
    *,
    seen: set[int],
    keep: list,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_objects: int = DEFAULT_MAX_OBJECTS,
    check: Callable[[object], object] | None = None,
) -> GraphWalk:
    """Breadth-first walk from ``root``; ``seen`` (ids) is shared across one analysis.

    ``keep`` holds every visited object so ids cannot be reused while the analysis runs. ``check``
    returns a verdict (with a ``descend`` attribute) for objects that cannot be pickled, or None;
    what such an object holds is not walked unless the verdict says to.
    """
    walk = GraphWalk()
    types_found: set[int] = set()
    queue = collections.deque([(root, (), 0)])
    considered = 0  # every child looked at counts, scalars too: a list of a million floats is large
    while queue and not walk.truncated:
        obj, steps, depth = queue.popleft()
        if is_scalar(obj) or id(obj) in seen:
            continue
        seen.add(id(obj))
        keep.append(obj)
        walk.visited += 1
        if is_definition(obj):
            walk.found.append(Found(obj, steps))
            continue
        if id(type(obj)) not in types_found:
            types_found.add(id(type(obj)))
            walk.found.append(Found(type(obj), steps))
        verdict = check(obj) if check is not None else None
        if verdict is not None:
            walk.problems.append((obj, steps, verdict))
            if not getattr(verdict, "descend", False):
                continue
        if depth >= max_depth:
            continue
        for label, child in children(obj):
            considered += 1
            if considered > max_objects:
                walk.truncated = True
                break
            if is_scalar(child) or id(child) in seen:
                continue
            queue.append((child, steps + (f"{label} ({describe(child)})",), depth + 1))
    return walk
