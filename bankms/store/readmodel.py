"""A read model in DuckDB of a bank kept on PostgreSQL (issue 14, step H): the dashboards,
reports and checks read a columnar copy instead of the primary.

`ReadModel(pg_url, path)` holds, in a DuckDB database (':memory:' or a file), a copy of every
table of the bank's schema (db.SCHEMA, created here by running the same DDL), pulled from
PostgreSQL (a primary or a streaming replica) through `adbc-driver-postgresql` as Arrow.
`refresh()` pulls every table inside ONE `REPEATABLE READ READ ONLY` transaction, so the copy is
one committed state of the bank: balances agree with the postings, as on the primary. The first
refresh pulls everything; later ones pull the append-only tables by their ordering column (rows
above the last final watermark, proven whatever order ids commit in: see LEDGER_SEQUENCES) and
of the other tables only the rows written since the last pull (by the change marker, see
_changed_sql below), upserted by key, and swap
them in inside one DuckDB transaction, so a reader sees either the old state or the new one.

Reads (`read`, `read_df`, `read_columns`, `snapshot`) run on DuckDB, each thread through its own
cursor on the one connection (as duckdb.DuckDBEngine's readers do), in the DuckDB dialect.
`freshness()` tells how old the copy is: `as_of` is the server's time of the snapshot (on a
replica, the time of the last transaction it replayed; see _AS_OF_SQL), `refreshed_at` when the
pull ended.

From a streaming replica (a hot standby of the bank's primary; the bank's
BANKMS_READ_MODEL_SOURCE): the pulls run there and hold nothing on the primary (they ask it
only, when given its URL, for the append-only tables' highest ids and one transaction id: see
LEDGER_SEQUENCES; on a primary source each pull takes one xid, about 8,640 a day at a pull every
10 s). The copy is then
as old as the standby's replay, and says so (`as_of`, `replica`). A physical standby is the
same database as its primary (same oid, same transaction ids in every row), so a read model may
switch between the two and go on incrementally. A long pull on a standby can be cancelled
("terminating connection due to conflict with recovery", after max_standby_streaming_delay,
30 s by default) when VACUUM on the primary removes rows its snapshot still sees: the refresh
then fails with StoreUnavailable and the copy stays as it was; hot_standby_feedback = on on
that standby prevents it (docs/deploy-postgresql.md, section 5).

Measured (benchmarks/bench_readmodel.py, shared 2-core machine at load 4-7): at 1 M postings a
full pull 3.4-3.9 s (1.5 M rows), the dashboards 0.97-1.32x the DuckDB file, an incremental
refresh after 50,000 new postings 0.65-0.72 s; at 10 M a full pull 39 s (15 M rows), the dashboards
0.92-1.13x the DuckDB file, the incremental refresh 1.3-2.1 s, most of it the accounts (100,000
rows) and customers pulled whole. With the change marker (session 26, 10 M postings, load 8-13
on 2 shared cores): the same refresh 0.84-1.20 s, median 0.87 s (34,000 changed accounts,
no customers; before it, 5.6 s in the same conditions), a refresh with nothing new 0.5 s.
With the final-id watermark instead of the tail window (session 28, 1 M postings, load 6-7,
side by side on one private cluster): the same refresh pulls 50,000 postings and 25,000
transactions (the tail window: 60,000 and 35,000), median 0.59 s and 0.78 s in two runs
(1.04 s); nothing new 0.36 s (0.39 s); the waits for a final watermark took 1-2 ms there. Under a writer always in flight (100-row transactions back to back), each refresh
read 16,000-17,700 postings for 15,100-17,100 new ones.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import json
import logging
import threading
import time
from dataclasses import dataclass, field

import adbc_driver_postgresql.dbapi as adbc_pg
import duckdb
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from . import db, files
from .duckdb import Cursors, DuckDBReader, read_snapshot
from .pgtools import shown
from .port import StoreUnavailable
from .sql import DUCKDB

_log = logging.getLogger(__name__)

# The tables no statement of bankms updates or deletes from once their transaction committed,
# with the column they grow along and the column that identifies a row. Checked by reading the
# code (session 25): no UPDATE or DELETE touches postings or idempotency_keys; transactions and
# audit_log get their chain_hash by one UPDATE in the very transaction that inserts them, just
# before its COMMIT (store/chains.py), so a committed row is final. An idempotency key is
# written in the transaction of the ledger transaction it names, so its transaction_id grows as
# the transactions' ids do. Every other table (accounts, customers, loans, settings, ...) is
# pulled by the change marker (_changed_sql) and upserted by their key (NATURAL_KEYS).
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

# The key by which the changed rows of a mutable table replace the copy's: the table's primary key
# on PostgreSQL (read from its catalogue at each pull), else the natural key below. A key here
# need not be declared unique on the source: after each merge the copy's row count is checked
# against the source's in the same snapshot, and a table whose counts differ is pulled whole
# (see _pull_changed), so a duplicate costs a whole pull, never a wrong copy. A table with
# neither (customer_status_history) is keyed by all its columns: right for rows only ever
# inserted, and an update or delete there shows as a count that differs, so a whole pull.
# interest_accruals is written by end of day only (one row per account and day, INSERT only:
# deposits/eod.py and the demo) and grows by 100,000 rows a day at 100,000 accounts, so it must
# not be pulled whole; loan_schedule is rewritten per loan (DELETE then INSERT: loans.py), and
# the upsert by (loan_id, n) plus the count check follow that.
NATURAL_KEYS = {
    "interest_accruals": ("account_id", "accrual_date"),
    "loan_schedule": ("loan_id", "n"),
    "loan_payments": ("transaction_id",),
    "interest_postings": ("account_id", "period_end"),
    "overdraft_interest_postings": ("account_id", "period_end"),
}

# The change marker of the mutable tables. At each pull the read model records X, the xmin of
# the pull's snapshot (pg_snapshot_xmin(pg_current_snapshot()), a 64-bit xid8): every
# transaction below X had ended when the snapshot was taken. A row version visible to a later
# snapshot but not to that one was therefore written by a transaction at or above X (one in
# flight then, or begun later, or a subtransaction of either, whose xid is above its parent's),
# and its xmin says so. The next pull reads only the rows whose xmin follows or equals X, which
# PostgreSQL compares modulo 2^32 (xmin is the 32-bit xid), as TransactionIdFollowsOrEquals
# does. That is exact while the source ran fewer than 2^31 transactions between two pulls (the
# read model pulls whole when X moved further, or backwards, or the database is another one);
# rows frozen by VACUUM keep their raw xmin (PostgreSQL 9.4 on), which is below X, so they are
# not pulled again; a frozen row whose raw xmin lies more than 2^31 behind X may look new and be
# pulled again, which costs time but not correctness (it is upserted by key). Rows the pull
# over-reads (transactions between X and the snapshot's xmax that had committed) are upserted
# too, as are more while any transaction on the server (of any database) ran long across the
# last pull, since it holds X back. Subtransactions are why X, not the snapshot's list of
# transactions in flight, is the marker: that list names top-level ids only, and a row
# written under a savepoint carries the savepoint's own id. A seq scan of 100,000 rows on
# PostgreSQL is cheap; what cost was moving them. Deletes
# leave no xmin: they are found by comparing row counts (see NATURAL_KEYS).
_XID_MOD = 1 << 32
_XID_HALF = 1 << 31


def _changed_sql(marker: int) -> str:
    """The WHERE clause of the rows written at or after the 64-bit xid `marker`."""
    return (f" WHERE ((CAST(CAST(xmin AS TEXT) AS BIGINT) - {int(marker) % _XID_MOD} + "
            f"{_XID_MOD}) % {_XID_MOD}) < {_XID_HALF}")


_KEYS_SQL = (
    "SELECT c.relname, (SELECT array_agg(CAST(a.attname AS TEXT) ORDER BY k.ord) "
    "FROM unnest(i.indkey) WITH ORDINALITY k(attnum, ord) "
    "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum) AS key "
    "FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid "
    "JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE i.indisprimary AND n.nspname = current_schema()")

# Where the copy of an append-only table is known complete: its final watermark.
#
# `id > highest held` is right only if rows become visible in id order. They do while ids come
# from the writer's in-process counters (ledger.LedgerState, engine.set_counters): one writer at
# a time takes them under the writer lock and commits before the next takes more. With writer
# lanes (several processes at once, ids from PostgreSQL sequences), a transaction that took a
# lower id may commit after a higher one that a refresh already copied. The watermark below
# proves, without assuming any commit order, up to which id a snapshot holds every row there
# will ever be.
#
# The writers' rule (PostgresUnitOfWork.take_ids): a transaction takes ids from a sequence only
# once it has a transaction id (xid), writes them only itself (a retry takes new ones), and the
# sequences have CACHE 1. Ids from the writers' counters need no rule: they are taken and
# committed one writer at a time, so every id below a committed one belongs to a transaction
# that had ended by then.
#
# At each pull, before its snapshot, the read model reads for each append-only table H, the
# highest id that may have been taken so far (greatest of the highest id committed and the
# sequence's last_value, _WATERMARK_SQL), then takes an xid of its own, Y, in a transaction of
# its own that ends at once (_XID_SQL). Every id <= H was handed out before Y was assigned
# (sequences are monotonic; an id below a committed one was handed out before it), so by the
# rule it belongs to a transaction whose xid is below Y, assigned before Y. Once a snapshot's
# xmin is above Y, every transaction with an xid up to Y has ended, so that snapshot holds
# every row with id <= H there will ever be: (Y, H) is then final, and the copy, having pulled
# everything above the previous watermark from that snapshot, holds every row up to H.
# The pull therefore reads the rows above the last final watermark (adding only those not
# held, by the identity column), and records as the new watermark the largest H among the
# pairs (of this pull and earlier ones still pending) whose Y lies below its snapshot's xmin.
# Pairs not yet final are kept (persisted with the copy) for later pulls.
#
# Why Y and not the snapshot's xmax: xmax is the latest ended xid plus one, not the next xid
# to be assigned. A transaction that took its xid and an id, while no later xid has ended, is
# at or above xmax and not in the snapshot's list of those in flight (checked on PostgreSQL
# 15: with xid 738 in flight and 737 just committed, pg_current_snapshot() was 738:738:), so
# "xmin of a later snapshot >= this xmax" would call it ended while it still runs.
#
# A transaction with an xid in flight anywhere on the server (any database) holds xmin back,
# and with it the watermark: meanwhile each pull re-reads the rows since the last final one
# (an index range scan and an anti-join; a cost, not an error). So that a first pull has a
# watermark at once, it waits (up to FINAL_WAIT_S) for the transactions older than Y to end
# before it takes its snapshot; otherwise the next pull would read the append-only tables
# whole again. Every other pull waits up to SETTLE_WAIT_S: under a steady
# stream of short writes some transaction is nearly always in flight when Y is taken, and
# without the wait each pull would read again all the rows of the pull before it (measured:
# about twice the new rows under a writer always in flight; with it, about the new rows).
#
# While no ledger sequence exists (a bank not opened since the sequences came, whose ids came
# from the writers' counters; every bank opened since has them, db.LEDGER_SEQUENCES), H is
# final at once and no Y is taken: every id below the highest committed one belongs to a transaction that
# had ended. A ledger sequence with CACHE > 1 gives no pair at all (the tables come whole).
#
# From a streaming replica (no xid can be taken there): with the bank's own URL (bank_url, as
# the app gives it), H and Y are read on the bank's primary and the pair is checked against
# the standby's snapshots: a standby counts every xid below the newest it has seen in the WAL
# as in flight until it replays that transaction's end, so its xmin passes Y only once it
# has replayed the end of every transaction up to Y. Without the primary's URL, H is the
# highest id committed on the standby, read before the snapshot, and final at once, which
# holds only while ids commit in id order: so it is used only when no ledger sequence exists
# (the ids come from the writers' counters). With a ledger sequence and no primary URL, no
# watermark advances and the append-only tables are pulled whole at each refresh: correct
# but slow (a documented limitation: give the read model the bank's URL). A sequence's
# last_value is not read on a standby: it shows the value WAL-logged ahead (up to 32 more
# than handed out), and an H above the ids really taken would be unsafe.
# The same map as the migration's (db.py makes these sequences on PostgreSQL).
LEDGER_SEQUENCES = {"transactions": "transaction_id_seq", "postings": "posting_id_seq",
                    "audit_log": "audit_id_seq"}
# The id space each append-only table's ordering column takes its values from.
ID_SPACE = {"transactions": "transactions", "postings": "postings", "audit_log": "audit_log",
            "idempotency_keys": "transactions"}
# Seconds libpq may take to connect to the source or the bank's primary (_with_connect_timeout).
CONNECT_TIMEOUT_S = 5
FINAL_WAIT_S = 2.0
SETTLE_WAIT_S = 0.1
# Pending pairs kept at most: when full, the newest replaces the last one kept (the oldest
# become final soonest, the newest carries the highest H).
MAX_PENDING = 64
_WATERMARK_SQL = "SELECT " + ", ".join(
    f"(SELECT max(id) FROM {t}) AS \"{t}\", (SELECT last_value FROM pg_sequences WHERE "
    f"schemaname = current_schema() AND sequencename = '{q}' AND cache_size = 1) AS \"{q}\""
    for t, q in LEDGER_SEQUENCES.items()) + (
    ", EXISTS (SELECT 1 FROM pg_sequences WHERE schemaname = current_schema() AND "
    "sequencename IN (" + ", ".join(f"'{q}'" for q in LEDGER_SEQUENCES.values()) +
    ")) AS sequenced, EXISTS (SELECT 1 FROM pg_sequences WHERE schemaname = current_schema() "
    "AND cache_size > 1 AND sequencename IN (" +
    ", ".join(f"'{q}'" for q in LEDGER_SEQUENCES.values()) + ")) AS cached")
_XID_SQL = "SELECT CAST(CAST(pg_current_xact_id() AS TEXT) AS BIGINT) AS xid"
_XMIN_SQL = "SELECT CAST(CAST(pg_snapshot_xmin(pg_current_snapshot()) AS TEXT) AS BIGINT) AS x"

# The copy's "as of" is a time at which the source held at least what the copy holds: never
# later than the truth, so that "Figures as of" does not claim fresher figures than they are.
#
# On a primary, the first statement of the pull fixes the snapshot, and its statement_timestamp()
# (taken as the statement starts, before the snapshot) is that time.
#
# On a streaming replica (a hot standby) the data is as old as the WAL replayed, not as the
# clock: the copy's time is the commit time (by the primary's clock) of the last transaction
# the standby replayed, pg_last_xact_replay_timestamp(), read in a statement BEFORE the
# pull's snapshot. Replay marks a commit visible before it records that commit's time, so every
# transaction up to the one read is in the snapshot taken afterwards; read inside the
# snapshot's own statement, the time could name a commit replayed just after the snapshot
# and so not in the copy. It is a lower bound: while the primary commits nothing, the copy is
# as current as the primary, yet its time stays at the last commit. Until the standby has
# replayed a commit since it started, the function is NULL; then the time of the standby's last
# restartpoint (pg_control_checkpoint(), readable by any role), also a lower bound, stands in.
# Checked on PostgreSQL 15: pg_current_snapshot() and pg_snapshot_xmin() work on a hot standby
# (its snapshot is built from the primary's transactions it knows of from the WAL, and a
# physical standby has the primary's xmin in every row), so the change marker below holds
# there as on the primary; REPEATABLE READ READ ONLY works (SERIALIZABLE does not).
_REPLAY_SQL = (
    "SELECT pg_is_in_recovery() AS replica, CAST(coalesce(pg_last_xact_replay_timestamp(), "
    "(pg_control_checkpoint()).checkpoint_time) AT TIME ZONE 'UTC' AS TIMESTAMP) AS replayed, "
    "CAST((SELECT oid FROM pg_database WHERE datname = current_database()) AS BIGINT) AS datid, "
    "CAST((pg_control_system()).system_identifier AS TEXT) AS cluster")
_AS_OF_SQL = (
    "SELECT CAST(statement_timestamp() AT TIME ZONE 'UTC' AS TIMESTAMP) AS as_of, "
    "pg_is_in_recovery() AS replica, "
    "CAST(CAST(pg_snapshot_xmin(pg_current_snapshot()) AS TEXT) AS BIGINT) AS xmin8, "
    "CAST((SELECT oid FROM pg_database WHERE datname = current_database()) AS BIGINT) AS datid, "
    "CAST((pg_control_checkpoint()).timeline_id AS BIGINT) AS tli")
# Which database a server holds, the same on a primary and on its physical replicas: the
# cluster's system identifier (made by initdb, copied by pg_basebackup) and the database's oid
# (_REPLAY_SQL reads both of the source at every pull, before anything of the bank's). Any role may read them
# (pg_control_system() is executable by PUBLIC).
_IDENTITY_SQL = (
    "SELECT CAST((pg_control_system()).system_identifier AS TEXT) AS cluster, "
    "CAST((SELECT oid FROM pg_database WHERE datname = current_database()) AS BIGINT) AS datid")

# The read model's own bookkeeping, in the DuckDB database beside the copied tables (so that a
# file read model knows after a restart where its append-only tables end).
_STATE_TABLE = "readmodel_state"
_STATE_DDL = (f"CREATE TABLE IF NOT EXISTS {_STATE_TABLE} (name VARCHAR PRIMARY KEY, "
              "as_of TIMESTAMP, refreshed_at TIMESTAMP, replica BOOLEAN, full_pulls BIGINT, "
              "refreshes BIGINT, source_xmin BIGINT, source_db BIGINT, source_tli BIGINT, "
              "watermarks VARCHAR, source_cluster VARCHAR)")
# Read models made before the change marker (or the timeline, or the watermarks) lack its
# columns: added at open (their first refresh then pulls the mutable tables, or the
# append-only ones, whole, as a first pull would, and records what was missing).
_STATE_MIGRATIONS = [f"ALTER TABLE {_STATE_TABLE} ADD COLUMN IF NOT EXISTS {c} BIGINT"
                     for c in ("source_xmin", "source_db", "source_tli")] + [
    f"ALTER TABLE {_STATE_TABLE} ADD COLUMN IF NOT EXISTS {c} VARCHAR"
    for c in ("watermarks", "source_cluster")]
_NAMES = itertools.count()


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
    seconds spent pulling (PostgreSQL to Arrow) and merging (Arrow into DuckDB). `whole`
    names the mutable tables pulled whole (rather than by the change marker) on an
    incremental refresh; `rows` counts the rows pulled per table (a table found unchanged
    is absent)."""

    full: bool
    rows: dict[str, int]
    pull_s: float
    merge_s: float
    as_of: dt.datetime
    whole: frozenset = frozenset()
    pull_s_by_table: dict = field(default_factory=dict)   # where pull_s went


class SourceMismatch(StoreUnavailable):
    """The read model's source is not a replica of the bank's database (ReadModel.bank_url):
    nothing is pulled. A StoreUnavailable, so a copy already held (pulled from the right
    source) stays readable, with its age shown, as when the source is down."""


def _with_connect_timeout(url: str) -> str:
    """`url` with libpq's connect_timeout (CONNECT_TIMEOUT_S) unless it names one: without it
    libpq waits for the operating system's TCP timeout (about 2 minutes on Linux) when a
    server's host drops packets, and a refresh runs inside a page load (found in review).
    psycopg's conninfo parser reads and writes both forms (a URL, key=value words)."""
    if "connect_timeout" in conninfo_to_dict(url):
        return url
    return make_conninfo(url, connect_timeout=CONNECT_TIMEOUT_S)


@dataclass
class _Watermarks:
    """The append-only tables' watermarks (see LEDGER_SEQUENCES): `final` {id space: the id up
    to which the copy holds every row there will ever be}; `pending` [(Y, {id space: H})] of
    pulls not yet final, Y None for a pair final at once (ids in commit order). Persisted
    with the copy as JSON."""

    final: dict = field(default_factory=dict)
    pending: list = field(default_factory=list)

    @classmethod
    def parse(cls, text: str | None) -> "_Watermarks":
        if not text:
            return cls()
        data = json.loads(text)
        return cls({k: int(v) for k, v in data["final"].items()},
                   [(y, {k: int(v) for k, v in h.items()}) for y, h in data["pending"]])

    def text(self) -> str:
        return json.dumps({"final": self.final, "pending": [[y, h] for y, h in self.pending]})

    def settle(self, pair: tuple | None, xmin8: int) -> "_Watermarks":
        """The watermarks once a snapshot with xmin `xmin8` was pulled above `final`: every
        pair (with `pair`, this pull's) whose Y lies below xmin8 made final."""
        final, pending = dict(self.final), []
        for y, highest in self.pending + ([pair] if pair is not None else []):
            if y is None or y < xmin8:
                for space, h in highest.items():
                    final[space] = max(final.get(space, h), h)
            elif len(pending) < MAX_PENDING:
                pending.append((y, highest))
            else:
                pending[-1] = (y, highest)
        return _Watermarks(final, pending)


@dataclass
class _Pull:
    """What one pull read: the snapshot's time, whether from a replica, its xmin (the change
    marker of the next pull), database and timeline, the append-only tables' watermarks after
    it; {table: (mode, Arrow, argument)} with mode 'append' (argument: the watermark pulled
    above), 'upsert' (argument: the key) or 'replace';
    and the mutable tables pulled whole on an incremental refresh."""

    full: bool
    as_of: dt.datetime
    replica: bool
    xmin8: int
    datid: int
    tli: int
    cluster: str | None = None
    watermarks: _Watermarks = field(default_factory=_Watermarks)
    frames: dict = field(default_factory=dict)
    whole: set = field(default_factory=set)
    seconds: dict = field(default_factory=dict)


class ReadModel:
    """A DuckDB copy of the bank on PostgreSQL at `source_url` (a libpq URL), in `path` (a
    DuckDB file, or ':memory:'). Empty until the first `refresh()`. Thread-safe: reads from any
    thread, one refresh at a time (a second waits for the first)."""

    name = "duckdb"
    dialect = DUCKDB

    def __init__(self, source_url: str, path: str = ":memory:", *, bank_url: str | None = None):
        self.source_url = source_url
        # The bank's own database when the source is another server (a streaming replica,
        # BANKMS_READ_MODEL_SOURCE): every pull first checks that the source holds that very
        # database (_IDENTITY_SQL), so that a wrong URL never shows managers another bank's
        # figures. Read from the bank once, at the first pull.
        self.bank_url = bank_url if bank_url and bank_url != source_url else None
        self._bank_identity: tuple | None = None
        self.path = path
        if path != ":memory:":
            # The copy holds what the bank holds (national ids, password hashes, the audit
            # log): its file, WAL and folder are private to this user, as the DuckDB bank's
            # are (files.py), made so before DuckDB creates any of them.
            files.private_umask()
            files.make_private_folder(files.data_folder(path))
            files.tighten(path)
        self.con = duckdb.connect(path)
        self.con.execute("SET enable_progress_bar = false")
        if not self.con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = ?",
                                [_STATE_TABLE]).fetchone()[0]:
            self._create_schema()
        else:
            self._add_new_columns()
        for sql in _STATE_MIGRATIONS:
            self.con.execute(sql)
        self._cursors = Cursors(self.con)
        self._refresh_lock = threading.Lock()
        self._columns = self._table_columns()
        # When the last refresh of this process began (time.monotonic()), for ensure_fresh.
        self._pulled_at: float | None = None

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

    def _add_new_columns(self) -> None:
        """A copy made before the bank's schema gained tables or columns (writer lanes added
        `lane` to transactions, audit_log and chain_heads, and to chain_heads' primary key, by
        which its changed rows are upserted) gets them here, empty, and its next refresh pulls
        every table whole: else it would pull without them, and a key column it lacks made
        every refresh fail."""
        bank = duckdb.connect(":memory:")
        try:
            db.migrate(bank)
            wanted = bank.execute(
                "SELECT table_name, column_name, data_type FROM duckdb_columns() "
                "WHERE NOT internal ORDER BY table_name, column_index").fetchall()
            tables = {t for (t,) in bank.execute(
                "SELECT table_name FROM duckdb_tables() WHERE NOT internal").fetchall()}
        finally:
            bank.close()
        held = self._table_columns()
        statements = []
        for table in sorted(tables - set(held)):
            columns = ", ".join(f'"{c}" {t}' for tb, c, t in wanted if tb == table)
            statements.append(f"CREATE TABLE {table} ({columns})")
        for table, column, sql_type in wanted:
            if table in held and column not in dict(held[table]):
                statements.append(f'ALTER TABLE {table} ADD COLUMN "{column}" {sql_type}')
        if not statements:
            return
        self.con.execute("BEGIN")
        for sql in statements:
            self.con.execute(sql)
        # Nothing held is complete any more: the next refresh pulls every table whole.
        self.con.execute(f"DELETE FROM {_STATE_TABLE}")
        self.con.execute("COMMIT")

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
        """(as_of, refreshed_at, replica, refreshes, source_xmin, source_db, source_tli,
        watermarks, source_cluster), None if never."""
        return self.con.cursor().execute(
            f"SELECT as_of, refreshed_at, replica, refreshes, source_xmin, source_db, source_tli, "
            f"watermarks, source_cluster FROM {_STATE_TABLE} WHERE name = 'state'").fetchone()

    def refresh(self, *, full: bool = False) -> RefreshReport:
        """Bring the copy up to the source's current committed state, in one snapshot of it.
        Full the first time (or when `full`, or when the source is another database or its
        transaction ids went back, as after a restore), else incremental. Raises
        StoreUnavailable when the source cannot be reached; the copy is then left as it was."""
        with self._refresh_lock:
            return self._refresh(full)

    def _refresh(self, full: bool) -> RefreshReport:
        """refresh(), the refresh lock held."""
        started = time.monotonic()
        state = self._state()
        full = full or state is None
        t0 = time.perf_counter()
        pull = self._pull(full, None if full else (state[4], state[5], state[6], state[8]),
                          _Watermarks.parse(None if full else state[7]))
        t1 = time.perf_counter()
        self._merge(pull)
        t2 = time.perf_counter()
        self._pulled_at = started
        return RefreshReport(full=pull.full, rows={t: f.num_rows for t, (_, f, _) in
                                                  pull.frames.items()},
                             pull_s=t1 - t0, merge_s=t2 - t1, as_of=pull.as_of,
                             whole=frozenset(pull.whole), pull_s_by_table=pull.seconds)

    def _pull(self, full: bool, previous: tuple | None, marks: "_Watermarks") -> "_Pull":
        """Every table's rows to merge, read in one REPEATABLE READ READ ONLY transaction:
        all of them when `full`; else the append-only ones above their final watermark (in
        `marks`; whole without one), and of the mutable ones the rows changed since the
        `previous` (marker, database, timeline) pull."""
        if self.bank_url is not None and self._bank_identity is None:
            self._bank_identity = self._identity(self.bank_url, "the bank's database")
        conn = self._connect(self.source_url, "the read model's source")
        try:
            cur = conn.cursor()
            # Autocommit, so that the transaction below is exactly the one written here.
            cur.execute("SET TimeZone TO 'UTC'")
            # Plain scans: JIT compiling them cost more than it saved (tens of ms a table,
            # the planner misjudging a BRIN scan's rows as millions).
            cur.execute("SET jit = off")
            # Before the snapshot: see _AS_OF_SQL.
            cur.execute(_REPLAY_SQL)
            before = cur.fetch_arrow_table().to_pylist()[0]
            if self._bank_identity not in (None, (before["cluster"], before["datid"])):
                raise SourceMismatch(
                    f"The read model's source {shown(self.source_url)} does not hold the "
                    "bank's database (another cluster, or another database in it): "
                    "BANKMS_READ_MODEL_SOURCE must name a streaming replica of the bank's "
                    "own database. Nothing was pulled.")
            # Also before the snapshot: this pull's (Y, H), and when the copy lacks a final
            # watermark, the wait for it (see LEDGER_SEQUENCES).
            pair = self._pair(cur, bool(before["replica"]))
            if pair is not None and pair[0] is not None:
                # The longer wait only for a first pull: a later one without a watermark
                # (a transaction holding an xid for long) would pay it at every refresh,
                # inside a page load (ensure_fresh).
                self._wait_final(cur, pair[0], FINAL_WAIT_S if full else SETTLE_WAIT_S)
            cur.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            try:
                cur.execute(_AS_OF_SQL)
                head = cur.fetch_arrow_table().to_pylist()[0]
                # A standby promoted between the two statements: its replay time is still a
                # time the copy is at least as new as.
                as_of = before["replayed"] if before["replica"] else head["as_of"]
                pull = _Pull(full=full, as_of=as_of,
                             replica=bool(before["replica"] or head["replica"]),
                             xmin8=int(head["xmin8"]), datid=int(head["datid"]),
                             tli=int(head["tli"]), cluster=str(before["cluster"]))
                marker = None
                if not full:
                    prev_xmin, prev_db, prev_tli, prev_cluster = previous
                    if prev_db is not None and (prev_db != pull.datid
                                                or prev_cluster not in (None, pull.cluster)
                                                or prev_xmin > pull.xmin8
                                                or prev_tli not in (None, pull.tli)):
                        # Another database (another oid, or the same oid in another cluster:
                        # found in review, a file copy pointed at another server went on
                        # incrementally), ids that went back (a restore), or another
                        # timeline (a point-in-time recovery or a promoted replica, whose
                        # history may lack transactions the copy holds, even once its ids
                        # have passed the old server's): nothing held can be trusted. A
                        # standby's timeline is that of its last restartpoint, so a standby
                        # that followed a promotion is noticed at its next restartpoint.
                        pull.full = True
                    elif prev_xmin is not None and pull.xmin8 - prev_xmin < _XID_HALF:
                        marker = prev_xmin
                if pull.full:
                    marks = _Watermarks()   # nothing held is trusted, nor any pair before
                pull.watermarks = marks.settle(pair, pull.xmin8)
                # The rows above each final watermark held; a table without one comes whole.
                bounds = {t: marks.final[ID_SPACE[t]] for t in APPEND_ONLY
                          if ID_SPACE[t] in marks.final}

                def fetch(sql, label="(catalogue and counts)"):
                    t0 = time.perf_counter()
                    cur.execute(sql)
                    frame = cur.fetch_arrow_table()
                    pull.seconds[label] = (pull.seconds.get(label, 0.0)
                                           + time.perf_counter() - t0)
                    return frame

                tables = [t for t in self._columns if t not in NOT_COPIED]
                mutable = [t for t in tables if t not in APPEND_ONLY]
                for table in tables:
                    if table in APPEND_ONLY:
                        sql = self._select(table)
                        if table in bounds:
                            # An integer from our own copy: safe to write into the text.
                            sql += f" WHERE {APPEND_ONLY[table][0]} > {int(bounds[table])}"
                            pull.frames[table] = ("append", fetch(sql, table), bounds[table])
                        else:
                            pull.frames[table] = ("replace", fetch(sql, table), None)
                if marker is None:
                    for table in mutable:
                        pull.frames[table] = ("replace", fetch(self._select(table), table),
                                              None)
                    if not pull.full:
                        pull.whole.update(mutable)
                else:
                    self._pull_changed(fetch, mutable, marker, pull)
            finally:
                cur.execute("ROLLBACK")
            cur.close()
        except adbc_pg.OperationalError as exc:
            raise StoreUnavailable(f"the read model's pull failed: {exc}") from exc
        finally:
            conn.close()
        return pull

    @staticmethod
    def _connect(url: str, what: str):
        try:
            return adbc_pg.connect(_with_connect_timeout(url), autocommit=True)
        except adbc_pg.Error as exc:
            # libpq's text is not shown: it may quote part of a password that was not
            # percent-encoded (pgtools.shown).
            raise StoreUnavailable(f"cannot reach {what} {shown(url)} "
                                   f"({type(exc).__name__})") from exc

    def _identity(self, url: str, what: str) -> tuple:
        conn = self._connect(url, what)
        try:
            cur = conn.cursor()
            cur.execute(_IDENTITY_SQL)
            found = tuple(cur.fetch_arrow_table().to_pylist()[0].values())
            cur.close()
            return found
        finally:
            conn.close()

    def _pair(self, cur, replica: bool) -> tuple | None:
        """This pull's (Y, {id space: H}) (see LEDGER_SEQUENCES), read before its snapshot;
        Y None when final at once; None when there is none to have."""
        if replica and self.bank_url is not None:
            # The pending pairs stay when there is none: the watermark waits, nothing is lost.
            try:
                conn = self._connect(self.bank_url, "the bank's database")
            except StoreUnavailable:
                conn = None
            if conn is not None:
                try:
                    primary = conn.cursor()
                    found = self._pair(primary, False)
                    primary.close()
                    return found
                except adbc_pg.Error:
                    # Not a primary (any more: a failover), or gone meanwhile: no pair.
                    pass
                finally:
                    conn.close()
        cur.execute(_WATERMARK_SQL)
        row = cur.fetch_arrow_table().to_pylist()[0]
        if row["cached"]:
            # A session's cached values are used by transactions that begin after any moment
            # one looks, so no pair can be trusted: the append-only tables come whole (correct,
            # slow) until the sequence is back to CACHE 1 (found in review: with CACHE 20 a
            # row committed later from a session's cache was never pulled).
            _log.warning("a ledger id sequence has CACHE > 1: the read model pulls the "
                         "append-only tables whole; ALTER SEQUENCE ... CACHE 1")
            return None
        highest = {}
        for table, sequence in LEDGER_SEQUENCES.items():
            # A standby's sequences show values logged ahead: not read there.
            values = [v for v in (row[table], None if replica else row[sequence])
                      if v is not None]
            if values:
                highest[table] = int(max(values))
        if not row["sequenced"]:
            # No ledger sequence: the ids come from the writers' counters, taken and committed
            # one writer at a time under the writer lock, so every id below the highest
            # committed one belongs to a transaction that had ended: final at once, with no xid
            # taken and no wait (a session holding an xid elsewhere on the server, such as an
            # idle psql, would otherwise hold every first pull up to FINAL_WAIT_S and leave
            # the copy without a watermark: found in review).
            return None, highest
        if not replica:
            cur.execute(_XID_SQL)
            return int(cur.fetch_arrow_table().to_pylist()[0]["xid"]), highest
        # A standby without the primary's URL, with ledger sequences: no pair at all.
        return None

    @staticmethod
    def _wait_final(cur, xid: int, budget_s: float) -> None:
        """Wait (up to `budget_s`) until every transaction up to `xid` has ended, as the
        source's snapshots see it, so that the pull about to start makes its pair final."""
        deadline = time.monotonic() + budget_s
        while True:
            cur.execute(_XMIN_SQL)
            if int(cur.fetch_arrow_table().to_pylist()[0]["x"]) > xid:
                return
            if time.monotonic() >= deadline:
                return
            time.sleep(0.005)

    def _pull_changed(self, fetch, mutable: list[str], marker: int, pull: "_Pull") -> None:
        """Into `pull`, the rows of the `mutable` tables written since the pull whose snapshot
        had xmin `marker`, to upsert by key; a table whose copy would then hold another
        number of rows than the source (a row deleted, a key repeated) is pulled whole
        instead."""
        keys = {r["relname"]: tuple(r["key"]) for r in fetch(_KEYS_SQL).to_pylist()}
        # One statement, one scan of each table: its rows, and those changed (so that the
        # tables nobody wrote to cost no further round trip).
        where = _changed_sql(marker).removeprefix(" WHERE ")
        counts, touched = {}, set()
        for r in fetch(" UNION ALL ".join(
                f"SELECT '{t}' AS t, count(*) AS n, count(*) FILTER (WHERE {where}) AS c "
                f"FROM {t}" for t in mutable)).to_pylist():
            counts[r["t"]] = int(r["n"])
            if r["c"]:
                touched.add(r["t"])
        duck = self.con.cursor()
        try:
            held = dict(duck.execute(" UNION ALL ".join(
                f"SELECT '{t}', count(*) FROM {t}" for t in mutable)).fetchall())
            for table in mutable:
                if table not in touched and held[table] == counts[table]:
                    continue   # unchanged since the last pull
                changed = fetch(self._select(table) + _changed_sql(marker), table)
                key = (keys.get(table) or NATURAL_KEYS.get(table)
                       or tuple(c for c, _ in self._columns[table]))
                # How many rows the copy would hold after the upsert.
                source = f"_readmodel_{next(_NAMES)}"
                duck.register(source, changed)
                try:
                    # fetchall, not fetchone: a cursor with a result left open refuses
                    # unregister() (field notes, duckdb 2.0.1).
                    ((replaced,),) = duck.execute(
                        f"SELECT count(*) FROM {table} t WHERE EXISTS (SELECT 1 FROM "
                        f"{source} src WHERE {self._key_match(table, key)})").fetchall()
                finally:
                    duck.unregister(source)
                if held[table] - replaced + changed.num_rows == counts[table]:
                    pull.frames[table] = ("upsert", changed, key)
                    continue
                pull.frames[table] = ("replace", fetch(self._select(table), table), None)
                pull.whole.add(table)
        finally:
            duck.close()

    def _key_match(self, table: str, key: tuple) -> str:
        """SQL matching a copy row `t` to a pulled row `src` by `key`, types as the copy's."""
        types = dict(self._columns[table])
        # NULLs match NULLs: a key of all columns may hold some.
        return " AND ".join(f't."{c}" IS NOT DISTINCT FROM CAST(src."{c}" AS {types[c]})'
                            for c in key)

    def _merge(self, pull: "_Pull") -> None:
        """Swap the pulled rows in, in one DuckDB transaction (readers see the old copy or the
        new one, never a mix): append-only tables gain the rows they lack, changed rows of the
        others replace the copy's rows of the same key, tables pulled whole are replaced."""
        cur = self.con.cursor()
        try:
            cur.execute("BEGIN")
            for table, (mode, frame, arg) in pull.frames.items():
                cols = self._columns[table]
                names = ", ".join(f'"{c}"' for c, _ in cols)
                casts = ", ".join(f'CAST(src."{c}" AS {t})' for c, t in cols)
                source = f"_readmodel_{next(_NAMES)}"
                cur.register(source, frame)
                try:
                    where = ""
                    if mode == "append":
                        # Rows above the watermark already held are skipped by identity.
                        order, ident = APPEND_ONLY[table]
                        where = (f" WHERE src.\"{ident}\" NOT IN (SELECT \"{ident}\" FROM {table} "
                                 f"WHERE {order} > {int(arg)})")
                    elif mode == "upsert":
                        cur.execute(f"DELETE FROM {table} t USING {source} src "
                                    f"WHERE {self._key_match(table, arg)}")
                    else:
                        cur.execute(f"DELETE FROM {table}")
                    if frame.num_rows:
                        cur.execute(f"INSERT INTO {table} ({names}) SELECT {casts} "
                                    f"FROM {source} src{where}")
                finally:
                    cur.unregister(source)
            refreshed_at = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
            cur.execute(
                f"INSERT INTO {_STATE_TABLE} VALUES ('state', ?, ?, ?, ?, 1, ?, ?, ?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET as_of = excluded.as_of, "
                "refreshed_at = excluded.refreshed_at, replica = excluded.replica, "
                f"full_pulls = {_STATE_TABLE}.full_pulls + excluded.full_pulls, "
                f"refreshes = {_STATE_TABLE}.refreshes + 1, "
                "source_xmin = excluded.source_xmin, source_db = excluded.source_db, "
                "source_tli = excluded.source_tli, watermarks = excluded.watermarks, "
                "source_cluster = excluded.source_cluster",
                [pull.as_of, refreshed_at, pull.replica, 1 if pull.full else 0, pull.xmin8,
                 pull.datid, pull.tli, pull.watermarks.text(), pull.cluster])
            cur.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(duckdb.Error):
                cur.execute("ROLLBACK")
            raise
        finally:
            cur.close()

    def ensure_fresh(self, max_age_s: float) -> None:
        """Refresh unless the copy was refreshed by this process less than `max_age_s` ago
        (when its last pull began), so readers on a cadence see figures at most about that
        old. While another thread refreshes, a reader does not wait: it reads the copy as it
        is (one whole refresh, see _merge); only a copy never filled waits. When the source
        cannot be reached and a copy exists, the copy is read as it is (freshness() says how
        old); with none, StoreUnavailable is raised."""
        pulled = self._pulled_at
        if pulled is not None and time.monotonic() - pulled < max_age_s:
            return
        have_copy = pulled is not None or self._state() is not None
        if not self._refresh_lock.acquire(blocking=not have_copy):
            return
        try:
            pulled = self._pulled_at
            if pulled is None or time.monotonic() - pulled >= max_age_s:
                self._refresh(False)
        except StoreUnavailable:
            if not have_copy:
                raise
        finally:
            self._refresh_lock.release()

    def check_ledger(self) -> tuple[list[str], Freshness]:
        """The ledger's own consistency on one refresh of the copy (verify() on the read
        model): every account's balance equals the sum of its postings, every transaction's
        postings sum to zero, and so do all postings. Reads the copy only; nothing is held on
        the source. (problems, at most 100 of each kind; the freshness of what was read)."""
        problems = []
        with self.snapshot() as reader:
            fresh = self.freshness(reader)
            for number, balance, total in reader.fetchall(
                    "SELECT a.account_number, a.balance_cents, CAST(coalesce(p.total, 0) AS "
                    "BIGINT) FROM accounts a LEFT JOIN (SELECT account_id, sum(amount_cents) "
                    "AS total FROM postings GROUP BY 1) p ON p.account_id = a.id "
                    "WHERE a.balance_cents <> coalesce(p.total, 0) ORDER BY 1 LIMIT 100"):
                problems.append(f"account {number} balance {balance} differs from its "
                                f"postings' sum {total}")
            for tx, total in reader.fetchall(
                    "SELECT transaction_id, CAST(sum(amount_cents) AS BIGINT) FROM postings "
                    "GROUP BY 1 HAVING sum(amount_cents) <> 0 ORDER BY 1 LIMIT 100"):
                problems.append(f"transaction {tx} postings sum to {total}, not 0")
            (total,) = reader.fetchall(
                "SELECT CAST(coalesce(sum(amount_cents), 0) AS BIGINT) FROM postings")[0]
            if total != 0:
                problems.append(f"trial balance is {total} cents off, not 0")
        return problems, fresh

    # -- freshness ---------------------------------------------------------------------------
    def freshness(self, reader=None) -> Freshness:
        """How old the copy is (all None and 0 before the first refresh); through `reader`
        (one of snapshot()'s) when given, so that it describes what that reader sees."""
        if reader is None:
            row = self._state()
        else:
            rows = reader.fetchall(
                f"SELECT as_of, refreshed_at, replica, refreshes FROM {_STATE_TABLE} "
                "WHERE name = 'state'")
            row = rows[0] if rows else None
        if row is None:
            return Freshness(None, None, None, 0)
        as_of, refreshed_at, replica, refreshes, *_ = row
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
