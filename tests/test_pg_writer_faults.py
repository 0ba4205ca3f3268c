"""The writer's unit of work on PostgreSQL when a statement fails right after the writer lock
is taken (found in review of writer lanes): the lock is given back and memory stays stale."""
from __future__ import annotations

import datetime as dt

import psycopg
import pytest

import bankms
from bankms.store import postgres
from conftest import funded_account, make_customer


def open_bank(url):
    return bankms.open_bank(url, bcrypt_rounds=4)


def test_a_failed_refresh_does_not_leave_a_batch_on_a_stale_business_date(pg_database):
    """A shared batch notes the other writers' clock (CALLS_CLOCK) as it takes the lock; when
    the refresh that follows fails (a cancelled or timed-out statement on a live session), the
    writer must stay stale, or the next batch, seeing the clock unmoved, posts on the old
    business date."""
    first, second = open_bank(pg_database), open_bank(pg_database)
    try:
        system = first.system_actor()
        cid = make_customer(first)
        a = funded_account(first, "100.00", customer_id=cid)
        b = funded_account(first, None, customer_id=cid)
        first._listening.stop()
        later = first.business_date + dt.timedelta(days=3)
        second.write(lambda uow: uow.execute(
            "UPDATE settings SET value = ? WHERE key = 'business_date'", [later.isoformat()]))
        writer = first._writer
        refresh = writer._refresh
        failed = []

        def failing_once(uow):
            if not failed:
                failed.append(True)
                raise RuntimeError("statement cancelled (injected)")
            return refresh(uow)
        writer._refresh = failing_once
        with pytest.raises(Exception):
            first.payments.transfer(system, a, b, "1.00")
        receipt = first.payments.transfer(system, a, b, "2.00")
        posted = first.read_one("SELECT business_date FROM transactions WHERE id = ?",
                                [receipt.transaction_id])
        assert posted == (later,), f"posted on {posted[0]}, the business date is {later}"
    finally:
        second.close()
        first.close()


def test_a_failed_tick_gives_the_shared_writer_lock_back(pg_database):
    """_LOCK_SHARED is one multi-statement query: the lock, then the clocks. When the second
    statement fails (here its sequence is missing; in life a cancel or timeout landing on it),
    the session lock outlives the error: unless the unit of work gives it back, every exclusive
    job of every process (end of day, settings, account close) waits forever."""
    first, second = open_bank(pg_database), open_bank(pg_database)
    try:
        system = first.system_actor()
        cid = make_customer(first)
        a = funded_account(first, "100.00", customer_id=cid)
        b = funded_account(first, None, customer_id=cid)
        with psycopg.connect(pg_database, autocommit=True) as conn:
            conn.execute(f"ALTER SEQUENCE {postgres.CALLS_CLOCK} RENAME TO calls_away")
        try:
            with pytest.raises(Exception):
                first.payments.transfer(system, a, b, "1.00")
        finally:
            with psycopg.connect(pg_database, autocommit=True) as conn:
                conn.execute(f"ALTER SEQUENCE calls_away RENAME TO {postgres.CALLS_CLOCK}")
        with psycopg.connect(pg_database, autocommit=True) as conn:
            held = conn.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND mode = "
                "'ShareLock' AND granted AND database = (SELECT oid FROM pg_database WHERE "
                "datname = current_database())").fetchone()[0]
        assert held == 0, f"{held} shared writer lock(s) still held after the failed batch"
    finally:
        second.close()
        first.close()
