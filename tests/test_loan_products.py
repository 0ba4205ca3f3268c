"""Issue 9: loan products are data that managers edit.

The service (create, update, deactivate: refusals change nothing and are audited), the four-eyes
rule on rate ranges, the snapshot a loan takes of its product when applied for (editing a
product never changes an existing loan), the disbursement fee (exact cents, its ledger legs and
its undo) and the per-loan late fee at end of day. Expected values are worked out by hand in
the comments.
"""
from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal as D

import duckdb
import pytest

import bankms
from bankms.domain import loan_replay
from bankms.services.approvals import PendingApproval
from bankms.bank import INTERNAL
from bankms.store.db import LOAN_TERM_COLUMNS
from bankms.domain.errors import InvalidAmount, InvalidInput, PermissionDenied
from bankms.services.loans import _contract
from conftest import employee, funded_account, make_customer

# Money moves or rules are checked here: each test runs on DuckDB and on PostgreSQL.
pytestmark = pytest.mark.engines

DAY = dt.timedelta(days=1)

VALID = dict(code="micro", name="Micro loan", amount_min="100.00", amount_max="5,000.00",
             term_min_months=3, term_max_months=24, rate_min_percent="10",
             rate_max_percent="25.5")


@pytest.fixture
def staff(bank, years_ahead):  # the clock ahead, so that end of day may close future days
    return {"teller": employee(bank, "teller"), "manager": employee(bank, "manager"),
            "manager2": employee(bank, "manager")}


def product_rows(bank):
    return bank.read("SELECT * FROM loan_products ORDER BY code")


def audit_rows(bank, action):
    return bank.read("SELECT actor, entity_id, before, after, outcome FROM audit_log "
                     "WHERE action = ? ORDER BY id", [action])


# -- creating ------------------------------------------------------------------------------
CREATE_REFUSED = [
    ({"amount_min": "6000"}, InvalidAmount, "smallest amount must not exceed"),
    ({"amount_min": "0.99"}, InvalidAmount, "between $1.00 and $100,000,000.00"),
    ({"amount_max": "100000000.01"}, InvalidAmount, "between $1.00 and $100,000,000.00"),
    ({"amount_max": "5000.001"}, InvalidAmount, "at most two decimals"),
    ({"amount_max": 5000.0}, InvalidAmount, "floating-point"),
    ({"rate_max_percent": "60.01"}, InvalidInput, "between 0 and 60 %"),
    ({"rate_min_percent": "-1"}, InvalidInput, "between 0 and 100"),
    ({"rate_max_percent": "12.12345"}, InvalidInput, "at most four decimals"),
    ({"rate_min_percent": "30"}, InvalidInput, "lowest rate must not exceed"),
    ({"term_max_months": 481}, InvalidInput, "between 1 and 480 months"),
    ({"term_min_months": 0}, InvalidInput, "between 1 and 480 months"),
    ({"term_min_months": 25}, InvalidInput, "shortest term must not exceed"),
    ({"grace_principal_periods": 3}, InvalidInput, "shorter than the 3 instalments"),
    ({"grace_principal_periods": -1}, InvalidInput, "between 0"),
    ({"disbursement_fee_bp": 10_001}, InvalidInput, "between 0 and 10,000"),
    ({"disbursement_fee_bp": 1.5}, InvalidInput, "whole number"),
    ({"disbursement_fee": "100.00"}, InvalidAmount, "must leave the borrower something"),
    ({"disbursement_fee": "1.00", "disbursement_fee_bp": 9_950}, InvalidAmount,
     "must leave the borrower something"),
    ({"late_fee": "1000.01"}, InvalidAmount, "at most $1,000.00"),
    ({"late_fee_grace_days": 91}, InvalidInput, "between 0 and 90"),
    ({"frequency": "daily"}, InvalidInput, "Unknown repayment frequency 'daily'"),
    ({"amortization": "balloon"}, InvalidInput, "Unknown amortization 'balloon'"),
    ({"day_count": "actual/360"}, InvalidInput, "Unknown day count 'actual/360'"),
    ({"prepayment_rule": "skip"}, InvalidInput, "Unknown prepayment rule 'skip'"),
    ({"due_dates_working_days": "maybe"}, InvalidInput, "yes or no"),
    ({"code": "Bad Code!"}, InvalidInput, "product code is 2 to 30"),
    ({"code": "personal"}, InvalidInput, "already a loan product 'personal'"),
    ({"name": "x"}, InvalidInput, "product name"),
    ({"penalty": "1"}, InvalidInput, "Unknown product field(s) penalty"),
]


@pytest.mark.parametrize("change, error, message", CREATE_REFUSED)
def test_a_bad_product_is_refused_and_nothing_changes(bank, staff, change, error, message):
    before = product_rows(bank)
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("$", r"\$").replace(".", r"\.")):
        bank.loans.create_product(staff["manager"], **{**VALID, **change})
    assert product_rows(bank) == before
    assert [r[4] for r in audit_rows(bank, "loan_product.create")] == ["refused"]


def test_only_managers_manage_products(bank, staff):
    before = product_rows(bank)
    for call in (lambda: bank.loans.create_product(staff["teller"], **VALID),
                 lambda: bank.loans.update_product(staff["teller"], "personal", late_fee="1"),
                 lambda: bank.loans.set_product_active(staff["teller"], "personal", False)):
        with pytest.raises(PermissionDenied):
            call()
    assert product_rows(bank) == before


def test_a_new_product_is_offered_and_audited(bank, staff):
    prod = bank.loans.create_product(staff["manager"], **VALID, frequency="monthly",
                                     disbursement_fee="10.00", disbursement_fee_bp=150,
                                     late_fee="12.50", late_fee_grace_days=3,
                                     day_count="30/360", prepayment_rule="shorten_term",
                                     due_dates_working_days=True)
    assert (prod["amount_min_cents"], prod["amount_max_cents"], prod["rate_max_percent"],
            prod["disbursement_fee_cents"], prod["late_fee_cents"], prod["day_count"],
            prod["due_dates_working_days"]) == (10_000, 500_000, D("25.50"), 1_000, 1_250,
                                                "30/360", True)
    assert "micro" in set(bank.loans.products()["code"])
    ((actor, code, before, after, outcome),) = audit_rows(bank, "loan_product.create")
    after = json.loads(after)
    assert (actor, code, before, outcome, after["rate_max_percent"],
            after["late_fee_cents"]) == (staff["manager"].username, "micro", None, "ok",
                                         "25.5", 1_250)


# -- editing -------------------------------------------------------------------------------
UPDATE_REFUSED = [
    ({"amount_min": "60000"}, InvalidAmount, "smallest amount must not exceed"),
    ({"term_max_months": 5}, InvalidInput, "shortest term must not exceed"),
    ({"rate_min_percent": "25"}, InvalidInput, "lowest rate must not exceed"),
    ({"grace_principal_periods": 6}, InvalidInput, "shorter than the 6 instalments"),
    ({"frequency": "yearly"}, InvalidInput, "Unknown repayment frequency 'yearly'"),
    ({"late_fee": "-1"}, InvalidAmount, "greater than zero"),
    ({"active": False}, InvalidInput, "Unknown product field"),
    ({}, InvalidInput, "Nothing to change"),
]


@pytest.mark.parametrize("change, error, message", UPDATE_REFUSED)
def test_a_bad_edit_is_refused_and_nothing_changes(bank, staff, change, error, message):
    before = product_rows(bank)
    with pytest.raises(error, match=message):
        bank.loans.update_product(staff["manager"], "personal", **change)
    assert product_rows(bank) == before
    assert [r[4] for r in audit_rows(bank, "loan_product.update")] == ["refused"]


def test_an_unknown_product_cannot_be_edited(bank, staff):
    with pytest.raises(InvalidInput, match="no loan product 'nope'"):
        bank.loans.update_product(staff["manager"], "nope", late_fee="1")


def test_an_edit_is_audited_with_before_and_after(bank, staff):
    prod = bank.loans.update_product(staff["manager"], "personal", late_fee="30.00",
                                     late_fee_grace_days=7, name="Personal loan plus")
    assert (prod["late_fee_cents"], prod["late_fee_grace_days"], prod["name"]) == (
        3_000, 7, "Personal loan plus")
    ((_, code, before, after, outcome),) = audit_rows(bank, "loan_product.update")
    assert (code, json.loads(before), json.loads(after), outcome) == (
        "personal", {"name": "Personal loan", "late_fee_cents": 2500, "late_fee_grace_days": 5},
        {"name": "Personal loan plus", "late_fee_cents": 3000, "late_fee_grace_days": 7}, "ok")


def test_a_rate_range_change_waits_for_a_second_manager(bank, staff):
    pending = bank.loans.update_product(staff["manager"], "personal", rate_max_percent="21.5",
                                        late_fee="30.00")
    assert isinstance(pending, PendingApproval)
    prod = bank.loans._product("personal")
    assert (prod["rate_max_percent"], prod["late_fee_cents"]) == (D("19.9"), 2_500)
    with pytest.raises(PermissionDenied):  # the maker never approves their own request
        bank.approvals.approve(staff["manager"], pending.request_id)
    bank.approvals.approve(staff["manager2"], pending.request_id)
    prod = bank.loans._product("personal")
    assert (prod["rate_max_percent"], prod["late_fee_cents"]) == (D("21.5"), 3_000)
    ((actor, _, before, after, _),) = audit_rows(bank, "loan_product.update")
    assert (actor, json.loads(before)["rate_max_percent"],
            json.loads(after)["rate_max_percent"]) == (staff["manager"].username, "19.9", "21.5")


def test_a_deactivated_product_takes_no_applications(bank, staff):
    cid = make_customer(bank)
    bank.loans.set_product_active(staff["manager"], "car", False)
    assert "car" not in set(bank.loans.products()["code"])
    assert "car" in set(bank.loans.products(include_inactive=True)["code"])
    with pytest.raises(InvalidInput, match="no loan product 'car'"):
        bank.loans.apply(staff["teller"], cid, product="car", principal="10000",
                         term_months=24, purpose="a car", monthly_income="4000")
    bank.loans.set_product_active(staff["manager"], "car", True)
    assert "car" in set(bank.loans.products()["code"])
    assert [(json.loads(b), json.loads(a)) for _, _, b, a, _ in
            audit_rows(bank, "loan_product.set_active")] == [
        ({"active": True}, {"active": False}), ({"active": False}, {"active": True})]


# -- the snapshot: a loan keeps the terms it was applied for on ----------------------------------
def _loan(bank, staff, cid, product="personal", principal="10000.00", term=12):
    return bank.loans.apply(staff["teller"], cid, product=product, principal=principal,
                            term_months=term, purpose="new kitchen", monthly_income="4000.00")


def _disbursed(bank, staff, cid, number, **kw):
    lid = _loan(bank, staff, cid, **kw)
    bank.loans.approve(staff["manager"], lid, annual_rate_percent="10")  # in every range
    bank.loans.disburse(staff["teller"], lid, number)
    return lid


def test_editing_a_product_leaves_existing_loans_as_they_were(bank, staff):
    cid = make_customer(bank)
    number = funded_account(bank, "0", customer_id=cid)
    active = _disbursed(bank, staff, cid, number)
    waiting = _loan(bank, staff, cid)
    schedule = bank.loans.schedule(staff["manager"], active)
    terms = bank.read("SELECT " + ", ".join(c for c, _, _ in LOAN_TERM_COLUMNS) +
                      " FROM loans ORDER BY id")
    system = bank.system_actor()
    bank.loans.update_product(system, "personal", day_count="30/360",
                              prepayment_rule="shorten_term", disbursement_fee="100.00",
                              disbursement_fee_bp=200, late_fee="99.00", late_fee_grace_days=1,
                              due_dates_working_days=True, rate_max_percent="25")
    assert bank.loans.schedule(staff["manager"], active).equals(schedule)
    assert bank.read("SELECT " + ", ".join(c for c, _, _ in LOAN_TERM_COLUMNS) +
                     " FROM loans ORDER BY id") == terms
    # The application filed before the edit is paid out on its own terms: no fee.
    bank.loans.approve(staff["manager"], waiting, annual_rate_percent="10")
    bank.loans.disburse(staff["teller"], waiting, number)
    assert bank.accounts.balance(system, number) == D("20000.00")
    # A new application takes the product as it is now.
    newer = _loan(bank, staff, cid)
    assert bank.read_one("SELECT day_count, prepayment_rule, late_fee_cents, "
                         "disbursement_fee_cents, due_dates_working_days FROM loans WHERE id = ?",
                         [newer]) == ("30/360", "shorten_term", 9_900, 10_000, True)
    assert bank.audit.verify() == []


# -- the disbursement fee --------------------------------------------------------------------
FEES = [
    # flat, basis points, principal, fee: flat + principal x bp / 10,000, half-up to the cent
    ("0", 0, "10000.00", 0),
    ("250.00", 0, "2000.00", 25_000),
    ("0", 150, "10000.00", 15_000),            # 1.5 % of 10,000.00
    ("5.00", 125, "1234.57", 500 + 1_543),     # 123,457 x 0.0125 = 1,543.2125 -> 1,543
    ("0", 50, "1001.00", 501),                 # 100,100 x 0.005 = 500.5 -> 501 (half-up)
    ("0", 50, "1000.98", 500),                 # 100,098 x 0.005 = 500.49 -> 500
]


@pytest.mark.parametrize("flat, bp, principal, fee_cents", FEES)
def test_the_disbursement_fee_is_kept_back_from_the_payout(bank, staff, flat, bp, principal,
                                                          fee_cents):
    system = bank.system_actor()
    bank.loans.create_product(system, **{**VALID, "amount_min": "1000", "amount_max": "50000"},
                              disbursement_fee=flat, disbursement_fee_bp=bp)
    quote = bank.loans.product_quote("micro", principal, 12)
    principal_cents = bankms.to_cents(principal)
    assert (quote.attrs["disbursement_fee_cents"], quote.attrs["net_amount_cents"]) == (
        fee_cents, principal_cents - fee_cents)
    cid = make_customer(bank)
    number = funded_account(bank, "0", customer_id=cid)
    fee_gl = INTERNAL["fee_income"]
    fees_before = bank.read_one("SELECT balance_cents FROM accounts WHERE account_number = ?",
                                [fee_gl])[0]
    lid = _loan(bank, staff, cid, product="micro", principal=principal)
    bank.loans.approve(staff["manager"], lid, annual_rate_percent="12")
    receipt = bank.loans.disburse(staff["teller"], lid, number)
    legs = dict(bank.read("SELECT a.account_number, p.amount_cents FROM postings p JOIN "
                          "accounts a ON a.id = p.account_id WHERE p.transaction_id = ?",
                          [receipt.transaction_id]))
    expected = {INTERNAL["loans_receivable"]: -principal_cents,
                number: principal_cents - fee_cents}
    if fee_cents:
        expected[fee_gl] = fee_cents
    assert legs == expected
    assert bank.accounts.balance(system, number) == bankms.to_money(principal_cents - fee_cents)
    history = bank.loans.history(staff["manager"], lid)
    assert history[["event", "amount_cents", "fee_cents"]].values.tolist() == [
        ["disbursement", principal_cents, fee_cents]]
    if fee_cents:
        assert f"disbursement fee {bankms.to_money(fee_cents)}" in receipt.memo
    assert bank.audit.verify() == []

    bank.loans.undo_disbursement(staff["manager"], lid, "paid into the wrong account")
    assert bank.accounts.balance(system, number) == D("0.00")
    assert bank.read_one("SELECT balance_cents FROM accounts WHERE account_number = ?",
                         [fee_gl])[0] == fees_before
    history = bank.loans.history(staff["manager"], lid)
    assert history[["event", "fee_cents"]].values.tolist() == [
        ["disbursement", fee_cents], ["undo disbursement", -fee_cents]]
    assert bank.loans.verify() == [] and bank.audit.verify() == []


# -- the late fee is the loan's own at end of day ------------------------------------------------
LATE = [
    # product, late fee, grace days, fee charged by end of day of due + grace (not the day before)
    ("personal", "10.00", 2, 1_000),
    ("car", "0", 5, 0),
    ("home_improvement", "40.00", 0, 4_000),
]


@pytest.mark.parametrize("product, late_fee, grace, charged", LATE)
@pytest.mark.slow
def test_end_of_day_charges_each_loan_its_own_late_fee(bank, staff, product, late_fee, grace,
                                                       charged):
    system = bank.system_actor()
    bank.loans.update_product(system, product, late_fee=late_fee, late_fee_grace_days=grace)
    cid = make_customer(bank)
    number = funded_account(bank, "0", customer_id=cid)
    lid = _disbursed(bank, staff, cid, number, product=product, principal="10000.00", term=24)
    bank.payments.withdraw(system, number, "10000.00")  # nothing left to collect
    # Edited after the application: the loan keeps the fee it was applied for.
    bank.loans.update_product(system, product, late_fee="77.00", late_fee_grace_days=1)
    due = bank.read_one("SELECT min(due_date) FROM loan_schedule WHERE loan_id = ?", [lid])[0]
    bank.end_of_day(system, until=due + dt.timedelta(days=grace) - DAY)
    assert bank.read_one("SELECT fee_cents FROM loan_schedule WHERE loan_id = ? AND n = 1",
                         [lid])[0] == 0
    bank.end_of_day(system, until=due + dt.timedelta(days=grace))
    assert bank.read_one("SELECT fee_cents FROM loan_schedule WHERE loan_id = ? AND n = 1",
                         [lid])[0] == charged
    (day_fees,) = bank.read_one("SELECT late_fee_cents FROM eod_runs WHERE business_date = ?",
                                [due + dt.timedelta(days=grace)])
    assert day_fees == charged
    assert bank.audit.verify() == []


# -- the migration of banks made before products had terms ---------------------------------------
def test_an_older_bank_gets_todays_behaviour_and_its_late_fee_settings(tmp_path):
    path = str(tmp_path / "old.duckdb")
    with bankms.open_bank(path, bcrypt_rounds=4) as bank:
        lid = bank.loans.apply(bank.system_actor(), make_customer(bank), product="car",
                               principal="10000", term_months=24, purpose="a car",
                               monthly_income="4000")
    con = duckdb.connect(path)
    for table in ("loan_products", "loans"):
        for column, _, _ in LOAN_TERM_COLUMNS:
            con.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    con.execute("INSERT INTO settings VALUES ('loan_late_fee_cents', '1500'), "
                "('loan_late_fee_grace_days', '3')")
    con.close()
    with bankms.open_bank(path, bcrypt_rounds=4) as bank:
        products = bank.loans.products()
        assert set(products["late_fee_cents"]) == {1_500}
        assert set(products["late_fee_grace_days"]) == {3}
        assert [set(products[c]) for c in ("amortization", "frequency", "day_count",
                                           "prepayment_rule", "due_dates_working_days",
                                           "disbursement_fee_cents", "disbursement_fee_bp",
                                           "grace_principal_periods")] == [
            {"equal_instalments"}, {"monthly"}, {"actual/365"}, {"reduce_instalment"}, {False},
            {0}, {0}, {0}]
        # The loan applied for before keeps today's behaviour and the late fee of then.
        assert bank.read_one("SELECT late_fee_cents, late_fee_grace_days, frequency, day_count, "
                             "disbursement_fee_cents FROM loans WHERE id = ?", [lid]) == (
            1_500, 3, "monthly", "actual/365", 0)


# -- the product's frequency, amortization and grace shape the loan's schedule ------------------
SHAPES = [
    # frequency, amortization, grace, term (months), instalments, days to the first due date,
    # first instalment's interest in cents: 10,000.00 at 10 % a year
    ("monthly", "equal_instalments", 0, 12, 12, None, None),
    ("weekly", "equal_instalments", 0, 12, 52, 7, None),            # 12 x 52 / 12
    ("biweekly", "equal_principal", 2, 6, 13, 14, 3_846),          # 1,000,000 x 10 / 2,600
    ("monthly", "equal_principal", 3, 12, 12, None, None),
]


@pytest.mark.parametrize("frequency, amortization, grace, term, count, first_days, interest",
                         SHAPES)
def test_a_loan_follows_its_products_schedule_terms(bank, staff, frequency, amortization,
                                                    grace, term, count, first_days, interest):
    system = bank.system_actor()
    bank.loans.update_product(system, "personal", frequency=frequency, late_fee="26.00",
                              amortization=amortization, grace_principal_periods=grace)
    cid = make_customer(bank)
    number = funded_account(bank, "0", customer_id=cid)
    quote = bank.loans.product_quote("personal", "10000.00", term)
    lid = _disbursed(bank, staff, cid, number, term=term)
    # Changed after the application: the loan keeps the shape it was applied for.
    other = {"equal_instalments": "equal_principal", "equal_principal": "equal_instalments"}
    bank.loans.update_product(system, "personal", frequency="monthly",
                              amortization=other[amortization], grace_principal_periods=1)
    schedule = bank.loans.schedule(staff["manager"], lid)
    assert len(schedule) == len(quote) == count
    assert list(schedule["principal_cents"][:grace]) == [0] * grace
    assert schedule["principal_cents"][grace] > 0
    if first_days:
        assert (schedule["due_date"][0] - bank.business_date).days == first_days
    if interest:
        assert schedule["interest_cents"][0] == interest
    if amortization == "equal_principal":  # the principal parts differ by at most a cent
        parts = list(schedule["principal_cents"][grace:-1])
        assert max(parts) - min(parts) <= 1
    assert sum(schedule["principal_cents"]) == 1_000_000
    bank.payments.deposit(system, number, "2000.00")
    bank.end_of_day(system, until=schedule["due_date"][1])
    assert bank.read_one("SELECT count(*) FROM loan_schedule WHERE loan_id = ? AND "
                         "interest_paid_cents + principal_paid_cents = payment_cents",
                         [lid])[0] == 2
    assert bank.audit.verify() == []


ACCRUALS = [
    # day count, frequency: end of day accrues exactly what the replay says is accrued
    ("actual/365", "monthly"),
    ("30/360", "monthly"),
    ("actual/actual", "biweekly"),
    ("30/360", "weekly"),
]


@pytest.mark.parametrize("day_count, frequency", ACCRUALS)
def test_end_of_day_accrues_what_the_loans_terms_say(bank, staff, day_count, frequency):
    system = bank.system_actor()
    bank.loans.update_product(system, "personal", day_count=day_count, frequency=frequency,
                              late_fee="0")
    cid = make_customer(bank)
    number = funded_account(bank, "0", customer_id=cid)
    lid = _disbursed(bank, staff, cid, number, principal="12345.67", term=12)
    bank.payments.withdraw(system, number, "12345.67")
    seen = []
    for _ in range(40):
        bank.end_of_day(system, until=bank.business_date)
        (accrued,) = bank.read_one("SELECT coalesce(max(accrued_cents), 0) FROM loan_accruals "
                                   "WHERE loan_id = ?", [lid])
        seen.append((accrued, bank.loans.get(system, lid)["accrued_interest_cents"]))
    assert [a for a, _ in seen] == [b for _, b in seen]
    assert bank.audit.verify() == []


class _Sundays:
    """A stand-in working-day calendar: due dates on a Sunday move to the Monday."""

    @staticmethod
    def move_due_date(day):
        return day + DAY if day.weekday() == 6 else day


@pytest.mark.parametrize("working_days, calendar, moved", [
    (True, _Sundays(), True),
    (False, _Sundays(), False),
    (True, None, False),
])
def test_a_loan_with_working_day_due_dates_takes_the_calendars_move(working_days, calendar,
                                                                    moved):
    loan = {"principal_cents": 100_000, "annual_rate_percent": D("12"), "term_months": 12,
            "disbursement_date": dt.date(2027, 1, 3), "due_dates_working_days": working_days}
    dues = [r.due for r in loan_replay.Loan(_contract(loan, calendar)).rows]
    # The disbursement day 2027-01-03 is a Sunday; so is the ninth due date, 2027-10-03.
    assert (dt.date(2027, 10, 4) in dues) is moved
    assert (dt.date(2027, 10, 3) in dues) is not moved
