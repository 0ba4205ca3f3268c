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

import pandas as pd

from .bank import INTERNAL

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
    rounded half-up away from zero: negative for a negative balance. ACCRUE_SQL computes the
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
