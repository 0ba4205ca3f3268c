"""Crash test (on each engine): a child process streams transfers into a bank and is killed
with SIGKILL at a random moment, many times. After each kill the bank reopens, every
acknowledged transfer is there exactly once, resubmitting it with its key posts nothing, and
`verify()` is empty."""
from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import make_customer
from crash_worker import account_numbers, request_for

import bankms

ROUNDS = 15
# On PostgreSQL the killed process's open transactions are rolled back by the server, a
# different path from DuckDB's WAL replay, and each round costs more (a server round trip per
# statement): fewer rounds still cover a kill mid-batch and mid-commit.
ROUNDS_PG = 6
WORKER_THREADS = 3
ACCOUNTS = 6
START_CENTS = 1_000_000
ROOT = Path(__file__).resolve().parent.parent
WORKER = Path(__file__).resolve().parent / "crash_worker.py"
LINE = re.compile(r"^(ok|refused) (\d+) (\d+)(?: (\d+) ([01]))?$")

pytestmark = [pytest.mark.slow, pytest.mark.engines]


def run_and_kill(path, starts, rng, round_no):
    """Start a worker, kill it at a random moment; return its complete stdout lines."""
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, str(WORKER), path, *map(str, starts)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        if round_no % 5 == 4:
            # Now and then kill it early, while it may still be opening or migrating the file.
            time.sleep(rng.uniform(0.0, 0.3))
        else:
            first = proc.stdout.readline()
            assert first == "ready\n", (first, proc.stderr.read() if proc.poll() else "")
            time.sleep(rng.uniform(0.05, 0.8))
    finally:
        proc.send_signal(signal.SIGKILL)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL, err
    # A kill in the middle of a write can leave a partial last line: it was never acknowledged.
    return [line for line in out.splitlines() if LINE.match(line)]


def test_kill_9_loses_no_acknowledged_transfer(engine, tmp_path):
    path = engine.url if engine.name == "pg" else str(tmp_path / "crash.duckdb")
    rounds = ROUNDS_PG if engine.name == "pg" else ROUNDS
    bank = bankms.open_bank(path, bcrypt_rounds=4)
    system = bank.system_actor()
    cid = make_customer(bank)
    for _ in range(ACCOUNTS):
        bank.payments.deposit(system, bank.accounts.open(system, cid),
                              bankms.to_money(START_CENTS))
    numbers = account_numbers(bank)
    total = START_CENTS * ACCOUNTS
    bank.close()

    rng = random.Random(20260101)
    acked = {}  # (thread, index) -> transaction id
    next_index = [0] * WORKER_THREADS
    for round_no in range(rounds):
        lines = run_and_kill(path, next_index, rng, round_no)
        this_round = []
        for line in lines:
            kind, thread, index, tid, _ = LINE.match(line).groups()
            thread, index = int(thread), int(index)
            if kind == "ok":
                # A transfer resent after a crash may come back replayed: same transaction.
                assert acked.setdefault((thread, index), int(tid)) == int(tid), line
                this_round.append((thread, index))
            next_index[thread] = max(next_index[thread], index + 1)

        bank = bankms.open_bank(path, bcrypt_rounds=4)
        try:
            assert bank.audit.verify() == [], f"round {round_no}"
            stored = {key: (tid, src, dst, amount) for key, tid, src, dst, amount in bank.read(
                "SELECT idempotency_key, id, source_account, target_account, amount_cents "
                "FROM transactions WHERE idempotency_key LIKE 'crash-%'")}
            (count,) = bank.read_one("SELECT count(*) FROM transactions "
                                     "WHERE idempotency_key LIKE 'crash-%'")
            assert count == len(stored), "a key was posted twice"
            for (thread, index), tid in acked.items():
                key, src, dst, amount = request_for(thread, index, numbers)
                assert stored.get(key) == (tid, src, dst, int(amount * 100)), (round_no, key)
            # Nothing beyond the one request each thread may have had in flight.
            for key in stored:
                thread, index = map(int, re.match(r"crash-t(\d+)-(\d+)$", key).groups())
                assert index <= next_index[thread], (round_no, key)
            # Resubmitting acknowledged transfers (the latest ones and a sample) posts nothing.
            recent = sorted(this_round)[-5:] + rng.sample(sorted(acked), min(5, len(acked)))
            (postings,) = bank.read_one("SELECT count(*) FROM postings")
            for thread, index in recent:
                key, src, dst, amount = request_for(thread, index, numbers)
                receipt = bank.payments.transfer(system, src, dst, amount, idempotency_key=key)
                assert receipt.replayed is True, key
                assert receipt.transaction_id == acked[(thread, index)], key
            assert bank.read_one("SELECT count(*) FROM postings") == (postings,)
            (customer_total,) = bank.read_one(
                "SELECT sum(balance_cents) FROM accounts WHERE customer_id IS NOT NULL")
            assert customer_total == total
        finally:
            bank.close()

    assert len(acked) > rounds * 5, f"too few transfers acknowledged to mean much: {len(acked)}"
