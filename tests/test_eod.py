"""End of day: idempotence, catching up, savings interest against the formula, instalment
collection, arrears ageing over a simulated calendar, dormancy, atomicity, a simulated year."""
from __future__ import annotations

import datetime as dt
import random
from decimal import ROUND_HALF_UP, Decimal

import pytest

import bankms
from bankms.services.eod import run as eod
from bankms.bank import INTERNAL
from bankms.services.loans import add_months
from conftest import employee, funded_account, make_customer

D = Decimal
DAY = dt.timedelta(days=1)
# These tests walk months of business days: the clock stands years ahead so those days have
# ended (tests/test_business_day.py checks the rule itself).
# Each test marked engines runs on DuckDB and on PostgreSQL; the simulated year (about 67 s on
# PostgreSQL, most of this module's time there) runs on DuckDB only.
pytestmark = pytest.mark.usefixtures("years_ahead")
TABLES = ("transactions", "postings", "audit_log", "interest_accruals", "interest_postings",
          "eod_runs", "loan_payments", "idempotency_keys")


def snapshot(bank):
    counts = {t: bank.read_one(f"SELECT count(*) FROM {t}")[0] for t in TABLES}
    balances = bank.read("SELECT account_number, balance_cents, status FROM accounts ORDER BY 1")
    loans = bank.read("SELECT id, status, principal_outstanding_cents, days_past_due, "
                      "arrears_bucket FROM loans ORDER BY 1")
    sched = bank.read("SELECT loan_id, n, interest_paid_cents, principal_paid_cents, fee_cents, "
                      "fee_paid_cents FROM loan_schedule ORDER BY 1, 2")
    return counts, balances, loans, sched, bank.business_date


@pytest.fixture
def staff(bank):
    return {"teller": employee(bank, "teller"), "manager": employee(bank, "manager")}


def new_loan(bank, staff, cid, account, principal="10000.00", rate="12", term=12):
    lid = bank.loans.apply(staff["teller"], cid, product="personal", principal=principal,
                           term_months=term, purpose="home office", monthly_income="5000")
    bank.loans.approve(staff["manager"], lid, annual_rate_percent=rate)
    bank.loans.disburse(staff["teller"], lid, account)
    return lid


def empty(bank, number):
    balance = bank.accounts.balance(bank.system_actor(), number)
    if balance > 0:
        bank.payments.withdraw(bank.system_actor(), number, str(balance))


@pytest.mark.engines
def test_running_end_of_day_twice_for_a_date_changes_nothing(bank, staff, system):
    cid = make_customer(bank)
    funded_account(bank, "2500.00", kind="savings", customer_id=cid)
    checking = funded_account(bank, "0", customer_id=cid)
    new_loan(bank, staff, cid, checking)
    until = add_months(bank.business_date, 1) + 3 * DAY  # past a month end and a due date
    first = bank.end_of_day(system, until=until)
    assert first.days and first.business_date == until + DAY
    before = snapshot(bank)
    again = bank.end_of_day(system, until=until)
    assert again.days == [] and "nothing to close" in str(again)
    assert snapshot(bank) == before
    # An earlier date is already closed too.
    assert bank.end_of_day(system, until=until - 10 * DAY).days == []
    assert snapshot(bank) == before


@pytest.mark.engines
def test_catches_up_missed_days_in_order_with_progress(bank, system):
    start = bank.business_date
    calls = []
    result = bank.end_of_day(system, until=start + 4 * DAY,
                             progress=lambda done, total: calls.append((done, total)))
    assert calls == [(0, 5), (1, 5), (2, 5), (3, 5), (4, 5), (5, 5)]
    closed = [row[0] for row in bank.read("SELECT business_date FROM eod_runs ORDER BY 1")]
    assert closed == [start + k * DAY for k in range(5)]
    assert [d.business_date for d in result.days] == closed
    assert bank.business_date == start + 5 * DAY
    assert bank.settings.get("business_date") == (start + 5 * DAY).isoformat()
    # Transactions now carry the new business date.
    number = funded_account(bank, "10.00")
    (bdate,) = bank.read_one("SELECT max(business_date) FROM transactions t WHERE "
                             "target_account = ?", [number])
    assert bdate == start + 5 * DAY


def later_clock(monkeypatch, days):
    """Banks opened here (not by the fixture) read businessday.system_clock: move it."""
    from bankms.services import businessday
    moved = dt.datetime.now(dt.timezone.utc) + days * DAY
    monkeypatch.setattr(businessday, "system_clock", lambda: moved)


def test_business_date_survives_a_restart(tmp_path, monkeypatch):
    path = str(tmp_path / "b.duckdb")
    bank = bankms.open_bank(path, bcrypt_rounds=4)
    start = bank.business_date
    later_clock(monkeypatch, 3)
    bank.end_of_day(bank.system_actor(), until=start + 2 * DAY)
    bank.close()
    bank = bankms.open_bank(path, bcrypt_rounds=4)
    try:
        assert bank.business_date == start + 3 * DAY
        assert bank.audit.verify() == []
    finally:
        bank.close()


def test_cli_eod_closes_days_while_the_app_is_stopped(tmp_path, capsys, monkeypatch):
    from bankms.cli import main
    path = str(tmp_path / "cli.duckdb")
    bank = bankms.open_bank(path, bcrypt_rounds=4)
    start = bank.business_date
    bank.close()
    later_clock(monkeypatch, 2)
    assert main(["--db", path, "eod", "--until", (start + DAY).isoformat()]) == 0
    assert "closed 2 day(s)" in capsys.readouterr().out
    bank = bankms.open_bank(path, bcrypt_rounds=4)
    try:
        assert bank.business_date == start + 2 * DAY
    finally:
        bank.close()


@pytest.mark.engines
def test_a_failing_day_rolls_back_whole(bank, staff, system, monkeypatch):
    cid = make_customer(bank)
    funded_account(bank, "1000.00", kind="savings", customer_id=cid)
    before = snapshot(bank)

    def broken(uow, day, out):
        raise RuntimeError("disk on fire")
    monkeypatch.setattr(eod, "_accrue", broken)
    with pytest.raises(RuntimeError):
        bank.end_of_day(system, until=bank.business_date)
    assert snapshot(bank) == before
    monkeypatch.undo()
    assert len(bank.end_of_day(system, until=bank.business_date).days) == 1


# -- savings interest ---------------------------------------------------------------------------
def expected_interest(daily_balances_cents, rate_percent):
    """Posted cents per month from the documented formula: each day balance x rate / 365 in
    cents, rounded half-up to the micro-cent; whole cents posted at month end, the rest
    carried."""
    carry = 0
    posted = {}
    for month, balances in daily_balances_cents:
        micro = sum(int((D(b) * D(rate_percent) / 100 / 365 * 1_000_000).quantize(
            D(1), rounding=ROUND_HALF_UP)) for b in balances)
        total = carry + micro
        posted[month] = total // 1_000_000
        carry = total % 1_000_000
    return posted


@pytest.mark.engines
def test_savings_interest_matches_the_formula(bank, staff, system):
    cid = make_customer(bank)
    savings = funded_account(bank, "12345.67", kind="savings", customer_id=cid,
                             interest_rate="2.75")
    funded_account(bank, "5000.00", kind="checking", customer_id=cid)  # earns nothing
    start = bank.business_date
    month_end = add_months(start.replace(day=1), 1) - DAY
    # Close the first month, deposit mid-way through the second, close it too.
    mid = month_end + 10 * DAY
    bank.end_of_day(system, until=mid - DAY)
    first_posted = bank.read_one("SELECT posted_cents FROM interest_postings "
                                 "WHERE period_end = ?", [month_end])[0]
    bank.payments.deposit(staff["teller"], savings, "1000.00")  # counts from day `mid`
    second_end = add_months(month_end + DAY, 1) - DAY
    bank.end_of_day(system, until=second_end)
    b0 = 1_234_567
    b1 = b0 + first_posted
    days_1 = (month_end - start).days + 1
    days_2a = (mid - month_end).days - 1
    days_2b = (second_end - mid).days + 1
    expected = expected_interest([("m1", [b0] * days_1),
                                  ("m2", [b1] * days_2a + [b1 + 100_000] * days_2b)], "2.75")
    posted = [row[0] for row in bank.read(
        "SELECT posted_cents FROM interest_postings ip JOIN accounts a ON a.id = ip.account_id "
        "WHERE a.account_number = ? ORDER BY period_end", [savings])]
    assert posted == [expected["m1"], expected["m2"]]
    # And close to the plain (unrounded) formula: within a cent per month.
    plain = D(b0) * D("2.75") / 100 * days_1 / 365
    assert abs(D(posted[0]) - plain) < 1
    txs = bank.read("SELECT kind, source_account, memo FROM transactions WHERE kind = 'interest' "
                    "ORDER BY id")
    assert [t[:2] for t in txs] == [("interest", INTERNAL["interest_expense"])] * 2
    assert bank.accounts.balance(system, savings) == (
        D("13345.67") + (D(posted[0]) + D(posted[1])) / 100)
    assert bank.audit.verify() == []


@pytest.mark.engines
@pytest.mark.parametrize("rate, balance, expected_micro_per_day", [
    ("2.00", "10000.00", 54_794_521),   # 1,000,000 c x 2 % / 365 = 54.7945205 c
    ("0.50", "365.00", 500_000),        # exactly half a cent a day
    ("0", "10000.00", None),            # no rate, no accrual
    ("3.00", "0", None),                # nothing to earn on
])
def test_daily_accrual_uses_the_accounts_rate(bank, system, rate, balance, expected_micro_per_day):
    number = funded_account(bank, balance, kind="savings", interest_rate=rate)
    bank.end_of_day(system, until=bank.business_date)
    row = bank.read_one("SELECT accrued_micro_cents FROM interest_accruals ia JOIN accounts a "
                        "ON a.id = ia.account_id WHERE a.account_number = ?", [number])
    assert (row[0] if row else None) == expected_micro_per_day


# -- loans at end of day ------------------------------------------------------------------------
@pytest.mark.engines
def test_instalment_is_collected_on_its_due_date_and_is_not_customer_activity(bank, staff,
                                                                             system):
    cid = make_customer(bank)
    checking = funded_account(bank, "0", customer_id=cid)
    lid = new_loan(bank, staff, cid, checking)
    due = bank.loans.get(staff["teller"], lid)["next_due_date"]
    activity = bank.read_one("SELECT last_activity_at FROM accounts WHERE account_number = ?",
                             [checking])[0]
    bank.end_of_day(system, until=due - DAY)
    assert bank.loans.schedule(staff["teller"], lid)["state"].iloc[0] == "due today"
    bank.end_of_day(system, until=due)
    sched = bank.loans.schedule(staff["teller"], lid)
    assert sched["state"].iloc[0] == "paid"
    assert bank.accounts.balance(system, checking) == D("10000.00") - D("888.49")
    assert bank.read_one("SELECT method, actor FROM loan_payments") == ("automatic", "system")
    assert bank.read_one("SELECT last_activity_at FROM accounts WHERE account_number = ?",
                         [checking])[0] == activity
    assert bank.audit.verify() == []


@pytest.mark.engines
def test_collection_never_overdraws_and_pays_the_older_loan_first(bank, staff, system):
    cid = make_customer(bank)
    checking = funded_account(bank, "0", customer_id=cid, overdraft_limit="5000")
    older = new_loan(bank, staff, cid, checking, principal="10000.00")
    newer = new_loan(bank, staff, cid, checking, principal="5000.00")
    empty(bank, checking)
    bank.payments.deposit(staff["teller"], checking, "1000.00")
    due = bank.loans.get(staff["teller"], older)["next_due_date"]
    bank.end_of_day(system, until=due)
    assert bank.accounts.balance(system, checking) == D("0.00")
    assert bank.loans.get(staff["teller"], older)["days_past_due"] == 0
    newer_loan = bank.loans.get(staff["teller"], newer)
    assert newer_loan["days_past_due"] == 1
    assert newer_loan["paid"] == D("1000.00") - D("888.49")
    assert bank.audit.verify() == []


# (days closed after the first due date, days past due, bucket)
ARREARS_CALENDAR = [
    (-1, 0, "current"),
    (0, 1, "1-30"),
    (4, 5, "1-30"),
    (5, 6, "1-30"),
    (29, 30, "1-30"),
    (30, 31, "31-60"),
    (60, 61, "61-90"),
    (90, 91, "over 90"),
]


@pytest.mark.engines
def test_arrears_age_over_a_simulated_calendar(bank, staff, system):
    cid = make_customer(bank)
    checking = funded_account(bank, "0", customer_id=cid)
    lid = new_loan(bank, staff, cid, checking)
    empty(bank, checking)
    dues = list(bank.loans.schedule(staff["teller"], lid)["due_date"])
    for offset, days_past_due, bucket in ARREARS_CALENDAR:
        closed = dues[0] + offset * DAY
        bank.end_of_day(system, until=closed)
        loan = bank.loans.get(staff["teller"], lid)
        charged = bank.read_one("SELECT count(*) FROM loan_schedule WHERE loan_id = ? "
                                "AND fee_cents > 0", [lid])[0]
        # One 25.00 fee per instalment still unpaid 5 days (the grace) after its due date.
        fees = sum(1 for d in dues if d + 5 * DAY <= closed)
        assert (offset, loan["days_past_due"], loan["bucket"], charged) == (
            offset, days_past_due, bucket, fees)
    # The money arrives: the next end of day collects fees, interest and principal in full.
    today = bank.business_date
    owed = bank.loans.get(staff["teller"], lid)["due_now"]
    fees = sum(1 for d in dues if d + 5 * DAY < today)
    assert owed == fees * D("25.00") + sum(1 for d in dues if d <= today) * D("888.49")
    bank.payments.deposit(staff["teller"], checking, "5000.00")
    bank.end_of_day(system, until=today)
    loan = bank.loans.get(staff["teller"], lid)
    assert (loan["days_past_due"], loan["bucket"], loan["overdue"]) == (0, "current", D("0.00"))
    assert bank.accounts.balance(system, checking) == D("5000.00") - owed
    fee_income = bank.read_one("SELECT balance_cents FROM accounts WHERE account_number = ?",
                               [INTERNAL["fee_income"]])[0]
    assert fee_income == 2500 * fees
    assert bank.audit.verify() == []


# -- dormancy ---------------------------------------------------------------------------------
@pytest.mark.engines
def test_accounts_go_dormant_after_a_year_without_activity_and_wake_up(bank, staff, system):
    idle = funded_account(bank, "50.00")
    busy = funded_account(bank, "50.00")
    long_ago = add_months(bank.business_date, -13)  # dormancy reads the business date
    bank.write(lambda uow: uow.execute(
        "UPDATE accounts SET last_activity_date = ? WHERE account_number = ?", [long_ago, idle]))
    result = bank.end_of_day(system, until=bank.business_date)
    assert result.days[0].accounts_made_dormant == 1
    assert bank.accounts.get(system, idle)["status"] == "dormant"
    assert bank.accounts.get(system, busy)["status"] == "active"
    assert list(bank.audit.log(system, action="account.dormant")["entity_id"]) == [idle]
    bank.payments.deposit(staff["teller"], idle, "5.00")  # dormant accounts still take money
    result = bank.end_of_day(system, until=bank.business_date)
    assert result.days[0].accounts_reactivated == 1
    assert bank.accounts.get(system, idle)["status"] == "active"


# -- a simulated year -------------------------------------------------------------------------
def test_a_simulated_year_reconciles_to_the_cent(bank, staff, system):
    rng = random.Random(5)
    teller = staff["teller"]
    customers = [make_customer(bank, name=f"Customer {i}") for i in range(4)]
    checking = [funded_account(bank, "3000.00", customer_id=c) for c in customers]
    savings = [funded_account(bank, f"{1000 * (i + 1)}.00", kind="savings", customer_id=c,
                              interest_rate=f"{i + 1}.25") for i, c in enumerate(customers)]
    loans = [new_loan(bank, staff, customers[0], checking[0], "6000.00", "9.5", 12),
             new_loan(bank, staff, customers[1], checking[1], "12000.00", "14", 24),
             new_loan(bank, staff, customers[2], checking[2], "3000.00", "8", 12)]
    empty(bank, checking[1])  # this borrower falls behind, then catches up from month four
    start = bank.business_date
    end = add_months(start, 12) + 2 * DAY  # the 12-month loan's last instalment is in
    day = start
    while day <= end:
        stop = min(day + rng.randint(5, 25) * DAY, end)
        bank.end_of_day(system, until=stop)
        day = stop + DAY
        i = rng.randrange(4)
        bank.payments.deposit(teller, checking[i],
                              f"{rng.randint(200, 900)}.{rng.randint(0, 99):02d}")
        bank.payments.transfer(system, checking[i], savings[rng.randrange(4)], "50.00")
        if day > start + 110 * DAY:
            bank.payments.deposit(teller, checking[1], "1000.00")
        if day > start + 150 * DAY and bank.loans.get(teller, loans[2])["status"] == "active":
            payoff = bank.loans.get(teller, loans[2])["payoff"]
            bank.loans.repay(teller, loans[2], str(payoff), "cash")
        assert bank.audit.verify() == []
    assert bank.business_date == end + DAY
    assert bank.read_one("SELECT count(*) FROM eod_runs")[0] == (end - start).days + 1
    statuses = {lid: bank.loans.get(teller, lid)["status"] for lid in loans}
    assert statuses == {loans[0]: "paid_off", loans[1]: "active", loans[2]: "paid_off"}
    assert bank.loans.get(teller, loans[1])["bucket"] == "current"

    def gl(code):
        return bank.read_one("SELECT balance_cents FROM accounts WHERE account_number = ?",
                             [INTERNAL[code]])[0]
    paid = bank.read_one("SELECT sum(interest_cents), sum(fee_cents) FROM loan_payments")
    # Issue 9: interest income is what was earned: paid, plus accrued and not yet paid (the
    # interest receivable, which equals the active loan's interest accrued to the business
    # date by replay).
    accrued = bank.loans.payoff(teller, loans[1])["interest_cents"]
    assert -gl("interest_receivable") == accrued
    assert gl("interest_income") == paid[0] + accrued and gl("fee_income") == paid[1]
    posted = bank.read_one("SELECT sum(posted_cents) FROM interest_postings")[0]
    assert -gl("interest_expense") == posted
    assert -gl("loans_receivable") == bank.read_one(
        "SELECT sum(principal_outstanding_cents) FROM loans")[0]
    # Loan 1 paid exactly its schedule's interest over its life.
    assert bank.read_one("SELECT sum(interest_cents) FROM loan_payments WHERE loan_id = ?",
                         [loans[0]])[0] == sum(
        bank.loans.quote("6000.00", "9.5", 12)["interest_cents"])
    assert bank.audit.verify() == []
