"""AppTest of the standing-order pages: customers set up, review, confirm and cancel their own;
tellers see a customer's orders and every failure with its reason."""
from __future__ import annotations

import datetime as dt
import itertools

import pytest
from apptest_util import app_bank_fixture, button_starting, open_app, texts, urls
from conftest import employee, funded_account, login_for, make_customer

_names = itertools.count(1)


app_bank = app_bank_fixture("so_pages")


def customer(bank, name, amount="500.00"):
    cid = make_customer(bank, name=name)
    number = funded_account(bank, amount, customer_id=cid)
    return cid, number, login_for(bank, cid, f"socust{next(_names)}")


ROLE_PAGES = [
    # role, offered, hidden
    ("customer", {"my-standing-orders"}, {"standing-orders"}),
    ("teller", {"standing-orders"}, {"my-standing-orders"}),
    ("manager", {"standing-orders"}, {"my-standing-orders"}),
]


@pytest.mark.parametrize("role, offered, hidden", ROLE_PAGES)
def test_each_role_sees_its_standing_order_page(app_bank, role, offered, hidden):
    actor = employee(app_bank, role) if role != "customer" else customer(app_bank, "Nav Nia")[2]
    at = open_app(app_bank, actor)
    assert offered <= urls(at) and not (hidden & urls(at))


def test_customer_sets_up_reviews_confirms_and_cancels_an_order(app_bank):
    cid, mine, login = customer(app_bank, "Paula Payer")
    _, payee, _ = customer(app_bank, "John Doe", amount="0")
    at = open_app(app_bank, login, "my-standing-orders")
    assert "No standing orders yet." in texts(at)
    at.text_input(key="my_standing_order_target").input(payee)
    at.text_input(key="my_standing_order_amount").input("120.00")
    at.number_input(key="my_standing_order_day").set_value(31)
    at.text_input(key="my_standing_order_memo").input("Rent")
    at.button(key="my_standing_order_review").click().run()
    page = texts(at)
    assert "J*** D**" in page and "John Doe" not in page
    assert "Monthly on day 31 (or the month's last day)" in page
    button_starting(at, "my_standing_order_confirm_").click().run()
    assert not at.exception, at.exception
    assert "is set up" in texts(at)
    listed = app_bank.standing_orders.list(login)
    assert list(zip(listed["amount_cents"], listed["day_of_month"], listed["memo"])) == [
        (12000, 31, "Rent")]
    oid = int(listed["id"].iloc[0])
    # The table shows it with its next payment date.
    at.run()
    assert "$120.00" in texts(at)
    at.text_input(key="my_standing_orders_cancel_reason").input("Moved out")
    at.button(key="my_standing_orders_cancel").click().run()
    assert f"Standing order {oid} is cancelled" in texts(at)
    assert app_bank.standing_orders.get(login, oid)["status"] == "cancelled"


def test_a_refused_order_shows_the_reason_and_sets_up_nothing(app_bank):
    _, mine, login = customer(app_bank, "Rita Refused")
    at = open_app(app_bank, login, "my-standing-orders")
    at.text_input(key="my_standing_order_target").input(mine)
    at.text_input(key="my_standing_order_amount").input("1.005")
    at.button(key="my_standing_order_review").click().run()
    assert len(at.error) == 1
    assert app_bank.standing_orders.list(login).empty


def test_teller_sees_a_customers_orders_and_failures_with_reasons(app_bank):
    cid, empty, _ = customer(app_bank, "Eve Empty", amount="0")
    _, payee, _ = customer(app_bank, "Pat Payee", amount="0")
    teller = employee(app_bank, "teller")
    at = open_app(app_bank, teller, "standing-orders")
    at.text_input(key="standing_orders_customer_id").input(str(cid))
    at.button(key="standing_orders_show").click().run()
    at.radio(key="teller_standing_order_frequency").set_value("Weekly").run()
    at.text_input(key="teller_standing_order_target").input(payee)
    at.text_input(key="teller_standing_order_amount").input("40.00")
    at.selectbox(key="teller_standing_order_weekday").set_value(app_bank.business_date.weekday())
    at.button(key="teller_standing_order_review").click().run()
    assert not at.error, [e.value for e in at.error]
    button_starting(at, "teller_standing_order_confirm_").click().run()
    assert "is set up" in texts(at)
    # End of day for today: the customer has nothing to pay with.
    today = app_bank.business_date
    clock = app_bank.clock
    app_bank.clock = lambda: dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=3)
    try:
        app_bank.end_of_day(app_bank.system_actor(), until=today)
    finally:
        app_bank.clock = clock
    at.run()
    page = texts(at)
    assert "insufficient funds: $0.00 available, $40.00 needed" in page
    # Outcomes and statuses in words, business dates without a midnight time.
    assert "Failed, will retry" in page and "Active" in page
    assert f"{today}" in page and "00:00" not in page
    assert "executed" not in page and " failed " not in page


def test_a_term_deposit_is_not_offered_to_pay_standing_orders_from(app_bank):
    from test_term_deposits import set_terms

    set_terms(app_bank)
    _, mine, login = customer(app_bank, "Tia Termer", amount="800.00")
    deposit = app_bank.term_deposits.open(login, linked_account=mine, amount="300.00",
                                          term_months=6, idempotency_key="so-page-td")
    at = open_app(app_bank, login, "my-standing-orders")
    offered = at.selectbox(key="my_standing_order_source").options
    assert [o for o in offered if mine in o] and not [
        o for o in offered if deposit["account_number"] in o]
