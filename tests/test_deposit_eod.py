"""End of day on deposit products (issue 10, bankms/services/deposits/eod.py): the pure rules (day count,
tiers, posting periods) against values computed here with Decimal, then whole banks: tiered
accrual, posting periods, overdraft interest, tax at the product's rate, product fees, dormancy
per product, a product change dated tomorrow, a rerun, verify() and the trial balance."""
from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal

import pytest

from bankms.services.deposits import eod as deposit_eod
from bankms.bank import INTERNAL

# Money moves or rules are checked here: each test runs on DuckDB and on PostgreSQL.
pytestmark = pytest.mark.engines

D = Decimal
DAY = dt.timedelta(days=1)
MICRO = D(1_000_000)


def micro_half_up(value: Decimal) -> int:
    """An amount of money (units, not cents) -> micro-cents, half-up away from zero."""
    return int((value * 100 * MICRO).quantize(D(1), rounding=ROUND_HALF_UP))


# day count, day, the night's share of a year (computed by hand)
FRACTIONS = [
    ("actual/365", dt.date(2026, 3, 10), D(1) / 365),
    ("actual/365", dt.date(2028, 3, 10), D(1) / 365),
    ("actual/actual", dt.date(2026, 3, 10), D(1) / 365),
    ("actual/actual", dt.date(2028, 3, 10), D(1) / 366),
    ("30/360", dt.date(2026, 3, 10), D(1) / 360),
    ("30/360", dt.date(2026, 3, 30), D(0)),           # 30th -> 31st counts nothing
    ("30/360", dt.date(2026, 3, 31), D(1) / 360),     # 31st -> 1st counts one day
    ("30/360", dt.date(2026, 2, 28), D(3) / 360),     # February's end makes up the month
    ("30/360", dt.date(2028, 2, 29), D(2) / 360),
    ("30/360", dt.date(2028, 2, 28), D(1) / 360),
    ("30/360", dt.date(2026, 12, 31), D(1) / 360),
]


@pytest.mark.parametrize("day_count, day, expected", FRACTIONS)
def test_day_fraction(day_count, day, expected):
    num, den = deposit_eod.day_fraction(day_count, day)
    assert D(num) / D(den) == expected


@pytest.mark.parametrize("day_count", deposit_eod.DAY_COUNTS)
@pytest.mark.parametrize("year", [2026, 2028])
def test_a_year_of_days_is_one_year(day_count, year):
    days = [dt.date(year, 1, 1) + k * DAY for k in range(366 if year == 2028 else 365)]
    total = sum(D(n) / D(d) for n, d in (deposit_eod.day_fraction(day_count, x) for x in days))
    expected = D(366) / 365 if (day_count, year) == ("actual/365", 2028) else D(1)
    assert abs(total - expected) < D("1e-20")


# balance cents, rate %, day count, day, expected micro-cents (balance x rate x share, half-up)
ACCRUALS = [
    (1_000_000, "2.00", "actual/365", dt.date(2026, 3, 10),
     micro_half_up(D("10000.00") * D("0.02") / 365)),
    (1_234_567, "2.75", "actual/actual", dt.date(2028, 3, 10),
     micro_half_up(D("12345.67") * D("0.0275") / 366)),
    (1_234_567, "2.7512", "30/360", dt.date(2026, 2, 28),
     micro_half_up(D("12345.67") * D("0.027512") * 3 / 360)),
    (1_000_000, "2.00", "30/360", dt.date(2026, 1, 30), 0),
    (-3_000_000, "18.00", "actual/365", dt.date(2026, 3, 10),
     -micro_half_up(D("30000.00") * D("0.18") / 365)),
    (1, "0.0001", "actual/365", dt.date(2026, 3, 10), 0),
]


@pytest.mark.parametrize("balance, rate, day_count, day, expected", ACCRUALS)
def test_accrual_micro_cents(balance, rate, day_count, day, expected):
    assert deposit_eod.accrual_micro_cents(balance, rate, day_count, day) == expected


TIERS = [(0, D("0.50")), (1_000_000, D("1.50")), (5_000_000, D("2.25"))]


# tiers, balance, expected rate
TIER_CASES = [
    (TIERS, 999_999, D("0.50")),
    (TIERS, 1_000_000, D("1.50")),     # the tier's own boundary belongs to it
    (TIERS, 4_999_999, D("1.50")),
    (TIERS, 5_000_000, D("2.25")),
    (TIERS[1:], 999_999, D("1.00")),   # below the lowest tier: the base rate
    ([], 5_000_000, D("1.00")),
    (list(reversed(TIERS)), 6_000_000, D("2.25")),
]


@pytest.mark.parametrize("tiers, balance, expected", TIER_CASES)
def test_tier_rate(tiers, balance, expected):
    assert deposit_eod.tier_rate(tiers, balance, D("1.00")) == expected


# posting period, day, period end?, period start
PERIODS = [
    ("monthly", dt.date(2026, 1, 30), False, dt.date(2026, 1, 1)),
    ("monthly", dt.date(2026, 1, 31), True, dt.date(2026, 1, 1)),
    ("monthly", dt.date(2028, 2, 29), True, dt.date(2028, 2, 1)),
    ("quarterly", dt.date(2026, 1, 31), False, dt.date(2026, 1, 1)),
    ("quarterly", dt.date(2026, 3, 31), True, dt.date(2026, 1, 1)),
    ("quarterly", dt.date(2026, 6, 30), True, dt.date(2026, 4, 1)),
    ("quarterly", dt.date(2026, 11, 30), False, dt.date(2026, 10, 1)),
    ("yearly", dt.date(2026, 6, 30), False, dt.date(2026, 1, 1)),
    ("yearly", dt.date(2026, 12, 31), True, dt.date(2026, 1, 1)),
    ("maturity", dt.date(2026, 12, 31), False, dt.date(2026, 12, 31)),
]


@pytest.mark.parametrize("period, day, ends, start", PERIODS)
def test_posting_periods(period, day, ends, start):
    assert deposit_eod.is_period_end(period, day) is ends
    assert deposit_eod.period_start(period, day) == start
    assert (period in deposit_eod.periods_ending(day)) is ends


# -- Whole banks -----------------------------------------------------------------------------
# The bank starts on a fixed date (START, shortly before a year end) so that month, quarter
# and year ends fall on known days; the clock stands years ahead so those days have ended.

START = dt.date(2030, 12, 20)
CENT = D("0.01")


@pytest.fixture
def fixed_bank(bank, years_ahead):
    def move(uow):
        uow.execute("UPDATE settings SET value = ? WHERE key = 'business_date'",
                    [START.isoformat()])
    bank.write(move)
    bank.state.business_date = START
    return bank


def add_product(bank, code, kind="savings", *, rate="0", day_count="actual/365",
                period="monthly", tiers=(), effective=None, **terms):
    """A deposit product (or a new version of one, when `code` exists) written as the
    deposit_products service stores it; terms in cents or percent as in the table."""
    system = bank.system_actor()

    def fn(uow):
        row = uow.fetchone("SELECT id FROM deposit_products WHERE code = ?", [code])
        if row is None:
            pid = uow.fetchone("SELECT nextval('deposit_product_id_seq')")[0]
            uow.execute("INSERT INTO deposit_products (id, code, name, kind, active, created_at, "
                        "created_by) VALUES (?, ?, ?, ?, TRUE, now(), 'test')",
                        [pid, code, code.title(), kind])
        else:
            pid = row[0]
        day = effective or bank.business_date
        names = ["product_id", "effective_date", "interest_rate_percent", "day_count",
                 "posting_period", "changed_at", "changed_by", *terms]
        uow.execute(f"INSERT INTO deposit_product_versions ({', '.join(names)}) VALUES "
                    f"(?, ?, CAST(? AS DECIMAL(9, 4)), ?, ?, now(), 'test'"
                    + ", ?" * len(terms) + ")",
                    [pid, day, rate, day_count, period, *terms.values()])
        for from_cents, tier_rate in tiers:
            uow.execute("INSERT INTO deposit_product_tiers VALUES (?, ?, ?, "
                        "CAST(? AS DECIMAL(9, 4)))", [pid, day, from_cents, tier_rate])
        return pid
    del system
    return bank.write(fn)


def open_on(bank, product_id, kind="savings", amount="0", overdraft=None):
    """An account of the product, funded with `amount` on the business date."""
    from conftest import make_customer
    system = bank.system_actor()
    cid = make_customer(bank)
    extra = {"overdraft_limit": overdraft} if overdraft else {}
    number = bank.accounts.open(system, cid, kind=kind, **extra)
    bank.write(lambda uow: uow.execute(
        "UPDATE accounts SET product_id = ?, rate_negotiated = FALSE, interest_rate_percent = 0 "
        "WHERE account_number = ?", [product_id, number]))
    move(bank, number, amount)
    return number


def move(bank, number, amount):
    amount = D(amount)
    if amount > 0:
        bank.payments.deposit(bank.system_actor(), number, str(amount))
    elif amount < 0:
        bank.payments.withdraw(bank.system_actor(), number, str(-amount))


def books_hold(bank):
    assert bank.audit.verify() == []
    assert bank.read_one("SELECT sum(balance_cents) FROM accounts")[0] == 0
    assert bank.reports.trial_balance(bank.system_actor())["balance_cents"].sum() == 0


def walk(bank, until, moves=()):
    """Close each day to `until`, making the customer moves (day, number, amount) of each day
    before its end of day."""
    system = bank.system_actor()
    while bank.business_date <= until:
        for day, number, amount in moves:
            if day == bank.business_date:
                move(bank, number, amount)
        bank.end_of_day(system, until=bank.business_date)


def year_share(day_count, day):
    """The night after `day` as a share of a year, by hand: 30/360 counts each month as 30
    days (the 30th of a long month counts nothing, the 31st one day, February's end the rest)."""
    if day_count == "actual/365":
        return D(1) / D(365)
    if day_count == "actual/actual":
        return D(1) / D(366 if day.year % 4 == 0 else 365)
    nxt = day + DAY
    if day.day == 30 and nxt.day == 31:
        return D(0)
    if nxt.day == 1 and day.day < 30:
        return D(30 - day.day + 1) / D(360)
    return D(1) / D(360)


def is_end(period, day):
    last = (day + DAY).day == 1
    return last and (period == "monthly" or (period == "quarterly" and day.month % 3 == 0)
                     or (period == "yearly" and day.month == 12))


def simulate(terms, moves, until):
    """Expected postings by hand, in Decimal: each end of day accrues balance x rate x share
    half-up to the micro-cent (credit on a positive balance at the tier for it, overdraft on a
    negative one), and each period end posts the whole cents (credit less tax half-up; overdraft
    as a debit), carrying the sub-cent. Returns [(day, kind, gross cents, tax cents)]."""
    balance = D(0)
    carry = {"interest": D(0), "overdraft_interest": D(0)}
    accrued = {"interest": D(0), "overdraft_interest": D(0)}
    posted = []
    day = START
    while day <= until:
        balance += sum((D(a) * 100 for d, a in moves if d == day), D(0))
        if balance > 0:
            rate = D(terms.get("rate", "0"))
            for from_cents, tier_rate in sorted(terms.get("tiers", ())):
                if balance >= from_cents:
                    rate = D(tier_rate)
            kind = "interest"
        else:
            rate, kind = D(terms.get("overdraft_rate", "0")), "overdraft_interest"
        exact = abs(balance) * rate / 100 * year_share(terms.get("day_count", "actual/365"), day)
        accrued[kind] += (exact * MICRO).quantize(D(1), rounding=ROUND_HALF_UP)
        if is_end(terms.get("period", "monthly"), day):
            for k in accrued:
                total = carry[k] + accrued[k]
                cents = (total // MICRO)
                carry[k], accrued[k] = total - cents * MICRO, D(0)
                if cents:
                    tax = (cents * terms.get("tax_bp", 0) / D(10000)).quantize(
                        D(1), rounding=ROUND_HALF_UP) if k == "interest" else D(0)
                    posted.append((day, k, int(cents), int(tax)))
                    balance += cents - tax if k == "interest" else -cents
        day += DAY
    return posted


def postings_of(bank, number):
    """[(day, kind, gross cents, tax cents)] of the interest and overdraft interest of one
    account, as posted."""
    rows = bank.read(
        "SELECT t.business_date, t.kind, t.amount_cents, coalesce((SELECT p.amount_cents FROM "
        "postings p JOIN accounts g ON g.id = p.account_id WHERE p.transaction_id = t.id AND "
        "g.account_number = ?), 0) FROM transactions t WHERE t.kind IN ('interest', "
        "'overdraft_interest') AND (t.target_account = ? OR t.source_account = ?) "
        "ORDER BY t.id", [INTERNAL["withholding_tax_payable"], number, number])
    return [(d, k, int(a), int(t)) for d, k, a, t in rows]


Q1_END = dt.date(2031, 3, 31)
X = dt.date(2030, 12, 25)   # a day when balances move
Y = dt.date(2031, 1, 29)
TIERS3 = ((0, "1.00"), (1_000_000, "2.00"), (5_000_000, "3.00"))

# name, product terms, customer moves (day, amount), expected posting days
WALK = [
    ("tiers-crossing-up-and-down",
     {"tiers": TIERS3, "rate": "0.50"},
     [(START, "9000.00"), (X, "2000.00"), (X + 4 * DAY, "40000.00"), (Y, "-45000.00")],
     "monthly"),
    ("below-the-lowest-tier-base-rate",
     {"tiers": ((1_000_000, "2.00"),), "rate": "0.75"},
     [(START, "5000.00"), (Y, "6000.00")], "monthly"),
    ("actual/365", {"rate": "2.50"}, [(START, "12345.67")], "monthly"),
    ("actual/actual", {"rate": "2.50", "day_count": "actual/actual"},
     [(START, "12345.67")], "monthly"),
    ("30/360", {"rate": "2.50", "day_count": "30/360"}, [(START, "12345.67")], "monthly"),
    ("quarterly", {"rate": "3.00", "period": "quarterly"}, [(START, "20000.00")],
     "quarterly"),
    ("yearly", {"rate": "3.00", "period": "yearly"}, [(START, "20000.00")], "yearly"),
    ("tax-at-the-product-rate", {"rate": "4.00", "tax_bp": 1500},
     [(START, "33333.33")], "monthly"),
    ("overdraft-interest", {"overdraft_rate": "18.00", "kind": "checking"},
     [(START, "-3000.00"), (Y, "2500.00"), (Y + DAY, "1000.00")], "monthly"),
]


def test_a_quarter_of_end_of_days_posts_what_the_products_say(fixed_bank):
    bank = fixed_bank
    accounts = {}
    moves = []
    for name, terms, account_moves, _ in WALK:
        kind = terms.get("kind", "savings")
        pid = add_product(
            bank, name.replace("/", "_").replace("-", "_"), kind, rate=terms.get("rate", "0"),
            day_count=terms.get("day_count", "actual/365"),
            period=terms.get("period", "monthly"), tiers=terms.get("tiers", ()),
            withholding_tax_bp=terms.get("tax_bp", 0),
            overdraft_rate_percent=terms.get("overdraft_rate", "0"),
            overdraft_allowed=kind == "checking")
        number = open_on(bank, pid, kind, overdraft="5000.00" if kind == "checking" else None)
        accounts[name] = number
        moves += [(day, number, amount) for day, amount in account_moves]
    walk(bank, Q1_END, moves)
    for name, terms, account_moves, period in WALK:
        expected = simulate(terms, account_moves, Q1_END)
        got = postings_of(bank, accounts[name])
        assert got == expected, name
        assert all(is_end(period, day) for day, *_ in got), name
        assert expected, name  # every case posts something
    # The quarterly product posts nothing at the end of January and February.
    quarterly = [day for day, *_ in postings_of(bank, accounts["quarterly"])]
    assert quarterly == [dt.date(2030, 12, 31), Q1_END]
    assert [day for day, *_ in postings_of(bank, accounts["yearly"])] == [dt.date(2030, 12, 31)]
    books_hold(bank)


MONTH_END = dt.date(2030, 12, 31)
FEE_TERMS = dict(maintenance_fee_cents=500, min_balance_cents=100_000, min_balance_fee_cents=1000,
                 overdraft_fee_cents=2500, overdraft_allowed=True)
# name, customer moves (day, amount) from START to the month end, expected fee codes
FEES = [
    ("above-the-minimum-all-month", [(START, "2000.00")], ["maintenance"]),
    ("below-the-minimum-one-night",
     [(START, "2000.00"), (START + 2 * DAY, "-1500.00"), (START + 3 * DAY, "1500.00")],
     ["maintenance", "min_balance"]),
    ("overdrawn-one-night",
     [(START, "2000.00"), (START + 5 * DAY, "-2500.00"), (START + 6 * DAY, "2600.00")],
     ["maintenance", "min_balance", "overdraft"]),
    ("a-dip-within-a-day-is-no-end-of-day-balance",
     [(START, "2000.00"), (START + 7 * DAY, "-1500.00"), (START + 7 * DAY, "1500.00")],
     ["maintenance"]),
    ("below-the-minimum-only-on-the-last-day",
     [(START, "2000.00"), (MONTH_END, "-1950.00")], ["maintenance", "min_balance"]),
]


def test_month_end_charges_the_products_fees(fixed_bank):
    bank = fixed_bank
    pid = add_product(bank, "fees", "checking", overdraft_limit_max_cents=500_000, **FEE_TERMS)
    free = add_product(bank, "free", "checking")
    numbers, moves = {}, []
    for name, account_moves, _ in FEES:
        numbers[name] = open_on(bank, pid, "checking", overdraft="1000.00")
        moves += [(day, numbers[name], amount) for day, amount in account_moves]
    no_fee = open_on(bank, free, "checking", amount="5.00")
    walk(bank, MONTH_END, moves)
    fee_of = {"maintenance": 500, "min_balance": 1000, "overdraft": 2500}
    for name, account_moves, codes in FEES:
        charged = bank.read(
            "SELECT c.code, c.amount_cents, c.status, c.business_date, t.kind, t.amount_cents "
            "FROM charges c JOIN accounts a ON a.id = c.account_id LEFT JOIN transactions t "
            "ON t.id = c.transaction_id WHERE a.account_number = ? ORDER BY c.code",
            [numbers[name]])
        assert charged == [(c, fee_of[c], "charged", MONTH_END, "fee", fee_of[c])
                           for c in sorted(codes)], name
        moved = sum(D(a) for _, a in account_moves) * 100
        assert bank.read_one("SELECT balance_cents FROM accounts WHERE account_number = ?",
                             [numbers[name]])[0] == moved - sum(fee_of[c] for c in codes), name
        reasons = [r[0] for r in bank.read("SELECT reason FROM charges c JOIN accounts a ON "
                                           "a.id = c.account_id WHERE a.account_number = ?",
                                           [numbers[name]])]
        assert all("December 2030" in r for r in reasons), name
    assert bank.read_one("SELECT count(*) FROM charges c JOIN accounts a ON a.id = c.account_id "
                         "WHERE a.account_number = ?", [no_fee])[0] == 0
    closed = bank.read_one("SELECT fees_charged, fee_cents FROM eod_runs WHERE business_date = ?",
                           [MONTH_END])
    assert closed == (sum(len(c) for *_, c in FEES),
                      sum(fee_of[c] for *_, codes in FEES for c in codes))
    # No fee before the month end.
    assert bank.read_one("SELECT count(*) FROM charges WHERE business_date < ?",
                         [MONTH_END])[0] == 0
    books_hold(bank)


def test_a_rerun_of_end_of_day_posts_nothing_twice(fixed_bank):
    bank = fixed_bank
    pid = add_product(bank, "again", "checking", rate="0", overdraft_rate_percent="12.00",
                      overdraft_limit_max_cents=500_000, **FEE_TERMS)
    saver = add_product(bank, "saver", rate="2.00", withholding_tax_bp=1000)
    numbers = [open_on(bank, pid, "checking", amount="-300.00", overdraft="1000.00"),
               open_on(bank, saver, amount="5000.00")]
    walk(bank, MONTH_END)
    tables = ("transactions", "postings", "charges", "interest_accruals", "interest_postings",
              "overdraft_interest_postings", "audit_log")
    before = [bank.read_one(f"SELECT count(*) FROM {t}")[0] for t in tables]
    assert bank.end_of_day(bank.system_actor(), until=MONTH_END).days == []
    # Posting the same month's fees again through the event API changes nothing either.
    from bankms.services.charges import post_event_charges
    from bankms.services.deposits.eod import fee_events, lowest_balances

    def again(uow):
        low = lowest_balances(uow, MONTH_END)
        return post_event_charges(bank, bank.system_actor(), uow, fee_events(low, MONTH_END),
                                  day=MONTH_END)
    bank.write(again)
    after = [bank.read_one(f"SELECT count(*) FROM {t}")[0] for t in tables]
    assert after[:-1] == before[:-1]
    kinds = dict(bank.read("SELECT kind, count(*) FROM transactions WHERE kind IN "
                           "('interest', 'overdraft_interest', 'fee') GROUP BY 1"))
    assert kinds == {"interest": 1, "overdraft_interest": 1, "fee": 3}
    del numbers
    books_hold(bank)


def test_a_product_change_from_tomorrow_leaves_today_alone(fixed_bank):
    bank = fixed_bank
    pid = add_product(bank, "changing", rate="1.00", tiers=((0, "1.00"),))
    number = open_on(bank, pid, amount="10000.00")
    add_product(bank, "changing", rate="4.00", effective=START + DAY, day_count="30/360")
    walk(bank, START + DAY)
    rows = bank.read("SELECT accrual_date, rate_percent, accrued_micro_cents FROM "
                     "interest_accruals i JOIN accounts a ON a.id = i.account_id WHERE "
                     "a.account_number = ? ORDER BY 1", [number])
    assert rows == [
        (START, D("1.0000"), micro_half_up(D("10000.00") * D("0.01") / 365)),
        (START + DAY, D("4.0000"), micro_half_up(D("10000.00") * D("0.04") / 360))]


def test_a_negotiated_rate_beats_the_product_and_term_deposits_earn_their_own(fixed_bank):
    bank = fixed_bank
    pid = add_product(bank, "tiered", rate="1.00", tiers=((0, "1.50"),))
    negotiated = open_on(bank, pid, amount="10000.00")
    bank.write(lambda uow: uow.execute(
        "UPDATE accounts SET rate_negotiated = TRUE, interest_rate_percent = 3.25 "
        "WHERE account_number = ?", [negotiated]))
    # A term deposit (term_deposits snapshots its contract rate onto the account) on a
    # product that posts monthly and charges a fee: it accrues at its own rate, is never
    # posted here and pays no product fee.
    fee_product = add_product(bank, "fee_saver", rate="1.00", maintenance_fee_cents=300)
    term = open_on(bank, fee_product, amount="10000.00")
    bank.write(lambda uow: uow.execute(
        "UPDATE accounts SET kind = 'term_deposit', interest_rate_percent = 4.10 "
        "WHERE account_number = ?", [term]))
    walk(bank, MONTH_END)
    rates = "SELECT DISTINCT rate_percent, accrued_micro_cents FROM interest_accruals i JOIN " \
            "accounts a ON a.id = i.account_id WHERE a.account_number = ?"
    assert bank.read(rates, [negotiated]) == [(D("3.2500"),
                                               micro_half_up(D("10000") * D("0.0325") / 365))]
    assert bank.read(rates, [term]) == [(D("4.1000"),
                                         micro_half_up(D("10000") * D("0.041") / 365))]
    assert bank.read("SELECT kind FROM transactions WHERE ? IN (source_account, "
                     "target_account) ORDER BY id", [term]) == [("deposit",)]
    assert len(postings_of(bank, negotiated)) == 1


# product dormancy months, months without activity, dormant after end of day?
DORMANCY = [
    (3, 2, False),
    (3, 4, True),
    (12, 4, False),
    (12, 13, True),
]


def test_dormancy_follows_the_products_months(fixed_bank):
    from bankms.services.loans import add_months
    bank = fixed_bank
    numbers = []
    for k, (months, idle, _) in enumerate(DORMANCY):
        pid = add_product(bank, f"dormant_{k}", dormancy_months=months)
        number = open_on(bank, pid, amount="10.00")
        idle_since = add_months(START + DAY, -idle)
        bank.write(lambda uow, n=number, d=idle_since: uow.execute(
            "UPDATE accounts SET last_activity_date = ?, opened_date = ? "
            "WHERE account_number = ?", [d, d, n]))
        numbers.append(number)
    walk(bank, START)
    for number, (months, idle, dormant) in zip(numbers, DORMANCY):
        status = bank.read_one("SELECT status FROM accounts WHERE account_number = ?",
                               [number])[0]
        assert status == ("dormant" if dormant else "active"), (months, idle)
    reasons = [r[0] for r in bank.read("SELECT after FROM audit_log WHERE action = "
                                       "'account.dormant' ORDER BY id")]
    assert [("3 months" in r, "12 months" in r) for r in reasons] == [(True, False),
                                                                      (False, True)]


# Three nights at -1,000.00 and 18 % (actual/365), each night half-up to the micro-cent, the
# sum half-up to the cent when the account closes (nothing is carried past a close).
THREE_NIGHTS_CENTS = int((3 * micro_half_up(D("1000.00") * D("0.18") / 365) / MICRO)
                         .quantize(D(1), rounding=ROUND_HALF_UP))
# What the customer pays in after the three nights, beyond the 1,000.00 overdrawn; the
# outcome: closed, or the refusal's words.
OVERDRAWN_CLOSES = [
    ("pays-back-only-the-overdraft", D(0), f"pay in {D(THREE_NIGHTS_CENTS) / 100}"),
    ("pays-the-interest-too", D(THREE_NIGHTS_CENTS) / 100, "closed"),
    ("pays-five-more", D(THREE_NIGHTS_CENTS) / 100 + 5, "holds 5.00 beyond"),
]


@pytest.mark.parametrize("name, extra, outcome", OVERDRAWN_CLOSES)
def test_closing_charges_the_overdraft_interest_owed(fixed_bank, name, extra, outcome):
    """A close posts the overdraft interest accrued since the last posting in its own unit of
    work (as Fineract's close posts interest to the closing date), then needs a zero balance:
    short of it, the refusal names the amount to pay in and nothing changes."""
    from bankms.domain.errors import InvalidState
    bank = fixed_bank
    assert THREE_NIGHTS_CENTS == 148          # 1,000.00 x 18 % x 3/365 = 1.4794...
    pid = add_product(bank, "od", "checking", overdraft_rate_percent="18.00",
                      overdraft_allowed=True, overdraft_limit_max_cents=500_000)
    number = open_on(bank, pid, "checking", amount="-1000.00", overdraft="2000.00")
    walk(bank, START + 2 * DAY)
    move(bank, number, str(D("1000.00") + extra))
    tables = ("transactions", "postings", "overdraft_interest_postings", "audit_log")
    before = [bank.read_one(f"SELECT count(*) FROM {t}")[0] for t in tables]
    if outcome != "closed":
        with pytest.raises(InvalidState, match=outcome):
            bank.accounts.close(bank.system_actor(), number)
        assert [bank.read_one(f"SELECT count(*) FROM {t}")[0] for t in tables] == before
        books_hold(bank)
        return
    result = bank.accounts.close(bank.system_actor(), number)
    assert (result["overdraft_interest"], result["payout"]) == (D(THREE_NIGHTS_CENTS) / 100, 0)
    day = bank.business_date
    statement = bank.reports.statement(bank.system_actor(), number, day.year, day.month)
    assert statement.reconciles() and statement.closing_balance == 0
    lines = statement.lines[statement.lines["kind"] == "overdraft_interest"]
    assert list(lines["amount"]) == [-D(THREE_NIGHTS_CENTS) / 100]
    assert bank.read_one("SELECT status FROM accounts WHERE account_number = ?",
                         [number])[0] == "closed"
    # Month end charges nothing more: the close marked the accruals posted.
    walk(bank, MONTH_END)
    assert bank.read_one("SELECT count(*) FROM transactions WHERE kind = "
                         "'overdraft_interest' AND source_account = ?", [number])[0] == 1
    books_hold(bank)


# The overdraft: -30,000.00 for all of December at 18 %, actual/365: each night
# 30,000 x 18 % / 365 half-up to the micro-cent, the month's sum posted in whole cents
# (458.63; the exact 458.6301... agrees). The overdraft fee (25.00) once, when the limit
# leaves room for it, else recorded as not collected. Limit, the fee's status.
OVERDRAWN_MONTHS = [
    ("at-the-limit", "30000.00", "not_collected"),
    ("room-for-the-fee", "31000.00", "charged"),
]


@pytest.mark.parametrize("name, limit, fee_status", OVERDRAWN_MONTHS)
def test_a_month_overdrawn_at_the_limit_owes_its_interest(bank, years_ahead, name, limit,
                                                          fee_status):
    first = dt.date(2030, 12, 1)
    bank.write(lambda uow: uow.execute(
        "UPDATE settings SET value = ? WHERE key = 'business_date'", [first.isoformat()]))
    bank.state.business_date = first
    pid = add_product(bank, "od18", "checking", overdraft_rate_percent="18.00",
                      overdraft_allowed=True, overdraft_limit_max_cents=5_000_000,
                      overdraft_fee_cents=2500)
    number = open_on(bank, pid, "checking", amount="-30000.00", overdraft=limit)
    walk(bank, MONTH_END)
    night = micro_half_up(D("30000.00") * D("0.18") / 365)
    expected = 31 * night // 1_000_000
    assert expected == 45863
    assert bank.read("SELECT amount_cents FROM transactions WHERE kind = 'overdraft_interest' "
                     "AND source_account = ?", [number]) == [(expected,)]
    assert bank.read("SELECT code, c.amount_cents, c.status FROM charges c JOIN accounts a "
                     "ON a.id = c.account_id WHERE a.account_number = ?",
                     [number]) == [("overdraft", 2500, fee_status)]
    # Posted beyond the limit (owed either way): the books still hold.
    books_hold(bank)
