"""Serialise the published callables with cloudpickle, turning failures into actionable errors."""

from __future__ import annotations

import contextlib
import importlib

import cloudpickle

from jupyterlab_publish.errors import PublishError

from .diagnose import find_unpicklable


@contextlib.contextmanager
def register_modules_by_value(module_names):
    """For the ``with`` block: cloudpickle embeds the named modules' code instead of importing them.

    (Not ``frontier.analyzer.pickled_by_value``, which asks whether one value already travels so.)
    Local modules (a ``utils.py`` next to the notebook) are not installed in the service's
    environment, so their functions and classes must travel inside the pickle. The registration is
    process-wide, hence undone on exit — except for modules that were registered before we came.
    """
    already = set(cloudpickle.list_registry_pickle_by_value())
    registered = []
    try:
        for name in module_names:
            if not isinstance(name, str) or not name:
                raise PublishError("bad_request", f"local module {name!r} is not a module name",
                                   "Give local modules by their import name, e.g. 'utils'.")
            try:
                module = importlib.import_module(name)
            except ImportError as exc:
                raise PublishError(
                    "bad_request",
                    f"local module {name!r} cannot be imported: {exc}",
                    "Import it in the notebook first, or remove it from the local modules.",
                ) from exc
            if name not in already:
                cloudpickle.register_pickle_by_value(module)
                registered.append(module)
        yield
    finally:
        for module in registered:
            cloudpickle.unregister_pickle_by_value(module)


def dump_callable(fn, label: str) -> bytes:
    """``cloudpickle.dumps(fn)``, or PublishError("unpicklable") naming the offending capture."""
    try:
        return cloudpickle.dumps(fn)
    except Exception as exc:  # pickling raises many types; all mean the same thing to the user
        problems = find_unpicklable(fn)
        if not problems:
            raise PublishError(
                "unpicklable",
                f"Cannot pickle {label}: {type(exc).__name__}: {exc}",
                "Define the function at the top level of a cell (or in a local module) so that it "
                "can be serialised.",
            ) from exc
        first = problems[0]
        message = f"Cannot pickle {first['path']}: {first['type']} ({first['error']})"
        if len(problems) > 1:
            message += "; also " + ", ".join(f"{p['path']}: {p['type']}" for p in problems[1:])
        raise PublishError("unpicklable", message, first["hint"], details={"problems": problems}) from exc
