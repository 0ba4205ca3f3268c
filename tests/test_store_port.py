"""The storage port (bankms/store/port.py) and its DuckDB engine (bankms/store/duckdb.py).

A contract over the source tree (no service reaches DuckDB but through the port), then the
DuckDB engine against the port: scan, load, take_ids, rollback unless commit, on_commit, and
the one DuckDB error map, one row per DuckDB error.
"""
from __future__ import annotations

import ast
import pathlib
import subprocess
import sys
import textwrap

import duckdb
import pandas as pd
import pyarrow as pa
import pytest

from bankms import open_bank
from bankms.store import port
from bankms.store.engines import open_engine
from bankms.store.duckdb import DuckDBEngine, duckdb_error

ROOT = pathlib.Path(__file__).resolve().parents[1]
# Packages that use storage only through the port (PLAN14 section 3).
PORT_ONLY = ("bankms/services", "bankms/domain", "bankms/reporting", "bankms/demo")
# Driver-level attributes a module above store/ must not touch: a unit of work's cursor, and
# the DuckDB cursor's frame registration and appenders (uow.scan / uow.load instead).
DRIVER_ATTRIBUTES = {"cur", "unregister", "appender"}


def violations(source: str) -> list[str]:
    """What in `source` reaches DuckDB past the port: imports of the driver or of the DuckDB
    engine module, and the driver attributes above."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [f"import {a.name}" for a in node.names
                      if a.name.split(".")[0] == "duckdb" or a.name.endswith("store.duckdb")]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if module.split(".")[0] == "duckdb" and node.level == 0:
                found.append(f"from {module} import")
            elif module.endswith("store.duckdb") or (
                    module.endswith("store") and any(a.name == "duckdb" for a in node.names)):
                found.append(f"from {'.' * node.level}{module} import")
        elif isinstance(node, ast.Attribute) and node.attr in DRIVER_ATTRIBUTES:
            found.append(f".{node.attr} (line {node.lineno})")
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id == "getattr" and len(node.args) >= 2
              and isinstance(node.args[1], ast.Constant)
              and node.args[1].value in DRIVER_ATTRIBUTES):
            found.append(f"getattr .{node.args[1].value} (line {node.lineno})")
    return found


@pytest.mark.parametrize("source, expected", [
    ("import duckdb", ["import duckdb"]),
    ("import duckdb.typing", ["import duckdb.typing"]),
    ("from duckdb import ConstraintException", ["from duckdb import"]),
    ("from ..store.duckdb import DuckDBEngine", ["from ..store.duckdb import"]),
    ("from ...store import duckdb", ["from ...store import"]),
    ("uow.cur.register('t', frame)", [".cur (line 1)"]),
    ("cur = uow.cur", [".cur (line 1)"]),
    ("app = cursor.appender('postings')", [".appender (line 1)"]),
    ("cur = getattr(uow, 'cur', uow)", ["getattr .cur (line 1)"]),
    ("with uow.scan('t', frame):\n    uow.execute('SELECT 1')", []),
    ("from ..store.port import DuplicateKey\nimport duckdb_like", []),
])
def test_the_contract_checker_flags_what_it_should(source, expected):
    assert violations(source) == expected


def test_no_module_above_store_reaches_duckdb_past_the_port():
    files = [p for package in PORT_ONLY for p in sorted((ROOT / package).rglob("*.py"))]
    assert len(files) > 30, "the packages moved: update PORT_ONLY"
    found = {str(p.relative_to(ROOT)): v for p in files if (v := violations(p.read_text()))}
    assert found == {}


# -- the DuckDB engine against the port --------------------------------------------------------
@pytest.fixture
def duck(tmp_path):
    # Not named `engine`: conftest's engine fixture (tests/pgcluster.py) names the engine
    # a test runs on; this is a bare DuckDB engine with one table and one sequence.
    eng = DuckDBEngine(str(tmp_path / "port.duckdb"))
    eng.con.execute("CREATE TABLE t (id BIGINT PRIMARY KEY, v VARCHAR NOT NULL)")
    eng.con.execute("CREATE SEQUENCE t_seq START 10")
    yield eng
    eng.close()


def test_open_engine_picks_duckdb_for_paths_and_postgresql_for_its_urls(tmp_path):
    eng = open_engine(":memory:")
    try:
        assert isinstance(eng, DuckDBEngine) and isinstance(eng, port.Engine)
        with eng.unit_of_work() as uow:
            assert isinstance(uow, port.UnitOfWork)
    finally:
        eng.close()
    # No server listens in an empty folder: the PostgreSQL engine was tried, and said so in
    # port terms (tests/test_store_contract.py opens real ones).
    for scheme in ("postgresql", "postgres"):
        with pytest.raises(port.StoreUnavailable) as caught:
            open_engine(f"{scheme}:///bank?host={tmp_path}&connect_timeout=2")
        assert type(caught.value.__cause__).__module__.startswith("psycopg")


def test_a_bank_on_an_unreachable_postgresql_url_fails_unavailable_and_makes_no_file(
        tmp_path, monkeypatch):
    # open_bank hands a URL to the engine untouched: no folder or file is made for it.
    monkeypatch.chdir(tmp_path)
    with pytest.raises(port.StoreUnavailable):
        open_bank(f"postgresql:///bank?host={tmp_path}&connect_timeout=2")
    assert list(tmp_path.iterdir()) == []


def test_scan_is_visible_only_inside_its_block(duck):
    frame = pd.DataFrame({"x": [1, 2, 3]})
    with duck.unit_of_work() as uow:
        with uow.scan("frame_in", frame) as name:
            assert name == "frame_in"
            assert uow.fetchone("SELECT sum(x) FROM frame_in") == (6,)
        with pytest.raises(duckdb.CatalogException):
            uow.fetchone("SELECT sum(x) FROM frame_in")


def test_a_failed_block_raises_its_own_error_not_the_unregister(duck):
    with duck.unit_of_work() as uow:
        with pytest.raises(port.DuplicateKey):
            with uow.scan("frame_in", pd.DataFrame({"id": [1, 1], "v": ["a", "b"]})):
                uow.execute("INSERT INTO t SELECT * FROM frame_in")


@pytest.mark.parametrize("frame, columns, expected_rows", [
    (pd.DataFrame({"id": [1, 2, 3], "v": ["a", "b", "c"]}), None, 3),
    (pa.table({"v": ["x", "y"], "id": [7, 8]}), None, 2),
    (pd.DataFrame({"id": [5], "v": ["q"], "extra": [0]}), ["id", "v"], 1),
    (pd.DataFrame({"id": pd.Series([], dtype="int64"), "v": pd.Series([], dtype=str)}),
     None, 0),
])
def test_load_appends_every_row_and_counts_them(duck, frame, columns, expected_rows):
    with duck.unit_of_work() as uow:
        assert uow.load("t", frame, columns=columns) == expected_rows
        uow.commit()
    assert duck.read("SELECT count(*) FROM t") == [(expected_rows,)]


def test_take_ids_are_ascending_and_unique_across_units_of_work(duck):
    counter = {"next": 1}

    def take(n):
        first = counter["next"]
        counter["next"] += n
        return first
    duck.set_counters({"transaction_id_seq": take})
    blocks = []
    for n in (3, 1, 5):
        with duck.unit_of_work() as uow:
            blocks.append(uow.take_ids("t_seq", n))
            blocks.append(uow.take_ids("transaction_id_seq", n))
            uow.commit()
    for block in blocks:
        assert block.ids.dtype == "int64"
        assert list(block.ids) == sorted(block.ids)
    seq = [i for b in blocks[0::2] for i in b]
    counted = [i for b in blocks[1::2] for i in b]
    assert len(set(seq)) == len(seq) == 9 and seq == sorted(seq) and seq[0] >= 10
    assert counted == list(range(1, 10))
    with duck.unit_of_work() as uow, pytest.raises(ValueError):
        uow.take_ids("t_seq'); DROP TABLE t; --", 1)


def test_a_unit_of_work_rolls_back_unless_committed(duck):
    with duck.unit_of_work() as uow:
        uow.execute("INSERT INTO t VALUES (1, 'kept?')")
    with pytest.raises(RuntimeError, match="boom"):
        with duck.unit_of_work() as uow:
            uow.execute("INSERT INTO t VALUES (2, 'kept?')")
            raise RuntimeError("boom")
    assert duck.read("SELECT count(*) FROM t") == [(0,)]
    with duck.unit_of_work() as uow:
        uow.execute("INSERT INTO t VALUES (3, 'yes')")
        uow.commit()
    assert duck.read("SELECT id FROM t") == [(3,)]


@pytest.mark.parametrize("case, expected_calls", [
    ("commit", ["after"]),
    ("no commit", []),
    ("failed statement, then commit", []),
])
def test_on_commit_runs_only_after_a_real_commit(duck, case, expected_calls):
    calls = []
    with duck.unit_of_work() as uow:
        uow.execute("INSERT INTO t VALUES (1, 'a')")
        uow.on_commit(lambda: calls.append("after"))
        assert calls == []
        if case == "commit":
            uow.commit()
        elif case == "failed statement, then commit":
            with pytest.raises(port.DuplicateKey):
                uow.execute("INSERT INTO t VALUES (1, 'again')")
            with pytest.raises(RuntimeError, match="refusing to commit"):
                uow.commit()
    assert calls == expected_calls


def test_snapshot_reads_one_committed_state(duck):
    duck.con.execute("INSERT INTO t VALUES (1, 'a')")
    with duck.snapshot() as reader:
        # DuckDB fixes a transaction's snapshot at its first query, not at BEGIN.
        assert reader.fetchone("SELECT count(*) FROM t") == (1,)
        duck.con.execute("INSERT INTO t VALUES (2, 'b')")
        assert reader.fetchall("SELECT id FROM t") == [(1,)]
        assert list(reader.fetch_df("SELECT id FROM t")["id"]) == [1]
    assert duck.read("SELECT count(*) FROM t") == [(2,)]


def test_an_appender_repeating_a_key_leaves_the_unit_of_work_as_duplicate_key(duck):
    # The posting batch's path: its appenders flush inside the writer's unit of work.
    duck.con.execute("INSERT INTO t VALUES (1, 'a')")
    cur = duck.cursor()
    appender = cur.appender("t")
    with pytest.raises(port.DuplicateKey) as caught:
        with duck.unit_of_work(cursor=cur):
            appender.append_rows([(1, "b")])
            appender.flush()
    assert isinstance(caught.value.__cause__, duckdb.ConstraintException)
    assert caught.value.constraint == "primary key"


# -- the one DuckDB error map: one row per DuckDB error ----------------------------------------
@pytest.mark.parametrize("error, expected", [
    (duckdb.ConstraintException('Constraint Error: Duplicate key "id: 1" violates primary '
                                'key constraint.'), port.DuplicateKey),
    (duckdb.ConstraintException('Constraint Error: Duplicate key "key: k" violates unique '
                                'constraint.'), port.DuplicateKey),
    (duckdb.ConstraintException("Constraint Error: NOT NULL constraint failed: t.v"), None),
    (duckdb.TransactionException("TransactionContext Error: Conflict on update!"),
     port.WriteConflict),
    (duckdb.TransactionException("TransactionContext Error: cannot rollback - no transaction "
                                 "is active"), None),
    (duckdb.IOException('IO Error: Could not set lock on file "/x/bank.duckdb": Conflicting '
                        'lock is held in /usr/bin/python3 (PID 1).'), port.StoreLocked),
    (duckdb.IOException('IO Error: The file "/x/junk.duckdb" exists, but it is not a valid '
                        'DuckDB database file!'), port.NotAStore),
    (duckdb.IOException("IO Error: No space left on device"), None),
    (duckdb.ConnectionException("Connection Error: Connection already closed!"),
     port.StoreUnavailable),
    (duckdb.CatalogException("Catalog Error: Table with name nope does not exist!"), None),
    (ValueError("not a DuckDB error"), None),
])
def test_duckdb_errors_map_to_port_errors(error, expected):
    mapped = port.map_error(error)
    if expected is None:
        assert mapped is error and duckdb_error(error) is None
    else:
        assert type(mapped) is expected and str(mapped) == str(error)


def test_real_duckdb_failures_come_out_as_port_errors(tmp_path, duck):
    junk = tmp_path / "junk.duckdb"
    junk.write_bytes(b"x" * 4096)
    with pytest.raises(port.NotAStore):
        DuckDBEngine(str(junk))
    # Another process holds the file: DuckDB's own lock message.
    held = tmp_path / "held.duckdb"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import duckdb, sys
        con = duckdb.connect({str(held)!r})
        print("open", flush=True)
        sys.stdin.read()""")], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(port.StoreLocked):
            DuckDBEngine(str(held))
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    # Two units of work changing one row: the second is refused as a write conflict.
    duck.con.execute("INSERT INTO t VALUES (1, 'a')")
    with duck.unit_of_work(cursor=duck.cursor()) as first, \
            duck.unit_of_work(cursor=duck.cursor()) as second:
        first.execute("UPDATE t SET v = 'b' WHERE id = 1")
        with pytest.raises(port.WriteConflict):
            second.execute("UPDATE t SET v = 'c' WHERE id = 1")
        first.commit()
