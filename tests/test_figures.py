"""bankms.figures on small hand-made frames: count axes tick at whole numbers, legends sit below
the plot, the app's own template (no "plotly_white" copied into each chart), and the chart
config for phones."""
from __future__ import annotations

import datetime as dt

import pandas as pd
import plotly.io
import pytest

from bankms import figures
from bankms.analytics import BALANCE_BUCKETS, RFM_SEGMENTS

DAYS = pd.to_datetime([dt.date(2026, 3, 1), dt.date(2026, 3, 2)])


def daily_volume(transactions):
    return pd.DataFrame({"day": DAYS.repeat(2), "kind": ["deposit", "transfer"] * 2,
                         "transactions": transactions, "amount_cents": [100, 200, 300, 400]})


def balance_distribution(accounts):
    return pd.DataFrame({"bucket": [label for _, label in BALANCE_BUCKETS],
                         "accounts": accounts, "balance_cents": [0] * len(BALANCE_BUCKETS)})


def customer_growth(new):
    return pd.DataFrame({"day": DAYS, "new_customers": new,
                         "customers": [100 + new[0], 100 + sum(new)]})


def rfm_summary(customers):
    return pd.DataFrame({"segment": RFM_SEGMENTS[:len(customers)], "customers": customers})


def refusals(counts):
    return pd.DataFrame({"reason": [f"reason {i}" for i in range(len(counts))],
                         "refusals": counts})


def decisions(hours):
    return pd.DataFrame({"hours_to_decide": hours})


def dormant(n):
    return pd.DataFrame({"account_number": [str(i) for i in range(n)],
                         "kind": ["savings"] * n, "balance_cents": [500] * n})


# (figure, frame, axis of the count, whole ticks one apart expected)
COUNT_AXES = [
    (figures.daily_count, daily_volume([1, 0, 0, 1]), "yaxis", True),  # stacked total 1
    (figures.daily_count, daily_volume([40, 30, 20, 10]), "yaxis", False),  # 70: Plotly's own
    (figures.balance_distribution, balance_distribution([0, 1, 0, 0, 0, 0]), "yaxis", True),
    (figures.balance_distribution, balance_distribution([0, 9, 0, 0, 0, 0]), "yaxis", True),
    (figures.balance_distribution, balance_distribution([0, 10, 0, 0, 0, 0]), "yaxis", False),
    (figures.customer_growth, customer_growth([0, 1]), "yaxis2", True),
    (figures.customer_growth, customer_growth([0, 1]), "yaxis", False),  # 100 customers
    (figures.dormant_accounts, dormant(2), "yaxis", True),
    (figures.rfm_segments, rfm_summary([1, 2]), "yaxis", True),
    (figures.refusals, refusals([1]), "yaxis", True),
    (figures.decision_times, decisions([0.5, 1.5, 30.0]), "yaxis", True),
]


@pytest.mark.parametrize("make, frame, axis, one_apart", COUNT_AXES)
def test_count_axes_tick_at_whole_numbers(make, frame, axis, one_apart):
    shown = make(frame).layout[axis]
    assert shown.tickformat == ",d" and shown.hoverformat == ",d"
    assert shown.rangemode == "tozero"
    # A small count would otherwise tick at 0.2, 0.4, ...: one apart from zero.
    assert (shown.dtick, shown.tick0) == ((1, 0) if one_apart else (None, None))


def test_a_second_axis_keeps_its_own_title():
    fig = figures.customer_growth(customer_growth([0, 1]))
    assert fig.layout.yaxis.title.text == "Customers (count)"
    assert fig.layout.yaxis2.title.text == "New customers (count)"


@pytest.mark.parametrize("make, frame, axis", [
    (figures.daily_amount, daily_volume([1, 0, 0, 1]), "yaxis"),
    (figures.top_customers, pd.DataFrame({"customer_id": [1], "full_name": ["Ann"],
                                          "balance_cents": [12_345]}), "xaxis"),
])
def test_money_axes_are_not_counts(make, frame, axis):
    assert make(frame).layout[axis].tickformat is None


@pytest.mark.parametrize("make, frame", [
    (figures.daily_amount, daily_volume([1, 0, 0, 1])),
    (figures.daily_count, daily_volume([1, 0, 0, 1])),
    (figures.customer_growth, customer_growth([0, 1])),
    (figures.empty, "Nothing (count)"),
])
def test_legends_sit_below_the_plot_from_the_left(make, frame):
    legend = make(frame).layout.legend
    assert (legend.orientation, legend.yanchor, legend.xanchor) == ("h", "top", "left")
    assert legend.y < 0 and legend.x == 0


def test_figures_keep_the_apps_template_and_stay_small():
    import streamlit.elements.plotly_chart  # noqa: F401  Streamlit's template, as in the app

    fig = figures.daily_count(daily_volume([1, 0, 0, 1]))
    # Streamlit's template (placeholder colours its frontend swaps for the theme's).
    assert fig.layout.template.layout.colorway == plotly.io.templates["streamlit"].layout.colorway
    spec = plotly.io.to_json(fig, validate=False)
    # With "plotly_white" named, this chart's JSON was 7.7 KB.
    assert len(spec) < 6_000, len(spec)


def test_the_chart_config_hides_what_a_phone_does_not_need():
    assert figures.CONFIG["displayModeBar"] == "hover"
    assert figures.CONFIG["displaylogo"] is False
    assert {"lasso2d", "select2d"} <= set(figures.CONFIG["modeBarButtonsToRemove"])


def test_account_kinds_read_in_words_in_legends_and_axes():
    days = pd.to_datetime([dt.date(2026, 3, 1)] * 2)
    balances = pd.DataFrame({"day": days, "kind": ["checking", "term_deposit"],
                             "balance_cents": [100, 200]})
    fig = figures.deposits_by_product(balances)
    assert [(t.name, t.meta) for t in fig.data] == [("Checking", "checking"),
                                                    ("Term deposit", "term_deposit")]
    dormant = pd.DataFrame({"kind": ["term_deposit"], "account_number": ["1"],
                            "balance_cents": [5]})
    fig = figures.dormant_accounts(dormant)
    assert list(fig.data[0].x) == ["term_deposit"]  # the click-through keeps the code
    assert list(fig.layout.xaxis.ticktext) == ["Term deposit"]
    assert "term_deposit" not in fig.data[0].hovertemplate
