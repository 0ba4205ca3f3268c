"""Term (fixed) deposits: opening from a linked account, maturity at end of day (payout or
renewal), early closure by staff with the product's penalty, and the customer's view.

A term deposit is an account of kind 'term_deposit' with its own account number, plus one row
of `term_deposits` per term. Its account carries the contract rate as
accounts.interest_rate_percent with rate_negotiated = TRUE, so the daily accrual of end of day
(eod.py) accrues it at that rate on its end-of-day balance, in micro-cents, like any account;
month end never posts it (eod.MONTH_END_SQL leaves term deposits out): this module posts the
interest at maturity or early closure. Only this module moves a term deposit's money: the
ledger refuses any other request that touches one (ledger.PostingRequest.term_deposit_ok,
errors.TermDepositLocked), and accounts.close refuses it.

Rules (issue 10; where the issue is silent, what a retail bank does):

- **Opening.** Customers for their own linked account, staff for any customer's; the
  principal (bankms.domain.money.to_cents) moves by one `transfer` from the linked account (checking
  or savings, open, not frozen) into the new deposit account. It must be covered by the linked
  account's balance less holds: a deposit is never funded from an overdraft. The product (a
  deposit product of kind 'term_deposit', deposit_products.py) must be active and the term
  inside its term_months_min..term_months_max. The rate is the product's in force on the
  opening business date (its tier for the principal, if it has tiers, else its base rate) and
  is kept with the day count as the deposit's snapshot: later product changes never touch it.
- **Maturity date.** start + term months (dateutil.relativedelta); when that day does not
  exist in the month, the month's last day (31 Jan + 1 month = 28 or 29 Feb).
- **Interest** is what end of day accrued on the deposit for the days start..maturity - 1
  (interest_accruals), rounded half-up to the cent once, at maturity or closure (nothing is
  carried past it; the rounding difference is kept in interest_postings as at an account
  close). Withholding tax at the rate tax.withholding_tax_bp gives for the account (the
  product's rate) is withheld in the same 3-leg `interest` transaction as at month end: gross
  from GL5000, tax to GL2100, net to the deposit.
- **Maturity** runs in end of day of D for deposits maturing on or before D + 1 (PLAN10 step
  4, after the day's accrual), so the money is in the linked account when business date D + 1
  (the maturity date) opens. 'payout': principal + net interest to the linked account, the
  deposit account closes (status 'matured'). 'renew': principal + net interest move into a
  **new** term deposit account (new number; the old row is 'renewed' and names it), same
  product, term and instruction, starting on the maturity date at the product's rate in force
  then. 'renew_principal': the principal renews the same way and the net interest goes to the
  linked account. A new account per term keeps each term's accruals, interest and statement
  apart, and the old row stays as the record of what that term paid. A deposit whose product
  has been withdrawn, or whose term the product no longer offers, is paid out instead (the
  audit row says why). A frozen deposit is not matured while frozen (money may not leave it);
  it matures at the first end of day after it is unfrozen, paid the interest of its term.
  Everything runs in the end-of-day unit of work and moves the row out of 'active', so a rerun
  of the day (eod_runs) or of a later day never pays twice.
- **Early closure** (tellers and managers, with a reason): interest accrued to the closing
  business date (the day itself earns nothing, as at an account close), less the product's
  penalty as it stood on the deposit's first day (part of the contract, like the rate; a later
  product change never touches a deposit already open):
  'interest_months' forfeits the interest of the last penalty_months months of accrual
  (the accruals dated on or after closing date - N months), 'reduced_rate' pays the interest
  recomputed at penalty_rate_percent instead of the contract rate (the accrued micro-cents
  scaled by penalty rate / contract rate, so it follows the accrual's day count), 'none'
  forfeits nothing. **The penalty never exceeds the interest earned**: principal is never
  touched (no product field says otherwise), and a reduced rate above the contract rate
  forfeits nothing. Tax is withheld on the interest actually paid (gross - penalty). The
  ledger shows it as the certificate expects (like a 1099-INT): an `interest` transaction of
  the gross interest with the tax leg, a `penalty` transaction taking the penalty from the
  deposit back to GL5000 (the interest the bank does not pay is no expense), and a `transfer`
  of the balance to the linked account. The yearly interest certificate reads its penalty
  field from those `penalty` postings (reports.interest_certificate), so it equals
  term_deposits.penalty_cents of the deposits closed in the year.
"""
from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pandas as pd
from dateutil.relativedelta import relativedelta

from ...domain import accountnum
from ...domain.chart import INTERNAL
from ...domain.errors import (
    AccountClosed,
    AccountFrozen,
    AccountNotFound,
    CustomerNotActive,
    IdempotencyConflict,
    InvalidInput,
    InvalidState,
    PermissionDenied,
)
from ...domain.keys import clean_key, system_key
from ..ledger import TRANSACTIONAL_KINDS, PostingRequest, utcnow
from ...domain.money import to_cents, to_money
from ..posting_frames import post_frames, tx_ids_at
from .tax import withholding_tax_bp, withholding_tax_cents

MICRO_PER_CENT = 1_000_000
RATE_SCALE = 10_000  # rates have at most four decimals (accounts.clean_rate)
INSTRUCTIONS = ("payout", "renew", "renew_principal")
PENALTY_RULES = ("none", "interest_months", "reduced_rate")
DAY_COUNTS = ("actual/365", "actual/actual", "30/360")
TERM_MONTHS_MAX = 600
REASON_CHARS_MAX = 300
DEFAULT_PRODUCT = "term_deposit"


# -- pure arithmetic -----------------------------------------------------------------------------
def maturity_date(start: dt.date, term_months: int) -> dt.date:
    """start + term_months calendar months; a day the month lacks becomes its last day
    (relativedelta's rule: 2026-01-31 + 1 month = 2026-02-28)."""
    return start + relativedelta(months=term_months)


def cents_half_up(micro_cents: int) -> int:
    """Micro-cents (1e-6 cent, >= 0) to whole cents, half-up."""
    return (int(micro_cents) + MICRO_PER_CENT // 2) // MICRO_PER_CENT


def _rate_units(rate) -> int:
    """A rate in percent (Decimal or text, at most four decimals) as ten-thousandths."""
    units = Decimal(str(rate)) * RATE_SCALE
    if units != units.to_integral_value():
        raise InvalidInput(f"The rate {rate} has more than four decimals.")
    return int(units)


def _year_days(day: dt.date, day_count: str) -> int:
    if day_count == "30/360":
        return 360
    if day_count == "actual/actual":
        return 366 if (day.year % 4 == 0 and (day.year % 100 != 0 or day.year % 400 == 0)) \
            else 365
    return 365


def daily_micro_cents(balance_cents: int, rate, day_count: str = "actual/365",
                      day: dt.date | None = None) -> int:
    """One day's interest in micro-cents on an end-of-day balance: balance x rate % / days in
    the year of the day count, half-up to the micro-cent (eod.accrue_sql's formula for
    actual/365)."""
    denominator = _year_days(day or dt.date(2001, 1, 1), day_count)
    return (2 * int(balance_cents) * _rate_units(rate) + denominator) // (2 * denominator)


def _days_360(start: dt.date, end: dt.date) -> int:
    """30/360 (US bond basis) day count from start to end."""
    d1, d2 = min(start.day, 30), end.day
    if d2 == 31 and d1 == 30:
        d2 = 30
    return (end.year - start.year) * 360 + (end.month - start.month) * 30 + d2 - d1


def expected_interest_cents(principal_cents: int, rate, start: dt.date, maturity: dt.date,
                            day_count: str = "actual/365") -> int:
    """Gross interest a deposit earns from start to maturity if nothing changes: the sum of
    its daily accruals on the principal (days start..maturity - 1), half-up to the cent.
    Exact for actual/365 and actual/actual (the accrual's own formula); for 30/360 the days
    are counted 30/360, an estimate of what the accrual will give."""
    if day_count == "30/360":
        total = _days_360(start, maturity) * daily_micro_cents(principal_cents, rate, day_count)
    else:
        total = 0
        day = start
        while day < maturity:
            year_end = min(dt.date(day.year + 1, 1, 1), maturity)
            total += (year_end - day).days * daily_micro_cents(principal_cents, rate, day_count,
                                                               day)
            day = year_end
    return cents_half_up(total)


def early_closure_split(*, accrued_micro_cents: int, last_months_micro_cents: int, rule: str,
                        rate, penalty_rate) -> tuple[int, int]:
    """(gross interest cents, penalty cents) of an early closure.

    gross = the accrued micro-cents half-up to the cent. Penalty by rule: 'none' 0;
    'interest_months' the accruals of the last N months (last_months_micro_cents) half-up;
    'reduced_rate' gross less the interest at penalty_rate instead of rate (accrued x
    penalty_rate / rate, half-up). Never more than gross and never negative, so the
    principal is never touched."""
    gross = cents_half_up(accrued_micro_cents)
    if rule == "none" or gross == 0:
        return gross, 0
    if rule == "interest_months":
        penalty = cents_half_up(last_months_micro_cents)
    elif rule == "reduced_rate":
        rate_units, reduced_units = _rate_units(rate), _rate_units(penalty_rate)
        paid = ((2 * int(accrued_micro_cents) * reduced_units + rate_units * MICRO_PER_CENT)
                // (2 * rate_units * MICRO_PER_CENT))
        penalty = gross - paid
    else:
        raise InvalidInput(f"Unknown early-closure penalty '{rule}'.")
    return gross, max(0, min(penalty, gross))


def rate_for(terms: dict, principal_cents: int) -> Decimal:
    """The product's rate for a principal: its highest tier whose from_balance_cents <= the
    principal (PLAN10: a tier's rate applies to the whole balance), else its base rate."""
    from .products import rate_at
    return Decimal(str(rate_at(terms["interest_rate_percent"], terms.get("tiers") or (),
                               principal_cents)))


def clean_term_months(value) -> int:
    if isinstance(value, (bool, float)):
        raise InvalidInput("Give the term as a whole number of months, for example 12.")
    text = str(value).strip()
    if not text.isdigit() or not 1 <= int(text) <= TERM_MONTHS_MAX:
        raise InvalidInput(f"The term must be a whole number of months from 1 to "
                           f"{TERM_MONTHS_MAX}.")
    return int(text)


def clean_instruction(value) -> str:
    if value not in INSTRUCTIONS:
        raise InvalidInput("At maturity the deposit is paid out ('payout'), renewed with its "
                           "interest ('renew') or renewed without it ('renew_principal').")
    return value


def clean_reason(value) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput("Please give a reason for closing the term deposit early.")
    reason = " ".join(value.split())
    if len(reason) > REASON_CHARS_MAX:
        raise InvalidInput(f"A reason may have at most {REASON_CHARS_MAX} characters.")
    return reason


# -- product terms (deposit_products.py, PLAN10 interface 1) --------------------------------------
def product_terms(bank, uow, *, day: dt.date, code: str | None = None,
                  product_id: int | None = None) -> dict | None:
    """The deposit product `code` (or `product_id`): product_id, code, name, kind, active and
    its version in force on `day` with 'tiers' (deposit_products' own lookup), read in the
    caller's unit of work; None when there is no such product."""
    where, value = ("code = ?", code) if code is not None else ("id = ?", product_id)
    row = uow.fetchone(f"SELECT id, code, name, kind, active FROM deposit_products "
                       f"WHERE {where}", [value])
    if row is None:
        return None
    terms = bank.deposit_products._terms_on(row[0], day, read=uow.fetchall)
    return {**terms, **dict(zip(("product_id", "code", "name", "kind", "active"), row))}


def products_terms(uow, *, day: dt.date, product_ids) -> dict:
    """product_terms for several products at once, set-based: {product_id: terms} (the same
    dicts as product_terms), from one read of the versions in force on `day`
    (deposit_products.VERSIONS_IN_FORCE_SQL, joined in SQL) and one of their tiers. Products
    that do not exist are left out; InvalidInput if one has no terms (as _terms_on)."""
    from .products import RATE_COLUMNS, VERSION_COLUMNS, VERSIONS_IN_FORCE_SQL
    ids = sorted({int(p) for p in product_ids})
    if not ids:
        return {}
    products = uow.fetchall("SELECT id, code, name, kind, active FROM deposit_products "
                            "WHERE " + uow.dialect.in_list("id", "BIGINT"), [ids])
    versions = {row[0]: row for row in uow.fetchall(
        f"SELECT v.* FROM ({VERSIONS_IN_FORCE_SQL}) v WHERE "
        + uow.dialect.in_list("v.product_id", "BIGINT"), [day, ids])}
    tiers = {}
    for pid, cents, rate in uow.fetchall(
            f"SELECT t.product_id, t.from_balance_cents, t.rate_percent FROM "
            f"({VERSIONS_IN_FORCE_SQL}) v JOIN deposit_product_tiers t "
            "ON t.product_id = v.product_id AND t.effective_date = v.effective_date "
            "WHERE " + uow.dialect.in_list("v.product_id", "BIGINT") + " "
            "ORDER BY t.product_id, t.from_balance_cents", [day, ids]):
        tiers.setdefault(pid, []).append(
            (int(cents), Decimal(str(rate)).quantize(Decimal("0.0001"))))
    out = {}
    for row in products:
        if row[0] not in versions:
            raise InvalidInput(f"Deposit product {row[0]} has no terms.")
        terms = dict(zip(VERSION_COLUMNS, versions[row[0]]))
        for column in RATE_COLUMNS:
            terms[column] = Decimal(str(terms[column])).quantize(Decimal("0.0001"))
        terms["tiers"] = tiers.get(row[0], [])
        out[row[0]] = {**terms, **dict(zip(("product_id", "code", "name", "kind", "active"),
                                           row))}
    return out


def renewal_refusal(terms: dict | None, term_months: int) -> str | None:
    """Why a deposit cannot renew under these terms (None: it can)."""
    if terms is None or not terms["active"]:
        return "the product takes no new deposits"
    low, high = terms.get("term_months_min"), terms.get("term_months_max")
    if (low is not None and term_months < low) or (high is not None and term_months > high):
        return f"the product no longer offers a term of {term_months} months"
    return None


# -- the service ---------------------------------------------------------------------------------
class TermDeposits:
    """bank.term_deposits: open, close_early, list, get, verify (see the module docstring)."""

    def __init__(self, bank):
        self._bank = bank

    # -- opening -----------------------------------------------------------------------------
    def _request(self, actor, customer_id, linked_account, amount, term_months, product,
                 maturity_instruction) -> dict:
        """The checks that need no database, in order; the cleaned request."""
        bank = self._bank
        if customer_id is None and getattr(actor, "role", None) == "customer":
            customer_id = actor.customer_id
        cid = bank.customers._id(customer_id)
        bank.require(actor, "term_deposit.open", cid, entity="customer", entity_id=cid)
        cents = to_cents(amount)
        months = clean_term_months(term_months)
        instruction = clean_instruction(maturity_instruction)
        linked = accountnum.normalize(linked_account)
        if not isinstance(product, str) or not product.strip():
            raise InvalidInput("Name the term deposit product by its code.")
        return {"customer_id": cid, "linked_account": linked, "amount_cents": cents,
                "term_months": months, "product": product.strip(),
                "maturity_instruction": instruction}

    def _checked(self, uow, actor, req) -> dict:
        """The checks against the bank's state (read in `uow`), in order; the linked account's
        id, the product's terms, the rate and the dates the deposit would get."""
        from ...domain.errors import InsufficientFunds

        cid, linked, cents = req["customer_id"], req["linked_account"], req["amount_cents"]
        months, code = req["term_months"], req["product"]
        row = uow.fetchone(
            "SELECT a.id, a.customer_id, a.kind, a.status, a.balance_cents, a.holds_cents, "
            "c.status FROM accounts a JOIN customers c ON c.id = a.customer_id "
            "WHERE a.account_number = ?", [linked])
        if row is None:
            raise AccountNotFound(f"There is no account {linked}.")
        linked_id, owner, kind, status, balance, holds, customer_status = row
        if owner != cid:
            if actor.role == "customer":
                raise PermissionDenied("You can only move money out of your own accounts.")
            raise InvalidInput(f"Account {linked} does not belong to customer {cid}.")
        if kind not in TRANSACTIONAL_KINDS:
            raise InvalidInput(f"Account {linked} cannot fund a term deposit; use a "
                               "checking or savings account.")
        if status == "closed":
            raise AccountClosed(f"Account {linked} is closed.")
        if status == "frozen":
            raise AccountFrozen(f"Account {linked} is frozen; no money can leave it.")
        if customer_status != "active":
            raise CustomerNotActive(f"Customer {cid} is {customer_status}.")
        day = self._bank.state.business_date
        terms = product_terms(self._bank, uow, day=day, code=code)
        if terms is None or terms["kind"] != "term_deposit":
            raise InvalidInput(f"There is no term deposit product '{code}'.")
        if not terms["active"]:
            raise InvalidState(f"The product {terms['name']} takes no new deposits.")
        low, high = terms.get("term_months_min"), terms.get("term_months_max")
        if (low is not None and months < low) or (high is not None and months > high):
            raise InvalidInput(f"{terms['name']} is offered for {low} to {high} months; "
                               f"{months} months is outside that.")
        # A term deposit is funded from the customer's own money, never the overdraft, so this
        # is not "available" (ledger.available_cents) but what is left of it without the limit.
        if cents > balance - holds:
            raise InsufficientFunds(
                f"Account {linked} holds {to_money(max(balance - holds, 0))} not on hold, "
                f"without overdraft (a term deposit cannot be paid from an overdraft); a "
                f"term deposit of {to_money(cents)} is more than that. Nothing was moved.")
        rate = rate_for(terms, cents)
        return {"linked_id": linked_id, "terms": terms, "rate": rate, "start_date": day,
                "maturity_date": maturity_date(day, months)}

    def quote(self, actor, *, customer_id=None, linked_account, amount, term_months,
              product=DEFAULT_PRODUCT, maturity_instruction="payout") -> dict:
        """What open() would do, checked the same way and writing nothing (a page's review
        step): the request cleaned (customer_id, linked_account, amount_cents, term_months,
        product, maturity_instruction) with amount (Decimal), product_name, rate_percent (str),
        start_date, maturity_date, and the expected interest, tax and payout at maturity
        (Decimal; tax at today's rate). Raises what open() raises."""
        bank = self._bank
        req = self._request(actor, customer_id, linked_account, amount, term_months, product,
                            maturity_instruction)
        with bank.snapshot() as uow:
            found = self._checked(uow, actor, req)
            bp = int(found["terms"]["withholding_tax_bp"])
        interest = expected_interest_cents(req["amount_cents"], found["rate"],
                                           found["start_date"], found["maturity_date"],
                                           found["terms"]["day_count"])
        tax = int(withholding_tax_cents(interest, bp))
        return {**req, "amount": to_money(req["amount_cents"]),
                "product_name": found["terms"]["name"], "rate_percent": str(found["rate"]),
                "start_date": found["start_date"], "maturity_date": found["maturity_date"],
                "interest": to_money(interest), "tax": to_money(tax),
                "payout": to_money(req["amount_cents"] + interest - tax)}

    def open(self, actor, *, customer_id=None, linked_account, amount, term_months,
             product=DEFAULT_PRODUCT, maturity_instruction="payout",
             idempotency_key=None) -> dict:
        """Open a term deposit of `amount` (text/Decimal/int through money.to_cents) for
        `term_months` months from `linked_account`; returns get()'s dict of the new deposit.
        A repeat with the same idempotency key returns the same deposit; the key with another
        request is refused (IdempotencyConflict).

        Raises PermissionDenied (a customer for another's customer id or account),
        InvalidInput (amount, term, instruction, unknown product, a linked account of another
        customer or of a kind that cannot fund it), InvalidState (withdrawn product),
        AccountNotFound, AccountClosed, AccountFrozen, CustomerNotActive, InsufficientFunds
        (more than the linked account's balance less holds); nothing is written then."""
        from .. import once

        bank = self._bank
        req = self._request(actor, customer_id, linked_account, amount, term_months, product,
                            maturity_instruction)
        key = clean_key(idempotency_key)
        cid, linked, cents = req["customer_id"], req["linked_account"], req["amount_cents"]
        months, code = req["term_months"], req["product"]
        # What the key stands for: the same key with other content is refused.
        request = [cid, linked, cents, months, code, req["maturity_instruction"]]

        def fn(uow):
            earlier = once.recall(uow, key, "term_deposit.open", actor)
            if earlier is not once.MISSING:
                if earlier["request"] != request:
                    raise IdempotencyConflict("This request key was already used for a "
                                              "different request; nothing was changed.")
                return earlier["account_number"]
            found = self._checked(uow, actor, req)
            terms, rate, day = found["terms"], found["rate"], found["start_date"]
            number = self._new_account(uow, cid, rate, terms["product_id"], day)
            outcome = bank.post_in(uow, PostingRequest(
                kind="transfer", actor=actor, action="term_deposit.open",
                legs=[(linked, -cents), (number, cents)], amount_cents=cents,
                idempotency_key=key,
                # The statement line already names both accounts; the rate as a person
                # writes it ('3.5 %', not '3.5000 %').
                memo=f"Term deposit for {months} months at {Decimal(rate).normalize():f} %",
                source_account=linked, target_account=number, owned_accounts=(linked,),
                term_deposit_ok=True))
            if isinstance(outcome, BaseException):
                raise outcome
            if outcome.replayed:
                raise IdempotencyConflict("This request key was already used for a different "
                                          "request; nothing was changed.")
            account_id = uow.fetchone("SELECT id FROM accounts WHERE account_number = ?",
                                      [number])[0]
            record = {
                "account_id": account_id, "customer_id": cid,
                "linked_account_id": found["linked_id"], "product_id": terms["product_id"],
                "principal_cents": cents, "rate_percent": rate,
                "day_count": terms["day_count"], "start_date": day, "term_months": months,
                "maturity_date": found["maturity_date"],
                "maturity_instruction": req["maturity_instruction"], "status": "active",
                "opened_by": actor.username, "opened_at": utcnow(),
                "open_transaction_id": outcome.transaction_id}
            _insert_rows(uow, pd.DataFrame([record]))
            bank.audit_row(uow, actor, "term_deposit.open", "account", number, after={
                **{k: str(v) for k, v in record.items() if k != "opened_at"},
                "account_number": number, "linked_account": linked, "product": code})
            once.remember(uow, key, "term_deposit.open", actor,
                          {"account_number": number, "request": request})
            return number
        return self.get(actor, bank.write(fn))

    def _new_account(self, uow, cid, rate, product_id, day) -> str:
        from ..accounts import Accounts
        number = Accounts._fresh_number(uow)
        acc_id = uow.fetchone("SELECT nextval('account_id_seq')")[0]
        now = utcnow()
        uow.execute(
            "INSERT INTO accounts (id, account_number, customer_id, kind, name, status, "
            "interest_rate_percent, opened_at, last_activity_at, opened_date, "
            "last_activity_date, product_id, rate_negotiated) VALUES (?, ?, ?, 'term_deposit', "
            "'Term deposit', 'active', ?, ?, ?, ?, ?, ?, TRUE)",
            [acc_id, number, cid, rate, now, now, day, day, product_id])
        return number

    # -- early closure -----------------------------------------------------------------------
    def close_early(self, actor, account, *, reason, idempotency_key=None) -> dict:
        """Staff. Close an active term deposit before maturity: interest accrued to the
        open business date less the product's penalty, tax on what is paid, and the balance
        to the linked account (see the module docstring for the rule and its cap).

        Returns {"interest" (gross), "penalty", "tax_withheld", "interest_net" (paid after
        penalty and tax), "payout" (Decimal each), "interest_transaction_id",
        "penalty_transaction_id", "payout_transaction_id" (int or None)}. Raises
        PermissionDenied (customers), InvalidInput (no reason), AccountNotFound, InvalidState
        (not an active term deposit), AccountFrozen; nothing changes then. With an
        idempotency key, a repeat returns the first result."""
        from .. import once

        bank = self._bank
        number = accountnum.normalize(account)
        bank.require(actor, "term_deposit.close_early", entity="account", entity_id=number)
        reason = clean_reason(reason)
        key = once.clean_key(idempotency_key)

        def fn(uow):
            earlier = once.recall(uow, key, "term_deposit.close_early", actor)
            if earlier is not once.MISSING:
                # A key stands for one deposit: used again for another, it is refused rather
                # than answered with the first deposit's result (which closed nothing).
                if earlier.pop("account_number", number) != number:
                    raise IdempotencyConflict("This request key was already used to close "
                                              "another term deposit; nothing was changed.")
                return earlier
            td = self._row_in(uow, number)
            if td["status"] != "active":
                raise InvalidState(f"Term deposit {number} is {td['status'].replace('_', ' ')};"
                                   " only an active one can be closed early.")
            if td["account_status"] == "frozen":
                raise AccountFrozen(f"Term deposit {number} is frozen; no money can leave it.")
            result = self._close_early_in(uow, actor, td, reason)
            once.remember(uow, key, "term_deposit.close_early", actor,
                          {**result, "account_number": number})
            return result
        result = bank.write(fn)
        out = {k: (to_money(v) if k.endswith("_cents") else v) for k, v in result.items()}
        return {k.removesuffix("_cents") if k.endswith("_cents") else k: v
                for k, v in out.items()}

    def _close_early_in(self, uow, actor, td, reason) -> dict:

        bank = self._bank
        day = bank.state.business_date
        number, linked = td["account_number"], td["linked_number"]
        # The penalty is part of the contract, like the rate: the product's terms in force on
        # the deposit's first day, which no later change can touch (changes apply from
        # tomorrow on). The terms of the closing day would let a product edit (one manager,
        # no second person) take the penalty off deposits already open, or put a harsher one
        # on them.
        start = td["start_date"]
        start = start.date() if isinstance(start, dt.datetime) else start
        terms = product_terms(bank, uow, day=start, product_id=td["product_id"]) or {}
        rule = terms.get("early_closure_penalty", "none")
        months = int(terms.get("penalty_months") or 0)
        since = day - relativedelta(months=months)
        accrued, last_months = (int(v) for v in uow.fetchone(
            "SELECT coalesce(sum(accrued_micro_cents), 0), coalesce(sum(CASE WHEN "
            "accrual_date >= ? THEN accrued_micro_cents ELSE 0 END), 0) FROM interest_accruals "
            "WHERE account_id = ? AND accrual_date >= ? AND accrual_date < ?",
            [since, td["account_id"], td["start_date"], day]))
        gross, penalty = early_closure_split(
            accrued_micro_cents=accrued, last_months_micro_cents=last_months, rule=rule,
            rate=td["rate_percent"], penalty_rate=terms.get("penalty_rate_percent") or 0)
        bp = int(withholding_tax_bp(uow, [td["account_id"]], day).iloc[0])
        tax = int(withholding_tax_cents(gross - penalty, bp))
        payout = td["balance_cents"] + gross - tax - penalty
        expense, tax_gl = INTERNAL["interest_expense"], INTERNAL["withholding_tax_payable"]
        ids = {}
        for name, kind, source, target, memo, legs, amount in (
                ("interest", "interest", expense, number,
                 f"Interest to {day:%d %B %Y}, term deposit closed early",
                 [(expense, -gross), (number, gross - tax)] + ([(tax_gl, tax)] if tax else []),
                 gross),
                ("penalty", "penalty", number, expense, _penalty_memo(rule, months, terms),
                 [(number, -penalty), (expense, penalty)], penalty),
                ("payout", "transfer", number, linked,
                 f"Term deposit {number} closed early", [(number, -payout), (linked, payout)],
                 payout)):
            if not amount:
                continue
            outcome = bank.post_in(uow, PostingRequest(
                kind=kind, actor=actor, action="term_deposit.close_early", legs=legs,
                amount_cents=amount,
                idempotency_key=system_key("term_deposit", number, "early", name),
                memo=memo, source_account=source, target_account=target, internal_ok=True,
                term_deposit_ok=True))
            if isinstance(outcome, BaseException):
                raise outcome
            ids[name] = outcome.transaction_id
        left = uow.fetchone("SELECT balance_cents FROM accounts WHERE id = ?",
                            [td["account_id"]])[0]
        if left != 0:
            raise AssertionError(f"term deposit {number} holds {left} cents after closing")
        uow.execute("INSERT INTO interest_postings VALUES (?, ?, ?, 0, ?, ?, ?, ?)",
                    [td["account_id"], td["start_date"], day, accrued, gross,
                     accrued - gross * MICRO_PER_CENT, ids.get("interest")])
        uow.execute("UPDATE accounts SET status = 'closed', closed_at = ?, closed_date = ? "
                    "WHERE id = ?", [utcnow(), day, td["account_id"]])
        uow.execute(
            "UPDATE term_deposits SET status = 'closed_early', closed_date = ?, closed_by = ?, "
            "close_reason = ?, interest_cents = ?, tax_cents = ?, penalty_cents = ?, "
            "interest_transaction_id = ?, penalty_transaction_id = ?, "
            "payout_transaction_id = ? WHERE account_id = ?",
            [day, actor.username, reason, gross, tax, penalty, ids.get("interest"),
             ids.get("penalty"), ids.get("payout"), td["account_id"]])
        result = {"interest_cents": gross, "penalty_cents": penalty, "tax_withheld_cents": tax,
                  "interest_net_cents": gross - penalty - tax, "payout_cents": payout,
                  "interest_transaction_id": ids.get("interest"),
                  "penalty_transaction_id": ids.get("penalty"),
                  "payout_transaction_id": ids.get("payout")}
        bank.audit_row(uow, actor, "term_deposit.close_early", "account", number,
                       before={"status": "active", "balance_cents": td["balance_cents"]},
                       after={**result, "status": "closed_early", "reason": reason,
                              "penalty_rule": rule, "linked_account": linked})
        return result

    # -- reading -----------------------------------------------------------------------------
    _SELECT = (
        # The rate as text: a DataFrame would turn a DECIMAL into a float. The columns are
        # named one by one, in the table's order: `* REPLACE (...)` is DuckDB's alone.
        "SELECT t.account_id, t.customer_id, t.linked_account_id, t.product_id, "
        "t.principal_cents, CAST(t.rate_percent AS VARCHAR) AS rate_percent, t.day_count, "
        "t.start_date, t.term_months, t.maturity_date, t.maturity_instruction, t.status, "
        "t.opened_by, t.opened_at, t.open_transaction_id, t.renewed_from_account_id, "
        "t.renewed_to_account_id, t.closed_date, t.closed_by, t.close_reason, "
        "t.interest_cents, t.tax_cents, t.penalty_cents, t.interest_transaction_id, "
        "t.penalty_transaction_id, t.payout_transaction_id, "
        "a.account_number, a.status AS account_status, a.balance_cents, "
        "l.account_number AS linked_number, p.code AS product_code, p.name AS product_name "
        "FROM term_deposits t JOIN accounts a ON a.id = t.account_id "
        "JOIN accounts l ON l.id = t.linked_account_id "
        "LEFT JOIN deposit_products p ON p.id = t.product_id")

    def _row_in(self, uow, number) -> dict:
        cols = uow.fetch_columns(self._SELECT + " WHERE a.account_number = ?", [number])
        if not cols["account_number"]:
            raise AccountNotFound(f"There is no term deposit {number}.")
        return {name: values[0] for name, values in cols.items()}

    def list(self, actor, customer_id=None) -> pd.DataFrame:
        """Term deposits, newest first: account_number, linked_account, product, principal
        (Decimal), rate_percent (str), start_date, term_months, maturity_date,
        maturity_instruction, status, interest, tax, penalty, payout (Decimal each; for an
        active deposit the expected figures at maturity: interest on the principal at its
        rate for its term, tax at today's rate, payout = principal + net interest; for an
        ended one what was paid) and the *_cents integers behind them. Customers see their
        own (customer_id defaults to theirs); staff any customer's, or all with None."""
        bank = self._bank
        if customer_id is None and getattr(actor, "role", None) == "customer":
            customer_id = actor.customer_id
        if customer_id is None:
            bank.require(actor, "account.list_all", entity="term_deposit")
            where, params = "", []
        else:
            customer_id = bank.customers._id(customer_id)
            bank.require(actor, "term_deposit.read", customer_id, entity="customer",
                         entity_id=customer_id)
            where, params = " WHERE t.customer_id = ?", [customer_id]
        with bank.snapshot() as cur:
            df = cur.fetch_df(self._SELECT + where + " ORDER BY t.start_date DESC, t.account_id "
                              "DESC", params)
            rates = _tax_rates(cur, df["account_id"], bank.state.business_date)
        return _view(df, rates)

    def get(self, actor, account) -> dict:
        """One term deposit as a row of list() (a dict); AccountNotFound, PermissionDenied."""
        bank = self._bank
        number = accountnum.normalize(account)
        with bank.snapshot() as cur:
            df = cur.fetch_df(self._SELECT + " WHERE a.account_number = ?", [number])
            if df.empty:
                # Another customer's account is refused as accounts.get refuses it, whatever
                # its kind: "no term deposit" for their checking account but "not allowed" for
                # their term deposit would tell a customer which numbers are term deposits.
                owner = cur.fetchone("SELECT customer_id FROM accounts WHERE account_number = ?",
                                     [number])
                if owner is not None:
                    bank.require(actor, "term_deposit.read", owner[0], entity="account",
                                 entity_id=number)
                raise AccountNotFound(f"There is no term deposit {number}.")
            bank.require(actor, "term_deposit.read", int(df["customer_id"].iloc[0]),
                         entity="account", entity_id=number)
            rates = _tax_rates(cur, df["account_id"], bank.state.business_date)
        return _view(df, rates).iloc[0].to_dict()

    def verify(self) -> list[str]:
        """Term deposits against their accounts: an active deposit's account is open, of
        kind term_deposit, and holds exactly its principal; an ended one's account is
        closed."""
        problems = []
        for number, status, kind, acc_status, balance, principal in self._bank.read(
                "SELECT a.account_number, t.status, a.kind, a.status, a.balance_cents, "
                "t.principal_cents FROM term_deposits t JOIN accounts a ON a.id = t.account_id "
                "WHERE a.kind <> 'term_deposit' OR (t.status = 'active' AND (a.status = "
                "'closed' OR a.balance_cents <> t.principal_cents)) OR (t.status <> 'active' "
                "AND a.status <> 'closed') ORDER BY 1 LIMIT 100"):
            problems.append(f"term deposit {number} is {status} but its account ({kind}) is "
                            f"{acc_status} holding {balance} cents (principal {principal})")
        (missing,) = self._bank.read_one(
            "SELECT count(*) FROM accounts a WHERE a.kind = 'term_deposit' AND NOT EXISTS ("
            "SELECT 1 FROM term_deposits t WHERE t.account_id = a.id)")
        if missing:
            problems.append(f"{missing} term deposit accounts have no term_deposits row")
        return problems


def _penalty_memo(rule, months, terms) -> str:
    if rule == "interest_months":
        return f"Early closure penalty: interest of the last {months} months"
    if rule == "reduced_rate":
        return (f"Early closure penalty: interest at "
                f"{Decimal(str(terms.get('penalty_rate_percent') or 0))} % instead")
    return "Early closure penalty"


def _tax_rates(uow, account_ids, day) -> pd.Series:
    if len(account_ids) == 0:
        return pd.Series([], dtype="int64")
    return withholding_tax_bp(uow, [int(a) for a in account_ids], day)


def _view(df: pd.DataFrame, rates: pd.Series) -> pd.DataFrame:

    out = pd.DataFrame({
        "account_number": df["account_number"], "linked_account": df["linked_number"],
        "product": df["product_name"].fillna(df["product_code"]).fillna(""),
        "principal_cents": df["principal_cents"].astype("int64"),
        "rate_percent": [str(Decimal(str(r))) for r in df["rate_percent"]],
        "start_date": pd.to_datetime(df["start_date"]).dt.date,
        "term_months": df["term_months"].astype("int64"),
        "maturity_date": pd.to_datetime(df["maturity_date"]).dt.date,
        "maturity_instruction": df["maturity_instruction"], "status": df["status"],
        "closed_date": pd.to_datetime(df["closed_date"]).dt.date})
    interest, tax, penalty = [], [], []
    for row, start, end in zip(df.itertuples(index=False), out["start_date"],
                               out["maturity_date"]):
        if row.status == "active":
            gross = expected_interest_cents(int(row.principal_cents), row.rate_percent, start,
                                            end, row.day_count)
            interest.append(gross)
            tax.append(int(withholding_tax_cents(gross, int(rates.loc[int(row.account_id)]))))
            penalty.append(0)
        else:
            interest.append(int(row.interest_cents))
            tax.append(int(row.tax_cents))
            penalty.append(int(row.penalty_cents))
    out["interest_cents"] = pd.Series(interest, dtype="int64", index=out.index)
    out["tax_cents"] = pd.Series(tax, dtype="int64", index=out.index)
    out["penalty_cents"] = pd.Series(penalty, dtype="int64", index=out.index)
    out["payout_cents"] = (out["principal_cents"] + out["interest_cents"] - out["tax_cents"]
                           - out["penalty_cents"])
    for name in ("principal", "interest", "tax", "penalty", "payout"):
        out[name] = [to_money(int(c)) for c in out[f"{name}_cents"]]
    return out.reset_index(drop=True)


TERM_DEPOSIT_COLUMNS = (
    "account_id", "customer_id", "linked_account_id", "product_id", "principal_cents",
    "rate_percent", "day_count", "start_date", "term_months", "maturity_date",
    "maturity_instruction", "status", "opened_by", "opened_at", "open_transaction_id",
    "renewed_from_account_id")


def _insert_rows(uow, frame: pd.DataFrame) -> None:
    """Insert term_deposits rows from a frame of TERM_DEPOSIT_COLUMNS (renewed_from optional)."""
    frame = frame.copy()
    if "renewed_from_account_id" not in frame:
        frame["renewed_from_account_id"] = pd.array([None] * len(frame), dtype="Int64")
    frame["rate_percent"] = [str(r) for r in frame["rate_percent"]]
    with uow.scan("new_term_deposits", frame[list(TERM_DEPOSIT_COLUMNS)]):
        uow.execute(
            f"INSERT INTO term_deposits ({', '.join(TERM_DEPOSIT_COLUMNS)}) SELECT "
            "account_id, customer_id, linked_account_id, product_id, principal_cents, "
            "CAST(rate_percent AS DECIMAL(9, 4)), day_count, CAST(start_date AS DATE), "
            "term_months, CAST(maturity_date AS DATE), maturity_instruction, status, "
            "opened_by, CAST(opened_at AS TIMESTAMP), open_transaction_id, "
            "renewed_from_account_id FROM new_term_deposits")


# -- maturity at end of day (PLAN10 step 4) ------------------------------------------------------
_DUE_SQL = """
SELECT t.account_id, t.customer_id, t.linked_account_id, t.product_id, t.principal_cents,
       t.start_date, t.term_months, t.maturity_date, t.maturity_instruction,
       a.account_number, a.balance_cents, l.account_number AS linked_number,
       CAST(coalesce((SELECT sum(i.accrued_micro_cents) FROM interest_accruals i
                      WHERE i.account_id = t.account_id AND i.accrual_date >= t.start_date
                        AND i.accrual_date < t.maturity_date), 0) AS BIGINT) AS accrued
FROM term_deposits t JOIN accounts a ON a.id = t.account_id
JOIN accounts l ON l.id = t.linked_account_id
WHERE t.status = 'active' AND t.maturity_date <= ? AND a.status IN ('active', 'dormant')
  AND l.status <> 'closed'
ORDER BY t.account_id
"""


def mature(bank, actor, uow, day: dt.date, out) -> None:
    """End of day of `day`: pay out or renew every active term deposit maturing on or before
    day + 1, set-based, inside end of day's unit of work (see the module docstring). Sets
    out.term_deposits_matured (paid out), out.term_deposits_renewed and
    out.term_deposit_interest_cents (gross interest posted)."""

    nxt = day + dt.timedelta(days=1)
    due = uow.fetch_df(_DUE_SQL, [nxt])
    if len(due) == 0:
        return
    for column in ("account_id", "linked_account_id", "principal_cents", "balance_cents",
                   "accrued", "product_id", "term_months", "customer_id"):
        due[column] = due[column].astype("int64")
    due["gross"] = (due["accrued"] + MICRO_PER_CENT // 2) // MICRO_PER_CENT
    rates = withholding_tax_bp(uow, due["account_id"], day)
    due["tax"] = withholding_tax_cents(
        due["gross"], rates.loc[due["account_id"]].to_numpy()).astype("int64")
    due["net"] = due["gross"] - due["tax"]
    # Renewal under the product's terms in force on the new term's first day.
    found = products_terms(uow, day=nxt, product_ids=due["product_id"].unique())
    terms_of = {pid: found.get(int(pid)) for pid in due["product_id"].unique()}
    why_not, new_rate = [], []
    for row in due.itertuples(index=False):
        refusal = None
        if row.maturity_instruction != "payout":
            refusal = renewal_refusal(terms_of[row.product_id], row.term_months)
        why_not.append(refusal)
        renews = row.maturity_instruction != "payout" and refusal is None
        new_principal = row.balance_cents + (row.net if row.maturity_instruction == "renew"
                                             else 0)
        new_rate.append(rate_for(terms_of[row.product_id], new_principal) if renews else None)
    due["not_renewed"] = why_not
    due["renews"] = (due["maturity_instruction"] != "payout") & due["not_renewed"].isna()
    due["new_rate"] = new_rate
    due["to_new"] = 0
    due.loc[due["renews"], "to_new"] = due["balance_cents"] + due["net"].where(
        due["maturity_instruction"] == "renew", 0)
    due["to_linked"] = due["balance_cents"] + due["net"] - due["to_new"]

    renewing = due[due["renews"]].reset_index(drop=True)
    new_numbers = _new_accounts(uow, renewing, day)
    due["new_number"] = None
    due.loc[due["renews"], "new_number"] = new_numbers

    internal = dict(uow.fetchall(
        "SELECT account_number, id FROM accounts WHERE customer_id IS NULL"))
    expense, tax_gl = INTERNAL["interest_expense"], INTERNAL["withholding_tax_payable"]
    new_ids = dict(uow.fetchall(
        "SELECT account_number, id FROM accounts WHERE "
        + uow.dialect.in_list("account_number", "VARCHAR"),
        [list(new_numbers)])) if len(new_numbers) else {}
    tx, legs = _maturity_frames(due, new_ids, expense=expense,
                                expense_id=internal[expense], tax_id=internal[tax_gl])
    ids = post_frames(bank, actor, uow, tx, legs, "eod.term_deposit_maturity") if len(tx) \
        else None
    for column in ("interest_tx", "payout_tx", "renewal_tx"):
        due[column] = tx_ids_at(ids, due[column.replace("_tx", "_ref")])
    _record_maturities(bank, actor, uow, day, nxt, due, new_ids, terms_of)
    out.term_deposits_matured = int((~due["renews"]).sum())
    out.term_deposits_renewed = int(due["renews"].sum())
    out.term_deposit_interest_cents = int(due["gross"].sum())


def _maturity_frames(due, new_ids, *, expense, expense_id, tax_id):
    """The transactions and postings of matured deposits, built column-wise: per deposit, in
    row order, the interest at maturity (when any: gross from the expense GL, net to the
    deposit, tax to the withholding tax GL), the payout to the linked account (when any) and
    the transfer into the renewed deposit (when it renews). Sets due's interest_ref,
    payout_ref and renewal_ref (tx_ref, or <NA> when there is no such transaction).
    Returns (transactions, postings) for posting_frames.post_frames; zero legs are left out."""
    number, row = due["account_number"], pd.Series(range(len(due)), index=due.index)
    new_id = due["new_number"].map(lambda n: new_ids.get(n) if n else None)
    parts = [
        (0, due["gross"] != 0, "interest", due["gross"],
         "Interest of term deposit " + number + " at maturity", expense, number,
         [(expense_id, -due["gross"]), (due["account_id"], due["net"]),
          (tax_id, due["tax"])]),
        (1, due["to_linked"] != 0, "transfer", due["to_linked"],
         "Term deposit " + number + " matured" + due["renews"].map({True: ": interest",
                                                                   False: ""}),
         number, due["linked_number"],
         [(due["account_id"], -due["to_linked"]), (due["linked_account_id"], due["to_linked"])]),
        (2, due["renews"], "transfer", due["to_new"], "Term deposit " + number + " renewed",
         number, due["new_number"],
         [(due["account_id"], -due["to_new"]), (new_id, due["to_new"])]),
    ]
    frames, leg_frames = [], []
    for slot, present, kind, amount, memo, source, target, postings in parts:
        present = present.astype(bool)
        frames.append(pd.DataFrame({
            "row": row, "slot": slot, "kind": kind, "amount_cents": amount, "memo": memo,
            "source_account": source, "target_account": target})[present])
        for leg, (account, cents) in enumerate(postings):
            leg_frames.append(pd.DataFrame({
                "row": row, "slot": slot, "leg": leg, "account_id": account,
                "amount_cents": cents})[present])
    tx = pd.concat(frames, ignore_index=True).sort_values(["row", "slot"], kind="stable")
    tx["tx_ref"] = range(len(tx))
    for slot, name in enumerate(("interest_ref", "payout_ref", "renewal_ref")):
        mine = tx[tx["slot"] == slot]
        due[name] = pd.Series(mine["tx_ref"].to_numpy(), index=due.index[
            mine["row"].to_numpy()]).reindex(due.index).astype("Int64")
    legs = pd.concat(leg_frames, ignore_index=True).merge(tx[["row", "slot", "tx_ref"]],
                                                          on=["row", "slot"])
    legs = legs[legs["amount_cents"] != 0].sort_values(["tx_ref", "leg"], kind="stable")
    legs = legs.astype({"account_id": "int64", "amount_cents": "int64"})
    tx = tx.astype({"amount_cents": "int64"})
    return (tx[["tx_ref", "kind", "amount_cents", "memo", "source_account", "target_account"]]
            .reset_index(drop=True),
            legs[["tx_ref", "account_id", "amount_cents"]].reset_index(drop=True))


def _new_accounts(uow, renewing: pd.DataFrame, day: dt.date) -> list:
    """Open one term deposit account per renewing row (numbers drawn at random, each unused);
    returns their numbers in row order."""
    if len(renewing) == 0:
        return []
    numbers = []
    taken = set()
    while len(numbers) < len(renewing):
        drawn = [accountnum.random_number() for _ in range(len(renewing) - len(numbers))]
        used = {r[0] for r in uow.fetchall(
            "SELECT account_number FROM accounts WHERE "
            + uow.dialect.in_list("account_number", "VARCHAR"), [drawn])}
        for number in drawn:
            if number not in used and number not in taken:
                taken.add(number)
                numbers.append(number)
    ids = uow.take_ids("account_id_seq", len(renewing)).ids
    now = utcnow()
    frame = pd.DataFrame({
        "id": ids, "account_number": numbers, "customer_id": renewing["customer_id"],
        "rate": [str(r) for r in renewing["new_rate"]], "product_id": renewing["product_id"]})
    with uow.scan("renewed_accounts", frame):
        uow.execute(
            "INSERT INTO accounts (id, account_number, customer_id, kind, name, status, "
            "interest_rate_percent, opened_at, last_activity_at, opened_date, "
            "last_activity_date, product_id, rate_negotiated) SELECT id, account_number, "
            "customer_id, 'term_deposit', 'Term deposit', 'active', CAST(rate AS DECIMAL(9, 4)),"
            " ?, ?, ?, ?, product_id, TRUE FROM renewed_accounts", [now, now, day, day])
    return numbers


def _record_maturities(bank, actor, uow, day, nxt, due, new_ids, terms_of) -> None:
    """The rows end of day writes for matured deposits: the new terms of renewals (under
    terms_of: product_id -> the product's terms on `nxt`), the old rows' outcome, the
    interest_postings rows (as at a close), the old accounts closed, and one audit row per
    deposit."""
    now = utcnow()
    renewing = due[due["renews"]]
    if len(renewing):
        terms = pd.DataFrame({
            "account_id": [new_ids[n] for n in renewing["new_number"]],
            "customer_id": renewing["customer_id"].to_numpy(),
            "linked_account_id": renewing["linked_account_id"].to_numpy(),
            "product_id": renewing["product_id"].to_numpy(),
            "principal_cents": renewing["to_new"].to_numpy(),
            "rate_percent": renewing["new_rate"].to_numpy(),
            "day_count": [terms_of[p]["day_count"] for p in renewing["product_id"]],
            "start_date": nxt, "term_months": renewing["term_months"].to_numpy(),
            "maturity_date": [maturity_date(nxt, int(m)) for m in renewing["term_months"]],
            "maturity_instruction": renewing["maturity_instruction"].to_numpy(),
            "status": "active", "opened_by": actor.username, "opened_at": now,
            "open_transaction_id": renewing["renewal_tx"].to_numpy(),
            "renewed_from_account_id": renewing["account_id"].to_numpy()})
        _insert_rows(uow, terms)
    due = due.assign(
        new_status=["renewed" if r else "matured" for r in due["renews"]],
        renewed_to=pd.array([new_ids.get(n) if n else None for n in due["new_number"]],
                            dtype="Int64"),
        period_end=day, carry_out=due["accrued"] - due["gross"] * MICRO_PER_CENT)
    with uow.scan("matured", due[[
        "account_id", "new_status", "renewed_to", "gross", "tax", "interest_tx", "payout_tx",
        "renewal_tx", "start_date", "period_end", "accrued", "carry_out"]]):
        uow.execute(
            "UPDATE term_deposits SET status = m.new_status, closed_date = ?, closed_by = ?, "
            "interest_cents = m.gross, tax_cents = m.tax, interest_transaction_id = "
            "m.interest_tx, payout_transaction_id = coalesce(m.payout_tx, m.renewal_tx), "
            "renewed_to_account_id = m.renewed_to FROM matured m "
            "WHERE term_deposits.account_id = m.account_id", [day, actor.username])
        uow.execute(
            "INSERT INTO interest_postings SELECT account_id, CAST(start_date AS DATE), "
            "CAST(period_end AS DATE), 0, accrued, gross, carry_out, interest_tx FROM matured")
        uow.execute("UPDATE accounts SET status = 'closed', closed_at = ?, closed_date = ? "
                    "WHERE id IN (SELECT account_id FROM matured)", [now, day])
        left = uow.fetchone("SELECT count(*) FROM accounts WHERE id IN (SELECT account_id FROM "
                            "matured) AND balance_cents <> 0")[0]
        if left:
            raise AssertionError(f"{left} matured term deposits still hold money")
    audit = pd.DataFrame({
        "id": uow.take_ids("audit_id_seq", len(due)).ids, "entity_id": due["account_number"],
        "after": [json.dumps({
            "status": status, "maturity_date": str(row.maturity_date)[:10],
            "interest_cents": int(row.gross), "tax_cents": int(row.tax),
            "to_linked_cents": int(row.to_linked), "linked_account": row.linked_number,
            "renewed_to": row.new_number, "renewal_refused": row.not_renewed,
            "business_date": str(day)}, default=str)
            for row, status in zip(due.itertuples(index=False), due["new_status"])]})
    with uow.scan("maturity_audit", audit):
        uow.execute(
            "INSERT INTO audit_log (id, ts, actor, actor_role, action, entity, entity_id, "
            "before, after, outcome) SELECT id, ?, ?, ?, 'term_deposit.mature', 'account', "
            "entity_id, '{\"status\": \"active\"}', after, 'ok' FROM maturity_audit",
            [now, actor.username, actor.role])
