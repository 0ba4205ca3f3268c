"""End of day runs in exactly one process while the others serve (issue 14, step G), on
PostgreSQL: every app process has its automatic scheduler, and a manager may start end of day
in any of them; an advisory lock (engine.job_lock, eod.run.one_process) lets one run it, the
others' schedulers skip and a manager elsewhere is told it is running. Two Bank objects on one
database stand for two processes (each has its own engine, writer, listener and memory).
"""
from __future__ import annotations

import datetime as dt
import threading

import pytest

import bankms
from bankms.domain.errors import EndOfDayRunning
from bankms.services.eod import auto as eod_auto, run as eod
from conftest import Clock, funded_account

DAY = dt.timedelta(days=1)
D0 = dt.date(2026, 3, 10)
AFTER_THREE_DAYS = dt.datetime(2026, 3, 13, 12, 0, tzinfo=dt.timezone.utc)  # D0..D0+2 ended


@pytest.fixture
def two_processes(pg_database):
    clock = Clock(dt.datetime(2026, 3, 10, 12, 0))
    first = bankms.open_bank(pg_database, bcrypt_rounds=4, clock=clock)
    second = bankms.open_bank(pg_database, bcrypt_rounds=4, clock=clock)
    try:
        assert first.business_date == second.business_date == D0
        yield first, second, clock
    finally:
        second.close()
        first.close()


def test_both_schedulers_at_once_close_each_day_once(two_processes):
    first, second, clock = two_processes
    savings = funded_account(first, "1000.00", kind="savings")
    clock.now = AFTER_THREE_DAYS
    schedulers = [eod_auto.EodScheduler(bank) for bank in (first, second)]
    results = [None, None]
    start = threading.Barrier(2)

    def tick(i):
        start.wait()
        results[i] = schedulers[i].tick()
    threads = [threading.Thread(target=tick, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(len(r.days) if r else 0 for r in results) == [0, 3]
    assert first.read("SELECT business_date FROM eod_runs ORDER BY 1") == [
        (D0,), (D0 + DAY,), (D0 + 2 * DAY,)]
    assert first.read("SELECT accrual_date, count(*) FROM interest_accruals a JOIN accounts c "
                      "ON c.id = a.account_id WHERE c.account_number = ? GROUP BY 1 ORDER BY 1",
                      [savings]) == [(D0 + k * DAY, 1) for k in range(3)]
    assert first.read("SELECT count(*) FROM audit_log WHERE action = 'eod.auto.started'") == [(1,)]
    # Both processes now stand on the next day, and the loser's next tick has nothing to do.
    assert second.business_date == first.business_date == D0 + 3 * DAY
    assert all(s.tick() is None for s in schedulers)
    assert first.audit.verify() == []


def test_while_one_process_runs_end_of_day_the_other_refuses_skips_and_posts(two_processes):
    first, second, clock = two_processes
    account = funded_account(second, "100.00")
    clock.now = AFTER_THREE_DAYS
    with eod.one_process(first) as held:  # end of day running in the first process
        assert held
        with pytest.raises(EndOfDayRunning, match="another process"):
            second.end_of_day(second.system_actor())
        assert eod_auto.EodScheduler(second).tick() is None
        second.payments.deposit(second.system_actor(), account, "5.00")
    assert second.read("SELECT count(*) FROM audit_log WHERE action = 'bank.end_of_day' "
                       "AND outcome = 'refused'") == [(1,)]
    assert second.read("SELECT count(*) FROM eod_runs") == [(0,)]
    # Once it is free, the other process's call closes the days (and only once).
    assert len(second.end_of_day(second.system_actor()).days) == 3
    assert len(first.end_of_day(first.system_actor()).days) == 0
    assert first.read("SELECT balance_cents FROM accounts WHERE account_number = ?",
                      [account]) == [(10500,)]
