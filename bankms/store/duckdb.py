"""The DuckDB engine: the storage port (port.py) over one DuckDB file or ':memory:'.

One process owns the file (DuckDB locks it), so one `duckdb` connection is opened per process
and per file; every thread reads through its own cursor (Cursors), and every write goes through
the single writer thread (writer.py), which holds a cursor of its own. The schema and its
migrations live in db.py and run at open. This module also owns the one table that maps
DuckDB's exceptions to the port's (`duckdb_error`), and the appenders of the posting batch.

Note: this module is named like the driver; `import duckdb` below is the driver (absolute
imports), and callers inside bankms import this module as `bankms.store.duckdb`.
"""
from __future__ import annotations

import collections
import contextlib
import itertools
import re
import threading
from collections.abc import Callable, Mapping, Sequence

import duckdb
import numpy as np

from . import db
from .port import (CommitRules, DuplicateKey, IdBlock, NotAStore, NotListening, StoreError,
                   StoreLocked, StoreUnavailable, WriteConflict, map_error, register_error_map)
from .sql import DUCKDB


# -- the one DuckDB error map -------------------------------------------------------------------
def duckdb_error(exc: BaseException) -> StoreError | None:
    """The port error for a DuckDB exception, or None when it is not one the port names.
    Table (tests/test_store_port.py holds one row per case):
      ConstraintException "Duplicate key ..."            -> DuplicateKey (constraint:
          db.REVERSAL_INDEX for a key of reverses_id, the only unique index on that column)
      TransactionException "Conflict on ..."             -> WriteConflict
      IOException "Conflicting lock" / "Could not set lock" -> StoreLocked
      IOException "not a valid DuckDB database file"     -> NotAStore
      ConnectionException                                -> StoreUnavailable
    Other constraint failures (NOT NULL, CHECK) and every other error stay DuckDB's."""
    if not isinstance(exc, duckdb.Error):
        return None
    text = str(exc)
    low = text.lower()
    if isinstance(exc, duckdb.ConstraintException):
        if "duplicate key" in low:
            # DuckDB names the key's column, not the index: 'Duplicate key "reverses_id: 7"'.
            if re.search(r'duplicate key "reverses_id:', low):
                return DuplicateKey(text, constraint=db.REVERSAL_INDEX)
            match = re.search(r"violates (\w+ key|unique) constraint", text)
            return DuplicateKey(text, constraint=match.group(1) if match else None)
        return None
    if isinstance(exc, duckdb.TransactionException):
        return WriteConflict(text) if "conflict" in low else None
    if isinstance(exc, duckdb.IOException):
        if "lock" in low:
            return StoreLocked(text)
        if "not a valid duckdb database" in low:
            return NotAStore(text)
        return None
    if isinstance(exc, duckdb.ConnectionException):
        return StoreUnavailable(text)
    return None


register_error_map(duckdb_error)


def connect(path: str) -> duckdb.DuckDBPyConnection:
    """Open (creating or migrating) the DuckDB file at path; port errors for a locked file or
    one that is not DuckDB."""
    try:
        con = duckdb.connect(path)
    except duckdb.Error as exc:
        raise map_error(exc) from exc
    # DuckDB draws its own progress bar on the terminal during long queries (demo builds,
    # reports); the CLI prints its own progress, and the app has none to show there.
    con.execute("SET enable_progress_bar = false")
    db.migrate(con)
    return con


class Cursors:
    """Hands each thread its own cursor on the one process-wide connection."""

    def __init__(self, con):
        self._con = con
        self._local = threading.local()

    def get(self):
        cur = getattr(self._local, "cur", None)
        if cur is None:
            cur = self._con.cursor()
            self._local.cur = cur
        return cur


# Names for frames registered by load(); unique per process so nested loads never clash.
_LOAD_NAMES = itertools.count()
_SEQUENCE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class DuckDBReader:
    """Queries through one DuckDB cursor (a snapshot's, or a unit of work's)."""

    # The SQL fragments of this engine (store/sql.py): services build their SQL with the
    # dialect of the reader or unit of work at hand, never one bound at import.
    dialect = DUCKDB
    lane = 0

    def __init__(self, cur):
        # The driver's cursor: for code inside store/ only (contract test).
        self.cur = cur

    def execute(self, sql, params=None):
        cur = self.cur
        return cur.execute(sql, params) if params is not None else cur.execute(sql)

    def fetchall(self, sql, params=None) -> list[tuple]:
        return self.execute(sql, params).fetchall()

    def fetchone(self, sql, params=None) -> tuple | None:
        rows = self.execute(sql, params).fetchall()
        return rows[0] if rows else None

    def fetch_df(self, sql, params=None):
        return self.execute(sql, params).df()

    def fetch_columns(self, sql, params=None) -> dict:
        """{column name: tuple of values} of one query (port.Reader.fetch_columns)."""
        rows = self.execute(sql, params).fetchall()
        names = [d[0] for d in self.cur.description]
        return dict(zip(names, zip(*rows))) if rows else {n: () for n in names}

    @contextlib.contextmanager
    def scan(self, name: str, frame):
        """Make frame (pandas or Arrow) readable as table `name` until the block ends. After a
        failed statement DuckDB refuses even the unregister ("transaction is aborted"), so when
        the block fails its own error is the one raised."""
        cur = self.cur
        cur.register(name, frame)
        try:
            yield name
        except BaseException:
            with contextlib.suppress(Exception):
                cur.unregister(name)
            raise
        cur.unregister(name)


class DuckDBUnitOfWork(CommitRules, DuckDBReader):
    """A database transaction that rolls back unless `commit()` is called (port.UnitOfWork).

    DuckDB answers COMMIT normally after a failed statement and silently rolls everything
    back, so this class remembers any failure and refuses to report a commit afterwards.
    DuckDB errors leaving it (a statement, a COMMIT, or an appender flushed inside its block)
    come out as port errors where the map names them (duckdb_error).
    """

    # One process owns a DuckDB file, so nobody else can have written (port.UnitOfWork).
    others_wrote = False

    def __init__(self, cur, before_commit=None, take=None, taken=None):
        self.cur = cur
        self._failed = False
        self._done = False
        self.committed = False
        # Called with this unit of work just before COMMIT (the hash chains' seal).
        self._before_commit = before_commit
        # sequence name -> take(n) -> first id, for ids counted in process memory.
        self._take = take
        # The engine's count of ids taken per sequence (port.Engine.ids_taken).
        self._taken = taken if taken is not None else collections.Counter()
        self._after_commit = None

    def __enter__(self):
        self.cur.execute("BEGIN")
        return self

    def execute(self, sql, params=None):
        try:
            return self.cur.execute(sql, params) if params is not None else self.cur.execute(sql)
        except duckdb.Error as exc:
            self._failed = True
            mapped = duckdb_error(exc)
            if mapped is None:
                raise
            raise mapped from exc
        except Exception:
            self._failed = True
            raise

    # fetchall, fetchone, fetch_df, fetch_columns and scan come from DuckDBReader, through
    # execute above.

    def load(self, table: str, frame, *, columns: Sequence[str] | None = None) -> int:
        """Append every row of frame (pandas or Arrow) to table with one INSERT ... SELECT over
        the registered frame; `columns` names the table columns, filled from the frame's
        columns of those names (default: all of the frame's, by name)."""
        names = list(columns) if columns is not None else [str(c) for c in (
            frame.column_names if hasattr(frame, "column_names") else frame.columns)]
        cols = ", ".join(f'"{c}"' for c in names)
        with self.scan(f"_bankms_load_{next(_LOAD_NAMES)}", frame) as source:
            self.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {source}")
        return len(frame)

    def take_ids(self, sequence: str, n: int) -> IdBlock:
        """Ids counted in process memory for the ledger's tables (the writer owns them: see
        ledger.LedgerState), else DuckDB's sequence of that name."""
        take = self._take.get(sequence) if self._take else None
        if take is not None:
            first = take(n)
            self._taken[sequence] += int(n)
            return IdBlock(np.arange(first, first + n, dtype=np.int64))
        if not _SEQUENCE_NAME.fullmatch(sequence):
            raise ValueError(f"not a sequence name: {sequence!r}")
        rows = self.fetchall(f"SELECT nextval('{sequence}') FROM range(?)", [n])
        self._taken[sequence] += int(n)
        return IdBlock(np.array(sorted(r[0] for r in rows), dtype=np.int64))

    def take_ids_many(self, counts: Mapping[str, int]) -> dict:
        """{sequence: IdBlock of n new ids} for each (sequence, n) of `counts` (take_ids)."""
        return {sequence: self.take_ids(sequence, n) for sequence, n in counts.items()}

    # on_commit, mark_failed and commit come from port.CommitRules.

    def _send_commit(self):
        try:
            self.cur.execute("COMMIT")
        except duckdb.Error as exc:
            self._failed = True
            raise map_error(exc) from exc

    def rollback(self):
        if not self._done:
            self._done = True
            try:
                self.cur.execute("ROLLBACK")
            except duckdb.Error:
                pass

    def __exit__(self, exc_type, exc, tb):
        if not self._done:
            self.rollback()
        if exc is not None and isinstance(exc, duckdb.Error):
            mapped = duckdb_error(exc)
            if mapped is not None:
                raise mapped from exc
        return False


@contextlib.contextmanager
def read_snapshot(con):
    """A DuckDBReader on a new cursor of `con` inside one read transaction, rolled back on
    exit (DuckDBEngine.snapshot, and the read model's: store/readmodel.py)."""
    cur = con.cursor()
    cur.execute("BEGIN TRANSACTION")
    try:
        yield DuckDBReader(cur)
    finally:
        try:
            cur.execute("ROLLBACK")
        finally:
            cur.close()


class DuckDBEngine:
    """port.Engine over one DuckDB file (or ':memory:'), opened and migrated here."""

    name = "duckdb"
    dialect = DUCKDB
    lane = 0
    # One process owns the file (field notes: a second one cannot even open it read-only).
    shared_writers = False

    def __init__(self, url: str):
        self.url = url
        self.con = connect(url)
        self._cursors = Cursors(self.con)
        # sequence name -> take(n) -> first id (set_counters).
        self._take: dict = {}
        # Ids this engine's units of work have taken so far, per sequence (port.Engine.ids_taken).
        self.ids_taken: collections.Counter = collections.Counter()

    # -- ids ---------------------------------------------------------------------------------
    def set_counters(self, take: Mapping[str, Callable[[int], int]]) -> None:
        """Serve take_ids(sequence, n) for these sequences from in-process counters (the
        ledger's max(id)+1 counters owned by the writer thread) instead of DuckDB sequences."""
        self._take = dict(take)

    # -- the single writer's wiring (store/writer.py) -----------------------------------------
    def writer_session(self):
        """The writer's own cursor: every unit of work of the writer runs on it
        (unit_of_work(cursor=...)), and so do the posting batch's appenders. Closed by the
        writer."""
        return self.con.cursor()

    def batch_writer(self, session) -> "BatchAppenders":
        """The engine half of a posting batch on the writer's session (BatchAppenders)."""
        return BatchAppenders(session)

    # -- cursors -----------------------------------------------------------------------------
    def cursor(self):
        """A new cursor of its own (the writer's, or a caller that closes it)."""
        return self.con.cursor()

    def thread_cursor(self):
        """This thread's cursor (kept per thread; never close it)."""
        return self._cursors.get()

    # -- units of work and reads -------------------------------------------------------------
    def unit_of_work(self, *, isolation: str = "serializable", cursor=None,
                     before_commit=None, exclusive: bool = False,
                     announce: str | None = None) -> DuckDBUnitOfWork:
        """A unit of work (a context manager: BEGIN on enter). DuckDB transactions are
        snapshot-isolated whatever `isolation` says; every write goes through the one writer
        thread, which passes its own `cursor` and the chains' `before_commit`. `exclusive` and
        `announce` are ignored: this process's one writer is already the only writer of the
        file, and nobody else listens."""
        return DuckDBUnitOfWork(cursor if cursor is not None else self._cursors.get(),
                                before_commit=before_commit, take=self._take,
                                taken=self.ids_taken)

    def read(self, sql, params=None) -> list[tuple]:
        """Rows of one query, read in one snapshot through this thread's cursor."""
        cur = self._cursors.get()
        return (cur.execute(sql, params) if params is not None else cur.execute(sql)).fetchall()

    def read_df(self, sql, params=None):
        cur = self._cursors.get()
        return (cur.execute(sql, params) if params is not None else cur.execute(sql)).df()

    def read_columns(self, sql, params=None) -> dict:
        """{column name: tuple of values} of one query (plain fetchall, no DataFrame)."""
        cur = self._cursors.get()
        rows = (cur.execute(sql, params) if params is not None else cur.execute(sql)).fetchall()
        names = [d[0] for d in cur.description]
        return dict(zip(names, zip(*rows))) if rows else {n: () for n in names}

    def snapshot(self):
        """A Reader on a cursor of its own inside one read transaction: every query through it
        sees the same committed state (fixed by its first query) while the writer carries
        on (DuckDB's MVCC). Rolled back on exit."""
        return read_snapshot(self.con)

    @contextlib.contextmanager
    def job_lock(self, job: str):
        """port.Engine.job_lock: always True. One process owns the file, and a job such as end
        of day run twice in it is already harmless (its writer units of work take turns, and
        each skips what the other did)."""
        yield True

    def listen(self, callback) -> NotListening:
        """Nothing to hear: one process owns the file, so every write is this process's own
        (port.Engine.listen). The callback is never called."""
        return NotListening()

    def close(self) -> None:
        """Checkpoint (so the next open replays no WAL) and close."""
        try:
            self.con.execute("CHECKPOINT")
        except Exception:
            pass
        self.con.close()


class BatchAppenders:
    """The DuckDB half of a posting batch's write: one appender per ledger table and an update
    appender for balances (DuckDB 2.0), all on the writer's cursor. Rows are flushed inside the
    caller's unit of work, whose COMMIT makes them durable."""

    def __init__(self, cur):
        self._tx = cur.appender("transactions")
        self._postings = cur.appender("postings")
        self._keys = cur.appender("idempotency_keys")
        self._audit = cur.appender("audit_log")
        self._balances = cur.appender(
            "accounts", columns=["id", "balance_cents", "last_activity_at", "last_activity_date"],
            action="update",
            key=["id"],
        )
        self._all = (self._tx, self._postings, self._keys, self._audit, self._balances)

    def write(self, tx_rows, posting_rows, key_rows, balance_rows, audit_rows) -> None:
        """Append and flush each non-empty set of rows, in table order. A repeated key raises
        DuplicateKey here, as PostgreSQL's writer does, so that the ledger can tell a second
        reversal (db.REVERSAL_INDEX) from a repeated idempotency key."""
        try:
            self._write(tx_rows, posting_rows, key_rows, balance_rows, audit_rows)
        except duckdb.Error as exc:
            mapped = duckdb_error(exc)
            if mapped is None:
                raise
            raise mapped from exc

    def _write(self, tx_rows, posting_rows, key_rows, balance_rows, audit_rows) -> None:
        if tx_rows:
            self._tx.append_rows(tx_rows)
            self._tx.flush()
            self._postings.append_rows(posting_rows)
            self._postings.flush()
            self._keys.append_rows(key_rows)
            self._keys.flush()
            self._balances.append_rows(balance_rows)
            self._balances.flush()
        if audit_rows:
            self._audit.append_rows(audit_rows)
            self._audit.flush()

    def clear(self) -> None:
        """Drop rows buffered but not flushed (after a failed batch)."""
        for app in self._all:
            app.clear()
