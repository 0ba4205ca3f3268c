"""The End of day page (AppTest): a date picker limited to days that have ended, a checkbox for
long catch-ups, refusals in plain words and the automatic run's status."""
from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pandas as pd
import pytest

from apptest_util import app_bank_on, open_app
from conftest import Clock, employee, funded_account, login_for, make_customer
from pages.end_of_day import TAB
from test_dashboard_pages import show_tab

DAY = dt.timedelta(days=1)


@pytest.fixture
def page_bank(tmp_path):
    with app_bank_on(str(tmp_path / "bank.duckdb")) as bank:
        yield bank


def texts(at):
    parts = [e.value for e in (*at.title, *at.caption, *at.success, *at.info, *at.warning,
                               *at.error)]
    parts += [f"{m.label} {m.value}" for m in at.metric]
    return "\n".join(str(p) for p in parts)


def run_button(at):
    [button] = [b for b in at.button if b.label == "Run end of day"]
    button.click().run()
    assert not at.exception, at.exception


def test_nothing_to_close_before_the_cutoff(page_bank):
    start = page_bank.business_date
    page_bank.clock = Clock(dt.datetime.combine(start, dt.time(12, 0)))
    at = open_app(page_bank, employee(page_bank, "manager"), "end-of-day")
    shown = texts(at)
    assert "Nothing to close" in shown and "23:30 (UTC)" in shown
    # Days as captions and metrics write them (pages.text.day_text), not "2026-11-30".
    assert f"Calendar date (UTC) {start:%d %b %Y}" in shown
    assert f"Next automatic run {start:%d %b %Y} 23:30" in shown
    assert f"Business date {start:%a %d %b %Y}" in shown
    assert f"Nothing to close: business date {start:%d %b %Y} ends at" in shown
    assert not at.date_input and not [b for b in at.button if b.label == "Run end of day"]


def test_a_long_catch_up_needs_the_checkbox(page_bank):
    start = page_bank.business_date
    page_bank.clock = Clock(dt.datetime.combine(start + 5 * DAY, dt.time(9, 0)))
    at = open_app(page_bank, employee(page_bank, "manager"), "end-of-day")
    picker = at.date_input(key="eod_until")
    assert (picker.value, picker.min, picker.max) == (start + 4 * DAY, start, start + 4 * DAY)
    run_button(at)
    assert "needs confirmation" in texts(at) and page_bank.business_date == start
    at.checkbox(key="eod_confirm").check().run()
    run_button(at)
    assert "Closed 5 day(s)" in texts(at) and "Interest posted $0.00" in texts(at)
    assert f"Business date {start + 5 * DAY:%a %d %b %Y}" in texts(at)
    # The form no longer offers the days just closed, nor their checkbox.
    assert not at.date_input and not at.checkbox and "Nothing to close" in texts(at)
    # The closed days are value dates, shown without a time of day (in their own tab).
    show_tab(at, TAB, "Recent days")
    [runs] = [d.value for d in at.dataframe if "Interest paid" in d.value.columns]
    assert [str(d) for d in runs["Day"]] == [
        str(start + k * DAY) for k in range(4, -1, -1)]
    # Every counter in words (deposit-side ones included), amounts as money.
    assert not [c for c in runs.columns if "_" in c]
    assert {"Interest paid", "Tax withheld", "Overdraft interest", "Fees",
            "Standing orders paid", "Standing orders missed", "Term deposits matured",
            "Term deposits renewed"} <= set(runs.columns)
    assert set(runs["Tax withheld"]) == {Decimal("0.00")} and set(runs["Fees charged"]) == {0}
    [table] = [d for d in at.dataframe if "Interest paid" in d.value.columns]
    assert json.loads(table.proto.columns)["Tax withheld"]["type_config"]["format"] == "dollar"
    assert not at.exception and page_bank.audit.verify() == []


def test_a_short_catch_up_runs_without_asking(page_bank):
    start = page_bank.business_date
    page_bank.clock = Clock(dt.datetime.combine(start + 5 * DAY, dt.time(9, 0)))
    at = open_app(page_bank, employee(page_bank, "manager"), "end-of-day")
    at.date_input(key="eod_until").set_value(start + DAY).run()
    assert not at.checkbox
    run_button(at)
    assert "Closed 2 day(s)" in texts(at) and page_bank.business_date == start + 2 * DAY


def test_history_shows_the_value_date_and_the_time_on_the_banks_clock(page_bank):
    system = page_bank.system_actor()
    page_bank.settings.set(system, "bank_time_zone", "Asia/Tokyo")  # UTC+9, no summer time
    cid = make_customer(page_bank, name="Tomo Tokyo")
    number = funded_account(page_bank, "10.00", customer_id=cid)
    posted = page_bank.read_one("SELECT max(posted_at) FROM postings")[0]
    at = open_app(page_bank, login_for(page_bank, cid, "tomo"), "my-history")
    table = at.dataframe[0].value
    assert list(table["Value date"].astype(str)) == [str(page_bank.business_date)]
    assert list(table["When"]) == [pd.Timestamp(posted + dt.timedelta(hours=9))]
    when = json.loads(at.dataframe[0].proto.columns)["When"]["type_config"]
    assert (when["type"], when["format"]) == ("datetime", "YYYY-MM-DD HH:mm")
    assert number


def test_a_refusal_leaves_no_progress_bar_and_the_caption_follows_the_settings(page_bank):
    start = page_bank.business_date
    page_bank.settings.set(page_bank.system_actor(), "dormancy_months", "6")
    page_bank.clock = Clock(dt.datetime.combine(start + 5 * DAY, dt.time(9, 0)))
    at = open_app(page_bank, employee(page_bank, "manager"), "end-of-day")
    # The products keep their own period (12 months); the setting is for accounts without one.
    assert "12 months; 6 months without a product; interest and fees do not count" in texts(at)
    run_button(at)
    assert "needs confirmation" in texts(at)
    assert [p.value for p in at.get("progress")] == []


def test_the_chain_heads_of_closed_days_are_shown_checked_and_downloadable(page_bank):
    start = page_bank.business_date
    page_bank.clock = Clock(dt.datetime.combine(start + 3 * DAY, dt.time(9, 0)))
    manager = employee(page_bank, "manager")
    page_bank.end_of_day(page_bank.system_actor(), until=start + DAY)
    kept = page_bank.chain.heads_csv(manager)
    at = open_app(page_bank, manager, "end-of-day")
    # Only the open tab runs (lazy_tabs): the heads are drawn once their tab is opened.
    assert not [d for d in at.dataframe if "Head" in d.value.columns]
    assert not [b for b in at.button if b.key == "eod_chain_check"]
    show_tab(at, TAB, "Chain heads")
    [heads] = [d.value for d in at.dataframe if "Head" in d.value.columns]
    assert [str(d) for d in heads["Day"]] == [str(start + DAY)] * 2 + [str(start)] * 2
    assert all(len(h) == 64 for h in heads["Head"])
    at.button(key="eod_chain_check").click().run()
    assert "Both chains recompute" in texts(at)
    at.text_area(key="eod_chain_kept").input(kept).run()
    at.button(key="eod_chain_check_kept").click().run()
    assert "Every kept head matches" in texts(at)
    head_column = kept.splitlines()[0].split(",").index("head_hash")
    forged = kept.replace(kept.splitlines()[1].split(",")[head_column].strip(), "0" * 64)
    at.text_area(key="eod_chain_kept").input(forged).run()
    at.button(key="eod_chain_check_kept").click().run()
    assert "chain problem(s)" in texts(at) and "does not match" in texts(at)
    at.text_area(key="eod_chain_kept").input("not heads").run()
    at.button(key="eod_chain_check_kept").click().run()
    assert "must start with the header line" in texts(at)
    assert not at.exception


def test_recent_days_are_a_tab_of_their_own(page_bank):
    start = page_bank.business_date
    page_bank.clock = Clock(dt.datetime.combine(start + 3 * DAY, dt.time(9, 0)))
    page_bank.end_of_day(page_bank.system_actor(), until=start + DAY)
    at = open_app(page_bank, employee(page_bank, "manager"), "end-of-day")
    assert [t.label for t in at.tabs] == ["Close days", "Recent days", "Chain heads"]
    assert not [d for d in at.dataframe if "Day" in d.value.columns]
    show_tab(at, TAB, "Recent days")
    [runs] = [d.value for d in at.dataframe if "Took" in d.value.columns]
    assert [str(d) for d in runs["Day"]] == [str(start + DAY), str(start)]
    # The date picked in the form survives the look at another tab (keep=).
    show_tab(at, TAB, "Close days")
    assert at.date_input(key="eod_until").value == start + 2 * DAY
