"""Plotly figures for the managers' pages: plain functions from a query's DataFrame to a figure.

Every figure has a title and axis titles with units. Money arrives in integer cents and is
divided by 100 only here, for drawing: a chart's pixels need no exact cents, while every table
and download keeps the exact amounts. An empty frame gives an empty chart that says so.
"""
from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from .analytics import ARREARS_BUCKETS, RFM_SEGMENTS

MONEY_AXIS = "Amount ($)"
_LAYOUT = dict(margin=dict(l=10, r=10, t=60, b=10), legend_title_text="",
               hovermode="x unified", template="plotly_white")


def _dollars(cents: pd.Series) -> pd.Series:
    return cents.astype("int64") / 100


def _finish(fig: go.Figure, title: str, x_title: str, y_title: str) -> go.Figure:
    fig.update_layout(title=dict(text=title, x=0, xanchor="left"), **_LAYOUT)
    fig.update_xaxes(title_text=x_title)
    fig.update_yaxes(title_text=y_title)
    return fig


def empty(title: str, message: str = "No data for these filters", **_axes) -> go.Figure:
    """A chart with its title (which carries the unit) and a message instead of data."""
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper",
                       yref="paper", font=dict(size=14))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(title=dict(text=title, x=0, xanchor="left"), **_LAYOUT)
    return fig


def daily_amount(df: pd.DataFrame) -> go.Figure:
    title = "Money moved per day by transaction type ($)"
    if df.empty:
        return empty(title, x_title="Day", y_title=MONEY_AXIS)
    data = df.assign(amount=_dollars(df["amount_cents"]))
    fig = px.bar(data, x="day", y="amount", color="kind")
    fig.update_traces(hovertemplate="%{y:$,.2f}")
    return _finish(fig, title, "Day", MONEY_AXIS)


def daily_count(df: pd.DataFrame) -> go.Figure:
    title = "Transactions per day by type (count)"
    if df.empty:
        return empty(title, x_title="Day", y_title="Transactions (count)")
    fig = px.bar(df, x="day", y="transactions", color="kind")
    return _finish(fig, title, "Day", "Transactions (count)")


def deposits_by_product(df: pd.DataFrame) -> go.Figure:
    title = "Balances by product at the end of each day ($)"
    if df.empty:
        return empty(title, x_title="Day", y_title="Balance ($)")
    data = df.assign(balance=_dollars(df["balance_cents"]))
    fig = px.area(data, x="day", y="balance", color="kind")
    fig.update_traces(hovertemplate="%{y:$,.2f}")
    return _finish(fig, title, "Day", "Balance ($)")


def balance_distribution(df: pd.DataFrame) -> go.Figure:
    title = "Accounts by balance (count)"
    if df.empty or int(df["accounts"].sum()) == 0:
        return empty(title, x_title="Balance", y_title="Accounts (count)")
    fig = px.bar(df, x="bucket", y="accounts",
                 hover_data={"balance": _dollars(df["balance_cents"]).map("${:,.2f}".format)})
    fig.update_layout(hovermode="closest")
    return _finish(fig, title, "Balance", "Accounts (count)")


def loan_portfolio(df: pd.DataFrame) -> go.Figure:
    title = "Loans outstanding by status and arrears ($)"
    if df.empty:
        return empty(title, "No loans on the books", x_title="Status", y_title=MONEY_AXIS)
    data = df.assign(outstanding=_dollars(df["outstanding_cents"]))
    order = [label for _, label in ARREARS_BUCKETS]
    fig = px.bar(data, x="status", y="outstanding", color="arrears",
                 category_orders={"arrears": order}, hover_data=["loans"])
    fig.update_layout(hovermode="closest")
    return _finish(fig, title, "Status", "Principal outstanding ($)")


def customer_growth(df: pd.DataFrame) -> go.Figure:
    title = "Customers (count)"
    if df.empty:
        return empty(title, x_title="Day", y_title="Customers (count)")
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=df["day"], y=df["customers"], name="all customers",
                             mode="lines"))
    fig.add_trace(go.Bar(x=df["day"], y=df["new_customers"], name="new that day",
                         yaxis="y2", opacity=0.5))
    fig.update_layout(yaxis2=dict(title="New customers (count)", overlaying="y",
                                  side="right", showgrid=False, rangemode="tozero"))
    return _finish(fig, title, "Day", "Customers (count)")


def top_customers(df: pd.DataFrame) -> go.Figure:
    title = "Top customers by money held ($)"
    if df.empty:
        return empty(title, x_title=MONEY_AXIS, y_title="Customer")
    data = df.assign(balance=_dollars(df["balance_cents"])).iloc[::-1]
    fig = px.bar(data, x="balance", y="full_name", orientation="h")
    fig.update_traces(hovertemplate="%{y}: %{x:$,.2f}<extra></extra>")
    fig.update_layout(hovermode="closest")
    return _finish(fig, title, "Balance ($)", "Customer")


def dormant_accounts(df: pd.DataFrame) -> go.Figure:
    title = "Dormant accounts by kind (count)"
    if df.empty:
        return empty(title, "No dormant accounts", x_title="Account kind",
                     y_title="Accounts (count)")
    data = (df.groupby("kind", as_index=False)
            .agg(accounts=("account_number", "count"), balance_cents=("balance_cents", "sum")))
    fig = px.bar(data, x="kind", y="accounts",
                 hover_data={"balance": _dollars(data["balance_cents"]).map("${:,.2f}".format)})
    fig.update_layout(hovermode="closest")
    return _finish(fig, title, "Account kind", "Accounts (count)")


def rfm_segments(summary: pd.DataFrame) -> go.Figure:
    title = "Customers by RFM segment (count)"
    if summary.empty or int(summary["customers"].sum()) == 0:
        return empty(title, x_title="Segment", y_title="Customers (count)")
    fig = px.bar(summary, x="segment", y="customers",
                 category_orders={"segment": RFM_SEGMENTS})
    fig.update_layout(hovermode="closest")
    return _finish(fig, title, "Segment", "Customers (count)")


def refusals(df: pd.DataFrame) -> go.Figure:
    title = "Refused transactions by reason (count)"
    if df.empty:
        return empty(title, "No refused transactions", x_title="Reason",
                     y_title="Refusals (count)")
    fig = px.bar(df, x="reason", y="refusals")
    fig.update_layout(hovermode="closest")
    return _finish(fig, title, "Reason", "Refusals (count)")


def decision_times(df: pd.DataFrame) -> go.Figure:
    title = "Time to decide a loan (hours)"
    if df.empty:
        return empty(title, "No loans decided in this period", x_title="Hours",
                     y_title="Loans (count)")
    fig = px.histogram(df, x="hours_to_decide", nbins=20)
    fig.update_layout(hovermode="closest")
    return _finish(fig, title, "Hours from application to decision", "Loans (count)")


DASHBOARD_CHARTS = {
    # figure name: (query name, function)
    "daily_amount": ("daily_volume", daily_amount),
    "daily_count": ("daily_volume", daily_count),
    "deposits_by_product": ("deposits_by_product", deposits_by_product),
    "balance_distribution": ("balance_distribution", balance_distribution),
    "loan_portfolio": ("loan_portfolio", loan_portfolio),
    "customer_growth": ("customer_growth", customer_growth),
    "top_customers": ("top_customers", top_customers),
    "dormant_accounts": ("dormant_accounts", dormant_accounts),
}
