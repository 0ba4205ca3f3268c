"""AppTest of the Charges page (tellers, managers): apply a charge with review and confirm,
list an account's charges, waive one (managers), keep the catalogue (managers)."""
from __future__ import annotations

import itertools

import pytest

from apptest_util import app_bank_fixture, open_app, urls
from conftest import employee, funded_account, make_customer
from pages.charges import TAB
from test_dashboard_pages import show_tab
from test_loan_pages import click, texts

_codes = itertools.count(1)


app_bank = app_bank_fixture("account-charges")


@pytest.fixture(scope="module")
def staff(app_bank):
    manager = employee(app_bank, "manager")
    app_bank.charges.define(manager, "statement_copy", name="Statement copy", calc="flat",
                            amount="12.50")
    app_bank.charges.define(manager, "transfer_abroad", name="Transfer abroad",
                            calc="percent", rate_bp=150, minimum="2.00", maximum="25.00")
    return {"teller": employee(app_bank, "teller"), "manager": manager}


def balance(bank, number) -> int:
    return bank.read_one("SELECT balance_cents FROM accounts WHERE account_number = ?",
                         [number])[0]


@pytest.mark.parametrize("role, offered", [("manager", True), ("teller", True)])
def test_staff_see_the_charges_page(app_bank, staff, role, offered):
    at = open_app(app_bank, staff[role])
    assert ("account-charges" in urls(at)) is offered


def test_customers_do_not_see_it(app_bank, staff):
    from conftest import login_for
    cid = make_customer(app_bank)
    customer = login_for(app_bank, cid, f"chcust{next(_codes)}")
    assert "account-charges" not in urls(open_app(app_bank, customer))


# Each row: charge code, base amount, expected charge in cents (worked out by hand).
APPLY = [("statement_copy", "", 1250), ("transfer_abroad", "1000.00", 1500),
         ("transfer_abroad", "50.00", 200)]


@pytest.mark.parametrize("code, base, expected", APPLY)
def test_a_teller_applies_a_charge(app_bank, staff, code, base, expected):
    number = funded_account(app_bank, "100.00")
    at = open_app(app_bank, staff["teller"], "account-charges")
    at.text_input(key="ch_account").input(number).run()
    at.selectbox(key="ch_code").select(code)
    at.text_input(key="ch_base").input(base)
    at.text_input(key="ch_reason").input("Asked at the counter")
    click(at, "Review")
    assert "Check and confirm the charge" in texts(at)
    assert balance(app_bank, number) == 10_000
    click(at, "Confirm charge")
    # The confirmation says how much, on which account and why.
    assert f"Charged ${expected / 100:,.2f} to account {number}" in texts(at)
    assert "Asked at the counter" in at.success[0].value
    # A second click of the same confirm (a rerun) charges nothing more.
    at.run()
    assert balance(app_bank, number) == 10_000 - expected
    [listed] = [d.value for d in at.dataframe if "Why waived" in d.value.columns]
    assert list(listed["Status"]) == ["Charged"] and list(listed["Why waived"]) == [""]
    assert list(listed["Waived by"]) == [""]
    charges = app_bank.charges.list(staff["manager"], number)
    assert list(charges["amount_cents"]) == [expected]
    assert "Waive a charge" not in texts(at)  # tellers do not waive


@pytest.mark.parametrize("reason, said", [
    ("", "Please give the reason for the charge"),
])
def test_a_charge_without_reason_is_refused_at_review(app_bank, staff, reason, said):
    number = funded_account(app_bank, "100.00")
    at = open_app(app_bank, staff["teller"], "account-charges")
    at.text_input(key="ch_account").input(number).run()
    at.text_input(key="ch_reason").input(reason)
    click(at, "Review")
    assert said in texts(at)
    assert len(app_bank.charges.list(staff["manager"], number)) == 0


def test_a_charge_beyond_the_balance_is_refused_at_confirm(app_bank, staff):
    number = funded_account(app_bank, "5.00")
    at = open_app(app_bank, staff["teller"], "account-charges")
    at.text_input(key="ch_account").input(number).run()
    at.text_input(key="ch_reason").input("Copy of May")
    click(at, "Review")
    click(at, "Confirm charge")
    assert "is more than that" in texts(at)
    assert balance(app_bank, number) == 500


def test_a_manager_waives_a_charge(app_bank, staff):
    number = funded_account(app_bank, "100.00")
    done = app_bank.charges.apply(staff["teller"], number, "statement_copy", reason="Copy",
                                  idempotency_key=f"page-{next(_codes)}")
    at = open_app(app_bank, staff["manager"], "account-charges")
    at.text_input(key="ch_account").input(number).run()
    at.text_input(key="ch_waive_reason").input("Bank error")
    click(at, "Waive")
    assert f"Charge {done['charge_id']} was waived" in texts(at)
    assert balance(app_bank, number) == 10_000
    assert app_bank.charges.list(staff["manager"], number)["status"].tolist() == ["waived"]


@pytest.mark.parametrize("amount, said, saved", [
    ("3.00", "is saved", True), ("3.001", "at most two decimals", False)])
def test_a_manager_adds_a_charge_to_the_catalogue(app_bank, staff, amount, said, saved):
    code = f"page_charge_{next(_codes)}"
    at = show_tab(open_app(app_bank, staff["manager"], "account-charges"), TAB, "Catalogue")
    at.text_input(key="ch_def_code").input(code)
    at.text_input(key="ch_def_name").input("Cheque book")
    at.text_input(key="ch_def_amount").input(amount)
    click(at, "Save charge")
    assert said in texts(at)
    assert (code in set(app_bank.charges.catalogue(staff["manager"])["code"])) is saved


def test_the_catalogue_shows_only_the_figures_each_kind_uses(app_bank, staff):
    at = open_app(app_bank, staff["teller"], "account-charges")
    # Only the open tab runs (lazy_tabs): the catalogue is drawn once its tab is opened.
    assert [t.label for t in at.tabs] == ["Charge an account", "Catalogue"]
    assert not [d for d in at.dataframe if "Offered" in d.value.columns]
    show_tab(at, TAB, "Catalogue")
    [table] = [d.value for d in at.dataframe if "Offered" in d.value.columns]
    rows = {r["Code"]: (r["Amount"], r["Rate"], r["Minimum"], r["Maximum"])
            for r in table.to_dict("records")}
    assert [rows[c] for c in ("statement_copy", "transfer_abroad", "maintenance")] == [
        ("$12.50", "", "", ""), ("", "1.5 %", "$2.00", "$25.00"), ("", "", "", "")]


def test_tellers_cannot_edit_the_catalogue(app_bank, staff):
    at = show_tab(open_app(app_bank, staff["teller"], "account-charges"), TAB, "Catalogue")
    assert not [b for b in at.button if b.label == "Save charge"]
