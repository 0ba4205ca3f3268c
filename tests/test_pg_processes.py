"""Several processes post to one PostgreSQL bank at once, and the ledger stays exact (issue 14,
step F, first slice).

Each process has its own writer thread and its own memory (id counters, cached account rows,
chain heads, business date). The writers take turns under the store's writer lock and read
that memory again whenever another process wrote (store/writer.py). Here three real OS
processes (tests/pg_process_worker.py) post transfers at once among shared accounts, some of
which would overdraw and some under idempotency keys sent by all three; afterwards the money
is all there, each balance is its postings, nobody is below their limit, each key posted
once, and audit.verify (both hash chains included) finds nothing; while they post, this process
reads every balance again and again and each read sees the same total and nobody below their
limit. With that it is the three-process variant of the Jepsen-style test
(tests/test_concurrency.py, threads in one process); tests/test_crash_processes.py kills each of
three posting processes in turn. Two banks opened in one test
process stand in for two processes where a deterministic order is wanted. A write conflict
injected into the writer is retried on PostgreSQL and not on DuckDB (unchanged there).
"""
from __future__ import annotations

import datetime as dt
import random
import threading
import time
from collections import Counter

import pytest

import bankms
from bankms.domain.errors import InsufficientFunds, LimitExceeded
from bankms.domain.security import Actor
from bankms.store import writer as writer_module
from bankms.store.port import WriteConflict
from conftest import make_customer
from pg_process_worker import run_processes

SMALL_CENTS = 100_00       # each of the small accounts starts with 100.00
BIG_CENTS = 10_000_00      # the account the shared keys draw on never runs short
N_SMALL = 5
PROCESSES = 3
THREADS = 4
TRANSFERS_PER_THREAD = 25
SHARED_KEYS = 8


def open_bank(url):
    return bankms.open_bank(url, bcrypt_rounds=4)


def setup_accounts(bank):
    """(small account numbers, the big one): one customer's checking accounts, funded."""
    system = bank.system_actor()
    cid = make_customer(bank)
    small = [bank.accounts.open(system, cid, kind="checking") for _ in range(N_SMALL)]
    big = bank.accounts.open(system, cid, kind="checking")
    for number in small:
        bank.payments.deposit(system, number, "100.00")
    bank.payments.deposit(system, big, "10000.00")
    return small, big


def plans(small, big):
    """One plan per process (pg_process_worker's PLAN_JSON): random transfers among the small
    accounts (amounts that often overdraw), each thread also sending every shared key, which
    every process sends too (the same request: the big account pays 1.00 to a small one)."""
    shared = [(f"shared-{k}", big, small[k % N_SMALL], "1.00") for k in range(SHARED_KEYS)]
    out = []
    for p in range(PROCESSES):
        rng = random.Random(p)
        threads = []
        for t in range(THREADS):
            transfers = []
            for i in range(TRANSFERS_PER_THREAD):
                source, target = rng.sample(small, 2)
                transfers.append([f"p{p}-t{t}-{i}", source, target,
                                  f"{rng.randint(5, 45)}.{rng.randint(0, 99):02d}"])
            # Each process sends each shared key from one of its threads, at a point of its own.
            for k, transfer in enumerate(shared):
                if k % THREADS == t:
                    transfers.insert(rng.randrange(len(transfers) + 1), list(transfer))
            threads.append(transfers)
        out.append({"threads": threads})
    return out


def balances(bank) -> dict:
    return dict(bank.read("SELECT account_number, balance_cents FROM accounts"))


@pytest.mark.slow
def test_three_processes_post_at_once_and_the_ledger_stays_exact(pg_database):
    bank = open_bank(pg_database)
    try:
        small, big = setup_accounts(bank)
        customer_total = sum(v for n, v in balances(bank).items() if n in small + [big])
        before_tx = bank.read_one("SELECT count(*) FROM transactions")[0]

        # Jepsen's bank check while they run: every read (one statement, one snapshot) sees
        # the same total and nobody below their limit.
        stop, seen = threading.Event(), []

        def reader():
            while not stop.is_set():
                seen.append(bank.read_one(
                    "SELECT sum(balance_cents), min(balance_cents + overdraft_limit_cents) "
                    "FROM accounts WHERE customer_id IS NOT NULL"))
                time.sleep(0.01)

        watcher = threading.Thread(target=reader, daemon=True)
        watcher.start()
        try:
            reports = run_processes(pg_database, plans(small, big))
        finally:
            stop.set()
            watcher.join(timeout=30)
        assert seen and {total for total, _ in seen} == {customer_total}
        assert min(lowest for _, lowest in seen) >= 0

        outcomes = [o for r in reports for o in r["outcomes"]]
        errors = [o for o in outcomes if o[1] == "error"]
        assert errors == []
        refused = [o for o in outcomes if o[1] == "refused"]
        # The guards read balances under the lock: overdrawing transfers were refused.
        assert refused and {o[2] for o in refused} == {"InsufficientFunds"}
        assert len(outcomes) == PROCESSES * THREADS * TRANSFERS_PER_THREAD \
            + PROCESSES * SHARED_KEYS

        # Every idempotency key posted exactly once, refused ones never.
        stored = Counter(k for (k,) in bank.read(
            "SELECT idempotency_key FROM transactions WHERE idempotency_key IS NOT NULL"))
        posted = {o[0] for o in outcomes if o[1] == "ok"}
        assert all(stored[k] == 1 for k in posted)
        assert not {o[0] for o in refused if not o[0].startswith("shared-")} & set(stored)
        # A shared key: every process got the same transaction, only one of them new.
        for k in range(SHARED_KEYS):
            answers = [o for o in outcomes if o[0] == f"shared-{k}"]
            assert [o[1] for o in answers] == ["ok"] * PROCESSES
            assert len({o[2] for o in answers}) == 1
            assert sorted(o[3] for o in answers) == [False] + [True] * (PROCESSES - 1)
        new_tx = bank.read_one("SELECT count(*) FROM transactions")[0] - before_tx
        assert new_tx == len(posted)
        # Receipts of different keys name different transactions.
        first = {o[0]: o[2] for o in outcomes if o[1] == "ok" and not o[3]}
        assert len(set(first.values())) == len(first) == len(posted)

        # The money is all there, each balance is its postings, nobody is below the limit.
        after = balances(bank)
        assert sum(after[n] for n in small + [big]) == customer_total
        assert sum(after.values()) == 0
        by_postings = dict(bank.read(
            "SELECT a.account_number, coalesce(sum(p.amount_cents), 0) FROM accounts a "
            "LEFT JOIN postings p ON p.account_id = a.id GROUP BY 1"))
        assert {n: int(v) for n, v in by_postings.items()} == after
        assert bank.read("SELECT account_number FROM accounts WHERE customer_id IS NOT NULL "
                         "AND balance_cents < -overdraft_limit_cents") == []
        (dupes,) = bank.read_one("SELECT count(*) - count(DISTINCT id) FROM postings")
        assert dupes == 0

        # This process's writer was idle all along: its memory is stale, and it must notice.
        rich = max(small, key=lambda n: after[n])
        poor = min(small, key=lambda n: after[n])
        system = bank.system_actor()
        receipt = bank.payments.transfer(system, rich, poor, "0.01", idempotency_key="last")
        (latest,) = bank.read_one("SELECT max(id) FROM transactions")
        assert receipt.transaction_id == latest
        with pytest.raises(InsufficientFunds):
            bank.payments.transfer(system, poor, rich, f"{(after[poor] + 2) / 100:.2f}")
        assert bank.audit.verify() == []
    finally:
        bank.close()


def test_two_banks_on_one_database_see_each_others_writes(pg_database):
    """Two banks in one process, each with its own writer and memory, as two processes."""
    first = open_bank(pg_database)
    second = open_bank(pg_database)
    try:
        small, big = setup_accounts(first)
        system = first.system_actor()
        # The second bank caches these account rows in its poster.
        second.payments.transfer(system, small[0], small[1], "10.00")
        # The first empties small[0]; the second's cached 90.00 must not let it overdraw.
        first.payments.transfer(system, small[0], small[2], "90.00")
        with pytest.raises(InsufficientFunds):
            second.payments.transfer(system, small[0], small[1], "0.01")
        # Alternating posts take ids after each other's and chain on each other's heads.
        receipts = [bank.payments.transfer(system, big, small[3], "1.00")
                    for bank in (first, second, first, second, second, first)]
        ids = [r.transaction_id for r in receipts]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)
        assert first.audit.verify() == []
        assert balances(first)[small[3]] == SMALL_CENTS + 600
    finally:
        second.close()
        first.close()


class FailingPoster:
    """The bank's poster, made to fail its first `times` batches with WriteConflict after it
    has written its rows (as a serialization failure refuses a unit of work)."""

    def __init__(self, poster, times):
        self._poster = poster
        self.left = times

    def __call__(self, uow, requests, **kw):
        outcomes = self._poster(uow, requests, **kw)
        if self.left > 0:
            self.left -= 1
            raise WriteConflict("injected: could not serialize access")
        return outcomes

    def __getattr__(self, name):
        return getattr(self._poster, name)


ATTEMPTS = writer_module.CONFLICT_ATTEMPTS

# (engine, job kind, conflicts injected, whether the work is saved in the end)
RETRY_CASES = [
    ("pg", "post", 1, True),
    ("pg", "post", ATTEMPTS - 1, True),
    ("pg", "post", ATTEMPTS, False),
    ("pg", "call", 1, True),
    ("pg", "call", ATTEMPTS, False),
    # DuckDB's one process owns its file: the writer there does not retry (as before).
    ("duckdb", "post", 1, False),
    ("duckdb", "call", 1, False),
]


@pytest.mark.parametrize("engine_name, kind, conflicts, saved", RETRY_CASES,
                         ids=[f"{e}-{k}-{n}" for e, k, n, _ in RETRY_CASES])
def test_a_write_conflict_is_retried_on_postgresql(request, tmp_path, engine_name, kind,
                                                    conflicts, saved):
    url = (request.getfixturevalue("pg_database") if engine_name == "pg"
           else str(tmp_path / "bank.duckdb"))
    bank = open_bank(url)
    try:
        small, _ = setup_accounts(bank)
        system = bank.system_actor()
        tx_before = bank.read_one("SELECT count(*) FROM transactions")[0]
        if kind == "post":
            bank._writer._post_batch = FailingPoster(bank._writer._post_batch, conflicts)
            act = lambda: bank.payments.transfer(system, small[0], small[1], "25.00",  # noqa
                                                 idempotency_key="once")
        else:
            left = [conflicts]

            def fn(uow):
                bank.audit_row(uow, system, "test.retry", entity="test")
                if left[0] > 0:
                    left[0] -= 1
                    raise WriteConflict("injected: deadlock detected")
                return "done"
            act = lambda: bank.write(fn)  # noqa: E731
        if saved:
            result = act()
            assert bank._writer.conflict_retries == conflicts
            if kind == "post":
                assert not result.replayed
        else:
            with pytest.raises(WriteConflict):
                act()
        tx_after = bank.read_one("SELECT count(*) FROM transactions")[0]
        (audited,) = bank.read_one("SELECT count(*) FROM audit_log WHERE action = 'test.retry'")
        if kind == "post":
            assert tx_after - tx_before == (1 if saved else 0)
            assert balances(bank)[small[0]] == SMALL_CENTS - (2500 if saved else 0)
        else:
            assert audited == (1 if saved else 0)
        # Heads, counters and cached rows went back after every refused attempt.
        bank._writer._post_batch = getattr(bank._writer._post_batch, "_poster",
                                           bank._writer._post_batch)
        bank.payments.transfer(system, small[1], small[2], "1.00")
        assert bank.audit.verify() == []
    finally:
        bank.close()


@pytest.mark.slow
def test_three_processes_open_a_new_database_at_once(pg_database):
    """The first opens of a database race to create its schema, internal accounts, settings
    and chain start; each takes the store's locks, so all three open and none doubles a row."""
    run_processes(pg_database, [{"threads": []}] * PROCESSES)
    bank = open_bank(pg_database)
    try:
        assert bank.read("SELECT account_number, count(*) FROM accounts "
                         "GROUP BY 1 HAVING count(*) > 1") == []
        (internal,) = bank.read_one("SELECT count(*) FROM accounts WHERE customer_id IS NULL")
        assert internal == len(bankms.bank.INTERNAL_ACCOUNTS)
        assert bank.read_one("SELECT count(*) FROM settings WHERE key = 'chain_started'") == (1,)
        assert bank.audit.verify() == []
    finally:
        bank.close()


@pytest.mark.parametrize("table", ["transactions", "audit_log"])
def test_an_id_taken_twice_is_refused_at_insert(pg_database, table):
    """The last guard should two processes ever take one id: PostgreSQL refuses the second
    row (a unique index made by the migration), so a chain can never hold two entries under
    one id."""
    import psycopg
    bank = bankms.open_bank(pg_database, bcrypt_rounds=4)
    try:
        system = bank.system_actor()
        account = bank.accounts.open(system, make_customer(bank), kind="checking")
        bank.payments.deposit(system, account, "10.00")
    finally:
        bank.close()
    with psycopg.connect(pg_database) as conn:
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(f"INSERT INTO {table} SELECT * FROM {table} "
                         f"WHERE id = (SELECT max(id) FROM {table})")


def test_each_banks_writer_posts_in_a_lane_of_its_own(pg_database):
    """Writer lanes: each bank's writer session takes the first free lane (1, then 2), every
    row it writes (posting batches, audit rows of other jobs) carries it and chains in it; a
    bank opened after one closed takes the freed lane and chains on from its last row."""
    first = open_bank(pg_database)
    second = open_bank(pg_database)
    try:
        assert (first.chain.lane, second.chain.lane) == (1, 2)
        small, big = setup_accounts(first)
        system = first.system_actor()
        for bank in (first, second, first, second):
            bank.payments.transfer(system, big, small[0], "1.00")
            bank.write(lambda uow, bank=bank: bank.audit_row(uow, system, "test.lane"))
        for table in ("transactions", "audit_log"):
            lanes = {lane for (lane,) in first.read(
                f"SELECT DISTINCT lane FROM {table} WHERE id > (SELECT min(id) FROM "
                f"{table} WHERE lane = 2)")}
            assert lanes == {1, 2}, table
        assert first.read("SELECT DISTINCT lane FROM audit_log WHERE action = 'test.lane' "
                          "ORDER BY 1") == [(1,), (2,)]
    finally:
        first.close()
    third = open_bank(pg_database)
    try:
        assert third.chain.lane == 1
        third.payments.transfer(system, big, small[1], "1.00")
        assert third.read_one("SELECT lane FROM transactions ORDER BY id DESC LIMIT 1") == (1,)
        walked = third.chain.recompute()
        assert {1, 2} <= set(walked["ledger"]["lanes"]) and walked["ledger"]["bad"] is None
        assert third.audit.verify() == [] and second.audit.verify() == []
    finally:
        third.close()
        second.close()


class HeldPoster:
    """The bank's poster, made to hold its first batch open (inside its unit of work, the rows
    written, before COMMIT) until `release` is set; `entered` is set once it holds."""

    def __init__(self, poster):
        self._poster = poster
        self.entered, self.release = threading.Event(), threading.Event()
        self._held = False

    def __call__(self, uow, requests, **kw):
        outcomes = self._poster(uow, requests, **kw)
        if not self._held:
            self._held = True
            self.entered.set()
            self.release.wait(30)
        return outcomes

    def __getattr__(self, name):
        return getattr(self._poster, name)


def test_posting_batches_of_two_lanes_run_at_once_and_a_date_moved_elsewhere_is_read(
        pg_database):
    """Posting batches hold the writer lock shared: while one bank's batch is open, another
    bank's batch on other accounts commits (under the exclusive lock it waited). An exclusive
    job of another process (a new business date) ticks CALLS_CLOCK, and the next batch reads
    the date again even when its listener never heard of it."""
    first = open_bank(pg_database)
    second = open_bank(pg_database)
    try:
        small, big = setup_accounts(first)
        system = first.system_actor()
        held = HeldPoster(first._writer._post_batch)
        first._writer._post_batch = held
        done = []
        slow = threading.Thread(target=lambda: done.append(
            first.payments.transfer(system, small[0], small[1], "1.00")))
        slow.start()
        try:
            assert held.entered.wait(10)
            quick = threading.Thread(target=lambda: done.append(
                second.payments.transfer(system, small[2], small[3], "2.00")))
            quick.start()
            quick.join(10)
            assert not quick.is_alive() and len(done) == 1, "the second lane waited"
        finally:
            held.release.set()
            slow.join(10)
        assert len(done) == 2
        # The first bank hears nothing more; the second moves the business date on.
        first._listening.stop()
        day = first.business_date
        later = day + dt.timedelta(days=3)
        second.write(lambda uow: uow.execute(
            "UPDATE settings SET value = ? WHERE key = 'business_date'", [later.isoformat()]))
        receipt = first.payments.transfer(system, small[1], small[0], "1.00")
        assert first.read_one("SELECT business_date FROM transactions WHERE id = ?",
                              [receipt.transaction_id]) == (later,)
        assert first.audit.verify() == []
        assert balances(first)[small[3]] == SMALL_CENTS + 200
    finally:
        second.close()
        first.close()


def test_the_daily_transfer_limit_holds_across_two_lanes_at_once(pg_database):
    """Two lanes' batches for one limited customer, from two of their accounts to two others
    (no account in common, so no account lock orders them): the second reads what the
    customer sent today only once the first has committed (the customer's row is locked for
    limited requests), so together they cannot pass the daily limit. Without the lock the
    second posts while the first is still open."""
    first = open_bank(pg_database)
    second = open_bank(pg_database)
    try:
        system = first.system_actor()
        payer = make_customer(first, name="Pat Payer")
        payee = make_customer(first, name="Quinn Payee")
        sources = [first.accounts.open(system, payer, kind="checking") for _ in range(2)]
        targets = [first.accounts.open(system, payee, kind="checking") for _ in range(2)]
        for source in sources:
            first.payments.deposit(system, source, "1000.00")
        first.settings.set(system, "customer_daily_transfer_cents_max", "10000")
        customer = Actor("pat", "customer", customer_id=payer)
        held = HeldPoster(first._writer._post_batch)
        first._writer._post_batch = held
        outcomes = {}

        def send(name, bank, i):
            try:
                outcomes[name] = bank.payments.transfer(customer, sources[i], targets[i],
                                                        "60.00")
            except LimitExceeded as refusal:
                outcomes[name] = refusal
        slow = threading.Thread(target=send, args=("first", first, 0))
        slow.start()
        try:
            assert held.entered.wait(10)
            other = threading.Thread(target=send, args=("second", second, 1))
            other.start()
            other.join(2)
            # Still waiting for the customer's row while the first batch is open.
            assert other.is_alive() and "second" not in outcomes
        finally:
            held.release.set()
            slow.join(10)
        other.join(10)
        assert not isinstance(outcomes["first"], LimitExceeded)
        assert isinstance(outcomes["second"], LimitExceeded)
        assert first.read_one("SELECT count(*) FROM transactions WHERE kind = 'transfer' AND "
                              "actor_role = 'customer'") == (1,)
        assert first.audit.verify() == []
    finally:
        second.close()
        first.close()


# Late locking (ported from branch late) decides from an unlocked read and checks the decisions
# under the lock. Another process moves the source between the read and the lock: the batch's
# decision flips, it is redone the plain locked way, and the result is the serial one (the
# other posting first, in lock order). (funds before the flip, the other's move, the outcome)
FLIPS = [
    ("accepted unlocked, refused locked", "90.00", ("drain", "80.00"), "refused"),
    ("refused unlocked, accepted locked", "150.00", ("fill", "80.00"), "ok"),
]


@pytest.mark.parametrize("label, amount, move, expected", FLIPS, ids=[f[0] for f in FLIPS])
def test_late_locking_redoes_a_batch_whose_decision_flips_under_the_lock(
        pg_database, label, amount, move, expected):
    first = open_bank(pg_database)
    second = open_bank(pg_database)
    try:
        small, big = setup_accounts(first)
        system = first.system_actor()
        poster = first._writer._post_batch
        moved = []

        def other_process_moves(uow):
            # Once: the second bank (its own writer session and lane) commits a posting on
            # small[0] while the first holds no lock on it yet.
            if moved:
                return
            what, sum_ = move
            source, target = (small[0], small[1]) if what == "drain" else (big, small[0])
            moved.append(second.payments.transfer(system, source, target, sum_))

        poster.before_lock = other_process_moves
        if expected == "refused":
            with pytest.raises(InsufficientFunds) as refusal:
                first.payments.transfer(system, small[0], small[2], amount)
            # The refusal names what the lock saw: 100.00 - 80.00 left.
            assert "$20.00 available" in str(refusal.value)
        else:
            first.payments.transfer(system, small[0], small[2], amount)
        assert len(moved) == 1 and poster.redoes == 1
        # The serial outcome in lock order: the other posting, then this one.
        after = balances(first)
        start = SMALL_CENTS
        if move[0] == "drain":
            assert after[small[0]] == start - 8000 and after[small[2]] == start
        else:
            assert after[small[0]] == start + 8000 - 15000
            assert after[small[2]] == start + 15000
        assert first.audit.verify() == []
        # The audit row of the redone posting (or refusal) holds the locked balances.
        rows = [row for row in first.engine.read(
            "SELECT after, outcome FROM audit_log WHERE action = 'payment.transfer'")
            if f'"target": "{small[2]}"' in row[0]]
        assert len(rows) == 1 and rows[0][1] == expected
        if expected == "ok":
            assert '"balances_before": {"' + small[0] + '": "180.00"' in rows[0][0]
        # The next batch takes the late path again without a redo.
        first.payments.transfer(system, big, small[3], "1.00")
        assert poster.redoes == 1
        assert first.audit.verify() == []
    finally:
        second.close()
        first.close()
