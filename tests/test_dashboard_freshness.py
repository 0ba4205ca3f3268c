"""Dashboard answers may be a few seconds old if they say so (issue 13): bank.reports keeps each
analytics answer per query and filters up to the setting dashboard_max_age_s, stamps it with
when it was computed (attrs["as_of"]), and computes it again when older, when asked for a fresh
one, or after forget_answers (the pages' "Refresh now")."""
from __future__ import annotations

import datetime as dt

import pytest
from conftest import Clock, employee, make_customer

from bankms.domain.errors import PermissionDenied


class Ticks:
    """Stands in for Reports.monotonic: seconds a test moves by hand."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def dash(bank):
    clock = Clock(dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.timezone.utc))
    bank.clock = clock
    ticks = Ticks()
    bank.reports.monotonic = ticks
    system = bank.system_actor()
    account = bank.accounts.open(system, make_customer(bank))
    bank.payments.deposit(system, account, "10.00")
    return bank, employee(bank, "manager"), clock, ticks, account


@pytest.mark.parametrize("max_age_s, age_s, how, expected", [
    (30, 5, "again", "kept"),
    (30, 29, "again", "kept"),
    (30, 30, "again", "recomputed"),
    (30, 31, "again", "recomputed"),
    (30, 5, "fresh", "recomputed"),
    (30, 5, "forget", "recomputed"),
    (0, 0, "again", "recomputed"),
])
def test_answer_kept_while_younger_than_the_bound(dash, max_age_s, age_s, how, expected):
    bank, manager, clock, ticks, account = dash
    bank.settings.set(bank.system_actor(), "dashboard_max_age_s", max_age_s)
    f = bank.reports.filters()
    first = bank.reports.dashboard(manager, f)
    assert bank.reports.as_of(first) == clock.now
    # A posting the kept answer does not show yet.
    bank.payments.deposit(bank.system_actor(), account, "5.00")
    clock.advance(seconds=age_s)
    ticks.now += age_s
    if how == "forget":
        bank.reports.forget_answers(manager)
    again = bank.reports.dashboard(manager, f, fresh=how == "fresh")
    outcome = ("kept" if all(again[n].equals(first[n]) for n in first)
               and bank.reports.as_of(again) == bank.reports.as_of(first) else
               "recomputed" if bank.reports.as_of(again) == clock.now
               and not again["key_figures"].equals(first["key_figures"]) else "neither")
    assert outcome == expected


def test_kept_answers_are_per_filters(dash):
    bank, manager, clock, ticks, _ = dash
    wide, narrow = bank.reports.filters(days=90), bank.reports.filters(days=7)
    bank.reports.query(manager, "key_figures", wide)
    clock.advance(seconds=3)
    answer = bank.reports.query(manager, "key_figures", narrow)
    assert bank.reports.as_of(answer) == clock.now


def test_permission_is_checked_even_when_an_answer_is_kept(dash):
    bank, manager, _, _, _ = dash
    f = bank.reports.filters()
    bank.reports.query(manager, "key_figures", f)
    with pytest.raises(PermissionDenied):
        bank.reports.query(employee(bank, "teller"), "key_figures", f)
    with pytest.raises(PermissionDenied):
        bank.reports.forget_answers(employee(bank, "teller"))


def test_a_caller_changing_its_answer_leaves_the_kept_one_alone(dash):
    bank, manager, _, _, _ = dash
    f = bank.reports.filters()
    first = bank.reports.query(manager, "key_figures", f)
    before = first.copy()
    first.iloc[:, 0] = None
    assert bank.reports.query(manager, "key_figures", f).equals(before)


def test_a_managers_home_says_how_old_its_kept_key_figures_are(dash):
    # The home page reads the same kept key figures as the dashboard: it must say so too.
    bank, manager, clock, ticks, account = dash
    first = bank.home.manager(manager)
    assert first["key_figures_as_of"] == clock.now
    bank.payments.deposit(bank.system_actor(), account, "5.00")
    clock.advance(seconds=5)
    ticks.now += 5
    again = bank.home.manager(manager)
    assert again["key_figures"].equals(first["key_figures"])
    assert again["key_figures_as_of"] == clock.now - dt.timedelta(seconds=5)


def test_rows_behind_a_figure_are_never_older_than_the_figure(dash):
    # Rows opened at 20 s are kept till 50 s; the figure is computed again at 31 s. Rows read
    # after that must be computed again too, or their total would not be the figure's.
    bank, manager, clock, ticks, account = dash
    f = bank.reports.filters()
    bank.reports.query(manager, "key_figures", f)
    for seconds in (20, 11):
        clock.advance(seconds=seconds)
        ticks.now += seconds
        if seconds == 20:
            bank.reports.drill(manager, "total_deposits", f)
            bank.payments.deposit(bank.system_actor(), account, "5.00")
    figure = bank.reports.query(manager, "key_figures", f)
    rows = bank.reports.drill(manager, "total_deposits", f)
    assert bank.reports.as_of(rows) >= bank.reports.as_of(figure)
    assert bank.reports.drill_total("total_deposits", rows) == 1500
