"""Issue 9, tried as a lending officer and an auditor would: a product made as data carried
through its whole life, and the open points the review settled (interest paid ahead becomes
principal, never a negative interest part; no 0.00 collections; a future payoff quote counts
the late fees end of day will charge by then).

Expected values are worked out by hand in the comments (fractions where a day share is cut).
"""
from __future__ import annotations

import datetime as dt
from decimal import Decimal as D
from fractions import Fraction as F

import pytest

from bankms.bank import INTERNAL
from bankms.store.db import LOAN_TERM_COLUMNS
from conftest import employee, funded_account, make_customer

DAY = dt.timedelta(days=1)


def cents(value: F) -> int:
    """Half-up to the cent (written out here, not the module's helper)."""
    return int(value + F(1, 2)) if value >= 0 else -int(-value + F(1, 2))


@pytest.fixture
def staff(bank, years_ahead):  # the clock ahead, so that end of day may close future days
    return {"teller": employee(bank, "teller"), "manager": employee(bank, "manager"),
            "manager2": employee(bank, "manager")}


def gl(bank, code):
    return bank.read_one("SELECT balance_cents FROM accounts WHERE account_number = ?",
                         [INTERNAL[code]])[0]


def schedule_cents(bank, lid, n, column):
    return bank.read_one(f"SELECT {column} FROM loan_schedule WHERE loan_id = ? AND n = ?",
                         [lid, n])[0]


WEEKLY = dict(code="weekly", name="Weekly trader loan", amount_min="100.00",
              amount_max="50000.00", term_min_months=3, term_max_months=24,
              rate_min_percent="5", rate_max_percent="20", amortization="equal_principal",
              frequency="weekly", grace_principal_periods=2, disbursement_fee="5.00",
              disbursement_fee_bp=100, late_fee="7.50", late_fee_grace_days=3)


def test_a_weekly_equal_principal_product_from_creation_to_undo(bank, staff):
    system, teller, manager = bank.system_actor(), staff["teller"], staff["manager"]
    bank.end_of_day(system, until=dt.date(2027, 3, 31), confirm=True)
    assert bank.business_date == dt.date(2027, 4, 1)
    bank.loans.create_product(manager, **WEEKLY)
    cid = make_customer(bank)
    number = funded_account(bank, "0", customer_id=cid)
    lid = bank.loans.apply(teller, cid, product="weekly", principal="5200.00", term_months=12,
                           purpose="market stall stock", monthly_income="3000.00")
    bank.loans.approve(manager, lid, annual_rate_percent="10.4")
    receipt = bank.loans.disburse(teller, lid, number)
    # Fee 5.00 + 1 % of 5,200.00 = 57.00 kept back; 5,143.00 paid out.
    assert "disbursement fee 57.00, paid out 5143.00" in receipt.memo
    assert bank.accounts.balance(system, number) == D("5143.00")
    # 12 months weekly = 52 instalments; r = 10.4 / 5,200 = 0.002 a week; 2 interest-only
    # (5,200.00 x 0.002 = 10.40), then 5,200.00 / 50 = 104.00 of principal each.
    schedule = bank.loans.schedule(manager, lid)
    assert len(schedule) == 52
    assert list(schedule["due_date"][:3]) == [dt.date(2027, 4, 8), dt.date(2027, 4, 15),
                                              dt.date(2027, 4, 22)]
    assert list(schedule["payment_cents"][:4]) == [1_040, 1_040, 11_440, 10_400 + 1_019]
    assert set(schedule["principal_cents"][2:]) == {10_400}

    bank.payments.withdraw(system, number, "5143.00")
    bank.payments.deposit(system, number, "20.80")  # the two interest-only instalments
    bank.end_of_day(system, until=dt.date(2027, 4, 15))
    assert bank.read("SELECT business_date, amount_cents, interest_cents FROM loan_payments "
                     "WHERE loan_id = ? ORDER BY 1", [lid]) == [
        (dt.date(2027, 4, 8), 1_040, 1_040), (dt.date(2027, 4, 15), 1_040, 1_040)]
    # Accrued by the end of 04-15: one day of instalment 3's week, 10.40 x 1/7 = 1.4857.
    assert bank.read_one("SELECT accrued_cents FROM loan_accruals WHERE loan_id = ?",
                         [lid])[0] == cents(F(1_040, 7)) == 149

    # Instalment 3 (due 04-22) stays unpaid: the product's 7.50 after its 3 grace days.
    bank.end_of_day(system, until=dt.date(2027, 4, 24))
    assert schedule_cents(bank, lid, 3, "fee_cents") == 0
    bank.end_of_day(system, until=dt.date(2027, 4, 25))
    assert schedule_cents(bank, lid, 3, "fee_cents") == 750
    loan = bank.loans.get(manager, lid)
    assert (loan["days_past_due"], loan["bucket"]) == (4, "1-30")  # 04-26 less 04-22
    # Accrued: instalment 3's 10.40 + 4 days of instalment 4's week on 5,096.00:
    # 5,096.00 x 0.002 x 4/7 = 5.824 -> 5.82; 16.22 in all, end of day and the replay alike.
    accrued = 1_040 + cents(F(509_600 * 2 * 4, 1000 * 7))
    assert accrued == 1_622 == loan["accrued_interest_cents"]
    assert bank.read_one("SELECT accrued_cents FROM loan_accruals WHERE loan_id = ?",
                         [lid])[0] == accrued
    # Provision: 5 % (bucket 1-30) of 5,200.00 = 260.00.
    assert bank.read_one("SELECT bucket, provision_cents FROM loan_provisions WHERE "
                         "loan_id = ?", [lid]) == ("1-30", 26_000)
    report = bank.loans.provisions(manager)
    assert report.loc[report["bucket"] == "1-30", "provision_cents"].item() == 26_000

    # The payoff for 05-12, quoted on 04-26: principal 5,200.00; interest of instalments 3-5
    # (10.40, 5,096.00 x 0.002 = 10.19, 4,992.00 x 0.002 = 9.98) and 6 days of instalment 6's
    # week on 4,888.00 (x 0.002 x 6/7 = 8.379 -> 8.38); the fee charged (7.50) and those end
    # of day will charge by then on instalments 4 and 5 (fee dates 05-02 and 05-09): 15.00.
    quote = bank.loans.payoff(teller, lid, on=dt.date(2027, 5, 12))
    interest = 1_040 + 1_019 + 998 + cents(F(488_800 * 2 * 6, 1000 * 7))
    assert (quote["principal_cents"], quote["interest_cents"], quote["fees_cents"],
            quote["late_fees_expected_cents"], quote["total_cents"]) == (
        520_000, interest, 750 + 1_500, 1_500, 520_000 + interest + 2_250)
    assert quote["total"] == D("5261.45")
    bank.end_of_day(system, until=dt.date(2027, 5, 11))
    assert bank.loans.payoff(teller, lid)["total_cents"] == quote["total_cents"]
    bank.payments.deposit(system, number, "5261.45")
    paid = bank.loans.repay(teller, lid, "5261.45", number)
    assert bank.loans.get(manager, lid)["status"] == "paid_off"
    assert bank.audit.verify() == []

    # Corrections by a manager: the payoff reversed reopens the loan.
    bank.loans.reverse_repayment(manager, lid, paid.transaction_id, "cheque returned unpaid")
    loan = bank.loans.get(manager, lid)
    assert (loan["status"], loan["principal_outstanding_cents"]) == ("active", 520_000)
    history = bank.loans.history(manager, lid)
    assert history.loc[history["transaction_id"] == paid.transaction_id, "reversed"].item()
    assert bank.audit.verify() == []

    # Editing the product afterwards changes nothing on the existing loan.
    before = bank.loans.schedule(manager, lid)
    terms = bank.read_one("SELECT " + ", ".join(c for c, _, _ in LOAN_TERM_COLUMNS) +
                          " FROM loans WHERE id = ?", [lid])
    bank.loans.update_product(manager, "weekly", frequency="monthly",
                              amortization="equal_instalments", grace_principal_periods=0,
                              late_fee="1.00", late_fee_grace_days=0, day_count="30/360")
    assert bank.loans.schedule(manager, lid).equals(before)
    assert bank.read_one("SELECT " + ", ".join(c for c, _, _ in LOAN_TERM_COLUMNS) +
                         " FROM loans WHERE id = ?", [lid]) == terms

    # A disbursement undone after its only repayment was reversed: the fee comes back.
    bank.loans.update_product(manager, "weekly", **{k: WEEKLY[k] for k in (
        "frequency", "amortization", "grace_principal_periods", "late_fee")})
    other = funded_account(bank, "0", customer_id=cid)
    fees_before = gl(bank, "fee_income")
    second = bank.loans.apply(teller, cid, product="weekly", principal="1000.00",
                              term_months=6, purpose="more stock", monthly_income="3000.00")
    bank.loans.approve(staff["manager2"], second, annual_rate_percent="10.4")
    bank.loans.disburse(teller, second, other)
    assert bank.accounts.balance(system, other) == D("985.00")  # fee 5.00 + 10.00
    assert gl(bank, "fee_income") == fees_before + 1_500
    repaid = bank.loans.repay(teller, second, "10.00", other)
    bank.loans.reverse_repayment(manager, second, repaid.transaction_id, "wrong loan")
    bank.loans.undo_disbursement(manager, second, "paid into the wrong account")
    assert bank.loans.get(manager, second)["status"] == "approved"
    assert bank.accounts.balance(system, other) == D("0.00")
    assert gl(bank, "fee_income") == fees_before
    assert bank.audit.verify() == []


# -- (b) interest paid ahead that a prepayment makes unearned becomes principal ----------------
PAID_AHEAD = [
    # 10,000.00 at 12 % disbursed 2027-04-01 (first due 05-01, a 30-day period, 100.00 of
    # interest); 888.49 paid 04-26 covers instalment 1 ahead. Then on 04-28, 27 days in:
    # accrued 100.00 x 27/30 = 90.00.
    # * 5,000.00 prepaid: new interest 90.00 + (10,000.00 - P) x 0.01 x 3/30 and
    #   5,000.00 = (new interest - 100.00) + P, so P = 5,000.00 / 0.999 - ... = 5,005.00 and
    #   the interest 94.995 -> 95.00: 5.00 paid ahead becomes principal.
    # * the payoff: 9,211.51 principal + 90.00 - 100.00 = 9,201.51; 10.00 becomes principal.
    # amount, payment row (interest, principal), reallocation (interest, principal)
    ("5000.00", (0, 500_000), (-500, 500)),
    ("9201.51", (0, 920_151), (-1_000, 1_000)),
]


@pytest.mark.parametrize("amount, shown, reallocated", PAID_AHEAD)
def test_a_payments_interest_part_is_never_negative(bank, staff, amount, shown, reallocated):
    system, teller = bank.system_actor(), staff["teller"]
    bank.end_of_day(system, until=dt.date(2027, 3, 31), confirm=True)
    cid = make_customer(bank)
    number = funded_account(bank, "20000.00", customer_id=cid)
    lid = bank.loans.apply(teller, cid, product="personal", principal="10000.00",
                           term_months=12, purpose="new kitchen", monthly_income="4000.00")
    bank.loans.approve(staff["manager"], lid, annual_rate_percent="12")
    bank.loans.disburse(teller, lid, number)
    bank.end_of_day(system, until=dt.date(2027, 4, 25))
    bank.loans.repay(teller, lid, "888.49", number)
    bank.end_of_day(system, until=dt.date(2027, 4, 27))
    income, receivable = gl(bank, "interest_income"), gl(bank, "loans_receivable")
    receipt = bank.loans.repay(teller, lid, amount, number)
    rows = bank.read("SELECT method, amount_cents, interest_cents, principal_cents "
                     "FROM loan_payments WHERE loan_id = ? AND business_date = ? ORDER BY "
                     "transaction_id", [lid, dt.date(2027, 4, 28)])
    assert rows == [("manual", receipt.amount_cents, *shown), ("reallocation", 0, *reallocated)]
    assert "interest 0.00" in receipt.memo
    # Interest income gives back the interest no longer earned; loans receivable takes it.
    assert (gl(bank, "interest_income") - income, gl(bank, "loans_receivable") - receivable) == (
        reallocated[0], shown[1] + reallocated[1])
    assert bank.audit.verify() == []
    bank.end_of_day(system, until=dt.date(2027, 4, 28))
    assert bank.audit.verify() == []
    # Reversed, the payment takes its re-applied interest with it: 100.00 of interest paid.
    bank.loans.reverse_repayment(staff["manager"], lid, receipt.transaction_id, "wrong amount")
    assert bank.read_one("SELECT sum(interest_cents), sum(principal_cents) FROM loan_payments "
                         "WHERE loan_id = ?", [lid]) == (10_000, 78_849)
    assert bank.audit.verify() == []


# -- (c) end of day never collects 0.00 --------------------------------------------------------
@pytest.mark.parametrize("amortization, balance, collected", [
    # 1.00 at 0 % over 480 months weekly: 2,080 instalments of 0.00 and a last of 1.00
    # (1.00 / 2,080 rounds to 0.00): nothing is ever owed before the last due date, so nothing
    # is collected, no late fee, no arrears, whatever the account holds.
    ("equal_principal", "0", 0),
    ("equal_instalments", "0", 0),
    ("equal_principal", "50.00", 0),
    ("equal_instalments", "50.00", 0),
])
def test_end_of_day_collects_no_zero_instalments(bank, staff, amortization, balance,
                                                 collected):
    system, manager = bank.system_actor(), staff["manager"]
    bank.loans.create_product(manager, code="tiny", name="Tiny loan", amount_min="1.00",
                              amount_max="100.00", term_min_months=1, term_max_months=480,
                              rate_min_percent="0", rate_max_percent="10",
                              amortization=amortization, frequency="weekly", late_fee="1.00",
                              late_fee_grace_days=0)
    cid = make_customer(bank)
    number = funded_account(bank, "0", customer_id=cid)
    lid = bank.loans.apply(staff["teller"], cid, product="tiny", principal="1.00",
                           term_months=480, purpose="a test", monthly_income="100.00")
    bank.loans.approve(manager, lid, annual_rate_percent="0")
    bank.loans.disburse(staff["teller"], lid, number)
    bank.payments.withdraw(system, number, "1.00")
    if balance != "0":
        bank.payments.deposit(system, number, balance)
    schedule = bank.loans.schedule(manager, lid)
    assert (len(schedule), set(schedule["payment_cents"][:-1]),
            schedule["payment_cents"].iloc[-1]) == (2_080, {0}, 100)
    bank.end_of_day(system, until=bank.business_date + 30 * DAY)
    assert bank.read_one("SELECT count(*) FROM loan_payments WHERE loan_id = ?",
                         [lid])[0] == collected
    assert bank.read_one("SELECT coalesce(sum(fee_cents), 0) FROM loan_schedule WHERE "
                         "loan_id = ?", [lid])[0] == 0
    assert bank.loans.get(manager, lid)["days_past_due"] == 0
    assert bank.audit.verify() == []
