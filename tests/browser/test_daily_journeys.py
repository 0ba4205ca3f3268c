"""Browser journeys of the daily-work pages, in headless Chromium against `streamlit run app.py`:
a teller onboards a customer, opens an account and deposits; a customer transfers to another
customer and finds it in the history; a large teller withdrawal waits and posts once a manager
approves; five rapid clicks on a confirm button post once; phone screenshots of every page.

Needs the browser fixtures and helpers of tests/browser (conftest.py, helpers.py).
"""
from __future__ import annotations

import re

import pytest

helpers = pytest.importorskip("browser.helpers", reason="needs the browser test helpers")

pytestmark = pytest.mark.browser

DAILY_URLS = {
    "teller": ["customers", "accounts", "cash"],
    "manager": ["customers", "accounts", "cash", "approvals", "reversals"],
    "customer": ["my-accounts", "my-history", "my-transfer", "my-profile"],
}


def seed(bank) -> dict:
    facts = helpers.seed_standard_bank(bank)
    system = bank.system_actor()
    people = {}
    for name, national_id, amount in (("Bob Payee", "DAILY0001", None),
                                      ("Rich Holder", "DAILY0002", "50,000.00")):
        cid = bank.customers.create(system, full_name=name, email="p@example.com",
                                    phone="+1 555 0111", date_of_birth="1970-05-06",
                                    national_id=national_id, address="5 High Street")
        number = bank.accounts.open(system, cid)
        if amount:
            bank.payments.deposit(system, number, amount)
        people[name] = number
    return {**facts, "bob_account": people["Bob Payee"], "rich_account": people["Rich Holder"]}


@pytest.fixture(scope="module")
def daily_server(tmp_path_factory, browser):
    running = helpers.Server(tmp_path_factory.mktemp("daily"), seed=seed)
    yield running
    running.stop()


def signed_in_page(page_factory, server, role, viewport=None):
    page = page_factory(server, viewport=viewport)
    username, password, _ = helpers.USERS[role]
    helpers.login(page, username, password)
    return page


def nav(page, title):
    """Follow the sidebar link to a page, keeping the browser session (and its state). On a
    phone the sidebar starts collapsed: open it first, as a person would."""
    expand = page.get_by_test_id("stExpandSidebarButton")
    if expand.is_visible():
        expand.click()
    helpers.click_and_settle(
        page, page.locator("[data-testid=stSidebarNav]").get_by_role("link", name=title))
    page.get_by_role("heading", name=title).first.wait_for(timeout=helpers.WAIT_MS)
    sidebar = page.get_by_test_id("stSidebar")
    if page.viewport_size["width"] <= helpers.PHONE["width"] and \
            sidebar.get_attribute("data-collapsed") == "false":
        # A menu left open covers a phone's page: close it, as a person would.
        sidebar.hover()
        page.get_by_test_id("stSidebarCollapseButton").locator("button").click()
        page.wait_for_function("() => document.querySelector("
                               "'[data-testid=stSidebar]').dataset.collapsed === 'true'",
                               timeout=helpers.WAIT_MS)


def fill(page, label, value):
    page.get_by_role("textbox", name=label, exact=True).fill(value)


def click(page, name, expect=None):
    """Click a button, wait for the run it starts, and (if given) for text it should show."""
    helpers.click_and_settle(page, page.get_by_role("button", name=name, exact=True))
    if expect:
        wait_text(page, expect)


def choose(page, option):
    """Pick a radio option by its visible label."""
    helpers.click_and_settle(
        page, page.locator("[data-testid=stRadio] label").filter(has_text=option).first)


def wait_text(page, text):
    """Wait for the text, then for the rest of the page (tables load their code lazily)."""
    page.get_by_text(text).first.wait_for(timeout=helpers.WAIT_MS)
    helpers.wait_drawn(page)


def download(page, name) -> bytes:
    with page.expect_download(timeout=helpers.WAIT_MS) as info:
        page.get_by_role("button", name=name).click()
    path = info.value.path()
    with open(path, "rb") as handle:
        return handle.read()


def rapid_clicks(page, name, times=5):
    """Click where the button is, `times` times in quick succession, as a hurried person
    would; the page may rerun and redraw between the clicks."""
    box = page.get_by_role("button", name=name, exact=True).bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    for _ in range(times):
        page.mouse.click(x, y)
    helpers.settle(page)


# -- journeys -----------------------------------------------------------------------------------
def test_teller_onboards_opens_an_account_and_deposits(daily_server, page_factory):
    page = signed_in_page(page_factory, daily_server, "teller")
    nav(page, "Customers")
    page.get_by_role("tab", name="Onboard").click()
    page.get_by_role("textbox", name="Full name").wait_for(timeout=helpers.WAIT_MS)
    for label, value in (("Full name", "Nora Newcomer"), ("National id", "NORA-77"),
                         ("Address", "7 Quay Street"), ("Phone", "+1 555 0177"),
                         ("Email", "nora@example.com")):
        fill(page, label, value)
    # The date field is three spin buttons (year, month, day) that advance as digits arrive.
    page.get_by_role("spinbutton", name="year, Date of birth").click()
    page.keyboard.type("19840708")
    click(page, "Onboard customer", expect="is onboarded")
    customer_id = re.search(r"Customer (\d+) \(Nora Newcomer\)", helpers.main_text(page))[1]

    nav(page, "Accounts")
    page.get_by_role("tab", name="Open an account").click()
    page.get_by_role("textbox", name="Customer id").wait_for(timeout=helpers.WAIT_MS)
    assert page.get_by_role("textbox", name="Customer id").input_value() == customer_id
    click(page, "Open account", expect="Opened checking account")
    number = re.search(r"account (\d{12})", helpers.main_text(page))[1]

    nav(page, "Cash & transfers")
    fill(page, "Into account number", number)
    fill(page, "Amount", "1,234.50")
    click(page, "Review", expect="Check and confirm")
    review = helpers.main_text(page)
    assert "Nora Newcomer" in review and "$1,234.50" in review
    click(page, "Confirm", expect="posted")
    assert "Nora Newcomer" in helpers.main_text(page)
    pdf = download(page, "Download receipt (PDF)")
    assert pdf.startswith(b"%PDF")
    helpers.screenshot(page, "daily-teller-deposit-receipt")


# The same journey at desktop and phone size, each with its own memo and amount (they share
# the server); the balance after is checked against the ledger balance before, read on My
# accounts.
@pytest.mark.parametrize("viewport, size, place, amount", [
    (helpers.DESKTOP, "desktop", "Luigi's", "100.00"),
    (helpers.PHONE, "phone", "Mario's", "25.00")])
def test_customer_transfers_to_another_customer_and_finds_it(daily_server, page_factory,
                                                             viewport, size, place, amount):
    from decimal import Decimal

    page = signed_in_page(page_factory, daily_server, "customer", viewport=viewport)
    nav(page, "My accounts")
    shown = re.search(r"[Bb]alance \$([\d,]+\.\d\d)", helpers.main_text(page))[1]
    before = Decimal(shown.replace(",", ""))
    nav(page, "Transfer")
    fill(page, "To account number", daily_server.facts["bob_account"])
    fill(page, "Amount", amount)
    fill(page, "Memo (optional)", f"Dinner at {place}")
    click(page, "Review", expect="Check and confirm")
    review = helpers.main_text(page)
    assert "B** P****" in review and "Bob Payee" not in review
    helpers.screenshot(page, f"daily-{size}-customer-transfer-review")
    click(page, "Confirm transfer", expect="posted")

    nav(page, "History")
    search = page.get_by_role("textbox", name="Search memo, account or transaction id")
    search.fill(place.removesuffix("'s").lower())
    search.press("Enter")
    helpers.settle(page)
    wait_text(page, "1 transactions")
    helpers.wait_drawn(page)
    helpers.screenshot(page, f"daily-{size}-customer-history")
    csv = download(page, "Export CSV").decode()
    assert f"Dinner at {place}" in csv and f",-{amount},{before - Decimal(amount)}" in csv


def test_large_teller_withdrawal_waits_until_a_manager_approves(daily_server, page_factory):
    rich = daily_server.facts["rich_account"]
    teller = signed_in_page(page_factory, daily_server, "teller")
    nav(teller, "Cash & transfers")
    choose(teller, "Withdrawal")
    fill(teller, "From account number", rich)
    fill(teller, "Amount", "12,000.00")
    click(teller, "Review", expect="a second manager must approve it")
    click(teller, "Confirm", expect="Waiting for approval")
    request_id = re.search(r"request (\d+) for \$12,000\.00", helpers.main_text(teller))[1]

    manager = signed_in_page(page_factory, daily_server, "manager")
    nav(manager, "Accounts")
    fill(manager, "Account number", rich)
    click(manager, "Show account", expect="Holder")
    text = helpers.main_text(manager)
    assert "Balance $50,000.00" in text and "available $38,000.00" in text
    nav(manager, "Approvals")
    assert "Rich Holder" in helpers.main_text(manager)
    click(manager, "Approve and post", expect=f"Request {request_id} approved")
    nav(manager, "Accounts")
    fill(manager, "Account number", rich)
    click(manager, "Show account", expect="Holder")
    assert "Balance $38,000.00" in helpers.main_text(manager)


def test_five_rapid_clicks_on_confirm_post_once(tmp_path_factory, browser, page_factory):
    server = helpers.Server(tmp_path_factory.mktemp("rapid"), seed=seed)
    try:
        teller = signed_in_page(page_factory, server, "teller")
        nav(teller, "Cash & transfers")
        fill(teller, "Into account number", server.facts["bob_account"])
        fill(teller, "Amount", "77.77")
        click(teller, "Review", expect="Check and confirm")
        rapid_clicks(teller, "Confirm")
        wait_text(teller, "posted")

        customer = signed_in_page(page_factory, server, "customer")
        nav(customer, "Transfer")
        fill(customer, "To account number", server.facts["bob_account"])
        fill(customer, "Amount", "11.11")
        click(customer, "Review", expect="Check and confirm")
        rapid_clicks(customer, "Confirm transfer")
        wait_text(customer, "posted")
    finally:
        server.stop()
    bank = server.open_bank()
    try:
        counts = dict(bank.read("SELECT amount_cents, count(*) FROM transactions "
                                "WHERE amount_cents IN (7777, 1111) GROUP BY 1"))
        assert counts == {7777: 1, 1111: 1}
        assert bank.audit.verify() == []
    finally:
        bank.close()


@pytest.mark.parametrize("role", ["teller", "manager", "customer"])
def test_every_daily_page_fits_a_phone(daily_server, page_factory, role):
    page = signed_in_page(page_factory, daily_server, role, viewport=helpers.PHONE)
    for url in DAILY_URLS[role]:
        page.goto(f"{daily_server.url}/{url}")
        helpers.settle(page)
        assert "Sign in" not in helpers.page_title(page)
        overflow = page.evaluate(
            "() => document.documentElement.scrollWidth - window.innerWidth")
        helpers.wait_drawn(page)
        helpers.screenshot(page, f"daily-phone-{role}-{url}")
        assert overflow <= 1, f"{url} is {overflow}px wider than a phone"
