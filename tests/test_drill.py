"""Click-through (issue 15): every dashboard and customer-analytics figure opens the rows behind
it, and they add up to the figure. Worked answers on the hand-built 2025 ledger of
test_reports.py (balances in its docstring) and on a hand-built loan book aged by end of day.
"""
from __future__ import annotations

import datetime as dt
import shutil
from decimal import Decimal

import pandas as pd
import pytest
from conftest import Clock, employee, make_customer
from test_reports import FEB, FEB_SAVINGS, YEAR_TO_FEB, figures, ledger  # noqa: F401

import bankms
from bankms.reporting import drill
from bankms.reporting.analytics import Filters
from bankms.domain.errors import InvalidInput, PermissionDenied

# Twelve months (the products' dormancy period) after B1's and C1's last own transactions.
APR_2026 = Filters(start="2026-04-01", end="2026-04-30")
YEAR = Filters(start="2025-01-01", end="2025-12-31")
MAY = Filters(start="2025-05-01", end="2025-05-31")
MAY_FIRST_HALF = Filters(start="2025-05-01", end="2025-05-15")
DAY = dt.timedelta(days=1)


def _key(name):
    return lambda data, sel: figures(data["key_figures"])[name][0]


def _row(query, value, **match):
    def pick(data, sel):
        df = data[query]
        for column, key in match.items():
            wanted = sel[key]
            df = df[(df[column] == pd.Timestamp(wanted)) if column == "day" else
                    (df[column] == wanted)]
        return int(df[value].sum())
    return pick


# Where each drill's figure is read on the page: (query name, how to read it).
FIGURE = {
    "total_deposits": _key("Total deposits"),
    "loans_outstanding": _key("Loans outstanding"),
    "provision_booked": _key("Provision booked"),
    "net_loans": _key("Net loans"),
    "active_customers": _key("Active customers"),
    "new_customers": _key("New customers"),
    "new_accounts": _key("New accounts"),
    "net_flow": _key("Net flow"),
    "daily_volume": _row("daily_volume", "amount_cents", day="day", kind="kind"),
    "daily_count": _row("daily_volume", "transactions", day="day", kind="kind"),
    "deposits_by_product": _row("deposits_by_product", "balance_cents", day="day", kind="kind"),
    "balance_distribution": _row("balance_distribution", "accounts", bucket="bucket"),
    "customer_growth": _row("customer_growth", "new_customers", day="day"),
    "customers_by_day": _row("customer_growth", "customers", day="day"),
    "customer_accounts": _row("top_customers", "balance_cents", customer_id="customer_id"),
    "dormant_accounts": lambda data, sel: int((data["dormant_accounts"]["kind"]
                                               == sel["kind"]).sum()),
    "account_postings": _row("dormant_accounts", "balance_cents",
                             account_number="account_number"),
    "rfm_segment": lambda data, sel: int((data["rfm"]["segment"] == sel["segment"]).sum()),
    "customer_activity": _row("rfm", "monetary_cents", customer_id="customer_id"),
    "regular_income": _row("cross_sell", "income_cents", customer_id="customer_id"),
    "high_balance": lambda data, sel: int(data["cross_sell"].set_index(
        ["offer", "customer_id"]).loc[("Savings account for a high balance",
                                       sel["customer_id"]), "balance_cents"]),
    "falling_customer": lambda data, sel: int(data["falling_activity"].set_index(
        "customer_id").loc[sel["customer_id"], ["before_count", "recent_count"]].sum()),
}

CASES = [
    # filters, figure, selection (names stand for the test's customers and accounts), worked
    (FEB, "total_deposits", {}, 98120),          # A1 748.00 + S1 203.20 + C1 30.00
    (FEB_SAVINGS, "total_deposits", {}, 20320),
    (FEB, "loans_outstanding", {}, 0),
    (FEB, "provision_booked", {}, 0),
    (FEB, "net_loans", {}, 0),
    (FEB, "active_customers", {}, 2),            # Ann and Bob
    (FEB, "new_customers", {}, 1),               # Dan
    (FEB, "new_accounts", {}, 0),
    (FEB, "net_flow", {}, -59830),
    (FEB_SAVINGS, "net_flow", {}, 170),
    (FEB, "daily_volume", {"day": "2025-02-03", "kind": "Withdrawal"}, 10000),
    (FEB, "daily_volume", {"day": "2025-02-10", "kind": "Transfer"}, 5000),
    (FEB, "daily_volume", {"day": "2025-02-28", "kind": "Interest"}, 170),
    # The bars of the count chart are transactions, not money: their rows' total is a count.
    (FEB, "daily_count", {"day": "2025-02-03", "kind": "Withdrawal"}, 1),
    (FEB, "daily_count", {"day": "2025-02-28", "kind": "Interest"}, 1),
    (FEB, "deposits_by_product", {"day": "2025-02-03", "kind": "checking"}, 122800),
    (FEB, "deposits_by_product", {"day": "2025-02-28", "kind": "savings"}, 20320),
    (FEB, "balance_distribution", {"bucket": "below $0"}, 1),          # B1
    (FEB, "balance_distribution", {"bucket": "$100 – $1k"}, 2),        # A1, S1
    (FEB, "customer_growth", {"day": "2025-02-15"}, 1),
    (FEB, "customers_by_day", {"day": "2025-02-14"}, 3),
    (FEB, "customers_by_day", {"day": "2025-02-15"}, 4),
    (FEB, "customer_accounts", {"customer_id": "Ann"}, 95120),
    (FEB, "customer_accounts", {"customer_id": "Bob"}, -5000),
    (APR_2026, "dormant_accounts", {"kind": "checking"}, 2),            # B1, C1
    (APR_2026, "account_postings", {"account_number": "C1"}, 603000),
    (APR_2026, "account_postings", {"account_number": "S1"}, 19790),
    (YEAR_TO_FEB, "rfm_segment", {"segment": "At risk"}, 1),
    (YEAR_TO_FEB, "customer_activity", {"customer_id": "Ann"}, 135000),  # 1,000+200+100+50
    (YEAR_TO_FEB, "customer_activity", {"customer_id": "Bob"}, 105000),
    (FEB, "customer_activity", {"customer_id": "Bob"}, 55000),  # the RFM period only
    (MAY, "falling_customer", {"customer_id": "Bob"}, 5),
    (MAY_FIRST_HALF, "regular_income", {"customer_id": "Bob"}, 120000),  # two salaries
    (MAY_FIRST_HALF, "high_balance", {"customer_id": "Cat"}, 603000),
]


def _named(ledger, selection):
    names = {**ledger.names, **ledger.customers}
    return {k: names.get(v, v) for k, v in selection.items()}


@pytest.mark.parametrize("filters, figure, selection, expected", CASES)
def test_drilled_rows_add_up_to_the_figure(ledger, filters, figure, selection, expected):
    reports = ledger.bank.reports
    selection = _named(ledger, selection)
    rows = reports.drill(ledger.manager, figure, filters, **selection)
    assert reports.drill_total(figure, rows) == expected
    data = {name: reports.query(ledger.manager, name, filters)
            for name in ("key_figures", "daily_volume", "deposits_by_product",
                         "balance_distribution", "customer_growth", "top_customers",
                         "dormant_accounts", "rfm", "falling_activity", "cross_sell")}
    assert FIGURE[figure](data, selection) == expected


def test_every_drill_is_tested_or_has_a_loan_case():
    covered = ({case[1] for case in CASES} | {case[0] for case in LOAN_CASES}
               | {"refusals", "decision_times", "all_refusals", "loan_decisions"})
    assert covered == set(drill.DRILLS)
    assert set(drill.KEY_FIGURE_DRILLS.values()) <= set(drill.DRILLS)


def test_refusals_open_the_audit_rows(ledger):
    reports = ledger.bank.reports
    counts = reports.query(ledger.manager, "refusals_by_reason", YEAR)
    for reason, n in zip(counts["reason"], counts["refusals"]):
        assert len(reports.drill(ledger.manager, "refusals", YEAR, reason=reason)) == n
    # The page's figure "Refused transactions" (all reasons) opens them all.
    rows = reports.drill(ledger.manager, "all_refusals", YEAR)
    assert reports.drill_total("all_refusals", rows) == int(counts["refusals"].sum())
    assert reports.drill(ledger.manager, "refusals", YEAR, reason="no such reason").empty


@pytest.mark.parametrize("figure, selection, error", [
    ("no_such_figure", {}, "no figure called"),
    ("total_deposits", {"day": "2025-02-03"}, "needs nothing"),
    ("daily_volume", {"day": "2025-02-03"}, "needs day, kind"),
    ("daily_volume", {"day": "2025-03-03", "kind": "deposit"}, "outside the period"),
    ("daily_volume", {"day": "not a day", "kind": "deposit"}, "day"),
    ("balance_distribution", {"bucket": "$5 – $6"}, "no balance bucket"),
    ("deposits_by_product", {"day": "2025-02-03", "kind": "bonds"}, "no account kind"),
    ("customer_accounts", {"customer_id": "x"}, "whole number"),
    ("rfm_segment", {"segment": "Royals"}, "no segment"),
    ("account_postings", {"account_number": "GL1000"}, "no customer account"),
    ("loan_portfolio", {"status": "active", "arrears": "5 days"}, "no arrears bucket"),
    ("daily_volume", {"day": None, "kind": "deposit"}, "Pick"),
])
def test_unknown_figures_and_selections_are_refused(ledger, figure, selection, error):
    with pytest.raises(InvalidInput, match=error):
        ledger.bank.reports.drill(ledger.manager, figure, FEB, **selection)


@pytest.mark.parametrize("who", ["teller", "ann"])
def test_drill_downs_are_for_managers(ledger, who):
    actor = ledger.teller if who == "teller" else ledger.ann_login
    with pytest.raises(PermissionDenied):
        ledger.bank.reports.drill(actor, "total_deposits", FEB)


# -- loans: PAR, NPL, provisions, by end of day ------------------------------------------------
def _loan(bank, staff, cid, account, principal):
    lid = bank.loans.apply(staff["teller"], cid, product="personal", principal=principal,
                           term_months=12, purpose="home office", monthly_income="5000")
    bank.loans.approve(staff["manager"], lid, annual_rate_percent="12")
    bank.loans.disburse(staff["teller"], lid, account)
    return lid


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    """Two loans paid out on one day: 10,000.00 to Lou, who never repays (money withdrawn),
    and 5,000.00 to Gus, repaid on time by end of day. Closed 95 days after the first due
    date: Lou's loan is 96 days past due (over 90: provision 100 %), Gus's current (1 %)."""
    bank = bankms.open_bank(str(tmp_path_factory.mktemp("drill") / "bank.duckdb"),
                            bcrypt_rounds=4)
    system = bank.system_actor()
    # The clock ten years ahead, so that end of day may close the coming months (as the
    # years_ahead fixture of conftest does).
    bank.clock = Clock(dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=3660))
    bank.settings.set(system, "eod_catchup_days_confirm", "366")
    staff = {"teller": employee(bank, "teller"), "manager": employee(bank, "manager")}
    lou, gus = make_customer(bank, name="Lou Late"), make_customer(bank, name="Gus Good")
    lou_acc = bank.accounts.open(system, lou, "checking")
    gus_acc = bank.accounts.open(system, gus, "checking")
    bank.payments.deposit(system, gus_acc, "20000.00")
    late = _loan(bank, staff, lou, lou_acc, "10000.00")
    bank.payments.withdraw(system, lou_acc, "10000.00")
    good = _loan(bank, staff, gus, gus_acc, "5000.00")
    first_due = bank.loans.schedule(staff["teller"], late)["due_date"].iloc[0]
    day = first_due + 95 * DAY
    bank.end_of_day(system, until=day)
    good_left = bank.read_one("SELECT principal_outstanding_cents FROM loans WHERE id = ?",
                              [good])[0]
    ns = type("Book", (), {})()
    ns.bank, ns.manager, ns.late, ns.good, ns.good_left = bank, staff["manager"], late, good, \
        good_left
    # As of a day far ahead, so that every posting of end of day (made on the test clock,
    # years ahead) counts.
    ns.filters = Filters(start=day - 29 * DAY, end=day, as_of=day + 4000 * DAY)
    yield ns
    assert bank.audit.verify() == []
    bank.close()


def _good_provision(book):
    return (book.good_left + 50) // 100


LOAN_CASES = [
    # figure, selection, worked answer (a function of the book: Gus's principal left varies
    # with the calendar the test runs on)
    ("portfolio_at_risk", {}, lambda b: 1_000_000),
    ("non_performing", {}, lambda b: 1_000_000),
    ("loans_outstanding", {}, lambda b: 1_000_000 + b.good_left),
    ("provision_booked", {}, lambda b: 1_000_000 + _good_provision(b)),
    ("net_loans", {}, lambda b: b.good_left - _good_provision(b)),
    ("loan_portfolio", {"status": "active", "arrears": "over 90 days"}, lambda b: 1_000_000),
    ("loan_portfolio", {"status": "active", "arrears": "current"}, lambda b: b.good_left),
]


@pytest.mark.parametrize("figure, selection, expected", LOAN_CASES)
def test_loan_figures_open_their_loans_and_postings(book, figure, selection, expected):
    reports = book.bank.reports
    rows = reports.drill(book.manager, figure, book.filters, **selection)
    assert reports.drill_total(figure, rows) == expected(book)
    shown = figures(reports.query(book.manager, "key_figures", book.filters))
    name = {v: k for k, v in drill.KEY_FIGURE_DRILLS.items()
            if k != "Provision coverage of NPL"}.get(figure)
    if name is None:
        portfolio = reports.query(book.manager, "loan_portfolio", book.filters)
        match = portfolio[(portfolio["status"] == selection["status"])
                          & (portfolio["arrears"] == selection["arrears"])]
        assert int(match["outstanding_cents"].sum()) == expected(book)
    elif name in ("Portfolio at risk > 30 days", "Non-performing loans"):
        share = (Decimal(expected(book)) * 100 / (1_000_000 + book.good_left)).quantize(
            Decimal("0.01"))
        assert shown[name][0] == share
    else:
        assert shown[name][0] == expected(book)


def test_coverage_is_the_provision_over_the_non_performing_loans(book):
    reports = book.bank.reports
    shown = figures(reports.query(book.manager, "key_figures", book.filters))
    provision = 1_000_000 + _good_provision(book)
    assert shown["Provision coverage of NPL"][0] == (
        Decimal(provision) * 100 / 1_000_000).quantize(Decimal("0.01"))
    npl = reports.drill(book.manager, "non_performing", book.filters)
    assert npl[["loan_id", "provision_cents"]].values.tolist() == [[book.late, 1_000_000]]


def test_a_bar_of_decision_times_opens_its_loans(book):
    # Both loans were approved straight after the application: decided within the hour.
    day = book.bank.read_one("SELECT CAST(min(decided_at) AS DATE) FROM loans")[0]
    f = Filters(start=day - DAY, end=day + DAY)
    times = book.bank.reports.query(book.manager, "loan_decision_times", f)
    from bankms.reporting.analytics import decision_time_bins
    bins = decision_time_bins(times)
    assert bins.values.tolist() == [[0, 1, 2]]
    rows = book.bank.reports.drill(book.manager, "decision_times", f, from_hours=0, to_hours=1)
    assert sorted(rows["loan_id"]) == sorted([book.late, book.good])
    assert book.bank.reports.drill(book.manager, "decision_times", f, from_hours=1,
                                   to_hours=2).empty
    with pytest.raises(InvalidInput, match="Pick a bar"):
        book.bank.reports.drill(book.manager, "decision_times", f, from_hours=2, to_hours=1)
    # The median time to decide opens every loan decided in the period, with its hours.
    rows = book.bank.reports.drill(book.manager, "loan_decisions", f)
    assert sorted(rows["loan_id"]) == sorted([book.late, book.good])
    assert rows["hours_to_decide"].median() == times["hours_to_decide"].median()


@pytest.mark.parametrize("hours, expected", [
    ([0.0, 0.5, 0.99], [[0, 1, 3]]),
    ([0.2, 3.5], [[0, 1, 1], [1, 2, 0], [2, 3, 0], [3, 4, 1]]),
    ([0.0, 45.0], [[k * 3, k * 3 + 3, 1 if k in (0, 15) else 0] for k in range(16)]),
])
def test_decision_times_are_binned_in_whole_hours(hours, expected):
    from bankms.reporting.analytics import decision_time_bins
    bins = decision_time_bins(pd.DataFrame({"hours_to_decide": hours}))
    assert bins.values.tolist() == expected


def test_provisioning_report_by_bucket(book):
    report = book.bank.reports.provisioning(book.manager)
    got = report[["bucket", "loans", "outstanding_cents", "rate_percent", "required_cents",
                  "booked_cents", "difference_cents"]].values.tolist()
    g, p = book.good_left, _good_provision(book)
    assert got == [
        ["current", 1, g, Decimal("1"), p, p, 0],
        ["1-30", 0, 0, Decimal("5"), 0, 0, 0],
        ["31-60", 0, 0, Decimal("25"), 0, 0, 0],
        ["61-90", 0, 0, Decimal("50"), 0, 0, 0],
        ["over 90", 1, 1_000_000, Decimal("100"), 1_000_000, 1_000_000, 0],
    ]
    # A new rate shows as a difference until the next end of day books it.
    system = book.bank.system_actor()
    book.bank.settings.set(system, "loan_provision_bp_over_90", "5000")
    try:
        report = book.bank.reports.provisioning(book.manager).set_index("bucket")
    finally:
        book.bank.settings.set(system, "loan_provision_bp_over_90", "10000")
    assert report.loc["over 90", ["required_cents", "booked_cents", "difference_cents"]] \
        .tolist() == [500_000, 1_000_000, -500_000]
    with pytest.raises(PermissionDenied):
        book.bank.reports.provisioning(employee(book.bank, "teller"))


# -- from a click to a drill (AppTest cannot click a chart or a dataframe row: the mapping
# from a picked point (figures.point) to the drill is tested here) -------------------------
@pytest.mark.parametrize("chart, point, meta, expected", [
    ("daily_amount", {"x": "2025-02-03", "y": 100.0, "curve_number": 2}, "Withdrawal",
     ("daily_volume", {"day": "2025-02-03", "kind": "Withdrawal"})),
    ("daily_count", {"x": "2025-02-03T00:00:00", "y": 1}, "Withdrawal",
     ("daily_count", {"day": "2025-02-03", "kind": "Withdrawal"})),
    ("deposits_by_product", {"x": "2025-02-28", "y": 203.2}, "savings",
     ("deposits_by_product", {"day": "2025-02-28", "kind": "savings"})),
    ("balance_distribution", {"x": "below $0", "y": 1}, None,
     ("balance_distribution", {"bucket": "below $0"})),
    ("loan_portfolio", {"x": "active", "y": 10.0}, "over 90 days",
     ("loan_portfolio", {"status": "active", "arrears": "over 90 days"})),
    ("customer_growth", {"x": "2025-02-15", "y": 1}, "new_customers",
     ("customer_growth", {"day": "2025-02-15"})),
    ("customer_growth", {"x": "2025-02-15", "y": 4}, "customers",
     ("customers_by_day", {"day": "2025-02-15"})),
    ("top_customers", {"x": 951.2, "y": "Ann Able", "customdata": 7}, None,
     ("customer_accounts", {"customer_id": 7})),
    ("top_customers", {"x": 951.2, "y": "Ann Able", "customdata": [7]}, None,
     ("customer_accounts", {"customer_id": 7})),
    ("dormant_accounts", {"x": "checking", "y": 2}, None,
     ("dormant_accounts", {"kind": "checking"})),
    ("rfm_segments", {"x": "At risk", "y": 1}, None, ("rfm_segment", {"segment": "At risk"})),
    ("refusals", {"x": "&lt;b&gt;", "y": 1, "customdata": "<b>"}, None,
     ("refusals", {"reason": "<b>"})),
    ("decision_times", {"x": "2–4 h", "y": 3, "customdata": [2, 4]}, None,
     ("decision_times", {"from_hours": 2, "to_hours": 4})),
])
def test_a_chart_point_names_its_drill(chart, point, meta, expected):
    assert drill.chart_selection(chart, point, meta) == expected


@pytest.mark.parametrize("chart, point, meta, error", [
    ("pie_of_everything", {"x": 1}, None, "nothing to open"),
    ("daily_amount", {"x": "2025-02-03"}, None, "Pick a bar"),
    ("top_customers", {"x": 1.0, "y": "Ann"}, None, "Pick a bar"),
])
def test_a_point_that_names_no_bar_is_refused(chart, point, meta, error):
    with pytest.raises(InvalidInput, match=error):
        drill.chart_selection(chart, point, meta)


def test_the_figures_carry_what_a_click_needs(ledger):
    from bankms.reporting import figures
    data = ledger.bank.reports.query(ledger.manager, "daily_volume", FEB)
    spec = figures.daily_amount(data)
    assert sorted(s["id"] for s in spec["series"]) == sorted(data["kind"].unique())
    top = ledger.bank.reports.query(ledger.manager, "top_customers", FEB)
    spec = figures.top_customers(top)
    picked = [figures.point(spec, 0, i)[0]["customdata"] for i in range(len(top))]
    assert sorted(picked) == sorted(top["customer_id"])


@pytest.mark.parametrize("table, row, expected", [
    ("top_customers", {"customer_id": 3, "full_name": "Ann"},
     ("customer_accounts", {"customer_id": 3})),
    ("dormant_accounts", {"account_number": "1234", "kind": "checking"},
     ("account_postings", {"account_number": "1234"})),
    ("rfm_summary", {"segment": "Loyal", "customers": 0}, ("rfm_segment", {"segment": "Loyal"})),
    ("rfm_members", {"customer_id": 5}, ("customer_activity", {"customer_id": 5})),
    ("falling_activity", {"customer_id": 5}, ("falling_customer", {"customer_id": 5})),
    ("refusals", {"reason": "insufficient funds", "refusals": 2},
     ("refusals", {"reason": "insufficient funds"})),
    ("cross_sell", {"offer": "Savings account for a regular income", "customer_id": 4},
     ("regular_income", {"customer_id": 4})),
    ("cross_sell", {"offer": "Savings account for a high balance", "customer_id": 4},
     ("high_balance", {"customer_id": 4})),
])
def test_a_table_row_names_its_drill(table, row, expected):
    assert drill.row_selection(table, row) == expected


def test_a_row_of_an_unknown_table_is_refused():
    with pytest.raises(InvalidInput, match="nothing to open"):
        drill.row_selection("balance_sheet", {"x": 1})


# -- a loan that left the book since the last end of day ----------------------------------------
def _far_clock():
    """The clock ten years ahead, so that end of day may close the coming months."""
    return Clock(dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=3660))


@pytest.fixture(scope="module")
def aged_loan(tmp_path_factory):
    """A bank file with one 1,000.00 loan never repaid, aged by end of day to over 90 days past
    due (provision 100 %); built once (about 125 days of end of day), copied by each test."""
    path = tmp_path_factory.mktemp("aged_loan") / "bank.duckdb"
    bank = bankms.open_bank(str(path), bcrypt_rounds=4)
    system = bank.system_actor()
    bank.clock = _far_clock()
    bank.settings.set(system, "eod_catchup_days_confirm", "366")
    staff = {"teller": employee(bank, "teller"), "manager": employee(bank, "manager")}
    cid = make_customer(bank, name="Lou Late")
    account = bank.accounts.open(system, cid, "checking")
    lid = _loan(bank, staff, cid, account, "1000.00")
    bank.payments.withdraw(system, account, "1000.00")
    first_due = bank.loans.schedule(staff["teller"], lid)["due_date"].iloc[0]
    bank.end_of_day(system, until=first_due + 95 * DAY)
    bank.close()
    return path, {role: actor.username for role, actor in staff.items()}, account, lid


@pytest.fixture
def closed_today(aged_loan, tmp_path):
    """The aged loan (a copy of aged_loan's bank): returns a function that closes it today by
    `how` (written off, or paid off from the borrower's account) without another end of day."""
    template, usernames, account, lid = aged_loan
    copy = tmp_path / "bank.duckdb"
    shutil.copyfile(template, copy)
    bank = bankms.open_bank(str(copy), bcrypt_rounds=4)
    bank.clock = _far_clock()
    system = bank.system_actor()
    staff = {role: bank.auth.actor_for(name) for role, name in usernames.items()}

    def close(how):
        if how == "written off":
            bank.loans.write_off(staff["manager"], lid, reason="borrower gone")
        else:
            quote = bank.loans.payoff(staff["teller"], lid)
            bank.payments.deposit(system, account, quote["total"])
            bank.loans.repay(staff["teller"], lid, quote["total"], account)
        return bank, staff["manager"]
    yield close
    assert bank.audit.verify() == []
    bank.close()


@pytest.mark.parametrize("how, expected_closed_row", [
    # bucket, loans, outstanding, rate, required, booked (until the next end of day releases
    # it), difference
    ("written off", ["closed", 1, 0, Decimal("0"), 0, 100_000, -100_000]),
    ("paid off", ["closed", 1, 0, Decimal("0"), 0, 100_000, -100_000]),
])
@pytest.mark.slow
def test_provision_of_a_loan_closed_since_end_of_day_stays_in_the_report(closed_today, how,
                                                                        expected_closed_row):
    bank, manager = closed_today(how)
    report = bank.reports.provisioning(manager)
    (gl1290,) = bank.read_one("SELECT balance_cents FROM accounts WHERE account_number = "
                              "'GL1290'")
    shown = figures(bank.reports.query(manager, "key_figures", bank.reports.filters()))
    assert int(report["booked_cents"].sum()) == gl1290 == shown["Provision booked"][0]
    assert report.iloc[-1][["bucket", "loans", "outstanding_cents", "rate_percent",
                            "required_cents", "booked_cents", "difference_cents"]
                           ].tolist() == expected_closed_row
