"""Withholding tax on interest: the rate in force for an account on a day, and the tax on an
amount of interest (half-up to the cent). Used by end of day, term deposits and account
closing; a module of its own so that none of them imports another for the rule.
"""
from __future__ import annotations

import datetime as dt

import pandas as pd

from .products import VERSIONS_IN_FORCE_SQL
from ...domain.money import BASIS_POINTS_PER_UNIT
from ..settings import REGISTRY



def withholding_tax_bp(uow, account_ids, day: dt.date) -> pd.Series:
    """The withholding tax rate, in hundredths of a percent (1500 = 15.00 %), for each of
    `account_ids` (ints) on business date `day`, as a Series indexed by account id.

    The rate of the account's deposit product in the version in force on `day`
    (deposit_products, issue 10), so a change applies from its effective date, never
    backwards; an account without a product pays the bank-wide setting
    `interest_withholding_tax_bp` as stored now. Month end asks for all its accounts at once,
    a close for one."""
    key = "interest_withholding_tax_bp"
    row = uow.fetchone("SELECT value FROM settings WHERE key = ?", [key])
    fallback = int(row[0] if row else REGISTRY[key].default)
    ids = [int(i) for i in account_ids]
    # A list parameter, not a scanned frame: readers (a page's snapshot) cannot scan on
    # PostgreSQL. An id of no account, like an account without a product, pays the fallback.
    rates = dict(uow.fetchall(
        f"WITH v AS ({VERSIONS_IN_FORCE_SQL}) SELECT a.id, "
        "CAST(coalesce(v.withholding_tax_bp, ?) AS BIGINT) FROM accounts a "
        "LEFT JOIN v ON v.product_id = a.product_id WHERE "
        + uow.dialect.in_list("a.id", "BIGINT"), [day, fallback, ids]))
    return pd.Series([rates.get(i, fallback) for i in ids], index=ids, dtype="int64")


def withholding_tax_cents(gross_cents, rate_bp):
    """Tax withheld on `gross_cents` of interest at `rate_bp` hundredths of a percent: gross x
    rate, rounded half-up to the cent, in integer arithmetic (ints or int64 Series alike).

    Half-up, the rounding of every other amount the bank computes (interest, fees, provisions),
    rather than down: rounding down would withhold up to a cent less than the law's rate on
    every posting, short the tax authority systematically, and leave the bank owing the
    difference; half-up is unbiased over many postings (0.15 x 10.41 = 1.5615 -> 1.56;
    0.15 x 0.10 = 0.015 -> 0.02)."""
    return (2 * gross_cents * rate_bp + BASIS_POINTS_PER_UNIT) // (2 * BASIS_POINTS_PER_UNIT)
