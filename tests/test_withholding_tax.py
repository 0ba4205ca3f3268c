"""Withholding tax on deposit interest (issue 10): every interest posting to a customer (month
end, closing) is gross interest from GL5000 with the tax withheld to GL2100 in the same
transaction, so the account is credited gross - tax; tax = gross x rate, half-up to the cent;
the rate is the account's deposit product's withholding_tax_bp in the version in force on the
posting day (the bank-wide setting interest_withholding_tax_bp seeds the products made at
open and still validates its values); statements and the
yearly certificate show gross, tax and net, reversals included. Expected values by hand."""
from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal

import pytest

from bankms.bank import INTERNAL
from bankms.domain.errors import InvalidInput
from conftest import employee, funded_account, make_customer
from test_account_closing import month_last, open_and_accrue

D = Decimal
DAY = dt.timedelta(days=1)
KEY = "interest_withholding_tax_bp"
WHT = INTERNAL["withholding_tax_payable"]
EXPENSE = INTERNAL["interest_expense"]
# Money moves or rules are checked here: each test runs on DuckDB and on PostgreSQL.
pytestmark = [pytest.mark.usefixtures("years_ahead"), pytest.mark.engines]


def set_product_tax(bank, rate_bp, effective=None):
    """The savings product's withholding tax rate from business date `effective` (default:
    the open one, as if the version had been set up before): a copy of the version in force
    with the new rate, as deposit_products stores a change."""
    from bankms.services.deposits.products import VERSIONS_IN_FORCE_SQL
    day = effective or bank.business_date

    def copy_with_rate(uow):
        # The columns one by one and ON CONFLICT, as both engines take them (DuckDB's
        # `* REPLACE` and INSERT OR REPLACE are its own).
        columns = [c for _, c in uow.fetchall(
            uow.dialect.table_columns("deposit_product_versions"))]
        new = {"effective_date": ("CAST(? AS DATE)", day),
               "withholding_tax_bp": ("CAST(? AS INTEGER)", int(rate_bp))}
        picked = [new[c][0] if c in new else f"f.{c}" for c in columns]
        params = [new[c][1] for c in columns if c in new] + [day]
        uow.execute(
            f"INSERT INTO deposit_product_versions ({', '.join(columns)}) "
            f"SELECT {', '.join(picked)} FROM ({VERSIONS_IN_FORCE_SQL}) f "
            "WHERE f.product_id = (SELECT id FROM deposit_products WHERE code = 'savings') "
            "ON CONFLICT (product_id, effective_date) "
            "DO UPDATE SET withholding_tax_bp = excluded.withholding_tax_bp", params)
    bank.write(copy_with_rate)


def cents(amount: Decimal) -> int:
    return int(amount * 100)


def half_up(value: Decimal) -> Decimal:
    return value.quantize(D("0.01"), rounding=ROUND_HALF_UP)


def legs(bank, transaction_id) -> dict:
    """{account number: signed cents} of one transaction."""
    return dict(bank.read("SELECT a.account_number, p.amount_cents FROM postings p JOIN accounts "
                          "a ON a.id = p.account_id WHERE p.transaction_id = ?",
                          [transaction_id]))


def interest_ids(bank, number) -> list[int]:
    return [r[0] for r in bank.read("SELECT id FROM transactions WHERE kind = 'interest' AND "
                                    "target_account = ? ORDER BY id", [number])]


def balance_cents(bank, number) -> int:
    return bank.read_one("SELECT balance_cents FROM accounts WHERE account_number = ?",
                         [number])[0]


def books_hold(bank):
    assert bank.audit.verify() == []
    assert bank.read_one("SELECT sum(balance_cents) FROM accounts")[0] == 0
    tb = bank.reports.trial_balance(bank.system_actor())
    assert tb["balance_cents"].sum() == 0


def one_day_before_month_end(bank, system, deposit, rate="1.00"):
    """Open a savings account on the last day of the month, so that month end accrues and
    posts exactly one day: deposit x 1.00 % / 365 (379,965.00 earns 10.41 a day, exactly)."""
    bank.end_of_day(system, until=month_last(bank.business_date) - DAY)
    cid = make_customer(bank)
    number = funded_account(bank, deposit, kind="savings", customer_id=cid, interest_rate=rate)
    return cid, number


# product tax rate, deposit (earning gross in one day at 1.00 %), gross, tax withheld, net credit.
MONTH_END = [
    pytest.param("0", "379965.00", D("10.41"), D("0.00"), D("10.41"), id="0%-no-tax"),
    pytest.param("1500", "379965.00", D("10.41"), D("1.56"), D("8.85"),
                 id="15%-1.5615-rounds-down"),
    pytest.param("1500", "3650.00", D("0.10"), D("0.02"), D("0.08"), id="15%-0.015-half-up"),
    pytest.param("3000", "366825.00", D("10.05"), D("3.02"), D("7.03"),
                 id="30%-3.015-half-up"),
    pytest.param("3000", "365.00", D("0.01"), D("0.00"), D("0.01"), id="30%-0.003-no-tax"),
    pytest.param("10000", "379965.00", D("10.41"), D("10.41"), D("0.00"), id="100%-all-tax"),
]


@pytest.mark.parametrize("rate_bp, deposit, gross, tax, net", MONTH_END)
def test_month_end_posting_withholds_tax(bank, system, rate_bp, deposit, gross, tax, net):
    set_product_tax(bank, rate_bp)
    _, number = one_day_before_month_end(bank, system, deposit)
    day = bank.business_date
    wht_before = balance_cents(bank, WHT)
    audits = bank.read_one("SELECT count(*) FROM audit_log WHERE action = 'eod.interest'")[0]
    bank.end_of_day(system, until=day)

    (tid,) = interest_ids(bank, number)
    assert bank.read_one("SELECT amount_cents, source_account FROM transactions WHERE id = ?",
                         [tid]) == (cents(gross), EXPENSE)
    # The account's leg stays even at 0.00 (100 %), so statements and certificates see it.
    expected = {EXPENSE: -cents(gross), number: cents(net), WHT: cents(tax)}
    assert legs(bank, tid) == {k: v for k, v in expected.items() if v or k == number}
    assert balance_cents(bank, number) == cents(D(deposit) + net)
    assert balance_cents(bank, WHT) - wht_before == cents(tax)
    assert bank.read_one("SELECT count(*) FROM audit_log WHERE action = 'eod.interest'")[0] \
        == audits + 1
    books_hold(bank)

    # The statement: one line, the net credit, with its gross and tax; totals split the same.
    s = bank.reports.statement(system, number, day.year, day.month)
    line = s.lines[s.lines["kind"] == "interest"].iloc[0]
    assert (line["amount"], line["gross_cents"], line["tax_withheld_cents"]) == (
        net, cents(gross), cents(tax))
    assert (s.interest_gross, s.tax_withheld, s.interest) == (gross, tax, net)
    assert s.reconciles()
    assert (f"tax withheld {tax}" in line["description"]) == bool(tax)
    csv = s.to_csv()
    for needle in (f"Interest (gross),{gross}", f"Tax withheld,{tax}", f"Interest (net),{net}"):
        assert needle in csv, needle

    # Month end is idempotent: running the closed day again posts nothing.
    before = bank.read_one("SELECT count(*) FROM postings")[0]
    bank.end_of_day(system, until=day)
    assert bank.read_one("SELECT count(*) FROM postings")[0] == before


# rate setting, gross closing interest, tax withheld, net paid out (10,000.00 at 2.00 % for 19
# days: 10.41, the example).
CLOSING = [
    pytest.param("0", D("10.41"), D("0.00"), D("10.41"), id="0%"),
    pytest.param("1500", D("10.41"), D("1.56"), D("8.85"), id="15%-issue-example"),
    pytest.param("3000", D("10.41"), D("3.12"), D("7.29"), id="30%-3.123"),
    pytest.param("10000", D("10.41"), D("10.41"), D("0.00"), id="100%-nothing-paid-out"),
]


@pytest.mark.parametrize("rate_bp, gross, tax, net", CLOSING)
def test_closing_withholds_tax_and_pays_the_net(bank, system, rate_bp, gross, tax, net):
    teller = employee(bank, "teller")
    number, _ = open_and_accrue(bank, system, kind="savings", rate="2.00",
                                deposit="10000.00", days=19, after_month_end=False)
    set_product_tax(bank, rate_bp)
    bank.payments.withdraw(system, number, "10000.00")
    wht_before = balance_cents(bank, WHT)
    result = bank.accounts.close(teller, number)

    assert (result["interest"], result["tax_withheld"], result["interest_net"]) == (
        gross, tax, net)
    expected = {EXPENSE: -cents(gross), number: cents(net), WHT: cents(tax)}
    assert legs(bank, result["interest_transaction_id"]) == {
        k: v for k, v in expected.items() if v or k == number}
    paid_out = ({number: -cents(net), INTERNAL["teller_cash"]: cents(net)} if net else {})
    assert legs(bank, result["payout_transaction_id"]) == paid_out
    assert balance_cents(bank, number) == 0
    assert balance_cents(bank, WHT) - wht_before == cents(tax)
    books_hold(bank)

    day = bank.business_date
    s = bank.reports.statement(system, number, day.year, day.month)
    assert (s.interest_gross, s.tax_withheld, s.interest) == (gross, tax, net)
    assert s.reconciles() and s.closing_balance == 0
    cid = bank.accounts.get(system, number)["customer_id"]
    c = bank.reports.interest_certificate(system, cid, day.year)
    assert (c.interest_paid, c.tax_withheld) == (gross, tax)


def test_a_rate_change_applies_from_the_next_posting(bank, system):
    """0 % for the first month end, 15 % from the middle of the next month (a product change,
    effective the next business date): the whole next posting is taxed at 15 % (the rate in
    force when it is posted), the first stays untaxed."""
    _, number = one_day_before_month_end(bank, system, "379965.00")
    first_end = bank.business_date
    bank.end_of_day(system, until=first_end)
    # Keep the balance at 379,965.00 so each day earns exactly 10.41.
    bank.payments.withdraw(system, number, "10.41")
    second_end = month_last(first_end + DAY)
    bank.end_of_day(system, until=first_end + 14 * DAY)
    set_product_tax(bank, "1500", effective=bank.business_date + DAY)
    bank.end_of_day(system, until=second_end)

    days = second_end.day
    gross = D("10.41") * days
    tax = half_up(gross * D("0.15"))
    first, second = interest_ids(bank, number)
    assert legs(bank, first) == {EXPENSE: -1041, number: 1041}
    assert legs(bank, second) == {EXPENSE: -cents(gross), number: cents(gross - tax),
                                  WHT: cents(tax)}
    books_hold(bank)


# Reverse the second interest posting (a correction), expected: the certificate's gross and
# tax are the year's postings, the reversed one (with its tax) taken out.
@pytest.mark.parametrize("reverse, expected", [
    pytest.param(False, "both", id="two-postings"),
    pytest.param(True, "first-only", id="second-reversed-with-its-tax"),
])
def test_the_certificate_equals_the_years_postings(bank, system, reverse, expected):
    set_product_tax(bank, "1500")
    cid, number = one_day_before_month_end(bank, system, "379965.00")
    first_end = bank.business_date
    bank.end_of_day(system, until=first_end)
    bank.payments.withdraw(system, number, "8.85")
    second_end = month_last(first_end + DAY)
    bank.end_of_day(system, until=second_end)
    first, second = interest_ids(bank, number)
    gross2 = D("10.41") * second_end.day
    tax2 = half_up(gross2 * D("0.15"))
    if reverse:
        bank.payments.reverse(employee(bank, "manager"), second, "posted in error")
    books_hold(bank)

    by_hand = {"both": (D("10.41") + gross2, D("1.56") + tax2),
               "first-only": (D("10.41"), D("1.56"))}[expected]
    years = sorted({first_end.year, second_end.year, bank.business_date.year})
    certs = [bank.reports.interest_certificate(system, cid, y) for y in years]
    assert (sum(c.interest_paid for c in certs), sum(c.tax_withheld for c in certs)) == by_hand
    # Independently from the ledger: gross from GL5000's legs, tax from GL2100's, per year.
    for c in certs:
        ledger = bank.read_one(
            "SELECT coalesce(sum(CASE WHEN a.account_number = ? THEN -p.amount_cents END), 0), "
            "coalesce(sum(CASE WHEN a.account_number = ? THEN p.amount_cents END), 0) "
            "FROM postings p JOIN accounts a ON a.id = p.account_id JOIN transactions t "
            "ON t.id = p.transaction_id WHERE extract(year FROM t.business_date) = ? AND p.transaction_id "
            "IN (SELECT transaction_id FROM postings q JOIN accounts b ON b.id = q.account_id "
            "WHERE b.account_number = ?)", [EXPENSE, WHT, c.year, number])
        assert (c.interest_paid_cents, c.tax_withheld_cents) == tuple(int(v) for v in ledger)
        assert c.accounts["tax_withheld_cents"].sum() == c.tax_withheld_cents


# value given, outcome: the value stored, or the refusal.
SETTING_VALUES = [
    ("0", "0"),
    ("1500", "1500"),
    ("10000", "10000"),
    ("-1", InvalidInput),
    ("10001", InvalidInput),
    ("15.5", InvalidInput),
    (15.5, InvalidInput),
    ("15%", InvalidInput),
    ("", InvalidInput),
]


@pytest.mark.parametrize("value, outcome", SETTING_VALUES)
def test_the_rate_setting_refuses_bad_values(bank, system, value, outcome):
    manager = employee(bank, "manager")
    bank.settings.set(system, KEY, "700")
    before = bank.read("SELECT key, value FROM settings ORDER BY 1")
    if outcome is InvalidInput:
        with pytest.raises(InvalidInput, match=KEY):
            bank.settings.set(manager, KEY, value)
        assert bank.read("SELECT key, value FROM settings ORDER BY 1") == before
        assert bank.read_one("SELECT outcome FROM audit_log WHERE entity_id = ? ORDER BY id "
                             "DESC LIMIT 1", [KEY]) == ("refused",)
    else:
        assert bank.settings.set(manager, KEY, value) == outcome
        assert bank.settings.get(KEY) == outcome
    assert bank.audit.verify() == []


def test_the_default_rate_is_zero_and_the_account_exists(bank):
    assert bank.settings.get(KEY) == "0"
    assert bank.read("SELECT name, status FROM accounts WHERE account_number = ?", [WHT]) == [
        ("Withholding tax payable", "active")]
