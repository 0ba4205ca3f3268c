"""The DuckDB file: schema, migrations at open, per-thread cursors and the unit of work.

One process owns the file (DuckDB locks it), so one `duckdb` connection is opened per process
and per file; every thread reads through its own cursor, and every write goes through the single
writer thread in `writer.py`. Schema changes happen only here, at open, followed by a CHECKPOINT,
because WAL replay of run-time schema changes is where DuckDB has failed upstream.
"""
from __future__ import annotations

import threading

import duckdb

SCHEMA_VERSION = 1

# Amounts are BIGINT cents everywhere; rates are DECIMAL percent. Columns avoid the word `at`,
# which DuckDB 2.0 reserves.
SCHEMA = [
    """CREATE TABLE IF NOT EXISTS settings (
        key VARCHAR PRIMARY KEY,
        value VARCHAR NOT NULL)""",
    "CREATE SEQUENCE IF NOT EXISTS customer_id_seq START 1001",
    """CREATE TABLE IF NOT EXISTS customers (
        id BIGINT PRIMARY KEY,
        full_name VARCHAR NOT NULL,
        email VARCHAR,
        phone VARCHAR,
        date_of_birth DATE,
        national_id VARCHAR,
        address VARCHAR,
        status VARCHAR NOT NULL,
        segment VARCHAR,
        created_at TIMESTAMP NOT NULL,
        created_by VARCHAR NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS customer_status_history (
        customer_id BIGINT NOT NULL,
        old_status VARCHAR,
        new_status VARCHAR NOT NULL,
        changed_at TIMESTAMP NOT NULL,
        changed_by VARCHAR NOT NULL,
        reason VARCHAR)""",
    "CREATE SEQUENCE IF NOT EXISTS account_id_seq START 100",
    "CREATE SEQUENCE IF NOT EXISTS account_number_seq START 1",
    """CREATE TABLE IF NOT EXISTS accounts (
        id BIGINT PRIMARY KEY,
        account_number VARCHAR NOT NULL UNIQUE,
        customer_id BIGINT,
        kind VARCHAR NOT NULL,
        name VARCHAR NOT NULL,
        status VARCHAR NOT NULL,
        balance_cents BIGINT NOT NULL DEFAULT 0,
        holds_cents BIGINT NOT NULL DEFAULT 0,
        overdraft_limit_cents BIGINT NOT NULL DEFAULT 0,
        interest_rate_percent DECIMAL(9, 4) NOT NULL DEFAULT 0,
        opened_at TIMESTAMP NOT NULL,
        closed_at TIMESTAMP,
        last_activity_at TIMESTAMP)""",
    """CREATE TABLE IF NOT EXISTS transactions (
        id BIGINT NOT NULL,
        kind VARCHAR NOT NULL,
        amount_cents BIGINT NOT NULL,
        memo VARCHAR,
        source_account VARCHAR,
        target_account VARCHAR,
        actor VARCHAR NOT NULL,
        actor_role VARCHAR NOT NULL,
        idempotency_key VARCHAR,
        reverses_id BIGINT,
        posted_at TIMESTAMP NOT NULL,
        business_date DATE NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS postings (
        id BIGINT NOT NULL,
        transaction_id BIGINT NOT NULL,
        account_id BIGINT NOT NULL,
        amount_cents BIGINT NOT NULL,
        posted_at TIMESTAMP NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS idempotency_keys (
        key VARCHAR PRIMARY KEY,
        request_hash VARCHAR NOT NULL,
        transaction_id BIGINT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS audit_log (
        id BIGINT NOT NULL,
        ts TIMESTAMP NOT NULL,
        actor VARCHAR NOT NULL,
        actor_role VARCHAR NOT NULL,
        action VARCHAR NOT NULL,
        entity VARCHAR,
        entity_id VARCHAR,
        before VARCHAR,
        after VARCHAR,
        outcome VARCHAR NOT NULL DEFAULT 'ok')""",
    "CREATE SEQUENCE IF NOT EXISTS user_id_seq START 1",
    """CREATE TABLE IF NOT EXISTS users (
        id BIGINT PRIMARY KEY,
        username VARCHAR NOT NULL UNIQUE,
        password_hash VARCHAR NOT NULL,
        role VARCHAR NOT NULL,
        customer_id BIGINT,
        full_name VARCHAR NOT NULL,
        email VARCHAR,
        active BOOLEAN NOT NULL DEFAULT TRUE,
        failed_attempts INTEGER NOT NULL DEFAULT 0,
        locked_until TIMESTAMP,
        must_change_password BOOLEAN NOT NULL DEFAULT FALSE,
        created_at TIMESTAMP NOT NULL,
        password_changed_at TIMESTAMP)""",
    """CREATE TABLE IF NOT EXISTS sessions (
        id VARCHAR PRIMARY KEY,
        username VARCHAR NOT NULL,
        created_at TIMESTAMP NOT NULL,
        last_seen_at TIMESTAMP NOT NULL,
        revoked_at TIMESTAMP)""",
    # -- Four-eyes approvals and holds (bankms/approvals.py) -----------------------------------
    # A staff payment above the four-eyes threshold waits here instead of posting; `legs` is
    # the JSON of its PostingRequest legs, and `idempotency_key` the key of the form that made
    # it, which the posted transaction reuses once a second person approves.
    "CREATE SEQUENCE IF NOT EXISTS approval_id_seq START 1",
    """CREATE TABLE IF NOT EXISTS approval_requests (
        id BIGINT PRIMARY KEY,
        kind VARCHAR NOT NULL,
        action VARCHAR NOT NULL,
        amount_cents BIGINT NOT NULL,
        source_account VARCHAR,
        target_account VARCHAR,
        memo VARCHAR,
        legs VARCHAR NOT NULL,
        idempotency_key VARCHAR NOT NULL UNIQUE,
        request_hash VARCHAR NOT NULL,
        maker VARCHAR NOT NULL,
        maker_role VARCHAR NOT NULL,
        status VARCHAR NOT NULL,
        created_at TIMESTAMP NOT NULL,
        decided_by VARCHAR,
        decided_at TIMESTAMP,
        reason VARCHAR,
        transaction_id BIGINT)""",
    # Money reserved on an account; accounts.holds_cents caches the sum of its open holds
    # (audit.verify checks that), and the funds guard subtracts it from what can leave.
    "CREATE SEQUENCE IF NOT EXISTS hold_id_seq START 1",
    """CREATE TABLE IF NOT EXISTS holds (
        id BIGINT PRIMARY KEY,
        account_id BIGINT NOT NULL,
        amount_cents BIGINT NOT NULL,
        reason VARCHAR NOT NULL,
        approval_id BIGINT,
        placed_at TIMESTAMP NOT NULL,
        placed_by VARCHAR NOT NULL,
        released_at TIMESTAMP,
        released_by VARCHAR,
        release_reason VARCHAR)""",
    # -- Idempotency of non-money forms (bankms/once.py): opening an account or onboarding a
    # customer twice from one form instance returns the first result instead.
    """CREATE TABLE IF NOT EXISTS request_keys (
        key VARCHAR PRIMARY KEY,
        action VARCHAR NOT NULL,
        actor VARCHAR NOT NULL,
        result VARCHAR NOT NULL,
        created_at TIMESTAMP NOT NULL)""",
]


class _CursorFailed(Exception):
    pass


def connect(path: str) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(path)
    migrate(con)
    return con


def migrate(con) -> None:
    """Create or upgrade the schema, then checkpoint so no schema change waits in the WAL."""
    con.execute("BEGIN")
    try:
        for statement in SCHEMA:
            con.execute(statement)
        con.execute(
            "INSERT INTO settings VALUES ('schema_version', ?) ON CONFLICT (key) DO NOTHING",
            [str(SCHEMA_VERSION)],
        )
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    con.execute("CHECKPOINT")


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


class UnitOfWork:
    """A database transaction that rolls back unless `commit()` is called.

    DuckDB answers COMMIT normally after a failed statement and silently rolls everything
    back, so this class remembers any failure and refuses to report a commit afterwards.
    """

    def __init__(self, cur):
        self.cur = cur
        self._failed = False
        self._done = False

    def __enter__(self):
        self.cur.execute("BEGIN")
        return self

    def execute(self, sql, params=None):
        try:
            return self.cur.execute(sql, params) if params is not None else self.cur.execute(sql)
        except Exception:
            self._failed = True
            raise

    def fetchall(self, sql, params=None):
        return self.execute(sql, params).fetchall()

    def fetchone(self, sql, params=None):
        rows = self.execute(sql, params).fetchall()
        return rows[0] if rows else None

    def mark_failed(self):
        self._failed = True

    def commit(self):
        if self._failed:
            raise RuntimeError("a statement in this unit of work failed; refusing to commit")
        self.cur.execute("COMMIT")
        self._done = True

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
        return False
