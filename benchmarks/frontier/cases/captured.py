"""What the pickle carries besides code: fitted models, frames, containers, closures, defaults."""

from casebook import case

_KMEANS = """
import numpy as np
from sklearn.cluster import KMeans
rng = np.random.default_rng(0)
kmodel = KMeans(n_clusters=3, n_init=10, random_state=0).fit(rng.random((200, 2)))
"""

CASES = [
    case(
        "c01_fitted_kmeans",
        [_KMEANS, """
        def predictor(x):
            return int(kmodel.predict(np.asarray([x], dtype=float))[0])
        """],
        "predictor", [[0.5, 0.5]], {"scikit-learn", "numpy"},
        "a fitted KMeans (sklearn class, numpy arrays inside) plus np in the code.",
    ),
    case(
        "c02_pipeline",
        ["""
        import numpy as np
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
        from sklearn.linear_model import LogisticRegression
        X = np.array([[0, 0], [1, 1], [2, 2], [3, 3], [0, 1], [3, 2]], dtype=float)
        y = np.array([0, 0, 1, 1, 0, 1])
        clf = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
        """, """
        def classify(point):
            return int(clf.predict([point])[0])
        """],
        "classify", [[2.5, 2.0]], {"scikit-learn", "numpy"},
        "a fitted Pipeline; its arrays are numpy, the code never names np.",
    ),
    case(
        "c03_dataframe",
        ["""
        import pandas as pd
        prices = pd.DataFrame({"item": ["a", "b", "c"], "price": [1.5, 2.0, 3.25]}).set_index("item")
        """, """
        def price_of(item):
            return float(prices.loc[item, "price"])
        """],
        "price_of", ["c"], {"pandas", "numpy", "pyarrow"},
        "a captured DataFrame; pandas 3 keeps its str index in pyarrow arrays (pyarrow installed).",
    ),
    case(
        "c04_series_in_closure",
        ["import pandas as pd", """
        def make_lookup(series):
            def lookup(key):
                return int(series[key])
            return lookup

        weights = make_lookup(pd.Series({"x": 3, "y": 5}))
        """],
        "weights", ["y"], {"pandas", "numpy", "pyarrow"},
        "a Series held in a closure cell; its str index is pyarrow-backed (pandas 3).",
    ),
    case(
        "c05_sparse_matrix",
        ["""
        import numpy as np
        from scipy import sparse
        M = sparse.csr_matrix(np.array([[1, 0, 2], [0, 3, 0]], dtype=float))
        """, """
        def project(v):
            return (M @ np.asarray(v, dtype=float)).tolist()
        """],
        "project", [[1, 1, 1]], {"scipy", "numpy"},
        "a captured scipy.sparse matrix plus np.",
    ),
    case(
        "c06_dict_of_models",
        ["""
        import numpy as np
        from sklearn.linear_model import LinearRegression
        X = np.arange(6, dtype=float).reshape(-1, 1)
        models = {"up": LinearRegression().fit(X, 2 * X.ravel()), "down": LinearRegression().fit(X, -X.ravel())}
        """, """
        def forecast(kind, x):
            return round(float(models[kind].predict([[x]])[0]), 6)
        """],
        "forecast", ["up", 10], {"scikit-learn", "numpy"},
        "a dict of fitted LinearRegression models.",
    ),
    case(
        "c07_list_of_ufuncs",
        ["""
        import numpy as np
        transforms = [np.sqrt, np.log1p, abs]
        """, """
        def apply_all(x):
            return [round(float(f(x)), 9) for f in transforms]
        """],
        "apply_all", [4.0], {"numpy"},
        "a list holding numpy ufuncs (pickled by reference to numpy).",
    ),
    case(
        "c08_tuple_with_scaler",
        ["""
        import numpy as np
        from sklearn.preprocessing import MinMaxScaler
        config = (MinMaxScaler().fit(np.array([[0.0], [10.0]])), 0.5)
        """, """
        def above(x):
            scaler, cut = config
            return bool(scaler.transform([[x]])[0][0] > cut)
        """],
        "above", [7], {"scikit-learn", "numpy"},
        "a tuple of a fitted scaler and a float.",
    ),
    case(
        "c09_notebook_subclass_of_library",
        ["""
        import numpy as np
        from sklearn.preprocessing import StandardScaler

        class ClippedScaler(StandardScaler):
            def transform(self, X, copy=None):
                return np.clip(super().transform(X, copy=copy), -2, 2)

        scaler = ClippedScaler().fit(np.array([[0.0], [1.0], [2.0]]))
        """, """
        def scale(x):
            return round(float(scaler.transform([[x]])[0][0]), 6)
        """],
        "scale", [10.0], {"scikit-learn", "numpy"},
        "an instance of a notebook class whose base class is sklearn's StandardScaler.",
    ),
    case(
        "c10_notebook_instance_with_array",
        ["""
        import numpy as np

        class Centroid:
            def __init__(self, points):
                self.center = np.mean(np.asarray(points, dtype=float), axis=0)

            def dist(self, p):
                return float(np.linalg.norm(self.center - np.asarray(p, dtype=float)))

        ref = Centroid([[0, 0], [2, 2]])
        """, """
        def distance(p):
            return round(ref.dist(p), 6)
        """],
        "distance", [[4, 1]], {"numpy"},
        "a notebook-class instance holding an ndarray; its method uses np.",
    ),
    case(
        "c11_bound_method_of_model",
        [_KMEANS],
        "kmodel.predict", [[[0.5, 0.5], [0.1, 0.9]]], {"scikit-learn", "numpy"},
        "publishing a bound method of a fitted KMeans.",
    ),
    case(
        "c12_bound_method_of_notebook_instance",
        ["""
        import pandas as pd

        class Table:
            def __init__(self, frame):
                self.frame = frame

            def total(self, column):
                return float(self.frame[column].sum())

        table = Table(pd.DataFrame({"a": [1, 2], "b": [3.5, 4.5]}))
        """],
        "table.total", ["b"], {"pandas", "numpy", "pyarrow"},
        "publishing a bound method whose instance holds a DataFrame (str column labels: pyarrow).",
    ),
    case(
        "c13_partial_of_library_function",
        ["""
        import functools
        import numpy as np
        round1 = functools.partial(np.round, decimals=1)
        """, """
        def tidy(x):
            return float(round1(x))
        """],
        "tidy", [2.345], {"numpy"},
        "a functools.partial of np.round; the code never names np.",
    ),
    case(
        "c14_partial_with_frame_keyword",
        ["""
        import functools
        import pandas as pd

        def _lookup(key, table):
            return int(table.get(key, 0))

        lookup = functools.partial(_lookup, table=pd.Series({"a": 1, "b": 2}))
        """],
        "lookup", ["b"], {"pandas", "numpy", "pyarrow"},
        "publishing a functools.partial whose keyword is a Series (str index: pyarrow).",
    ),
    case(
        "c15_decorated_with_wraps",
        ["""
        import functools
        import yaml

        def logged(fn):
            @functools.wraps(fn)
            def wrapper(*args, **kwargs):
                return fn(*args, **kwargs)
            return wrapper

        @logged
        def to_yaml(data):
            return yaml.safe_dump(data, sort_keys=True)
        """],
        "to_yaml", [{"x": 1}], {"pyyaml"},
        "a functools.wraps decorator: the wrapped function (using yaml) sits in a closure cell.",
    ),
    case(
        "c16_decorator_uses_library",
        ["""
        import numpy as np

        def as_float_array(fn):
            def inner(xs):
                return fn(np.asarray(xs, dtype=float))
            return inner

        @as_float_array
        def total(arr):
            return float(arr.sum())
        """],
        "total", [[1, 2, 3.5]], {"numpy"},
        "the decorator's inner function uses np; the decorated body does not.",
    ),
    case(
        "c17_closure_factory",
        ["""
        import numpy as np

        def make_scaler(mean, std):
            def scale(x):
                return ((np.asarray(x, dtype=float) - mean) / std).round(6).tolist()
            return scale

        scaler = make_scaler(np.array([1.0, 2.0]), np.array([2.0, 4.0]))
        """],
        "scaler", [[3, 6]], {"numpy"},
        "a closure over two ndarrays, made by a factory.",
    ),
    case(
        "c18_default_argument",
        ["""
        import pandas as pd

        def lookup(key, table=pd.Series({"a": 10, "b": 20})):
            return int(table[key])
        """],
        "lookup", ["b"], {"pandas", "numpy", "pyarrow"},
        "a Series as a default argument (str index: pyarrow); the body never names pd.",
    ),
    case(
        "c19_keyword_only_default_model",
        ["""
        import numpy as np
        from sklearn.linear_model import LinearRegression

        def predict(x, *, model=LinearRegression().fit(np.array([[0.0], [1.0]]), np.array([1.0, 3.0]))):
            return round(float(model.predict([[x]])[0]), 6)
        """],
        "predict", [2.0], {"scikit-learn", "numpy"},
        "a fitted model as a keyword-only default.",
    ),
    case(
        "c20_annotations",
        ["""
        import numpy as np
        import pandas as pd

        def length(x: np.ndarray) -> pd.Series:
            return len(x)
        """],
        "length", [[1, 2, 3]], {"numpy", "pandas"},
        "cloudpickle pickles __annotations__: np.ndarray and pd.Series are imported on load.",
    ),
    case(
        "c21_numpy_scalar_global",
        ["""
        import numpy as np
        threshold = np.float64(0.25) * 2
        """, """
        def passes(x):
            return bool(x > threshold)
        """],
        "passes", [0.7], {"numpy"},
        "threshold is a numpy.float64 (a float subclass pickled through numpy).",
    ),
    case(
        "c22_pil_image",
        ["""
        from PIL import Image
        logo = Image.new("RGB", (8, 4), color=(255, 0, 0))
        """, """
        def thumb_size(scale):
            return list(logo.resize((8 * scale, 4 * scale)).size)
        """],
        "thumb_size", [2], {"pillow"},
        "a captured PIL image: pillow.",
    ),
    case(
        "c23_rrule",
        ["""
        import datetime
        from dateutil.rrule import rrule, WEEKLY
        schedule = rrule(WEEKLY, count=4, dtstart=datetime.datetime(2024, 1, 1))
        """, """
        def nth(i):
            return schedule[i].isoformat()
        """],
        "nth", [2], {"python-dateutil"},
        "a captured dateutil rrule.",
    ),
    case(
        "c24_soup",
        ["""
        from bs4 import BeautifulSoup
        page = BeautifulSoup("<ul><li>a</li><li>b</li></ul>", "html.parser")
        """, """
        def item(i):
            return page.find_all("li")[i].get_text()
        """],
        "item", [1], {"beautifulsoup4"},
        "a captured BeautifulSoup tree.",
    ),
    case(
        "c25_requests_request",
        ["""
        import requests
        base = requests.Request("GET", "http://example.invalid/api")
        """, """
        def url_for(q):
            return requests.Request(base.method, base.url, params={"q": q}).prepare().url
        """],
        "url_for", ["a b"], {"requests"},
        "a captured requests.Request and requests in the code; no network.",
    ),
    case(
        "c26_random_generator",
        ["""
        import numpy as np
        rng = np.random.default_rng(7)
        """, """
        def draw(n):
            return rng.integers(0, 100, size=n).tolist()
        """],
        "draw", [3], {"numpy"},
        "a captured numpy Generator (its state travels in the pickle).",
    ),
    case(
        "c27_nested_containers",
        ["""
        import numpy as np
        from sklearn.tree import DecisionTreeClassifier
        X = np.array([[0], [1], [2], [3]], dtype=float)
        registry = {"trees": [("depth1", DecisionTreeClassifier(max_depth=1, random_state=0).fit(X, [0, 0, 1, 1]))]}
        """, """
        def vote(x):
            name, tree = registry["trees"][0]
            return f"{name}:{int(tree.predict([[x]])[0])}"
        """],
        "vote", [2.5], {"scikit-learn", "numpy"},
        "a tree inside a tuple inside a list inside a dict.",
    ),
    case(
        "c28_callable_instance",
        ["""
        from scipy import stats

        class Scorer:
            def __init__(self, loc):
                self.loc = loc

            def __call__(self, x):
                return round(float(stats.norm(self.loc, 1).cdf(x)), 9)

        score = Scorer(0.0)
        """],
        "score", [1.0], {"scipy"},
        "publishing a callable instance of a notebook class whose __call__ uses scipy.stats.",
    ),
    case(
        "c29_function_transformer",
        ["""
        import numpy as np
        from sklearn.preprocessing import FunctionTransformer

        def _log(x):
            return np.log1p(x)

        tf = FunctionTransformer(_log)
        """, """
        def transform(xs):
            return tf.fit_transform(np.asarray(xs, dtype=float).reshape(-1, 1)).round(6).ravel().tolist()
        """],
        "transform", [[0, 1, 3]], {"scikit-learn", "numpy"},
        "a sklearn FunctionTransformer holding a notebook function.",
    ),
    case(
        "c30_mixed_container",
        ["""
        import pandas as pd
        from sklearn.preprocessing import StandardScaler
        bundle = {"scaler": StandardScaler().fit([[0.0], [2.0]]), "labels": pd.Series(["low", "high"])}
        """, """
        def label(x):
            z = bundle["scaler"].transform([[x]])[0][0]
            return bundle["labels"][int(z > 0)]
        """],
        "label", [1.5], {"scikit-learn", "pandas", "numpy", "pyarrow"},
        "a dict holding a fitted scaler and a Series of str (pyarrow-backed in pandas 3).",
    ),
    case(
        "c31_pyarrow_table",
        ["""
        import pyarrow as pa
        table = pa.table({"n": [1, 2, 3]})
        """, """
        def scaled_total(k):
            return sum(table.column("n").to_pylist()) * k
        """],
        "scaled_total", [2], {"pyarrow"},
        "a captured pyarrow Table; the code never names pa.",
    ),
    case(
        "c32_class_attribute_model",
        ["""
        import numpy as np
        from sklearn.neighbors import KNeighborsClassifier

        class Registry:
            model = KNeighborsClassifier(n_neighbors=1).fit(np.array([[0.0], [5.0]]), ["a", "b"])
        """, """
        def nearest(x):
            return str(Registry.model.predict([[x]])[0])
        """],
        "nearest", [4.0], {"scikit-learn", "numpy"},
        "a fitted model stored as a class attribute of a notebook class.",
    ),
    case(
        "c33_dateutil_tz",
        ["""
        import datetime
        from dateutil import tz
        zone = tz.tzoffset("X", 3600)
        """, """
        def local_hour(ts):
            return datetime.datetime.fromtimestamp(ts, zone).hour
        """],
        "local_hour", [0], {"python-dateutil"},
        "a captured dateutil tzinfo object.",
    ),
]
