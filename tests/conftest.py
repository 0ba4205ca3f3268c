"""Shared fixtures: a real DuckDB file per test, a system actor, and helpers to make customers.

Keep this file small; fixtures that only one test module needs belong in that module.
"""
from __future__ import annotations

import datetime as dt
import itertools
import os

import pytest

os.environ.setdefault("BANKMS_BCRYPT_ROUNDS", "4")
# In-process app tests start on banks they build themselves; the demo bank that the app builds
# on a first start is tested with a real server (tests/browser/test_setup.py).
os.environ.setdefault("BANKMS_NO_DEMO", "1")

import bankms  # noqa: E402

_national_ids = itertools.count(1)


@pytest.fixture
def bank(tmp_path):
    b = bankms.open_bank(str(tmp_path / "bank.duckdb"), bcrypt_rounds=4)
    yield b
    b.close()


@pytest.fixture
def system(bank):
    return bank.system_actor()


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


def login_for(bank, customer_id, username, password="a long test password 1"):
    bank.users.create(bank.system_actor(), username=username, password=password,
                      role="customer", customer_id=customer_id)
    return bank.auth.login(username, password)


def employee(bank, role="teller", username=None, password="a long test password 1"):
    username = username or f"{role}{next(_national_ids)}"
    bank.users.create(bank.system_actor(), username=username, password=password, role=role,
                      full_name=f"Test {role}")
    return bank.auth.login(username, password)


class Clock:
    """Stands in for bankms.throttle.utcnow (the clock of sign-in back-off and rate limits),
    so a test steps through their windows without sleeping."""

    def __init__(self, monkeypatch):
        from bankms import throttle
        self.now = throttle.utcnow()
        monkeypatch.setattr(throttle, "utcnow", lambda: self.now)

    def advance(self, seconds):
        self.now += dt.timedelta(seconds=seconds)


@pytest.fixture
def clock(monkeypatch):
    return Clock(monkeypatch)
