"""Every table a page shows goes through `show_table`: one place that turns a service's
DataFrame into what people read (human headers, money as currency with thousands separators,
dates without midnight times, ids as plain numbers) through `st.column_config`. CSV downloads
do not go through here: they keep machine-readable columns. Only functions live here.

How a column is shown is decided by its machine name (the conventions of PLAN13: `*_cents`,
money words, `*_date`, `*_at`, `*_id`, `*_number`, rates) and then by its values:

- money: `*_cents` integers become exact Decimal amounts (bankms.domain.money.to_money, never a
  float); Decimal money columns stay Decimal. Both go to the browser as Arrow decimals, so the
  column sorts by value, and NumberColumn's "dollar" format draws "$1,234.50" / "-$1,234.50".
  Where a page has both `amount` and `amount_cents`, only `amount` is shown.
- dates: `*_date` and day columns, and any timestamp column whose values are all midnight,
  as "2026-11-30"; other timestamps to the minute.
- ids and account numbers as plain digits ("%d" keeps them sortable as numbers), never
  "1,474,960" or "36695.5"; percentages with a percent sign; counts with thousands separators.
- codes (transaction kinds, statuses, channels) through bankms.domain.labels.

A few static rows can be drawn with st.table instead (show_table(static=True)): the same
decisions, each cell as the text the column's format would draw (static_view).

`table_view(df, ...)` does the deciding and returns (DataFrame, column_config) without drawing
anything, so the rules are tested without a page.
"""
from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import numpy as np
import pandas as pd
import streamlit as st

from bankms.domain.labels import CHANNEL_LABELS, humanize, kind_label
from bankms.domain.money import format_money, to_money

# Headers for columns that many services return, where humanize() alone reads badly. A page
# passes headers= for what is particular to it.
HEADERS: dict[str, str] = {
    "id": "Id",
    "account_number": "Account",
    "counterparty": "Counterparty",
    "customer_id": "Customer",
    "transaction_id": "Transaction",
    "loan_id": "Loan",
    "request_id": "Request",
    "run_id": "Run",
    "full_name": "Name",
    "posted_at": "When",
    "ts": "When",
    "business_date": "Business day",
    "value_date": "Value date",
    "created_at": "Created",
    "opened_at": "Opened",
    "closed_at": "Closed",
    "last_at": "Last transaction",
    "kind": "Type",
    "label": "Type",
    "memo": "Memo",
    "balance": "Balance",
    "available": "Available",
    "segment": "Segment",
    "customers": "Customers",
    "accounts": "Accounts",
    "avg_recency_days": "Average days since last transaction",
    "recency_days": "Days since last transaction",
    "avg_frequency": "Average transactions",
    "frequency": "Transactions",
    "monetary": "Money moved",
    "r_score": "Recency score",
    "f_score": "Frequency score",
    "m_score": "Money score",
    "before_count": "Transactions in the earlier window",
    "recent_count": "Transactions in the recent window",
    "months": "Months with income",
    "income": "Income",
    "monthly_income": "Monthly income",
    "refusals": "Refusals",
    "reason": "Reason",
    "hours_to_decide": "Hours to decide",
    "code": "Code",
    "account": "Ledger account",
    "debit": "Debit",
    "credit": "Credit",
    "opening": "Opening balance",
    "closing": "Closing balance",
    "email": "Email",
    "phone": "Phone",
}

# Last words of a money column's name (`amount`, `principal_outstanding`, `total_fees`...).
MONEY_WORDS = frozenset({
    "amount", "balance", "available", "debit", "credit", "opening", "closing", "principal",
    "outstanding", "payout", "penalty", "income", "monetary", "fee", "fees", "interest",
    "holds", "limit", "paid", "instalment", "payment", "total", "required", "booked",
    "difference", "provision", "tax", "overdraft", "deposits", "withdrawals",
})
# Columns whose values are codes: the function that names a code for people.
CODE_LABELS = {
    "kind": kind_label,
    "channel": lambda code: CHANNEL_LABELS.get(code, humanize(code)),
}
CODE_WORDS = frozenset({"status", "state", "outcome", "role", "event", "source",
                        "decision", "rule"})
COUNT_WORDS = frozenset({"count", "customers", "accounts", "loans", "refusals", "transactions",
                         "postings", "rows", "members"})
_CODE = re.compile(r"^[a-z][a-z0-9_]*$")

MONEY_FORMAT = "dollar"  # Intl currency format: "$1,234.50", "-$1,234.50"
DATE_FORMAT = "YYYY-MM-DD"
DATETIME_FORMAT = "YYYY-MM-DD HH:mm"


def _last_word(name: str) -> str:
    return name.rsplit("_", 1)[-1]


def _values(series: pd.Series) -> list:
    return [v for v in series.tolist() if v is not None and not (
        isinstance(v, float) and v != v) and v is not pd.NaT and v is not pd.NA]


def is_id(name: str) -> bool:
    """Ids and account numbers: shown as plain digits or text, never as amounts."""
    return (name == "id" or name.endswith(("_id", "_ids", "_number", "_no"))
            or name in ("number", "loan", "transaction", "request"))


def is_quantity(name: str) -> bool:
    """Days, months, hours and counts: numbers that are never money, whatever their type."""
    words = set(name.split("_"))
    return bool(words & {"days", "months", "hours", "count", "n"}) or "days_past" in name


def is_percent(name: str) -> bool:
    """Rates and shares, in percent units (4.90 means 4.90 %) or basis points (`*_bp`)."""
    return ("rate" in name.split("_") or name.endswith(("_pct", "_percent", "_bp"))
            or name in ("rate", "pct", "percent", "share"))


def is_money(name: str, values: list) -> bool:
    """Money by name (`*_cents` or a money word last) with numbers in it, or Decimal values
    under a name that is not an id, a rate or a count."""
    if is_id(name) or is_percent(name) or is_quantity(name):
        return False
    numbers = all(isinstance(v, (int, float, Decimal)) and not isinstance(v, bool)
                  for v in values)
    if name.endswith("_cents"):
        return numbers
    if _last_word(name) in MONEY_WORDS or name in MONEY_WORDS:
        return numbers
    return bool(values) and all(isinstance(v, Decimal) for v in values)


def header_for(name: str, headers: dict | None = None) -> str:
    """The header people read: headers= first, then HEADERS, then humanize (with `_cents`
    dropped: the column shows an amount)."""
    if headers and name in headers:
        return headers[name]
    base = name.removesuffix("_cents")
    if name in HEADERS:
        return HEADERS[name]
    if base in HEADERS:
        return HEADERS[base]
    if base.endswith("_bp"):
        base = base.removesuffix("_bp")
    return humanize(base)


def _cents_to_money(values: pd.Series) -> list:
    return [None if v is None or v is pd.NA or (isinstance(v, float) and v != v)
            else to_money(int(v)) for v in values.tolist()]


def _as_decimal(values: pd.Series) -> list:
    # Floats already come from the service (an average); str() keeps what was printed.
    return [None if v is None or v is pd.NA or (isinstance(v, float) and v != v)
            else v if isinstance(v, Decimal) else Decimal(str(v)) for v in values.tolist()]


def _whole(series: pd.Series) -> pd.Series:
    """Whole numbers (floats made by a missing value, Decimals from SQL) as nullable ints."""
    return pd.Series([None if v is None or v is pd.NA or (isinstance(v, float) and v != v)
                      else int(v) for v in series.tolist()], dtype="Int64")


def _is_midnight(values: list) -> bool:
    return all(isinstance(v, dt.date) and (not isinstance(v, dt.datetime) or
               v.time() == dt.time(0)) for v in values)


def _column(name: str, series: pd.Series, label: str, money: bool):
    """(new values or None, column config) for one column."""
    values = _values(series)
    cfg = st.column_config
    if series.dtype == bool or (values and all(isinstance(v, bool) for v in values)):
        return None, cfg.CheckboxColumn(label)
    if money:
        # Whole numbers under a `*_cents` name, or named in money= (as pages.common.money
        # reads an int), are cents; anything else is an amount already.
        cents = name.endswith("_cents") or (money == "cents" and values and all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values))
        shown = _cents_to_money(series) if cents else _as_decimal(series)
        return shown, cfg.NumberColumn(label, format=MONEY_FORMAT)
    if is_id(name):
        if values and all(isinstance(v, (int, float, Decimal)) for v in values):
            if all(v == int(v) for v in values):
                return _whole(series), cfg.NumberColumn(label, format="%d")
        return (None if not values or all(isinstance(v, str) for v in values)
                else series.astype("string"), cfg.TextColumn(label))
    is_time = pd.api.types.is_datetime64_any_dtype(series)
    if is_time or (values and all(isinstance(v, dt.date) for v in values)):
        if name.endswith("_date") or name in ("date", "due", "day") or _is_midnight(
                [v.to_pydatetime() if isinstance(v, pd.Timestamp) else v for v in values]):
            return None, cfg.DateColumn(label, format=DATE_FORMAT)
        return None, cfg.DatetimeColumn(label, format=DATETIME_FORMAT)
    if is_percent(name) and values and all(isinstance(v, (int, float, Decimal))
                                           for v in values):
        shown = None
        if name.endswith("_bp"):
            shown = [None if v is None else Decimal(int(v)) / 100 for v in _as_decimal(series)]
        elif any(isinstance(v, Decimal) for v in values):
            shown = _as_decimal(series)
        return shown, cfg.NumberColumn(label, format="%.2f %%")
    if values and all(isinstance(v, str) for v in values):
        word = _last_word(name)
        to_label = CODE_LABELS.get(name) or CODE_LABELS.get(word)
        if to_label is None and (name in CODE_WORDS or word in CODE_WORDS):
            to_label = humanize
        if to_label is not None:
            return ([v if not isinstance(v, str) or not _CODE.match(v) else to_label(v)
                     for v in series.tolist()], cfg.TextColumn(label))
        return None, cfg.TextColumn(label)
    if values and all(isinstance(v, (int, float, Decimal)) for v in values):
        if all(v == int(v) for v in values):
            counted = name in COUNT_WORDS or _last_word(name) in COUNT_WORDS
            return (_whole(series) if series.dtype.kind not in "iu" else None,
                    cfg.NumberColumn(label, format="localized" if counted else "%d"))
        return None, cfg.NumberColumn(label, format="%.1f" if re.search(
            r"days|hours|avg|frequency", name) else "%.2f")
    return None, cfg.Column(label)


def table_view(df: pd.DataFrame, *, headers: dict | None = None, hide=(),
               money=()) -> tuple[pd.DataFrame, dict]:
    """The DataFrame to draw and its column_config, by the rules of this module's docstring.
    `money` names columns that are money although their names do not say so. The index is
    dropped; row order is kept (a selection event's row numbers refer to df's rows)."""
    hidden = set(hide)
    # A machine duplicate: `amount_cents` beside `amount` is the same figure.
    hidden |= {c for c in df.columns if isinstance(c, str) and c.endswith("_cents")
               and c.removesuffix("_cents") in df.columns}
    # And `kind` beside `label`, the transaction's type in words (bankms.domain.labels).
    if "label" in df.columns and "kind" in df.columns:
        hidden.add("kind")
    shown = df.drop(columns=[c for c in df.columns if c in hidden]).reset_index(drop=True)
    config = {}
    for name in list(shown.columns):
        key = str(name)
        series = shown[name]
        values = _values(series)
        new, column = _column(key, series, header_for(key, headers),
                              "cents" if name in money else is_money(key, values))
        if new is not None:
            shown[name] = new if isinstance(new, pd.Series) else pd.Series(new, dtype=object)
        config[name] = column
    # The headers become the column names too, so that what a test or a screen reader reads
    # from the data is what people see; not when two columns would share one.
    labels = {name: column["label"] for name, column in config.items()}
    if len(set(labels.values())) == len(labels) and "" not in labels.values():
        shown = shown.rename(columns=labels)
        config = {labels[name]: column for name, column in config.items()}
    return shown, config


def _cell_text(value, column: dict) -> str:
    """One cell as the column's format draws it in st.dataframe (see table_view)."""
    from bankms.domain.text import markdown_escape

    if value is None or (not isinstance(value, (str, Decimal)) and pd.isna(value)):
        return ""
    kind = (column.get("type_config") or {}).get("type")
    fmt = (column.get("type_config") or {}).get("format")
    if kind == "checkbox":
        return "Yes" if value else "No"
    if kind == "number":
        if fmt == MONEY_FORMAT:
            return format_money(value)
        if fmt == "localized":
            return f"{int(value):,}"
        if fmt == "%d":
            return str(int(value))
        if fmt == "%.2f %%":
            return f"{float(value):.2f} %"
        return fmt % float(value) if fmt else str(value)
    if kind == "date":
        return f"{pd.Timestamp(value):%Y-%m-%d}"
    if kind == "datetime":
        return f"{pd.Timestamp(value):%Y-%m-%d %H:%M}"
    # st.table reads cells as Markdown: stored text is shown exactly as typed.
    return markdown_escape(value)


def static_view(shown: pd.DataFrame, config: dict):
    """table_view's answer as st.table draws it: every cell as text in its column's format
    and numbers to the right, as st.dataframe shows them."""
    text = pd.DataFrame({name: [_cell_text(v, config[name]) for v in shown[name].tolist()]
                         for name in shown.columns}, columns=shown.columns)
    numbers = [name for name in shown.columns
               if (config[name].get("type_config") or {}).get("type") == "number"]
    return text.style.hide(axis="index").set_properties(subset=numbers,
                                                        **{"text-align": "right"})


def show_table(df: pd.DataFrame, *, headers: dict | None = None, hide=(), key: str | None = None,
               height=None, money=(), empty: str | None = None, static: bool = False,
               **kwargs):
    """Show df with st.dataframe, formatted by column name (`*_cents` and money columns as
    currency, `*_date`/`*_at` as dates/times, `*id`/`*_number` as plain text), human headers
    (from `headers`, else bankms.domain.labels), the columns in `hide` left out and no index.
    `money` names further money columns; `empty` is a caption shown instead of an empty table.
    Returns what st.dataframe returns (selection events when `on_select` is passed).

    static=True draws the same text with st.table instead, for a few rows that need no
    sorting, scrolling or selection: a page whose only grid is such a table does not load
    and start the grid's script (a few tenths of a second of the browser's main thread per
    page opened, benchmarks/bench_pages_browser.py). No selection events: None returned."""
    if empty is not None and (df is None or len(df) == 0):
        st.caption(empty)
        return None
    shown, config = table_view(df, headers=headers, hide=hide, money=money)
    if static:
        st.table(static_view(shown, config), **kwargs)
        return None
    for name, column in (kwargs.pop("column_config", None) or {}).items():
        config[header_for(name, headers) if header_for(name, headers) in config else name] = column
    kwargs.setdefault("width", "stretch")
    return st.dataframe(shown, hide_index=True, key=key, height=height or "auto",
                        column_config=config, **kwargs)


def show_columns(df: pd.DataFrame, columns: dict, **kwargs):
    """show_table of the given columns only, in the order given (most important first: a
    phone shows only the first few), each under the header it is mapped to."""
    return show_table(None if df is None else df[list(columns)], headers=columns, **kwargs)
