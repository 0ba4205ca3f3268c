"""Customer accounts: opening, reading balances and history, status, limits and closing."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import numpy as np
import pandas as pd

from ..domain import accountnum
from ..domain.chart import INTERNAL
from ..domain.dates import as_date
from ..domain.labels import label_sql
from ..domain.errors import (
    AccountNotFound,
    AccountRepaysLoan,
    CustomerNotActive,
    CustomerNotFound,
    InvalidInput,
    InvalidState,
    SameAccount,
    TermDepositLocked,
)
from .ledger import (
    CUSTOMER_KINDS,
    LOCKED_KINDS,
    NO_FUNDS_STATUSES,
    PostingRequest,
    available_cents,
    available_sql,
    utcnow,
)
from ..domain.money import to_cents, to_money
from ..domain.text import csv_text, mask_name  # noqa: F401 (accounts.mask_name stays importable)
from ..domain.validate import clean_rate  # noqa: F401 (accounts.clean_rate stays importable)

# Draws of a random account number before giving up (a second draw is already rare).
NUMBER_DRAWS_MAX = 20

# "available" in every query of accounts (alias a): balance - holds + overdraft limit, 0 for a
# frozen or closed account. Written once, in ledger.available_sql, beside the Python form the
# posting guard uses (ledger.available_cents), so pages, CSV and the guard cannot disagree.
AVAILABLE_SQL = available_sql("a")


def _US(column, dialect):
    """SQL in `dialect` (store/sql.py): a TIMESTAMP or DATE column as microseconds since 1970
    (BIGINT), NULL as the int64 minimum, which numpy reads as NaT: a numpy datetime64[us] array
    by a view of integers, without a Python datetime per value (the profile of issue 13: the
    slowest step of accounts.list)."""
    us = dialect.epoch_us(f"CAST({column} AS TIMESTAMP)")
    return f"COALESCE({us}, {np.iinfo(np.int64).min})"


# The columns of accounts.list, in order.
LIST_COLUMNS = ("account_number", "customer_id", "holder", "kind", "name", "status",
                "balance_cents", "holds_cents", "overdraft_limit_cents", "available_cents",
                "interest_rate_percent", "opened_at", "closed_at", "opened_date", "closed_date",
                "product_code", "product_name", "balance", "available")


def money_column(cents_series):
    """Decimals in currency units of integer cents, as to_money gives them (two decimals):
    scaleb moves the decimal point without the division and quantize of each value."""
    return [Decimal(int(c)).scaleb(-2) for c in cents_series]


class Accounts:
    def __init__(self, bank):
        self._bank = bank
        # customer id (None: every customer) -> (Writer.calls_seq, DataFrame, account numbers)
        # of the last full read of list (_listed).
        self._shapes: dict = {}

    def _row(self, number):
        row = self._bank.read_one(
            "SELECT id, account_number, customer_id, kind, status, balance_cents, holds_cents, "
            "overdraft_limit_cents, interest_rate_percent, opened_at, closed_at, name, "
            "last_activity_at, opened_date, closed_date, last_activity_date, product_id "
            "FROM accounts WHERE account_number = ? AND customer_id IS NOT NULL",
            [number])
        if row is None:
            raise AccountNotFound(f"There is no account {number}.")
        return row

    def _readable(self, actor, number):
        """Validate a typed number, find the account and check the actor may see it."""
        number = accountnum.normalize(number)
        row = self._row(number)
        self._bank.require(actor, "account.read", row[2], entity="account", entity_id=number)
        return number, row

    def open(self, actor, customer_id, kind=None, overdraft_limit="0",
             interest_rate=None, *, product=None, idempotency_key=None) -> str:
        """Open an account on a deposit product (`product`, a code; default: the product whose
        code is the kind; kind default: the product's, else checking). Refuses a withdrawn
        product or one of another kind, and an overdraft limit the product does not allow
        (InvalidInput). Without interest_rate the account earns its product's rate; with one
        (managers) its own. With an idempotency key, a repeat returns the same number."""
        from . import once

        bank = self._bank
        key = once.clean_key(idempotency_key)
        cid = bank.customers._id(customer_id)
        bank.require(actor, "account.open", entity="customer", entity_id=cid)
        wrong_kind = "The account kind must be checking or savings."
        if kind is not None and kind not in CUSTOMER_KINDS:
            raise InvalidInput(wrong_kind)
        terms = bank.deposit_products.offered(product or kind or "checking", kind)
        kind = terms["kind"]
        if kind == "term_deposit":
            raise InvalidInput(wrong_kind[:-1] + "; open a term deposit with "
                               "bank.term_deposits.open (the Term deposits page).")
        if kind not in CUSTOMER_KINDS:
            raise InvalidInput(wrong_kind)
        overdraft_cents = to_cents(overdraft_limit, allow_zero=True)
        if overdraft_cents and kind != "checking":
            raise InvalidInput("Only checking accounts can have an overdraft limit.")
        bank.deposit_products.overdraft_allowed_by(terms["id"], overdraft_cents)
        if overdraft_cents:
            bank.require(actor, "account.set_overdraft", entity="customer", entity_id=cid)
        # A rate given at opening is the account's own (rate_negotiated); without one the
        # account earns its product's rate (issue 10, deposit_products.py).
        negotiated = interest_rate is not None
        if interest_rate is not None:
            # Setting a rate is a manager's action, at opening as later (issue 12).
            bank.require(actor, "account.set_interest_rate", entity="customer", entity_id=cid)
        else:
            # Kept on the account for people to see; it earns the product's rate of the day.
            interest_rate = terms["interest_rate_percent"] if kind == "savings" else "0"
        rate = clean_rate(interest_rate)
        if rate and kind != "savings":
            raise InvalidInput("Only savings accounts earn interest.")
        # What the key stands for, as asked (before any of it waits for a second manager).
        request = [cid, kind, terms["code"], overdraft_cents, str(rate) if negotiated else None]
        # A limit or rate that needs a second manager is not set at opening: the account opens
        # with none (or the default rate) and the change waits in the approval queue.
        asked_overdraft_cents = asked_rate = None
        if self._overdraft_waits(actor, overdraft_cents):
            asked_overdraft_cents, overdraft_cents = overdraft_cents, 0
        if self._rate_waits(actor, rate):
            asked_rate, rate = rate, terms["interest_rate_percent"]

        def fn(uow):
            earlier = once.recall(uow, key, "account.open", actor, request)
            if earlier is not once.MISSING:
                return earlier
            row = uow.fetchone("SELECT status FROM customers WHERE id = ?", [cid])
            if row is None:
                raise CustomerNotFound(f"There is no customer {cid}.")
            if row[0] != "active":
                raise CustomerNotActive(
                    f"Customer {cid} is {row[0]}; accounts can be opened only for active "
                    "customers.")
            acc_id = uow.fetchone("SELECT nextval('account_id_seq')")[0]
            number = self._fresh_number(uow)
            now, today = utcnow(), bank.state.business_date
            name = terms["name"]
            uow.execute(
                "INSERT INTO accounts (id, account_number, customer_id, kind, name, status, "
                "overdraft_limit_cents, interest_rate_percent, opened_at, last_activity_at, "
                "opened_date, last_activity_date, product_id, rate_negotiated) VALUES (?, ?, "
                "?, ?, ?, 'active', ?, ?, ?, ?, ?, ?, ?, ?)",
                [acc_id, number, cid, kind, name, overdraft_cents, rate, now, now, today, today,
                 terms["id"], negotiated and asked_rate is None])
            bank.audit_row(uow, actor, "account.open", "account", number, after={
                "customer_id": cid, "kind": kind, "product": terms["code"],
                "overdraft_limit": str(to_money(overdraft_cents)), "interest_rate": str(rate)})
            once.remember(uow, key, "account.open", actor, number, request)
            return number
        number = bank.write(fn)
        if asked_overdraft_cents is not None:
            self.set_overdraft_limit(actor, number, to_money(asked_overdraft_cents))
        if asked_rate is not None:
            self.set_interest_rate(actor, number, asked_rate)
        return number

    def _overdraft_waits(self, actor, cents) -> bool:
        return self._bank.approvals.required(actor, cents)

    def _rate_waits(self, actor, rate) -> bool:
        limit = Decimal(self._bank.settings.get_int("four_eyes_rate_bp", 200)) / 100
        return self._bank.approvals.applies_to(actor) and rate > limit

    @staticmethod
    def _fresh_number(uow) -> str:
        """A random account number nobody holds yet. With 10**8 bodies a collision is rare;
        each one is retried with a new draw."""
        for _ in range(NUMBER_DRAWS_MAX):
            number = accountnum.random_number()
            if not uow.fetchone("SELECT 1 FROM accounts WHERE account_number = ?", [number]):
                return number
        raise InvalidState("No free account number was found; please try again.")

    def balance(self, actor, number) -> Decimal:
        _, row = self._readable(actor, number)
        return to_money(row[5])

    def available(self, actor, number) -> Decimal:
        """What can leave the account now (Decimal): balance less holds plus the overdraft
        limit; 0.00 for a frozen or closed account or a term deposit, from which no money can
        leave
        (ledger.available_cents, the rule the posting guard applies). The same figure as
        `get(...)["available"]` and `list(...)["available"]`."""
        _, row = self._readable(actor, number)
        return to_money(available_cents(row[5], row[6], row[7], row[4], row[3]))

    def get(self, actor, number) -> dict:
        number, row = self._readable(actor, number)
        holder = self._bank.read_one("SELECT full_name FROM customers WHERE id = ?", [row[2]])
        product = self._bank.read_one("SELECT p.code, p.name, a.rate_negotiated FROM accounts a "
                                      "JOIN deposit_products p ON p.id = a.product_id "
                                      "WHERE a.id = ?", [row[0]]) or (None, None, False)
        return {
            "account_number": number, "customer_id": row[2], "holder": holder[0] if holder else "",
            "kind": row[3], "status": row[4], "balance": to_money(row[5]),
            "holds": to_money(row[6]),
            "available": to_money(available_cents(row[5], row[6], row[7], row[4], row[3])),
            "overdraft_limit": to_money(row[7]), "interest_rate_percent": row[8],
            "opened_at": row[9], "closed_at": row[10], "name": row[11],
            "last_activity_at": row[12], "opened_date": row[13], "closed_date": row[14],
            "last_activity_date": row[15], "product_code": product[0],
            "product_name": product[1], "rate_negotiated": bool(product[2]),
        }

    def payee_name(self, actor, number) -> str:
        """The holder's name masked ('J*** D**') so a payer can check a payee without learning
        who holds an account number.

        A customer's look-ups are audited (`account.payee_lookup`, found or not) and limited
        to `payee_lookups_per_customer_max` per `payee_lookup_window_s` (LimitExceeded), so
        nobody can try number after number to learn who banks here."""
        from . import throttle
        from ..domain.errors import LimitExceeded

        bank = self._bank
        number = accountnum.normalize(number)
        bank.require(actor, "payment.transfer", actor.customer_id
                     if actor and getattr(actor, "role", None) == "customer" else None)
        row = bank.read_one(
            "SELECT c.full_name, a.status FROM accounts a JOIN customers c ON c.id = a.customer_id "
            "WHERE a.account_number = ?", [number])
        if getattr(actor, "role", None) == "customer":
            lookups_max = bank.settings.get_int("payee_lookups_per_customer_max", 30)
            window_s = bank.settings.get_int("payee_lookup_window_s", 3600)
            now = throttle.utcnow()

            def fn(uow):
                allowed, wait_s = throttle.take(uow, throttle.PAYEE_LOOKUP, actor.customer_id,
                                                events_max=lookups_max, window_s=window_s,
                                                now=now)
                bank.audit_row(uow, actor, "account.payee_lookup", "account", number,
                               after={"found": row is not None} if allowed else
                               {"reason": "too many look-ups"},
                               outcome="ok" if allowed else "refused")
                return wait_s
            wait_s = bank.write(fn)
            if wait_s:
                raise LimitExceeded("You have checked many payee accounts in a short time; "
                                    f"please try again in {wait_s // 60 + 1} minutes.")
        if row is None:
            raise AccountNotFound(f"There is no account {number}.")
        return mask_name(row[0])

    def list(self, actor, customer_id=None):
        """Accounts with balances, read in one snapshot (one query; after a posting batch only
        the balances are read again, the rest kept while nothing else was written: _listed),
        in the order opened.
        `available_cents` (int) and `available` (Decimal) mean what `available` means: balance
        - holds + overdraft limit, 0 for a frozen or closed account or a term deposit
        (AVAILABLE_SQL)."""
        bank = self._bank
        if customer_id is None:
            if getattr(actor, "role", None) == "customer":
                customer_id = actor.customer_id
            else:
                bank.require(actor, "account.list_all", entity="account")
        if customer_id is not None:
            customer_id = bank.customers._id(customer_id)
            bank.require(actor, "account.read", customer_id, entity="customer",
                         entity_id=customer_id)
        d = bank.engine.dialect
        sql = ("SELECT a.account_number, a.customer_id, c.full_name AS holder, a.kind, a.name, "
               "a.status, a.balance_cents, a.holds_cents, a.overdraft_limit_cents, "
               f"{AVAILABLE_SQL} AS available_cents, "
               "CAST(a.interest_rate_percent * 10000 AS BIGINT) AS interest_rate_e4, "
               f"{_US('a.opened_at', d)} AS opened_at, {_US('a.closed_at', d)} AS closed_at, "
               f"{_US('a.opened_date', d)} AS opened_date, "
               f"{_US('a.closed_date', d)} AS closed_date, "
               "p.code AS product_code, p.name AS product_name, a.id "
               "FROM accounts a JOIN customers c ON c.id = a.customer_id "
               "LEFT JOIN deposit_products p ON p.id = a.product_id")
        params = []
        if customer_id is not None:
            sql += " WHERE a.customer_id = ?"
            params.append(customer_id)
        # In the order they were opened: account numbers are random (issue 12), so their order
        # means nothing to a customer.
        sql += " ORDER BY a.customer_id, a.id"
        return bank.kept(("accounts.list", customer_id),
                         lambda: self._listed(sql, params, customer_id)).copy(deep=False)

    # How many listings _listed keeps the slow columns of at most; past that it starts again.
    SHAPES_MAX = 64

    def _listed(self, sql, params, customer_id):
        """The answer of list: after a posting batch, only (id, balance) are read again (a
        lean query without joins, order or expressions), and the other columns are taken from
        the last full read while no other write has run since (Bank.calls_seq, a sequence
        lock: equal and even before and after the read). Posting batches change only balances
        (and last activity, not listed), so available is worked out again here from the kept
        holds, overdraft limit, status and kind, by the rule of available_sql.
        Issue 13: the full read and its DataFrame held the GIL that posting needs; the lean
        query's ORDER BY and CASE cost about as much as the rest of the call (profile,
        benchmarks/bench_posting_under_read.py). tests/test_accounts_list_kept.py checks the
        answer against a full read."""
        bank = self._bank
        seq = bank.calls_seq
        shape = self._shapes.get(customer_id)
        if seq % 2 == 0 and shape is not None and shape[0] == seq:
            _, kept, ids, holds, overdraft, no_funds = shape
            if customer_id is not None:
                rows = bank.read("SELECT id, balance_cents FROM accounts WHERE customer_id = ?",
                                 [customer_id])
            else:
                rows = bank.read(
                    "SELECT id, balance_cents FROM accounts WHERE customer_id IS NOT NULL")
            got = dict(rows)
            if bank.calls_seq == seq and len(got) == len(ids) and all(i in got for i in ids):
                balance = np.fromiter((got[i] for i in ids), dtype="int64", count=len(ids))
                available = np.where(no_funds, 0, balance - holds + overdraft)
                # A shallow copy with the posted columns replaced: about a third of the CPU
                # of building a new frame from columns (pandas 3, 50 rows).
                df = kept.copy(deep=False)
                df["balance_cents"] = balance
                df["available_cents"] = available
                df["balance"] = money_column(balance)
                df["available"] = money_column(available)
                return df
        cols = self._read_all(sql, params)
        ids = cols.pop("id")
        cols["balance"] = money_column(cols["balance_cents"])
        cols["available"] = money_column(cols["available_cents"])
        df = pd.DataFrame({name: cols[name] for name in LIST_COLUMNS})
        if seq % 2 == 0 and bank.calls_seq == seq:
            if len(self._shapes) >= self.SHAPES_MAX:
                self._shapes.clear()
            # The same rule as available_sql: nothing is available while frozen or closed,
            # nor from a term deposit.
            no_funds = (np.isin(np.array(cols["status"], dtype=object), NO_FUNDS_STATUSES)
                        | np.isin(np.array(cols["kind"], dtype=object), LOCKED_KINDS))
            self._shapes[customer_id] = (seq, df, ids, cols["holds_cents"],
                                         cols["overdraft_limit_cents"], no_funds)
        return df

    def _read_all(self, sql, params):
        """Every column of list as plain columns (and `id`), from one query."""
        # Built once from plain rows (issue 13: DuckDB's .df() and column-by-column pandas
        # assignment were 90 % of the time and held the GIL the writer needs).
        bank = self._bank
        cols = bank.read_columns(sql, params)
        cols["id"] = tuple(cols["id"])
        for name in ("customer_id", "balance_cents", "holds_cents",
                     "overdraft_limit_cents", "available_cents"):
            cols[name] = np.array(cols[name], dtype="int64")
        for name in ("opened_at", "closed_at", "opened_date", "closed_date"):
            cols[name] = np.array(cols[name], dtype="int64").view("datetime64[us]")
        # Exact: the stored DECIMAL(9, 4) percent read as an integer of ten-thousandths of a
        # percent (hundredths of a basis point, all four places) and turned into a Decimal with
        # four places; it went through a float to text ('0.0') before.
        cols["interest_rate_percent"] = [Decimal(int(e4)).scaleb(-4)
                                         for e4 in cols.pop("interest_rate_e4")]
        return cols

    def history(self, actor, number, start=None, end=None, limit=None, *, kind=None,
                text=None, label=None):
        """Postings of one account, newest first, each with the balance after it. Filters
        (business dates from start to end inclusive, transaction kind code, label as
        history_labels gives them, text found in the memo, an account number or the
        transaction id) leave the running balance as it was.

        Columns: transaction_id, posted_at, business_date, kind (code), channel (code or
        None), label (labels.transaction_label of the posting: 'Card payment', 'Transfer in'),
        memo, source_account, target_account, actor, reverses_id, amount_cents, balance_cents,
        counterparty (the other account of a transfer, else ''), amount, balance (Decimal)."""
        number, row = self._readable(actor, number)
        start, end = as_date(start, "start date"), as_date(end, "end date")
        if start and end and start > end:
            raise InvalidInput("The start date must not be after the end date.")
        if kind is not None and not isinstance(kind, str):
            raise InvalidInput("The transaction type must be text.")
        if label is not None and not isinstance(label, str):
            raise InvalidInput("The transaction type must be text.")
        if text is not None and not isinstance(text, str):
            raise InvalidInput("The search text must be text.")
        text = " ".join(text.split()) if text else None
        if text and len(text) > 100:
            raise InvalidInput("The search text may have at most 100 characters.")
        sql = (
            "SELECT * FROM (SELECT t.id AS transaction_id, p.posted_at, t.business_date, t.kind, "
            f"t.channel, {label_sql('t.kind', 't.channel', 'p.amount_cents')} AS label, "
            "t.memo, t.source_account, t.target_account, t.actor, t.reverses_id, p.amount_cents, "
            # Cast: sum(BIGINT) is HUGEINT on DuckDB and NUMERIC on PostgreSQL (float64 in
            # a frame); cents stay int64.
            "CAST(sum(p.amount_cents) OVER (ORDER BY p.posted_at, p.id ROWS UNBOUNDED "
            "PRECEDING) AS BIGINT) AS balance_cents, p.id AS posting_id FROM postings p "
            "JOIN transactions t ON t.id = p.transaction_id WHERE p.account_id = ?) h WHERE true")
        params = [row[0]]
        if start:
            sql += " AND business_date >= ?"
            params.append(start)
        if end:
            sql += " AND business_date <= ?"
            params.append(end)
        if kind:
            sql += " AND kind = ?"
            params.append(kind)
        if label:
            sql += " AND label = ?"
            params.append(label)
        if text:
            sql += (" AND (lower(coalesce(memo, '')) LIKE ? OR coalesce(source_account, '') "
                    "LIKE ? OR coalesce(target_account, '') LIKE ? OR "
                    "CAST(transaction_id AS VARCHAR) = ?)")
            like = f"%{text.lower()}%"
            # A short text such as a transaction id "42" would match every (random) account
            # number containing those digits; account numbers are matched from 4 characters.
            # LIKE NULL matches nothing (PostgreSQL refuses a NUL character in text).
            number_like = like if len(text) >= 4 else None
            params += [like, number_like, number_like, text]
        sql += " ORDER BY posted_at DESC, posting_id DESC"
        if limit is not None and limit != 0:  # None or 0: every row, as before
            if isinstance(limit, bool) or not str(limit).strip().isdigit():
                raise InvalidInput("The number of rows must be a whole number.")
            sql += f" LIMIT {int(str(limit).strip())}"
        df = self._bank.read_df(sql, params)
        # Only a transfer has another account the holder knows; for everything else the label
        # says what happened (not the kind code, as it once did here).
        df["counterparty"] = [
            ((tgt if amt < 0 else src) or "") if kind == "transfer" else ""
            for kind, src, tgt, amt in zip(df["kind"], df["source_account"], df["target_account"],
                                           df["amount_cents"])]
        df["amount"] = money_column(df["amount_cents"])
        df["balance"] = money_column(df["balance_cents"])
        return df.drop(columns=["posting_id"])

    def history_kinds(self, actor, number) -> list[str]:
        """The transaction kind codes that occur on one account."""
        number, row = self._readable(actor, number)
        return [r[0] for r in self._bank.read(
            "SELECT DISTINCT t.kind FROM postings p JOIN transactions t "
            "ON t.id = p.transaction_id WHERE p.account_id = ? ORDER BY 1", [row[0]])]

    def history_labels(self, actor, number) -> list[str]:
        """The transaction labels (as history's `label` column says them) that occur on one
        account, sorted: the choices of a history type filter (history(label=...))."""
        number, row = self._readable(actor, number)
        return [r[0] for r in self._bank.read(
            f"SELECT DISTINCT {label_sql('t.kind', 't.channel', 'p.amount_cents')} AS label "
            "FROM postings p JOIN transactions t ON t.id = p.transaction_id "
            "WHERE p.account_id = ? ORDER BY 1", [row[0]])]

    def _change(self, actor, number, action, fn_check, changes_fn):
        self._bank.write(lambda uow: self._change_in(uow, actor, number, action, fn_check,
                                                      changes_fn))

    def _change_in(self, uow, actor, number, action, fn_check, changes_fn):
        """Check and change one account row inside the caller's unit of work, audited; with
        no changes_fn only the check runs (before a change is queued for approval)."""
        row = uow.fetchone(
            "SELECT status, balance_cents, holds_cents, overdraft_limit_cents, "
            "interest_rate_percent, kind FROM accounts WHERE account_number = ? "
            "AND customer_id IS NOT NULL", [number])
        if row is None:
            raise AccountNotFound(f"There is no account {number}.")
        before = dict(zip(("status", "balance_cents", "holds_cents",
                           "overdraft_limit_cents", "interest_rate_percent", "kind"), row))
        fn_check(before)
        if changes_fn is None:
            return
        changes = changes_fn(before)
        sets = ", ".join(f"{k} = ?" for k in changes)
        uow.execute(f"UPDATE accounts SET {sets} WHERE account_number = ?",
                    [*changes.values(), number])
        self._bank.audit_row(uow, actor, action, "account", number,
                             before={k: before.get(k) for k in changes}, after=changes)

    def close(self, actor, number, reason="customer request", *, payout_account=None) -> dict:
        """Staff. Close an account that holds nothing: zero balance, nothing on hold, no active
        loan repaid from it (InvalidState, AccountRepaysLoan otherwise; a closed account is
        refused with InvalidState and nothing is paid again).

        Closing pays what was earned (issue 10), in the same unit of work as the close: the
        savings interest accrued and not yet posted is credited to the account as one
        `interest` transaction from GL5000 interest expense (as month end does), then paid
        out of it, in cash at the teller (a `withdrawal` to teller cash) or, with
        `payout_account`, by a `transfer` to that open account; the account then closes at a
        zero balance, as before. Any refusal of those postings rolls the whole close back
        (so a frozen account with interest to pay is refused with AccountFrozen, since no money
        may leave it; AccountClosed for a closed payout account; SameAccount for itself).

        The rule, after Apache Fineract's savings "close", which posts interest up to the
        closing date: end of day accrues interest on each day's end-of-day balance (eod.py),
        so the days already closed this month count (with the sub-cent carried from the
        last month end) and the closing date itself earns nothing, because the account holds
        no balance at the end of it. Nothing is carried past a close, so the total is
        rounded half-up to the cent (10,000.00 at 2.00 % for 19 days pays 10.41); the
        rounding difference is kept in the interest_postings row (carry_out, negative when
        rounded up) that also marks those accruals as posted, and month end skips closed
        accounts, so nothing is paid twice. Withholding tax (tax.withholding_tax_bp, rounded
        half-up: tax.withholding_tax_cents) is withheld from that gross interest in the same
        transaction (to GL2100), and the net is paid out: 10.41 at 15 % withholds 1.56 and
        pays 8.85. Rates, tax and the period's start are the account's deposit product's
        (deposit_eod.unposted: everything accrued since the last posting).

        Overdraft interest accrued since the last posting is charged the same way, in the same
        unit of work (a real bank closes the account the day the customer asks, as Fineract's
        close posts all interest to the closing date): the unposted overdraft interest with the
        last posting's sub-cent, half-up to the cent, is one `overdraft_interest` transaction
        to GL4000 interest income (overdraft_interest_postings marks it posted). The account
        closes when its balance, with both interests posted, is zero; a positive remainder is
        paid out (it can only be interest: money the customer left beyond what is owed is
        refused, "move the money out first"); a negative one is refused, InvalidState naming
        the amount to pay in, and nothing changes.

        Returns {"interest": Decimal (gross), "tax_withheld": Decimal, "interest_net": Decimal,
        "interest_transaction_id": int | None, "payout_transaction_id": int | None,
        "overdraft_interest": Decimal, "overdraft_interest_transaction_id": int | None,
        "payout": Decimal (paid out: net interest less the overdraft interest)}."""
        number, row = self._readable(actor, number)
        self._bank.require(actor, "account.close", entity="account", entity_id=number)
        if payout_account is not None:
            payout_account = accountnum.normalize(payout_account)
            if payout_account == number:
                raise SameAccount("Pay the closing interest to another account.")

        def check(before):
            if before["status"] == "closed":
                raise InvalidState(f"Account {number} is already closed.")
            if before["kind"] == "term_deposit":
                raise TermDepositLocked(
                    f"Account {number} is a term deposit: it closes at maturity, or early "
                    "through bank.term_deposits.close_early (with the product's penalty).")
            # A term deposit pays out to its linked account at maturity (term_deposits.py).
            deposits = [r[0] for r in self._bank.read(
                "SELECT a.account_number FROM term_deposits t JOIN accounts a "
                "ON a.id = t.account_id JOIN accounts l ON l.id = t.linked_account_id "
                "WHERE l.account_number = ? AND t.status = 'active' ORDER BY 1", [number])]
            if deposits:
                raise InvalidState(
                    f"Account {number} receives term deposit {', '.join(deposits)} at "
                    "maturity; close the term deposit first.")
            if before["holds_cents"] != 0:
                raise InvalidState(f"Account {number} has funds on hold.")
            # End of day collects instalments from this account (issue 9).
            loans = [str(r[0]) for r in self._bank.read(
                "SELECT id FROM loans WHERE account_number = ? AND status = 'active' "
                "ORDER BY id", [number])]
            if loans:
                raise AccountRepaysLoan(
                    f"Account {number} repays loan {', '.join(loans)}; change the loan's "
                    "repayment account first (bank.loans.set_repayment_account).")

        def at_zero(before):
            check(before)
            if before["balance_cents"] != 0:
                raise InvalidState(
                    f"Account {number} can be closed only at a zero balance; it holds "
                    f"{to_money(before['balance_cents'])}. Move the money out first.")

        def fn(uow):
            self._change_in(uow, None, number, None, check, None)
            paid = self._pay_closing_interest(uow, actor, number, payout_account)
            self._change_in(uow, actor, number, "account.close", at_zero,
                            lambda b: {"status": "closed", "closed_at": utcnow(),
                                       "closed_date": self._bank.state.business_date})
            return paid
        return self._bank.write(fn)

    def _pay_closing_interest(self, uow, actor, number, payout_account) -> dict:
        """Post the credit and overdraft interest of `number` up to the open business date and
        pay out a positive remainder (see close); returns close's result. Every amount is
        worked out and every refusal raised before the first posting."""
        from .deposits.eod import MICRO_PER_CENT, unposted
        from ..domain.keys import system_key
        from .deposits.tax import withholding_tax_bp, withholding_tax_cents

        day = self._bank.state.business_date
        account_id, balance = uow.fetchone(
            "SELECT id, balance_cents FROM accounts WHERE account_number = ?", [number])

        def half_up(row) -> tuple[int, int, int, dt.date]:
            """(carry_in, accrued, whole cents half-up, period start) of an unposted row:
            nothing is carried past a close."""
            carry_in, accrued = int(row["carry_in_micro_cents"]), int(row["accrued_micro_cents"])
            posted = (carry_in + accrued + MICRO_PER_CENT // 2) // MICRO_PER_CENT
            return carry_in, accrued, posted, pd.Timestamp(row["period_start"]).date()

        credit = unposted(uow, day, "credit", account_id=account_id)
        credit = half_up(credit.iloc[0]) if len(credit) else None
        owed = unposted(uow, day, "overdraft", account_id=account_id)
        # A sub-cent carried from the last overdraft posting alone, with nothing accrued since,
        # is let go (the bank's rounding, less than a cent), or a customer who paid exactly
        # what the period end charged could not close the account that day.
        owed = (half_up(owed.iloc[0])
                if len(owed) and owed["accrued_micro_cents"].iloc[0] > 0 else None)
        posted = credit[2] if credit else 0
        owed_cents = owed[2] if owed else 0
        tax = int(withholding_tax_cents(
            posted, int(withholding_tax_bp(uow, [account_id], day).iloc[0]))) if posted else 0
        net = posted - tax
        if balance - owed_cents > 0:
            raise InvalidState(
                f"Account {number} can be closed only at a zero balance; it holds "
                f"{to_money(balance - owed_cents)}"
                + (f" beyond the {to_money(owed_cents)} of overdraft interest it owes"
                   if owed_cents else "") + ". Move the money out first.")
        remainder = balance - owed_cents + net
        if remainder < 0:
            raise InvalidState(
                f"Account {number} owes {to_money(-remainder)}"
                + (f" (with {to_money(owed_cents)} of overdraft interest accrued since "
                   f"{owed[3]:%d %B %Y})" if owed_cents else "")
                + f"; pay in {to_money(-remainder)} and close it again.")
        ids = {}
        expense = INTERNAL["interest_expense"]
        income = INTERNAL["interest_income"]
        if payout_account is None:
            out_kind, out_target = "withdrawal", INTERNAL["teller_cash"]
            out_memo = "Closing interest paid in cash"
        else:
            out_kind, out_target = "transfer", payout_account
            out_memo = f"Closing interest of {number}"
        # As at month end: one transaction for the gross interest with the tax withheld as its
        # third leg (deposit_eod.post_period_end), the overdraft interest as its own debit
        # (credited first, so the debit never needs the overdraft limit), then the payout.
        tax_leg = [(INTERNAL["withholding_tax_payable"], tax)] if tax else []
        for name, kind, source, target, memo, legs, amount in (
                ("interest", "interest", expense, number,
                 f"Interest to {day:%d %B %Y}, account closed",
                 [(expense, -posted), (number, net), *tax_leg], posted),
                ("overdraft_interest", "overdraft_interest", number, income,
                 f"Overdraft interest to {day:%d %B %Y}, account closed",
                 [(number, -owed_cents), (income, owed_cents)], owed_cents),
                ("payout", out_kind, number, out_target, out_memo,
                 [(number, -remainder), (out_target, remainder)], remainder)):
            if not amount:
                continue
            outcome = self._bank.post_in(uow, PostingRequest(
                kind=kind, actor=actor, action="account.close",
                legs=legs, amount_cents=amount,
                idempotency_key=system_key("account", number, "closing", name),
                memo=memo, source_account=source, target_account=target,
                internal_ok=True, channel="cash" if kind == "withdrawal" else None))
            if isinstance(outcome, BaseException):
                raise outcome
            ids[name] = outcome.transaction_id
        for table, found, name in (("interest_postings", credit, "interest"),
                                   ("overdraft_interest_postings", owed, "overdraft_interest")):
            if found:
                carry_in, accrued, whole, start = found
                uow.execute(f"INSERT INTO {table} VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                            [account_id, start, day, carry_in, accrued, whole,
                             carry_in + accrued - whole * MICRO_PER_CENT, ids.get(name)])
        return {"interest": to_money(posted), "tax_withheld": to_money(tax),
                "interest_net": to_money(net),
                "interest_transaction_id": ids.get("interest"),
                "payout_transaction_id": ids.get("payout"),
                "overdraft_interest": to_money(owed_cents),
                "overdraft_interest_transaction_id": ids.get("overdraft_interest"),
                "payout": to_money(remainder)}

    def freeze(self, actor, number, reason="", frozen=True):
        number, row = self._readable(actor, number)
        self._bank.require(actor, "account.freeze", entity="account", entity_id=number)
        want_from = ("active", "dormant") if frozen else ("frozen",)

        def check(before):
            if before["status"] not in want_from:
                raise InvalidState(f"Account {number} is {before['status']}.")
        self._change(actor, number, "account.freeze" if frozen else "account.unfreeze", check,
                     lambda b: {"status": "frozen" if frozen else "active"})

    def unfreeze(self, actor, number, reason=""):
        self.freeze(actor, number, reason, frozen=False)

    def set_overdraft_limit(self, actor, number, amount):
        """Managers. A limit above the four-eyes threshold waits for a second manager: the
        call returns a PendingApproval and the limit stays as it was until then."""
        number, row = self._readable(actor, number)
        self._bank.require(actor, "account.set_overdraft", entity="account", entity_id=number)
        cents = to_cents(amount, allow_zero=True)
        self._bank.deposit_products.overdraft_allowed_by(row[16], cents)
        if self._overdraft_waits(actor, cents):
            self._bank.write(lambda uow: self._overdraft_check(uow, number, cents))
            return self._bank.approvals.request(
                actor, "account.set_overdraft", amount_cents=cents, target_account=number,
                params={"account": number, "overdraft_limit_cents": cents},
                summary=f"Overdraft limit of {number} to {to_money(cents)}")
        self._bank.write(lambda uow: self._set_overdraft_in(uow, actor, number, cents))

    def _overdraft_check(self, uow, number, cents):
        self._change_in(uow, None, number, None, self._overdraft_rule(number, cents), None)

    @staticmethod
    def _overdraft_rule(number, cents):
        def check(before):
            if before["kind"] != "checking":
                raise InvalidInput("Only checking accounts can have an overdraft limit.")
            if before["status"] == "closed":
                raise InvalidState(f"Account {number} is closed.")
            if available_cents(before["balance_cents"], before["holds_cents"], cents) < 0:
                raise InvalidState("The account is already overdrawn beyond that limit.")
        return check

    def _set_overdraft_in(self, uow, actor, number, cents):
        self._change_in(uow, actor, number, "account.set_overdraft",
                        self._overdraft_rule(number, cents),
                        lambda b: {"overdraft_limit_cents": cents})

    def set_interest_rate(self, actor, number, rate):
        """Managers. A rate above the `four_eyes_rate_bp` setting (2.00 %) waits for a second
        manager (returns a PendingApproval)."""
        number, row = self._readable(actor, number)
        self._bank.require(actor, "account.set_interest_rate", entity="account",
                           entity_id=number)
        rate = clean_rate(rate)
        if self._rate_waits(actor, rate):
            self._bank.write(lambda uow: self._change_in(uow, None, number, None,
                                                         self._rate_rule, None))
            return self._bank.approvals.request(
                actor, "account.set_interest_rate", target_account=number,
                params={"account": number, "interest_rate_percent": str(rate)},
                summary=f"Interest rate of {number} to {rate} %")
        self._bank.write(lambda uow: self._set_rate_in(uow, actor, number, rate))

    @staticmethod
    def _rate_rule(before):
        if before["kind"] != "savings":
            raise InvalidInput("Only savings accounts earn interest.")

    def _set_rate_in(self, uow, actor, number, rate):
        # A rate a manager sets is the account's own from now on (rate_negotiated).
        self._change_in(uow, actor, number, "account.set_interest_rate", self._rate_rule,
                        lambda b: {"interest_rate_percent": rate, "rate_negotiated": True})


HISTORY_CSV_COLUMNS = ["transaction_id", "posted_at", "business_date", "kind", "label", "memo",
                       "counterparty", "amount", "balance"]


def history_csv(history) -> str:
    """A history DataFrame (from Accounts.history) as CSV text; amounts are exact decimals
    (negative ones stay numbers) and no memo or name can start a formula (bankms.domain.text)."""
    out = history[HISTORY_CSV_COLUMNS].copy()
    out["amount"] = [str(v) for v in out["amount"]]
    out["balance"] = [str(v) for v in out["balance"]]
    return csv_text(out)
