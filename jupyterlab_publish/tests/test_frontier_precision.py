"""Precision: nothing the function does not need is required."""

from __future__ import annotations

import numpy as np
import pandas as pd
from frontier_sites import notebook

from jupyterlab_publish.frontier import analyze_function


def names(fn) -> list[str]:
    return [r.name for r in analyze_function(fn).requirements]


def test_unused_imports_of_the_same_cell():
    ns = notebook(
        """
        import numpy as np
        import pandas as pd
        import scipy.linalg
        from sklearn.cluster import KMeans
        def f(x):
            return np.asarray(x).sum()
        """
    )
    assert names(ns["f"]) == ["numpy"]


def test_attribute_and_keyword_names_that_look_like_globals():
    ns = notebook(
        """
        import numpy as np
        import pandas as pd
        def f(row, cfg):
            options = dict(pandas=1, np=2)
            return row.pd, cfg.numpy.np, options
        """
    )
    report = analyze_function(ns["f"])
    assert report.requirements == [] and report.warnings == [] and report.captured == []


def test_a_local_variable_shadowing_a_module_global():
    ns = notebook(
        """
        import pandas as pd
        def f(x):
            pd = list(x)
            return [v for v in pd]
        """
    )
    assert names(ns["f"]) == []


def test_module_names_in_strings_and_docstrings_are_not_imports():
    ns = notebook(
        '''
        def f(x):
            """Like pandas.DataFrame.describe, without pandas."""
            return {"engine": "numpy", "x": x}
        '''
    )
    assert names(ns["f"]) == []


def test_scalars_derived_from_libraries_inside_containers():
    ns = notebook(
        "def f(x):\n    return CONFIG['scale'] * x\n",
        CONFIG={"scale": float(np.float32(2.0)), "name": str(pd.Timestamp("2024-01-01").year)},
    )
    assert names(ns["f"]) == []


def test_an_unused_default_of_library_type_still_counts():
    # cloudpickle carries defaults whether or not the body reads them: precision must not drop it
    ns = notebook("def f(x, scale=np.float64(2.0)):\n    return x\n", np=np)
    assert names(ns["f"]) == ["numpy"]
