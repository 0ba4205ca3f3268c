"""Browser journeys of the deposit-side pages (issue 10), in headless Chromium against
`streamlit run app.py`: a customer opens a term deposit from their checking account and sets up
a monthly standing order (review, confirm, then the maturity date, payout and next payment
date); a teller charges an account with a reason; a manager creates a deposit product with a
tier from a business date and waives a charge; and a customer opens a term deposit on a phone.

Few on purpose: each costs seconds on the 2-core CI machine. Needs the browser fixtures and
helpers of tests/browser (conftest.py, helpers.py).
"""
from __future__ import annotations

import datetime as dt
import re

import pytest
from dateutil.relativedelta import relativedelta

helpers = pytest.importorskip("browser.helpers", reason="needs the browser test helpers")
daily = pytest.importorskip("browser.test_daily_journeys")

pytestmark = pytest.mark.browser


def seed(bank) -> dict:
    """The daily journeys' bank (Alice, Bob Payee, Rich Holder), term deposits at 3.5 % for 1
    to 60 months without tax (a payout easy to recognise), a flat 5.00 charge in the
    catalogue, and one such charge on Bob's account for the manager to waive."""
    from test_term_deposits import set_terms

    facts = daily.seed(bank)
    set_terms(bank)
    manager = bank.auth.actor_for(helpers.USERS["manager"][0])
    bank.charges.define(manager, "statement_copy", name="Statement copy", calc="flat",
                        amount="5.00")
    bank.payments.deposit(bank.system_actor(), facts["bob_account"], "100.00")
    bank.charges.apply(manager, facts["bob_account"], "statement_copy",
                       reason="Paper statement", idempotency_key="seed-charge")
    return {**facts, "business_date": bank.business_date}


@pytest.fixture(scope="module")
def deposit_server(tmp_path_factory, browser):
    running = helpers.Server(tmp_path_factory.mktemp("deposits"), seed=seed)
    yield running
    running.stop()


def signed_in(page_factory, server, role, viewport=None):
    return daily.signed_in_page(page_factory, server, role, viewport=viewport)


def type_date(page, label, day: dt.date):
    """A Streamlit date field is three spin buttons (year, month, day) that advance as digits
    arrive."""
    page.get_by_role("spinbutton", name=f"year, {label}").click()
    page.keyboard.type(day.strftime("%Y%m%d"))


def open_charges(page, number, expect):
    """The Charges page on one account, once it shows `expect`."""
    daily.nav(page, "Charges")
    box = page.get_by_role("textbox", name="Account number", exact=True)
    box.fill(number)
    box.press("Enter")
    daily.wait_text(page, expect)


def account_shows(page, number, text):
    """Look the account up on the Accounts page (tables are drawn on a canvas, so the
    balance there is the text to read) and wait for `text`."""
    daily.nav(page, "Accounts")
    daily.fill(page, "Account number", number)
    daily.click(page, "Show account", expect="Holder")
    daily.wait_text(page, text)


def test_customer_opens_a_term_deposit_and_a_standing_order(deposit_server, page_factory):
    page = signed_in(page_factory, deposit_server, "customer")
    daily.nav(page, "Term deposits")
    daily.wait_text(page, "You have no term deposits yet.")
    daily.fill(page, "Amount", "500.00")
    # The review's rows are a table whose code the browser may still be loading: wait for
    # one of them, not just for the heading.
    daily.click(page, "Review", expect="Payout at maturity")
    review = helpers.main_text(page)
    assert "Matures on" in review and "Payout at maturity" in review and "$500.00" in review
    daily.click(page, "Open term deposit", expect="is open")
    text = helpers.main_text(page)
    # 12 months at 3.5 % on 500.00, no tax: 17.50 of interest (17.55 over a leap year).
    opened = re.search(r"until (\d{4}-\d{2}-\d{2}), paying \$(51\d\.\d\d) at maturity",
                       text)
    assert opened, text
    maturity = dt.date.fromisoformat(opened[1])
    start = deposit_server.facts["business_date"]
    # Twelve calendar months on (relativedelta): opened on 29 Feb, it matures on 28 Feb, where
    # date.replace(year=...) would raise instead.
    assert maturity == start + relativedelta(months=12)

    daily.nav(page, "Standing orders")
    daily.wait_text(page, "No standing orders yet.")
    daily.fill(page, "To account number", deposit_server.facts["bob_account"])
    daily.fill(page, "Amount", "25.00")
    daily.click(page, "Review", expect="Check and confirm")
    daily.wait_text(page, "B** P****")  # a row of the review's table
    review = helpers.main_text(page)
    assert "B** P****" in review and "$25.00" in review and "Monthly on day 1" in review
    daily.click(page, "Confirm standing order", expect="is set up")
    first = dt.date.fromisoformat(
        re.search(r"first payment on (\d{4}-\d{2}-\d{2})", helpers.main_text(page))[1])
    # Monthly on day 1, from the business date on: the 1st of this month or the next.
    assert first.day == 1 and 0 <= (first - deposit_server.facts["business_date"]).days <= 31
    helpers.screenshot(page, "deposit-customer-standing-order")


def test_teller_charges_an_account_with_a_reason(deposit_server, page_factory):
    page = signed_in(page_factory, deposit_server, "teller")
    open_charges(page, deposit_server.facts["rich_account"], "No charges on this account.")
    daily.fill(page, "Reason", "Duplicate statement by post")
    daily.click(page, "Review", expect="Available now")
    assert "$5.00" in helpers.main_text(page)
    daily.click(page, "Confirm charge", expect="Charged $5.00")
    said = helpers.main_text(page)
    assert f"to account {deposit_server.facts['rich_account']}" in said
    assert "Duplicate statement by post" in said and "Traceback" not in said
    account_shows(page, deposit_server.facts["rich_account"], "Balance $49,995.00")


def test_manager_creates_a_tiered_product_and_waives_a_charge(deposit_server, page_factory):
    page = signed_in(page_factory, deposit_server, "manager")
    daily.nav(page, "Deposit products")
    page.get_by_role("tab", name="New product").click()  # the tab runs only when open
    start = deposit_server.facts["business_date"] + dt.timedelta(days=7)
    daily.fill(page, "Code", "bonus_checking")
    daily.fill(page, "Name", "Bonus checking")
    type_date(page, "Offered from (business date)", start)
    page.get_by_role("textbox", name="Rate tiers by balance", exact=False).last.fill(
        "10,000.00: 0.5")
    daily.click(page, "Create product", expect="is created")
    assert (f"Deposit product bonus_checking is created, offered from {start}"
            in helpers.main_text(page))

    open_charges(page, deposit_server.facts["bob_account"], "Waive a charge")
    daily.fill(page, "Reason for the waiver", "Goodwill: first request")
    daily.click(page, "Waive", expect="was waived")
    assert "$5.00 given back" in helpers.main_text(page)
    account_shows(page, deposit_server.facts["bob_account"], "Balance $100.00")


def test_customer_opens_a_term_deposit_on_a_phone(deposit_server, page_factory):
    page = signed_in(page_factory, deposit_server, "customer", viewport=helpers.PHONE)
    page.goto(f"{deposit_server.url}/my-term-deposits")
    helpers.settle(page)
    page.get_by_role("heading", name="Term deposits").first.wait_for(timeout=helpers.WAIT_MS)
    daily.fill(page, "Amount", "100.00")
    daily.click(page, "Review", expect="Payout at maturity")
    daily.click(page, "Open term deposit", expect="is open")
    overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    helpers.screenshot(page, "deposit-phone-customer-term-deposit")
    assert overflow <= 1, f"the term deposit page is {overflow}px wider than a phone"
