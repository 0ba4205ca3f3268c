"""End-of-day cost per day on small banks (the cost the tests and a real bank pay every day).

bench_eod.py times one big day (100,000 accounts); this one times many ordinary days of two
small banks, where the fixed cost of each step (its statements) is most of the work:

- quiet: a few customers with funded checking and savings accounts, nothing due;
- demo: the demo bank (`build_demo`, 200 customers over 6 months by default) plus a few
  standing orders between its customers, closed through a month end.

It prints the milliseconds per end of day (median and mean over the days closed, wall and CPU)
and, with --profile, the statements each step ran and the cProfile lines of the slowest
functions. Run it on two branches to compare them:

    python benchmarks/bench_eod_day.py [--days 31] [--customers 200] [--months 6] [--profile]

Measured 2026-12-02, two runs each of main (1bf6bf9) and branch eodfast, 31 days, load 3-5 on
the 2 shared cores (medians per day; trust the CPU and the statements more than the wall):
quiet bank 27.6 -> 16.5 statements, CPU 107/74 -> 63/41 ms, wall 124/106 -> 99/56 ms;
demo bank 48.9 -> 41.8 statements, CPU 254/234 -> 236/211 ms, wall 378/325 -> 347/314 ms.
"""
from __future__ import annotations

import argparse
import collections
import cProfile
import datetime as dt
import io
import os
import pstats
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
os.environ.setdefault("BANKMS_BCRYPT_ROUNDS", "4")

import bankms  # noqa: E402
from bankms.demo import build_demo  # noqa: E402
from bankms.services.eod import run as eod_run  # noqa: E402

UTC = dt.timezone.utc
BUILT_AT = dt.datetime(2026, 11, 15, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now


class Counter:
    """Wraps close_day: counts the statements of each step (the function close_day called
    that issued them) and, with profile, runs cProfile on the writer thread."""

    def __init__(self, profile):
        self.statements = collections.Counter()
        self.seconds = collections.Counter()
        self.profile = cProfile.Profile() if profile else None
        self._close_day = eod_run.close_day

    def __call__(self, bank, actor, uow, day):
        plain = uow.execute

        def execute(sql, params=None):
            frame, step = sys._getframe(1), "?"
            while frame is not None:
                if frame.f_back is not None and frame.f_back.f_code.co_name == "close_day":
                    step = frame.f_code.co_name
                    break
                frame = frame.f_back
            t0 = time.perf_counter()
            try:
                return plain(sql, params)
            finally:
                self.statements[step] += 1
                self.seconds[step] += time.perf_counter() - t0
        uow.execute = execute
        try:
            if self.profile is None:
                return self._close_day(bank, actor, uow, day)
            return self.profile.runcall(self._close_day, bank, actor, uow, day)
        finally:
            del uow.execute


def quiet_bank(path, clock):
    bank = bankms.open_bank(path, clock=clock)
    system = bank.system_actor()
    for i in range(5):
        cid = bank.customers.create(system, full_name=f"Quiet Customer {i}",
                                    email=f"q{i}@example.com", phone="+1 555 0100",
                                    date_of_birth="1980-01-01", national_id=f"Q{i:06d}",
                                    address="1 Quiet Road")
        for kind in ("checking", "savings"):
            number = bank.accounts.open(system, cid, kind=kind)
            bank.payments.deposit(system, number, "1000.00")
    return bank


def demo_bank(path, clock, customers, months):
    bank = bankms.open_bank(path, clock=clock)
    build_demo(bank, customers=customers, months=months, seed=7)
    system = bank.system_actor()
    # A few standing orders between checking accounts, due on several days of the month, so
    # that the step has work on some days and none on others.
    numbers = [n for (n,) in bank.read(
        "SELECT a.account_number FROM accounts a JOIN customers c ON c.id = a.customer_id "
        "WHERE a.kind = 'checking' AND a.status = 'active' AND c.status = 'active' "
        "AND a.balance_cents > 100000 ORDER BY a.id LIMIT 20")]
    for k in range(0, len(numbers) - 1, 2):
        bank.standing_orders.create(
            system, source_account=numbers[k], target_account=numbers[k + 1], amount="12.34",
            frequency="monthly", day_of_month=1 + (k * 3) % 28,
            start_date=bank.business_date, idempotency_key=f"bench-so-{k}")
    return bank


def close(bank, clock, days, counter):
    """Close `days` days one at a time; the wall and CPU milliseconds of each."""
    system = bank.system_actor()
    wall, cpu = [], []
    for _ in range(days):
        day = bank.business_date
        clock.now = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0, 30), UTC)
        t0, c0 = time.perf_counter(), time.process_time()
        result = bank.end_of_day(system, until=day)
        wall.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
        assert [d.business_date for d in result.days] == [day]
    return wall, cpu


def report(label, wall, cpu, counter, days):
    print(f"{label}: {days} days, wall ms/day median {statistics.median(wall):.1f} mean "
          f"{statistics.fmean(wall):.1f} max {max(wall):.1f}; CPU ms/day median "
          f"{statistics.median(cpu):.1f} mean {statistics.fmean(cpu):.1f}; statements/day "
          f"{sum(counter.statements.values()) / days:.1f}")
    if counter.profile is not None:
        print("  statements per day and ms per day by step:")
        for step, n in counter.statements.most_common():
            print(f"    {step:<24} {n / days:6.1f}  {counter.seconds[step] * 1000 / days:7.2f} ms")
        text = io.StringIO()
        pstats.Stats(counter.profile, stream=text).sort_stats("cumulative").print_stats(35)
        print("\n".join("    " + line for line in text.getvalue().splitlines()[6:]))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=31)
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--months", type=int, default=6)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--only", choices=("quiet", "demo"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_eod_day_") as folder:
        for label in ("quiet", "demo"):
            if args.only and label != args.only:
                continue
            clock = Clock(BUILT_AT)
            path = os.path.join(folder, f"{label}.duckdb")
            t0 = time.perf_counter()
            bank = (quiet_bank(path, clock) if label == "quiet"
                    else demo_bank(path, clock, args.customers, args.months))
            built = time.perf_counter() - t0
            counter = Counter(args.profile)
            eod_run.close_day = counter
            try:
                wall, cpu = close(bank, clock, args.days, counter)
            finally:
                eod_run.close_day = counter._close_day
            t0 = time.perf_counter()
            problems = bank.audit.verify()
            assert problems == [], problems[:5]
            bank.close()
            print(f"{label} bank built in {built:.1f} s; verify after: 0 problems "
                  f"({time.perf_counter() - t0:.1f} s)")
            report(label, wall, cpu, counter, args.days)


if __name__ == "__main__":
    main()
