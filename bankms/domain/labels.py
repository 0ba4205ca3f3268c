"""The one vocabulary people read: human labels for transaction types, channels and columns.

Every page, statement, PDF, CSV header meant for people and chart legend names a transaction
through `transaction_label`; codes such as `loan_write_off` stay in storage, APIs and
machine-readable CSV columns. Pure functions and dictionaries only: no database, no Streamlit.

A transaction's label comes from its kind (transactions.kind), its channel (transactions.channel:
how the money moved; NULL for entries posted before channels were recorded) and, for the
postings of a transfer, the sign of the amount on the account (in or out). `label_sql` builds
the same label in SQL from the same tables, so that a history filter or a chart grouped in the
database says exactly what `transaction_label` says (a test holds them equal).

(Issue 13. The skeleton was fixed by the lead; the owner of the labels work fills it in.)
"""
from __future__ import annotations

# Transaction kinds (transactions.kind) as a person says them. Unknown codes fall back to
# `humanize(code)` so a new kind never shows as snake_case. `penalty` is a term deposit's
# early-closure penalty; `tax_withholding` is not stored as a kind but named so by the
# documents' effective kinds (analytics.py), the tax withheld from interest.
KIND_LABELS: dict[str, str] = {
    "deposit": "Deposit",
    "withdrawal": "Withdrawal",
    "transfer": "Transfer",
    "reversal": "Reversal",
    "interest": "Interest",
    "overdraft_interest": "Overdraft interest",
    "fee": "Fee",
    "tax": "Tax",
    "tax_withholding": "Tax withheld",
    "penalty": "Early closure penalty",
    "loan_disbursement": "Loan disbursement",
    "loan_repayment": "Loan instalment",
    "loan_write_off": "Loan write-off",
    "loan_recovery": "Loan recovery",
    "loan_accrual": "Loan interest accrual",
    "loan_provision": "Loan loss provision",
    "loan_reallocation": "Loan payment reallocation",
}

# Account kinds (accounts.kind, deposit product kinds) as a person says them: the one map for
# pages, tables, chart legends and ledger line names.
ACCOUNT_KIND_LABELS: dict[str, str] = {
    "checking": "Checking",
    "savings": "Savings",
    "term_deposit": "Term deposit",
}

# Channels (transactions.channel): how the money moved. None means "not recorded" (entries
# posted before channels existed, and kinds whose label says it all, such as interest), and the
# label then comes from the kind alone. `transfer` is a payment from or to another bank
# (through clearing); transfers between accounts of this bank are the kind `transfer`.
CHANNEL_LABELS: dict[str, str] = {
    "cash": "Cash",
    "atm": "ATM",
    "card": "Card payment",
    "salary": "Salary credit",
    "transfer": "Bank transfer",
    "direct_debit": "Direct debit",
    "standing_order": "Standing order",
}

# What one kind through one channel is called; a pair not listed here is called by its
# channel's label (a channel says more than the kind) or, without a channel, by its kind.
KIND_CHANNEL_LABELS: dict[tuple[str, str], str] = {
    ("deposit", "cash"): "Cash deposit",
    ("deposit", "atm"): "ATM deposit",
    ("deposit", "card"): "Card refund",
    ("deposit", "salary"): "Salary credit",
    ("deposit", "transfer"): "Transfer in",
    ("withdrawal", "cash"): "Cash withdrawal",
    ("withdrawal", "atm"): "ATM withdrawal",
    ("withdrawal", "card"): "Card payment",
    ("withdrawal", "transfer"): "Transfer out",
    ("withdrawal", "direct_debit"): "Direct debit",
    ("transfer", "standing_order"): "Standing order",
}

# A transfer's posting as its account holder sees it: money in or out of that account.
TRANSFER_IN, TRANSFER_OUT = "Transfer in", "Transfer out"


def humanize(code) -> str:
    """'avg_recency_days' -> 'Avg recency days': the fallback for a code with no label."""
    text = str(code or "").replace("_", " ").strip()
    return text[:1].upper() + text[1:]


def kind_label(kind) -> str:
    """A transaction kind as people read it ('loan_write_off' -> 'Loan write-off')."""
    return KIND_LABELS.get(kind) or ACCOUNT_KIND_LABELS.get(kind) or humanize(kind)


def account_kind_label(kind) -> str:
    """An account kind as people read it ('term_deposit' -> 'Term deposit')."""
    return ACCOUNT_KIND_LABELS.get(kind, humanize(kind))


def account_kind_sql(column: str = "a.kind") -> str:
    """A SQL expression (DuckDB) giving account_kind_label of the given column."""
    when = " ".join(f"WHEN {column} = {_quote(k)} THEN {_quote(label)}"
                    for k, label in ACCOUNT_KIND_LABELS.items())
    return f"(CASE {when} ELSE {_humanize_sql(column)} END)"


def channel_label(channel) -> str:
    """A channel as people read it ('atm' -> 'ATM'); '' for None (not recorded)."""
    if channel is None or channel == "":
        return ""
    return CHANNEL_LABELS.get(channel, humanize(channel))


def transaction_label(kind, channel=None, amount_cents=None) -> str:
    """What happened, from the customer's side of one posting: 'Card payment', 'ATM withdrawal',
    'Cash deposit', 'Salary credit', 'Transfer in' / 'Transfer out' (by the sign of
    amount_cents on the account), 'Standing order', 'Loan instalment', 'Interest', 'Fee', 'Tax'.

    kind and channel are the stored codes (channel None or '' when not recorded);
    amount_cents, the signed posting on the account, only decides a transfer's direction (None:
    'Transfer'). Unknown codes are humanized, never shown raw. Same rules as `label_sql`."""
    if channel is not None and channel == channel and channel != "":  # NaN from pandas: none
        label = KIND_CHANNEL_LABELS.get((kind, channel))
        if label is not None:
            return label
        if kind not in ("transfer", "reversal"):
            return channel_label(channel)
    if kind == "transfer" and amount_cents is not None and amount_cents == amount_cents:
        if amount_cents > 0:
            return TRANSFER_IN
        if amount_cents < 0:
            return TRANSFER_OUT
    return kind_label(kind)


def transaction_labels(kinds, channels=None, amounts_cents=None) -> list[str]:
    """transaction_label over parallel sequences (DataFrame columns); channels or amounts
    None: not known for any row."""
    kinds = list(kinds)
    channels = [None] * len(kinds) if channels is None else list(channels)
    amounts = [None] * len(kinds) if amounts_cents is None else list(amounts_cents)
    return [transaction_label(k, c, a) for k, c, a in zip(kinds, channels, amounts)]


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def label_sql(kind: str = "t.kind", channel: str = "t.channel",
              amount_cents: str | None = None) -> str:
    """A SQL expression (DuckDB) giving transaction_label(kind, channel, amount_cents) from
    the given column expressions; amount_cents None: a transaction's label without a side
    ('Transfer'). Built from the tables above, so SQL and Python say the same."""
    when = []
    for (k, c), label in KIND_CHANNEL_LABELS.items():
        when.append(f"WHEN {kind} = {_quote(k)} AND {channel} = {_quote(c)} "
                    f"THEN {_quote(label)}")
    for c, label in CHANNEL_LABELS.items():
        when.append(f"WHEN {kind} NOT IN ('transfer', 'reversal') AND {channel} = {_quote(c)} "
                    f"THEN {_quote(label)}")
    # A channel code not in CHANNEL_LABELS (none is stored; payments refuse them): humanized.
    when.append(f"WHEN {kind} NOT IN ('transfer', 'reversal') AND coalesce({channel}, '') <> '' "
                f"THEN {_humanize_sql(channel)}")
    if amount_cents is not None:
        when.append(f"WHEN {kind} = 'transfer' AND {amount_cents} > 0 THEN {_quote(TRANSFER_IN)}")
        when.append(f"WHEN {kind} = 'transfer' AND {amount_cents} < 0 "
                    f"THEN {_quote(TRANSFER_OUT)}")
    for k, label in KIND_LABELS.items():
        when.append(f"WHEN {kind} = {_quote(k)} THEN {_quote(label)}")
    return f"(CASE {' '.join(when)} ELSE {_humanize_sql(kind)} END)"


def _humanize_sql(column: str) -> str:
    text = f"trim(replace(coalesce(CAST({column} AS VARCHAR), ''), '_', ' '))"
    return f"(upper(substr({text}, 1, 1)) || substr({text}, 2))"
