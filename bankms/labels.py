"""The one vocabulary people read: human labels for transaction types, channels and columns.

Every page, statement, PDF, CSV header meant for people and chart legend names a transaction
through `transaction_label`; codes such as `loan_write_off` stay in storage, APIs and
machine-readable CSV columns. Pure functions and dictionaries only: no database, no Streamlit.

(Issue 13. The skeleton was fixed by the lead; the owner of the labels work fills it in.)
"""
from __future__ import annotations

# Transaction kinds (transactions.kind) as a person says them. Unknown codes fall back to
# `humanize(code)` so a new kind never shows as snake_case.
KIND_LABELS: dict[str, str] = {
    "deposit": "Deposit",
    "withdrawal": "Withdrawal",
    "transfer": "Transfer",
    "reversal": "Reversal",
    "interest": "Interest",
    "overdraft_interest": "Overdraft interest",
    "fee": "Fee",
    "tax": "Tax",
    "loan_disbursement": "Loan disbursement",
    "loan_repayment": "Loan instalment",
    "loan_write_off": "Loan write-off",
    "loan_recovery": "Loan recovery",
    "loan_accrual": "Loan interest accrual",
    "loan_provision": "Loan loss provision",
    "loan_reallocation": "Loan payment reallocation",
}

# Channels (transactions.channel): how the money moved. None means "not recorded" (entries
# posted before channels existed), and the label then comes from the kind alone.
CHANNEL_LABELS: dict[str, str] = {
    "cash": "Cash",
    "atm": "ATM",
    "card": "Card payment",
    "salary": "Salary credit",
    "online": "Online",
    "branch": "Branch",
    "standing_order": "Standing order",
}


def humanize(code) -> str:
    """'avg_recency_days' -> 'Avg recency days': the fallback for a code with no label."""
    text = str(code or "").replace("_", " ").strip()
    return text[:1].upper() + text[1:]


def kind_label(kind) -> str:
    """A transaction kind as people read it ('loan_write_off' -> 'Loan write-off')."""
    return KIND_LABELS.get(kind, humanize(kind))


def transaction_label(kind, channel=None, amount_cents=None) -> str:
    """What happened, from the customer's side of one posting: 'Card payment', 'ATM withdrawal',
    'Cash deposit', 'Salary credit', 'Transfer in' / 'Transfer out' (by the sign of
    amount_cents on the account), 'Standing order', 'Loan instalment', 'Interest', 'Fee', 'Tax'.
    """
    if kind == "transfer" and amount_cents is not None:
        return "Transfer in" if amount_cents > 0 else "Transfer out"
    return kind_label(kind)
