"""Loan replay benchmark (issue 9): one 360-month loan with 50 corrections.

A loan is the replay of its events (bankms/domain/loan_replay.py), so the cost of a correction, a
payoff quote or a verify() of one loan is the cost of one replay. This builds a 300,000.00
mortgage at 6.5 % over 360 months, disbursed 2027-01-31 (month-end due dates), with 180
instalments paid on their due dates, 50 early payments each prepaying 250.00 spread over the
term (half reducing the instalment, half shortening the term) and 50 corrections (reversed payments,
which the replay leaves out), and times the pure replay (loan_replay.replay) of those events.

The same history is then replayed on the same loan repaid weekly in equal principal parts
(1,560 instalments over the 360 months, half of them paid on their due dates), the longest
schedule a product can ask for in a 30-year loan.

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

from bankms.domain import loan_replay  # noqa: E402

TARGET_MS = 50.0
CONTRACT = loan_replay.Contract(30_000_000, Decimal("6.5"), 360, dt.date(2027, 1, 31))
WEEKLY_EQUAL_PRINCIPAL = loan_replay.Contract(
    30_000_000, Decimal("6.5"), 360, dt.date(2027, 1, 31), frequency="weekly",
    amortization="equal_principal")


def events(contract=CONTRACT):
    """(kept payments, reversed payments), built by servicing the loan once: each of the
    first half of the instalments paid on its due date (whatever is still due), 50 times the
    coming instalment plus 250.00 paid nine days before its due date (two for weekly
    instalments), so that 250.00 prepays principal and re-amortises the rest (alternately
    reducing the instalment and shortening the term), and 50 payments of 400.00 that were
    later reversed (the replay leaves them out)."""
    loan = loan_replay.Loan(contract)
    kept, reversed_ = [], []
    early = {3 + 3 * k: ("reduce_instalment" if k % 2 else "shorten_term") for k in range(50)}
    ahead = dt.timedelta(days=9 if contract.frequency == "monthly" else 2)
    tid = 0
    for index in range(len(loan.rows) // 2):
        row = loan.rows[index]
        if index in early:
            tid += 1
            coming = row.interest + row.principal - row.interest_paid - row.principal_paid
            event = loan_replay.Payment(row.due - ahead, tid, coming + 25_000, early[index])
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


def time_pure(repeat, contract=CONTRACT):
    kept, _ = events(contract)
    times = []
    for _ in range(repeat):
        # Each run starts cold, as a verify() of a loan not seen before would.
        loan_replay.clear_caches()
        started = time.perf_counter()
        loan = loan_replay.replay(contract, kept)
        times.append((time.perf_counter() - started) * 1000)
    return times, loan


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    for label, contract in (("monthly equal instalments", CONTRACT),
                            ("weekly equal principal", WEEKLY_EQUAL_PRINCIPAL)):
        times, loan = time_pure(args.repeat, contract)
        median = statistics.median(times)
        kept, reversed_ = events(contract)
        print(f"replay of a 360-month loan, {label} ({contract.instalments} instalments): "
              f"{len(kept)} payments kept, {len(reversed_)} reversed (left out by the replay); "
              f"{len(loan.rows)} instalments left, {loan.principal_outstanding / 100:,.2f} "
              f"outstanding")
        print(f"  pure replay: median {median:.1f} ms, best {min(times):.1f} ms over "
              f"{args.repeat} runs, cold caches; target {TARGET_MS:.0f} ms "
              f"({median / TARGET_MS:.2f} of the target)")
    print("last version (before the review of issue 9, same machine, quiet): monthly equal "
          "instalments median 8.6 ms, weekly equal principal median 38.2 ms (45-98 ms under "
          "load)")


if __name__ == "__main__":
    main()
