"""Charges (issue 10): the catalogue, the register, event charges from end of day, staff charges
and manager waivers. Expected amounts are worked out by hand in each row, with Decimal."""
from __future__ import annotations

from decimal import Decimal

import pandas as pd
import pytest

from bankms.services import charges as charges_mod
from bankms.domain.errors import InvalidInput
from conftest import funded_account


def cents(text) -> int:
    return int(Decimal(text) * 100)


def account_id(bank, number):
    return bank.read_one("SELECT id FROM accounts WHERE account_number = ?", [number])[0]


def balance(bank, number) -> int:
    return bank.read_one("SELECT balance_cents FROM accounts WHERE account_number = ?",
                         [number])[0]


def fee_income(bank) -> int:
    return bank.read_one("SELECT balance_cents FROM accounts WHERE account_number = 'GL4100'")[0]


def post_events(bank, rows):
    actor = bank.system_actor()
    frame = pd.DataFrame(rows, columns=["account_id", "code", "amount_cents", "reason"])
    day = bank.business_date
    return bank.write(lambda uow: charges_mod.post_event_charges(bank, actor, uow, frame,
                                                                 day=day))


def assert_sound(bank):
    assert bank.audit.verify() == []
    assert bank.read_one("SELECT sum(balance_cents) FROM accounts")[0] == 0


def test_system_catalogue_is_seeded(bank):
    rows = bank.read("SELECT code, calc, system, active FROM charge_catalogue ORDER BY code")
    assert rows == [(code, "product", True, True) for code in sorted(
        ["maintenance", "min_balance", "overdraft", "standing_order_failed",
         "loan_disbursement"])]


# Each row: opening balance, overdraft limit, charges (code, amount text, reason) on one account,
# expected statuses, expected balance after.
EVENT_CASES = [
    ("100.00", "0", [("maintenance", "5.00", "Nov 2026")], ["charged"], "95.00"),
    ("3.00", "0", [("maintenance", "5.00", "Nov 2026")], ["not_collected"], "3.00"),
    ("5.00", "0", [("maintenance", "5.00", "Nov 2026")], ["charged"], "0.00"),
    # Within the overdraft limit a fee may take the balance below zero.
    ("2.00", "10.00", [("overdraft", "7.50", "Nov 2026")], ["charged"], "-5.50"),
    ("2.00", "5.00", [("overdraft", "7.50", "Nov 2026")], ["not_collected"], "2.00"),
    # Two charges: the first is paid, the second no longer fits.
    ("8.00", "0", [("maintenance", "5.00", "Nov 2026"), ("min_balance", "4.00", "Nov 2026")],
     ["charged", "not_collected"], "3.00"),
    # The same key twice in one frame counts once.
    ("50.00", "0", [("maintenance", "5.00", "Nov 2026"), ("maintenance", "5.00", "Nov 2026")],
     ["charged"], "45.00"),
]


@pytest.mark.parametrize("opening, limit, rows, statuses, after", EVENT_CASES)
def test_event_charges(bank, opening, limit, rows, statuses, after):
    number = funded_account(bank, opening, overdraft_limit=limit)
    aid = account_id(bank, number)
    income = fee_income(bank)
    posted = post_events(bank, [(aid, code, cents(a), r) for code, a, r in rows])
    assert posted == statuses.count("charged")
    got = bank.read("SELECT status FROM charges WHERE account_id = ? ORDER BY id", [aid])
    assert [s for (s,) in got] == statuses
    assert balance(bank, number) == cents(after)
    assert fee_income(bank) - income == cents(opening) - cents(after)
    # A rerun of the same day posts nothing and records nothing twice.
    assert post_events(bank, [(aid, code, cents(a), r) for code, a, r in rows]) == 0
    assert bank.read_one("SELECT count(*) FROM charges WHERE account_id = ?",
                         [aid])[0] == len(statuses)
    assert balance(bank, number) == cents(after)
    audits = bank.read_one("SELECT count(*) FROM audit_log WHERE action = 'charge.event'")[0]
    assert audits == len(statuses)
    assert_sound(bank)


def test_event_fee_transaction_names_the_charge(bank):
    number = funded_account(bank, "100.00")
    post_events(bank, [(account_id(bank, number), "maintenance", 500, "Nov 2026")])
    kind, amount, memo, src, tgt, tid = bank.read_one(
        "SELECT t.kind, t.amount_cents, t.memo, t.source_account, t.target_account, t.id "
        "FROM transactions t WHERE t.kind = 'fee'")
    assert (kind, amount, memo, src, tgt) == ("fee", 500, "Monthly maintenance - Nov 2026",
                                              number, "GL4100")
    assert bank.read_one("SELECT transaction_id FROM charges")[0] == tid


def test_event_charge_on_closed_account_is_not_collected(bank, system):
    number = funded_account(bank, "0")
    bank.accounts.close(system, number)
    assert post_events(bank, [(account_id(bank, number), "maintenance", 500, "Nov 2026")]) == 0
    assert bank.read_one("SELECT status, transaction_id FROM charges") == ("not_collected", None)
    assert_sound(bank)


@pytest.mark.parametrize("row, words", [
    ((None, "maintenance", 500, "x"), "account"),
    (("acct", "nope", 500, "Nov 2026"), "catalogue"),
    (("acct", "maintenance", 0, "Nov 2026"), "more than zero"),
    (("acct", "maintenance", -5, "Nov 2026"), "more than zero"),
    (("acct", "maintenance", 500, "  "), "reason"),
    ((999999, "maintenance", 500, "Nov 2026"), "no customer account"),
])
def test_event_charges_bad_input(bank, row, words):
    number = funded_account(bank, "100.00")
    row = tuple(account_id(bank, number) if v == "acct" else v for v in row)
    with pytest.raises(InvalidInput, match=words):
        post_events(bank, [row])
    assert bank.read_one("SELECT count(*) FROM charges")[0] == 0
    assert balance(bank, number) == cents("100.00")


# -- the staff service -------------------------------------------------------------------------
from bankms.services.charges import AlreadyWaived, ChargeNotFound  # noqa: E402
from bankms.services.ledger import PostingRequest  # noqa: E402
from bankms.domain.errors import (  # noqa: E402
    AccountClosed, AccountFrozen, AlreadyReversed, IdempotencyConflict, InsufficientFunds,
    InvalidAmount, InvalidState, PermissionDenied)
from conftest import employee, login_for, make_customer  # noqa: E402

# Money moves or rules are checked here: each test runs on DuckDB and on PostgreSQL.
pytestmark = pytest.mark.engines


@pytest.fixture
def staff(bank):
    """A manager, a teller and a catalogue of two staff charges: a flat 12.50 and 1.5 % with a
    minimum of 2.00 and a maximum of 25.00."""
    manager = employee(bank, "manager")
    teller = employee(bank, "teller")
    bank.charges.define(manager, "statement_copy", name="Statement copy", calc="flat",
                        amount="12.50")
    bank.charges.define(manager, "transfer_abroad", name="Transfer abroad", calc="percent",
                        rate_bp=150, minimum="2.00", maximum="25.00")
    return manager, teller


# Each row: code, base amount, typed amount, expected charge (worked out by hand).
APPLY_CASES = [
    ("statement_copy", None, None, "12.50"),
    ("transfer_abroad", "1000.00", None, "15.00"),     # 1000 x 1.5 %
    ("transfer_abroad", "100.00", None, "2.00"),       # 1.50 raised to the minimum
    ("transfer_abroad", "5000.00", None, "25.00"),     # 75.00 lowered to the maximum
    ("transfer_abroad", "333.33", None, "5.00"),       # 4.999995 half-up
    ("transfer_abroad", "200.10", None, "3.00"),       # 3.0015 -> 3.00
    ("maintenance", None, "7.25", "7.25"),             # a product-priced charge, typed
]


@pytest.mark.parametrize("code, base, typed, expected", APPLY_CASES)
def test_apply(bank, staff, code, base, typed, expected):
    manager, teller = staff
    number = funded_account(bank, "1000.00")
    income = fee_income(bank)
    quote = bank.charges.quote(teller, code, base_amount=base, amount=typed)
    assert quote["amount"] == Decimal(expected)
    done = bank.charges.apply(teller, number, code, reason="Customer asked for it",
                              base_amount=base, amount=typed, idempotency_key=f"k-{code}")
    assert (done["amount"], done["replayed"]) == (Decimal(expected), False)
    assert balance(bank, number) == cents("1000.00") - cents(expected)
    assert fee_income(bank) - income == cents(expected)
    # The same form again: the first charge, nothing moves twice.
    again = bank.charges.apply(teller, number, code, reason="Customer asked for it",
                               base_amount=base, amount=typed, idempotency_key=f"k-{code}")
    assert (again["charge_id"], again["replayed"]) == (done["charge_id"], True)
    assert balance(bank, number) == cents("1000.00") - cents(expected)
    listed = bank.charges.list(teller, number)
    assert list(listed[["id", "code", "amount", "status", "reason"]].itertuples(
        index=False, name=None)) == [(done["charge_id"], code, Decimal(expected), "charged",
                                      "Customer asked for it")]
    audit = bank.read_one("SELECT count(*) FROM audit_log WHERE action = 'charge.apply' "
                          "AND entity = 'charge'")[0]
    assert audit == 1
    assert_sound(bank)


def _customer_actor(bank, number):
    cid = bank.read_one("SELECT customer_id FROM accounts WHERE account_number = ?",
                        [number])[0]
    return login_for(bank, cid, "cust1")


# Each row: who, how the account is prepared, keyword arguments, expected error.
REFUSALS = [
    ("teller", None, dict(reason=""), InvalidInput),
    ("teller", None, dict(reason="  x "), InvalidInput),
    ("customer", None, dict(reason="Customer asked for it"), PermissionDenied),
    ("teller", "close", dict(reason="Customer asked for it"), AccountClosed),
    ("teller", "freeze", dict(reason="Customer asked for it"), AccountFrozen),
    ("teller", None, dict(reason="Customer asked for it", code="transfer_abroad",
                          base_amount="200000.00", maximum_free=True), InsufficientFunds),
    ("teller", None, dict(reason="Customer asked for it", code="transfer_abroad"),
     InvalidInput),                                     # a percentage without its base
    ("teller", None, dict(reason="Customer asked for it", amount="3.00"), InvalidInput),
    ("teller", None, dict(reason="Customer asked for it", code="nope"), ChargeNotFound),
    ("teller", "withdraw", dict(reason="Customer asked for it"), InvalidState),
    ("teller", None, dict(reason="Customer asked for it", amount=1.5, code="maintenance"),
     InvalidAmount),                                    # floats are refused
    ("teller", None, dict(reason="Customer asked for it", idempotency_key=None), InvalidInput),
]


@pytest.mark.parametrize("who, prepare, kwargs, error", REFUSALS)
def test_apply_refused(bank, staff, system, who, prepare, kwargs, error):
    manager, teller = staff
    number = funded_account(bank, "0" if prepare == "close" else "100.00")
    if prepare == "close":
        bank.accounts.close(system, number)
    elif prepare == "freeze":
        bank.accounts.freeze(system, number)
    elif prepare == "withdraw":
        bank.charges.set_active(manager, "statement_copy", False)
    # A copy: the parameter's dict is shared by the test's DuckDB and PostgreSQL runs.
    kwargs = dict(kwargs)
    if kwargs.pop("maximum_free", False):
        bank.charges.define(manager, "transfer_abroad", name="Transfer abroad", calc="percent",
                            rate_bp=150)
    actor = _customer_actor(bank, number) if who == "customer" else teller
    kwargs = {"code": "statement_copy", "idempotency_key": "k1", **kwargs}
    before = balance(bank, number)
    with pytest.raises(error):
        bank.charges.apply(actor, number, kwargs.pop("code"), **kwargs)
    assert bank.read_one("SELECT count(*) FROM charges")[0] == 0
    assert balance(bank, number) == before
    assert_sound(bank)


def test_apply_key_reused_for_another_charge(bank, staff):
    manager, teller = staff
    number = funded_account(bank, "100.00")
    bank.charges.apply(teller, number, "statement_copy", reason="First copy",
                       idempotency_key="k1")
    with pytest.raises(IdempotencyConflict):
        bank.charges.apply(teller, number, "statement_copy", reason="Second copy",
                           idempotency_key="k1")
    assert bank.read_one("SELECT count(*) FROM charges")[0] == 1


def _raise(outcome):
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


def test_waive(bank, staff):
    manager, teller = staff
    number = funded_account(bank, "100.00")
    income = fee_income(bank)
    done = bank.charges.apply(teller, number, "statement_copy", reason="Copy of May",
                              idempotency_key="k1")
    with pytest.raises(PermissionDenied):
        bank.charges.waive(teller, done["charge_id"], reason="Goodwill", idempotency_key="w0")
    with pytest.raises(InvalidInput):
        bank.charges.waive(manager, done["charge_id"], reason="", idempotency_key="w1")
    waived = bank.charges.waive(manager, done["charge_id"], reason="Bank error",
                                idempotency_key="w1")
    assert (waived["amount"], waived["replayed"]) == (Decimal("12.50"), False)
    assert balance(bank, number) == cents("100.00")
    assert fee_income(bank) == income
    # The same form again answers with the first waiver; a second waiver is refused.
    again = bank.charges.waive(manager, done["charge_id"], reason="Bank error",
                               idempotency_key="w1")
    assert (again["transaction_id"], again["replayed"]) == (waived["transaction_id"], True)
    with pytest.raises(AlreadyWaived):
        bank.charges.waive(manager, done["charge_id"], reason="Bank error",
                           idempotency_key="w2")
    # Nor can the fee be reversed by hand, before or after its waiver: the ledger itself
    # refuses a second reversal of the transaction.
    with pytest.raises(InvalidInput, match="waive it instead"):
        bank.payments.reverse(manager, done["transaction_id"], "again")
    with pytest.raises(AlreadyReversed):
        bank.write(lambda uow: _raise(bank.post_in(uow, PostingRequest(
            kind="reversal", actor=manager, action="payment.reverse",
            legs=[("GL4100", -1250), (number, 1250)], amount_cents=1250,
            idempotency_key="by-hand", reverses_id=done["transaction_id"],
            internal_ok=True))))
    row = bank.charges.list(manager, number).iloc[0]
    assert (row["status"], row["waived_by"], row["waive_reason"],
            row["waiver_transaction_id"]) == ("waived", manager.username, "Bank error",
                                              waived["transaction_id"])
    assert balance(bank, number) == cents("100.00")
    assert_sound(bank)


def test_waive_refusals(bank, staff):
    manager, teller = staff
    number = funded_account(bank, "1.00")
    post_events(bank, [(account_id(bank, number), "maintenance", 500, "Nov 2026")])
    (cid,) = bank.read_one("SELECT id FROM charges")
    with pytest.raises(InvalidState, match="not collected"):
        bank.charges.waive(manager, cid, reason="Goodwill", idempotency_key="w1")
    with pytest.raises(ChargeNotFound):
        bank.charges.waive(manager, 999, reason="Goodwill", idempotency_key="w2")
    with pytest.raises(InvalidInput):
        bank.charges.waive(manager, "1e3", reason="Goodwill", idempotency_key="w3")


def test_statement_shows_charge_and_waiver(bank, staff):
    manager, teller = staff
    number = funded_account(bank, "100.00")
    post_events(bank, [(account_id(bank, number), "maintenance", 500, "Nov 2026")])
    done = bank.charges.apply(teller, number, "statement_copy", reason="Copy of May",
                              idempotency_key="k1")
    bank.charges.waive(manager, done["charge_id"], reason="Bank error", idempotency_key="w1")
    day = bank.business_date
    st = bank.reports.statement(manager, number, day.year, day.month)
    assert list(st.lines["description"])[-3:] == [
        "Fee - Monthly maintenance - Nov 2026",
        "Fee - Statement copy - Copy of May",
        "Reversal - Fee waived: Statement copy - Copy of May: Bank error"]
    assert list(st.lines["amount_cents"])[-3:] == [-500, -1250, 1250]
    # Fees on the statement are net of the waiver: 5.00 charged and kept.
    assert st.fees_cents == 500
    assert st.reconciles()


# Each row: define keyword arguments, expected error (None: stored as given).
DEFINE_CASES = [
    (dict(code="copy", name="Copy", calc="flat", amount="2.00"), None),
    (dict(code="pct", name="Percent", calc="percent", rate_bp=10000), None),
    (dict(code="pct", name="Percent", calc="percent", rate_bp="250", minimum="1.00"), None),
    (dict(code="Bad Code", name="Copy", calc="flat", amount="2.00"), InvalidInput),
    (dict(code="copy", name="C", calc="flat", amount="2.00"), InvalidInput),
    (dict(code="copy", name="Copy", calc="flat"), InvalidInput),
    (dict(code="copy", name="Copy", calc="flat", amount="2.001"), InvalidAmount),
    (dict(code="copy", name="Copy", calc="flat", amount=2.0), InvalidAmount),
    (dict(code="copy", name="Copy", calc="flat", amount="-2"), InvalidAmount),
    (dict(code="copy", name="Copy", calc="product", amount="2.00"), InvalidInput),
    (dict(code="pct", name="Percent", calc="percent", rate_bp=10001), InvalidInput),
    (dict(code="pct", name="Percent", calc="percent", rate_bp=0), InvalidInput),
    (dict(code="pct", name="Percent", calc="percent", rate_bp=1.5), InvalidInput),
    (dict(code="pct", name="Percent", calc="percent", rate_bp=100, minimum="5.00",
          maximum="4.00"), InvalidInput),
    (dict(code="maintenance", name="Maintenance", calc="flat", amount="2.00"), InvalidInput),
]


@pytest.mark.parametrize("kwargs, error", DEFINE_CASES)
def test_define(bank, kwargs, error):
    manager = employee(bank, "manager")
    before = bank.read("SELECT * FROM charge_catalogue ORDER BY code")
    if error is not None:
        with pytest.raises(error):
            bank.charges.define(manager, **kwargs)
        assert bank.read("SELECT * FROM charge_catalogue ORDER BY code") == before
        return
    stored = bank.charges.define(manager, **kwargs)
    assert stored["code"] == kwargs["code"] and stored["system"] is False
    audit = bank.read_one("SELECT before, after FROM audit_log WHERE action = 'charge.define'")
    assert audit[0] is None and kwargs["code"] in audit[1]


def test_catalogue_rights_and_withdrawal(bank, staff):
    manager, teller = staff
    with pytest.raises(PermissionDenied):
        bank.charges.define(teller, "copy", name="Copy", calc="flat", amount="1.00")
    with pytest.raises(PermissionDenied):
        bank.charges.set_active(teller, "statement_copy", False)
    with pytest.raises(InvalidInput):
        bank.charges.set_active(manager, "maintenance", False)
    bank.charges.set_active(manager, "statement_copy", False)
    assert "statement_copy" not in set(bank.charges.catalogue(teller, active_only=True)["code"])
    row = bank.charges.catalogue(teller).set_index("code").loc["transfer_abroad"]
    assert (row["rate_percent"], row["minimum"], row["maximum"]) == (
        Decimal("1.50"), Decimal("2.00"), Decimal("25.00"))
    # A change is audited with what it was before.
    bank.charges.define(manager, "statement_copy", name="Statement copy", calc="flat",
                        amount="15.00")
    before = bank.read_one("SELECT before FROM audit_log WHERE action = 'charge.define' "
                           "ORDER BY id DESC LIMIT 1")[0]
    assert '"amount_cents": 1250' in before


def test_customer_sees_own_charges_only(bank, staff):
    manager, teller = staff
    number = funded_account(bank, "100.00")
    other = funded_account(bank, "100.00", customer_id=make_customer(bank, name="Other One"))
    bank.charges.apply(teller, number, "statement_copy", reason="Copy", idempotency_key="k1")
    customer = _customer_actor(bank, number)
    assert len(bank.charges.list(customer, number)) == 1
    with pytest.raises(PermissionDenied):
        bank.charges.list(customer, other)
    with pytest.raises(PermissionDenied):
        bank.charges.list(customer)


def test_verify_finds_a_register_that_disagrees_with_the_ledger(bank, staff):
    manager, teller = staff
    number = funded_account(bank, "100.00")
    done = bank.charges.apply(teller, number, "statement_copy", reason="Copy",
                              idempotency_key="k1")
    assert bank.charges.verify() == []
    bank.write(lambda uow: uow.execute("UPDATE charges SET amount_cents = 9999 WHERE id = ?",
                                       [done["charge_id"]]))
    assert bank.charges.verify() == [f"charge {done['charge_id']} (charged) does not match "
                                     "the ledger"]


def test_loan_disbursement_fee_is_registered_and_undone_with_the_loan(bank, staff):
    manager, teller = staff
    system = bank.system_actor()
    bank.loans.create_product(system, code="micro", name="Micro loan", amount_min="1000",
                              amount_max="50000", term_min_months=3, term_max_months=24,
                              rate_min_percent="10", rate_max_percent="25.5",
                              disbursement_fee="5.00", disbursement_fee_bp=100)
    cid = make_customer(bank)
    number = funded_account(bank, "0", customer_id=cid)
    lid = bank.loans.apply(teller, cid, product="micro", principal="2000.00", term_months=12,
                           purpose="new kitchen", monthly_income="4000.00")
    bank.loans.approve(manager, lid, annual_rate_percent="12")
    receipt = bank.loans.disburse(teller, lid, number)
    # 5.00 + 1 % of 2,000.00 = 25.00, kept back from the payout.
    row = bank.charges.list(manager, number).iloc[0]
    assert (row["code"], row["amount"], row["status"], row["transaction_id"], row["reason"]) == (
        "loan_disbursement", Decimal("25.00"), "charged", receipt.transaction_id,
        f"Loan {lid}")
    with pytest.raises(InvalidInput, match="loan"):
        bank.charges.waive(manager, row["id"], reason="Goodwill", idempotency_key="w1")
    assert_sound(bank)
    undone = bank.loans.undo_disbursement(manager, lid, "paid into the wrong account")
    row = bank.charges.list(manager, number).iloc[0]
    assert (row["status"], row["waiver_transaction_id"]) == ("waived", undone.transaction_id)
    assert_sound(bank)


def test_a_waiver_above_the_four_eyes_threshold_waits_for_a_second_manager(bank, staff):
    from bankms.services.approvals import PendingApproval
    manager, teller = staff
    second = employee(bank, "manager")
    bank.settings.set(bank.system_actor(), "four_eyes_threshold_cents", "1000")
    number = funded_account(bank, "100.00")
    done = bank.charges.apply(bank.system_actor(), number, "statement_copy", reason="Copy",
                              idempotency_key="k1")
    pending = bank.charges.waive(manager, done["charge_id"], reason="Bank error",
                                 idempotency_key="w1")
    assert isinstance(pending, PendingApproval) and pending.amount == Decimal("12.50")
    assert bank.charges.list(manager, number)["status"].tolist() == ["charged"]
    assert balance(bank, number) == cents("87.50")
    with pytest.raises(PermissionDenied):
        bank.approvals.approve(manager, pending.request_id)
    bank.approvals.approve(second, pending.request_id)
    row = bank.charges.list(manager, number).iloc[0]
    assert (row["status"], row["waived_by"]) == ("waived", manager.username)
    assert balance(bank, number) == cents("100.00")
    assert_sound(bank)
