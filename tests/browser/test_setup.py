"""In Chromium: the two ways to start a bank. A first start with no database builds the demo
bank and shows its logins under a banner; `init --no-demo` plus `create-employee` makes a real
bank with no banner and no passwords on show."""
from __future__ import annotations

import subprocess
import sys

import pytest

from browser import helpers
from browser.helpers import login, main_text, page_title

pytestmark = pytest.mark.browser


def bankms_cli(db, *args, password=None):
    env = {"BANKMS_BCRYPT_ROUNDS": "4", "PATH": "/usr/bin:/bin"}
    if password:
        env["BANKMS_NEW_PASSWORD"] = password
    done = subprocess.run([sys.executable, "-m", "bankms", "--db", db, *args],
                          cwd=helpers.REPO, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_real_bank_has_no_banner_and_no_passwords(tmp_path, browser):
    db = str(tmp_path / "bank.duckdb")
    bankms_cli(db, "init", "--no-demo")
    bankms_cli(db, "create-employee", "--role", "manager", "--username", "boss",
               "--full-name", "Bea Boss", password="the boss password 1")
    server = helpers.Server(tmp_path, seed=None, env={"BANKMS_NO_DEMO": ""})
    try:
        for _, page in helpers.visit_each(browser, server, [""]):
            text = main_text(page)
            assert page_title(page) == "Sign in"
            assert "demo" not in text.lower() and "password 1" not in text
            assert not page.get_by_test_id("stDataFrame").count()
            login(page, "boss", "the boss password 1")
            assert page_title(page) == "Home" and "Bea Boss" in helpers.sidebar_text(page)
    finally:
        server.stop()


def test_first_start_builds_the_demo_bank_and_shows_its_logins(tmp_path, browser):
    try:
        from bankms import demo  # noqa: F401  (the demo generator comes with its own issue)
    except ImportError:
        pytest.skip("bankms.demo is not in this tree yet")
    server = helpers.Server(tmp_path, seed=None,
                            env={"BANKMS_NO_DEMO": "", "BANKMS_DEMO_CUSTOMERS": "20"})
    try:
        for _, page in helpers.visit_each(browser, server, [""]):
            page.get_by_text("Demo bank").first.wait_for(timeout=120_000)
            helpers.settle(page)
            helpers.screenshot(page, "demo-banner-desktop")
            text = main_text(page)
            assert "demo bank" in text.lower()
        logins = _logins_after(server)
        assert {row["role"] for row in logins} >= {"manager", "teller", "customer"}
    finally:
        server.stop()
    # The shown logins work: sign in as one user of each role (a restarted server).
    server = helpers.Server(tmp_path, seed=None, env={"BANKMS_NO_DEMO": ""})
    try:
        first_of_role = {}
        for row in logins:
            first_of_role.setdefault(row["role"], row)
        for row in first_of_role.values():
            for _, page in helpers.visit_each(browser, server, [""]):
                assert "demo bank" in main_text(page).lower()
                login(page, row["username"], row["password"])
                assert page_title(page) != "Sign in"
    finally:
        server.stop()


def _logins_after(server):
    server.stop()
    bank = server.open_bank()
    try:
        from bankms.demo import demo_logins
        return demo_logins(bank)
    finally:
        bank.close()
