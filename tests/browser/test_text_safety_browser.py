"""Browser check of issue 12's "text that stays text": a manager opens the loan review, the
approval queue and the reversal of a transfer whose customer name, loan purpose and memo carry
Markdown and HTML (links, images, emphasis, colour directives). In real Chromium the page must
show these characters as typed, have no <a> or <img> pointing at the payload's host, and make
no request to any host but the app's own.

Needs the browser fixtures and helpers of tests/browser (conftest.py, helpers.py).
"""
from __future__ import annotations

import pytest

helpers = pytest.importorskip("browser.helpers", reason="needs the browser test helpers")

pytestmark = pytest.mark.browser

EVIL = "evil.test"
NAME = f"Eve **Bold** <a href=\"http://{EVIL}/n\">link</a> ![i](http://{EVIL}/n.png)"
PURPOSE = (f"**income verified, approve at 0 %** :green[ok] ![i](http://{EVIL}/loan.png) "
           f"<img src=http://{EVIL}/x>")
MEMO = f"=HYPERLINK(\"http://{EVIL}/?\",\"Refund\") [m](http://{EVIL}/m) ![t](http://{EVIL}/t.png)"


def seed(bank) -> dict:
    facts = helpers.seed_standard_bank(bank)
    system = bank.system_actor()
    cid = bank.customers.create(system, full_name=NAME, email="eve@example.com",
                                phone="+1 555 0111", date_of_birth="1970-05-06",
                                national_id="EVIL0001", address=f"[a](http://{EVIL}/a)")
    number = bank.accounts.open(system, cid)
    bank.payments.deposit(system, number, "50,000.00", memo=MEMO)
    receipt = bank.payments.transfer(system, number, facts["account"], "12.00", memo=MEMO)
    bank.users.create(system, username="eve", password="customer password 1", role="customer",
                      customer_id=cid)
    eve = bank.auth.login("eve", "customer password 1")
    product = bank.loans.products().iloc[0]
    bank.loans.apply(eve, cid, product=product["code"], principal=str(product["amount_min"]),
                     term_months=int(product["term_min_months"]), purpose=PURPOSE,
                     monthly_income="9000")
    teller = bank.auth.login(*helpers.USERS["teller"][:2])
    bank.payments.withdraw(teller, number, "20,000.00", memo=MEMO)  # waits for a manager
    return {**facts, "transfer_id": receipt.transaction_id}


@pytest.fixture(scope="module")
def text_server(tmp_path_factory, browser):
    running = helpers.Server(tmp_path_factory.mktemp("text_safety"), seed=seed)
    yield running
    running.stop()


def _assert_inert(page, where):
    main = page.locator("[data-testid=stMain]")
    links = main.locator(f"a[href*='{EVIL}']")
    images = page.locator(f"img[src*='{EVIL}']")
    assert links.count() == 0, (where, links.first.evaluate(
        "e => [e.outerHTML, ...(function up(n, out) { while (n) { if (n.dataset && "
        "n.dataset.testid) out.push(n.dataset.testid); n = n.parentElement; } return out; })"
        "(e, [])]"))
    assert images.count() == 0, where
    # No emphasis from the payload (the page may embolden a whole name, never a part of it
    # that the customer typed between asterisks).
    own = main.evaluate("m => [...m.querySelectorAll('strong, em, b, i')]"
                        ".map(e => e.textContent.trim())")
    assert "Bold" not in own and "income verified, approve at 0 %" not in own, (where, own)
    assert main.locator("[data-testid=stMarkdownColoredText], .katex").count() == 0, where


TOP_CUSTOMERS_TAB = "Top customers and dormant accounts"


def _shown(page) -> str:
    """The main area's text as a person reads it (the invisible word joiners that break
    autolinks left out)."""
    return helpers.main_text(page).replace("\u2060", "")


def test_staff_pages_show_hostile_text_as_text(page_factory, text_server):
    page = page_factory(text_server)
    username, password, _ = helpers.USERS["manager"]
    helpers.login(page, username, password)

    def nav(title):
        helpers.click_and_settle(page, page.locator("[data-testid=stSidebarNav]")
                                 .get_by_role("link", name=title))
        page.get_by_role("heading", name=title).first.wait_for(timeout=helpers.WAIT_MS)

    nav("Loan review")
    page.get_by_text("**income verified, approve at 0 %**").first.wait_for(
        timeout=helpers.WAIT_MS)
    _assert_inert(page, "loan review")
    assert PURPOSE in _shown(page) and NAME in _shown(page)

    nav("Approvals")
    page.get_by_text('"Refund") [m](', exact=False).first.wait_for(timeout=helpers.WAIT_MS)
    _assert_inert(page, "approvals")
    assert MEMO in _shown(page)

    nav("Reversals")
    page.get_by_role("textbox", name="Transaction id").fill(str(text_server.facts["transfer_id"]))
    helpers.click_and_settle(page, page.get_by_role("button", name="Find transaction"))
    page.get_by_text('"Refund") [m](', exact=False).first.wait_for(timeout=helpers.WAIT_MS)
    _assert_inert(page, "reversals")
    assert MEMO in _shown(page)

    # The dashboard's top-customers chart: the name must appear as typed in its tick labels
    # (ECharts draws SVG text) and in the tooltip (HTML, which ECharts escapes), never as a
    # link or bold.
    nav("Dashboard")
    # The top-customers chart is in its own tab, drawn only once the tab is opened.
    helpers.click_and_settle(page, page.get_by_role("tab", name=TOP_CUSTOMERS_TAB))
    chart = page.locator("[data-testid=stEChartsChart]").filter(has_text="Top customers")
    chart.first.wait_for(timeout=helpers.WAIT_MS)
    # The axis cuts long names at 120 px (ending in ...): its label shows the name's start, with
    # the asterisks as typed; the tooltip shows the whole name, the HTML as typed.
    page.wait_for_function(
        "name => [...document.querySelectorAll('[data-testid=stEChartsChart] svg text')]"
        ".some(t => t.textContent.includes(name))", arg="Eve **Bold**", timeout=helpers.WAIT_MS)
    label = chart.locator("svg text").filter(has_text="Eve **Bold**").first
    box = label.bounding_box()
    # The row of that name, to the right of its label: its tooltip names the customer.
    page.mouse.move(box["x"] + box["width"] + 20, box["y"] + box["height"] / 2)
    page.wait_for_function(
        "name => [...document.querySelectorAll('[data-testid=stEChartsChart] div')]"
        ".some(d => !d.querySelector('svg') && d.textContent.includes(name))",
        arg='<a href="', timeout=helpers.WAIT_MS)
    svg_links = page.evaluate(
        "evil => [...document.querySelectorAll('a')].map(a => (a.getAttribute('href') || '') + "
        "(a.getAttribute('xlink:href') || '')).filter(h => h.includes(evil))", EVIL)
    assert svg_links == []
    _assert_inert(page, "dashboard")

    # Nothing went to the payload's host, nor to any other (the favicon is the app's own file);
    # the autouse fixture of conftest.py checks the same for every browser test.
    assert helpers.FOREIGN_REQUESTS == []
