"""Writer lanes' tills and the open of a current PostgreSQL bank, the cases a review of both
(session 31) added: the sequences moved at every open, the tills on the redo path and in a
batch that names a till itself, and (xfail, strict) the staff payments that do not reach a
till yet. Each test names what it proves."""
from __future__ import annotations

import threading

import psycopg
import pytest

import bankms
from bankms.domain.chart import INTERNAL, till_number
from bankms.services.approvals import PendingApproval
from bankms.services.ledger import PostingRequest, Receipt
from bankms.store import db
from conftest import employee, funded_account, make_customer
from test_pg_processes import HeldPoster

CASH = INTERNAL["teller_cash"]


def open_bank(url):
    return bankms.open_bank(url, bcrypt_rounds=4)


def sequences_behind(url) -> list[str]:
    """The ledger sequences whose next id is one a row of their table already has."""
    behind = []
    with psycopg.connect(url, autocommit=True) as conn:
        for table, sequence in db.LEDGER_SEQUENCES.items():
            top, last, called = conn.execute(
                f"SELECT (SELECT max(id) FROM {table}), last_value, is_called "
                f"FROM {sequence}").fetchone()
            if top is not None and top > (last if called else last - 1):
                behind.append(sequence)
    return behind


def test_an_open_moves_the_ledger_sequences_past_rows_written_without_them(pg_bank_database):
    """The migration moves each ledger sequence past its table's highest id when rows were
    written without it (a process of a version before writer lanes, taking ids from counters,
    beside a new one; a copy loaded with its ids): docs/deploy-postgresql.md tells the
    operator to stop every process and start the new version, whose first open moves them.
    With the schema mark that open skips the migration when the catalog is unchanged (the
    old process's rows change no catalog), so the sequences stay behind and every posting
    fails on a duplicate id. The state is made here with setval (what those writes leave)."""
    url = pg_bank_database
    bank = open_bank(url)
    try:
        account = funded_account(bank, "10.00")
        for _ in range(3):
            bank.payments.deposit(bank.system_actor(), account, "1.00")
    finally:
        bank.close()
    with psycopg.connect(url, autocommit=True) as conn:
        for sequence in db.LEDGER_SEQUENCES.values():
            conn.execute(f"SELECT setval('{sequence}', 1, false)")
    assert sequences_behind(url)
    bank = open_bank(url)
    try:
        assert sequences_behind(url) == [], "the open left the sequences behind the rows"
        bank.payments.deposit(bank.system_actor(), account, "2.00")
        assert bank.audit.verify() == []
    finally:
        bank.close()


def test_a_batch_redone_under_the_lock_books_cash_on_the_till(pg_database):
    """Probe of the redo path (late decision differs): a cash withdrawal refused from the
    unlocked read is accepted under the lock after another process filled the account; the
    plain locked redo books the cash leg on the lane's till, not on GL1000, and locks no
    GL1000 row; balances and audit agree; verify is clean."""
    first, second = open_bank(pg_database), open_bank(pg_database)
    try:
        system = first.system_actor()
        cid = make_customer(first)
        a = first.accounts.open(system, cid, kind="checking")
        b = first.accounts.open(system, cid, kind="checking")
        first.payments.deposit(system, a, "100.00")
        first.payments.deposit(system, b, "500.00")
        poster = first._writer._post_batch
        moved = []

        def other_process_fills(uow):
            if not moved:
                moved.append(second.payments.transfer(system, b, a, "80.00"))
        poster.before_lock = other_process_fills
        first.payments.withdraw(system, a, "150.00")
        assert poster.redoes == 1
        internal = dict(first.read("SELECT account_number, balance_cents FROM accounts "
                                   "WHERE customer_id IS NULL AND balance_cents <> 0"))
        # The lane's first cash (100.00) booked on GL1000 and opened the tills.
        assert internal == {CASH: -10000, till_number(CASH, 1): -50000 + 15000}
        after = first.read_one("SELECT after FROM audit_log WHERE action = "
                               "'payment.withdraw' ORDER BY id DESC LIMIT 1")[0]
        assert till_number(CASH, 1) in after and f'"{CASH}"' not in after
        assert first.audit.verify() == []
    finally:
        second.close()
        first.close()


def test_one_batch_with_an_aliased_and_a_direct_till_leg_moves_the_till_once(pg_database):
    """Probe: one posting batch in lane 1 holds a cash deposit (GL1000, booked on its till)
    and the reversal of an earlier lane-1 cash deposit (its leg names GL1000-L01 itself):
    both move the one till row, which is locked once; the till ends at the sum."""
    bank = open_bank(pg_database)
    try:
        system = bank.system_actor()
        a = funded_account(bank, "0")
        bank.payments.deposit(system, a, "1.00")  # the lane's first cash opens its tills
        first = bank.payments.deposit(system, a, "40.00")
        legs = [(number, -amount) for number, amount in bank.read(
            "SELECT a.account_number, p.amount_cents FROM postings p JOIN accounts a "
            "ON a.id = p.account_id WHERE p.transaction_id = ? ORDER BY p.id",
            [first.transaction_id])]
        assert (till_number(CASH, 1), 4000) in legs
        reversal = PostingRequest(
            kind="reversal", actor=system, action="payment.reverse", legs=legs,
            amount_cents=4000, idempotency_key="rev-probe", memo="probe",
            source_account=first.target_account, target_account=first.source_account,
            reverses_id=first.transaction_id, internal_ok=True)
        deposit = bank.payments._deposit_request(system, a, 700, "dep-probe", "")
        outcomes = bank._writer._commit_batch([deposit, reversal], lookup_keys=False)
        assert not any(isinstance(o, Exception) for o in outcomes), outcomes
        internal = dict(bank.read("SELECT account_number, balance_cents FROM accounts "
                                  "WHERE customer_id IS NULL AND balance_cents <> 0"))
        assert internal == {CASH: -100, till_number(CASH, 1): -700}
        assert bank.audit.verify() == []
    finally:
        bank.close()


def test_a_tellers_cash_deposit_on_postgresql_books_on_the_lanes_till(pg_database):
    """The tills' purpose is the teller's counter payment (pages/teller_cash.py). A teller is
    a four-eyes role: its payment at or under the threshold is decided in the posting batch
    (approvals.post_or_submit, the four_eyes flag), which books it on the lane's till. Before,
    it was posted in a unit of work of its own under the exclusive writer lock, which booked
    on GL1000 itself and waited for every process's posting batches."""
    bank = open_bank(pg_database)
    try:
        a = funded_account(bank, "0")
        teller = employee(bank, "teller")
        bank.payments.deposit(teller, a, "5.00")  # the lane's first cash opens its tills
        bank.payments.deposit(teller, a, "5.00")
        internal = dict(bank.read("SELECT account_number, balance_cents FROM accounts "
                                  "WHERE customer_id IS NULL AND balance_cents <> 0"))
        assert internal == {CASH: -500, till_number(CASH, 1): -500}
    finally:
        bank.close()


def test_one_tellers_payments_from_two_processes_cannot_both_slip_under_the_threshold(
        pg_database):
    """The four-eyes rule counts one staff member's payments for one customer over the day.
    The same teller signed in on two processes pays 60.00 to one customer from each, the
    threshold 100.00: the first process's batch is held open (posted, not committed) while
    the second's runs. The second batch locks the teller's user row first, so it reads the
    day's total only after the first commits: 60.00 + 60.00 is above the threshold and the
    second payment waits for a second person. Without the lock both batches read a total of
    0 and both post (120.00 moved without approval)."""
    first, second = open_bank(pg_database), open_bank(pg_database)
    try:
        system = first.system_actor()
        first.settings.set(system, "four_eyes_threshold_cents", 100_00)
        a = funded_account(first, "0")
        teller = employee(first, "teller")
        held = HeldPoster(first._writer._post_batch)
        first._writer._post_batch = held
        done = {}
        slow = threading.Thread(target=lambda: done.setdefault(
            "first", first.payments.deposit(teller, a, "60.00", idempotency_key="fe-1")))
        slow.start()
        try:
            assert held.entered.wait(10)
            quick = threading.Thread(target=lambda: done.setdefault(
                "second", second.payments.deposit(teller, a, "60.00",
                                                  idempotency_key="fe-2")))
            quick.start()
            quick.join(2)
            assert quick.is_alive(), "the second batch did not wait for the teller's row"
        finally:
            held.release.set()
            slow.join(10)
        quick.join(10)
        assert isinstance(done["first"], Receipt)
        assert isinstance(done["second"], PendingApproval)
        assert first.read_one("SELECT count(*) FROM transactions WHERE kind = 'deposit' "
                              "AND actor = ?", [teller.username]) == (1,)
        assert first.audit.verify() == []
    finally:
        second.close()
        first.close()
