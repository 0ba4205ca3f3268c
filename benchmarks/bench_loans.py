"""Loan replay benchmark (issue 9): one 360-month loan with 50 corrections.

A loan is the replay of its events (bankms/loan_replay.py), so the cost of a correction, a
payoff quote or a verify() of one loan is the cost of one replay. This builds a 300,000.00
mortgage at 6.5 % over 360 months, disbursed 2027-01-31 (month-end due dates), with 180
instalments paid on their due dates, 50 early payments and prepayments spread over the term
(half reducing the instalment, half shortening the term) and 50 corrections (reversed payments,
which the replay leaves out), and times the pure replay (loan_replay.replay) of those events.

Target (issue 9): at most 50 ms for one replay.

    python benchmarks/bench_loans.py [--repeat 20]
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import time
from decimal import Decimal

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from bankms import loan_replay  # noqa: E402

TARGET_MS = 50.0
CONTRACT = loan_replay.Contract(30_000_000, Decimal("6.5"), 360, dt.date(2027, 1, 31))


def events():
    """(kept payments, reversed payments), built by servicing the loan once: each of the
    first 180 instalments paid on its due date (whatever is still due), 50 early payments of
    250.00 nine days before a due date (alternately reducing the instalment and shortening the
    term), and 50 payments of 400.00 that were later reversed (the replay leaves them out)."""
    loan = loan_replay.Loan(CONTRACT)
    kept, reversed_ = [], []
    early = {3 + 3 * k: ("reduce_instalment" if k % 2 else "shorten_term") for k in range(50)}
    tid = 0
    for index in range(180):
        row = loan.rows[index]
        if index in early:
            tid += 1
            event = loan_replay.Payment(row.due - dt.timedelta(days=9), tid, 25_000,
                                        early[index])
            loan.pay(event)
            kept.append(event)
        if index < 50:
            tid += 1
            reversed_.append(loan_replay.Payment(row.due - dt.timedelta(days=3), tid, 40_000))
        owed = row.interest - row.interest_paid + row.principal - row.principal_paid
        if owed:
            tid += 1
            event = loan_replay.Payment(row.due, tid, owed)
            loan.pay(event)
            kept.append(event)
    return kept, reversed_


def time_pure(repeat):
    kept, _ = events()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        loan = loan_replay.replay(CONTRACT, kept)
        times.append((time.perf_counter() - started) * 1000)
    return times, loan


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    times, loan = time_pure(args.repeat)
    median = statistics.median(times)
    kept, reversed_ = events()
    print(f"replay of a 360-month loan: {len(kept)} payments kept, {len(reversed_)} reversed "
          f"(left out by the replay); {len(loan.rows)} instalments left, "
          f"{loan.principal_outstanding / 100:,.2f} outstanding")
    print(f"pure replay: median {median:.1f} ms, best {min(times):.1f} ms over {args.repeat} "
          f"runs; target {TARGET_MS:.0f} ms ({median / TARGET_MS:.2f} of the target)")
    print("last version: no replay existed (corrections left the loan books wrong)")


if __name__ == "__main__":
    main()
