"""A posting process for tests/test_pg_processes.py and benchmarks/bench_pg_processes.py.

Run as `python tests/pg_process_worker.py URL`, with PLAN_JSON as the first line of stdin (a
plan is too long for an argument). It opens the bank at URL (PostgreSQL, bcrypt cost 4), prints
`ready` and waits for another line on stdin, so that the parent can start every process at once; then each thread of the plan posts its transfers as the system actor, one
after another, and the process prints one JSON line with every outcome, in plan order, and exits.

PLAN_JSON: {"threads": [[[key, source, target, amount text], ...], ...]}; a source "cash" is a
deposit to the target at a teller, a target "cash" a withdrawal from the source. An outcome is
[key, "ok", transaction id, replayed, latency s], [key, "refused", refusal class name, latency s]
(a BankError) or [key, "error", repr] (anything else: the test fails on it).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import bankms
from bankms.domain.errors import BankError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_processes(url: str | list[str], plans: list[dict],
                  timeout: float = 120) -> list[dict]:
    """Start one worker process per plan, wait until every one has opened the bank and said
    `ready`, start them all at once, and return each one's parsed report, in plan order.
    `url` is the bank of every process, or a list with one bank a plan (the benchmark's
    processes that share nothing, benchmarks/bench_pg_processes.py --independent)."""
    urls = [url] * len(plans) if isinstance(url, str) else list(url)
    if len(urls) != len(plans):
        raise ValueError(f"{len(urls)} banks for {len(plans)} plans")
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    procs = [subprocess.Popen([sys.executable, os.path.abspath(__file__), each],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
                              cwd=ROOT) for each in urls]
    try:
        for proc, plan in zip(procs, plans):
            proc.stdin.write(json.dumps(plan) + "\n")
            proc.stdin.flush()
        for proc in procs:
            line = proc.stdout.readline()
            if line.strip() != "ready":
                raise RuntimeError(f"a worker did not start: {line!r}")
        for proc in procs:
            proc.stdin.write("go\n")
            proc.stdin.flush()
        reports = []
        for proc in procs:
            out, _ = proc.communicate(timeout=timeout)
            if proc.returncode != 0:
                raise RuntimeError(f"a worker failed with exit code {proc.returncode}")
            reports.append(json.loads(out.strip().splitlines()[-1]))
        return reports
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _backend_cpu(engine) -> dict[int, float]:
    """{server process id: CPU seconds so far} of the engine's connections (PostgreSQL on this
    machine: /proc/<pid>/stat, utime and stime in clock ticks); {} elsewhere."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for conn in list(getattr(engine, "_connections", [])):
        try:
            pid = conn.info.backend_pid
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            out[pid] = (int(fields[11]) + int(fields[12])) / tick
        except Exception:  # noqa: BLE001 - a closed connection or another machine's server
            continue
    return out


def main(argv):
    url, plan = argv[1], json.loads(sys.stdin.readline())
    bank = bankms.open_bank(url, bcrypt_rounds=4)
    system = bank.system_actor()
    threads = plan["threads"]
    outcomes = [[] for _ in threads]

    def run(i):
        for key, source, target, amount in threads[i]:
            started = time.perf_counter()
            try:
                if source == "cash":
                    receipt = bank.payments.deposit(system, target, amount,
                                                    idempotency_key=key)
                elif target == "cash":
                    receipt = bank.payments.withdraw(system, source, amount,
                                                     idempotency_key=key)
                else:
                    receipt = bank.payments.transfer(system, source, target, amount,
                                                     idempotency_key=key)
            except BankError as refusal:
                outcomes[i].append([key, "refused", type(refusal).__name__,
                                    time.perf_counter() - started])
            except Exception as exc:  # noqa: BLE001 - reported to the parent, which fails
                outcomes[i].append([key, "error", repr(exc)])
            else:
                outcomes[i].append([key, "ok", receipt.transaction_id, receipt.replayed,
                                    time.perf_counter() - started])

    workers = [threading.Thread(target=run, args=(i,)) for i in range(len(threads))]
    print("ready", flush=True)
    sys.stdin.readline()
    cpu_before = os.times()
    backends_before = _backend_cpu(bank.engine)
    started = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - started
    cpu_after = os.times()
    backends_after = _backend_cpu(bank.engine)
    writer = bank._writer
    report = {"outcomes": [o for per in outcomes for o in per], "seconds": elapsed,
              "conflict_retries": writer.conflict_retries, "batches": writer.batches,
              "batched_requests": writer.batched_requests,
              "units": getattr(bank.engine, "exclusive_units", 0),
              "lock_wait_s": getattr(bank.engine, "lock_wait_s", 0.0),
              # Posting batches under the shared writer lock (PostgreSQL): how many, and
              # the seconds they waited for that lock and for the tail lock.
              "shared_units": getattr(bank.engine, "shared_units", 0),
              "shared_wait_s": getattr(bank.engine, "shared_wait_s", 0.0),
              "tail_wait_s": getattr(bank.engine, "tail_wait_s", 0.0),
              # Late-locked batches redone the plain way after a decision differed under
              # the lock; seconds batches held their account rows locked, and how many.
              "redoes": getattr(writer._post_batch, "redoes", 0),
              "row_hold_s": getattr(bank.engine, "row_hold_s", 0.0),
              "row_holds": getattr(bank.engine, "row_holds", 0),
              # CPU seconds over the posting: this Python process, and the server processes of
              # its connections (a connection opened during the posting counts from zero).
              "cpu_s": (cpu_after.user + cpu_after.system)
              - (cpu_before.user + cpu_before.system),
              "backend_cpu_s": sum(t - backends_before.get(pid, 0.0)
                                   for pid, t in backends_after.items())}
    bank.close()
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main(sys.argv)
