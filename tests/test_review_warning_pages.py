"""AppTest of the review step's warnings (issue 13): what Confirm would meet (funds, the daily
transfer limit, four-eyes) is shown before Confirm, on the customer's Transfer page and the
teller's Cash & transfers page; a normal payment shows no warning. And `available` on My
accounts and the customer overview means what the transfer review says."""
from __future__ import annotations

import itertools
from decimal import Decimal

import pytest
from apptest_util import app_bank_fixture, button_starting, open_app, texts
from conftest import customer_account, employee, login_for

_names = itertools.count(1)


app_bank = app_bank_fixture("review_warnings")


@pytest.fixture(scope="module")
def teller(app_bank):
    return employee(app_bank, "teller")


def review_transfer(bank, login, target, amount):
    at = open_app(bank, login, "my-transfer")
    at.text_input(key="my_transfer_target").input(target)
    at.text_input(key="my_transfer_amount").input(amount)
    at.button(key="my_transfer_review").click().run()
    assert not at.exception, at.exception
    return at


def teller_review(bank, teller, kind, number, amount):
    """The Cash & transfers page after Review of a deposit into or withdrawal from `number`."""
    at = open_app(bank, teller, "cash")
    if kind != "deposit":
        at.radio(key="cash_kind").set_value(kind.capitalize()).run()
    side = "target" if kind == "deposit" else "source"
    at.text_input(key=f"cash_{side}_{kind}").input(number)
    at.text_input(key=f"cash_amount_{kind}").input(amount)
    at.button(key=f"cash_review_{kind}").click().run()
    assert not at.exception, at.exception
    return at


def test_the_issue_example_is_warned_before_confirm(app_bank):
    cid, a = customer_account(app_bank, "Ivy Issue", "165.70")
    _, b = customer_account(app_bank, "Hidden Payee", "2,500.00")
    login = login_for(app_bank, cid, f"ivy{next(_names)}")
    at = review_transfer(app_bank, login, b, "6,000.00")
    warnings = [w.value for w in at.warning]
    assert any(f"Only $165.70 is available on {a}; this transfer of $6,000.00 would be "
               "refused." in w.replace("\\", "") for w in warnings), warnings
    assert button_starting(at, "my_transfer_confirm_")  # shown before Confirm, not instead
    page = texts(at)
    assert "Hidden" not in page and "2,500.00" not in page
    assert app_bank.accounts.balance(login, a) == Decimal("165.70")  # nothing moved


def test_the_daily_limit_warning_says_what_is_left_today(app_bank):
    cid, a = customer_account(app_bank, "Lim Itless", "20,000.00")
    _, b = customer_account(app_bank, "Lou Payee", "0")
    login = login_for(app_bank, cid, f"lim{next(_names)}")
    app_bank.payments.transfer(login, a, b, "3,000.00")
    at = review_transfer(app_bank, login, b, "2,500.00")
    assert [w.value.replace("\\", "") for w in at.warning] == [
        "This is over your daily transfer limit of $5,000.00: $2,000.00 is left today, so "
        "this transfer of $2,500.00 would be refused."]
    button_starting(at, "my_transfer_confirm_").click().run()
    assert "daily transfer limit" in at.error[0].value  # what Confirm then meets


def test_a_normal_transfer_shows_no_warning(app_bank):
    cid, a = customer_account(app_bank, "Norma Normal", "1,000.00", overdraft_limit="300.00")
    _, b = customer_account(app_bank, "Ned Payee", "0")
    login = login_for(app_bank, cid, f"norma{next(_names)}")
    at = review_transfer(app_bank, login, b, "1,200.00")  # fits thanks to the overdraft
    assert not at.warning
    assert "Available now: $1,300.00" in texts(at)
    button_starting(at, "my_transfer_confirm_").click().run()
    assert "posted" in at.success[0].value


def test_the_four_eyes_warning_on_the_tellers_review(app_bank, teller):
    _, number = customer_account(app_bank, "Fay Foureyes", "30,000.00")
    at = teller_review(app_bank, teller, "withdrawal", number, "12,000.00")
    assert [w.value.replace("\\", "") for w in at.warning] == [
        "Above $10,000.00 a second manager must approve it; the money will be held on the "
        "account until then."]
    assert button_starting(at, "cash_confirm_")


def test_the_tellers_funds_warning_and_no_warning_for_a_normal_deposit(app_bank, teller):
    _, number = customer_account(app_bank, "Sol Short", "100.00", overdraft_limit="50.00")
    at = teller_review(app_bank, teller, "withdrawal", number, "200.00")
    assert [w.value.replace("\\", "") for w in at.warning] == [
        f"Only $150.00 is available on {number} (including an overdraft limit of $50.00); "
        "this withdrawal of $200.00 would be refused."]
    at = teller_review(app_bank, teller, "deposit", number, "200.00")
    assert not at.warning and not at.exception


def test_my_accounts_and_the_customer_overview_show_the_same_available(app_bank, teller):
    cid, number = customer_account(app_bank, "Ava Same", "296.49", overdraft_limit="1,000.00")
    login = login_for(app_bank, cid, f"ava{next(_names)}")
    at = open_app(app_bank, login, "my-accounts")
    assert [m.value for m in at.metric] == ["$1,296.49"]
    assert "overdraft limit $1,000.00" in texts(at)
    overview = app_bank.customers.overview(teller, cid)["accounts"]
    assert list(overview["available"]) == [Decimal("1296.49")]


# (amount of the order, warned?) for a customer with $500.00 available
STANDING_ORDER_CASES = [("120.00", False), ("500.00", False), ("500.01", True)]


@pytest.mark.parametrize("amount, warned", STANDING_ORDER_CASES)
def test_a_standing_order_review_warns_when_the_money_is_not_there(app_bank, amount, warned):
    cid, mine = customer_account(app_bank, "Stan Dingorder", "500.00")
    _, payee = customer_account(app_bank, "Pia Payee", "0")
    login = login_for(app_bank, cid, f"stan{next(_names)}")
    at = open_app(app_bank, login, "my-standing-orders")
    at.text_input(key="my_standing_order_target").input(payee)
    at.text_input(key="my_standing_order_amount").input(amount)
    at.button(key="my_standing_order_review").click().run()
    assert not at.exception, at.exception
    said = [w.value.replace("\\", "") for w in at.warning]
    assert bool(said) == warned, said
    if warned:
        assert said[0].startswith(f"Only $500.00 is available on {mine} now, less than "
                                  f"${amount}: if that is still so on ")
        assert "the payment fails (end of day tries again on the next 2 days" in said[0]
    assert button_starting(at, "my_standing_order_confirm_")
