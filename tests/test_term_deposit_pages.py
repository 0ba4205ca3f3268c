"""AppTest of the term deposit pages through app.py: a customer opens one from their own
account (review, confirm once) and sees it with its expected payout; a teller opens one for a
customer and closes one early."""
from __future__ import annotations

import itertools
from decimal import Decimal

import pytest
from apptest_util import app_bank_on, open_app, urls
from conftest import employee, funded_account, login_for, make_customer
from test_daily_pages import button_starting, texts
from test_term_deposits import set_terms

_names = itertools.count(1)


@pytest.fixture(scope="module")
def app_bank(tmp_path_factory):
    with app_bank_on(str(tmp_path_factory.mktemp("td_pages") / "bank.duckdb")) as bank:
        set_terms(bank, early_closure_penalty="interest_months", penalty_months=3)
        yield bank


def customer_with_login(bank, amount):
    cid = make_customer(bank, name=f"Tess Saver {next(_names)}")
    number = funded_account(bank, amount, customer_id=cid)
    return cid, number, login_for(bank, cid, f"tdcust{next(_names)}")


def test_each_role_sees_its_term_deposit_page(app_bank):
    assert "my-term-deposits" in urls(open_app(app_bank, customer_with_login(app_bank, "0")[2]))
    teller_urls = urls(open_app(app_bank, employee(app_bank, "teller")))
    assert "term-deposits" in teller_urls and "my-term-deposits" not in teller_urls


def test_customer_reviews_and_opens_a_term_deposit_once(app_bank):
    cid, number, login = customer_with_login(app_bank, "6,000.00")
    at = open_app(app_bank, login, "my-term-deposits")
    assert "You have no term deposits yet." in texts(at)
    at.text_input(key="my_td_amount").input("5,000.00")
    at.number_input(key="my_td_months").set_value(6)
    at.radio(key="my_td_instruction").set_value("renew")
    at.button(key="my_td_review").click().run()
    page = texts(at)
    quote = app_bank.term_deposits.quote(login, linked_account=number, amount="5000.00",
                                         term_months=6)
    assert "Check and confirm" in page and str(quote["maturity_date"]) in page
    assert f"${quote['payout']:,}" in page
    assert app_bank.accounts.balance(login, number) == Decimal("6000.00")  # nothing yet
    button_starting(at, "my_td_confirm_").click().run()
    # The confirmation itself says when it matures and what it will pay.
    opened = at.success[0].value.replace("\\", "")
    assert "is open" in opened and str(quote["maturity_date"]) in opened
    assert f"paying ${quote['payout']:,} at maturity" in opened
    assert app_bank.accounts.balance(login, number) == Decimal("1000.00")
    listed = app_bank.term_deposits.list(login)
    assert len(listed) == 1 and listed["maturity_instruction"][0] == "renew"
    page = texts(at)
    assert listed["account_number"][0] in page and f"${quote['payout']:,}" in page
    # Status, rate and instruction in words, not codes or four-decimal rates.
    assert "Running" in page and "3.5 %" in page and "3.5000" not in page
    assert "Renew principal and interest for the same term" in page
    # The statement line of the linked account says what the money went to, in plain words.
    day = app_bank.business_date
    lines = app_bank.reports.statement(login, number, day.year, day.month).lines
    assert (f"Transfer to {listed['account_number'][0]} - Term deposit for 6 months at "
            "3.5 %") in list(lines["description"])


def test_customer_over_balance_is_refused_beside_the_review(app_bank):
    _, number, login = customer_with_login(app_bank, "100.00")
    at = open_app(app_bank, login, "my-term-deposits")
    at.text_input(key="my_td_amount").input("100.01")
    at.button(key="my_td_review").click().run()
    assert "without overdraft" in at.error[0].value
    assert app_bank.term_deposits.list(login).empty
    assert app_bank.accounts.balance(login, number) == Decimal("100.00")


def test_teller_opens_for_a_customer_and_closes_one_early(app_bank):
    cid, number, login = customer_with_login(app_bank, "3,000.00")
    teller = employee(app_bank, "teller")
    at = open_app(app_bank, teller, "term-deposits")
    at.text_input(key="td_customer_id").input(str(cid))
    at.button(key="td_show").click().run()
    assert "This customer has no term deposits." in texts(at)
    at.text_input(key="td_open_source").input(number)
    at.text_input(key="td_open_amount").input("2,000.00")
    at.button(key="td_open_review").click().run()
    assert "Check and confirm with the customer" in texts(at)
    button_starting(at, "td_open_confirm_").click().run()
    assert "is open" in at.success[0].value
    deposit = app_bank.term_deposits.list(login)["account_number"][0]
    assert app_bank.accounts.balance(login, number) == Decimal("1000.00")

    close_number = next(t for t in at.text_input if (t.key or "").startswith("td_close_number"))
    close_number.input(deposit)
    next(t for t in at.text_input if (t.key or "").startswith("td_close_reason")).input(
        "moving abroad")
    next(c for c in at.checkbox if (c.key or "").startswith("td_close_ok")).check()
    button_starting(at, "td_close_go_").click().run()
    # Amounts as money: interest $0.00, penalty $0.00, tax $0.00, the principal paid back.
    assert ("is closed: interest $0.00, penalty $0.00, tax withheld $0.00; $2,000.00 was "
            "paid to its linked account.") in texts(at)
    # Closed the day it opened: no interest, no penalty, the principal back.
    assert app_bank.accounts.balance(login, number) == Decimal("3000.00")
    assert app_bank.term_deposits.get(teller, deposit)["status"] == "closed_early"
