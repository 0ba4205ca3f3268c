"""Issue 10: a simulated year on a small bank.

Six customers with checking and savings accounts on deposit products (a tiered savings
product, a quarterly-posting one, the migrated 'savings' product and a negotiated rate, a
current account with a maintenance fee, an overdraft with interest and an overdraft fee, a
basic account with a fee for a missed standing order), two loans, standing orders (one on the
31st, one that fails and is paid at its retry, then fails until it is missed), and a year of
activity drawn from a seeded generator (deposits, withdrawals, transfers) around scripted
events (product changes with tiers and tax from a later date, a rate change, a mistaken
deposit and its reversal, a manual loan payment, an interest posting corrected by a
reversal, a fee waived, a savings account closed mid-year, an overdraft) run through the
calendar year 2027 with end of day. Checked:

- after every day: `verify()` is empty and the trial balance sums to zero;
- at the end: every statement of every account reconciles (opening + movements = closing, and
  the closing equals the ledger's balance at the month's end, summed here by SQL) and chains
  (each month opens at the last one's closing); every customer's interest certificate for the
  year equals that year's interest postings (gross from GL5000's legs, tax from GL2100's, net
  from the customer's own legs, reversals included), summed here by SQL; the interest each
  account was paid (and the overdraft interest charged) equals its end-of-day balances x the
  rate of the day for that balance / 365, summed here with Decimal from the script's own
  record of the products, to the cent; tax is the product's rate of the posting day;
- end of day day by day equals catch-up: a second bank receives the same activity on the same
  business days, but closes the days between activity days in one run each (December, with no
  activity, in one run of 31 days); both end with the same ledger, the same accruals and
  interest postings and the same end-of-day counters.

Activity needs an open business date (it is value-dated on it), so the catch-up bank cannot
close the whole year in one run: it closes everything between two activity days at once.
Both banks read one clock that the test moves: noon for the day's activity, 23:45 to close.
"""
from __future__ import annotations

import calendar
import datetime as dt
import random
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal

import pytest

import bankms
from bankms.bank import INTERNAL
from conftest import Clock, employee, make_customer

# 730 closed days (two banks) and 365 full verify() runs: 3.8 to 7.5 minutes on the shared
# 2-core machine (about 140 s of CPU), the cost of the "verify() after every day".
# The year's fixture closes 365 days and verifies the ledger after each: 280 s on a quiet CI
# machine, 600 s on these 2 cores under load 13, where the suite-wide 600 s limit cut it off.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

D = Decimal
DAY = dt.timedelta(days=1)
UTC = dt.timezone.utc
YEAR = 2027
FIRST, LAST = dt.date(YEAR, 1, 1), dt.date(YEAR, 12, 31)
SEED = 20_270_101
# No generated activity after this day: the catch-up bank closes December in one run.
QUIET_FROM = dt.date(YEAR, 12, 1)
ACTIVITY_DAY_CHANCE = 0.3

# Deposit products of the simulation (created on the first day, in force from it): code, kind,
# terms, tiers. Rates stay at or below the four-eyes rate (2.00 %) so no change waits.
PRODUCTS = [
    ("sim_tiered", "savings", {"interest_rate_percent": "1.00", "withholding_tax_bp": 1500},
     [("10000.00", "1.50"), ("20000.00", "2.00")]),
    ("sim_quarterly", "savings", {"interest_rate_percent": "1.80", "posting_period": "quarterly",
                                  "day_count": "actual/actual", "withholding_tax_bp": 1500}, []),
    ("sim_current", "checking", {"maintenance_fee": "2.50", "overdraft_allowed": True,
                                 "overdraft_limit_max": "2000.00",
                                 "overdraft_rate_percent": "14.00", "overdraft_fee": "5.00"}, []),
    ("sim_basic", "checking", {"standing_order_fail_fee": "3.00"}, []),
    ("sim_term", "term_deposit", {"interest_rate_percent": "1.90", "withholding_tax_bp": 1500,
                                  "term_months_min": 3, "term_months_max": 24,
                                  "early_closure_penalty": "interest_months",
                                  "penalty_months": 3}, []),
]
# Changes of products, made a day ahead (a change applies from tomorrow's business date at the
# earliest): (made on, code, terms, tiers or None, effective from).
PRODUCT_CHANGES = [
    (FIRST, "savings", {"interest_rate_percent": "1.25", "withholding_tax_bp": 1500}, None,
     FIRST + DAY),
    (dt.date(YEAR, 4, 14), "sim_tiered", {"interest_rate_percent": "1.10"},
     [("10000.00", "1.60"), ("20000.00", "1.95")], dt.date(YEAR, 4, 15)),
    (dt.date(YEAR, 6, 20), "savings", {"withholding_tax_bp": 2000}, None, dt.date(YEAR, 7, 1)),
]
# Accounts: name -> (product, opening deposit, account's own rate or None, overdraft limit).
# "c<i>.<kind>" is customer i's account, in both banks.
ACCOUNTS = {
    "c0.checking": ("sim_current", "4000.00", None, "0"),
    "c0.savings": ("sim_tiered", "12000.00", None, "0"),
    "c1.checking": ("checking", "2500.00", None, "0"),
    "c1.savings": ("savings", "8000.00", "2.00", "0"),           # a negotiated rate
    "c2.checking": ("checking", "1800.00", None, "0"),
    "c2.savings": ("sim_tiered", "25000.00", None, "0"),
    "c3.checking": ("checking", "3200.00", None, "0"),
    "c3.savings": ("sim_quarterly", "15000.00", None, "0"),
    "c4.checking": ("sim_current", "900.00", None, "1500.00"),
    "c4.savings": ("sim_tiered", "6000.00", None, "0"),
    "c5.checking": ("sim_basic", "2200.00", None, "0"),
    "c5.savings": ("savings", "3000.00", None, "0"),
}
N_CUSTOMERS = 6
# Term deposits on sim_term: name -> (opened on, from, amount, months, closed early on or None).
# c2's matures on 1 August (paid out to its savings account by end of day of 31 July); c0's is
# closed early by a teller on 20 September, forfeiting its last 3 months of interest.
TERM_DEPOSITS = {
    "c2.term": (dt.date(YEAR, 2, 1), "c2.savings", "8000.00", 6, None),
    "c0.term": (dt.date(YEAR, 3, 10), "c0.savings", "3000.00", 12, dt.date(YEAR, 9, 20)),
}
TERM_RATE = D("1.90")
# Accounts that scripted steps drive to a balance, and term deposits (only the term deposit
# service moves their money): random activity leaves them alone.
RESERVED = {"c4.checking", "c5.checking", *TERM_DEPOSITS}
RATE_CHANGE = (dt.date(YEAR, 4, 15), "c1.savings", "1.90")
CLOSED = (dt.date(YEAR, 8, 17), "c4.savings", "c4.checking")
MISTAKE = (dt.date(YEAR, 3, 3), dt.date(YEAR, 3, 5), "c1.checking", "250.00")
INTEREST_CORRECTED = (dt.date(YEAR, 5, 10), "c3.savings", dt.date(YEAR, 4, 30))
WAIVED = (dt.date(YEAR, 4, 6), "c0.checking", "maintenance", dt.date(YEAR, 3, 31))
OVERDRAWN = (dt.date(YEAR, 10, 5), dt.date(YEAR, 10, 25), "c4.checking", "-800.00")
LOANS = [  # (disbursed, customer, principal, months, rate)
    (dt.date(YEAR, 2, 10), 0, "6000.00", 9, "12"),
    (dt.date(YEAR, 5, 5), 5, "3000.00", 6, "9.5"),
]
MANUAL_REPAYMENT = (dt.date(YEAR, 6, 21), 0, "500.00")
# Standing orders: (set up on, key, source, target, amount, day of month, retry days).
STANDING_ORDERS = [
    (FIRST, "sim-so-31st", "c1.checking", "c1.savings", "100.00", 31, 2),
    (FIRST, "sim-so-15th", "c5.checking", "c2.checking", "150.00", 15, 2),
]
# The 15th's order fails on 15 June and is paid at its first retry, after a deposit on the
# 16th; on 15 September it fails three times (15th to 17th) and is missed (with its fee).
SHORT_OF_FUNDS = [
    (dt.date(YEAR, 6, 14), "c5.checking", "50.00", dt.date(YEAR, 6, 16), "2000.00"),
    (dt.date(YEAR, 9, 14), "c5.checking", "20.00", dt.date(YEAR, 9, 20), "2000.00"),
]
# A salary on 1 September, so the account pays its loan instalment on the 5th and still has
# 20.00 to go down to on the 14th.
SALARY = (dt.date(YEAR, 9, 1), "c5.checking", "1500.00")


def at(day: dt.date, hh_mm: str) -> dt.datetime:
    hours, minutes = map(int, hh_mm.split(":"))
    return dt.datetime.combine(day, dt.time(hours, minutes), tzinfo=UTC)


def cents(text: str) -> int:
    return int(D(text) * 100)


def money(amount_cents: int) -> str:
    return f"{D(amount_cents) / 100:.2f}"


class Sim:
    """One bank of the simulation and the names of what it holds."""

    def __init__(self, path, clock):
        self.bank = bankms.open_bank(str(path), bcrypt_rounds=4, clock=clock)
        assert self.bank.business_date == FIRST
        self.system = self.bank.system_actor()
        self.bank.settings.set(self.system, "eod_catchup_days_confirm", "366")
        # Not what this test is about: no teller payment here waits for a second person.
        self.bank.settings.set(self.system, "four_eyes_threshold_cents", "10000000")
        self.teller = employee(self.bank, "teller", username="sim_teller")
        self.manager = employee(self.bank, "manager", username="sim_manager")
        self.customers: list[int] = []
        self.accounts: dict[str, str] = {}
        self.loans: list[int] = []

    def set_up(self):
        bank, system, manager = self.bank, self.system, self.manager
        for code, kind, terms, tiers in PRODUCTS:
            bank.deposit_products.create(manager, code=code, name=code.replace("_", " "),
                                         kind=kind, terms=terms, tiers=tiers)
        for i in range(N_CUSTOMERS):
            self.customers.append(make_customer(bank, name=f"Sim Customer {i}",
                                                national_id=f"SIM{i:04d}"))
        for name, (product, amount, rate, limit) in ACCOUNTS.items():
            cid = self.customers[int(name[1])]
            kw = {} if rate is None else {"interest_rate": rate}
            number = bank.accounts.open(manager, cid, product=product, overdraft_limit=limit,
                                        **kw)
            self.accounts[name] = number
            bank.payments.deposit(system, number, amount, idempotency_key=f"sim-open-{name}")

    def run(self, op):
        """Apply one activity step, named by account names (see activity)."""
        bank, acc = self.bank, self.accounts
        kind, *args = op
        if kind == "deposit":
            name, amount, key = args
            bank.payments.deposit(self.teller, acc[name], amount, idempotency_key=key)
        elif kind == "withdraw":
            name, amount, key = args
            bank.payments.withdraw(self.teller, acc[name], amount, idempotency_key=key)
        elif kind == "withdraw_to":
            # Down to a balance (below zero into the overdraft): the amount is read here, from
            # this bank, which holds what the other one holds if the two agree.
            name, balance, key = args
            now = bank.read_one("SELECT balance_cents FROM accounts WHERE account_number = ?",
                                [acc[name]])[0]
            bank.payments.withdraw(self.teller, acc[name], money(now - cents(balance)),
                                   idempotency_key=key)
        elif kind == "transfer":
            source, target, amount, key = args
            bank.payments.transfer(self.teller, acc[source], acc[target], amount,
                                   idempotency_key=key)
        elif kind == "reverse_last":
            # The newest transaction of that kind on the account, on or before a business date.
            name, tx_kind, on, reason = args
            (tid,) = bank.read_one(
                "SELECT max(t.id) FROM transactions t JOIN postings p ON p.transaction_id = t.id "
                "JOIN accounts a ON a.id = p.account_id WHERE a.account_number = ? "
                "AND t.kind = ? AND t.business_date <= ?", [acc[name], tx_kind, on])
            bank.payments.reverse(self.manager, tid, reason)
        elif kind == "waive":
            name, code, on, reason = args
            (charge_id,) = bank.read_one(
                "SELECT c.id FROM charges c JOIN accounts a ON a.id = c.account_id "
                "WHERE a.account_number = ? AND c.code = ? AND c.business_date = ?",
                [acc[name], code, on])
            bank.charges.waive(self.manager, charge_id, reason=reason,
                               idempotency_key=f"sim-waive-{name}-{on}")
        elif kind == "rate":
            name, rate = args
            bank.accounts.set_interest_rate(self.manager, acc[name], rate)
        elif kind == "product":
            code, terms, tiers, effective = args
            bank.deposit_products.change(self.manager, code, terms=terms, tiers=tiers,
                                         effective_date=effective)
        elif kind == "standing_order":
            key, source, target, amount, day_of_month, retry_days = args
            bank.standing_orders.create(
                self.teller, source_account=acc[source], target_account=acc[target],
                amount=amount, frequency="monthly", day_of_month=day_of_month,
                start_date=bank.business_date, retry_days=retry_days, idempotency_key=key)
        elif kind == "term_deposit":
            name, source, amount, months = args
            opened = bank.term_deposits.open(
                self.teller, customer_id=self.customers[int(name[1])],
                linked_account=acc[source], amount=amount, term_months=months,
                product="sim_term", idempotency_key=f"sim-{name}")
            acc[name] = opened["account_number"]
        elif kind == "close_term_deposit":
            (name,) = args
            bank.term_deposits.close_early(self.teller, acc[name], reason="customer needs it",
                                           idempotency_key=f"sim-close-{name}")
        elif kind == "close":
            name, payout = args
            balance = bank.read_one("SELECT balance_cents FROM accounts WHERE account_number "
                                    "= ?", [acc[name]])[0]
            bank.payments.transfer(self.teller, acc[name], acc[payout], money(balance),
                                   idempotency_key=f"sim-empty-{name}")
            bank.accounts.close(self.teller, acc[name], payout_account=acc[payout])
        elif kind == "loan":
            customer, principal, months, rate = args
            lid = bank.loans.apply(self.teller, self.customers[customer], product="personal",
                                   principal=principal, term_months=months,
                                   purpose="household goods", monthly_income="5000")
            bank.loans.approve(self.manager, lid, annual_rate_percent=rate)
            bank.loans.disburse(self.teller, lid, acc[f"c{customer}.checking"],
                                idempotency_key=f"sim-loan-{customer}")
            self.loans.append(lid)
        elif kind == "repay":
            index, amount, key = args
            bank.loans.repay(self.teller, self.loans[index], amount, acc["c0.checking"],
                             idempotency_key=key)
        else:
            raise AssertionError(f"unknown step {kind}")

    def available(self) -> dict[str, int]:
        rows = dict(self.bank.read(
            "SELECT account_number, balance_cents - holds_cents FROM accounts "
            "WHERE customer_id IS NOT NULL AND status <> 'closed'"))
        return {name: rows[number] for name, number in self.accounts.items()
                if number in rows and name not in RESERVED}

    def close_through(self, day: dt.date) -> None:
        self.bank.end_of_day(self.system, until=day)
        assert self.bank.business_date == day + DAY


def scripted(day: dt.date) -> list[tuple]:
    """The year's fixed events on `day`."""
    steps = []
    for made, code, terms, tiers, effective in PRODUCT_CHANGES:
        if day == made:
            steps.append(("product", code, terms, tiers, effective))
    for made, key, source, target, amount, day_of_month, retry_days in STANDING_ORDERS:
        if day == made:
            steps.append(("standing_order", key, source, target, amount, day_of_month,
                          retry_days))
    if day == RATE_CHANGE[0]:
        steps.append(("rate", *RATE_CHANGE[1:]))
    if day == CLOSED[0]:
        steps.append(("close", *CLOSED[1:]))
    made, undone, name, amount = MISTAKE
    if day == made:
        steps.append(("deposit", name, amount, "sim-mistake"))
    if day == undone:
        steps.append(("reverse_last", name, "deposit", made, "deposited to the wrong account"))
    on, name, period_end = INTEREST_CORRECTED
    if day == on:
        steps.append(("reverse_last", name, "interest", period_end, "rate keyed in error"))
    on, name, code, charged = WAIVED
    if day == on:
        steps.append(("waive", name, code, charged, "first fee of the year waived"))
    down, up, name, balance = OVERDRAWN
    if day == down:
        steps.append(("withdraw_to", name, balance, f"sim-overdraw-{name}"))
    if day == up:
        steps.append(("deposit", name, "1500.00", f"sim-cover-{name}"))
    for down, name, balance, up, amount in SHORT_OF_FUNDS:
        if day == down:
            steps.append(("withdraw_to", name, balance, f"sim-short-{name}-{day}"))
        if day == up:
            steps.append(("deposit", name, amount, f"sim-refill-{name}-{day}"))
    for name, (opened, source, amount, months, closed) in TERM_DEPOSITS.items():
        if day == opened:
            steps.append(("term_deposit", name, source, amount, months))
        if day == closed:
            steps.append(("close_term_deposit", name))
    if day == SALARY[0]:
        steps.append(("deposit", *SALARY[1:], "sim-salary"))
    for disbursed, customer, principal, months, rate in LOANS:
        if day == disbursed:
            steps.append(("loan", customer, principal, months, rate))
    if day == MANUAL_REPAYMENT[0]:
        steps.append(("repay", MANUAL_REPAYMENT[1], MANUAL_REPAYMENT[2], "sim-repay"))
    return steps


def generated(day: dt.date, rng: random.Random, available: dict[str, int]) -> list[tuple]:
    """One to three random deposits, withdrawals or transfers between open accounts, never
    more than 40 % of what the account has available (so none is refused)."""
    steps = []
    names = sorted(available)
    for k in range(rng.randint(1, 3)):
        key = f"sim-{day}-{k}"
        kind = rng.choice(("deposit", "deposit", "withdraw", "transfer", "transfer"))
        name = rng.choice(names)
        if kind == "deposit":
            steps.append(("deposit", name, money(rng.randint(1_000, 200_000)), key))
            continue
        amount = min(available[name] * 2 // 5, 300_000)
        amount = rng.randint(1, amount) if amount > 0 else 0
        if amount <= 0:
            continue
        available[name] -= amount
        if kind == "withdraw":
            steps.append(("withdraw", name, money(amount), key))
        else:
            target = rng.choice([n for n in names if n != name])
            available[target] += amount
            steps.append(("transfer", name, target, money(amount), key))
    return steps


# -- what the two banks must agree on ------------------------------------------------------------
COMPARED = {
    "accounts": "SELECT id, balance_cents, holds_cents, status, interest_rate_percent, "
                "last_activity_date, closed_date FROM accounts ORDER BY id",
    "transactions": "SELECT id, kind, amount_cents, business_date, reverses_id, memo, "
                    "source_account, target_account FROM transactions ORDER BY id",
    "postings": "SELECT transaction_id, account_id, amount_cents FROM postings ORDER BY id",
    "interest_accruals": "SELECT * FROM interest_accruals ORDER BY ALL",
    "interest_postings": "SELECT * FROM interest_postings ORDER BY ALL",
    "loans": "SELECT id, status, principal_outstanding_cents, days_past_due, arrears_bucket "
             "FROM loans ORDER BY id",
    "loan_schedule": "SELECT * FROM loan_schedule ORDER BY ALL",
    "overdraft_interest_postings": "SELECT * FROM overdraft_interest_postings ORDER BY ALL",
    "charges": "SELECT * FROM charges ORDER BY id",
    "standing_orders": "SELECT id, executed_count, status, finished_date FROM standing_orders "
                       "ORDER BY id",
    "standing_order_runs": "SELECT * FROM standing_order_runs ORDER BY ALL",
    # Every counter end of day keeps, whatever columns later issues add.
    "eod_runs": "SELECT * EXCLUDE (actor, started_at, finished_at) FROM eod_runs ORDER BY ALL",
}


def snapshot(sim) -> dict:
    """The COMPARED rows, account numbers (random in each bank) replaced by their names."""
    names = {number: name for name, number in sim.accounts.items()}

    def plain(value):
        if isinstance(value, str):
            for number, name in names.items():
                value = value.replace(number, name)
        return value
    return {table: [tuple(plain(v) for v in row) for row in sim.bank.read(sql)]
            for table, sql in COMPARED.items()}


@pytest.fixture(scope="module")
def year(tmp_path_factory):
    """Both banks after the simulated year: (day by day, catch-up). The day-by-day bank is
    checked after every day here (verify, trial balance), since only here is there a day."""
    folder = tmp_path_factory.mktemp("simulated_year")
    clock = Clock(at(FIRST, "09:00"))
    daily, catch_up = Sim(folder / "daily.duckdb", clock), Sim(folder / "catch_up.duckdb", clock)
    rng = random.Random(SEED)
    days = [FIRST + k * DAY for k in range((LAST - FIRST).days + 1)]
    active = {day for day in days if day < QUIET_FROM and rng.random() < ACTIVITY_DAY_CHANCE}
    active |= {day for day in days if scripted(day)} | {FIRST}
    try:
        for sim in (daily, catch_up):
            sim.set_up()
        for day in days:
            clock.now = at(day, "12:00")
            if day in active:
                # Both banks have closed the same days: the catch-up bank closes everything
                # up to the eve of an activity day before the activity.
                if day != FIRST:
                    catch_up.close_through(day - DAY)
                for step in scripted(day):
                    daily.run(step)
                    catch_up.run(step)
                # Drawn from the day-by-day bank's balances; the other bank must take them too.
                for step in generated(day, rng, daily.available()) if day < QUIET_FROM else ():
                    daily.run(step)
                    catch_up.run(step)
            clock.now = at(day, "23:45")
            daily.close_through(day)
            assert daily.bank.audit.verify() == [], day
            trial = daily.bank.reports.trial_balance(daily.system)
            assert int(trial["balance_cents"].sum()) == 0, day
        catch_up.close_through(LAST)
        yield daily, catch_up, active
    finally:
        daily.bank.close()
        catch_up.bank.close()


def test_the_year_ran_as_scripted(year):
    """The simulation did what it claims, so that the checks below cannot pass on an empty
    year."""
    daily, catch_up, active = year
    bank, acc = daily.bank, daily.accounts
    kinds = dict(bank.read("SELECT kind, count(*) FROM transactions GROUP BY 1"))
    for kind in ("deposit", "withdrawal", "transfer", "interest", "reversal", "fee",
                 "overdraft_interest", "loan_disbursement", "loan_repayment"):
        assert kinds.get(kind, 0) > 0, kind
    assert bank.read_one("SELECT count(*) FROM eod_runs")[0] == 365
    assert bank.business_date == LAST + DAY
    savings = bank.deposit_products.get(daily.manager, "savings", on=FIRST)
    assert (savings["interest_rate_percent"], savings["tiers"], savings["withholding_tax_bp"]) \
        == tuple(MIGRATED["savings"].values())
    assert bank.read_one("SELECT status FROM accounts WHERE account_number = ?",
                         [acc[CLOSED[1]]])[0] == "closed"
    # Both loans ran to their end through end-of-day collection (and one manual payment).
    assert [row[0] for row in bank.read("SELECT status FROM loans ORDER BY id")] == [
        "paid_off", "paid_off"]
    # Term deposits: c2's matured and was paid out; c0's was closed early with a penalty.
    deposits = {row[0]: row[1:] for row in bank.read(
        "SELECT a.account_number, t.status, t.closed_date, t.penalty_cents > 0 FROM "
        "term_deposits t JOIN accounts a ON a.id = t.account_id")}
    assert deposits == {acc["c2.term"]: ("matured", dt.date(YEAR, 7, 31), False),
                        acc["c0.term"]: ("closed_early", TERM_DEPOSITS["c0.term"][4], True)}
    # Quarterly posting: the quarterly product's account was paid at quarter ends only.
    quarterly = [row[0] for row in bank.read(
        "SELECT business_date FROM transactions WHERE kind = 'interest' AND target_account = ? "
        "ORDER BY 1", [acc["c3.savings"]])]
    assert quarterly == [dt.date(YEAR, m, 30 if m in (6, 9) else 31) for m in (3, 6, 9, 12)]
    # Fees: the current account's maintenance fee every month, March's waived; an overdraft
    # fee for October; the missed standing order's fee once.
    charges = bank.read(
        "SELECT a.account_number, c.code, c.business_date, c.status, c.amount_cents "
        "FROM charges c JOIN accounts a ON a.id = c.account_id ORDER BY ALL")
    maintenance = [(d, st) for n, code, d, st, _ in charges
                   if n == acc["c0.checking"] and code == "maintenance"]
    assert maintenance == [(month_end(m), "waived" if m == 3 else "charged")
                           for m in range(1, 13)]
    assert [(d, st, c) for n, code, d, st, c in charges if code == "overdraft"] == [
        (dt.date(YEAR, 10, 31), "charged", 500)]
    assert [(n, d, c) for n, code, d, _, c in charges if code == "standing_order_failed"] == [
        (acc["c5.checking"], dt.date(YEAR, 9, 17), 300)]
    # Standing orders: the 31st's runs on each month's last day; the 15th's fails on 15 June
    # and is paid on the 16th, and in September fails, fails and is missed.
    runs = bank.read(
        "SELECT o.idempotency_key, r.due_date, r.attempt_date, r.outcome "
        "FROM standing_order_runs r JOIN standing_orders o ON o.id = r.order_id ORDER BY ALL")
    assert [(d, a, o) for k, d, a, o in runs if k == "sim-so-31st"] == [
        (month_end(m), month_end(m), "executed") for m in range(1, 13)]
    fifteenth = [(d, a, o) for k, d, a, o in runs if k == "sim-so-15th"]
    june, september = dt.date(YEAR, 6, 15), dt.date(YEAR, 9, 15)
    assert [r for r in fifteenth if r[0] == june] == [
        (june, june, "failed"), (june, june + DAY, "executed")]
    assert [r for r in fifteenth if r[0] == september] == [
        (september, september, "failed"), (september, september + DAY, "failed"),
        (september, september + 2 * DAY, "missed")]
    assert sum(o == "executed" for _, _, o in fifteenth) == 11
    # The catch-up bank really closed several days at once: December in one run.
    gaps = sorted(active)
    assert max((b - a).days for a, b in zip(gaps, gaps[1:] + [LAST + DAY])) >= 31
    assert catch_up.bank.audit.verify() == []


def month_end(month: int) -> dt.date:
    return dt.date(YEAR, month, calendar.monthrange(YEAR, month)[1])


def test_day_by_day_equals_catch_up(year):
    daily, catch_up, _ = year
    assert sorted(daily.accounts) == sorted(catch_up.accounts)
    left, right = snapshot(daily), snapshot(catch_up)
    for name in COMPARED:
        assert left[name] == right[name], name


def month_ends(bank) -> dict[tuple[int, int, int], int]:
    """{(account id, year, month): ledger balance at the month's last business date}, summed
    here from postings by value date (business date)."""
    rows = bank.read(
        "WITH m AS (SELECT p.account_id, year(t.business_date) AS y, month(t.business_date) "
        "AS mo, sum(p.amount_cents) AS moved FROM postings p JOIN transactions t "
        "ON t.id = p.transaction_id GROUP BY ALL) "
        "SELECT account_id, y, mo, CAST(sum(moved) OVER (PARTITION BY account_id ORDER BY y, mo) "
        "AS BIGINT) FROM m")
    return {(a, y, mo): total for a, y, mo, total in rows}


def test_every_statement_reconciles_and_chains(year):
    daily, _, _ = year
    bank, system = daily.bank, daily.system
    ends = month_ends(bank)
    checked = 0
    for name, number in sorted(daily.accounts.items()):
        account_id, opened = bank.read_one(
            "SELECT id, opened_date FROM accounts WHERE account_number = ?", [number])
        previous_closing, balance = 0, 0
        for month in range(opened.month, 13):
            s = bank.reports.statement(system, number, YEAR, month)
            balance = ends.get((account_id, YEAR, month), balance)
            assert s.reconciles(), (name, month)
            assert s.opening_cents == previous_closing, (name, month)
            assert s.closing_cents == balance, (name, month)
            assert (s.interest_gross_cents - s.tax_withheld_cents == s.interest_cents), (
                name, month)
            previous_closing = s.closing_cents
            checked += 1
        assert previous_closing == bank.read_one(
            "SELECT balance_cents FROM accounts WHERE id = ?", [account_id])[0], name
    assert checked == sum(13 - opened.month for (opened, *_) in TERM_DEPOSITS.values()) + 12 * (
        len(daily.accounts) - len(TERM_DEPOSITS))


# Per customer, from the ledger: the year's interest transactions touching the customer's
# accounts and the reversals of such transactions, with gross = what GL5000 paid, tax = what
# GL2100 received, net = what the customer's accounts received.
LEDGER_INTEREST = f"""
SELECT c.id,
       coalesce(sum(CASE WHEN a.account_number = '{INTERNAL['interest_expense']}'
                    THEN -p.amount_cents END), 0),
       coalesce(sum(CASE WHEN a.account_number = '{INTERNAL['withholding_tax_payable']}'
                    THEN p.amount_cents END), 0),
       coalesce(sum(CASE WHEN a.customer_id = c.id THEN p.amount_cents END), 0)
FROM customers c
JOIN transactions t ON t.id IN (
    SELECT q.transaction_id FROM postings q JOIN accounts b ON b.id = q.account_id
    WHERE b.customer_id = c.id)
LEFT JOIN transactions o ON o.id = t.reverses_id
JOIN postings p ON p.transaction_id = t.id
JOIN accounts a ON a.id = p.account_id
WHERE year(t.business_date) = ? AND (t.kind = 'interest' OR o.kind = 'interest')
GROUP BY 1
"""


def test_every_certificate_equals_the_years_postings(year):
    daily, _, _ = year
    bank, system = daily.bank, daily.system
    ledger = {cid: (int(g), int(t), int(n)) for cid, g, t, n in
              bank.read(LEDGER_INTEREST, [YEAR])}
    # Early-closure penalties: what `penalty` transactions took from the customer's accounts.
    penalties = {cid: int(-total) for cid, total in bank.read(
        "SELECT a.customer_id, sum(p.amount_cents) FROM postings p JOIN transactions t "
        "ON t.id = p.transaction_id JOIN accounts a ON a.id = p.account_id "
        "WHERE t.kind = 'penalty' AND a.customer_id IS NOT NULL "
        "AND year(t.business_date) = ? GROUP BY 1", [YEAR])}
    assert list(penalties) == [daily.customers[0]] and penalties[daily.customers[0]] > 0
    for cid in daily.customers:
        c = bank.reports.interest_certificate(system, cid, YEAR)
        gross, tax, net = ledger.get(cid, (0, 0, 0))
        assert (c.interest_paid_cents, c.tax_withheld_cents, c.penalties_cents) == (
            gross, tax, penalties.get(cid, 0)), cid
        assert gross - tax == net, cid
        assert int(c.accounts["interest_paid_cents"].sum()) == gross
        assert gross > 0 and tax > 0, cid
    # The corrected posting counts: its customer's certificate is the postings less the
    # reversed one.
    _, name, _ = INTEREST_CORRECTED
    reversed_gross = bank.read_one(
        "SELECT o.amount_cents FROM transactions t JOIN transactions o ON o.id = t.reverses_id "
        "WHERE o.kind = 'interest' AND o.target_account = ?", [daily.accounts[name]])[0]
    posted = bank.read_one(
        "SELECT sum(amount_cents) FROM transactions WHERE kind = 'interest' "
        "AND target_account = ?", [daily.accounts[name]])[0]
    cid = daily.customers[int(name[1])]
    certificate = bank.reports.interest_certificate(system, cid, YEAR)
    assert certificate.interest_paid_cents == posted - reversed_gross > 0


# The 'savings' product as the migration at the first open makes it (db.py): the rate a savings
# account opened with before products (2.00 %), and the withholding tax setting of that moment.
# The 'checking' product pays no interest.
MIGRATED = {"savings": {"rate": D("2.00"), "tiers": [], "tax_bp": 0},
            "checking": {"rate": D(0), "tiers": [], "tax_bp": 0}}


def terms_on(code: str, day: dt.date) -> dict:
    """The simulation's own record of a product's terms on `day`: rate, tiers [(from cents,
    rate)] and withholding tax in basis points."""
    terms = MIGRATED.get(code)
    for product, _, given, tiers in PRODUCTS:
        if product == code:
            terms = {"rate": D(given.get("interest_rate_percent", "0")),
                     "tiers": [(cents(b), D(r)) for b, r in tiers],
                     "tax_bp": given.get("withholding_tax_bp", 0)}
    for _, product, given, tiers, effective in PRODUCT_CHANGES:
        if product == code and effective <= day:
            terms = dict(terms)
            if "interest_rate_percent" in given:
                terms["rate"] = D(given["interest_rate_percent"])
            if "withholding_tax_bp" in given:
                terms["tax_bp"] = given["withholding_tax_bp"]
            if tiers is not None:
                terms["tiers"] = [(cents(b), D(r)) for b, r in tiers]
    return terms


def product_of(name: str) -> str:
    return "sim_term" if name in TERM_DEPOSITS else ACCOUNTS[name][0]


def rate_on(name: str, day: dt.date, balance_cents: int) -> Decimal:
    """The yearly rate `name` earns on a day's end-of-day balance: its own negotiated rate,
    else its product's tier for the balance (on the whole balance), else the base rate."""
    product, _, own, _ = ACCOUNTS[name]
    if own is not None:
        return D(RATE_CHANGE[2]) if name == RATE_CHANGE[1] and day >= RATE_CHANGE[0] else D(own)
    terms = terms_on(product, day)
    rate = terms["rate"]
    for start, tier_rate in terms["tiers"]:
        if balance_cents >= start:
            rate = tier_rate
    return rate


def end_of_day_balances(bank, number, system_user) -> dict[dt.date, tuple[int, int]]:
    """{business date: (balance its accrual sees, balance after the day)} of one account:
    period-end postings of end of day (interest, overdraft interest, fees on a month's last
    day) and term deposit maturities (step 4) come after that day's accrual; everything else
    before it."""
    rows = bank.read(
        "SELECT t.business_date, sum(p.amount_cents) FILTER (WHERE NOT late), "
        "sum(p.amount_cents) FILTER (WHERE late) FROM postings p "
        "JOIN (SELECT id, business_date, (kind IN ('interest', 'overdraft_interest', 'fee') "
        "AND business_date = last_day(business_date) AND actor = ?) OR id IN (SELECT "
        "unnest([interest_transaction_id, payout_transaction_id]) FROM term_deposits "
        "WHERE status = 'matured') AS late FROM transactions) t ON t.id = p.transaction_id "
        "JOIN accounts a ON a.id = p.account_id WHERE a.account_number = ? GROUP BY 1",
        [system_user, number])
    moved = {day: (int(before or 0), int(after or 0)) for day, before, after in rows}
    out, balance = {}, 0
    for k in range((LAST - FIRST).days + 1):
        day = FIRST + k * DAY
        before, after = moved.get(day, (0, 0))
        balance += before
        accrual_balance = balance
        balance += after
        out[day] = (accrual_balance, balance)
    return out


def test_interest_equals_balance_times_rate(year):
    """Each account's interest posted in the year (reversals left out) equals the sum over its
    days of end-of-day balance x the rate of the day for that balance / 365 (every product
    here counts actual/365 or actual/actual, which is 1/365 in 2027), from postings and the
    script's own record of rates and tiers: the whole cents of it for accounts still open (the
    sub-cent part is carried into 2028), half-up for the account closed mid-year (a close pays
    the remainder). Overdraft interest the same on negative balances at the product's 14 %."""
    daily, _, _ = year
    bank = daily.bank
    earning, overdrawn = 0, 0
    for name, (opened, _, amount, months, closed_on) in TERM_DEPOSITS.items():
        # The contract rate on the principal for each night from the start to maturity or
        # the early closure (the closing day earns nothing), half-up once.
        end = closed_on or bank.read_one(
            "SELECT maturity_date FROM term_deposits t JOIN accounts a ON a.id = t.account_id "
            "WHERE a.account_number = ?", [daily.accounts[name]])[0]
        exact = D(cents(amount)) * TERM_RATE / 100 * (end - opened).days / 365
        gross = bank.read_one("SELECT sum(amount_cents) FROM transactions WHERE kind = "
                              "'interest' AND target_account = ?", [daily.accounts[name]])[0]
        assert gross == exact.quantize(D(1), rounding=ROUND_HALF_UP), (name, exact)
    for name, number in sorted(daily.accounts.items()):
        if name in TERM_DEPOSITS:
            continue
        closed = name == CLOSED[1]
        credit, owed = D(0), D(0)
        for day, (balance, _) in end_of_day_balances(bank, number,
                                                     daily.system.username).items():
            if closed and day >= CLOSED[0]:
                break
            if balance > 0:
                credit += D(balance) * rate_on(name, day, balance) / 100 / 365
            elif balance < 0 and ACCOUNTS[name][0] == "sim_current":
                owed += D(-balance) * D("14.00") / 100 / 365
        gross, overdraft = bank.read_one(
            "SELECT coalesce(sum(amount_cents) FILTER (WHERE kind = 'interest' "
            "AND target_account = ?), 0), coalesce(sum(amount_cents) FILTER (WHERE kind = "
            "'overdraft_interest' AND source_account = ?), 0) FROM transactions",
            [number, number])
        expected = credit.quantize(D(1), rounding=ROUND_HALF_UP if closed else ROUND_DOWN)
        assert (gross, overdraft) == (expected, owed.quantize(D(1), rounding=ROUND_DOWN)), (
            name, credit, owed)
        earning += gross > 0
        overdrawn += overdraft > 0
    assert (earning, overdrawn) == (6, 1)


def test_tax_is_withheld_at_the_products_rate_of_the_posting_day(year):
    """Every interest posting's GL2100 leg is its gross (less an early closure's penalty: tax
    is withheld on the interest paid) x the account's product's withholding rate in force on
    the posting day, half-up to the cent (the 'savings' product's rate went from 15 % to 20 %
    on 1 July)."""
    daily, _, _ = year
    bank = daily.bank
    names = {number: name for name, number in daily.accounts.items()}
    leg = ("coalesce((SELECT sum(p.amount_cents) FROM postings p JOIN accounts a ON a.id = "
           "p.account_id WHERE p.transaction_id = {tx} AND a.account_number = ?), 0)")
    rows = bank.read(
        f"SELECT t.target_account, t.business_date, t.amount_cents, {leg.format(tx='t.id')}, "
        # An early closure's penalty: tax is withheld on the interest actually paid.
        f"coalesce((SELECT sum(x.amount_cents) FROM transactions x WHERE x.kind = 'penalty' "
        f"AND x.source_account = t.target_account AND x.business_date = t.business_date), 0) "
        "FROM transactions t WHERE t.kind = 'interest' ORDER BY t.id",
        [INTERNAL["withholding_tax_payable"]])
    rates = set()
    for number, day, gross, tax, penalty in rows:
        bp = terms_on(product_of(names[number]), day)["tax_bp"]
        rates.add(bp)
        assert (penalty > 0) == (names[number] == "c0.term"), names[number]
        assert tax == (D(gross - penalty) * bp / 10000).quantize(
            D(1), rounding=ROUND_HALF_UP), (names[number], day)
    assert rates == {1500, 2000}
