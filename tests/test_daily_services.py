"""bankms services behind the daily pages: customer overview, history filters and CSV, the
payment review step, receipts, idempotent onboarding and account opening."""
from __future__ import annotations

import io
from decimal import Decimal

import pypdf
import pytest
from conftest import employee, funded_account, login_for, make_customer

from bankms.services.accounts import history_csv
from bankms.domain.errors import (
    IdempotencyConflict,
    InvalidState,
    PermissionDenied,
    SameAccount,
)
from bankms.reporting.receipts import receipt_pdf


@pytest.fixture
def world(bank):
    jane = make_customer(bank, name="Jane Doe")
    john = make_customer(bank, name="John Smith")
    a = funded_account(bank, "1,000.00", customer_id=jane)
    a2 = funded_account(bank, "0", customer_id=jane, kind="savings")
    b = funded_account(bank, "0", customer_id=john)
    return {"jane": jane, "john": john, "a": a, "a2": a2, "b": b,
            "teller": employee(bank, "teller"), "manager": employee(bank, "manager"),
            "jane_login": login_for(bank, jane, "jane"),
            "john_login": login_for(bank, john, "john")}


def test_overview_gathers_profile_accounts_activity_and_loans(bank, world):
    bank.payments.transfer(world["teller"], world["a"], world["b"], "100.00", memo="rent")
    loan_id = bank.loans.apply(world["jane_login"], world["jane"], product="personal",
                               principal="2,000.00", term_months=12, purpose="new boiler",
                               monthly_income="3,000.00")
    view = bank.customers.overview(world["teller"], world["jane"])
    assert view["profile"]["full_name"] == "Jane Doe"
    assert sorted(view["accounts"]["account_number"]) == sorted([world["a"], world["a2"]])
    assert list(view["activity"]["amount"]) == [Decimal("-100.00"), Decimal("1000.00")]
    assert list(view["loans"]["loan_id"]) == [loan_id]
    assert list(view["loans"]["principal"]) == [Decimal("2000.00")]
    assert view["pending_approvals"].empty


def test_overview_without_the_loans_module_shows_no_loans(bank, world, monkeypatch):
    monkeypatch.delattr(bank, "loans")
    assert bank.customers.overview(world["teller"], world["jane"])["loans"] is None


OVERVIEW_ACCESS_CASES = [
    ("teller", None),
    ("jane_login", None),
    ("john_login", PermissionDenied),
]


@pytest.mark.parametrize("who, error", OVERVIEW_ACCESS_CASES)
def test_overview_access(bank, world, who, error):
    if error:
        with pytest.raises(error):
            bank.customers.overview(world[who], world["jane"])
    else:
        view = bank.customers.overview(world[who], world["jane"])
        assert (view["pending_approvals"] is None) is (who == "jane_login")


@pytest.fixture
def history(bank, world):
    t = world["teller"]
    bank.payments.deposit(t, world["a"], "50.00", memo="Birthday cash")
    bank.payments.transfer(t, world["a"], world["b"], "200.00", memo="Rent March")
    bank.payments.withdraw(t, world["a"], "25.50")
    return world["a"]


# One row per case: filters, then the amounts expected (newest first).
HISTORY_CASES = [
    ({}, ["-25.50", "-200.00", "50.00", "1000.00"]),
    ({"kind": "deposit"}, ["50.00", "1000.00"]),
    ({"kind": "transfer"}, ["-200.00"]),
    ({"text": "rent"}, ["-200.00"]),
    ({"text": "RENT  march"}, ["-200.00"]),
    ({"kind": "deposit", "text": "birthday"}, ["50.00"]),
    ({"start": "2000-01-01", "end": "2000-12-31"}, []),
    ({"label": "Cash deposit"}, ["50.00", "1000.00"]),
    ({"label": "Transfer out"}, ["-200.00"]),
    ({"label": "Transfer in"}, []),
]


@pytest.mark.parametrize("filters, amounts", HISTORY_CASES)
def test_history_filters_keep_the_running_balance(bank, world, history, filters, amounts):
    full = bank.accounts.history(world["jane_login"], history)
    df = bank.accounts.history(world["jane_login"], history, **filters)
    assert [str(v) for v in df["amount"]] == amounts
    balance_of = dict(zip(full["transaction_id"], full["balance"]))
    assert all(balance_of[t] == b for t, b in zip(df["transaction_id"], df["balance"]))


def test_history_text_finds_a_transaction_id_and_kinds_are_listed(bank, world, history):
    full = bank.accounts.history(world["teller"], history)
    tid = int(full["transaction_id"].iloc[1])
    assert list(bank.accounts.history(world["teller"], history, text=str(tid))["transaction_id"]) \
        == [tid]
    assert bank.accounts.history_kinds(world["teller"], history) == [
        "deposit", "transfer", "withdrawal"]
    assert bank.accounts.history_labels(world["teller"], history) == [
        "Cash deposit", "Cash withdrawal", "Transfer out"]


def test_history_csv_has_exact_amounts_and_running_balance(bank, world, history):
    text = history_csv(bank.accounts.history(world["jane_login"], history))
    lines = text.strip().splitlines()
    assert lines[0] == ("transaction_id,posted_at,business_date,kind,label,memo,counterparty,"
                        "amount,balance")
    assert lines[1].endswith(",-25.50,824.50")
    assert lines[-1].endswith(",1000.00,1000.00")


def test_review_for_staff_names_both_holders_and_flags_four_eyes(bank, world):
    review = bank.payments.review(world["teller"], "transfer", source=world["a"],
                                  target=world["b"], amount="1,234.50", memo=" a  note ")
    assert (review["amount_cents"], review["source_holder"], review["target_holder"],
            review["memo"], review["needs_approval"]) == (
        123450, "Jane Doe", "John Smith", "a note", False)
    big = bank.payments.review(world["teller"], "withdrawal", source=world["a"],
                               amount="10,000.01")
    assert big["needs_approval"] and big["target_account"] is None


REVIEW_CUSTOMER_CASES = [
    ("a", "b", "J*** S****", None),
    ("a", "a2", "Jane Doe", None),
    ("b", "a", None, PermissionDenied),
    ("a", "a", None, SameAccount),
]


@pytest.mark.parametrize("src, dst, payee, error", REVIEW_CUSTOMER_CASES)
def test_review_for_a_customer_masks_other_payees(bank, world, src, dst, payee, error):
    call = lambda: bank.payments.review(world["jane_login"], "transfer", source=world[src],  # noqa
                                        target=world[dst], amount="10")
    if error:
        with pytest.raises(error):
            call()
    else:
        assert call()["target_holder"] == payee


def test_receipt_details_and_pdf(bank, world):
    receipt = bank.payments.transfer(world["jane_login"], world["a"], world["b"], "12.34")
    details = bank.payments.receipt_details(world["jane_login"], receipt.transaction_id)
    assert (details["source_holder"], details["target_holder"]) == ("Jane Doe", "J*** S****")
    staff = bank.payments.receipt_details(world["teller"], receipt.transaction_id)
    assert staff["target_holder"] == "John Smith"
    text = pypdf.PdfReader(io.BytesIO(receipt_pdf(details))).pages[0].extract_text()
    assert f"Transaction id {receipt.transaction_id}" in text
    assert "$12.34" in text and "J*** S****" in text and "John Smith" not in text
    with pytest.raises(PermissionDenied):
        stranger = login_for(bank, make_customer(bank, name="Sam Other"), "sam")
        bank.payments.receipt_details(stranger, receipt.transaction_id)


def test_opening_and_onboarding_with_a_key_happen_once(bank, world):
    t = world["teller"]
    first = bank.accounts.open(t, world["john"], idempotency_key="open-1")
    assert bank.accounts.open(t, world["john"], idempotency_key="open-1") == first
    assert len(bank.accounts.list(t, world["john"])) == 2
    fields = dict(full_name="Ann Lee", email="ann@example.com", phone="+1 555 0199",
                  date_of_birth="1985-05-05", national_id="NEW123", address="2 Side St")
    cid = bank.customers.create(t, idempotency_key="onboard-1", **fields)
    assert bank.customers.create(t, idempotency_key="onboard-1", **fields) == cid
    with pytest.raises(IdempotencyConflict):
        bank.accounts.open(t, cid, idempotency_key="onboard-1")


# The same key with another request (a second tab of one session shares the form's key,
# form_keys.py): refused, never answered with the first request's result. (what, changed)
OTHER_REQUESTS = [
    ("account", {"customer": "jane"}),
    ("account", {"kind": "savings"}),
    ("customer", {"national_id": "OTHER9"}),
    ("customer", {"full_name": "Ann Leigh"}),
]


@pytest.mark.parametrize("what, changed", OTHER_REQUESTS)
def test_a_key_used_again_for_another_request_is_refused(bank, world, what, changed):
    t = world["teller"]
    if what == "account":
        def call(customer="john", kind="checking"):
            return bank.accounts.open(t, world[customer], kind=kind, idempotency_key="k-acc")
    else:
        fields = dict(full_name="Ann Lee", email="ann@example.com", phone="+1 555 0199",
                      date_of_birth="1985-05-05", national_id="NEW123", address="2 Side St")

        def call(**changes):
            return bank.customers.create(t, idempotency_key="k-cust", **{**fields, **changes})
    first = call()
    counts = "SELECT (SELECT count(*) FROM accounts), (SELECT count(*) FROM customers)"
    before = bank.read_one(counts)
    assert call() == first
    with pytest.raises(IdempotencyConflict):
        call(**changed)
    assert bank.read_one(counts) == before


def test_a_teller_closes_an_account_only_at_zero(bank, world):
    with pytest.raises(InvalidState):
        bank.accounts.close(world["teller"], world["a"])
    bank.accounts.close(world["teller"], world["a2"])
    assert bank.accounts.get(world["teller"], world["a2"])["status"] == "closed"


# One row per case: transfers a customer makes in one day, in order; the last one's outcome.
DAILY_LIMIT_CASES = [
    (["5,000.00"], "posted"),
    (["5,000.01"], "LimitExceeded"),
    (["3,000.00", "2,000.01"], "LimitExceeded"),
    (["3,000.00", "2,000.00"], "posted"),
    (["4,000.00", "own:4,000.00"], "posted"),  # between own accounts does not count
]


@pytest.mark.parametrize("amounts, outcome", DAILY_LIMIT_CASES)
def test_customer_daily_transfer_limit(bank, world, amounts, outcome):
    from bankms.domain.errors import LimitExceeded

    bank.payments.deposit(world["teller"], world["a"], "9,000.00")
    result = None
    for amount in amounts:
        target = world["a2"] if amount.startswith("own:") else world["b"]
        try:
            bank.payments.transfer(world["jane_login"], world["a"], target,
                                   amount.removeprefix("own:"))
            result = "posted"
        except LimitExceeded:
            result = "LimitExceeded"
    assert result == outcome
