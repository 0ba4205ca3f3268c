"""Event charges benchmark: charges.post_event_charges for a month end's fees on 100,000
accounts (one maintenance fee each, one in ten also a below-minimum fee, one in twenty unable to
pay), then the rerun of the same day (which must post nothing).

Target (issue 10): the fees are one step of a month end that must stay within 10 s with
posting and tax, so charging 100,000 accounts should take a small part of that (about 2 s).

    python benchmarks/bench_charges.py [--accounts 100000] [--db PATH]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import pandas as pd

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
os.environ.setdefault("BANKMS_BCRYPT_ROUNDS", "4")

import bankms  # noqa: E402
from bankms.services import charges  # noqa: E402
from bankms.bank import INTERNAL  # noqa: E402

TARGET_S = 2.0
FIRST_ID = 10_000


def build(bank, n):
    system = bank.system_actor()

    def setup(uow):
        uow.execute(
            "INSERT INTO customers (id, full_name, status, created_at, created_by) "
            "SELECT ? + i, 'Bench ' || i, 'active', TIMESTAMP '2024-01-01', 'bench' "
            "FROM range(?) t(i)", [FIRST_ID, n])
        uow.execute(
            "INSERT INTO accounts (id, account_number, customer_id, kind, name, status, "
            "opened_at, opened_date) SELECT ? + i, body || lpad(CAST(98 - (CAST(body AS "
            "HUGEINT) * 100) % 97 AS VARCHAR), 2, '0'), ? + i, 'checking', 'Checking', "
            "'active', TIMESTAMP '2024-01-01', DATE '2024-01-01' FROM (SELECT i, '40' || "
            "lpad(CAST(5000000 + i AS VARCHAR), 8, '0') AS body FROM range(?) t(i))",
            [FIRST_ID, FIRST_ID, n])
    bank.write(setup)
    accounts = bank.read_df("SELECT id, account_number FROM accounts WHERE id >= ? "
                            "ORDER BY id", [FIRST_ID])
    # One account in twenty holds 1.00: it cannot pay its 5.00 fee.
    amounts = [100 if i % 20 == 0 else 50_000 for i in range(len(accounts))]
    tx = pd.DataFrame({"tx_ref": range(len(accounts)), "kind": "deposit",
                       "amount_cents": amounts, "target_account": accounts["account_number"]})
    clearing = bank.read_one("SELECT id FROM accounts WHERE account_number = ?",
                             [INTERNAL["clearing"]])[0]
    postings = pd.concat([
        pd.DataFrame({"tx_ref": tx["tx_ref"], "account_id": accounts["id"],
                      "amount_cents": amounts}),
        pd.DataFrame({"tx_ref": tx["tx_ref"], "account_id": clearing,
                      "amount_cents": [-a for a in amounts]})], ignore_index=True)
    bank.ledger.post_frames(system, tx, postings, action="bench.opening")
    ids = accounts["id"]
    return pd.concat([
        pd.DataFrame({"account_id": ids, "code": "maintenance", "amount_cents": 500,
                      "reason": "Nov 2026"}),
        pd.DataFrame({"account_id": ids[::10], "code": "min_balance", "amount_cents": 300,
                      "reason": "Nov 2026"})], ignore_index=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--db")
    args = parser.parse_args()
    path = args.db or os.path.join(tempfile.mkdtemp(), "bench.duckdb")
    with bankms.open_bank(path) as bank:
        frame = build(bank, args.accounts)
        system = bank.system_actor()
        day = bank.business_date
        figures = {}
        for run in ("first run", "rerun"):
            inside = {}

            def fn(uow):
                begun = time.perf_counter()
                posted = charges.post_event_charges(bank, system, uow, frame, day=day)
                inside["s"] = time.perf_counter() - begun
                return posted
            started = time.perf_counter()
            posted = bank.write(fn)
            figures[run] = (time.perf_counter() - started, posted, inside["s"])
        started = time.perf_counter()
        problems = bank.audit.verify()
        verify_s = time.perf_counter() - started
        for run, (seconds, posted, inside_s) in figures.items():
            print(f"{run}: {len(frame):,} event rows, {posted:,} charges posted in "
                  f"{seconds:.2f} s ({seconds / TARGET_S:.0%} of the {TARGET_S:.0f} s budget); "
                  f"post_event_charges {inside_s:.2f} s, the rest the commit (hash chains)")
        print(f"verify: {verify_s:.2f} s, {len(problems)} problems")


if __name__ == "__main__":
    main()
