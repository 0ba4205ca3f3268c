"""End of day on deposit products (issue 10, bankms/deposit_eod.py): the pure rules (day count,
tiers, posting periods) against values computed here with Decimal, then whole banks: tiered
accrual, posting periods, overdraft interest, tax at the product's rate, product fees, dormancy
per product, a product change dated tomorrow, a rerun, verify() and the trial balance."""
from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal

import pytest

from bankms import deposit_eod

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
