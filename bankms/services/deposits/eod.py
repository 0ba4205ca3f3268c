"""End of day on deposit products (issue 10): daily accrual at the product's rate (tiers by
balance, day count), overdraft interest on negative balances, period-end posting of credit
interest (with the product's withholding tax) and overdraft interest, the product's monthly
fees, and dormancy after the product's dormancy period. eod.close_day calls the steps here.

**The rate an account earns on day D** (PLAN10, interface 1): a `rate_negotiated` account, and
every term deposit account (its contract rate, snapshotted by term_deposits), earns its own
`interest_rate_percent`; any other account the product version in force on D
(deposit_products.VERSIONS_IN_FORCE_SQL): the rate of the highest tier whose
from_balance_cents <= the end-of-day balance, on the whole balance, or the base rate when no
tier applies. An account without a product (none after the migration at open) keeps what it
did before products: its own rate, actual/365, monthly, the bank-wide tax and dormancy settings.

**One day's accrual** is balance x rate x the day's share of a year under the product's day
count, for the night from D to D+1 (day_fraction): actual/365 1/365; actual/actual 1/365 or
1/366 in a leap year; 30/360 days_30_360(D, D+1)/360 (bond basis, as loans use: every month
counts 30 days, so the 30th of a 31-day month counts 0 and the last day of February 2 or 3).
Kept in micro-cents (1e-6 cent), rounded half-up (away from zero) to the micro-cent, in
integer SQL arithmetic. A negative balance on a product with an overdraft rate accrues
overdraft interest at that rate with the same day count, stored as a negative accrual; the sign
of `balance_cents` in interest_accruals tells the two apart (credit interest is accrued only on
positive balances).

**Posting** happens on the last day of each product's posting period (is_period_end: monthly,
quarterly at the end of Mar/Jun/Sep/Dec, yearly at Dec 31; 'maturity' never here). What is
posted is everything accrued since the account's last posting row, plus that row's sub-cent
carry: whole cents are posted, the remainder carried on, so a change of posting period never
loses or repeats a day. Credit interest is one `interest` transaction (gross from GL5000, tax
at the product's withholding_tax_bp to GL2100, net to the account; interest_postings); overdraft
interest one `overdraft_interest` transaction (debit the account, credit GL4000 interest
income; overdraft_interest_postings), posted even beyond the overdraft limit because it is
owed either way.

**Fees** at every month end, through charges.post_event_charges: the monthly maintenance fee;
the minimum balance fee when the lowest end-of-day balance of the month was below the
product's min_balance_cents; the overdraft fee when the account was overdrawn at the end of
any day of the month. End-of-day balances are rebuilt from the month's postings by business
date (lowest_balances). Term deposit accounts pay no product fees and never go dormant.
"""
from __future__ import annotations

import calendar
import datetime as dt
import functools

import pandas as pd

from ..audit_sets import audit_set
from ...domain.chart import INTERNAL
from ..posting_frames import post_frames
from ...domain.schedule import add_months
from .tax import withholding_tax_bp, withholding_tax_cents

MICRO_PER_CENT = 1_000_000
DAY_COUNTS = ("actual/365", "actual/actual", "30/360")
DEFAULT_DAY_COUNT = "actual/365"
POSTING_PERIODS = ("monthly", "quarterly", "yearly", "maturity")
DEFAULT_POSTING_PERIOD = "monthly"
# Unposted accruals are never older than the longest posting period (a year): the scan for
# an account with no posting row yet starts this many days back.
LONGEST_PERIOD_DAYS = 366


# -- Pure rules ------------------------------------------------------------------------------

def days_30_360(a: dt.date, b: dt.date) -> int:
    """Days from a to b under 30/360 (bond basis, as loan_replay counts them)."""
    d1, d2 = min(a.day, 30), b.day
    if d1 == 30 and d2 == 31:
        d2 = 30
    return 360 * (b.year - a.year) + 30 * (b.month - a.month) + d2 - d1


def day_fraction(day_count: str, day: dt.date) -> tuple[int, int]:
    """The share of a year that the night from `day` to the next day is, as (numerator,
    denominator) of whole numbers, under `day_count` (DAY_COUNTS; ValueError otherwise)."""
    if day_count == "actual/365":
        return 1, 365
    if day_count == "actual/actual":
        return 1, 366 if calendar.isleap(day.year) else 365
    if day_count == "30/360":
        return days_30_360(day, day + dt.timedelta(days=1)), 360
    raise ValueError(f"unknown day count {day_count!r}")


def rate_e4(rate_percent) -> int:
    """A percent rate with at most four decimals as a whole number of 1/10,000 percent."""
    from decimal import Decimal
    scaled = Decimal(str(rate_percent)) * 10_000
    if scaled != scaled.to_integral_value():
        raise ValueError(f"rate {rate_percent} has more than four decimals")
    return int(scaled)


def accrual_micro_cents(balance_cents: int, rate_percent, day_count: str, day: dt.date) -> int:
    """One day's interest on `balance_cents` at `rate_percent` (Decimal or text) in micro-cents,
    rounded half-up away from zero: negative for a negative balance. accrue_sql computes the
    same in SQL for every account at once."""
    num, den = day_fraction(day_count, day)
    magnitude = (2 * abs(balance_cents) * rate_e4(rate_percent) * num + den) // (2 * den)
    return magnitude if balance_cents >= 0 else -magnitude


def tier_rate(tiers, balance_cents: int, base_rate):
    """The rate of the highest tier whose from_balance_cents <= balance_cents, else
    `base_rate`. `tiers`: iterable of (from_balance_cents, rate_percent)."""
    best = None
    for from_cents, rate in tiers:
        if from_cents <= balance_cents and (best is None or from_cents > best[0]):
            best = (from_cents, rate)
    return base_rate if best is None else best[1]


def is_period_end(posting_period: str, day: dt.date) -> bool:
    """Whether `day` is the last day of a posting period: monthly the month's last day,
    quarterly the last day of March, June, September or December, yearly 31 December;
    'maturity' never (term deposits post at maturity or closure)."""
    if posting_period == "maturity":
        return False
    if (day + dt.timedelta(days=1)).month == day.month:
        return False
    if posting_period == "monthly":
        return True
    if posting_period == "quarterly":
        return day.month % 3 == 0
    if posting_period == "yearly":
        return day.month == 12
    raise ValueError(f"unknown posting period {posting_period!r}")


def periods_ending(day: dt.date) -> list[str]:
    """The posting periods that end on `day`."""
    return [p for p in POSTING_PERIODS if is_period_end(p, day)]


def period_start(posting_period: str, day: dt.date) -> dt.date:
    """The first day of the posting period that contains `day` ('maturity': the day itself)."""
    if posting_period == "monthly":
        return day.replace(day=1)
    if posting_period == "quarterly":
        return day.replace(month=(day.month - 1) // 3 * 3 + 1, day=1)
    if posting_period == "yearly":
        return day.replace(month=1, day=1)
    return day


# -- Set-based SQL ---------------------------------------------------------------------------

def _terms_sql() -> str:
    """The product versions in force on the day (one parameter), for a WITH clause."""
    from .products import VERSIONS_IN_FORCE_SQL
    return VERSIONS_IN_FORCE_SQL


def _day_counts_sql(day: dt.date) -> tuple[str, list]:
    """A VALUES table (day_count, num, den) of the night after `day`, and its parameters."""
    rows, params = [], []
    for name in DAY_COUNTS:
        num, den = day_fraction(name, day)
        rows.append("(?, ?, ?)")
        params += [name, num, den]
    return "SELECT * FROM (VALUES " + ", ".join(rows) + ") t(day_count, num, den)", params


# The one statement of the rule (module docstring; PLAN10 interface 1): each customer account
# of `where`, the rate it earns on a day at its balance now (end of day reads it after the
# day's postings) and the day count it accrues with: the overdraft rate of its product for a
# negative balance; its own rate when rate_negotiated, for a term deposit (its snapshotted
# contract rate) or without a product; else the highest tier of its product's version in force
# whose from_balance_cents <= the balance, else that version's base rate. A term deposit
# accrues with the day count snapshotted when it opened (term_deposits.day_count), so a
# product change never touches a running deposit. Columns: account_id, product_id,
# effective_date (of the version), balance_cents, rate_percent, day_count. One parameter:
# the day (terms in force).
ACCOUNT_RATES_SQL = """
WITH v AS ({terms}),
tiers AS (
    SELECT t.product_id, t.from_balance_cents, t.rate_percent
    FROM deposit_product_tiers t JOIN v ON v.product_id = t.product_id
     AND v.effective_date = t.effective_date),
a AS (
    SELECT id, balance_cents, kind, coalesce(rate_negotiated, false) AS negotiated,
           interest_rate_percent, product_id
    FROM accounts
    WHERE customer_id IS NOT NULL {where}),
tiered AS (
    -- The highest tier at or below the balance: a row_number() over the tiers reached (an
    -- ASOF join is DuckDB's alone); an account below every tier keeps one row, tier rate NULL.
    SELECT * FROM (
        SELECT a.*, t.rate_percent AS tier_rate_percent,
               row_number() OVER (PARTITION BY a.id ORDER BY t.from_balance_cents DESC)
                   AS tier_rank
        FROM a LEFT JOIN tiers t
          ON t.product_id = a.product_id AND a.balance_cents >= t.from_balance_cents) ranked
    WHERE tier_rank = 1)
SELECT a.id AS account_id, a.product_id, v.effective_date, a.balance_cents,
       CAST(CASE WHEN a.balance_cents < 0 THEN coalesce(v.overdraft_rate_percent, 0)
                 WHEN v.product_id IS NULL OR a.negotiated OR a.kind = 'term_deposit'
                     THEN a.interest_rate_percent
                 ELSE coalesce(a.tier_rate_percent, v.interest_rate_percent) END
            AS DECIMAL(9, 4)) AS rate_percent,
       coalesce(td.day_count, v.day_count, '{default_day_count}') AS day_count
FROM tiered a LEFT JOIN v ON v.product_id = a.product_id
LEFT JOIN term_deposits td ON td.account_id = a.id
"""


def account_rates_sql(where: str = "") -> str:
    """ACCOUNT_RATES_SQL for the accounts of `where` (an SQL condition on accounts starting
    with AND, or nothing for every customer account); one parameter, the day."""
    return ACCOUNT_RATES_SQL.format(terms=_terms_sql(), where=where,
                                    default_day_count=DEFAULT_DAY_COUNT)


# Each open customer account with a non-zero end-of-day balance that earns or owes interest
# that day (ACCOUNT_RATES_SQL) with its day count's share of a year for the night. Parameters:
# the day (terms in force), then the day-count table's.
RATES_SQL = """
WITH dc AS ({day_counts})
SELECT r.account_id, r.balance_cents, r.rate_percent, dc.num, dc.den
FROM ({rates}) r JOIN dc ON dc.day_count = r.day_count
WHERE r.rate_percent > 0
"""


# One day's accrual per account (accrual_micro_cents in SQL): half-up away from zero, integer
# arithmetic (DuckDB divides DECIMALs as DOUBLE, so the division is the dialect's int_div). The
# product outgrows BIGINT, so it is DECIMAL(38, 0) (exact on both engines); the sign is taken of
# a DECIMAL too, as PostgreSQL's sign() of a BIGINT would be a DOUBLE. The text depends on the
# engine's dialect only, so it is built once per dialect.
@functools.cache
def accrue_sql(dialect) -> str:
    """The accrual INSERT in `dialect` (store/sql.py), with a {rates} slot to format."""
    return """
INSERT INTO interest_accruals (account_id, accrual_date, balance_cents, rate_percent,
                               accrued_micro_cents)
SELECT account_id, CAST(? AS DATE), balance_cents, rate_percent,
       CAST(sign(CAST(balance_cents AS DECIMAL(38, 0))) * """ + dialect.int_div(
        "2 * abs(CAST(balance_cents AS DECIMAL(38, 0))) * CAST(rate_percent * 10000 AS BIGINT) "
        "* num + den", "2 * den") + """ AS BIGINT)
FROM ({rates}) r
"""


def accrue(uow, day: dt.date, out) -> None:
    """Step 3 of end of day: accrue one day of credit interest (positive balances) and
    overdraft interest (negative balances) on every open account's end-of-day balance of
    `day`, at the rate and day count in force on `day`; counts go to `out`
    (accounts_accrued and accrued_micro_cents for credit interest, overdraft_accrued_accounts
    and overdraft_accrued_micro_cents, a negative figure, for overdraft interest)."""
    day_counts, dc_params = _day_counts_sql(day)
    rates = RATES_SQL.format(day_counts=day_counts, rates=account_rates_sql(
        "AND status <> 'closed' AND balance_cents <> 0"))
    uow.execute(accrue_sql(uow.dialect).format(rates=rates), [day, *dc_params, day])
    credit, credit_micro, debit, debit_micro = uow.fetchone(
        "SELECT count(*) FILTER (WHERE balance_cents > 0), "
        "CAST(coalesce(sum(accrued_micro_cents) FILTER (WHERE balance_cents > 0), 0) AS BIGINT), "
        "count(*) FILTER (WHERE balance_cents < 0), "
        "CAST(coalesce(sum(accrued_micro_cents) FILTER (WHERE balance_cents < 0), 0) AS BIGINT) "
        "FROM interest_accruals WHERE accrual_date = ?", [day])
    out.accounts_accrued, out.accrued_micro_cents = int(credit), int(credit_micro)
    out.overdraft_accrued_accounts = int(debit)
    out.overdraft_accrued_micro_cents = int(debit_micro)


# What each kind of interest keeps where: its postings table, and which accruals are its own
# (by the sign of the balance they were accrued on).
_KINDS = {"credit": ("interest_postings", ">"), "overdraft": ("overdraft_interest_postings", "<")}

# What each open customer account (of `where`) has accrued and not yet posted: its last
# posting row of that kind (carry and end; rows older than the longest period are not read),
# the period's start (the day after that row, else the calendar start of the account's
# posting period), and the sum of its accruals of that kind after that row. Only accounts
# with such accruals or a carry. Parameters: the day (terms), the oldest period_end to read,
# the calendar starts of the monthly, quarterly and yearly periods, the filter's, then the
# first accrual date to scan and the day.
UNPOSTED_SQL = """
WITH v AS ({terms}),
last AS (SELECT account_id, period_end AS last_end, carry_out_micro_cents AS carry
         FROM (SELECT account_id, period_end, carry_out_micro_cents, row_number() OVER (
                   PARTITION BY account_id ORDER BY period_end DESC) AS nth
               FROM {table} WHERE period_end >= ?) r
         WHERE nth = 1),
c AS (
    SELECT a.id AS account_id, a.account_number,
           CAST(coalesce(l.carry, 0) AS BIGINT) AS carry_in_micro_cents,
           coalesce(l.last_end + 1, CASE coalesce(v.posting_period, '{default_period}')
               WHEN 'monthly' THEN CAST(? AS DATE) WHEN 'quarterly' THEN CAST(? AS DATE)
               ELSE CAST(? AS DATE) END) AS period_start,
           l.last_end
    FROM accounts a LEFT JOIN v ON v.product_id = a.product_id
    LEFT JOIN last l ON l.account_id = a.id
    WHERE a.customer_id IS NOT NULL AND a.status <> 'closed' AND {where}),
s AS (
    SELECT i.account_id, CAST(abs(sum(i.accrued_micro_cents)) AS BIGINT) AS accrued
    FROM interest_accruals i JOIN c ON c.account_id = i.account_id
    WHERE i.accrual_date BETWEEN CAST(? AS DATE) AND CAST(? AS DATE)
      AND i.balance_cents {sign} 0
      AND (c.last_end IS NULL OR i.accrual_date > c.last_end)
    GROUP BY 1)
SELECT c.account_id, c.account_number, c.period_start, c.carry_in_micro_cents,
       CAST(coalesce(s.accrued, 0) AS BIGINT) AS accrued_micro_cents
FROM c LEFT JOIN s ON s.account_id = c.account_id
WHERE s.account_id IS NOT NULL OR c.carry_in_micro_cents > 0
ORDER BY c.account_id
"""

# Products whose posting period changed within the last year (parameter: a year ago): their
# accounts may hold accruals from before the current period's calendar start.
PERIOD_CHANGED_SQL = """
SELECT count(*) FROM (SELECT product_id FROM deposit_product_versions
    WHERE effective_date > CAST(? AS DATE) - INTERVAL '400 days'
    GROUP BY 1 HAVING count(DISTINCT posting_period) > 1) changed
"""


def _scan_from(uow, day: dt.date, periods) -> dt.date:
    """The first accrual date that can be unposted for accounts posting in `periods` on
    `day`: the earliest calendar start of those periods; a year back when a product's posting
    period changed lately or 'maturity' is among them (accruals since its last posting row are
    then still looked for per account)."""
    if "maturity" in periods or uow.fetchone(PERIOD_CHANGED_SQL, [day])[0]:
        return day - dt.timedelta(days=LONGEST_PERIOD_DAYS)
    return min(period_start(p, day) for p in periods)


def unposted(uow, day: dt.date, kind: str, *, periods=None, account_id=None) -> pd.DataFrame:
    """What `kind` ('credit' or 'overdraft') interest each account has accrued and not yet
    posted up to the end of `day` (UNPOSTED_SQL): open accounts whose product's posting period
    is one of `periods` (term deposits never), or the one account `account_id` (a close).
    Columns: account_id, account_number, period_start, carry_in_micro_cents (the last
    posting's carry), accrued_micro_cents (credit interest; overdraft interest as a positive
    amount owed); only accounts with accruals since their last posting or a carry."""
    table, sign = _KINDS[kind]
    if account_id is not None:
        where, params = "a.id = ?", [int(account_id)]
        row = uow.fetchone(
            f"WITH v AS ({_terms_sql()}) SELECT v.posting_period FROM accounts a "
            "LEFT JOIN v ON v.product_id = a.product_id WHERE a.id = ?", [day, int(account_id)])
        periods = [row[0] if row and row[0] else DEFAULT_POSTING_PERIOD]
    else:
        # Term deposits are posted by term_deposits, at maturity or closure, never here.
        where = ("a.kind <> 'term_deposit' AND coalesce(v.posting_period, '"
                 + DEFAULT_POSTING_PERIOD + "') IN (" + ", ".join("?" * len(periods)) + ")")
        params = list(periods)
    oldest = day - dt.timedelta(days=LONGEST_PERIOD_DAYS)
    starts = [period_start(p, day) for p in ("monthly", "quarterly", "yearly")]
    return uow.fetch_df(UNPOSTED_SQL.format(
        terms=_terms_sql(), table=table, where=where, sign=sign,
        default_period=DEFAULT_POSTING_PERIOD),
        [day, oldest, *starts, *params, _scan_from(uow, day, periods), day])


def _store_postings(uow, table, frame, day) -> None:
    frame = frame.assign(period_end=day)
    with uow.scan("dep_postings", frame):
        uow.execute(
            f"INSERT INTO {table} SELECT account_id, CAST(period_start AS DATE), "
            "CAST(period_end AS DATE), carry_in_micro_cents, accrued_micro_cents, posted_cents, "
            "carry_out_micro_cents, transaction_id FROM dep_postings")


def _whole_cents(frame) -> pd.DataFrame:
    """Whole cents to post and the sub-cent carried on (into the next period)."""
    total = frame["carry_in_micro_cents"] + frame["accrued_micro_cents"]
    frame = frame.assign(posted_cents=total // MICRO_PER_CENT,
                         carry_out_micro_cents=total % MICRO_PER_CENT)
    frame["transaction_id"] = pd.array([None] * len(frame), dtype="Int64")
    return frame


def post_period_end(bank, actor, uow, day: dt.date, internal: dict, out) -> None:
    """Step 5 of end of day: on the last day of a posting period, post credit interest (with
    tax) and overdraft interest of the accounts whose product's period ends on `day`; on a
    month end, then charge the products' monthly fees. `internal`: GL number -> account id."""
    periods = periods_ending(day)
    if periods:
        _post_credit_interest(bank, actor, uow, day, internal, periods, out)
        _post_overdraft_interest(bank, actor, uow, day, internal, periods, out)
    if (day + dt.timedelta(days=1)).month != day.month:
        _charge_fees(bank, actor, uow, day, out)


def _post_interest(bank, actor, uow, day, periods, kind, build, **post_options):
    """Post the whole cents of `kind` interest unposted on `day` (one transaction per account,
    frames from build(pay) -> (transactions, postings, action)), then store every account's
    posting row with its carry. Returns the frame of accounts paid (tx_ref, posted_cents...)."""
    period = _whole_cents(unposted(uow, day, kind, periods=periods))
    pay = period[period["posted_cents"] > 0].reset_index(drop=True)
    if len(pay):
        pay["tx_ref"] = range(len(pay))
        tx, postings, action = build(pay)
        tx_ids = post_frames(bank, actor, uow, tx, postings, action, **post_options)
        ids = dict(zip(pay["account_id"], tx_ids[pay["tx_ref"].to_numpy()].tolist()))
        period["transaction_id"] = pd.array([ids.get(a) for a in period["account_id"]],
                                            dtype="Int64")
    if len(period):
        _store_postings(uow, _KINDS[kind][0], period, day)
    return pay


def _post_credit_interest(bank, actor, uow, day, internal, periods, out) -> None:
    expense = INTERNAL["interest_expense"]

    def build(pay):
        rates = withholding_tax_bp(uow, pay["account_id"], day)
        pay["tax_cents"] = withholding_tax_cents(
            pay["posted_cents"].astype("int64"),
            rates.loc[pay["account_id"].astype("int64")].to_numpy())
        # One transaction per account for the gross interest (its amount), with the tax as a
        # third leg: a reversal of the interest undoes its tax with it, one idempotent posting
        # per account and period, and the account's one line is the net credit (kept at a
        # 100 % rate, as 0.00, so that the statement and certificate still see the interest).
        tx = pd.DataFrame({"tx_ref": pay["tx_ref"], "kind": "interest",
                           "amount_cents": pay["posted_cents"],
                           "memo": _memo("Interest", day, pay["period_start"]),
                           "source_account": expense, "target_account": pay["account_number"]})
        taxed = pay[pay["tax_cents"] > 0]
        postings = pd.concat([
            pd.DataFrame({"tx_ref": pay["tx_ref"], "account_id": pay["account_id"],
                          "amount_cents": pay["posted_cents"] - pay["tax_cents"]}),
            pd.DataFrame({"tx_ref": pay["tx_ref"], "account_id": internal[expense],
                          "amount_cents": -pay["posted_cents"]}),
            pd.DataFrame({"tx_ref": taxed["tx_ref"],
                          "account_id": internal[INTERNAL["withholding_tax_payable"]],
                          "amount_cents": taxed["tax_cents"]})], ignore_index=True)
        return tx, postings, "eod.interest"
    pay = _post_interest(bank, actor, uow, day, periods, "credit", build)
    out.interest_posted_accounts = len(pay)
    out.interest_posted_cents = int(pay["posted_cents"].sum()) if len(pay) else 0
    out.interest_tax_cents = int(pay["tax_cents"].sum()) if len(pay) else 0


def _post_overdraft_interest(bank, actor, uow, day, internal, periods, out) -> None:
    income = INTERNAL["interest_income"]

    def build(pay):
        tx = pd.DataFrame({"tx_ref": pay["tx_ref"], "kind": "overdraft_interest",
                           "amount_cents": pay["posted_cents"],
                           "memo": _memo("Overdraft interest", day, pay["period_start"]),
                           "source_account": pay["account_number"], "target_account": income})
        postings = pd.concat([
            pd.DataFrame({"tx_ref": pay["tx_ref"], "account_id": pay["account_id"],
                          "amount_cents": -pay["posted_cents"]}),
            pd.DataFrame({"tx_ref": pay["tx_ref"], "account_id": internal[income],
                          "amount_cents": pay["posted_cents"]})], ignore_index=True)
        return tx, postings, "eod.overdraft_interest"
    # Owed whether or not it fits the overdraft limit: the debit is posted regardless.
    pay = _post_interest(bank, actor, uow, day, periods, "overdraft", build,
                         allow_overdraw=True)
    out.overdraft_interest_accounts = len(pay)
    out.overdraft_interest_cents = int(pay["posted_cents"].sum()) if len(pay) else 0


def _memo(what: str, day: dt.date, starts) -> list[str]:
    """'Interest for March 2026' for a month; 'Interest 1 January to 31 March 2026' for a
    longer period (one memo per row of period starts). Built once per distinct start (a
    month end has a handful among tens of thousands of rows)."""
    codes, distinct = pd.factorize(pd.Series(starts))
    memos = []
    for start in distinct:
        start = pd.Timestamp(start).date()
        if (start.year, start.month) == (day.year, day.month):
            memos.append(f"{what} for {day:%B %Y}")
        else:
            memos.append(f"{what} {start.day} {start:%B %Y} to {day.day} {day:%B %Y}")
    return [memos[code] for code in codes]


# Open customer accounts (no term deposits) whose product charges a monthly fee, with the
# lowest end-of-day balance of the month to `day`: the balance before the month's first
# posting (the end of the day before), and after each business date with postings, from the
# first day the account was open in the month. Parameters: the day (terms), the month's first
# day (twice), the first transaction id of the month, the month's first day.
LOWEST_BALANCE_SQL = """
WITH v AS ({terms}),
acc AS (
    SELECT a.id AS account_id, a.balance_cents, greatest(a.opened_date, CAST(? AS DATE))
               AS first_day,
           v.maintenance_fee_cents, v.min_balance_cents, v.min_balance_fee_cents,
           v.overdraft_fee_cents
    FROM accounts a JOIN v ON v.product_id = a.product_id
    WHERE a.customer_id IS NOT NULL AND a.status <> 'closed' AND a.kind <> 'term_deposit'
      AND (v.maintenance_fee_cents > 0 OR v.min_balance_fee_cents > 0
           OR v.overdraft_fee_cents > 0)),
moves AS (
    SELECT p.account_id, t.business_date AS day, sum(p.amount_cents) AS delta
    FROM postings p JOIN transactions t ON t.id = p.transaction_id
    WHERE t.business_date >= CAST(? AS DATE) AND p.transaction_id >= ?
      AND p.account_id IN (SELECT account_id FROM acc)
    GROUP BY 1, 2),
running AS (
    SELECT account_id, day,
           sum(delta) OVER (PARTITION BY account_id ORDER BY day) AS moved,
           sum(delta) OVER (PARTITION BY account_id) AS month_moved
    FROM moves),
low AS (
    SELECT account_id, min(moved) AS low_moved, min(day) AS first_move,
           max(month_moved) AS month_moved  -- the same on every row of the account
    FROM running GROUP BY 1)
SELECT acc.*, CAST(CASE
        WHEN low.account_id IS NULL THEN acc.balance_cents
        WHEN low.first_move > acc.first_day
            THEN least(acc.balance_cents - low.month_moved,
                       acc.balance_cents - low.month_moved + low.low_moved)
        ELSE acc.balance_cents - low.month_moved + low.low_moved END AS BIGINT)
       AS lowest_balance_cents
FROM acc LEFT JOIN low ON low.account_id = acc.account_id
ORDER BY acc.account_id
"""


def lowest_balances(uow, day: dt.date) -> pd.DataFrame:
    """Accounts whose product (in force on `day`) has a monthly fee, each with its lowest
    end-of-day balance in the month of `day` (LOWEST_BALANCE_SQL) and the fee terms."""
    start = day.replace(day=1)
    row = uow.fetchone("SELECT min(id) FROM transactions WHERE business_date >= ?", [start])
    first_tx = row[0] if row and row[0] is not None else 2 ** 62
    return uow.fetch_df(LOWEST_BALANCE_SQL.format(terms=_terms_sql()),
                        [day, start, start, first_tx])


def fee_events(low: pd.DataFrame, day: dt.date) -> pd.DataFrame:
    """The month's fee rows for charges.post_event_charges from lowest_balances' frame:
    maintenance for every account, min_balance when the lowest balance was below the minimum,
    overdraft when it was below zero; the reason names the month."""
    from ...domain.money import format_cents

    month = f"{day:%B %Y}"
    parts = []
    rules = (("maintenance", "maintenance_fee_cents", low["maintenance_fee_cents"] > 0),
             ("min_balance", "min_balance_fee_cents",
              (low["min_balance_fee_cents"] > 0)
              & (low["lowest_balance_cents"] < low["min_balance_cents"])),
             ("overdraft", "overdraft_fee_cents",
              (low["overdraft_fee_cents"] > 0) & (low["lowest_balance_cents"] < 0)))
    for code, column, due in rules:
        rows = low[due]
        # The reason is part of the charge's idempotency key, so it holds nothing that a
        # later posting on the same day could change (the lowest balance itself).
        if code == "min_balance":
            reasons = [f"{month}, below the minimum balance of {format_cents(m)}"
                       for m in rows["min_balance_cents"]]
        elif code == "overdraft":
            reasons = [f"{month}, overdrawn"] * len(rows)
        else:
            reasons = [month] * len(rows)
        parts.append(pd.DataFrame({"account_id": rows["account_id"].astype("int64"),
                                   "code": code, "amount_cents": rows[column].astype("int64"),
                                   "reason": reasons}))
    return pd.concat(parts, ignore_index=True)


def _charge_fees(bank, actor, uow, day, out) -> None:
    from ..charges import post_event_charges

    low = lowest_balances(uow, day)
    if len(low) == 0:
        return
    events = fee_events(low, day)
    if len(events) == 0:
        return
    out.fees_charged = int(post_event_charges(bank, actor, uow, events, day=day))
    out.fee_cents = int(uow.fetchone(
        "SELECT coalesce(sum(amount_cents), 0) FROM charges WHERE business_date = ? "
        "AND status = 'charged' AND code IN ('maintenance', 'min_balance', 'overdraft')",
        [day])[0])


def dormancy(bank, actor, uow, day: dt.date, settings: dict, out) -> None:
    """Step 6: mark accounts dormant after their product's dormancy_months (in force on
    `day`; the `dormancy_months` setting for accounts without a product) without customer
    activity, and make dormant accounts with activity active again. Term deposits never go
    dormant: nobody may move their money, so their quiet is no sign of abandonment."""
    nxt = day + dt.timedelta(days=1)
    groups: dict[int, list] = {}
    for product_id, months in uow.fetchall(
            f"SELECT product_id, dormancy_months FROM ({_terms_sql()}) v ORDER BY 1", [day]):
        groups.setdefault(int(months), []).append(int(product_id))
    fallback = int(settings.get("dormancy_months", "12"))
    groups.setdefault(fallback, []).append(None)
    # Business dates on both sides: the clock's stamps (last_activity_at) can lie far from
    # the business date when end of day lags behind or a bank's history is rebuilt.
    last = "coalesce(last_activity_date, opened_date)"
    for months, products in sorted(groups.items()):
        cutoff = add_months(nxt, -months)
        ids = [p for p in products if p is not None]
        which = " OR ".join(([f"product_id IN ({', '.join(map(str, ids))})"] if ids else [])
                            + (["product_id IS NULL"] if None in products else []))
        base = f"customer_id IS NOT NULL AND kind <> 'term_deposit' AND ({which})"
        # Both changes of the group read in one statement: an account made dormant here has
        # its last activity before the cutoff, so it can never be among those woken up.
        found = {"active": [], "dormant": []}
        for status, number in uow.fetchall(
                f"SELECT status, account_number FROM accounts WHERE {base} AND ("
                f"(status = 'active' AND {last} < ?) OR (status = 'dormant' AND {last} >= ?)) "
                "ORDER BY 2", [cutoff, cutoff]):
            found[status].append(number)
        for old, new, test, attr in (("active", "dormant", "<", "accounts_made_dormant"),
                                     ("dormant", "active", ">=", "accounts_reactivated")):
            where = f"status = '{old}' AND {last} {test} ? AND {base}"
            numbers = found[old]
            if numbers:
                uow.execute(f"UPDATE accounts SET status = '{new}' WHERE {where}", [cutoff])
                audit_set(bank, uow, actor, f"account.{new}", "account", numbers,
                          {"status": old}, {"status": new, "reason": (
                              f"no customer activity for {months} months" if new == "dormant"
                              else "customer activity"), "business_date": day})
            setattr(out, attr, getattr(out, attr) + len(numbers))
