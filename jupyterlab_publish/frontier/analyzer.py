"""Walk everything cloudpickle will carry for a function and name the distributions it needs.

cloudpickle pickles notebook code by value (bytecode, the globals it names, closure, defaults,
annotations, ``__dict__``) and library code by reference (module + qualname). So notebook
functions and classes are walked through their bytecode, library definitions contribute their
module, modules contribute themselves, and any other captured value is walked as an object graph.
Walks are queued shortest-path first so each requirement's first explanation is a short one.

Along the way the walk notes what the pickle cannot carry (``unpicklable``), which names are called
and which strings appear (for plugin-engine hints, ``engines``), and which submodules are reached
by attribute only (for the bundle to import before unpickling); at the end the requirements are
locked with their installed dependencies (``lock``).
"""

from __future__ import annotations

import builtins
import functools
import heapq
import importlib
import importlib.util
import inspect
import itertools
import sys
import types
from typing import Callable, Iterable

from . import unpicklable
from .bytecode import CallUse, CodeScan, ImportUse, NameUse, scan_code
from .engines import Setting, read_settings, suggest_engines
from .lock import LockRoot, lock_closure
from .modules import DISTRIBUTION, LOCAL, UNRESOLVED, classify, deepest_submodule, is_stdlib_name
from .objects import DEFAULT_MAX_OBJECTS, describe, found_by_qualname, is_scalar, walk_object_graph
from .report import (
    CHAIN_SEPARATOR,
    FrontierReport,
    FrontierWarning,
    FunctionInfo,
    Hint,
    ReportBuilder,
    join_chain,
    object_path,
)

_NOTEBOOK_MODULES = frozenset({"__main__", "__mp_main__"})
# Class namespace entries that every class has and that hold nothing to require.
_CLASS_BOILERPLATE = frozenset({"__dict__", "__weakref__", "__module__", "__qualname__", "__doc__", "__slots__"})

_PREFLIGHT_HINT = "The pre-flight check runs the function with your sample input in a clean environment."


@functools.lru_cache(maxsize=2048)
def _scan(code: types.CodeType) -> CodeScan:
    # Code objects compare by content, and a scan depends only on content: safe to share.
    return scan_code(code)


def _type_name(value: object) -> str:
    cls = type(value)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def _names_module(step: str, module_name: str) -> bool:
    """Whether a chain step already names the module, so the chain need not repeat it."""
    return (
        step == module_name
        or step.endswith(f"({module_name})")
        or step == f"import {module_name}"
        or step.startswith(f"from {module_name} import ")
    )


def pickled_by_value(value) -> bool:
    """True for functions and classes cloudpickle will serialise with their code."""
    module_name = getattr(value, "__module__", None)
    if not module_name or module_name in _NOTEBOOK_MODULES:
        return True
    if is_stdlib_name(module_name):
        return False
    return classify(module_name).kind == LOCAL or not found_by_qualname(value)


def _builtins_of(fn: types.FunctionType) -> dict:
    namespace = getattr(fn, "__builtins__", None) or fn.__globals__.get("__builtins__", builtins)
    return namespace.__dict__ if isinstance(namespace, types.ModuleType) else namespace


def _package_of(namespace: dict) -> str | None:
    package = namespace.get("__package__")
    if package is None and "__path__" in namespace:
        package = namespace.get("__name__")
    if package is None:
        package = (namespace.get("__name__") or "").rpartition(".")[0]
    return package or None


def _absolute_module(dotted: str, namespace: dict) -> str | None:
    """Resolve a possibly relative module path against the package of ``namespace``."""
    if not dotted.startswith("."):
        return dotted
    package = _package_of(namespace)
    if package is None:
        return None
    try:
        return importlib.util.resolve_name(dotted, package)
    except (ImportError, ValueError):
        return None


def _attribute_uses(scan: CodeScan, scope: str) -> dict[str, set[tuple[str, ...]]]:
    uses: dict[str, set[tuple[str, ...]]] = {}
    for use in scan.names:
        if use.scope == scope:
            uses.setdefault(use.name, set()).add(use.attrs)
    return uses


def _closure_values(fn: types.FunctionType) -> dict[str, object]:
    values = {}
    for name, cell in zip(fn.__code__.co_freevars, fn.__closure__ or ()):
        try:
            values[name] = cell.cell_contents
        except ValueError:  # cell not filled yet
            continue
    return values


def _default_values(fn: types.FunctionType) -> list[tuple[str, object]]:
    code = fn.__code__
    defaults = fn.__defaults__ or ()
    positional = code.co_varnames[: code.co_argcount]
    pairs = list(zip(positional[len(positional) - len(defaults) :], defaults))
    pairs.extend((fn.__kwdefaults__ or {}).items())
    return pairs


class _Analysis:
    def __init__(self) -> None:
        self.report = ReportBuilder()
        self._queue: list = []
        self._order = itertools.count()
        self._queued: set[int] = set()
        self._seen_objects: set[int] = set()
        self._keep: list = []  # holds visited objects so their ids stay unique during the walk
        self._captured: set[int] = set()
        # names called or read as attributes, and string constants, with the first chain to each:
        # what plugin-engine hints are matched against
        self.called: dict[str, tuple[str, ...]] = {}
        self.strings: dict[str, tuple[str, ...]] = {}
        # engine-deciding settings held by captured objects (set_output), with the path to each
        self.settings: dict[Setting, tuple[str, ...]] = {}

    # --- the queue of definitions to walk -------------------------------------------------
    def enqueue(self, walker: Callable, value: object, steps: tuple[str, ...], **options) -> None:
        if id(value) in self._queued:
            return
        self._queued.add(id(value))
        self._keep.append(value)
        heapq.heappush(self._queue, (len(steps), next(self._order), walker, value, steps, options))

    def drain(self) -> None:
        while self._queue:
            _, _, walker, value, steps, options = heapq.heappop(self._queue)
            walker(value, steps, **options)

    # --- values ------------------------------------------------------------------------
    def visit(self, value: object, steps: tuple[str, ...], *, user_code: bool = False) -> None:
        """``user_code``: a function reached here is one the user's functions call by name, so
        what it captures is listed too (not so for methods or code generated by dataclasses)."""
        if is_scalar(value):
            return
        if isinstance(value, types.ModuleType):
            self.reach_module(value.__name__, steps, walk_local=True)
        elif isinstance(value, (types.FunctionType, type)):
            self._visit_definition(value, steps, user_code)
        elif isinstance(value, types.BuiltinFunctionType):
            self._visit_builtin(value, steps)
        else:
            self._walk_object(value, steps)

    def _visit_definition(self, value, steps: tuple[str, ...], user_code: bool) -> None:
        module_name = getattr(value, "__module__", None)
        if isinstance(value, type) and module_name == "builtins":
            return
        if not pickled_by_value(value):
            if module_name:
                self.reach_module(module_name, steps)
            return
        if module_name in sys.modules and module_name not in _NOTEBOOK_MODULES:
            # A local-module def, or a library def not importable by name (made in a factory).
            # Code generated under a made-up module name (namedtuple) has nothing to import.
            self.reach_module(module_name, steps)
        if isinstance(value, type):
            self.enqueue(self._walk_class, value, steps)
        else:
            self.enqueue(self._walk_function, value, steps, user_code=user_code)

    def _visit_builtin(self, value, steps: tuple[str, ...]) -> None:
        owner = getattr(value, "__self__", None)
        module_name = getattr(value, "__module__", None)
        if isinstance(owner, types.ModuleType):
            module_name = owner.__name__
        elif owner is not None:
            self._walk_object(owner, steps + (f".__self__ ({describe(owner)})",))
        if isinstance(module_name, str):
            self.reach_module(module_name, steps)

    def _walk_object(self, value: object, steps: tuple[str, ...]) -> None:
        walk = walk_object_graph(
            value,
            seen=self._seen_objects,
            keep=self._keep,
            check=_check_pickle,
            observe=lambda obj, inner: self._note_settings(obj, steps + inner),
        )
        for found in walk.found:
            self.visit(found.value, steps + found.steps)
        for obj, inner, verdict in walk.problems:
            self._report_unpicklable(obj, steps + inner, verdict)
        if walk.truncated:
            self.report.warn(
                "capture_truncated",
                f"{join_chain(steps)} holds more than {DEFAULT_MAX_OBJECTS} objects; only the first "
                "were inspected for the packages they need.",
                _PREFLIGHT_HINT,
            )

    def _note_settings(self, obj: object, steps: tuple[str, ...]) -> None:
        for setting in read_settings(obj):
            self.settings.setdefault(setting, steps)

    def _report_unpicklable(self, obj: object, steps: tuple[str, ...], verdict: unpicklable.Unpicklable) -> None:
        path = object_path(steps, _type_name(obj))
        record = self.report.error if verdict.severity == unpicklable.ERROR else self.report.warn
        opened = unpicklable.file_name(obj)
        what = f"{verdict.what} ({opened})" if opened else verdict.what
        record(verdict.code, f"{path} is {what}: {verdict.consequence}.", verdict.hint, path)

    def visit_binding(self, name: str, value: object, steps: tuple[str, ...], *, attr_uses=None, kind="", capture=False):
        """A named value: a global, closure cell or default the code refers to.

        ``capture``: list it in the report's ``captured`` (values the user's functions hold)."""
        label = f"{kind} {name}".strip()
        if isinstance(value, types.ModuleType):
            step = label if name == value.__name__ else f"{label} ({value.__name__})"
            for attrs in sorted(attr_uses or {()}):
                target = deepest_submodule(value.__name__, attrs)
                self._reach_submodule(value.__name__, target, steps + (step,))
            return
        if type(value) is str and "://" in value:
            self.strings.setdefault(value, steps + (label,))
        is_code = isinstance(value, (types.FunctionType, type)) and pickled_by_value(value)
        if capture and not is_code and id(value) not in self._captured:
            self._captured.add(id(value))
            self._keep.append(value)
            self.report.capture(name, _type_name(value), steps + (label,), value)
        named_itself = isinstance(value, (types.FunctionType, type)) and value.__name__ == name and not kind
        step = label if named_itself else f"{label} ({describe(value)})"
        self.visit(value, steps + (step,), user_code=capture)

    # --- modules -------------------------------------------------------------------------
    def _reach_submodule(self, root: str, target: str, steps: tuple[str, ...]) -> None:
        """A module reached from ``root`` by attributes; a submodule of a distribution is preloaded."""
        self.reach_module(target, steps, walk_local=True)
        if target != root and classify(target).kind == DISTRIBUTION:
            self.report.preload(target)

    def reach_module(self, module_name: str, steps: tuple[str, ...], *, walk_local: bool = False) -> None:
        """A module the pickle or the code needs. ``walk_local``: the module object itself is
        carried (or imported), so a local module's whole namespace matters, not just one def."""
        if is_stdlib_name(module_name):
            return
        origin = classify(module_name)
        needed_by = join_chain(steps)
        if not (steps and _names_module(steps[-1], module_name)):
            steps = steps + (module_name,)
        if origin.kind == DISTRIBUTION:
            self.report.require(origin.match, module_name, steps)
            if origin.match.editable:
                match = origin.match
                self.report.warn(
                    "editable_install",
                    f"{match.name} {match.version} is an editable install from {match.location}: the target "
                    f"installs {match.name}=={match.version} from its package index, which may not have "
                    "that version, or may have other code than your working copy.",
                    "Publish the package to an index the target can reach, or remove the requirement and "
                    "make its modules local to the notebook so they travel inside the pickle.",
                )
            if origin.match.others:
                self.report.warn(
                    "ambiguous_distribution",
                    f"Module {module_name} is provided by several distributions: {origin.reason}.",
                    "Check the requirement in the Publish dialog and change it if another is right.",
                )
        elif origin.kind == LOCAL:
            self.report.add_local_module(module_name, origin.path or "", steps)
            module = sys.modules.get(module_name)
            if walk_local and module is not None:
                self.enqueue(self._walk_module, module, steps)
        elif origin.kind == UNRESOLVED:
            self.report.warn(
                "unresolved_module",
                f"Module {module_name} (needed by {needed_by}) cannot be resolved: {origin.reason}.",
                "Install it in the kernel's environment, or add the distribution that provides it "
                "in the Publish dialog.",
            )

    def _walk_module(self, module: types.ModuleType, steps: tuple[str, ...]) -> None:
        """A local module carried by value: everything in its namespace travels with it."""
        for name, value in sorted(vars(module).items()):
            if not (name.startswith("__") and name.endswith("__")):
                self.visit_binding(name, value, steps, capture=False)

    # --- notebook code ---------------------------------------------------------------------
    def _walk_class(self, cls: type, steps: tuple[str, ...]) -> None:
        for base in cls.__bases__:
            if base is not object:
                self.visit(base, steps + (f"base {describe(base)}",))
        if type(cls) is not type:
            self.visit(type(cls), steps + (f"metaclass {describe(type(cls))}",))
        for name, value in cls.__dict__.items():
            if name in _CLASS_BOILERPLATE or is_scalar(value):
                continue
            for part, member in _unwrap_member(value):
                self.visit(member, steps + (f"{cls.__name__}.{name}{part}",))

    def _walk_function(self, fn: types.FunctionType, steps: tuple[str, ...], user_code: bool = False) -> None:
        scan = _scan(fn.__code__)
        self._visit_globals(fn, scan, steps, user_code)
        free_uses = _attribute_uses(scan, "free")
        for name, value in _closure_values(fn).items():
            self.visit_binding(name, value, steps, attr_uses=free_uses.get(name), capture=user_code)
        for name, value in _default_values(fn):
            self.visit_binding(name, value, steps, kind="default", capture=user_code)
        for name, value in (getattr(fn, "__annotations__", None) or {}).items():
            self.visit(value, steps + (f"annotation {name} ({describe(value)})",))
        for name, value in vars(fn).items():
            self.visit(value, steps + (f".{name} ({describe(value)})",))
        for imported in scan.imports:
            self._visit_import(imported, fn.__globals__, steps)
        for use in scan.names:
            if use.scope == "module":
                self._visit_imported_attributes(use, fn.__globals__, steps)
            self.called.setdefault(use.name.rpartition(".")[2], steps)
        for call in scan.calls:
            self._check_call(call, fn, steps)
        for attribute in scan.attributes:
            self.called.setdefault(attribute, steps)
        for text in scan.strings:
            self.strings.setdefault(text, steps)

    def _visit_globals(self, fn: types.FunctionType, scan: CodeScan, steps: tuple[str, ...], user_code: bool) -> None:
        namespace, builtin_names = fn.__globals__, _builtins_of(fn)
        uses = _attribute_uses(scan, "global")
        assigned = scan.name_stores | set(scan.bindings)
        for name in sorted(scan.global_names):
            if name in namespace:
                self.visit_binding(name, namespace[name], steps, attr_uses=uses.get(name), capture=user_code)
            elif name not in builtin_names and name not in assigned and name not in scan.global_writes:
                # Notebook code would answer NameError on every call (a kernel restarted, then only
                # this cell run): an error that blocks publishing. In a local module's code a missing
                # name is more often behind a condition, so it stays a warning.
                record = self.report.error if user_code else self.report.warn
                record(
                    "undefined_name",
                    f"{join_chain(steps)} uses {name!r}, which is not defined in the kernel.",
                    f"Run the cell that defines {name} (after a kernel restart: Run → Run All Above "
                    "Selected Cell), then publish again.",
                    name,
                )

    def _visit_import(self, imported: ImportUse, namespace: dict, steps: tuple[str, ...]) -> None:
        written = "." * imported.level + imported.module
        absolute = _absolute_module(written, namespace)
        if absolute is None:
            self.report.warn(
                "unresolved_module",
                f"{join_chain(steps)} has a relative import ({written or '.'}) that cannot be resolved here.",
                "Use an absolute import.",
            )
            return
        if not imported.names:
            self.reach_module(absolute, steps + (f"import {written}",), walk_local=True)
            return
        label = f"from {written} import {', '.join(imported.names)}"
        targets = {deepest_submodule(absolute, (name,)) for name in imported.names}
        for target in sorted(targets):
            self.reach_module(target, steps + (label,), walk_local=True)

    def _visit_imported_attributes(self, use: NameUse, namespace: dict, steps: tuple[str, ...]) -> None:
        """``import scipy`` in the function, then ``scipy.stats.norm``: require the submodule."""
        absolute = _absolute_module(use.name, namespace)
        if absolute is None or absolute not in sys.modules:
            return
        target = deepest_submodule(absolute, use.attrs)
        if target != absolute:
            self._reach_submodule(absolute, target, steps + (f"import {use.name}",))

    # --- what the code loads without importing it ---------------------------------------------
    def suggest_hints(self) -> list[Hint]:
        required = self.report.required_keys
        hints: dict[str, Hint] = {}
        for found in suggest_engines(self.called, self.strings, required, _installed, self.settings):
            origin = classify(found.module)
            if origin.kind != DISTRIBUTION or origin.match.key in required or origin.match.key in hints:
                continue
            chain = (
                self.called.get(found.trigger)
                or next((steps for s, steps in self.settings.items() if s.trigger == found.trigger), ())
                or self._string_chain(found.trigger)
            )
            reason = f"{join_chain(chain)} → {found.reason}" if chain else found.reason
            hints[origin.match.key] = Hint(origin.match.name, origin.match.version, reason, found.module)
        return [hints[key] for key in sorted(hints)]

    def _string_chain(self, trigger: str) -> tuple[str, ...]:
        return next((steps for text, steps in self.strings.items() if text.lower().startswith(trigger)), ())

    def _check_call(self, call: CallUse, fn: types.FunctionType, steps: tuple[str, ...]) -> None:
        callee = _live_callee(call.callee, fn)
        if callee is None:
            return
        spelled = ".".join((call.callee.name,) + call.callee.attrs)
        if callee is builtins.eval or callee is builtins.exec:
            self.report.warn(
                "dynamic_code",
                f"{join_chain(steps)} calls {spelled}(); the packages the evaluated code uses cannot be seen.",
                "Add any packages it needs to the requirements in the Publish dialog. " + _PREFLIGHT_HINT,
            )
        elif callee is builtins.__import__ or callee is importlib.import_module:
            if call.literal and not call.literal.startswith("."):
                self.reach_module(call.literal, steps + (f"{spelled}({call.literal!r})",), walk_local=True)
            else:
                self.report.warn(
                    "dynamic_import",
                    f"{join_chain(steps)} imports a module whose name is computed at run time ({spelled}).",
                    "Import the module by name, or add its distribution in the Publish dialog. " + _PREFLIGHT_HINT,
                )


def _unwrap_member(value) -> list[tuple[str, object]]:
    """Class members as the functions they wrap, so they are walked as code."""
    if isinstance(value, (staticmethod, classmethod)):
        return [("", value.__func__)]
    if isinstance(value, property):
        return [(f".{part}", getattr(value, part)) for part in ("fget", "fset", "fdel") if getattr(value, part)]
    return [("", value)]


def _live_callee(use: NameUse, fn: types.FunctionType):
    """The object a callee load would produce, following attributes of modules only."""
    if use.scope == "global":
        value = fn.__globals__.get(use.name, _builtins_of(fn).get(use.name))
    elif use.scope == "free":
        value = _closure_values(fn).get(use.name)
    elif use.scope == "module":
        absolute = _absolute_module(use.name, fn.__globals__)
        value = _module_path_value(absolute) if absolute else None
    else:
        return None
    for attr in use.attrs:
        if not isinstance(value, types.ModuleType):
            return None
        value = getattr(value, attr, None)
    return value


def _module_path_value(dotted: str):
    """What ``import a.b`` / ``from a import b`` bound: a module, or an attribute of one."""
    if dotted in sys.modules:
        return sys.modules[dotted]
    parent, _, name = dotted.rpartition(".")
    return getattr(sys.modules.get(parent), name, None) if parent else None


def _function_info(fn) -> FunctionInfo:
    name = getattr(fn, "__name__", type(fn).__name__)
    try:
        signature = str(inspect.signature(fn))
    except (TypeError, ValueError):
        signature = ""
    doc = (inspect.getdoc(fn) or "").strip()
    return FunctionInfo(
        name=name,
        qualname=getattr(fn, "__qualname__", name),
        module=getattr(fn, "__module__", None) or "",
        signature=signature,
        doc=doc.splitlines()[0] if doc else "",
    )


def _root_label(value) -> str:
    # __name__ rather than __qualname__: "predict", not "make.<locals>.predict"
    return getattr(value, "__name__", None) or describe(value)


def _check_pickle(value) -> unpicklable.Unpicklable | None:
    return unpicklable.check(value, pickled_by_value)


def _installed(module_name: str) -> bool:
    return classify(module_name).kind == DISTRIBUTION


def analyze_function(fn, *, also: Iterable = (), lock: bool = True) -> FrontierReport:
    """What publishing ``fn`` (and the callables in ``also``, pickled with it) requires, and why.

    ``lock``: also pin the transitive closure of the requirements (from installed metadata).
    """
    analysis = _Analysis()
    for root in (fn, *also):
        target = root.__func__ if isinstance(root, types.MethodType) else root
        analysis.visit(target, (_root_label(root),), user_code=True)
        if isinstance(root, types.MethodType):
            analysis.visit(root.__self__, (_root_label(root), f"__self__ ({describe(root.__self__)})"))
    analysis.drain()
    report = analysis.report.build(_function_info(fn))
    report.hints = analysis.suggest_hints()
    if lock:
        _add_lock(report)
    return report


def _add_lock(report: FrontierReport) -> None:
    # A requirement is declared by the function (or validator) its explanation starts from.
    closure = lock_closure(LockRoot(r.name, r.why.split(CHAIN_SEPARATOR)[0]) for r in report.requirements)
    report.lock = closure.entries
    for gone in closure.missing:
        report.warnings.append(
            FrontierWarning(
                "lock_incomplete",
                f"{gone.name} (required by {', '.join(gone.required_by)}) is not installed here, so the "
                "lock cannot pin it.",
                f"Install it in the kernel's environment (pip install {gone.name}) and analyse again.",
            )
        )
