"""Four-eyes approvals and holds: large staff payments wait for a second person.

A deposit, withdrawal or transfer made by a teller or a manager for more than the
`four_eyes_threshold_cents` setting is not posted. `submit` records an approval request and, for
money that would leave a customer account, places a hold on it, so that the account's available
balance (balance - holds + overdraft) drops at once and the money cannot be spent twice while the
request waits. The payment call then returns a `PendingApproval` instead of a `Receipt`.

A manager other than the maker approves the request: the hold is released and the payment posted
in one unit of work on the writer thread, through the same guards and with the idempotency key of
the form that made it. If a guard refuses at that moment (the account was frozen meanwhile, say),
nothing changes and the request stays pending. A manager rejects a request with a reason, which
releases the hold. A maker may withdraw (reject) their own request, never approve it.

Holds live in the `holds` table; `accounts.holds_cents` caches the sum of an account's open holds
and `audit.verify` checks that it does.
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from decimal import Decimal

from .errors import (
    ApprovalNotFound,
    BankError,
    IdempotencyConflict,
    InvalidInput,
    InvalidState,
    PermissionDenied,
)
from .ledger import PostingRequest, Receipt, utcnow
from .money import to_money
from .security import Actor

# Roles whose large payments need a second person. The system actor (batch jobs, the demo
# generator) posts at once; customers have their own daily transfer limit instead.
FOUR_EYES_ROLES = frozenset({"teller", "manager"})
STATUSES = ("pending", "approved", "rejected")
REASON_CHARS_MAX = 200

_COLUMNS = ("id", "kind", "action", "amount_cents", "source_account", "target_account", "memo",
            "legs", "idempotency_key", "request_hash", "maker", "maker_role", "status",
            "created_at", "decided_by", "decided_at", "reason", "transaction_id")


@dataclass(frozen=True)
class PendingApproval:
    """What a payment call returns when the payment waits for a second person."""

    request_id: int
    idempotency_key: str
    amount: Decimal
    kind: str
    source_account: str | None
    target_account: str | None
    created_at: dt.datetime
    memo: str = ""
    status: str = "pending"
    transaction_id: int | None = None
    replayed: bool = False

    @property
    def amount_cents(self) -> int:
        return int(self.amount * 100)


def _pending_from(row: dict, replayed=False) -> PendingApproval:
    return PendingApproval(row["id"], row["idempotency_key"], to_money(row["amount_cents"]),
                           row["kind"], row["source_account"], row["target_account"],
                           row["created_at"], row["memo"] or "", row["status"],
                           row["transaction_id"], replayed)


def _clean_reason(reason) -> str:
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidInput("Please give a reason.")
    reason = " ".join(reason.split())
    if len(reason) > REASON_CHARS_MAX:
        raise InvalidInput(f"A reason may have at most {REASON_CHARS_MAX} characters.")
    return reason


class Approvals:
    def __init__(self, bank):
        self._bank = bank

    # -- rules ------------------------------------------------------------------------------
    def threshold_cents(self) -> int:
        return self._bank.settings.get_int("four_eyes_threshold_cents", 1000000)

    def required(self, actor, amount_cents: int) -> bool:
        """True if this actor's payment of this amount must wait for a second person."""
        return (getattr(actor, "role", None) in FOUR_EYES_ROLES
                and amount_cents > self.threshold_cents())

    # -- making a request -------------------------------------------------------------------
    def submit(self, request: PostingRequest):
        """Record a request and hold its debits; returns a PendingApproval (or, when the
        same key was already used for the same request, what that use produced)."""
        bank = self._bank
        actor = request.actor
        key = request.idempotency_key

        def fn(uow):
            # Guards in fixed order: the same key first (a repeat is answered, not redone),
            # then the ledger's own guards (accounts, status, funds net of holds), then write.
            row = self._load(uow, "idempotency_key = ?", key)
            if row is not None:
                if row["request_hash"] != request.request_hash:
                    raise IdempotencyConflict("This request key was already used for a "
                                              "different request; nothing was posted.")
                return _pending_from(row, replayed=True)
            posted = uow.fetchone(
                "SELECT k.request_hash, t.id, t.amount_cents, t.kind, t.source_account, "
                "t.target_account, t.posted_at, t.memo FROM idempotency_keys k "
                "JOIN transactions t ON t.id = k.transaction_id WHERE k.key = ?", [key])
            if posted is not None:
                if posted[0] != request.request_hash:
                    raise IdempotencyConflict("This request key was already used for a "
                                              "different request; nothing was posted.")
                return Receipt(posted[1], key, to_money(posted[2]), posted[3], posted[4],
                               posted[5], posted[6], posted[7] or "", replayed=True)
            accounts = bank.check_in(uow, request)
            rid = uow.fetchone("SELECT nextval('approval_id_seq')")[0]
            now = utcnow()
            uow.execute(
                "INSERT INTO approval_requests (id, kind, action, amount_cents, source_account, "
                "target_account, memo, legs, idempotency_key, request_hash, maker, maker_role, "
                "status, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?)",
                [rid, request.kind, request.action, request.amount_cents,
                 request.source_account, request.target_account, request.memo,
                 json.dumps(request.legs), key, request.request_hash, actor.username,
                 actor.role, now])
            held = {}
            for number, delta in request.legs:
                acc = accounts[number]
                if delta < 0 and acc[1] is not None:
                    self._place_hold(uow, actor, acc[0], -delta, rid, now)
                    held[number] = str(to_money(-delta))
            bank.audit_row(uow, actor, "approval.request", "approval", rid, after={
                "kind": request.kind, "amount": str(to_money(request.amount_cents)),
                "source": request.source_account, "target": request.target_account,
                "idempotency_key": key, "holds": held})
            return PendingApproval(rid, key, to_money(request.amount_cents), request.kind,
                                   request.source_account, request.target_account, now,
                                   request.memo)
        try:
            return bank.write(fn)
        except BankError as exc:
            bank.record_refusal(actor, request.action, exc, entity="approval")
            raise

    # -- deciding ---------------------------------------------------------------------------
    def approve(self, actor, request_id) -> Receipt:
        """Release the hold and post the payment, atomically; returns its Receipt."""
        bank = self._bank
        rid = self._id(request_id)
        bank.require(actor, "payment.approve", entity="approval", entity_id=rid)

        def fn(uow):
            row = self._load(uow, "id = ?", rid)
            if row is None:
                raise ApprovalNotFound(f"There is no approval request {rid}.")
            if row["maker"] == actor.username:
                raise PermissionDenied("You made this request, so you cannot approve it; "
                                       "another manager must.")
            if row["status"] != "pending":
                raise InvalidState(f"Request {rid} is already {row['status']}.")
            now = utcnow()
            self._release_holds(uow, actor, rid, "approved", now)
            # The guards already accepted these legs when the request was made, including any
            # internal ledger account, so internal_ok widens nothing here.
            req = PostingRequest(
                kind=row["kind"], actor=Actor(username=row["maker"], role=row["maker_role"]),
                action=row["action"], legs=[tuple(leg) for leg in json.loads(row["legs"])],
                amount_cents=row["amount_cents"], idempotency_key=row["idempotency_key"],
                memo=row["memo"] or "", source_account=row["source_account"],
                target_account=row["target_account"], internal_ok=True)
            if req.request_hash != row["request_hash"]:
                raise AssertionError(f"approval request {rid} no longer matches its hash")
            receipt = bank.post_in(uow, req)
            if isinstance(receipt, BaseException):
                raise receipt  # roll back the hold's release too: the request stays pending
            uow.execute("UPDATE approval_requests SET status = 'approved', decided_by = ?, "
                        "decided_at = ?, transaction_id = ? WHERE id = ?",
                        [actor.username, now, receipt.transaction_id, rid])
            bank.audit_row(uow, actor, "payment.approve", "approval", rid,
                           before={"status": "pending"},
                           after={"status": "approved", "maker": row["maker"],
                                  "transaction_id": receipt.transaction_id,
                                  "amount": str(to_money(row["amount_cents"]))})
            return receipt
        return self._decide(actor, rid, "payment.approve", fn)

    def reject(self, actor, request_id, reason) -> PendingApproval:
        """Refuse a waiting request: its hold is released and nothing is posted."""
        bank = self._bank
        rid = self._id(request_id)
        bank.require(actor, "payment.approve", entity="approval", entity_id=rid)
        reason = _clean_reason(reason)

        def fn(uow):
            row = self._load(uow, "id = ?", rid)
            if row is None:
                raise ApprovalNotFound(f"There is no approval request {rid}.")
            if row["status"] != "pending":
                raise InvalidState(f"Request {rid} is already {row['status']}.")
            now = utcnow()
            self._release_holds(uow, actor, rid, "rejected", now)
            uow.execute("UPDATE approval_requests SET status = 'rejected', decided_by = ?, "
                        "decided_at = ?, reason = ? WHERE id = ?",
                        [actor.username, now, reason, rid])
            bank.audit_row(uow, actor, "payment.reject", "approval", rid,
                           before={"status": "pending"},
                           after={"status": "rejected", "maker": row["maker"],
                                  "reason": reason})
            return _pending_from({**row, "status": "rejected"})
        return self._decide(actor, rid, "payment.reject", fn)

    def _decide(self, actor, rid, action, fn):
        bank = self._bank
        try:
            return bank.write(fn)
        except BankError as exc:
            # Recorded here, after fn rolled back, and before the caller hears of it.
            bank.record_refusal(actor, action, exc, entity="approval", entity_id=rid)
            raise

    # -- reading ----------------------------------------------------------------------------
    def get(self, actor, request_id) -> dict:
        bank = self._bank
        rid = self._id(request_id)
        bank.require(actor, "account.list_all", entity="approval", entity_id=rid)
        df = self.list(actor, request_id=rid)
        if df.empty:
            raise ApprovalNotFound(f"There is no approval request {rid}.")
        return df.iloc[0].to_dict()

    def list(self, actor, status=None, *, maker=None, customer_id=None, request_id=None,
             limit=200):
        """Requests, newest first, with both holders' names (staff only)."""
        bank = self._bank
        bank.require(actor, "account.list_all", entity="approval")
        if status is not None and status not in STATUSES:
            raise InvalidInput("The status must be pending, approved or rejected.")
        sql = ("SELECT r.id AS request_id, r.created_at, r.kind, r.amount_cents, "
               "r.source_account, cs.full_name AS source_holder, r.target_account, "
               "ct.full_name AS target_holder, r.memo, r.maker, r.status, r.decided_by, "
               "r.decided_at, r.reason, r.transaction_id FROM approval_requests r "
               "LEFT JOIN accounts s ON s.account_number = r.source_account "
               "LEFT JOIN customers cs ON cs.id = s.customer_id "
               "LEFT JOIN accounts t ON t.account_number = r.target_account "
               "LEFT JOIN customers ct ON ct.id = t.customer_id WHERE true")
        params = []
        for clause, value in (("r.status = ?", status), ("r.maker = ?", maker),
                              ("r.id = ?", request_id)):
            if value is not None:
                sql += f" AND {clause}"
                params.append(value)
        if customer_id is not None:
            sql += " AND (s.customer_id = ? OR t.customer_id = ?)"
            params += [int(customer_id)] * 2
        df = bank.read_df(sql + f" ORDER BY r.id DESC LIMIT {int(limit)}", params)
        df.insert(4, "amount", [to_money(c) for c in df["amount_cents"]])
        return df

    # -- holds ------------------------------------------------------------------------------
    def _place_hold(self, uow, actor, account_id, cents, approval_id, now):
        hid = uow.fetchone("SELECT nextval('hold_id_seq')")[0]
        uow.execute("INSERT INTO holds (id, account_id, amount_cents, reason, approval_id, "
                    "placed_at, placed_by) VALUES (?, ?, ?, 'four-eyes approval', ?, ?, ?)",
                    [hid, account_id, cents, approval_id, now, actor.username])
        uow.execute("UPDATE accounts SET holds_cents = holds_cents + ? WHERE id = ?",
                    [cents, account_id])

    def _release_holds(self, uow, actor, approval_id, why, now):
        for hid, account_id, cents in uow.fetchall(
                "SELECT id, account_id, amount_cents FROM holds WHERE approval_id = ? "
                "AND released_at IS NULL", [approval_id]):
            uow.execute("UPDATE holds SET released_at = ?, released_by = ?, release_reason = ? "
                        "WHERE id = ?", [now, actor.username, why, hid])
            uow.execute("UPDATE accounts SET holds_cents = holds_cents - ? WHERE id = ?",
                        [cents, account_id])

    # -- plumbing ---------------------------------------------------------------------------
    @staticmethod
    def _id(request_id) -> int:
        from .ids import parse_id
        return parse_id(request_id, "request id")

    @staticmethod
    def _load(uow, where, value):
        row = uow.fetchone(f"SELECT {', '.join(_COLUMNS)} FROM approval_requests WHERE {where}",
                           [value])
        return None if row is None else dict(zip(_COLUMNS, row))
