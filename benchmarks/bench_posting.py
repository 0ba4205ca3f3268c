"""Online posting benchmark: 32 threads submit transfers at once to a file database.

Each transfer is acknowledged only after its batch commits. The same run repeats with group
commit switched off (a batch size of one: every transfer its own transaction) and prints the
ratio. Targets (core issue): at least 3,000 transfers/s with p99 latency at most 100 ms.

    python benchmarks/bench_posting.py [--threads 32] [--transfers-per-thread 400]
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
os.environ.setdefault("BANKMS_BCRYPT_ROUNDS", "4")

import bankms  # noqa: E402

TARGET_TPS = 3000
TARGET_P99_MS = 100


def build(path, n_accounts):
    bank = bankms.open_bank(path)
    system = bank.system_actor()
    accounts = []
    for i in range(n_accounts):
        cid = bank.customers.create(system, full_name=f"Bench Customer {i}",
                                    email=f"c{i}@example.com", phone="+1 555 0100",
                                    date_of_birth="1980-01-01", national_id=f"B{i:06d}",
                                    address="1 Bench Road")
        number = bank.accounts.open(system, cid)
        bank.payments.deposit(system, number, "100000.00")
        accounts.append(number)
    bank.close()
    return accounts


def run(path, accounts, threads, per_thread, batch_size_max):
    bank = bankms.open_bank(path, batch_size_max=batch_size_max)
    system = bank.system_actor()
    latencies = []
    lock = threading.Lock()
    start_gate = threading.Barrier(threads + 1)
    failures = []

    def worker(seed):
        rng = random.Random(seed)
        mine = []
        start_gate.wait()
        for k in range(per_thread):
            src, dst = rng.sample(accounts, 2)
            t0 = time.perf_counter()
            try:
                bank.payments.transfer(system, src, dst, f"{rng.randint(1, 5000)}.{rng.randint(0, 99):02d}",
                                       idempotency_key=f"bench-{batch_size_max}-{seed}-{k}")
            except bankms.BankError as exc:
                failures.append(exc)
            mine.append(time.perf_counter() - t0)
        with lock:
            latencies.extend(mine)

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    start_gate.wait()
    t0 = time.perf_counter()
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - t0
    batches, batched = bank._writer.batches, bank._writer.batched_requests
    problems = bank.audit.verify()
    bank.close()
    latencies.sort()
    n = len(latencies)
    return {
        "transfers": n,
        "seconds": elapsed,
        "tps": n / elapsed,
        "p50_ms": latencies[n // 2] * 1000,
        "p99_ms": latencies[min(n - 1, int(n * 0.99))] * 1000,
        "mean_batch": batched / batches if batches else 0,
        "refused": len(failures),
        "verify": "ok" if not problems else problems[:3],
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=32)
    parser.add_argument("--transfers-per-thread", type=int, default=400)
    parser.add_argument("--baseline-per-thread", type=int, default=40)
    parser.add_argument("--accounts", type=int, default=200)
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="bankms-bench-")
    path = os.path.join(folder, "bench.duckdb")
    print(f"building {args.accounts} funded accounts in {path} ...", flush=True)
    accounts = build(path, args.accounts)
    grouped = run(path, accounts, args.threads, args.transfers_per_thread, 512)
    single = run(path, accounts, args.threads, args.baseline_per_thread, 1)
    for label, r in (("group commit", grouped), ("one transaction per transfer", single)):
        print(f"{label:>30}: {r['transfers']:>6} transfers in {r['seconds']:6.2f} s = "
              f"{r['tps']:8.0f}/s  p50 {r['p50_ms']:6.1f} ms  p99 {r['p99_ms']:6.1f} ms  "
              f"mean batch {r['mean_batch']:5.1f}  refused {r['refused']}  verify {r['verify']}")
    print(f"ratio group commit / one transaction per transfer: {grouped['tps'] / single['tps']:.1f}x")
    print(f"throughput vs target {TARGET_TPS}/s: {grouped['tps'] / TARGET_TPS:.2f}x; "
          f"p99 vs target {TARGET_P99_MS} ms: {grouped['p99_ms'] / TARGET_P99_MS:.2f}x "
          f"({'met' if grouped['tps'] >= TARGET_TPS and grouped['p99_ms'] <= TARGET_P99_MS else 'NOT met'})")


if __name__ == "__main__":
    main()
