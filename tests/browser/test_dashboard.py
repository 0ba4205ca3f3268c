"""In Chromium: the manager's dashboard on a small demo bank at phone and desktop sizes (with
screenshots), the customer's statements page, and the manager pages refused to a teller."""
from __future__ import annotations

import contextlib

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from browser import helpers
from browser.helpers import DESKTOP, PHONE, error_text, login, main_text, screenshot
# The dashboard's tabs and the titles of their charts; only the open tab is drawn.
from test_dashboard_pages import DASHBOARD_TABS as TABS

pytestmark = pytest.mark.browser
# The texts of each chart in view (ECharts draws titles, axes and legends as SVG text).
CHART_TEXTS_JS = """() => [...document.querySelectorAll('[data-testid=stEChartsChart]')]
  .filter(c => c.offsetParent !== null)
  .map(c => [...c.querySelectorAll('svg text')].map(t => t.textContent))"""
# A chart counts as drawn once its title is.
TITLES_DRAWN_JS = f"""titles => {{
  const drawn = ({CHART_TEXTS_JS})().flat();
  return titles.every(t => drawn.includes(t));
}}"""


def shown_titles(page, titles) -> list:
    """The title of each chart in view, in order, as one of `titles` (None if none is)."""
    return [next((t for t in texts if t in titles), None)
            for texts in page.evaluate(CHART_TEXTS_JS)]


def show_tab(page, label):
    """Open a dashboard tab and wait until its charts are drawn."""
    helpers.click_and_settle(page, page.get_by_role("tab", name=label))
    page.wait_for_function(TITLES_DRAWN_JS, arg=TABS[label], timeout=helpers.WAIT_MS)


def small_demo(bank):
    """A small demo bank; its logins (the first of each role) are the test's users."""
    from bankms.demo import build_demo

    logins = {}
    for login_ in build_demo(bank, customers=40, months=3, seed=5):
        logins.setdefault(login_["role"], (login_["username"], login_["password"]))
    return {"logins": logins}


@pytest.fixture(scope="module")
def server(tmp_path_factory, browser):
    pytest.importorskip("bankms.demo")
    running = helpers.Server(tmp_path_factory.mktemp("dashboard"), seed=small_demo)
    yield running
    running.stop()


def open_as(page_factory, server, role, path, viewport):
    page = page_factory(server, viewport=viewport)
    login(page, *server.facts["logins"][role])
    page.goto(f"{server.url}/{path}")
    helpers.settle(page)
    return page


FIGURES_SHOWN_JS = """labels => {
  const main = document.querySelector('[data-testid=stMain]');
  return !!main && labels.every(l => main.innerText.includes(l));
}"""


@pytest.mark.parametrize("viewport, name", [(PHONE, "phone"), (DESKTOP, "desktop")])
def test_dashboard_draws_every_figure_and_chart(server, page_factory, viewport, name):
    page = open_as(page_factory, server, "manager", "dashboard", viewport)
    page.wait_for_function(TITLES_DRAWN_JS, arg=TABS["Money moved"], timeout=helpers.WAIT_MS)
    labels = ["Total deposits", "Loans outstanding", "Portfolio at risk > 30 days",
              "Non-performing loans", "Active customers", "New customers", "New accounts",
              "Net flow"]
    # The key figures can reach the browser after the first tab's charts (a fresh-clone run
    # once read the page between the two): wait for them, then check each.
    with contextlib.suppress(PlaywrightTimeout):
        page.wait_for_function(FIGURES_SHOWN_JS, arg=labels, timeout=helpers.WAIT_MS)
    text = main_text(page)
    for label in labels:
        assert label in text, label
    screenshot(page, f"dashboard-{name}")
    for label in list(TABS)[1:]:
        show_tab(page, label)
        titles = shown_titles(page, TABS[label])
        assert titles == TABS[label], titles
        assert not error_text(page)
    text = main_text(page)
    assert "Top customers" in text and "Dormant accounts (" in text
    assert not error_text(page)


def test_customer_downloads_a_statement(server, page_factory):
    page = open_as(page_factory, server, "customer", "statements", DESKTOP)
    # Wait for what the test needs, not for a time: the statement and its button are drawn,
    # and the PDF (built on the click) may take long on a busy machine.
    page.get_by_text("Closing balance").first.wait_for(timeout=helpers.WAIT_MS)
    assert "Opening balance" in main_text(page)
    button = page.get_by_role("button", name="Statement as PDF")
    button.wait_for(timeout=helpers.WAIT_MS)
    with page.expect_download(timeout=helpers.WAIT_MS) as download:
        button.click()
    assert download.value.suggested_filename.endswith(".pdf")
    with open(download.value.path(), "rb") as pdf:
        assert pdf.read(4) == b"%PDF"
    screenshot(page, "statements-desktop")


@pytest.mark.parametrize("path", ["dashboard", "customer-analytics", "general-ledger"])
def test_teller_never_sees_manager_reports(server, page_factory, path):
    page = open_as(page_factory, server, "teller", path, DESKTOP)
    # An unknown or refused URL falls back to the teller's first page.
    assert helpers.page_title(page) != {"dashboard": "Dashboard",
                                        "customer-analytics": "Customer analytics",
                                        "general-ledger": "Ledger"}[path]
    assert "Total deposits" not in main_text(page)


def test_a_bar_and_a_key_figure_open_the_rows_behind_them(server, page_factory):
    """Streamlit's own selection event (which AppTest cannot send): a click on a bar of the
    balance chart opens the accounts behind it; a key figure's button opens its rows."""
    page = open_as(page_factory, server, "manager", "dashboard", DESKTOP)
    show_tab(page, "Balances")
    chart = page.locator("[data-testid=stEChartsChart]").filter(has_text="Accounts by balance")
    # Bars are the filled paths of the chart's SVG (axes and grid lines are not filled); the
    # tallest, as an empty bucket draws a bar of no height, which cannot be clicked.
    bars = chart.locator("svg path[fill]:not([fill=none]):not([fill=transparent])")
    chart.first.scroll_into_view_if_needed()
    # A chart may be drawn again after it first shows (under load its paths changed between
    # finding the tallest bar by index and clicking it: the click landed on empty plot and
    # started no run). So the bar is found by its place on the screen once the drawing has
    # stopped changing for two frames, and clicked there.
    tallest = """paths => { const boxes = paths.map(p => p.getBoundingClientRect())
        .filter(b => b.height > 0 && b.height < 10000);
      const b = boxes.reduce((a, c) => c.height > a.height ? c : a);
      return [b.x + b.width / 2, b.y + b.height * 0.75, boxes.length]; }"""
    page.wait_for_function(
        """sel => new Promise(done => {
          const shape = () => [...document.querySelectorAll(sel)].map(p => {
            const b = p.getBoundingClientRect(); return [b.x, b.y, b.width, b.height].join();
          }).join(';');
          const first = shape();
          requestAnimationFrame(() => requestAnimationFrame(() => done(shape() === first)));
        })""",
        arg="[data-testid=stEChartsChart] svg path", timeout=helpers.WAIT_MS)
    x, y, _ = bars.evaluate_all(tallest)
    # The chart answers the pointer only once its handlers are attached, which under load
    # comes after it is drawn (a click before started no run): point at the bar and wait for
    # its tooltip, then click.
    page.mouse.move(x, y)
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-testid=stEChartsChart] div')]"
        ".some(d => !d.querySelector('svg') && d.offsetParent !== null"
        " && /\\d/.test(d.textContent))", timeout=helpers.WAIT_MS)
    state = page._bankms_frames
    runs_before = state["runs"]
    page.mouse.click(x, y)
    helpers._wait_until(page, lambda: state["runs"] > runs_before,
                        "the run the bar's click starts")
    page.get_by_text("rows: the figure shown.").first.wait_for(timeout=helpers.WAIT_MS)
    assert "Accounts in the balance bucket" in main_text(page)
    helpers.click_and_settle(page, page.get_by_role("button", name="Show the rows").first)
    page.get_by_text("adding up to").first.wait_for(timeout=helpers.WAIT_MS)
    assert "Accounts holding the deposits" in main_text(page)
    assert not error_text(page)
