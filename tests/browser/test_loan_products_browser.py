"""In Chromium: a manager half-way through a new loan product looks at the table of products
and comes back to find what she typed still there (pages.common.lazy_tabs keep=: a form's
typed input lives only in the browser until submitted, and a tab no longer drawn lost it)."""
from __future__ import annotations

import pytest

from browser import helpers

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(tmp_path_factory, browser):
    running = helpers.Server(tmp_path_factory.mktemp("loan_products"))
    yield running
    running.stop()


def test_typed_input_survives_opening_another_tab(page_factory, server):
    page = page_factory(server)
    helpers.login(page, *helpers.USERS["manager"][:2])
    page.goto(f"{server.url}/loan-products")
    helpers.settle(page)
    helpers.click_and_settle(page, page.get_by_role("tab", name="New product"))
    code = page.get_by_role("textbox", name="Code")
    code.fill("half_typed")
    for away in ("Products", "New product"):
        helpers.click_and_settle(page, page.get_by_role("tab", name=away))
    assert code.input_value() == "half_typed"
