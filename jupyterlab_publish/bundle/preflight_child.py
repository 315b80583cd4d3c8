"""The pre-flight child: load a bundle the way its service does and answer its sample input.

Run by ``preflight.py`` as ``python -I -S -B preflight_child.py REQUEST.json`` in an empty working
directory, with a clean environment, so nothing of the kernel's import path, working directory or
environment variables leaks in. It imports only the standard library until it has put the linked
site directory on ``sys.path``, then the bundle's own ``service.py`` (which brings cloudpickle),
and writes one JSON outcome to the result file named in the request:

    {"outcome": "ok", "output": ...}               (output absent without a sample)
    {"outcome": "missing_module", "module": ..., "traceback": ...}
    {"outcome": "rejected", "reason": ...}         (the validator refused the sample)
    {"outcome": "error", "message": ..., "traceback": ...}
"""

import importlib.util
import json
import sys
import traceback

TRACEBACK_LINES = 25  # the tail names the failing import or call; the head is our own frames


def main(request_path):
    with open(request_path, encoding="utf-8") as handle:
        request = json.load(handle)
    sys.path.extend(request["sys_path"])
    try:
        outcome = run(request)
    except BaseException as exc:  # report anything, even SystemExit from the function
        outcome = failure(exc)
    text = json.dumps(outcome, allow_nan=False)  # whole before writing: no half-written outcome
    with open(request["result"], "w", encoding="utf-8") as handle:
        handle.write(text)
    return 0


def run(request):
    spec = importlib.util.spec_from_file_location("jupyterlab_publish_bundle_service", request["service"])
    service = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(service)
    try:
        served = service.load_bundle(request["bundle"])
    except service.BundleError as exc:
        # load_bundle rewords unpickling errors; the import that failed is still its context.
        cause = exc.__context__
        return failure(cause) if isinstance(cause, ImportError) else {"outcome": "error", "message": str(exc)}
    sample = served.manifest.get("sample")
    if sample is None:
        return {"outcome": "ok"}
    if served.manifest.get("batching"):
        # vectorised: the sample is one request holding one item; fn([item]) answers it
        item = service.batch_item(sample, service.first_parameter(served.function))
        args, kwargs = [item], {}

        def call():
            return service.batch_results(served.function([item]), 1)[0]
    else:
        args, kwargs = service.split_arguments(sample)

        def call():
            return served.function(*args, **kwargs)

    if served.validator is not None:
        missing = []

        def watched(*a, **k):
            try:
                return served.validator(*a, **k)
            except ImportError as exc:
                if missing_module_behind(exc) is not None:
                    missing.append(exc)
                raise

        reason = service.validator_verdict(watched, args, kwargs)
        if missing:
            return failure(missing[0])
        if reason is not None:
            return {"outcome": "rejected", "reason": reason}
    return {"outcome": "ok", "output": service.json_ready(call())}


def failure(exc):
    lines = traceback.format_exception(type(exc), exc, exc.__traceback__)
    tail = "".join(lines).splitlines()[-TRACEBACK_LINES:]
    missing = missing_module_behind(exc)
    if missing is not None:
        return {"outcome": "missing_module", "module": missing.name, "message": str(exc), "traceback": "\n".join(tail)}
    return {"outcome": "error", "message": f"{type(exc).__name__}: {exc}", "traceback": "\n".join(tail)}


def missing_module_behind(exc):
    """The ModuleNotFoundError behind ``exc``: itself, or the one a library re-raised as its own
    ImportError (pandas' and scikit-learn's optional dependencies do) as cause or context."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, ModuleNotFoundError) and exc.name:
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
