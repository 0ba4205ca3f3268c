"""Benchmark of the role home pages (issue 13) on the default demo bank.

    /work/main/.venv/bin/python benchmarks/bench_home.py [--customers 200] [--months 6] [--runs 7]

Builds a demo bank in a temporary folder, then for the demo customer, teller and manager prints
the median time of `bank.home.customer / teller / manager` and of one AppTest run of the Home
page through app.py, beside one AppTest run of the Change password page (a page with a form and
no figures) in the same process: the ratio is what the home's content costs. It also prints how
long `audit.verify()` takes on that bank (first run after opening, then warm), which is why the
manager's home shows a kept result instead of running it while the page waits (bankms/services/home.py).
"""
from __future__ import annotations

import argparse
import os
import pathlib
import statistics
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("BANKMS_BCRYPT_ROUNDS", "4")
os.environ["BANKMS_NO_DEMO"] = "1"
os.environ["BANKMS_EOD_AUTO"] = "0"

import bankms  # noqa: E402
from bankms.demo import build_demo, demo_logins  # noqa: E402


def median_ms(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--months", type=int, default=6)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    folder = pathlib.Path(tempfile.mkdtemp(prefix="bench_home_"))
    path = str(folder / "bank.duckdb")
    with bankms.open_bank(path, bcrypt_rounds=4) as bank:
        build_demo(bank, customers=args.customers, months=args.months, seed=7)
        logins = {login["role"]: login["username"] for login in reversed(demo_logins(bank))}
    os.environ["BANKMS_DB"] = path
    os.environ["BANKMS_COOKIE_KEY_FILE"] = str(folder / "cookie.key")

    from apptest_util import goto, open_app
    from pages.common import get_bank

    bank = get_bank()
    print(f"demo bank: {args.customers} customers, {args.months} months, "
          f"{bank.read_one('SELECT count(*) FROM postings')[0]:,} postings")
    manager = bank.auth.actor_for(logins["manager"])
    started = time.perf_counter()
    bank.audit.verify()
    first_s = time.perf_counter() - started
    warm_ms = median_ms(bank.audit.verify, 3)
    print(f"audit.verify(): first {first_s * 1000:.0f} ms, warm {warm_ms:.0f} ms")
    bank.home.verify(manager, wait_s=600)
    for role in ("customer", "teller", "manager"):
        actor = bank.auth.actor_for(logins[role])
        service = getattr(bank.home, role)
        service_ms = median_ms(lambda: service(actor), args.runs)
        at = open_app(bank, actor)
        home_ms = median_ms(at.run, args.runs)
        goto(at, "change-password")
        plain_ms = median_ms(at.run, args.runs)
        print(f"{role:8}  bank.home.{role}: {service_ms:6.1f} ms   Home page run: "
              f"{home_ms:6.1f} ms   Change password page run: {plain_ms:6.1f} ms   "
              f"ratio {home_ms / plain_ms:4.1f}x")
    bank.close()


if __name__ == "__main__":
    main()
