"""The Python face of the Publish button. The kernel's comm handlers call these same functions."""

from __future__ import annotations

import re
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable, Iterable

from .errors import PublishError
from .frontier import analyze_function
from .names import check_endpoint_name
from .requirement import Requirement, canonical_name, parse_requirements

ProgressCallback = Callable[[str, float, str], None]
ADDED_BY_YOU = "added by you"


def analyze(
    fn: Callable[..., Any],
    *,
    validator: Callable[..., Any] | None = None,
    sizes: bool = True,
    size_warning: int | str | None = None,
    size_limit: int | str | None = None,
):
    """Which distributions ``fn`` (and ``validator``) need to be unpickled and run, and why.

    With ``sizes``, each captured value is pickled (into a byte counter, within a time budget) to
    report its size: over ``size_warning`` (default 100MB, $JUPYTERLAB_PUBLISH_SIZE_WARNING) is a
    warning, over ``size_limit`` (default 2GB, $JUPYTERLAB_PUBLISH_SIZE_LIMIT) an error.
    """
    _check_callable(fn, "fn")
    also = (validator,) if validator is not None else ()
    report = analyze_function(fn, also=also)
    if sizes:
        from .bundle.capture_sizes import measure_captures, size_thresholds  # bundle/ brings cloudpickle: lazily

        measure_captures(report, size_thresholds(size_warning, size_limit))
    return report


def default_endpoint_name(fn: Callable[..., Any]) -> str:
    """``predict_price`` → ``predict-price``: a valid endpoint name derived from the function."""
    name = re.sub(r"[^a-z0-9]+", "-", getattr(fn, "__name__", "function").lower()).strip("-")
    if not name or not name[0].isalpha():
        name = f"fn-{name}".rstrip("-")
    return name[:63]


def declared_requirements(requirements: Iterable[Any]) -> list[Requirement]:
    """The caller's requirements as ``Requirement``s, one per distribution (a later entry wins).

    Each entry is what pip accepts (``"numpy"``, ``"numpy==2.1.0"``, ``"scikit-learn>=1.8"``,
    ``"pandas[parquet]"``, with a marker), a wire entry (``{"requirement", "why"}``, or protocol 2's
    ``{"name", "version", "why"}``) or a Requirement. The bundle's lock still pins what is installed.
    """
    chosen = {r.key: r for r in parse_requirements(requirements, ADDED_BY_YOU)}
    return list(chosen.values())


def check_requirement(text: str) -> tuple[Requirement, str | None]:
    """One requirement the user typed, checked against the kernel: it and the installed version.

    PublishError("bad_request") if it is not a requirement, or if it is a range the installed
    version is outside of (the lock pins what is installed).
    """
    # Imported when checking: bundle/ brings cloudpickle, which the kernel loads only to publish.
    from .bundle.lockfile import check_installed

    requirement = Requirement.parse(text, ADDED_BY_YOU)
    return requirement, check_installed(requirement)


def publish(
    fn: Callable[..., Any],
    name: str | None = None,
    target: str | None = None,
    requirements: Iterable[Any] | None = None,
    sample: Any = None,
    validator: Callable[..., Any] | None = None,
    *,
    new_version: bool = False,
    public: bool = False,
    token: str | None = None,
    provenance: dict[str, Any] | None = None,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    preflight: bool = True,
    batching: bool | dict[str, Any] | None = None,
    accept_hints: bool = False,
    scale: Any = None,
):
    """Publish ``fn`` as a web service and return its Deployment (``.url``, ``.name``, ``.version``).

    ``requirements`` replaces the analysed list when given: what pip accepts (``"scikit-learn==1.5.2"``,
    ``"scikit-learn>=1.8"``, extras, a marker) or wire entries (see ``declared_requirements``); the
    bundle's lock pins the versions installed here, so a range must allow them. ``sample`` (a JSON
    list of positional arguments or an object of named ones) is run in the notebook first and
    becomes the smoke test.
    A failure at any stage raises PublishError and leaves the previous deployment serving. Captured
    values the analysis reports as errors (a lock, an open file, a connection...) are refused before
    anything is pickled, and a pickle over the size limit ($JUPYTERLAB_PUBLISH_SIZE_LIMIT) before
    anything is pushed, both as PublishError("unpicklable").
    On a function server, callers need ``Deployment.key`` (``Authorization: Bearer <key>``) unless
    ``public=True``.

    Before anything is pushed, the pre-flight check runs the bundle on its sample in a clean
    environment holding only the requirements (and their dependencies), with this kernel's Python;
    ``preflight=False`` skips it, e.g. for a target whose Python minor version differs from the kernel's.

    ``accept_hints`` adds the analysis' plugin-engine hints (``analyze(fn).hints``: pandas' parquet
    engine for ``read_parquet``, a driver for a database URL...) to the analysed requirements, as the
    Publish dialog's "Add" buttons do; it has no effect when ``requirements`` is given.

    ``batching`` serves a vectorised ``fn`` (a list of items in, one result per item out) in batches:
    ``True`` (max_batch_size=64, max_wait_ms=2), a dict of those two, or ``False``; by default the
    function's ``@jupyterlab_publish.vectorized`` marker decides. Each request then carries one item.

    ``scale`` asks a target that scales (``ray``) for replicas: ``{"replicas": 2}``, or autoscaling
    ``{"min_replicas": 1, "max_replicas": 4, "target_ongoing_requests": 2}``, with ``"cpus"`` per
    replica (see ``targets.scale.Scale``). Other targets refuse it with ``invalid_scale``.
    """
    # bundle/ (cloudpickle) and targets/ load at the first publish, not when the kernel's comm opens.
    from .bundle import build_bundle
    from .bundle.batching import resolve_batching  # (as above)
    from .bundle.build import NOT_RUN  # (as above)
    from .bundle.sample import normalise_sample, run_sample_cancellable  # (as above)
    from .targets import get_target  # (as above)

    _check_callable(fn, "fn")
    if validator is not None:
        _check_callable(validator, "validator")
    name = check_endpoint_name(name if name is not None else default_endpoint_name(fn))
    report_progress = _progress_reporter(progress, cancel)
    deploy_target = get_target(target, token=token)  # an unknown target fails before any work
    scale = deploy_target.check_scale(scale)  # so do scale settings the target cannot honour
    if not new_version:
        # Before anything is built, not after the pre-flight. A dir: target keeps versions side
        # by side and never refuses a name.
        if deploy_target.kind != "dir":
            deploy_target.refuse_taken_name(name)

    report_progress("analysing", 0.0, f"Analysing {fn.__name__}")
    # Sizes are not measured here (that would pickle everything twice): the bundle's own pickle is
    # checked against the size limit below, once it exists and before anything leaves the machine.
    report = analyze(fn, validator=validator, sizes=False)
    _refuse_analysis_errors(fn, report)
    if requirements is None:
        chosen = [r.to_requirement() for r in report.requirements]
        if accept_hints:
            chosen += [Requirement.from_entry({"name": h.distribution, "version": h.version, "why": h.reason})
                       for h in report.hints]
    else:
        chosen = declared_requirements(requirements)

    sample_output = NOT_RUN
    if sample is not None:
        # Its own stage: a slow function makes it the longest one, and Cancel stops it.
        report_progress("sample", 0.0, f"Running {fn.__name__} on the sample input")
        sample = normalise_sample(sample)
        sample_output = run_sample_cancellable(
            fn, sample, validator, batching=resolve_batching(fn, batching), cancel=cancel
        )
        report_progress("sample", 1.0, f"{fn.__name__} answered the sample")
    report_progress("pickling", 0.0, f"Pickling {fn.__name__} and what it captures")
    with tempfile.TemporaryDirectory(prefix="jupyterlab-publish-") as tmp:
        bundle = build_bundle(
            fn,
            Path(tmp) / name,
            name=name,
            requirements=chosen,
            validator=validator,
            sample=sample,
            local_modules=[m.name for m in report.local_modules],
            preload_modules=report.preload_modules,
            provenance=_provenance(fn, provenance),
            batching=batching,
            sample_output=sample_output,
        )
        _refuse_oversized_bundle(fn, bundle)
        report_progress("bundling", 1.0, f"Bundle ready: {len(chosen)} requirements")
        # Only a target that declares "scale" takes the keyword (check_scale refused it elsewhere).
        options = {"new_version": new_version, "public": public, **({} if scale.is_default else {"scale": scale})}
        if preflight and deploy_target.gates_switch:
            deployment = _push_during_preflight(deploy_target, bundle, report_progress, cancel, report.hints, options)
        else:
            if preflight:
                from .bundle.preflight import preflight as check_in_clean_environment  # (as above)

                try:
                    check_in_clean_environment(bundle, progress=report_progress, cancel=cancel)
                except PublishError as exc:
                    raise _with_hint_reason(exc, report.hints) from None
            report_progress("pushing", 0.0, f"Pushing to {deploy_target.describe()['label']}")
            # From here the target may switch traffic at any moment: a cancel can no longer promise
            # that nothing changed, so it is no longer honoured (the kernel answers "too late" to it).
            report_progress.committed = True  # type: ignore[attr-defined]
            deployment = deploy_target.push(bundle, report_progress, **options)
    report_progress("done", 1.0, deployment.url)
    return deployment


def _push_during_preflight(deploy_target, bundle, report_progress, cancel, hints, options: dict):
    """Run the pre-flight while the target uploads, starts and smoke-tests the version; switch
    traffic only once both passed.

    The two are the same kind of work (a fresh interpreter importing the function's libraries and
    answering the sample) on different cores, so together they take about as long as the slower
    one. The target holds the started version until ``gate`` returns; a failed pre-flight or a
    cancel abandons it, so the live version never stops serving.
    """
    from .bundle.preflight import preflight as check_in_clean_environment  # lazily, as in publish()

    failure: list = []

    def check() -> None:
        try:
            # Its own progress stays quiet: the push reports, and two stages at once would flicker.
            check_in_clean_environment(bundle, cancel=cancel)
        except BaseException as exc:  # handed to the pushing thread, which raises it
            failure.append(exc)

    label = deploy_target.describe()["label"]
    report_progress("preflight", 0.1, f"Checking in a clean environment while {label} starts the new version")
    checking = threading.Thread(target=check, name="jupyterlab-publish-preflight", daemon=True)
    checking.start()

    def preflight_error():
        checking.join()
        if not failure:
            return None
        error = failure[0]
        return _with_hint_reason(error, hints) if isinstance(error, PublishError) else error

    def gate() -> None:
        error = preflight_error()
        if error is not None:
            raise error
        report_progress("smoke_test", 0.9, "passed the pre-flight check in a clean environment")
        # From here the target switches traffic: a cancel can no longer promise that nothing changed.
        report_progress.committed = True  # type: ignore[attr-defined]

    report_progress("pushing", 0.0, f"Pushing to {label}")
    try:
        return deploy_target.push(bundle, report_progress, gate=gate, **options)
    except PublishError as pushed:
        # A function that fails on the target most likely fails the pre-flight too, whose error
        # says more (which requirement is missing, and the fix): prefer it.
        error = preflight_error() if not getattr(report_progress, "committed", False) else None
        if error is not None and error is not pushed:
            raise error from None
        raise


def _with_hint_reason(error: PublishError, hints) -> PublishError:
    """A pre-flight's missing distribution that the analysis had suggested: say so, and how to accept it."""
    missing = error.details.get("distribution") if error.code == "missing_requirement" else None
    hint = next((h for h in hints if missing and canonical_name(h.distribution) == canonical_name(missing)), None)
    if hint is None:
        return error
    return PublishError(
        error.code,
        f"{error.message} The analysis suggested it: {hint.reason}.",
        f"{error.hint} Or accept the analysis' suggestions: publish(..., accept_hints=True), "
        "jupyter publish --accept-hints, or the Add button in the Publish dialog.",
        details=error.details,
    )


def _refuse_analysis_errors(fn: Callable[..., Any], report) -> None:
    """Raise PublishError("unpicklable") listing every error of the analysis, if it found any.

    These are captured values that cannot work in the service (a lock, an open file, a connection,
    a capture over the size limit): pickling or the pre-flight check would fail on them later, with
    a message about a type rather than about the user's variable, so publishing stops before it starts.
    """
    if not report.errors:
        return
    undefined = [e.path for e in report.errors if e.code == "undefined_name"]
    if len(undefined) == len(report.errors):
        names = ", ".join(undefined)
        raise PublishError(
            "not_defined",
            f"Cannot publish {_label(fn)}: it uses {names}, not defined in the kernel; every call would "
            "answer NameError.",
            f"Run the cell that defines {names} (after a kernel restart: Run → Run All Above Selected Cell), "
            "then publish again.",
            details={"names": undefined, "errors": [_error_entry(e) for e in report.errors]},
        )
    lines = [e.message if not e.path or e.path in e.message else f"{e.message} (at {e.path})" for e in report.errors]
    what = "a captured value" if len(lines) == 1 else f"{len(lines)} captured values"
    message = f"Cannot publish {_label(fn)}: {what} will not work once published:\n" + "\n".join(
        f"  - {line}" for line in lines
    )
    hints = list(dict.fromkeys(e.hint for e in report.errors if e.hint))  # several locks, one hint
    hints.append("Fix the cell so the function no longer captures them, run it again, and publish again.")
    errors = [_error_entry(e) for e in report.errors]
    raise PublishError("unpicklable", message, "\n".join(hints), details={"errors": errors})


def _error_entry(error) -> dict[str, str]:
    return {"code": error.code, "message": error.message, "hint": error.hint, "path": error.path}


def _refuse_oversized_bundle(fn: Callable[..., Any], bundle) -> None:
    """Raise PublishError("unpicklable") if the bundle's pickles weigh more than the size limit.

    The same limit as the analysis' ``capture_too_large`` error ($JUPYTERLAB_PUBLISH_SIZE_LIMIT,
    default 2GB); checked on the pickles themselves because publishing does not size each capture.
    """
    # bundle/ brings cloudpickle: imported with the bundle it measures.
    from .bundle.capture_sizes import SIZE_LIMIT_ENV, human_size, size_thresholds
    from .bundle.format import FUNCTION_FILE, VALIDATOR_FILE  # (as above)

    limit = size_thresholds().limit
    pickles = [bundle.path / FUNCTION_FILE, bundle.path / VALIDATOR_FILE]
    size = sum(p.stat().st_size for p in pickles if p.exists())
    if size <= limit:
        return
    raise PublishError(
        "unpicklable",
        f"Cannot publish {_label(fn)}: it pickles to {human_size(size)} with what it captures, over the "
        f"size limit of {human_size(limit)}.",
        "Capture less (load the model inside the function from storage the service can reach, or capture "
        f"only what the function uses), or raise the limit with {SIZE_LIMIT_ENV}; nothing was pushed.",
        details={"size": size, "limit": limit},
    )


def _label(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__name__", None) or type(fn).__name__


def _progress_reporter(progress: ProgressCallback | None, cancel: threading.Event | None) -> ProgressCallback:
    """Wrap the caller's callback so every progress point is also a cancellation point, until the
    push begins (``report.committed``): after that a cancel could not keep its word."""

    def report(stage: str, fraction: float, message: str) -> None:
        if cancel is not None and cancel.is_set() and not report.committed:
            raise PublishError("cancelled", "Publishing was cancelled.", "Nothing was changed on the target.")
        if progress is not None:
            progress(stage, fraction, message)

    report.committed = False  # type: ignore[attr-defined]
    return report


def _provenance(fn: Callable[..., Any], given: dict[str, Any] | None) -> dict[str, Any]:
    # JupyterLab tells ipykernel the notebook's path through ``__session__`` in the user namespace.
    session = getattr(fn, "__globals__", {}).get("__session__")
    out = {"notebook": session if isinstance(session, str) else None, "cell_id": None}
    out.update({k: v for k, v in (given or {}).items() if v is not None})
    return out


def _check_callable(value: Any, what: str) -> None:
    if not callable(value):
        raise PublishError(
            "not_callable",
            f"{what} must be a function, not {type(value).__name__}.",
            "Pass the function object itself, e.g. publish(predictor).",
        )
