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

from ...domain.dates import as_date
from ...domain.errors import BankError, InvalidInput
from ..ledger import utcnow
from ...domain.validate import PRODUCT_CODE as _PRODUCT_CODE
from ...domain.validate import choice as _choice
from ...domain.validate import clean_rate
from ...domain.validate import clean_text as _clean_text
from ...domain.validate import whole as _whole
from ...domain.validate import yes_no as _yes_no
from ...domain.money import AMOUNT_CENTS_MAX, format_cents, to_cents

KINDS = ("checking", "savings", "term_deposit")
DAY_COUNTS = ("actual/365", "actual/actual", "30/360")
# 'maturity' is for term deposits only: their interest is paid at maturity or closure.
POSTING_PERIODS = ("monthly", "quarterly", "yearly", "maturity")
EARLY_CLOSURE_PENALTIES = ("none", "interest_months", "reduced_rate")
TIERS_MAX = 20
NAME_CHARS_MAX = 60
# Money terms: given as an amount under the name without _cents (text or Decimal, through
# money.to_cents) or as whole cents under the column's name.
MONEY_TERMS = ("min_balance_cents", "min_balance_fee_cents", "maintenance_fee_cents",
               "overdraft_limit_max_cents", "overdraft_fee_cents",
               "standing_order_fail_fee_cents")
# Whole-number terms and their ranges (term months may also be None: not a term deposit).
WHOLE_TERMS = {"withholding_tax_bp": (0, 10_000), "dormancy_months": (1, 120),
               "term_months_min": (1, 600), "term_months_max": (1, 600),
               "penalty_months": (0, 120)}

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
# One parameter: the day. (product_id, effective_date) is the table's key, so the join picks
# one version per product; callers may append clauses naming `v`.
VERSIONS_IN_FORCE_SQL = """
SELECT v.* FROM deposit_product_versions v JOIN (
    SELECT w.product_id,
           coalesce(max(w.effective_date) FILTER (WHERE w.effective_date <= d.day),
                    min(w.effective_date)) AS effective_date
    FROM deposit_product_versions w, (SELECT CAST(? AS DATE) AS day) d
    GROUP BY w.product_id, d.day) f
ON f.product_id = v.product_id AND f.effective_date = v.effective_date
"""


# The rate each account earns on a day (the rule of issue 10) is stated once, where end of day
# accrues it: deposit_eod.ACCOUNT_RATES_SQL (deposit_eod.account_rates_sql()).


def _plain(df: pd.DataFrame) -> pd.DataFrame:
    """Rates as Decimal with 4 decimals and effective dates as datetime.date (DuckDB gives
    floats and Timestamps)."""
    for column in RATE_COLUMNS:
        df[column] = [Decimal(str(v)).quantize(Decimal("0.0001")) for v in df[column]]
    df["effective_date"] = [pd.Timestamp(v).date() for v in df["effective_date"]]
    return df


def rate_at(base_rate, tiers, balance_cents: int):
    """The rate a balance earns: the rate of the highest tier whose from_balance_cents <= the
    balance, else the base rate (PLAN10 interface 1: a tier's rate applies to the whole
    balance)."""
    rate = base_rate
    for from_cents, tier_rate in sorted(tiers):
        if from_cents <= balance_cents:
            rate = tier_rate
    return rate


def versions_in_force(uow, day: dt.date) -> pd.DataFrame:
    """One row per product: the version in force on `day` (VERSION_COLUMNS; rates Decimal,
    effective_date datetime.date, cents int64). `uow` is a unit of work or a snapshot (a
    store.port Reader). In SQL, join VERSIONS_IN_FORCE_SQL instead (one parameter: the day)."""
    return _plain(uow.fetch_df(VERSIONS_IN_FORCE_SQL + " ORDER BY v.product_id", [day]))


def _code(code) -> str:
    return str(code).strip().lower().replace(" ", "_")


def _rate(value) -> Decimal:
    return clean_rate(value).quantize(Decimal("0.0001"))


def _whole_cents(value, label) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"Give {label} as whole cents (an int), or the amount as text "
                           "under its name without _cents.")
    if not 0 <= value <= AMOUNT_CENTS_MAX:
        raise InvalidInput(f"{label} must be between 0 and {AMOUNT_CENTS_MAX} cents.")
    return value


def _clean_term(name, value):
    """One term as given -> (column, stored value); InvalidInput/InvalidAmount if bad."""
    if name in RATE_COLUMNS:
        return name, _rate(value)
    if name in MONEY_TERMS:
        return name, _whole_cents(value, name)
    if f"{name}_cents" in MONEY_TERMS:
        return f"{name}_cents", to_cents(value, allow_zero=True)
    if name in WHOLE_TERMS:
        if value is None and name.startswith("term_months"):
            return name, None
        return name, _whole(value, name.replace("_", " "), *WHOLE_TERMS[name])
    if name == "overdraft_allowed":
        return name, _yes_no(value, "whether an overdraft is allowed")
    if name == "day_count":
        return name, _choice(value, DAY_COUNTS, "day count")
    if name == "posting_period":
        return name, _choice(value, POSTING_PERIODS, "posting period")
    if name == "early_closure_penalty":
        return name, _choice(value, EARLY_CLOSURE_PENALTIES, "early-closure penalty")
    raise InvalidInput(f"Unknown deposit product term '{name}'; a product has "
                       f"{', '.join(TERM_COLUMNS)}.")


def clean_terms(terms) -> dict:
    """Terms as callers give them -> {column: stored value}. Rates: text or Decimal, 0..100,
    at most 4 decimals (accounts.clean_rate). Money: text or Decimal under the name without
    _cents (money.to_cents, zero allowed, never negative) or int cents under the column name.
    Raises InvalidInput (InvalidAmount for a bad amount) naming the first bad term."""
    if not isinstance(terms, dict):
        raise InvalidInput("Give the product's terms as a dict of term names and values.")
    out = {}
    for name, value in terms.items():
        column, stored = _clean_term(str(name), value)
        out[column] = stored
    return out


def clean_tiers(tiers) -> list[tuple[int, Decimal]]:
    """Balance tiers -> [(from_balance_cents, rate_percent)], ascending. Each tier is a pair
    (from balance, rate): the balance as int cents or as an amount (text/Decimal, through
    to_cents), zero or more; balances strictly increasing; rates as clean_rate. A negative
    balance, a repeated or unordered one, or a bad rate: InvalidInput/InvalidAmount."""
    if tiers is None or isinstance(tiers, (str, bytes, dict)):
        raise InvalidInput("Give the tiers as a list of (from balance, rate) pairs.")
    out = []
    for tier in tiers:
        if not isinstance(tier, (tuple, list)) or len(tier) != 2:
            raise InvalidInput("Each tier is a pair: the balance it starts at and its rate.")
        start, rate = tier
        if isinstance(start, int) and not isinstance(start, bool):
            cents = start
        else:
            cents = to_cents(start, allow_zero=True, allow_negative=True)
        if cents < 0:
            raise InvalidInput("A tier cannot start below a zero balance.")
        _whole_cents(cents, "a tier's balance")
        if out and cents <= out[-1][0]:
            raise InvalidInput("Tier balances must be strictly increasing, each tier starting "
                               "above the one before.")
        out.append((cents, _rate(rate)))
    if len(out) > TIERS_MAX:
        raise InvalidInput(f"A product may have at most {TIERS_MAX} tiers.")
    return out


def parse_tiers(text: str) -> list[tuple[int, Decimal]]:
    """Tiers typed one per line as 'from balance: rate' ('5,000.00: 1.75'; blank lines
    ignored) -> clean_tiers of them. InvalidInput names a line that is not a pair."""
    pairs = []
    for number, line in enumerate(str(text or "").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split(":")
        if len(parts) != 2:
            raise InvalidInput(f"Tier line {number} ('{line.strip()[:40]}') is not "
                               "'from balance: rate', for example '5,000.00: 1.75'.")
        pairs.append((parts[0].strip(), parts[1].strip()))
    return clean_tiers(pairs)


def tiers_text(tiers) -> str:
    """Tiers [(from_balance_cents, rate)] as parse_tiers reads them, one per line."""
    return "\n".join(f"{format_cents(cents, '')}: {rate.normalize():f}"
                     for cents, rate in tiers)


def check_terms(kind: str, terms: dict) -> None:
    """Rules across one version's terms (stored values) for a product of `kind`."""
    term_deposit = kind == "term_deposit"
    if (terms["posting_period"] == "maturity") != term_deposit:
        raise InvalidInput("Interest is paid at maturity for term deposits, and only for them: "
                           "choose monthly, quarterly or yearly posting otherwise.")
    if terms["overdraft_allowed"] and kind != "checking":
        raise InvalidInput("Only checking products can allow an overdraft.")
    if not terms["overdraft_allowed"] and (
            terms["overdraft_limit_max_cents"] or terms["overdraft_rate_percent"]
            or terms["overdraft_fee_cents"]):
        raise InvalidInput("An overdraft limit, rate or fee needs the overdraft allowed.")
    if terms["min_balance_fee_cents"] and not terms["min_balance_cents"]:
        raise InvalidInput("A minimum-balance fee needs a minimum balance.")
    low, high = terms["term_months_min"], terms["term_months_max"]
    if term_deposit:
        if low is None or high is None or low > high:
            raise InvalidInput("A term deposit product needs its shortest and longest term in "
                               "months, the shortest not above the longest.")
    elif low is not None or high is not None:
        raise InvalidInput("Only term deposit products have terms in months.")
    penalty = terms["early_closure_penalty"]
    if penalty != "none" and not term_deposit:
        raise InvalidInput("Only term deposits have an early-closure penalty.")
    if penalty == "interest_months" and terms["penalty_months"] < 1:
        raise InvalidInput("Give how many months of interest early closure costs (1 or more).")
    if penalty == "reduced_rate" and terms["penalty_rate_percent"] > terms[
            "interest_rate_percent"]:
        raise InvalidInput("The reduced rate paid on early closure must not exceed the "
                           "product's rate.")


def _audit_form(terms: dict) -> dict:
    return {k: (f"{v:f}" if isinstance(v, Decimal) else
                [[c, f"{r:f}"] for c, r in v] if k == "tiers" else v)
            for k, v in terms.items()}


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
        rows = read("SELECT * FROM (" + VERSIONS_IN_FORCE_SQL + ") AS v WHERE product_id = ?",
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
        self._require_read(actor)
        day = as_date(on, "date") or self._bank.business_date
        product = self._product_row(code)
        return {**product, **self._terms_on(product["id"], day)}

    def list(self, actor, *, on=None) -> pd.DataFrame:
        """Every product (withdrawn ones too) with the version in force on `on` (default: the
        business date): code, name, kind, active, VERSION_COLUMNS, tier_count and
        future_versions (how many versions start after that day)."""
        self._require_read(actor)
        day = as_date(on, "date") or self._bank.business_date
        df = self._bank.read_df(
            "SELECT p.id, p.code, p.name, p.kind, p.active, "
            + ", ".join("v." + c for c in VERSION_COLUMNS if c != "product_id") + ", "
            "(SELECT count(*) FROM deposit_product_tiers t WHERE t.product_id = p.id "
            " AND t.effective_date = v.effective_date) AS tier_count, "
            "(SELECT count(*) FROM deposit_product_versions f WHERE f.product_id = p.id "
            " AND f.effective_date > ?) AS future_versions "
            "FROM deposit_products p JOIN (" + VERSIONS_IN_FORCE_SQL + ") v "
            "ON v.product_id = p.id ORDER BY p.kind, p.code", [day, day])
        return _plain(df)

    def versions(self, actor, code) -> pd.DataFrame:
        """Every version of one product, oldest first: VERSION_COLUMNS, 'tiers' (text, as
        tiers_text) and 'state' ('past', 'in force' on the business date, or 'future')."""
        self._require_read(actor)
        product = self._product_row(code)
        today = self._bank.business_date
        df = _plain(self._bank.read_df(
            "SELECT * FROM deposit_product_versions WHERE product_id = ? ORDER BY "
            "effective_date", [product["id"]]))
        tiers = {}
        for day, cents, rate in self._bank.read(
                "SELECT effective_date, from_balance_cents, rate_percent FROM "
                "deposit_product_tiers WHERE product_id = ? ORDER BY 1, 2", [product["id"]]):
            tiers.setdefault(day, []).append((cents, Decimal(str(rate))))
        df["tiers"] = [tiers_text(tiers.get(day, [])) for day in df["effective_date"]]
        in_force = self._terms_on(product["id"], today)["effective_date"]
        df["state"] = ["in force" if day == in_force else "future" if day > today else "past"
                       for day in df["effective_date"]]
        return df

    # -- for accounts (accounts.py) -----------------------------------------------------------
    def offered(self, code, kind=None) -> dict:
        """The product `code` with its terms in force on the business date, for a new account
        of `kind` (None: the product's kind). InvalidInput if there is no such product, it is
        withdrawn, or it is of another kind."""
        product = self._product_row(code)
        if not product["active"]:
            raise InvalidInput(f"The deposit product '{product['code']}' is withdrawn and "
                               "takes no new accounts.")
        if kind is not None and product["kind"] != kind:
            raise InvalidInput(f"The deposit product '{product['code']}' is for "
                               f"{product['kind'].replace('_', ' ')} accounts, not {kind}.")
        return {**product, **self._terms_on(product["id"], self._bank.business_date)}

    def overdraft_allowed_by(self, product_id, cents: int) -> None:
        """InvalidInput unless the product (terms in force on the business date) allows an
        overdraft limit of `cents` (0 is always allowed)."""
        if not cents or product_id is None:
            return
        terms = self._terms_on(product_id, self._bank.business_date)
        name = self._bank.read_one("SELECT name FROM deposit_products WHERE id = ?",
                                   [product_id])[0]
        if not terms["overdraft_allowed"]:
            raise InvalidInput(f"The product {name} allows no overdraft.")
        if cents > terms["overdraft_limit_max_cents"]:
            raise InvalidInput(f"The product {name} allows an overdraft limit of at most "
                               f"{format_cents(terms['overdraft_limit_max_cents'])}.")

    # -- managing ----------------------------------------------------------------------------
    def defaults(self, kind: str) -> dict:
        """The terms a new product of `kind` gets unless given: no interest, actual/365,
        monthly posting (at maturity for term deposits, 3 to 60 months, no penalty), no fees,
        no overdraft, and the bank's current withholding-tax and dormancy settings."""
        settings = self._bank.settings
        term_deposit = kind == "term_deposit"
        return {
            "interest_rate_percent": Decimal("0.0000"), "day_count": "actual/365",
            "posting_period": "maturity" if term_deposit else "monthly",
            **{column: 0 for column in MONEY_TERMS}, "overdraft_allowed": False,
            "overdraft_rate_percent": Decimal("0.0000"),
            "withholding_tax_bp": settings.get_int("interest_withholding_tax_bp", 0),
            "dormancy_months": settings.get_int("dormancy_months", 12),
            "term_months_min": 3 if term_deposit else None,
            "term_months_max": 60 if term_deposit else None,
            "early_closure_penalty": "none", "penalty_months": 0,
            "penalty_rate_percent": Decimal("0.0000")}

    def create(self, actor, *, code, name, kind, terms: dict, tiers=(),
               effective_date=None):
        """Managers: a new product, offered at once. `terms` (see clean_terms) override
        defaults(kind); `tiers` see clean_tiers. effective_date (default: the business date;
        not earlier, since no account can have been on the product before it existed) is the
        date its first version starts. Returns get() of the product, or a PendingApproval when
        a paid rate above the four-eyes rate (setting four_eyes_rate_bp) waits for a second
        manager. Raises PermissionDenied, InvalidInput or InvalidAmount (audited); nothing
        changes then."""
        def prepare():
            text = _code(code)
            if not _PRODUCT_CODE.match(text):
                raise InvalidInput("A product code is 2 to 30 lower-case letters, digits or "
                                   "underscores, starting with a letter.")
            clean_kind = _choice(kind, KINDS, "kind of product")
            params = {"code": text, "name": _clean_text(name, "product name", 2,
                                                        NAME_CHARS_MAX), "kind": clean_kind,
                      "effective_date": self._start(effective_date, earliest_days=0),
                      "terms": {**self.defaults(clean_kind), **clean_terms(terms)},
                      "tiers": clean_tiers(tiers)}
            check_terms(clean_kind, params["terms"])
            return params, None
        return self._manage(actor, "deposit_product.create", code, prepare,
                            lambda p: f"New deposit product {p['code']} paying up to "
                                      f"{self._rate_max(p)} %", self._create_in)

    def change(self, actor, code, *, terms: dict, tiers=None, effective_date):
        """Managers: new terms for a product from the business date `effective_date` on,
        which must be tomorrow's business date or later (the past never changes). `terms`
        (see clean_terms) change the version in force on that date; the others stay; tiers
        None keeps its tiers, () removes them. A version already starting that day is
        replaced; later versions still apply from their own dates. Accounts already open keep
        their overdraft limits. Returns get(on=effective_date), or a PendingApproval when a
        new paid rate above the four-eyes rate waits for a second manager. Raises
        PermissionDenied, InvalidInput or InvalidAmount (audited); nothing changes then."""
        def prepare():
            product = self._product_row(code)
            start = self._start(effective_date, earliest_days=1)
            before = self._terms_on(product["id"], start)
            kept = {k: before[k] for k in TERM_COLUMNS}
            params = {"code": product["code"], "effective_date": start,
                      "terms": {**kept, **clean_terms(terms)},
                      "tiers": before["tiers"] if tiers is None else clean_tiers(tiers)}
            check_terms(product["kind"], params["terms"])
            if (params["terms"], params["tiers"]) == (kept, before["tiers"]):
                raise InvalidInput(f"Nothing to change: deposit product {product['code']} "
                                   f"already has these terms on {start}.")
            return params, before
        return self._manage(actor, "deposit_product.change", code, prepare,
                            lambda p: f"Deposit product {p['code']} from "
                                      f"{p['effective_date']}: rates up to "
                                      f"{self._rate_max(p)} %", self._change_in)

    def set_active(self, actor, code, active) -> dict:
        """Managers: offer a product to new accounts again (True) or withdraw it (False);
        accounts already on it keep it and its terms. Audited. Returns get()."""
        bank = self._bank
        action = "deposit_product.set_active"
        bank.require(actor, "deposit_product.manage", entity="deposit_product",
                     entity_id=str(code)[:40])
        try:
            active = _yes_no(active, "whether the product is offered")
            product = self._product_row(code)
        except BankError as exc:
            bank.record_refusal(actor, action, exc, entity="deposit_product",
                                entity_id=str(code)[:40])
            raise

        def fn(uow):
            uow.execute("UPDATE deposit_products SET active = ? WHERE id = ?",
                        [active, product["id"]])
            bank.audit_row(uow, actor, action, "deposit_product", product["code"],
                           before={"active": product["active"]}, after={"active": active})
        self._write_refusing(actor, action, product["code"], fn)
        return self.get(actor, product["code"])

    def _manage(self, actor, action, code, prepare, summary, write_in):
        """What create and change share: the permission; prepare() -> (params, terms before
        or None), its refusal audited; a new paid rate above the four-eyes rate queued for a
        second manager (returns the PendingApproval); else write_in(uow, actor, params) in one
        transaction and get() of the product on its effective date."""
        bank = self._bank
        bank.require(actor, "deposit_product.manage", entity="deposit_product",
                     entity_id=str(code)[:40])
        try:
            params, before = prepare()
        except BankError as exc:
            bank.record_refusal(actor, action, exc, entity="deposit_product",
                                entity_id=str(code)[:40])
            raise
        if self._rates_wait(actor, params, before):
            return bank.approvals.request(actor, action, params=_audit_form(params),
                                          summary=summary(params))
        self._write_refusing(actor, action, params["code"],
                             lambda uow: write_in(uow, actor, params))
        return self.get(actor, params["code"], on=params["effective_date"])

    # -- inside a unit of work (also what an approved four-eyes request carries out) ---------
    def _create_in(self, uow, actor, params: dict) -> None:
        # Approved on a later day, a new product starts on the day of its approval: no
        # account can have been on it before.
        day = max(as_date(params["effective_date"]), self._bank.business_date)
        params = self._recheck({**params, "effective_date": day}, earliest_days=0)
        if uow.fetchone("SELECT 1 FROM deposit_products WHERE code = ?", [params["code"]]):
            raise InvalidInput(f"There is already a deposit product '{params['code']}'.")
        pid = uow.fetchone("SELECT nextval('deposit_product_id_seq')")[0]
        uow.execute("INSERT INTO deposit_products (id, code, name, kind, active, created_at, "
                    "created_by) VALUES (?, ?, ?, ?, TRUE, ?, ?)",
                    [pid, params["code"], params["name"], params["kind"], utcnow(),
                     actor.username])
        self._insert_version(uow, actor, pid, params)
        self._bank.audit_row(uow, actor, "deposit_product.create", "deposit_product",
                             params["code"], after=_audit_form(params))

    def _change_in(self, uow, actor, params: dict) -> None:
        params = self._recheck(params, earliest_days=1)
        product = self._product_row(params["code"], read_one=uow.fetchone)
        check_terms(product["kind"], params["terms"])
        start = params["effective_date"]
        before = self._terms_on(product["id"], start, read=uow.fetchall)
        for table in ("deposit_product_tiers", "deposit_product_versions"):
            uow.execute(f"DELETE FROM {table} WHERE product_id = ? AND effective_date = ?",
                        [product["id"], start])
        self._insert_version(uow, actor, product["id"], params)
        self._bank.audit_row(
            uow, actor, "deposit_product.change", "deposit_product", product["code"],
            before=_audit_form({"effective_date": before["effective_date"],
                                **{k: before[k] for k in TERM_COLUMNS},
                                "tiers": before["tiers"]}),
            after=_audit_form({"effective_date": start, **params["terms"],
                               "tiers": params["tiers"]}))

    def _recheck(self, params: dict, *, earliest_days: int) -> dict:
        """Params cleaned again (they may come back from an approval request as JSON, and the
        business date may have moved since they were checked)."""
        return {**params, "effective_date": self._start(params["effective_date"],
                                                        earliest_days=earliest_days),
                "terms": clean_terms(params["terms"]), "tiers": clean_tiers(params["tiers"])}

    @staticmethod
    def _insert_version(uow, actor, product_id, params) -> None:
        columns = ("product_id", "effective_date", *TERM_COLUMNS, "changed_at", "changed_by")
        terms = params["terms"]
        uow.execute(
            f"INSERT INTO deposit_product_versions ({', '.join(columns)}) VALUES "
            f"({', '.join('?' * len(columns))})",
            [product_id, params["effective_date"], *[terms[c] for c in TERM_COLUMNS],
             utcnow(), actor.username])
        for cents, rate in params["tiers"]:
            uow.execute("INSERT INTO deposit_product_tiers VALUES (?, ?, ?, ?)",
                        [product_id, params["effective_date"], cents, rate])

    # -- helpers -----------------------------------------------------------------------------
    def _start(self, value, *, earliest_days: int) -> dt.date:
        """The effective date: a business date no earlier than business date + earliest_days."""
        today = self._bank.business_date
        day = as_date(value, "effective date") if value is not None else None
        if day is None:
            if earliest_days:
                raise InvalidInput("Give the business date from which the new terms apply.")
            return today
        earliest = today + dt.timedelta(days=earliest_days)
        if day < earliest:
            raise InvalidInput(f"New terms apply from {earliest} at the earliest (the business "
                               f"date is {today}); the past never changes.")
        return day

    @staticmethod
    def _rate_max(params) -> Decimal:
        return max([params["terms"]["interest_rate_percent"],
                    *[rate for _, rate in params["tiers"]]])

    def _rates_wait(self, actor, params, before) -> bool:
        """A change that pays some balance a rate above the four-eyes rate, and more than that
        balance earned before, waits for a second manager, as a savings account's rate does
        (accounts.py). Rates are compared balance by balance, not as a set: moving an approved
        5 % tier from 1,000,000.00 down to 0.01, or giving the base rate the rate a second
        manager approved for a high tier, pays more and so waits. The rate is a step function
        of the balance (rate_at), so comparing it at every tier start of either version and
        at zero covers every balance."""
        bank = self._bank
        if not bank.approvals.applies_to(actor):
            return False
        limit = Decimal(bank.settings.get_int("four_eyes_rate_bp", 200)) / 100
        new_base, new_tiers = params["terms"]["interest_rate_percent"], params["tiers"]
        if before is None:
            return any(rate > limit for rate in (new_base, *[r for _, r in new_tiers]))
        old_base, old_tiers = before["interest_rate_percent"], before["tiers"]
        starts = {0, *[c for c, _ in new_tiers], *[c for c, _ in old_tiers]}
        return any(rate_at(new_base, new_tiers, b) > limit
                   and rate_at(new_base, new_tiers, b) > rate_at(old_base, old_tiers, b)
                   for b in starts)

    def _write_refusing(self, actor, action, code, fn):
        """bank.write(fn); a BankError raised inside is audited as a refusal, then raised."""
        try:
            return self._bank.write(fn)
        except BankError as exc:
            self._bank.record_refusal(actor, action, exc, entity="deposit_product",
                                      entity_id=code)
            raise
