"""Portable SQL (issue 14, PLAN14 task C): the service and reporting SQL runs on DuckDB and
PostgreSQL alike.

- A contract: the SQL text in bankms outside bankms/store (the engine-specific layer) holds
  none of DuckDB's own constructs; a hit names file:line and the portable form to use.
- The dialect comes from the engine at hand (`uow.dialect`, `bank.engine.dialect`): no module
  outside bankms/store imports a dialect bound at import (`DIALECT`, or a dialect as `SQL`),
  and bankms.store.sql has no module-level DIALECT left to import.
- The port's results only (port.py): outside bankms/store no code uses what
  `UnitOfWork.execute` returns (`.execute(...).df()`/`.fetchall()`, a cursor kept from it),
  a result `.description`, `engine.con`, `.cursor()` or `thread_cursor`; bank.py, which wires
  the writer and the chains to their DuckDB cursors at open, is the one exception.
- The dialect helpers of bankms.store.sql, run on an in-memory DuckDB and on PostgreSQL
  (tests/pgcluster.py; skipped with its banner when no server starts) over the same edge
  cases: negative and wide operands for int_div, empty lists and NULLs for in_list, month ends
  and leap years for days_between and day_series (and an empty series), microseconds either
  side of 1970, and the table listing.
"""
from __future__ import annotations

import ast
import datetime as dt
import pathlib
import re

import duckdb
import pytest

import bankms.store.sql
from bankms.store.duckdb import DuckDBEngine
from bankms.store.sql import DUCKDB, POSTGRES, SQLITE

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "bankms"
ENGINE_LAYER = PACKAGE / "store"

# (pattern, what to write instead). Keywords are matched in capitals, as bankms writes SQL, so
# that prose such as "does not qualify" in a message is not taken for SQL.
DUCKDB_ONLY = [
    (re.compile(r"\bANTI\s+JOIN\b", re.IGNORECASE), "NOT EXISTS (SELECT 1 ...)"),
    (re.compile(r"\bSEMI\s+JOIN\b", re.IGNORECASE), "EXISTS (SELECT 1 ...)"),
    (re.compile(r"\bQUALIFY\b"), "a row_number() subquery filtered outside"),
    (re.compile(r"\bdate_diff\s*\(", re.IGNORECASE), "SQL.days_between(start, end)"),
    (re.compile(r"\bHUGEINT\b", re.IGNORECASE), "CAST(x AS DECIMAL(38, 0)) and SQL.int_div"),
    (re.compile(r"\bduckdb_(tables|columns)\s*\(", re.IGNORECASE), "SQL.table_columns()"),
    (re.compile(r"\bunnest\s*\(\s*\?"), "SQL.in_list(column, sql_type)"),
    (re.compile(r"\btypeof\s*\(", re.IGNORECASE), "a check in Python before the scan"),
    (re.compile(r"\bEXCLUDE\s*\("), "the columns named"),
    (re.compile(r"\b(arg_max|arg_min|max_by|min_by)\s*\(", re.IGNORECASE),
     "a row_number() subquery"),
    (re.compile(r"\bany_value\s*\(", re.IGNORECASE), "min() or max() (PostgreSQL 16+ only)"),
    (re.compile(r"\bepoch_(us|ms)\s*\(", re.IGNORECASE), "SQL.epoch_us(col)"),
    (re.compile(r"\bINTERVAL\s+\d+\s+[A-Z]+", re.IGNORECASE), "INTERVAL '400 days'"),
    # DuckDB's range() table function: ids come from uow.take_ids, days from SQL.day_series.
    (re.compile(r"\bFROM\s+range\s*\("), "uow.take_ids(sequence, n) or SQL.day_series"),
]
# `//` (DuckDB's integer division) inside SQL: a string holding SQL and `//` that is not part
# of a URL.
SQL_TEXT = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|FROM|WHERE)\b")
INT_DIV = re.compile(r"(?<![:/])//(?!/)")
# A subquery in FROM needs an alias on PostgreSQL before 16 (DuckDB and PostgreSQL 16 do not
# ask for one): `FROM (SELECT ...)` followed by a clause keyword, `)` or the end of the text.
SUBQUERY = re.compile(r"\b(FROM|JOIN)\s*\(\s*(SELECT|WITH|\{\})")
NO_ALIAS = re.compile(r"\s*(WHERE|GROUP|ORDER|LIMIT|UNION|EXCEPT|INTERSECT|HAVING|WINDOW|ON|JOIN|"
                      r"LEFT|RIGHT|FULL|INNER|CROSS)\b|\s*[),]|\s*$")


def unaliased_subqueries(text: str):
    for match in SUBQUERY.finditer(text):
        depth, i = 0, match.end() - len(match.group(2)) - 1
        while i < len(text):
            depth += {"(": 1, ")": -1}.get(text[i], 0)
            if depth == 0:
                break
            i += 1
        if i < len(text) and NO_ALIAS.match(text, i + 1):
            yield match


def _docstrings(tree) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def string_literals(path: pathlib.Path):
    """(line, text) of every string literal in the module but docstrings; an f-string's text
    has its replacement fields as {}."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _docstrings(tree)
    parts = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            parts.update(id(v) for v in node.values)
            yield node.lineno, "".join(v.value if isinstance(v, ast.Constant) else "{}"
                                       for v in node.values)
    for node in ast.walk(tree):
        if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                and id(node) not in skip and id(node) not in parts):
            yield node.lineno, node.value


def duckdb_only_sites(root: pathlib.Path = PACKAGE, exempt: pathlib.Path = ENGINE_LAYER):
    """'file:line: construct -> portable form' for each DuckDB-only construct in SQL text."""
    found = []
    for path in sorted(root.rglob("*.py")):
        if exempt in path.parents:
            continue
        for line, text in string_literals(path):
            hits = [(m, fix) for pattern, fix in DUCKDB_ONLY for m in pattern.finditer(text)]
            if SQL_TEXT.search(text):
                hits += [(m, "SQL.int_div(a, b)") for m in INT_DIV.finditer(text)]
                hits += [(m, "an alias after the subquery (PostgreSQL 15)")
                         for m in unaliased_subqueries(text)]
            for match, fix in hits:
                where = line + text.count("\n", 0, match.start())
                found.append(f"{path.relative_to(root.parent)}:{where}: "
                             f"{match.group(0)!r} -> {fix}")
    return sorted(set(found))


def test_no_duckdb_only_sql_outside_the_store():
    assert duckdb_only_sites() == []


@pytest.mark.parametrize("source, expected", [
    ('X = "SELECT count(*) FROM a ANTI JOIN b ON b.id = a.id"\n', "'ANTI JOIN'"),
    ("X = f'''SELECT {c} FROM t\n QUALIFY row_number() OVER () = 1'''\n", "m.py:2: 'QUALIFY'"),
    ('X = "SELECT date_diff(\'day\', a, b) FROM t"\n', "'date_diff('"),
    ('X = "SELECT CAST(x AS HUGEINT) FROM t"\n', "'HUGEINT'"),
    ('X = "SELECT a // 2 FROM t"\n', "'//'"),
    ('X = "SELECT table_name FROM duckdb_tables()"\n', "'duckdb_tables('"),
    ('X = "DELETE FROM t WHERE id IN (SELECT unnest(?))"\n', "'unnest(?'"),
    ('X = "SELECT typeof(x) FROM t"\n', "'typeof('"),
    ('X = "SELECT arg_max(a, b) FROM t"\n', "'arg_max('"),
    ('X = "SELECT d - INTERVAL 400 DAY FROM t"\n', "'INTERVAL 400 DAY'"),
    ('X = "SELECT epoch_us(ts) FROM t"\n', "'epoch_us('"),
    ('X = "SELECT nextval(\'user_id_seq\') FROM range(?)"\n', "'FROM range('"),
    ('X = "SELECT count(*) FROM (SELECT a FROM t GROUP BY 1)"\n', "'FROM (SELECT'"),
    ('X = "SELECT * FROM (SELECT a FROM (SELECT 1 AS a) x) WHERE a > 0"\n', "'FROM (SELECT'"),
    ('X = f"SELECT * FROM ({q}) ORDER BY 1"\n', "'FROM ({}'"),
    ('X = "SELECT * FROM (SELECT a FROM t) s WHERE a > 0"\n', None),
    ('X = "SELECT * FROM t JOIN (SELECT 1 AS a) AS s ON true"\n', None),
    ('X = "see https://example.org FROM here"\n', None),
    ('X = "the customer does not qualify for this"\n', None),
    ('def f():\n    """Uses ANTI JOIN and QUALIFY in prose."""\n', None),
    ('Y = 7 // 2\n', None),
])
def test_the_contract_finds_what_it_should(tmp_path, source, expected):
    package = tmp_path / "pkg"
    (package / "store").mkdir(parents=True)
    (package / "m.py").write_text(source)
    (package / "store" / "engine.py").write_text(source)  # the engine layer may use them
    found = duckdb_only_sites(package, package / "store")
    if expected is None:
        assert found == []
    else:
        assert len(found) == 1 and "pkg/m.py:" in found[0] and expected in found[0], found


# -- the dialect comes from the engine; results come from the port ------------------------------
# The modules outside the store that may still hold a driver cursor: bank.py wires the writer,
# the batch appenders and the chains to cursors of their own at open, before the writer runs.
DRIVER_WIRING = {"bank.py"}
# What a driver cursor or connection offers and the port does not.
CURSOR_ATTRIBUTES = {"description", "thread_cursor"}


def _parents(tree) -> dict:
    return {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}


def _is_engine(node) -> bool:
    """`engine` or `<anything>.engine`."""
    return (isinstance(node, ast.Name) and node.id == "engine"
            or isinstance(node, ast.Attribute) and node.attr == "engine")


def bound_dialect_sites(root: pathlib.Path = PACKAGE, exempt: pathlib.Path = ENGINE_LAYER):
    """'file:line: what' for each dialect bound at import outside the store: an import of
    `DIALECT`, or of anything as `SQL`, from a module named sql, and `sql.DIALECT`."""
    found = []
    for path in sorted(root.rglob("*.py")):
        if exempt in path.parents:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            where = f"{path.relative_to(root.parent)}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[-1] == "sql":
                found += [f"{where}: import {a.name} as {a.asname or a.name} -> the dialect of "
                          "the reader at hand (uow.dialect, bank.engine.dialect)"
                          for a in node.names if a.name == "DIALECT" or a.asname == "SQL"]
            elif isinstance(node, ast.Attribute) and node.attr == "DIALECT" and isinstance(
                    node.value, ast.Name) and node.value.id == "sql":
                found.append(f"{where}: sql.DIALECT -> uow.dialect, bank.engine.dialect")
    return sorted(found)


def driver_api_sites(root: pathlib.Path = PACKAGE, exempt: pathlib.Path = ENGINE_LAYER,
                     allowed=frozenset(DRIVER_WIRING)):
    """'file:line: what' for each use of the driver's API instead of the port's outside the
    store (and the `allowed` files, relative to root): the value of an `.execute(...)` call
    used at all (chained, kept, returned or passed on: only a bare statement is allowed),
    `.description`, `thread_cursor`, `.cursor()` and `engine.con`."""
    found = []
    for path in sorted(root.rglob("*.py")):
        name = path.relative_to(root).as_posix()
        if exempt in path.parents or name in allowed:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        parents = _parents(tree)
        for node in ast.walk(tree):
            where = f"{path.relative_to(root.parent)}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                if node.func.attr == "execute" and not isinstance(parents.get(node), ast.Expr):
                    found.append(f"{where}: the value of .execute() -> fetchall, fetchone, "
                                 "fetch_df or fetch_columns")
                elif node.func.attr == "cursor":
                    found.append(f"{where}: .cursor() -> engine.read/read_df, a snapshot, "
                                 "a unit of work")
            elif isinstance(node, ast.Attribute):
                if node.attr in CURSOR_ATTRIBUTES:
                    found.append(f"{where}: .{node.attr} -> fetch_columns, read_columns, "
                                 "a snapshot")
                elif node.attr == "con" and _is_engine(node.value):
                    found.append(f"{where}: engine.con -> the engine's port methods")
    return sorted(found)


def test_no_dialect_bound_at_import_outside_the_store():
    assert bound_dialect_sites() == []


def test_no_driver_api_outside_the_store():
    assert driver_api_sites() == []


@pytest.mark.parametrize("source, expected", [
    ("from ..store.sql import DIALECT as SQL\n", "import DIALECT as SQL"),
    ("from bankms.store.sql import DIALECT\n", "import DIALECT as DIALECT"),
    ("from ...store.sql import DUCKDB as SQL\n", "import DUCKDB as SQL"),
    ("from ..store import sql\nX = sql.DIALECT.in_list('a', 'BIGINT')\n", "m.py:2: sql.DIALECT"),
    ("from ..store.sql import Dialect, SQLITE\n", None),
    ("def f(uow):\n    return uow.dialect.in_list('id', 'BIGINT')\n", None),
])
def test_the_dialect_contract_finds_what_it_should(tmp_path, source, expected):
    package = tmp_path / "pkg"
    (package / "store").mkdir(parents=True)
    (package / "m.py").write_text(source)
    (package / "store" / "engine.py").write_text(source)  # the store may bind one
    found = bound_dialect_sites(package, package / "store")
    if expected is None:
        assert found == []
    else:
        assert len(found) == 1 and "pkg/m.py:" in found[0] and expected in found[0], found


@pytest.mark.parametrize("source, expected", [
    ("def f(uow):\n    return uow.execute('SELECT 1').df()\n", "m.py:2: the value of .execute()"),
    ("def f(uow):\n    return uow.execute('SELECT 1').fetchall()\n", "the value of .execute()"),
    ("def f(uow):\n    cur = uow.execute('SELECT 1')\n", "the value of .execute()"),
    ("def f(uow):\n    return uow.execute('SELECT 1')\n", "the value of .execute()"),
    ("def f(bank):\n    bank.write(lambda uow: uow.execute('DELETE FROM t'))\n",
     "the value of .execute()"),
    ("def f(snap, uow):\n    return [d[0] for d in snap.description]\n", ".description"),
    ("def f(bank):\n    return bank.engine.con\n", "engine.con"),
    ("def f(engine):\n    return engine.con.execute\n", "engine.con"),
    ("def f(bank):\n    return bank.engine.cursor()\n", ".cursor()"),
    ("def f(bank):\n    return bank.engine.thread_cursor\n", ".thread_cursor"),
    ("def f(uow):\n    uow.execute('DELETE FROM t')\n    return uow.fetch_df('SELECT 1')\n",
     None),
    ("def f(bank):\n    return bank.engine.read_columns('SELECT 1')\n", None),
    ("def f(self):\n    return self.con\n", None),
])
def test_the_port_contract_finds_what_it_should(tmp_path, source, expected):
    package = tmp_path / "pkg"
    (package / "store").mkdir(parents=True)
    for name in ("m.py", "bank.py", "store/engine.py"):  # bank.py and the store may
        (package / name).write_text(source)
    found = driver_api_sites(package, package / "store")
    if expected is None:
        assert found == []
    else:
        assert len(found) == 1 and "pkg/m.py:" in found[0] and expected in found[0], found


# -- the fragments, run on each engine ----------------------------------------------------------
class Engine:
    """A connection to run a dialect's fragments on: `d` the dialect, `execute(sql, params)`
    a cursor; `?` placeholders on both (turned into psycopg's %s for PostgreSQL)."""

    def __init__(self, d, execute):
        self.d, self.execute = d, execute


@pytest.fixture(params=["duckdb", "pg"])
def con(request):
    """DuckDB in memory, and PostgreSQL's `postgres` database (tests/pgcluster.py: skipped with
    its loud banner when no server can be started)."""
    if request.param == "duckdb":
        c = duckdb.connect()
        yield Engine(DUCKDB, lambda sql, params=(): c.execute(sql, list(params)))
    else:
        psycopg = pytest.importorskip("psycopg")
        c = psycopg.connect(request.getfixturevalue("pg_url"), autocommit=True)
        yield Engine(POSTGRES, lambda sql, params=(): c.execute(sql.replace("?", "%s"),
                                                                 list(params)))
    c.close()


def value(con, sql, params=None):
    return con.execute(sql, params or []).fetchone()[0]


BIG = 9_223_372_036_854_775_807  # BIGINT's largest


@pytest.mark.parametrize("a, b, expected", [
    ("7", "2", 3),
    ("-7", "2", -3),               # truncated toward zero, as `//` and div(), not floor
    ("7", "-2", -3),
    ("-7", "-2", 3),
    ("6", "3", 2),
    ("0", "5", 0),
    ("-1", "20000", 0),
    # products of cents beyond BIGINT, made DECIMAL(38, 0) as the services do
    (f"2 * CAST({BIG} AS DECIMAL(38, 0)) * 10000 + 1", "20000", BIG),
    (f"-2 * CAST({BIG} AS DECIMAL(38, 0)) * 10000 - 1", "20000", -BIG),
    ("2 * CAST(123456789 AS DECIMAL(38, 0)) * 87500 + 10000", "20000", 1080246904),
])
def test_int_div(con, a, b, expected):
    assert value(con, f"SELECT {con.d.int_div(a, b)}") == expected


def test_int_div_by_zero_is_an_error(con):
    with pytest.raises(Exception, match="(?i)division by zero"):
        value(con, f"SELECT {con.d.int_div('7', '0')}")


def test_int_div_matches_python_truncation_on_a_grid(con):
    cases = [(a, b) for a in range(-25, 26) for b in (-7, -4, -1, 1, 3, 4, 20_000)]
    rows = con.execute("SELECT a, b, " + con.d.int_div("CAST(a AS DECIMAL(38, 0))", "b")
                       + " FROM (SELECT unnest(CAST(? AS BIGINT[])) AS a, "
                       "unnest(CAST(? AS BIGINT[])) AS b) s",
                       [[a for a, _ in cases], [b for _, b in cases]]).fetchall()
    assert [(a, b, int(a / b)) for a, b in cases] == rows


@pytest.mark.parametrize("sql_type, column, values, expected", [
    ("BIGINT", [1, 2, None, -3], [1, -3], [1, -3]),
    ("BIGINT", [1, 2, None, -3], [], []),                 # an empty list matches nothing
    ("BIGINT", [1, 2, None, -3], [None], []),             # NULL never equals NULL
    ("BIGINT", [1, 2, None, -3], [2, None], [2]),
    ("VARCHAR", ["a", "b", None, "GL4100"], ["GL4100", "x"], ["GL4100"]),
    ("VARCHAR", ["a", "b", None, "GL4100"], [], []),
    ("VARCHAR", ["a", "b", None], ["A"], []),             # case-sensitive
    ("DATE", [dt.date(2024, 2, 29), None], [dt.date(2024, 2, 29)], [dt.date(2024, 2, 29)]),
])
def test_in_list(con, sql_type, column, values, expected):
    sql = (f"SELECT x FROM (SELECT unnest(CAST(? AS {sql_type}[])) AS x) s "
           f"WHERE {con.d.in_list('x', sql_type)} ORDER BY x")
    assert [r[0] for r in con.execute(sql, [column, values]).fetchall()] == sorted(expected)


def test_not_in_list_keeps_in_semantics(con):
    # NOT (x IN list) with a NULL in the list is NULL, never true: as NOT IN, the reason the
    # anti joins became NOT EXISTS and not NOT IN.
    sql = ("SELECT x FROM (SELECT unnest(CAST(? AS BIGINT[])) AS x) s "
           f"WHERE NOT ({con.d.in_list('x', 'BIGINT')}) ORDER BY x")
    assert con.execute(sql, [[1, 2, 3], [2]]).fetchall() == [(1,), (3,)]
    assert con.execute(sql, [[1, 2, 3], [2, None]]).fetchall() == []


@pytest.mark.parametrize("sql_type", ["BIGINT[]", "TEXT", "int; DROP TABLE x", ""])
def test_in_list_refuses_unknown_types(sql_type):
    with pytest.raises(ValueError):
        DUCKDB.in_list("x", sql_type)


@pytest.mark.parametrize("start, end, expected", [
    (dt.date(2026, 1, 31), dt.date(2026, 2, 1), 1),
    (dt.date(2026, 2, 1), dt.date(2026, 3, 1), 28),
    (dt.date(2024, 2, 1), dt.date(2024, 3, 1), 29),       # leap year
    (dt.date(2023, 12, 31), dt.date(2024, 12, 31), 366),
    (dt.date(2024, 2, 29), dt.date(2025, 2, 28), 365),
    (dt.date(2026, 3, 1), dt.date(2026, 2, 1), -28),      # end before start
    (dt.date(2026, 5, 5), dt.date(2026, 5, 5), 0),
    (None, dt.date(2026, 5, 5), None),
])
def test_days_between(con, start, end, expected):
    sql = f"SELECT {con.d.days_between('CAST(? AS DATE)', 'CAST(? AS DATE)')}"
    assert value(con, sql, [start, end]) == expected


@pytest.mark.parametrize("start, end, expected", [
    (dt.date(2026, 11, 1), dt.date(2026, 11, 4),
     [dt.date(2026, 11, 1), dt.date(2026, 11, 2), dt.date(2026, 11, 3)]),
    (dt.date(2024, 2, 28), dt.date(2024, 3, 2),           # a leap day, and a month end
     [dt.date(2024, 2, 28), dt.date(2024, 2, 29), dt.date(2024, 3, 1)]),
    (dt.date(2026, 12, 31), dt.date(2027, 1, 1), [dt.date(2026, 12, 31)]),
    (dt.date(2026, 5, 5), dt.date(2026, 5, 5), []),       # end is not after start
    (dt.date(2026, 5, 5), dt.date(2026, 5, 1), []),
])
def test_day_series(con, start, end, expected):
    sql = f"SELECT d FROM ({con.d.day_series('?', '?')}) s ORDER BY d"
    assert [r[0] for r in con.execute(sql, [start, end]).fetchall()] == expected


def test_day_series_counts_a_long_period_by_the_day(con):
    sql = f"SELECT count(*), min(d), max(d) FROM ({con.d.day_series('?', '?')}) s"
    assert con.execute(sql, [dt.date(2024, 1, 1), dt.date(2025, 1, 1)]).fetchone() == (
        366, dt.date(2024, 1, 1), dt.date(2024, 12, 31))


def test_day_series_is_refused_where_the_dialect_has_none():
    with pytest.raises(ValueError):
        SQLITE.day_series("?", "?")


@pytest.mark.parametrize("helper, col, expected", [
    ("day", "TIMESTAMP '2024-02-29 23:59:59.999999'", dt.date(2024, 2, 29)),
    ("month", "TIMESTAMP '2024-02-29 23:59:59'", dt.date(2024, 2, 1)),
    ("month", "TIMESTAMP '2026-12-31 00:00:00'", dt.date(2026, 12, 1)),
])
def test_day_and_month(con, helper, col, expected):
    assert value(con, f"SELECT {getattr(con.d, helper)(col)}") == expected


@pytest.mark.parametrize("text, expected", [
    ('{"reason": "dormant", "n": 1}', "dormant"),
    ('{"n": 1}', None),
    (None, None),
])
def test_json_text(con, text, expected):
    assert value(con, f"SELECT {con.d.json_text('CAST(? AS VARCHAR)', 'reason')}",
                 [text]) == expected


@pytest.mark.parametrize("stamp, expected", [
    (dt.datetime(1970, 1, 1), 0),
    (dt.datetime(2026, 12, 1, 3, 4, 5, 123456), 1796094245123456),
    (dt.datetime(1969, 12, 31, 23, 59, 59, 999999), -1),
    (None, None),
])
def test_epoch_us(con, stamp, expected):
    assert value(con, f"SELECT {con.d.epoch_us('CAST(? AS TIMESTAMP)')}", [stamp]) == expected


def test_table_columns_on_duckdb():
    c = duckdb.connect()
    try:
        c.execute("CREATE TABLE zeta (b BIGINT, a VARCHAR)")
        c.execute("CREATE TABLE alpha (id BIGINT)")
        assert c.execute(DUCKDB.table_columns()).fetchall() == [
            ("alpha", "id"), ("zeta", "b"), ("zeta", "a")]
        assert c.execute(DUCKDB.table_columns("zeta")).fetchall() == [("zeta", "b"), ("zeta", "a")]
        assert c.execute(DUCKDB.table_columns("nothing")).fetchall() == []
    finally:
        c.close()


def test_table_columns_on_postgres(pg_database):
    psycopg = pytest.importorskip("psycopg")
    with psycopg.connect(pg_database, autocommit=True) as c:
        c.execute("CREATE TABLE zeta (b BIGINT, a VARCHAR)")
        c.execute("CREATE TABLE alpha (id BIGINT)")
        assert c.execute(POSTGRES.table_columns()).fetchall() == [
            ("alpha", "id"), ("zeta", "b"), ("zeta", "a")]
        assert c.execute(POSTGRES.table_columns("zeta")).fetchall() == [("zeta", "b"),
                                                                         ("zeta", "a")]


@pytest.mark.parametrize("call", [
    lambda d: d.table_columns("x'; DROP TABLE accounts; --"),
    lambda d: d.json_text("after", "a'b"),
])
def test_names_are_checked(call):
    for dialect in (DUCKDB, POSTGRES, SQLITE):
        with pytest.raises(ValueError):
            call(dialect)


@pytest.mark.parametrize("dialect", [DUCKDB, POSTGRES, SQLITE], ids=lambda d: d.name)
@pytest.mark.parametrize("call", [
    lambda d: d.int_div("<1>", "<2>"),
    lambda d: d.days_between("<1>", "<2>"),
    lambda d: d.json_text("<1>", "k"),
    lambda d: d.epoch_us("<1>"),
    lambda d: d.in_list("<1>", "BIGINT").replace("?", "<2>"),
    lambda d: d.day_series("<1>", "<2>") if d.day_series_sql else "<1>",
])
def test_arguments_keep_their_order_in_the_text(dialect, call):
    # `?` placeholders inside the arguments bind in the order they appear in the text.
    text = call(dialect)
    assert text.index("<1>") < text.index("<2>") if "<2>" in text else "<1>" in text


def test_the_dialect_is_the_engines():
    engine = DuckDBEngine(":memory:")
    try:
        with engine.snapshot() as snap, engine.unit_of_work() as uow:
            assert (engine.dialect, snap.dialect, uow.dialect) == (DUCKDB, DUCKDB, DUCKDB)
    finally:
        engine.close()
    # Nothing left to bind at import.
    assert not hasattr(bankms.store.sql, "DIALECT")


# -- the PostgreSQL fragments, as text (PostgreSQL 15 documentation) -------------------------
@pytest.mark.parametrize("fragment, expected", [
    (POSTGRES.in_list("a.account_number", "VARCHAR"), "a.account_number = ANY(CAST(? AS VARCHAR[]))"),
    (POSTGRES.int_div("2 * x + 1", "2 * d"), "div(2 * x + 1, 2 * d)"),
    (POSTGRES.days_between("start_date", "CAST(? AS DATE)"),
     "(-(CAST(start_date AS DATE) - CAST(CAST(? AS DATE) AS DATE)))"),
    (POSTGRES.json_text("after", "reason"), "(CAST(after AS jsonb) ->> 'reason')"),
    (POSTGRES.epoch_us("a.opened_at"), "CAST(extract(epoch FROM a.opened_at) * 1000000 AS BIGINT)"),
    (POSTGRES.day_series("?", "?"),
     "SELECT CAST(g AS DATE) AS d FROM generate_series(CAST(CAST(? AS DATE) AS TIMESTAMP), "
     "CAST(CAST(? AS DATE) AS TIMESTAMP) - INTERVAL '1 day', INTERVAL '1 day') AS g"),
    (POSTGRES.table_columns("loans"),
     "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = "
     "current_schema() AND table_name = 'loans' ORDER BY table_name, ordinal_position"),
])
def test_postgres_fragments(fragment, expected):
    assert fragment == expected
