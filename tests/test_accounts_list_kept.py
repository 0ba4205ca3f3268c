"""accounts.list after postings reads only balances again and keeps the other columns from its
last full read while no other write has run (Accounts._listed, Writer.calls_seq; issue 13).
The answer must equal a full read from the database after any mix of postings and the writes
that change other columns (freeze, close, overdraft limits, holds, new accounts)."""
from __future__ import annotations

import threading

import pandas as pd
from conftest import customer_account, employee, funded_account
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bankms.errors import BankError


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
