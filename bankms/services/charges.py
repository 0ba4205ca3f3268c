"""Charges: the catalogue of what the bank charges, the register of charges applied, staff
charges with a reason, manager waivers, and the set-based event charges end of day applies.

Tables (db.py): `charge_catalogue` (code, name, calc 'flat' | 'percent' | 'product', amount,
rate in basis points, minimum and maximum, active, system) and `charges` (one row per charge:
account, code, amount, reason, business date, its fee transaction, who applied it, status
'charged' | 'waived' | 'not_collected', and for a waiver who, why and the reversing
transaction). The money of a charge is one 'fee' transaction: debit the account, credit GL4100
fee income. A waiver is a 'reversal' of that transaction (reverses_id), so the ledger refuses
a second reversal of it by any path and statements count it against fees; the charge's own
transaction is never changed. The loan disbursement fee is part of its disbursement
transaction: registered with it (`record_in`), given back only with it (`given_back_in`).

`post_event_charges` is the API end of day (deposit products, standing orders) calls inside its
own unit of work; `Charges` (`bank.charges`) is the staff service.
"""
from __future__ import annotations

import datetime as dt
import json
import re

import pandas as pd
from pandas.api.types import infer_dtype

from ..domain import accountnum
from ..domain.chart import INTERNAL
from ..domain.errors import (
    AccountClosed,
    AccountNotFound,
    BankError,
    InvalidAmount,
    InvalidInput,
    InvalidState,
)
from ..domain.ids import parse_id
from ..domain.keys import clean_key
from .ledger import PostingRequest, available_sql, utcnow
from ..domain.money import BASIS_POINTS_PER_UNIT, format_cents, to_cents, to_money
from ..domain.validate import clean_text as _clean_text

CALCS = ("flat", "percent", "product")
STATUSES = ("charged", "waived", "not_collected")
EVENT_COLUMNS = ("account_id", "code", "amount_cents", "reason")
REASON_CHARS_MAX = 300
REASON_CHARS_MIN = 3
NAME_CHARS_MAX = 80
_CODE = re.compile(r"[a-z][a-z0-9_]{1,39}")
# Charges whose money is part of another transaction (the loan disbursement fee is kept back
# from the payout): they are corrected where that transaction is (bank.loans), never waived here,
# since undoing the disbursement already returns the fee.
NOT_WAIVABLE = ("loan_disbursement",)
CATALOGUE_COLUMNS = ("code", "name", "calc", "amount_cents", "rate_bp", "min_cents",
                     "max_cents", "active", "system")


class ChargeNotFound(BankError):
    pass


class AlreadyWaived(InvalidState):
    pass

# The charges not yet in the register (one per (code, account, day, reason); a repeat within
# the frame counts once), each with whether its account can pay it: open (active or dormant,
# its holder active), and its available balance (ledger.available_sql: balance less holds plus
# the overdraft limit) covering this charge and the account's earlier charges of the frame, in
# frame order. A charge that cannot be paid is recorded 'not_collected'; the ones after it are
# judged as if it had been paid, which can only leave more of them unpaid, never overdraw.
_EVENTS_SQL = f"""
WITH fresh AS (
    SELECT e.* FROM (
        SELECT *, row_number() OVER (PARTITION BY code, account_id, reason ORDER BY n) AS k
        FROM charge_events) e
    WHERE e.k = 1 AND NOT EXISTS (
        SELECT 1 FROM charges c WHERE c.code = e.code AND c.account_id = e.account_id
          AND c.business_date = ? AND c.reason = e.reason))
SELECT f.n, f.account_id, a.account_number, f.code, f.amount_cents, f.reason,
       cc.name || ' - ' || f.reason AS memo,
       a.status IN ('active', 'dormant') AND coalesce(cu.status, 'active') = 'active'
       AND {available_sql("a")}
           - sum(f.amount_cents) OVER (PARTITION BY f.account_id ORDER BY f.n
                                       ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) >= 0
           AS payable
FROM fresh f JOIN accounts a ON a.id = f.account_id
JOIN charge_catalogue cc ON cc.code = f.code
LEFT JOIN customers cu ON cu.id = a.customer_id
ORDER BY f.n
"""


def fee_memo(name: str, reason: str) -> str:
    """The memo of a fee transaction: the charge's name and the reason, "Monthly maintenance -
    Nov 2026"; the statement puts the kind in front: "Fee - Monthly maintenance - Nov 2026"."""
    return f"{name} - {reason}"


def _bad_reasons(reasons: pd.Series) -> bool:
    """Whether any event charge reason is missing, not text, blank (only spaces, as SQL's
    trim() sees it) or longer than REASON_CHARS_MAX characters. Checked on the column before
    the engine scans it, as an engine would type a column of numbers as numbers."""
    if reasons.empty:
        return False
    if reasons.isna().any() or infer_dtype(reasons, skipna=False) != "string":
        return True
    text = reasons.astype(str)
    return bool((text.str.strip(" ").str.len().eq(0) | text.str.len().gt(REASON_CHARS_MAX)).any())


def _clean_events(uow, frame) -> pd.DataFrame:
    """The frame's rows numbered in order (n), reasons with their white space collapsed, after
    checks in one SQL pass (a Python loop over 100,000 rows costs seconds)."""
    missing = [c for c in EVENT_COLUMNS if c not in frame.columns]
    if missing:
        raise InvalidInput(f"Event charges need the columns {', '.join(missing)}.")
    events = frame[list(EVENT_COLUMNS)].reset_index(drop=True)
    if events["account_id"].isna().any() or events["amount_cents"].isna().any():
        raise InvalidInput("Every event charge needs an account and an amount.")
    if not (pd.api.types.is_integer_dtype(events["account_id"])
            and pd.api.types.is_integer_dtype(events["amount_cents"])):
        raise InvalidInput("Event charge accounts and amounts are whole numbers (cents).")
    events = pd.DataFrame({"n": range(len(events)),
                           "account_id": events["account_id"].astype("int64"),
                           "code": events["code"], "amount_cents":
                           events["amount_cents"].astype("int64"), "reason": events["reason"]})
    bad_reason = _bad_reasons(events["reason"])
    with uow.scan("charge_input", events):
        bad_amount, stray, unknown = uow.fetchone(
            "SELECT count(*) FILTER (WHERE e.amount_cents <= 0), "
            "count(*) FILTER (WHERE a.id IS NULL), "
            "string_agg(DISTINCT CAST(e.code AS VARCHAR), ', ') FILTER (WHERE cc.code IS NULL) "
            "FROM charge_input e LEFT JOIN accounts a ON a.id = e.account_id "
            "AND a.customer_id IS NOT NULL "
            "LEFT JOIN charge_catalogue cc ON cc.code = CAST(e.code AS VARCHAR)")
        if bad_amount:
            raise InvalidInput("Every event charge must be more than zero.")
        if bad_reason:
            raise InvalidInput(f"Every event charge needs a reason of 1 to {REASON_CHARS_MAX} "
                               "characters.")
        if unknown:
            raise InvalidInput(f"No charge in the catalogue has the code {unknown}.")
        if stray:
            raise InvalidInput(f"{stray} event charges name no customer account.")
        return uow.fetch_df(
            "SELECT n, account_id, CAST(code AS VARCHAR) AS code, amount_cents, "
            "regexp_replace(trim(CAST(reason AS VARCHAR)), '\\s+', ' ', 'g') AS reason "
            "FROM charge_input ORDER BY n")


def post_event_charges(bank, actor, uow, frame: pd.DataFrame, *, day: dt.date) -> int:
    """Charge accounts for events, set-based, inside the caller's unit of work (writer thread).

    frame columns: account_id (int), code (str, a catalogue code), amount_cents (int > 0),
    reason (str, shown on the statement after the charge's name, e.g. "Nov 2026"). One 'fee'
    transaction per row, business date `day`: debit the account, credit GL4100 fee income,
    memo "<catalogue name> - <reason>". Idempotent per (code, account_id, day, reason):
    a row already in the register (charged, waived or not collected) is skipped, so a rerun of
    the same end of day posts nothing twice. A charge may take the account below zero only
    within its overdraft limit (less holds); a row the account cannot pay (closed, frozen,
    holder not active, or not enough available) is recorded with status 'not_collected' and
    NO money moves. Every register row gets an audit row ('charge.event') in this unit of work.
    Returns the number of charges posted (not counting the not collected ones).

    Raises InvalidInput (nothing written by this call) for missing columns, amounts <= 0,
    empty reasons, codes not in the catalogue or ids of no customer account."""

    if frame is None or len(frame) == 0:
        return 0
    events = _clean_events(uow, frame)
    with uow.scan("charge_events", events):
        todo = uow.fetch_df(_EVENTS_SQL, [day])
    if len(todo) == 0:
        return 0
    todo["payable"] = todo["payable"].astype(bool)
    paid = todo[todo["payable"]].reset_index(drop=True)
    todo["transaction_id"] = pd.array([None] * len(todo), dtype="Int64")
    if len(paid):
        fee_gl = INTERNAL["fee_income"]
        fee_id = uow.fetchone("SELECT id FROM accounts WHERE account_number = ?", [fee_gl])[0]
        paid["tx_ref"] = range(len(paid))
        tx = pd.DataFrame({
            "tx_ref": paid["tx_ref"], "kind": "fee", "amount_cents": paid["amount_cents"],
            "memo": paid["memo"],
            "source_account": paid["account_number"], "target_account": fee_gl,
            "business_date": day})
        postings = pd.concat([
            pd.DataFrame({"tx_ref": paid["tx_ref"], "account_id": paid["account_id"],
                          "amount_cents": -paid["amount_cents"]}),
            pd.DataFrame({"tx_ref": paid["tx_ref"], "account_id": fee_id,
                          "amount_cents": paid["amount_cents"]})], ignore_index=True)
        ids = bank.ledger.post_frames_in(uow, actor, tx, postings, action="charge.event_post")
        todo.loc[todo["payable"], "transaction_id"] = ids[paid["tx_ref"].to_numpy()]
    todo["status"] = todo["payable"].map({True: "charged", False: "not_collected"})
    todo["day"] = day
    todo["applied_by"] = actor.username
    # Ids from the sequence, given out in frame order.
    todo["charge_id"] = uow.take_ids("charge_id_seq", len(todo)).ids
    todo["audit_id"] = uow.take_ids("audit_id_seq", len(todo)).ids
    # Each audit row's JSON is written here, as audit_row writes it: SQL has no JSON object
    # builder common to DuckDB (json_object) and PostgreSQL 15 (json_build_object).
    tx_ids = [None if pd.isna(t) else int(t) for t in todo["transaction_id"].tolist()]
    todo["after_json"] = [
        json.dumps({"account": a, "code": c, "amount_cents": int(m), "reason": r,
                    "business_date": day.isoformat(), "status": st, "transaction_id": t})
        for a, c, m, r, st, t in zip(todo["account_number"].tolist(), todo["code"].tolist(),
                                     todo["amount_cents"].tolist(), todo["reason"].tolist(),
                                     todo["status"].tolist(), tx_ids)]
    with uow.scan("charge_rows", todo):
        uow.execute(
            "INSERT INTO charges (id, account_id, code, amount_cents, reason, business_date, "
            "transaction_id, applied_by, status) SELECT charge_id, account_id, code, "
            "amount_cents, reason, CAST(day AS DATE), transaction_id, applied_by, status "
            "FROM charge_rows")
        uow.execute(
            "INSERT INTO audit_log (id, ts, actor, actor_role, action, entity, entity_id, "
            "before, after, outcome) SELECT audit_id, ?, ?, ?, 'charge.event', 'charge', "
            "CAST(charge_id AS VARCHAR), NULL, after_json, 'ok' FROM charge_rows",
            [_now(), actor.username, actor.role])
    return len(paid)


def _now():
    return utcnow()


def record_in(bank, actor, uow, *, account_number, code, amount_cents, reason,
              transaction_id) -> int:
    """Register a charge whose money another service already posted in this unit of work (the
    loan disbursement fee, kept back from the payout): status 'charged', audited. Returns the
    charge id."""
    (cid,) = uow.fetchone("SELECT nextval('charge_id_seq')")
    day = bank.state.business_date
    uow.execute("INSERT INTO charges (id, account_id, code, amount_cents, reason, business_date, "
                "transaction_id, applied_by, status) SELECT ?, id, ?, ?, ?, ?, ?, ?, 'charged' "
                "FROM accounts WHERE account_number = ?",
                [cid, code, amount_cents, reason, day, transaction_id, actor.username,
                 account_number])
    bank.audit_row(uow, actor, "charge.record", "charge", cid, before=None, after={
        "account": account_number, "code": code, "amount": str(to_money(amount_cents)),
        "reason": reason, "business_date": day.isoformat(), "status": "charged",
        "transaction_id": transaction_id})
    return cid


def given_back_in(bank, actor, uow, *, transaction_id, reversal_id, reason) -> None:
    """The transaction of a registered charge was reversed whole by its own service (a loan
    disbursement undone): its charge becomes 'waived' with that reversal, audited."""
    row = uow.fetchone("SELECT id FROM charges WHERE transaction_id = ? AND status = 'charged'",
                       [transaction_id])
    if row is None:
        return
    uow.execute("UPDATE charges SET status = 'waived', waived_by = ?, waive_reason = ?, "
                "waiver_transaction_id = ? WHERE id = ?",
                [actor.username, reason, reversal_id, row[0]])
    bank.audit_row(uow, actor, "charge.waive", "charge", row[0], before={"status": "charged"},
                   after={"status": "waived", "reason": reason,
                          "waiver_transaction_id": reversal_id})


def percent_cents(base_cents: int, rate_bp: int) -> int:
    """base x rate_bp / 10000, rounded half-up to the cent, in integers (no float)."""
    return (2 * base_cents * rate_bp + BASIS_POINTS_PER_UNIT) // (2 * BASIS_POINTS_PER_UNIT)


def charge_cents(entry: dict, *, base_cents: int | None = None,
                 amount_cents: int | None = None) -> int:
    """The amount a catalogue entry charges. 'flat': its amount; 'percent': rate_bp of
    base_cents rounded half-up, then raised to min_cents and lowered to max_cents (when set);
    'product': the amount given (the product or the member of staff sets it). InvalidInput when
    the base or amount the calc needs is missing or one it does not take is given."""
    calc = entry["calc"]
    if calc == "percent":
        if base_cents is None:
            raise InvalidInput(f"'{entry['name']}' is a percentage: please give the amount it "
                               "is a percentage of.")
        if amount_cents is not None:
            raise InvalidInput(f"'{entry['name']}' is worked out from the base amount; its "
                               "amount cannot be typed.")
        cents = max(percent_cents(base_cents, entry["rate_bp"]), entry["min_cents"])
        if entry["max_cents"] is not None:
            cents = min(cents, entry["max_cents"])
        return cents
    if base_cents is not None:
        raise InvalidInput(f"'{entry['name']}' does not take a base amount.")
    if calc == "flat":
        if amount_cents is not None:
            raise InvalidInput(f"'{entry['name']}' is a fixed charge of "
                               f"{format_cents(entry['amount_cents'])}; its amount cannot be "
                               "typed.")
        return entry["amount_cents"]
    if amount_cents is None:
        raise InvalidInput(f"Please give the amount of '{entry['name']}'.")
    return amount_cents


def _key_and_reason(idempotency_key, reason, what):
    """The form's idempotency key (required) and the reason for `what`, cleaned."""
    if idempotency_key is None:
        raise InvalidInput(f"A {what} needs an idempotency key (one per form).")
    return clean_key(idempotency_key), _clean_text(reason, f"reason for the {what}",
                                                   REASON_CHARS_MIN, REASON_CHARS_MAX)


def _clean_bp(value, label) -> int:
    """Basis points (hundredths of a percent) as a whole number 0..10000, from an int or digits."""
    if isinstance(value, bool) or not (
            isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit()
                                       and value.strip().isascii())):
        raise InvalidInput(f"The {label} is a whole number of basis points (1 % = 100), "
                           "from 0 to 10000.")
    bp = int(value)
    if not 0 <= bp <= BASIS_POINTS_PER_UNIT:
        raise InvalidInput(f"The {label} must be from 0 to 10000 basis points (0 % to 100 %).")
    return bp


def _clean_code(code) -> str:
    if not isinstance(code, str) or not _CODE.fullmatch(code.strip()):
        raise InvalidInput("A charge code is 2 to 40 lower-case letters, digits or _, starting "
                           "with a letter (for example 'statement_copy').")
    return code.strip()


def _optional_cents(value, label):
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        return to_cents(value, allow_zero=True)
    except InvalidAmount as exc:
        raise InvalidAmount(f"The {label}: {exc}") from None


class Charges:
    """The staff service (`bank.charges`). Every call takes the acting Actor; refusals are
    BankErrors and change nothing; every change is audited in its own database transaction."""

    def __init__(self, bank):
        self._bank = bank

    # -- the catalogue -------------------------------------------------------------------------
    def catalogue(self, actor, *, active_only=False) -> pd.DataFrame:
        """Catalogue entries (staff), system entries last: CATALOGUE_COLUMNS plus `amount`,
        `minimum`, `maximum` (Decimal, maximum None when unbounded) and `rate_percent`
        (Decimal)."""
        self._bank.require(actor, "charge.catalogue", entity="charge_catalogue")
        df = self._bank.read_df(
            f"SELECT {', '.join(CATALOGUE_COLUMNS)} FROM charge_catalogue "
            + ("WHERE active " if active_only else "") + "ORDER BY system, code")
        df["amount"] = [to_money(int(c)) for c in df["amount_cents"]]
        df["minimum"] = [to_money(int(c)) for c in df["min_cents"]]
        df["maximum"] = [None if pd.isna(c) else to_money(int(c)) for c in df["max_cents"]]
        df["rate_percent"] = [to_money(int(bp)) for bp in df["rate_bp"]]
        return df

    def entry(self, actor, code) -> dict:
        """One catalogue entry as a dict of CATALOGUE_COLUMNS (staff); ChargeNotFound."""
        self._bank.require(actor, "charge.catalogue", entity="charge_catalogue")
        return self._entry(self._bank.read_one, _clean_code(code))

    @staticmethod
    def _entry(read_one, code) -> dict:
        row = read_one(f"SELECT {', '.join(CATALOGUE_COLUMNS)} FROM charge_catalogue "
                       "WHERE code = ?", [code])
        if row is None:
            raise ChargeNotFound(f"There is no charge '{code}' in the catalogue.")
        return dict(zip(CATALOGUE_COLUMNS, row))

    def define(self, actor, code, *, name, calc, amount=None, rate_bp=0, minimum=None,
               maximum=None) -> dict:
        """Managers: create a catalogue entry or change one (not a system entry, whose amount
        comes from the product). calc 'flat' needs `amount` (> 0); 'percent' needs `rate_bp`
        (1..10000 basis points) and takes `minimum` and `maximum` (money text or Decimal,
        maximum None for no maximum, minimum <= maximum). Returns the entry as stored.
        InvalidInput / InvalidAmount for anything else; audited with before and after."""
        bank = self._bank
        bank.require(actor, "charge.manage", entity="charge_catalogue", entity_id=code)
        code = _clean_code(code)
        name = _clean_text(name, "name of the charge", 3, NAME_CHARS_MAX)
        if calc not in ("flat", "percent"):
            raise InvalidInput("A charge is 'flat' (a fixed amount) or 'percent' (of an "
                               "amount).")
        if calc == "flat":
            amount_cents = to_cents(amount) if amount is not None else None
            if amount_cents is None:
                raise InvalidInput("Please give the amount of the fixed charge.")
            if rate_bp not in (0, "0", None) or minimum is not None or maximum is not None:
                raise InvalidInput("A fixed charge has no rate, minimum or maximum.")
            rate, low, high = 0, 0, None
        else:
            if amount is not None:
                raise InvalidInput("A percentage charge has a rate, not an amount.")
            amount_cents = 0
            rate = _clean_bp(rate_bp, "rate")
            if rate == 0:
                raise InvalidInput("A percentage charge needs a rate above 0.")
            low = _optional_cents(minimum, "minimum") or 0
            high = _optional_cents(maximum, "maximum")
            if high is not None and high < low:
                raise InvalidInput(f"The maximum ({format_cents(high)}) is below the minimum "
                                   f"({format_cents(low)}).")
            if high == 0:
                raise InvalidInput("A maximum of 0.00 would charge nothing; leave it empty "
                                   "for no maximum.")
        after = {"code": code, "name": name, "calc": calc, "amount_cents": amount_cents,
                 "rate_bp": rate, "min_cents": low, "max_cents": high}

        def fn(uow):
            row = uow.fetchone(f"SELECT {', '.join(CATALOGUE_COLUMNS)} FROM charge_catalogue "
                               "WHERE code = ?", [code])
            before = None if row is None else dict(zip(CATALOGUE_COLUMNS, row))
            if before is not None and before["system"]:
                raise InvalidInput(f"'{code}' is a system charge: end of day sets its amount "
                                   "from the account's product.")
            if before is None:
                uow.execute("INSERT INTO charge_catalogue (code, name, calc, amount_cents, "
                            "rate_bp, min_cents, max_cents, active, system) "
                            "VALUES (?, ?, ?, ?, ?, ?, ?, TRUE, FALSE)",
                            [code, name, calc, amount_cents, rate, low, high])
            else:
                uow.execute("UPDATE charge_catalogue SET name = ?, calc = ?, amount_cents = ?, "
                            "rate_bp = ?, min_cents = ?, max_cents = ? WHERE code = ?",
                            [name, calc, amount_cents, rate, low, high, code])
            stored = dict(zip(CATALOGUE_COLUMNS, uow.fetchone(
                f"SELECT {', '.join(CATALOGUE_COLUMNS)} FROM charge_catalogue WHERE code = ?",
                [code])))
            bank.audit_row(uow, actor, "charge.define", "charge_catalogue", code,
                           before=before, after=stored)
            return stored
        return bank.write(fn)

    def set_active(self, actor, code, active: bool) -> None:
        """Managers: withdraw a catalogue entry (no new charges of it; charges made stay) or
        bring it back. System entries stay active. Audited."""
        bank = self._bank
        bank.require(actor, "charge.manage", entity="charge_catalogue", entity_id=code)
        code = _clean_code(code)
        if not isinstance(active, bool):
            raise InvalidInput("Active is true or false.")

        def fn(uow):
            entry = self._entry(uow.fetchone, code)
            if entry["system"]:
                raise InvalidInput(f"'{code}' is a system charge and stays active.")
            if entry["active"] == active:
                return
            uow.execute("UPDATE charge_catalogue SET active = ? WHERE code = ?", [active, code])
            bank.audit_row(uow, actor, "charge.set_active", "charge_catalogue", code,
                           before={"active": entry["active"]}, after={"active": active})
        bank.write(fn)

    # -- applying a charge -------------------------------------------------------------------
    def quote(self, actor, code, *, base_amount=None, amount=None, reason=None) -> dict:
        """What `apply` would charge, posting nothing (for a review step): {'code', 'name',
        'calc', 'amount_cents', 'amount' (Decimal), 'base_cents', 'reason'}; a reason, when
        given, is checked as apply checks it. Staff; errors as apply."""
        bank = self._bank
        bank.require(actor, "charge.apply", entity="charge_catalogue", entity_id=code)
        if reason is not None:
            reason = _clean_text(reason, "reason for the charge", REASON_CHARS_MIN,
                                 REASON_CHARS_MAX)
        entry = self._entry(bank.read_one, _clean_code(code))
        if not entry["active"]:
            raise InvalidState(f"'{entry['name']}' has been withdrawn from the catalogue.")
        base = None if base_amount is None else to_cents(base_amount)
        typed = None if amount is None else to_cents(amount)
        cents = charge_cents(entry, base_cents=base, amount_cents=typed)
        if cents <= 0:
            raise InvalidAmount(f"'{entry['name']}' comes to {format_cents(cents)} here; "
                                "nothing to charge.")
        return {"code": entry["code"], "name": entry["name"], "calc": entry["calc"],
                "amount_cents": cents, "amount": to_money(cents), "base_cents": base,
                "reason": reason}

    def apply(self, actor, account_number, code, *, reason, base_amount=None, amount=None,
              idempotency_key) -> dict:
        """Tellers and managers: charge an account from the catalogue, with a reason.

        Amount: the entry's ('flat'), rate_bp of `base_amount` clamped to its minimum and
        maximum ('percent'), or `amount` (a 'product' entry); money as text or Decimal through
        money.to_cents. One 'fee' transaction (debit the account, credit GL4100, memo "<name> -
        <reason>") and a register row, status 'charged', audited. `idempotency_key` (required):
        a repeat answers with the first charge (replayed True) and moves nothing.
        Returns {'charge_id', 'transaction_id', 'amount_cents', 'amount', 'replayed'}.
        Raises PermissionDenied (customers), InvalidInput (no reason, unknown or withdrawn
        entry, wrong amount fields), AccountNotFound, AccountClosed, AccountFrozen,
        InsufficientFunds (more than the available balance: balance less holds plus the
        overdraft limit), IdempotencyConflict (the key used for another request)."""
        bank = self._bank
        number = accountnum.normalize(account_number)
        bank.require(actor, "charge.apply", entity="account", entity_id=number)
        key, reason = _key_and_reason(idempotency_key, reason, "charge")
        quote = self.quote(actor, code, base_amount=base_amount, amount=amount)
        cents = quote["amount_cents"]
        fee_gl = INTERNAL["fee_income"]
        req = PostingRequest(
            kind="fee", actor=actor, action="charge.apply", legs=[(number, -cents),
                                                                  (fee_gl, cents)],
            amount_cents=cents, idempotency_key=key, memo=fee_memo(quote["name"], reason),
            source_account=number, target_account=fee_gl, internal_ok=True)

        def fn(uow):
            if uow.fetchone("SELECT 1 FROM idempotency_keys WHERE key = ?", [key]):
                outcome = bank.post_in(uow, req)
                if isinstance(outcome, BaseException):
                    return outcome
                row = uow.fetchone("SELECT id FROM charges WHERE transaction_id = ?",
                                   [outcome.transaction_id])
                return {"charge_id": row and row[0], "transaction_id": outcome.transaction_id,
                        "amount_cents": outcome.amount_cents, "amount": outcome.amount,
                        "replayed": True}
            acc = uow.fetchone("SELECT id, status FROM accounts WHERE account_number = ? "
                               "AND customer_id IS NOT NULL", [number])
            if acc is None:
                raise AccountNotFound(f"There is no account {number}.")
            if acc[1] == "closed":
                raise AccountClosed(f"Account {number} is closed; it cannot be charged.")
            outcome = bank.post_in(uow, req)
            if isinstance(outcome, BaseException):
                return outcome
            (cid,) = uow.fetchone("SELECT nextval('charge_id_seq')")
            day = bank.state.business_date
            uow.execute("INSERT INTO charges (id, account_id, code, amount_cents, reason, "
                        "business_date, transaction_id, applied_by, status) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'charged')",
                        [cid, acc[0], quote["code"], cents, reason, day,
                         outcome.transaction_id, actor.username])
            bank.audit_row(uow, actor, "charge.apply", "charge", cid, before=None, after={
                "account": number, "code": quote["code"], "amount": str(to_money(cents)),
                "base_amount": (None if quote["base_cents"] is None
                                else str(to_money(quote["base_cents"]))),
                "reason": reason, "business_date": day.isoformat(), "status": "charged",
                "transaction_id": outcome.transaction_id})
            return {"charge_id": cid, "transaction_id": outcome.transaction_id,
                    "amount_cents": cents, "amount": to_money(cents), "replayed": False}
        return _raise_refusal(bank.write(fn))

    def waive(self, actor, charge_id, *, reason, idempotency_key) -> dict:
        """Managers: give a charge back. A 'reversal' transaction of the charge's fee
        transaction (credit the account, debit GL4100; memo "Fee waived: <name> - <reason of
        the charge>: <reason>"), the charge's status -> 'waived' with who, why and the
        reversal, audited. A repeat with the same key answers with the first waiver.
        Returns {'charge_id', 'transaction_id' (the reversal), 'amount_cents', 'amount',
        'replayed'}, or a PendingApproval when the amount is above the four-eyes threshold
        (a second manager approves it on the Approvals page). Raises PermissionDenied (not a manager), InvalidInput (no reason, a loan
        disbursement fee: correct it on the loan), ChargeNotFound, AlreadyWaived,
        InvalidState (a charge that was not collected), AlreadyReversed (its transaction was
        reversed by hand), AccountClosed (the account was closed since)."""
        bank = self._bank
        cid = parse_id(charge_id, "charge number")
        bank.require(actor, "charge.waive", entity="charge", entity_id=cid)
        key, reason = _key_and_reason(idempotency_key, reason, "waiver")
        # Whether the four-eyes rule applies is known here, on the caller's thread: an approved
        # waiver carried out by approvals._approve_loan says so in a context variable the
        # writer's thread does not see.
        four_eyes = bank.approvals.applies_to(actor)

        def fn(uow):
            row = uow.fetchone(
                "SELECT c.id, c.code, cc.name, c.amount_cents, c.reason, c.status, "
                "c.transaction_id, a.account_number, c.waiver_transaction_id FROM charges c "
                "JOIN accounts a ON a.id = c.account_id "
                "JOIN charge_catalogue cc ON cc.code = c.code WHERE c.id = ?", [cid])
            if row is None:
                raise ChargeNotFound(f"There is no charge {cid}.")
            _, code, name, cents, charge_reason, status, tid, number, waiver_id = row
            fee_gl = INTERNAL["fee_income"]
            req = PostingRequest(
                kind="reversal", actor=actor, action="charge.waive",
                legs=[(fee_gl, -cents), (number, cents)], amount_cents=cents,
                idempotency_key=key,
                memo=f"Fee waived: {fee_memo(name, charge_reason)}: {reason}",
                source_account=fee_gl, target_account=number, reverses_id=tid,
                internal_ok=True)
            if uow.fetchone("SELECT 1 FROM idempotency_keys WHERE key = ?", [key]):
                outcome = bank.post_in(uow, req)
                if isinstance(outcome, BaseException):
                    return outcome
                return {"charge_id": cid, "transaction_id": outcome.transaction_id,
                        "amount_cents": outcome.amount_cents, "amount": outcome.amount,
                        "replayed": True}
            if status == "waived":
                raise AlreadyWaived(f"Charge {cid} was already waived (transaction "
                                    f"{waiver_id}).")
            if status != "charged":
                raise InvalidState(f"Charge {cid} was not collected; there is nothing to "
                                   "give back.")
            if code in NOT_WAIVABLE:
                raise InvalidInput(f"Charge {cid} is part of a loan disbursement; correct it "
                                   "on the loan (undo the disbursement).")
            # Above the four-eyes threshold, with what this manager moved for the customer
            # today (a waiver pays into their account as a reversal, which counts with their
            # payments), a second manager agrees first (approvals.py); the waiver is then
            # carried out as this call, under this key. Decided in this unit of work.
            if four_eyes and bank.approvals.wait_check(uow.fetchall, actor, cents, [number])[0]:
                return bank.approvals.request_in(
                    uow, actor, "charge.waive",
                    params={"charge_id": cid, "reason": reason, "idempotency_key": key},
                    same_as={"charge_id": cid}, summary=f"Waive charge {cid}: {reason}",
                    amount_cents=cents, target_account=number)
            outcome = bank.post_in(uow, req)
            if isinstance(outcome, BaseException):
                return outcome
            uow.execute("UPDATE charges SET status = 'waived', waived_by = ?, waive_reason = ?, "
                        "waiver_transaction_id = ? WHERE id = ?",
                        [actor.username, reason, outcome.transaction_id, cid])
            bank.audit_row(uow, actor, "charge.waive", "charge", cid,
                           before={"status": status},
                           after={"status": "waived", "reason": reason,
                                  "amount": str(to_money(cents)), "account": number,
                                  "waiver_transaction_id": outcome.transaction_id})
            return {"charge_id": cid, "transaction_id": outcome.transaction_id,
                    "amount_cents": cents, "amount": to_money(cents), "replayed": False}
        return _raise_refusal(bank.write(fn))

    # -- reading -----------------------------------------------------------------------------
    def list(self, actor, account_number=None, *, status=None, limit=500) -> pd.DataFrame:
        """Charges, newest first: one account's (staff, or the customer who holds it) or all
        (staff). Columns: id, account_number, code, name, amount_cents, amount (Decimal),
        reason, business_date (date), status, applied_by, transaction_id, waived_by,
        waive_reason, waiver_transaction_id."""
        bank = self._bank
        where, params = [], []
        if account_number is not None:
            number, row = bank.accounts._readable(actor, account_number)
            bank.require(actor, "charge.read", row[2], entity="account", entity_id=number)
            where.append("a.account_number = ?")
            params.append(number)
        else:
            bank.require(actor, "charge.list_all", entity="charge")
        if status is not None:
            if status not in STATUSES:
                raise InvalidInput(f"A charge's status is one of {', '.join(STATUSES)}.")
            where.append("c.status = ?")
            params.append(status)
        df = bank.read_df(
            "SELECT c.id, a.account_number, c.code, cc.name, c.amount_cents, c.reason, "
            "c.business_date, c.status, c.applied_by, c.transaction_id, c.waived_by, "
            "c.waive_reason, c.waiver_transaction_id FROM charges c "
            "JOIN accounts a ON a.id = c.account_id "
            "LEFT JOIN charge_catalogue cc ON cc.code = c.code "
            + (("WHERE " + " AND ".join(where)) if where else "")
            + f" ORDER BY c.id DESC LIMIT {max(1, min(int(limit), 10_000))}", params)
        df.insert(5, "amount", [to_money(int(c)) for c in df["amount_cents"]])
        df["business_date"] = pd.to_datetime(df["business_date"]).dt.date
        return df

    def verify(self) -> list[str]:
        """The register against the ledger: a charged or waived charge has its transaction
        (its fee, or the loan disbursement it is part of) crediting GL4100 its amount; a
        waived one a reversal debiting GL4100 that amount; a not collected one no
        transaction."""
        problems = []
        for cid, status in self._bank.read(
                "WITH fee AS (SELECT p.transaction_id, sum(p.amount_cents) AS cents "
                "FROM postings p JOIN accounts g ON g.id = p.account_id "
                "WHERE g.account_number = 'GL4100' GROUP BY 1) "
                "SELECT c.id, c.status FROM charges c "
                "LEFT JOIN fee f ON f.transaction_id = c.transaction_id "
                "LEFT JOIN fee w ON w.transaction_id = c.waiver_transaction_id "
                "WHERE CASE c.status WHEN 'not_collected' THEN c.transaction_id IS NOT NULL "
                "WHEN 'charged' THEN f.cents IS DISTINCT FROM c.amount_cents "
                "OR c.waiver_transaction_id IS NOT NULL "
                "WHEN 'waived' THEN f.cents IS DISTINCT FROM c.amount_cents "
                "OR w.cents IS DISTINCT FROM -c.amount_cents ELSE TRUE END "
                "ORDER BY 1 LIMIT 100"):
            problems.append(f"charge {cid} ({status}) does not match the ledger")
        return problems


def _raise_refusal(result):
    if isinstance(result, BaseException):
        raise result
    return result
