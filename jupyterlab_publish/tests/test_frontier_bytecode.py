"""The instruction walker, on this interpreter's bytecode and on streams recorded from CPython 3.12-3.14.

The recorded streams carry only ``opname`` and ``argval``, exactly what the walker may look at, and
follow what ``dis.get_instructions`` yields on those versions (argval of LOAD_GLOBAL and of the
method form of LOAD_ATTR is the plain name; the NULL bit only shows in ``argrepr``).
"""

from __future__ import annotations

import dis
import textwrap
from types import SimpleNamespace

from jupyterlab_publish.frontier.bytecode import CallUse, ImportUse, NameUse, scan_code, scan_instructions


def ins(opname, argval=None):
    return SimpleNamespace(opname=opname, argval=argval)


def compiled_function(source: str, name: str = "f"):
    namespace: dict = {"__name__": "__main__"}
    exec(textwrap.dedent(source), namespace)
    return namespace[name]


# --- streams recorded from newer interpreters -------------------------------------------------------


def test_load_global_with_null_bit_reads_plain_name_and_attribute_chain():
    # 3.12: np.linalg.norm(x) -> LOAD_GLOBAL (NULL + np) ... LOAD_ATTR (NULL|self + norm)
    scan = scan_instructions(
        [
            ins("RESUME", 0),
            ins("LOAD_GLOBAL", "np"),
            ins("LOAD_ATTR", "linalg"),
            ins("LOAD_ATTR", "norm"),
            ins("LOAD_FAST", "x"),
            ins("CALL", 1),
            ins("RETURN_VALUE"),
        ]
    )
    assert NameUse("global", "np", ("linalg", "norm")) in scan.names
    assert scan.global_names == {"np"}


def test_3_14_import_with_load_small_int_level_and_borrowed_loads():
    # 3.14: `import numpy as np; return np.mean(x)`
    scan = scan_instructions(
        [
            ins("LOAD_SMALL_INT", 0),
            ins("LOAD_CONST", None),
            ins("IMPORT_NAME", "numpy"),
            ins("STORE_FAST", "np"),
            ins("LOAD_FAST_BORROW", "np"),
            ins("LOAD_ATTR", "mean"),
            ins("LOAD_FAST_BORROW", "x"),
            ins("CALL", 1),
            ins("RETURN_VALUE"),
        ]
    )
    assert scan.imports == [ImportUse("numpy", 0, ())]
    assert scan.bindings == {"np": "numpy"}
    assert NameUse("local", "np", ("mean",)) in scan.names


def test_3_14_from_import_and_relative_import():
    scan = scan_instructions(
        [
            ins("LOAD_SMALL_INT", 0),
            ins("LOAD_CONST", ("KMeans", "DBSCAN")),
            ins("IMPORT_NAME", "sklearn.cluster"),
            ins("IMPORT_FROM", "KMeans"),
            ins("STORE_FAST", "KMeans"),
            ins("IMPORT_FROM", "DBSCAN"),
            ins("STORE_FAST", "DB"),
            ins("POP_TOP"),
            ins("LOAD_SMALL_INT", 1),
            ins("LOAD_CONST", ("sibling",)),
            ins("IMPORT_NAME", ""),
            ins("IMPORT_FROM", "sibling"),
            ins("STORE_FAST", "sibling"),
            ins("POP_TOP"),
        ]
    )
    assert scan.imports == [ImportUse("sklearn.cluster", 0, ("KMeans", "DBSCAN")), ImportUse("", 1, ("sibling",))]
    assert scan.bindings == {"KMeans": "sklearn.cluster.KMeans", "DB": "sklearn.cluster.DBSCAN", "sibling": ".sibling"}


def test_aliased_dotted_import_binds_the_submodule():
    # `import a.b.c as d`, the same shape on 3.11-3.14
    scan = scan_instructions(
        [
            ins("LOAD_SMALL_INT", 0),
            ins("LOAD_CONST", None),
            ins("IMPORT_NAME", "a.b.c"),
            ins("IMPORT_FROM", "b"),
            ins("SWAP", 2),
            ins("POP_TOP"),
            ins("IMPORT_FROM", "c"),
            ins("STORE_FAST", "d"),
            ins("POP_TOP"),
            ins("LOAD_FAST_BORROW", "d"),
            ins("RETURN_VALUE"),
        ]
    )
    assert scan.bindings == {"d": "a.b.c"}
    assert scan.imports == [ImportUse("a.b.c", 0, ())]


def test_3_12_inlined_comprehension_uses_are_seen_in_the_outer_code():
    # 3.12: [np.sqrt(v) for v in xs] inlined (PEP 709), no nested code object
    scan = scan_instructions(
        [
            ins("LOAD_FAST", "xs"),
            ins("GET_ITER"),
            ins("LOAD_FAST_AND_CLEAR", "v"),
            ins("SWAP", 2),
            ins("BUILD_LIST", 0),
            ins("SWAP", 2),
            ins("FOR_ITER", 30),
            ins("STORE_FAST", "v"),
            ins("LOAD_GLOBAL", "np"),
            ins("LOAD_ATTR", "sqrt"),
            ins("LOAD_FAST", "v"),
            ins("CALL", 1),
            ins("LIST_APPEND", 2),
            ins("JUMP_BACKWARD", 10),
            ins("END_FOR"),
            ins("SWAP", 2),
            ins("STORE_FAST", "v"),
            ins("RETURN_VALUE"),
        ]
    )
    assert NameUse("global", "np", ("sqrt",)) in scan.names
    assert scan.global_names == {"np"}


def test_3_13_fused_fast_load_roots_the_chain_at_the_last_name():
    scan = scan_instructions(
        [
            ins("LOAD_FAST_LOAD_FAST", ("x", "pd")),
            ins("LOAD_ATTR", "DataFrame"),
        ]
    )
    assert NameUse("local", "pd", ("DataFrame",)) in scan.names


def test_3_13_store_fused_with_load_binds_the_import_and_starts_a_chain():
    # `import pandas as pd` then `pd.DataFrame`, with STORE_FAST + LOAD_FAST fused
    scan = scan_instructions(
        [
            ins("LOAD_SMALL_INT", 0),
            ins("LOAD_CONST", None),
            ins("IMPORT_NAME", "pandas"),
            ins("STORE_FAST_LOAD_FAST", ("pd", "pd")),
            ins("LOAD_ATTR", "DataFrame"),
            ins("CALL", 0),
        ]
    )
    assert scan.bindings == {"pd": "pandas"}
    assert NameUse("local", "pd", ("DataFrame",)) in scan.names


def test_caches_and_extended_args_do_not_break_a_chain():
    scan = scan_instructions(
        [
            ins("LOAD_GLOBAL", "scipy"),
            ins("CACHE", 0),
            ins("CACHE", 0),
            ins("EXTENDED_ARG", 1),
            ins("LOAD_ATTR", "stats"),
            ins("CACHE", 0),
            ins("RETURN_VALUE"),
        ]
    )
    assert NameUse("global", "scipy", ("stats",)) in scan.names


def test_dynamic_calls_with_literal_and_computed_arguments():
    scan = scan_instructions(
        [
            # 3.14: importlib.import_module("sklearn")
            ins("LOAD_GLOBAL", "importlib"),
            ins("LOAD_ATTR", "import_module"),
            ins("LOAD_CONST", "sklearn"),
            ins("CALL", 1),
            ins("POP_TOP"),
            # 3.13: __import__("mod_" + name)
            ins("LOAD_GLOBAL", "__import__"),
            ins("LOAD_CONST", "mod_"),
            ins("LOAD_FAST_BORROW", "name"),
            ins("BINARY_OP", 0),
            ins("CALL", 1),
            ins("POP_TOP"),
            # eval(expr)
            ins("LOAD_GLOBAL", "eval"),
            ins("LOAD_FAST", "expr"),
            ins("CALL", 1),
            ins("RETURN_VALUE"),
        ]
    )
    assert scan.calls == [
        CallUse(NameUse("global", "importlib", ("import_module",)), "sklearn"),
        CallUse(NameUse("global", "__import__"), None),
        CallUse(NameUse("global", "eval"), None),
    ]


def test_literal_argument_followed_by_keywords_is_still_literal():
    # 3.13: import_module("pkg.mod", package=base) -> CALL_KW
    scan = scan_instructions(
        [
            ins("LOAD_GLOBAL", "import_module"),
            ins("LOAD_CONST", "pkg.mod"),
            ins("LOAD_FAST", "base"),
            ins("LOAD_CONST", ("package",)),
            ins("CALL_KW", 2),
        ]
    )
    assert scan.calls == [CallUse(NameUse("global", "import_module"), "pkg.mod")]


def test_literal_argument_followed_by_a_built_fromlist_is_still_literal():
    scan = scan_instructions(
        [
            # 3.13: __import__("dateutil.parser", fromlist=["parse"])
            ins("LOAD_GLOBAL", "__import__"),
            ins("LOAD_CONST", "dateutil.parser"),
            ins("LOAD_CONST", "parse"),
            ins("BUILD_LIST", 1),
            ins("LOAD_CONST", ("fromlist",)),
            ins("CALL_KW", 2),
            ins("POP_TOP"),
            # 3.9: __import__("a.b", globals(), None, ["x", "y"], 0) -> LIST_EXTEND of a const tuple
            ins("LOAD_GLOBAL", "__import__"),
            ins("LOAD_CONST", "a.b"),
            ins("LOAD_GLOBAL", "globals"),
            ins("CALL_FUNCTION", 0),
            ins("LOAD_CONST", None),
            ins("BUILD_LIST", 0),
            ins("LOAD_CONST", ("x", "y")),
            ins("LIST_EXTEND", 1),
            ins("LOAD_CONST", 0),
            ins("CALL_FUNCTION", 5),
        ]
    )
    assert scan.calls == [
        CallUse(NameUse("global", "__import__"), "dateutil.parser"),
        CallUse(NameUse("global", "__import__"), "a.b"),
    ]


def test_a_literal_computed_with_before_the_call_is_not_literal():
    scan = scan_instructions(
        [
            # 3.12: __import__("pkg".upper()): the method load takes the literal
            ins("LOAD_GLOBAL", "__import__"),
            ins("LOAD_CONST", "pkg"),
            ins("LOAD_ATTR", "upper"),
            ins("CALL", 0),
            ins("CALL", 1),
            ins("POP_TOP"),
            # 3.11: __import__(["pkg"][0]): the list takes it
            ins("LOAD_GLOBAL", "__import__"),
            ins("LOAD_CONST", "pkg"),
            ins("BUILD_LIST", 1),
            ins("LOAD_CONST", 0),
            ins("BINARY_SUBSCR"),
            ins("PRECALL", 1),
            ins("CALL", 1),
        ]
    )
    assert [call.literal for call in scan.calls] == [None, None]


def test_this_interpreter_sees_literal_imports_with_fromlist_and_nested_argument_calls():
    fn = compiled_function(
        """
        def f(name):
            a = __import__("dateutil.parser", fromlist=["parse"])
            b = __import__("json.decoder", globals(), locals(), ["JSONDecoder"], 0)
            c = __import__(name.strip())
            return a, b, c
        """
    )
    literals = [call.literal for call in scan_code(fn.__code__).calls]
    assert literals == ["dateutil.parser", "json.decoder", None]


def test_global_writes_are_carried_like_reads():
    scan = scan_instructions([ins("LOAD_CONST", 1), ins("STORE_GLOBAL", "counter")])
    assert scan.global_names == {"counter"}


# --- this interpreter's own bytecode --------------------------------------------------------------


def test_scan_code_follows_nested_defs_lambdas_and_comprehensions():
    fn = compiled_function(
        """
        def f(xs):
            def inner(v):
                return pd.Series(v)
            ys = [np.sqrt(v) for v in xs]
            g = lambda q: scipy.stats.norm(q)
            return inner, ys, g, {k: json.dumps(k) for k in xs}
        """
    )
    scan = scan_code(fn.__code__)
    assert scan.global_names == {"pd", "np", "scipy", "json"}
    assert NameUse("global", "scipy", ("stats", "norm")) in scan.names


def test_import_bindings_reach_nested_code_through_closures():
    fn = compiled_function(
        """
        def f(x):
            import numpy as np
            def inner():
                return np.linalg.norm(x)
            return inner
        """
    )
    scan = scan_code(fn.__code__)
    assert NameUse("module", "numpy", ("linalg", "norm")) in scan.names
    # plain locals never leave the function
    assert not [u for u in scan.names if u.scope == "local"]


def test_real_instructions_match_the_recorded_shape():
    fn = compiled_function(
        """
        def f(x):
            import a.b.c as d
            from x.y import z
            return d, z
        """
    )
    scan = scan_instructions(dis.get_instructions(fn))
    assert scan.bindings == {"d": "a.b.c", "z": "x.y.z"}
    assert scan.imports == [ImportUse("a.b.c", 0, ()), ImportUse("x.y", 0, ("z",))]


def test_attribute_names_on_any_receiver_and_string_constants_are_collected():
    # 3.13: `pd.read_csv(src).to_parquet("out.parquet", engine="fastparquet")` - the method is read
    # off a call result, so it belongs to no name chain, but engine hints still need to see it
    scan = scan_instructions(
        [
            ins("LOAD_GLOBAL", "pd"),
            ins("LOAD_ATTR", "read_csv"),
            ins("LOAD_FAST", "src"),
            ins("CALL", 1),
            ins("LOAD_ATTR", "to_parquet"),
            ins("LOAD_CONST", "out.parquet"),
            ins("LOAD_CONST", "fastparquet"),
            ins("LOAD_CONST", ("engine",)),
            ins("CALL_KW", 2),
            ins("RETURN_VALUE"),
        ]
    )
    assert scan.attributes == {"read_csv", "to_parquet"}
    assert NameUse("global", "pd", ("read_csv",)) in scan.names
    fn = compiled_function(
        "def f(src):\n    return [pd.read_csv(s).to_parquet('out.parquet', engine='fastparquet') for s in src]\n"
    )
    scanned = scan_code(fn.__code__)
    assert {"read_csv", "to_parquet"} <= scanned.attributes
    assert {"out.parquet", "fastparquet"} <= scanned.strings
