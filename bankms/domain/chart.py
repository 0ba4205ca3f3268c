"""The chart of accounts: the bank's internal ledger accounts, by number, code and name.

A leaf module (it imports nothing from bankms) so that every service can name an internal
account without importing bank.py, which wires the services together and so sits above them.
"""
from __future__ import annotations

# Internal ledger accounts: they hold the other side of every customer movement. With the one
# sign convention used throughout (a posting adds to the account's balance), asset accounts
# such as teller cash carry negative balances and the whole ledger always sums to zero.
INTERNAL_ACCOUNTS = [
    ("GL1000", "teller_cash", "Teller cash"),
    ("GL1100", "clearing", "External clearing"),
    ("GL1200", "loans_receivable", "Loans receivable"),
    # Loan interest earned and not yet paid, kept by end of day (eod.py _accrue_loans).
    ("GL1210", "interest_receivable", "Loan interest receivable"),
    # Expected loan losses by arrears bucket, kept by end of day (eod.py _provision).
    ("GL1290", "loan_loss_provision", "Loan-loss provision"),
    # Liabilities (GL2xxx). Tax withheld from customers' interest, owed to the tax authority
    # (deposit_eod.py post_period_end, accounts.py close).
    ("GL2100", "withholding_tax_payable", "Withholding tax payable"),
    ("GL4000", "interest_income", "Interest income"),
    ("GL4100", "fee_income", "Fee income"),
    # Payments on written-off loans (loans.py).
    ("GL4200", "loan_recoveries", "Loan recoveries"),
    ("GL5000", "interest_expense", "Interest expense"),
    # Loans written off move their unpaid principal here (loans.py).
    ("GL5100", "loan_losses", "Loan losses"),
    ("GL5200", "provision_expense", "Loan-loss provision expense"),
]
INTERNAL = {code: number for number, code, _ in INTERNAL_ACCOUNTS}

# Writer lanes (issue 14, PostgreSQL): the busy internal accounts that nearly every deposit,
# withdrawal and payment through clearing moves. Posting batches of several processes run at
# once, and one row that every batch updates would make them take turns (each holds the row
# from its UPDATE to its COMMIT). So a posting batch in writer lane n books these legs on the
# account's till for that lane, an internal account of its own ("GL1000-L01"), which no other
# lane touches; the account and its tills together are the ledger line (trial balance).
LANE_TILLS = ("teller_cash", "clearing")


def till_number(number: str, lane: int) -> str:
    """The account number of internal account `number`'s till in writer lane `lane` (1-64)."""
    return f"{number}-L{lane:02d}"
