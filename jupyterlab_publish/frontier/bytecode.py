"""What a code object asks for, read from its bytecode.

The walker sees ``dis`` instructions only through ``opname`` and ``argval`` and groups opnames into
families, so one reading serves CPython 3.9-3.14: LOAD_GLOBAL's NULL bit (3.11+) lives in ``arg``
and ``argrepr`` but never in ``argval``; 3.12 folded LOAD_METHOD into LOAD_ATTR; 3.12+ inlines
comprehensions (PEP 709) into the enclosing code; 3.13/3.14 add fused and borrowed fast loads and
LOAD_SMALL_INT. Raw opcode numbers change between versions, opnames and argvals do not.

``scan_instructions`` accepts any iterable of instruction-like objects so the walker can be tested
on instruction streams recorded from other Python versions.
"""

from __future__ import annotations

import dis
import types
from dataclasses import dataclass, field
from typing import Iterable, Sequence

# Instructions that never change meaning: caches and argument prefixes can sit between a load and
# the attribute read that follows it.
_INVISIBLE = frozenset({"CACHE", "EXTENDED_ARG", "NOP"})
_GLOBAL_LOADS = frozenset({"LOAD_GLOBAL", "LOAD_NAME", "LOAD_FROM_DICT_OR_GLOBALS"})
# cloudpickle carries globals a function writes as well as those it reads.
_GLOBAL_WRITES = frozenset({"STORE_GLOBAL", "DELETE_GLOBAL"})
_FREE_LOADS = frozenset({"LOAD_DEREF", "LOAD_CLASSDEREF", "LOAD_FROM_DICT_OR_DEREF", "LOAD_CLOSURE"})
_ATTR_LOADS = frozenset({"LOAD_ATTR", "LOAD_METHOD"})
_NAME_STORES = frozenset({"STORE_FAST", "STORE_NAME", "STORE_GLOBAL", "STORE_DEREF"})
# 3.13+ may fuse the store of an import with the next load: argval is (stored, loaded).
_STORE_THEN_LOAD = "STORE_FAST_LOAD_FAST"
# Between IMPORT_NAME and the stores of `import a.b as c` / `from m import x, y` the compiler only
# shuffles the stack.
_IMPORT_SHUFFLES = frozenset({"SWAP", "POP_TOP", "ROT_TWO", "COPY"})
# Instructions that may sit between a literal first argument and the call without changing it.
_ARGUMENT_LOADS = frozenset({"PUSH_NULL", "KW_NAMES", "PRECALL"})

# Longer string constants are prose or data, not the paths and URLs engine hints look for.
_MAX_STRING = 500

# Callees whose argument decides what gets imported or run; the analyzer checks the live value.
DYNAMIC_CALLEES = frozenset({"eval", "exec", "__import__", "import_module"})


@dataclass(frozen=True)
class NameUse:
    """A name read, with the attribute chain read off it (``np.linalg.norm`` -> np, (linalg, norm)).

    ``scope`` is "global", "free" (closure cell), "local" (a fast local) or, after import bindings
    are applied, "module" with ``name`` the dotted module path the local was bound to.
    """

    scope: str
    name: str
    attrs: tuple[str, ...] = ()

    @property
    def last(self) -> str:
        return self.attrs[-1] if self.attrs else self.name


@dataclass(frozen=True)
class ImportUse:
    """One ``import``/``from ... import`` statement: ``module`` as written (no dots), its level."""

    module: str
    level: int = 0
    names: tuple[str, ...] = ()


@dataclass(frozen=True)
class CallUse:
    """A call of a possibly dynamic callee; ``literal`` is its first argument if a plain string."""

    callee: NameUse
    literal: str | None


@dataclass
class CodeScan:
    names: set[NameUse] = field(default_factory=set)
    global_writes: set[str] = field(default_factory=set)
    # names assigned with STORE_NAME (class bodies): reading them back is not an undefined global
    name_stores: set[str] = field(default_factory=set)
    imports: list[ImportUse] = field(default_factory=list)
    # local name -> dotted module path bound to it by an import statement in this code
    bindings: dict[str, str] = field(default_factory=dict)
    calls: list[CallUse] = field(default_factory=list)
    # every attribute name read, whatever it was read from (``df.to_parquet``): plugin-engine hints
    attributes: set[str] = field(default_factory=set)
    # string constants (paths, URLs, engine names): plugin-engine hints
    strings: set[str] = field(default_factory=set)

    @property
    def global_names(self) -> set[str]:
        return {use.name for use in self.names if use.scope == "global"} | self.global_writes

    def merge(self, other: CodeScan) -> None:
        self.names |= other.names
        self.global_writes |= other.global_writes
        self.name_stores |= other.name_stores
        self.imports.extend(i for i in other.imports if i not in self.imports)
        self.calls.extend(c for c in other.calls if c not in self.calls)
        self.attributes |= other.attributes
        self.strings |= other.strings


def _is_const_load(opname: str) -> bool:
    return opname.startswith("LOAD_CONST") or opname == "LOAD_SMALL_INT"


def _is_call(opname: str) -> bool:
    return opname.startswith("CALL") or opname == "PRECALL"


def _loaded_name(ins) -> tuple[str, str] | None:
    """(scope, name) if ``ins`` pushes the value of a variable, else None."""
    op = ins.opname
    if op == _STORE_THEN_LOAD:
        return "local", ins.argval[1]
    if op in _GLOBAL_LOADS:
        return "global", ins.argval
    if op in _FREE_LOADS:
        return "free", ins.argval
    if op.startswith("LOAD_FAST"):
        # Fused loads (3.13+) carry a tuple of names; the last one ends up on top of the stack.
        argval = ins.argval
        return "local", argval[-1] if isinstance(argval, tuple) else argval
    return None


def _argument_effect(ins) -> tuple[int, int] | None:
    """(entries taken, entries pushed) for an instruction that only builds call arguments, or
    None for any other (it may compute with the values below it)."""
    op = ins.opname
    if op == "PUSH_NULL":
        return 0, 1
    if op in _ARGUMENT_LOADS:
        return 0, 0
    if op in _ATTR_LOADS:
        return 1, 1  # an attribute of the value on top (a method load may push 2: counted as 1)
    if op.startswith("LOAD_"):
        return 0, 1
    count = ins.argval
    if not isinstance(count, int):
        return None
    if op in ("BUILD_LIST", "BUILD_TUPLE", "BUILD_SET"):
        return count, 1
    if op == "BUILD_MAP":
        return 2 * count, 1
    if op == "BUILD_CONST_KEY_MAP":
        return count + 1, 1
    if op in ("LIST_EXTEND", "SET_UPDATE", "DICT_UPDATE", "DICT_MERGE", "LIST_APPEND", "SET_ADD"):
        return 1, 0  # into the collection below, which stays
    return None


def _literal_first_argument(instructions: Sequence, start: int) -> str | None:
    """The string constant passed as first argument to a callee loaded just before ``start``.

    Only counts when nothing computes with it before the call: ``f("a")``, ``f("a", pkg)`` and
    ``f("a", fromlist=["b"])`` are literal, ``f("a" + x)``, ``f("a".upper())`` and ``f(x)`` are
    not. The instructions after the literal are followed by how much of the stack above the
    literal they take; one that would take the literal itself, other than the call, disqualifies it.
    """
    if start >= len(instructions):
        return None
    first = instructions[start]
    if not (_is_const_load(first.opname) and isinstance(first.argval, str)):
        return None
    above = 0  # stack entries pushed on top of the literal
    for ins in instructions[start + 1 :]:
        if _is_call(ins.opname) and ins.opname != "PRECALL":
            # A call taking only what was pushed above the literal builds another argument.
            taken = _call_pops(ins)
            if taken is None or taken > above:
                return first.argval
            above -= taken - 1
            continue
        effect = _argument_effect(ins)
        if effect is None or effect[0] > above:
            return None
        above += effect[1] - effect[0]
    return None


def _call_pops(ins) -> int | None:
    """Stack entries a call takes: its arguments, the callable and, from 3.11, a NULL or self."""
    count = ins.argval
    if not isinstance(count, int):
        return None
    op = ins.opname
    if op == "CALL_FUNCTION":
        return count + 1
    if op in ("CALL_FUNCTION_KW", "CALL_METHOD", "CALL"):
        return count + 2
    if op == "CALL_KW":
        return count + 3
    return None


def _import_level_and_fromlist(instructions: Sequence, index: int) -> tuple[int, tuple | None]:
    """IMPORT_NAME pops (level, fromlist), pushed by the two loads just before it."""
    level, fromlist = 0, None
    if index >= 2:
        level_ins, fromlist_ins = instructions[index - 2], instructions[index - 1]
        if _is_const_load(level_ins.opname) and isinstance(level_ins.argval, int):
            level = level_ins.argval
        if _is_const_load(fromlist_ins.opname) and isinstance(fromlist_ins.argval, tuple):
            fromlist = fromlist_ins.argval
    return level, fromlist


def _read_import(instructions: Sequence, index: int, scan: CodeScan) -> int:
    """Record the import at ``instructions[index]`` and the names it binds; return the next index."""
    module = instructions[index].argval or ""
    level, fromlist = _import_level_and_fromlist(instructions, index)
    prefix = "." * level
    # `import a.b` binds the top package; `import a.b as c` walks down with IMPORT_FROM.
    current = prefix + (module if fromlist is not None else module.split(".")[0])
    taken: list[str] = []
    bound_path = current
    i = index + 1
    while i < len(instructions):
        ins = instructions[i]
        if ins.opname == "IMPORT_FROM":
            if fromlist is None:
                current = f"{current}.{ins.argval}"
                bound_path = current
            else:
                taken.append(ins.argval)
                base = prefix + module
                bound_path = f"{base}.{ins.argval}" if module else f"{base}{ins.argval}"
        elif ins.opname == _STORE_THEN_LOAD:
            # The load half starts a new chain: leave the instruction for the main loop.
            scan.bindings[ins.argval[0]] = bound_path
            break
        elif ins.opname in _NAME_STORES:
            scan.bindings[ins.argval] = bound_path
            if fromlist is None:
                i += 1
                break
        elif ins.opname not in _IMPORT_SHUFFLES:
            break
        i += 1
    scan.imports.append(ImportUse(module, level, tuple(taken) if fromlist is not None else ()))
    return i


def scan_instructions(instructions: Iterable) -> CodeScan:
    """Scan one code object's instructions (nested code objects are not followed here)."""
    stream = [ins for ins in instructions if ins.opname not in _INVISIBLE]
    scan = CodeScan()
    chain: list | None = None  # [scope, name, attrs] of the load being followed

    def close_chain(next_index: int) -> None:
        nonlocal chain
        if chain is None:
            return
        use = NameUse(chain[0], chain[1], tuple(chain[2]))
        scan.names.add(use)
        if use.last in DYNAMIC_CALLEES:
            scan.calls.append(CallUse(use, _literal_first_argument(stream, next_index)))
        chain = None

    i = 0
    while i < len(stream):
        ins = stream[i]
        loaded = _loaded_name(ins)
        if loaded is not None:
            close_chain(i)
            chain = [loaded[0], loaded[1], []]
        elif ins.opname in _ATTR_LOADS and chain is not None:
            chain[2].append(ins.argval)
            scan.attributes.add(ins.argval)
        else:
            close_chain(i)
            if ins.opname in _GLOBAL_WRITES:
                scan.global_writes.add(ins.argval)
            elif ins.opname == "STORE_NAME":
                scan.name_stores.add(ins.argval)
            elif ins.opname in _ATTR_LOADS:
                scan.attributes.add(ins.argval)
            elif ins.opname == "IMPORT_NAME":
                i = _read_import(stream, i, scan)
                continue
        i += 1
    close_chain(len(stream))
    return scan


def _bind(use: NameUse, bindings: dict[str, str]) -> NameUse | None:
    """Rewrite a local/free read of an imported name as a read of the module path."""
    if use.scope in ("local", "free") and use.name in bindings:
        return NameUse("module", bindings[use.name], use.attrs)
    if use.scope == "local":
        return None  # a plain local variable: nothing to resolve outside the function
    return use


def scan_code(code: types.CodeType, inherited: dict[str, str] | None = None) -> CodeScan:
    """Scan ``code`` and every code object nested in it (defs, lambdas, comprehensions, classes).

    Import bindings flow into nested code through closure cells, so ``inherited`` carries the
    enclosing code's bindings for the names it shares with the nested one.
    """
    own = scan_instructions(dis.get_instructions(code))
    bindings = {**(inherited or {}), **own.bindings}
    result = CodeScan(
        global_writes=set(own.global_writes),
        name_stores=set(own.name_stores),
        imports=list(own.imports),
        bindings=bindings,
        attributes=set(own.attributes),
        strings={c for c in code.co_consts if type(c) is str and len(c) <= _MAX_STRING},
    )
    for use in own.names:
        bound = _bind(use, bindings)
        if bound is not None:
            result.names.add(bound)
    for call in own.calls:
        callee = _bind(call.callee, bindings) or call.callee
        result.calls.append(CallUse(callee, call.literal))
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            shared = {n: bindings[n] for n in const.co_freevars if n in bindings}
            result.merge(scan_code(const, shared))
    return result
