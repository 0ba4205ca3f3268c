"""Working-day calendar benchmark (issue 9: due dates moved off days the bank does not work).

Builds the end-of-day benchmark's bank (benchmarks/bench_eod.py: loans paid out 2026-02-28,
due on the 28th), marks every loan as having working-day due dates, and times:

* the calendar: a cold load, and next_working_day over a year of days (cached per year);
* a change of bank_country (US -> GB), which replays every active loan with the flag and
  re-stores those whose future due dates move (the first one moves all their weekend dates);
* a bank holiday on a day no loan falls due (the usual case: one query, no replay);
* a bank holiday on a day every loan falls due (the worst case: every loan re-stored);

each a single transaction that leaves audit.verify() empty (checked at the end).

    python benchmarks/bench_workdays.py [--accounts 10000] [--loans 2000]
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import bankms  # noqa: E402
from bench_eod import build  # noqa: E402


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--loans", type=int, default=2_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        bank = bankms.open_bank(os.path.join(folder, "bank.duckdb"), bcrypt_rounds=4)
        try:
            build(bank, args.accounts, args.loans)
            bank.write(lambda uow: uow.execute("UPDATE loans SET due_dates_working_days = TRUE"))
            system = bank.system_actor()
            bank.workdays.invalidate()
            _, cold = timed(bank.workdays.calendar)
            days = [dt.date(2027, 1, 1) + dt.timedelta(days=k) for k in range(365)]
            calendar = bank.workdays.calendar()
            _, first = timed(lambda: [calendar.next_working_day(d) for d in days])
            _, year = timed(lambda: [calendar.next_working_day(d) for d in days])
            print(f"calendar cold load {cold * 1000:.1f} ms; next_working_day over 2027: "
                  f"first pass {first * 1000:.1f} ms (the year's holidays), then "
                  f"{year / 365 * 1e6:.1f} us a day")
            _, country = timed(lambda: bank.settings.set(system, "bank_country", "GB"))
            moved = bank.read_one("SELECT count(*) FROM audit_log WHERE action = "
                                  "'loan.reschedule'")[0]
            print(f"bank_country US -> GB: {country:.2f} s for {args.loans:,} loans "
                  f"({moved:,} re-stored, {country / max(moved, 1) * 1000:.2f} ms a loan)")
            quiet, quiet_s = timed(lambda: bank.workdays.add_holiday(
                system, "2026-04-15", "Quiet day"))
            print(f"bank holiday on no due date: {quiet_s * 1000:.1f} ms "
                  f"({quiet['loans_moved']} loans moved)")
            busy, busy_s = timed(lambda: bank.workdays.add_holiday(
                system, "2026-04-28", "Busy day"))
            print(f"bank holiday on every loan's due date: {busy_s:.2f} s "
                  f"({busy['loans_moved']:,} loans moved, "
                  f"{busy_s / max(busy['loans_moved'], 1) * 1000:.2f} ms a loan)")
            problems, verify_s = timed(bank.audit.verify)
            # bench_eod's bank holds funds without hold rows (its unpaid loans); only the loan
            # book is this benchmark's to check.
            problems = [p for p in problems if p.startswith("loan")]
            print(f"verify {verify_s:.2f} s: {len(problems)} loan problem(s)")
            if problems:
                print("\n".join(problems[:5]))
                sys.exit(1)
        finally:
            bank.close()


if __name__ == "__main__":
    main()
