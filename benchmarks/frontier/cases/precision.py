"""Traps for over-declaring: imports the function does not use, values that are plain Python."""

from casebook import case

CASES = [
    case(
        "p01_unused_notebook_imports",
        ["""
        import numpy as np
        import pandas as pd
        import scipy
        import yaml
        from sklearn.linear_model import LinearRegression
        """, """
        def mean_of(xs):
            return float(np.mean(xs))
        """],
        "mean_of", [[1, 2]], {"numpy"},
        "only np is used; pandas, scipy, yaml and sklearn are imported by the notebook only.",
    ),
    case(
        "p02_unused_imports_same_cell",
        ["""
        import math
        import pandas as pd
        import numpy as np

        def hyp(a, b):
            return math.hypot(a, b)
        """],
        "hyp", [3, 4], set(),
        "the same cell imports pandas and numpy, but the function uses only math.",
    ),
    case(
        "p03_scalars_from_library",
        ["""
        import numpy as np
        import pandas as pd
        LIMIT = int(np.prod([2, 3, 7]))
        MEAN = float(pd.Series([1.0, 2.0, 6.0]).mean())
        """, """
        def clip(x):
            return min(x, LIMIT) - MEAN
        """],
        "clip", [50], set(),
        "LIMIT and MEAN are plain int/float computed with libraries, pickled by value.",
    ),
    case(
        "p04_strings_from_library",
        ["""
        import numpy as np
        import sklearn
        BANNER = "model built with scikit-learn " + sklearn.__version__
        SHAPE = tuple(int(n) for n in np.zeros((2, 3)).shape)
        """, """
        def banner(x):
            return f"{BANNER.split()[0]}:{SHAPE}:{x}"
        """],
        "banner", ["ok"], set(),
        "a str and a tuple of ints derived from libraries: plain Python values.",
    ),
    case(
        "p05_rebound_module_name",
        ["import yaml as serializer", """
        import json as serializer

        def encode(obj):
            return serializer.dumps(obj, sort_keys=True)
        """],
        "encode", [{"b": 1, "a": 2}], set(),
        "serializer was yaml, then rebound to json (stdlib); the live value counts.",
    ),
    case(
        "p06_rebound_data",
        ["""
        import pandas as pd
        data = pd.DataFrame({"a": [1, 2, 3]})
        """, """
        data = [int(v) for v in data["a"]]

        def total(k):
            return sum(data) * k
        """],
        "total", [2], set(),
        "data was a DataFrame, then rebound to a list of ints before publishing.",
    ),
    case(
        "p07_stdlib_submodules",
        ["""
        import os.path
        import xml.etree.ElementTree as ET
        import json.decoder
        import concurrent.futures
        """, """
        def tags(xml_text):
            return [os.path.basename(child.tag) for child in ET.fromstring(xml_text)]
        """],
        "tags", ["<a><b/><c/></a>"], set(),
        "standard-library submodules only.",
    ),
    case(
        "p08_attribute_names_like_modules",
        ["""
        import numpy
        import pandas
        from types import SimpleNamespace
        settings = SimpleNamespace(numpy=2, pandas=3)
        """, """
        def weigh(x):
            return x * settings.numpy + settings.pandas
        """],
        "weigh", [5], set(),
        "settings.numpy and settings.pandas are attributes that merely share module names.",
    ),
    case(
        "p09_library_used_by_other_function",
        ["""
        import pandas as pd

        def to_frame(rows):
            return pd.DataFrame(rows)

        def double(x):
            return 2 * x
        """],
        "double", [21], set(),
        "pandas is used by another function of the same cell, not by this one.",
    ),
    case(
        "p10_string_annotations",
        ["""
        from __future__ import annotations
        import numpy as np

        def count(x: np.ndarray) -> int:
            return len(x)
        """],
        "count", [[1, 2, 3]], set(),
        "from __future__ import annotations: the annotations are strings, numpy is never loaded.",
    ),
    case(
        "p11_type_checking_import",
        ["""
        from typing import TYPE_CHECKING
        if TYPE_CHECKING:
            import pandas as pd

        def rows(frame: "pd.DataFrame") -> int:
            return len(frame)
        """],
        "rows", [[1, 2]], set(),
        "pandas is imported only for type checkers; the annotation is a string.",
    ),
    case(
        "p12_tolist_values",
        ["""
        import numpy as np
        weights = np.linspace(0, 1, 5).tolist()
        """, """
        def weighted(x):
            return [round(w * x, 9) for w in weights]
        """],
        "weighted", [2], set(),
        "weights is a list of Python floats (tolist), not an array.",
    ),
    case(
        "p13_library_constant",
        ["""
        from scipy import constants
        G = constants.g
        """, """
        def fall(t):
            return round(0.5 * G * t * t, 6)
        """],
        "fall", [2], set(),
        "G is a plain float taken from scipy.constants.",
    ),
    case(
        "p14_optional_import_fallback",
        ["""
        def fast_json(obj):
            try:
                import orjson as json_impl
            except ImportError:
                import json as json_impl
            return str(json_impl.dumps(obj))
        """],
        "fast_json", [[1, 2]], set(),
        "orjson is optional (ImportError fallback) and not installed; json is stdlib.",
    ),
    case(
        "p15_compiled_regex",
        ["""
        import collections
        import re
        import numpy as np
        WORD = re.compile(r"[a-z]+")
        """, """
        def top_word(text):
            return collections.Counter(WORD.findall(text.lower())).most_common(1)[0][0]
        """],
        "top_word", ["b a b c b a"], set(),
        "a captured re.Pattern and collections: standard library only.",
    ),
    case(
        "p16_dataclass_and_enum",
        ["""
        import dataclasses
        import enum
        import numpy as np

        class Color(enum.Enum):
            RED = 1

        @dataclasses.dataclass
        class Point:
            x: float
            y: float
        """, """
        def shift(p):
            pt = Point(*p)
            return [pt.x + Color.RED.value, pt.y]
        """],
        "shift", [[1.0, 2.0]], set(),
        "notebook dataclass and enum, built-in field types; numpy is imported but unused.",
    ),
]
