"""A bounded walk over the graph of a captured object (a fitted model, a dict of helpers, ...).

What a pickle of the object needs is, to a close approximation, the modules defining the types of
the objects it holds. The walk follows what pickle follows: container items, ``__dict__`` and
``__slots__``, and, for objects keeping their state out of sight (extension types such as pandas'
block managers), the arguments and state their reduction gives pickle. Objects pickle stores by
name (a ufunc, a module-level singleton) contribute the module pickle will import them from.

The walk is breadth first, so the first path to each type is a shortest one, and bounded because
captured objects can be arbitrarily large: depth counts only hops from object to object (a list or
a dict in between is plumbing), containers are read up to a number of items, and the number of
objects looked at is capped. Buffers (numeric arrays) are never reduced: their type says it all.

Modules, functions and classes met on the way are handed back rather than entered: the analyzer
decides whether they are library code (a requirement) or notebook code (walked by its bytecode).
"""

from __future__ import annotations

import collections
import copyreg
import functools
import pickle
import sys
import types
import weakref
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
_CONTAINERS = (dict, list, tuple, set, frozenset, collections.deque)
# Py_TPFLAGS_HEAPTYPE: clear on static extension types (Cython may also make heap types).
_HEAPTYPE = 1 << 9
_FIELD_DESCRIPTORS = (types.GetSetDescriptorType, types.MemberDescriptorType)
_C_FIELDS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # type -> _has_fields_in_c
# The protocol whose reductions hand array data over as buffers instead of copying it.
_REDUCE_PROTOCOL = 5

DEFAULT_MAX_DEPTH = 5
DEFAULT_MAX_OBJECTS = 2000
DEFAULT_MAX_ITEMS = 10_000


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


def _is_buffer(obj: object) -> bool:
    """Whether ``obj`` is plain data in a buffer (not one of Python objects: numpy's object arrays
    export their pointers as format "O", and pickle saves the objects themselves)."""
    try:
        with memoryview(obj) as view:
            return view.format != "O"
    except Exception:
        return False


def _reduction(obj: object):
    """How pickle would reduce ``obj``, where that is cheap and tells something; else None.

    A reducer registered with copyreg (numpy's for ufuncs) is always asked. ``__reduce_ex__`` is
    asked only of objects hiding their state: for ordinary ones it repeats ``__dict__`` at best,
    and some libraries serialise a whole model in it.
    """
    reducer = copyreg.dispatch_table.get(type(obj))
    try:
        if reducer is not None:
            return reducer(obj)
        return obj.__reduce_ex__(_REDUCE_PROTOCOL) if _hidden_state(obj) else None
    except Exception:  # pickling it would fail too; the unpicklable checks say why where they can
        return None


def reference_module(obj: object, reduction=None) -> types.ModuleType | None:
    """The module pickle imports ``obj`` from when it stores ``obj`` by name, else None.

    Pickle stores by name whatever reduces to a string, and looks for the module the way
    ``pickle.whichmodule`` does: ``__module__`` if set, else the module holding that very object.
    """
    if not isinstance(reduction, str):
        return None
    module_name = getattr(obj, "__module__", None)
    if not isinstance(module_name, str):
        module_name = pickle.whichmodule(obj, reduction)
    if module_name in ("__main__", "__mp_main__"):
        return None  # the notebook itself: walked like any other value
    return sys.modules.get(module_name)


def _reduce_children(reduction) -> Iterator[tuple[str, object]]:
    """The callable, arguments and state of a reduction, as pickle will save them."""
    if not isinstance(reduction, tuple) or not reduction:
        return
    yield ".__reduce__() callable", reduction[0]
    if len(reduction) > 1 and isinstance(reduction[1], tuple):
        for position, value in enumerate(reduction[1]):
            yield f".__reduce__() argument {position}", value
    if len(reduction) > 2 and reduction[2] is not None:
        yield ".__reduce__() state", reduction[2]


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


def children(obj: object, reduction=None) -> Iterator[tuple[str, object]]:
    """``reduction``: what reducing ``obj`` gave, when its state may be hidden (see ``_reduction``)."""
    yield from _item_children(obj)
    yield from _wrapper_children(obj)
    yield from _attribute_children(obj)
    yield from _reduce_children(reduction)


def _has_fields_in_c(cls: type) -> bool:
    """Whether instances of ``cls`` keep fields at C level: an extension type in its MRO, or a class
    exposing C fields as descriptors (Cython's ``cdef public``/``readonly``; pandas' blocks)."""
    known = _C_FIELDS.get(cls)
    if known is not None:
        return known
    answer = False
    for klass in cls.__mro__:
        if klass is object:
            continue
        if not klass.__flags__ & _HEAPTYPE:
            answer = True
            break
        namespace = vars(klass)
        slots = namespace.get("__slots__", ())
        slots = {slots} if isinstance(slots, str) else set(slots)
        if any(
            isinstance(value, _FIELD_DESCRIPTORS) and name not in ("__dict__", "__weakref__") and name not in slots
            for name, value in namespace.items()
        ):
            answer = True
            break
    try:
        _C_FIELDS[cls] = answer
    except TypeError:  # a type that cannot be weakly referenced: just not remembered
        pass
    return answer


def _hidden_state(obj: object) -> bool:
    """Whether ``obj`` may hold what neither its items nor its attributes show: fields kept at C
    level, or no attributes at all. Numeric buffers are excluded: their type says it all."""
    if isinstance(obj, _CONTAINERS) or _is_buffer(obj):
        return False
    if _has_fields_in_c(type(obj)):
        return True
    try:
        namespace = object.__getattribute__(obj, "__dict__")
    except Exception:
        namespace = None
    return not namespace and not any(True for _ in _slot_names(type(obj)))


def walk_object_graph(
    root: object,
    *,
    seen: set[int],
    keep: list,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_objects: int = DEFAULT_MAX_OBJECTS,
    max_items: int = DEFAULT_MAX_ITEMS,
    check: Callable[[object], object] | None = None,
    observe: Callable[[object, tuple[str, ...]], None] | None = None,
) -> GraphWalk:
    """Breadth-first walk from ``root``; ``seen`` (ids) is shared across one analysis.

    ``keep`` holds every visited object so ids cannot be reused while the analysis runs (and the
    reductions made on the way, whose tuples are new objects). ``check`` returns a verdict (with a
    ``descend`` attribute) for objects that cannot be pickled, or None; what such an object holds
    is not walked unless the verdict says to. ``observe`` sees every object walked into, with its path.
    """
    walk = GraphWalk()
    types_found: set[int] = set()
    queue = collections.deque([(root, (), 0)])
    considered = 0  # objects queued: scalars cost nothing to pickle-check, so they do not count
    while queue and considered <= max_objects:
        obj, steps, depth = queue.popleft()
        if is_scalar(obj) or id(obj) in seen:
            continue
        seen.add(id(obj))
        keep.append(obj)
        walk.visited += 1
        if is_definition(obj):
            walk.found.append(Found(obj, steps))
            continue
        reduction = _reduction(obj)
        by_name = reference_module(obj, reduction)
        if by_name is not None:
            walk.found.append(Found(by_name, steps))
            continue
        if reduction is not None:
            keep.append(reduction)
        if id(type(obj)) not in types_found:
            types_found.add(id(type(obj)))
            walk.found.append(Found(type(obj), steps))
        if observe is not None:
            observe(obj, steps)
        verdict = check(obj) if check is not None else None
        if verdict is not None:
            walk.problems.append((obj, steps, verdict))
            if not getattr(verdict, "descend", False):
                continue
        # Containers are plumbing between objects: passing through one is not a step deeper.
        next_depth = depth if isinstance(obj, _CONTAINERS) else depth + 1
        if next_depth > max_depth:
            continue
        for position, (label, child) in enumerate(children(obj, reduction)):
            if position >= max_items:
                walk.truncated = True
                break
            if is_scalar(child) or id(child) in seen:
                continue
            considered += 1
            if considered > max_objects:
                walk.truncated = True
                break
            queue.append((child, steps + (f"{label} ({describe(child)})",), next_depth))
    return walk
