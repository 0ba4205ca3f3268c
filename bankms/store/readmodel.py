"""A read model in DuckDB of a bank kept on PostgreSQL (issue 14, step H): the dashboards,
reports and checks read a columnar copy instead of the primary.

`ReadModel(pg_url, path)` holds, in a DuckDB database (':memory:' or a file), a copy of every
table of the bank's schema (db.SCHEMA, created here by running the same DDL), pulled from
PostgreSQL (a primary or a streaming replica) through `adbc-driver-postgresql` as Arrow.
`refresh()` pulls every table inside ONE `REPEATABLE READ READ ONLY` transaction, so the copy is
one committed state of the bank: balances agree with the postings, as on the primary. The first
refresh pulls everything; later ones pull the append-only tables by their ordering column (rows
after the last one held, plus a tail window, see below) and the other tables whole, and swap
them in inside one DuckDB transaction, so a reader sees either the old state or the new one.

Reads (`read`, `read_df`, `read_columns`, `snapshot`) run on DuckDB, each thread through its own
cursor on the one connection (as duckdb.DuckDBEngine's readers do), in the DuckDB dialect.
`freshness()` tells how old the copy is: `as_of` is the server's time of the snapshot (on a
replica, the time of the last transaction it replayed), `refreshed_at` when the pull ended.

Measured (benchmarks/bench_readmodel.py, shared 2-core machine at load 4-7): at 1 M postings a
full pull 3.4-3.9 s (1.5 M rows), the dashboards 0.97-1.32x the DuckDB file, an incremental
refresh after 50,000 new postings 0.65-0.72 s; at 10 M a full pull 39 s (15 M rows), the dashboards
0.92-1.13x the DuckDB file, the incremental refresh 1.3-2.1 s, most of it the accounts (100,000
rows) and customers pulled whole: a change marker for them is the next step.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import threading
import time
from dataclasses import dataclass

import adbc_driver_postgresql.dbapi as adbc_pg
import duckdb
import pyarrow as pa

from . import db
from .duckdb import Cursors, DuckDBReader, read_snapshot
from .port import StoreUnavailable
from .sql import DUCKDB

# The tables no statement of bankms updates or deletes from once their transaction committed,
# with the column they grow along and the column that identifies a row. Checked by reading the
# code (session 25): no UPDATE or DELETE touches postings or idempotency_keys; transactions and
# audit_log get their chain_hash by one UPDATE in the very transaction that inserts them, just
# before its COMMIT (store/chains.py), so a committed row is final. An idempotency key is
# written in the transaction of the ledger transaction it names, so its transaction_id grows as
# the transactions' ids do. Every other table (accounts, customers, loans, settings, ...) is
# pulled whole at each refresh: they are small beside the ledger, and several are updated.
APPEND_ONLY = {
    # table: (ordering column, identity column)
    "transactions": ("id", "id"),
    "postings": ("id", "id"),
    "audit_log": ("id", "id"),
    "idempotency_keys": ("transaction_id", "key"),
}

# What is not copied: secrets and sign-in state, which no report reads and which a copy meant
# for analysts must not spread (the outbox holds activation codes in clear, for the system actor
# alone). Their tables stay in the copy, empty, so the schema stays the bank's; users keep every
# column but the password hash, which comes as ''.
NOT_COPIED = frozenset({"sessions", "form_keys", "activation_codes", "outbox", "throttles"})
BLANKED = {("users", "password_hash")}

# Ids re-read below the highest one held, at every incremental refresh.
#
# Why: `id > last_id` alone is right only if rows become visible in id order. They do today: on
# PostgreSQL one process writes, through one writer thread, and that thread takes the ledger's
# ids from its own counters (ledger.LedgerState, engine.set_counters) and commits each unit of
# work before it starts the next, so no id below a committed one can commit later. With several
# writers (issue 14, step F: processes taking ids from PostgreSQL sequences) a transaction that
# took a lower id may commit after a higher one that a refresh already copied; `id > last_id`
# would then miss its rows for ever. A refresh therefore also re-reads the last TAIL_IDS ids
# below the highest it holds and adds the rows it does not have yet (by the identity column),
# which tolerates commits out of order by up to that many ids, for the price of re-reading
# them (about 10 ms at 10,000). It is not a proof: a transaction that holds an id for longer
# than TAIL_IDS ids take to commit after it would still be missed, so step F needs a commit-
# ordered change marker (a column set at commit, or logical decoding) before it runs several
# writers; `refresh(full=True)` re-pulls everything meanwhile. The snapshot's xmin cannot
# stand in here: a row's xmin is not indexed, so finding the rows of the transactions that were
# in flight at the last snapshot means reading the whole table.
TAIL_IDS = 10_000

# The first statement of the pull fixes the snapshot; its time is the copy's "as of". On a
# streaming replica the data is as old as the last transaction replayed, not as the clock.
_AS_OF_SQL = (
    "SELECT CAST((CASE WHEN pg_is_in_recovery() THEN coalesce(pg_last_xact_replay_timestamp(), "
    "statement_timestamp()) ELSE statement_timestamp() END) AT TIME ZONE 'UTC' AS TIMESTAMP) "
    "AS as_of, pg_is_in_recovery() AS replica")

# The read model's own bookkeeping, in the DuckDB database beside the copied tables (so that a
# file read model knows after a restart where its append-only tables end).
_STATE_TABLE = "readmodel_state"
_STATE_DDL = (f"CREATE TABLE IF NOT EXISTS {_STATE_TABLE} (name VARCHAR PRIMARY KEY, "
              "as_of TIMESTAMP, refreshed_at TIMESTAMP, replica BOOLEAN, full_pulls BIGINT, "
              "refreshes BIGINT)")
_NAMES = itertools.count()
# Tables up to this many rows are remembered between refreshes (see ReadModel._last).
_REMEMBERED_ROWS_MAX = 1_000_000


@dataclass(frozen=True)
class Freshness:
    """How old the read model is. Times are naive UTC, as every TIMESTAMP in bankms."""

    as_of: dt.datetime | None          # the source's state copied (None: never refreshed)
    refreshed_at: dt.datetime | None   # when the last refresh finished
    replica: bool | None               # whether it was pulled from a streaming replica
    refreshes: int                     # refreshes since the copy was made (the first is full)

    def age(self, now: dt.datetime | None = None) -> dt.timedelta | None:
        """How far behind the source the copy is at `now` (default: the clock, UTC)."""
        if self.as_of is None:
            return None
        now = now or dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
        return now - self.as_of


@dataclass(frozen=True)
class RefreshReport:
    """What one refresh did: rows pulled per table, whether it was a full pull, and the
    seconds spent pulling (PostgreSQL to Arrow) and merging (Arrow into DuckDB)."""

    full: bool
    rows: dict[str, int]
    pull_s: float
    merge_s: float
    as_of: dt.datetime


class ReadModel:
    """A DuckDB copy of the bank on PostgreSQL at `source_url` (a libpq URL), in `path` (a
    DuckDB file, or ':memory:'). Empty until the first `refresh()`. Thread-safe: reads from any
    thread, one refresh at a time (a second waits for the first)."""

    name = "duckdb"
    dialect = DUCKDB

    def __init__(self, source_url: str, path: str = ":memory:", *, tail_ids: int = TAIL_IDS):
        self.source_url = source_url
        self.path = path
        self.tail_ids = int(tail_ids)
        self.con = duckdb.connect(path)
        self.con.execute("SET enable_progress_bar = false")
        if not self.con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = ?",
                                [_STATE_TABLE]).fetchone()[0]:
            self._create_schema()
        self._cursors = Cursors(self.con)
        self._refresh_lock = threading.Lock()
        self._columns = self._table_columns()
        # The small tables as last pulled ({table: Arrow}), to leave alone those that did not
        # change (most settings, products, holidays...) instead of rewriting them.
        self._last: dict[str, pa.Table] = {}

    def _create_schema(self) -> None:
        """The bank's schema as a DuckDB bank has it (db.migrate: the same DDL), so that every
        query written for the bank runs here unchanged; then each table rebuilt with the same
        columns and types but no keys, defaults or checks. The source enforced them already,
        and here they would only cost: replacing the accounts' 10,000 rows under their two
        unique indexes took 115 ms of a 0.5 s merge. Seed rows go at the first pull."""
        db.migrate(self.con)
        tables = [r[0] for r in self.con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE NOT internal").fetchall()]
        self.con.execute("BEGIN")
        for table in tables:
            self.con.execute(f"CREATE TABLE {table}__plain AS SELECT * FROM {table} LIMIT 0")
            self.con.execute(f"DROP TABLE {table}")
            self.con.execute(f"ALTER TABLE {table}__plain RENAME TO {table}")
        self.con.execute(_STATE_DDL)
        self.con.execute("COMMIT")
        self.con.execute("CHECKPOINT")

    # -- schema ------------------------------------------------------------------------------
    def _table_columns(self) -> dict[str, list[tuple[str, str]]]:
        """{table: [(column, DuckDB type)]} of the bank's tables, in column order."""
        rows = self.con.execute(
            "SELECT table_name, column_name, data_type FROM duckdb_columns() "
            "WHERE NOT internal AND table_name <> ? ORDER BY table_name, column_index",
            [_STATE_TABLE]).fetchall()
        columns: dict[str, list[tuple[str, str]]] = {}
        for table, column, sql_type in rows:
            columns.setdefault(table, []).append((column, sql_type))
        return columns

    def _select(self, table: str) -> str:
        """The PostgreSQL query pulling `table`'s columns. NUMERIC comes as text: ADBC gives it
        as an opaque extension type DuckDB does not read; the merge casts it back exactly."""
        def column(c, t):
            if (table, c) in BLANKED:
                return f"'' AS \"{c}\""
            return f'CAST("{c}" AS TEXT) AS "{c}"' if t.startswith("DECIMAL") else f'"{c}"'
        cols = ", ".join(column(c, t) for c, t in self._columns[table])
        return f"SELECT {cols} FROM {table}"

    # -- refresh -----------------------------------------------------------------------------
    def _state(self) -> tuple | None:
        return self.con.cursor().execute(
            f"SELECT as_of, refreshed_at, replica, refreshes FROM {_STATE_TABLE} "
            "WHERE name = 'state'").fetchone()

    def refresh(self, *, full: bool = False) -> RefreshReport:
        """Bring the copy up to the source's current committed state, in one snapshot of it.
        Full the first time (or when `full`), else incremental. Raises StoreUnavailable when
        the source cannot be reached; the copy is then left as it was."""
        with self._refresh_lock:
            full = full or self._state() is None
            bounds = {} if full else self._bounds()
            t0 = time.perf_counter()
            as_of, replica, frames = self._pull(bounds)
            t1 = time.perf_counter()
            self._merge(frames, bounds, as_of, replica, full)
            t2 = time.perf_counter()
            return RefreshReport(full=full, rows={t: f.num_rows for t, f in frames.items()},
                                 pull_s=t1 - t0, merge_s=t2 - t1, as_of=as_of)

    def _bounds(self) -> dict[str, int]:
        """{append-only table: the lowest value of its ordering column to pull again}: the
        highest held less the tail window (TAIL_IDS), for tables holding rows."""
        cur = self.con.cursor()
        bounds = {}
        for table, (order, _) in APPEND_ONLY.items():
            (top,) = cur.execute(f"SELECT max({order}) FROM {table}").fetchone()
            if top is not None:
                bounds[table] = int(top) - self.tail_ids
        return bounds

    def _pull(self, bounds: dict[str, int]) -> tuple[dt.datetime, bool, dict[str, pa.Table]]:
        """Every table as Arrow, read in one REPEATABLE READ READ ONLY transaction: the
        append-only ones from their bound on (all when they have none), the others whole."""
        try:
            conn = adbc_pg.connect(self.source_url, autocommit=True)
        except adbc_pg.Error as exc:
            raise StoreUnavailable(f"cannot reach the read model's source: {exc}") from exc
        try:
            cur = conn.cursor()
            # Autocommit, so that the transaction below is exactly the one written here.
            cur.execute("SET TimeZone TO 'UTC'")
            # Plain scans: JIT compiling them cost more than it saved (tens of ms a table,
            # the planner misjudging a BRIN scan's rows as millions).
            cur.execute("SET jit = off")
            cur.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            try:
                cur.execute(_AS_OF_SQL)
                head = cur.fetch_arrow_table().to_pylist()[0]
                frames = {}
                for table in self._columns:
                    if table in NOT_COPIED:
                        continue
                    sql = self._select(table)
                    if table in APPEND_ONLY and table in bounds:
                        # An integer from our own copy: safe to write into the text.
                        sql += f" WHERE {APPEND_ONLY[table][0]} > {int(bounds[table])}"
                    cur.execute(sql)
                    frames[table] = cur.fetch_arrow_table()
            finally:
                cur.execute("ROLLBACK")
            cur.close()
        except adbc_pg.OperationalError as exc:
            raise StoreUnavailable(f"the read model's pull failed: {exc}") from exc
        finally:
            conn.close()
        return head["as_of"], bool(head["replica"]), frames

    def _merge(self, frames: dict[str, pa.Table], bounds: dict[str, int], as_of: dt.datetime,
               replica: bool, full: bool) -> None:
        """Swap the pulled rows in, in one DuckDB transaction (readers see the old copy or the
        new one, never a mix): append-only tables gain the rows they lack, others are
        replaced."""
        cur = self.con.cursor()
        try:
            cur.execute("BEGIN")
            for table, frame in frames.items():
                cols = self._columns[table]
                names = ", ".join(f'"{c}"' for c, _ in cols)
                casts = ", ".join(f'CAST(src."{c}" AS {t})' for c, t in cols)
                source = f"_readmodel_{next(_NAMES)}"
                cur.register(source, frame)
                try:
                    where = ""
                    if table in APPEND_ONLY and table in bounds:
                        # Rows of the tail window already held are skipped by identity.
                        order, ident = APPEND_ONLY[table]
                        where = (f" WHERE src.\"{ident}\" NOT IN (SELECT \"{ident}\" FROM {table} "
                                 f"WHERE {order} > {int(bounds[table])})")
                    elif not full and table in self._last and self._last[table].equals(frame):
                        continue  # unchanged since the last pull
                    elif full or table not in APPEND_ONLY:
                        cur.execute(f"DELETE FROM {table}")
                    if frame.num_rows:
                        cur.execute(f"INSERT INTO {table} ({names}) SELECT {casts} "
                                    f"FROM {source} src{where}")
                finally:
                    cur.unregister(source)
            refreshed_at = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
            cur.execute(
                f"INSERT INTO {_STATE_TABLE} VALUES ('state', ?, ?, ?, ?, 1) "
                "ON CONFLICT (name) DO UPDATE SET as_of = excluded.as_of, "
                "refreshed_at = excluded.refreshed_at, replica = excluded.replica, "
                f"full_pulls = {_STATE_TABLE}.full_pulls + excluded.full_pulls, "
                f"refreshes = {_STATE_TABLE}.refreshes + 1",
                [as_of, refreshed_at, replica, 1 if full else 0])
            cur.execute("COMMIT")
            self._last = {t: f for t, f in frames.items()
                          if t not in APPEND_ONLY and f.num_rows <= _REMEMBERED_ROWS_MAX}
        except BaseException:
            with contextlib.suppress(duckdb.Error):
                cur.execute("ROLLBACK")
            raise
        finally:
            cur.close()

    # -- freshness ---------------------------------------------------------------------------
    def freshness(self) -> Freshness:
        """How old the copy is (all None and 0 before the first refresh)."""
        row = self._state()
        if row is None:
            return Freshness(None, None, None, 0)
        as_of, refreshed_at, replica, refreshes = row
        return Freshness(as_of, refreshed_at, replica, int(refreshes))

    # -- reads (port.Engine's read side, on the copy) ----------------------------------------
    def read(self, sql, params=None) -> list[tuple]:
        """Rows of one query on the copy, through this thread's cursor."""
        return DuckDBReader(self._cursors.get()).fetchall(sql, params)

    fetchall = read

    def read_df(self, sql, params=None):
        """One query on the copy as a DataFrame (port.Reader.fetch_df's types)."""
        return DuckDBReader(self._cursors.get()).fetch_df(sql, params)

    def read_columns(self, sql, params=None) -> dict:
        """{column name: tuple of values} of one query on the copy."""
        return DuckDBReader(self._cursors.get()).fetch_columns(sql, params)

    def snapshot(self):
        """A Reader whose queries all see one refresh of the copy (a refresh finishing
        meanwhile is not seen), on a cursor of its own. Rolled back on exit."""
        return read_snapshot(self.con)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            if self.path != ":memory:":
                self.con.execute("CHECKPOINT")
        self.con.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
