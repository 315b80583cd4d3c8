"""The calling contract of a published function, and loading the bundle that carries it.

Part of the runtime copied into every bundle (see ``service.py``): standard library and cloudpickle
only, because the kernel imports it too (``json_ready``, the argument helpers, the batching rules),
so that the notebook's sample answer and the service's answers come from one definition.

The contract: a JSON array calls ``fn(*array)``, a JSON object ``fn(**object)``; the answer is the
JSON form of the return value (``json_ready``). A vectorised function (manifest ``batching``) gets
one item per request, a one-element array or an object whose single key is its first parameter,
and answers a list of items with a sequence of as many results.
"""

from __future__ import annotations

import collections.abc
import datetime
import hashlib
import importlib
import inspect
import json
import math
import sys
from pathlib import Path

import cloudpickle

BUNDLE_FORMAT = "jupyterlab-publish-bundle"
BUNDLE_FORMAT_VERSION = 1
# The runtime contract this runtime implements: how a server starts and talks to it (its flags, the
# keys variable, the hand-off socket, /healthz and /stats). Versioned apart from the format and the
# package; docs/bundle-format.md, "Runtime contracts", says what each number means. Raise it
# whenever a server must start or call this runtime differently than the previous one.
RUNTIME_CONTRACT = 3

# The defaults of ``jupyterlab_publish.vectorized`` and ``publish(batching=True)``.
DEFAULT_MAX_BATCH_SIZE = 64
DEFAULT_MAX_WAIT_MS = 2.0

__all__ = [
    "BUNDLE_FORMAT", "BUNDLE_FORMAT_VERSION", "CONTRACT", "DEFAULT_MAX_BATCH_SIZE", "DEFAULT_MAX_WAIT_MS",
    "RUNTIME_CONTRACT",
    "ArgumentError", "BatchError", "BundleError", "ServedBundle", "batch_contract", "batch_item", "batch_results",
    "bind_arguments", "bind_with", "describe_signature", "first_parameter", "json_ready", "load_bundle",
    "read_batching", "split_arguments", "type_name", "validator_verdict",
]

CONTRACT = (
    "send a JSON array for positional arguments (e.g. [1, 2]) "
    'or a JSON object for keyword arguments (e.g. {"x": 1})'
)


# ── JSON conversion of return values ─────────────────────────────────────────────────────────────


def json_ready(value):
    """Return ``value`` as plain JSON data (dict, list, str, int, float, bool, None).

    numpy scalars become Python scalars, arrays nested lists; a pandas DataFrame becomes a list of
    records, a Series or Index a list; tuples and sets become lists; dates and datetimes ISO strings.
    NaN, infinities and missing-value markers (NaT, pd.NA) become ``None``, because JSON has no
    spelling for them and ``null`` is what pandas itself writes. Anything else raises ``TypeError``
    naming the type and where it sits in the value.

    numpy and pandas are consulted only when already imported: a value of their types cannot exist
    otherwise, and importing them here would slow down every service that does not use them.
    """
    return _convert(value, "result", set())


def type_name(value) -> str:
    cls = type(value)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def _convert(value, where: str, active: set):
    if value is None or type(value) is bool:
        return value
    if isinstance(value, str):
        return str.__str__(value)  # str subclasses (numpy.str_, str enums) become their plain text
    np = sys.modules.get("numpy")
    if np is not None and isinstance(value, (np.generic, np.ndarray)):
        return _convert_numpy(np, value, where, active)
    if isinstance(value, int):
        return int(value)  # int subclasses (IntEnum) become plain ints
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    pd = sys.modules.get("pandas")
    if pd is not None:
        if value is pd.NaT or value is getattr(pd, "NA", None):
            return None
        if isinstance(value, pd.DataFrame):
            return _convert_container(value.to_dict(orient="records"), where, active)
        if isinstance(value, (pd.Series, pd.Index)):
            return _convert_container(value.tolist(), where, active)
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (dict, list, tuple, set, frozenset)):
        return _convert_container(value, where, active)
    raise TypeError(
        f"{where} is a {type_name(value)}, which has no JSON form; return lists, dicts, numbers, "
        "strings, booleans or None (numpy, pandas and datetime values are converted for you)"
    )


def _convert_numpy(np, value, where: str, active: set):
    if isinstance(value, np.ndarray):
        if value.ndim == 0:
            return _convert(value[()], where, active)  # a 0-d array is a scalar in disguise
        kind = value.dtype.kind
        if kind in "biu":
            return value.tolist()  # already plain ints/bools: skip the per-element walk
        if kind == "f" and bool(np.isfinite(value).all()):
            return value.tolist()
        if kind in "Mm":
            # tolist() turns nanosecond datetimes into bare integers; convert element by element.
            return [_convert(item, f"{where}[{i}]", active) for i, item in enumerate(value)]
        return _convert(value.tolist(), where, active)
    if isinstance(value, np.datetime64):
        return None if np.isnat(value) else str(value)
    return _convert(value.item(), where, active)


def _convert_container(value, where: str, active: set):
    # A container that contains itself would recurse forever; name it instead.
    marker = id(value)
    if marker in active:
        raise TypeError(f"{where} contains itself; a circular structure has no JSON form")
    active.add(marker)
    try:
        if isinstance(value, dict):
            return {_convert_key(k, where): _convert(v, f"{where}[{k!r}]", active) for k, v in value.items()}
        if isinstance(value, (set, frozenset)):
            try:
                value = sorted(value)  # a stable order makes answers reproducible
            except TypeError:
                value = list(value)
        return [_convert(item, f"{where}[{i}]", active) for i, item in enumerate(value)]
    finally:
        active.discard(marker)


def _convert_key(key, where: str):
    if isinstance(key, str):
        return str.__str__(key)
    if key is None or isinstance(key, (int, float)):
        return key  # json writes these as strings itself
    np = sys.modules.get("numpy")
    if np is not None and isinstance(key, np.generic):
        return _convert_key(key.item(), where)
    if isinstance(key, (datetime.datetime, datetime.date, datetime.time)):
        return key.isoformat()
    raise TypeError(f"{where} has a key of type {type_name(key)}, which cannot be a JSON object key")


# ── The calling contract ─────────────────────────────────────────────────────────────────────────


class ArgumentError(ValueError):
    """The request (or sample) does not follow the calling contract or the function's signature."""


class BatchError(ValueError):
    """A vectorised function did not return one result per item."""


def split_arguments(payload) -> tuple[list, dict]:
    """JSON array → positional arguments, JSON object → keyword arguments; anything else is refused."""
    if isinstance(payload, list):
        return list(payload), {}
    if isinstance(payload, dict):
        return [], dict(payload)
    raise ArgumentError(f"expected a JSON array or object, got {type(payload).__name__}: {CONTRACT}")


def describe_signature(fn) -> str:
    try:
        return str(inspect.signature(fn))
    except (TypeError, ValueError):  # some builtins and C callables have no introspectable signature
        return "(...)"


def bind_arguments(fn, args: list, kwargs: dict) -> None:
    """Raise ArgumentError if ``fn(*args, **kwargs)`` would fail on binding alone.

    Checking before calling lets a caller tell "you called it wrong" (400) from "it failed" (500).
    """
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return
    bind_with(fn, signature, args, kwargs)


def bind_with(fn, signature, args, kwargs) -> None:
    """``bind_arguments`` with the signature already computed."""
    try:
        signature.bind(*args, **kwargs)
    except TypeError as exc:
        name = getattr(fn, "__name__", "the function")
        raise ArgumentError(f"the arguments do not match {name}{signature}: {exc}") from None


def validator_verdict(validator, args: list, kwargs: dict) -> str | None:
    """Run the validator; return why it rejects the input, or None when it accepts it.

    A validator rejects by raising (its message is the reason) or by returning False. Returning
    None accepts, so validators written as a series of asserts/raises work without a final return.
    """
    try:
        verdict = validator(*args, **kwargs)
    except Exception as exc:  # any exception is a rejection by contract
        return str(exc) or type(exc).__name__
    if verdict is False or (type(verdict).__name__ == "bool_" and not verdict):  # numpy.bool_
        return "the validator rejected the input"
    return None


def first_parameter(fn) -> str | None:
    """The name a vectorised function's items go by in the object form of a request."""
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return None
    for parameter in parameters:
        if parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD):
            return parameter.name
    return None


def batch_contract(parameter: str | None) -> str:
    by_name = f' or a JSON object with the single key "{parameter}"' if parameter else ""
    return f"send one item per request: a JSON array with exactly one element (e.g. [item]){by_name}"


def batch_item(payload, parameter: str | None):
    """The one item a request to a vectorised function carries (ArgumentError if it is not one)."""
    if isinstance(payload, list) and len(payload) == 1:
        return payload[0]
    if isinstance(payload, dict) and len(payload) == 1 and parameter in payload:
        return payload[parameter]
    if isinstance(payload, list):
        got = f"an array of {len(payload)} elements"
    elif isinstance(payload, dict):
        got = f"an object with the keys {sorted(payload)}"
    else:
        got = type(payload).__name__
    raise ArgumentError(f"this function is vectorised and takes one item per request, got {got}: "
                        f"{batch_contract(parameter)}")


def batch_results(result, count: int) -> list:
    """A vectorised function's answer as a list of ``count`` results (BatchError otherwise)."""
    if isinstance(result, (str, bytes, dict)) or not isinstance(result, collections.abc.Iterable):
        raise BatchError(f"the vectorised function returned a {type_name(result)}; it must return a sequence "
                         f"with one result per item (a list, tuple or array of length {count})")
    results = list(result)
    if len(results) != count:
        raise BatchError(f"the vectorised function returned {len(results)} results for a batch of {count} "
                         "items; it must return one result per item, in order")
    return results


# ── Loading a bundle ─────────────────────────────────────────────────────────────────────────────


class BundleError(Exception):
    """The bundle cannot be served; the message says why and what to do."""


class ServedBundle:
    """The manifest and the live callables of a bundle directory."""

    def __init__(self, path: Path, manifest: dict, function, validator):
        self.path = path
        self.manifest = manifest
        self.function = function
        self.validator = validator
        self.batching = read_batching(manifest)

    @property
    def name(self) -> str:
        return self.manifest["name"]

    @property
    def how_to_call(self) -> str:
        """The calling contract in words: one item per request for a vectorised function."""
        return batch_contract(first_parameter(self.function)) if self.batching else CONTRACT

    def info(self) -> dict:
        fn = self.manifest.get("function") or {}
        return {
            "name": self.name,
            "function": fn.get("name"),
            "signature": fn.get("signature"),
            "doc": fn.get("doc") or "",
            "sample": self.manifest.get("sample"),
            "sample_output": self.manifest.get("sample_output"),
            "validator": self.validator is not None,
            "batching": self.batching,
            "created": self.manifest.get("created"),
            "usage": f"POST / — {self.how_to_call}",
        }


def read_batching(manifest: dict) -> dict | None:
    batching = manifest.get("batching")
    if batching is None:
        return None
    size = batching.get("max_batch_size") if isinstance(batching, dict) else None
    wait = batching.get("max_wait_ms") if isinstance(batching, dict) else None
    if (type(size) is not int or size < 1 or isinstance(wait, bool) or not isinstance(wait, (int, float))
            or not 0 <= wait < math.inf):
        raise BundleError(f"manifest.json has a malformed batching entry ({batching!r}); "
                          'expected {"max_batch_size": int >= 1, "max_wait_ms": number >= 0}; rebuild the bundle')
    return {"max_batch_size": size, "max_wait_ms": float(wait)}


def load_bundle(bundle_dir) -> ServedBundle:
    path = Path(bundle_dir)
    try:
        manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(f"{path} has no manifest.json: pass --bundle pointing at a bundle directory") from None
    except ValueError as exc:
        raise BundleError(f"{path / 'manifest.json'} is not valid JSON ({exc}); rebuild the bundle") from None
    if manifest.get("format") != BUNDLE_FORMAT or manifest.get("format_version") != BUNDLE_FORMAT_VERSION:
        raise BundleError(
            f"{path} holds format {manifest.get('format')!r} version {manifest.get('format_version')!r}; "
            f"this service reads {BUNDLE_FORMAT!r} version {BUNDLE_FORMAT_VERSION}"
        )
    _check_python(manifest)
    read_batching(manifest)  # refuse a malformed entry before unpickling anything
    _import_preload_modules(manifest)
    function = _load_pickle(path, manifest, "function.pkl")
    validator = _load_pickle(path, manifest, "validator.pkl") if manifest.get("validator") else None
    return ServedBundle(path, manifest, function, validator)


def _import_preload_modules(manifest: dict) -> None:
    # Submodules the function reaches by attribute (``scipy.stats.norm`` after ``import scipy``):
    # cloudpickle re-imports only those the kernel had imported when it pickled, so import them here.
    for name in manifest.get("preload_modules") or ():
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise BundleError(
                f"the function uses the module {name!r}, which cannot be imported here ({exc}); "
                "add its distribution to the bundle's requirements and reinstall"
            ) from None


def _check_python(manifest: dict) -> None:
    # Functions defined in a notebook travel as bytecode, which only the same minor version runs.
    built = (manifest.get("python") or {}).get("minor")
    running = "{}.{}".format(*sys.version_info[:2])
    if built and built != running:
        raise BundleError(
            f"this bundle was built with Python {built} but is running on Python {running}; "
            f"create the environment with Python {built} (pickled functions carry bytecode)"
        )


def _load_pickle(path: Path, manifest: dict, filename: str):
    data_path = path / filename
    try:
        data = data_path.read_bytes()
    except FileNotFoundError:
        raise BundleError(f"{data_path} is missing; rebuild the bundle") from None
    expected = (manifest.get("files") or {}).get(filename)
    if expected != hashlib.sha256(data).hexdigest():
        raise BundleError(f"{data_path} does not match its checksum in manifest.json; rebuild the bundle")
    try:
        return cloudpickle.loads(data)
    except ModuleNotFoundError as exc:
        raise BundleError(
            f"{filename} needs the module {exc.name!r}, which is not installed here; "
            "add its distribution to the bundle's requirements and reinstall"
        ) from None
    except Exception as exc:
        raise BundleError(f"cannot unpickle {filename}: {type(exc).__name__}: {exc}") from None
