"""In Chromium at phone size (390x844): the menu closes after a tap on a page, and charts show
no toolbar. The browser's user agent is a desktop one, as on a narrow tablet or a phone
asking for the desktop site, where Streamlit itself leaves the menu open (pages/phone.py)."""
from __future__ import annotations

import pytest

from browser import helpers
from browser.helpers import PHONE, USERS, login

pytestmark = pytest.mark.browser

SIDEBAR_OPEN = "[data-testid=stSidebar][data-collapsed=false]"
SIDEBAR_CLOSED = "[data-testid=stSidebar][data-collapsed=true]"


def open_menu(page):
    page.get_by_test_id("stExpandSidebarButton").click()
    page.wait_for_selector(SIDEBAR_OPEN, timeout=helpers.WAIT_MS)


@pytest.mark.parametrize("role, link, title", [
    ("customer", "History", "History"),
    ("manager", "Dashboard", "Dashboard"),
])
def test_the_menu_closes_after_a_tap_on_a_page(server, page_factory, role, link, title):
    page = page_factory(server, viewport=PHONE)
    login(page, *USERS[role][:2])
    page.wait_for_selector(SIDEBAR_CLOSED, state="attached", timeout=helpers.WAIT_MS)  # phones start closed
    open_menu(page)
    page.locator("[data-testid=stSidebarNav] a").filter(has_text=link).first.click()
    page.wait_for_function("t => document.title.startsWith(t + ' \u00b7 ')", arg=title,
                           timeout=helpers.WAIT_MS)
    page.wait_for_selector(SIDEBAR_CLOSED, state="attached", timeout=helpers.WAIT_MS)
    helpers.settle(page)
    # The page is there to read, not under the menu.
    assert page.locator("[data-testid=stMain] h1").first.inner_text() == title
    assert not page.locator(SIDEBAR_OPEN).count()


def test_charts_show_no_toolbar_on_a_phone(server, page_factory):
    page = page_factory(server, viewport=PHONE)
    login(page, *USERS["manager"][:2])
    page.goto(f"{server.url}/dashboard")
    helpers.settle(page)
    chart = page.locator("[data-testid=stEChartsChart]").first
    chart.locator("svg text").first.wait_for(timeout=helpers.WAIT_MS)
    chart.click()  # a tap shows Streamlit's chart toolbar (Show data, download) where it may
    container = page.locator("[data-testid=stElementContainer]").filter(has=chart).last
    bar = container.locator("[data-testid=stElementToolbar]")
    assert bar.count() == 0 or not bar.first.is_visible()
