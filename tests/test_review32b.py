"""Review rev32b of session 32 (a14c355 daily limit from the transactions, 0cf2b7f loan
corrections and waivers decided in their unit of work, 1027994 binary arrays, the myloans
merge). Each test names what it proves. The first two are a gap found in an undone loan
payout's key (older than 0cf2b7f, which left it as it was): a repeat of a done undo is refused
where every other correction answers with its receipt, and an approval whose second unit of work
failed cannot be carried out again. The rest pin behaviour checked and found sound."""
from __future__ import annotations

from decimal import Decimal as D

import pytest

from bankms.services.approvals import PendingApproval
from conftest import employee
from test_review32 import _loan, w  # noqa: F401 - the fixture


def _count(bank, sql, params=None):
    return bank.read(sql, params)[0][0]


def test_a_repeated_undo_of_a_payout_answers_its_receipt(w):
    """A manager undoes a 9,000.00 payout (under the threshold: it posts) under the key of
    her form; the same call again (a double click, a retry after a lost answer) is answered
    with the receipt, as a repayment, its reversal and a waiver are. It was refused: the loan
    is 'approved' again by then, and its status was checked before the key."""
    bank = w.bank
    lid = _loan(w, "9000.00")
    first = bank.loans.undo_disbursement(w.mara, lid, "wrong borrower", idempotency_key="undo-1")
    again = bank.loans.undo_disbursement(w.mara, lid, "wrong borrower", idempotency_key="undo-1")
    assert again.replayed and again.transaction_id == first.transaction_id
    assert _count(bank, "SELECT count(*) FROM transactions WHERE kind = 'reversal'") == 1
    assert bank.audit.verify() == []


def test_an_approved_undo_whose_approval_failed_to_be_marked_is_carried_out_once(w,
                                                                                 monkeypatch):
    """approvals._approve_loan carries the undo out in one unit of work and marks the request
    approved in a second; 'the key makes a retry a replay'. When the second unit fails, the
    request is still pending and the money has moved: approving it again must answer with the
    posted reversal and mark it approved. The undo was queued without a key of its own (the
    default one names the payout's transaction, which the undo clears), so the retry was
    refused ('Loan ... is approved') and the request could never be approved."""
    bank = w.bank
    mia = employee(bank, "manager", username="mia")
    lid = _loan(w, "12000.00")
    pending = bank.loans.undo_disbursement(w.mara, lid, "wrong borrower")
    assert isinstance(pending, PendingApproval)
    real, calls = bank.approvals._mark_approved, []

    def fails_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("the server went away")
        return real(*args, **kwargs)
    monkeypatch.setattr(bank.approvals, "_mark_approved", fails_once)
    with pytest.raises(RuntimeError):
        bank.approvals.approve(mia, pending.request_id)
    receipt = bank.approvals.approve(mia, pending.request_id)
    assert receipt.replayed
    assert bank.read_one("SELECT status, transaction_id FROM approval_requests WHERE id = ?",
                         [pending.request_id]) == ("approved", receipt.transaction_id)
    assert _count(bank, "SELECT count(*) FROM transactions WHERE kind = 'reversal'") == 1
    assert bank.loans.get(w.mara, lid)["status"] == "approved"


# -- checked and found sound (0cf2b7f) ------------------------------------------------------------
def test_a_queued_repayment_reversal_repeats_approves_and_replays_once(w):
    """A manager's reversal over the threshold with her day's payments queues once; the repeat
    before approval answers the same request; the approval posts it as her; the repeat after
    approval answers the receipt; the approved reversal no longer counts in her day's total."""
    bank = w.bank
    mia = employee(bank, "manager", username="mia")
    lid = _loan(w, "40000.00")
    paid = bank.loans.repay(w.system, lid, "9000.00", w.acc)
    bank.payments.withdraw(w.mara, w.acc, "9000.00")
    first = bank.loans.reverse_repayment(w.mara, lid, paid.transaction_id, "wrong loan")
    second = bank.loans.reverse_repayment(w.mara, lid, paid.transaction_id, "wrong loan")
    assert isinstance(first, PendingApproval) and second.replayed
    assert second.request_id == first.request_id
    posted = bank.approvals.approve(mia, first.request_id)
    again = bank.loans.reverse_repayment(w.mara, lid, paid.transaction_id, "wrong loan")
    assert again.replayed and again.transaction_id == posted.transaction_id
    assert _count(bank, "SELECT count(*) FROM approval_requests") == 1
    assert bank.approvals.repayment_moved_cents(w.mara, w.acc) == 900_000
    assert bank.accounts.balance(w.mara, w.acc) == D("140000.00") - D("9000.00")


def test_a_rejected_waiver_asked_again_is_a_new_request_and_posts_once(w):
    """A waiver over the threshold (with the manager's 9,990.00 that day) waits; another key for
    the same charge answers the same request; rejected, nothing is given back; asked again, a
    new request, whose approval gives it back once; the repeat answers the receipt."""
    bank = w.bank
    mia = employee(bank, "manager", username="mia")
    bank.charges.define(w.mara, "statement_copy", name="Statement copy", calc="flat",
                        amount="12.50")
    cid = bank.charges.apply(w.system, w.acc, "statement_copy", reason="Copy",
                             idempotency_key="c1")["charge_id"]
    bank.payments.withdraw(w.mara, w.acc, "9990.00")
    first = bank.charges.waive(w.mara, cid, reason="Bank error", idempotency_key="k1")
    other_key = bank.charges.waive(w.mara, cid, reason="Bank error", idempotency_key="k2")
    assert isinstance(first, PendingApproval) and other_key.request_id == first.request_id
    bank.approvals.reject(mia, first.request_id, "not our error")
    assert bank.read_one("SELECT status FROM charges WHERE id = ?", [cid]) == ("charged",)
    asked = bank.charges.waive(w.mara, cid, reason="Bank error", idempotency_key="k1")
    assert isinstance(asked, PendingApproval) and asked.request_id != first.request_id
    done = bank.approvals.approve(mia, asked.request_id)
    again = bank.charges.waive(w.mara, cid, reason="Bank error", idempotency_key="k1")
    assert again["replayed"] and again["transaction_id"] == done["transaction_id"]
    assert _count(bank, "SELECT count(*) FROM transactions WHERE kind = 'reversal'") == 1
    assert bank.audit.verify() == []


# -- checked and found sound (a14c355) ------------------------------------------------------------
def test_a_customers_term_deposit_and_transfers_total_as_the_postings_say(bank):
    """The daily limit's total from the transactions alone, against the postings query it
    replaced (tests/test_day_totals.FROM_POSTINGS), for the other customer 'transfer' the
    table there lacks: a term deposit she opens from her checking (to her own new account:
    nothing), beside a transfer to another customer (counted) and a refused one (not posted)."""
    from bankms.domain.errors import LimitExceeded
    from bankms.services import ledger
    from conftest import funded_account, login_for, make_customer
    from test_day_totals import FROM_POSTINGS

    ana_id, ben_id = make_customer(bank, name="Ana Saver"), make_customer(bank, name="Ben")
    mine = funded_account(bank, "9000.00", customer_id=ana_id)
    ben = funded_account(bank, "10.00", customer_id=ben_id)
    ana = login_for(bank, ana_id, "ana.saver")
    bank.term_deposits.open(ana, linked_account=mine, amount="3000.00", term_months=12)
    bank.payments.transfer(ana, mine, ben, "4000.00")
    with pytest.raises(LimitExceeded):
        bank.payments.transfer(ana, mine, ben, "1000.01")  # the default limit is 5,000.00
    day = bank.business_date
    totals = ledger.spent_today_cents(bank.read, day, [ana_id], bank.engine.dialect)
    reference = {c: int(s) for c, s in bank.read(FROM_POSTINGS, [day]) if c == ana_id}
    assert totals == reference == {ana_id: 400_000}
