"""Charges: the catalogue of what the bank charges, the register of charges applied, staff
charges with a reason, manager waivers, and the set-based event charges end of day applies.

Tables (db.py): `charge_catalogue` (code, name, calc 'flat' | 'percent' | 'product', amount,
rate in basis points, minimum and maximum, active, system) and `charges` (one row per charge:
account, code, amount, reason, business date, its fee transaction, who applied it, status
'charged' | 'waived' | 'not_collected', and for a waiver who, why and the reversing
transaction). The money of a charge is one 'fee' transaction: debit the account, credit GL4100
fee income. A waiver is a second 'fee_waiver' transaction the other way; the charge's own
transaction is never changed.

`post_event_charges` is the API end of day (deposit products, standing orders) calls inside its
own unit of work; `Charges` (`bank.charges`) is the staff service.
"""
from __future__ import annotations

import datetime as dt

import pandas as pd

from .errors import InvalidInput

CALCS = ("flat", "percent", "product")
STATUSES = ("charged", "waived", "not_collected")
BASIS_POINTS_PER_UNIT = 10_000
EVENT_COLUMNS = ("account_id", "code", "amount_cents", "reason")
REASON_CHARS_MAX = 300

# The charges not yet in the register (one per (code, account, day, reason); a repeat within
# the frame counts once), each with whether its account can pay it: open (active or dormant,
# its holder active), and its available balance (balance less holds plus the overdraft limit)
# covering this charge and the account's earlier charges of the frame, in frame order. A charge
# that cannot be paid is recorded 'not_collected'; the ones after it are judged as if it had
# been paid, which can only leave more of them unpaid, never overdraw.
_EVENTS_SQL = """
WITH fresh AS (
    SELECT e.* FROM (
        SELECT *, row_number() OVER (PARTITION BY code, account_id, reason ORDER BY n) AS k
        FROM charge_events) e
    WHERE e.k = 1 AND NOT EXISTS (
        SELECT 1 FROM charges c WHERE c.code = e.code AND c.account_id = e.account_id
          AND c.business_date = ? AND c.reason = e.reason))
SELECT f.n, f.account_id, a.account_number, f.code, cc.name, f.amount_cents, f.reason,
       a.status IN ('active', 'dormant') AND coalesce(cu.status, 'active') = 'active'
       AND a.balance_cents - a.holds_cents + a.overdraft_limit_cents
           - sum(f.amount_cents) OVER (PARTITION BY f.account_id ORDER BY f.n
                                       ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) >= 0
           AS payable
FROM fresh f JOIN accounts a ON a.id = f.account_id
JOIN charge_catalogue cc ON cc.code = f.code
LEFT JOIN customers cu ON cu.id = a.customer_id
ORDER BY f.n
"""


def fee_memo(name: str, reason: str) -> str:
    """What a fee transaction says on the statement: "Fee: Monthly maintenance - Nov 2026"."""
    return f"Fee: {name} - {reason}" if reason else f"Fee: {name}"


def _clean_events(uow, frame) -> pd.DataFrame:
    missing = [c for c in EVENT_COLUMNS if c not in frame.columns]
    if missing:
        raise InvalidInput(f"Event charges need the columns {', '.join(missing)}.")
    events = frame[list(EVENT_COLUMNS)].reset_index(drop=True).copy()
    if events["account_id"].isna().any() or events["amount_cents"].isna().any():
        raise InvalidInput("Every event charge needs an account and an amount.")
    if not (pd.api.types.is_integer_dtype(events["account_id"])
            and pd.api.types.is_integer_dtype(events["amount_cents"])):
        raise InvalidInput("Event charge accounts and amounts are whole numbers (cents).")
    events["account_id"] = events["account_id"].astype("int64")
    events["amount_cents"] = events["amount_cents"].astype("int64")
    if (events["amount_cents"] <= 0).any():
        raise InvalidInput("Every event charge must be more than zero.")
    reasons = events["reason"]
    if not all(isinstance(r, str) and r.strip() and len(r) <= REASON_CHARS_MAX
               for r in reasons):
        raise InvalidInput(f"Every event charge needs a reason of 1 to {REASON_CHARS_MAX} "
                           "characters.")
    events["reason"] = [" ".join(r.split()) for r in reasons]
    events["code"] = events["code"].astype(str)
    known = {row[0] for row in uow.fetchall("SELECT code FROM charge_catalogue")}
    unknown = sorted(set(events["code"]) - known)
    if unknown:
        raise InvalidInput(f"No charge in the catalogue has the code {', '.join(unknown)}.")
    cur = uow.cur
    cur.register("charge_ids", events[["account_id"]])
    try:
        (stray,) = uow.fetchone("SELECT count(*) FROM charge_ids e ANTI JOIN accounts a "
                                "ON a.id = e.account_id AND a.customer_id IS NOT NULL")
    finally:
        cur.unregister("charge_ids")
    if stray:
        raise InvalidInput(f"{stray} event charges name no customer account.")
    events["n"] = range(len(events))
    return events


def post_event_charges(bank, actor, uow, frame: pd.DataFrame, *, day: dt.date) -> int:
    """Charge accounts for events, set-based, inside the caller's unit of work (writer thread).

    frame columns: account_id (int), code (str, a catalogue code), amount_cents (int > 0),
    reason (str, shown on the statement after the charge's name, e.g. "Nov 2026"). One 'fee'
    transaction per row, business date `day`: debit the account, credit GL4100 fee income,
    memo "Fee: <catalogue name> - <reason>". Idempotent per (code, account_id, day, reason):
    a row already in the register (charged, waived or not collected) is skipped, so a rerun of
    the same end of day posts nothing twice. A charge may take the account below zero only
    within its overdraft limit (less holds); a row the account cannot pay (closed, frozen,
    holder not active, or not enough available) is recorded with status 'not_collected' and
    NO money moves. Every register row gets an audit row ('charge.event') in this unit of work.
    Returns the number of charges posted (not counting the not collected ones).

    Raises InvalidInput (nothing written by this call) for missing columns, amounts <= 0,
    empty reasons, codes not in the catalogue or ids of no customer account."""
    from .bank import INTERNAL

    if frame is None or len(frame) == 0:
        return 0
    events = _clean_events(uow, frame)
    cur = uow.cur
    cur.register("charge_events", events)
    try:
        todo = uow.execute(_EVENTS_SQL, [day]).df()
    finally:
        cur.unregister("charge_events")
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
            "memo": [fee_memo(n, r) for n, r in zip(paid["name"], paid["reason"])],
            "source_account": paid["account_number"], "target_account": fee_gl,
            "business_date": day})
        postings = pd.concat([
            pd.DataFrame({"tx_ref": paid["tx_ref"], "account_id": paid["account_id"],
                          "amount_cents": -paid["amount_cents"]}),
            pd.DataFrame({"tx_ref": paid["tx_ref"], "account_id": fee_id,
                          "amount_cents": paid["amount_cents"]})], ignore_index=True)
        base = bank.state.next_transaction_id
        bank.ledger.post_frames_in(uow, actor, tx, postings, action="charge.event_post")
        if bank.state.next_transaction_id != base + len(tx):
            raise AssertionError("transaction ids were not allocated as one block")
        ids = dict(zip(paid["n"], base + paid["tx_ref"]))
        todo["transaction_id"] = pd.array([ids.get(n) for n in todo["n"]], dtype="Int64")
    todo["status"] = ["charged" if p else "not_collected" for p in todo["payable"]]
    todo["day"] = day
    todo["applied_by"] = actor.username
    audit_base = bank.state.take_audit_ids(len(todo))
    todo["audit_id"] = range(audit_base, audit_base + len(todo))
    cur.register("charge_rows", todo)
    try:
        # Ids from the sequence in frame order; the audit rows find them again by the
        # register's key, unique after the step above.
        uow.execute(
            "INSERT INTO charges (id, account_id, code, amount_cents, reason, business_date, "
            "transaction_id, applied_by, status) SELECT nextval('charge_id_seq'), account_id, "
            "code, amount_cents, reason, CAST(day AS DATE), transaction_id, applied_by, status "
            "FROM charge_rows ORDER BY n")
        uow.execute(
            "INSERT INTO audit_log (id, ts, actor, actor_role, action, entity, entity_id, "
            "before, after, outcome) SELECT r.audit_id, ?, ?, ?, 'charge.event', 'charge', "
            "CAST(c.id AS VARCHAR), NULL, CAST(json_object('account', r.account_number, "
            "'code', r.code, 'amount_cents', r.amount_cents, 'reason', r.reason, "
            "'business_date', CAST(c.business_date AS VARCHAR), 'status', r.status, "
            "'transaction_id', r.transaction_id) AS VARCHAR), 'ok' "
            "FROM charge_rows r JOIN charges c ON c.code = r.code AND c.account_id = r.account_id "
            "AND c.reason = r.reason AND c.business_date = CAST(r.day AS DATE)",
            [_now(), actor.username, actor.role])
    finally:
        cur.unregister("charge_rows")
    return len(paid)


def _now():
    from .ledger import utcnow
    return utcnow()
