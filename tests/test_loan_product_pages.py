"""AppTest of the Loan products page (managers) and of the product terms on the quote, through
app.py. One bank file for the module; each test works on its own product."""
from __future__ import annotations

import itertools

import pytest

from apptest_util import app_bank_fixture, open_app, urls
from conftest import employee, make_customer
from test_dashboard_pages import show_tab
from test_loan_pages import click, texts

_codes = itertools.count(1)


app_bank = app_bank_fixture("loan_products")


@pytest.fixture(scope="module")
def staff(app_bank):
    return {"teller": employee(app_bank, "teller"), "manager": employee(app_bank, "manager")}


def new_product(bank, **terms):
    code = f"page_product_{next(_codes)}"
    bank.loans.create_product(bank.system_actor(), code=code, name=f"Product {code}",
                              amount_min="1,000.00", amount_max="20,000.00",
                              term_min_months=6, term_max_months=36, rate_min_percent="5",
                              rate_max_percent="15", **terms)
    return code


@pytest.mark.parametrize("role, offered", [("manager", True), ("teller", False)])
def test_only_managers_see_the_products_page(app_bank, staff, role, offered):
    at = open_app(app_bank, staff[role])
    assert ("loan-products" in urls(at)) is offered


# tab opened -> (grids, forms) drawn: only the open tab runs, so the page opens on the table alone
TABS = [
    (None, 1, 0),
    ("Edit a product", 0, 1),
    ("New product", 0, 1),
]


@pytest.mark.parametrize("tab, grids, forms", TABS)
def test_only_the_open_tab_is_drawn(app_bank, staff, tab, grids, forms):
    new_product(app_bank)
    at = open_app(app_bank, staff["manager"], "loan-products")
    assert [t.label for t in at.tabs] == ["Products", "Edit a product", "New product"]
    if tab:
        show_tab(at, "lp_tab", tab)
    assert (len(at.dataframe), len(at.get("form"))) == (grids, forms)


@pytest.mark.parametrize("tab, away", [("New product", "Products"),
                                       ("New product", "Edit a product")])
def test_what_is_typed_in_a_form_survives_opening_another_tab(app_bank, staff, tab, away):
    # A tab once opened stays drawn (hidden) when another is opened: a form's typed input
    # lives in the browser until submitted, and undrawn it was lost (lazy_tabs keep=).
    at = show_tab(open_app(app_bank, staff["manager"], "loan-products"), "lp_tab", tab)
    # AppTest keeps a form's typed values out of runs until submit, as the browser does: what
    # it can see is that the form is still drawn, so the browser keeps what was typed (checked
    # in Chromium in tests/browser/test_loan_products_browser.py).
    show_tab(at, "lp_tab", away)
    assert [w.key for w in at.text_input if w.key == "lp_new_code"] == ["lp_new_code"]


CREATE = [
    # what is typed, what the page says, whether the product exists afterwards
    ({"amount_min": "500.00", "amount_max": "9,000.00", "rate_min_percent": "3",
      "rate_max_percent": "9.5"}, "is created and offered", True),
    ({"amount_min": "9,500.00", "amount_max": "9,000.00", "rate_min_percent": "3",
      "rate_max_percent": "9.5"}, "smallest amount must not exceed the largest", False),
    ({"amount_min": "500.00", "amount_max": "9,000.00", "rate_min_percent": "3",
      "rate_max_percent": "61"}, "between 0 and 60 %", False),
]


@pytest.mark.parametrize("typed, said, created", CREATE)
def test_a_manager_creates_a_product(app_bank, staff, typed, said, created):
    code = f"new_product_{next(_codes)}"
    at = show_tab(open_app(app_bank, staff["manager"], "loan-products"), "lp_tab",
                  "New product")
    at.text_input(key="lp_new_code").input(code)
    at.text_input(key="lp_new_name").input("Student loan")
    for field, value in typed.items():
        at.text_input(key=f"lp_new_{field}").input(value)
    at.number_input(key="lp_new_disbursement_fee_bp").set_value(100)
    click(at, "Create product")
    assert said in texts(at)
    codes = set(app_bank.loans.products(include_inactive=True)["code"])
    assert (code in codes) is created
    if created:
        assert app_bank.loans._product(code)["disbursement_fee_bp"] == 100


def test_a_manager_edits_and_deactivates_a_product(app_bank, staff):
    code = new_product(app_bank)
    at = show_tab(open_app(app_bank, staff["manager"], "loan-products"), "lp_tab",
                  "Edit a product")
    at.selectbox(key="lp_edit_code").select(code).run()
    at.text_input(key=f"lp_edit_{code}_late_fee").input("30.00")
    at.selectbox(key=f"lp_edit_{code}_frequency").select("monthly")
    click(at, "Save changes")
    assert f"Loan product {code} is saved" in texts(at)
    assert app_bank.loans._product(code)["late_fee_cents"] == 3_000
    # A change of the rate range waits for a second manager.
    at.text_input(key=f"lp_edit_{code}_rate_max_percent").input("16")
    click(at, "Save changes")
    assert "waits for another manager's approval" in texts(at)
    assert str(app_bank.loans._product(code)["rate_max_percent"]) == "15.0000"
    click(at, "Stop offering it")
    assert "is no longer offered" in texts(at)
    assert not app_bank.loans._product(code, include_inactive=True)["active"]
    assert code not in set(app_bank.loans.products()["code"])


def test_the_quote_shows_the_terms_and_the_fee(app_bank, staff):
    code = new_product(app_bank, disbursement_fee="10.00", disbursement_fee_bp=150)
    cid = make_customer(app_bank, name="Fee Fiona")
    at = open_app(app_bank, staff["teller"], "loan-applications")
    at.text_input(key="desk_customer").input(str(cid)).run()
    at.selectbox(key="desk_apply_product").select(code)
    at.text_input(key="desk_apply_amount").input("10,000.00")
    at.number_input(key="desk_apply_term").set_value(12)
    at.text_input(key="desk_apply_purpose").input("studies")
    at.text_input(key="desk_apply_income").input("3,000.00")
    at.run()
    click(at, "Show quote")
    shown = texts(at)
    # 10.00 + 1.5 % of 10,000.00 = 160.00; 9,840.00 reaches the account.
    assert "Repayments monthly, equal instalments" in shown
    assert "Disbursement fee $160.00: $9,840.00 reaches the account" in shown.replace("*", "")
