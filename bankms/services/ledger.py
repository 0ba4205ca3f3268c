"""The double-entry ledger: posting requests, their guards, and the set-based batch write.

Every movement of money is a transaction with two or more postings that sum to zero. Postings
are only ever inserted; a correction is a new reversing transaction. An account's stored balance
is a cache of the sum of its postings, updated in the same database transaction, and
`audit.verify` checks that it always equals that sum.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import threading
from dataclasses import dataclass, field
from decimal import Decimal

from ..domain import security
from ..domain.chain import MAIN_LANE
from ..domain.chart import INTERNAL, LANE_TILLS, till_number
from ..store.db import REVERSAL_INDEX
from ..store.port import DuplicateKey
from ..domain.errors import (
    AccountClosed,
    AccountFrozen,
    AccountNotActive,
    AccountNotFound,
    AlreadyReversed,
    BankError,
    IdempotencyConflict,
    InsufficientFunds,
    LimitExceeded,
    PermissionDenied,
    SameAccount,
    TermDepositLocked,
)
from ..domain.dates import utcnow  # noqa: F401  (re-exported: services import it from here)
from ..domain.money import format_cents, money_text, to_money

CUSTOMER_KINDS = ("checking", "savings", "term_deposit")
# Kinds that ordinary payments, loans and charges may use; a term deposit's money moves only
# through bank.term_deposits (requests it builds carry term_deposit_ok).
TRANSACTIONAL_KINDS = ("checking", "savings")
# Kinds of transaction started by or for the customer; these count as customer activity (for
# dormancy), whereas interest and fees posted by the bank do not.
CUSTOMER_ACTIVITY_KINDS = frozenset({"deposit", "withdrawal", "transfer", "loan_repayment"})

# What can leave a customer account now: "available", with one meaning everywhere (API, pages,
# CSV; issue 13). A frozen or closed account has nothing available, since the guards let no money
# leave it, and neither has a term deposit, whose money leaves only at maturity or by an early
# closure at the bank (check_accounts refuses any other debit: TermDepositLocked); any other
# account has its balance less the money on hold plus its overdraft limit (it can be negative
# when overdraft interest took the balance past the limit).
NO_FUNDS_STATUSES = ("frozen", "closed")
LOCKED_KINDS = ("term_deposit",)


def available_cents(balance_cents: int, holds_cents: int, overdraft_limit_cents: int,
                    status: str | None = None, kind: str | None = None) -> int:
    """Cents that can leave an account now: balance - holds + overdraft limit, or 0 when the
    account's status is frozen or closed (NO_FUNDS_STATUSES) or its kind is a term deposit
    (LOCKED_KINDS). The same rule in SQL is `available_sql`. The posting guard's funds check
    passes no kind: a term deposit's debits are refused before it unless the request is a
    maturity or early closure (term_deposit_ok), which may take the whole balance."""
    if status in NO_FUNDS_STATUSES or kind in LOCKED_KINDS:
        return 0
    return balance_cents - holds_cents + overdraft_limit_cents


def available_sql(alias: str = "a") -> str:
    """`available_cents` as a SQL expression over the accounts row called `alias` (BIGINT
    cents; it reads status and kind), for every query that reads or shows an available
    balance."""
    a = f"{alias}." if alias else ""
    statuses = ", ".join(f"'{s}'" for s in NO_FUNDS_STATUSES)
    kinds = ", ".join(f"'{k}'" for k in LOCKED_KINDS)
    return (f"(CASE WHEN {a}status IN ({statuses}) OR {a}kind IN ({kinds}) "
            f"THEN 0 ELSE {a}balance_cents "
            f"- {a}holds_cents + {a}overdraft_limit_cents END)")


# The channel a kind of payment takes when the caller names none (payments.deposit/withdraw):
# requests made before channels existed were these, so it is left out of the request hash.
DEFAULT_CHANNELS = {"deposit": "cash", "withdrawal": "cash"}


@dataclass(frozen=True)
class Receipt:
    transaction_id: int
    idempotency_key: str
    amount: Decimal
    kind: str
    source_account: str | None
    target_account: str | None
    posted_at: dt.datetime
    memo: str = ""
    replayed: bool = False
    channel: str | None = None

    @property
    def amount_cents(self) -> int:
        return int(self.amount * 100)


@dataclass
class PostingRequest:
    """One money movement as the writer sees it: legs of (account number, signed cents).

    A positive leg credits the account (raises what the bank owes its holder); a negative leg
    debits it. The legs always sum to zero.
    """

    kind: str
    actor: security.Actor
    action: str
    legs: list
    amount_cents: int
    idempotency_key: str
    memo: str = ""
    source_account: str | None = None
    target_account: str | None = None
    reverses_id: int | None = None
    # Customer accounts whose holder must be the acting customer (for customers only).
    owned_accounts: tuple = ()
    # Internal ledger accounts may take part only when the service put them there.
    internal_ok: bool = False
    # Term deposit accounts may take part only when bank.term_deposits built the request.
    term_deposit_ok: bool = False
    daily_limit_cents: int | None = None
    request_hash: str = field(default="")
    # How the money moved (labels.CHANNEL_LABELS), None when the kind says it all.
    channel: str | None = None
    # A staff payment under the four-eyes rule (approvals.post_or_submit): the batch decides
    # whether it must wait for a second person (BatchPoster.must_wait) before its guards, and
    # answers MustWait instead of posting it. Not part of the request's hash.
    four_eyes: bool = False

    def __post_init__(self):
        if sum(delta for _, delta in self.legs) != 0:
            raise ValueError("postings of one transaction must sum to zero")
        if not self.request_hash:
            parts = [self.kind, self.actor.username, self.legs, self.amount_cents, self.memo,
                     self.reverses_id]
            # Only a channel other than the kind's default is part of the request: keys used
            # before channels existed (and requests waiting for approval then) keep their
            # hashes, so their replays still return the first receipt.
            if self.channel is not None and self.channel != DEFAULT_CHANNELS.get(self.kind):
                parts.append(self.channel)
            self.request_hash = _hash_parts(parts)

    def same_request(self, request_hash: str) -> bool:
        """Whether a stored request hash is this request's. A default-channel payment also
        matches the hash it had while the default channel was still hashed (keys and approval
        requests stored then replay, and approve, as the same request)."""
        if request_hash == self.request_hash:
            return True
        if self.channel is None or self.channel != DEFAULT_CHANNELS.get(self.kind):
            return False
        return request_hash == _hash_parts([self.kind, self.actor.username, self.legs,
                                            self.amount_cents, self.memo, self.reverses_id,
                                            self.channel])


class MustWait(Exception):
    """A posting batch's answer to a four-eyes staff payment that must wait for a second person
    (PostingRequest.four_eyes): nothing was posted or audited; approvals.post_or_submit then
    queues it in a unit of work of its own. Not a BankError: no one is refused."""


# The kinds of a staff member's payments that count towards the four-eyes rule's daily total
# (approvals._moved_today reads the same kinds from the ledger).
FOUR_EYES_KINDS = ("deposit", "withdrawal", "transfer", "loan_repayment", "loan_recovery",
                   "reversal")


def _hash_parts(parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


class LedgerState:
    """What the writer keeps in memory between units of work: the business date and, on DuckDB,
    the ledger's id counters. On DuckDB ids come from these counters (through uow.take_ids:
    engine.set_counters), so that a batch can allocate them without a round trip per row. On
    PostgreSQL (counters=False) every id comes from the engine's sequences (uow.take_ids,
    db.LEDGER_SEQUENCES): several processes' writers take them at once."""

    def __init__(self, reader, counters: bool = True):
        """State read through `reader` (a port Reader: a snapshot, taken at open); the id
        counters only when `counters`."""
        self.counters = counters
        # The business date is also moved forward by the listener thread when another process
        # ran end of day (catch_up, bank.py); every change to it takes this lock, so that a
        # later date set by the writer is never overwritten with an earlier one read before.
        self._date_lock = threading.Lock()
        self._business_date: dt.date | None = None
        self.reload(reader)

    @property
    def business_date(self) -> dt.date:
        """The open business date (moved by end of day; read without a lock)."""
        return self._business_date

    @business_date.setter
    def business_date(self, day: dt.date) -> None:
        with self._date_lock:
            self._business_date = day

    def catch_up(self, day: dt.date) -> None:
        """Take `day`, a business date read from the store, when it is later than the one in
        memory: business dates only move forward (end of day), so an earlier one is a read
        from before a change this process already holds (its writer's end of day)."""
        with self._date_lock:
            if self._business_date is None or day > self._business_date:
                self._business_date = day

    def reload(self, reader):
        """Read the business date (and the counters, when kept) again through `reader` (a port
        Reader): at open, and on the writer thread under the store's writer lock whenever
        another process may have written (store/writer.py). One query."""
        if not self.counters:
            row = reader.fetchone("SELECT value FROM settings WHERE key = 'business_date'")
            day = row[0] if row else None
            self.business_date = dt.date.fromisoformat(day) if day else utcnow().date()
            return
        tx, posting, audit, day = reader.fetchone(
            "SELECT (SELECT coalesce(max(id), 0) + 1 FROM transactions), "
            "(SELECT coalesce(max(id), 0) + 1 FROM postings), "
            "(SELECT coalesce(max(id), 0) + 1 FROM audit_log), "
            "(SELECT value FROM settings WHERE key = 'business_date')")
        self.next_transaction_id = tx
        self.next_posting_id = posting
        self.next_audit_id = audit
        self.business_date = dt.date.fromisoformat(day) if day else utcnow().date()

    # The counters' take(n) -> first id, for engine.set_counters (DuckDB only).
    def take_transaction_ids(self, n):
        first = self.next_transaction_id
        self.next_transaction_id += n
        return first

    def take_posting_ids(self, n):
        first = self.next_posting_id
        self.next_posting_id += n
        return first

    def take_audit_ids(self, n):
        first = self.next_audit_id
        self.next_audit_id += n
        return first


class BatchPoster:
    """Applies a batch of PostingRequests in one unit of work: guards, write, invariant check."""

    def __init__(self, rows, state: LedgerState, chains=None):
        self.state = state
        # The hash chains (chain_store.Chains): this batch hashes the rows it appends.
        self.chains = chains
        # The engine's batch write (engine.batch_writer(session): DuckDB's appenders on the
        # writer's cursor, PostgreSQL's unnest inserts): write(tx, postings, keys, balances,
        # audit) and clear().
        self._rows = rows
        self._accounts: dict = {}
        # Late-locked batches whose decisions differed under the lock, and so were rolled back
        # to their savepoint and posted again the plain locked way (_post_late).
        self.redoes = 0
        # A test's hook: called with the unit of work between the unlocked read and the lock.
        self.before_lock = None
        # Writer lanes: open_tills(uow, lane) opens (and audits) every till of `lane` that does
        # not exist yet (Bank._open_tills).
        self.open_tills = None
        # The four-eyes rule (approvals.must_wait): must_wait(uow, request, earlier) says
        # whether a staff payment waits, `earlier` being (amount cents, source, target) of the
        # same staff member's payments this batch posted before it.
        self.must_wait = None

    def use(self, rows) -> None:
        """Write through `rows` (engine.batch_writer of the writer's new session) from now on."""
        self._rows = rows

    def __call__(self, uow, requests, *, lookup_keys=False):
        try:
            return self._post(uow, requests, lookup_keys)
        except BaseException:
            self.invalidate()
            raise

    def invalidate(self):
        """Forget cached account rows and buffered appender rows after any failure or any
        other write, so that the next batch reads the committed truth."""
        self._accounts.clear()
        self._rows.clear()

    @staticmethod
    def _lane_tills(requests, lane) -> dict:
        """Writer lanes: {busy internal account number: its till in `lane`} for the busy
        accounts (chart.LANE_TILLS) that `requests` move. {} outside writer lanes."""
        numbers = {n for r in requests for n, _ in r.legs}
        parents = [INTERNAL[code] for code in LANE_TILLS if INTERNAL[code] in numbers]
        if not parents or not lane:
            return {}
        return {number: till_number(number, lane) for number in parents}

    def _post(self, uow, requests, lookup_keys):
        late = getattr(uow, "shared", False)
        # The lane these rows are chained in (chain.py): the chains' writer lane (0 on DuckDB;
        # MAIN_LANE without chains).
        lane = self.chains.lane if self.chains is not None else MAIN_LANE
        # Busy internal accounts: a posting batch beside other lanes books their legs on its
        # lane's tills (chart.LANE_TILLS), so that batches of several processes need no row
        # in common for them. Units that run alone (exclusive) book them on the account.
        tills = self._lane_tills(requests, lane) if late else {}
        outcomes, shown = self._post_rows(uow, requests, lookup_keys, late, lane, tills)
        if len(shown) < len(tills) and self.open_tills is not None and any(
                isinstance(outcome, Receipt) and not outcome.replayed
                and any(number in tills for number, _ in req.legs)
                for req, outcome in zip(requests, outcomes)):
            # A till was missing, so this batch booked on the account itself; the lane's tills
            # are opened now, after its rows, for the next batches. Only by a batch that
            # posted there: a refused request changes nothing, not even this. In the batch's
            # unit of work: if it rolls back, the tills go too and a later batch opens them.
            self.open_tills(uow, lane)
        return outcomes

    def _post_rows(self, uow, requests, lookup_keys, late, lane, tills):
        """The batch's outcomes (in request order), and {account number: till number} of the
        accounts whose legs it booked on tills (_book_on_tills)."""
        if self.chains is not None:
            # Rows that this unit of work wrote before (a service's own audit row ahead of
            # post_in) are hashed before this batch takes ids after them; on the batch path
            # nothing has been written yet and this reads nothing.
            self.chains.seal(uow)
        now = utcnow()
        keys = list({r.idempotency_key for r in requests})
        # Repeated keys are rare, so the key table is not read up front: its primary key
        # refuses a repeat at insert, and the writer then reruns the batch with lookup_keys.
        # A request that a guard refuses is looked up before the refusal is given, since an
        # earlier success under its key must win over a guard (the account may have changed).
        known = self._lookup_keys(uow, keys) if keys and lookup_keys else {}
        if late:
            # Writer lanes (PostgreSQL, store/writer.py): other processes' batches post beside
            # this one, so no cached row is trusted. Late locking (_post_late): the accounts
            # are read WITHOUT a lock here, the batch is decided and its rows built from that
            # read, and the accounts are locked (in id order) only by the one statement that
            # applies the deltas; the decisions are then checked against the locked balances.
            # The cache is emptied: the rows this batch changes would be stale in it for a
            # later exclusive job of this process.
            self._accounts.clear()
            accounts = load_accounts(uow.fetchall,
                                     sorted({n for r in requests for n, _ in r.legs}
                                            | set(tills.values())),
                                     uow.dialect)
        else:
            # Only this thread writes, so account rows read once stay true until some other
            # write job runs or a batch fails; both clear this cache (see invalidate).
            accounts = self._accounts
            if len(accounts) > 100_000:
                accounts.clear()
            accounts.update(load_accounts(
                uow.fetchall, list({n for r in requests for n, _ in r.legs
                                    if n not in accounts}), uow.dialect))
        reversed_ids = set()
        originals = [r.reverses_id for r in requests if r.reverses_id is not None]
        if originals:
            reversed_ids = {
                row[0] for row in uow.fetchall(
                    "SELECT reverses_id FROM transactions WHERE "
                    + uow.dialect.in_list("reverses_id", "BIGINT"),
                    [originals],
                )
            }
        staff = [r for r in requests if r.four_eyes]
        queued = set()
        if staff:
            if late:
                # Writer lanes: one staff member's payments in two lanes' batches could each
                # read that day's total before the other commits, and both slip under the
                # four-eyes threshold. The staff members' user rows are locked first (id
                # order, before any customer or account: every batch locks in that order), so
                # the total read below comes after any other lane's batch of theirs committed.
                uow.fetchall("SELECT id FROM users WHERE "
                             + uow.dialect.in_list("username", "VARCHAR")
                             + " ORDER BY id FOR NO KEY UPDATE",
                             [sorted({r.actor.username for r in staff})])
            # A key already queued for approval is answered by the approvals path (the pending
            # request, replayed). Requests are queued only under the exclusive writer lock, so
            # none can appear while this batch runs.
            queued = {row[0] for row in uow.fetchall(
                "SELECT idempotency_key FROM approval_requests WHERE "
                + uow.dialect.in_list("idempotency_key", "VARCHAR"),
                [sorted({r.idempotency_key for r in staff})])}
        limited = [r for r in requests if r.daily_limit_cents is not None]
        if limited and late:
            # Writer lanes: two lanes' batches could each read what a customer sent today
            # before the other commits, and both pass the daily limit. The limited customers'
            # rows are locked first (in id order, before any account: every batch locks in
            # that order, so none waits for another in a circle), so the read below comes
            # after any other lane's batch for that customer has committed. NO KEY UPDATE:
            # opening an account for the customer (a foreign key's KEY SHARE lock) need not
            # wait.
            uow.fetchall("SELECT id FROM customers WHERE "
                         + uow.dialect.in_list("id", "BIGINT")
                         + " ORDER BY id FOR NO KEY UPDATE",
                         [sorted({r.actor.customer_id for r in limited})])
        spent_today = spent_today_cents(
            uow.fetchall, self.state.business_date,
            list({r.actor.customer_id for r in limited}), uow.dialect) if limited else {}

        # Ids through uow.take_ids (the port): on DuckDB from the writer's counters, one at a
        # time as before (no gaps); on PostgreSQL from sequences, where each take is a round
        # trip, so one block per sequence up front, enough for every request to post (ids a
        # refused or replayed request leaves unused are gaps, which ids may have).
        # Audit ids too on PostgreSQL (one a request at most), all in one round trip.
        blocks = uow.take_ids_many({
            "transaction_id_seq": len(requests),
            "posting_id_seq": sum(len(r.legs) for r in requests),
            "audit_id_seq": len(requests)}) if not self.state.counters else {}
        tx_ids = _IdPool(uow, "transaction_id_seq", blocks.get("transaction_id_seq"))
        posting_ids = _IdPool(uow, "posting_id_seq", blocks.get("posting_id_seq"))
        shown = {}
        if late:
            marked = self.chains.mark() if self.chains is not None else None
            copied = {n: list(row) for n, row in accounts.items()}
            shown = _book_on_tills(copied, tills)
            outcomes = self._post_late(uow, requests, now, known, lookup_keys, copied,
                                       set(reversed_ids), dict(spent_today), tx_ids,
                                       posting_ids, blocks, shown, queued)
            if outcomes is not None:
                return outcomes, shown
            # A decision differed under the lock: the batch's rows are gone (back to the
            # savepoint). Post it the plain way from a locked read (FOR UPDATE, id order),
            # with the same ids and chain heads.
            self.redoes += 1
            tx_ids.rewind()
            posting_ids.rewind()
            if marked is not None:
                self.chains.restore(marked)
            # Not the accounts booked on tills: their rows are not this batch's to lock.
            accounts = load_accounts(uow.fetchall, sorted(set(accounts) - set(shown)),
                                     uow.dialect, lock=True)
            shown = _book_on_tills(accounts, tills)
            note_rows_locked(uow)
        outcomes = []
        in_batch = {}
        touched = {}
        tx_rows, posting_rows, key_rows = [], [], []
        # Audit entries in request order: (outcome position of a refusal or None, request,
        # outcome, after, entity id). Their ids are taken after the loop, once the refusals
        # are settled, so that ids follow the order the requests came in.
        audited, refused = [], []
        staff_posted: dict = {}
        for req in requests:
            key = req.idempotency_key
            if req.four_eyes and key in queued:
                # Before the keys' answer: an approved request's payment holds the key too,
                # and a replay answers the request (approvals._submit_in), whatever the batch
                # looked up.
                outcomes.append(MustWait())
                continue
            prior = known.get(key) or in_batch.get(key)
            if prior is not None:
                # A twin in the same batch is a replay too: only the first one posted.
                outcomes.append(_answer_again(req, prior))
                continue
            if self._waits(uow, req, staff_posted):
                outcomes.append(MustWait())
                continue
            try:
                self._guard(req, accounts, reversed_ids, spent_today)
            except BankError as refusal:
                # Settled after the loop, with one look-up of all refused keys; a refused
                # request changes nothing that the requests after it see.
                refused.append((len(outcomes), req))
                audited.append((len(outcomes), req, "refused", {
                    "reason": type(refusal).__name__, "message": str(refusal)}, None))
                outcomes.append(refusal)
                continue
            tid = tx_ids.take()
            tx_rows.append(self._tx_row(tid, req, now, lane))
            before = {}
            for number, delta in req.legs:
                acc = accounts[number]
                before.setdefault(number, acc[4])
                acc[4] += delta
                pid = posting_ids.take()
                posting_rows.append((pid, tid, acc[0], delta, now))
                if req.kind in CUSTOMER_ACTIVITY_KINDS and acc[1] is not None:
                    acc[8], acc[9] = now, self.state.business_date
                touched[acc[0]] = (acc[0], acc[4], acc[8], acc[9])
            key_rows.append((key, req.request_hash, tid))
            _note_staff(req, staff_posted)
            audited.append((None, req, "ok", {
                "transaction_id": tid, "amount": money_text(req.amount_cents),
                "balances_before": {shown.get(n, n): money_text(b) for n, b in before.items()},
                "balances_after": {shown.get(n, n): money_text(accounts[n][4]) for n in before},
            }, str(tid)))
            outcomes.append(_accepted(req, tid, now, accounts, reversed_ids, spent_today,
                                      in_batch))

        # Refused requests whose keys were used before answer as those did: one query for the
        # batch, not one per refusal (under readers each query of the writer costs a GIL
        # hand-off, issue 13).
        answered = self._answer_refused_keys(uow, refused, outcomes, lookup_keys)
        audited = [entry for entry in audited if entry[0] not in answered]
        if "audit_id_seq" in blocks:
            audit_ids = blocks["audit_id_seq"].ids.tolist()[:len(audited)]
        else:
            audit_ids = (uow.take_ids("audit_id_seq", len(audited)).ids.tolist()
                         if audited else [])
        audit_rows = [(*self._audit_row(aid, now, req, outcome, after, entity_id=entity_id),
                       lane)
                      for aid, (position, req, outcome, after, entity_id)
                      in zip(audit_ids, audited)]

        # Invariant check before anything is written: what this batch adds sums to zero.
        if sum(row[3] for row in posting_rows) != 0:
            raise AssertionError("batch postings do not sum to zero")
        if self.chains is not None:
            tx_hashes, audit_hashes = self.chains.hash_batch(uow, tx_rows, posting_rows,
                                                             audit_rows)
        else:
            tx_hashes, audit_hashes = [None] * len(tx_rows), [None] * len(audit_rows)
        # The tables' order: the chained columns, chain_hash, then those added after it
        # (channel and lane; lane only on audit_log).
        tx_rows = [(*row[:-2], h, *row[-2:]) for row, h in zip(tx_rows, tx_hashes)]
        audit_rows = [(*row[:-1], h, row[-1]) for row, h in zip(audit_rows, audit_hashes)]
        try:
            self._rows.write(tx_rows, posting_rows, key_rows, list(touched.values()),
                             audit_rows)
        except DuplicateKey as exc:
            _reversal_refused(exc, tx_rows, lookup_keys)
        return outcomes, shown

    def _post_late(self, uow, requests, now, known, lookup_keys, accounts, reversed_ids,
                   spent_today, tx_ids, posting_ids, blocks, shown, queued):
        """Late locking (writer lanes, PostgreSQL; branch `late`'s prototype). Decide every
        request from the UNLOCKED read `accounts` (running balances, the guards in order),
        build the transaction, posting and key rows and their hashes, and insert them after a
        savepoint (they need no account lock). Then lock the accounts in id order and apply
        the deltas in one statement, which answers the locked balances; replay the funds
        decisions against them (balance before = answered - this batch's delta). When all
        agree, the audit rows take those balances and are written: the outcome of a serial run
        in lock order. When one differs, roll back to the savepoint and return None (the
        caller posts the batch the plain locked way). The daily limit's spent_today was read
        under the customers' locks (held until COMMIT), and only the funds guard reads
        balances; the other guards read what only exclusive jobs change, checked too."""
        lane = self.chains.lane if self.chains is not None else MAIN_LANE
        outcomes, in_batch = [], {}
        tx_rows, posting_rows, key_rows = [], [], []
        # Per account id: the batch's delta, and whether its last activity moves.
        deltas, active = {}, {}
        # Request order: [outcome position or None, request, "ok" or "refused", refusal, tid].
        decided, refused = [], []
        staff_posted: dict = {}
        for req in requests:
            key = req.idempotency_key
            if req.four_eyes and key in queued:
                outcomes.append(MustWait())  # as in _post's loop
                continue
            prior = known.get(key) or in_batch.get(key)
            if prior is not None:
                outcomes.append(_answer_again(req, prior))
                continue
            # Decided under the staff members' locks (taken in _post): the day's total read
            # there cannot change before COMMIT, so the replay below need not decide it again.
            if self._waits(uow, req, staff_posted):
                outcomes.append(MustWait())
                continue
            try:
                self._guard(req, accounts, reversed_ids, spent_today)
            except BankError as refusal:
                refused.append((len(outcomes), req))
                decided.append([len(outcomes), req, "refused", refusal, None])
                outcomes.append(refusal)
                continue
            tid = tx_ids.take()
            tx_rows.append(self._tx_row(tid, req, now, lane))
            for number, delta in req.legs:
                acc = accounts[number]
                acc[4] += delta
                posting_rows.append((posting_ids.take(), tid, acc[0], delta, now))
                deltas[acc[0]] = deltas.get(acc[0], 0) + delta
                if req.kind in CUSTOMER_ACTIVITY_KINDS and acc[1] is not None:
                    active[acc[0]] = True
            key_rows.append((key, req.request_hash, tid))
            _note_staff(req, staff_posted)
            decided.append([None, req, "ok", None, tid])
            outcomes.append(_accepted(req, tid, now, accounts, reversed_ids, spent_today,
                                      in_batch))
        answered = self._answer_refused_keys(uow, refused, outcomes, lookup_keys)
        if sum(row[3] for row in posting_rows) != 0:
            raise AssertionError("batch postings do not sum to zero")
        if self.chains is not None and tx_rows:
            tx_hashes, _ = self.chains.hash_batch(uow, tx_rows, posting_rows, [])
        else:
            tx_hashes = [None] * len(tx_rows)
        tx_rows = [(*row[:-2], h, *row[-2:]) for row, h in zip(tx_rows, tx_hashes)]
        try:
            self._rows.write_unlocked(tx_rows, posting_rows, key_rows)
        except DuplicateKey as exc:
            _reversal_refused(exc, tx_rows, lookup_keys)
        if self.before_lock is not None:
            self.before_lock(uow)
        # Every account of the batch is locked (delta 0 where only refused requests touch
        # it): a refusal for funds depends on its balance too. An account that does not exist
        # refused its requests and locks nothing.
        ids = sorted({row[0] for row in accounts.values()})
        locked_rows = self._rows.lock_and_apply(
            ids, [deltas.get(i, 0) for i in ids], [active.get(i, False) for i in ids],
            now, self.state.business_date) if ids else {}
        note_rows_locked(uow)
        # The accounts as a serial run in lock order would have read them before this batch.
        locked, by_id = {}, {}
        for number, row in accounts.items():
            balance, holds, overdraft, status = locked_rows[row[0]]
            if (holds, overdraft, status) != (row[5], row[6], row[3]):
                # Only exclusive jobs change these, and none runs beside a posting batch; a
                # change is handled as a differing decision all the same.
                self._rows.undo_unlocked()
                return None
            # One list an account: an account and its till's alias (shown) share it.
            locked[number] = by_id.setdefault(row[0], [
                row[0], row[1], row[2], status, balance - deltas.get(row[0], 0), holds,
                overdraft, *row[7:]])
        # Replay: only the funds guard reads balances.
        audited = []
        for position, req, outcome, refusal, tid in decided:
            if outcome == "refused" and not isinstance(refusal, InsufficientFunds):
                audited.append((position, req, "refused", {
                    "reason": type(refusal).__name__, "message": str(refusal)}, None))
                continue
            now_refusal = funds_refusal(req, locked)
            if (now_refusal is None) != (outcome == "ok"):
                self._rows.undo_unlocked()
                return None
            if outcome == "refused":
                # Same decision; the message names what is available under the lock.
                if position not in answered:
                    outcomes[position] = now_refusal
                audited.append((position, req, "refused", {
                    "reason": type(now_refusal).__name__, "message": str(now_refusal)}, None))
                continue
            before = {}
            for number, delta in req.legs:
                before.setdefault(number, locked[number][4])
                locked[number][4] += delta
            audited.append((None, req, "ok", {
                "transaction_id": tid, "amount": money_text(req.amount_cents),
                "balances_before": {shown.get(n, n): money_text(b) for n, b in before.items()},
                "balances_after": {shown.get(n, n): money_text(locked[n][4]) for n in before},
            }, str(tid)))
        audited = [entry for entry in audited if entry[0] not in answered]
        audit_ids = blocks["audit_id_seq"].ids.tolist()[:len(audited)]
        audit_rows = [(*self._audit_row(aid, now, req, outcome, after, entity_id=entity_id),
                       lane)
                      for aid, (position, req, outcome, after, entity_id)
                      in zip(audit_ids, audited)]
        if self.chains is not None and audit_rows:
            _, audit_hashes = self.chains.hash_batch(uow, [], [], audit_rows)
        else:
            audit_hashes = [None] * len(audit_rows)
        audit_rows = [(*row[:-1], h, row[-1]) for row, h in zip(audit_rows, audit_hashes)]
        self._rows.write([], [], [], [], audit_rows)
        return outcomes

    def _waits(self, uow, req, staff_posted) -> bool:
        """Whether four-eyes staff payment `req` must wait for a second person: must_wait
        says so, with what the same staff member posted earlier in this batch
        (`staff_posted`, _note_staff). False for any other request. (A key already queued for
        approval is answered before, in the batch's loop.)"""
        if not req.four_eyes:
            return False
        if self.must_wait is None:
            return True
        return self.must_wait(uow, req, staff_posted.get(req.actor.username, []))

    def _tx_row(self, tid, req, now, lane) -> tuple:
        """A posted request's transactions row, in CHAIN_COLUMNS order with the lane last
        (its hash goes in before the lane)."""
        return (tid, req.kind, req.amount_cents, req.memo, req.source_account,
                req.target_account, req.actor.username, req.actor.role, req.idempotency_key,
                req.reverses_id, now, self.state.business_date, req.channel, lane)

    def _answer_refused_keys(self, uow, refused, outcomes, lookup_keys) -> set:
        """A refused request whose key an earlier batch already used answers as that one did
        (its receipt, or a conflict for a different request), in `outcomes` at its position:
        the earlier success wins over the guard. One query for all of `refused` ((position,
        request) pairs), none when the batch read its keys up front (`lookup_keys`). Returns
        the positions answered so (they are not audited as refused)."""
        earlier = self._lookup_keys(uow, list({req.idempotency_key for _, req in refused})) \
            if refused and not lookup_keys else {}
        answered = set()
        for position, req in refused:
            prior = earlier.get(req.idempotency_key)
            if prior is not None:
                outcomes[position] = _answer_again(req, prior)
                answered.add(position)
        return answered

    def check(self, uow, req):
        """Run the posting guards for one request without writing anything (used before a
        hold is placed for a request that waits for approval). Raises the refusal."""
        accounts = load_accounts(uow.fetchall, list({n for n, _ in req.legs}), uow.dialect)
        self._guard(req, accounts, set(), {})
        return accounts

    @staticmethod
    def _lookup_keys(uow, keys):
        """Key -> (request hash, the first receipt, marked replayed) for keys already used."""
        known = {}
        rows = uow.fetchall(
            "SELECT k.key, k.request_hash, t.id, t.amount_cents, t.kind, t.source_account, "
            "t.target_account, t.posted_at, t.memo, t.channel FROM idempotency_keys k "
            "JOIN transactions t ON t.id = k.transaction_id WHERE "
            + uow.dialect.in_list("k.key", "VARCHAR"),
            [keys],
        )
        for key, rhash, tid, amount, kind, src, tgt, posted, memo, channel in rows:
            known[key] = (rhash, Receipt(tid, key, to_money(amount), kind, src, tgt, posted,
                                         memo or "", replayed=True, channel=channel))
        return known

    @staticmethod
    def _guard(req, accounts, reversed_ids, spent_today):
        # Fixed order: accounts exist, the actor may act on them, the transaction can be
        # reversed, source and target differ, accounts are open, limits, then funds.
        check_accounts(req, accounts, reversed_ids)
        refusal = limit_refusal(req, accounts, spent_today) or funds_refusal(req, accounts)
        if refusal is not None:
            raise refusal

    @staticmethod
    def _audit_row(aid, now, req, outcome, after, entity_id=None):
        detail = {"kind": req.kind, "source": req.source_account, "target": req.target_account,
                  "amount": money_text(req.amount_cents), "idempotency_key": req.idempotency_key}
        if req.memo:
            detail["memo"] = req.memo
        after = {**detail, **after}
        return (aid, now, req.actor.username, req.actor.role, req.action, "transaction",
                entity_id, None, json.dumps(after, default=str), outcome)


def _note_staff(req, staff_posted) -> None:
    """Note posted four-eyes payment `req` in `staff_posted` ({username: [(amount cents,
    source, target)]}), where the same staff member's later payments in the batch count it
    towards the day's total."""
    if req.four_eyes and req.kind in FOUR_EYES_KINDS:
        staff_posted.setdefault(req.actor.username, []).append(
            (req.amount_cents, req.source_account, req.target_account))


def _book_on_tills(accounts, tills) -> dict:
    """Let the legs on each busy internal account of `tills` ({account number: its till's
    number}) book on the till: accounts[account] becomes the till's row (the same list, so
    running balances stay one). A till missing from `accounts` (not opened) leaves its
    account as it is. Returns {account number: till number} of those booked so, for the
    audit, which names the account that moved."""
    shown = {}
    for number, till in tills.items():
        if till in accounts:
            accounts[number] = accounts[till]
            shown[number] = till
    return shown


def _answer_again(req, prior):
    """The answer to `req` whose key was used before (`prior`: (request hash, receipt)): the
    receipt marked replayed for the same request, else a conflict."""
    rhash, receipt = prior
    if not req.same_request(rhash):
        return IdempotencyConflict("This request key was already used for a different "
                                   "request; nothing was posted.")
    return dataclasses.replace(receipt, replayed=True)


def _accepted(req, tid, now, accounts, reversed_ids, spent_today, in_batch) -> Receipt:
    """Note posted request `req` (transaction `tid`) where the batch's later requests look:
    the transaction it reverses, what its customer sent today, its key; its receipt."""
    if req.reverses_id is not None:
        reversed_ids.add(req.reverses_id)
    if req.daily_limit_cents is not None:
        cid = req.actor.customer_id
        spent_today[cid] = spent_today.get(cid, 0) + external_out_cents(req, accounts)
    receipt = Receipt(tid, req.idempotency_key, to_money(req.amount_cents), req.kind,
                      req.source_account, req.target_account, now, req.memo,
                      channel=req.channel)
    in_batch[req.idempotency_key] = (req.request_hash, receipt)
    return receipt


def _reversal_refused(exc, tx_rows, lookup_keys):
    """Raise for DuplicateKey `exc` from a batch's insert: exc itself, unless the unique index
    on reverses_id refused it in a batch that already looked its keys up (`lookup_keys`):
    then AlreadyReversed. Two writers (lanes) reversed one transaction at once, past the
    guard, which reads reversals without a lock: the index refused the second. The unit of
    work is spoilt. On the first run the DuplicateKey goes to the writer, which runs the batch
    again with its keys looked up (store/writer.py) and the committed reversal read: a repeat
    of the same reversal (its key) answers the first receipt, another is refused by the guard
    and audited, as in a serial run; a batch of one is not run again for AlreadyReversed.
    Only a third reversal racing that rerun meets the index again (AlreadyReversed)."""
    if exc.constraint != REVERSAL_INDEX or not lookup_keys:
        raise exc
    originals = sorted({row[9] for row in tx_rows if row[9] is not None})
    raise AlreadyReversed(
        f"Transaction {originals[0]} has already been reversed." if len(originals) == 1
        else "One of these transactions has already been reversed.") from exc


class _IdPool:
    """Ids of one sequence for one posting batch: a block taken up front (an IdBlock, handed
    out in order; rewind() hands them out again from the first), or one uow.take_ids per id
    when `block` is None."""

    def __init__(self, uow, sequence: str, block=None):
        self._uow, self._sequence = uow, sequence
        self._block = block.ids.tolist() if block is not None else None
        self._next = 0

    def take(self) -> int:
        if self._block is not None:
            self._next += 1
            return self._block[self._next - 1]
        return int(self._uow.take_ids(self._sequence, 1).ids[0])

    def rewind(self) -> None:
        self._next = 0


def load_accounts(fetchall, numbers, dialect, lock=False) -> dict:
    """Account number -> [id, customer_id, kind, status, balance_cents, holds_cents,
    overdraft_limit_cents, customer status, last_activity_at, last_activity_date]; fetchall
    runs the query (a unit of work's, or Bank.read for a review that writes nothing), written
    in `dialect` (the store/sql.py Dialect of fetchall's engine). With `lock` (PostgreSQL,
    a posting batch in a writer lane), the accounts' rows are locked FOR UPDATE in id order."""
    accounts = {}
    if numbers:
        for row in fetchall(
            "SELECT a.account_number, a.id, a.customer_id, a.kind, a.status, a.balance_cents, "
            "a.holds_cents, a.overdraft_limit_cents, c.status, a.last_activity_at, "
            "a.last_activity_date FROM accounts a "
            "LEFT JOIN customers c ON c.id = a.customer_id WHERE "
            + dialect.in_list("a.account_number", "VARCHAR")
            + (" ORDER BY a.id FOR UPDATE OF a" if lock else ""),
            [numbers],
        ):
            accounts[row[0]] = list(row[1:])
    return accounts


def spent_today_cents(fetchall, business_date, customer_ids, dialect) -> dict:
    """Customer id -> cents the customer sent on `business_date` by transfer to accounts not
    their own: what counts against the daily transfer limit (customer_daily_transfer_cents_max).
    Customers with nothing sent are absent. fetchall runs SQL written in `dialect`.

    Read from the transactions alone: a transfer debits its source account by its amount (two
    legs; payments.transfer, a term deposit opened, a closed account's payout), so it needs
    no join of the postings, the largest table. On PostgreSQL the customer's accounts and that
    day's transfers out of each are found by index (db.MIGRATION_SQL: accounts_customer_id,
    transactions_source_day), so a customer's transfer costs the same in a bank of ten
    million postings as in a new one; the join of the postings read them all (1.4 s a batch
    at 4 million postings, benchmarks/lanes_results.md "Daily totals by index")."""
    if not customer_ids:
        return {}
    return {cid: int(total) for cid, total in fetchall(
        "SELECT a.customer_id, sum(t.amount_cents) FROM accounts a "
        "JOIN transactions t ON t.source_account = a.account_number "
        "WHERE " + dialect.in_list("a.customer_id", "BIGINT")
        + " AND t.business_date = ? AND t.kind = 'transfer' AND t.actor_role = 'customer' "
        "AND NOT EXISTS (SELECT 1 FROM accounts b WHERE b.account_number = t.target_account "
        "AND b.customer_id = a.customer_id) GROUP BY 1",
        [list(customer_ids), business_date])}


def external_out_cents(req, accounts) -> int:
    """Cents this request sends to accounts that are not the acting customer's own."""
    own = req.actor.customer_id
    # Credits to other people's accounts are what leaves the customer: count them as a
    # positive sum (the legs' own sign would make it negative and the limit never bite).
    return sum(d for n, d in req.legs if d > 0 and accounts[n][1] != own)


def check_accounts(req, accounts, reversed_ids) -> None:
    """The posting guards before limits and funds, in their fixed order: accounts exist, the
    actor may act on them, the transaction can be reversed, source and target differ,
    accounts are open. Raises the first refusal; its message never tells a customer anything
    about another customer's account."""
    for number, _ in req.legs:
        acc = accounts.get(number)
        if acc is None:
            raise AccountNotFound(f"There is no account {number}.")
        if acc[1] is None and not req.internal_ok:
            raise PermissionDenied("Internal ledger accounts cannot be used here.")
    actor = req.actor
    if actor.role == "customer":
        for number in req.owned_accounts:
            if accounts[number][1] != actor.customer_id:
                raise PermissionDenied("You can only move money out of your own accounts.")
    if not req.term_deposit_ok:
        for number, _ in req.legs:
            acc = accounts[number]
            if acc[2] != "term_deposit":
                continue
            if actor.role == "customer" and acc[1] != actor.customer_id:
                # Never tell a customer what kind of account another customer holds.
                raise AccountNotActive(f"Account {number} cannot receive this payment; "
                                       "please check the account number with the payee.")
            raise TermDepositLocked(
                f"Account {number} is a term deposit: its money moves only at maturity or "
                "by an early closure at the bank (Term deposits), not by deposits, "
                "withdrawals, transfers or reversals.")
    if req.reverses_id is not None and req.reverses_id in reversed_ids:
        raise AlreadyReversed(f"Transaction {req.reverses_id} has already been reversed.")
    if req.source_account is not None and req.source_account == req.target_account:
        raise SameAccount("The source and target accounts must differ.")
    for number, delta in req.legs:
        acc = accounts[number]
        status, customer_status = acc[3], acc[7]
        if actor.role == "customer" and acc[1] != actor.customer_id and (
                status not in ("active", "frozen", "dormant") or
                customer_status not in ("active", None)):
            # Never tell a customer anything about another customer's account or status.
            error = AccountClosed if status == "closed" else AccountNotActive
            raise error(f"Account {number} cannot receive this payment; please check "
                        "the account number with the payee.")
        if status == "closed":
            raise AccountClosed(f"Account {number} is closed; no money can move in or out.")
        if status == "frozen" and delta < 0:
            raise AccountFrozen(f"Account {number} is frozen; no money can leave it.")
        if status not in ("active", "frozen", "dormant"):
            raise AccountNotActive(f"Account {number} is {status}.")
        if acc[1] is not None and customer_status not in ("active", None):
            raise AccountNotActive(
                f"The holder of account {number} is {customer_status}; money cannot move.")


def limit_refusal(req, accounts, spent_today) -> LimitExceeded | None:
    """The daily transfer limit of a customer's request (req.daily_limit_cents), given what
    each customer sent today (spent_today_cents): the refusal posting raises, or None. The
    refusal carries `limit_cents` and `left_cents`."""
    if req.daily_limit_cents is None:
        return None
    out = external_out_cents(req, accounts)
    if out <= 0:
        return None
    spent = spent_today.get(req.actor.customer_id, 0)
    if spent + out <= req.daily_limit_cents:
        return None
    left = max(req.daily_limit_cents - spent, 0)
    refusal = LimitExceeded(
        f"This transfer is over your daily transfer limit of "
        f"{format_cents(req.daily_limit_cents)}; {format_cents(left)} is left today.")
    refusal.limit_cents, refusal.left_cents = req.daily_limit_cents, left
    return refusal


def funds_refusal(req, accounts) -> InsufficientFunds | None:
    """The funds guard: the first customer account that a debit leg would take below what is
    available (available_cents), as the refusal posting raises, or None. The refusal carries
    `account`, `available_cents` (never below 0), `overdraft_limit_cents` and `debit_cents`."""
    for number, delta in req.legs:
        acc = accounts[number]
        if delta < 0 and acc[1] is not None:
            available = available_cents(acc[4], acc[5], acc[6], acc[3])
            if available + delta < 0:
                # Name what can leave now (overdraft included), never a negative figure.
                refusal = InsufficientFunds(
                    f"Account {number} has {format_cents(max(available, 0))} available"
                    + (f" (including an overdraft limit of {format_cents(acc[6])})"
                       if acc[6] else "")
                    + f"; {format_cents(-delta)} is more than that.")
                refusal.account, refusal.available_cents = number, max(available, 0)
                refusal.overdraft_limit_cents, refusal.debit_cents = acc[6], -delta
                return refusal
    return None


def foreseen_refusals(fetchall, req, business_date, dialect) -> list:
    """What posting `req` now would refuse, read through `fetchall` (SQL in `dialect`, the
    store/sql.py Dialect of its engine) and writing nothing: the very guards posting runs
    (check_accounts, limit_refusal, funds_refusal, in that order).
    Either the one refusal of check_accounts, or those of the limit and funds (both can apply),
    or [] when posting would pass. For a review step; posting decides again."""
    accounts = load_accounts(fetchall, list({n for n, _ in req.legs}), dialect)
    try:
        check_accounts(req, accounts, set())
    except BankError as refusal:
        return [refusal]
    spent_today = (spent_today_cents(fetchall, business_date, [req.actor.customer_id], dialect)
                   if req.daily_limit_cents is not None else {})
    return [refusal for refusal in (limit_refusal(req, accounts, spent_today),
                                    funds_refusal(req, accounts)) if refusal is not None]


def refusal_warning(refusal: BankError, what: str) -> str:
    """One foreseen refusal (foreseen_refusals) as the sentence a review step shows above
    Confirm; `what` names the request ("this transfer of $6,000.00")."""
    if isinstance(refusal, InsufficientFunds):
        overdraft = (f" (including an overdraft limit of "
                     f"{format_cents(refusal.overdraft_limit_cents)})"
                     if refusal.overdraft_limit_cents else "")
        return (f"Only {format_cents(refusal.available_cents)} is available on "
                f"{refusal.account}{overdraft}; {what} would be refused.")
    if isinstance(refusal, LimitExceeded):
        return (f"This is over your daily transfer limit of "
                f"{format_cents(refusal.limit_cents)}: {format_cents(refusal.left_cents)} is "
                f"left today, so {what} would be refused.")
    return f"{refusal} Confirming {what} would be refused."


def note_rows_locked(uow) -> None:
    """Tell the unit of work (PostgreSQL's, when it measures) that the batch's account rows
    are locked from now to its end: benchmarks report how long batches hold them."""
    note = getattr(uow, "note_rows_locked", None)
    if note is not None:
        note()
