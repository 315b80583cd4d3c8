"""The rooms of the package and the direction of their imports (docs/ARCHITECTURE.md).

Read from the source with ``ast``, so a new import that runs back up the layers, closes a cycle, or
hides inside a function without saying why fails here rather than in a code review.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = "jupyterlab_publish"
ROOT = Path(__file__).resolve().parents[1]

# Lowest first. A module imports from its own room or from rooms of a lower layer, never from a
# room of its own layer or above. ``runtime`` is what a bundle carries: it imports nothing of ours.
LAYERS = (
    ("runtime", "_version"),
    ("errors",),
    ("names", "requirement"),
    ("frontier", "state"),
    ("bundle",),
    ("targets", "functions"),
    ("api", "server"),  # the server extension talks to targets only; it never pickles or analyses
    ("ray_serve",),  # runs only inside a Ray cluster's replicas: reads the bundle store, serves the runtime
    ("kernel", "cli"),
    ("",),  # the package's own __init__: lazy entry points only
)
RANK = {room: rank for rank, rooms in enumerate(LAYERS) for room in rooms}

# Third-party imports each room may make at module level (the kernel side stays light; the
# server side has its own dependencies). Anything else must be imported where it is used, lazily.
ALLOWED_THIRD_PARTY = {
    "runtime": {"cloudpickle", "starlette", "uvicorn", "httptools", "uvloop", "anyio"},
    "errors": set(),
    "names": set(),
    "requirement": {"packaging"},
    "frontier": set(),
    "state": set(),
    "bundle": {"cloudpickle"},
    "targets": set(),
    "functions": {"starlette", "uvicorn", "httpx", "prometheus_client", "packaging", "anyio", "httptools", "uvloop"},
    "api": set(),
    "kernel": {"comm"},
    "cli": set(),
    "server": {"jupyter_server", "tornado"},
    "ray_serve": {"ray", "starlette", "fsspec"},
    "": set(),
}


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(ROOT.rglob("*.py")):
        relative = path.relative_to(ROOT)
        if relative.parts[0] in ("tests", "labextension"):
            continue
        parts = [PACKAGE, *relative.with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def room_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


class _Import:
    def __init__(self, module: str, target: str, line: int, in_function: bool, commented: bool):
        self.module, self.target, self.line = module, target, line
        self.in_function, self.commented = in_function, commented

    def __repr__(self) -> str:
        return f"{MODULES[self.module].relative_to(ROOT.parent)}:{self.line} imports {self.target}"


def _targets(module: str, node: ast.AST) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    assert isinstance(node, ast.ImportFrom)
    if node.level:
        base = module.split(".")
        if MODULES[module].name != "__init__.py":
            base = base[:-1]
        base = base[: len(base) - node.level + 1]
        prefix = ".".join(base + ([node.module] if node.module else []))
    else:
        prefix = node.module or ""
    # ``from .x import y`` names the submodule x.y when there is one, else x.
    return [f"{prefix}.{a.name}" if f"{prefix}.{a.name}" in MODULES else prefix for a in node.names]


def _imports() -> list[_Import]:
    out = []
    for module, path in MODULES.items():
        source = path.read_text("utf-8")
        lines = source.splitlines()
        tree = ast.parse(source)
        stack: list[tuple[ast.AST, bool, bool]] = [(tree, False, False)]
        while stack:
            node, in_function, type_only = stack.pop()
            if isinstance(node, (ast.Import, ast.ImportFrom)) and not type_only:
                # A lazy import says why on its line or the line above it.
                here = lines[node.lineno - 1]
                above = lines[node.lineno - 2] if node.lineno > 1 else ""
                commented = "#" in here or above.strip().startswith("#")
                for target in dict.fromkeys(_targets(module, node)):
                    out.append(_Import(module, target, node.lineno, in_function, commented))
            for child in ast.iter_child_nodes(node):
                child_in_function = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                child_type_only = type_only or (
                    isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test) and child in node.body
                )
                stack.append((child, child_in_function, child_type_only))
    return out


IMPORTS = _imports()


def _internal(imp: _Import) -> str | None:
    """The package module an import names, or None for the standard library and third parties."""
    if imp.target == PACKAGE or imp.target.startswith(PACKAGE + "."):
        target = imp.target
        while target not in MODULES and target.count(".") > 1:
            target = target.rsplit(".", 1)[0]
        return target  # may name a generated module (_version) that a source checkout lacks
    if room_of(imp.module) == "runtime" and f"{PACKAGE}.runtime.{imp.target}" in MODULES:
        # Inside a bundle the runtime's files sit side by side and import each other by bare name.
        return f"{PACKAGE}.runtime.{imp.target}"
    return None


def test_every_room_has_a_layer():
    assert {room_of(m) for m in MODULES} <= set(RANK), "add the new room to LAYERS and docs/ARCHITECTURE.md"


def test_no_import_runs_up_or_across_the_layers():
    wrong = []
    for imp in IMPORTS:
        target = _internal(imp)
        if target is None:
            continue
        here, there = room_of(imp.module), room_of(target)
        if here != there and RANK[there] >= RANK[here]:
            wrong.append(f"{imp!r} (room {here!r}, layer {RANK[here]} → room {there!r}, layer {RANK[there]})")
    assert not wrong, "imports that run back up or across the layers:\n" + "\n".join(wrong)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_cycles():
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for imp in IMPORTS:
        target = _internal(imp)
        # A package's __init__ re-exporting its submodules is how packages work, not a cycle.
        if target in MODULES and target != imp.module and not imp.module.startswith(target + "."):
            graph[imp.module].add(target)
    assert _cycles(graph) == []


def test_imports_inside_functions_say_why():
    silent = list(dict.fromkeys(repr(imp) for imp in IMPORTS if imp.in_function and not imp.commented))
    assert not silent, (
        "an import inside a function must say why on its line or the line above "
        "(it keeps the kernel lean, or the dependency is optional):\n" + "\n".join(silent)
    )


def test_module_level_third_party_imports_fit_the_room():
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    wrong = []
    for imp in IMPORTS:
        if imp.in_function or _internal(imp) is not None:
            continue
        top = imp.target.split(".")[0]
        if top and top not in stdlib and top not in ALLOWED_THIRD_PARTY[room_of(imp.module)]:
            wrong.append(repr(imp))
    assert not wrong, "module-level third-party imports a room may not make:\n" + "\n".join(wrong)


@pytest.mark.parametrize("module", ["jupyterlab_publish.kernel", "jupyterlab_publish.frontier"])
def test_the_kernel_side_imports_stay_light(module):
    """What the front end imports in every kernel loads no third-party package."""
    code = (
        "import sys, json; before = set(sys.modules); import " + module + "; "
        "print(json.dumps(sorted(m.split('.')[0] for m in set(sys.modules) - before)))"
    )
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True,
                                       cwd=str(ROOT.parent)).stdout)
    heavy = {"packaging", "cloudpickle", "starlette", "uvicorn", "httpx", "numpy", "pandas", "jupyter_server"}
    assert heavy.isdisjoint(loaded), sorted(heavy.intersection(loaded))
