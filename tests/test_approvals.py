"""Four-eyes approvals: which payments wait, holds, maker-checker, idempotency, the audit check."""
from __future__ import annotations

import dataclasses
import threading
from decimal import Decimal

import pytest
from conftest import employee, funded_account, make_customer

from bankms import Actor
from bankms.services.approvals import PendingApproval
from bankms.domain.errors import (
    AccountFrozen,
    ApprovalNotFound,
    IdempotencyConflict,
    InsufficientFunds,
    InvalidInput,
    InvalidState,
    PermissionDenied,
)
from bankms.services.ledger import Receipt

# Money moves or rules are checked here: each test runs on DuckDB and on PostgreSQL.
pytestmark = pytest.mark.engines


@pytest.fixture
def staff(bank):
    return {"teller": employee(bank, "teller"), "manager": employee(bank, "manager"),
            "manager2": employee(bank, "manager"), "system": bank.system_actor()}


@pytest.fixture
def two_accounts(bank):
    a = funded_account(bank, "50,000.00")
    b = funded_account(bank, "0", customer_id=make_customer(bank, name="John Smith"))
    return a, b


def _pay(bank, actor, kind, a, b, amount, key=None):
    if kind == "deposit":
        return bank.payments.deposit(actor, a, amount, idempotency_key=key)
    if kind == "withdrawal":
        return bank.payments.withdraw(actor, a, amount, idempotency_key=key)
    return bank.payments.transfer(actor, a, b, amount, idempotency_key=key)


def _holds(bank, number):
    return bank.read_one("SELECT holds_cents FROM accounts WHERE account_number = ?",
                         [number])[0]


def _balance(bank, number):
    return bank.read_one("SELECT balance_cents FROM accounts WHERE account_number = ?",
                         [number])[0]


# One row per case: who pays, how much, what kind, and whether it waits for approval.
ROUTING_CASES = [
    ("teller", "10,000.00", "deposit", Receipt),
    ("teller", "10,000.01", "deposit", PendingApproval),
    ("teller", "10,000.00", "withdrawal", Receipt),
    ("teller", "10,000.01", "withdrawal", PendingApproval),
    ("teller", "10,000.01", "transfer", PendingApproval),
    ("manager", "12,000.00", "withdrawal", PendingApproval),
    ("manager", "9,999.99", "transfer", Receipt),
    ("system", "40,000.00", "withdrawal", Receipt),
]


@pytest.mark.parametrize("role, amount, kind, expected", ROUTING_CASES)
def test_payments_above_threshold_wait_for_approval(bank, staff, two_accounts, role, amount,
                                                    kind, expected):
    a, b = two_accounts
    before = _balance(bank, a)
    result = _pay(bank, staff[role], kind, a, b, amount)
    assert type(result) is expected
    moved = _balance(bank, a) != before
    assert moved is (expected is Receipt)
    assert bank.audit.verify() == []


HOLD_CASES = [
    # kind, held on the paying account (cents)
    ("deposit", 0),
    ("withdrawal", 1500000),
    ("transfer", 1500000),
]


@pytest.mark.parametrize("kind, held_cents", HOLD_CASES)
def test_waiting_debits_are_held_and_lower_the_available_balance(bank, staff, two_accounts,
                                                                 kind, held_cents):
    a, b = two_accounts
    pending = _pay(bank, staff["teller"], kind, a, b, "15,000.00")
    assert isinstance(pending, PendingApproval)
    assert _holds(bank, a) == held_cents
    assert bank.accounts.available(staff["manager"], a) == Decimal(50000 * 100 - held_cents) / 100
    assert bank.accounts.balance(staff["manager"], a) == Decimal("50000.00")
    assert bank.audit.verify() == []


def test_a_hold_cannot_exceed_available_funds_and_a_refusal_writes_nothing(bank, staff,
                                                                           two_accounts):
    a, b = two_accounts
    bank.payments.withdraw(staff["teller"], a, "30,000.00")  # holds 30,000 of 50,000
    with pytest.raises(InsufficientFunds):
        bank.payments.withdraw(staff["teller"], a, "20,000.01")
    with pytest.raises(InsufficientFunds):
        bank.payments.transfer(staff["system"], a, b, "20,000.01")  # the hold binds everyone
    assert _holds(bank, a) == 3000000
    assert bank.read_one("SELECT count(*) FROM approval_requests")[0] == 1
    refused = bank.read_one("SELECT count(*) FROM audit_log WHERE action = 'payment.withdraw' "
                            "AND outcome = 'refused'")[0]
    assert refused == 1
    assert bank.audit.verify() == []


def test_concurrent_requests_never_hold_more_than_the_balance(bank, staff, two_accounts):
    a, _ = two_accounts
    results = []

    def worker():
        try:
            results.append(bank.payments.withdraw(staff["teller"], a, "15,000.00"))
        except InsufficientFunds as exc:
            results.append(exc)
    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    pending = [r for r in results if isinstance(r, PendingApproval)]
    assert len(pending) == 3
    assert _holds(bank, a) == 4500000
    assert bank.audit.verify() == []


# One row per case: who decides a teller's request, and the outcome.
DECIDER_CASES = [
    ("manager", "approved"),
    ("teller", PermissionDenied),
    ("maker", PermissionDenied),
]


@pytest.mark.parametrize("decider, outcome", DECIDER_CASES)
def test_only_another_manager_can_approve(bank, staff, two_accounts, decider, outcome):
    a, b = two_accounts
    maker = staff["manager2"] if decider == "maker" else staff["teller"]
    pending = bank.payments.withdraw(maker, a, "15,000.00")
    actor = maker if decider == "maker" else staff[decider]
    if outcome == "approved":
        receipt = bank.approvals.approve(actor, pending.request_id)
        assert isinstance(receipt, Receipt)
        assert _balance(bank, a) == 3500000
        assert _holds(bank, a) == 0
    else:
        with pytest.raises(outcome):
            bank.approvals.approve(actor, pending.request_id)
        assert _balance(bank, a) == 5000000
        assert _holds(bank, a) == 1500000
        assert bank.read_one("SELECT count(*) FROM audit_log WHERE action = 'payment.approve' "
                             "AND outcome = 'refused' AND actor = ?", [actor.username])[0] == 1
    assert bank.audit.verify() == []


def test_approval_posts_once_under_the_original_key(bank, staff, two_accounts):
    a, b = two_accounts
    pending = bank.payments.transfer(staff["teller"], a, b, "15,000.00", idempotency_key="form-1")
    again = bank.payments.transfer(staff["teller"], a, b, "15,000.00", idempotency_key="form-1")
    assert again.replayed and again.request_id == pending.request_id
    receipt = bank.approvals.approve(staff["manager"], pending.request_id)
    assert receipt.idempotency_key == "form-1"
    tx = bank.read("SELECT id, actor, amount_cents FROM transactions WHERE idempotency_key = ?",
                   ["form-1"])
    assert tx == [(receipt.transaction_id, staff["teller"].username, 1500000)]
    later = bank.payments.transfer(staff["teller"], a, b, "15,000.00", idempotency_key="form-1")
    assert (later.status, later.transaction_id, later.replayed) == (
        "approved", receipt.transaction_id, True)
    with pytest.raises(InvalidState):
        bank.approvals.approve(staff["manager2"], pending.request_id)
    assert _balance(bank, b) == 1500000
    assert bank.read_one("SELECT count(*) FROM transactions WHERE kind = 'transfer'")[0] == 1
    assert bank.audit.verify() == []


KEY_CONFLICT_CASES = [
    ("same request", "15,000.00", None),
    ("other amount", "16,000.00", IdempotencyConflict),
]


@pytest.mark.parametrize("case, amount, error", KEY_CONFLICT_CASES)
def test_a_key_reused_for_another_request_is_refused(bank, staff, two_accounts, case, amount,
                                                     error):
    a, _ = two_accounts
    bank.payments.withdraw(staff["teller"], a, "15,000.00", idempotency_key="k")
    if error is None:
        assert bank.payments.withdraw(staff["teller"], a, amount, idempotency_key="k").replayed
    else:
        with pytest.raises(error):
            bank.payments.withdraw(staff["teller"], a, amount, idempotency_key="k")
    assert bank.read_one("SELECT count(*) FROM approval_requests")[0] == 1


def test_reject_releases_the_hold_and_needs_a_reason(bank, staff, two_accounts):
    a, b = two_accounts
    pending = bank.payments.withdraw(staff["teller"], a, "15,000.00")
    with pytest.raises(InvalidInput):
        bank.approvals.reject(staff["manager"], pending.request_id, "  ")
    rejected = bank.approvals.reject(staff["manager"], pending.request_id, "ID not shown")
    assert rejected.status == "rejected"
    assert _holds(bank, a) == 0 and _balance(bank, a) == 5000000
    row = bank.approvals.get(staff["manager"], pending.request_id)
    assert (row["status"], row["reason"], row["decided_by"]) == (
        "rejected", "ID not shown", staff["manager"].username)
    with pytest.raises(InvalidState):
        bank.approvals.approve(staff["manager2"], pending.request_id)
    assert bank.audit.verify() == []


def test_a_refused_approval_changes_nothing_and_stays_pending(bank, staff, two_accounts):
    a, _ = two_accounts
    pending = bank.payments.withdraw(staff["teller"], a, "15,000.00")
    bank.accounts.freeze(staff["manager"], a)
    with pytest.raises(AccountFrozen):
        bank.approvals.approve(staff["manager"], pending.request_id)
    assert bank.approvals.get(staff["manager"], pending.request_id)["status"] == "pending"
    assert _holds(bank, a) == 1500000 and _balance(bank, a) == 5000000
    assert bank.audit.verify() == []
    bank.accounts.unfreeze(staff["manager"], a)
    bank.approvals.approve(staff["manager"], pending.request_id)
    assert _holds(bank, a) == 0 and _balance(bank, a) == 3500000


def test_unknown_request_and_queue_filters(bank, staff, two_accounts):
    a, b = two_accounts
    with pytest.raises(ApprovalNotFound):
        bank.approvals.approve(staff["manager"], 999)
    p1 = bank.payments.withdraw(staff["teller"], a, "11,000.00")
    p2 = bank.payments.transfer(staff["teller"], a, b, "12,000.00")
    bank.approvals.reject(staff["manager"], p1.request_id, "no")
    queue = bank.approvals.list(staff["manager"], "pending")
    assert list(queue["request_id"]) == [p2.request_id]
    assert list(queue["target_holder"]) == ["John Smith"]
    assert list(queue["amount"]) == [Decimal("12000.00")]
    with pytest.raises(PermissionDenied):
        bank.approvals.list(Actor(username="c", role="customer", customer_id=1001))


def test_the_threshold_is_a_setting(bank, staff, two_accounts):
    a, _ = two_accounts
    bank.settings.set(staff["system"], "four_eyes_threshold_cents", 100000)
    assert isinstance(bank.payments.withdraw(staff["teller"], a, "1,000.01"), PendingApproval)
    assert isinstance(bank.payments.withdraw(staff["teller"], a, "1,000.00"), Receipt)


def test_verify_reports_holds_that_do_not_match_open_holds(bank, staff, two_accounts):
    a, _ = two_accounts
    bank.payments.withdraw(staff["teller"], a, "15,000.00")
    bank.write(lambda uow: uow.execute(
        "UPDATE accounts SET holds_cents = holds_cents + 1 WHERE account_number = ?", [a]))
    problems = bank.audit.verify()
    assert problems == [f"account {a} holds 1500001 cents but its open holds sum to 1500000"]


def test_approval_sees_the_released_hold_even_when_the_writer_cached_the_account(
        bank, staff, two_accounts):
    a, b = two_accounts
    pending = bank.payments.withdraw(staff["teller"], a, "45,000.00")
    # A batch post caches the account row (holds included) in the writer.
    bank.payments.deposit(staff["system"], a, "1.00")
    receipt = bank.approvals.approve(staff["manager"], pending.request_id)
    assert receipt.amount == Decimal("45000.00")
    assert (_balance(bank, a), _holds(bank, a)) == (500100, 0)
    assert bank.audit.verify() == []


def test_one_batch_counts_a_staff_members_earlier_payment_towards_the_threshold(
        bank, staff, two_accounts):
    """Staff payments at or under the threshold are decided in the writer's posting batch
    (PostingRequest.four_eyes). Two of one teller's payments for one customer in one batch:
    the second counts the first, which the ledger does not hold yet, so 60.00 + 60.00 over a
    threshold of 100.00 makes the second wait (MustWait, then queued by post_or_submit); a
    payment of another teller in the same batch counts only its own."""
    from bankms.services.ledger import MustWait

    a, _ = two_accounts
    bank.settings.set(staff["system"], "four_eyes_threshold_cents", 100_00)
    other = employee(bank, "teller")
    requests = [dataclasses.replace(
        bank.payments._deposit_request(actor, a, 60_00, key, ""), four_eyes=True)
        for actor, key in ((staff["teller"], "fe-a"), (staff["teller"], "fe-b"),
                           (other, "fe-c"))]
    audited = "SELECT count(*) FROM audit_log WHERE action = 'payment.deposit'"
    (before,) = bank.read_one(audited)
    outcomes = bank._writer._commit_batch(requests, lookup_keys=False)
    assert [type(o) for o in outcomes] == [Receipt, MustWait, Receipt]
    assert bank.read_one(audited) == (before + 2,)
    assert isinstance(bank.payments.deposit(staff["teller"], a, "60.00",
                                            idempotency_key="fe-b"), PendingApproval)
    assert bank.audit.verify() == []
