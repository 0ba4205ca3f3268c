"""Deposits, withdrawals, transfers and reversals: the doorway from requests to the ledger.

Each call validates its input here (amount, account numbers, key, memo, the actor's role), then
hands a PostingRequest to the writer, which checks the guards that depend on the database in
the same transaction as the write.

Four-eyes rule: a deposit, withdrawal or transfer by staff above the `four_eyes_threshold_cents`
setting is not posted; the call returns a `bankms.services.approvals.PendingApproval` (request id, key,
amount) instead of a `Receipt`, and the money leaving a customer account is held until a second
person approves or rejects it (see approvals.py). Callers must check which one they got.
"""
from __future__ import annotations

from ..domain import accountnum
from . import businessday
from ..domain.chart import INTERNAL
from ..domain.errors import (
    InsufficientFunds,
    InvalidInput,
    LimitExceeded,
    PermissionDenied,
    SameAccount,
    TransactionNotFound,
)
# Key and memo checks live in leaf modules the other services share; payments.clean_key and the
# rest stay importable from here.
from ..domain.keys import (KEY_CHARS_MAX, RESERVED_KEY_PREFIX, clean_key,  # noqa: F401
                   refuse_control_characters, refuse_reserved, system_key)
from .ledger import PostingRequest
from ..domain.money import to_cents, to_money
from ..domain.text import mask_name
from ..domain.validate import MEMO_CHARS_MAX, clean_memo, clean_transaction_id  # noqa: F401


# How money may come in (deposit) or go out (withdrawal), and the bank's own account on the
# other side: cash at the counter or an ATM moves the bank's cash; card payments and refunds,
# salaries, transfers from or to other banks and direct debits settle through clearing.
PAYMENT_CHANNELS = {
    "deposit": ("cash", "atm", "card", "salary", "transfer"),
    "withdrawal": ("cash", "atm", "card", "transfer", "direct_debit"),
}
_CHANNEL_ACCOUNT = {"cash": "teller_cash", "atm": "teller_cash"}
# Tellers handle cash: their payments must move the teller's cash (GL1000), which the drawer
# count reconciles. A counter deposit booked as a card or salary credit (from clearing) would
# let a teller keep the cash and still balance the drawer; clearing channels are the back
# office's (managers, the system).
COUNTER_ROLES = frozenset({"teller"})


def clean_channel(kind: str, channel) -> str:
    """A payment's channel code, checked against PAYMENT_CHANNELS[kind]; raises InvalidInput
    naming the channels allowed (by their labels.CHANNEL_LABELS) for anything else."""
    from ..domain.labels import channel_label

    allowed = PAYMENT_CHANNELS[kind]
    if isinstance(channel, str) and channel.strip().lower() in allowed:
        return channel.strip().lower()
    names = ", ".join(f"{code} ({channel_label(code)})" for code in allowed)
    raise InvalidInput(f"A {kind} can be made by one of these channels: {names}; "
                       f"not {channel!r}.")


def channel_account(channel: str) -> str:
    """The internal ledger account on the bank's side of a deposit or withdrawal."""
    return INTERNAL[_CHANNEL_ACCOUNT.get(channel, "clearing")]


LOAN_KINDS = ("loan_disbursement", "loan_repayment", "loan_write_off", "loan_recovery",
              "loan_reallocation", "loan_provision", "loan_accrual")


class Payments:
    def __init__(self, bank):
        self._bank = bank

    def _request(self, actor, action, **kwargs):
        self._bank.require(actor, action, getattr(actor, "customer_id", None),
                           entity="transaction")
        from ..domain.labels import channel_label

        channel = kwargs.get("channel")
        if (channel is not None and getattr(actor, "role", None) in COUNTER_ROLES
                and _CHANNEL_ACCOUNT.get(channel) != "teller_cash"):
            refusal = PermissionDenied(
                "A teller's payments move the teller's cash; "
                f"{channel_label(channel)} goes through clearing and is posted by the back "
                "office.")
            self._bank.record_refusal(actor, action, refusal, entity="transaction")
            raise refusal
        return PostingRequest(actor=actor, action=action, **kwargs)

    def _post_or_queue(self, req):
        """Post now, or, when the four-eyes rule applies (the amount, or the staff member's
        total with this customer today, above the threshold), queue it with a hold. Every
        payment is decided on the writer thread; a staff payment goes through
        approvals.post_or_submit (in a posting batch with the day's total, or queued in a unit
        of work of its own), everyone else's straight to the posting batches."""
        approvals = self._bank.approvals
        if approvals.applies_to(req.actor):
            return approvals.post_or_submit(req)
        return self._bank.post(req)

    def deposit(self, actor, number, amount, idempotency_key=None, memo="", *, channel="cash"):
        """Money in: cash at a teller by default (the teller's cash rises, the customer's
        account is credited); channel (PAYMENT_CHANNELS["deposit"]: cash, atm, card, salary,
        transfer) says how it came, stored with the transaction and shown by its label
        (labels.transaction_label: 'Salary credit'...). Raises InvalidInput for another
        channel."""
        cents = to_cents(amount)  # the amount is checked before the account number
        return self._post_or_queue(self._deposit_request(
            actor, accountnum.normalize(number), cents, idempotency_key, memo, channel))

    def withdraw(self, actor, number, amount, idempotency_key=None, memo="", *,
                 channel="cash"):
        """Money out: cash at a teller by default; channel (PAYMENT_CHANNELS["withdrawal"]:
        cash, atm, card, transfer, direct_debit) as for deposit ('Card payment',
        'ATM withdrawal'...). Raises InvalidInput for another channel."""
        cents = to_cents(amount)
        return self._post_or_queue(self._withdrawal_request(
            actor, accountnum.normalize(number), cents, idempotency_key, memo, channel))

    def transfer(self, actor, source, target, amount, idempotency_key=None, memo=""):
        cents = to_cents(amount)
        source = accountnum.normalize(source)
        target = accountnum.normalize(target)
        if source == target:
            raise SameAccount("The source and target accounts must differ.")
        return self._post_or_queue(self._transfer_request(actor, source, target, cents,
                                                          idempotency_key, memo))

    # The requests posting makes; the review step builds the very same ones to foresee what
    # the guards would say (review), so the two can never check different things.
    def _deposit_request(self, actor, number, cents, idempotency_key, memo, channel="cash"):
        channel = clean_channel("deposit", channel)
        return self._request(actor, "payment.deposit", kind="deposit",
                             legs=[(channel_account(channel), -cents), (number, cents)],
                             amount_cents=cents, idempotency_key=clean_key(idempotency_key),
                             memo=clean_memo(memo), target_account=number, internal_ok=True,
                             channel=channel)

    def _withdrawal_request(self, actor, number, cents, idempotency_key, memo,
                            channel="cash"):
        channel = clean_channel("withdrawal", channel)
        return self._request(actor, "payment.withdraw", kind="withdrawal",
                             legs=[(number, -cents), (channel_account(channel), cents)],
                             amount_cents=cents, idempotency_key=clean_key(idempotency_key),
                             memo=clean_memo(memo), source_account=number, internal_ok=True,
                             channel=channel)

    def _transfer_request(self, actor, source, target, cents, idempotency_key, memo):
        limit = None
        if getattr(actor, "role", None) == "customer":
            limit = self._bank.settings.get_int("customer_daily_transfer_cents_max", 500000)
        return self._request(actor, "payment.transfer", kind="transfer",
                             legs=[(source, -cents), (target, cents)], amount_cents=cents,
                             idempotency_key=clean_key(idempotency_key), memo=clean_memo(memo),
                             source_account=source, target_account=target,
                             owned_accounts=(source,), daily_limit_cents=limit)

    # Loan money is corrected through bank.loans, which replays the loan (issue 9).
    def reverse(self, actor, transaction_id, reason, idempotency_key=None):
        """Post a new transaction that undoes every posting of the original one; above the
        four-eyes threshold it waits for a second manager (returns a PendingApproval)."""
        bank = self._bank
        bank.require(actor, "payment.reverse", entity="transaction", entity_id=transaction_id)
        if not isinstance(reason, str) or not reason.strip():
            raise InvalidInput("Please give a reason for the reversal.")
        tid = clean_transaction_id(transaction_id)
        original = bank.read_one("SELECT kind, amount_cents, source_account, target_account, "
                                 "reverses_id FROM transactions WHERE id = ?", [tid])
        if original is None:
            raise TransactionNotFound(f"There is no transaction {tid}.")
        if original[0] == "reversal":
            raise InvalidInput("A reversal cannot itself be reversed; post a new transaction.")
        if original[0] in LOAN_KINDS:
            raise InvalidInput(
                f"Transaction {tid} belongs to a loan ({original[0].replace('_', ' ')}); "
                "correct it on the loan: bank.loans.reverse_repayment(actor, loan_id, "
                "transaction_id, reason) or bank.loans.undo_disbursement(actor, loan_id, "
                "reason), which keep the loan's books with the ledger.")
        if original[0] == "fee" and bank.read_one(
                "SELECT 1 FROM charges WHERE transaction_id = ?", [tid]):
            # The charges register would still say 'charged' (issue 10).
            raise InvalidInput(f"Transaction {tid} is a charge; waive it instead "
                               "(bank.charges.waive, Charges page), which keeps the register "
                               "of charges with the ledger.")
        # Postings are append-only, so the legs read here cannot change before the write.
        legs = [(number, -amount) for number, amount in bank.read(
            "SELECT a.account_number, p.amount_cents FROM postings p "
            "JOIN accounts a ON a.id = p.account_id WHERE p.transaction_id = ? ORDER BY p.id",
            [tid])]
        req = PostingRequest(
            kind="reversal", actor=actor, action="payment.reverse", legs=legs,
            amount_cents=original[1],
            idempotency_key=(clean_key(idempotency_key) if idempotency_key is not None else
                             system_key("reversal", "of", tid)),
            memo=clean_memo(f"Reversal of {tid}: {reason.strip()}"),
            source_account=original[3], target_account=original[2], reverses_id=tid,
            internal_ok=True)
        # Above the threshold, alone or with what this manager moved for the customer today,
        # it waits (a PendingApproval; money leaving is held).
        return self._post_or_queue(req)

    # -- what pages show before and after a payment ------------------------------------------
    def review(self, actor, kind, *, amount, source=None, target=None, memo="") -> dict:
        """Check a payment form and describe it for a confirm step, posting nothing: the
        amount, both accounts with their holders' names (masked for another customer's
        account when a customer pays), and whether the four-eyes rule will hold it.

        `warnings` (list[str], human sentences, empty for a payment that would simply post)
        says what Confirm would meet, from the very checks posting runs on the same request:
        a guard's refusal (not enough available, over the customer's daily transfer limit
        with what is left today, a frozen or closed account; ledger.foreseen_refusals), or
        else the four-eyes wait (approvals.wait_check). A customer's warning names only
        their own account; about a payee it says no more than posting would. Posting
        decides again at Confirm (money may move in between)."""
        bank = self._bank
        actions = {"deposit": "payment.deposit", "withdrawal": "payment.withdraw",
                   "transfer": "payment.transfer"}
        if kind not in actions:
            raise InvalidInput("The payment type must be deposit, withdrawal or transfer.")
        bank.require(actor, actions[kind], getattr(actor, "customer_id", None),
                     entity="transaction")
        cents = to_cents(amount)
        memo = clean_memo(memo)
        source = accountnum.normalize(source) if kind != "deposit" else None
        target = accountnum.normalize(target) if kind != "withdrawal" else None
        if source is not None and source == target:
            raise SameAccount("The source and target accounts must differ.")
        out = {"kind": kind, "amount_cents": cents, "amount": to_money(cents), "memo": memo,
               "source_account": source, "source_holder": None, "source_available": None,
               "target_account": target, "target_holder": None, "own_target": False,
               "needs_approval": False}
        moved_cents = 0
        if source is not None:
            info = bank.accounts.get(actor, source)
            out["source_holder"] = info["holder"]
            out["source_available"] = info["available"]
        if target is not None:
            if getattr(actor, "role", None) == "customer":
                own = bank.read_one("SELECT customer_id FROM accounts WHERE account_number = ?",
                                    [target])
                if own is not None and own[0] == actor.customer_id:
                    out["own_target"] = True
                    out["target_holder"] = bank.accounts.get(actor, target)["holder"]
                else:
                    out["target_holder"] = bank.accounts.payee_name(actor, target)
            else:
                out["target_holder"] = bank.accounts.get(actor, target)["holder"]
        if bank.approvals.applies_to(actor):
            out["needs_approval"], moved_cents = bank.approvals.wait_check(
                bank.read, actor, cents, [source, target])
        out["warnings"] = self._warnings(actor, kind, cents, source, target, memo,
                                         waits=out["needs_approval"], moved_cents=moved_cents)
        return out

    def _warnings(self, actor, kind, cents, source, target, memo, *, waits,
                  moved_cents) -> list[str]:
        from .ledger import foreseen_refusals, refusal_warning
        from ..domain.money import format_cents

        bank = self._bank
        if kind == "deposit":
            req = self._deposit_request(actor, target, cents, None, memo)
        elif kind == "withdrawal":
            req = self._withdrawal_request(actor, source, cents, None, memo)
        else:
            req = self._transfer_request(actor, source, target, cents, None, memo)
        what = f"this {kind} of {format_cents(cents)}"
        warnings = [refusal_warning(refusal, what)
                    for refusal in foreseen_refusals(bank.read, req, bank.state.business_date,
                                                     bank.engine.dialect)]
        if waits and not warnings:
            warnings.append(bank.approvals.wait_warning(moved_cents, held=source is not None))
        return warnings

    def receipt_details(self, actor, transaction_id) -> dict:
        """One posted transaction as a receipt shows it: the transaction with both holders'
        names (another customer's name masked when a customer asks)."""
        bank = self._bank
        tx = self.get(actor, transaction_id)
        details = {**tx, "amount": to_money(tx["amount_cents"]), "source_holder": None,
                   "target_holder": None, "time_zone": businessday.zone(bank).key,
                   "posted_at_local": businessday.to_bank_time(bank, tx["posted_at"])}
        for side in ("source", "target"):
            number = tx[f"{side}_account"]
            if not number:
                continue
            row = bank.read_one("SELECT c.id, c.full_name FROM accounts a JOIN customers c "
                                "ON c.id = a.customer_id WHERE a.account_number = ?", [number])
            if row is None:
                continue
            own = getattr(actor, "role", None) != "customer" or row[0] == actor.customer_id
            details[f"{side}_holder"] = row[1] if own else mask_name(row[1])
        return details

    def get(self, actor, transaction_id) -> dict:
        bank = self._bank
        tid = clean_transaction_id(transaction_id)
        row = bank.read_one("SELECT id, kind, amount_cents, memo, source_account, "
                            "target_account, actor, posted_at, business_date, reverses_id, "
                            "channel FROM transactions WHERE id = ?", [tid])
        if row is None:
            raise TransactionNotFound(f"There is no transaction {transaction_id}.")
        owners = {r[0] for r in bank.read(
            "SELECT a.customer_id FROM postings p JOIN accounts a ON a.id = p.account_id "
            "WHERE p.transaction_id = ?", [row[0]])}
        if getattr(actor, "role", None) == "customer" and actor.customer_id in owners:
            pass
        else:
            bank.require(actor, "account.list_all", entity="transaction", entity_id=row[0])
        keys = ("transaction_id", "kind", "amount_cents", "memo", "source_account",
                "target_account", "actor", "posted_at", "business_date", "reverses_id",
                "channel")
        reversal = bank.read_one("SELECT id FROM transactions WHERE reverses_id = ?", [row[0]])
        return {**dict(zip(keys, row)), "reversed_by": reversal[0] if reversal else None}
