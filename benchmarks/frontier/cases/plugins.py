"""Engines and back ends chosen at run time that no bytecode names (ground truth includes them)."""

from casebook import case

CASES = [
    case(
        "e01_read_parquet",
        ["""
        import io
        import pandas as pd

        def roundtrip(values):
            buf = io.BytesIO()
            pd.DataFrame({"v": values}).to_parquet(buf)
            return pd.read_parquet(io.BytesIO(buf.getvalue()))["v"].tolist()
        """],
        "roundtrip", [[1, 2, 3]], {"pandas", "pyarrow"},
        "to_parquet/read_parquet need a parquet engine: pyarrow is the one installed.",
    ),
    case(
        "e02_read_csv_pyarrow_engine",
        ["""
        import io
        import pandas as pd

        def parse(text):
            return pd.read_csv(io.StringIO(text), engine="pyarrow")["a"].tolist()
        """],
        "parse", ["a,b\n1,2\n3,4\n"], {"pandas", "pyarrow"},
        'read_csv(engine="pyarrow") imports pyarrow at run time.',
    ),
    case(
        "e03_excel",
        ["""
        import io
        import pandas as pd

        def via_excel(values):
            buf = io.BytesIO()
            pd.DataFrame({"v": values}).to_excel(buf, index=False)
            return pd.read_excel(io.BytesIO(buf.getvalue()))["v"].tolist()
        """],
        "via_excel", [[4, 5]], {"pandas", "openpyxl"},
        "to_excel/read_excel of .xlsx use openpyxl.",
    ),
    case(
        "e04_to_markdown",
        ["""
        import pandas as pd

        def markdown(rows):
            return pd.DataFrame(rows).to_markdown(index=False)
        """],
        "markdown", [[{"a": 1, "b": 2}]], {"pandas", "tabulate"},
        "DataFrame.to_markdown imports tabulate.",
    ),
    case(
        "e05_fsspec_protocol",
        ["""
        import pandas as pd

        def memory_roundtrip(values):
            pd.DataFrame({"v": values}).to_csv("memory://bench/values.csv", index=False)
            return pd.read_csv("memory://bench/values.csv")["v"].tolist()
        """],
        "memory_roundtrip", [[7, 8]], {"pandas", "fsspec"},
        "a memory:// URL is handled by fsspec.",
    ),
    case(
        "e06_bs4_lxml_parser",
        ["""
        from bs4 import BeautifulSoup

        def first_cell(html):
            return BeautifulSoup(html, "lxml").find("td").get_text()
        """],
        "first_cell", ["<table><tr><td>x1</td></tr></table>"], {"beautifulsoup4", "lxml"},
        'BeautifulSoup(..., "lxml") loads the lxml tree builder.',
    ),
    case(
        "e07_sklearn_pandas_output",
        ["""
        import numpy as np
        from sklearn.preprocessing import StandardScaler
        scaler = StandardScaler().set_output(transform="pandas").fit(np.array([[0.0], [2.0]]))
        """, """
        def scaled(x):
            return float(scaler.transform(np.array([[x]])).iloc[0, 0])
        """],
        "scaled", [3.0], {"scikit-learn", "numpy", "pandas"},
        'set_output(transform="pandas") makes sklearn build DataFrames at run time.',
    ),
    case(
        "e08_read_xml",
        ["""
        import io
        import pandas as pd

        def xml_values(xml):
            return pd.read_xml(io.StringIO(xml))["v"].tolist()
        """],
        "xml_values", ["<rows><row><v>1</v></row><row><v>2</v></row></rows>"], {"pandas", "lxml"},
        "read_xml's default parser is lxml.",
    ),
]
