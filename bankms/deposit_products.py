"""Deposit products as data (issue 10): checking, savings and term deposit products whose terms
(rate and tiers, day count, posting period, fees, overdraft, tax, dormancy, term and penalty)
managers create and change, versioned by the business date from which each version applies.

Tables (db.py): `deposit_products` (code, name, kind, active), `deposit_product_versions` (one
row per product and effective_date: the terms from that business date on) and
`deposit_product_tiers` (optional balance tiers of a version). A change applies from a business
date no earlier than tomorrow's, so the terms of a day already begun or closed never change.

`versions_in_force(uow, day)` is the one lookup of "the terms on day D" (end of day joins it);
`VERSIONS_IN_FORCE_SQL` is the same as a query with one parameter, the day.
"""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pandas as pd

from .errors import InvalidInput

KINDS = ("checking", "savings", "term_deposit")

# Every column of a version, in table order after (product_id, effective_date).
TERM_COLUMNS = (
    "interest_rate_percent", "day_count", "posting_period", "min_balance_cents",
    "min_balance_fee_cents", "maintenance_fee_cents", "overdraft_allowed",
    "overdraft_limit_max_cents", "overdraft_rate_percent", "overdraft_fee_cents",
    "withholding_tax_bp", "dormancy_months", "term_months_min", "term_months_max",
    "early_closure_penalty", "penalty_months", "penalty_rate_percent",
    "standing_order_fail_fee_cents")
VERSION_COLUMNS = ("product_id", "effective_date", *TERM_COLUMNS, "changed_at", "changed_by")
RATE_COLUMNS = ("interest_rate_percent", "overdraft_rate_percent", "penalty_rate_percent")

# The version in force on a day: the one with the largest effective_date on or before it. A day
# before a product's first version reads that first version, so history written before the
# products existed (an older bank's first days, the demo builder's past months) has terms.
# One parameter: the day.
VERSIONS_IN_FORCE_SQL = """
SELECT v.* FROM deposit_product_versions v, (SELECT CAST(? AS DATE) AS day) d
QUALIFY row_number() OVER (
    PARTITION BY v.product_id
    ORDER BY CASE WHEN v.effective_date <= d.day THEN 0 ELSE 1 END,
             CASE WHEN v.effective_date <= d.day THEN v.effective_date END DESC,
             v.effective_date) = 1
"""


def versions_in_force(uow, day: dt.date) -> pd.DataFrame:
    """One row per product: the version in force on `day` (VERSION_COLUMNS; rates DECIMAL
    as Decimal-valued object columns, cents int64). `uow` is a unit of work or a cursor."""
    cur = getattr(uow, "cur", uow)
    df = cur.execute(VERSIONS_IN_FORCE_SQL + " ORDER BY v.product_id", [day]).df()
    for column in RATE_COLUMNS:
        df[column] = [Decimal(str(v)).quantize(Decimal("0.0001")) for v in df[column]]
    return df


def _code(code) -> str:
    return str(code).strip().lower().replace(" ", "_")


class DepositProducts:
    """bank.deposit_products: reading and managing deposit products."""

    def __init__(self, bank):
        self._bank = bank

    # -- reading -----------------------------------------------------------------------------
    def _require_read(self, actor):
        # Products and their terms are public information, like loan products; the check
        # only makes sure someone is signed in.
        self._bank.require(actor, "deposit_product.read", getattr(actor, "customer_id", None))

    def _product_row(self, code, read_one=None) -> dict:
        row = (read_one or self._bank.read_one)(
            "SELECT id, code, name, kind, active, created_at, created_by FROM deposit_products "
            "WHERE code = ?", [_code(code)])
        if row is None:
            raise InvalidInput(f"There is no deposit product '{code}'.")
        return dict(zip(("id", "code", "name", "kind", "active", "created_at", "created_by"),
                        row))

    def _terms_on(self, product_id, day, read=None) -> dict:
        """The version of one product in force on `day` with its tiers (see module doc)."""
        read = read or self._bank.read
        rows = read("SELECT * FROM (" + VERSIONS_IN_FORCE_SQL + ") WHERE product_id = ?",
                    [day, product_id])
        if not rows:
            raise InvalidInput(f"Deposit product {product_id} has no terms.")
        terms = dict(zip(VERSION_COLUMNS, rows[0]))
        for column in RATE_COLUMNS:
            terms[column] = Decimal(str(terms[column])).quantize(Decimal("0.0001"))
        terms["tiers"] = [
            (int(cents), Decimal(str(rate)).quantize(Decimal("0.0001")))
            for cents, rate in read(
                "SELECT from_balance_cents, rate_percent FROM deposit_product_tiers "
                "WHERE product_id = ? AND effective_date = ? ORDER BY from_balance_cents",
                [product_id, terms["effective_date"]])]
        return terms

    def get(self, actor, code, on=None) -> dict:
        """The product `code` with the version of its terms in force on the business date
        `on` (default: the current business date): id, code, name, kind, active, created_at,
        created_by, every VERSION_COLUMNS entry (rates Decimal with 4 decimals, amounts in
        *_cents int) and 'tiers': [(from_balance_cents, rate_percent Decimal)], ascending.
        InvalidInput for an unknown code."""
        from .dates import as_date
        self._require_read(actor)
        day = as_date(on, "date") or self._bank.business_date
        product = self._product_row(code)
        return {**product, **self._terms_on(product["id"], day)}

    def list(self, actor, *, on=None) -> pd.DataFrame:
        """Every product (withdrawn ones too) with the version in force on `on` (default: the
        business date): code, name, kind, active, VERSION_COLUMNS, tier_count and
        future_versions (how many versions start after that day)."""
        from .dates import as_date
        self._require_read(actor)
        day = as_date(on, "date") or self._bank.business_date
        df = self._bank.read_df(
            "SELECT p.id, p.code, p.name, p.kind, p.active, v.* EXCLUDE (product_id), "
            "(SELECT count(*) FROM deposit_product_tiers t WHERE t.product_id = p.id "
            " AND t.effective_date = v.effective_date) AS tier_count, "
            "(SELECT count(*) FROM deposit_product_versions f WHERE f.product_id = p.id "
            " AND f.effective_date > ?) AS future_versions "
            "FROM deposit_products p JOIN (" + VERSIONS_IN_FORCE_SQL + ") v "
            "ON v.product_id = p.id ORDER BY p.kind, p.code", [day, day])
        for column in RATE_COLUMNS:
            df[column] = [Decimal(str(v)).quantize(Decimal("0.0001")) for v in df[column]]
        return df
