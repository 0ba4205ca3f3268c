"""Click-through from the managers' figures to the rows behind them (issue 15).

Every key figure, chart bar or point and table row of the dashboard and the customer analytics
has a drill-down here: `drill(src, name, f, **selection) -> DataFrame`, listed in `DRILLS` with
what it needs picked. The rows are postings, transactions, accounts, customers or loans, and
they add up to the figure shown: a money figure is the sum of the rows' `value` column
(`Drill.value`, in cents), a count is the number of rows. Where it can, a drill reuses the very
query or subquery its figure is built from (`analytics`), so the two cannot disagree; the
tests check every pair on a hand-built bank with worked answers.

Permission checks live in `bankms.reporting.reports` (the same as the figure's); nothing here checks who
asks. DuckDB only: the SQLite copy exists for the benchmark's comparison of the figures.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from typing import Callable

import pandas as pd

from . import analytics as an
from .analytics import Filters, Source, midnight, midnight_after
from ..domain.chart import INTERNAL
from ..domain.dates import as_date
from ..domain.errors import InvalidInput
from ..domain.labels import label_sql


@dataclass(frozen=True)
class Drill:
    """One drill-down: its title, the selection it needs (names), the column of cents whose
    sum is the figure (None: the figure is the number of rows) and the function."""

    title: str
    needs: tuple[str, ...]
    value: str | None
    fn: Callable[..., pd.DataFrame]
    # What the rows' total is on the page: the figure itself, or (for a share in percent)
    # the amount the share is taken of.
    total_is: str = "the figure shown"


# -- selections ----------------------------------------------------------------------------------
def _day(value, f: Filters) -> dt.date:
    day = as_date(value, "day")
    if not f.start <= day <= f.end:
        raise InvalidInput(f"{day} is outside the period {f.start} to {f.end}.")
    return day


def _choice(value, allowed, what: str) -> str:
    text = str(value)
    if text not in allowed:
        raise InvalidInput(f"There is no {what} '{text}'.")
    return text


def _id(value, what: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"A {what} is a whole number.") from None
    if isinstance(value, float) or number <= 0:
        raise InvalidInput(f"A {what} is a whole number.")
    return number


# -- shared row sources --------------------------------------------------------------------------
def _accounts_as_of(src: Source, f: Filters, cut: dt.datetime, where: str = "",
                    params=()) -> pd.DataFrame:
    """Customer accounts (of the filter's kind) with their balance just before `cut`, read
    with the same subquery as the dashboard's balances (analytics._balances_sql)."""
    bal_sql, bal_params = an._balances_sql([cut], f)
    df = src.df(
        "SELECT b.account_number, b.customer_id, c.full_name, b.kind, b.status, b.opened_at, "
        f"b.balance_0_cents AS balance_cents FROM ({bal_sql}) b "
        f"JOIN customers c ON c.id = b.customer_id WHERE true{where} "
        "ORDER BY balance_cents DESC, b.account_number", [*bal_params, *params])
    df["balance_cents"] = df["balance_cents"].astype("int64")
    return an._to_day(df, "opened_at")


def _gl_postings(src: Source, codes: list[str], cut: dt.datetime, sign: int) -> pd.DataFrame:
    df = src.df(an.gl_postings_sql(src.d), [[INTERNAL[c] for c in codes], cut])
    df["amount_cents"] = sign * df["amount_cents"].astype("int64")
    return an._to_day(df, "posted_at")


def _postings(src: Source, where: str, params) -> pd.DataFrame:
    """Postings on customer accounts with their transaction's kind, label and memo."""
    df = src.df(
        "SELECT p.id AS posting_id, p.posted_at, p.transaction_id, t.kind, "
        f"{label_sql('t.kind', 't.channel', 'p.amount_cents')} AS label, t.memo, "
        "a.account_number, a.customer_id, p.amount_cents FROM postings p "
        "JOIN accounts a ON a.id = p.account_id JOIN transactions t ON t.id = p.transaction_id "
        f"WHERE {where} ORDER BY p.posted_at, p.id", params)
    df["amount_cents"] = df["amount_cents"].astype("int64")
    return an._to_day(df, "posted_at")


def _customer_sql(f: Filters) -> tuple[str, list]:
    kind_sql, kind_params = an._kind_sql(f)
    return "a.customer_id IS NOT NULL" + kind_sql, kind_params


# -- key figures ---------------------------------------------------------------------------------
def total_deposits(src, f):
    """Customer accounts holding money as of the day (overdrawn ones are not deposits)."""
    return _accounts_as_of(src, f, midnight_after(f.as_of), " AND b.balance_0_cents > 0")


def loans_outstanding(src, f):
    """The postings of loans receivable (GL1200) up to the day, as principal owed."""
    return _gl_postings(src, ["loans_receivable"], midnight_after(f.as_of), -1)


def provision_booked(src, f):
    """The postings of the loan-loss provision (GL1290) up to the day."""
    return _gl_postings(src, ["loan_loss_provision"], midnight_after(f.as_of), 1)


def net_loans(src, f):
    """Loans receivable less the provision: the postings of GL1200 and GL1290, as owed."""
    return _gl_postings(src, ["loans_receivable", "loan_loss_provision"],
                        midnight_after(f.as_of), -1)


def _late_loans(days_min: int):
    def fn(src, f):
        book = an.at_risk_loans(an.loan_book(src, f.as_of), days_min)
        return book.drop(columns=["status"]).reset_index(drop=True)
    fn.__doc__ = f"Active loans {days_min} or more days past due as of the day."
    return fn


def active_customers(src, f):
    """Customers who made a transaction of their own in the period, with how many."""
    customer, params = _customer_sql(f)
    start, end = midnight(f.start), midnight_after(f.end)
    return src.df(
        "SELECT c.id AS customer_id, c.full_name, count(DISTINCT p.transaction_id) AS "
        "transactions FROM postings p JOIN accounts a ON a.id = p.account_id "
        "JOIN customers c ON c.id = a.customer_id "
        f"WHERE p.posted_at >= ? AND p.posted_at < ? AND {customer} "
        f"AND p.transaction_id NOT IN ({an._BANK_MADE_TX}) GROUP BY 1, 2 ORDER BY 1",
        [start, end, *params, start, end])


def new_customers(src, f):
    """Customers who joined in the period."""
    return an._to_day(src.df(
        "SELECT id AS customer_id, full_name, status, created_at FROM customers "
        "WHERE created_at >= ? AND created_at < ? ORDER BY created_at, id",
        [midnight(f.start), midnight_after(f.end)]), "created_at")


def new_accounts(src, f):
    """Customer accounts (of the kind) opened in the period."""
    customer, params = _customer_sql(f)
    return an._to_day(src.df(
        "SELECT a.account_number, a.customer_id, a.kind, a.status, a.opened_at FROM accounts a "
        f"WHERE {customer} AND a.opened_at >= ? AND a.opened_at < ? ORDER BY a.opened_at, a.id",
        [*params, midnight(f.start), midnight_after(f.end)]), "opened_at")


def net_flow(src, f):
    """Every posting on customer accounts (of the kind) in the period."""
    customer, params = _customer_sql(f)
    return _postings(src, f"{customer} AND p.posted_at >= ? AND p.posted_at < ?",
                     [*params, midnight(f.start), midnight_after(f.end)])


# -- dashboard charts and tables -----------------------------------------------------------------
def daily_volume(src, f, day, kind):
    """The transactions of one bar: a day and a transaction type (both charts of volume),
    named as the charts' legends name it (labels.transaction_label, 'Card payment') or by
    its kind code ('withdrawal': every channel)."""
    day = _day(day, f)
    where, params = an.daily_volume_where(f, midnight(day), midnight_after(day))
    label = label_sql("t.kind", "t.channel")
    df = src.df("SELECT t.id AS transaction_id, t.posted_at, t.kind, t.channel, "
                f"{label} AS label, t.amount_cents, t.memo, "
                f"t.source_account, t.target_account FROM transactions t WHERE {where} "
                f"AND (t.kind = ? OR {label} = ?) ORDER BY t.posted_at, t.id",
                [*params, str(kind), str(kind)])
    df["amount_cents"] = df["amount_cents"].astype("int64")
    return an._to_day(df, "posted_at")


def deposits_by_product(src, f, day, kind):
    """The accounts of one kind with their balance at the end of one day."""
    day = _day(day, f)
    kind = _choice(kind, an.ACCOUNT_KINDS[1:], "account kind")
    if f.kind not in ("all", kind):
        raise InvalidInput(f"The chart shows {f.kind} accounts only.")
    return _accounts_as_of(src, replace(f, kind=kind), midnight_after(day))


def balance_distribution(src, f, bucket):
    """The open accounts in one balance bucket as of the day."""
    labels = [label for _, label in an.BALANCE_BUCKETS]
    index = labels.index(_choice(bucket, labels, "balance bucket"))
    cut = midnight_after(f.as_of)
    sql, params = an.balance_buckets_sql(f, cut)
    df = src.df(f"SELECT b.account_number, b.customer_id, b.kind, b.balance_0_cents AS "
                f"balance_cents FROM ({sql}) b WHERE b.bucket_index = ? "
                "ORDER BY balance_cents DESC, b.account_number", [*params, index])
    df["balance_cents"] = df["balance_cents"].astype("int64")
    return df


def loan_portfolio(src, f, status, arrears):
    """The loans of one status and arrears bucket as of the day."""
    status = _choice(status, an.LOAN_STATUS_ORDER, "loan status")
    arrears = _choice(arrears, [label for _, label in an.ARREARS_BUCKETS], "arrears bucket")
    book = an.loan_book(src, f.as_of)
    book = book[(book["status"] == status) & (an.arrears_bucket(book["days_past_due"])
                                              == arrears)]
    return book.reset_index(drop=True)


def customer_growth(src, f, day):
    """The customers who joined on one day."""
    day = _day(day, f)
    return new_customers(src, Filters(start=day, end=day))


def customers_by_day(src, f, day):
    """Every customer who had joined by the end of one day (a point of the customers line)."""
    day = _day(day, f)
    return an._to_day(src.df(
        "SELECT id AS customer_id, full_name, status, created_at FROM customers "
        "WHERE created_at < ? ORDER BY created_at, id", [midnight_after(day)]), "created_at")


def customer_accounts(src, f, customer_id):
    """One customer's accounts (of the kind) with their balance as of the day: a bar or row
    of the top customers."""
    return _accounts_as_of(src, f, midnight_after(f.as_of), " AND b.customer_id = ?",
                           [_id(customer_id, "customer number")])


def dormant_accounts(src, f, kind):
    """The dormant accounts of one kind (a bar of the dormant accounts chart)."""
    kind = _choice(kind, an.ACCOUNT_KINDS[1:], "account kind")
    df = an.dormant_accounts(src, f)
    return df[df["kind"] == kind].reset_index(drop=True)


def account_postings(src, f, account_number):
    """Every posting of one customer account up to the day: they sum to its balance then
    (a row of the dormant accounts table)."""
    number = str(account_number).strip()
    if src.one("SELECT 1 FROM accounts WHERE account_number = ? AND customer_id IS NOT NULL",
               [number]) is None:
        raise InvalidInput(f"There is no customer account {number}.")
    return _postings(src, "a.account_number = ? AND p.posted_at < ?",
                     [number, midnight_after(f.as_of)])


# -- customer analytics --------------------------------------------------------------------------
def rfm_segment(src, f, segment):
    """The members of one RFM segment (a bar or a row of the segments)."""
    segment = _choice(segment, an.RFM_SEGMENTS, "segment")
    members = an.rfm(src, f)
    return members[members["segment"] == segment].reset_index(drop=True)


def _activity(src, customer_id, since, cut):
    cid = _id(customer_id, "customer number")
    df = src.df(f"SELECT * FROM ({an._activity_sql(src)}) act WHERE customer_id = ? "
                "ORDER BY posted_at, id", [since, cut, since, cut, cid])
    df = df.rename(columns={"id": "transaction_id"})
    df["amount_cents"] = df["amount_cents"].astype("int64")
    return an._to_day(df, "posted_at")


def customer_activity(src, f, customer_id):
    """One customer's own transactions in the RFM period: their number is the frequency and
    their sum the monetary value (a row of a segment's members)."""
    return _activity(src, customer_id, *an.rfm_window(f))


def falling_customer(src, f, customer_id):
    """One customer's own transactions in the two windows compared (a row of falling
    activity): as many as before_count plus recent_count."""
    cut = midnight_after(f.as_of)
    return _activity(src, customer_id, cut - 2 * dt.timedelta(days=an.FALLING_WINDOW_DAYS),
                     cut)


def regular_income(src, f, customer_id):
    """The credits from others in the months that made a customer's regular income (a row of
    the regular-income offer): they sum to its income."""
    cid = _id(customer_id, "customer number")
    sql, params = an.income_sql(src, f)
    months, month_params = an.income_months_sql(src, f)
    df = src.df(f"SELECT i.* FROM ({sql}) i WHERE i.customer_id = ? AND i.month IN "
                f"(SELECT month FROM ({months}) m WHERE m.customer_id = ?) "
                "ORDER BY i.posted_at, i.transaction_id",
                [*params, cid, *month_params, cid])
    df["amount_cents"] = df["amount_cents"].astype("int64")
    return an._to_day(df, "posted_at", "month")


def high_balance(src, f, customer_id):
    """A customer's checking accounts and their balance as of the day (a row of the
    high-balance offer): they sum to its balance."""
    return customer_accounts(src, replace(f, kind="checking"), customer_id)


def decision_times(src, f, from_hours, to_hours):
    """The loans decided in the period that took from `from_hours` to less than `to_hours`
    (a bar of the decision times)."""
    try:
        lo, hi = float(from_hours), float(to_hours)
    except (TypeError, ValueError):
        raise InvalidInput("Hours are numbers.") from None
    if not 0 <= lo < hi:
        raise InvalidInput("Pick a bar of the decision times.")
    df = an.loan_decision_times(src, f)
    hours = df["hours_to_decide"]
    return df[(hours >= lo) & (hours < hi)].reset_index(drop=True)


def _refusals(src, f, reason=None):
    reason_sql = f"coalesce({src.d.json_text('after', 'reason')}, 'unknown')"
    where, params = "", []
    if reason is not None:
        where, params = f" AND {reason_sql} = ?", [str(reason)]
    return src.df(
        f"SELECT id AS audit_id, ts, actor, action, entity_id, {reason_sql} AS reason "
        "FROM audit_log WHERE outcome = 'refused' AND entity = 'transaction' AND ts >= ? "
        f"AND ts < ?{where} ORDER BY ts, id", [midnight(f.start), midnight_after(f.end), *params])


def refusals(src, f, reason):
    """The refused transactions of one reason in the period (audit rows)."""
    return _refusals(src, f, reason)


def all_refusals(src, f):
    """Every refused transaction in the period (the figure of refused transactions)."""
    return _refusals(src, f)


def loan_decisions(src, f):
    """Every loan decided in the period with its hours to decide (the median shown is theirs)."""
    return an.loan_decision_times(src, f)


DRILLS: dict[str, Drill] = {
    # Key figures (no selection).
    "total_deposits": Drill("Accounts holding the deposits", (), "balance_cents",
                            total_deposits),
    "loans_outstanding": Drill("Postings of loans receivable (GL1200)", (), "amount_cents",
                               loans_outstanding),
    "portfolio_at_risk": Drill("Loans more than 30 days past due", (), "outstanding_cents",
                               _late_loans(an.PAR_DAYS_MIN),
                               "the principal at risk; the share shown is it over all "
                               "active loans' principal"),
    "non_performing": Drill("Loans more than 90 days past due", (), "outstanding_cents",
                            _late_loans(an.NPL_DAYS_MIN),
                            "the non-performing principal; the shares shown are it over all "
                            "active loans' principal, and the provision over it"),
    "provision_booked": Drill("Postings of the loan-loss provision (GL1290)", (),
                              "amount_cents", provision_booked),
    "net_loans": Drill("Postings of GL1200 and GL1290", (), "amount_cents", net_loans),
    "active_customers": Drill("Customers with transactions of their own", (), None,
                              active_customers),
    "new_customers": Drill("New customers", (), None, new_customers),
    "new_accounts": Drill("New accounts", (), None, new_accounts),
    "net_flow": Drill("Postings on customer accounts", (), "amount_cents", net_flow),
    # Charts and tables.
    "daily_volume": Drill("Transactions of the day and kind", ("day", "kind"), "amount_cents",
                          daily_volume),
    # The same rows behind a bar of the count chart, whose figure is their number.
    "daily_count": Drill("Transactions of the day and kind", ("day", "kind"), None,
                         daily_volume),
    "deposits_by_product": Drill("Accounts and their balance that day", ("day", "kind"),
                                 "balance_cents", deposits_by_product),
    "balance_distribution": Drill("Accounts in the balance bucket", ("bucket",), None,
                                  balance_distribution),
    "loan_portfolio": Drill("Loans of the status and arrears bucket", ("status", "arrears"),
                            "outstanding_cents", loan_portfolio),
    "customer_growth": Drill("Customers who joined that day", ("day",), None, customer_growth),
    "customers_by_day": Drill("Customers who had joined by that day", ("day",), None,
                              customers_by_day),
    "customer_accounts": Drill("The customer's accounts", ("customer_id",), "balance_cents",
                               customer_accounts),
    "dormant_accounts": Drill("Dormant accounts of the kind", ("kind",), None,
                              dormant_accounts),
    "account_postings": Drill("The account's postings", ("account_number",), "amount_cents",
                              account_postings),
    "rfm_segment": Drill("Members of the segment", ("segment",), None, rfm_segment),
    "customer_activity": Drill("The customer's own transactions in the year", ("customer_id",),
                               "amount_cents", customer_activity),
    "falling_customer": Drill("The customer's own transactions in both windows",
                              ("customer_id",), None, falling_customer),
    "refusals": Drill("Refused transactions of the reason", ("reason",), None, refusals),
    "all_refusals": Drill("Refused transactions", (), None, all_refusals),
    "loan_decisions": Drill("Loans decided in the period", (), None, loan_decisions,
                            "the loans decided; the median shown is that of their hours"),
    "decision_times": Drill("Loans decided in that time", ("from_hours", "to_hours"), None,
                            decision_times),
    "regular_income": Drill("Credits from others in the months of regular income",
                            ("customer_id",), "amount_cents", regular_income),
    "high_balance": Drill("The customer's checking accounts", ("customer_id",),
                          "balance_cents", high_balance),
}

# The dashboard's key figures (analytics.key_figures) and the drill behind each. Coverage is
# the provision over the non-performing loans: it opens those loans with their provision.
KEY_FIGURE_DRILLS = {
    "Total deposits": "total_deposits",
    "Loans outstanding": "loans_outstanding",
    "Portfolio at risk > 30 days": "portfolio_at_risk",
    "Non-performing loans": "non_performing",
    "Provision booked": "provision_booked",
    "Provision coverage of NPL": "non_performing",
    "Net loans": "net_loans",
    "Active customers": "active_customers",
    "New customers": "new_customers",
    "New accounts": "new_accounts",
    "Net flow": "net_flow",
}


def drill(src: Source, name: str, f: Filters, selection: dict) -> pd.DataFrame:
    """The rows behind figure `name` (a key of DRILLS) for the filters and the picked
    `selection` (exactly the names in its `needs`). Raises InvalidInput for an unknown figure,
    a missing or unknown selection, or a value outside the figure (a day outside the period,
    an unknown bucket or segment)."""
    spec = DRILLS.get(name)
    if spec is None:
        raise InvalidInput(f"There is no figure called '{name}' to open.")
    if not isinstance(f, Filters):
        raise InvalidInput("Give the figure's filters as a bankms.reporting.analytics.Filters.")
    picked = set(selection)
    if picked != set(spec.needs):
        wanted = ", ".join(spec.needs) or "nothing"
        raise InvalidInput(f"Opening '{name}' needs {wanted} to be picked.")
    if any(v is None or (isinstance(v, str) and not v.strip()) for v in selection.values()):
        raise InvalidInput(f"Pick {', '.join(spec.needs)} to open '{name}'.")
    return spec.fn(src, f, **selection)


def total(name: str, rows: pd.DataFrame) -> int:
    """What the rows add up to: the sum of the drill's value column in cents, or the number
    of rows for a count."""
    value = DRILLS[name].value
    return len(rows) if value is None else int(rows[value].sum()) if len(rows) else 0


# -- from a click to a drill ---------------------------------------------------------------------
# Charts (bankms.reporting.figures) and the drill behind their bars and points. Stacked charts carry the
# stacked value (a transaction or account kind, an arrears bucket) as each series' id (the
# trace meta here); charts of customers, reasons or account kinds carry the raw id, text or code
# behind a label in words as the point's `customdata` or `x` (figures.point).
CHART_DRILLS = {
    "daily_amount": "daily_volume",
    "daily_count": "daily_count",
    "deposits_by_product": "deposits_by_product",
    "balance_distribution": "balance_distribution",
    "loan_portfolio": "loan_portfolio",
    "customer_growth": "customer_growth",
    "top_customers": "customer_accounts",
    "dormant_accounts": "dormant_accounts",
    "rfm_segments": "rfm_segment",
    "refusals": "refusals",
    "decision_times": "decision_times",
}
# Tables on the pages: (drill, the column of the chosen row that is its selection).
TABLE_DRILLS = {
    "top_customers": ("customer_accounts", "customer_id"),
    "dormant_accounts": ("account_postings", "account_number"),
    "rfm_summary": ("rfm_segment", "segment"),
    "rfm_members": ("customer_activity", "customer_id"),
    "falling_activity": ("falling_customer", "customer_id"),
    "refusals": ("refusals", "reason"),
    "cross_sell": (None, "customer_id"),  # the drill depends on the row's offer
}
CROSS_SELL_DRILLS = {"Savings account for a regular income": "regular_income",
                     "Savings account for a high balance": "high_balance"}


def _custom(point: dict):
    value = point.get("customdata")
    return value[0] if isinstance(value, (list, tuple)) else value


def chart_selection(chart: str, point: dict, trace_meta=None) -> tuple[str, dict]:
    """The drill and selection for a point picked on a chart: `point` as figures.point gives
    it (x, curve_number, customdata), `trace_meta` the id of the series it belongs to. Raises
    InvalidInput for an unknown chart or a point that does not name a bar."""
    name = CHART_DRILLS.get(chart)
    if name is None:
        raise InvalidInput(f"The chart '{chart}' has nothing to open.")
    if chart == "customer_growth" and trace_meta == "customers":
        name = "customers_by_day"  # the running total, not the day's bar
    x = point.get("x")
    day = None if x is None else str(x)[:10]
    selection = {
        "daily_volume": lambda: {"day": day, "kind": trace_meta},
        "daily_count": lambda: {"day": day, "kind": trace_meta},
        "deposits_by_product": lambda: {"day": day, "kind": trace_meta},
        "balance_distribution": lambda: {"bucket": x},
        "loan_portfolio": lambda: {"status": x, "arrears": trace_meta},
        "customer_growth": lambda: {"day": day},
        "customers_by_day": lambda: {"day": day},
        "customer_accounts": lambda: {"customer_id": _custom(point)},
        "dormant_accounts": lambda: {"kind": x},
        "rfm_segment": lambda: {"segment": x},
        "refusals": lambda: {"reason": _custom(point)},
        "decision_times": lambda: dict(zip(("from_hours", "to_hours"),
                                           point.get("customdata") or (None, None))),
    }[name]()
    if any(v is None for v in selection.values()):
        raise InvalidInput("Pick a bar or a point of the chart.")
    return name, selection


def row_selection(table: str, row: dict) -> tuple[str, dict]:
    """The drill and selection for a row picked in a table (TABLE_DRILLS); `row` maps the
    table's columns to the row's values."""
    if table not in TABLE_DRILLS:
        raise InvalidInput(f"The table '{table}' has nothing to open.")
    name, column = TABLE_DRILLS[table]
    if table == "cross_sell":
        name = CROSS_SELL_DRILLS.get(row.get("offer"))
        if name is None:
            raise InvalidInput("Pick a row of the table.")
    value = row.get(column)
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        raise InvalidInput("Pick a row of the table.")
    return name, {column: value.item() if hasattr(value, "item") else value}
