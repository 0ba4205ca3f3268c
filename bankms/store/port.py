"""The storage port: what services may ask of a database, whichever engine holds the bank.

Services, domain, reporting and the demo talk to storage only through these interfaces; the
engines (`store/duckdb.py`, `store/postgres.py`) implement them, and
each engine owns the one table that maps its driver's errors to the port errors below
(`map_error`). Nothing here imports a database driver.

SQL is text with `?` positional parameters (the style of every call site); `Params` may also be
a mapping for `:named` parameters on engines that support them. Shapes returned:
- `fetchall` -> list of tuples, one per row, Python values (int, str, Decimal for DECIMAL,
  datetime.date / naive UTC datetime.datetime, bool, None);
- `fetch_df` -> pandas DataFrame: BIGINT -> int64, DECIMAL -> float64 (as DuckDB's .df()),
  DATE / TIMESTAMP -> datetime64; money stays in `*_cents` int64 columns;
- `fetch_columns` / `read_columns` -> {column name: tuple of values}, the values as fetchall's,
  in the query's column order; every tuple empty (names kept) when there are no rows.

Results come only from these methods: `UnitOfWork.execute` returns nothing a caller may use,
and no code outside store/ touches a driver's cursor, connection or result description
(tests/test_portable_sql.py greps bankms for `.execute(...).df()`/`.fetch...` chains,
`.description`, `engine.con` and `.cursor()`; bank.py's writer wiring is the one exception).

Every reader and unit of work carries its engine's `dialect` (store/sql.py Dialect): SQL whose
text differs between engines is built from it at the call (`uow.dialect.in_list(...)`,
`bank.engine.dialect`), never from a dialect bound at import.

Every method may raise a `StoreError` subclass (mapped from the engine's own exception, which
is kept as `__cause__`); an error the map does not know passes through unchanged.

`store/engines.py` opens the engine for a URL (open_engine); it lives apart so that this
module imports no engine (the engines import it). tests/test_store_contract.py runs every
contract row on both engines. BatchWriter/BatchRows (the engine half of a posting batch) are
declared for the Bank on PostgreSQL (issue 14).

Several processes on one store (issue 14, step F): an engine whose `shared_writers` is True may
be written by other processes at the same time, each with its own writer thread. Such a writer
opens every unit of work with `exclusive=True` (Engine.unit_of_work): the unit of work holds the
store's one writer lock from before its snapshot is taken until after it ends, and says in
`others_wrote` whether another process may have committed since this engine's previous
exclusive unit of work, so that the writer reads again what it mirrors in memory (id counters,
chain heads, the business date, cached account rows). The other cross-process members
(try_lock, backup) are not declared yet.

What other processes committed is announced (issue 14, step G): an exclusive unit of work
opened with `announce="post"` (a posting batch: balances, last activity and ledger rows only)
or `announce="call"` (any other write) tells every other process's listener when it commits
(PostgreSQL: NOTIFY in the transaction, delivered at COMMIT; nothing when it rolls back).
`engine.listen(callback)` calls callback(Change) on a thread of its own for each unit of work
another process (another engine) committed, and once with `lost=True` whenever it may have
missed some (its connection dropped and came back); it returns a Listening whose stop() ends
it. On DuckDB one process owns the file: nothing is announced and listen never calls back.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:  # pragma: no cover - types only
    import pandas as pd
    import pyarrow as pa

    Frame = pd.DataFrame | pa.Table

# '?' positional (every call site today) or ':named' (a mapping); None: no parameters.
Params = Sequence[object] | Mapping[str, object] | None


# -- errors -------------------------------------------------------------------------------------
class StoreError(Exception):
    """A storage failure in port terms. The engine's exception is this one's __cause__."""


class DuplicateKey(StoreError):
    """A unique or primary key refused a row (DuckDB ConstraintException, PostgreSQL
    UniqueViolation 23505). `constraint` names it when the engine says which, else None."""

    def __init__(self, message: str = "", *, constraint: str | None = None):
        super().__init__(message)
        self.constraint = constraint


class WriteConflict(StoreError):
    """Another transaction changed the same rows first; retrying the whole unit of work may
    succeed (DuckDB "Conflict on update" / TransactionException, PostgreSQL 40001, 40P01)."""


class StoreLocked(StoreError):
    """The store is held by another process (DuckDB IOException "Conflicting lock")."""


class StoreUnavailable(StoreError):
    """The connection to the store was lost or could not be made (PostgreSQL
    OperationalError)."""


class NotAStore(StoreError):
    """What was opened is not a database of this engine (a file that is not DuckDB)."""


def map_error(exc: BaseException) -> BaseException:
    """The port error for an engine exception, or `exc` itself when no engine maps it.

    Each engine registers its own table (`register_error_map`); a port error is returned as
    is. Callers raise the answer `from exc`. Never raises."""
    if isinstance(exc, StoreError):
        return exc
    for mapper in _ERROR_MAPS:
        mapped = mapper(exc)
        if mapped is not None:
            return mapped
    return exc


# Engine error tables, each a function returning a StoreError or None for what it does not know.
_ERROR_MAPS: list[Callable[[BaseException], StoreError | None]] = []


def register_error_map(mapper: Callable[[BaseException], StoreError | None]) -> None:
    """Add an engine's error table to `map_error` (each engine module calls this once)."""
    if mapper not in _ERROR_MAPS:
        _ERROR_MAPS.append(mapper)


# -- ids ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class IdBlock:
    """Ids taken from one sequence for one unit of work: int64, ascending, unique across units
    of work, and NOT necessarily contiguous (PostgreSQL sequences leave gaps; DuckDB's
    in-process counters happen to be contiguous). Iterate, index or use `.ids` directly."""

    ids: np.ndarray = field(repr=False)

    def __len__(self) -> int:
        return len(self.ids)

    def __iter__(self):
        return iter(self.ids.tolist())

    def __getitem__(self, i):
        return self.ids[i]

    @property
    def first(self) -> int:
        """The lowest id (IndexError when empty)."""
        return int(self.ids[0])


# -- readers and units of work ------------------------------------------------------------------
class Reader(Protocol):
    """Queries in one snapshot; never writes."""

    dialect: Any  # the engine's store/sql.py Dialect (sql.DUCKDB, sql.POSTGRES)

    def fetchall(self, sql: str, params: Params = None) -> list[tuple]: ...

    def fetchone(self, sql: str, params: Params = None) -> tuple | None: ...

    def fetch_df(self, sql: str, params: Params = None) -> "pd.DataFrame": ...

    def fetch_columns(self, sql: str, params: Params = None) -> dict[str, tuple]:
        """{column name: tuple of values} of one query (fetchall's values, column order)."""


@runtime_checkable
class UnitOfWork(Reader, Protocol):
    """One database transaction that rolls back unless `commit()` is called.

    A failed statement marks the unit failed; `commit()` then raises RuntimeError instead of
    reporting a commit (DuckDB answers COMMIT normally after a failure and rolls back)."""

    lane: int            # this process's writer lane (0 on DuckDB)
    committed: bool
    # Opened with exclusive=True on an engine with shared_writers: True when a unit of work
    # of another process may have committed since this engine's previous exclusive one began
    # (and always for the first); memory mirroring the store must then be read again. A false
    # True costs only that read. Always False otherwise. Opened with shared=True (a posting
    # batch in a writer lane, PostgreSQL): True when another process ran an exclusive unit of
    # work since this engine last looked (CALLS_CLOCK, store/postgres.py).
    others_wrote: bool
    # PostgreSQL only (read with getattr; DuckDB's units of work have none): True for a posting
    # batch holding the writer lock shared, which must lock the rows it changes itself
    # (ledger.BatchPoster: accounts, and limited customers, FOR UPDATE in id order).
    # shared: bool

    def execute(self, sql: str, params: Params = None) -> Any:
        """Run one statement for its effect. The return value is not part of the port: callers
        must not use it (DuckDB happens to return its cursor, PostgreSQL None); rows come from
        fetchall/fetchone/fetch_df/fetch_columns (tests/test_portable_sql.py enforces it)."""

    def scan(self, name: str, frame: "Frame") -> AbstractContextManager[str]:
        """`with uow.scan(name, frame) as table:` makes `frame` readable as table `name` in
        this unit of work's SQL until the block ends (DuckDB register/unregister; PostgreSQL
        CREATE TEMP TABLE ... ON COMMIT DROP + COPY). Yields the name to use in SQL."""

    def load(self, table: str, frame: "Frame", *,
             columns: Sequence[str] | None = None) -> int:
        """Append every row of `frame` to `table` (columns: the frame's, in the table's order
        when None; else the named table columns, frame columns taken in that order). Returns
        the number of rows loaded. DuckDB: Arrow insert; PostgreSQL: COPY FROM STDIN.
        Raises DuplicateKey on a key violation."""

    def take_ids(self, sequence: str, n: int) -> IdBlock:
        """`n` new ids from `sequence` (e.g. 'transaction_id_seq', 'customer_id_seq').
        Ascending and unique across units of work; gaps are allowed. A rolled-back unit of
        work may leave its ids unused."""

    def take_ids_many(self, counts: Mapping[str, int]) -> dict[str, IdBlock]:
        """{sequence: take_ids(sequence, n)} for each (sequence, n) of `counts`; on PostgreSQL
        in one round trip (a posting batch's id blocks)."""

    def on_commit(self, fn: Callable[[], None]) -> None:
        """Run fn() after this unit of work's COMMIT has succeeded (memory that must follow
        the database: cached dates, chain heads...); never if it rolls back. Called in the
        order registered; an exception from one propagates to the committer."""

    def mark_failed(self) -> None:
        """Refuse any later commit (a caller caught a failure it cannot undo)."""

    def commit(self) -> None:
        """COMMIT, or RuntimeError when a statement failed; a mapped StoreError (e.g.
        WriteConflict, DuplicateKey) when the engine refuses the COMMIT."""


class CommitRules:
    """The commit rules both engines' units of work share (port.UnitOfWork's contract).

    Both DuckDB and PostgreSQL answer COMMIT after a failed statement with a silent rollback,
    so a failure is remembered (`_failed`, set by the engine's execute and by `mark_failed`)
    and `commit()` refuses to report a commit afterwards. The engine class sets `_failed`,
    `_done`, `committed`, `_before_commit` and `_after_commit` in its constructor and
    implements `_send_commit()`: COMMIT, raising the mapped port error (after marking the
    unit failed) when the engine refuses it."""

    def on_commit(self, fn: Callable[[], None]) -> None:
        if self._after_commit is None:
            self._after_commit = []
        self._after_commit.append(fn)

    def mark_failed(self) -> None:
        self._failed = True

    def _refuse_if_failed(self) -> None:
        if self._failed:
            raise RuntimeError("a statement in this unit of work failed; refusing to commit")

    def commit(self) -> None:
        self._refuse_if_failed()
        if self._before_commit is not None:
            # The hash chains' seal writes through this unit of work, and may fail in it.
            self._before_commit(self)
            self._refuse_if_failed()
        self._send_commit()
        self._done = True
        self.committed = True
        if self._after_commit is not None:
            for fn in self._after_commit:
                fn()


# -- the posting batch (engine half): declared for L2, not yet implemented ---------------------
@dataclass
class BatchRows:
    transactions: list[tuple]
    postings: list[tuple]
    keys: list[tuple]
    audit: list[tuple]
    balances: list[tuple]            # (account_id, balance_cents, last_activity_at, last_activity_date)
    internal_deltas: dict[int, int]  # account_id -> cents, for accounts settled in aggregate


class BatchWriter(Protocol):
    """The engine half of a posting batch; the guards stay in domain/ (PLAN14 section 4.1)."""

    def lock_accounts(self, uow: UnitOfWork, numbers: Sequence[str]) -> dict[str, list]: ...

    def lock_customers(self, uow: UnitOfWork, customer_ids: Sequence[int]) -> None: ...

    def lookup_keys(self, uow: UnitOfWork, keys: Sequence[str]) -> dict[str, tuple]: ...

    def write(self, uow: UnitOfWork, rows: BatchRows) -> None: ...

    def clear(self) -> None: ...


# -- what other processes committed --------------------------------------------------------------
@dataclass(frozen=True)
class Change:
    """One unit of work another process committed, as its listener heard of it (Engine.listen).

    kind: "post" (a posting batch: only balances, last activity and ledger rows changed) or
    "call" (any other write: settings, the business date, account rows, calendars...).
    clock: the writer clock value the unit of work took (ordering across processes; None when
    unknown). lost: the listener may have missed notifications (its connection came back):
    anything may have changed, kind is then "call"."""

    kind: Literal["post", "call"]
    clock: int | None = None
    lost: bool = False


class Listening(Protocol):
    """A running listener (Engine.listen)."""

    def stop(self) -> None:
        """End the listener; the callback is not called after stop() returns. Idempotent."""


class NotListening:
    """The Listening of an engine that no other process writes (DuckDB): nothing to stop."""

    def stop(self) -> None:
        pass


# -- the engine ---------------------------------------------------------------------------------
@runtime_checkable
class Engine(Protocol):
    """One open store. Thread-safe: every thread reads through its own connection or cursor."""

    name: Literal["duckdb", "postgresql"]
    url: str
    lane: int
    dialect: Any
    # Whether other processes may write this store while this one does (PostgreSQL: True;
    # DuckDB: False, since one process owns the file: field notes). When True, the writer
    # opens its units of work with exclusive=True (see the module docstring).
    shared_writers: bool
    # How many ids this engine's units of work have taken so far, per sequence name (a
    # collections.Counter; rolled-back units of work count too). Only grows: the hash chains
    # read it to know whether a unit of work took ledger or audit ids, and so may have rows
    # to hash (store/chains.py, Chains.seal).
    ids_taken: Any

    def unit_of_work(self, *, isolation: Literal["read_committed", "serializable"] =
                     "serializable") -> AbstractContextManager[UnitOfWork]:
        """A new transaction (BEGIN on enter; ROLLBACK on exit unless committed). Driver
        errors leaving the block are mapped (map_error).

        The writer's wiring passes more keywords: `cursor` (its writer_session), `before_commit`
        (the chains' seal) and `exclusive`: on an engine with shared_writers, hold the store's
        writer lock from before the snapshot until the transaction has ended, and set the unit
        of work's `others_wrote`; elsewhere ignored (one process owns the store). `announce`
        ("post", "call" or None), with exclusive on such an engine: tell other processes'
        listeners when this unit of work commits (module docstring)."""

    def read(self, sql: str, params: Params = None) -> list[tuple]:
        """Rows of one query, in one snapshot of committed data."""

    def read_df(self, sql: str, params: Params = None) -> "pd.DataFrame":
        """One query as a DataFrame (Reader.fetch_df's types)."""

    def read_columns(self, sql: str, params: Params = None) -> dict[str, tuple]:
        """One query as {column name: tuple of values} (Reader.fetch_columns's shape)."""

    def snapshot(self) -> AbstractContextManager[Reader]:
        """A Reader whose queries all see one committed state (repeatable read)."""

    def listen(self, callback: Callable[[Change], None]) -> Listening:
        """Call callback(change) on a thread of the engine's for every unit of work that
        another process committed with `announce`, and with Change("call", lost=True) after
        the listener may have missed some. Listening has begun when this returns. An engine
        without shared_writers never calls back. An exception from callback is swallowed
        (the listener must go on)."""

    def job_lock(self, job: str) -> AbstractContextManager[bool]:
        """Run a job (`"end_of_day"`) in one process at a time: yields True when this caller
        holds the job until the block ends, False when another holds it (never waits). On an
        engine without shared_writers always True."""

    def close(self) -> None:
        """Close the store; further calls fail."""

    # -- the single writer's wiring (store/writer.py); nothing else calls these --------------
    def writer_session(self) -> Any:
        """The writer thread's own session (a DuckDB cursor, a PostgreSQL connection): every
        unit of work of the writer runs on it (unit_of_work(cursor=session)), and so does its
        batch writer. The writer closes it."""

    def batch_writer(self, session: Any) -> Any:
        """The engine half of a posting batch on the writer's `session`: write(tx_rows,
        posting_rows, key_rows, balance_rows, audit_rows) appends one batch in the unit of
        work running on that session, clear() forgets rows not yet written (DuckDB
        appenders; PostgreSQL unnest inserts and one UPDATE ... FROM unnest for balances)."""

    def set_counters(self, take: Mapping[str, Callable[[int], int]]) -> None:
        """Serve take_ids(sequence, n) for these sequences from the writer's in-process
        counters (ledger.LedgerState: take(n) returns the first of n new ids) instead of the
        engine's sequences; right while one process writes. DuckDB only: PostgreSQL refuses
        (NotImplementedError), its ids all come from sequences (several writers at once)."""
