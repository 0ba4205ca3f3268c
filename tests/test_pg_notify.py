"""What one process commits, another process's reads see within milliseconds, on PostgreSQL
(issue 14, step G, first slice).

Every committed writer unit of work is announced (NOTIFY), and each bank's listener, hearing
another process's announcement, forgets what its bank keeps in memory: kept answers (balances,
accounts.list, settings), accounts.list's slow columns, the calendar and the business date
(bank.py, Bank._others_committed). Two banks opened on one database in this test process stand
for two processes (each has its own engine, writer, listener and memory; a listener skips only
its own engine's announcements); one case starts a real OS process. Freshness is
"as soon as the notification arrives", so every check polls until true, failing after
DEADLINE_S, and never sleeps a fixed time.
"""
from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time

import pytest

import bankms
from bankms.domain.errors import LimitExceeded
from bankms.store.port import NotListening
from conftest import login_for, make_customer

DEADLINE_S = 5.0
HERE = os.path.dirname(os.path.abspath(__file__))


def wait_for(predicate, what: str, deadline_s: float = DEADLINE_S):
    """predicate()'s first true answer, polled until DEADLINE_S have passed (then fail)."""
    end = time.monotonic() + deadline_s
    while True:
        answer = predicate()
        if answer:
            return answer
        if time.monotonic() > end:
            pytest.fail(f"not within {deadline_s} s: {what}")
        time.sleep(0.002)


def heard_all(listener_bank, writer_bank):
    """Wait until listener_bank's listener has dealt with every unit of work writer_bank has
    committed so far (announcements arrive in commit order, each with its writer clock)."""
    last = writer_bank.engine._clock
    wait_for(lambda: (listener_bank._listening.last_clock or 0) >= last,
             f"the listener hears clock {last}")


def open_bank(url, **kw):
    return bankms.open_bank(url, bcrypt_rounds=4, **kw)


@pytest.fixture
def two_banks(pg_database):
    """(a, b): two banks on one database, standing for two processes."""
    a = open_bank(pg_database)
    b = open_bank(pg_database)
    yield a, b
    b.close()
    a.close()


class Accounts:
    """One customer's funded checking account, made through bank a."""

    def __init__(self, a):
        system = a.system_actor()
        self.cid = make_customer(a)
        self.number = a.accounts.open(system, self.cid, kind="checking")
        a.payments.deposit(system, self.number, "100.00")


def listed(bank, acc, column):
    """One column of acc's account in bank's accounts.list (a kept answer)."""
    df = bank.accounts.list(bank.system_actor(), acc.cid)
    return df.loc[df["account_number"] == acc.number, column].iloc[0]


def close_the_day(bank):
    """End of day for the open business date, the bank's clock moved past its end."""
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=3)
    bank.clock = lambda: later
    bank.end_of_day(bank.system_actor(), until=bank.business_date)


def move_the_business_date(bank):
    """A writer job doing what end of day does last (eod/run.py close_day): the stored date
    and the writer's memory of it move to the next day."""
    def fn(uow):
        nxt = bank.state.business_date + dt.timedelta(days=1)
        uow.execute("UPDATE settings SET value = ? WHERE key = 'business_date'",
                    [nxt.isoformat()])
        bank.state.business_date = nxt
    return fn


# (case, what bank a does, what bank b reads (kept in b's memory), b's answer afterwards)
CASES = [
    ("deposit: a kept balance",
     lambda a, acc: a.payments.deposit(a.system_actor(), acc.number, "25.00"),
     lambda b, acc: int(listed(b, acc, "balance_cents")), 125_00),
    ("deposit: every customer's list",
     lambda a, acc: a.payments.deposit(a.system_actor(), acc.number, "0.01"),
     lambda b, acc: int(b.accounts.list(b.system_actor()).set_index("account_number")
                        .loc[acc.number, "balance_cents"]), 100_01),
    ("freeze: a slow column of accounts.list (calls_seq)",
     lambda a, acc: a.accounts.freeze(a.system_actor(), acc.number, "test"),
     lambda b, acc: listed(b, acc, "status"), "frozen"),
    ("setting: the daily limit",
     lambda a, acc: a.settings.set(a.system_actor(), "customer_daily_transfer_cents_max",
                                   "1234"),
     lambda b, acc: b.settings.get_int("customer_daily_transfer_cents_max"), 1234),
    ("end of day: the business date",
     lambda a, acc: close_the_day(a),
     lambda b, acc: b.business_date, "next day"),
    ("the business date moved as end of day's last step moves it",
     lambda a, acc: a.write(move_the_business_date(a)),
     lambda b, acc: b.business_date, "next day"),
]


@pytest.mark.parametrize("case, act, read, expected",
                         [c if hasattr(c, "marks") else pytest.param(*c, id=c[0])
                          for c in CASES])
def test_another_process_s_commit_reaches_this_process_s_reads(two_banks, case, act, read,
                                                               expected):
    a, b = two_banks
    acc = Accounts(a)
    if expected == "next day":
        expected = b.business_date + dt.timedelta(days=1)
    # b keeps its answer from before (the second read comes from memory).
    before = read(b, acc)
    assert before != expected and read(b, acc) == before
    act(a, acc)
    wait_for(lambda: read(b, acc) == expected, f"{case}: b sees a's commit")


def test_the_next_guarded_request_uses_a_limit_set_by_another_process(two_banks):
    a, b = two_banks
    acc, other = Accounts(a), Accounts(a)
    alice = login_for(a, acc.cid, "alice")
    # b's guard reads the limit (500.00 by default) and keeps it.
    b.payments.transfer(alice, acc.number, other.number, "10.00")
    assert b.settings.get_int("customer_daily_transfer_cents_max") == 5000_00
    a.settings.set(a.system_actor(), "customer_daily_transfer_cents_max", "1500")
    wait_for(lambda: b.settings.get_int("customer_daily_transfer_cents_max") == 1500,
             "b hears of the new limit")
    # 10.00 sent already: 5.00 is left today.
    with pytest.raises(LimitExceeded):
        b.payments.transfer(alice, acc.number, other.number, "5.01")
    b.payments.transfer(alice, acc.number, other.number, "5.00")


def test_a_bank_skips_its_own_announcements_and_counts_each_other_one(two_banks):
    a, b = two_banks
    acc = Accounts(a)
    system = b.system_actor()
    # Announcements arrive in commit order: once b has heard a's last, it heard all of a's.
    heard_all(b, a)
    calls_before = b.calls_seq
    writes_before = b._foreign_writes
    for _ in range(3):
        b.payments.deposit(system, acc.number, "1.00")
    b.accounts.freeze(system, acc.number, "own")
    # One commit of a's: heard after b's own (commit order), which were skipped.
    a.payments.deposit(a.system_actor(), acc.number, "1.00")
    wait_for(lambda: b._foreign_writes > writes_before, "b hears a's deposit")
    assert b._foreign_writes == writes_before + 1
    # b's own freeze moved calls_seq by 2; a posting batch of a's leaves it alone. Even: idle.
    assert b.calls_seq == calls_before + 2 and b.calls_seq % 2 == 0


def test_a_dropped_listener_connection_comes_back_and_forgets_everything(two_banks, pg_admin):
    a, b = two_banks
    acc = Accounts(a)
    assert wait_for(lambda: int(listed(b, acc, "balance_cents")) == 100_00, "b's balance")
    listening = b._listening
    old_pid, writes = listening.backend_pid, b._foreign_writes
    pg_admin.execute("SELECT pg_terminate_backend(%s)", [old_pid])
    wait_for(lambda: listening.reconnects == 1, "the listener connects again")
    assert listening.backend_pid != old_pid
    # Back: everything forgotten once (a commit may have gone unheard meanwhile).
    assert b._foreign_writes > writes
    a.payments.deposit(a.system_actor(), acc.number, "2.00")
    wait_for(lambda: int(listed(b, acc, "balance_cents")) == 102_00,
             "b hears a's deposit after the reconnection")


def test_a_real_process_s_deposit_reaches_this_process(pg_database):
    bank = open_bank(pg_database)
    try:
        acc = Accounts(bank)
        assert int(listed(bank, acc, "balance_cents")) == 100_00
        script = ("import sys, bankms; b = bankms.open_bank(sys.argv[1], bcrypt_rounds=4); "
                  "b.payments.deposit(b.system_actor(), sys.argv[2], '7.00'); b.close()")
        subprocess.run([sys.executable, "-c", script, pg_database, acc.number], check=True,
                       cwd=os.path.dirname(HERE), timeout=120)
        wait_for(lambda: int(listed(bank, acc, "balance_cents")) == 107_00,
                 "this process sees the other process's deposit")
    finally:
        bank.close()


def test_duckdb_has_no_listener(tmp_path):
    bank = open_bank(str(tmp_path / "bank.duckdb"))
    try:
        assert bank._listening is None
        assert isinstance(bank.engine.listen(lambda change: None), NotListening)
        assert bank._foreign_writes == bank._foreign_calls == 0
    finally:
        bank.close()
