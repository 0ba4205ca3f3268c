"""The storage port's contract (bankms/store/port.py), held on both engines: every test that
takes the `engine` fixture runs once on DuckDB and once on PostgreSQL (tests/pgcluster.py).

Rows: a unit of work rolls back unless committed; commit refused after a failed statement;
on_commit in order and never after a rollback; a duplicate key is DuplicateKey naming the
constraint; a write conflict is WriteConflict (and write skew, refused on PostgreSQL only);
threads read side by side; scan; load; take_ids; fetch_df's dtypes; a snapshot repeats while
another connection commits; `?` placeholders beside '?' and '%' in literals. Then the schema: the same tables and columns after migrate on both engines, and a
second migrate changes nothing. The PostgreSQL error map and the `?` translation, one row per
case, need no server.
"""
from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal

import pandas as pd
import psycopg
import pyarrow as pa
import pytest
from psycopg import errors as pg_errors

from bankms.store import port
from bankms.store.duckdb import DuckDBEngine
from bankms.store.postgres import PostgresEngine, postgres_error, translate

pytestmark = pytest.mark.engines

# What each engine names as the constraint that refused a repeated key inside a transaction:
# PostgreSQL the constraint's name; DuckDB's message there ("PRIMARY KEY or UNIQUE constraint
# violation: duplicate key") names none (its appender's does: tests/test_store_port.py).
PRIMARY_KEY = {"duckdb": None, "pg": "t_pkey"}


def open_store(engine, tmp_path):
    """The engine under test, opened (and migrated) on its own store."""
    if engine.name == "pg":
        return PostgresEngine(engine.url)
    return DuckDBEngine(str(tmp_path / "contract.duckdb"))


@pytest.fixture
def store(engine, tmp_path):
    """The engine under test with one table `t` and one sequence `t_seq` (from 10)."""
    eng = open_store(engine, tmp_path)
    with eng.unit_of_work() as uow:
        uow.execute("CREATE TABLE t (id BIGINT PRIMARY KEY, v VARCHAR NOT NULL)")
        uow.execute("CREATE SEQUENCE t_seq START 10")
        uow.commit()
    yield eng
    eng.close()


def other_unit_of_work(store):
    """A unit of work on a connection apart from this thread's (DuckDB: a cursor of its own;
    PostgreSQL takes one by itself when the thread's is busy)."""
    if isinstance(store, DuckDBEngine):
        return store.unit_of_work(cursor=store.cursor())
    return store.unit_of_work()


def test_the_engine_and_its_units_of_work_are_the_ports(store):
    assert isinstance(store, port.Engine)
    with store.unit_of_work() as uow:
        assert isinstance(uow, port.UnitOfWork)


def test_a_unit_of_work_rolls_back_unless_committed(store):
    with store.unit_of_work() as uow:
        uow.execute("INSERT INTO t VALUES (1, 'kept?')")
    with pytest.raises(RuntimeError, match="boom"):
        with store.unit_of_work() as uow:
            uow.execute("INSERT INTO t VALUES (2, 'kept?')")
            raise RuntimeError("boom")
    assert store.read("SELECT count(*) FROM t") == [(0,)]
    with store.unit_of_work() as uow:
        uow.execute("INSERT INTO t VALUES (3, 'yes')")
        uow.commit()
    assert store.read("SELECT id FROM t") == [(3,)]


@pytest.mark.parametrize("case, expected_calls", [
    ("commit", ["first", "second"]),
    ("no commit", []),
    ("failed statement, then commit", []),
    ("mark_failed, then commit", []),
])
def test_on_commit_runs_in_order_only_after_a_real_commit(store, case, expected_calls):
    calls = []
    with store.unit_of_work() as uow:
        uow.execute("INSERT INTO t VALUES (1, 'a')")
        uow.on_commit(lambda: calls.append("first"))
        uow.on_commit(lambda: calls.append("second"))
        if case == "commit":
            uow.commit()
        elif case == "failed statement, then commit":
            with pytest.raises(port.DuplicateKey):
                uow.execute("INSERT INTO t VALUES (1, 'again')")
            with pytest.raises(RuntimeError, match="refusing to commit"):
                uow.commit()
        elif case == "mark_failed, then commit":
            uow.mark_failed()
            with pytest.raises(RuntimeError, match="refusing to commit"):
                uow.commit()
        assert calls == expected_calls
    assert store.read("SELECT count(*) FROM t") == [(len(expected_calls) // 2,)]


def test_commit_is_refused_after_a_failed_statement_even_when_caught(store):
    # Both engines answer COMMIT after a failure with a silent rollback: the port refuses.
    with store.unit_of_work() as uow:
        uow.execute("INSERT INTO t VALUES (1, 'a')")
        with pytest.raises(Exception, match="nope"):
            uow.execute("SELECT * FROM nope")
        with pytest.raises(RuntimeError, match="refusing to commit"):
            uow.commit()
        assert not uow.committed
    assert store.read("SELECT count(*) FROM t") == [(0,)]


def test_a_duplicate_key_is_duplicate_key_naming_the_constraint(engine, store):
    with store.unit_of_work() as uow:
        uow.execute("INSERT INTO t VALUES (1, 'a')")
        with pytest.raises(port.DuplicateKey) as caught:
            uow.execute("INSERT INTO t VALUES (1, 'b')")
    assert caught.value.constraint == PRIMARY_KEY[engine.name]
    assert caught.value.__cause__ is not None


def test_a_row_changed_since_the_snapshot_is_a_write_conflict(store):
    # The order both engines refuse at once: the second unit of work has read (its snapshot
    # is fixed), the first changes the row and commits, then the second changes it too.
    with store.unit_of_work() as uow:
        uow.execute("INSERT INTO t VALUES (1, 'a')")
        uow.commit()
    with other_unit_of_work(store) as second:
        assert second.fetchone("SELECT v FROM t WHERE id = 1") == ("a",)
        with store.unit_of_work() as first:
            first.execute("UPDATE t SET v = 'b' WHERE id = 1")
            first.commit()
        with pytest.raises(port.WriteConflict):
            second.execute("UPDATE t SET v = 'c' WHERE id = 1")
        with pytest.raises(RuntimeError, match="refusing to commit"):
            second.commit()
    assert store.read("SELECT v FROM t") == [("b",)]


def test_a_writer_waiting_on_a_row_fails_as_a_write_conflict_when_the_first_commits(engine,
                                                                                     store):
    # PostgreSQL queues the second writer on the row's lock (DuckDB refuses it at once): both
    # end in WriteConflict once the first has committed.
    with store.unit_of_work() as uow:
        uow.execute("INSERT INTO t VALUES (1, 'a')")
        uow.commit()
    outcome = {}
    first = other_unit_of_work(store).__enter__()
    first.execute("UPDATE t SET v = 'b' WHERE id = 1")
    started = threading.Event()

    def second_writer():
        try:
            with store.unit_of_work() as second:
                # A read of the table fixes the snapshot (DuckDB: not SELECT 1).
                second.fetchone("SELECT v FROM t WHERE id = 1")
                started.set()
                second.execute("UPDATE t SET v = 'c' WHERE id = 1")
                second.commit()
            outcome["second"] = "committed"
        except port.WriteConflict:
            outcome["second"] = "write conflict"
        finally:
            started.set()

    thread = threading.Thread(target=second_writer)
    thread.start()
    started.wait(10)
    # PostgreSQL: still waiting on the row; DuckDB: refused at once.
    thread.join(0.5 if engine.name == "pg" else 10)
    assert thread.is_alive() == (engine.name == "pg")
    first.commit()
    first.__exit__(None, None, None)
    thread.join(10)
    assert outcome == {"second": "write conflict"}
    assert store.read("SELECT v FROM t") == [("b",)]


# Write skew: each unit of work reads both rows and changes the other one. PostgreSQL's
# SERIALIZABLE (the port's default isolation) refuses the second COMMIT; DuckDB's snapshot
# isolation commits both (shared/field-notes.md), which is why the ledger's writer is single.
WRITE_SKEW_SECOND_COMMIT = {"duckdb": "committed", "pg": "write conflict"}


def test_write_skew_is_refused_at_commit_on_postgresql_only(engine, store):
    with store.unit_of_work() as uow:
        uow.execute("INSERT INTO t VALUES (1, 'on'), (2, 'on')")
        uow.commit()
    with other_unit_of_work(store) as first, other_unit_of_work(store) as second:
        for uow in (first, second):
            assert uow.fetchall("SELECT id FROM t WHERE v = 'on' ORDER BY id") == [(1,), (2,)]
        first.execute("UPDATE t SET v = 'off' WHERE id = 1")
        second.execute("UPDATE t SET v = 'off' WHERE id = 2")
        first.commit()
        try:
            second.commit()
            outcome = "committed"
        except port.WriteConflict:
            outcome = "write conflict"
    assert outcome == WRITE_SKEW_SECOND_COMMIT[engine.name]


def test_every_thread_reads_through_a_connection_of_its_own(store):
    with store.unit_of_work() as uow:
        uow.execute("INSERT INTO t VALUES (1, 'a'), (2, 'b')")
        uow.commit()
    failures, counts = [], []

    def reader():
        try:
            for _ in range(50):
                counts.append(store.read("SELECT count(*) FROM t")[0][0])
                assert list(store.read_df("SELECT id FROM t ORDER BY id")["id"]) == [1, 2]
        except Exception as exc:  # noqa: BLE001 - the test reports any failure
            failures.append(exc)
    threads = [threading.Thread(target=reader) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert failures == [] and counts == [2] * 200


def test_scan_is_visible_only_inside_its_block(store):
    frame = pd.DataFrame({"x": [1, 2, 3]})
    with store.unit_of_work() as uow:
        with uow.scan("frame_in", frame) as name:
            assert name == "frame_in"
            assert uow.fetchone("SELECT sum(x) FROM frame_in")[0] == 6
        with pytest.raises(Exception, match="frame_in.*does not exist"):
            uow.fetchone("SELECT sum(x) FROM frame_in")


@pytest.mark.parametrize("frame, expected_rows", [
    (pd.DataFrame({"i": pd.array([1, None, 3], dtype="Int64"),
                   "s": pd.array(["a", "", None], dtype=object),
                   "f": pd.array([0.5, None, -2.0], dtype="Float64"),
                   "b": pd.array([True, False, None], dtype="boolean")}),
     [(1, "a", 0.5, True), (3, None, -2.0, None), (None, "", None, False)]),
    (pd.DataFrame({"d": [dt.date(2024, 2, 29), None],
                   "ts": pd.to_datetime(["2024-01-02 03:04:05.123456", None])}),
     [(dt.date(2024, 2, 29), dt.datetime(2024, 1, 2, 3, 4, 5, 123456)), (None, None)]),
    (pa.table({"id": pa.array([7, 8], pa.int64()), "note": ['say "hi", then\nleave', "50%"]}),
     [(7, 'say "hi", then\nleave'), (8, "50%")]),
    (pd.DataFrame({"AccountId": [1]}), [(1,)]),
])
def test_scan_reads_back_what_the_frame_holds(store, frame, expected_rows):
    columns = ", ".join(str(c) for c in (
        frame.column_names if isinstance(frame, pa.Table) else frame.columns))
    with store.unit_of_work() as uow:
        with uow.scan("frame_in", frame):
            rows = uow.fetchall(f"SELECT {columns} FROM frame_in ORDER BY 1 NULLS LAST")
    assert rows == expected_rows


def test_a_failed_scan_block_raises_its_own_error(store):
    with store.unit_of_work() as uow:
        with pytest.raises(port.DuplicateKey):
            with uow.scan("frame_in", pd.DataFrame({"id": [1, 1], "v": ["a", "b"]})):
                uow.execute("INSERT INTO t SELECT id, v FROM frame_in")


@pytest.mark.parametrize("frame, columns, expected_rows", [
    (pd.DataFrame({"id": [1, 2, 3], "v": ["a", "b", "c"]}), None, 3),
    (pa.table({"v": ["x", "y"], "id": [7, 8]}), None, 2),
    (pd.DataFrame({"id": [5], "v": ["q"], "extra": [0]}), ["id", "v"], 1),
    (pd.DataFrame({"id": pd.Series([], dtype="int64"), "v": pd.Series([], dtype=str)}),
     None, 0),
])
def test_load_appends_every_row_and_counts_them(store, frame, columns, expected_rows):
    with store.unit_of_work() as uow:
        assert uow.load("t", frame, columns=columns) == expected_rows
        uow.commit()
    assert store.read("SELECT count(*) FROM t") == [(expected_rows,)]


def test_load_keeps_values_exactly_and_refuses_a_repeated_key(store):
    frame = pd.DataFrame({"id": [2**62, -1], "v": ["", "it's 100% ?"]})
    with store.unit_of_work() as uow:
        uow.load("t", frame)
        uow.commit()
    assert store.read("SELECT id, v FROM t ORDER BY id") == [(-1, "it's 100% ?"), (2**62, "")]
    with store.unit_of_work() as uow, pytest.raises(port.DuplicateKey):
        uow.load("t", frame.head(1))


def test_take_ids_are_ascending_and_unique_across_units_of_work(store):
    blocks = []
    for n in (3, 1, 5):
        with store.unit_of_work() as uow:
            blocks.append(uow.take_ids("t_seq", n))
            uow.commit()
    with other_unit_of_work(store) as rolled_back:
        blocks.append(rolled_back.take_ids("t_seq", 2))
    with store.unit_of_work() as uow:
        blocks.append(uow.take_ids("t_seq", 4))
    for block in blocks:
        assert block.ids.dtype == "int64"
        assert list(block.ids) == sorted(block.ids)
    ids = [i for b in blocks for i in b]
    assert len(set(ids)) == len(ids) == 15 and ids == sorted(ids) and ids[0] >= 10
    with store.unit_of_work() as uow, pytest.raises(ValueError):
        uow.take_ids("t_seq'); DROP TABLE t; --", 1)


def test_ids_from_a_postgres_sequence_come_after_the_transactions_own_xid(store):
    """The writers' rule the read model's watermark relies on (readmodel.py): a unit of work
    that takes ids from a sequence holds a transaction id by then, though it wrote nothing."""
    if not isinstance(store, PostgresEngine):
        pytest.skip("transaction ids are PostgreSQL's")
    for n in (1, 2):
        # The second take is served from values the first one logged ahead (nextval writes
        # WAL, and so takes an xid, only every 32nd value): nextval alone would assign none.
        with store.unit_of_work() as uow:
            assert uow.fetchone("SELECT pg_current_xact_id_if_assigned()")[0] is None
            uow.take_ids("t_seq", n)
            assert uow.fetchone("SELECT pg_current_xact_id_if_assigned()")[0] is not None


@pytest.mark.parametrize("select, expected_dtype, expected_first", [
    ("CAST(7 AS BIGINT)", "int64", 7),
    ("CAST(7 AS INTEGER)", "int32", 7),
    ("CAST(NULL AS BIGINT)", "Int64", pd.NA),
    ("CAST(12.34 AS DECIMAL(18, 2))", "float64", 12.34),
    ("CAST(2.5 AS DOUBLE PRECISION)", "float64", 2.5),
    ("DATE '2024-02-29'", "datetime64[us]", pd.Timestamp("2024-02-29")),
    ("TIMESTAMP '2024-02-29 23:59:59.999999'", "datetime64[us]",
     pd.Timestamp("2024-02-29 23:59:59.999999")),
    ("CAST(NULL AS DATE)", "datetime64[us]", pd.NaT),
    ("TRUE", "bool", True),
    ("CAST(NULL AS BOOLEAN)", "boolean", pd.NA),
    ("CAST('x' AS VARCHAR)", "str", "x"),
])
def test_fetch_df_gives_duckdbs_dtypes(store, select, expected_dtype, expected_first):
    frame = store.read_df(f"SELECT {select} AS c")
    assert str(frame["c"].dtype) == expected_dtype
    first = frame["c"].iloc[0]
    if expected_first is pd.NA or expected_first is pd.NaT:
        assert pd.isna(first)
    else:
        assert first == expected_first
    with store.unit_of_work() as uow:
        assert str(uow.fetch_df(f"SELECT {select} AS c")["c"].dtype) == expected_dtype


def test_an_empty_fetch_df_keeps_its_columns_and_their_numeric_dtypes(store):
    frame = store.read_df("SELECT id, v, CAST(id AS DECIMAL(18, 2)) AS d, "
                          "CAST(NULL AS DATE) AS day FROM t WHERE id < 0")
    assert list(frame.columns) == ["id", "v", "d", "day"] and len(frame) == 0
    assert [str(frame[c].dtype) for c in ("id", "d", "day")] == [
        "int64", "float64", "datetime64[us]"]


def test_fetchall_gives_python_values(store):
    with store.unit_of_work() as uow:
        uow.execute("INSERT INTO t VALUES (1, 'a')")
        uow.commit()
    assert store.read("SELECT id, v, CAST(1.5 AS DECIMAL(9, 4)), DATE '2024-01-31', "
                      "TIMESTAMP '2024-01-31 12:00:00', NULL FROM t") == [
        (1, "a", Decimal("1.5000"), dt.date(2024, 1, 31), dt.datetime(2024, 1, 31, 12), None)]


@pytest.mark.parametrize("where, expected", [
    ("", {"id": (1, 2), "v": ("a", "b")}),
    ("WHERE id < 0", {"id": (), "v": ()}),
])
def test_columns_come_back_by_name_from_every_reader(store, where, expected):
    with store.unit_of_work() as uow:
        uow.execute("INSERT INTO t VALUES (1, 'a'), (2, 'b')")
        assert uow.fetch_columns(f"SELECT id, v FROM t {where} ORDER BY id") == expected
        uow.commit()
    assert store.read_columns(f"SELECT id, v FROM t {where} ORDER BY id") == expected
    with store.snapshot() as reader:
        assert reader.fetch_columns(f"SELECT id, v FROM t {where} ORDER BY id") == expected


def test_a_snapshot_repeats_while_another_connection_commits(store):
    with store.unit_of_work() as uow:
        uow.execute("INSERT INTO t VALUES (1, 'a')")
        uow.commit()
    with store.snapshot() as reader:
        # Both engines fix a snapshot at its first query, not at BEGIN.
        assert reader.fetchone("SELECT count(*) FROM t") == (1,)
        with store.unit_of_work() as uow:
            uow.execute("INSERT INTO t VALUES (2, 'b')")
            uow.commit()
        assert store.read("SELECT count(*) FROM t") == [(2,)]
        assert reader.fetchall("SELECT id FROM t") == [(1,)]
        assert list(reader.fetch_df("SELECT id FROM t")["id"]) == [1]
    assert store.read("SELECT count(*) FROM t") == [(2,)]


@pytest.mark.parametrize("sql, params, expected", [
    ("SELECT ?", [5], [(5,)]),
    ("SELECT '?', ?", [5], [("?", 5)]),
    ("SELECT 'it''s ?', ?", ["x"], [("it's ?", "x")]),
    ("SELECT v FROM t WHERE v LIKE 'a%' AND id > ? ORDER BY v", [0], [("a%b",), ("ab",)]),
    ("SELECT v FROM t WHERE v LIKE ? ORDER BY v", ["a_b"], [("a%b",)]),
    ("SELECT count(*) FROM t WHERE v <> '%?%' AND id = ?", [1], [(1,)]),
    ("SELECT ? /* ? */ -- ? and %\n", [1], [(1,)]),
    ('SELECT "v?" FROM (SELECT v AS "v?" FROM t WHERE id = ?) AS q', [2], [("ab",)]),
    ("SELECT $$?%$$, ?", [3], [("?%", 3)]),
    ("SELECT 100 % 7", None, [(2,)]),
    ("SELECT 100 % ?", [7], [(2,)]),
])
def test_question_marks_bind_and_literals_keep_theirs(store, sql, params, expected):
    with store.unit_of_work() as uow:
        uow.execute("INSERT INTO t VALUES (1, 'a%b'), (2, 'ab')")
        assert uow.fetchall(sql, params) == expected


# -- schema: the same tables and columns on both engines, migrated once ------------------------
def columns_of(store) -> dict[str, list[tuple]]:
    """{table: [(column, type family, precision, scale, nullable)]} in column order."""
    family = {"bigint": "bigint", "integer": "integer", "character varying": "text",
              "varchar": "text", "numeric": "numeric", "decimal": "numeric", "date": "date",
              "timestamp without time zone": "timestamp", "timestamp": "timestamp",
              "boolean": "boolean"}
    rows = store.read(
        "SELECT c.table_name, c.column_name, lower(c.data_type), c.numeric_precision, "
        "c.numeric_scale, c.is_nullable FROM information_schema.columns c "
        "JOIN information_schema.tables t ON t.table_name = c.table_name "
        "AND t.table_schema = c.table_schema "
        "WHERE t.table_type = 'BASE TABLE' AND c.table_schema = current_schema() "
        "ORDER BY c.table_name, c.ordinal_position")
    found: dict[str, list[tuple]] = {}
    for table, column, data_type, precision, scale, nullable in rows:
        kind = family.get(data_type.split("(")[0], data_type)
        numeric = (precision, scale) if kind == "numeric" else (None, None)
        found.setdefault(table, []).append((column, kind, *numeric, nullable))
    return found


def contents_of(store) -> dict[str, list]:
    """Every row of every table, sorted, as text (what a second migration must not change)."""
    return {table: sorted(repr(r) for r in store.read(f"SELECT * FROM {table}"))
            for table in columns_of(store)}


@pytest.fixture(scope="module")
def duckdb_columns(tmp_path_factory):
    eng = DuckDBEngine(str(tmp_path_factory.mktemp("schema") / "schema.duckdb"))
    try:
        return columns_of(eng)
    finally:
        eng.close()


def test_migrate_makes_the_same_tables_and_columns_on_both_engines(engine, tmp_path,
                                                                   duckdb_columns):
    eng = open_store(engine, tmp_path)
    try:
        found = columns_of(eng)
    finally:
        eng.close()
    assert len(found) > 30
    assert found == duckdb_columns


def test_a_second_migrate_changes_nothing(engine, tmp_path):
    first = open_store(engine, tmp_path)
    before = (columns_of(first), contents_of(first))
    first.close()
    second = open_store(engine, tmp_path)
    try:
        assert before[1]["deposit_products"], "the migration seeds the deposit products"
        assert (columns_of(second), contents_of(second)) == before
    finally:
        second.close()


def test_two_engines_opening_one_new_database_at_once_both_open(engine, tmp_path):
    # PostgreSQL's migration holds an advisory lock: the second waits, then finds it done.
    if engine.name != "pg":
        pytest.skip("DuckDB: one process owns the file (test_store_port.py)")
    opened, failed = [], []

    def open_one():
        try:
            opened.append(open_store(engine, tmp_path))
        except Exception as exc:  # noqa: BLE001 - the test reports any failure
            failed.append(exc)
    threads = [threading.Thread(target=open_one) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    try:
        assert failed == [] and len(opened) == 3
        assert opened[0].read("SELECT count(*) FROM deposit_products") == [(3,)]
    finally:
        for eng in opened:
            eng.close()


# -- the PostgreSQL error map: one row per error (no server needed) ----------------------------
def with_state(cls):
    """A psycopg error of class cls, whose SQLSTATE is the class's own."""
    return cls(f"{cls.__name__} for a test")


@pytest.mark.parametrize("error, expected", [
    (with_state(pg_errors.UniqueViolation), port.DuplicateKey),
    (with_state(pg_errors.SerializationFailure), port.WriteConflict),
    (with_state(pg_errors.DeadlockDetected), port.WriteConflict),
    (psycopg.OperationalError("connection failed: No such file or directory"),
     port.StoreUnavailable),
    (with_state(pg_errors.AdminShutdown), port.StoreUnavailable),
    (with_state(pg_errors.ConnectionFailure), port.StoreUnavailable),
    (with_state(pg_errors.QueryCanceled), None),
    (with_state(pg_errors.LockNotAvailable), None),
    (with_state(pg_errors.NotNullViolation), None),
    (with_state(pg_errors.CheckViolation), None),
    (with_state(pg_errors.UndefinedTable), None),
    (ValueError("not a PostgreSQL error"), None),
])
def test_postgresql_errors_map_to_port_errors(error, expected):
    mapped = port.map_error(error)
    if expected is None:
        assert mapped is error and postgres_error(error) is None
    else:
        assert type(mapped) is expected and str(mapped) == str(error)


def test_a_lost_server_is_store_unavailable(engine, tmp_path):
    if engine.name != "pg":
        pytest.skip("DuckDB has no server to lose")
    eng = open_store(engine, tmp_path)
    try:
        pid = eng.read("SELECT pg_backend_pid()")[0][0]
        killer = PostgresEngine(engine.url)
        killer.read("SELECT pg_terminate_backend(?)", [pid])
        killer.close()
        with pytest.raises(port.StoreUnavailable):
            eng.read("SELECT 1")
        # The thread's connection is opened again on the next call.
        assert eng.read("SELECT 1") == [(1,)]
    finally:
        eng.close()


def test_connections_of_ended_threads_are_taken_back(engine, tmp_path):
    # Streamlit runs every script run on a new thread: a connection per thread ever started
    # reached max_connections on a serving process (docs/deploy-postgresql.md).
    if engine.name != "pg":
        pytest.skip("DuckDB has no server connections to leak")
    eng = open_store(engine, tmp_path)
    try:
        pids = []
        for _ in range(30):
            worker = threading.Thread(
                target=lambda: pids.append(eng.read("SELECT pg_backend_pid()")[0][0]))
            worker.start()
            worker.join()
        still_open = eng.read("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(?)",
                              [sorted(set(pids))])[0][0]
        assert (len(set(pids)), still_open) == (1, 1)
    finally:
        eng.close()


# -- `?` -> psycopg's placeholders, one row per case (no server needed) ------------------------
@pytest.mark.parametrize("sql, named, expected", [
    ("SELECT ?", False, "SELECT %s"),
    ("SELECT '?', ?", False, "SELECT '?', %s"),
    ("SELECT 'it''s ?', ?", False, "SELECT 'it''s ?', %s"),
    ("WHERE v LIKE 'a%' AND id = ?", False, "WHERE v LIKE 'a%%' AND id = %s"),
    ("SELECT 100 % ?", False, "SELECT 100 %% %s"),
    ("SELECT E'it\\'s ?', ?", False, "SELECT E'it\\'s ?', %s"),
    ('SELECT "a?b" FROM t WHERE x = ?', False, 'SELECT "a?b" FROM t WHERE x = %s'),
    ("SELECT $$?$$, $q$'?$q$, ?", False, "SELECT $$?$$, $q$'?$q$, %s"),
    ("SELECT ? -- ? 5%\n, ?", False, "SELECT %s -- ? 5%%\n, %s"),
    ("SELECT /* ? */ ?", False, "SELECT /* ? */ %s"),
    ("SELECT CAST(? AS BIGINT), x::int", False, "SELECT CAST(%s AS BIGINT), x::int"),
    ("SELECT :a, :b::int, ':c'", True, "SELECT %(a)s, %(b)s::int, ':c'"),
    ("SELECT :a, ? ", False, "SELECT :a, %s "),
])
def test_translate_turns_question_marks_into_psycopg_placeholders(sql, named, expected):
    assert translate(sql, named) == expected


def test_named_parameters_bind_on_postgresql(engine, tmp_path):
    if engine.name != "pg":
        pytest.skip("DuckDB's Python API binds $name, not :name (port.Params)")
    eng = open_store(engine, tmp_path)
    try:
        assert eng.read("SELECT :a + :b, ':a', CAST(:a AS TEXT)::int",
                        {"a": 1, "b": 2}) == [(3, ":a", 1)]
    finally:
        eng.close()
