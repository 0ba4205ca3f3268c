"""Issue 10: a simulated year on a small bank.

Six customers with checking and savings accounts, two loans, and a year of activity drawn from
a seeded generator (deposits, withdrawals, transfers) around scripted events (a mistaken
deposit and its reversal, a manual loan payment, a rate change, a change of the withholding tax
rate, an interest posting corrected by a reversal, a savings account closed mid-year) run
through the calendar year 2027 with end of day. Checked:

- after every day: `verify()` is empty and the trial balance sums to zero;
- at the end: every statement of every account reconciles (opening + movements = closing, and
  the closing equals the ledger's balance at the month's end, summed here by SQL) and chains
  (each month opens at the last one's closing); every customer's interest certificate for the
  year equals that year's interest postings (gross from GL5000's legs, tax from GL2100's, net
  from the customer's own legs, reversals included), summed here by SQL; the interest each
  savings account was paid equals its end-of-day balances x its rate / 365, summed here with
  Decimal, to the cent;
- end of day day by day equals catch-up: a second bank receives the same activity on the same
  business days, but closes the days between activity days in one run each (December, with no
  activity, in one run of 31 days); both end with the same ledger, the same accruals and
  interest postings and the same end-of-day counters.

Activity needs an open business date (it is value-dated on it), so the catch-up bank cannot
close the whole year in one run: it closes everything between two activity days at once.
Both banks read one clock that the test moves: noon for the day's activity, 23:45 to close.
"""
from __future__ import annotations

import datetime as dt
import random
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal

import pytest

import bankms
from bankms.bank import INTERNAL
from conftest import Clock, employee, make_customer

pytestmark = pytest.mark.slow

D = Decimal
DAY = dt.timedelta(days=1)
UTC = dt.timezone.utc
YEAR = 2027
FIRST, LAST = dt.date(YEAR, 1, 1), dt.date(YEAR, 12, 31)
SEED = 20_270_101
# No generated activity after this day: the catch-up bank closes December in one run.
QUIET_FROM = dt.date(YEAR, 12, 1)
ACTIVITY_DAY_CHANCE = 0.3

# Customers and their accounts: (checking opening deposit, savings opening deposit, savings
# rate). Names "c<i>.checking" / "c<i>.savings" stand for the accounts in both banks.
CUSTOMERS = [
    ("4000.00", "12000.00", "1.50"),
    ("2500.00", "8000.00", "2.00"),
    ("1800.00", "25000.00", "0.75"),
    ("3200.00", "15000.00", "1.25"),
    ("900.00", "6000.00", "1.80"),
    ("2200.00", "3000.00", "1.00"),
]
TAX_BP = {FIRST: 1500, dt.date(YEAR, 7, 1): 2000}      # withholding tax from that day on
RATE_CHANGE = (dt.date(YEAR, 4, 15), "c2.savings", "1.90")
CLOSED = (dt.date(YEAR, 8, 17), "c4.savings", "c4.checking")
MISTAKE = (dt.date(YEAR, 3, 3), dt.date(YEAR, 3, 5), "c1.checking", "250.00")
INTEREST_CORRECTED = (dt.date(YEAR, 5, 10), "c3.savings", dt.date(YEAR, 4, 30))
LOANS = [  # (disbursed, customer, principal, months, rate)
    (dt.date(YEAR, 2, 10), 0, "6000.00", 9, "12"),
    (dt.date(YEAR, 5, 5), 5, "3000.00", 6, "9.5"),
]
MANUAL_REPAYMENT = (dt.date(YEAR, 6, 21), 0, "500.00")


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
        bank, system = self.bank, self.system
        bank.settings.set(system, "interest_withholding_tax_bp", str(TAX_BP[FIRST]))
        for i, (checking, savings, rate) in enumerate(CUSTOMERS):
            cid = make_customer(bank, name=f"Sim Customer {i}", national_id=f"SIM{i:04d}")
            self.customers.append(cid)
            for kind, amount, kw in (("checking", checking, {}),
                                     ("savings", savings, {"interest_rate": rate})):
                number = bank.accounts.open(system, cid, kind=kind, **kw)
                self.accounts[f"c{i}.{kind}"] = number
                bank.payments.deposit(system, number, amount,
                                      idempotency_key=f"sim-open-c{i}-{kind}")

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
        elif kind == "rate":
            name, rate = args
            bank.accounts.set_interest_rate(self.manager, acc[name], rate)
        elif kind == "tax":
            (bp,) = args
            bank.settings.set(self.manager, "interest_withholding_tax_bp", str(bp))
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
        return {name: rows[number] for name, number in self.accounts.items() if number in rows}

    def close_through(self, day: dt.date) -> None:
        self.bank.end_of_day(self.system, until=day)
        assert self.bank.business_date == day + DAY


def scripted(day: dt.date) -> list[tuple]:
    """The year's fixed events on `day`."""
    steps = []
    for start, bp in TAX_BP.items():
        if day == start and start != FIRST:
            steps.append(("tax", bp))
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
    """The simulation did what it claims: so that the checks below cannot pass on an empty
    year."""
    daily, catch_up, active = year
    bank = daily.bank
    kinds = dict(bank.read("SELECT kind, count(*) FROM transactions GROUP BY 1"))
    for kind in ("deposit", "withdrawal", "transfer", "interest", "reversal",
                 "loan_disbursement", "loan_repayment"):
        assert kinds.get(kind, 0) > 0, kind
    assert bank.read_one("SELECT count(*) FROM eod_runs")[0] == 365
    assert bank.business_date == LAST + DAY
    assert bank.read_one("SELECT status FROM accounts WHERE account_number = ?",
                         [daily.accounts[CLOSED[1]]])[0] == "closed"
    # Both loans ran to their end through end-of-day collection (and one manual payment).
    assert [row[0] for row in bank.read("SELECT status FROM loans ORDER BY id")] == [
        "paid_off", "paid_off"]
    # The catch-up bank really closed several days at once: December in one run.
    gaps = sorted(active)
    assert max((b - a).days for a, b in zip(gaps, gaps[1:] + [LAST + DAY])) >= 31
    assert catch_up.bank.audit.verify() == []


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
    assert checked == 12 * len(daily.accounts)


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
    for cid in daily.customers:
        c = bank.reports.interest_certificate(system, cid, YEAR)
        gross, tax, net = ledger.get(cid, (0, 0, 0))
        assert (c.interest_paid_cents, c.tax_withheld_cents, c.penalties_cents) == (
            gross, tax, 0), cid
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


def rate_on(name: str, day: dt.date) -> Decimal:
    index = int(name[1])
    rate = D(CUSTOMERS[index][2])
    if name == RATE_CHANGE[1] and day >= RATE_CHANGE[0]:
        rate = D(RATE_CHANGE[2])
    return rate


def test_savings_interest_equals_balance_times_rate(year):
    """Each savings account's interest posted in the year (reversals left out) equals the sum
    over its days of end-of-day balance x rate / 365, from postings and the script's rates:
    the whole cents of it for accounts still open (the sub-cent part is carried into 2028),
    half-up for the account closed mid-year (a close pays out the remainder)."""
    daily, _, _ = year
    bank = daily.bank
    for name, number in sorted(daily.accounts.items()):
        if not name.endswith("savings"):
            continue
        # The end-of-day balance that day's accrual sees: month-end interest, posted with the
        # day's business date, comes after the accrual.
        rows = bank.read(
            "SELECT t.business_date, sum(p.amount_cents) FILTER (WHERE NOT month_end), "
            "sum(p.amount_cents) FILTER (WHERE month_end) FROM postings p "
            "JOIN (SELECT id, business_date, kind = 'interest' AND business_date = "
            "last_day(business_date) AS month_end FROM transactions) t "
            "ON t.id = p.transaction_id JOIN accounts a ON a.id = p.account_id "
            "WHERE a.account_number = ? GROUP BY 1", [number])
        moved = {day: int(before or 0) for day, before, _ in rows}
        posted_at_month_end = {day: int(after or 0) for day, _, after in rows}
        closed = name == CLOSED[1]
        exact, balance = D(0), 0
        for k in range((LAST - FIRST).days + 1):
            day = FIRST + k * DAY
            if closed and day >= CLOSED[0]:
                break
            balance += int(moved.get(day, 0))
            if balance > 0:
                exact += D(balance) * rate_on(name, day) / 100 / 365
            balance += int(posted_at_month_end.get(day, 0))
        gross = bank.read_one(
            "SELECT sum(amount_cents) FROM transactions WHERE kind = 'interest' "
            "AND target_account = ?", [number])[0]
        expected = exact.quantize(D(1), rounding=ROUND_HALF_UP if closed else ROUND_DOWN)
        assert gross == expected, name
