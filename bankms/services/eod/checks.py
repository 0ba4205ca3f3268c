"""The checks of what end of day keeps: interest postings against the ledger and the business
date against the writer's. audit.verify runs them; a module of its own so that the audit service
does not import end of day (which imports nearly every service).
"""
from __future__ import annotations

import datetime as dt

# The row a close writes (Accounts.close): it rounds half-up and carries nothing on, so its
# carry_out is the rounding difference, negative when the bank rounded up.
CLOSING_ROW = "(a.status = 'closed' AND ip.period_end = a.closed_date)"


def verify(bank) -> list[str]:
    """Interest postings against the ledger, and the business date against the writer's."""
    problems = []
    for account_id, period_end in bank.read(
            "SELECT ip.account_id, ip.period_end FROM interest_postings ip "
            "JOIN accounts a ON a.id = ip.account_id WHERE "
            "carry_in_micro_cents + accrued_micro_cents <> posted_cents * 1000000 + "
            f"carry_out_micro_cents OR NOT (CASE WHEN {CLOSING_ROW} "
            "THEN carry_out_micro_cents >= -500000 AND carry_out_micro_cents < 500000 "
            "ELSE carry_out_micro_cents BETWEEN 0 AND 999999 END) ORDER BY 1, 2 LIMIT 100"):
        problems.append(f"interest for account id {account_id} to {period_end} does not add up")
    for account_id, period_end in bank.read(
            "SELECT ip.account_id, ip.period_end FROM interest_postings ip "
            "LEFT JOIN transactions t ON t.id = ip.transaction_id WHERE (ip.posted_cents > 0) "
            "<> (t.id IS NOT NULL) OR t.amount_cents <> ip.posted_cents "
            "OR t.kind <> 'interest' ORDER BY 1, 2 LIMIT 100"):
        problems.append(f"interest posted to account id {account_id} for {period_end} does not "
                        "match its transaction")
    for account_id, period_end in bank.read(
            "SELECT o.account_id, o.period_end FROM overdraft_interest_postings o "
            "JOIN accounts a ON a.id = o.account_id "
            "LEFT JOIN transactions t ON t.id = o.transaction_id WHERE "
            "carry_in_micro_cents + accrued_micro_cents <> posted_cents * 1000000 + "
            # A close rounds half-up and carries nothing on (accounts.close), as for credit.
            f"carry_out_micro_cents OR NOT (CASE WHEN {CLOSING_ROW.replace('ip.', 'o.')} "
            "THEN carry_out_micro_cents >= -500000 AND carry_out_micro_cents < 500000 "
            "ELSE carry_out_micro_cents BETWEEN 0 AND 999999 END) "
            "OR (o.posted_cents > 0) <> (t.id IS NOT NULL) OR t.amount_cents <> o.posted_cents "
            "OR t.kind <> 'overdraft_interest' ORDER BY 1, 2 LIMIT 100"):
        problems.append(f"overdraft interest of account id {account_id} to {period_end} does "
                        "not add up or match its transaction")
    row = bank.read_one("SELECT value FROM settings WHERE key = 'business_date'")
    if row and dt.date.fromisoformat(row[0]) != bank.state.business_date:
        problems.append(f"stored business date {row[0]} differs from the writer's "
                        f"{bank.state.business_date}")
    return problems
