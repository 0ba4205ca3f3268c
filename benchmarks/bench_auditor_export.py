"""Benchmark of the auditor's export and its offline check on a demo bank.

    /work/main/.venv/bin/python benchmarks/bench_auditor_export.py [--customers 200] [--months 12]

Builds a demo bank in a temporary folder, closes its current business day (so that the chain
heads of a day are in the export), exports every closed day of the demo, and times the export
(`bank.export.auditor_bundle`) and the check (`export_check.check_bundle`), printing rows,
bundle size, seconds and the check's rate in postings per second. No target is set by the
issue; the figures say what a manager and an auditor wait for.
"""
from __future__ import annotations

import argparse
import datetime as dt
import pathlib
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import bankms  # noqa: E402
from bankms.reporting import export_check  # noqa: E402
from bankms.demo import build_demo  # noqa: E402


class _Clock:
    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--months", type=int, default=12)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        bank = bankms.open_bank(f"{folder}/bank.duckdb", bcrypt_rounds=4)
        try:
            build_demo(bank, customers=args.customers, months=args.months, seed=7)
            system = bank.system_actor()
            day = bank.business_date
            bank.clock = _Clock(dt.datetime.combine(day + dt.timedelta(days=1), dt.time(1),
                                                    tzinfo=dt.timezone.utc))
            bank.end_of_day(system, until=day)
            (first,) = bank.read_one("SELECT min(business_date) FROM transactions")
            started = time.perf_counter()
            bundle = bank.export.auditor_bundle(system, from_date=first, to_date=day)
            export_s = time.perf_counter() - started
            pem = bank.export.public_key_pem(system)
        finally:
            bank.close()
    started = time.perf_counter()
    checks = export_check.check_bundle(bundle, pem)
    check_s = time.perf_counter() - started
    rows = {c.name.removeprefix("file "): c.detail for c in checks if c.name.startswith("file")}
    (postings,) = [int(d.split(", ")[1].split()[0]) for n, d in rows.items()
                   if n == "postings.csv"]
    print(f"demo: {args.customers} customers, {args.months} months; period {first} to {day}")
    print(f"bundle: {len(bundle):,} bytes, {postings:,} postings")
    print(f"export: {export_s:.2f} s")
    print(f"check:  {check_s:.2f} s ({postings / check_s:,.0f} postings/s); "
          f"all ok: {all(c.ok for c in checks)}")
    print(f"ratio check/export: {check_s / export_s:.2f}")


if __name__ == "__main__":
    main()
