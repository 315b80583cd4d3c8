"""What only the function's code reveals: nested code, local and dynamic imports, submodule chains."""

from casebook import case

CASES = [
    case(
        "b01_global_module",
        ["import numpy as np", """
        def mean_of(xs):
            return float(np.mean(xs))
        """],
        "mean_of", [[1, 2, 3, 4]], {"numpy"},
        "np.mean through the module global np.",
    ),
    case(
        "b02_nested_def",
        ["import numpy as np", """
        def spread(xs):
            def peak_to_peak(values):
                return float(np.ptp(values))
            return peak_to_peak(xs)
        """],
        "spread", [[3, 9, 4]], {"numpy"},
        "np is used only inside a nested def (a separate code object).",
    ),
    case(
        "b03_lambda",
        ["import numpy as np", """
        def by_magnitude(xs):
            return sorted(xs, key=lambda v: float(np.abs(v)))
        """],
        "by_magnitude", [[-3, 1, -2]], {"numpy"},
        "np is used only inside a lambda.",
    ),
    case(
        "b04_genexp",
        ["import numpy as np", """
        def root_sum(xs):
            return round(sum(float(np.sqrt(v)) for v in xs), 9)
        """],
        "root_sum", [[1, 4, 9]], {"numpy"},
        "np is used only inside a generator expression.",
    ),
    case(
        "b05_listcomp",
        ["from scipy import special", """
        def logits(ps):
            return [round(float(special.logit(p)), 9) for p in ps]
        """],
        "logits", [[0.25, 0.5, 0.75]], {"scipy"},
        "scipy.special (a module global) is used only inside a list comprehension.",
    ),
    case(
        "b06_dictcomp",
        ["import pandas as pd", """
        def years(dates):
            return {d: int(pd.Timestamp(d).year) for d in dates}
        """],
        "years", [["2020-01-02", "2021-05-06"]], {"pandas"},
        "pd.Timestamp only inside a dict comprehension.",
    ),
    case(
        "b07_local_import",
        ["""
        def median(xs):
            import numpy
            return float(numpy.median(xs))
        """],
        "median", [[5, 1, 3]], {"numpy"},
        "import numpy inside the function body; numpy is never a global.",
    ),
    case(
        "b08_local_from_import",
        ["""
        def tail_probability(z):
            from scipy.stats import norm
            return round(float(norm.sf(z)), 9)
        """],
        "tail_probability", [1.5], {"scipy"},
        "from scipy.stats import norm inside the function body.",
    ),
    case(
        "b09_local_aliased_import",
        ["""
        def column_sums(rows):
            import pandas as pd
            return [int(v) for v in pd.DataFrame(rows).sum()]
        """],
        "column_sums", [[[1, 2], [3, 4]]], {"pandas"},
        "import pandas as pd inside the function body.",
    ),
    case(
        "b10_import_in_nested_def",
        ["""
        def dump(config):
            def render(c):
                import yaml
                return yaml.safe_dump(c, sort_keys=True)
            return render(config)
        """],
        "dump", [{"b": 1, "a": [1, 2]}], {"pyyaml"},
        "import yaml inside a nested def: yaml's distribution is pyyaml.",
    ),
    case(
        "b11_import_module_literal",
        ["import importlib", """
        def to_yaml(obj):
            yaml = importlib.import_module("yaml")
            return yaml.safe_dump(obj, sort_keys=True)
        """],
        "to_yaml", [{"k": [1, 2]}], {"pyyaml"},
        'importlib.import_module("yaml") with a literal name.',
    ),
    case(
        "b12_dunder_import_literal",
        ["""
        def parse_date(text):
            parser = __import__("dateutil.parser", fromlist=["parse"])
            return parser.parse(text).isoformat()
        """],
        "parse_date", ["March 3, 2021 10:00"], {"python-dateutil"},
        '__import__("dateutil.parser") with a literal name: python-dateutil.',
    ),
    case(
        "b13_attribute_chain_scipy",
        ["import scipy.stats", """
        def cdf(z):
            return round(float(scipy.stats.norm.cdf(z)), 9)
        """],
        "cdf", [0.3], {"scipy"},
        "scipy.stats.norm through the global scipy: the submodule must be importable on load.",
    ),
    case(
        "b14_attribute_chain_sklearn",
        ["import numpy as np\nimport sklearn.preprocessing", """
        def standardize(xs):
            return sklearn.preprocessing.scale(np.asarray(xs, dtype=float)).round(6).tolist()
        """],
        "standardize", [[1, 2, 3]], {"scikit-learn", "numpy"},
        "sklearn.preprocessing.scale through the global sklearn (not lazily loaded) plus np.",
    ),
    case(
        "b15_imported_function",
        ["from scipy.special import expit", """
        def squash(x):
            return round(float(expit(x)), 9)
        """],
        "squash", [0.7], {"scipy"},
        "expit is a scipy ufunc imported by name; no module global at all.",
    ),
    case(
        "b16_helper_function",
        ["import pandas as pd", """
        def _clean(rows):
            return pd.DataFrame(rows).dropna()

        def count_rows(rows):
            return int(len(_clean(rows)))
        """],
        "count_rows", [[{"a": 1}, {"a": None}, {"a": 3}]], {"pandas"},
        "pandas is used by a notebook helper the function calls.",
    ),
    case(
        "b17_class_method_local_import",
        ["""
        class Stats:
            def skew(self, xs):
                from scipy.stats import skew
                return float(skew(xs))

        def skewness(xs):
            return round(Stats().skew(xs), 9)
        """],
        "skewness", [[1, 2, 3, 10]], {"scipy"},
        "a method of a notebook class imports scipy.stats locally.",
    ),
    case(
        "b18_staticmethod",
        ["import numpy as np", """
        class Geometry:
            @staticmethod
            def hyp(a, b):
                return float(np.hypot(a, b))

        def hypotenuse(a, b):
            return Geometry.hyp(a, b)
        """],
        "hypotenuse", [3, 4], {"numpy"},
        "np is used by a staticmethod of a notebook class.",
    ),
    case(
        "b19_recursion",
        ["import numpy as np", """
        def leaf_sum(tree):
            if isinstance(tree, list):
                return sum(leaf_sum(t) for t in tree)
            return float(np.float64(tree))
        """],
        "leaf_sum", [[1, [2, [3]]]], {"numpy"},
        "a recursive function using np.",
    ),
    case(
        "b20_class_property",
        ["import pandas as pd", """
        class Window:
            def __init__(self, values):
                self.values = values

            @property
            def rolling_max(self):
                return [float(v) for v in pd.Series(self.values).rolling(2).max().dropna()]

        def rolling(values):
            return Window(values).rolling_max
        """],
        "rolling", [[1, 3, 2, 5]], {"pandas"},
        "pd is used in a property of a notebook class.",
    ),
]
