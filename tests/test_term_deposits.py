"""Term (fixed) deposits (issue 10): opening from a linked account, the ledger's refusals,
maturity in end of day (payout, renew, renew_principal), early closure with each penalty rule,
the certificate's penalty field, and the customer's list. Expected amounts are worked out here
by hand with Decimal: simple interest, actual/365, half-up to the cent."""
from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal

import pytest

from bankms.bank import INTERNAL
from bankms.domain.errors import (
    AccountClosed,
    AccountFrozen,
    AccountNotActive,
    IdempotencyConflict,
    InsufficientFunds,
    InvalidAmount,
    InvalidInput,
    InvalidState,
    PermissionDenied,
    TermDepositLocked,
)
from bankms.services.deposits.term import early_closure_split, expected_interest_cents, maturity_date
from conftest import employee, funded_account, login_for, make_customer

# Money moves or rules are checked here: each test runs on DuckDB and on PostgreSQL.
pytestmark = pytest.mark.engines

D = Decimal
DAY = dt.timedelta(days=1)
CENT = D("0.01")
TABLES = ("transactions", "postings", "accounts", "term_deposits", "interest_postings",
          "idempotency_keys")


def half_up(value) -> Decimal:
    return D(value).quantize(CENT, rounding=ROUND_HALF_UP)


def simple_interest(principal, rate, days) -> Decimal:
    """principal x rate % x days / 365, half-up to the cent."""
    return half_up(D(principal) * D(rate) / 100 * days / 365)


def tax_on(interest: Decimal, bp: int) -> Decimal:
    return half_up(interest * bp / 10000)


# -- the product, as deposit_products.py keeps it (PLAN10 interface 1) ---------------------------
TERMS = {"interest_rate_percent": "3.5000", "day_count": "actual/365",
         "posting_period": "maturity", "withholding_tax_bp": 0, "term_months_min": 1,
         "term_months_max": 60, "early_closure_penalty": "none", "penalty_months": 0,
         "penalty_rate_percent": "0"}


def set_terms(bank, effective_date=None, *, active=True, **changes):
    """Give the 'term_deposit' product these terms from effective_date (default: a date before
    any test's first business date), written straight into the product tables; and the
    bank-wide withholding tax setting the same rate, which eod.withholding_tax_bp reads until
    products carry their own."""
    terms = {**TERMS, **changes}
    day = effective_date or dt.date(2000, 1, 1)

    def fn(uow):
        pid = uow.fetchone("SELECT id FROM deposit_products WHERE code = 'term_deposit'")[0]
        uow.execute("UPDATE deposit_products SET active = ? WHERE id = ?", [active, pid])
        # Without a date these terms replace every version (the migration's included).
        uow.execute("DELETE FROM deposit_product_versions WHERE product_id = ? "
                    "AND (effective_date = ? OR ?)", [pid, day, effective_date is None])
        uow.execute(
            "INSERT INTO deposit_product_versions (product_id, effective_date, "
            "interest_rate_percent, day_count, posting_period, withholding_tax_bp, "
            "term_months_min, term_months_max, early_closure_penalty, penalty_months, "
            "penalty_rate_percent, changed_at, changed_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, "
            "?, ?, now(), 'test')",
            [pid, day, *(terms[k] for k in (
                "interest_rate_percent", "day_count", "posting_period", "withholding_tax_bp",
                "term_months_min", "term_months_max", "early_closure_penalty",
                "penalty_months", "penalty_rate_percent"))])
    bank.write(fn)
    bank.settings.set(bank.system_actor(), "interest_withholding_tax_bp",
                      str(terms["withholding_tax_bp"]))


@pytest.fixture
def product(bank):
    set_terms(bank)
    return bank


def snapshot(bank):
    return ({t: bank.read_one(f"SELECT count(*) FROM {t}")[0] for t in TABLES},
            bank.read("SELECT account_number, balance_cents, status FROM accounts ORDER BY 1"))


def balance(bank, number) -> Decimal:
    return bank.accounts.balance(bank.system_actor(), number)


def close_days_until(bank, day):
    bank.end_of_day(bank.system_actor(), until=day)


def healthy(bank):
    assert bank.audit.verify() == []
    assert bank.read_one("SELECT sum(balance_cents) FROM accounts")[0] == 0


# -- pure arithmetic ---------------------------------------------------------------------------
@pytest.mark.parametrize("start, months, expected", [
    (dt.date(2027, 1, 31), 1, dt.date(2027, 2, 28)),
    (dt.date(2028, 1, 31), 1, dt.date(2028, 2, 29)),
    (dt.date(2027, 3, 31), 6, dt.date(2027, 9, 30)),
    (dt.date(2027, 8, 31), 6, dt.date(2028, 2, 29)),
    (dt.date(2027, 5, 15), 12, dt.date(2028, 5, 15)),
    (dt.date(2027, 2, 28), 1, dt.date(2027, 3, 28)),
])
def test_maturity_date_keeps_the_day_or_takes_the_months_last(start, months, expected):
    assert maturity_date(start, months) == expected


@pytest.mark.parametrize("principal_cents, rate, start, end, expected", [
    (1_000_000, "3.5", dt.date(2027, 1, 1), dt.date(2028, 1, 1),
     simple_interest("10000", "3.5", 365)),
    (1_234_567, "2.75", dt.date(2027, 1, 31), dt.date(2027, 2, 28),
     simple_interest("12345.67", "2.75", 28)),
    (500_000, "4.1234", dt.date(2027, 3, 1), dt.date(2027, 9, 1),
     simple_interest("5000", "4.1234", 184)),
])
def test_expected_interest_is_the_sum_of_the_daily_accruals(principal_cents, rate, start, end,
                                                           expected):
    assert D(expected_interest_cents(principal_cents, rate, start, end)) / 100 == expected


# accrued, of which the last N months, rule, rate, penalty rate -> gross, penalty (cents)
@pytest.mark.parametrize("accrued, last_months, rule, rate, penalty_rate, expected", [
    (10_000_000_000, 2_500_000_000, "none", "4", "0", (10_000, 0)),
    (10_000_000_000, 2_500_000_000, "interest_months", "4", "0", (10_000, 2_500)),
    # Fewer months accrued than the penalty's: all the interest, never principal.
    (10_000_000_000, 10_000_000_000, "interest_months", "4", "0", (10_000, 10_000)),
    (10_000_000_000, 0, "reduced_rate", "4", "1", (10_000, 7_500)),
    (10_000_499_999, 0, "reduced_rate", "4", "1", (10_000, 7_500)),
    # A "reduced" rate above the contract rate forfeits nothing.
    (10_000_000_000, 0, "reduced_rate", "4", "5", (10_000, 0)),
    (0, 0, "interest_months", "4", "0", (0, 0)),
    (1_234_567_890, 0, "reduced_rate", "3", "1", (1_235, 1_235 - 412)),
])
def test_early_closure_split(accrued, last_months, rule, rate, penalty_rate, expected):
    assert early_closure_split(accrued_micro_cents=accrued, last_months_micro_cents=last_months,
                               rule=rule, rate=rate, penalty_rate=penalty_rate) == expected


# -- opening -----------------------------------------------------------------------------------
def test_open_moves_the_principal_into_a_new_term_deposit_account(product):
    bank = product
    cid = make_customer(bank)
    linked = funded_account(bank, "20000.00", customer_id=cid)
    customer = login_for(bank, cid, "saver")
    today = bank.business_date
    quote = bank.term_deposits.quote(customer, linked_account=linked, amount="12,000.00",
                                     term_months=12)
    td = bank.term_deposits.open(customer, linked_account=linked, amount="12,000.00",
                                 term_months=12, idempotency_key="open-1")
    assert (quote["maturity_date"], quote["rate_percent"], quote["payout"]) == (
        td["maturity_date"], td["rate_percent"], td["payout"])
    again = bank.term_deposits.open(customer, linked_account=linked, amount="12,000.00",
                                    term_months=12, idempotency_key="open-1")
    assert again["account_number"] == td["account_number"]
    number = td["account_number"]
    assert balance(bank, linked) == D("8000.00")
    assert balance(bank, number) == D("12000.00")
    assert (td["principal"], td["rate_percent"], td["start_date"], td["maturity_date"],
            td["maturity_instruction"], td["status"]) == (
        D("12000.00"), "3.5000", today, maturity_date(today, 12), "payout", "active")
    interest = simple_interest("12000", "3.5", (maturity_date(today, 12) - today).days)
    assert td["interest"] == interest and td["payout"] == D("12000.00") + interest
    assert bank.read("SELECT kind, interest_rate_percent, rate_negotiated FROM accounts "
                     "WHERE account_number = ?", [number]) == [("term_deposit", D("3.5"), True)]
    assert bank.read("SELECT actor, outcome FROM audit_log WHERE action = 'term_deposit.open' "
                     "AND entity = 'account'") == [("saver", "ok")]
    with pytest.raises(IdempotencyConflict):
        bank.term_deposits.open(customer, linked_account=linked, amount="1.00",
                                term_months=12, idempotency_key="open-1")
    healthy(bank)


def _refusal_cases():
    # who opens, what changes from the good request, the refusal expected
    return [
        pytest.param("customer", {"amount": "5000.01"}, InsufficientFunds, id="over-balance"),
        pytest.param("teller", {"amount": "5000.01"}, InsufficientFunds,
                     id="over-balance-teller"),
        pytest.param("customer", {"term_months": 61}, InvalidInput, id="term-too-long"),
        pytest.param("customer", {"term_months": 0}, InvalidInput, id="term-zero"),
        pytest.param("customer", {"term_months": 1.5}, InvalidInput, id="term-float"),
        pytest.param("customer", {"amount": 10.0}, InvalidAmount, id="float-amount"),
        pytest.param("customer", {"maturity_instruction": "spend"}, InvalidInput,
                     id="bad-instruction"),
        pytest.param("customer", {"product": "savings"}, InvalidInput, id="not-a-term-product"),
        pytest.param("customer", {"inactive": True}, InvalidState, id="withdrawn-product"),
        pytest.param("customer", {"linked": "other"}, PermissionDenied,
                     id="another-customers-account"),
        pytest.param("customer", {"customer": "other"}, PermissionDenied,
                     id="another-customer"),
        pytest.param("teller", {"linked": "other"}, InvalidInput,
                     id="teller-account-of-someone-else"),
        pytest.param("teller", {"linked": "closed"}, AccountClosed, id="closed-account"),
        pytest.param("teller", {"linked": "frozen"}, AccountFrozen, id="frozen-account"),
    ]


@pytest.mark.parametrize("who, change, refusal", _refusal_cases())
def test_open_refusals_change_nothing(product, who, change, refusal):
    bank = product
    system = bank.system_actor()
    cid = make_customer(bank)
    linked = funded_account(bank, "5000.00", customer_id=cid)
    other_cid = make_customer(bank, name="John Roe")
    accounts = {"other": funded_account(bank, "9000.00", customer_id=other_cid)}
    for state in ("closed", "frozen"):
        accounts[state] = funded_account(bank, "0", customer_id=cid)
    bank.accounts.close(system, accounts["closed"])
    frozen = accounts["frozen"]
    bank.payments.deposit(system, frozen, "9000.00")
    bank.accounts.freeze(system, frozen)
    # A copy: the parameter's dict is shared by the test's DuckDB and PostgreSQL runs.
    change = dict(change)
    if change.pop("inactive", False):
        set_terms(bank, active=False)
    actor = login_for(bank, cid, "saver") if who == "customer" else employee(bank, who)
    args = {"customer_id": cid, "linked_account": linked, "amount": "1000.00",
            "term_months": 12, "idempotency_key": "k1"}
    if "linked" in change:
        args["linked_account"] = accounts[change.pop("linked")]
    if change.pop("customer", None):
        args["customer_id"] = other_cid
    args.update(change)
    before = snapshot(bank)
    with pytest.raises(refusal):
        bank.term_deposits.quote(actor, **{k: v for k, v in args.items()
                                           if k != "idempotency_key"})
    with pytest.raises(refusal):
        bank.term_deposits.open(actor, **args)
    assert snapshot(bank) == before
    healthy(bank)


# -- only the service moves a term deposit's money -------------------------------------------
def test_ordinary_paths_refuse_a_term_deposit(product):
    bank = product
    cid = make_customer(bank)
    linked = funded_account(bank, "5000.00", customer_id=cid)
    stranger = login_for(bank, make_customer(bank, name="John Roe"), "stranger")
    stranger_account = funded_account(bank, "100.00", customer_id=stranger.customer_id)
    customer = login_for(bank, cid, "saver")
    teller, manager = employee(bank, "teller"), employee(bank, "manager")
    td = bank.term_deposits.open(customer, linked_account=linked, amount="1000.00",
                                 term_months=6)
    number = td["account_number"]
    opening_tx = bank.read_one("SELECT open_transaction_id FROM term_deposits")[0]
    attempts = [
        (lambda: bank.payments.deposit(teller, number, "10.00"), TermDepositLocked),
        (lambda: bank.payments.withdraw(teller, number, "10.00"), TermDepositLocked),
        (lambda: bank.payments.transfer(customer, number, linked, "10.00"), TermDepositLocked),
        (lambda: bank.payments.transfer(customer, linked, number, "10.00"), TermDepositLocked),
        (lambda: bank.payments.transfer(teller, number, linked, "10.00"), TermDepositLocked),
        # Another customer learns nothing about the account's kind.
        (lambda: bank.payments.transfer(stranger, stranger_account, number, "10.00"),
         AccountNotActive),
        (lambda: bank.payments.reverse(manager, opening_tx, "mistake"), TermDepositLocked),
        (lambda: bank.accounts.close(teller, number), TermDepositLocked),
        (lambda: bank.accounts.open(teller, cid, kind="term_deposit"), InvalidInput),
        (lambda: bank.term_deposits.close_early(customer, number, reason="need it"),
         PermissionDenied),
    ]
    for attempt, refusal in attempts:
        before = snapshot(bank)
        with pytest.raises(refusal):
            result = attempt()
            # A staff payment above the four-eyes threshold would only wait; none is here.
            assert result is None
        assert snapshot(bank)[1] == before[1]
    # Closing the linked account while the deposit pays into it is refused too.
    bank.payments.withdraw(teller, linked, "4000.00")
    with pytest.raises(InvalidState):
        bank.accounts.close(teller, linked)
    healthy(bank)


# -- maturity ----------------------------------------------------------------------------------
# start (business date of opening), principal, term, instruction, tax bp, renewal rate (a new
# product version from the maturity date; None: unchanged).
MATURITY_CASES = [
    pytest.param(None, "10000.00", 3, "payout", 0, None, id="payout"),
    pytest.param(None, "12345.67", 6, "payout", 1500, None, id="payout-taxed"),
    pytest.param(dt.date(2027, 1, 31), "5000.00", 1, "payout", 0, None, id="jan-31-plus-1"),
    pytest.param(None, "10000.00", 3, "renew", 1500, "4.2500", id="renew"),
    pytest.param(None, "10000.00", 2, "renew_principal", 1000, "2.0000",
                 id="renew-principal"),
]


@pytest.mark.parametrize("start, principal, months, instruction, tax_bp, new_rate",
                         MATURITY_CASES)
def test_maturity_pays_or_renews_on_the_exact_date(bank, years_ahead, start, principal,
                                                    months, instruction, tax_bp, new_rate):
    system = bank.system_actor()
    set_terms(bank, withholding_tax_bp=tax_bp)
    if start is not None:
        close_days_until(bank, start - DAY)
    start = bank.business_date
    cid = make_customer(bank)
    linked = funded_account(bank, "20000.00", customer_id=cid)
    teller = employee(bank, "teller")
    number = bank.term_deposits.open(teller, customer_id=cid, linked_account=linked,
                                     amount=principal, term_months=months,
                                     maturity_instruction=instruction)["account_number"]
    maturity = maturity_date(start, months)
    if new_rate is not None:
        set_terms(bank, maturity, interest_rate_percent=new_rate, withholding_tax_bp=tax_bp)
    linked_before = balance(bank, linked)
    close_days_until(bank, maturity - 2 * DAY)
    assert balance(bank, number) == D(principal)  # nothing yet
    close_days_until(bank, maturity - DAY)
    assert bank.business_date == maturity

    gross = simple_interest(principal, "3.5", (maturity - start).days)
    tax = tax_on(gross, tax_bp)
    net = gross - tax
    to_linked = {"payout": D(principal) + net, "renew": D(0), "renew_principal": net}
    assert balance(bank, linked) == linked_before + to_linked[instruction]
    assert balance(bank, number) == 0
    assert bank.read("SELECT status FROM accounts WHERE account_number = ?",
                     [number]) == [("closed",)]
    interest = bank.read("SELECT t.amount_cents, t.business_date, p.amount_cents FROM "
                         "transactions t JOIN postings p ON p.transaction_id = t.id JOIN "
                         "accounts a ON a.id = p.account_id WHERE t.kind = 'interest' AND "
                         "a.account_number = ?", [INTERNAL["withholding_tax_payable"]])
    assert (sum(r[0] for r in bank.read(
        "SELECT amount_cents FROM transactions WHERE kind = 'interest' AND target_account = ?",
        [number])), sum(r[2] for r in interest)) == (int(gross * 100), int(tax * 100))
    row = bank.read_one("SELECT t.status, t.interest_cents, t.tax_cents, t.closed_date, "
                        "n.account_number FROM term_deposits t JOIN accounts a ON a.id = "
                        "t.account_id LEFT JOIN accounts n ON n.id = t.renewed_to_account_id "
                        "WHERE a.account_number = ?", [number])
    renews = instruction != "payout"
    assert row[:4] == ("renewed" if renews else "matured", int(gross * 100), int(tax * 100),
                       maturity - DAY)
    if renews:
        renewed = bank.term_deposits.get(system, row[4])
        new_principal = D(principal) + (net if instruction == "renew" else 0)
        assert (renewed["principal"], renewed["rate_percent"], renewed["start_date"],
                renewed["maturity_date"], renewed["maturity_instruction"], renewed["status"]) \
            == (new_principal, new_rate, maturity, maturity_date(maturity, months),
                instruction, "active")
        assert balance(bank, row[4]) == new_principal
    else:
        assert row[4] is None
    runs = bank.read("SELECT term_deposits_matured, term_deposits_renewed, "
                     "term_deposit_interest_cents FROM eod_runs WHERE business_date = ?",
                     [maturity - DAY])
    assert runs == [(0 if renews else 1, 1 if renews else 0, int(gross * 100))]
    healthy(bank)

    # A rerun of the day, and the days after, pay nothing twice.
    paid = snapshot(bank)
    assert bank.end_of_day(system, until=maturity - DAY).days == []
    assert snapshot(bank) == paid
    close_days_until(bank, maturity + 3 * DAY)
    assert bank.read("SELECT count(*) FROM transactions WHERE business_date > ? AND "
                     "(source_account = ? OR target_account = ?)",
                     [maturity - DAY, number, number]) == [(0,)]
    healthy(bank)


def test_a_renewal_refused_by_a_withdrawn_product_pays_out(bank, years_ahead):
    set_terms(bank)
    cid = make_customer(bank)
    linked = funded_account(bank, "3000.00", customer_id=cid)
    start = bank.business_date
    number = bank.term_deposits.open(bank.system_actor(), customer_id=cid,
                                     linked_account=linked, amount="3000.00", term_months=1,
                                     maturity_instruction="renew")["account_number"]
    set_terms(bank, active=False)
    maturity = maturity_date(start, 1)
    close_days_until(bank, maturity - DAY)
    gross = simple_interest("3000", "3.5", (maturity - start).days)
    assert balance(bank, linked) == D("3000.00") + gross
    assert bank.read("SELECT t.status FROM term_deposits t JOIN accounts a ON a.id = "
                     "t.account_id WHERE a.account_number = ?", [number]) == [("matured",)]
    healthy(bank)


# -- early closure -----------------------------------------------------------------------------
# product penalty terms, days accrued before closing, tax bp, expected (gross, penalty) as
# functions of the days accrued (and of the days in the last 3 months before closing).
EARLY_CASES = [
    pytest.param({"early_closure_penalty": "none"}, 45, 0,
                 lambda days, last: (simple_interest("10000", "3.5", days), D(0)), id="none"),
    pytest.param({"early_closure_penalty": "interest_months", "penalty_months": 1}, 75, 1500,
                 lambda days, last: (simple_interest("10000", "3.5", days),
                                     simple_interest("10000", "3.5", last)),
                 id="interest-of-last-month"),
    pytest.param({"early_closure_penalty": "interest_months", "penalty_months": 3}, 40, 1500,
                 lambda days, last: (simple_interest("10000", "3.5", days),
                                     simple_interest("10000", "3.5", days)),
                 id="capped-at-interest-earned"),
    pytest.param({"early_closure_penalty": "reduced_rate", "penalty_rate_percent": "1.0000"},
                 100, 1500,
                 lambda days, last: (simple_interest("10000", "3.5", days),
                                     simple_interest("10000", "3.5", days)
                                     - simple_interest("10000", "1", days)),
                 id="reduced-rate"),
]


@pytest.mark.parametrize("penalty_terms, days, tax_bp, expected", EARLY_CASES)
def test_early_closure_applies_the_penalty(bank, years_ahead, penalty_terms, days, tax_bp,
                                           expected):
    set_terms(bank, withholding_tax_bp=tax_bp, **penalty_terms)
    cid = make_customer(bank)
    linked = funded_account(bank, "10000.00", customer_id=cid)
    customer = login_for(bank, cid, "saver")
    teller = employee(bank, "teller")
    start = bank.business_date
    number = bank.term_deposits.open(customer, linked_account=linked, amount="10000.00",
                                     term_months=12)["account_number"]
    close_days_until(bank, start + (days - 1) * DAY)
    closing = bank.business_date
    months = penalty_terms.get("penalty_months", 0)
    last = min(days, (closing - maturity_date(closing, -months)).days) if months else 0
    gross, penalty = expected(days, last)
    tax = tax_on(gross - penalty, tax_bp)
    before = snapshot(bank)
    with pytest.raises(InvalidInput):
        bank.term_deposits.close_early(teller, number, reason="  ")
    assert snapshot(bank) == before

    result = bank.term_deposits.close_early(teller, number, reason="customer needs the money",
                                            idempotency_key="early-1")
    assert bank.term_deposits.close_early(teller, number, reason="customer needs the money",
                                          idempotency_key="early-1") == result
    payout = D("10000.00") + gross - penalty - tax
    assert (result["interest"], result["penalty"], result["tax_withheld"],
            result["interest_net"], result["payout"]) == (gross, penalty, tax,
                                                          gross - penalty - tax, payout)
    assert balance(bank, linked) == payout
    td = bank.term_deposits.get(customer, number)
    assert (td["status"], td["penalty"], td["closed_date"]) == ("closed_early", penalty, closing)
    cert = bank.reports.interest_certificate(customer, cid, closing.year)
    assert (cert.interest_paid, cert.penalties, cert.tax_withheld) == (gross, penalty, tax)
    assert bank.read("SELECT actor, outcome FROM audit_log WHERE action = "
                     "'term_deposit.close_early' AND entity = 'account'") == [
        (teller.username, "ok")]
    with pytest.raises(InvalidState):
        bank.term_deposits.close_early(teller, number, reason="again")
    healthy(bank)
    close_days_until(bank, closing + 2 * DAY)
    assert balance(bank, linked) == payout
    healthy(bank)


# The product's terms from the day after opening: a running deposit keeps its snapshot (rate
# and day count), so 10 days of 10,000.00 still earn 10,000 x 3.5 % x 10/365 = 9.59 (30/360
# would give 9.72, actual/actual in 2028 9.56).
PRODUCT_CHANGES = [
    pytest.param({"day_count": "30/360"}, id="day-count-to-30-360"),
    pytest.param({"day_count": "actual/actual"}, id="day-count-to-actual-actual"),
    pytest.param({"interest_rate_percent": "9.0000", "day_count": "30/360"}, id="rate-too"),
]


@pytest.mark.parametrize("changes", PRODUCT_CHANGES)
def test_a_product_change_never_touches_a_running_deposit(bank, years_ahead, changes):
    set_terms(bank)
    leap_day = dt.date(2028, 3, 1)               # a leap year, so actual/actual differs
    bank.write(lambda uow: uow.execute(
        "UPDATE settings SET value = ? WHERE key = 'business_date'", [leap_day.isoformat()]))
    bank.state.business_date = leap_day
    cid = make_customer(bank)
    linked = funded_account(bank, "10000.00", customer_id=cid)
    start = bank.business_date
    number = bank.term_deposits.open(bank.system_actor(), customer_id=cid,
                                     linked_account=linked, amount="10000.00",
                                     term_months=12)["account_number"]
    set_terms(bank, start + DAY, **changes)
    close_days_until(bank, start + 9 * DAY)
    result = bank.term_deposits.close_early(employee(bank, "teller"), number,
                                            reason="customer needs the money")
    assert result["interest"] == simple_interest("10000.00", "3.5", 10) == D("9.59")
    healthy(bank)


# -- the customer's view -----------------------------------------------------------------------
def test_customers_see_only_their_own_term_deposits(product):
    bank = product
    cid = make_customer(bank)
    linked = funded_account(bank, "8000.00", customer_id=cid)
    customer = login_for(bank, cid, "saver")
    other = make_customer(bank, name="John Roe")
    other_linked = funded_account(bank, "8000.00", customer_id=other)
    teller = employee(bank, "teller")
    mine = bank.term_deposits.open(customer, linked_account=linked, amount="3000.00",
                                   term_months=24, maturity_instruction="renew")
    theirs = bank.term_deposits.open(teller, customer_id=other, linked_account=other_linked,
                                     amount="2000.00", term_months=6)
    listed = bank.term_deposits.list(customer)
    assert list(listed["account_number"]) == [mine["account_number"]]
    start = bank.business_date
    end = maturity_date(start, 24)
    gross = simple_interest("3000", "3.5", (end - start).days)
    assert (listed["principal"][0], listed["maturity_date"][0], listed["payout"][0],
            listed["maturity_instruction"][0]) == (D("3000.00"), end, D("3000.00") + gross,
                                                   "renew")
    assert len(bank.term_deposits.list(teller)) == 2
    with pytest.raises(PermissionDenied):
        bank.term_deposits.list(customer, customer_id=other)
    with pytest.raises(PermissionDenied):
        bank.term_deposits.get(customer, theirs["account_number"])


def test_a_frozen_deposit_matures_once_unfrozen_with_its_terms_interest(bank, years_ahead):
    set_terms(bank)
    system = bank.system_actor()
    cid = make_customer(bank)
    linked = funded_account(bank, "2000.00", customer_id=cid)
    start = bank.business_date
    number = bank.term_deposits.open(system, customer_id=cid, linked_account=linked,
                                     amount="2000.00", term_months=1)["account_number"]
    bank.accounts.freeze(system, number)
    maturity = maturity_date(start, 1)
    close_days_until(bank, maturity + 2 * DAY)
    assert balance(bank, number) == D("2000.00") and balance(bank, linked) == 0
    bank.accounts.unfreeze(system, number)
    close_days_until(bank, bank.business_date)
    # Paid the interest of its term only, not of the days it stayed frozen past maturity.
    assert balance(bank, linked) == D("2000.00") + simple_interest("2000", "3.5",
                                                                   (maturity - start).days)
    assert balance(bank, number) == 0
    healthy(bank)
