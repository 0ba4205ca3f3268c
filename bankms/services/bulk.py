"""The bulk path: many transactions posted with a few set-based statements.

Used by the demo generator and by end-of-day jobs. Callers pass two DataFrames: transactions
(one row each, with a caller-chosen `tx_ref` from 0, and optionally a `channel`: how the money
moved, labels.CHANNEL_LABELS, None or absent when the kind says it all) and postings
(`tx_ref`, `account_id`, `amount_cents`). Within one unit of work the rows are inserted,
every transaction is checked to sum to zero, balances move by one aggregated UPDATE, and no
customer account may end below its overdraft limit; any failure rolls the whole batch back.
"""
from __future__ import annotations

from ..domain.errors import BankError
from ..domain.labels import CHANNEL_LABELS
from .ledger import utcnow

TX_COLUMNS = ["kind", "amount_cents", "memo", "source_account", "target_account", "posted_at",
              "business_date", "channel"]


class BulkInvariantError(BankError):
    pass


class Bulk:
    def __init__(self, bank):
        self._bank = bank

    def post_frames(self, actor, transactions, postings, *, action="ledger.bulk_post",
                    allow_overdraw=False) -> int:
        bank = self._bank
        bank.require(actor, "bank.admin" if actor.role == "system" else "bank.end_of_day",
                     entity="ledger")
        if len(transactions) == 0:
            return 0

        def fn(uow):
            return len(self.post_frames_in(uow, actor, transactions, postings, action=action,
                                           allow_overdraw=allow_overdraw))
        return bank.write(fn)

    def post_frames_in(self, uow, actor, transactions, postings, *, action,
                       allow_overdraw=False):
        """Post inside an existing unit of work on the writer thread. Returns the transaction
        ids by tx_ref (a numpy array: ids[tx_ref]; tx_ref runs from 0 to the number of
        transactions less one). Ids come through uow.take_ids: ascending with tx_ref, one
        contiguous block on DuckDB (the writer's counters), not always on PostgreSQL
        (sequences other processes' writers take from too)."""
        bank = self._bank
        state = bank.state
        n_tx = len(transactions)
        n_post = len(postings)
        tx_ids = uow.take_ids("transaction_id_seq", n_tx).ids
        post_ids = uow.take_ids("posting_id_seq", n_post).ids
        tx = transactions.copy()
        tx["id"] = tx_ids[tx["tx_ref"].to_numpy()]
        tx["actor"] = actor.username
        tx["actor_role"] = actor.role
        for column, default in (("memo", ""), ("source_account", None),
                                ("target_account", None), ("posted_at", utcnow()),
                                ("business_date", state.business_date), ("channel", None)):
            if column not in tx:
                tx[column] = default
        unknown = set(tx["channel"].dropna()) - set(CHANNEL_LABELS)
        if unknown:
            raise BulkInvariantError(f"unknown channels {sorted(map(str, unknown))}; nothing "
                                     "was posted")
        post = postings[["tx_ref", "account_id", "amount_cents"]].copy()
        post["id"] = post_ids
        if "posted_at" in postings:
            post["posted_at"] = postings["posted_at"]
        with uow.scan("bulk_tx", tx), uow.scan("bulk_post", post):
            # Every posting must belong to a transaction of the batch and every transaction
            # needs postings; otherwise balances would move by postings that are never stored.
            # These checks and the batch's total read the two frames only, so one statement
            # answers them all before anything is written (end of day posts a few small
            # batches a day, where each statement is most of the cost).
            stray, empty, bad, total = uow.fetchone(
                "SELECT (SELECT count(*) FROM bulk_post p WHERE NOT EXISTS (SELECT 1 "
                "FROM bulk_tx t WHERE t.tx_ref = p.tx_ref)), (SELECT count(*) FROM bulk_tx t "
                "WHERE NOT EXISTS (SELECT 1 FROM bulk_post p WHERE p.tx_ref = t.tx_ref)), "
                "(SELECT count(*) FROM (SELECT tx_ref FROM bulk_post GROUP BY 1 "
                "HAVING sum(amount_cents) <> 0) unbalanced), "
                "(SELECT coalesce(sum(amount_cents), 0) FROM bulk_tx)")
            if stray or empty:
                raise BulkInvariantError(
                    f"{stray} postings name no transaction of the batch and {empty} "
                    "transactions have no postings; nothing was posted")
            if bad:
                raise BulkInvariantError(f"{bad} bulk transactions do not sum to zero")
            uow.execute(
                "INSERT INTO transactions (id, kind, amount_cents, memo, source_account, "
                "target_account, actor, actor_role, idempotency_key, reverses_id, posted_at, "
                "business_date, channel) SELECT id, kind, amount_cents, memo, "
                "source_account, target_account, actor, actor_role, NULL, NULL, "
                "CAST(posted_at AS TIMESTAMP), CAST(business_date AS DATE), "
                "CAST(channel AS VARCHAR) FROM bulk_tx")
            has_time = "posted_at" in post
            uow.execute(
                "INSERT INTO postings SELECT p.id, t.id, p.account_id, p.amount_cents, "
                + ("CAST(p.posted_at AS TIMESTAMP)" if has_time else
                   "CAST(t.posted_at AS TIMESTAMP)")
                + " FROM bulk_post p JOIN bulk_tx t ON t.tx_ref = p.tx_ref")
            uow.execute(
                "UPDATE accounts SET balance_cents = accounts.balance_cents + d.delta "
                "FROM (SELECT account_id, sum(amount_cents) AS delta FROM bulk_post GROUP BY 1) d "
                "WHERE accounts.id = d.account_id")
            if not allow_overdraw:
                below = uow.fetchone(
                    "SELECT count(*) FROM accounts WHERE customer_id IS NOT NULL AND "
                    "balance_cents - holds_cents < -overdraft_limit_cents AND id IN "
                    "(SELECT DISTINCT account_id FROM bulk_post)")[0]
                if below:
                    raise BulkInvariantError(
                        f"{below} accounts would end below their overdraft limit")
        bank.audit_row(uow, actor, action, "ledger", None, after={
            "transactions": n_tx, "postings": n_post, "amount_cents": int(total),
            "first_transaction_id": int(tx_ids[0])})
        return tx_ids
