"""Issue 9: end of day run day by day equals one catch-up run over the same days, loans
included (collection, late fees, arrears, daily accrual, non-accrual, provisions), and running
a closed day again writes nothing.

Two banks are built the same way from the same start; one closes each day on its own, the
other closes all of them in one run. Account numbers are random, so accounts are compared in
the order they were opened (their ids), which both banks share."""
from __future__ import annotations

import datetime as dt

import pytest

import bankms
from bankms.bank import INTERNAL
from conftest import Clock, employee, funded_account, make_customer

DAY = dt.timedelta(days=1)
TABLES = ("transactions", "postings", "audit_log", "loan_payments", "loan_schedule",
          "interest_accruals", "interest_postings", "eod_runs")


def build(path, now):
    bank = bankms.open_bank(str(path), bcrypt_rounds=4)
    bank.clock = Clock(now)
    bank.settings.set(bank.system_actor(), "eod_catchup_days_confirm", "366")
    teller, manager = employee(bank, "teller"), employee(bank, "manager")
    loans = []
    # One borrower pays on time from a funded account; one never pays (the account is empty
    # after the payout is spent), so the second loan ages through every arrears bucket,
    # draws late fees, stops accruing after 90 days and is provisioned.
    for name, keep in (("Ana Payer", "5000.00"), ("Bo Late", "0")):
        cid = make_customer(bank, name=name)
        number = funded_account(bank, keep, customer_id=cid)
        funded_account(bank, "800.00", kind="savings", customer_id=cid)
        lid = bank.loans.apply(teller, cid, product="personal", principal="6000.00",
                               term_months=12, purpose="home office", monthly_income="5000")
        bank.loans.approve(manager, lid, annual_rate_percent="12")
        bank.loans.disburse(teller, lid, number)
        if keep == "0":
            bank.payments.withdraw(bank.system_actor(), number, "6000.00")
        loans.append(lid)
    return bank, loans


def state(bank):
    accounts = bank.read("SELECT id, balance_cents, holds_cents, status, last_activity_date "
                         "FROM accounts ORDER BY id")
    loans = bank.read("SELECT id, status, principal_outstanding_cents, days_past_due, "
                      "arrears_bucket FROM loans ORDER BY id")
    schedule = bank.read("SELECT loan_id, n, due_date, payment_cents, interest_cents, "
                         "principal_cents, interest_paid_cents, principal_paid_cents, "
                         "fee_cents, fee_paid_cents FROM loan_schedule ORDER BY 1, 2")
    postings = bank.read("SELECT t.kind, t.business_date, p.account_id, p.amount_cents "
                         "FROM postings p JOIN transactions t ON t.id = p.transaction_id "
                         "WHERE t.kind NOT IN ('deposit', 'withdrawal') "
                         "ORDER BY 1, 2, 3, 4")
    return accounts, loans, schedule, postings, bank.business_date


def counts(bank):
    return {t: bank.read_one(f"SELECT count(*) FROM {t}")[0] for t in TABLES}


@pytest.mark.parametrize("days", [130])
def test_day_by_day_equals_one_catch_up(tmp_path, days):
    now = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=3660)
    stepwise, loans = build(tmp_path / "a.duckdb", now)
    at_once, _ = build(tmp_path / "b.duckdb", now)
    try:
        assert stepwise.business_date == at_once.business_date
        start = stepwise.business_date
        for k in range(days):
            stepwise.end_of_day(stepwise.system_actor(), until=start + k * DAY)
        at_once.end_of_day(at_once.system_actor(), until=start + (days - 1) * DAY)
        assert state(stepwise) == state(at_once)
        # The late loan went through arrears into non-accrual and carries a provision.
        late = stepwise.read_one("SELECT days_past_due, arrears_bucket FROM loans WHERE id = ?",
                                 [loans[1]])
        assert late[0] > 90
        provision = stepwise.read_one(
            "SELECT balance_cents FROM accounts WHERE account_number = ?",
            [INTERNAL["loan_loss_provision"]])[0]
        assert provision > 0          # credit balances are positive: the provision is held
        assert stepwise.audit.verify() == [] and at_once.audit.verify() == []
        # Closing a closed day again writes nothing.
        before = counts(at_once), state(at_once)
        at_once.end_of_day(at_once.system_actor(), until=start + (days - 1) * DAY)
        assert (counts(at_once), state(at_once)) == before
    finally:
        stepwise.close()
        at_once.close()
