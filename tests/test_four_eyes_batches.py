"""Staff payments in the posting batches (issue 14): a teller's or manager's payment at or under
the four-eyes threshold is decided in the writer's batch (approvals.post_or_submit). The cases a
review of that change (session 31) added: a reversal that loses the race at the reverses_id
index, the replay of an approved payment's key, and a loan repayment's older gap (the day's
total read outside its unit of work). Each test names what it proves."""
from __future__ import annotations

import dataclasses
import threading

import pytest

import bankms
from bankms.services.approvals import PendingApproval
from bankms.services.ledger import Receipt
from conftest import employee, funded_account, make_customer
from test_pg_processes import HeldPoster


def open_bank(url):
    return bankms.open_bank(url, bcrypt_rounds=4)


def test_one_managers_reversal_sent_to_two_processes_answers_the_first_receipt(pg_database):
    """A manager's reversal (payments.reverse, a four-eyes staff payment) now posts in a
    shared posting batch. The same manager sends it to two processes at once (a double click
    across two app servers; the default key system_key("reversal", "of", id) is the same): the
    first process's batch is held open, posted, not committed. The second batch reads which
    transactions are reversed (nothing yet) before it locks the manager's user row; once the
    first commits it gets the lock, passes the reversal guard on that stale read, and its insert
    meets the unique index on reverses_id before its idempotency key. It answered
    AlreadyReversed, a refusal nobody audited, where the exclusive path (before a4bad84) and
    any replay answer the first receipt (replayed)."""
    first, second = open_bank(pg_database), open_bank(pg_database)
    try:
        system = first.system_actor()
        a, b = funded_account(first, "100.00"), funded_account(first, "100.00")
        original = first.payments.transfer(system, a, b, "10.00").transaction_id
        manager = employee(first, "manager")
        held = HeldPoster(first._writer._post_batch)
        first._writer._post_batch = held
        done = {}

        def reverse(bank, name):
            try:
                done[name] = bank.payments.reverse(manager, original, "typo")
            except Exception as exc:  # noqa: BLE001 - the outcome is what the test reads
                done[name] = exc

        slow = threading.Thread(target=reverse, args=(first, "first"))
        slow.start()
        try:
            assert held.entered.wait(10)
            quick = threading.Thread(target=reverse, args=(second, "second"))
            quick.start()
            quick.join(1)
            assert quick.is_alive(), "the second batch did not wait for the manager's row"
        finally:
            held.release.set()
            slow.join(10)
        quick.join(10)
        assert isinstance(done["first"], Receipt), done["first"]
        assert isinstance(done["second"], Receipt), repr(done["second"])
        assert done["second"].replayed
        assert done["second"].transaction_id == done["first"].transaction_id
        assert first.read_one("SELECT count(*) FROM transactions WHERE reverses_id = ?",
                              [original]) == (1,)
        assert first.audit.verify() == []
    finally:
        second.close()
        first.close()


def test_a_reversal_that_loses_the_race_at_the_index_is_audited_as_refused(pg_database):
    """Two managers reverse one transaction from two processes at once, each under its own
    key. The second's batch read the reversals before the first committed; its insert meets
    the unique index on reverses_id. The refusal (AlreadyReversed) must be audited, as the
    guard's refusal is (and as the exclusive path before a4bad84 did): it was not, since the
    spoilt unit is not run again for a batch of one."""
    first, second = open_bank(pg_database), open_bank(pg_database)
    try:
        system = first.system_actor()
        a, b = funded_account(first, "100.00"), funded_account(first, "100.00")
        original = first.payments.transfer(system, a, b, "10.00").transaction_id
        loser, winner = employee(first, "manager"), employee(first, "manager")
        poster = first._writer._post_batch
        must_wait = poster.must_wait
        raced = []

        def racing(uow, request, earlier):
            # After the loser's batch read the reversals (and locked its own user row): the
            # winner's batch in the other process posts and commits the reversal.
            if not raced:
                raced.append(second.payments.reverse(winner, original, "typo",
                                                     idempotency_key="rev-winner"))
            return must_wait(uow, request, earlier)
        poster.must_wait = racing
        try:
            first.payments.reverse(loser, original, "typo", idempotency_key="rev-loser")
        except Exception as exc:  # noqa: BLE001
            outcome = exc
        else:
            outcome = None
        assert type(outcome).__name__ == "AlreadyReversed", repr(outcome)
        assert isinstance(raced[0], Receipt)
        assert first.read_one(
            "SELECT count(*) FROM audit_log WHERE action = 'payment.reverse' AND actor = ? "
            "AND outcome = 'refused'", [loser.username]) == (1,)
        assert first.audit.verify() == []
    finally:
        second.close()
        first.close()


def test_a_tellers_loan_repayment_counts_a_payment_sent_while_it_is_decided(bank):
    """A staff loan repayment out of a customer's account counts with the staff member's
    payments for that customer (FOUR_EYES_KINDS has loan_repayment). The same teller's deposit
    of 60.00 for the borrower (another tab, a posting batch) is sent right after the repayment
    of 60.00 has read the day's total. The gate read that total outside the unit of work that posts
    the repayment, so the deposit committed in between and both posted: 120.00 moved over a
    threshold of 100.00 with nobody's approval (review rev31b). Now the total is read inside
    the repayment's unit: the deposit waits in the writer's queue until the repayment has
    committed, counts it, and waits for a second manager."""
    system = bank.system_actor()
    teller, manager = employee(bank, "teller"), employee(bank, "manager")
    cid = make_customer(bank, name="Ana Borrower")
    checking = funded_account(bank, "500.00", customer_id=cid)
    lid = bank.loans.apply(teller, cid, product="personal", principal="1000.00",
                           term_months=12, purpose="new kitchen", monthly_income="4000.00")
    bank.loans.approve(manager, lid, annual_rate_percent="12")
    bank.loans.disburse(teller, lid, checking)
    bank.settings.set(system, "four_eyes_threshold_cents", 100_00)
    gate_read = bank.approvals.repayment_moved_cents
    deposits, tabs = [], []

    def deposit():
        deposits.append(bank.payments.deposit(teller, checking, "60.00"))

    def read_then_deposit(actor, source_account, fetchall=None):
        moved = gate_read(actor, source_account, *([fetchall] if fetchall else []))
        if not tabs:
            tabs.append(threading.Thread(target=deposit))
            tabs[0].start()
            # Read outside the writer's unit, the deposit posts now (it is waited for); read
            # inside it, on the writer's thread, the deposit can only wait in the writer's
            # queue until the repayment's unit has committed.
            in_unit = threading.current_thread() is bank._writer._thread
            while tabs[0].is_alive() and not (in_unit and bank._writer._queue.qsize()):
                threading.Event().wait(0.001)
        return moved
    bank.approvals.repayment_moved_cents = read_then_deposit
    repaid = bank.loans.repay(teller, lid, "60.00", checking)
    tabs[0].join()
    outcomes = sorted(type(o).__name__ for o in (repaid, *deposits))
    assert outcomes == ["PendingApproval", "Receipt"], (repaid, deposits)
    assert bank.audit.verify() == []


def test_a_replayed_key_of_an_approved_payment_answers_alike_in_any_batch(bank):
    """A teller's payment queued by the day's total and approved is posted under its key (the
    approval's transaction). A replay of that key answers the approval request
    (PendingApproval, status approved), as post_or_submit's exclusive path always did. In a
    posting batch that looks its keys up first (the writer's rerun after any repeated key in
    the batch, a neighbour's double click), the key was answered from the ledger before the
    queued check: a Receipt instead, depending on the batch's neighbours."""
    system = bank.system_actor()
    teller, manager = employee(bank, "teller"), employee(bank, "manager")
    a = funded_account(bank, "500.00")
    bank.settings.set(system, "four_eyes_threshold_cents", 100_00)
    assert isinstance(bank.payments.deposit(teller, a, "60.00", idempotency_key="ap-1"),
                      Receipt)
    pending = bank.payments.deposit(teller, a, "60.00", idempotency_key="ap-2")
    assert isinstance(pending, PendingApproval)
    bank.approvals.approve(manager, pending.request_id)
    again = bank.payments.deposit(teller, a, "60.00", idempotency_key="ap-2")
    assert isinstance(again, PendingApproval) and again.status == "approved"
    request = dataclasses.replace(
        bank.payments._deposit_request(teller, a, 60_00, "ap-2", ""), four_eyes=True)
    [outcome] = bank._writer._commit_batch([request], lookup_keys=True)
    assert not isinstance(outcome, Receipt), outcome
    assert bank.audit.verify() == []
