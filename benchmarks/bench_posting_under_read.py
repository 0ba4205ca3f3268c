"""Posting while others read (issue 13), and listing 50 accounts.

1. Posting under reads. bench_posting.py's bank (funded accounts, one customer each) is opened
   once; then rounds alternate: 16 threads post transfers alone ("idle"), and the same with two
   more threads each refreshing the manager dashboard (bank.reports.dashboard, default filters)
   and listing every account (bank.accounts.list) in a loop without pause ("reading"). Rounds
   alternate so that load from anything else on the machine falls on both alike. It prints each
   round with its ratio to the idle round before it, the median transfers/s of each kind, the
   reads done, the ratio of the medians, and the median of the rounds' ratios, which must be at
   least 0.70 (pairing cancels the drift of idle throughput from round to round: 1594 down to
   1030 transfers/s in one run, as the ledger grows and drained accounts refuse more).
2. accounts.list of one customer's 50 accounts: the median time of a call right after a posting
   (read from the database: after a posting batch only the balances, Accounts._listed) and of
   a repeated call with nothing posted in between (the answer kept for the ledger version), target under 2 ms.

    python benchmarks/bench_posting_under_read.py [--rounds 5] [--threads 16]
        [--transfers-per-thread 300] [--accounts 200]

Measured 2026-11-30 on the shared 2-core machine (absolute figures mean little under others'
load; trust the ratio of one run). At 12:58, load 0.5, main at 03f3d05: ratio 0.31 (1326 idle,
415 reading transfers/s); accounts.list 8.8 ms read from the database, 0.08 ms kept. Reads
giving way to the writer (BANKMS_READER_WAIT_MS, since removed) reached 0.29 at best.
After accounts.list was built once from plain rows and dashboard answers were kept up to the
setting dashboard_max_age_s (30 s): 13:33 at load 24-31 (tests running beside it) 0.25;
13:40 at load 20 0.42 (465 idle, 196 reading transfers/s, 28.5 reads/s); 13:45 at load 13
(after reading timestamps as integers) 0.39 (505 / 196, 32.8 reads/s); accounts.list 8.8-10.6
ms right after a posting, 0.06-0.08 ms kept. Side by side in one minute at load 9-15,
accounts.list of 50 accounts took 5.4-5.5 ms CPU (median) against 6.7-7.5 ms on main. Target
NOT met. py-spy --gil during a reading round: 64 % of GIL samples in accounts.list of every
account (invalidated by every posting: fetchall and its Python objects, the DataFrame), 21 %
in the dashboard even when kept (a settings read and a permission check per query).
Branch gil (second attempt), 14:00-14:18, load 5-10, ratios of one run each: before, 0.36
(1417 idle / 504 reading, 83 reads/s). accounts.list after a posting now reads only balances
(a lean query without joins) and keeps the other columns while no other write has run
(Writer.calls_seq): 0.62, 0.57 (reads 98-113/s); with the dashboard reading its setting once
per call instead of once per query: 0.49, 0.62, 0.51 (reads 350-630/s; the round-to-round
spread under others' load, 450-1200 reading transfers/s, is wider than the difference).
accounts.list of 50 accounts 2.8-3.5 ms after a posting (about 0.7-1.0 ms of it the lean
query's CPU, SELECT 1 alone 0.17-0.2 ms), 0.08 ms kept. What did NOT work, and why: keeping the
setting per writer version made the kept dashboard pure Python, the two readers spun at 2600
loops/s and posting fell to 0.07 (0.36 with sys.setswitchinterval(0.0001), 0.25 at 0.00002):
under the GIL a reader in a loop without pause costs the writer what it spends in Python, and
time in DuckDB's SQL (GIL released) is what spares it; making reads cheaper in Python only helps
while the loop still spends most of its time in SQL. A smaller switch interval with the lean
list: 0.63 against 0.62 at the default, no measurable gain, so the app does not set one. GIL
profile of a reading round with the lean list (before the once-per-call setting): the GIL held
35 % of the time (readers 16 %, of
which the kept dashboard's 8 copies and its settings read two thirds); the rest of the loss is
hand-off latency (the writer and 16 posting threads wait for the GIL after every DuckDB call)
and CPU: the readers' SQL runs on the same 2 cores as the writer's. Side by side with main
(f212cf5) at load 6-15, 14:24-14:30: main 0.49 then gil 0.39; gil 0.41 then main 0.36; under
that load the ratio does not separate the two, while accounts.list of 50 accounts stays about
twice as fast (gil 3.1-4.7 ms, main 5.6-11.3 ms). Target NOT met.
Branch gil2, 16:15-16:55 (main b6f15b7; load 0.6 at the start, then 8-21 with others' tests).
Main alone at 16:17, load 0.6: ratio 0.33 (1040 idle / 348 reading), accounts.list 3.11 ms.
Where accounts.list's time went after a posting (cProfile, timings of its queries): the lean
query itself 1.7-2.4 ms (its ORDER BY and the CASE of available), against 1.0-1.2 ms for
SELECT id, balance_cents without either (0.5-0.7 ms when repeated with nothing posted: the
first read after a commit costs about 0.5 ms more; SELECT 1 alone 0.2 ms); then pandas: the
copied frame and its four new columns 0.35 ms of CPU, building a new frame from columns 0.26 ms
for 3 rows (pandas 3 converts text columns to its string arrays each time). Now the lean query
reads (id, balance) only, in scan order, placed by id into the kept order; available is worked
out in numpy from the kept holds, overdraft limit, status and kind (available_sql's rule).
Side by side at load 8-10, 16:43-16:50, main / gil2 / main / gil2: accounts.list of 50
accounts 5.95 / 3.05 / 4.46 / 2.58 ms right after a posting (kept 0.10-0.12 ms in all); the
ratio 0.85 / 0.61 / 0.37 / 0.46: noise, the change does not aim at it. The list timed alone
at load 11-12, main / gil2 / main / gil2: median 5.63 / 3.62 / 3.71 / 1.94 ms wall, 2.97 /
2.16 / 2.72 / 1.78 ms CPU of the calling thread. On a quiet machine this should be about half
of main's 2.6 ms, under the 2 ms target, but it was not measured quiet: NOT shown met.
Once more, 16:54-16:56 at load 6-8: gil2 2.16 ms (kept 0.08), then main (c886961) 3.85 ms
(kept 0.10); ratio 0.40 in both (977 / 392 and 738 / 295 transfers/s).
Posting under reads, what bounds it: each of the 16 posting threads has one request in
flight, so a batch holds at most 16 (mean 13-15) and throughput is batch size over the
writer's cycle. Per batch the writer makes BEGIN, 5 appender flushes (transactions, postings,
keys, audit, balances), COMMIT, and 1-5 queue waits while gathering, each a GIL hand-off that
two busy readers can stretch to the 5 ms switch interval.
Timed inside the writer (wall ms per batch, /tmp instrumentation, not kept), 16:53 at load 8:
idle 11-13 ms a batch of 15.6, of which the 5 flushes 6.8-7.5 and gathering 1.4-1.7;
reading 28-31 ms a batch of 13.6-14.7, flushes 18-20, gathering 2.6-2.9. At 16:55, load 4,
flush by flush, idle / reading: balances (the update appender) 2.1 / 12.5, transactions 2.0 /
7.2, audit 1.3 / 6.7, keys 1.0 / 3.9, postings 0.9 / 2.6; the whole batch 13.4 / 51.1 ms.
Cutting that needs fewer DuckDB
calls per batch (say the rows of all five tables as Arrow tables inserted by one
multi-statement execute, and one timed wait while gathering instead of polling); not tried in
the time left, and the ratio's spread under load (0.37-0.85 for the same code) is wider than
such a change could show in one run. Target NOT met.
Branch gilway, 19:15-20:20 (main 35289e8, quiet machine, load 0.6-1.9). Main first: ratio 0.56
(1478 idle / 830 reading), accounts.list 1.48 ms after a posting (met), 0.06 ms kept.
Where the time went, timed inside the writer (/work/wt/tools/instr_writer.py, not kept): the
writer's CPU per batch was the same idle and reading (5.9 / 6.1 ms for 16 transfers) while its
wall time doubled (6.3 / 14.7 ms), and the process used about 1.5 of the 2 cores: the writer
was waiting, not computing. Readers of one kind at a time (ratio, one round each): pure
Python 0.03; SELECT 1 in a loop 0.82; a 3-million-row count 0.83; dashboard only 0.68;
accounts.list only 0.02 (24,000 lists a second, nearly all answers kept in memory, and the
writer's batch took 424 ms instead of 7). So a reader that runs Python without pause starves
the writer: it hands the GIL back on every DuckDB call and each posting thread on every wait,
and CPython gives it back only after the holder's 5 ms switch interval. A smaller switch
interval did not cure it (list only: 0.17 at 0.5 ms, 0.33 at 0.1 ms; the mix: 0.55 at 0.5 ms
against 0.60 at the default). Now a read served from memory (Bank.kept, the dashboard's kept
answers) gives way while the writer has work (Writer.give_way: a zero sleep, skipped when the
writer's queue is empty), and settings are kept per writer version (Bank.kept), so the
dashboard reads no setting from the database between writes. Paired in one process, rounds
alternating idle and reading under each variant (/work/wt/tools/ab_giveway.py, 3 rounds, 300
transfers a thread): giving way and settings kept 0.83 (1200 reads/s); giving way alone 0.77
(609 reads/s); neither, as on main, 0.52 (1141 reads/s). Side by side as separate runs of
this script (--transfers-per-thread 300): main 0.50, 0.57, 0.55, 0.57, 0.63, 0.53; the branch
0.77, 0.65, 0.74, 0.68, 0.69, 0.71 (the last two with settings kept). Target met by the
paired figure and by most single runs; a single run still spreads by about 0.1.
Then the refusals of a batch are looked up in one query instead of one each (ledger.py), and
a kept read pauses 0.2 ms instead of a zero sleep (writer.GIVE_WAY_S). Paired in one process
(/work/wt/tools/ab_yield.py, 4 rounds, order alternating): zero sleep 0.76 (1122 reads/s),
0.2 ms 0.83 (816 reads/s). This script, 5 rounds of 300 transfers a thread, twice at
20:24-20:30, load under 1: median of the rounds' ratios 0.76, 0.78 and 0.74 (rounds
0.56-0.91, 0.69-0.82 and 0.62-0.90); ratio of the medians 0.79, 0.69 and 0.70. Met, by a
margin smaller than one round's spread. accounts.list of 50 accounts 0.92-1.70 ms after a
posting (met), 0.05-0.08 ms kept.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import bench_posting  # noqa: E402  (sets BANKMS_BCRYPT_ROUNDS and the path to bankms)

import bankms  # noqa: E402
from bankms.domain.security import Actor  # noqa: E402

TARGET_RATIO = 0.70
TARGET_LIST_MS = 2.0
LIST_ACCOUNTS = 50
MANAGER = Actor(username="bench-manager", role="manager", full_name="Bench Manager")


def reading_threads(bank, n, stop):
    """n threads, each refreshing the dashboard then listing all accounts until `stop`."""
    done = [0] * n
    filters = bank.reports.filters()

    def reader(i):
        while not stop.is_set():
            bank.reports.dashboard(MANAGER, filters)
            bank.accounts.list(MANAGER)
            done[i] += 1

    pool = [threading.Thread(target=reader, args=(i,), name=f"bench-reader-{i}")
            for i in range(n)]
    for t in pool:
        t.start()
    return pool, done


def posting_round(bank, accounts, args, label, readers):
    stop = threading.Event()
    pool, done = reading_threads(bank, readers, stop) if readers else ([], [])
    _, elapsed, refused = bench_posting.post_transfers(
        bank, accounts, args.threads, args.transfers_per_thread, label)
    stop.set()
    for t in pool:
        t.join()
    transfers = args.threads * args.transfers_per_thread
    return {"tps": transfers / elapsed, "reads_per_s": sum(done) / elapsed,
            "refused": len(refused)}


def list_timing(bank, accounts, repeat):
    """Median ms of accounts.list for a customer with LIST_ACCOUNTS accounts: right after a
    posting (read from the database) and repeated with nothing posted (kept answer)."""
    system = bank.system_actor()
    cid = bank.customers.create(system, full_name="Many Accounts", email="many@example.com",
                                phone="+1 555 0100", date_of_birth="1980-01-01",
                                national_id="MANY0001", address="1 Bench Road")
    for _ in range(LIST_ACCOUNTS):
        bank.accounts.open(system, cid)
    assert len(bank.accounts.list(MANAGER, cid)) == LIST_ACCOUNTS
    fresh, kept = [], []
    for k in range(repeat):
        bank.payments.deposit(system, accounts[0], "1.00", idempotency_key=f"list-{k}")
        t0 = time.perf_counter()
        bank.accounts.list(MANAGER, cid)
        fresh.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        bank.accounts.list(MANAGER, cid)
        kept.append(time.perf_counter() - t0)
    return statistics.median(fresh) * 1000, statistics.median(kept) * 1000


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--transfers-per-thread", type=int, default=300)
    parser.add_argument("--accounts", type=int, default=200)
    parser.add_argument("--readers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--list-repeat", type=int, default=200)
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="bankms-bench-read-")
    path = os.path.join(folder, "bench.duckdb")
    print(f"building {args.accounts} funded accounts in {path} ...", flush=True)
    accounts = bench_posting.build(path, args.accounts)
    bank = bankms.open_bank(path)
    try:
        results = {"idle": [], "reading": []}
        for number in range(1, args.rounds + 1):
            for label, readers in (("idle", 0), ("reading", args.readers)):
                r = posting_round(bank, accounts, args, f"r{number}-{label}", readers)
                results[label].append(r)
                paired = (f"  ratio to this round's idle {r['tps'] / results['idle'][-1]['tps']:.2f}"
                          if label == "reading" else "")
                print(f"round {number} {label:>7}: {r['tps']:6.0f} transfers/s  "
                      f"reads {r['reads_per_s']:5.1f}/s  refused {r['refused']}{paired}",
                      flush=True)
        idle = statistics.median(r["tps"] for r in results["idle"])
        reading = statistics.median(r["tps"] for r in results["reading"])
        reads = statistics.median(r["reads_per_s"] for r in results["reading"])
        # Each reading round against the idle round just before it: idle throughput drifts
        # down from round to round (the ledger grows and drained accounts bring refusals, each
        # looked up), and pairing cancels that drift, which the ratio of medians does not.
        ratio = statistics.median(r["tps"] / i["tps"]
                                  for r, i in zip(results["reading"], results["idle"]))
        print(f"posting alone: {idle:.0f} transfers/s; with {args.readers} threads refreshing "
              f"the dashboard and listing accounts ({reads:.1f} refresh+list a second): "
              f"{reading:.0f} transfers/s (ratio of the medians {reading / idle:.2f})")
        print(f"ratio reading / idle, median of the rounds: {ratio:.2f} (target >= "
              f"{TARGET_RATIO:.2f}: {'met' if ratio >= TARGET_RATIO else 'NOT met'})")
        problems = bank.audit.verify()
        print(f"verify: {'ok' if not problems else problems[:3]}")
        fresh_ms, kept_ms = list_timing(bank, accounts, args.list_repeat)
        print(f"accounts.list of {LIST_ACCOUNTS} accounts: {fresh_ms:.2f} ms right after a "
              f"posting (read from the database), {kept_ms:.2f} ms repeated with nothing posted "
              f"(kept answer); target < {TARGET_LIST_MS:.0f} ms: "
              f"{'met' if fresh_ms < TARGET_LIST_MS else 'met only when kept' if kept_ms < TARGET_LIST_MS else 'NOT met'}")
    finally:
        bank.close()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
