"""``build_bundle``: turn a live function (and its validator) into a bundle directory.

Everything that can fail on the user's input — names, requirements, pickling, the sample — is
checked in memory first; only then are files written, into a temporary directory renamed into place.
"""

from __future__ import annotations

import datetime
import inspect
import json
import platform
import sys
from pathlib import Path

import cloudpickle

from jupyterlab_publish.errors import PublishError
from jupyterlab_publish.names import check_endpoint_name
from jupyterlab_publish.runtime import service
from jupyterlab_publish.state.atomic import atomic_directory, write_file

from .batching import resolve_batching
from .format import (
    BUNDLE_FORMAT,
    BUNDLE_FORMAT_VERSION,
    ENTRYPOINT,
    FUNCTION_FILE,
    LOCK_FILE,
    MANIFEST,
    REQUIREMENTS_FILE,
    VALIDATOR_FILE,
    Bundle,
    sha256_hex,
)
from .lockfile import lock_requirements, manifest_lock, render_requirements_lock
from .pickling import dump_callable, register_modules_by_value
from .provenance import build_provenance
from .requirements_txt import plan_requirements, render_requirements_txt
from .sample import normalise_sample, run_sample

# ``build_bundle(sample_output=...)`` default: the caller has not run the sample (None is an answer).
NOT_RUN = object()


def build_bundle(
    fn,
    dest_dir,
    *,
    name,
    requirements=(),
    validator=None,
    sample=None,
    local_modules=(),
    provenance=None,
    preload_modules=(),
    batching=None,
    sample_output=NOT_RUN,
) -> Bundle:
    """Write the bundle for ``fn`` to ``dest_dir`` (which must not exist) and return it.

    ``requirements`` are ``Requirement``s (or their wire entries); ``local_modules`` are
    module names whose code travels inside the pickle; ``sample`` (a JSON array or object) is run in
    this process and its answer recorded; ``provenance`` supplies ``notebook`` and ``cell_id``;
    ``preload_modules`` are submodules the service imports before unpickling (cloudpickle re-imports
    only those the kernel had imported when it pickled); ``batching`` (True or a dict, default: the
    function's @vectorized marker) serves it vectorised (see ``bundle/batching.py``).
    ``sample_output``: the answer to ``sample`` when the caller ran it already (``api.publish`` runs
    it as a stage of its own, cancellably), so it is not run twice.
    """
    check_endpoint_name(name)
    _check_callable(fn, "the function")
    if validator is not None:
        _check_callable(validator, "the validator")
    local_modules = _check_local_modules(local_modules)
    plan = plan_requirements(requirements)
    if sample is not None:
        sample = normalise_sample(sample)
    batching = resolve_batching(fn, batching)
    dest = Path(dest_dir)
    if dest.exists():  # fail before the (possibly slow) pickling; atomic_directory checks again
        raise PublishError("bad_request", f"{dest} exists already; a bundle is written to a new directory",
                           "Choose a directory that does not exist yet, or remove the old one first.")

    with register_modules_by_value(local_modules):
        files = {FUNCTION_FILE: dump_callable(fn, _label(fn))}
        if validator is not None:
            files[VALIDATOR_FILE] = dump_callable(validator, _label(validator))
    if sample is None:
        sample_output = None
    elif sample_output is NOT_RUN:
        sample_output = run_sample(fn, sample, validator, batching=batching)

    files[REQUIREMENTS_FILE] = render_requirements_txt(name, plan.lines).encode("utf-8")
    lock, unlocked = lock_requirements(plan.declared, plan.runtime, _label(fn))
    files[LOCK_FILE] = render_requirements_lock(name, lock, unlocked).encode("utf-8")
    for filename in service.RUNTIME_FILES:  # service.py and its sibling modules travel together
        files[filename] = (Path(service.__file__).parent / filename).read_bytes()
    manifest = {
        "format": BUNDLE_FORMAT,
        "format_version": BUNDLE_FORMAT_VERSION,
        "runtime_contract": service.RUNTIME_CONTRACT,  # how a server starts the runtime copied below
        "name": name,
        "function": _describe(fn),
        "validator": {"name": _label(validator)} if validator is not None else None,
        "created": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "python": {
            "version": platform.python_version(),
            "minor": "{}.{}".format(*sys.version_info[:2]),
            "implementation": sys.implementation.name,
        },
        "cloudpickle": cloudpickle.__version__,
        "requirements": [requirement.to_entry() for requirement in plan.declared],
        "runtime_requirements": [requirement.line() for requirement in plan.runtime],
        "local_modules": local_modules,
        "lock": manifest_lock(lock),
        "preload_modules": sorted(set(_check_local_modules(preload_modules))),  # same shape: module names
        "sample": sample,
        "sample_output": sample_output,
        "batching": batching,
        "provenance": build_provenance(fn, provenance),
        "entrypoint": ENTRYPOINT,
        "files": {filename: sha256_hex(data) for filename, data in sorted(files.items())},
    }
    manifest_bytes = (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode("utf-8")

    with atomic_directory(dest) as tmp:
        for filename, data in files.items():
            write_file(tmp / filename, data)
        write_file(tmp / MANIFEST, manifest_bytes)
    return Bundle(dest, manifest)


def _label(fn) -> str:
    return getattr(fn, "__name__", None) or type(fn).__name__


def _describe(fn) -> dict:
    return {
        "name": _label(fn),
        "qualname": getattr(fn, "__qualname__", None) or type(fn).__qualname__,
        "signature": service.describe_signature(fn),
        "doc": inspect.getdoc(fn) or "",
    }


def _check_callable(obj, role: str) -> None:
    if not callable(obj):
        raise PublishError("not_callable", f"{role} is a {type(obj).__name__}, not something that can be called",
                           "Pass the function object itself (e.g. predictor, not predictor()).")


def _check_local_modules(local_modules) -> list:
    if isinstance(local_modules, str):  # a lone "utils" would otherwise become "u", "t", "i", ...
        local_modules = [local_modules]
    return list(local_modules or ())
