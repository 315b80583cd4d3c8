"""Try the function on the sample input inside the notebook, under the service's own contract.

A sample that fails here would fail in the service, so it is cheaper to say so before a bundle
exists. The argument split, the binding check, the validator verdict and the JSON conversion are
the runtime's own functions, so the notebook and the service cannot disagree about them.
"""

from __future__ import annotations

import ctypes
import json
import threading
import traceback

from jupyterlab_publish.errors import PublishError
from jupyterlab_publish.runtime.service import (
    CONTRACT,
    ArgumentError,
    BatchError,
    batch_contract,
    batch_item,
    batch_results,
    bind_arguments,
    first_parameter,
    json_ready,
    split_arguments,
    validator_verdict,
)


def normalise_sample(sample):
    """The sample as plain JSON data (tuples become lists), or PublishError("invalid_sample")."""
    try:
        return json.loads(json.dumps(sample, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise PublishError(
            "invalid_sample",
            f"the sample input is not JSON data: {exc}",
            f"Give the sample as the JSON a client would send: {CONTRACT}.",
        ) from None


def run_sample(fn, sample, validator=None, batching=None):
    """Call ``fn`` on the (normalised) sample and return its JSON-converted answer.

    For a vectorised function (``batching`` set) the sample is one request's body, holding one
    item: ``fn([item])`` is called and its only result is the answer, as the service does.
    """
    name = getattr(fn, "__name__", "the function")
    if batching is not None:
        return _run_batched_sample(fn, sample, validator, name)
    try:
        args, kwargs = split_arguments(sample)
        bind_arguments(fn, args, kwargs)
    except ArgumentError as exc:
        raise PublishError("invalid_sample", f"the sample input does not fit {name}: {exc}",
                           f"Change the sample: {CONTRACT}.") from None
    if validator is not None:
        reason = validator_verdict(validator, args, kwargs)
        if reason is not None:
            raise PublishError(
                "invalid_sample",
                f"the validator rejects the sample input: {reason}",
                "Give a sample the validator accepts, or fix the validator.",
            )
    return _answer(name, lambda: fn(*args, **kwargs))


class _SampleCancelled(BaseException):
    """Raised inside the thread running the sample when the user cancels (a BaseException, so the
    user's ``except Exception`` does not swallow it)."""


def run_sample_cancellable(fn, sample, validator=None, batching=None, cancel: threading.Event | None = None):
    """``run_sample``, stopped promptly when ``cancel`` is set: PublishError("cancelled").

    The sample runs in the kernel's publish thread, which no signal reaches (an interrupt goes to the
    main thread). A watcher raises an exception inside it at its next bytecode instead; a long call
    into C (one big matrix product) finishes first.
    """
    if cancel is None:
        return run_sample(fn, sample, validator, batching=batching)
    runner = threading.get_ident()
    guard = threading.Lock()
    done = threading.Event()
    # Fired only while the sample runs, i.e. inside the try below, which catches it wherever in the
    # try it arrives (never, say, while this thread waits for the watcher to start).
    state = {"running": False, "fired": False}

    def watch() -> None:
        while not done.is_set():
            if cancel.wait(0.05):
                with guard:
                    if state["running"]:
                        state["fired"] = True
                        ctypes.pythonapi.PyThreadState_SetAsyncExc(
                            ctypes.c_ulong(runner), ctypes.py_object(_SampleCancelled)
                        )
                        return
                done.wait(0.01)  # cancelled before the sample started: it checks, or it starts soon

    watcher = threading.Thread(target=watch, name="jupyterlab-publish-sample-watch", daemon=True)
    watcher.start()
    try:
        try:
            with guard:
                if cancel.is_set():
                    raise _SampleCancelled
                state["running"] = True
            return run_sample(fn, sample, validator, batching=batching)
        finally:
            with guard:
                state["running"] = False
                fired = state["fired"]
            done.set()
            if fired:  # fired as the sample returned: clear it so it cannot surface later
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(runner), None)
                raise _SampleCancelled
    except _SampleCancelled:
        raise PublishError("cancelled", "Publishing was cancelled while the sample ran.",
                           "Nothing was changed on the target.") from None


def _run_batched_sample(fn, sample, validator, name):
    parameter = first_parameter(fn)
    try:
        item = batch_item(sample, parameter)
    except ArgumentError as exc:
        raise PublishError("invalid_sample", f"the sample input does not fit vectorised {name}: {exc}",
                           f"Change the sample: {batch_contract(parameter)}.") from None
    if validator is not None:
        reason = validator_verdict(validator, [item], {})
        if reason is not None:
            raise PublishError("invalid_sample", f"the validator rejects the sample item: {reason}",
                               "Give a sample the validator accepts, or fix the validator.")

    def call_with_one_item():
        try:
            return batch_results(fn([item]), 1)[0]
        except BatchError as exc:
            raise PublishError("sample_failed", f"{name} is marked vectorised, but on the sample: {exc}",
                               "A vectorised function takes a list of items and returns a list of results "
                               "of the same length; fix it, or publish it without batching.") from None

    return _answer(name, call_with_one_item)


def _answer(name, call):
    """Run ``call`` and return its answer in JSON form, as PublishError when it fails either way."""
    try:
        result = call()
    except PublishError:
        raise
    except Exception as exc:
        raise PublishError(
            "sample_failed",
            f"{name} raised {type(exc).__name__} on the sample input: {exc}",
            "Fix the function or the sample and run the cell again; the traceback is in the details.",
            details={"traceback": traceback.format_exc()},
        ) from None
    try:
        output = json_ready(result)
        json.dumps(output, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise PublishError(
            "sample_failed",
            f"{name}'s answer to the sample cannot be sent as JSON: {exc}",
            "Return lists, dicts, numbers, strings or booleans (numpy and pandas values are converted).",
        ) from None
    return output
