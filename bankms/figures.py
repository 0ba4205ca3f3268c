"""Plotly figures for the managers' pages: plain functions from a query's DataFrame to a figure.

Every figure has a title and axis titles with units. Money arrives in integer cents and is
divided by 100 only here, for drawing: a chart's pixels need no exact cents, while every table
and download keeps the exact amounts. An empty frame gives an empty chart that says so.
Figures are built from plotly.graph_objects directly: plotly.express took about five times as
long per figure, which the dashboard's first paint felt. They keep the app's own Plotly template
(Streamlit's, which follows its light or dark theme): naming "plotly_white" cost about 40 ms a
figure to validate and copied a 3 KB template into every chart sent to the browser.

Phones: legends sit below the plot (side legends took half of a 390 px screen), and CONFIG (for
st.plotly_chart) shows Plotly's toolbar only while the pointer is over a chart. Count axes tick
at whole numbers only (`_count_axis`): a count of 0.2 means nothing.
"""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from .analytics import ARREARS_BUCKETS, RFM_SEGMENTS, decision_time_bins
from .labels import account_kind_label
from .text import plotly_text

MONEY_AXIS = "Amount ($)"
# Below the plot and its axis title, from the left edge, in as many rows as it needs; Plotly
# grows the bottom margin to fit it.
LEGEND = dict(orientation="h", x=0, xanchor="left", y=-0.22, yanchor="top", title_text="")
_LAYOUT = dict(margin=dict(l=10, r=10, t=60, b=10), legend=LEGEND, hovermode="x unified")
# st.plotly_chart(config=CONFIG): the toolbar only on hover (it covered titles on phones), no
# Plotly logo, and no lasso or box select (a click on a bar or point opens its rows).
CONFIG = {"displayModeBar": "hover", "displaylogo": False,
          "modeBarButtonsToRemove": ["lasso2d", "select2d"]}
# Below this many, Plotly's automatic ticks fall between whole numbers (0.2, 0.4...).
_WHOLE_TICKS_BELOW = 10


def _dollars(cents: pd.Series) -> pd.Series:
    return cents.astype("int64") / 100


def _stacked(df: pd.DataFrame, x: str, y: str, by: str, order=None, kind="bar",
             hover: str = "%{y:,}", names=lambda value: value) -> go.Figure:
    """One trace per value of `by` (in `order` when given), stacked; `names` gives a trace's
    legend name from its value."""
    fig = go.Figure()
    values = list(order) if order is not None else sorted(df[by].unique())
    for value in values:
        part = df[df[by] == value]
        if part.empty:
            continue
        # meta keeps the raw value for the click-through (drill.chart_selection).
        if kind == "bar":
            fig.add_trace(go.Bar(x=part[x], y=part[y], name=plotly_text(names(value)), meta=value,
                                 hovertemplate=hover))
        else:
            fig.add_trace(go.Scatter(x=part[x], y=part[y], name=plotly_text(names(value)), mode="lines",
                                     stackgroup="one", meta=value, hovertemplate=hover))
    fig.update_layout(barmode="stack")
    return fig


def _count_axis(counts) -> dict:
    """Axis settings for a count whose largest value drawn is max(counts): ticks at whole
    numbers (one apart while the counts are small), from zero, with thousands separators."""
    largest = max((int(c) for c in counts), default=0)
    axis = dict(tickformat=",d", hoverformat=",d", rangemode="tozero")
    if largest < _WHOLE_TICKS_BELOW:
        axis.update(tick0=0, dtick=1)
    return axis


def _stacked_totals(df: pd.DataFrame, x: str, y: str) -> pd.Series:
    """The height of each stacked bar: what a count axis must reach."""
    return df.groupby(x)[y].sum() if len(df) else pd.Series(dtype="int64")


def _finish(fig: go.Figure, title: str, x_title: str, y_title: str, *, x_counts=None,
            y_counts=None) -> go.Figure:
    """Title, axis titles and the shared layout; x_counts / y_counts: the values of an axis
    that counts something (see _count_axis)."""
    fig.update_layout(title=dict(text=title, x=0, xanchor="left"), **_LAYOUT)
    # The first axes only: a second y axis (customer_growth) keeps its own title and ticks.
    fig.update_layout(
        xaxis=dict(title_text=x_title, **(_count_axis(x_counts) if x_counts is not None
                                          else {})),
        yaxis=dict(title_text=y_title, **(_count_axis(y_counts) if y_counts is not None
                                          else {})))
    return fig


def empty(title: str, message: str = "No data for these filters") -> go.Figure:
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
        return empty(title)
    data = df.assign(amount=_dollars(df["amount_cents"]))
    fig = _stacked(data, "day", "amount", "kind", hover="%{y:$,.2f}")
    return _finish(fig, title, "Day", MONEY_AXIS)


def daily_count(df: pd.DataFrame) -> go.Figure:
    title = "Transactions per day by type (count)"
    if df.empty:
        return empty(title)
    fig = _stacked(df, "day", "transactions", "kind")
    return _finish(fig, title, "Day", "Transactions (count)",
                   y_counts=_stacked_totals(df, "day", "transactions"))


def deposits_by_product(df: pd.DataFrame) -> go.Figure:
    title = "Balances by product at the end of each day ($)"
    if df.empty:
        return empty(title)
    data = df.assign(balance=_dollars(df["balance_cents"]))
    fig = _stacked(data, "day", "balance", "kind", kind="area", hover="%{y:$,.2f}",
                   names=account_kind_label)
    return _finish(fig, title, "Day", "Balance ($)")


def balance_distribution(df: pd.DataFrame) -> go.Figure:
    title = "Accounts by balance (count)"
    if df.empty or int(df["accounts"].sum()) == 0:
        return empty(title)
    fig = go.Figure(go.Bar(
        x=df["bucket"], y=df["accounts"], customdata=_dollars(df["balance_cents"]),
        hovertemplate="%{x}: %{y:,} accounts holding %{customdata:$,.2f}<extra></extra>"))
    fig.update_layout(hovermode="closest")
    return _finish(fig, title, "Balance", "Accounts (count)", y_counts=df["accounts"])


def loan_portfolio(df: pd.DataFrame) -> go.Figure:
    title = "Loans outstanding by status and arrears ($)"
    if df.empty:
        return empty(title, "No loans on the books")
    data = df.assign(outstanding=_dollars(df["outstanding_cents"]))
    fig = _stacked(data, "status", "outstanding", "arrears",
                   order=[label for _, label in ARREARS_BUCKETS], hover="%{y:$,.2f}")
    fig.update_layout(hovermode="closest")
    return _finish(fig, title, "Status", "Principal outstanding ($)")


def customer_growth(df: pd.DataFrame) -> go.Figure:
    title = "Customers (count)"
    if df.empty:
        return empty(title)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=df["day"], y=df["customers"], name="all customers",
                             mode="lines", meta="customers"))
    fig.add_trace(go.Bar(x=df["day"], y=df["new_customers"], name="new that day",
                         yaxis="y2", opacity=0.5, meta="new_customers"))
    fig.update_layout(yaxis2=dict(title="New customers (count)", overlaying="y",
                                  side="right", showgrid=False,
                                  **_count_axis(df["new_customers"])))
    return _finish(fig, title, "Day", "Customers (count)", y_counts=df["customers"])


def top_customers(df: pd.DataFrame) -> go.Figure:
    title = "Top customers by money held ($)"
    if df.empty:
        return empty(title)
    data = df.iloc[::-1]
    # Names as typed: Plotly draws <b>, <a href> and the like in tick labels and hover text.
    fig = go.Figure(go.Bar(x=_dollars(data["balance_cents"]),
                           y=[plotly_text(n) for n in data["full_name"]],
                           customdata=data["customer_id"], orientation="h",
                           hovertemplate="%{y}: %{x:$,.2f}<extra></extra>"))
    fig.update_layout(hovermode="closest")
    return _finish(fig, title, "Balance ($)", "Customer")


def dormant_accounts(df: pd.DataFrame) -> go.Figure:
    title = "Dormant accounts by kind (count)"
    if df.empty:
        return empty(title, "No dormant accounts")
    data = (df.groupby("kind", as_index=False)
            .agg(accounts=("account_number", "count"), balance_cents=("balance_cents", "sum")))
    fig = go.Figure(go.Bar(
        x=data["kind"], y=data["accounts"], customdata=_dollars(data["balance_cents"]),
        text=[plotly_text(account_kind_label(k)) for k in data["kind"]],
        hovertemplate="%{text}: %{y:,} accounts holding %{customdata:$,.2f}<extra></extra>",
        textposition="none"))
    # x keeps the code for the click-through; the axis reads it in words.
    fig.update_layout(hovermode="closest")
    fig.update_xaxes(tickvals=list(data["kind"]),
                     ticktext=[plotly_text(account_kind_label(k)) for k in data["kind"]])
    return _finish(fig, title, "Account kind", "Accounts (count)", y_counts=data["accounts"])


def rfm_segments(summary: pd.DataFrame) -> go.Figure:
    title = "Customers by RFM segment (count)"
    if summary.empty or int(summary["customers"].sum()) == 0:
        return empty(title)
    data = summary.set_index("segment").reindex(RFM_SEGMENTS).reset_index()
    fig = go.Figure(go.Bar(x=data["segment"], y=data["customers"],
                           hovertemplate="%{x}: %{y:,} customers<extra></extra>"))
    fig.update_layout(hovermode="closest")
    return _finish(fig, title, "Segment", "Customers (count)",
                   y_counts=data["customers"].fillna(0))


def refusals(df: pd.DataFrame) -> go.Figure:
    title = "Refused transactions by reason (count)"
    if df.empty:
        return empty(title, "No refused transactions")
    fig = go.Figure(go.Bar(x=[plotly_text(r) for r in df["reason"]], y=df["refusals"],
                           customdata=df["reason"], hovertemplate="%{x}: %{y:,}<extra></extra>"))
    fig.update_layout(hovermode="closest")
    return _finish(fig, title, "Reason", "Refusals (count)", y_counts=df["refusals"])


def decision_times(df: pd.DataFrame) -> go.Figure:
    title = "Time to decide a loan (hours)"
    if df.empty:
        return empty(title, "No loans decided in this period")
    # Binned here rather than by Plotly, so that a bar names the loans behind it (customdata:
    # its hours [from, to)) for the click-through.
    bins = decision_time_bins(df)
    fig = go.Figure(go.Bar(
        x=[f"{a}–{b} h" for a, b in zip(bins["from_hours"], bins["to_hours"])],
        y=bins["loans"], customdata=bins[["from_hours", "to_hours"]].to_numpy(),
        hovertemplate="%{x}: %{y:,} loans<extra></extra>"))
    fig.update_layout(hovermode="closest", bargap=0.05)
    return _finish(fig, title, "Hours from application to decision", "Loans (count)",
                   y_counts=bins["loans"])


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
