"""accounts.list after postings reads only balances again and keeps the other columns from its
last full read while no other write has run (Accounts._listed, Writer.calls_seq; issue 13).
The answer must equal a full read from the database after any mix of postings and the writes
that change other columns (freeze, close, overdraft limits, holds, new accounts)."""
from __future__ import annotations

import threading
from decimal import Decimal

import pandas as pd
import pytest
from conftest import customer_account, employee, funded_account
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bankms.domain.errors import BankError

# Money moves or rules are checked here: each test runs on DuckDB and on PostgreSQL.
pytestmark = pytest.mark.engines


def full_read(bank, actor, customer_id=None):
    """What list answers with nothing kept: the plain SQL and its DataFrame. What list keeps
    is put back afterwards, so that the next list uses it as it would have."""
    shapes = dict(bank.accounts._shapes)
    bank._kept.clear()
    bank.accounts._shapes.clear()
    try:
        return bank.accounts.list(actor, customer_id)
    finally:
        bank._kept.clear()
        bank.accounts._shapes.clear()
        bank.accounts._shapes.update(shapes)


OPERATIONS = st.lists(st.tuples(
    st.sampled_from(["deposit", "withdraw", "transfer", "hold", "freeze", "unfreeze",
                     "overdraft", "open", "close"]),
    st.integers(0, 5), st.integers(0, 5), st.integers(1, 90_000)), min_size=1, max_size=12)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations=OPERATIONS)
def test_list_equals_a_full_read_after_any_writes(bank, operations):
    if not hasattr(bank, "_test_people"):
        bank._test_people = (employee(bank, "manager"), employee(bank, "teller"))
        cid, number = customer_account(bank, "Kim Kept", "500.00")
        bank._test_accounts = [number, funded_account(bank, "20.00", customer_id=cid)]
        bank._test_cid = cid
        customer_account(bank, "Other Owner", "70.00")
    manager, teller = bank._test_people
    system, cid, numbers = bank.system_actor(), bank._test_cid, bank._test_accounts
    # Listed first, so that the answers compared below may come from the kept columns.
    bank.accounts.list(manager, cid)
    bank.accounts.list(manager)
    for op, i, j, cents in operations:
        a, b = numbers[i % len(numbers)], numbers[j % len(numbers)]
        amount = f"{cents // 100}.{cents % 100:02d}"
        try:
            if op == "deposit":
                bank.payments.deposit(system, a, amount)
            elif op == "withdraw":
                bank.payments.withdraw(system, a, amount)
            elif op == "transfer":
                bank.payments.transfer(system, a, b, amount)
            elif op == "hold":
                # Above the teller's limit: waits for approval with a hold on the money.
                bank.payments.withdraw(teller, a, "15000.00")
            elif op == "freeze":
                bank.accounts.freeze(manager, a, "test")
            elif op == "unfreeze":
                bank.accounts.unfreeze(manager, a, "test")
            elif op == "overdraft":
                bank.accounts.set_overdraft_limit(manager, a, amount)
            elif op == "open":
                numbers.append(bank.accounts.open(system, cid))
            elif op == "close":
                bank.accounts.close(manager, a, payout_account=b)
        except BankError:
            pass
        for customer_id in (cid, None):
            listed = bank.accounts.list(manager, customer_id)
            pd.testing.assert_frame_equal(listed, full_read(bank, manager, customer_id))
            # A posting now sends the next list down the lean path if nothing else was
            # written since its last full read; it must agree with a full read too.
            bank.payments.deposit(system, numbers[0], "0.01")
            lean = bank.accounts.list(manager, customer_id)
            pd.testing.assert_frame_equal(lean, full_read(bank, manager, customer_id))


def test_a_listing_read_while_other_writes_run_is_whole(bank):
    """Readers racing postings and overdraft changes always see rows of one committed state:
    each row's available equals balance - holds + overdraft limit of that same row."""
    manager = employee(bank, "manager")
    system = bank.system_actor()
    cid, number = customer_account(bank, "Race Reader", "1000.00")
    other = funded_account(bank, "1000.00", customer_id=cid)
    stop = threading.Event()
    problems = []

    def read():
        while not stop.is_set():
            df = bank.accounts.list(manager, cid)
            active = df[df["status"] == "active"]
            expected = (active["balance_cents"] - active["holds_cents"]
                        + active["overdraft_limit_cents"])
            if not (active["available_cents"] == expected).all():
                problems.append(df)

    readers = [threading.Thread(target=read) for _ in range(2)]
    for t in readers:
        t.start()
    try:
        for k in range(60):
            bank.payments.transfer(system, number, other, "1.00")
            bank.accounts.set_overdraft_limit(manager, number, f"{k}.00")
    finally:
        stop.set()
        for t in readers:
            t.join()
    assert problems == []
    pd.testing.assert_frame_equal(bank.accounts.list(manager, cid), full_read(bank, manager, cid))


class _Broken(RuntimeError):
    pass


def _fail_in_hashing(bank, monkeypatch):
    """The next posting batch fails after its guards moved the poster's cached balances and
    before anything is written: its unit of work rolls back."""
    chains = bank._writer._post_batch.chains
    real = chains.hash_batch

    def broken(*args, **kwargs):
        monkeypatch.setattr(chains, "hash_batch", real)
        raise _Broken("made to fail")
    monkeypatch.setattr(chains, "hash_batch", broken)


def _fail_after_writing(bank, monkeypatch):
    """The next other write (a Writer.call job) changes an account row and then fails."""
    number = bank.read_one("SELECT account_number FROM accounts WHERE customer_id IS NOT NULL "
                           "ORDER BY id LIMIT 1")[0]

    def fn(uow):
        uow.execute("UPDATE accounts SET holds_cents = holds_cents + 1, "
                    "balance_cents = balance_cents + 7 WHERE account_number = ?", [number])
        raise _Broken("made to fail")
    with pytest.raises(_Broken):
        bank.write(fn)


@pytest.mark.parametrize("case", [
    # A posting batch that rolls back: what the poster worked out must not reach the list.
    "batch_rolled_back",
    # A replayed idempotency key: the batch reruns with the keys looked up, nothing posts twice.
    "key_replayed",
    # Another write that rolls back after changing balance and holds.
    "call_rolled_back",
])
def test_a_kept_list_equals_a_fresh_read_after_a_rollback(bank, monkeypatch, case):
    manager = employee(bank, "manager")
    system = bank.system_actor()
    cid, number = customer_account(bank, "Rolled Back", "300.00")
    other = funded_account(bank, "40.00", customer_id=cid)
    for customer_id in (cid, None):
        bank.accounts.list(manager, customer_id)
    # Posted once, so that the next list takes the lean path from a kept shape.
    bank.payments.deposit(system, number, "1.00", idempotency_key="first")
    for customer_id in (cid, None):
        bank.accounts.list(manager, customer_id)
    if case == "batch_rolled_back":
        _fail_in_hashing(bank, monkeypatch)
        with pytest.raises(_Broken):
            bank.payments.transfer(system, number, other, "25.00")
    elif case == "key_replayed":
        bank.payments.deposit(system, number, "1.00", idempotency_key="first")
    else:
        _fail_after_writing(bank, monkeypatch)
    for customer_id in (cid, None):
        listed = bank.accounts.list(manager, customer_id)
        pd.testing.assert_frame_equal(listed, full_read(bank, manager, customer_id))
    assert list(bank.accounts.list(manager, cid)["balance_cents"]) == [30_100, 4_000]
    # And a posting after it lists what the ledger says.
    bank.payments.transfer(system, number, other, "0.50")
    for customer_id in (cid, None):
        listed = bank.accounts.list(manager, customer_id)
        pd.testing.assert_frame_equal(listed, full_read(bank, manager, customer_id))
    assert list(bank.accounts.list(manager, cid)["balance_cents"]) == [30_050, 4_050]
    assert bank.audit.verify() == []


def test_the_interest_rate_is_listed_exactly(bank):
    manager = employee(bank, "manager")
    cid, number = customer_account(bank, "Exact Rate", "10.00")
    bank.write(lambda uow: uow.execute(
        "UPDATE accounts SET interest_rate_percent = 1.2345 WHERE account_number = ?",
        [number]))
    rates = list(bank.accounts.list(manager, cid)["interest_rate_percent"])
    assert rates == [Decimal("1.2345")] and str(rates[0]) == "1.2345"
