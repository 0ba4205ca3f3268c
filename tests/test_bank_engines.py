"""The Bank's core money flows on both engines (issue 14, step E2): one process, one writer.

Each test runs once on DuckDB (a file under tmp_path) and once on PostgreSQL (a database of
its own, tests/pgcluster.py): registering a customer, opening accounts, deposits, withdrawals
and transfers exact to the cent, refusals that write nothing, idempotency keys (a replay posts
once, a different request under a used key is refused), a reversal, an account's history,
audit.verify() clean after all of it, and a reopened bank that sees the same balances and
continues the ids.
"""
from __future__ import annotations

import datetime as dt

import pytest

import bankms
from bankms.domain.errors import (AlreadyReversed, IdempotencyConflict, InsufficientFunds,
                                  SameAccount)
from bankms.store.port import DuplicateKey
from conftest import make_customer

pytestmark = pytest.mark.engines


class Opened:
    """A bank opened on the engine under test, and how to open it again."""

    def __init__(self, engine, tmp_path):
        self.url = engine.url if engine.name == "pg" else str(tmp_path / "bank.duckdb")
        self.bank = None

    def open(self):
        self.bank = bankms.open_bank(self.url, bcrypt_rounds=4)
        return self.bank

    def reopen(self):
        self.bank.close()
        return self.open()


@pytest.fixture
def opened(engine, tmp_path):
    o = Opened(engine, tmp_path)
    o.open()
    yield o
    o.bank.close()


@pytest.fixture
def bank(opened):
    return opened.bank


def two_accounts(bank):
    """A customer with a checking account holding 1,000.00 and an empty savings account."""
    system = bank.system_actor()
    cid = make_customer(bank)
    checking = bank.accounts.open(system, cid, kind="checking")
    savings = bank.accounts.open(system, cid, kind="savings")
    bank.payments.deposit(system, checking, "1000.00")
    return checking, savings


def cents(bank, number) -> int:
    (balance,) = bank.read_one("SELECT balance_cents FROM accounts WHERE account_number = ?",
                               [number])
    return balance


def ledger_rows(bank) -> tuple[int, int]:
    return bank.read_one("SELECT (SELECT count(*) FROM transactions), "
                         "(SELECT count(*) FROM postings)")


def test_the_bank_opens_on_the_engine(bank, engine):
    assert bank.engine.name == {"duckdb": "duckdb", "pg": "postgresql"}[engine.name]
    assert bank.audit.verify() == []


def test_a_registered_customer_and_her_accounts_are_read_back(bank):
    system = bank.system_actor()
    cid = make_customer(bank, name="Ada Lovelace")
    checking = bank.accounts.open(system, cid, kind="checking")
    savings = bank.accounts.open(system, cid, kind="savings")
    assert bank.customers.get(system, cid)["full_name"] == "Ada Lovelace"
    got = {a["account_number"]: (a["kind"], a["status"], a["balance"])
           for a in bank.accounts.list(system, cid).to_dict("records")}
    assert got == {checking: ("checking", "active", 0), savings: ("savings", "active", 0)}
    assert bank.audit.verify() == []


# Steps on (bank, system, checking, savings); each returns what the payment returned.
def deposit(amount, key=None):
    return lambda b, s, c, v: b.payments.deposit(s, c, amount, idempotency_key=key)


def withdraw(amount, key=None):
    return lambda b, s, c, v: b.payments.withdraw(s, c, amount, idempotency_key=key)


def transfer(amount, key=None, *, back=False):
    def step(b, s, c, v):
        source, target = (v, c) if back else (c, v)
        return b.payments.transfer(s, source, target, amount, idempotency_key=key)
    return step


def reverse_last(b, s, c, v):
    (tid,) = b.read_one("SELECT max(id) FROM transactions")
    return b.payments.reverse(s, tid, "entered twice")


def same_account(b, s, c, v):
    return b.payments.transfer(s, c, c, "1.00")


# (case, steps, error of the last step or None, checking cents, savings cents, new transactions)
MONEY_CASES = [
    ("deposit", [deposit("250.50")], None, 125_050, 0, 1),
    ("withdraw", [withdraw("200.00")], None, 80_000, 0, 1),
    ("transfer", [transfer("300.25")], None, 69_975, 30_025, 1),
    ("transfer_and_back", [transfer("300.25"), transfer("0.25", back=True)], None,
     70_000, 30_000, 2),
    ("withdraw_one_cent_too_many", [withdraw("1000.01")], InsufficientFunds, 100_000, 0, 0),
    ("transfer_too_much", [transfer("5000.00")], InsufficientFunds, 100_000, 0, 0),
    ("transfer_to_itself", [same_account], SameAccount, 100_000, 0, 0),
    ("repeated_key_posts_once", [deposit("100.00", "k1"), deposit("100.00", "k1")], None,
     110_000, 0, 1),
    ("different_request_under_a_used_key", [deposit("100.00", "k2"), deposit("200.00", "k2")],
     IdempotencyConflict, 110_000, 0, 1),
    ("key_reused_for_another_kind", [deposit("100.00", "k3"), withdraw("100.00", "k3")],
     IdempotencyConflict, 110_000, 0, 1),
    ("reversal", [transfer("300.25"), reverse_last], None, 100_000, 0, 2),
    ("second_reversal_refused", [transfer("1.00"), reverse_last,
                                 lambda b, s, c, v: b.payments.reverse(
                                     s, b.read_one("SELECT min(id) FROM transactions "
                                                   "WHERE kind = 'transfer'")[0], "again",
                                     idempotency_key="another-key")],
     AlreadyReversed, 100_000, 0, 2),
]


@pytest.mark.parametrize("case, steps, error, checking_cents, savings_cents, new_tx",
                         MONEY_CASES, ids=[c[0] for c in MONEY_CASES])
def test_money_flows(bank, case, steps, error, checking_cents, savings_cents, new_tx):
    system = bank.system_actor()
    checking, savings = two_accounts(bank)
    before = ledger_rows(bank)
    for step in steps[:-1]:
        step(bank, system, checking, savings)
    if error is None:
        steps[-1](bank, system, checking, savings)
    else:
        with pytest.raises(error):
            steps[-1](bank, system, checking, savings)
    assert (cents(bank, checking), cents(bank, savings)) == (checking_cents, savings_cents)
    after = ledger_rows(bank)
    assert after[0] - before[0] == new_tx
    assert bank.audit.verify() == []


def test_a_replayed_key_returns_the_first_receipt(bank):
    system = bank.system_actor()
    checking, savings = two_accounts(bank)
    first = bank.payments.transfer(system, checking, savings, "12.34", idempotency_key="r1")
    again = bank.payments.transfer(system, checking, savings, "12.34", idempotency_key="r1")
    assert (again.transaction_id, again.amount, again.replayed, first.replayed) == (
        first.transaction_id, first.amount, True, False)
    assert again.amount_cents == 1234


def test_a_batch_of_concurrent_requests_with_one_repeated_key_posts_it_once(bank):
    # Requests queued together reach the writer as one batch; the repeated key makes the
    # batch writer raise DuplicateKey, and the writer reruns the batch looking keys up.
    import concurrent.futures
    system = bank.system_actor()
    checking, savings = two_accounts(bank)
    keys = [f"c{i}" for i in range(20)] + ["c0", "c1"]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        receipts = list(pool.map(lambda k: bank.payments.transfer(
            system, checking, savings, "1.00", idempotency_key=k), keys))
    assert len({r.transaction_id for r in receipts}) == 20
    assert (cents(bank, checking), cents(bank, savings)) == (98_000, 2_000)
    assert bank.audit.verify() == []


def test_an_accounts_history_is_exact(bank):
    system = bank.system_actor()
    checking, savings = two_accounts(bank)
    bank.payments.transfer(system, checking, savings, "300.25", memo="rent")
    bank.payments.withdraw(system, checking, "0.75")
    history = bank.accounts.history(system, checking)
    rows = list(zip(history["kind"], history["amount_cents"].tolist(),
                    history["balance_cents"].tolist(), history["counterparty"]))
    assert rows == [("withdrawal", -75, 69_900, ""),
                    ("transfer", -30_025, 69_975, savings),
                    ("deposit", 100_000, 100_000, "")]
    assert history["balance_cents"].dtype.kind == "i"
    assert history["memo"].tolist()[1] == "rent"
    assert isinstance(history["posted_at"].iloc[0].to_pydatetime(), dt.datetime)


def test_a_monthly_statement_is_exact(bank):
    system = bank.system_actor()
    checking, savings = two_accounts(bank)
    bank.payments.transfer(system, checking, savings, "300.25", memo="rent")
    bank.payments.deposit(system, checking, "0.50")
    day = bank.business_date
    st = bank.reports.statement(system, checking, day.year, day.month)
    figures = (st.opening_cents, st.credits_cents, st.debits_cents, st.closing_cents)
    assert figures == (0, 100_050, 30_025, 70_025)
    assert all(type(v) is int for v in figures)
    lines = st.lines
    assert [int(c) for c in lines["amount_cents"]] == [100_000, -30_025, 50]
    assert [int(c) for c in lines["balance_cents"]] == [100_000, 69_975, 70_025]
    assert (day.year, day.month) in bank.reports.statement_months(system, checking)


# (case, history filter given the accounts, kinds of the rows found, newest first)
HISTORY_FILTERS = [
    ("memo_text", lambda c, v: {"text": "RENT"}, ["transfer"]),
    ("short_text_matches_no_account_number", lambda c, v: {"text": v[:3]}, []),
    ("account_number_text", lambda c, v: {"text": v[:6]}, ["transfer"]),
    ("kind", lambda c, v: {"kind": "withdrawal"}, ["withdrawal"]),
    ("business_dates", lambda c, v: {"start": "2000-01-01", "end": "2000-12-31"}, []),
]


@pytest.mark.parametrize("case, given, kinds", HISTORY_FILTERS,
                         ids=[c[0] for c in HISTORY_FILTERS])
def test_history_filters(bank, case, given, kinds):
    system = bank.system_actor()
    checking, savings = two_accounts(bank)
    bank.payments.transfer(system, checking, savings, "300.25", memo="rent")
    bank.payments.withdraw(system, checking, "0.75")
    history = bank.accounts.history(system, checking, **given(checking, savings))
    assert history["kind"].tolist() == kinds


# (case, search text given the customer's account number, whether Ada is found)
SEARCHES = [
    ("name", lambda number: "lovelace", True),
    ("phone_digits", lambda number: "555 0199", True),
    ("account_number", lambda number: number, True),
    ("short_digits_match_no_phone", lambda number: "55", False),
    ("someone_else", lambda number: "babbage", False),
]


@pytest.mark.parametrize("case, query, found", SEARCHES, ids=[c[0] for c in SEARCHES])
def test_customer_search(bank, case, query, found):
    system = bank.system_actor()
    cid = make_customer(bank, name="Ada Lovelace", phone="+1 555 0199")
    number = bank.accounts.open(system, cid, kind="checking")
    hits = bank.customers.search(system, query(number))
    assert (cid in hits["customer_id"].tolist()) is found


def test_a_reopened_bank_sees_the_same_balances_and_continues_the_ids(opened):
    bank = opened.bank
    system = bank.system_actor()
    checking, savings = two_accounts(bank)
    first = bank.payments.transfer(system, checking, savings, "10.00", idempotency_key="o1")
    (last_audit,) = bank.read_one("SELECT max(id) FROM audit_log")
    bank = opened.reopen()
    system = bank.system_actor()
    assert (cents(bank, checking), cents(bank, savings)) == (99_000, 1_000)
    replay = bank.payments.transfer(system, checking, savings, "10.00", idempotency_key="o1")
    assert (replay.transaction_id, replay.replayed) == (first.transaction_id, True)
    second = bank.payments.transfer(system, checking, savings, "10.00")
    # Ids go on after the reopen (a batch rerun for a repeated key may leave a gap).
    assert second.transaction_id > first.transaction_id
    assert bank.read_one("SELECT count(*), count(DISTINCT id) FROM transactions") == (3, 3)
    (audit_min_new,) = bank.read_one("SELECT min(id) FROM audit_log WHERE id > ?", [last_audit])
    assert audit_min_new > last_audit
    assert (cents(bank, checking), cents(bank, savings)) == (98_000, 2_000)
    assert bank.audit.verify() == []


# (case, the key written: "new" or "used" (one a posting already holds), error or None)
BATCH_WRITER_CASES = [
    ("new_key_writes_every_table", "new", None),
    ("used_key_is_a_duplicate", "used", DuplicateKey),
]


@pytest.mark.parametrize("case, key, error", BATCH_WRITER_CASES,
                         ids=[c[0] for c in BATCH_WRITER_CASES])
def test_the_engines_batch_writer(bank, case, key, error):
    """engine.batch_writer on the writer's session (engine.writer_session), in a unit of work
    on that session, as the writer runs it: one transaction, two postings, the key and both
    balances; a key already used raises the port's DuplicateKey (the writer then reruns the
    batch looking keys up)."""
    system = bank.system_actor()
    checking, savings = two_accounts(bank)
    (used,) = bank.read_one("SELECT min(key) FROM idempotency_keys")
    (a,), (b,) = (bank.read_one("SELECT id FROM accounts WHERE account_number = ?", [n])
                  for n in (checking, savings))
    (tid,) = bank.read_one("SELECT max(id) + 1000 FROM transactions")
    (pid,) = bank.read_one("SELECT max(id) + 1000 FROM postings")
    now = dt.datetime(2026, 1, 2, 3, 4, 5, 678901)
    day = bank.business_date
    # In the table's column order: ..., business_date, chain_hash, channel, lane.
    tx = [(tid, "transfer", 500, "m", checking, savings, system.username, system.role,
           "batch-key" if key == "new" else used, None, now, day, None, None, 0)]
    postings = [(pid, tid, a, -500, now), (pid + 1, tid, b, 500, now)]
    keys = [(tx[0][8], "hash", tid)]
    balances = [(a, 99_500, now, day), (b, 500, now, day)]
    session = bank.engine.writer_session()
    writer = bank.engine.batch_writer(session)
    try:
        if error is not None:
            with pytest.raises(error):
                with bank.engine.unit_of_work(cursor=session) as uow:
                    writer.write(tx, postings, keys, balances, [])
            writer.clear()
            assert bank.read_one("SELECT count(*) FROM transactions WHERE id = ?", [tid]) == (0,)
            assert cents(bank, checking) == 100_000
        else:
            with bank.engine.unit_of_work(cursor=session) as uow:
                writer.write(tx, postings, keys, balances, [])
                got = (uow.fetchall("SELECT id, amount_cents, posted_at, business_date FROM "
                                    "transactions WHERE id = ?", [tid]),
                       uow.fetchall("SELECT account_id, amount_cents FROM postings WHERE "
                                    "transaction_id = ? ORDER BY id", [tid]),
                       uow.fetchall("SELECT transaction_id FROM idempotency_keys "
                                    "WHERE key = 'batch-key'"),
                       uow.fetchall("SELECT balance_cents, last_activity_at FROM accounts "
                                    "WHERE id = ? OR id = ? ORDER BY id", [a, b]))
            # Not committed: the bank's own rows stay as they were.
            assert got == ([(tid, 500, now, day)], [(a, -500), (b, 500)], [(tid,)],
                           [(99_500, now), (500, now)])
    finally:
        session.close()
    assert bank.audit.verify() == []


# Text a batch's rows may carry that an array's text form would have to quote or escape
# (PostgreSQL's batch writer sends its arrays in binary; DuckDB's appenders take values as
# they are): every one must come back exactly as given.
AWKWARD_TEXT = ["", " ", "NULL", "null", 'a "quoted" word', "back\\slash", "{braces}",
                "a,comma", " padded ", "tab\tand\nnewline", "ünïcødé €", "it's",
                '{"memo": "with \\"escapes\\"", "n": 1}']


def test_the_engines_batch_writer_keeps_awkward_text(bank):
    """Memos and audit text with quotes, backslashes, braces, commas, spaces, the word NULL
    and the empty string are stored by engine.batch_writer as given (not NULL, not
    escaped), beside a NULL of the same column; nothing is committed."""
    system = bank.system_actor()
    checking, savings = two_accounts(bank)
    (a,), (b,) = (bank.read_one("SELECT id FROM accounts WHERE account_number = ?", [n])
                  for n in (checking, savings))
    (tid,) = bank.read_one("SELECT max(id) + 1000 FROM transactions")
    (pid,) = bank.read_one("SELECT max(id) + 1000 FROM postings")
    (aid,) = bank.read_one("SELECT max(id) + 1000 FROM audit_log")
    now = dt.datetime(2026, 1, 2, 3, 4, 5, 678901)
    day = bank.business_date
    values = [*AWKWARD_TEXT, None]
    tx = [(tid + i, "transfer", 1, memo, checking, savings, system.username, system.role,
           f"awkward-{i}", None, now, day, None, None, 0) for i, memo in enumerate(values)]
    postings = [row for i in range(len(values)) for row in
                ((pid + 2 * i, tid + i, a, -1, now), (pid + 2 * i + 1, tid + i, b, 1, now))]
    keys = [(f"awkward-{i}", text or "h", tid + i) for i, text in enumerate(values)]
    # In the table's column order: ..., outcome, chain_hash, lane.
    audit = [(aid + i, now, system.username, system.role, "test.awkward", "transaction",
              text, text, text, "ok", None, 0) for i, text in enumerate(values)]
    session = bank.engine.writer_session()
    writer = bank.engine.batch_writer(session)
    try:
        with bank.engine.unit_of_work(cursor=session) as uow:
            writer.write(tx, postings, keys, [], audit)
            memos = uow.fetchall("SELECT memo, posted_at FROM transactions WHERE id >= ? "
                                 "ORDER BY id", [tid])
            hashes = uow.fetchall("SELECT request_hash FROM idempotency_keys WHERE key LIKE "
                                  "'awkward-%' ORDER BY transaction_id")
            texts = uow.fetchall("SELECT entity_id, before, after, ts FROM audit_log "
                                 "WHERE id >= ? ORDER BY id", [aid])
    finally:
        writer.clear()
        session.close()
    assert memos == [(memo, now) for memo in values]
    assert hashes == [(text or "h",) for text in values]
    assert texts == [(text, text, text, now) for text in values]
