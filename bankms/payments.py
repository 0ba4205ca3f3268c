"""Deposits, withdrawals, transfers and reversals: the doorway from requests to the ledger.

Each call validates its input here (amount, account numbers, key, memo, the actor's role), then
hands a PostingRequest to the writer, which checks the guards that depend on the database in
the same transaction as the write.
"""
from __future__ import annotations

import uuid

from . import accountnum
from .bank import INTERNAL
from .errors import InvalidInput, SameAccount, TransactionNotFound
from .ledger import PostingRequest
from .money import to_cents

MEMO_CHARS_MAX = 140
KEY_CHARS_MAX = 128


def clean_key(key) -> str:
    if key is None:
        return uuid.uuid4().hex
    if not isinstance(key, str) or not key.strip() or len(key) > KEY_CHARS_MAX:
        raise InvalidInput(f"An idempotency key is text of 1 to {KEY_CHARS_MAX} characters.")
    return key.strip()


def clean_memo(memo) -> str:
    if memo is None:
        return ""
    if not isinstance(memo, str):
        raise InvalidInput("A memo must be text.")
    memo = " ".join(memo.split())
    if len(memo) > MEMO_CHARS_MAX:
        raise InvalidInput(f"A memo may have at most {MEMO_CHARS_MAX} characters.")
    return memo


def clean_transaction_id(value) -> int:
    if isinstance(value, bool):
        raise InvalidInput("A transaction id is a whole number.")
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        raise InvalidInput(f"'{value}' is not a transaction id.") from None


class Payments:
    def __init__(self, bank):
        self._bank = bank

    def _request(self, actor, action, **kwargs):
        self._bank.require(actor, action, getattr(actor, "customer_id", None),
                           entity="transaction")
        return PostingRequest(actor=actor, action=action, **kwargs)

    def deposit(self, actor, number, amount, idempotency_key=None, memo=""):
        """Cash in at a teller: the teller's cash rises, the customer's account is credited."""
        cents = to_cents(amount)
        number = accountnum.normalize(number)
        req = self._request(actor, "payment.deposit", kind="deposit",
                            legs=[(INTERNAL["teller_cash"], -cents), (number, cents)],
                            amount_cents=cents, idempotency_key=clean_key(idempotency_key),
                            memo=clean_memo(memo), target_account=number, internal_ok=True)
        return self._bank.post(req)

    def withdraw(self, actor, number, amount, idempotency_key=None, memo=""):
        cents = to_cents(amount)
        number = accountnum.normalize(number)
        req = self._request(actor, "payment.withdraw", kind="withdrawal",
                            legs=[(number, -cents), (INTERNAL["teller_cash"], cents)],
                            amount_cents=cents, idempotency_key=clean_key(idempotency_key),
                            memo=clean_memo(memo), source_account=number, internal_ok=True)
        return self._bank.post(req)

    def transfer(self, actor, source, target, amount, idempotency_key=None, memo=""):
        cents = to_cents(amount)
        source = accountnum.normalize(source)
        target = accountnum.normalize(target)
        if source == target:
            raise SameAccount("The source and target accounts must differ.")
        limit = None
        if getattr(actor, "role", None) == "customer":
            limit = self._bank.settings.get_int("customer_daily_transfer_cents_max", 500000)
        req = self._request(actor, "payment.transfer", kind="transfer",
                            legs=[(source, -cents), (target, cents)], amount_cents=cents,
                            idempotency_key=clean_key(idempotency_key), memo=clean_memo(memo),
                            source_account=source, target_account=target,
                            owned_accounts=(source,), daily_limit_cents=limit)
        return self._bank.post(req)

    def reverse(self, actor, transaction_id, reason, idempotency_key=None):
        """Post a new transaction that undoes every posting of the original one."""
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
        # Postings are append-only, so the legs read here cannot change before the write.
        legs = [(number, -amount) for number, amount in bank.read(
            "SELECT a.account_number, p.amount_cents FROM postings p "
            "JOIN accounts a ON a.id = p.account_id WHERE p.transaction_id = ? ORDER BY p.id",
            [tid])]
        req = PostingRequest(
            kind="reversal", actor=actor, action="payment.reverse", legs=legs,
            amount_cents=original[1],
            idempotency_key=clean_key(idempotency_key or f"reversal-of-{tid}"),
            memo=clean_memo(f"Reversal of {tid}: {reason.strip()}"),
            source_account=original[3], target_account=original[2], reverses_id=tid,
            internal_ok=True)
        return bank.post(req)

    def get(self, actor, transaction_id) -> dict:
        bank = self._bank
        tid = clean_transaction_id(transaction_id)
        row = bank.read_one("SELECT id, kind, amount_cents, memo, source_account, "
                            "target_account, actor, posted_at, business_date, reverses_id "
                            "FROM transactions WHERE id = ?", [tid])
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
                "target_account", "actor", "posted_at", "business_date", "reverses_id")
        return dict(zip(keys, row))
