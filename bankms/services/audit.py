"""The audit log and the whole-bank consistency check."""
from __future__ import annotations

from .eod.checks import verify as verify_interest


class Audit:
    def __init__(self, bank):
        self._bank = bank

    def verify(self) -> list[str]:
        """Problems found in the ledger; an empty list means every invariant holds:
        each transaction sums to zero and has postings, each balance equals its postings,
        the trial balance is zero, no customer account is below its overdraft limit (but for
        the overdraft interest charged on it), and each
        account's holds equal the sum of its open holds, none left by a decided request, and
        both hash chains (ledger and audit log) recompute to their stored hashes and to the
        heads recorded at each end of day."""
        bank = self._bank
        problems = []
        for tid, total in bank.read(
                "SELECT transaction_id, sum(amount_cents) FROM postings GROUP BY 1 "
                "HAVING sum(amount_cents) <> 0 ORDER BY 1 LIMIT 100"):
            problems.append(f"transaction {tid} postings sum to {total} cents, not zero")
        for (tid,) in bank.read(
                "SELECT t.id FROM transactions t WHERE NOT EXISTS (SELECT 1 FROM postings p "
                "WHERE p.transaction_id = t.id) ORDER BY 1 LIMIT 100"):
            problems.append(f"transaction {tid} has no postings")
        for number, stored, ledger in bank.read(
                "SELECT a.account_number, a.balance_cents, coalesce(s.total, 0) FROM accounts a "
                "LEFT JOIN (SELECT account_id, sum(amount_cents) AS total FROM postings "
                "GROUP BY 1) s ON s.account_id = a.id "
                "WHERE a.balance_cents <> coalesce(s.total, 0) ORDER BY 1 LIMIT 100"):
            problems.append(f"account {number} balance {stored} differs from its postings "
                            f"{ledger}")
        (trial,) = bank.read_one("SELECT coalesce(sum(balance_cents), 0) FROM accounts")
        if trial != 0:
            problems.append(f"trial balance is {trial} cents, not zero")
        # Overdraft interest is the one debit posted beyond the limit (it is owed either way,
        # deposit_eod.post_period_end): every other debit keeps balance >= -limit when posted
        # and a limit is never lowered below the debt, so balance + all the overdraft
        # interest ever charged never falls below -limit.
        for number, balance, limit in bank.read(
                "SELECT a.account_number, a.balance_cents, a.overdraft_limit_cents "
                "FROM accounts a LEFT JOIN (SELECT p.account_id, -sum(p.amount_cents) AS cents "
                "FROM postings p JOIN transactions t ON t.id = p.transaction_id "
                "WHERE t.kind = 'overdraft_interest' AND p.amount_cents < 0 GROUP BY 1) o "
                "ON o.account_id = a.id WHERE a.customer_id IS NOT NULL "
                "AND a.balance_cents + coalesce(o.cents, 0) < -a.overdraft_limit_cents "
                "ORDER BY 1 LIMIT 100"):
            problems.append(f"account {number} balance {balance} is below its overdraft limit "
                            f"{limit}")
        for number, holds in bank.read(
                "SELECT account_number, holds_cents FROM accounts WHERE holds_cents < 0"):
            problems.append(f"account {number} has negative holds {holds}")
        for number, cached, open_total in bank.read(
                "SELECT a.account_number, a.holds_cents, coalesce(h.total, 0) FROM accounts a "
                "LEFT JOIN (SELECT account_id, sum(amount_cents) AS total FROM holds "
                "WHERE released_at IS NULL GROUP BY 1) h ON h.account_id = a.id "
                "WHERE a.holds_cents <> coalesce(h.total, 0) ORDER BY 1 LIMIT 100"):
            problems.append(f"account {number} holds {cached} cents but its open holds sum to "
                            f"{open_total}")
        for rid, status in bank.read(
                "SELECT DISTINCT r.id, r.status FROM approval_requests r "
                "JOIN holds h ON h.approval_id = r.id "
                "WHERE h.released_at IS NULL AND r.status <> 'pending' ORDER BY 1 LIMIT 100"):
            problems.append(f"approval request {rid} is {status} but still holds money")
        for number, status, balance in bank.read(
                "SELECT account_number, status, balance_cents FROM accounts "
                "WHERE status = 'closed' AND balance_cents <> 0"):
            problems.append(f"closed account {number} holds {balance} cents")
        (orphans,) = bank.read_one(
            "SELECT count(*) FROM postings p WHERE NOT EXISTS (SELECT 1 FROM transactions t "
            "WHERE t.id = p.transaction_id)")
        if orphans:
            problems.append(f"{orphans} postings belong to no transaction")
        # The hash chains: a changed, removed, inserted or reordered entry (chain_store.py).
        problems.extend(bank.chain.verify())
        # Subledgers kept by later modules reconcile against the ledger here.
        problems.extend(bank.charges.verify())
        problems.extend(bank.standing_orders.verify())
        loans = getattr(bank, "loans", None)
        if loans is not None:
            problems.extend(loans.verify())
            problems.extend(verify_interest(bank))
        term_deposits = getattr(bank, "term_deposits", None)
        if term_deposits is not None:
            problems.extend(term_deposits.verify())
        return problems

    def log(self, actor, *, action=None, entity=None, entity_id=None, limit=500):
        bank = self._bank
        bank.require(actor, "audit.read", entity="audit")
        sql = "SELECT * FROM audit_log WHERE true"
        params = []
        for column, value in (("action", action), ("entity", entity), ("entity_id", entity_id)):
            if value is not None:
                sql += f" AND {column} = ?"
                params.append(str(value))
        return bank.read_df(sql + f" ORDER BY id DESC LIMIT {int(limit)}", params)
