"""Plugin-engine hints: distributions a library loads at run time that no import names (pandas'
parquet/Excel/XML engines, fsspec protocols, SQLAlchemy drivers), offered when installed.

The engines are installed here as real distributions (metadata + module files) in a temporary
site-packages directory; their modules refuse to be imported, so nothing can use them by accident.
"""

from __future__ import annotations

import io

import pandas as pd
import pytest
from frontier_sites import make_site, notebook

from jupyterlab_publish.frontier import analyze_function
from jupyterlab_publish.frontier.engines import suggest_engines

ENGINES = {  # distribution -> import name
    "pyarrow": "pyarrow",
    "fastparquet": "fastparquet",
    "openpyxl": "openpyxl",
    "xlrd": "xlrd",
    "odfpy": "odf",
    "s3fs": "s3fs",
    "psycopg2-binary": "psycopg2",
    "PyMySQL": "pymysql",
    "SQLAlchemy": "sqlalchemy",
    "fsspec": "fsspec",
    "lxml": "lxml",
}


@pytest.fixture
def engines(tmp_path, monkeypatch):
    site = make_site(tmp_path, monkeypatch)
    for dist, module in ENGINES.items():
        site.module(f"{module}/__init__.py", "raise ImportError('a stand-in engine for the frontier tests')\n")
        site.dist(dist, "99.0", files=(f"{module}/__init__.py",))
    yield site
    site.forget_imports()


def hints(source: str, **names) -> list[tuple[str, str]]:
    report = analyze_function(notebook(source, pd=pd, **names)["f"])
    return [(h.distribution, h.module) for h in report.hints]


def test_read_parquet_suggests_the_first_installed_engine(engines):
    report = analyze_function(notebook("def f(path):\n    return pd.read_parquet(path)\n", pd=pd)["f"])
    assert [r.name for r in report.requirements] == ["pandas"]  # a hint is not a requirement
    (hint,) = report.hints
    assert (hint.distribution, hint.version, hint.module) == ("pyarrow", "99.0", "pyarrow")
    assert hint.reason == "f → read_parquet(): pandas loads a parquet engine (pyarrow) at run time"
    assert report.to_dict()["hints"] == [
        {"distribution": "pyarrow", "version": "99.0", "reason": hint.reason, "module": "pyarrow"}
    ]


def test_engine_named_in_the_code_wins(engines):
    source = "def f(rows, path):\n    pd.DataFrame(rows).to_parquet(path, engine='fastparquet')\n"
    assert hints(source) == [("fastparquet", "fastparquet")]


def test_excel_engine_follows_the_file_extension(engines):
    assert hints("def f():\n    return pd.read_excel('old-book.xls')\n") == [("xlrd", "xlrd")]
    assert hints("def f(rows):\n    pd.DataFrame(rows).to_excel('sheet.ods')\n") == [("odfpy", "odf")]
    assert hints("def f(path):\n    return pd.read_excel(path)\n") == [("openpyxl", "openpyxl")]


def test_url_protocol_suggests_its_filesystem_without_repeating_the_url(engines):
    source = "def f():\n    return pd.read_csv('s3://my-bucket/secret-key.csv')\n"
    report = analyze_function(notebook(source, pd=pd)["f"])
    (hint,) = report.hints
    assert (hint.distribution, hint.module) == ("s3fs", "s3fs")
    assert "s3://" in hint.reason and "my-bucket" not in hint.reason


def test_url_in_a_global_string_counts_too(engines):
    assert hints("def f():\n    return pd.read_csv(SOURCE)\n", SOURCE="s3://bucket/data.csv") == [("s3fs", "s3fs")]


def test_sqlalchemy_url_names_its_driver_and_hides_the_password(engines):
    report = analyze_function(
        notebook(
            """
            def f(query):
                import sqlalchemy
                engine = sqlalchemy.create_engine("postgresql+psycopg2://user:hunter2@db.example/prod")
                return engine, query
            """
        )["f"]
    )
    assert [r.name for r in report.requirements] == ["SQLAlchemy"]
    (hint,) = report.hints
    assert (hint.distribution, hint.module) == ("psycopg2-binary", "psycopg2")
    assert "postgresql+psycopg2://" in hint.reason and "hunter2" not in hint.reason


def test_pandas_sql_url_needs_sqlalchemy_and_the_driver(engines):
    found = hints("def f():\n    return pd.read_sql('SELECT 1', 'mysql+pymysql://u:p@h/d')\n")
    assert found == [("PyMySQL", "pymysql"), ("SQLAlchemy", "sqlalchemy")]


def test_a_parser_engine_named_in_the_code_is_suggested_only_when_named(engines):
    named = "def f(text):\n    return pd.read_csv(io.StringIO(text), engine='pyarrow')\n"
    assert hints(named, io=io) == [("pyarrow", "pyarrow")]
    assert hints("def f(path):\n    return pd.read_csv(path)\n") == []  # pandas' own C parser


def test_a_protocol_fsspec_implements_itself_suggests_fsspec(engines):
    report = analyze_function(notebook("def f():\n    return pd.read_csv('memory://t.csv')\n", pd=pd)["f"])
    assert [(h.distribution, h.reason) for h in report.hints] == [
        ("fsspec", "f → a memory:// URL: pandas opens it with fsspec")
    ]


def test_a_setting_held_by_a_captured_estimator_suggests_its_engine():
    # pandas is really installed: set_output(transform="pandas") makes scikit-learn import it when
    # the captured scaler transforms, though the function never names pandas.
    source = """
        import numpy as np
        from sklearn.preprocessing import StandardScaler
        scaler = StandardScaler().set_output(transform="pandas").fit(np.array([[1.0], [3.0]]))
        plain = StandardScaler().fit(np.array([[1.0], [3.0]]))
        def f(rows):
            return scaler.transform(np.asarray(rows)).to_numpy().tolist()
        def g(rows):
            return plain.transform(np.asarray(rows)).tolist()
    """
    namespace = notebook(source)
    report = analyze_function(namespace["f"])
    assert [r.name for r in report.requirements] == ["numpy", "scikit-learn"]
    (hint,) = report.hints
    assert hint.distribution == "pandas"
    assert hint.reason == (
        "f → scaler (StandardScaler) → transform='pandas': scikit-learn loads its output container "
        "(pandas) at run time"
    )
    assert analyze_function(namespace["g"]).hints == []


def test_no_hint_without_the_host_library(engines):
    # read_parquet is a method of a notebook class here: pandas is not involved
    source = """
        class Store:
            def read_parquet(self, path):
                return path
        store = Store()
        def f(path):
            return store.read_parquet(path), "s3://bucket/x"
    """
    assert hints(source) == []


def test_no_hint_for_an_engine_that_is_not_installed_or_already_required(engines):
    assert hints("def f(path):\n    return pd.read_hdf(path)\n") == []  # PyTables is not installed
    source = "def f(path):\n    import pyarrow\n    return pd.read_parquet(path)\n"
    report = analyze_function(notebook(source, pd=pd)["f"])
    assert [r.name for r in report.requirements] == ["pandas", "pyarrow"] and report.hints == []


def test_no_hint_when_nothing_is_installed():
    # without the stand-ins, none of these engines is installed in the test environment
    assert hints("def f(path):\n    return pd.read_parquet(path), pd.read_csv('gs://b/k')\n") == []


def test_beautifulsoup_tree_builders_by_feature_name():
    def installed(module):
        return module in {"lxml", "html5lib"}

    def modules(strings):
        return [s.module for s in suggest_engines({"BeautifulSoup"}, strings, {"beautifulsoup4"}, installed)]

    assert modules(["<p>", "lxml"]) == ["lxml"]
    assert modules(["xml"]) == ["lxml"]
    assert modules(["html5lib"]) == ["html5lib"]
    assert modules(["html.parser"]) == []  # the standard library's
    assert suggest_engines({"BeautifulSoup"}, ["lxml"], set(), installed) == []  # bs4 not required


def test_the_table_prefers_lxml_then_beautifulsoup_with_html5lib():
    def installed(names):
        return lambda module: module in names

    found = suggest_engines({"read_html"}, [], {"pandas"}, installed({"lxml", "bs4", "html5lib"}))
    assert [s.module for s in found] == ["lxml"]
    found = suggest_engines({"read_html"}, [], {"pandas"}, installed({"bs4", "html5lib"}))
    assert [s.module for s in found] == ["bs4", "html5lib"]
    assert suggest_engines({"read_html"}, [], {"pandas"}, installed({"bs4"})) == []
    assert suggest_engines({"read_html"}, [], set(), installed({"lxml"})) == []
