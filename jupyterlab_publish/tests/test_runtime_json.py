"""json_ready: converting return values to JSON data, shared by the notebook and the service."""

import datetime
import decimal
import enum
import json

import numpy as np
import pandas as pd
import pytest

from jupyterlab_publish.runtime.service import json_ready


def test_plain_json_passes_through():
    value = {"a": [1, 2.5, "x", None, True], "b": {"c": []}}
    assert json_ready(value) == value


def test_numpy_scalars_become_python_scalars():
    converted = json_ready([np.int64(3), np.float32(0.5), np.bool_(True), np.str_("s"), np.uint8(7)])
    assert converted == [3, 0.5, True, "s", 7]
    assert [type(v) for v in converted] == [int, float, bool, str, int]


def test_arrays_become_nested_lists():
    assert json_ready(np.arange(6).reshape(2, 3)) == [[0, 1, 2], [3, 4, 5]]
    assert json_ready(np.array([0.5, np.nan, np.inf])) == [0.5, None, None]
    assert json_ready(np.array([True, False])) == [True, False]
    assert json_ready(np.array(["2024-01-02", "NaT"], dtype="datetime64[ns]")) == [
        "2024-01-02T00:00:00.000000000",
        None,
    ]
    assert json_ready(np.array([{"k": np.int32(1)}], dtype=object)) == [{"k": 1}]
    assert json_ready(np.array(2.5)) == 2.5 and json_ready(np.array("2024-01-02", dtype="datetime64[D]")) == "2024-01-02"


def test_pandas_values():
    frame = pd.DataFrame(
        {"x": [1, 2], "y": [0.5, np.nan], "when": pd.to_datetime(["2024-01-02", None])}
    )
    assert json_ready(frame) == [
        {"x": 1, "y": 0.5, "when": "2024-01-02T00:00:00"},
        {"x": 2, "y": None, "when": None},
    ]
    assert json_ready(pd.Series([1, 2], index=["a", "b"])) == [1, 2]
    assert json_ready(pd.Index(["a", "b"])) == ["a", "b"]
    assert json_ready(pd.Timestamp("2024-05-06 07:08:09")) == "2024-05-06T07:08:09"


def test_enums_become_their_values():
    class Colour(str, enum.Enum):
        RED = "red"

    class Size(enum.IntEnum):
        BIG = 3

    assert json_ready({Colour.RED: [Colour.RED, Size.BIG]}) == {"red": ["red", 3]}
    assert type(json_ready(Size.BIG)) is int


def test_containers_dates_and_special_floats():
    assert json_ready((1, (2, 3))) == [1, [2, 3]]
    assert json_ready({3, 1, 2}) == [1, 2, 3]
    assert json_ready(frozenset({"b", "a"})) == ["a", "b"]
    assert json_ready(datetime.date(2024, 1, 2)) == "2024-01-02"
    assert json_ready(datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)) == (
        "2024-01-02T03:04:05+00:00"
    )
    assert json_ready([float("nan"), float("-inf")]) == [None, None]
    assert json_ready({np.int64(1): "one", 2: "two"}) == {1: "one", 2: "two"}
    # The result is always something json.dumps accepts strictly.
    json.dumps(json_ready({"a": np.float64("nan"), "b": (np.int8(1),)}), allow_nan=False)


@pytest.mark.parametrize(
    "value, says",
    [
        (decimal.Decimal("1.5"), "result is a decimal.Decimal"),
        ({"k": [1, object()]}, "result['k'][1] is a object"),
        (b"bytes", "result is a bytes"),
        ({(1, 2): "tuple key"}, "key of type tuple"),
        (iter([1, 2]), "list_iterator"),
    ],
)
def test_values_without_json_form_raise_type_error_naming_them(value, says):
    with pytest.raises(TypeError) as caught:
        json_ready(value)
    assert says in str(caught.value)


def test_a_circular_structure_is_named():
    loop = [1]
    loop.append(loop)
    with pytest.raises(TypeError, match="contains itself"):
        json_ready(loop)
