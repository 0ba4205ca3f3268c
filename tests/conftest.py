"""Shared fixtures: a real DuckDB file per test, a system actor, and helpers to make customers.

Keep this file small; fixtures that only one test module needs belong in that module.
"""
from __future__ import annotations

import datetime as dt
import itertools
import os
import shutil

import pytest

os.environ.setdefault("BANKMS_BCRYPT_ROUNDS", "4")
# In-process app tests start on banks they build themselves; the demo bank that the app builds
# on a first start is tested with a real server (tests/browser/test_setup.py).
os.environ.setdefault("BANKMS_NO_DEMO", "1")
# Automatic end of day would close test banks' days at the cut-off; its tests drive it with a
# moved clock instead (tests/test_business_day.py).
os.environ.setdefault("BANKMS_EOD_AUTO", "0")

import bankms  # noqa: E402
import pgcluster  # noqa: E402
# PostgreSQL fixtures and the `engines` parametrization (tests/pgcluster.py).
from pgcluster import (engine, pg_admin, pg_bank_database, pg_bank_templates,  # noqa: E402,F401
                       pg_database, pg_template, pg_url)
from pgcluster import pytest_generate_tests  # noqa: E402,F401

_national_ids = itertools.count(1)


@pytest.fixture(scope="session")
def duckdb_templates(tmp_path_factory):
    """New DuckDB banks, made once per session and copied for each test (see new_duckdb_bank)."""
    return {"folder": tmp_path_factory.mktemp("duckdb_templates"), "made": {}}


def new_duckdb_bank(templates, path) -> None:
    """Put at `path` a copy of a bank that open_bank made on a new file and closed, as if
    open_bank had made it there: building the schema and the internal accounts took about a
    quarter of a test bank's open, for each of about 900 tests. What a first open writes
    depends on the clock only through two dates: the business date (the bank's clock, by
    default businessday.system_clock, in the bank's time zone) and the internal accounts'
    opened date (utcnow's UTC date). A template is made per pair of them, read here through
    the same functions, so a test that moves either clock gets a bank made on its dates."""
    from bankms.bank import DEFAULT_SETTINGS, businessday, utcnow

    zone = businessday.parse_zone(DEFAULT_SETTINGS["bank_time_zone"])
    key = (businessday.as_utc(businessday.system_clock()).astimezone(zone).date(),
           utcnow().date())
    made = templates["made"]
    if key not in made:
        template = str(templates["folder"] / f"bank-{len(made)}.duckdb")
        bankms.open_bank(template, bcrypt_rounds=4).close()
        made[key] = template
    shutil.copyfile(made[key], path)
    os.chmod(path, 0o600)


@pytest.fixture
def bank(engine, tmp_path, duckdb_templates):
    """A bank on the engine under test: a DuckDB file under tmp_path (a copy of a new bank,
    new_duckdb_bank), or the test's own PostgreSQL database in modules marked `engines`
    (tests/pgcluster.py)."""
    if engine.name == "pg":
        url = engine.url
    else:
        url = str(tmp_path / "bank.duckdb")
        new_duckdb_bank(duckdb_templates, url)
    b = bankms.open_bank(url, bcrypt_rounds=4)
    yield b
    b.close()


@pytest.fixture
def system(bank):
    return bank.system_actor()


class Clock:
    """A clock a test moves by hand, for `Bank.clock`: an aware UTC instant."""

    def __init__(self, now: dt.datetime):
        self.now = now if now.tzinfo else now.replace(tzinfo=dt.timezone.utc)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta) -> None:
        self.now += dt.timedelta(**delta)


@pytest.fixture
def years_ahead(bank):
    """For tests that close months of business days at once: the bank's clock stands ten years
    ahead, so those days have ended, and the bank is set to close up to a year at once without
    asking for confirmation (the most `eod_catchup_days_confirm` allows)."""
    clock = Clock(dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=3660))
    bank.clock = clock
    bank.settings.set(bank.system_actor(), "eod_catchup_days_confirm", "366")
    return clock


def make_customer(bank, actor=None, name="Jane Doe", **overrides):
    actor = actor or bank.system_actor()
    fields = dict(full_name=name, email="jane@example.com", phone="+1 555 0100",
                  date_of_birth="1990-01-02", national_id=f"ID{next(_national_ids):06d}",
                  address="1 Main Street")
    fields.update(overrides)
    return bank.customers.create(actor, **fields)


def funded_account(bank, amount="1000.00", kind="checking", customer_id=None, **kw):
    system = bank.system_actor()
    cid = customer_id or make_customer(bank)
    number = bank.accounts.open(system, cid, kind=kind, **kw)
    if amount and bankms.to_cents(amount, allow_zero=True):
        bank.payments.deposit(system, number, amount)
    return number


def customer_account(bank, name="Jane Doe", amount="1000.00", **kw):
    """A new customer with one funded account (kw as for funded_account, e.g.
    overdraft_limit): (customer id, account number)."""
    cid = make_customer(bank, name=name)
    return cid, funded_account(bank, amount, customer_id=cid, **kw)


def login_for(bank, customer_id, username, password="a long test password 1"):
    bank.users.create(bank.system_actor(), username=username, password=password,
                      role="customer", customer_id=customer_id)
    return bank.auth.login(username, password)


def sent_code(bank, username):
    """The newest activation code for username, as the customer receives it: read from the
    outbox as the system actor (staff never see it)."""
    import re
    bodies = [m["body"] for m in bank.outbox.pending(bank.system_actor())
              if f"username is {username} " in m["body"]]
    assert bodies, f"no activation code was sent for {username}"
    return re.search(r"activation code is ([A-Z0-9-]{19})", bodies[-1]).group(1)


def employee(bank, role="teller", username=None, password="a long test password 1"):
    username = username or f"{role}{next(_national_ids)}"
    bank.users.create(bank.system_actor(), username=username, password=password, role=role,
                      full_name=f"Test {role}")
    return bank.auth.login(username, password)


class ThrottleClock:
    """Stands in for bankms.services.throttle.utcnow (the clock of sign-in back-off and rate limits),
    so a test steps through their windows without sleeping."""

    def __init__(self, monkeypatch):
        from bankms.services import throttle
        self.now = throttle.utcnow()
        monkeypatch.setattr(throttle, "utcnow", lambda: self.now)

    def advance(self, seconds):
        self.now += dt.timedelta(seconds=seconds)


@pytest.fixture
def clock(monkeypatch):
    return ThrottleClock(monkeypatch)


@pytest.fixture
def app_env(tmp_path, monkeypatch):
    """For the managers' page tests (AppTest): a standard bank in a file the app opens, and
    that very Bank (the app's, in this process) for the test to read."""
    from browser.helpers import seed_standard_bank
    from pages.common import _open_bank

    path = str(tmp_path / "bank.duckdb")
    with bankms.open_bank(path, bcrypt_rounds=4) as bank:
        seed_standard_bank(bank)
    monkeypatch.setenv("BANKMS_DB", path)
    monkeypatch.setenv("BANKMS_COOKIE_KEY_FILE", str(tmp_path / "cookie.key"))
    monkeypatch.delenv("BANKMS_COOKIE_KEY", raising=False)
    monkeypatch.setenv("BANKMS_NO_DEMO", "1")
    return _open_bank(path)


def pytest_terminal_summary(terminalreporter):
    # PostgreSQL tests skipped for want of a server must not pass unnoticed.
    pgcluster.report_skipped(terminalreporter)
