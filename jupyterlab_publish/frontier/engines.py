"""Plugin engines: distributions a library loads at run time that no bytecode names.

``pd.read_parquet(path)`` imports pyarrow (or fastparquet) inside pandas, ``create_engine(url)``
imports the database driver the URL names, ``pd.read_csv("s3://...")`` imports s3fs through fsspec.
A fitted scikit-learn transformer told to ``set_output(transform="pandas")`` imports pandas when it
transforms: that setting is data inside the captured object. The pickle does not carry these
engines and no import statement mentions them, so they are suggested, with the reason, when the
function calls such an entry point (or holds such a URL or setting), the library that loads the
engine is itself required, and an engine is installed here. They are never added silently: the
user accepts a hint in the Publish dialog.

The knowledge is the tables below; the matching is the small function at the end.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping

Alternatives = tuple[tuple[str, ...], ...]  # import names; the first fully installed set is chosen

_PANDAS = frozenset({"pandas", "dask", "geopandas", "modin"})


@dataclass(frozen=True)
class EntryPointRule:
    """Calls of any name in ``calls`` make one of ``hosts`` load ``what`` from ``engines``."""

    calls: frozenset[str]
    hosts: frozenset[str]  # canonical distribution names
    what: str
    engines: Alternatives  # in the host's own order of preference
    # file suffixes in the function's string constants that decide the engine (.xls -> xlrd)
    by_suffix: Mapping[str, Alternatives] = field(default_factory=dict)
    # engine names written in the code (engine="fastparquet") that decide it
    by_name: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


ENTRY_POINTS: tuple[EntryPointRule, ...] = (
    EntryPointRule(
        frozenset({"read_parquet", "to_parquet"}), _PANDAS, "a parquet engine",
        (("pyarrow",), ("fastparquet",)),
        by_name={"pyarrow": ("pyarrow",), "fastparquet": ("fastparquet",)},
    ),
    EntryPointRule(
        frozenset({"read_feather", "to_feather", "read_orc", "to_orc"}), _PANDAS, "pyarrow", (("pyarrow",),)
    ),
    EntryPointRule(
        frozenset({"read_excel", "ExcelFile"}), _PANDAS, "an Excel reader",
        (("openpyxl",),),
        by_suffix={".xlsx": (("openpyxl",),), ".xlsm": (("openpyxl",),), ".xls": (("xlrd",),),
                   ".ods": (("odf",),), ".xlsb": (("pyxlsb",),)},
        by_name={"openpyxl": ("openpyxl",), "xlrd": ("xlrd",), "odf": ("odf",), "pyxlsb": ("pyxlsb",),
                 "calamine": ("python_calamine",)},
    ),
    EntryPointRule(
        frozenset({"to_excel", "ExcelWriter"}), _PANDAS, "an Excel writer",
        (("xlsxwriter",), ("openpyxl",)),
        by_suffix={".ods": (("odf",),)},
        by_name={"xlsxwriter": ("xlsxwriter",), "openpyxl": ("openpyxl",), "odf": ("odf",)},
    ),
    EntryPointRule(frozenset({"read_xml", "to_xml"}), _PANDAS, "an XML parser", (("lxml",),)),
    EntryPointRule(
        frozenset({"read_html"}), _PANDAS, "an HTML parser", (("lxml",), ("bs4", "html5lib")),
        by_name={"lxml": ("lxml",), "bs4": ("bs4", "html5lib"), "html5lib": ("bs4", "html5lib")},
    ),
    EntryPointRule(frozenset({"read_hdf", "to_hdf", "HDFStore"}), _PANDAS, "PyTables", (("tables",),)),
    EntryPointRule(frozenset({"to_markdown"}), _PANDAS, "tabulate", (("tabulate",),)),
    # The default parsers are pandas' own: only an engine named in the code needs a distribution.
    EntryPointRule(
        frozenset({"read_csv", "read_table", "read_json"}), _PANDAS, "the parser it is told to use", (),
        by_name={"pyarrow": ("pyarrow",)},
    ),
    # html.parser is the standard library's; the other tree builders are chosen by feature name.
    EntryPointRule(
        frozenset({"BeautifulSoup"}), frozenset({"beautifulsoup4"}), "the tree builder it is asked for", (),
        by_name={"lxml": ("lxml",), "lxml-xml": ("lxml",), "xml": ("lxml",), "html5lib": ("html5lib",)},
    ),
)


@dataclass(frozen=True, eq=False)  # compared (and hashed) by identity: one object per rule
class SettingRule:
    """A captured object whose ``attribute`` (a dict) maps ``key`` to a value in ``engines`` makes
    one of ``hosts`` load that engine when the object is used."""

    attribute: str
    key: str
    hosts: frozenset[str]
    what: str
    engines: Mapping[str, tuple[str, ...]]


SETTINGS: tuple[SettingRule, ...] = (
    # set_output(transform=...) on an estimator, a pipeline or one of its steps
    SettingRule(
        "_sklearn_output_config", "transform", frozenset({"scikit-learn"}), "its output container",
        {"pandas": ("pandas",), "polars": ("polars",)},
    ),
)


@dataclass(frozen=True)
class Setting:
    """A setting found in a captured object: which rule, and the value it holds."""

    rule: SettingRule
    value: str

    @property
    def trigger(self) -> str:
        return f"{self.rule.key}={self.value!r}"


def read_settings(obj: object) -> list[Setting]:
    """The engine-deciding settings ``obj`` holds in its ``__dict__`` (read without running code)."""
    try:
        namespace = object.__getattribute__(obj, "__dict__")
    except Exception:
        return []
    if not isinstance(namespace, dict):
        return []
    found = []
    for rule in SETTINGS:
        config = namespace.get(rule.attribute)
        value = config.get(rule.key) if isinstance(config, dict) else None
        if isinstance(value, str) and value in rule.engines:
            found.append(Setting(rule, value))
    return found

# URL protocols that fsspec (and pandas through it) serves with a separate distribution.
FSSPEC_PROTOCOLS: Mapping[str, str] = {
    "s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "az": "adlfs", "abfs": "adlfs",
    "abfss": "adlfs", "adl": "adlfs", "hf": "huggingface_hub", "sftp": "paramiko", "ssh": "paramiko",
    "hdfs": "pyarrow", "oci": "ocifs", "webdav": "webdav4", "smb": "smbprotocol",
}
FSSPEC_HOSTS = frozenset({"pandas", "fsspec", "dask", "xarray", "geopandas", "zarr"})

# SQLAlchemy URLs: dialect -> modules it needs when no driver is named (its default DBAPI, or the
# third-party dialect package); driver -> module when one is named (dialect+driver://).
SQL_DIALECTS: Mapping[str, Alternatives] = {
    "postgresql": (("psycopg2",),), "postgres": (("psycopg2",),), "mysql": (("MySQLdb",),),
    "mariadb": (("MySQLdb",),), "oracle": (("cx_Oracle",), ("oracledb",)), "mssql": (("pyodbc",),),
    "sqlite": ((),), "snowflake": (("snowflake.sqlalchemy",),), "duckdb": (("duckdb_engine",),),
    "bigquery": (("sqlalchemy_bigquery",),), "redshift": (("sqlalchemy_redshift",),),
    "clickhouse": (("clickhouse_sqlalchemy",),), "trino": (("trino",),), "databricks": (("databricks.sqlalchemy",),),
    "cockroachdb": (("sqlalchemy_cockroachdb",),),
}
SQL_DRIVERS: Mapping[str, str] = {
    "mysqldb": "MySQLdb", "mysqlconnector": "mysql.connector", "mariadbconnector": "mariadb",
    "cx_oracle": "cx_Oracle", "pysqlite": "sqlite3", "pysqlcipher": "sqlcipher3",
}
SQL_HOSTS = frozenset({"sqlalchemy", "pandas"})
# Protocols fsspec implements itself: the URL needs fsspec, which pandas does not require.
FSSPEC_BUILTIN = frozenset(
    {"memory", "ftp", "zip", "tar", "reference", "simplecache", "filecache", "blockcache", "dir"}
)

_URL = re.compile(r"^\s*([A-Za-z][A-Za-z0-9+.-]*)://")


@dataclass(frozen=True)
class EngineSuggestion:
    module: str
    reason: str
    trigger: str  # the name called, or the string, that led here (its chain is the caller's)


def _first_installed(alternatives: Alternatives, installed: Callable[[str], bool]) -> tuple[str, ...]:
    for modules in alternatives:
        if all(installed(m) for m in modules):
            return modules
    return ()


def _ending(strings: Iterable[str], suffixes: Iterable[str]) -> str | None:
    lowered = [s.lower() for s in strings]
    for suffix in sorted(suffixes, key=len, reverse=True):
        if any(s.endswith(suffix) for s in lowered):
            return suffix
    return None


def suggest_engines(
    called: Iterable[str],
    strings: Iterable[str],
    required: set[str],
    installed: Callable[[str], bool],
    settings: Iterable[Setting] = (),
) -> list[EngineSuggestion]:
    """Engines for the entry points in ``called``, the URLs in ``strings`` and the ``settings``
    found in captured objects.

    ``required`` holds the canonical names of the distributions already required; ``installed``
    tells whether an import name can be found here.
    """
    called, strings = set(called), [s for s in strings if s]
    found: list[EngineSuggestion] = []
    for rule in ENTRY_POINTS:
        trigger = next((name for name in sorted(rule.calls & called)), None)
        if trigger is None or not rule.hosts & required:
            continue
        named = [rule.by_name[s] for s in strings if s in rule.by_name]
        suffix = _ending(strings, rule.by_suffix)
        if named:
            alternatives: Alternatives = tuple(named)
        elif suffix:
            alternatives = rule.by_suffix[suffix]
        else:
            alternatives = rule.engines
        host = sorted(rule.hosts & required)[0]
        for module in _first_installed(alternatives, installed):
            reason = f"{trigger}(): {host} loads {rule.what} ({module}) at run time"
            found.append(EngineSuggestion(module, reason, trigger))
    for text in strings:
        url = _URL.match(text)
        if url is None:
            continue
        scheme = url.group(1).lower()
        found.extend(_url_engines(scheme, required, installed))
    for setting in settings:
        hosts = setting.rule.hosts & required
        if not hosts:
            continue
        for module in _first_installed((setting.rule.engines[setting.value],), installed):
            reason = f"{setting.trigger}: {sorted(hosts)[0]} loads {setting.rule.what} ({module}) at run time"
            found.append(EngineSuggestion(module, reason, setting.trigger))
    return found


def _url_engines(scheme: str, required: set[str], installed: Callable[[str], bool]) -> list[EngineSuggestion]:
    # Only the scheme is repeated in reasons: the rest of a URL may hold a password.
    trigger = f"{scheme}://"
    if (scheme in FSSPEC_PROTOCOLS or scheme in FSSPEC_BUILTIN) and FSSPEC_HOSTS & required:
        module = FSSPEC_PROTOCOLS.get(scheme, "fsspec")
        if installed(module):
            hosts = sorted(FSSPEC_HOSTS & required)
            opens = f"{'/'.join(hosts)} {'opens' if len(hosts) == 1 else 'open'} it with {module}"
            via = "" if module == "fsspec" else " (via fsspec)"
            return [EngineSuggestion(module, f"a {trigger} URL: {opens}{via}", trigger)]
        return []
    dialect, _, driver = scheme.partition("+")
    if dialect not in SQL_DIALECTS or not SQL_HOSTS & required:
        return []
    if driver:
        alternatives: Alternatives = ((SQL_DRIVERS.get(driver, driver),),)
    else:
        alternatives = SQL_DIALECTS[dialect]
    modules = list(_first_installed(alternatives, installed))
    if "sqlalchemy" not in required and installed("sqlalchemy"):
        modules.insert(0, "sqlalchemy")  # pandas opens URL strings through SQLAlchemy
    reason = f"a {trigger} database URL: SQLAlchemy loads its driver at run time"
    return [EngineSuggestion(m, reason, trigger) for m in modules if m != "sqlite3"]
