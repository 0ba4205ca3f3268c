"""PostgreSQL advisory locks (the writer lock, job_lock) are never left held on a connection
the engine keeps: when giving one back fails or answers false, that connection is closed."""
from __future__ import annotations

import psycopg
import pytest

from bankms.store import postgres
from bankms.store.postgres import JOB_LOCK_KEYS, WRITER_LOCK_KEY, PostgresEngine

# Unlock statements that fail, or answer false, on a connection that stays usable.
BAD_UNLOCKS = ["SELECT false", "SELECT 1 / 0 = 1"]


def _free(url: str, key: int) -> bool:
    """Whether another session can take the advisory lock `key` now (and gives it back)."""
    with psycopg.connect(url, autocommit=True) as other:
        taken = other.execute(f"SELECT pg_try_advisory_lock({key})").fetchone()[0]
        if taken:
            other.execute(f"SELECT pg_advisory_unlock({key})")
    return taken


@pytest.mark.parametrize("bad", BAD_UNLOCKS)
def test_a_job_lock_not_given_back_closes_its_connection(pg_database, monkeypatch, bad):
    engine = PostgresEngine(pg_database)
    try:
        monkeypatch.setattr(postgres, "_JOB_UNLOCK", bad)
        with engine.job_lock("end_of_day") as held:
            assert held
        assert _free(pg_database, JOB_LOCK_KEYS["end_of_day"])
        other = PostgresEngine(pg_database)
        try:
            with other.job_lock("end_of_day") as held:
                assert held
        finally:
            other.close()
    finally:
        engine.close()


@pytest.mark.parametrize("bad", BAD_UNLOCKS)
def test_a_writer_lock_not_given_back_closes_its_connection(pg_database, monkeypatch, bad):
    engine = PostgresEngine(pg_database)
    try:
        monkeypatch.setattr(postgres, "_UNLOCK", bad)
        with engine.unit_of_work(exclusive=True) as uow:
            uow.execute("SELECT 1")
            uow.commit()
        assert _free(pg_database, WRITER_LOCK_KEY)
        assert engine.read("SELECT 1") == [(1,)]  # the thread opens a new connection
        assert all(not c.closed for c in engine._connections)
    finally:
        engine.close()
