"""Every table people read goes through pages.tables: the column rules on their own, then every
page of every role on a small demo bank, driven by AppTest, checked for human headers, money
as currency, dates without midnight times and ids that are not formatted as amounts.
"""
from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pandas as pd
import pytest
from apptest_util import app_bank_on, open_app, texts
from conftest import Clock, employee, funded_account

from pages.tables import show_columns, static_view, table_view  # noqa: F401 - show_columns: used by pages

# -- the column rules ------------------------------------------------------------------------
# column name, values, headers=, -> header, column type, format, values shown
RULES = [
    ("amount_cents", [123456, -5], None, "Amount", "number", "dollar",
     [Decimal("1234.56"), Decimal("-0.05")]),
    ("balance", [Decimal("36695.50"), None], None, "Balance", "number", "dollar",
     [Decimal("36695.50"), None]),
    ("monetary", [Decimal("1.00")], None, "Money moved", "number", "dollar", [Decimal("1.00")]),
    ("principal_outstanding", [Decimal("17000.00")], {"principal_outstanding": "Outstanding"},
     "Outstanding", "number", "dollar", [Decimal("17000.00")]),
    ("transaction_id", [1474960, 12], None, "Transaction", "number", "%d", [1474960, 12]),
    ("customer_id", [36695.0, None], None, "Customer", "number", "%d", [36695, None]),
    ("account_number", ["400000000854"], None, "Account", "text", None, ["400000000854"]),
    ("business_date", [pd.Timestamp("2026-11-30")], None, "Business day", "date", "YYYY-MM-DD",
     [pd.Timestamp("2026-11-30")]),
    ("opened_at", [pd.Timestamp("2026-11-30"), pd.Timestamp("2026-01-02")], None, "Opened",
     "date", "YYYY-MM-DD", None),
    ("posted_at", [pd.Timestamp("2026-11-30 09:33:12")], None, "When", "datetime",
     "YYYY-MM-DD HH:mm", None),
    ("due_date", [dt.date(2026, 9, 8)], None, "Due date", "date", "YYYY-MM-DD", None),
    ("rate_min_percent", [Decimal("4.90")], None, "Rate min percent", "number", "%.2f %%",
     [Decimal("4.90")]),
    ("fee_bp", [150], None, "Fee", "number", "%.2f %%", [Decimal("1.5")]),
    ("days_past_due", [Decimal("69")], None, "Days past due", "number", "%d", [69]),
    ("customers", [1234567], None, "Customers", "number", "localized", None),
    ("avg_recency_days", [0.234], None, "Average days since last transaction", "number",
     "%.1f", None),
    ("kind", ["loan_write_off", "withdrawal"], None, "Type", "text", None,
     ["Loan write-off", "Withdrawal"]),
    ("status", ["reduce_instalment", "Already said"], None, "Status", "text", None,
     ["Reduce instalment", "Already said"]),
    ("channel", ["atm"], None, "Channel", "text", None, ["ATM"]),
    ("memo", ["loan_write_off"], None, "Memo", "text", None, ["loan_write_off"]),
    ("active", [True, False], None, "Active", "checkbox", None, None),
]


@pytest.mark.parametrize("name, values, headers, header, kind, fmt, shown", RULES,
                         ids=[r[0] for r in RULES])
def test_column_rules(name, values, headers, header, kind, fmt, shown):
    df, config = table_view(pd.DataFrame({name: values}), headers=headers)
    column = config[header]
    assert column["label"] == header
    assert column["type_config"]["type"] == kind
    assert column["type_config"].get("format") == fmt
    if shown is not None:
        got = [None if pd.isna(v) else v for v in df[header].tolist()]
        assert got == shown
        assert all(type(g) is type(s) for g, s in zip(got, shown) if s is not None) or \
            kind != "number" or fmt != "dollar"


def test_money_never_goes_through_a_float():
    df, _ = table_view(pd.DataFrame({"amount_cents": [2**53 + 1]}))
    assert df["Amount"].tolist() == [Decimal(2**53 + 1) / 100]


def test_machine_duplicates_and_hidden_columns_are_left_out():
    df, config = table_view(pd.DataFrame({"amount": [Decimal("1.00")], "amount_cents": [100],
                                          "memo": ["x"], "kind": ["fee"]}), hide=("memo",))
    assert list(df.columns) == ["Amount", "Type"] == list(config)


def test_the_type_in_words_replaces_its_code():
    df, _ = table_view(pd.DataFrame({"kind": ["withdrawal"], "label": ["Card payment"]}))
    assert list(df.columns) == ["Type"] and df["Type"].tolist() == ["Card payment"]


def test_money_named_by_the_page_reads_ints_as_cents():
    df, config = table_view(pd.DataFrame({"total": [150], "fee": [Decimal("1.50")]}),
                            money=("total", "fee"))
    assert df["Total"].tolist() == df["Fee"].tolist() == [Decimal("1.50")]


def test_row_order_is_kept_for_selections():
    df, _ = table_view(pd.DataFrame({"id": [3, 1, 2]}, index=[7, 8, 9]))
    assert df["Id"].tolist() == [3, 1, 2] and df.index.tolist() == [0, 1, 2]


# column name, values -> the text st.table shows (show_table(static=True)), right-aligned
STATIC = [
    ("monetary_cents", [123456, -5, None], ["$1,234.56", "-$0.05", ""], True),
    ("balance", [Decimal("36695.50")], ["$36,695.50"], True),
    ("customers", [1200, 0], ["1,200", "0"], True),
    ("customer_id", [36695.0], ["36695"], True),
    ("avg_recency_days", [3.25, float("nan")], ["3.2", ""], True),
    ("fee_bp", [150], ["1.50 %"], True),
    ("business_date", [pd.Timestamp("2026-11-30")], ["2026-11-30"], False),
    ("posted_at", [pd.Timestamp("2026-11-30 09:33:12")], ["2026-11-30 09:33"], False),
    ("kind", ["withdrawal"], ["Withdrawal"], False),
    # st.table reads cells as Markdown: stored text is shown as typed, never as markup.
    ("full_name", ["**Bob** <b>x</b>"], [r"\*\*Bob\*\* \<b\>x\</b\>"], False),
]


@pytest.mark.parametrize("name, values, text, right", STATIC, ids=[r[0] for r in STATIC])
def test_a_static_table_shows_the_same_formats_as_text(name, values, text, right):
    styled = static_view(*table_view(pd.DataFrame({name: values})))
    assert styled.data.iloc[:, 0].tolist() == text
    assert ("text-align: right" in styled.to_html()) is right


def test_two_columns_under_one_header_keep_their_names():
    df, config = table_view(pd.DataFrame({"a": [1], "b": [2]}), headers={"a": "X", "b": "X"})
    assert list(df.columns) == ["a", "b"] and config["a"]["label"] == config["b"]["label"]


# -- every page ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """A small demo bank with one closed business day, and its staff and a customer."""
    from bankms.demo import build_demo, demo_logins

    folder = tmp_path_factory.mktemp("tables")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BANKMS_COOKIE_KEY_FILE", str(folder / "cookie.key"))
        mp.delenv("BANKMS_COOKIE_KEY", raising=False)
        mp.setenv("BANKMS_NO_DEMO", "1")
        with app_bank_on(str(folder / "bank.duckdb")) as bank:
            build_demo(bank, customers=12, months=3, seed=3)
            day = bank.business_date
            system = bank.system_actor()
            funded_account(bank, "250.00")  # a deposit on the day closed below
            number = bank.read_one(
                "SELECT a.account_number FROM accounts a JOIN customers c ON c.id = "
                "a.customer_id WHERE c.status = 'active' AND a.status = 'active' AND a.kind = "
                "'checking' ORDER BY a.id LIMIT 1")[0]
            bank.clock = Clock(dt.datetime.combine(day + dt.timedelta(days=1), dt.time(1)))
            bank.end_of_day(system, until=day)
            customer = next(r for r in demo_logins(bank) if r["role"] == "customer")
            actors = {"manager": employee(bank, "manager", "tables.manager"),
                      "teller": employee(bank, "teller", "tables.teller"),
                      "customer": bank.auth.login(customer["username"], customer["password"])}
            yield {"bank": bank, "actors": actors, "number": number}


# role, page, what to do first (widget, key, value) -> the least number of tables shown
PAGES = [
    ("manager", "start", [], 0),
    ("teller", "start", [], 0),
    ("customer", "start", [], 1),
    ("manager", "dashboard", [("tab", "dashboard_tab", "Top customers and dormant accounts")], 2),
    ("manager", "customer-analytics", [("tab", "customers_tab", "Segment members")], 1),
    ("manager", "customer-analytics", [("tab", "customers_tab", "Cross-sell")], 1),
    ("manager", "customer-analytics", [("tab", "customers_tab", "Falling activity")], 1),
    ("manager", "customer-analytics", [("tab", "customers_tab", "Service")], 1),
    ("manager", "general-ledger", [], 1),
    ("manager", "general-ledger", [("tab", "ledger_tab", "General ledger")], 2),
    ("manager", "loan-review", [], 0),  # the applications, if any are waiting
    ("manager", "loan-review", [("tab", "review_tab", "Arrears")], 1),
    ("manager", "loan-review", [("tab", "review_tab", "Provisions")], 1),
    ("manager", "loan-products", [("tab", "lp_tab", "Edit a product")], 0),
    ("manager", "deposit-products", [("tab", "dp_tab", "New terms")], 1),
    ("manager", "loan-applications", [], 1),
    ("manager", "loan-products", [], 1),
    ("manager", "staff", [], 1),
    ("manager", "bank-operations", [], 1),
    ("manager", "bank-operations", [("tab", "ops_tab", ":material/tune: Settings")], 2),
    ("manager", "bank-operations", [("tab", "ops_tab", ":material/event_busy: Bank holidays")],
     2),
    ("manager", "end-of-day", [("tab", "eod_tab", "Recent days")], 1),
    ("manager", "end-of-day", [("tab", "eod_tab", "Chain heads")], 1),
    ("manager", "deposit-products", [], 1),
    ("manager", "account-charges", [("tab", "ch_tab", "Catalogue")], 1),
    ("manager", "approvals", [], 0),
    # The month before the one the closed day may have begun: it has transactions.
    ("manager", "statements", [("text_input", "statement_account_number", "NUMBER"),
                               ("selectbox", "statement_month", 1)], 1),
    ("teller", "customers", [("text_input", "customers_query", "NUMBER"),
                             ("button", "customers_search_go", None)], 2),
    ("teller", "standing-orders", [], 0),
    ("teller", "term-deposits", [], 0),
    ("customer", "my-accounts", [], 1),
    ("customer", "my-history", [], 1),
    ("customer", "my-loans", [], 1),
    ("customer", "statements", [("selectbox", "statement_month", 1)], 1),
    ("customer", "my-standing-orders", [], 0),
    ("customer", "my-term-deposits", [], 0),
]


def _is_midnight(series: pd.Series) -> bool:
    times = pd.to_datetime(series.dropna())
    return len(times) > 0 and bool((times == times.dt.normalize()).all())


# Headers of ids and account numbers: plain digits or text, never "1,474,960" or "36695.5".
ID_HEADERS = {"Transaction", "Customer", "Loan", "Request", "Account", "Id", "Up to id", "Run",
              "#", "Customer number"}


def assert_formatted(table) -> None:
    """One st.dataframe as people read it: every column under a human header, money as
    currency, ids as plain digits or text, dates without midnight times, no float money."""
    df = table.value
    config = json.loads(table.proto.columns or "{}")
    for name in df.columns:
        column = config.get(str(name), {})
        label = column.get("label")
        kind = column.get("type_config", {}).get("type")
        fmt = column.get("type_config", {}).get("format")
        where = f"{table.key}: {name!r} -> {label!r} {kind} {fmt}"
        assert label is not None, where
        assert "_" not in label and (label[:1].isupper() or label in ("", "#")), where
        values = [v for v in df[name].tolist() if v is not None and not pd.isna(v)]
        if any(isinstance(v, Decimal) for v in values):
            assert (kind, fmt) in (("number", "dollar"), ("number", "%.2f %%"),
                                   ("number", "%d")), where
        if label in ID_HEADERS and values and not all(isinstance(v, str) for v in values):
            assert fmt == "%d", where
        if fmt == "dollar":
            assert not any(isinstance(v, float) for v in values), where
        if pd.api.types.is_datetime64_any_dtype(df[name]) and _is_midnight(df[name]):
            assert kind == "date", where
        if kind == "datetime":
            assert fmt == "YYYY-MM-DD HH:mm", where
        if kind is None and values:
            # Only text (or nothing at all) is left to Streamlit's own formatting.
            assert all(isinstance(v, str) for v in values), where


@pytest.mark.parametrize("role, url, steps, tables_min", PAGES,
                         ids=[f"{p[0]}-{p[1]}-{p[2][0][2] if p[2] else ''}" for p in PAGES])
def test_every_table_of_the_page_is_formatted(demo, role, url, steps, tables_min):
    # The home page ("start") is where every role lands.
    at = open_app(demo["bank"], demo["actors"][role], None if url == "start" else url)
    for i, (widget, key, value) in enumerate(steps):
        if widget == "tab":  # opened as a click would: its label in the tabs' state
            at.session_state[key] = value
            at.run()
            continue
        element = getattr(at, widget)(key=key)
        if widget == "button":
            element.click()
        elif widget == "selectbox":
            element.select_index(value)
        else:
            element.input(demo["number"] if value == "NUMBER" else value)
        if steps[i + 1:i + 2] and steps[i + 1][0] == "button":
            continue  # typed into a form: its submit button sends it
        at.run()
    assert not at.exception, at.exception
    assert len(at.dataframe) >= tables_min, texts(at)
    for table in at.dataframe:
        assert_formatted(table)
