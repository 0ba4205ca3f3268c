"""Jepsen-style bank test on each engine (a DuckDB file, a PostgreSQL database): many writer
threads move money at random among accounts (some with overdrafts) while reader threads take
snapshots of every balance.

Checked, in the spirit of Jepsen's bank test and TigerBeetle's stronger checks:
- every snapshot sees the same total and no balance below its overdraft limit;
- every acknowledged transfer is stored exactly once, by id and by idempotency key, with the
  acknowledged content; refused transfers left no trace;
- the final balances equal the starting balances plus the acknowledged transfers (a replay of
  what clients were told) and equal the sums of the postings (`verify()`);
- the same request sent from two threads at once posts once.

Three OS processes posting to one PostgreSQL at once, with the same checks (a reader in another
process, every key once, balances equal postings, verify()): tests/test_pg_processes.py, and
with kill -9 of each process in turn, tests/test_crash_processes.py.
"""
from __future__ import annotations

import random
import threading
import time
from collections import Counter

import pytest
from conftest import make_customer

import bankms
from bankms.domain.errors import BankError, InsufficientFunds, SameAccount

WRITERS = 8
TRANSFERS_PER_WRITER = 1000
ACCOUNTS = 12
READERS = 2
DUPLICATE_KEYS = 200
START_CENTS = 100_000
# Slots with an overdraft limit, in cents.
OVERDRAFT_CENTS = {0: 50_000, 1: 20_000, 2: 5_000}

pytestmark = [pytest.mark.slow, pytest.mark.engines]


def test_concurrent_transfers_keep_the_bank_consistent(bank):
    system = bank.system_actor()
    customers = [make_customer(bank, name=f"Holder {i}") for i in range(4)]
    numbers = []
    for slot in range(ACCOUNTS):
        od = OVERDRAFT_CENTS.get(slot, 0)
        number = bank.accounts.open(system, customers[slot % 4], overdraft_limit=str(od // 100))
        bank.payments.deposit(system, number, bankms.to_money(START_CENTS))
        numbers.append(number)
    limits = {numbers[s]: OVERDRAFT_CENTS.get(s, 0) for s in range(ACCOUNTS)}
    total = START_CENTS * ACCOUNTS
    tx_before = bank.read_one("SELECT count(*) FROM transactions")[0]

    stop = threading.Event()
    failures = []  # anything unexpected, from any thread
    acked = {}  # key -> receipt
    refused = set()
    lock = threading.Lock()
    reads = Counter()

    def writer(w):
        rng = random.Random(w)
        try:
            for i in range(TRANSFERS_PER_WRITER):
                src, dst = rng.sample(numbers, 2)
                cents = rng.randint(1, 40_000)
                key = f"w{w}-{i}"
                try:
                    receipt = bank.payments.transfer(system, src, dst,
                                                     bankms.to_money(cents), idempotency_key=key)
                except InsufficientFunds:
                    with lock:
                        refused.add(key)
                    continue
                assert (receipt.source_account, receipt.target_account,
                        receipt.amount_cents) == (src, dst, cents)
                assert not receipt.replayed
                with lock:
                    acked[key] = receipt
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            failures.append(("writer", w, repr(exc)))

    def reader(r):
        try:
            while not stop.is_set():
                if r % 2 == 0:
                    rows = bank.read("SELECT account_number, balance_cents, "
                                     "overdraft_limit_cents FROM accounts "
                                     "WHERE customer_id IS NOT NULL")
                else:  # the service's own listing must be one snapshot too
                    df = bank.accounts.list(system)
                    rows = list(zip(df["account_number"], df["balance_cents"],
                                    df["overdraft_limit_cents"]))
                seen = sum(b for _, b, _ in rows)
                if seen != total:
                    failures.append(("reader", r, f"total {seen} != {total}"))
                for number, balance, limit in rows:
                    if balance < -limit:
                        failures.append(("reader", r, f"{number} at {balance} below -{limit}"))
                reads[r] += 1
                # Leave the writer some CPU on a two-core machine; reads still interleave
                # with hundreds of commits.
                time.sleep(0.002 if r % 2 == 0 else 0.02)
        except BaseException as exc:  # noqa: BLE001
            failures.append(("reader", r, repr(exc)))

    # Two threads send the same requests (same keys, same content) at about the same time.
    dup_rng = random.Random(99)
    dup_requests = []
    for i in range(DUPLICATE_KEYS):
        src, dst = dup_rng.sample(numbers, 2)
        dup_requests.append((f"dup-{i}", src, dst, dup_rng.randint(1, 5_000)))
    dup_outcomes = [[], []]

    def duplicator(d):
        try:
            for key, src, dst, cents in dup_requests:
                try:
                    dup_outcomes[d].append(bank.payments.transfer(
                        system, src, dst, bankms.to_money(cents), idempotency_key=key))
                except (InsufficientFunds, SameAccount) as exc:
                    dup_outcomes[d].append(exc)
        except BaseException as exc:  # noqa: BLE001
            failures.append(("duplicator", d, repr(exc)))

    threads = ([threading.Thread(target=writer, args=(w,)) for w in range(WRITERS)]
               + [threading.Thread(target=duplicator, args=(d,)) for d in range(2)])
    readers = [threading.Thread(target=reader, args=(r,)) for r in range(READERS)]
    for t in readers + threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    stop.set()
    for t in readers:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in threads + readers), "a thread hung"
    assert failures == []
    assert min(reads.values()) >= 10, f"readers ran too little to mean anything: {reads}"
    assert len(acked) + len(refused) == WRITERS * TRANSFERS_PER_WRITER
    assert len(acked) > WRITERS * TRANSFERS_PER_WRITER // 2  # mostly accepted
    assert refused, "some transfers should hit the funds and overdraft guards"

    # Every acknowledged transfer is stored exactly once, by id and by key, as acknowledged.
    stored = {row[0]: row for row in bank.read(
        "SELECT id, idempotency_key, source_account, target_account, amount_cents, kind "
        "FROM transactions")}
    assert len(stored) == bank.read_one("SELECT count(*) FROM transactions")[0]  # ids unique
    by_key = Counter(row[1] for row in stored.values())
    for key, receipt in acked.items():
        row = stored.get(receipt.transaction_id)
        assert row == (receipt.transaction_id, key, receipt.source_account,
                       receipt.target_account, receipt.amount_cents, "transfer"), key
        assert by_key[key] == 1, key
    for key in refused:
        assert by_key[key] == 0, key

    # The same request from two threads posted once; both heard of the one transaction.
    replays = 0
    for i, (key, *_) in enumerate(dup_requests):
        a, b = dup_outcomes[0][i], dup_outcomes[1][i]
        assert by_key[key] <= 1, key
        receipts = [o for o in (a, b) if not isinstance(o, BankError)]
        assert len({r.transaction_id for r in receipts}) <= 1, key
        assert (by_key[key] == 1) == bool(receipts), key
        replays += sum(r.replayed for r in receipts)
    assert replays > 0, "the duplicate submissions never overlapped; the test proves nothing"

    # Replaying what the clients were told gives the stored balances.
    expected = {n: START_CENTS for n in numbers}
    dup_receipts = {o.transaction_id: o for outs in dup_outcomes for o in outs
                    if not isinstance(o, BankError)}
    for receipt in list(acked.values()) + list(dup_receipts.values()):
        expected[receipt.source_account] -= receipt.amount_cents
        expected[receipt.target_account] += receipt.amount_cents
    got = dict(bank.read("SELECT account_number, balance_cents FROM accounts "
                         "WHERE customer_id IS NOT NULL"))
    assert got == expected
    assert all(got[n] >= -limits[n] for n in numbers)
    assert bank.read_one("SELECT count(*) FROM transactions")[0] == (
        tx_before + len(acked) + len(dup_receipts))
    # And the stored balances equal the postings (replay of the ledger) with every invariant.
    ledger = dict(bank.read("SELECT a.account_number, sum(p.amount_cents) FROM postings p "
                            "JOIN accounts a ON a.id = p.account_id "
                            "WHERE a.customer_id IS NOT NULL GROUP BY 1"))
    assert ledger == got
    assert bank.audit.verify() == []
