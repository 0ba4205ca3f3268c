"""AppTest of the Deposit products page (managers) and of the product choice when staff open an
account, through app.py. One bank file for the module; each test works on its own product."""
from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal

import pytest

from apptest_util import app_bank_fixture, open_app, urls
from conftest import employee, make_customer
from test_daily_pages import button_starting, by_label
from test_dashboard_pages import show_tab
from test_loan_pages import click, texts

_codes = itertools.count(1)


app_bank = app_bank_fixture("deposit_products")


@pytest.fixture(scope="module")
def staff(app_bank):
    return {"teller": employee(app_bank, "teller"), "manager": employee(app_bank, "manager")}


def new_product(bank, kind="savings", **terms):
    code = f"page_product_{next(_codes)}"
    bank.deposit_products.create(bank.system_actor(), code=code, name=f"Product {code}",
                                 kind=kind, terms=terms)
    return code


@pytest.mark.parametrize("role, offered", [("manager", True), ("teller", False)])
def test_only_managers_see_the_products_page(app_bank, staff, role, offered):
    at = open_app(app_bank, staff[role])
    assert ("deposit-products" in urls(at)) is offered


# tab opened -> (grids, forms) drawn: only the open tab runs, so the page opens on the table alone
TABS = [
    (None, 1, 0),
    ("New terms", 1, 1),  # the chosen product's versions, and its form
    ("New product", 0, 1),
]


@pytest.mark.parametrize("tab, grids, forms", TABS)
def test_only_the_open_tab_is_drawn(app_bank, staff, tab, grids, forms):
    at = open_app(app_bank, staff["manager"], "deposit-products")
    assert [t.label for t in at.tabs] == ["Products", "New terms", "New product"]
    if tab:
        show_tab(at, "dp_tab", tab)
    assert (len(at.dataframe), len(at.get("form"))) == (grids, forms)


CREATE = [
    # rate, tiers typed, what the page says, whether the product exists afterwards
    ("1.25", "0: 1.00\n5,000.00: 1.5", "is created, offered from", True),
    ("1.12345", "", "at most four decimals", False),
    ("1.25", "-5.00: 1.5", "below a zero balance", False),
    ("1.25", "5,000.00 1.5", "is not 'from balance: rate'", False),
]


@pytest.mark.parametrize("rate, tiers, said, created", CREATE)
def test_a_manager_creates_a_product(app_bank, staff, rate, tiers, said, created):
    code = f"new_product_{next(_codes)}"
    at = show_tab(open_app(app_bank, staff["manager"], "deposit-products"), "dp_tab",
                  "New product")
    at.selectbox(key="dp_new_kind").select("savings").run()
    at.text_input(key="dp_new_code").input(code)
    at.text_input(key="dp_new_name").input("Bonus saver")
    at.text_input(key="dp_new_savings_interest_rate_percent").input(rate)
    at.text_input(key="dp_new_savings_maintenance_fee").input("1.50")
    at.text_area(key="dp_new_savings_tiers").input(tiers)
    click(at, "Create product")
    assert said in texts(at)
    codes = set(app_bank.deposit_products.list(staff["manager"])["code"])
    assert (code in codes) is created
    if created:
        got = app_bank.deposit_products.get(staff["manager"], code)
        assert (got["interest_rate_percent"], got["maintenance_fee_cents"], got["tiers"]) == (
            Decimal("1.25"), 150, [(0, Decimal("1")), (500_000, Decimal("1.5"))])


def test_a_manager_creates_a_product_offered_from_a_later_date(app_bank, staff):
    code = f"launch_product_{next(_codes)}"
    start = app_bank.business_date + dt.timedelta(days=10)
    at = show_tab(open_app(app_bank, staff["manager"], "deposit-products"), "dp_tab",
                  "New product")
    at.text_input(key="dp_new_code").input(code)
    at.text_input(key="dp_new_name").input("Launch checking")
    at.date_input(key="dp_new_checking_start").set_value(start)
    click(at, "Create product")
    assert f"is created, offered from {start}" in texts(at)
    versions = app_bank.deposit_products.versions(staff["manager"], code)
    assert [str(d)[:10] for d in versions["effective_date"]] == [str(start)]
    # The products table in words: tax as a percentage, no basis points, no midnight times.
    show_tab(at, "dp_tab", "Products")
    [table] = [d.value for d in at.dataframe if "Tax withheld" in d.value.columns]
    assert "Tax (bp)" not in table.columns and set(table["Tax withheld"]) == {"0 %"}
    assert not table.astype(str).apply(lambda c: c.str.contains("00:00")).any().any()
    # The migrated checking product's "no cap" is not shown as $100,000,000,000.00.
    overdraft = dict(zip(table["Code"], table["Largest overdraft"]))
    assert (overdraft["checking"], overdraft["savings"]) == ("No limit", "Not allowed")


def test_a_manager_gives_a_product_new_terms_from_a_date_and_withdraws_it(app_bank, staff):
    code = new_product(app_bank, interest_rate_percent="1.5")
    manager = staff["manager"]
    start = app_bank.business_date + dt.timedelta(days=5)
    at = show_tab(open_app(app_bank, manager, "deposit-products"), "dp_tab", "New terms")
    at.selectbox(key="dp_edit_code").select(code).run()
    at.date_input(key=f"dp_edit_{code}_start").set_value(start)
    at.text_input(key=f"dp_edit_{code}_interest_rate_percent").input("1.75")
    click(at, "Save new terms")
    assert f"Deposit product {code} has new terms from {start}" in texts(at)
    products = app_bank.deposit_products
    assert [products.get(manager, code, on=day)["interest_rate_percent"] for day in (
        start - dt.timedelta(days=1), start)] == [Decimal("1.5"), Decimal("1.75")]
    assert "Future" in texts(at)  # the version to come is listed
    # A rate above the four-eyes rate waits for another manager.
    at.text_input(key=f"dp_edit_{code}_interest_rate_percent").input("2.5")
    click(at, "Save new terms")
    assert "waits for another manager's approval" in texts(at)
    assert products.get(manager, code, on=start)["interest_rate_percent"] == Decimal("1.75")
    click(at, "Withdraw it (no new accounts)")
    assert f"Deposit product {code} is withdrawn" in texts(at)
    assert products.get(manager, code)["active"] is False


@pytest.mark.parametrize("role", ["teller", "manager"])
def test_staff_open_an_account_on_a_chosen_product(app_bank, staff, role):
    code = new_product(app_bank, interest_rate_percent="1.1")
    withdrawn = new_product(app_bank)
    app_bank.deposit_products.set_active(staff["manager"], withdrawn, False)
    cid = make_customer(app_bank, name="Product Pia")
    at = open_app(app_bank, staff[role], "accounts")
    by_label(at.text_input, "Customer id").input(str(cid))
    choice = by_label(at.selectbox, "Product")
    assert choice.options[0].startswith("Checking (checking")  # the standard product first
    assert not any(withdrawn in option for option in choice.options)
    choice.select(code)
    button_starting(at, "open_go_").click().run()
    assert not at.exception
    assert "Opened savings account" in texts(at)
    (number,) = app_bank.accounts.list(staff[role], cid)["account_number"]
    got = app_bank.accounts.get(staff[role], number)
    assert (got["product_code"], got["interest_rate_percent"]) == (code, Decimal("1.1"))
    assert f"Product {code}" in texts(at).replace("*", "")
