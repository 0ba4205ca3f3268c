"""The managers' dashboard, customer analytics, ledger and statements pages, driven by AppTest.

The bank is the hand-built 2025 ledger of test_reports.py (worked answers in its docstring)
plus a few transactions made today, so that both the default filters and chosen ones have
known answers.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import pathlib
from decimal import Decimal

import pytest
from conftest import employee, login_for, make_customer
from streamlit.testing.v1 import AppTest
from streamlit.util import calc_hash
from test_reports import LEDGER, backdate, post_backdated

ROOT = pathlib.Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")


FEB_2025 = (dt.date(2025, 2, 1), dt.date(2025, 2, 28))
# The RFM segments count the chosen period: the year up to February (test_reports.RFM).
YEAR_TO_FEB_2025 = (dt.date(2024, 3, 1), dt.date(2025, 2, 28))
ENV = ("BANKMS_DB", "BANKMS_COOKIE_KEY_FILE", "BANKMS_COOKIE_KEY", "BANKMS_NO_DEMO")


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pages")
    saved = {name: os.environ.get(name) for name in ENV}
    os.environ["BANKMS_DB"] = str(folder / "bank.duckdb")
    os.environ["BANKMS_COOKIE_KEY_FILE"] = str(folder / "cookie.key")
    os.environ.pop("BANKMS_COOKIE_KEY", None)
    os.environ["BANKMS_NO_DEMO"] = "1"  # this test builds its own bank
    from pages import common
    bank = common.get_bank()
    system = bank.system_actor()
    ann = make_customer(bank, name="Ann Able")
    bob = make_customer(bank, name="Bob Baker")
    cat = make_customer(bank, name="Cat Cole")
    dan = make_customer(bank, name="Dan Dunn")
    names = {"A1": bank.accounts.open(system, ann, "checking"),
             "S1": bank.accounts.open(system, ann, "savings"),
             "B1": bank.accounts.open(system, bob, "checking", overdraft_limit="200.00"),
             "C1": bank.accounts.open(system, cat, "checking")}
    for cid, when in ((ann, "2024-12-01"), (bob, "2025-01-08"), (cat, "2024-11-01"),
                      (dan, "2025-02-15")):
        backdate(bank, customer_id=cid, when=when)
    for name, when in (("A1", "2024-12-01"), ("S1", "2024-12-01"), ("B1", "2025-01-08"),
                       ("C1", "2024-11-01")):
        backdate(bank, account=names[name], when=when)
    post_backdated(bank, LEDGER, names)
    # Today: a new customer with 250.00, and Ann moves 20.00 to savings.
    eve = make_customer(bank, name="Eve Evans")
    names["E1"] = bank.accounts.open(system, eve, "checking")
    bank.payments.deposit(system, names["E1"], "250.00")
    bank.payments.transfer(system, names["A1"], names["S1"], "20.00")
    ns = type("Shop", (), {})()
    ns.bank, ns.names = bank, names
    ns.manager = employee(bank, "manager")
    ns.teller = employee(bank, "teller")
    ns.ann = login_for(bank, ann, "ann.pages")
    ns.customers = {"Ann": ann, "Bob": bob}
    yield ns
    assert bank.audit.verify() == []
    bank.close()
    common._open_bank.clear()
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def open_page(shop, actor, url):
    """The app as `actor` on the page registered under `url`."""
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["session_id"] = shop.bank.auth.start_session(actor)
    at.run()
    assert url in offered(at), f"{url} is not offered to {actor.role}: {sorted(offered(at))}"
    # st.Page(callable) registers no script path, so AppTest.switch_page cannot find it by
    # file; select the page by its hash the way a browser's URL would.
    at._page_hash = calc_hash(url)
    at.run()
    assert not at.exception, at.exception
    return at


def offered(at) -> set:
    """The url paths of the pages st.navigation registered for this session."""
    from pages.common import discover_pages

    by_hash = {calc_hash(meta["url"]): meta["url"] for meta, _ in discover_pages()}
    return {by_hash.get(page_hash, page_hash) for page_hash in at._registered_pages}


def metrics(at):
    return {m.label: (m.value, m.delta) for m in at.metric}


# The tabs of the two analytics pages run only when open (st.tabs on_change="rerun"): where
# each picked bar or row lives, as (tabs key, tab label).
TABLES_TAB = ("dashboard_tab", "Top customers and dormant accounts")
SOURCE_TABS = {"dormant_accounts_table": TABLES_TAB, "top_customers": TABLES_TAB,
               "cross_sell": ("customers_tab", "Cross-sell"),
               "rfm_members": ("customers_tab", "Segment members"),
               "refusals_table": ("customers_tab", "Service")}


DASHBOARD_TABS = {
    "Money moved": ["Money moved per day by transaction type ($)",
                    "Transactions per day by type (count)"],
    "Balances": ["Balances by product at the end of each day ($)", "Accounts by balance (count)"],
    "Loans and customers": ["Loans outstanding by status and arrears ($)", "Customers (count)"],
    "Top customers and dormant accounts": ["Top customers by money held ($)",
                                           "Dormant accounts by kind (count)"],
}


def chart_titles(at) -> list:
    titles = [json.loads(c.proto.spec)["title"] for c in at.get("echarts_chart")]
    return [t[0]["text"] if isinstance(t, list) else t["text"] for t in titles]


def show_tab(at, key, label):
    """Open a tab as a click would (its label in the tabs' session state), and rerun."""
    at.session_state[key] = label
    at.run()
    assert not at.exception, at.exception
    return at


# -- dashboard -----------------------------------------------------------------------------------
def test_dashboard_shows_every_figure_and_chart(shop):
    at = open_page(shop, shop.manager, "dashboard")
    assert [t.value for t in at.title] == ["Dashboard"]
    shown = metrics(at)
    assert set(shown) == {"Total deposits", "Loans outstanding", "Portfolio at risk > 30 days",
                          "Non-performing loans", "Provision booked",
                          "Provision coverage of NPL", "Net loans", "Active customers",
                          "New customers", "New accounts", "Net flow"}
    # Balances now: A1 738.00, S1 217.90, B1 1,150.00, C1 6,030.00, E1 250.00.
    assert shown["Total deposits"][0] == "$8,385.90"
    assert shown["New customers"][0] == "1" and shown["New accounts"][0] == "1"
    # Four tabs of two charts; only the open one runs, the first one at first.
    assert [t.label for t in at.tabs] == list(DASHBOARD_TABS)
    for label, titles in DASHBOARD_TABS.items():
        if label != "Money moved":
            show_tab(at, "dashboard_tab", label)
        assert chart_titles(at) == titles, label
        assert not at.error
    # The last tab also holds the two tables and the CSV of all dormant accounts.
    subheaders = [s.value for s in at.header]
    assert subheaders[0] == "Top customers" and subheaders[1].startswith("Dormant accounts (")
    assert "csv_dormant_table" in [b.key for b in at.get("download_button")]


def _walk(node):
    yield node
    for child in getattr(node, "children", {}).values():
        yield from _walk(child)


def _drilled(at):
    """The open drill panel: (its rows, the page's caption texts). AppTest gives a plain
    st.dataframe no key, so the panel's table is the one after its 'the figure shown'."""
    elements = list(_walk(at.main))
    marks = [i for i, e in enumerate(elements) if type(e).__name__ == "Caption"
             and "the figure shown" in e.value]
    assert len(marks) == 1, "no drill panel, or more than one"
    table = next(e for e in elements[marks[0]:] if type(e).__name__ == "Dataframe")
    return table.value, [c.value for c in at.caption]


@pytest.mark.parametrize("button, expected_total, expected_rows", [
    # Balances now (see above): deposits are the five accounts holding money.
    ("open_total_deposits", "$8,385.90", 5),
    ("open_new_customers", None, 1),             # Eve, today
    ("open_loans_outstanding", "$0.00", 0),
])
def test_a_key_figure_opens_the_rows_behind_it(shop, button, expected_total, expected_rows):
    at = open_page(shop, shop.manager, "dashboard")
    at.button(key=button).click().run()
    assert not at.exception, at.exception
    rows, captions = _drilled(at)
    assert len(rows) == expected_rows
    if expected_total is not None:
        assert any(f"adding up to {expected_total}: the figure shown" in c for c in captions)
    assert "csv_drill_key_figures" in [b.key for b in at.get("download_button")]
    at.button(key="close_key_figures").click().run()
    assert not any("the figure shown" in c.value for c in at.caption)


def _opened(shop, url, prefix, period, state):
    """The page with a figure opened as a picked bar or row opens it. AppTest cannot click a
    dataframe row or a chart bar, so the state the page's selection callback would leave is
    set directly (the callback's mapping is tested in test_drill.py, the click in
    browser/test_dashboard.py)."""
    at = open_page(shop, shop.manager, url)
    at.date_input(key=f"{prefix}_period").set_value(period).run()
    if state["source"] in SOURCE_TABS:
        at.session_state[SOURCE_TABS[state["source"]][0]] = SOURCE_TABS[state["source"]][1]
    at.session_state[f"{prefix}_drill"] = state
    at.run()
    assert not at.exception, at.exception
    _opened.last = at
    return _drilled(at)


def test_a_picked_row_opens_its_postings(shop):
    rows, captions = _opened(
        shop, "dashboard", "dashboard", (dt.date(2025, 12, 1), dt.date(2025, 12, 31)),
        {"source": "dormant_accounts_table", "figure": "account_postings",
         "selection": {"account_number": shop.names["C1"]}})
    assert rows["Account"].tolist() == [shop.names["C1"]] * 2
    assert any("2 rows adding up to $6,030.00" in c for c in captions)


def _panel_open(at) -> bool:
    return any("the figure shown" in c.value for c in at.caption)


DEC_2025 = (dt.date(2025, 12, 1), dt.date(2025, 12, 31))


@pytest.mark.parametrize("url, prefix, state, change, expected_open", [
    # A picked bar or row belongs to the chart or table as it was drawn: a change of what the
    # page shows closes it, rather than showing rows that add up to nothing on screen.
    ("dashboard", "dashboard", {"source": "dormant_accounts_table",
                                "figure": "account_postings",
                                "selection": {"account_number": "C1"}},
     ("date_input", "dashboard_period", FEB_2025), False),
    ("dashboard", "dashboard", {"source": "top_customers", "figure": "customer_accounts",
                                "selection": {"customer_id": "Ann"}},
     ("selectbox", "dashboard_kind", "savings"), False),
    ("dashboard", "dashboard", {"source": "top_customers", "figure": "customer_accounts",
                                "selection": {"customer_id": "Ann"}},
     ("date_input", "dashboard_as_of", dt.date(2025, 12, 15)), False),
    ("customer-analytics", "customers", {"source": "rfm_members", "figure": "customer_activity",
                                         "selection": {"customer_id": "Ann"}},
     ("selectbox", "rfm_segment", "Loyal"), False),
    ("customer-analytics", "customers", {"source": "cross_sell", "figure": "high_balance",
                                         "selection": {"customer_id": "Ann"}},
     ("selectbox", "cross_sell_offer", "Savings account for a high balance"), False),
    # Nothing changed: the panel stays open through other reruns.
    ("dashboard", "dashboard", {"source": "top_customers", "figure": "customer_accounts",
                                "selection": {"customer_id": "Ann"}},
     ("selectbox", "dashboard_kind", "all"), True),
])
def test_a_change_of_filters_closes_a_picked_bar_or_row(shop, url, prefix, state, change,
                                                        expected_open):
    names = {**shop.names, **shop.customers}
    state = {**state, "selection": {k: names.get(v, v) for k, v in state["selection"].items()}}
    _opened(shop, url, prefix, DEC_2025, state)
    at = _opened.last
    widget, key, value = change
    if widget == "date_input":
        at.date_input(key=key).set_value(value).run()
    else:
        at.selectbox(key=key).select(value).run()
    assert not at.exception, at.exception
    assert _panel_open(at) is expected_open
    assert (prefix + "_drill" in at.session_state) is expected_open


@pytest.mark.parametrize("widget, value, figure, expected", [
    # The worked February 2025 answers of test_reports.py.
    ("period", (dt.date(2025, 2, 1), dt.date(2025, 2, 28)), "Total deposits",
     ("$981.20", "-$548.30")),
    ("period", (dt.date(2025, 2, 1), dt.date(2025, 2, 28)), "Net flow",
     ("-$598.30", "-$2,097.80")),
    ("period", (dt.date(2025, 2, 1), dt.date(2025, 2, 28)), "New customers", ("1", "0")),
    ("as_of", dt.date(2025, 1, 31), "Total deposits", ("$1,529.50", "+$1,499.50")),
    ("kind", "savings", "Total deposits", ("$203.20", "+$1.70")),
])
def test_dashboard_filters(shop, widget, value, figure, expected):
    at = open_page(shop, shop.manager, "dashboard")
    at.date_input(key="dashboard_period").set_value(
        (dt.date(2025, 2, 1), dt.date(2025, 2, 28))).run()
    if widget == "as_of":
        at.date_input(key="dashboard_as_of").set_value(value).run()
    elif widget == "kind":
        at.selectbox(key="dashboard_kind").select(value).run()
    assert not at.exception, at.exception
    assert metrics(at)[figure] == expected
    assert len(at.get("echarts_chart")) == 2  # the first tab's


def test_dashboard_lists_dormant_accounts_as_of_a_day(shop):
    at = open_page(shop, shop.manager, "dashboard")
    # Twelve months (the products' dormancy period, as end of day uses) after the last own
    # transactions of C1 (March 2025), B1 (April) and S1 (January); A1's is from September.
    at.date_input(key="dashboard_period").set_value(
        (dt.date(2026, 4, 1), dt.date(2026, 4, 30))).run()
    show_tab(at, *TABLES_TAB)
    dormant = at.dataframe[-1].value
    assert dormant["Account"].tolist() == [shop.names["C1"], shop.names["B1"],
                                                  shop.names["S1"]]
    assert [str(v) for v in dormant["Balance"]] == ["6030.00", "1150.00", "197.90"]
    assert any("dormancy period (12 months) up to 30 Apr 2026" in c.value for c in at.caption)


@pytest.mark.parametrize("role, url", [
    ("teller", "dashboard"), ("teller", "customer-analytics"), ("teller", "general-ledger"),
    ("customer", "dashboard"), ("customer", "general-ledger"),
])
def test_manager_pages_are_not_offered_to_others(shop, role, url):
    actor = shop.teller if role == "teller" else shop.ann
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["session_id"] = shop.bank.auth.start_session(actor)
    at.run()
    assert url not in offered(at) and "statements" in offered(at)


@pytest.mark.parametrize("page", ["reports_dashboard", "reports_customers", "reports_ledger",
                                  "reports_statements"])
def test_page_files_alone_draw_nothing(shop, page):
    at = AppTest.from_file(str(ROOT / "pages" / f"{page}.py"), default_timeout=30).run()
    assert not at.exception
    assert len(at.main.children) == 0


# -- customer analytics --------------------------------------------------------------------------
def test_customer_analytics(shop):
    at = open_page(shop, shop.manager, "customer-analytics")
    at.date_input(key="customers_period").set_value(YEAR_TO_FEB_2025).run()
    assert [t.label for t in at.tabs] == ["RFM segments", "Segment members", "Cross-sell",
                                          "Falling activity", "Service"]
    # Only the open tab runs: the segments chart and their summary as a static table (no data
    # grid on the first tab), the members of one segment, then the two service charts.
    assert chart_titles(at) == ["Customers by RFM segment (count)"]
    assert not at.dataframe and "rfm_segment" not in [s.key for s in at.selectbox]
    # The period applies: February alone leaves Ann and Bob hibernating, Cat inactive.
    at.date_input(key="customers_period").set_value(FEB_2025).run()
    assert any("in the period, 01 Feb 2025 to 28 Feb 2025 (28 days)" in c.value
               for c in at.caption)
    summary = at.table[0].value.set_index("Segment")
    assert summary["Customers"].to_dict() == {
        "Champions": "0", "Loyal": "0", "Potential loyalists": "0", "New": "0",
        "Needs attention": "0", "At risk": "0", "Hibernating": "2", "Inactive": "2"}
    assert summary["Money moved"]["Champions"] == "$0.00"
    at.date_input(key="customers_period").set_value(YEAR_TO_FEB_2025).run()
    show_tab(at, "customers_tab", "Segment members")
    assert not at.get("echarts_chart")
    at.selectbox(key="rfm_segment").select("At risk").run()
    assert at.dataframe[0].value["Name"].tolist() == ["Ann Able"]
    at.date_input(key="customers_period").set_value(
        (dt.date(2025, 5, 1), dt.date(2025, 5, 15))).run()
    show_tab(at, "customers_tab", "Cross-sell")
    assert not at.get("echarts_chart") and "rfm_segment" not in [s.key for s in at.selectbox]
    offers = at.dataframe[0].value
    assert offers["Name"].tolist() == ["Bob Baker"]
    at.selectbox(key="cross_sell_offer").select("Savings account for a high balance").run()
    assert at.dataframe[0].value["Name"].tolist() == ["Cat Cole"]
    show_tab(at, "customers_tab", "Service")
    assert chart_titles(at) == ["Refused transactions by reason (count)",
                                "Time to decide a loan (hours)"]
    assert not at.exception


@pytest.mark.parametrize("state, expected_names", [
    # Picked segment bars (the segments table below them is static) in the year to Feb 2025.
    ({"source": "rfm_segments", "figure": "rfm_segment", "selection": {"segment": "At risk"}},
     ["Ann Able"]),
    ({"source": "rfm_segments", "figure": "rfm_segment",
      "selection": {"segment": "Hibernating"}}, ["Cat Cole"]),
])
def test_customer_analytics_opens_a_segment(shop, state, expected_names):
    rows, captions = _opened(shop, "customer-analytics", "customers", YEAR_TO_FEB_2025, state)
    assert rows["Name"].tolist() == expected_names
    assert any(f"{len(expected_names)} rows: the figure shown." in c for c in captions)


def test_customer_analytics_opens_a_customers_transactions(shop):
    rows, captions = _opened(shop, "customer-analytics", "customers", YEAR_TO_FEB_2025, {
        "source": "rfm_members", "figure": "customer_activity",
        "selection": {"customer_id": shop.customers["Ann"]}})
    # Ann's own transactions in the year to 28 Feb 2025: 1,000 + 200 + 100 + 50.
    assert len(rows) == 4
    assert any("4 rows adding up to $1,350.00" in c for c in captions)


def test_service_figures_count_refusals(shop):
    with pytest.raises(Exception):
        shop.bank.payments.transfer(shop.ann, shop.names["B1"], shop.names["A1"], "1.00")
    at = show_tab(open_page(shop, shop.manager, "customer-analytics"), "customers_tab",
                  "Service")
    # Answers are cached for a minute; Refresh fetches them again.
    at.button(key="customers_refresh").click().run()
    shown = metrics(at)
    assert shown["Refused transactions"][0] == "1"
    assert at.dataframe[-1].value.values.tolist() == [["PermissionDenied", 1]]


def test_refresh_renews_the_open_rows_with_the_figures(shop):
    # Runs after test_service_figures_count_refusals (one PermissionDenied refusal today).
    today = shop.bank.reports.today()
    state = {"source": "refusals_table", "figure": "refusals",
             "selection": {"reason": "PermissionDenied"}}
    rows, _ = _opened(shop, "customer-analytics", "customers", (today, today), state)
    at = _opened.last
    before = len(rows)
    with pytest.raises(Exception):
        shop.bank.payments.transfer(shop.ann, shop.names["B1"], shop.names["A1"], "1.00")
    at.button(key="customers_refresh").click().run()
    assert metrics(at)["Refused transactions"][0] == str(before + 1)
    rows, captions = _drilled(at)
    assert len(rows) == before + 1


# -- ledger --------------------------------------------------------------------------------------
def test_ledger_page(shop):
    at = open_page(shop, shop.manager, "general-ledger")
    assert metrics(at)["Difference"][0] == "$0.00"
    at.date_input(key="ledger_as_of").set_value(dt.date(2025, 2, 28)).run()
    shown = metrics(at)
    assert shown["Total debits"][0] == shown["Total credits"][0] == "$983.20"
    # Only the open tab runs: the general ledger's widgets are there once it is opened.
    assert [w.key for w in at.date_input] == ["ledger_as_of"]
    show_tab(at, "ledger_tab", "General ledger")
    at.date_input(key="ledger_period").set_value(
        (dt.date(2025, 2, 1), dt.date(2025, 2, 28))).run()
    at.selectbox(key="ledger_account").select("GL1000").run()
    lines = at.dataframe[-1].value
    assert [str(v) for v in lines["Balance after"]] == ["-1430.00", "-930.00"]
    assert not at.exception


# -- statements ----------------------------------------------------------------------------------
def test_customer_statement_page(shop):
    at = open_page(shop, shop.ann, "statements")
    assert at.selectbox(key="statement_account").options == [
        f"{shop.names['A1']} · Checking", f"{shop.names['S1']} · Savings"]
    at.selectbox(key="statement_month").select((2025, 1)).run()
    shown = metrics(at)
    assert shown["Opening balance"][0] == "$0.00"
    assert shown["Money in"][0] == "$1,000.00"
    assert shown["Money out"][0] == "$202.00"
    assert shown["Closing balance"][0] == "$798.00"
    # The lines under human headers, money as dollars (exact Decimals, sortable), dates as
    # dates and the transaction as plain digits, not transaction_id / amount_cents / 798.00.
    [table] = [d for d in at.dataframe if "Description" in d.value.columns]
    columns = json.loads(table.proto.columns)
    assert [(columns[c]["label"], columns[c]["type_config"]["type"],
             columns[c]["type_config"].get("format")) for c in table.value.columns] == [
        ("Date", "date", "YYYY-MM-DD"), ("Description", "text", None),
        ("Amount", "number", "dollar"), ("Balance", "number", "dollar"),
        ("Transaction", "number", "%d")]
    assert table.value["Balance"].iloc[-1] == Decimal("798.00")
    labels = [b.label for b in at.get("download_button")]
    assert "Statement as PDF" in labels and "Statement as CSV" in labels
    at.selectbox(key="certificate_year").select(2025).run()
    assert any("interest paid **$3.20**" in m.value for m in at.markdown)
    assert not at.get("button") or "zip_build" not in [b.key for b in at.button]


def test_staff_statement_page_and_zip(shop):
    at = open_page(shop, shop.teller, "statements")
    at.text_input(key="statement_account_number").input(shop.names["B1"]).run()
    at.selectbox(key="statement_month").select((2025, 2)).run()
    assert metrics(at)["Closing balance"][0] == "-$50.00"
    at.text_input(key="statement_account_number").input("123").run()
    assert any("12 digits" in e.value for e in at.error)
    at.button(key="zip_build").click().run()
    assert not at.exception
    assert "zip_download" in [b.key for b in at.get("download_button")]


@pytest.mark.parametrize("button, expected_caption", [
    ("open_refused_transactions", "{refusals:,} rows: the figure shown."),
    ("open_decision_times", "0 rows: the loans decided"),
])
def test_service_figures_open_the_rows_behind_them(shop, button, expected_caption):
    today = shop.bank.reports.today()
    f = shop.bank.reports.filters(start=today, end=today)
    refusals = int(shop.bank.reports.query(shop.manager, "refusals_by_reason", f)
                   ["refusals"].sum())
    at = show_tab(open_page(shop, shop.manager, "customer-analytics"), "customers_tab",
                  "Service")
    at.date_input(key="customers_period").set_value((today, today)).run()
    at.button(key=button).click().run()
    assert not at.exception, at.exception
    captions = [c.value for c in at.caption]
    assert any(expected_caption.format(refusals=refusals) in c for c in captions), captions


def test_account_kinds_read_in_words_on_dashboard_and_statement(shop):
    at = open_page(shop, shop.manager, "dashboard")
    assert at.selectbox(key="dashboard_kind").options == [
        "All", "Checking", "Savings", "Term deposit"]
    at.selectbox(key="dashboard_kind").select("term_deposit").run()
    assert not at.exception, at.exception
    assert any("term deposit accounts" in c.value for c in at.caption)
    at = open_page(shop, shop.ann, "statements")
    at.selectbox(key="statement_month").select((2025, 1)).run()
    assert "(Checking)" in at.header[0].value and "checking" not in at.header[0].value


# -- figures a few seconds old, saying so (issue 13) ---------------------------------------------
@pytest.mark.parametrize("url", ["dashboard", "customer-analytics"])
def test_analytics_pages_say_when_their_figures_were_computed(shop, url):
    from bankms.services.businessday import to_bank_time

    before = to_bank_time(shop.bank, shop.bank.clock()).replace(microsecond=0)
    at = open_page(shop, shop.manager, url)
    shown = [c.value for c in at.caption if c.value.startswith("Figures as of ")]
    assert len(shown) == 1, shown
    stamp = dt.datetime.strptime(shown[0], "Figures as of %H:%M:%S").time()
    after = to_bank_time(shop.bank, shop.bank.clock())
    # The kept answer may be older than this page, never older than the bound.
    oldest = before - dt.timedelta(seconds=shop.bank.settings.value("dashboard_max_age_s"))
    assert oldest.time() <= stamp <= after.time() or oldest.date() != after.date()
    assert any(b.label == "Refresh now" for b in at.button)


# A chart's selection as ECharts keeps it (each series its own pick), before and after a click:
# the bar clicked is the one not held before. (held before, held now, picked first)
PICKED = [
    ([], [(0, 3)], (0, 3)),
    ([(0, 3)], [(0, 3), (2, 5)], (2, 5)),  # another series: both held, the new one wins
    ([(0, 3), (2, 5)], [(0, 4), (2, 5)], (0, 4)),
    ([(0, 3)], [], None),  # cleared
]


@pytest.mark.parametrize("before, now, first", PICKED)
def test_the_last_picked_point_opens(monkeypatch, before, now, first):
    from pages import reports_dashboard

    state = {"chart_x_held": before, "chart_x": {"selection": {"selected": [
        {"series_index": s, "data_indices": [i]} for s, i in now]}}}
    monkeypatch.setattr(reports_dashboard.st, "session_state", state)
    picked = reports_dashboard.picked_points("chart_x")
    assert (picked[0] if picked else None) == first
    assert state["chart_x_held"] == now
