"""Benchmark: the whole `python -m bankms demo` command for 10,000 customers over 12 months.

Target: under 120 s on a 2-core machine, at the bank's real bcrypt cost. Prints the wall time of
the command (interpreter start, imports, password hashing, generation, posting, checkpoint),
the rows it wrote, rows per second, its peak memory and the ratio against the target, then
checks the result with `bank.audit.verify()`.

    /work/venv/bin/python benchmarks/bench_demo.py [--customers 10000] [--months 12]
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 120.0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    import bankms

    with tempfile.TemporaryDirectory() as folder:
        db = os.path.join(folder, "bench.duckdb")
        command = [sys.executable, "-m", "bankms", "--db", db, "demo",
                   "--customers", str(args.customers), "--months", str(args.months),
                   "--seed", str(args.seed)]
        start = time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            print(done.stderr, file=sys.stderr)
            return done.returncode
        child = resource.getrusage(resource.RUSAGE_CHILDREN)
        peak_mb = child.ru_maxrss / 1024
        cpu_s = child.ru_utime + child.ru_stime
        size_mb = os.path.getsize(db) / 2**20
        with bankms.open_bank(db, bcrypt_rounds=4) as bank:
            transactions, postings, customers, accounts = bank.read_one(
                "SELECT (SELECT count(*) FROM transactions), (SELECT count(*) FROM postings), "
                "(SELECT count(*) FROM customers), "
                "(SELECT count(*) FROM accounts WHERE customer_id IS NOT NULL)")
            check_start = time.perf_counter()
            problems = bank.audit.verify()
            verify_s = time.perf_counter() - check_start

    rows = transactions + postings
    print(f"demo: {customers:,} customers, {accounts:,} accounts, {args.months} months")
    print(f"seconds:        {seconds:8.1f}  (whole command; {cpu_s:.1f} s CPU, "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    print(f"transactions:   {transactions:12,}")
    print(f"postings:       {postings:12,}")
    print(f"rows/s:         {rows / seconds:12,.0f}  (transactions + postings)")
    print(f"peak memory:    {peak_mb:8.0f} MB   database file {size_mb:.0f} MB")
    print(f"target:         {TARGET_S:8.0f} s   ratio {seconds / TARGET_S:.2f} of the target "
          f"({TARGET_S / seconds:.1f}x faster than needed)")
    print(f"verify():       {len(problems)} problems in {verify_s:.1f} s")
    return 0 if not problems and seconds <= TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
