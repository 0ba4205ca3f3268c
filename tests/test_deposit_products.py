"""Deposit products (issue 10): the migration at open, the versioned terms and their lookup by
day, and the managers' service (create, change from a business date, tiers, withdraw)."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import duckdb
import pytest

import bankms
from bankms.demo import build_demo
from bankms.deposit_products import versions_in_force
from conftest import funded_account, make_customer


def _drop_products(path):
    """Turn a bank file into one made before deposit products existed."""
    con = duckdb.connect(str(path))
    for table in ("deposit_product_tiers", "deposit_product_versions", "deposit_products"):
        con.execute(f"DROP TABLE {table}")
    con.execute("DROP SEQUENCE deposit_product_id_seq")
    con.execute("ALTER TABLE accounts DROP COLUMN product_id")
    con.execute("ALTER TABLE accounts DROP COLUMN rate_negotiated")
    con.execute("CHECKPOINT")
    con.close()


# The rate each customer account earned before products existed, from the old file.
RATES_SQL = ("SELECT account_number, kind, interest_rate_percent FROM accounts "
             "WHERE customer_id IS NOT NULL ORDER BY 1")
# The rate each account earns after the migration, by the rule of PLAN10 / deposit_products.py:
# its own if negotiated, else its product's (migrated products have no tiers).
EARNS_SQL = """
SELECT a.account_number, a.kind, CASE WHEN a.rate_negotiated THEN a.interest_rate_percent
       ELSE v.interest_rate_percent END
FROM accounts a JOIN deposit_products p ON p.id = a.product_id
JOIN deposit_product_versions v ON v.product_id = p.id
WHERE a.customer_id IS NOT NULL ORDER BY 1"""


def test_an_existing_demo_bank_migrates_and_every_account_keeps_its_rate(tmp_path):
    path = tmp_path / "bank.duckdb"
    bank = bankms.open_bank(str(path), bcrypt_rounds=4)
    build_demo(bank, customers=30, months=2, seed=3)
    bank.close()
    _drop_products(path)
    con = duckdb.connect(str(path))
    before = con.execute(RATES_SQL).fetchall()
    first_day = con.execute("SELECT min(business_date) FROM transactions").fetchone()[0]
    con.close()
    assert {kind for _, kind, _ in before} == {"checking", "savings"}

    bank = bankms.open_bank(str(path), bcrypt_rounds=4)
    try:
        after = bank.read(EARNS_SQL)
        assert after == before
        assert bank.read_one("SELECT count(*) FROM accounts WHERE customer_id IS NOT NULL "
                             "AND product_id IS NULL")[0] == 0
        # Versions start on the bank's first business date: nothing in the past reads terms
        # that did not exist then.
        assert {r[0] for r in bank.read(
            "SELECT effective_date FROM deposit_product_versions")} == {first_day}
        assert bank.audit.verify() == []
    finally:
        bank.close()

    # Opening again migrates nothing twice.
    bank = bankms.open_bank(str(path), bcrypt_rounds=4)
    try:
        assert bank.read_one("SELECT count(*) FROM deposit_products")[0] == 3
        assert bank.read_one("SELECT count(*) FROM deposit_product_versions")[0] == 3
        assert bank.read(EARNS_SQL) == before
    finally:
        bank.close()


@pytest.mark.parametrize("code, kind, rate, period, overdraft_allowed, active", [
    ("checking", "checking", Decimal("0.0000"), "monthly", True, True),
    ("savings", "savings", Decimal("2.0000"), "monthly", False, True),
    ("term_deposit", "term_deposit", Decimal("0.0000"), "maturity", False, True),
])
def test_a_new_bank_has_the_three_products(bank, system, code, kind, rate, period,
                                            overdraft_allowed, active):
    product = bank.deposit_products.get(system, code)
    assert (product["kind"], product["interest_rate_percent"], product["posting_period"],
            product["overdraft_allowed"], product["active"], product["day_count"],
            product["tiers"]) == (kind, rate, period, overdraft_allowed, active, "actual/365",
                                  [])


@pytest.mark.parametrize("kind, rate, negotiated", [
    ("checking", None, False),
    ("savings", None, False),
    ("savings", "1.50", True),
])
def test_opened_accounts_point_at_the_product_of_their_kind(bank, system, kind, rate,
                                                              negotiated):
    cid = make_customer(bank)
    number = bank.accounts.open(system, cid, kind=kind, interest_rate=rate)
    assert bank.read_one(
        "SELECT p.code, a.rate_negotiated FROM accounts a JOIN deposit_products p "
        "ON p.id = a.product_id WHERE a.account_number = ?", [number]) == (kind, negotiated)


def test_a_manager_setting_a_rate_makes_it_the_accounts_own(bank, system):
    number = funded_account(bank, "100.00", kind="savings")
    bank.accounts.set_interest_rate(system, number, "1.25")
    assert bank.read_one("SELECT rate_negotiated FROM accounts WHERE account_number = ?",
                         [number]) == (True,)


def _version(bank, code, day, rate):
    """Insert a version straight into the table (the service refuses past dates)."""
    pid = bank.read_one("SELECT id FROM deposit_products WHERE code = ?", [code])[0]
    bank.write(lambda uow: uow.execute(
        "INSERT INTO deposit_product_versions (product_id, effective_date, "
        "interest_rate_percent, day_count, posting_period, changed_at, changed_by) "
        "SELECT product_id, ?, ?, day_count, posting_period, now(), 'test' "
        "FROM deposit_product_versions WHERE product_id = ? ORDER BY effective_date LIMIT 1",
        [day, rate, pid]))
    return pid


@pytest.mark.parametrize("offset_days, expected_rate", [
    (-400, "2.0000"),   # before the first version: the first version
    (0, "2.0000"),
    (9, "2.0000"),
    (10, "3.0000"),
    (19, "3.0000"),
    (20, "1.5000"),
    (400, "1.5000"),
])
def test_versions_in_force_picks_the_latest_version_on_or_before_the_day(
        bank, offset_days, expected_rate):
    today = bank.business_date
    pid = _version(bank, "savings", today + dt.timedelta(days=10), "3.0")
    _version(bank, "savings", today + dt.timedelta(days=20), "1.5")
    with bank.snapshot() as cur:
        df = versions_in_force(cur, today + dt.timedelta(days=offset_days))
    assert len(df) == 3
    row = df[df["product_id"] == pid].iloc[0]
    assert row["interest_rate_percent"] == Decimal(expected_rate)
