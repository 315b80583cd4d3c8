"""Local modules next to the notebook: shipped by value, never requirements themselves."""

from casebook import case

_UTILS_WITH_PANDAS = """
import pandas as pd


def add(a, b):
    return a + b


def frame(rows):
    return pd.DataFrame(rows)
"""

CASES = [
    case(
        "l01_from_utils_numpy",
        ["from utils import normalize", """
        def shares(xs):
            return normalize(xs)
        """],
        "shares", [[1, 1, 2]], {"numpy"},
        "utils.normalize (local, shipped by value) uses numpy.",
        files={"utils.py": """
            import numpy as np


            def normalize(xs):
                arr = np.asarray(xs, dtype=float)
                return (arr / arr.sum()).round(6).tolist()
            """},
        local=("utils",),
    ),
    case(
        "l02_whole_utils_module",
        ["import utils", """
        def plus(a, b):
            return utils.add(a, b)
        """],
        "plus", [2, 3], {"pandas"},
        "the utils module itself travels by value with its whole namespace, which holds pd.",
        files={"utils.py": _UTILS_WITH_PANDAS},
        local=("utils",),
    ),
    case(
        "l03_pure_function_from_utils",
        ["from utils import add", """
        def plus(a, b):
            return add(a, b)
        """],
        "plus", [2, 3], set(),
        "only utils.add travels (by value, with the globals it uses); utils' pandas import does not.",
        files={"utils.py": _UTILS_WITH_PANDAS},
        local=("utils",),
    ),
    case(
        "l04_utils_local_import",
        ["from utils import to_yaml", """
        def render(d):
            return to_yaml(d)
        """],
        "render", [{"b": [1], "a": 2}], {"pyyaml"},
        "utils.to_yaml imports yaml inside its body.",
        files={"utils.py": """
            def to_yaml(d):
                import yaml
                return yaml.safe_dump(d, sort_keys=True)
            """},
        local=("utils",),
    ),
    case(
        "l05_utils_estimator_class",
        ["from utils import Doubler\ndoubler = Doubler().fit([[1.0]])", """
        def double(x):
            return doubler.transform([[x]]).ravel().tolist()
        """],
        "double", [2.5], {"scikit-learn", "numpy"},
        "an instance of a local class built on sklearn base classes, using numpy.",
        files={"utils.py": """
            import numpy as np
            from sklearn.base import BaseEstimator, TransformerMixin


            class Doubler(TransformerMixin, BaseEstimator):
                def fit(self, X, y=None):
                    return self

                def transform(self, X):
                    return np.asarray(X, dtype=float) * 2
            """},
        local=("utils",),
    ),
    case(
        "l06_local_package",
        ["import helpers", """
        def strip_tags(html):
            return helpers.clean(html)
        """],
        "strip_tags", ["<i>hi</i> there"], {"beautifulsoup4"},
        "a local package whose submodule uses bs4; the package travels by value.",
        files={
            "helpers/__init__.py": "from .text import clean\n",
            "helpers/text.py": """
                from bs4 import BeautifulSoup


                def clean(html):
                    return BeautifulSoup(html, "html.parser").get_text()
                """,
        },
        local=("helpers",),
    ),
    case(
        "l07_constant_from_utils",
        ["from utils import SCALE", """
        def scaled(x):
            return x * SCALE
        """],
        "scaled", [3], set(),
        "SCALE is a float computed with numpy inside utils; only the float travels.",
        files={"utils.py": """
            import numpy as np

            SCALE = float(np.sqrt(4.0))
            """},
        local=("utils",),
    ),
]
