"""kill -9 with three processes posting to one PostgreSQL bank at once (issue 14).

Three OS processes (tests/crash_worker.py, each with its own writer, threads numbered apart so
their idempotency keys differ) stream transfers among the same accounts. While they run, each
in turn is killed with SIGKILL at a random moment and replaced by a new process, which first
resends the last acknowledged transfers of each of its threads and then the one that was in
flight when the other died, under the same idempotency keys, as a client that retries does.
The replacements for the first two kills open the bank with the first three, before anyone
posts, and wait (a process start costs seconds on a busy 2-core machine); the last replacement
starts only after its kill, as after a real crash. Meanwhile
this process reads every balance in one statement again and again (Jepsen's bank check: every
read sees the same total and nobody below zero).

At the end: every acknowledged transfer is stored exactly once, with the content that was
asked for and the transaction id that was acknowledged; a resent acknowledged transfer came
back as a replay of the same transaction; nothing was stored beyond what each thread had sent;
the money is all there; every balance equals its postings; and `audit.verify()` is empty.

tests/test_crash.py kills the single app process on each engine; tests/test_pg_processes.py
checks the ledger after three processes post without crashes (shared keys, overdrafts).
"""
from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from conftest import make_customer
from crash_worker import account_numbers, request_for

import bankms

PROCESSES = 3
THREADS = 2            # per process; thread numbers p*THREADS .. p*THREADS+THREADS-1
ACCOUNTS = 6
START_CENTS = 1_000_000
KILLS = 3              # each process in turn
RESEND_ACKED = 2       # a restarted thread first resends this many acknowledged transfers
ROOT = Path(__file__).resolve().parent.parent
WORKER = Path(__file__).resolve().parent / "crash_worker.py"
LINE = re.compile(r"^(ok|refused) (\d+) (\d+)(?: (\d+) ([01]))?$")
KEY = re.compile(r"crash-t(\d+)-(\d+)$")

pytestmark = pytest.mark.slow


class Worker:
    """One crash_worker process, started as a spare: it opens the bank and says `ready`, and
    posts only once `go` gives it each thread's first index. A thread collects the complete
    lines it prints."""

    def __init__(self, url, process_no):
        env = {**os.environ,
               "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        self.proc = subprocess.Popen(
            [sys.executable, str(WORKER), url, f"--first-thread={process_no * THREADS}", "-"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=env)
        self.lines: list[str] = []
        self.ready = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            if line == "ready\n":
                self.ready.set()
            # A kill in the middle of a write can leave a partial last line (no newline): it
            # was never acknowledged.
            elif line.endswith("\n") and LINE.match(line.rstrip("\n")):
                self.lines.append(line.rstrip("\n"))

    def go(self, starts):
        if not self.ready.wait(120):
            self.proc.kill()
            pytest.fail(f"a worker did not open the bank: {self.proc.stderr.read()}")
        self.proc.stdin.write(" ".join(map(str, starts)) + "\n")
        self.proc.stdin.flush()

    def kill(self) -> list[str]:
        """SIGKILL, then every complete line the process printed."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        self._reader.join(timeout=30)
        err = self.proc.stderr.read()
        assert self.proc.returncode == -signal.SIGKILL, err
        return self.lines


def test_kill_9_of_one_of_three_processes_loses_and_doubles_nothing(pg_database):
    url = pg_database
    bank = bankms.open_bank(url, bcrypt_rounds=4)
    system = bank.system_actor()
    cid = make_customer(bank)
    for _ in range(ACCOUNTS):
        bank.payments.deposit(system, bank.accounts.open(system, cid),
                              bankms.to_money(START_CENTS))
    numbers = account_numbers(bank)
    total = START_CENTS * ACCOUNTS
    tx_before = bank.read_one("SELECT count(*) FROM transactions")[0]

    rng = random.Random(20261201)
    acked: dict[tuple[int, int], int] = {}   # (thread, index) -> acknowledged transaction id
    sent_up_to = [0] * (PROCESSES * THREADS)  # per thread: 1 + the highest index answered
    expected_replays = {}                     # (thread, index) -> tid, resent after a kill
    resent = []                               # (thread, index, tid, replayed) of those
    failures = []

    def take(lines):
        """Record a dead process's answers."""
        for line in lines:
            kind, thread, index, tid, replayed = LINE.match(line).groups()
            thread, index = int(thread), int(index)
            if kind == "ok":
                if acked.setdefault((thread, index), int(tid)) != int(tid):
                    failures.append(f"{line}: acknowledged before as {acked[thread, index]}")
                if (thread, index) in expected_replays:
                    resent.append((thread, index, int(tid), replayed == "1"))
            sent_up_to[thread] = max(sent_up_to[thread], index + 1)

    # Jepsen's check from a fourth process, all through the run: one statement is one snapshot.
    stop = threading.Event()
    reads = [0]

    def reader():
        try:
            while not stop.is_set():
                (seen, lowest), = bank.read(
                    "SELECT sum(balance_cents), min(balance_cents) FROM accounts "
                    "WHERE customer_id IS NOT NULL")
                if seen != total or lowest < 0:
                    failures.append(f"a read saw total {seen}, lowest balance {lowest}")
                reads[0] += 1
                time.sleep(0.02)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            failures.append(f"reader: {exc!r}")

    # The processes that take over after the kills but the last are made ready at the start
    # (a process start is slow on a busy machine, slower still while three others post); the
    # last one starts only once its predecessor is dead, as after a crash.
    workers = [Worker(url, p) for p in range(PROCESSES)]
    spares = [Worker(url, k % PROCESSES) for k in range(KILLS - 1)]
    watcher = threading.Thread(target=reader, daemon=True)
    try:
        for w in workers + spares:
            assert w.ready.wait(120), "a worker did not open the bank"
        for w in workers:
            w.go([0] * THREADS)
        watcher.start()
        for kill_no in range(KILLS):
            p = kill_no % PROCESSES
            time.sleep(rng.uniform(0.2, 1.0))
            take(workers[p].kill())
            # It resends its threads' last acknowledged transfers (as a client that never
            # heard back would resend; these did reach the bank) and goes on from the one that
            # was in flight.
            threads = range(p * THREADS, (p + 1) * THREADS)
            starts = [max(0, sent_up_to[t] - RESEND_ACKED) for t in threads]
            expected_replays.update(
                {(t, i): acked[t, i] for t, start in zip(threads, starts)
                 for i in range(start, sent_up_to[t]) if (t, i) in acked})
            workers[p] = spares[kill_no] if kill_no < len(spares) else Worker(url, p)
            workers[p].go(starts)
        time.sleep(rng.uniform(0.5, 1.0))
    finally:
        for w in workers + spares:
            if w.proc.poll() is None:
                take(w.kill())
        stop.set()
        if watcher.is_alive():
            watcher.join(timeout=30)

    try:
        assert failures == []
        assert reads[0] >= 10, f"the reader ran too little to mean anything: {reads[0]}"
        assert len(acked) > 100, f"too few transfers acknowledged to mean much: {len(acked)}"
        # A resent transfer that had been acknowledged came back as that same transaction.
        assert resent, "no acknowledged transfer was resent"
        for thread, index, tid, replayed in resent:
            assert (tid, replayed) == (expected_replays[thread, index], True), (thread, index)

        stored = {key: (tid, src, dst, amount) for key, tid, src, dst, amount in bank.read(
            "SELECT idempotency_key, id, source_account, target_account, amount_cents "
            "FROM transactions WHERE idempotency_key LIKE 'crash-%'")}
        per_key = Counter(k for (k,) in bank.read(
            "SELECT idempotency_key FROM transactions WHERE idempotency_key LIKE 'crash-%'"))
        assert [k for k, n in per_key.items() if n > 1] == [], "a key was posted twice"
        # Every acknowledged transfer is there, once, as asked and as acknowledged.
        for (thread, index), tid in acked.items():
            key, src, dst, amount = request_for(thread, index, numbers)
            assert stored.get(key) == (tid, src, dst, int(amount * 100)), key
        # Nothing beyond the one transfer each thread may have had in flight at the end.
        for key in stored:
            thread, index = map(int, KEY.match(key).groups())
            assert index <= sent_up_to[thread], key
        (new_tx,) = bank.read_one("SELECT count(*) FROM transactions")
        assert new_tx - tx_before == len(stored)

        # The money is all there and every balance is its postings.
        balances = dict(bank.read("SELECT account_number, balance_cents FROM accounts"))
        assert sum(balances[n] for n in numbers) == total
        assert sum(balances.values()) == 0
        by_postings = dict(bank.read(
            "SELECT a.account_number, coalesce(sum(p.amount_cents), 0) FROM accounts a "
            "LEFT JOIN postings p ON p.account_id = a.id GROUP BY 1"))
        assert {n: int(v) for n, v in by_postings.items()} == balances
        assert bank.audit.verify() == []
    finally:
        bank.close()
