"""PostgreSQL advisory locks (the writer lock, job_lock) are never left held on a connection
the engine keeps: when giving one back fails or answers false, that connection is closed; and a
writer whose session was closed (so, or by the server) opens a new one."""
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


def _end_writer_session(bank, url, monkeypatch) -> None:
    """The server ends the writer's session (a restart, an administrator's terminate)."""
    pid = bank._writer.cursor.info.backend_pid
    with psycopg.connect(url, autocommit=True) as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s)", [pid]).fetchone()[0]


def _close_writer_session_by_a_failed_unlock(bank, url, monkeypatch) -> None:
    """The writer lock's unlock answers false once: the engine closes the writer's session."""
    monkeypatch.setattr(postgres, "_UNLOCK", "SELECT false")
    bank.write(lambda uow: uow.execute("SELECT 1"))
    monkeypatch.undo()
    assert bank._writer.cursor.closed


@pytest.mark.parametrize("lose", [
    _end_writer_session,  # the next unit of work meets the dead session, then reconnects
    _close_writer_session_by_a_failed_unlock,  # already known closed: reconnects first
])
def test_a_writer_whose_session_ended_opens_a_new_one(pg_database, monkeypatch, lose):
    """Before, every later write of the process failed until the process restarted. A posting
    that meets the dead session is tried once more on the new one (review: it failed, and the
    app told the teller "nothing was changed")."""
    import bankms
    from conftest import funded_account

    with bankms.open_bank(pg_database, bcrypt_rounds=4) as bank:
        number = funded_account(bank, "100.00")
        lose(bank, pg_database, monkeypatch)
        system = bank.system_actor()
        bank.payments.deposit(system, number, "1.00", idempotency_key="lost-1")
        bank.payments.deposit(system, number, "2.00", idempotency_key="after-1")
        bank.payments.deposit(system, number, "2.00", idempotency_key="after-1")  # a replay
        assert bank.accounts.balance(system, number) == bankms.to_decimal("103.00")
        assert bank.audit.verify() == []


def test_a_posting_whose_commit_answer_was_lost_is_answered_once(pg_database, monkeypatch):
    """The server committed a deposit but the writer's session died before the answer came
    (COMMIT's outcome unknown to the app). The writer tries it once more on a new session:
    its idempotency key finds the committed posting, so the caller gets that receipt and the
    money moved once. Before (review), the caller got StoreUnavailable, shown as "nothing was
    changed", for a deposit that was in fact posted."""
    import bankms
    from bankms.store.port import StoreUnavailable
    from conftest import funded_account

    send_commit = postgres.PostgresUnitOfWork._send_commit
    lost = []

    def commit_then_lose_the_answer(uow):
        send_commit(uow)
        if not lost and uow.conn is bank._writer.cursor:
            lost.append(uow.conn.info.backend_pid)
            uow.conn.close()
            raise StoreUnavailable("server closed the connection unexpectedly")

    with bankms.open_bank(pg_database, bcrypt_rounds=4) as bank:
        number = funded_account(bank, "100.00")
        system = bank.system_actor()
        monkeypatch.setattr(postgres.PostgresUnitOfWork, "_send_commit",
                            commit_then_lose_the_answer)
        receipt = bank.payments.deposit(system, number, "1.00", idempotency_key="unknown-1")
        assert lost and receipt.replayed  # the first COMMIT's posting, found by its key
        again = bank.payments.deposit(system, number, "1.00", idempotency_key="unknown-1")
        assert again.transaction_id == receipt.transaction_id
        assert bank.accounts.balance(system, number) == bankms.to_decimal("101.00")
        assert bank.read_one("SELECT count(*) FROM transactions WHERE idempotency_key = ?",
                             ["unknown-1"])[0] == 1
        assert bank.audit.verify() == []


def test_a_bank_whose_read_model_cannot_open_closes_its_engine(pg_database, monkeypatch):
    """open_bank fails when the read model cannot open (its file held by another process);
    the engine it had opened is closed then, not left to the garbage collector with its
    connections (found in review)."""
    import bankms
    from bankms import bank as bank_module
    from bankms.store import readmodel

    bankms.open_bank(pg_database, bcrypt_rounds=4).close()  # the bank exists
    opened = []

    def keep(path):
        opened.append(bank_module.open_engine.__wrapped__(path))
        return opened[-1]
    keep.__wrapped__ = bank_module.open_engine
    monkeypatch.setattr(bank_module, "open_engine", keep)

    def refuse(self, *args, **kwargs):
        raise RuntimeError("the read model's file is held by another process")
    monkeypatch.setattr(readmodel.ReadModel, "__init__", refuse)
    monkeypatch.setenv("BANKMS_READ_MODEL", "1")
    with pytest.raises(RuntimeError, match="held by another process"):
        bankms.open_bank(pg_database, bcrypt_rounds=4)
    assert len(opened) == 1 and opened[0]._closed
    assert all(conn.closed for conn in opened[0]._connections)


def test_a_batch_that_cannot_reach_the_server_tries_it_once_not_once_a_request(pg_database,
                                                                               monkeypatch):
    """The writer's session is lost and no new one can be opened (the server is down): the
    batch's requests fail after one more try, not one connection attempt each (up to the
    connect timeout apiece while every caller waits; found in review). Nothing moves."""
    import threading

    import bankms
    from bankms.store.port import StoreUnavailable
    from conftest import funded_account

    with bankms.open_bank(pg_database, bcrypt_rounds=4) as bank:
        numbers = [funded_account(bank, "100.00") for _ in range(4)]
        writer = bank._writer
        writer.linger_s = writer.gap_s = 1.0  # the four deposits go in one batch
        tries = []

        def unreachable():
            tries.append(1)
            raise StoreUnavailable("connection refused")
        monkeypatch.setattr(bank.engine, "writer_session", unreachable)
        writer.cursor.close()
        system, go, errors = bank.system_actor(), threading.Barrier(4), []

        def deposit(number):
            go.wait()
            try:
                bank.payments.deposit(system, number, "1.00", idempotency_key=f"down-{number}")
            except StoreUnavailable as exc:
                errors.append(exc)
        threads = [threading.Thread(target=deposit, args=(n,)) for n in numbers]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert len(errors) == 4
        assert len(tries) == 2  # the batch, then its first request alone
        monkeypatch.undo()
        assert [bank.accounts.balance(system, n) for n in numbers] == \
            [bankms.to_decimal("100.00")] * 4
        assert bank.audit.verify() == []
