"""Fixtures for browser tests: Debian's Chromium through Playwright, and a server per module.

Chromium is required in CI (CI=true): there a missing browser fails the run instead of
skipping the tests. Locally, without /usr/bin/chromium, the browser tests are skipped.
"""
from __future__ import annotations

import os

import pytest

from browser import helpers

# A failed sign-in backs off for at most 5 s, so a test that fails on purpose waits little.
DEFAULT_SETTINGS = {"login_backoff_address_cap_s": 5, "login_backoff_user_cap_s": 5}


@pytest.fixture(autouse=True)
def nothing_from_other_hosts():
    """Fail any browser test whose pages asked a host other than the app's (a font, a CDN, a
    favicon...): every asset must come from the app itself, which works offline and tells no
    third party who visits. Contexts made through helpers (new_page, visit_each,
    new_context) record such requests."""
    helpers.FOREIGN_REQUESTS.clear()
    yield
    asked = sorted(set(helpers.FOREIGN_REQUESTS))
    helpers.FOREIGN_REQUESTS.clear()
    assert not asked, f"the page asked other hosts: {asked}"


@pytest.fixture(scope="session")
def browser():
    if not helpers.chromium_available():
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"browser tests need {helpers.CHROMIUM} in CI; .ci/run installs it")
        pytest.skip(f"{helpers.CHROMIUM} is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=helpers.CHROMIUM,
                                              args=helpers.CHROMIUM_FLAGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory, browser):
    """The app on the standard test bank (manager, teller, customer, pending customer) with a
    sign-in back-off of at most 5 seconds, shared by the tests of one module."""
    running = helpers.Server(tmp_path_factory.mktemp("server"), settings=DEFAULT_SETTINGS)
    yield running
    running.stop()


@pytest.fixture
def page_factory(browser):
    """new_page(...) that closes every context it opened when the test ends."""
    opened = []

    def make(server, path="", **kwargs):
        page = helpers.new_page(browser, server, path, **kwargs)
        opened.append(page.context)
        return page
    yield make
    for context in opened:
        context.close()
