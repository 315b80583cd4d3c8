"""Unpickle a published function and answer its sample: run inside a clean environment.

    <clean-venv>/bin/python -I clean_call.py FUNCTION.pkl SAMPLE.json OUT.json

Standard library only (the pickle needs cloudpickle installed, nothing else here does), because
the clean environment holds only cloudpickle and what a method declared. ``plain`` is shared with
the notebook runner so both sides turn answers into the same JSON.
"""

from __future__ import annotations

import json
import math
import pickle
import sys


def plain(value):
    """A JSON-comparable form of an answer: numpy/pandas values through tolist()/to_dict()."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        value = float(value)
        return round(value, 9) if math.isfinite(value) else repr(value)
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted(repr(plain(v)) for v in value)
    for convert in ("tolist", "to_dict"):
        if callable(getattr(value, convert, None)):
            return plain(getattr(value, convert)())
    return repr(value)


def main() -> None:
    pickle_path, sample_path, out_path = sys.argv[1:4]
    outcome: dict = {"ok": False, "stage": "unpickle"}
    try:
        with open(pickle_path, "rb") as handle:
            fn = pickle.load(handle)
        outcome["stage"] = "call"
        with open(sample_path, encoding="utf-8") as handle:
            sample = json.load(handle)
        outcome["answer"] = plain(fn(*sample))
        outcome["ok"] = True
    except BaseException as exc:  # report anything, including SystemExit from a library
        outcome["error"] = f"{type(exc).__name__}: {exc}"[:500]
        if isinstance(exc, ModuleNotFoundError):
            outcome["missing_module"] = exc.name
    with open(out_path, "w", encoding="utf-8") as handle:
        json.dump(outcome, handle)


if __name__ == "__main__":
    main()
