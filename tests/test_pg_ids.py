"""On PostgreSQL every id the ledger and the audit log take comes from a sequence through
uow.take_ids (issue 14, writer lanes: several processes' writers take ids at once), never from
a writer's in-memory counters; each unit of work takes them only after it has its transaction
id (the read model's watermark rule, store/readmodel.py above LEDGER_SEQUENCES). A bank whose
ids came from counters gets its sequences moved past its ids when it opens."""
from __future__ import annotations

import psycopg
import pytest

import bankms
from bankms.store import postgres
from bankms.store.db import LEDGER_SEQUENCES
from conftest import make_customer


def open_bank(url):
    return bankms.open_bank(url, bcrypt_rounds=4)


def some_posting(bank):
    """A customer with two funded accounts, a transfer between them and a refused one (so
    that audit rows are written by the posting batch and by the services)."""
    system = bank.system_actor()
    cid = make_customer(bank)
    a = bank.accounts.open(system, cid, kind="checking")
    b = bank.accounts.open(system, cid, kind="checking")
    bank.payments.deposit(system, a, "100.00")
    bank.payments.transfer(system, a, b, "25.00")
    with pytest.raises(Exception):
        bank.payments.transfer(system, a, b, "1000.00")
    return a, b


def sequence_values(url) -> dict:
    """{table: (its highest id, its sequence's last id handed out)}."""
    out = {}
    with psycopg.connect(url) as conn:
        for table, sequence in LEDGER_SEQUENCES.items():
            top = conn.execute(f"SELECT max(id) FROM {table}").fetchone()[0]
            last, called = conn.execute(
                f"SELECT last_value, is_called FROM {sequence}").fetchone()
            out[table] = (top, last if called else None)
    return out


def test_ledger_ids_come_from_sequences_after_the_xid(pg_database, monkeypatch):
    statements = []
    run = postgres.PostgresUnitOfWork._run

    def logged(self, sql, params):
        statements.append((id(self), sql))
        return run(self, sql, params)
    monkeypatch.setattr(postgres.PostgresUnitOfWork, "_run", logged)
    bank = open_bank(pg_database)
    try:
        some_posting(bank)
        # Counters are not even kept: a taker that used them would fail here.
        assert not bank.state.counters and not hasattr(bank.state, "next_transaction_id")
    finally:
        bank.close()
    # Every row's id was handed out by its table's sequence (gaps allowed).
    for table, (top, last) in sequence_values(pg_database).items():
        assert top is not None and last is not None and top <= last, table
    # In every unit of work that took ledger ids, the xid came first.
    takers = 0
    for uow in {u for u, _ in statements}:
        mine = [sql for u, sql in statements if u == uow]
        takes = [i for i, sql in enumerate(mine) if "nextval('" in sql and any(
            f"nextval('{s}')" in sql for s in LEDGER_SEQUENCES.values())]
        if takes:
            takers += 1
            xid = [i for i, sql in enumerate(mine) if "pg_current_xact_id()" in sql]
            # Before, or earlier in the same multi-statement query (take_ids_many).
            assert xid and (xid[0] < takes[0] or (xid[0] == takes[0] and mine[xid[0]].index(
                "pg_current_xact_id()") < mine[xid[0]].index("nextval("))), mine
    assert takers >= 3


def test_a_bank_whose_ids_came_from_counters_gets_its_sequences_moved_past_them(pg_database):
    bank = open_bank(pg_database)
    try:
        a, b = some_posting(bank)
        tops = {t: top for t, (top, _) in sequence_values(pg_database).items()}
    finally:
        bank.close()
    # As a bank from before the sequences (ids from counters): none of them exists.
    with psycopg.connect(pg_database) as conn:
        for sequence in LEDGER_SEQUENCES.values():
            conn.execute(f"DROP SEQUENCE {sequence}")
    bank = open_bank(pg_database)
    try:
        receipt = bank.payments.transfer(bank.system_actor(), a, b, "1.00")
        assert receipt.transaction_id > tops["transactions"]
        assert bank.audit.verify() == []
    finally:
        bank.close()
    after = sequence_values(pg_database)
    for table, top in tops.items():
        assert after[table][0] > top, table
