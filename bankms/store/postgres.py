"""The PostgreSQL engine: the storage port (port.py) over one PostgreSQL database, with psycopg 3.

Connections: every thread reads through a connection of its own (kept per thread, autocommit,
so each read is one statement in one snapshot). A unit of work runs on its thread's connection
when that connection is idle, else (a second unit of work or a snapshot open on the same
thread) on a connection of its own, taken from a small list of spares and given back after.
Every connection this engine opens sets its session TimeZone to 'UTC', so `now()` stored into
a TIMESTAMP column is UTC, and TIMESTAMP values come back as naive UTC datetimes.

Isolation: `unit_of_work(isolation="serializable")` (the port's default) is PostgreSQL's
SERIALIZABLE: snapshot isolation as on DuckDB, plus the write-skew checks DuckDB lacks (field
notes: two debits on two rows that together break a rule both commit there). Its failures
(40001) come out as WriteConflict, as DuckDB's "Conflict on update" does, so the caller's retry
is the same. "read_committed" is READ COMMITTED. `snapshot()` is REPEATABLE READ READ ONLY.
Unlike DuckDB, a second writer of a row does not fail at once: it waits for the first to end,
then fails with WriteConflict if the first committed.

SQL: call sites write `?` placeholders (DuckDB's style). `translate` turns them into psycopg's
`%s` once per distinct statement text (cached), leaving a `?` inside a string literal, a quoted
identifier, a dollar-quoted string or a comment alone and doubling every `%` (LIKE 'a%'), which
psycopg would otherwise read as a placeholder. A mapping of parameters binds `:name`
placeholders (`%(name)s`; a `::` cast is left alone). PostgreSQL's jsonb operators `?`, `?|`
and `?&` cannot be written with parameters: use jsonb_exists() and its kin. A statement without
parameters is sent as written.

Several processes (issue 14, step F): `shared_writers` is True, and the writer of each process
opens its units of work with `exclusive=True`. Such a unit of work first takes the session-level
advisory lock WRITER_LOCK_KEY, then BEGINs, and gives the lock back only after its COMMIT or
ROLLBACK, so the writers of all processes take turns and each one's snapshot already holds the
previous one's commit. A transaction-scoped lock (pg_advisory_xact_lock) as the first statement
would not do: a SERIALIZABLE transaction takes its snapshot when that statement starts, before
the lock is granted, so it would read what was there before the other writer committed (tried
here: the second writer saw the old row and failed with 40001 at its update). Each exclusive
unit of work also takes the next value of the sequence WRITER_CLOCK (no transaction undoes it);
when it is not the last value this engine took plus one, another process took one in between,
and the unit of work says so in `others_wrote`.

Writer lanes (issue 14): each writer session holds a lane of its own (writer_session, LANE_BASE)
and every id comes from a sequence (take_ids). A posting batch then holds the writer lock SHARED
(`shared=True`, READ COMMITTED) instead, so the batches of several processes run at once and lock
the rows they change themselves; every other unit of work stays exclusive, and also ticks
CALLS_CLOCK, which a shared batch reads to learn that such a job of another process ran
(`others_wrote`).

Announcing commits (issue 14, step G): an exclusive unit of work opened with `announce`
("post" or "call") sends NOTIFY on CHANNEL in the same round trip as its COMMIT; PostgreSQL
delivers it to every listening session when (and only if) the transaction commits. The payload
is "<engine token> <writer clock value> <kind>": the token (random, one per engine) lets a
listener tell its own engine's commits from other processes' (two engines in one process
count as two processes, as tests/test_pg_notify.py uses them). `listen(callback)` starts a
PostgresListener: a daemon thread on a connection of its own that LISTENs, waits in psycopg's
`notifies()` with a timeout (so that stop() is heard) and calls callback(port.Change) for every
other engine's notification; when its connection drops it connects again, LISTENs, and calls
callback(Change("call", lost=True)) once, since it may have missed some. A notification sent
before LISTEN took effect is never delivered: listen() returns only once LISTEN has run.

Errors: `postgres_error` is the one table from psycopg's exceptions to the port's (registered
with port.register_error_map); statements, COMMIT and the unit of work's block raise the port
error `from` psycopg's.
"""
from __future__ import annotations

import collections
import contextlib
import functools
import io
import logging
import re
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from psycopg import errors as pg_errors

from . import db
from .port import (Change, CommitRules, DuplicateKey, IdBlock, StoreError, StoreUnavailable,
                   WriteConflict, map_error, register_error_map)
from .sql import POSTGRES


# -- the one PostgreSQL error map ---------------------------------------------------------------
# Connection failures among psycopg's OperationalErrors, by SQLSTATE: class 08 (connection
# exception), and the server shutting down or refusing connections (57P01-57P03). A failure
# before the server answered has no SQLSTATE.
_UNAVAILABLE_STATES = ("57P01", "57P02", "57P03")


def postgres_error(exc: BaseException) -> StoreError | None:
    """The port error for a psycopg exception, or None when it is not one the port names.
    Table (tests/test_store_contract.py holds one row per case):
      UniqueViolation (23505)                       -> DuplicateKey(constraint=its name)
      SerializationFailure (40001)                  -> WriteConflict
      DeadlockDetected (40P01)                      -> WriteConflict
      OperationalError of a connection (no SQLSTATE, 08xxx, 57P01-57P03) -> StoreUnavailable
    Other integrity errors (NOT NULL, CHECK, foreign key), other operational errors (a
    cancelled statement, a lock timeout) and everything else stay psycopg's."""
    if not isinstance(exc, psycopg.Error):
        return None
    text = str(exc)
    if isinstance(exc, pg_errors.UniqueViolation):
        return DuplicateKey(text, constraint=exc.diag.constraint_name)
    if isinstance(exc, (pg_errors.SerializationFailure, pg_errors.DeadlockDetected)):
        return WriteConflict(text)
    if isinstance(exc, psycopg.OperationalError):
        state = exc.sqlstate
        if state is None or state.startswith("08") or state in _UNAVAILABLE_STATES:
            return StoreUnavailable(text)
    return None


register_error_map(postgres_error)


# -- `?` placeholders -> psycopg's ---------------------------------------------------------------
# One token each: an escape string E'...' (backslash escapes), a string '...' ('' inside), a
# quoted identifier "...", a dollar-quoted string $tag$...$tag$, a line or block comment (block
# comments are not nested here), then the characters that change: `::`, `:name`, `?`, `%`.
_TOKEN = re.compile(r"""
      (?P<skip>
          (?<![\w$])[Ee]'(?:[^'\\]|\\.|'')*'
        | '(?:[^']|'')*'
        | "(?:[^"]|"")*"
        | (?<![\w$])\$(?P<tag>(?:[A-Za-z_][A-Za-z0-9_]*)?)\$[\s\S]*?\$(?P=tag)\$
        | --[^\n]*
        | /\*[\s\S]*?\*/
      )
    | (?P<cast>::)
    | :(?P<name>[A-Za-z_][A-Za-z0-9_]*)
    | (?P<mark>\?)
    | (?P<percent>%)
""", re.VERBOSE)


@functools.lru_cache(maxsize=4096)
def translate(sql: str, named: bool = False) -> str:
    """psycopg's text for `sql` written with `?` placeholders (named=False) or `:name` ones
    (named=True): placeholders outside literals, quoted identifiers and comments become `%s`
    or `%(name)s`; every `%` becomes `%%` (psycopg reads `%` everywhere once parameters are
    given, literals included). Cached per (sql, named)."""
    def one(match: re.Match) -> str:
        if match.group("skip") is not None:
            return match.group("skip").replace("%", "%%")
        if match.group("cast") is not None:
            return "::"
        if match.group("name") is not None:
            return f"%({match.group('name')})s" if named else match.group(0)
        if match.group("mark") is not None:
            return "?" if named else "%s"
        return "%%"
    return _TOKEN.sub(one, sql)


def _query(sql: str, params):
    """(text, params) for psycopg: the text translated when there are parameters."""
    if params is None:
        return sql, None
    if isinstance(params, Mapping):
        return translate(sql, True), params
    return translate(sql, False), params


# -- result frames ------------------------------------------------------------------------------
# PostgreSQL type OIDs (pg_type), read from a cursor's description.
_INT_TYPES = {20: ("int64", "Int64"), 23: ("int32", "Int32"), 21: ("int16", "Int16")}
_FLOAT_TYPES = {1700: "float64", 701: "float64", 700: "float32"}
_DATETIME_TYPES = {1082, 1114}          # date, timestamp (without time zone)
_TIMESTAMPTZ = 1184
_BOOL = 16
_TEXT_TYPES = {25, 1043, 1042, 18, 19}  # text, varchar, bpchar, char, name


def _column(values: list, oid: int, empty: bool):
    """One result column as DuckDB's .df() gives it (port.Reader.fetch_df): BIGINT int64
    (nullable Int64 when it holds NULL), INTEGER int32, SMALLINT int16, NUMERIC float64, DATE
    and TIMESTAMP datetime64[us] (NaT for NULL), BOOLEAN bool (nullable boolean with NULL),
    text str (object when there are no rows), anything else object."""
    if oid in _INT_TYPES:
        plain, nullable = _INT_TYPES[oid]
        if any(v is None for v in values):
            return pd.array(values, dtype=nullable)
        return np.array(values, dtype=plain)
    if oid in _FLOAT_TYPES:
        return np.array([np.nan if v is None else float(v) for v in values],
                        dtype=_FLOAT_TYPES[oid])
    if oid in _DATETIME_TYPES:
        return np.array(values, dtype="datetime64[us]")
    if oid == _TIMESTAMPTZ:
        return pd.to_datetime(pd.Series(values, dtype=object), utc=True).dt.as_unit("us")
    if oid == _BOOL:
        if any(v is None for v in values):
            return pd.array(values, dtype="boolean")
        return np.array(values, dtype=bool)
    if oid in _TEXT_TYPES and not empty:
        return pd.array(values, dtype="str")
    return pd.array(values, dtype=object)


def _frame(description, rows: list[tuple]) -> pd.DataFrame:
    """A DataFrame of a result (names kept, repeated names too; columns typed by _column)."""
    names = [d.name for d in description]
    empty = not rows
    columns = list(zip(*rows)) if rows else [()] * len(names)
    frame = pd.DataFrame({i: _column(list(values), d.type_code, empty)
                          for i, (values, d) in enumerate(zip(columns, description))})
    frame.columns = names
    return frame


# -- frames in -----------------------------------------------------------------------------------
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def _arrow(frame) -> pa.Table:
    """frame (pandas or Arrow) as an Arrow table ready for COPY: zoned timestamps as naive
    UTC (a TIMESTAMP column would drop the zone, not convert it), dictionaries as their
    values, no empty chunks."""
    table = frame if isinstance(frame, pa.Table) else pa.Table.from_pandas(
        frame, preserve_index=False)
    for i, field in enumerate(table.schema):
        column = table.column(i)
        # pyarrow 26's CSV writer writes NUL bytes for a column whose first chunk is empty
        # (a frame concatenated from an empty part, e.g. end of day's fee events); COPY then
        # refuses the text. Dropping the empty chunks copies nothing.
        if column.num_chunks > 1 and any(len(c) == 0 for c in column.chunks):
            column = pa.chunked_array([c for c in column.chunks if len(c)], type=column.type)
        if pa.types.is_dictionary(field.type):
            column = pc.cast(column, field.type.value_type)
        if pa.types.is_timestamp(column.type) and column.type.tz is not None:
            column = pc.cast(column, pa.timestamp(column.type.unit, tz="UTC")).cast(
                pa.timestamp(column.type.unit))
        if column is not table.column(i):
            table = table.set_column(i, field.name, column)
    return table


def _sql_type(arrow_type: pa.DataType) -> str:
    """The PostgreSQL column type for an Arrow type (a scanned frame's temporary table)."""
    t = arrow_type
    if pa.types.is_boolean(t):
        return "BOOLEAN"
    if pa.types.is_int8(t) or pa.types.is_int16(t) or pa.types.is_uint8(t):
        return "SMALLINT"
    if pa.types.is_int32(t) or pa.types.is_uint16(t):
        return "INTEGER"
    if pa.types.is_int64(t) or pa.types.is_uint32(t):
        return "BIGINT"
    if pa.types.is_uint64(t):
        return "NUMERIC(20, 0)"
    if pa.types.is_float32(t):
        return "REAL"
    if pa.types.is_floating(t):
        return "DOUBLE PRECISION"
    if pa.types.is_decimal(t):
        return f"NUMERIC({t.precision}, {t.scale})"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_null(t):
        return "TEXT"
    if pa.types.is_date(t):
        return "DATE"
    if pa.types.is_timestamp(t):
        return "TIMESTAMP"
    if pa.types.is_time(t):
        return "TIME"
    raise TypeError(f"no PostgreSQL column type for a frame column of Arrow type {t}")


def _column_name(name) -> str:
    """A frame column's name in SQL: quoted; a plain name in lower case, so that unquoted
    references in any case find it (PostgreSQL folds them, as DuckDB ignores case)."""
    name = str(name)
    if _IDENTIFIER.match(name):
        return f'"{name.lower()}"'
    return '"' + name.replace('"', '""') + '"'


def _copy_in(cur, target: str, table: pa.Table) -> None:
    """COPY `table`'s rows into `target` ("name (columns)") as CSV written by Arrow.

    CSV because Arrow writes it in C++: 100,000 posting-like rows (five BIGINT/TIMESTAMP
    columns and a text) took 0.25 s this way (0.03 s of it Arrow and CSV), against 0.34 s for
    psycopg's binary COPY fed by write_row, 0.20 s of which is making Python rows (PostgreSQL
    15, durable, 2 shared cores, medians of 5). Arrow quotes every string, so an empty string
    stays '' and only an unquoted empty field is NULL, as COPY's CSV format reads it."""
    if table.num_rows == 0:
        return
    out = io.BytesIO()
    pacsv.write_csv(table, out, pacsv.WriteOptions(include_header=False))
    with cur.copy(f"COPY {target} FROM STDIN (FORMAT csv)") as copy:
        copy.write(out.getbuffer())


_SEQUENCE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*\Z")

# The writer lock of every process on one database (a fixed advisory lock key; db.py's
# migration lock is another key), and the sequence each exclusive unit of work ticks.
WRITER_LOCK_KEY = 7089075474165619060
WRITER_CLOCK = "bankms_writer_clock"
# Ticked only by exclusive units of work (every job but a posting batch): a posting batch that
# finds it moved since its engine last looked knows that another process ran such a job (end of
# day, a setting) and reads again what the writer keeps in memory (the business date).
CALLS_CLOCK = "bankms_calls_clock"
# One round trip: the lock, then the ticks (a multi-statement query runs in order).
_LOCK_AND_TICK = (f"SELECT pg_advisory_lock({WRITER_LOCK_KEY}); "
                  f"SELECT nextval('{WRITER_CLOCK}'), nextval('{CALLS_CLOCK}')")
_UNLOCK = f"SELECT pg_advisory_unlock({WRITER_LOCK_KEY})"
# A posting batch holds the writer lock shared (writer lanes: batches of several processes at
# once, exclusive jobs alone), ticks the writer clock (its NOTIFY payload) and reads CALLS_CLOCK.
_LOCK_SHARED = (f"SELECT pg_advisory_lock_shared({WRITER_LOCK_KEY}); "
                f"SELECT nextval('{WRITER_CLOCK}'), last_value FROM {CALLS_CLOCK}")
_UNLOCK_SHARED = f"SELECT pg_advisory_unlock_shared({WRITER_LOCK_KEY})"
# Writer lanes (issue 14): each writer session holds pg_try_advisory_lock(LANE_BASE + n) for the
# first free n in 1..LANES_MAX for its whole life (writer_session), and sets bankms.lane = n, which
# the lane columns of transactions and audit_log take as their default (db.py): every row the
# session writes carries its lane and chains after that lane's previous row (store/chains.py).
# Lane 0 is for rows written outside writer sessions (the chain's start at open) and DuckDB.
LANE_BASE = 7089075474165619100
LANES_MAX = 64
# Gives back a job's lock (job_lock), with its key.
_JOB_UNLOCK = "SELECT pg_advisory_unlock({key})"
# The channel on which exclusive units of work announce their commits (module docstring).
CHANNEL = "bankms_changed"
# Jobs that must run in one process at a time (job_lock), each with an advisory lock key of
# its own beside the writer's and the migration's.
JOB_LOCK_KEYS = {"end_of_day": 7089075474165619061, "first_start": 5514029871330417713}
_KINDS = ("post", "call")
_TABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?\Z")


# -- readers and units of work ------------------------------------------------------------------
class PostgresReader:
    """Queries through one psycopg connection (a snapshot's, a unit of work's)."""

    dialect = POSTGRES
    lane = 0

    def __init__(self, conn: psycopg.Connection):
        # The driver's connection: for code inside store/ only (contract test).
        self.conn = conn

    def _run(self, sql, params):
        """A cursor after running one statement; port errors where the map names them."""
        text, bound = _query(sql, params)
        cur = self.conn.cursor()
        try:
            cur.execute(text, bound)
        except psycopg.Error as exc:
            cur.close()
            mapped = postgres_error(exc)
            if mapped is None:
                raise
            raise mapped from exc
        return cur

    def execute(self, sql, params=None) -> None:
        """Run one statement; returns None (port.UnitOfWork.execute)."""
        self._run(sql, params).close()

    def fetchall(self, sql, params=None) -> list[tuple]:
        with self._run(sql, params) as cur:
            return cur.fetchall() if cur.description is not None else []

    def fetchone(self, sql, params=None) -> tuple | None:
        with self._run(sql, params) as cur:
            return cur.fetchone() if cur.description is not None else None

    def fetch_df(self, sql, params=None) -> pd.DataFrame:
        with self._run(sql, params) as cur:
            if cur.description is None:
                return pd.DataFrame()
            return _frame(cur.description, cur.fetchall())

    def read_columns(self, sql, params=None) -> dict:
        """{column name: tuple of values} of one query (plain rows, no DataFrame)."""
        with self._run(sql, params) as cur:
            rows = cur.fetchall()
            names = [d.name for d in cur.description]
        return dict(zip(names, zip(*rows))) if rows else {n: () for n in names}

    # port.Reader's name for it (the engine's read_columns reads through a thread's reader).
    fetch_columns = read_columns


class PostgresUnitOfWork(CommitRules, PostgresReader):
    """A PostgreSQL transaction that rolls back unless `commit()` is called (port.UnitOfWork).

    PostgreSQL, like DuckDB, answers COMMIT after a failed statement with a silent ROLLBACK
    (the command tag says so, psycopg raises nothing), so this class remembers any failure and
    refuses to report a commit afterwards. psycopg errors leaving it come out as port errors
    where the map names them (postgres_error)."""

    _ISOLATION = {"serializable": "SERIALIZABLE", "read_committed": "READ COMMITTED"}

    def __init__(self, engine: "PostgresEngine", isolation: str, before_commit=None,
                 conn: psycopg.Connection | None = None, exclusive: bool = False,
                 announce: str | None = None, shared: bool = False):
        if isolation not in self._ISOLATION:
            raise ValueError(f"isolation must be one of {sorted(self._ISOLATION)}: {isolation!r}")
        self._engine = engine
        self._isolation = self._ISOLATION[isolation]
        # A connection given by the caller (the writer's session) is used and kept by it;
        # else one is taken at enter and given back at the end.
        self._given = conn
        self.conn = None
        self._own = False
        self._failed = False
        self._done = False
        self.committed = False
        # Called with this unit of work just before COMMIT (as DuckDB's writer seals chains).
        self._before_commit = before_commit
        self._after_commit: list[Callable[[], None]] | None = None
        # The writer lock (module docstring): taken before BEGIN, given back after the end.
        self._exclusive = exclusive
        # Or held shared (a posting batch in a writer lane): then `shared` is True and the
        # batch locks the rows it changes itself (ledger.BatchPoster).
        self.shared = shared and not exclusive
        self._locked = False
        self.others_wrote = False
        # When a posting batch locked its account rows (note_rows_locked), for benchmarks.
        self._rows_locked_at: float | None = None
        # What COMMIT announces to other processes' listeners (only an exclusive unit of work
        # announces: its clock value orders it among all writers' units).
        if announce is not None and announce not in _KINDS:
            raise ValueError(f"announce must be one of {_KINDS} or None: {announce!r}")
        self._announce = announce if (exclusive or self.shared) else None
        self._clock_value: int | None = None
        # Whether this transaction has its xid (take_ids).
        self._has_xid = False

    def __enter__(self):
        if self._given is not None:
            self.conn, self._own = self._given, False
        else:
            self.conn, self._own = self._engine._take_connection()
        try:
            if self._exclusive:
                self._lock(_LOCK_AND_TICK, self._engine._tick)
            elif self.shared:
                self._lock(_LOCK_SHARED, self._engine._shared_tick)
            self.conn.execute(f"BEGIN ISOLATION LEVEL {self._isolation}")
        except psycopg.Error as exc:
            self._unlock()
            self._engine._give_back(self.conn, self._own)
            raise map_error(exc) from exc
        return self

    def _lock(self, lock_sql, tick) -> None:
        """Take the writer lock and read the clocks (`lock_sql`, one multi-statement query);
        `tick(clock value, seconds waited, calls clock)` says whether others wrote since."""
        asked = time.perf_counter()
        # Held from here on for _unlock: the lock may be granted and the statement after it
        # fail (a cancel), and a session lock outlives the error.
        self._locked = True
        cur = self.conn.execute(lock_sql)
        cur.nextset()
        self._clock_value, calls = cur.fetchone()
        self.others_wrote = tick(self._clock_value, time.perf_counter() - asked, calls)

    def _unlock(self) -> None:
        """Give the writer lock back (after COMMIT or ROLLBACK). Unless the server says it was
        given back, the connection is closed (the server then drops its session's locks):
        one that still looked usable would otherwise go on holding the lock, as a spare or
        as its thread's connection, and every other process's writer would wait forever."""
        if self._locked:
            self._locked = False
            self._engine._unlock_or_close(self.conn,
                                          _UNLOCK_SHARED if self.shared else _UNLOCK)

    def _run(self, sql, params):
        try:
            return super()._run(sql, params)
        except Exception:
            self._failed = True
            raise

    # fetchall, fetchone, fetch_df come from PostgresReader, through _run above.

    @contextlib.contextmanager
    def scan(self, name: str, frame):
        """Make frame (pandas or Arrow) readable as table `name` until the block ends: a
        temporary table (ON COMMIT DROP) typed from the frame's Arrow types, filled by COPY,
        dropped at the end of the block. When the block fails its own error is raised; the
        table then goes with the transaction (a failed statement refuses the DROP)."""
        if not _IDENTIFIER.match(name):
            raise ValueError(f"not a plain table name for a scan: {name!r}")
        table = _arrow(frame)
        columns = ", ".join(f"{_column_name(f.name)} {_sql_type(f.type)}" for f in table.schema)
        self.execute(f"CREATE TEMPORARY TABLE {name} ({columns}) ON COMMIT DROP")
        self._copy(name, table)
        try:
            yield name
        except BaseException:
            with contextlib.suppress(Exception):
                self.execute(f"DROP TABLE IF EXISTS {name}")
            raise
        self.execute(f"DROP TABLE IF EXISTS {name}")

    def _copy(self, target: str, table: pa.Table) -> None:
        try:
            with self.conn.cursor() as cur:
                _copy_in(cur, target, table)
        except psycopg.Error as exc:
            self._failed = True
            mapped = postgres_error(exc)
            if mapped is None:
                raise
            raise mapped from exc
        except Exception:
            self._failed = True
            raise

    def load(self, table: str, frame, *, columns: Sequence[str] | None = None) -> int:
        """Append every row of frame (pandas or Arrow) to table with COPY FROM STDIN;
        `columns` names the table columns, filled from the frame's columns of those names
        (default: all of the frame's, by name). Returns the number of rows."""
        if not _TABLE_NAME.match(table):
            raise ValueError(f"not a plain table name: {table!r}")
        data = _arrow(frame)
        names = list(columns) if columns is not None else list(data.column_names)
        data = data.select(names)
        cols = ", ".join('"' + str(c).replace('"', '""') + '"' for c in names)
        self._copy(f"{table} ({cols})", data)
        return data.num_rows

    def take_ids(self, sequence: str, n: int) -> IdBlock:
        """n new ids from PostgreSQL sequence `sequence`, ascending (gaps allowed). Every id
        bankms writes on PostgreSQL comes this way, the ledger's too (db.LEDGER_SEQUENCES):
        several processes' writers take them at once.

        The rule for writers of the append-only tables (the read model's watermark relies on
        it, readmodel.py, _WATERMARK_SQL): a transaction takes ids from a sequence only once it
        has a transaction id of its own, so that an id handed out before some moment belongs
        to a transaction whose xid was assigned before that moment. nextval alone does not
        assign one (it writes WAL, and so takes an xid, only every 32nd call), hence the
        pg_current_xact_id() first (once per unit of work: an xid, once assigned, stays): a
        no-op when the unit of work already wrote, else one cheap statement that assigns the
        xid. A separate statement rather than folded into the nextval one, so that the order
        does not depend on how a plan evaluates its expressions. The ids are written only by
        the transaction that took them (a retry takes new ones), and the sequences must have
        CACHE 1 (the default): a session's cached values, like ids kept for a later
        transaction, are used by transactions that may begin after any moment one looks, and
        no watermark could then be trusted."""
        if not _SEQUENCE_NAME.match(sequence):
            raise ValueError(f"not a sequence name: {sequence!r}")
        if not self._has_xid:
            self.fetchall("SELECT pg_current_xact_id()")
            self._has_xid = True
        rows = self.fetchall(
            f"SELECT nextval('{sequence}') FROM generate_series(1, ?)", [int(n)])
        self._engine.ids_taken[sequence] += int(n)
        return IdBlock(np.array(sorted(r[0] for r in rows), dtype=np.int64))

    def take_ids_many(self, counts: Mapping[str, int]) -> dict:
        """{sequence: IdBlock of n new ids} for each (sequence, n) of `counts`, as take_ids
        gives them (the xid first), in one round trip: a posting batch's blocks (ledger.py)."""
        for sequence in counts:
            if not _SEQUENCE_NAME.match(sequence):
                raise ValueError(f"not a sequence name: {sequence!r}")
        names = list(counts)
        # Ints and checked names only: written inline, so that the xid statement and the
        # takes go as one multi-statement query, run in order.
        takes = ", ".join(
            f"(SELECT array_agg(nextval('{s}')) FROM generate_series(1, {int(counts[s])}))"
            for s in names)
        sql = ("SELECT pg_current_xact_id(); " if not self._has_xid else "") + f"SELECT {takes}"
        with self._run(sql, None) as cur:
            if not self._has_xid:
                cur.nextset()
            row = cur.fetchone()
        self._has_xid = True
        out = {}
        for sequence, ids in zip(names, row):
            self._engine.ids_taken[sequence] += int(counts[sequence])
            out[sequence] = IdBlock(np.array(sorted(ids or ()), dtype=np.int64))
        return out

    # on_commit, mark_failed and commit come from port.CommitRules.

    def _send_commit(self) -> None:
        # NOTIFY and COMMIT in one round trip (a multi-statement simple query): the
        # notification is queued in this transaction and delivered only if COMMIT succeeds.
        # The payload holds only hex, digits and a fixed word, so it is written inline.
        commit = "COMMIT"
        if self._announce is not None:
            commit = (f"NOTIFY {CHANNEL}, '{self._engine.token} {self._clock_value} "
                      f"{self._announce}'; COMMIT")
        try:
            self.conn.execute(commit)
        except psycopg.Error as exc:
            # A serializable transaction may be refused at COMMIT (40001): nothing was saved.
            self._failed = True
            self._finish()
            raise map_error(exc) from exc
        self._finish()

    def rollback(self) -> None:
        if not self._done:
            self._done = True
            with contextlib.suppress(psycopg.Error):
                self.conn.execute("ROLLBACK")
            self._finish()

    def note_rows_locked(self) -> None:
        """The batch's account rows are locked from now to the end of this unit of work:
        the time is summed per engine (row_hold_s, row_holds) at its end, for benchmarks."""
        if self._rows_locked_at is None:
            self._rows_locked_at = time.perf_counter()

    def _finish(self) -> None:
        self._done = True
        if self._rows_locked_at is not None:
            self._engine.row_hold_s += time.perf_counter() - self._rows_locked_at
            self._engine.row_holds += 1
            self._rows_locked_at = None
        self._unlock()
        if self.conn is not None:
            self._engine._give_back(self.conn, self._own)

    def __exit__(self, exc_type, exc, tb):
        if not self._done:
            self.rollback()
        if exc is not None and isinstance(exc, psycopg.Error):
            mapped = postgres_error(exc)
            if mapped is not None:
                raise mapped from exc
        return False


# Spare connections kept for units of work and snapshots that cannot use their thread's.
_SPARES_MAX = 8


class PostgresEngine:
    """port.Engine over one PostgreSQL database, opened (and migrated: db.migrate) here.

    `url` is a libpq URL or connection string ('postgresql://user@host/db',
    'postgresql:///db?host=/run/postgresql'). Raises StoreUnavailable when no server answers."""

    name = "postgresql"
    dialect = POSTGRES
    lane = 0
    # Several processes, each with its writer, may open one database (module docstring).
    shared_writers = True

    def __init__(self, url: str, *, connect_timeout: int = 10):
        self.url = url
        self._connect_timeout = connect_timeout
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[psycopg.Connection] = []
        self._spares: list[psycopg.Connection] = []
        # (thread, its connection) for each thread's own connection (_thread_connection), so
        # that those of ended threads are taken back (_reclaim).
        self._thread_connections: list[tuple[weakref.ref, psycopg.Connection]] = []
        self._closed = False
        # Ids this engine's units of work have taken so far, per sequence (port.Engine.ids_taken).
        self.ids_taken: collections.Counter = collections.Counter()
        # Seconds posting batches held their account rows locked (lock to COMMIT or
        # rollback), and how many batches: benchmarks/bench_pg_processes.py reports the mean.
        self.row_hold_s = 0.0
        self.row_holds = 0
        # The last WRITER_CLOCK value this engine's exclusive units of work took (None: none
        # yet, so the first one reads everything again).
        self._clock: int | None = None
        # The last CALLS_CLOCK value this engine saw (None: none yet).
        self._calls: int | None = None
        # Exclusive units of work so far and the seconds they spent taking the lock (the
        # round trip included): what the one lock costs, for benchmarks/bench_pg_processes.py.
        self.exclusive_units = 0
        self.shared_units = 0
        self.lock_wait_s = 0.0
        # Names this engine in its notifications, so that its listeners skip its own commits
        # (module docstring); random, so that two engines in one process differ.
        self.token = uuid.uuid4().hex[:16]
        self._listeners: list[PostgresListener] = []
        # The clocks are made by the migration, under its lock (CREATE ... IF NOT EXISTS is not
        # safe against a second process creating the same sequence at the same moment), and
        # only when it runs: an open of a current schema runs no DDL (db.SCHEMA_MARK).
        db.migrate(_QmarkConnection(self._thread_connection()), engine=self.name,
                   extra=tuple(f"CREATE SEQUENCE IF NOT EXISTS {clock}"
                               for clock in (WRITER_CLOCK, CALLS_CLOCK)))

    def _shared_tick(self, value: int, waited_s: float, calls: int) -> bool:
        """Record what a posting batch under the shared lock took and read: True when an
        exclusive unit of work of another process (or none seen yet) ticked CALLS_CLOCK since
        this engine last looked, so that the batch reads memory again (store/writer.py)."""
        with self._lock:
            others = self._calls is None or calls != self._calls
            self._calls = calls
            self._clock = value
            self.shared_units += 1
            self.lock_wait_s += waited_s
        return others

    def _tick(self, value: int, waited_s: float, calls: int | None = None) -> bool:
        """Record the WRITER_CLOCK value an exclusive unit of work took after waiting
        `waited_s` for the lock; True unless it follows the one taken before (then no other
        process ticked in between)."""
        with self._lock:
            others = self._clock is None or value != self._clock + 1
            self._clock = value
            if calls is not None:
                self._calls = calls
            self.exclusive_units += 1
            self.lock_wait_s += waited_s
        return others

    # -- connections -------------------------------------------------------------------------
    def _connect(self) -> psycopg.Connection:
        if self._closed:
            raise StoreUnavailable("this PostgreSQL engine is closed")
        try:
            conn = psycopg.connect(self.url, autocommit=True,
                                   connect_timeout=self._connect_timeout)
            conn.execute("SET TimeZone TO 'UTC'")
        except psycopg.Error as exc:
            raise map_error(exc) from exc
        with self._lock:
            self._connections.append(conn)
        return conn

    def _thread_connection(self) -> psycopg.Connection:
        """This thread's connection (opened again when it was lost): the connection of a thread
        that has ended when one is idle, else a new one."""
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed or conn.broken:
            conn = self._reclaim() or self._connect()
            self._local.conn = conn
            with self._lock:
                self._thread_connections.append((weakref.ref(threading.current_thread()), conn))
        return conn

    def _reclaim(self) -> psycopg.Connection | None:
        """Take back the connections of threads that have ended: one idle one is returned for
        reuse, the others are closed. Streamlit runs every script run on a thread of its own,
        so without this a serving process kept one server connection for every page load it
        ever served (30 reruns of one page: 30 more connections) until max_connections
        refused everyone. With it, this engine holds about one connection per live thread."""
        live, ended = [], []
        with self._lock:
            for ref, conn in self._thread_connections:
                thread = ref()
                (live if thread is not None and thread.is_alive() else ended).append((ref, conn))
            self._thread_connections = live
        reused = None
        for _, conn in ended:
            if (reused is None and not conn.closed and not conn.broken
                    and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE):
                reused = conn
                continue
            with self._lock:
                with contextlib.suppress(ValueError):
                    self._connections.remove(conn)
            with contextlib.suppress(Exception):
                conn.close()
        return reused

    def _take_connection(self, *, own: bool = False) -> tuple[psycopg.Connection, bool]:
        """(connection, own): this thread's when it is idle (and own is False), else a spare
        or a new one."""
        if not own:
            conn = self._thread_connection()
            if conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
                return conn, False
        with self._lock:
            while self._spares:
                spare = self._spares.pop()
                if not spare.closed and not spare.broken:
                    return spare, True
        return self._connect(), True

    def _give_back(self, conn: psycopg.Connection, own: bool) -> None:
        if not own:
            return
        idle = (not conn.closed and not conn.broken
                and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE)
        with self._lock:
            if idle and not self._closed and len(self._spares) < _SPARES_MAX:
                self._spares.append(conn)
                return
            with contextlib.suppress(ValueError):
                self._connections.remove(conn)
        conn.close()

    def _unlock_or_close(self, conn: psycopg.Connection, unlock: str) -> None:
        """Run `unlock` (a pg_advisory_unlock) on conn; unless it answers true, close conn
        and forget it (_discard): a session advisory lock lives as long as its connection,
        and one left held on a connection that goes back to the spares, or stays its thread's,
        would lock every other process out."""
        released = False
        with contextlib.suppress(psycopg.Error):
            released = conn.execute(unlock).fetchone()[0] is True
        if not released:
            self._discard(conn)

    def _discard(self, conn: psycopg.Connection) -> None:
        """Close conn and drop it from every list of this engine (connections, spares, the
        threads' connections); the thread that used it opens a new one when it next reads."""
        with self._lock:
            with contextlib.suppress(ValueError):
                self._connections.remove(conn)
            self._spares = [c for c in self._spares if c is not conn]
            self._thread_connections = [(r, c) for r, c in self._thread_connections
                                        if c is not conn]
        if getattr(self._local, "conn", None) is conn:
            self._local.conn = None
        with contextlib.suppress(Exception):
            conn.close()

    # -- the single writer's wiring (store/writer.py) -----------------------------------------
    def set_counters(self, take: Mapping[str, Callable[[int], int]]) -> None:
        """Refused: on PostgreSQL every id comes from its sequence (take_ids). Counters in one
        process's memory cannot serve several processes' writers posting at once, nor give the
        read model ids it can trust (readmodel.py, above LEDGER_SEQUENCES)."""
        raise NotImplementedError("PostgreSQL takes every id from its sequence (take_ids)")

    def writer_session(self) -> psycopg.Connection:
        """A connection of the writer's own (autocommit between its units of work, session
        TimeZone UTC): every unit of work of the writer runs on it (unit_of_work(cursor=...))
        and so does its batch writer. Closed by the writer, or by close().

        The session takes a writer lane (LANE_BASE): the first free n in 1..LANES_MAX, the
        lane this engine had before first when the writer opens a new session (a lost
        connection gave its lock back with it), and holds it for its life; `lane` is then n.
        StoreUnavailable when every lane is taken."""
        conn = self._connect()
        order = list(range(1, LANES_MAX + 1))
        if self.lane:
            order.remove(self.lane)
            order.insert(0, self.lane)
        try:
            for n in order:
                if conn.execute(f"SELECT pg_try_advisory_lock({LANE_BASE + n})").fetchone()[0]:
                    # A session setting, outside any transaction: it stays for the session.
                    conn.execute(f"SET bankms.lane = '{n}'")
                    self.lane = n
                    return conn
        except psycopg.Error as exc:
            self._discard(conn)
            raise map_error(exc) from exc
        self._discard(conn)
        raise StoreUnavailable(f"all {LANES_MAX} writer lanes are taken")

    def batch_writer(self, session: psycopg.Connection) -> "PostgresBatchWriter":
        """The engine half of a posting batch on the writer's session (PostgresBatchWriter)."""
        return PostgresBatchWriter(session)

    # -- units of work and reads -------------------------------------------------------------
    def unit_of_work(self, *, isolation: str = "serializable", cursor=None,
                     before_commit=None, exclusive: bool = False,
                     announce: str | None = None, shared: bool = False) -> PostgresUnitOfWork:
        """A unit of work (a context manager: BEGIN ISOLATION LEVEL ... on enter; ROLLBACK on
        exit unless committed). isolation: "serializable" or "read_committed". `cursor`: a
        connection to run on (the writer's session, writer_session), kept open after.
        `exclusive`: hold the writer lock and tick the clocks; `shared` (a posting batch in a
        writer lane, store/writer.py): hold it shared, tick the writer clock and read
        CALLS_CLOCK; `announce` ("post", "call"), with either: NOTIFY other processes'
        listeners at COMMIT (module docstring)."""
        return PostgresUnitOfWork(self, isolation, before_commit=before_commit, conn=cursor,
                                  exclusive=exclusive, announce=announce, shared=shared)

    def listen(self, callback: Callable[[Change], None]) -> "PostgresListener":
        """Start a PostgresListener calling callback(Change) for other engines' commits (the
        module docstring); LISTEN has run when this returns. StoreUnavailable when no server
        answers. Stopped by its stop() or by close()."""
        if self._closed:
            raise StoreUnavailable("this PostgreSQL engine is closed")
        listener = PostgresListener(self, callback)
        with self._lock:
            self._listeners.append(listener)
        return listener

    @contextlib.contextmanager
    def job_lock(self, job: str):
        """port.Engine.job_lock: True when this process now runs `job` alone, False when
        another process (or another thread here) holds it. A session-level advisory lock on a
        connection of its own, held until the block ends; a process that dies mid-job loses
        its connection and so the lock, and the next one can take over."""
        key = JOB_LOCK_KEYS[job]
        conn, own = self._take_connection(own=True)
        try:
            held = conn.execute(f"SELECT pg_try_advisory_lock({key})").fetchone()[0]
        except psycopg.Error as exc:
            self._give_back(conn, own)
            raise map_error(exc) from exc
        try:
            yield bool(held)
        finally:
            if held:
                self._unlock_or_close(conn, _JOB_UNLOCK.format(key=key))
            self._give_back(conn, own)

    def read(self, sql, params=None) -> list[tuple]:
        """Rows of one query (one statement, one snapshot) on this thread's connection."""
        return PostgresReader(self._thread_connection()).fetchall(sql, params)

    def read_df(self, sql, params=None) -> pd.DataFrame:
        return PostgresReader(self._thread_connection()).fetch_df(sql, params)

    def read_columns(self, sql, params=None) -> dict:
        """{column name: tuple of values} of one query (plain rows, no DataFrame)."""
        return PostgresReader(self._thread_connection()).read_columns(sql, params)

    @contextlib.contextmanager
    def snapshot(self):
        """A Reader inside one REPEATABLE READ READ ONLY transaction on a connection of its
        own (as DuckDB's snapshot has a cursor of its own: the thread's reads stay outside it):
        every query through it sees the state fixed by its first query. Rolled back on exit."""
        conn, own = self._take_connection(own=True)
        try:
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        except psycopg.Error as exc:
            self._give_back(conn, own)
            raise map_error(exc) from exc
        try:
            yield PostgresReader(conn)
        finally:
            with contextlib.suppress(psycopg.Error):
                conn.execute("ROLLBACK")
            self._give_back(conn, own)

    def close(self) -> None:
        """Close every connection this engine opened; further calls fail (StoreUnavailable)."""
        with self._lock:
            listeners, self._listeners = self._listeners, []
        # Before the connections close: stop() wakes its listener through one of them.
        for listener in listeners:
            listener.stop()
        with self._lock:
            self._closed = True
            connections, self._connections, self._spares = self._connections, [], []
        for conn in connections:
            with contextlib.suppress(Exception):
                conn.close()


_log = logging.getLogger(__name__)


class PostgresListener:
    """A thread that hears other engines' commits on CHANNEL (port.Engine.listen; module
    docstring) and passes each to `callback` as a port.Change, in the order PostgreSQL
    delivers them (commit order). Its own engine's notifications are skipped by token.

    The connection is its own (not in the engine's list: only this thread touches it). It waits
    at most POLL_S in notifies() before looking at its stop flag; stop() also wakes it at once
    with a notification of its own. A dropped connection is replaced, at most one attempt per
    RETRY_S; once LISTEN runs again the callback gets Change("call", lost=True). A failing
    callback is logged and the listener goes on. `backend_pid` (the server process of the
    current connection), `reconnects`, `heard` and `last_clock` are there for tests,
    benchmarks and monitoring."""

    POLL_S = 0.5
    RETRY_S = (0.05, 0.1, 0.2, 0.5, 1.0)

    def __init__(self, engine: PostgresEngine, callback: Callable[[Change], None]):
        self._engine = engine
        self._callback = callback
        self._stopping = threading.Event()
        self.reconnects = 0
        # Changes passed to the callback so far, and the writer clock value of the last one.
        self.heard = 0
        self.last_clock: int | None = None
        self.backend_pid: int | None = None
        self._conn: psycopg.Connection | None = self._connect()
        self._thread = threading.Thread(target=self._run, name="bankms-listener", daemon=True)
        self._thread.start()

    def _connect(self) -> psycopg.Connection:
        try:
            conn = psycopg.connect(self._engine.url, autocommit=True,
                                   connect_timeout=self._engine._connect_timeout)
            conn.execute(f"LISTEN {CHANNEL}")
        except psycopg.Error as exc:
            raise map_error(exc) from exc
        self.backend_pid = conn.info.backend_pid
        return conn

    def _run(self) -> None:
        retry = 0
        while not self._stopping.is_set():
            conn = self._conn
            if conn is None:
                try:
                    conn = self._connect()
                except StoreError:
                    self._stopping.wait(self.RETRY_S[min(retry, len(self.RETRY_S) - 1)])
                    retry += 1
                    continue
                retry = 0
                self._conn = conn
                # Whatever was committed while no connection listened went unheard.
                self._deliver(Change("call", lost=True))
                self.reconnects += 1
                continue
            try:
                for note in conn.notifies(timeout=self.POLL_S):
                    if self._stopping.is_set():
                        break
                    self._heard(note.payload)
            except Exception:  # noqa: BLE001 - whatever broke the connection, listen again
                # The server ended the session or the network dropped: listen again.
                with contextlib.suppress(Exception):
                    conn.close()
                self._conn = None
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def _heard(self, payload: str) -> None:
        parts = payload.split(" ")
        if len(parts) != 3 or parts[0] == self._engine.token or parts[2] not in _KINDS:
            return
        try:
            clock = int(parts[1])
        except ValueError:
            clock = None
        self._deliver(Change(parts[2], clock))

    def _deliver(self, change: Change) -> None:
        try:
            self._callback(change)
        except Exception:  # noqa: BLE001 - the listener must outlive one failed callback
            _log.exception("a listener callback failed on %r", change)
        # After the callback: who sees these move knows that it has run.
        self.heard += 1
        if change.clock is not None:
            self.last_clock = change.clock

    def stop(self) -> None:
        """End the thread (waking it with a notification of its own engine's token, which it
        skips) and close its connection. The callback is not called after this returns (unless
        called from the callback itself). Idempotent."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        # Through this thread's connection of the engine (none when the engine is closed:
        # then the listener sees the flag within POLL_S).
        with contextlib.suppress(Exception):
            self._engine._thread_connection().execute(
                f"NOTIFY {CHANNEL}, '{self._engine.token} 0 stop'")
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=self.POLL_S * 4)


class _QmarkConnection:
    """A psycopg connection in the shape db.migrate expects of DuckDB's: execute(sql with `?`,
    params) -> a cursor with fetchone/fetchall."""

    def __init__(self, conn: psycopg.Connection):
        self._conn = conn

    def execute(self, sql, params=None):
        text, bound = _query(sql, params)
        try:
            return self._conn.execute(text, bound)
        except psycopg.Error as exc:
            mapped = postgres_error(exc)
            if mapped is None:
                raise
            raise mapped from exc


@contextlib.contextmanager
def _port_errors():
    """Raise a psycopg error of the block as the port's error where the map names one."""
    try:
        yield
    except psycopg.Error as exc:
        mapped = postgres_error(exc)
        if mapped is None:
            raise
        raise mapped from exc


class PostgresBatchWriter:
    """The PostgreSQL half of a posting batch's write (DuckDB's is duckdb.BatchAppenders), on
    the writer's session inside the writer's unit of work: one set-based statement per table,
    the rows sent as one array per column (INSERT ... SELECT FROM unnest(...), and UPDATE
    accounts ... FROM unnest(...) for the balances), so a batch of any size costs five round
    trips. Rows come in each table's column order, as appenders take them. A repeated
    idempotency key raises DuplicateKey (the writer then reruns the batch looking keys up).

    The arrays go in binary (`%b`): psycopg writes a text array element by element in Python,
    with a regular expression per element to decide on quotes and another to escape them (the
    audit row's JSON, every timestamp), which cost about 190 microseconds of CPU a transfer,
    the writer's largest single cost; binary arrays cost about 45 (session 32,
    benchmarks/lanes_results.md). The server gets the same values: each CAST names the
    column's type, binary text is the same UTF-8, and a naive datetime is the same
    microseconds. A column whose values are all NULL (or none) psycopg still sends as a text
    array of unknown type, as before."""

    # Tables in the order write() fills them, and the balance columns it updates.
    _TABLES = ("transactions", "postings", "idempotency_keys", "audit_log")
    _BALANCE_COLUMNS = ("id", "balance_cents", "last_activity_at", "last_activity_date")

    def __init__(self, conn: psycopg.Connection):
        self._conn = conn
        self._inserts: dict[str, tuple[str, int]] = {}
        self._update: str | None = None

    def _types(self, table: str) -> list[tuple[str, str]]:
        """(column, type) of `table` in column order, the types as PostgreSQL names them."""
        return self._conn.execute(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = CAST(%s AS regclass) AND attnum > 0 AND NOT attisdropped "
            "ORDER BY attnum", [table]).fetchall()

    def _insert(self, table: str) -> tuple[str, int]:
        # Built once per table: the schema does not change while the bank is open.
        built = self._inserts.get(table)
        if built is None:
            columns = self._types(table)
            names = ", ".join(f'"{c}"' for c, _ in columns)
            arrays = ", ".join(f"CAST(%b AS {t}[])" for _, t in columns)
            built = (f"INSERT INTO {table} ({names}) SELECT * FROM unnest({arrays})",
                     len(columns))
            self._inserts[table] = built
        return built

    def _balances_sql(self) -> str:
        if self._update is None:
            types = dict(self._types("accounts"))
            arrays = ", ".join(f"CAST(%b AS {types[c]}[])" for c in self._BALANCE_COLUMNS)
            self._update = (
                "UPDATE accounts SET balance_cents = u.balance_cents, "
                "last_activity_at = u.last_activity_at, "
                "last_activity_date = u.last_activity_date "
                f"FROM unnest({arrays}) AS u({', '.join(self._BALANCE_COLUMNS)}) "
                "WHERE accounts.id = u.id")
        return self._update

    def _run(self, sql: str, rows: list[tuple], width: int) -> None:
        columns = [list(col) for col in zip(*rows)] if rows else [[] for _ in range(width)]
        if len(columns) != width:
            raise ValueError(f"rows of {len(columns)} values for {width} columns")
        with _port_errors():
            self._conn.execute(sql, columns)

    def write(self, tx_rows, posting_rows, key_rows, balance_rows, audit_rows) -> None:
        """Insert each non-empty set of rows, in table order, and set the touched accounts'
        balances and last activity (rows of (id, balance_cents, last_activity_at,
        last_activity_date)). DuplicateKey for a repeated idempotency key."""
        if tx_rows:
            for table, rows in (("transactions", tx_rows), ("postings", posting_rows),
                                ("idempotency_keys", key_rows)):
                if rows:
                    sql, width = self._insert(table)
                    self._run(sql, rows, width)
            if balance_rows:
                self._run(self._balances_sql(), balance_rows, len(self._BALANCE_COLUMNS))
        if audit_rows:
            sql, width = self._insert("audit_log")
            self._run(sql, audit_rows, width)

    def clear(self) -> None:
        """Nothing is buffered between write() calls (each statement runs at once)."""

    # Late locking (ledger.BatchPoster._post_late, writer lanes): a posting batch's rows that
    # need no account lock go first, after a savepoint; then one statement locks the accounts
    # in id order and applies the deltas, answering the locked balances; audit rows come last.
    _SAVEPOINT = "bankms_late"
    _LATE_UPDATE = (
        "UPDATE accounts a SET balance_cents = a.balance_cents + d.delta, "
        "last_activity_at = CASE WHEN d.act THEN CAST(%s AS TIMESTAMP) "
        "ELSE a.last_activity_at END, "
        "last_activity_date = CASE WHEN d.act THEN CAST(%s AS DATE) "
        "ELSE a.last_activity_date END "
        # The subquery locks every row in id order before the UPDATE touches any of them
        # (the order every other locker uses: no deadlock). In READ COMMITTED the SET is
        # evaluated on the newest committed version of each row once it is locked.
        "FROM (SELECT id FROM accounts WHERE id = ANY(CAST(%b AS BIGINT[])) "
        "ORDER BY id FOR UPDATE) AS l "
        "JOIN unnest(CAST(%b AS BIGINT[]), CAST(%b AS BIGINT[]), CAST(%b AS BOOLEAN[])) "
        "AS d(id, delta, act) ON d.id = l.id WHERE a.id = l.id "
        "RETURNING a.id, a.balance_cents, a.holds_cents, a.overdraft_limit_cents, a.status")

    def write_unlocked(self, tx_rows, posting_rows, key_rows) -> None:
        """A savepoint, then the batch's transactions, postings and keys in one pipeline (one
        round trip). DuplicateKey for a repeated idempotency key."""
        statements = []
        for table, rows in (("transactions", tx_rows), ("postings", posting_rows),
                            ("idempotency_keys", key_rows)):
            if rows:
                sql, _ = self._insert(table)
                statements.append((sql, [list(col) for col in zip(*rows)]))
        with _port_errors(), self._conn.pipeline():
            self._conn.execute(f"SAVEPOINT {self._SAVEPOINT}")
            for sql, columns in statements:
                self._conn.execute(sql, columns)

    def lock_and_apply(self, ids, deltas, active, now, day) -> dict:
        """Lock accounts `ids` in id order, add `deltas` to their balances (and set last
        activity to now/day where `active`); {id: (balance after, holds, overdraft limit,
        status)} as locked."""
        with _port_errors():
            rows = self._conn.execute(self._LATE_UPDATE, [now, day, sorted(ids), list(ids),
                                                          list(deltas), list(active)]).fetchall()
        return {r[0]: r[1:] for r in rows}

    def undo_unlocked(self) -> None:
        """Back to the savepoint of write_unlocked: its rows and the account locks taken since
        are gone; the transaction goes on."""
        self._conn.execute(f"ROLLBACK TO SAVEPOINT {self._SAVEPOINT}")
