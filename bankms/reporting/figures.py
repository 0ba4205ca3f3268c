"""Charts for the managers' pages: plain functions from a query's DataFrame to an Apache ECharts
option (a plain dict, drawn by st.echarts_chart).

ECharts rather than Plotly (issue 13, "Fast"): Plotly's 4.7 MB script was parsed and started in
every new tab, and was most of the dashboard's time to drawn. In one run on this machine (new
tabs in one Chromium context, after a warm-up round, load 6-10), a page of two stacked charts
took 3.81 s with Plotly, 2.98 s with Vega-Lite and 2.76 s with ECharts (a page of one line of
text 1.40 s); eight charts 5.30 s, 3.29 s and 2.19 s.

Every chart has a title and axis names with units. Money arrives in integer cents and is
divided by 100 only here, for drawing: a chart's pixels need no exact cents, while every table
and download keeps the exact amounts. An empty frame gives an empty chart that says so.
Streamlit's "streamlit" theme gives the colours and fonts and follows its light or dark theme.
ECharts draws labels, legend names and titles as text (no markup; rich text only where an
option sets `rich`, which none here does), and its default tooltips escape HTML; `chart_text`
still keeps a name to one line. Charts are drawn as SVG so that their text is in the page (for
screen readers and the browser tests).

Phones: legends sit below the plot in one scrolling row (side legends took half of a 390 px
screen), and no chart has a toolbox. No entry animation: bars growing for a second cost the
browser frames on a busy machine and moved under a click. Count axes tick at whole numbers
only (minInterval 1): a count of 0.2 means nothing.

Click-through: every bar or point can be picked (selectedMode); `point(spec, series, index)`
gives what bankms.reporting.drill.chart_selection needs of a picked item (its x, series and customdata),
read from the option itself: a series' `id` is the raw value it stands for (a transaction kind
or an arrears bucket), and a data item's `drill` (where present) the raw x and customdata behind
a label drawn in words.
"""
from __future__ import annotations

import math

import pandas as pd

from .analytics import ARREARS_BUCKETS, RFM_SEGMENTS, decision_time_bins
from ..domain.labels import account_kind_label
from ..domain.text import chart_text

MONEY_AXIS = "Amount ($)"
# The widest a customer's name is drawn on an axis (ending in "..." past it); the tooltip shows
# it whole. A 100-character name drawn whole took half the plot at 1366 px and all of it on a
# 390 px phone.
NAME_LABEL_WIDTH_PX = 120
# Below the plot and its axis name, from the left edge, in one row that pages when too long.
LEGEND = {"type": "scroll", "orient": "horizontal", "bottom": 0, "left": 0}
# Room for the title and the y axis name above the plot, and for the legend below it.
_GRID = {"left": 8, "right": 16, "top": 64, "bottom": 56, "containLabel": True}
_GRID_NO_LEGEND = {**_GRID, "bottom": 28}
# st.echarts_chart(renderer=RENDERER): text in the page, as Plotly's was.
RENDERER = "svg"
# Streamlit's tooltip value formats (see st.echarts_chart's tooltip note).
_MONEY_FORMAT = "dollar"
_COUNT_FORMAT = "%,d"


def _dollars(cents: pd.Series) -> list:
    return [int(c) / 100 for c in cents]


def _values(series) -> list:
    """Plain JSON numbers; missing values as null (ECharts leaves a gap)."""
    out = []
    for v in series:
        if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
            out.append(None)
        else:
            out.append(v.item() if hasattr(v, "item") else v)
    return out


def _categories(values) -> list[str]:
    """Category axis values as text: days as YYYY-MM-DD."""
    out = []
    for v in values:
        if isinstance(v, pd.Timestamp) or hasattr(v, "strftime"):
            out.append(f"{v:%Y-%m-%d}")
        else:
            out.append(chart_text(v))
    return out


def _value_axis(name: str, *, counts=False, **more) -> dict:
    axis = {"type": "value", "name": name, "nameLocation": "end",
            "nameTextStyle": {"align": "left"}, **more}
    if counts:
        # Ticks at whole numbers, from zero; ECharts writes thousands separators.
        axis.update(minInterval=1, min=0)
    return axis


def _category_axis(name: str, data: list, **more) -> dict:
    return {"type": "category", "name": name, "nameLocation": "middle", "nameGap": 28,
            "data": data, **more}


def _option(title: str, x_axis, y_axis, series: list, *, tooltip="item",
            value_format=None, legend=True) -> dict:
    tip = {"trigger": tooltip}
    if value_format:
        tip["valueFormatter"] = value_format
    if tooltip == "axis":
        tip["axisPointer"] = {"type": "shadow"}
    option = {"title": {"text": title, "left": 0}, "animation": False,
              "grid": _GRID if legend else _GRID_NO_LEGEND,
              "tooltip": tip, "xAxis": x_axis, "yAxis": y_axis, "series": series}
    if legend:
        option["legend"] = dict(LEGEND)
    return option


def _stacked(df: pd.DataFrame, x: str, y: str, by: str, order=None, kind="bar",
             names=lambda value: value) -> tuple[list, list]:
    """(categories of x, one series per value of `by` (in `order` when given), stacked);
    `names` gives a series' legend name from its value, and its id keeps the value."""
    days = sorted(df[x].unique())
    wide = df.pivot_table(index=x, columns=by, values=y, aggfunc="sum").reindex(days)
    values = list(order) if order is not None else sorted(df[by].unique())
    series = []
    for value in values:
        if value not in wide.columns:
            continue
        item = {"type": "bar" if kind == "bar" else "line", "id": str(value),
                "name": chart_text(names(value)), "stack": "total",
                "data": _values(wide[value].astype(object).where(wide[value].notna(), None)),
                "selectedMode": "single"}
        if kind != "bar":
            item.update(areaStyle={}, symbol="none" if len(days) > 60 else "circle")
        series.append(item)
    return _categories(days), series


def empty(title: str, message: str = "No data for these filters") -> dict:
    """A chart with its title (which carries the unit) and a message instead of data."""
    return {"title": [{"text": title, "left": 0},
                      {"text": message, "left": "center", "top": "middle",
                       "textStyle": {"fontSize": 14, "fontWeight": "normal"}}],
            "xAxis": {"show": False}, "yAxis": {"show": False}, "series": []}


def point(spec: dict, series_index: int, data_index: int) -> tuple[dict, str | None]:
    """What drill.chart_selection needs of a picked item: ({"x", "customdata",
    "curve_number"}, the series' id) from the chart's option and the selection's indices."""
    series = spec["series"][series_index]
    categories = next((a.get("data") for a in _axes(spec) if a.get("type") == "category"), [])
    item = series["data"][data_index]
    found = {"x": categories[data_index] if data_index < len(categories) else None,
             "curve_number": series_index}
    if isinstance(item, dict) and "drill" in item:
        found.update(item["drill"])
    return found, series.get("id")


def _axes(spec: dict) -> list:
    axes = []
    for key in ("xAxis", "yAxis"):
        value = spec.get(key) or []
        axes.extend(value if isinstance(value, list) else [value])
    return axes


def daily_amount(df: pd.DataFrame) -> dict:
    title = "Money moved per day by transaction type ($)"
    if df.empty:
        return empty(title)
    data = df.assign(amount=_dollars(df["amount_cents"]))
    days, series = _stacked(data, "day", "amount", "kind")
    return _option(title, _category_axis("Day", days), _value_axis(MONEY_AXIS), series,
                   tooltip="axis", value_format=_MONEY_FORMAT)


def daily_count(df: pd.DataFrame) -> dict:
    title = "Transactions per day by type (count)"
    if df.empty:
        return empty(title)
    days, series = _stacked(df, "day", "transactions", "kind")
    return _option(title, _category_axis("Day", days),
                   _value_axis("Transactions (count)", counts=True), series, tooltip="axis",
                   value_format=_COUNT_FORMAT)


def deposits_by_product(df: pd.DataFrame) -> dict:
    title = "Balances by product at the end of each day ($)"
    if df.empty:
        return empty(title)
    data = df.assign(balance=_dollars(df["balance_cents"]))
    days, series = _stacked(data, "day", "balance", "kind", kind="area",
                            names=account_kind_label)
    return _option(title, _category_axis("Day", days, boundaryGap=False),
                   _value_axis("Balance ($)"), series, tooltip="axis",
                   value_format=_MONEY_FORMAT)


def _bars(values, *, drill=None) -> list:
    """Bar data; `drill` (one dict per bar) keeps what a label in words stands for."""
    if drill is None:
        return _values(values)
    return [{"value": v, "drill": d} for v, d in zip(_values(values), drill)]


def _count_bars(title: str, x_name: str, categories: list, y_name: str, counts, *,
                series_name: str, drill=None, **series_more) -> dict:
    """One series of bars counting something per category, on a whole-number axis; `drill`
    as for _bars."""
    series = [{"type": "bar", "id": series_name.lower(), "name": series_name,
               "data": _bars(counts, drill=drill), "selectedMode": "single", **series_more}]
    return _option(title, _category_axis(x_name, categories),
                   _value_axis(y_name, counts=True), series, value_format=_COUNT_FORMAT,
                   legend=False)


def balance_distribution(df: pd.DataFrame) -> dict:
    title = "Accounts by balance (count)"
    if df.empty or int(df["accounts"].sum()) == 0:
        return empty(title)
    return _count_bars(title, "Balance", _categories(df["bucket"]), "Accounts (count)",
                       df["accounts"], series_name="Accounts")


def loan_portfolio(df: pd.DataFrame) -> dict:
    title = "Loans outstanding by status and arrears ($)"
    if df.empty:
        return empty(title, "No loans on the books")
    data = df.assign(outstanding=_dollars(df["outstanding_cents"]))
    statuses = list(dict.fromkeys(data["status"]))
    wide = data.pivot_table(index="status", columns="arrears", values="outstanding",
                            aggfunc="sum").reindex(statuses)
    series = [{"type": "bar", "id": label, "name": chart_text(label), "stack": "total",
               "data": _values(wide[label].astype(object).where(wide[label].notna(), None)),
               "selectedMode": "single"}
              for _, label in ARREARS_BUCKETS if label in wide.columns]
    return _option(title, _category_axis("Status", _categories(statuses)),
                   _value_axis("Principal outstanding ($)"), series,
                   value_format=_MONEY_FORMAT)


def customer_growth(df: pd.DataFrame) -> dict:
    title = "Customers (count)"
    if df.empty:
        return empty(title)
    days = _categories(df["day"])
    series = [
        {"type": "line", "id": "customers", "name": "all customers",
         "data": _values(df["customers"]), "selectedMode": "single",
         "symbol": "none" if len(days) > 60 else "circle"},
        {"type": "bar", "id": "new_customers", "name": "new that day", "yAxisIndex": 1,
         "data": _values(df["new_customers"]), "itemStyle": {"opacity": 0.5},
         "selectedMode": "single"},
    ]
    # The second axis keeps its own name and ticks, and no grid of its own.
    y_axes = [_value_axis("Customers (count)", counts=True),
              _value_axis("New customers (count)", counts=True, splitLine={"show": False},
                          nameTextStyle={"align": "right"})]
    return _option(title, _category_axis("Day", days), y_axes, series, tooltip="axis",
                   value_format=_COUNT_FORMAT)


def top_customers(df: pd.DataFrame) -> dict:
    title = "Top customers by money held ($)"
    if df.empty:
        return empty(title)
    data = df.iloc[::-1]
    # Names as typed, on one line each (chart_text); the customer id for the click-through.
    # The tooltip follows the row under the pointer, as a short bar is hard to hit.
    series = [{"type": "bar", "id": "balance", "name": "Balance",
               "data": _bars(_dollars(data["balance_cents"]),
                             drill=[{"customdata": int(c)} for c in data["customer_id"]]),
               "selectedMode": "single"}]
    # The last amount ends at the right edge rather than centred on it: centred, a phone cut
    # "100,000" to "100,00".
    return _option(title, _value_axis("Balance ($)", nameLocation="middle", nameGap=28,
                                      nameTextStyle={}, axisLabel={"alignMaxLabel": "right"}),
                   {"type": "category", "name": "Customer", "nameLocation": "end",
                    "nameTextStyle": {"align": "left"},
                    "axisLabel": {"width": NAME_LABEL_WIDTH_PX, "overflow": "truncate"},
                    "data": [chart_text(n) for n in data["full_name"]]},
                   series, tooltip="axis", value_format=_MONEY_FORMAT, legend=False)


def dormant_accounts(df: pd.DataFrame) -> dict:
    title = "Dormant accounts by kind (count)"
    if df.empty:
        return empty(title, "No dormant accounts")
    data = (df.groupby("kind", as_index=False)
            .agg(accounts=("account_number", "count"), balance_cents=("balance_cents", "sum")))
    # The axis reads the kind in words; each bar keeps its code for the click-through.
    return _count_bars(title, "Account kind",
                       [chart_text(account_kind_label(k)) for k in data["kind"]],
                       "Accounts (count)", data["accounts"], series_name="Accounts",
                       drill=[{"x": k} for k in data["kind"]])


def rfm_segments(summary: pd.DataFrame) -> dict:
    title = "Customers by RFM segment (count)"
    if summary.empty or int(summary["customers"].sum()) == 0:
        return empty(title)
    data = summary.set_index("segment").reindex(RFM_SEGMENTS).reset_index()
    return _count_bars(title, "Segment", _categories(data["segment"]), "Customers (count)",
                       data["customers"], series_name="Customers")


def refusals(df: pd.DataFrame) -> dict:
    title = "Refused transactions by reason (count)"
    if df.empty:
        return empty(title, "No refused transactions")
    return _count_bars(title, "Reason", _categories(df["reason"]), "Refusals (count)",
                       df["refusals"], series_name="Refusals",
                       drill=[{"customdata": r} for r in df["reason"]])


def decision_times(df: pd.DataFrame) -> dict:
    title = "Time to decide a loan (hours)"
    if df.empty:
        return empty(title, "No loans decided in this period")
    # Binned here, so that a bar names the loans behind it (its hours [from, to)).
    bins = decision_time_bins(df)
    hours = list(zip(bins["from_hours"], bins["to_hours"]))
    return _count_bars(title, "Hours from application to decision",
                       [f"{a}–{b} h" for a, b in hours], "Loans (count)", bins["loans"],
                       series_name="Loans", barCategoryGap="5%",
                       drill=[{"customdata": [int(a), int(b)]} for a, b in hours])


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
