"""Closing an account pays the interest earned up to the closing date (issue 10): posted from
interest expense, paid out in cash or to another account, never paid again by month end, on
the closing statement and the year's interest certificate; a refused close changes nothing."""
from __future__ import annotations

import datetime as dt
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal

import pytest

from bankms.bank import INTERNAL
from bankms.domain.errors import AccountClosed, InvalidState, SameAccount
from bankms.services.loans import add_months
from conftest import employee, funded_account, make_customer

D = Decimal
DAY = dt.timedelta(days=1)
CENT = D("0.01")
# Money moves or rules are checked here: each test runs on DuckDB and on PostgreSQL.
pytestmark = [pytest.mark.usefixtures("years_ahead"), pytest.mark.engines]
TABLES = ("transactions", "postings", "audit_log", "interest_accruals", "interest_postings",
          "idempotency_keys")


def half_up(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def down(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_DOWN)


def formula(balance, rate, days) -> Decimal:
    """Simple interest, actual/365, unrounded: balance x rate % x days / 365."""
    return D(balance) * D(rate) / 100 * days / 365


def month_last(day: dt.date) -> dt.date:
    return add_months(day.replace(day=1), 1) - DAY


def snapshot(bank):
    counts = {t: bank.read_one(f"SELECT count(*) FROM {t}")[0] for t in TABLES}
    return counts, bank.read("SELECT account_number, balance_cents, status FROM accounts "
                             "ORDER BY 1")


def interest_to(bank, number):
    return bank.read("SELECT t.amount_cents, t.source_account, t.business_date FROM "
                     "transactions t WHERE t.kind = 'interest' AND t.target_account = ? "
                     "ORDER BY t.id", [number])


def open_and_accrue(bank, system, *, kind, rate, deposit, days, after_month_end):
    """Start on the first of a month; open and fund the account so that end of day accrues
    `days` days on it, either all inside the month (closing on the next day) or the last
    `days` days of the month (closing on the first of the next month, after month end)."""
    bank.end_of_day(system, until=month_last(bank.business_date))
    if after_month_end:
        bank.end_of_day(system, until=month_last(bank.business_date) - days * DAY)
    cid = make_customer(bank)
    extra = {"interest_rate": rate} if kind == "savings" else {}
    number = funded_account(bank, deposit, kind=kind, customer_id=cid, **extra)
    other = funded_account(bank, "1.00", kind="checking", customer_id=cid)
    bank.end_of_day(system, until=bank.business_date + (days - 1) * DAY)
    return number, other


# kind, rate %, deposit, days accrued, closed on the day after a month end, payout,
# interest the month end paid, interest the close pays.
CASES = [
    pytest.param("savings", "2.00", "10000.00", 19, False, "cash",
                 D("0.00"), D("10.41"), id="issue-example"),
    pytest.param("checking", "0", "10000.00", 19, False, "cash",
                 D("0.00"), D("0.00"), id="checking-earns-nothing"),
    pytest.param("savings", "2.00", "10000.00", 12, False, "cash",
                 D("0.00"), half_up(formula("10000.00", "2.00", 12)), id="rounds-half-up"),
    pytest.param("savings", "2.75", "12345.67", 12, False, "transfer",
                 D("0.00"), half_up(formula("12345.67", "2.75", 12)), id="paid-to-another"),
    pytest.param("savings", "2.00", "10000.00", 10, True, "cash",
                 down(formula("10000.00", "2.00", 10)),
                 half_up(formula("10000.00", "2.00", 10)) - down(formula("10000.00", "2.00", 10)),
                 id="day-after-month-end"),
]


@pytest.mark.parametrize("kind, rate, deposit, days, after_month_end, payout, "
                         "month_end_interest, closing_interest", CASES)
def test_closing_pays_the_interest_earned(bank, system, kind, rate, deposit, days,
                                          after_month_end, payout, month_end_interest,
                                          closing_interest):
    teller = employee(bank, "teller")
    number, other = open_and_accrue(bank, system, kind=kind, rate=rate, deposit=deposit,
                                    days=days, after_month_end=after_month_end)
    closing_date = bank.business_date
    assert bank.audit.verify() == []
    # Emptied first, as today: the close requires a zero balance.
    bank.payments.withdraw(system, number, str(bank.accounts.balance(system, number)))
    result = bank.accounts.close(teller, number,
                                 payout_account=other if payout == "transfer" else None)

    assert result["interest"] == closing_interest
    assert bank.accounts.get(teller, number)["status"] == "closed"
    assert bank.accounts.balance(system, number) == 0
    credited = [(D(c) / 100, src, bd) for c, src, bd in interest_to(bank, number)]
    expected = ([(month_end_interest, INTERNAL["interest_expense"], closing_date - DAY)]
                if month_end_interest else [])
    if closing_interest:
        expected.append((closing_interest, INTERNAL["interest_expense"], closing_date))
    assert credited == expected
    paid_out = bank.read("SELECT kind, amount_cents, target_account FROM transactions "
                         "WHERE id = ?", [result["payout_transaction_id"]])
    if closing_interest:
        target = other if payout == "transfer" else INTERNAL["teller_cash"]
        kind_out = "transfer" if payout == "transfer" else "withdrawal"
        assert paid_out == [(kind_out, int(closing_interest * 100), target)]
    else:
        assert paid_out == [] and result["interest_transaction_id"] is None
    if payout == "transfer":
        assert bank.accounts.balance(system, other) == D("1.00") + closing_interest
    audit = bank.read("SELECT actor, outcome FROM audit_log WHERE action = 'account.close' "
                      "AND entity = 'account' AND entity_id = ?", [number])
    assert audit == [(teller.username, "ok")]
    assert bank.audit.verify() == []

    # The closing statement shows the interest line; the certificate includes it.
    statement = bank.reports.statement(system, number, closing_date.year, closing_date.month)
    assert statement.reconciles() and statement.closing_balance == 0
    assert statement.interest == closing_interest
    lines = statement.lines[statement.lines["kind"] == "interest"]
    assert list(lines["amount"]) == ([closing_interest] if closing_interest else [])
    cid = bank.accounts.get(system, number)["customer_id"]
    years = sorted({closing_date.year, (closing_date - DAY).year})
    certified = sum(
        (row.interest_paid_cents for year in years
         for row in bank.reports.interest_certificate(system, cid, year).accounts.itertuples()
         if row.account_number == number), 0)
    assert D(certified) / 100 == month_end_interest + closing_interest

    # Closing twice refuses and pays nothing.
    before = snapshot(bank)
    with pytest.raises(InvalidState, match="already closed"):
        bank.accounts.close(teller, number)
    assert snapshot(bank) == before

    # Month end (this one and the next) pays a closed account nothing more.
    rows = bank.read_one("SELECT count(*) FROM interest_postings ip JOIN accounts a "
                         "ON a.id = ip.account_id WHERE a.account_number = ?", [number])
    bank.end_of_day(system, until=month_last(month_last(closing_date) + DAY))
    assert [(D(c) / 100, s, d) for c, s, d in interest_to(bank, number)] == expected
    assert bank.read_one("SELECT count(*) FROM interest_postings ip JOIN accounts a "
                         "ON a.id = ip.account_id WHERE a.account_number = ?", [number]) == rows
    assert bank.accounts.balance(system, number) == 0
    assert bank.audit.verify() == []


def test_the_issue_example_against_the_formula(bank, system):
    """10,000.00 at 2.00 % for 19 days: 10,000 x 2 % x 19/365 = 10.4109..., half-up 10.41."""
    number, _ = open_and_accrue(bank, system, kind="savings", rate="2.00",
                                deposit="10000.00", days=19, after_month_end=False)
    bank.payments.withdraw(system, number, "10000.00")
    result = bank.accounts.close(employee(bank, "teller"), number)
    assert result["interest"] == half_up(formula("10000.00", "2.00", 19)) == D("10.41")
    assert bank.audit.verify() == []


# What is wrong, the refusal.
REFUSALS = [
    pytest.param("balance", InvalidState, id="money-left-in-the-account"),
    pytest.param("own", SameAccount, id="payout-to-itself"),
    pytest.param("closed", AccountClosed, id="payout-to-a-closed-account"),
]


@pytest.mark.parametrize("wrong, refusal", REFUSALS)
def test_a_refused_close_changes_nothing(bank, system, wrong, refusal):
    teller = employee(bank, "teller")
    number, other = open_and_accrue(bank, system, kind="savings", rate="2.00",
                                    deposit="10000.00", days=19, after_month_end=False)
    if wrong != "balance":
        bank.payments.withdraw(system, number, "10000.00")
    payout = {"balance": None, "own": number, "closed": other}[wrong]
    if wrong == "closed":
        bank.payments.withdraw(system, other, "1.00")
        bank.accounts.close(teller, other)
    before = snapshot(bank)
    with pytest.raises(refusal):
        bank.accounts.close(teller, number, payout_account=payout)
    assert snapshot(bank) == before
    assert bank.audit.verify() == []
    # Nothing was used up: once the problem is gone the close pays the whole interest.
    if wrong == "balance":
        bank.payments.withdraw(system, number, "10000.00")
    assert bank.accounts.close(teller, number)["interest"] == D("10.41")
    assert bank.audit.verify() == []
