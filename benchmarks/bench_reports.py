"""Benchmark of the managers' dashboard, customer analytics and statements on a big bank.

    /work/venv/bin/python benchmarks/bench_reports.py [--postings 10000000] [--rebuild]

Builds (or reuses, under benchmarks/out/) a bank of about 10 million postings through the bulk
path (`bank.ledger.post_frames`, one batch per month), copies its tables into a SQLite file in
the same run, then times every dashboard query, the customer analytics, the ledger views and a
statement PDF, on DuckDB and on SQLite over the same data with the same SQL, and prints the
figures with their ratio. DuckDB figures are the median of --repeat warm runs, with the first
(cold) and the fastest run beside it; on a shared machine the fastest run shows the query's
own cost, the median what a manager would wait with that load. Targets (issue 6): each dashboard query at most 250 ms, all of them
together at most 1 s, a statement PDF at most 300 ms.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import pathlib
import sqlite3
import statistics
import sys
import time

import numpy as np
import pandas as pd

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import bankms  # noqa: E402
from bankms.reporting import analytics, drill, reports  # noqa: E402
from bankms.bank import INTERNAL  # noqa: E402

OUT = ROOT / "benchmarks" / "out"
DASHBOARD_QUERY_MS_MAX = 250
DASHBOARD_TOTAL_MS_MAX = 1000
STATEMENT_PDF_MS_MAX = 300


# -- building the bank ---------------------------------------------------------------------------
def _insert_people(bank, customers: int, savings_share: float, start: dt.datetime,
                   end: dt.datetime, rng) -> pd.DataFrame:
    """Customers and their accounts, set-based (one write), ids from the bank's sequences."""
    # Most customers exist before the ledger starts; the rest join over the period.
    early = rng.random(customers) < 0.7
    span = (end - start).total_seconds()
    created = np.where(early,
                       rng.uniform(-2 * 365 * 86400, -86400, customers),
                       rng.uniform(0, span * 0.95, customers))
    created_at = pd.to_datetime(start) + pd.to_timedelta(np.sort(created), unit="s")
    people = pd.DataFrame({
        "n": np.arange(customers),
        "full_name": [f"Customer {i:06d}" for i in range(customers)],
        "created_at": created_at,
        "has_savings": rng.random(customers) < savings_share,
    })

    def fn(uow):
        with uow.scan("bench_people", people):
            uow.execute(
                "INSERT INTO customers (id, full_name, email, phone, date_of_birth, national_id, "
                "address, status, created_at, created_by) SELECT nextval('customer_id_seq'), "
                "full_name, 'c' || n || '@example.com', '+1 555 ' || lpad(CAST(n AS VARCHAR), 6, "
                "'0'), DATE '1980-01-01' + CAST(n % 9000 AS INTEGER), 'BENCH' || n, "
                "n || ' Bench Street', 'active', created_at, 'bench' FROM bench_people ORDER BY n")
            uow.execute(
                "CREATE TEMP TABLE bench_acc AS SELECT c.id AS customer_id, k.kind, "
                "c.created_at + INTERVAL 5 MINUTE AS opened_at FROM customers c "
                "JOIN bench_people p ON c.national_id = 'BENCH' || p.n "
                "JOIN (VALUES ('checking'), ('savings')) k(kind) "
                "ON k.kind = 'checking' OR p.has_savings ORDER BY c.id, k.kind")
            uow.execute(
                "INSERT INTO accounts (id, account_number, customer_id, kind, name, status, "
                "interest_rate_percent, opened_at, last_activity_at, opened_date, "
                "last_activity_date) SELECT id, '40' || lpad(CAST(s AS VARCHAR), 8, '0') || lpad(CAST(98 - "
                "(CAST('40' || lpad(CAST(s AS VARCHAR), 8, '0') AS HUGEINT) * 100) % 97 "
                "AS VARCHAR), 2, '0'), customer_id, kind, CASE kind WHEN 'checking' "
                "THEN 'Checking' ELSE 'Savings' END, 'active', CASE kind WHEN 'savings' "
                "THEN 2 ELSE 0 END, opened_at, opened_at, CAST(opened_at AS DATE), "
                "CAST(opened_at AS DATE) FROM (SELECT "
                "nextval('account_id_seq') AS id, nextval('account_number_seq') AS s, * "
                "FROM bench_acc)")
            uow.execute("DROP TABLE bench_acc")
    bank.write(fn)
    return bank.read_df(
        "SELECT a.id, a.account_number, a.customer_id, a.kind, a.opened_at FROM accounts a "
        "WHERE a.customer_id IS NOT NULL ORDER BY a.customer_id, a.kind")


def _month_batch(month_start, month_end, accounts, stop_at, tx_target, rng):
    """One month of transactions and postings as frames for the bulk path. Every account's
    money in during the month exceeds its money out, so no balance goes below zero."""
    checking = accounts[(accounts["kind"] == "checking") & (accounts["opened_at"] < month_start)
                        & (stop_at[accounts.index] > month_start)]
    savings = accounts[(accounts["kind"] == "savings") & (accounts["opened_at"] < month_start)]
    active_savings = savings[savings["customer_id"].isin(checking["customer_id"])]
    savings_of = dict(zip(active_savings["customer_id"], active_savings.index))
    span = (month_end - month_start).total_seconds()
    rows = []  # (kind, amount, memo, src_idx or code, dst_idx or code, seconds)

    def times(n, lo=0.0, hi=1.0):
        return rng.uniform(span * lo, span * hi, n)

    n = len(checking)
    if n == 0:
        return None
    salary = rng.integers(150_000, 600_000, n)
    frames = [pd.DataFrame({"kind": "deposit", "amount": salary, "memo": "Salary",
                            "src": -1, "dst": checking.index, "t": times(n, 0, 0.1)})]
    # Money out per checking account stays under 1,400.00 a month, below the smallest salary.
    w = rng.choice(checking.index, size=int(n * 0.4), replace=False)
    frames.append(pd.DataFrame({"kind": "withdrawal", "amount": rng.integers(2_000, 30_000,
                                                                             len(w)),
                                "memo": "", "src": w, "dst": -2, "t": times(len(w), 0.1, 1)}))
    fee_acc = rng.choice(checking.index, size=int(n * 0.3), replace=False)
    frames.append(pd.DataFrame({"kind": "fee", "amount": rng.integers(200, 500, len(fee_acc)),
                                "memo": "Monthly fee", "src": fee_acc, "dst": -3,
                                "t": times(len(fee_acc), 0.97, 0.99)}))
    sv_owner = [i for i in checking.index if accounts.at[i, "customer_id"] in savings_of]
    frames.append(pd.DataFrame({"kind": "transfer", "amount": rng.integers(5_000, 30_000,
                                                                           len(sv_owner)),
                                "memo": "Savings", "src": sv_owner,
                                "dst": [savings_of[accounts.at[i, "customer_id"]]
                                        for i in sv_owner],
                                "t": times(len(sv_owner), 0.1, 0.3)}))
    interest = savings.index.to_numpy()
    frames.append(pd.DataFrame({"kind": "interest", "amount": rng.integers(50, 5_000,
                                                                           len(interest)),
                                "memo": "Monthly interest", "src": -4, "dst": interest,
                                "t": times(len(interest), 0.995, 0.999)}))
    used = sum(len(f) for f in frames)
    p2p = max(tx_target - used, 0)
    # Person-to-person transfers: at most four out of any account (4 x 200.00).
    src = rng.choice(checking.index, size=p2p)
    keep = pd.Series(src).groupby(src).cumcount().to_numpy() < 4
    src = src[keep]
    dst = rng.choice(checking.index, size=len(src))
    ok = src != dst
    src, dst = src[ok], dst[ok]
    frames.append(pd.DataFrame({"kind": "transfer", "amount": rng.integers(1_000, 20_000,
                                                                           len(src)),
                                "memo": "", "src": src, "dst": dst,
                                "t": times(len(src), 0.1, 0.95)}))
    tx = pd.concat(frames, ignore_index=True).sort_values("t", kind="stable")
    tx = tx.reset_index(drop=True)
    tx["posted_at"] = pd.Timestamp(month_start) + pd.to_timedelta(tx["t"], unit="s")
    return tx


def build_bank(path: pathlib.Path, postings_target: int, seed: int = 11) -> None:
    rng = np.random.default_rng(seed)
    bank = bankms.open_bank(str(path), bcrypt_rounds=4)
    system = bank.system_actor()
    try:
        today = bank.reports.today()
        months = 24
        first = (pd.Timestamp(today.replace(day=1)) - pd.DateOffset(months=months - 1))
        start = first.to_pydatetime()
        end = dt.datetime.combine(today, dt.time(23, 0))
        customers = max(int(postings_target / 166), 100)
        t0 = time.perf_counter()
        accounts = _insert_people(bank, customers, 2 / 3, start, end, rng)
        accounts["opened_at"] = pd.to_datetime(accounts["opened_at"])
        print(f"  {customers:,} customers, {len(accounts):,} accounts "
              f"({time.perf_counter() - t0:.1f} s)", flush=True)
        # Some accounts fall silent (dormant later on), most stay active to the end.
        stop = np.where(rng.random(len(accounts)) < 0.08,
                        rng.uniform(0, (end - start).total_seconds(), len(accounts)), np.inf)
        stop_at = pd.Series([start + dt.timedelta(seconds=s) if np.isfinite(s)
                             else dt.datetime.max for s in stop], index=accounts.index)
        numbers = accounts["account_number"].to_numpy()
        ids = accounts["id"].to_numpy()
        internal_ids = {code: bank.read_one("SELECT id FROM accounts WHERE account_number = ?",
                                            [INTERNAL[code]])[0]
                        for code in ("clearing", "teller_cash", "fee_income", "interest_expense")}
        special = {-1: ("clearing", INTERNAL["clearing"]),
                   -2: ("teller_cash", INTERNAL["teller_cash"]),
                   -3: ("fee_income", INTERNAL["fee_income"]),
                   -4: ("interest_expense", INTERNAL["interest_expense"])}
        # A little over half a posting per target: a few person-to-person transfers drop out.
        tx_per_month = int(postings_target * 1.01) // 2 // months + 1
        posted = 0
        for m in range(months):
            ms = (first + pd.DateOffset(months=m)).to_pydatetime()
            me = min((first + pd.DateOffset(months=m + 1)).to_pydatetime(), end)
            tx = _month_batch(ms, me, accounts, stop_at, tx_per_month, rng)
            if tx is None:
                continue

            def acc_id(ix):
                return np.where(ix >= 0, ids[np.clip(ix, 0, None)],
                                [internal_ids[special[i][0]] if i < 0 else 0 for i in ix])

            def acc_no(ix):
                return np.where(ix >= 0, numbers[np.clip(ix, 0, None)],
                                [special[i][1] if i < 0 else "" for i in ix])
            src = tx["src"].to_numpy()
            dst = tx["dst"].to_numpy()
            n = len(tx)
            tx_df = pd.DataFrame({
                "tx_ref": np.arange(n), "kind": tx["kind"], "amount_cents": tx["amount"],
                "memo": tx["memo"], "source_account": acc_no(src), "target_account": acc_no(dst),
                "posted_at": tx["posted_at"], "business_date": tx["posted_at"].dt.date})
            # Deposits of salaries come through clearing; only customer accounts are named.
            tx_df.loc[src < 0, "source_account"] = None
            tx_df.loc[dst < 0, "target_account"] = None
            post_df = pd.DataFrame({
                "tx_ref": np.concatenate([np.arange(n), np.arange(n)]),
                "account_id": np.concatenate([acc_id(src), acc_id(dst)]),
                "amount_cents": np.concatenate([-tx["amount"].to_numpy(),
                                                tx["amount"].to_numpy()]),
            }).sort_values("tx_ref", kind="stable")
            t0 = time.perf_counter()
            bank.ledger.post_frames(system, tx_df, post_df, action="bench.build")
            posted += len(post_df)
            print(f"  month {ms:%Y-%m}: {n:,} transactions ({time.perf_counter() - t0:.1f} s), "
                  f"{posted:,} postings so far", flush=True)
        _insert_refusals(bank, start, end, rng)
        problems = bank.audit.verify()
        if problems:
            raise SystemExit(f"the benchmark bank is inconsistent: {problems[:3]}")
    finally:
        bank.close()


def _insert_refusals(bank, start, end, rng, n=3000):
    reasons = rng.choice(["InsufficientFunds", "LimitExceeded", "AccountFrozen",
                          "PermissionDenied", "AccountNotFound"], size=n, p=[.5, .2, .1, .1, .1])
    stamps = [start + dt.timedelta(seconds=float(s))
              for s in rng.uniform(0, (end - start).total_seconds(), n)]
    system = bank.system_actor()

    def fn(uow):
        for reason, ts in zip(reasons, stamps):
            bank.audit_row(uow, system, "payment.transfer", "transaction", None,
                           after={"reason": str(reason)}, outcome="refused")
        uow.execute("UPDATE audit_log SET ts = s.ts FROM (SELECT unnest(?) AS id, unnest(?) "
                    "AS ts) s WHERE audit_log.id = s.id",
                    [list(range(bank.state.next_audit_id - n, bank.state.next_audit_id)),
                     stamps])
    bank.write(fn)


# -- SQLite copy ---------------------------------------------------------------------------------
def export_sqlite(duck_path: pathlib.Path, lite_path: pathlib.Path) -> None:
    import duckdb
    tmp = lite_path.with_suffix(".tmp")
    if tmp.exists():
        tmp.unlink()
    src = duckdb.connect(str(duck_path), read_only=True)
    dst = sqlite3.connect(str(tmp))
    dst.execute("PRAGMA journal_mode = OFF")
    dst.execute("PRAGMA synchronous = OFF")
    try:
        t0 = time.perf_counter()

        def report(table):
            print(f"  sqlite: {table} copied ({time.perf_counter() - t0:.1f} s)", flush=True)
        analytics.copy_to_sqlite(src.execute, dst, progress=report)
    finally:
        dst.close()
        src.close()
    os.replace(tmp, lite_path)


# -- timing --------------------------------------------------------------------------------------
def timed(fn, repeat: int, best=None) -> tuple[float, float]:
    """(first run ms, median of the following runs ms); the fastest run goes into `best`."""
    t0 = time.perf_counter()
    fn()
    first = (time.perf_counter() - t0) * 1000
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - t0) * 1000)
    if best is not None:
        best.append(min(runs or [first]))
    return first, statistics.median(runs) if runs else first


SQLITE_QUERY_S_MAX = 30


def sqlite_connect(path):
    """A SQLite connection whose queries stop after SQLITE_QUERY_S_MAX seconds (via
    `con.deadline`), so one pathological plan cannot hold the benchmark for an hour."""
    con = sqlite3.connect(str(path))
    state = {"deadline": float("inf")}
    con.set_progress_handler(lambda: 1 if time.perf_counter() > state["deadline"] else 0,
                             100_000)
    return con, state


def lite_ms(fn, lite, f, state):
    state["deadline"] = time.perf_counter() + SQLITE_QUERY_S_MAX
    try:
        return timed(lambda: fn(lite, f), 0)[0]
    except Exception as exc:  # sqlite3 reports the interruption through pandas
        if "interrupted" not in str(exc):
            raise
        return float("inf")
    finally:
        state["deadline"] = float("inf")


def run_set(title, queries, duck, lite, f, repeat, limit_ms=None, state=None):
    print(f"\n{title}")
    print(f"  {'query':<24}{'duckdb ms':>11}{'(first)':>9}{'(best)':>9}{'sqlite ms':>11}"
          f"{'ratio':>8}")
    total_duck = total_lite = 0.0
    over = []
    for name, fn in queries.items():
        best = []
        first, warm = timed(lambda: fn(duck, f), repeat, best)
        lite_time = lite_ms(fn, lite, f, state) if lite is not None else float("nan")
        total_duck += warm
        total_lite += lite_time
        flag = ""
        if limit_ms is not None and warm > limit_ms:
            flag = "  OVER"
            over.append(name)
        print(f"  {name:<24}{warm:>11.1f}{first:>9.1f}{best[0]:>9.1f}{_ms(lite_time):>11}"
              f"{_ratio(lite_time, warm):>8}{flag}", flush=True)
    print(f"  {'total':<24}{total_duck:>11.1f}{'':>18}{_ms(total_lite):>11}"
          f"{_ratio(total_lite, total_duck):>8}")
    return total_duck, over


def _ms(value):
    if value == float("inf"):
        return f">{SQLITE_QUERY_S_MAX * 1000}"
    return f"{value:.1f}"


def _ratio(lite, duck):
    if lite != lite:  # nan: no SQLite run
        return "-"
    if lite == float("inf"):
        return f">{SQLITE_QUERY_S_MAX * 1000 / duck:.0f}x"
    return f"{lite / duck:.1f}x"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--postings", type=int, default=10_000_000)
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-sqlite", action="store_true")
    args = parser.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    tag = f"{args.postings // 1_000_000}m" if args.postings >= 1_000_000 else str(args.postings)
    duck_path, lite_path = OUT / f"bank-{tag}.duckdb", OUT / f"bank-{tag}.sqlite"
    if args.rebuild:
        for p in (duck_path, pathlib.Path(str(duck_path) + ".wal"), lite_path):
            if p.exists():
                p.unlink()
    if not duck_path.exists():
        print(f"building {duck_path} through the bulk path ...", flush=True)
        t0 = time.perf_counter()
        build_bank(duck_path, args.postings)
        print(f"built in {time.perf_counter() - t0:.0f} s")
    if not args.no_sqlite and not lite_path.exists():
        print(f"copying into {lite_path} ...", flush=True)
        t0 = time.perf_counter()
        export_sqlite(duck_path, lite_path)
        print(f"copied in {time.perf_counter() - t0:.0f} s")

    load = os.getloadavg()
    print(f"\nload average before timing: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on "
          f"{os.cpu_count()} cores (the figures below grow with the machine's other work)")
    bank = bankms.open_bank(str(duck_path), bcrypt_rounds=4)
    try:
        postings, accounts = bank.read_one(
            "SELECT (SELECT count(*) FROM postings), (SELECT count(*) FROM accounts)")
        print(f"\nbank: {postings:,} postings, {accounts:,} accounts; DuckDB {duck_path.stat().st_size / 1e6:.0f} MB"
              + ("" if args.no_sqlite else f", SQLite {lite_path.stat().st_size / 1e6:.0f} MB"))
        duck = analytics.duckdb_source(bank)
        lite_con, state = (None, None) if args.no_sqlite else sqlite_connect(lite_path)
        lite = None if lite_con is None else analytics.sqlite_source(lite_con)
        system = bank.system_actor()
        f = bank.reports.filters()
        print(f"filters: {f.start} to {f.end}, kind {f.kind}, as of {f.as_of}")
        total, over = run_set("Dashboard (default filters: last 90 days, all accounts)",
                              analytics.DASHBOARD, duck, lite, f, args.repeat,
                              DASHBOARD_QUERY_MS_MAX, state)
        f_old = bank.reports.filters(kind="savings", as_of=f.end - dt.timedelta(days=365))
        total_old, over_old = run_set(
            f"Dashboard (savings only, as of {f_old.as_of}: a year back)",
            analytics.DASHBOARD, duck, lite, f_old, args.repeat, DASHBOARD_QUERY_MS_MAX, state)
        run_set("Customer analytics", analytics.CUSTOMER, duck, lite, f, args.repeat, state=state)
        # Issue 15: the rows behind each key figure (DuckDB only; the SQLite copy is for the
        # figures' comparison). The biggest read all postings of the period or of a ledger
        # account, so they are timed beside the figures they open.
        drills = {name: (lambda src, f, n=name: drill.drill(src, n, f, {}))
                  for name, spec in drill.DRILLS.items() if not spec.needs}
        run_set("Drill-downs behind the key figures (issue 15)", drills, duck, None, f,
                args.repeat)
        ledger = {
            "trial_balance": lambda src, f: analytics.trial_balance(src, None),
            "trial_balance_as_of": lambda src, f: analytics.trial_balance(src, f.start),
            "general_ledger": lambda src, f: analytics.general_ledger(src, f.start, f.end),
        }
        run_set("Ledger views", ledger, duck, lite, f, args.repeat, state=state)

        # Statements: a month two months back, for accounts picked at random.
        month = (f.end.replace(day=1) - dt.timedelta(days=40)).replace(day=1)
        picks = bank.read("SELECT id, account_number FROM accounts WHERE customer_id IS NOT NULL "
                          "AND kind = 'checking' ORDER BY hash(id) LIMIT 20")
        first, last = reports.month_bounds(month.year, month.month)
        lo, hi = analytics.midnight(first), analytics.midnight_after(last)
        duck_q, duck_pdf, lite_q, lines = [], [], [], []
        for account_id, number in picks:
            t0 = time.perf_counter()
            s = bank.reports.statement(system, number, month.year, month.month)
            t1 = time.perf_counter()
            s.to_pdf()
            t2 = time.perf_counter()
            duck_q.append((t1 - t0) * 1000)
            duck_pdf.append((t2 - t0) * 1000)
            lines.append(len(s.lines))
            assert s.reconciles()
            if lite is not None:
                t0 = time.perf_counter()
                analytics.statement_rows(lite, account_id, first, last)
                lite_q.append((time.perf_counter() - t0) * 1000)
        q, pdf_ms = statistics.median(duck_q), statistics.median(duck_pdf)
        lq = statistics.median(lite_q) if lite_q else float("nan")
        print(f"\nStatement of {month:%Y-%m} ({len(picks)} accounts, median "
              f"{statistics.median(lines):.0f} lines)")
        print(f"  query + build            duckdb {q:7.1f} ms   sqlite {lq:7.1f} ms   "
              f"ratio {_ratio(lq, q)}")
        print(f"  query + build + PDF      duckdb {pdf_ms:7.1f} ms   (max {max(duck_pdf):.1f})")

        print("\nTargets")
        print(f"  each dashboard query <= {DASHBOARD_QUERY_MS_MAX} ms: "
              + ("yes" if not over else f"NO ({', '.join(over)})")
              + f"; a year back: " + ("yes" if not over_old else f"NO ({', '.join(over_old)})"))
        print(f"  all dashboard queries <= {DASHBOARD_TOTAL_MS_MAX} ms: "
              f"{'yes' if total <= DASHBOARD_TOTAL_MS_MAX else 'NO'} ({total:.0f} ms; "
              f"a year back {total_old:.0f} ms)")
        print(f"  statement PDF <= {STATEMENT_PDF_MS_MAX} ms: "
              f"{'yes' if max(duck_pdf) <= STATEMENT_PDF_MS_MAX else 'NO'} "
              f"(median {pdf_ms:.0f} ms, max {max(duck_pdf):.0f} ms)")
        load = os.getloadavg()
        print(f"load average after timing: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
        if lite_con is not None:
            lite_con.close()
    finally:
        bank.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
