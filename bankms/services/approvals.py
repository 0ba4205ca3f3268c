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

Segregation of duties (issue 12). The threshold applies strictly above (`>`), like the
"more than 10,000" of cash reporting: a payment of exactly the threshold posts, and so does a
run of payments that together reach it exactly. One staff member's payments from or to one
customer within a business day count together (`post_or_submit`, decided in the writer's posting
batch, with the staff member's row locked on PostgreSQL, so two quick payments cannot both slip
under, from one process or several). Other operations wait the same way (`request`):
creating a manager, resetting a manager's password and raising a role; reversals, overdraft
limits and loan write-offs and staff-made loan repayments above the threshold; savings rates
above `four_eyes_rate_bp`; any change of a loan product's rate range. A request is approved
only by a manager who is not its maker,
did not create or last reset (or approve the creation or reset of) the maker's login, whose own
login the maker did not create or reset, and who has changed their temporary password
(`check_separation`). Structuring alerts (`structuring_alerts`) list runs of payments just
under the threshold, with their audit trail (`alert_trail`).
"""
from __future__ import annotations

import contextvars
import dataclasses
import datetime as dt
import hashlib
import json
import uuid
from dataclasses import dataclass
from decimal import Decimal

from ..domain.errors import (
    AlreadyReversed,
    ApprovalNotFound,
    BankError,
    IdempotencyConflict,
    InvalidInput,
    InvalidState,
    PermissionDenied,
)
from ..domain import accountnum
from ..domain.labels import transaction_label
from .ledger import FOUR_EYES_KINDS, MustWait, PostingRequest, Receipt, utcnow
from ..domain.money import format_cents, to_money
from ..domain.security import Actor

# Roles whose large payments need a second person. The system actor (batch jobs, the demo
# generator) posts at once; customers have their own daily transfer limit instead.
FOUR_EYES_ROLES = frozenset({"teller", "manager"})
STATUSES = ("pending", "approved", "rejected")
REASON_CHARS_MAX = 200

_COLUMNS = ("id", "kind", "action", "amount_cents", "source_account", "target_account", "memo",
            "legs", "idempotency_key", "request_hash", "maker", "maker_role", "status",
            "created_at", "decided_by", "decided_at", "reason", "transaction_id", "params",
            "reverses_id", "channel")

# Requests that are not payments: what they do once a second manager approves. Reversals are
# postings and go through the payment path (legs, holds) with `reverses_id`.
OPERATIONS = {
    "user.create_manager": "create manager login",
    "user.reset_password": "reset a manager's password",
    "user.raise_role": "raise a role",
    "account.set_overdraft": "overdraft limit",
    "account.set_interest_rate": "interest rate",
    "loan.write_off": "loan write-off",
    "loan.repay": "loan repayment",
    "loan.reverse_repayment": "loan repayment reversal",
    "loan.undo_disbursement": "loan payout undone",
    "loan.update_product": "loan product rates",
    "charge.waive": "charge waiver",
    "deposit_product.create": "new deposit product rates",
    "deposit_product.change": "deposit product rates",
}
# Loan operations the loan service carries out once approved (`_approve_loan`), and a charge
# waiver, which the charges service carries out the same way.
_LOAN_OPERATIONS = ("loan.write_off", "loan.repay", "loan.reverse_repayment",
                    "loan.undo_disbursement", "charge.waive")
# Operations whose approval sets a temporary password, shown once to the approving manager.
_PASSWORD_OPERATIONS = ("user.create_manager", "user.reset_password")

# Set while an approved loan operation runs as its maker, so the loan service does not queue
# it a second time. A context variable, so that only this call (not other threads) sees it.
_releasing = contextvars.ContextVar("bankms_approval_releasing", default=None)


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


def _request_hash(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


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

    @staticmethod
    def applies_to(actor) -> bool:
        """Whether this actor's actions are subject to four-eyes at all (staff, not system)."""
        return getattr(actor, "role", None) in FOUR_EYES_ROLES and _releasing.get() is None

    def required(self, actor, amount_cents: int) -> bool:
        """True if this actor's payment of this amount, on its own, must wait for a second
        person (strictly above the threshold). The daily total per customer is checked when
        the payment is made (`post_or_submit`)."""
        return self.applies_to(actor) and amount_cents > self.threshold_cents()

    def post_or_submit(self, request: PostingRequest):
        """A staff payment: post it, or queue it when it alone, or with what the same staff
        member moved from or to one of its customers today without a second person, is above
        the threshold. A payment at or under the threshold alone goes to the writer's posting
        batches flagged four_eyes: the batch decides with the day's total (must_wait, the
        staff member's row locked on PostgreSQL) and posts it there, beside other processes'
        batches and on the lane's tills; one that must wait comes back as MustWait and is
        decided again and queued in one unit of work of its own (exclusive), as is one above
        the threshold alone."""
        bank = self._bank
        if request.amount_cents <= self.threshold_cents():
            try:
                return bank.post(dataclasses.replace(request, four_eyes=True))
            except MustWait:
                pass

        def fn(uow):
            if self._load(uow, "idempotency_key = ?", request.idempotency_key) is None:
                waits, _ = self.wait_check(uow.fetchall, request.actor, request.amount_cents,
                                           [n for n, _ in request.legs])
                if not waits:
                    return bank.post_in(uow, request)
            return self._submit_in(uow, request)
        try:
            outcome = bank.write(fn)
        except BankError as exc:
            bank.record_refusal(request.actor, request.action, exc, entity="approval")
            raise
        if isinstance(outcome, BaseException):
            raise outcome  # the poster audited the refusal in the committed unit of work
        return outcome

    def would_wait(self, actor, amount_cents: int, numbers) -> bool:
        """For a review step: whether a staff payment of this amount touching these accounts
        would wait now (the daily total included). The payment itself decides again."""
        if not self.applies_to(actor):
            return False
        return self.wait_check(self._bank.read, actor, amount_cents, numbers)[0]

    def wait_check(self, fetchall, actor, amount_cents: int, numbers,
                   earlier=()) -> tuple[bool, int]:
        """The four-eyes rule of a staff payment (the caller checked `applies_to`): (whether
        it waits, cents this actor already moved today for the customer of `numbers`). It
        waits when the amount with that day's total is strictly above the threshold. Used by
        posting (`post_or_submit`, in its unit of work; `must_wait`, in a posting batch, with
        the actor's payments the batch posted before as `earlier`: (amount cents, source,
        target)) and by the review step (a plain read)."""
        moved = self._moved_today(fetchall, actor, [n for n in numbers if n], earlier)
        return amount_cents + moved > self.threshold_cents(), moved

    def must_wait(self, uow, request: PostingRequest, earlier) -> bool:
        """For a posting batch (ledger.BatchPoster.must_wait): whether four-eyes payment
        `request` waits, counting the actor's payments posted earlier in the batch."""
        return self.wait_check(uow.fetchall, request.actor, request.amount_cents,
                               [n for n, _ in request.legs], earlier)[0]

    def _moved_today(self, fetchall, actor, numbers, earlier=()) -> int:
        """Cents `actor` moved today, without approval, from or to the customer (of those
        owning `numbers`) with the most such movements; fetchall runs each query (in a unit
        of work on the writer thread, or as a plain read). Two plain queries: one query with
        the joins cost several times more here, on every staff payment. The kinds are the
        customer payments (deposit, withdrawal, transfer), staff-made loan repayments out
        of a customer's account and reversals."""
        marks = ", ".join("?" * len(numbers))
        owned = fetchall(
            f"SELECT b.customer_id, b.account_number FROM accounts a JOIN accounts b "
            f"ON b.customer_id = a.customer_id WHERE a.account_number IN ({marks})",
            list(numbers)) if numbers else []
        if not owned:
            return 0
        owner = {number: cid for cid, number in owned}
        totals = {}
        for amount_cents, source, target in [*fetchall(
                "SELECT amount_cents, source_account, target_account FROM transactions t "
                "WHERE actor = ? AND business_date = ? "
                f"AND kind IN ({', '.join(repr(kind) for kind in FOUR_EYES_KINDS)}) "
                "AND NOT EXISTS "
                "(SELECT 1 FROM approval_requests r WHERE r.transaction_id = t.id)",
                [actor.username, self._bank.state.business_date]), *earlier]:
            # A transfer between two accounts of one customer counts once for them.
            for cid in {owner.get(source), owner.get(target)} - {None}:
                totals[cid] = totals.get(cid, 0) + amount_cents
        return max(totals.values(), default=0)

    def check_separation(self, uow, approver, maker: str) -> None:
        """Raise PermissionDenied unless `approver` may decide a request made by `maker`: not
        the maker, not whoever created or last reset the maker's login (or approved that), not
        someone whose own login the maker created or reset, and not on a temporary password."""
        if approver.username == maker:
            raise PermissionDenied("You made this request, so you cannot approve it; another "
                                   "manager must.")
        rows = {r[0]: r[1:] for r in uow.fetchall(
            "SELECT username, must_change_password, created_by, created_approved_by, "
            "last_reset_by, last_reset_approved_by FROM users WHERE username IN (?, ?)",
            [approver.username, maker])}
        mine = rows.get(approver.username)
        if mine is not None and mine[0]:
            raise PermissionDenied("Change your temporary password before you approve anything.")
        if maker in (mine or ())[1:]:
            raise PermissionDenied(f"{maker} created or reset your login, so you cannot approve "
                                   "their requests; another manager must.")
        if approver.username in (rows.get(maker) or ())[1:]:
            raise PermissionDenied(f"You created or reset the login of {maker}, so you cannot "
                                   "approve their requests; another manager must.")

    # -- making a request -------------------------------------------------------------------
    def submit(self, request: PostingRequest):
        """Record a request and hold its debits; returns a PendingApproval (or, when the
        same key was already used for the same request, what that use produced)."""
        bank = self._bank
        try:
            return bank.write(lambda uow: self._submit_in(uow, request))
        except BankError as exc:
            bank.record_refusal(request.actor, request.action, exc, entity="approval")
            raise

    def _submit_in(self, uow, request: PostingRequest):
        bank = self._bank
        actor = request.actor
        key = request.idempotency_key
        # Guards in fixed order: the same key first (a repeat is answered, not redone),
        # then the ledger's own guards (accounts, status, funds net of holds), then write.
        row = self._load(uow, "idempotency_key = ?", key)
        if row is not None:
            if not request.same_request(row["request_hash"]):
                raise IdempotencyConflict("This request key was already used for a "
                                          "different request; nothing was posted.")
            return _pending_from(row, replayed=True)
        posted = uow.fetchone(
            "SELECT k.request_hash, t.id, t.amount_cents, t.kind, t.source_account, "
            "t.target_account, t.posted_at, t.memo FROM idempotency_keys k "
            "JOIN transactions t ON t.id = k.transaction_id WHERE k.key = ?", [key])
        if posted is not None:
            if not request.same_request(posted[0]):
                raise IdempotencyConflict("This request key was already used for a "
                                          "different request; nothing was posted.")
            return Receipt(posted[1], key, to_money(posted[2]), posted[3], posted[4],
                           posted[5], posted[6], posted[7] or "", replayed=True)
        accounts = bank.check_in(uow, request)
        if request.reverses_id is not None and uow.fetchone(
                "SELECT 1 FROM transactions WHERE reverses_id = ?", [request.reverses_id]):
            raise AlreadyReversed(f"Transaction {request.reverses_id} has already been "
                                  "reversed.")
        rid = uow.fetchone("SELECT nextval('approval_id_seq')")[0]
        now = utcnow()
        uow.execute(
            "INSERT INTO approval_requests (id, kind, action, amount_cents, source_account, "
            "target_account, memo, legs, idempotency_key, request_hash, maker, maker_role, "
            "status, created_at, reverses_id, channel) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?)",
            [rid, request.kind, request.action, request.amount_cents,
             request.source_account, request.target_account, request.memo,
             json.dumps(request.legs), key, request.request_hash, actor.username,
             actor.role, now, request.reverses_id, request.channel])
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

    def request(self, actor, operation: str, *, params: dict, summary: str, amount_cents=0,
                source_account=None, target_account=None, same_as=None) -> PendingApproval:
        """Queue an operation that is not a payment (see OPERATIONS) for a second manager.
        A repeat of the same waiting request (same maker, operation and `same_as`, by default
        the params) returns it (replayed) instead of a second one."""
        if operation not in OPERATIONS:
            raise ValueError(f"unknown operation {operation}")
        return self._bank.write(lambda uow: self.request_in(
            uow, actor, operation, params=params, summary=summary, amount_cents=amount_cents,
            source_account=source_account, target_account=target_account, same_as=same_as))

    def request_in(self, uow, actor, operation: str, *, params: dict, summary: str,
                   amount_cents=0, source_account=None, target_account=None,
                   same_as=None) -> PendingApproval:
        """`request` inside the caller's unit of work (writer thread only): for a service that
        decides the four-eyes rule in its own unit (loans.gate_loan, charges.waive)."""
        rhash = _request_hash(operation, actor.username, params if same_as is None else same_as)
        row = self._load(uow, "request_hash = ? AND status = 'pending'", rhash)
        if row is not None:
            return _pending_from(row, replayed=True)
        rid = uow.fetchone("SELECT nextval('approval_id_seq')")[0]
        now = utcnow()
        key = f"sys:approval-{uuid.uuid4().hex}"
        uow.execute(
            "INSERT INTO approval_requests (id, kind, action, amount_cents, source_account, "
            "target_account, memo, legs, idempotency_key, request_hash, maker, maker_role, "
            "status, created_at, params) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, '[]', ?, ?, ?, ?, 'pending', ?, ?)",
            [rid, operation, operation, int(amount_cents), source_account, target_account,
             summary, key, rhash, actor.username, actor.role, now,
             json.dumps(params, default=str)])
        self._bank.audit_row(uow, actor, "approval.request", "approval", rid, after={
            "kind": operation, "summary": summary, **params})
        return PendingApproval(rid, key, to_money(int(amount_cents)), operation,
                               source_account, target_account, now, summary)

    def wait_warning(self, moved_cents: int, *, held: bool) -> str:
        """The review step's sentence for a staff payment that will wait for a second manager
        (wait_check said so); `held`: money leaves an account and is held until then."""
        threshold = format_cents(self.threshold_cents())
        above = (f"With the {format_cents(moved_cents)} you moved for this customer today, "
                 f"this is above {threshold}:" if moved_cents else f"Above {threshold}")
        then = ("the money will be held on the account until then" if held else
                "it is posted only then")
        return f"{above} a second manager must approve it; {then}."

    def repayment_moved_cents(self, actor, source_account, fetchall=None) -> int:
        """Cents `actor` already moved today, without approval, for the customer owning
        `source_account`: a staff loan repayment out of a customer's account (or its reversal,
        or an undone payout) counts with them toward the four-eyes threshold; cash at the
        counter is nobody's account (0). Used by
        gate_loan (`fetchall` its unit of work's, so that the total is the one the repayment
        posts beside) and by the repayment review (loans.review_repayment; a plain read)."""
        if str(source_account).strip().lower() == "cash":
            return 0
        try:
            numbers = [accountnum.normalize(source_account)]
        except BankError:
            numbers = []  # the loan service refuses the number itself
        return self._moved_today(fetchall or self._bank.read, actor, numbers)

    def gate_loan(self, actor, operation: str, loan_id: int, *, amount_cents=None,
                  source_account=None, reason=None, idempotency_key=None, prepayment=None,
                  value_date=None, transaction_id=None, uow=None, customer_account=None):
        """For loans.write_off, repay, reverse_repayment and undo_disbursement: None when the
        call may go ahead now, else the PendingApproval of a request to do it once a second
        manager agrees. A write-off is measured by the principal outstanding, the others by
        the amount they move (`amount_cents`).

        With `uow` (a repayment: its own unit of work, on the writer thread) the rule is read
        and the request queued inside that unit: a repayment counts the staff member's
        payments of the day with it, and one of them committing between a plain read and the
        repayment's unit would not be counted (two payments slipping under the threshold).
        A repayment's reversal and an undone payout move money into or out of the borrower's
        `customer_account` (kind reversal): they count with the staff member's payments for
        that customer too, and are decided inside their unit of work the same way. Without
        `uow` (a write-off, measured by the principal alone): plain reads and a unit of its
        own. On the writer's thread `applies_to` cannot see an approval being carried out (a
        context variable of the caller's thread): a caller passing `uow` asks it first."""
        if not self.applies_to(actor):
            return None
        bank = self._bank
        fetchall = uow.fetchall if uow is not None else bank.read
        moved_cents = 0
        if operation == "loan.write_off":
            rows = fetchall("SELECT principal_outstanding_cents, customer_id FROM loans "
                            "WHERE id = ?", [loan_id])
            cents = int(rows[0][0]) if rows else 0
            summary = f"Write off loan {loan_id}: {reason}"
        elif operation == "loan.repay":
            cents = int(amount_cents)
            summary = f"Repay loan {loan_id} from {source_account}"
            moved_cents = self.repayment_moved_cents(actor, source_account, fetchall)
        elif operation == "loan.reverse_repayment":
            cents = int(amount_cents)
            summary = f"Reverse payment {transaction_id} of loan {loan_id}: {reason}"
        else:
            cents = int(amount_cents)
            summary = f"Undo the payout of loan {loan_id}: {reason}"
        if operation != "loan.repay" and customer_account:
            moved_cents = self.repayment_moved_cents(actor, customer_account, fetchall)
        if cents + moved_cents <= self.threshold_cents():
            return None
        same = {"loan_id": loan_id, "amount_cents": cents, "reason": reason,
                "source_account": source_account, "idempotency_key": idempotency_key}
        if transaction_id is not None:
            same["transaction_id"] = transaction_id
        if operation == "loan.repay":
            # The repayment is carried out later exactly as asked: its prepayment rule and,
            # for a manager's back-dated correction, its value date.
            same.update(prepayment=prepayment, value_date=value_date)
        # The key the loan service uses once the request is approved, so that a second attempt
        # to carry it out replays instead of paying twice (a write-off has its own default).
        # An undone payout needs one too: its default key names the payout's transaction,
        # which the undo clears, so it could not be found again.
        key = idempotency_key
        if key is None and operation in ("loan.repay", "loan.undo_disbursement"):
            key = f"approved-{uuid.uuid4().hex}"
        ask = {"params": {**same, "idempotency_key": key}, "same_as": same,
               "summary": summary, "amount_cents": cents,
               "source_account": None if source_account is None else str(source_account)}
        if uow is not None:
            return self.request_in(uow, actor, operation, **ask)
        return self.request(actor, operation, **ask)

    # -- deciding ---------------------------------------------------------------------------
    def approve(self, actor, request_id):
        """Carry out a waiting request, as its maker, atomically with its approval. A payment
        or reversal: the hold is released and the Receipt returned. Another operation: a dict
        with `request_id`, `kind` and, for a new manager or a reset password, `username` and
        the `temporary_password` (shown once, to the approver, who hands it over)."""
        bank = self._bank
        rid = self._id(request_id)
        bank.require(actor, "payment.approve", entity="approval", entity_id=rid)
        kind_row = bank.read_one("SELECT kind FROM approval_requests WHERE id = ?", [rid])
        kind = kind_row[0] if kind_row else None
        if kind in _LOAN_OPERATIONS:
            return self._approve_loan(actor, rid)
        prepared = {}
        if kind in _PASSWORD_OPERATIONS:
            # bcrypt takes about half a second: hash before the writer thread is taken.
            from .users import temporary_password
            prepared["password"] = temporary_password()
            prepared["hash"] = bank.users._hash(prepared["password"])

        def fn(uow):
            row = self._pending_row(uow, actor, rid)
            now = utcnow()
            if row["kind"] in OPERATIONS:
                result = self._carry_out(uow, actor, row, prepared)
                tid = None
            else:
                result = self._post_payment(uow, actor, row, now)
                tid = result.transaction_id
            self._mark_approved(uow, actor, row, tid, now)
            return result
        return self._decide(actor, rid, "payment.approve", fn)

    def _mark_approved(self, uow, actor, row, tid, now) -> None:
        uow.execute("UPDATE approval_requests SET status = 'approved', decided_by = ?, "
                    "decided_at = ?, transaction_id = ? WHERE id = ?",
                    [actor.username, now, tid, row["id"]])
        self._bank.audit_row(uow, actor, "payment.approve", "approval", row["id"],
                             before={"status": "pending"},
                             after={"status": "approved", "maker": row["maker"],
                                    "kind": row["kind"], "transaction_id": tid,
                                    "amount": str(to_money(row["amount_cents"]))})

    def _pending_row(self, uow, actor, rid) -> dict:
        row = self._load(uow, "id = ?", rid)
        if row is None:
            raise ApprovalNotFound(f"There is no approval request {rid}.")
        self.check_separation(uow, actor, row["maker"])
        if json.loads(row["params"] or "{}").get("username") == actor.username:
            raise PermissionDenied("This request is about your own login; another manager "
                                   "must approve it.")
        if row["status"] != "pending":
            raise InvalidState(f"Request {rid} is already {row['status']}.")
        return row

    def _post_payment(self, uow, actor, row, now) -> Receipt:
        bank = self._bank
        self._release_holds(uow, actor, row["id"], "approved", now)
        # The guards already accepted these legs when the request was made, including any
        # internal ledger account, so internal_ok widens nothing here.
        req = PostingRequest(
            kind=row["kind"], actor=Actor(username=row["maker"], role=row["maker_role"]),
            action=row["action"], legs=[tuple(leg) for leg in json.loads(row["legs"])],
            amount_cents=row["amount_cents"], idempotency_key=row["idempotency_key"],
            memo=row["memo"] or "", source_account=row["source_account"],
            target_account=row["target_account"], reverses_id=row["reverses_id"],
            internal_ok=True, channel=row["channel"])
        if not req.same_request(row["request_hash"]):
            raise AssertionError(f"approval request {row['id']} no longer matches its hash")
        receipt = bank.post_in(uow, req)
        if isinstance(receipt, BaseException):
            raise receipt  # roll back the hold's release too: the request stays pending
        return receipt

    def _carry_out(self, uow, approver, row, prepared) -> dict:
        """Do an approved operation inside the approval's unit of work, as its maker."""
        bank = self._bank
        maker = Actor(username=row["maker"], role=row["maker_role"])
        params = json.loads(row["params"] or "{}")
        kind = row["kind"]
        out = {"request_id": row["id"], "kind": kind}
        if kind == "user.create_manager":
            bank.users._insert(uow, maker, params["username"], prepared["hash"], "manager",
                               None, params["full_name"], params.get("email"), True,
                               approved_by=approver.username)
        elif kind == "user.reset_password":
            bank.users._reset_in(uow, maker, params["username"], prepared["hash"],
                                 approved_by=approver.username)
        elif kind == "user.raise_role":
            bank.users._set_role_in(uow, maker, params["username"], params["role"])
        elif kind == "account.set_overdraft":
            bank.accounts._set_overdraft_in(uow, maker, params["account"],
                                            int(params["overdraft_limit_cents"]))
        elif kind == "account.set_interest_rate":
            bank.accounts._set_rate_in(uow, maker, params["account"],
                                       Decimal(params["interest_rate_percent"]))
        elif kind == "loan.update_product":
            bank.loans._update_product_in(uow, maker, params["code"], params["changes"])
        elif kind == "deposit_product.create":
            bank.deposit_products._create_in(uow, maker, params)
        elif kind == "deposit_product.change":
            bank.deposit_products._change_in(uow, maker, params)
        else:
            raise AssertionError(f"no way to carry out {kind}")
        if "username" in params:
            out["username"] = params["username"]
        if prepared:
            out["temporary_password"] = prepared["password"]
        return out

    def _approve_loan(self, actor, rid):
        """A loan write-off or staff repayment: the loan service carries it out as the maker
        under the request's own idempotency key, then the request is marked approved. Two
        units of work (the loan engine owns its own); the key makes a retry a replay."""
        bank = self._bank
        try:
            row = bank.write(lambda uow: self._pending_row(uow, actor, rid))
        except BankError as exc:
            bank.record_refusal(actor, "payment.approve", exc, entity="approval", entity_id=rid)
            raise
        params = json.loads(row["params"])
        maker = Actor(username=row["maker"], role=row["maker_role"])
        token = _releasing.set(rid)
        try:
            if row["kind"] == "loan.write_off":
                outcome = bank.loans.write_off(maker, params["loan_id"], reason=params["reason"],
                                               idempotency_key=params["idempotency_key"])
            elif row["kind"] == "loan.reverse_repayment":
                outcome = bank.loans.reverse_repayment(
                    maker, params["loan_id"], params["transaction_id"], params["reason"],
                    idempotency_key=params["idempotency_key"])
            elif row["kind"] == "charge.waive":
                outcome = bank.charges.waive(maker, params["charge_id"], reason=params["reason"],
                                             idempotency_key=params["idempotency_key"])
            elif row["kind"] == "loan.undo_disbursement":
                outcome = bank.loans.undo_disbursement(
                    maker, params["loan_id"], params["reason"],
                    idempotency_key=params["idempotency_key"])
            else:
                outcome = bank.loans.repay(maker, params["loan_id"],
                                           to_money(params["amount_cents"]),
                                           params["source_account"],
                                           idempotency_key=params["idempotency_key"],
                                           prepayment=params.get("prepayment"),
                                           value_date=params.get("value_date"))
        except BankError as exc:
            bank.record_refusal(actor, "payment.approve", exc, entity="approval", entity_id=rid)
            raise
        finally:
            _releasing.reset(token)
        tid = (outcome.get("transaction_id") if isinstance(outcome, dict)
               else getattr(outcome, "transaction_id", None))

        def fn(uow):
            self._pending_row(uow, actor, rid)
            self._mark_approved(uow, actor, row, tid, utcnow())
            return outcome
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
             kinds=None, account=None, limit=200):
        """Requests, newest first, with both holders' names (staff only). `kinds` keeps only
        those kinds (e.g. the user.* operations); `account` those naming one account."""
        bank = self._bank
        bank.require(actor, "account.list_all", entity="approval")
        if status is not None and status not in STATUSES:
            raise InvalidInput("The status must be pending, approved or rejected.")
        sql = ("SELECT r.id AS request_id, r.created_at, r.kind, r.amount_cents, "
               "r.source_account, cs.full_name AS source_holder, r.target_account, "
               "ct.full_name AS target_holder, r.memo, r.maker, r.status, r.decided_by, "
               "r.decided_at, r.reason, r.transaction_id, r.reverses_id, r.params, r.channel "
               "FROM approval_requests r "
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
        if kinds is not None:
            sql += " AND " + bank.engine.dialect.in_list("r.kind", "VARCHAR")
            params.append(list(kinds))
        if account is not None:
            sql += " AND ? IN (r.source_account, r.target_account)"
            params.append(str(account))
        df = bank.read_df(sql + f" ORDER BY r.id DESC LIMIT {int(limit)}", params)
        df.insert(4, "amount", [to_money(c) for c in df["amount_cents"]])
        # What is asked, as people say it: the operation, or the payment's label.
        df["label"] = [OPERATIONS[k].capitalize() if k in OPERATIONS
                       else transaction_label(k, c) for k, c in zip(df["kind"], df["channel"])]
        return df

    # -- structuring alerts -----------------------------------------------------------------
    def structuring_alerts(self, actor, *, lookback_days=30):
        """Managers: customers with `structuring_count_min` or more payments (deposits,
        withdrawals, transfers, by anyone) each between `structuring_band_min_percent` % of
        the four-eyes threshold and the threshold itself, within `structuring_window_s`
        seconds, over the last `lookback_days` days. One row per customer, the busiest window:
        customer_id, holder, payments, total (Decimal), first_at, last_at, actors,
        transaction_ids (a list, for `alert_trail`)."""
        import pandas as pd

        bank = self._bank
        bank.require(actor, "audit.read", entity="approval")
        threshold = self.threshold_cents()
        band_min = threshold * bank.settings.get_int("structuring_band_min_percent", 80) // 100
        count_min = max(bank.settings.get_int("structuring_count_min", 3), 2)
        window = dt.timedelta(seconds=bank.settings.get_int("structuring_window_s", 86400))
        since = utcnow() - dt.timedelta(days=int(lookback_days))
        # Two equi-joins (source side, target side) rather than one OR join; UNION keeps a
        # payment between one customer's own accounts once.
        band = bank.read_df(
            "WITH band AS (SELECT id, posted_at, amount_cents, actor, source_account, "
            "target_account FROM transactions WHERE kind IN ('deposit', 'withdrawal', "
            "'transfer') AND amount_cents BETWEEN ? AND ? AND posted_at >= ?), "
            "touched AS (SELECT a.customer_id, b.id, b.posted_at, b.amount_cents, b.actor "
            "FROM band b JOIN accounts a ON a.account_number = b.source_account UNION "
            "SELECT a.customer_id, b.id, b.posted_at, b.amount_cents, b.actor "
            "FROM band b JOIN accounts a ON a.account_number = b.target_account) "
            "SELECT t.customer_id, c.full_name AS holder, t.id AS transaction_id, t.posted_at, "
            "t.amount_cents, t.actor FROM touched t JOIN customers c ON c.id = t.customer_id "
            "ORDER BY t.customer_id, t.posted_at, t.id",
            [band_min, threshold, since])
        alerts = []
        for cid, rows in band.groupby("customer_id", sort=True):
            times = list(rows["posted_at"])
            best, start = (0, 0, 0), 0
            for end in range(len(times)):
                while times[end] - times[start] > window:
                    start += 1
                if end - start + 1 > best[0]:
                    best = (end - start + 1, start, end)
            if best[0] < count_min:
                continue
            hit = rows.iloc[best[1]:best[2] + 1]
            alerts.append({
                "customer_id": int(cid), "holder": hit["holder"].iloc[0],
                "payments": len(hit), "total": to_money(int(hit["amount_cents"].sum())),
                "first_at": hit["posted_at"].iloc[0], "last_at": hit["posted_at"].iloc[-1],
                "actors": ", ".join(sorted(set(hit["actor"]))),
                "transaction_ids": [int(t) for t in hit["transaction_id"]]})
        columns = ["customer_id", "holder", "payments", "total", "first_at", "last_at",
                   "actors", "transaction_ids"]
        return pd.DataFrame(alerts, columns=columns)

    def alert_trail(self, actor, transaction_ids):
        """Managers: the audit records behind an alert (its transactions and any approval
        requests that posted them), oldest first."""
        bank = self._bank
        bank.require(actor, "audit.read", entity="approval")
        ids = [str(int(t)) for t in transaction_ids]
        in_list = bank.engine.dialect.in_list
        return bank.read_df(
            "SELECT ts, actor, actor_role, action, entity, entity_id, outcome, after "
            "FROM audit_log WHERE (entity = 'transaction' AND "
            + in_list("entity_id", "VARCHAR") + ") "
            "OR (entity = 'approval' AND entity_id IN (SELECT CAST(id AS VARCHAR) FROM "
            "approval_requests WHERE " + in_list("CAST(transaction_id AS VARCHAR)", "VARCHAR")
            + ")) "
            "ORDER BY ts, id", [ids, ids])

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
        from ..domain.ids import parse_id
        return parse_id(request_id, "request id")

    @staticmethod
    def _load(uow, where, value):
        row = uow.fetchone(f"SELECT {', '.join(_COLUMNS)} FROM approval_requests WHERE {where}",
                           [value])
        return None if row is None else dict(zip(_COLUMNS, row))
