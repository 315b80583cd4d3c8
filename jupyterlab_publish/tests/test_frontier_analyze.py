"""analyze_function on functions built like notebook cells (``__name__ == "__main__"``), real libraries.

Expected requirements here are what the pickle and the code really need: numpy, pandas,
scikit-learn and scipy are installed in the test environment.
"""

from __future__ import annotations

import importlib
import json
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import scipy.linalg
from sklearn.cluster import KMeans

from jupyterlab_publish.frontier import AnalysedRequirement, FrontierReport, analyze_function, installed_version


def notebook(source: str, **names) -> dict:
    """Run ``source`` as a notebook cell would: in a namespace whose ``__name__`` is ``__main__``."""
    namespace = {"__name__": "__main__", **names}
    # dont_inherit: this file's `from __future__ import annotations` must not leak into the cell
    exec(compile(textwrap.dedent(source), "<cell>", "exec", dont_inherit=True), namespace)
    return namespace


def requirement_names(report: FrontierReport) -> list[str]:
    return [r.name for r in report.requirements]


def requirement(report: FrontierReport, name: str) -> AnalysedRequirement:
    return next(r for r in report.requirements if r.name == name)


@pytest.fixture(scope="module")
def kmodel():
    data = np.random.default_rng(0).random((30, 2))
    return KMeans(n_clusters=2, n_init=2, random_state=0).fit(data)


# --- modules used by name ---------------------------------------------------------------------------


def test_global_module_and_unused_modules_in_the_namespace():
    ns = notebook(
        """
        import numpy as np
        import pandas as pd          # imported in the notebook, not used by f
        import scipy
        def f(x):
            return np.mean(x)
        """
    )
    report = analyze_function(ns["f"])
    assert requirement_names(report) == ["numpy"]
    numpy = report.requirements[0]
    assert numpy.version == np.__version__
    assert numpy.why == f"f → np (numpy) → numpy {np.__version__}"
    assert numpy.modules == ["numpy"]


def test_attribute_chain_reaches_the_submodule():
    ns = notebook(
        """
        import numpy as np
        def f(x):
            return np.linalg.norm(x)
        """
    )
    report = analyze_function(ns["f"])
    assert requirement(report, "numpy").modules == ["numpy.linalg"]
    assert requirement(report, "numpy").why == f"f → np (numpy) → numpy.linalg → numpy {np.__version__}"


def test_global_package_attribute_to_real_submodule():
    import scipy.stats  # noqa: F401  (the submodule must be imported to count as one)

    ns = notebook(
        """
        import scipy
        def f(x):
            return scipy.stats.norm.pdf(x)
        """
    )
    report = analyze_function(ns["f"])
    assert requirement(report, "scipy").modules == ["scipy.stats"]


def test_local_import_inside_the_function():
    ns = notebook(
        """
        def f(x):
            import pandas
            return pandas.Series(x)
        """
    )
    report = analyze_function(ns["f"])
    assert requirement_names(report) == ["pandas"]
    assert requirement(report, "pandas").why == f"f → import pandas → pandas {pd.__version__}"


def test_from_import_inside_the_function():
    ns = notebook(
        """
        def f(x):
            from sklearn.preprocessing import StandardScaler
            return StandardScaler().fit_transform(x)
        """
    )
    report = analyze_function(ns["f"])
    assert requirement_names(report) == ["scikit-learn"]
    sk = requirement(report, "scikit-learn")
    assert sk.modules == ["sklearn.preprocessing"]
    assert sk.why.startswith("f → from sklearn.preprocessing import StandardScaler → scikit-learn ")


def test_aliased_dotted_import_and_its_attributes():
    ns = notebook(
        """
        def f(x):
            import numpy.linalg as la
            import scipy
            return la.norm(x) + scipy.linalg.det(x)
        """
    )
    report = analyze_function(ns["f"])
    assert requirement_names(report) == ["numpy", "scipy"]
    assert requirement(report, "numpy").modules == ["numpy.linalg"]
    assert "scipy.linalg" in requirement(report, "scipy").modules


def test_comprehension_lambda_and_nested_def():
    ns = notebook(
        """
        import numpy as np
        import pandas as pd
        import scipy.linalg
        def f(xs):
            squares = [np.sqrt(v) for v in xs]
            frame = (lambda rows: pd.DataFrame(rows))(squares)
            def det(m):
                return scipy.linalg.det(m)
            return frame, det
        """
    )
    assert requirement_names(analyze_function(ns["f"])) == ["numpy", "pandas", "scipy"]


def test_stdlib_modules_are_not_requirements():
    ns = notebook(
        """
        import json, os.path, collections.abc
        def f(x):
            import statistics
            return json.dumps(os.path.join("a", x)), collections.abc.Mapping, statistics.mean([1])
        """
    )
    report = analyze_function(ns["f"])
    assert report.requirements == []
    assert report.warnings == []


# --- captured values --------------------------------------------------------------------------------


def test_captured_kmeans_needs_scikit_learn_and_numpy_only(kmodel):
    ns = notebook(
        """
        def predictor(x):
            return int(kmodel.predict([x])[0])
        """,
        kmodel=kmodel,
    )
    report = analyze_function(ns["predictor"])
    # scipy is a dependency of scikit-learn, but nothing from scipy is in the pickle.
    assert requirement_names(report) == ["numpy", "scikit-learn"]
    sk = requirement(report, "scikit-learn")
    assert sk.version == installed_version("scikit-learn")
    assert sk.why == f"predictor → kmodel (KMeans) → sklearn.cluster._kmeans → scikit-learn {sk.version}"
    assert sk.modules == ["sklearn.cluster._kmeans"]
    assert "kmodel (KMeans) → .cluster_centers_ (ndarray) → numpy" in " ".join(requirement(report, "numpy").chains)
    assert [(c.name, c.type, c.path) for c in report.captured] == [
        ("kmodel", "sklearn.cluster._kmeans.KMeans", "predictor → kmodel")
    ]
    assert report.capture_values == [kmodel]


def test_closure_cells_capturing_a_module_and_a_model(kmodel):
    ns = notebook(
        """
        def make(model):
            import pandas as pd
            def predict(rows):
                return model.predict(pd.DataFrame(rows).to_numpy())
            return predict
        """
    )
    report = analyze_function(ns["make"](kmodel))
    assert requirement_names(report) == ["numpy", "pandas", "scikit-learn"]
    assert requirement(report, "pandas").why.startswith("predict → pd (pandas) → pandas ")
    assert {c.name for c in report.captured} == {"model"}


def test_defaults_and_kwdefaults_capture_objects(kmodel):
    ns = notebook(
        """
        def f(x, scale=np.float64(2.0), *, model=kmodel):
            return model.predict(x) * scale
        """,
        np=np,
        kmodel=kmodel,
    )
    report = analyze_function(ns["f"])
    assert requirement_names(report) == ["numpy", "scikit-learn"]
    assert {(c.name, c.path) for c in report.captured} == {("scale", "f → default scale"), ("model", "f → default model")}
    assert requirement(report, "scikit-learn").why.startswith("f → default model (KMeans) → sklearn.cluster._kmeans")


def test_dict_of_library_helpers():
    ns = notebook(
        """
        def f(name, x):
            return helpers[name](x)
        """,
        helpers={"mean": np.mean, "det": scipy.linalg.det, "dumps": json.dumps},
    )
    report = analyze_function(ns["f"])
    assert requirement_names(report) == ["numpy", "scipy"]
    assert "['det'] (det)" in requirement(report, "scipy").why


def test_notebook_function_calling_notebook_function_using_pandas():
    ns = notebook(
        """
        import pandas as pd
        import numpy as np
        def to_frame(rows):
            return pd.DataFrame(rows)
        def summarize(rows):
            return to_frame(rows).describe()
        def f(rows):
            return summarize(rows).to_dict()
        """
    )
    report = analyze_function(ns["f"])
    assert requirement_names(report) == ["pandas"]
    assert requirement(report, "pandas").why == f"f → summarize → to_frame → pd (pandas) → pandas {pd.__version__}"
    assert report.captured == []  # notebook functions travel as code, they are not captured data


def test_captured_instance_of_a_notebook_class():
    ns = notebook(
        """
        import numpy as np
        class Base:
            def center(self, x):
                import pandas
                return pandas.Series(x) - self.offset
        class Scaler(Base):
            def __init__(self, offset):
                self.offset = offset
            def transform(self, x):
                return np.asarray(self.center(x))
        scaler = Scaler(np.zeros(3))
        def f(x):
            return scaler.transform(x)
        """
    )
    report = analyze_function(ns["f"])
    assert requirement_names(report) == ["numpy", "pandas"]
    assert [(c.name, c.type) for c in report.captured] == [("scaler", "__main__.Scaler")]
    assert "Base.center" in requirement(report, "pandas").why


def test_library_base_class_of_a_notebook_class_contributes_its_module():
    ns = notebook(
        """
        from sklearn.base import BaseEstimator
        class Model(BaseEstimator):
            def predict(self, x):
                return x
        model = Model()
        def f(x):
            return model.predict(x)
        """
    )
    report = analyze_function(ns["f"])
    assert requirement_names(report) == ["scikit-learn"]
    modules = requirement(report, "scikit-learn").modules
    # sklearn's __init_subclass__ also plants a RequestMethod in Model's namespace, pickled with it
    assert "sklearn.base" in modules


def test_scalar_derived_from_a_library_is_not_a_requirement():
    ns = notebook(
        """
        import numpy as np
        N = int(np.int64(3))
        LABELS = ["a", "b", str(np.float64(1.5))]
        def f(x):
            return x * N, LABELS
        """
    )
    report = analyze_function(ns["f"])
    assert report.requirements == []
    assert [(c.name, c.type) for c in report.captured] == [("LABELS", "list"), ("N", "int")]


def test_numpy_scalar_subclass_of_float_does_need_numpy():
    ns = notebook("def f(x):\n    return x * THRESHOLD\n", THRESHOLD=np.float64(0.5))
    assert requirement_names(analyze_function(ns["f"])) == ["numpy"]


def test_rebound_name_uses_the_live_value():
    ns = notebook(
        """
        import pandas as lib
        def f(x):
            return lib.asarray(x)
        import numpy as lib     # a later cell rebinds the name
        """
    )
    assert requirement_names(analyze_function(ns["f"])) == ["numpy"]


def test_also_merges_the_needs_of_a_validator(kmodel):
    ns = notebook(
        """
        import pandas as pd
        def validate(rows):
            return pd.DataFrame(rows)
        def predictor(x):
            return kmodel.predict(x)
        """,
        kmodel=kmodel,
    )
    report = analyze_function(ns["predictor"], also=[ns["validate"]])
    assert requirement_names(report) == ["numpy", "pandas", "scikit-learn"]
    assert requirement(report, "pandas").why.startswith("validate → pd (pandas)")
    assert report.function.name == "predictor"


def test_annotations_are_carried_with_the_function():
    ns = notebook(
        """
        import pandas as pd
        def f(rows: "list", frame: pd.DataFrame = None):
            return rows
        """
    )
    report = analyze_function(ns["f"])
    assert requirement_names(report) == ["pandas"]
    assert requirement(report, "pandas").why.startswith("f → annotation frame (DataFrame) → pandas")


def test_object_pickled_by_name_needs_the_module_pickle_finds_it_in():
    # expit is a numpy.ufunc made by scipy: pickle stores it by name, found in scipy.special.
    ns = notebook("from scipy.special import expit\ndef f(x):\n    return expit(x)\n")
    report = analyze_function(ns["f"])
    assert requirement_names(report) == ["scipy"]
    assert requirement(report, "scipy").why.startswith("f → expit (ufunc) → scipy.special")


def test_object_keeping_its_state_out_of_sight_is_followed_through_its_reduction():
    # pandas' block managers keep their blocks in C attributes; a DataFrame pickles them through
    # __reduce__. The frame's object column holds instances of a notebook class, whose own
    # library base (a scipy distribution) only the reduction reveals.
    ns = notebook(
        """
        import pandas as pd
        from scipy.stats import rv_continuous
        class Custom(rv_continuous):
            pass
        frame = pd.DataFrame({"dist": [Custom(name="c")], "x": [1.0]})
        def f(i):
            return frame["x"][i]
        """
    )
    report = analyze_function(ns["f"])
    assert requirement_names(report) == ["numpy", "pandas", "scipy"]
    assert "__reduce__()" in requirement(report, "scipy").why


def test_huge_capture_is_bounded_and_says_so():
    ns = notebook("def f(i):\n    return table[i]\n", table=list(range(200_000)))
    report = analyze_function(ns["f"])
    assert [w.code for w in report.warnings] == ["capture_truncated"]


# --- dynamic code -----------------------------------------------------------------------------------


def test_literal_dynamic_imports_are_imports():
    ns = notebook(
        """
        import importlib
        from importlib import import_module
        def f(x):
            json = importlib.import_module("json")
            pd = import_module("pandas")
            skl = __import__("sklearn.preprocessing")
            return json, pd, skl
        """
    )
    report = analyze_function(ns["f"])
    assert requirement_names(report) == ["pandas", "scikit-learn"]
    assert requirement(report, "pandas").why.startswith("f → import_module('pandas') → pandas")
    assert report.warnings == []


def test_literal_import_with_a_fromlist_is_an_import():
    ns = notebook(
        """
        def parse_date(text):
            parser = __import__("dateutil.parser", fromlist=["parse"])
            return parser.parse(text)
        """
    )
    report = analyze_function(ns["parse_date"])
    assert requirement_names(report) == ["python-dateutil"]
    assert requirement(report, "python-dateutil").why.startswith("parse_date → __import__('dateutil.parser')")
    assert report.warnings == []


def test_computed_dynamic_import_and_eval_are_warnings():
    ns = notebook(
        """
        import importlib
        def f(name, expr):
            module = importlib.import_module("plugins." + name)
            other = __import__(name)
            return eval(expr), module, other
        """
    )
    report = analyze_function(ns["f"])
    codes = [w.code for w in report.warnings]
    assert codes.count("dynamic_import") == 2
    assert "dynamic_code" in codes
    assert all(w.hint for w in report.warnings)


def test_shadowed_eval_is_not_a_warning():
    ns = notebook("def eval(x):\n    return x\ndef f(x):\n    return eval(x)\n")
    assert analyze_function(ns["f"]).warnings == []


def test_unresolvable_module_is_a_warning_and_undefined_name_an_error():
    ns = notebook(
        """
        def f(x):
            import surely_not_installed_frontier_pkg
            return helper_defined_later(x)
        """
    )
    report = analyze_function(ns["f"])
    assert {w.code for w in report.warnings} == {"unresolved_module"}
    # every call would answer NameError (issue 11): it blocks publishing, naming the name and the fix
    [error] = report.errors
    assert (error.code, error.path) == ("undefined_name", "helper_defined_later")
    assert "Run the cell that defines helper_defined_later" in error.hint
    assert report.requirements == []


# --- local modules ----------------------------------------------------------------------------------


@pytest.fixture
def local_module(tmp_path, monkeypatch):
    (tmp_path / "mylocal_utils.py").write_text(
        textwrap.dedent(
            """
            import json
            import numpy as np
            SCALE = 2
            def double_norm(x):
                return SCALE * np.linalg.norm(x)
            def to_frame(rows):
                import pandas
                return pandas.DataFrame(rows)
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("mylocal_utils")
    yield module
    sys.modules.pop("mylocal_utils", None)


def test_local_module_is_reported_and_walked(local_module):
    ns = notebook(
        """
        import mylocal_utils
        def f(x):
            return mylocal_utils.double_norm(x)
        """
    )
    report = analyze_function(ns["f"])
    assert [(m.name, m.path, m.why) for m in report.local_modules] == [
        ("mylocal_utils", local_module.__file__, "f → mylocal_utils")
    ]
    assert report.local_module_names == ["mylocal_utils"]
    assert report.local_module_objects() == [local_module]
    # the module travels whole, so everything it imports is needed
    assert requirement_names(report) == ["numpy", "pandas"]
    assert requirement(report, "numpy").why.startswith("f → mylocal_utils → np (numpy) → numpy")


def test_function_from_a_local_module_is_walked_as_code(local_module):
    ns = notebook(
        """
        from mylocal_utils import to_frame
        def f(rows):
            return to_frame(rows)
        """
    )
    report = analyze_function(ns["f"])
    assert report.local_module_names == ["mylocal_utils"]
    assert requirement_names(report) == ["pandas"]
    assert requirement(report, "pandas").why.startswith("f → to_frame → import pandas → pandas")


# --- shape and speed --------------------------------------------------------------------------------


def test_report_to_dict_is_plain_json(kmodel):
    ns = notebook(
        '''
        def predictor(x, k=3):
            """Assign x to a cluster.

            Longer text.
            """
            return kmodel.predict(x)
        ''',
        kmodel=kmodel,
    )
    data = analyze_function(ns["predictor"]).to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["function"] == {
        "name": "predictor",
        "qualname": "predictor",
        "module": "__main__",
        "signature": "(x, k=3)",
        "doc": "Assign x to a cluster.",
    }
    assert set(data) == {
        "function", "requirements", "local_modules", "captured", "warnings", "errors", "hints", "lock",
        "preload_modules",
    }
    assert set(data["requirements"][0]) == {"name", "version", "why", "chains", "modules", "editable", "requirement"}
    assert set(data["captured"][0]) == {"name", "type", "path", "size", "size_status"}
    assert {entry["name"] for entry in data["lock"]} >= {"numpy", "scikit-learn", "scipy"}
