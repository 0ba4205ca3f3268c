"""bankms.reporting.figures on small hand-made frames: count axes tick at whole numbers, legends sit below
the plot, account kinds read in words while the click-through keeps their codes, and a picked
bar or point gives what drill.chart_selection needs (figures.point)."""
from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import pytest

from bankms.reporting import drill, figures
from bankms.reporting.analytics import BALANCE_BUCKETS, RFM_SEGMENTS

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


def top(names):
    return pd.DataFrame({"customer_id": range(1, len(names) + 1), "full_name": names,
                         "balance_cents": [12_345] * len(names)})


def y_axis(spec, index=0):
    axes = spec["yAxis"]
    return axes[index] if isinstance(axes, list) else axes


# (figure, frame, y axis index, a count)
COUNT_AXES = [
    (figures.daily_count, daily_volume([1, 0, 0, 1]), 0, True),
    (figures.daily_amount, daily_volume([1, 0, 0, 1]), 0, False),  # money
    (figures.balance_distribution, balance_distribution([0, 1, 0, 0, 0, 0]), 0, True),
    (figures.customer_growth, customer_growth([0, 1]), 1, True),
    (figures.customer_growth, customer_growth([0, 1]), 0, True),
    (figures.dormant_accounts, dormant(2), 0, True),
    (figures.rfm_segments, rfm_summary([1, 2]), 0, True),
    (figures.refusals, refusals([1]), 0, True),
    (figures.decision_times, decisions([0.5, 1.5, 30.0]), 0, True),
    (figures.deposits_by_product, pd.DataFrame({"day": DAYS, "kind": ["savings"] * 2,
                                                "balance_cents": [1, 2]}), 0, False),
]


@pytest.mark.parametrize("make, frame, axis, count", COUNT_AXES)
def test_count_axes_tick_at_whole_numbers(make, frame, axis, count):
    shown = y_axis(make(frame), axis)
    # A small count would otherwise tick at 0.2, 0.4, ...: whole numbers from zero.
    assert (shown.get("minInterval"), shown.get("min")) == ((1, 0) if count else (None, None))


def test_a_second_axis_keeps_its_own_name():
    spec = figures.customer_growth(customer_growth([0, 1]))
    assert [a["name"] for a in spec["yAxis"]] == ["Customers (count)", "New customers (count)"]
    assert [s.get("yAxisIndex", 0) for s in spec["series"]] == [0, 1]


@pytest.mark.parametrize("make, frame, legend", [
    (figures.daily_amount, daily_volume([1, 0, 0, 1]), True),
    (figures.daily_count, daily_volume([1, 0, 0, 1]), True),
    (figures.customer_growth, customer_growth([0, 1]), True),
    (figures.balance_distribution, balance_distribution([0, 1, 0, 0, 0, 0]), False),
    (figures.top_customers, top(["Ann"]), False),
])
def test_legends_sit_below_the_plot_from_the_left(make, frame, legend):
    spec = make(frame)
    assert spec["title"]["left"] == 0
    if legend:
        assert (spec["legend"]["bottom"], spec["legend"]["left"]) == (0, 0)
        assert spec["legend"]["orient"] == "horizontal"
    else:  # one series: nothing to tell apart
        assert "legend" not in spec


@pytest.mark.parametrize("make, frame", [
    (figures.daily_amount, daily_volume([1, 0, 0, 1])),
    (figures.top_customers, top(["Ann", "Bo"])),
    (figures.customer_growth, customer_growth([0, 1])),
])
def test_charts_have_no_toolbox_and_stay_small(make, frame):
    spec = make(frame)
    assert "toolbox" not in spec and "dataZoom" not in spec and spec["animation"] is False
    assert len(json.dumps(spec)) < 3_000


def test_an_empty_frame_gives_a_chart_that_says_so():
    spec = figures.refusals(refusals([])[:0])
    assert [t["text"] for t in spec["title"]] == ["Refused transactions by reason (count)",
                                                  "No refused transactions"]
    assert spec["series"] == []


def test_account_kinds_read_in_words_in_legends_and_axes():
    days = pd.to_datetime([dt.date(2026, 3, 1)] * 2)
    balances = pd.DataFrame({"day": days, "kind": ["checking", "term_deposit"],
                             "balance_cents": [100, 200]})
    spec = figures.deposits_by_product(balances)
    assert [(s["name"], s["id"]) for s in spec["series"]] == [("Checking", "checking"),
                                                              ("Term deposit", "term_deposit")]
    spec = figures.dormant_accounts(pd.DataFrame({"kind": ["term_deposit"],
                                                  "account_number": ["1"],
                                                  "balance_cents": [5]}))
    assert spec["xAxis"]["data"] == ["Term deposit"]
    assert "term_deposit" not in json.dumps(spec["xAxis"])
    # The click-through keeps the code.
    assert figures.point(spec, 0, 0)[0]["x"] == "term_deposit"


def test_names_stay_as_typed_on_one_line():
    spec = figures.top_customers(top(['<b>Bo</b> & "Al"', "Ann\nNewline"]))
    # Drawn from the bottom up: the biggest first in the frame is on top.
    assert spec["yAxis"]["data"] == ["Ann Newline", '<b>Bo</b> & "Al"']


def test_a_long_name_is_cut_short_on_the_axis_and_whole_in_the_tooltip():
    # A 100-character name drawn whole took half the chart at 1366 px and all of it on a
    # phone: the axis keeps names to a width (ending in "..."), the tooltip shows them whole.
    long_name = "L" * 100
    spec = figures.top_customers(top([long_name, "Ann"]))
    label = spec["yAxis"].get("axisLabel", {})
    assert (label.get("width"), label.get("overflow")) == (figures.NAME_LABEL_WIDTH_PX,
                                                            "truncate")
    assert figures.NAME_LABEL_WIDTH_PX <= 120
    assert long_name in spec["yAxis"]["data"]


def test_the_last_amount_of_a_horizontal_money_axis_stays_inside_the_chart():
    # At 390 px the last tick, centred on the right edge, was cut to "100,00" (read as 100.00).
    spec = figures.top_customers(top(["Ann", "Bo"]))
    assert spec["xAxis"].get("axisLabel", {}).get("alignMaxLabel") == "right"


# (chart, frame, picked (series, index), drill and selection expected)
PICKS = [
    (figures.daily_amount, daily_volume([1, 0, 0, 1]), (1, 1),
     ("daily_volume", {"day": "2026-03-02", "kind": "transfer"})),
    (figures.daily_count, daily_volume([1, 0, 0, 1]), (0, 0),
     ("daily_count", {"day": "2026-03-01", "kind": "deposit"})),
    (figures.balance_distribution, balance_distribution([0, 1, 0, 0, 0, 0]), (0, 1),
     ("balance_distribution", {"bucket": BALANCE_BUCKETS[1][1]})),
    (figures.customer_growth, customer_growth([0, 1]), (0, 1),
     ("customers_by_day", {"day": "2026-03-02"})),
    (figures.customer_growth, customer_growth([0, 1]), (1, 0),
     ("customer_growth", {"day": "2026-03-01"})),
    (figures.top_customers, top(["Ann", "Bo"]), (0, 0),
     ("customer_accounts", {"customer_id": 2})),
    (figures.dormant_accounts, dormant(2), (0, 0), ("dormant_accounts", {"kind": "savings"})),
    (figures.rfm_segments, rfm_summary([1, 2]), (0, 1), ("rfm_segment",
                                                         {"segment": RFM_SEGMENTS[1]})),
    (figures.refusals, refusals([1, 2]), (0, 1), ("refusals", {"reason": "reason 1"})),
    (figures.decision_times, decisions([0.5, 1.5, 30.0]), (0, 0),
     ("decision_times", {"from_hours": 0, "to_hours": 2})),
]
CHART_NAMES = {figures.daily_amount: "daily_amount", figures.daily_count: "daily_count",
               figures.balance_distribution: "balance_distribution",
               figures.customer_growth: "customer_growth",
               figures.top_customers: "top_customers",
               figures.dormant_accounts: "dormant_accounts",
               figures.rfm_segments: "rfm_segments", figures.refusals: "refusals",
               figures.decision_times: "decision_times"}


@pytest.mark.parametrize("make, frame, picked, expected", PICKS)
def test_a_picked_bar_or_point_opens_its_rows(make, frame, picked, expected):
    spec = make(frame)
    assert all(s.get("selectedMode") == "single" for s in spec["series"])
    point, series_id = figures.point(spec, *picked)
    assert drill.chart_selection(CHART_NAMES[make], point, series_id) == expected
