"""End of day skips the loan steps when nothing can be due (eod/run.py LOANS_TO_SERVE_SQL): the
skip must not hide the release of what a loan no longer active still holds.

The standing-order step's skip (no active order; the cancellation's read only when an order
pays from a closed account) is held by tests/test_standing_orders.py, whose banks each have a
single order that executes, fails and is retried, finishes, or is cancelled."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from bankms.bank import INTERNAL
from conftest import employee, funded_account, make_customer
from test_loans import active_loan

pytestmark = pytest.mark.engines


def gl(bank, code) -> int:
    return bank.read_one("SELECT balance_cents FROM accounts WHERE account_number = ?",
                         [INTERNAL[code]])[0]


def held(bank, table) -> int:
    return bank.read_one(f"SELECT count(*) FROM {table}")[0]


def test_the_day_after_the_only_loan_is_paid_off_releases_its_accrual_and_provision(
        bank, system, years_ahead):
    teller, manager = employee(bank, "teller"), employee(bank, "manager")
    cid = make_customer(bank, name="Ana Payer")
    number = funded_account(bank, "0", customer_id=cid)
    lid = active_loan(bank, {"teller": teller, "manager": manager},
                      {"cid": cid, "checking": number}, principal="5000.00")
    bank.end_of_day(system, until=bank.business_date + dt.timedelta(days=3))
    # Three days of interest accrued and the not-past-due provision held.
    assert held(bank, "loan_accruals") == 1 and gl(bank, "interest_receivable") != 0
    assert held(bank, "loan_provisions") == 1 and gl(bank, "loan_loss_provision") != 0

    payoff = bank.loans.get(teller, lid)["payoff"]
    bank.payments.deposit(system, number, str(payoff - Decimal("5000.00")))
    bank.loans.repay(teller, lid, str(payoff), number)
    assert bank.read_one("SELECT count(*) FROM loans WHERE status = 'active'")[0] == 0
    closed = bank.end_of_day(system, until=bank.business_date).days[0]
    # No active loan is left, yet the day released the paid-off loan's receivable (its
    # interest was paid as income) and its provision.
    assert (held(bank, "loan_accruals"), gl(bank, "interest_receivable")) == (0, 0)
    assert (held(bank, "loan_provisions"), gl(bank, "loan_loss_provision")) == (0, 0)
    assert closed.loan_accrual_change_cents < 0 and closed.provision_change_cents < 0
    assert bank.audit.verify() == []
    # From now on nothing is left to release: the next day posts nothing for loans.
    before = bank.read_one("SELECT count(*) FROM transactions")[0]
    closed = bank.end_of_day(system, until=bank.business_date).days[0]
    assert bank.read_one("SELECT count(*) FROM transactions")[0] == before
    assert (closed.loan_accrual_change_cents, closed.provision_change_cents) == (0, 0)
