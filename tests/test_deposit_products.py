"""Deposit products (issue 10): the migration at open, the versioned terms and their lookup by
day, and the managers' service (create, change from a business date, tiers, withdraw)."""
from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import duckdb
import pytest

import bankms
from bankms.services.approvals import PendingApproval
from bankms.demo import build_demo
from bankms.services.deposits.products import versions_in_force
from bankms.domain.errors import InvalidAmount, InvalidInput, PermissionDenied
from conftest import employee, funded_account, make_customer

DAY = dt.timedelta(days=1)


@pytest.fixture
def staff(bank):
    return {"teller": employee(bank, "teller"), "manager": employee(bank, "manager"),
            "manager2": employee(bank, "manager")}


def product_tables(bank):
    # Sorted here: ORDER BY ALL is DuckDB's alone; the order only needs to be the same twice.
    return [sorted(bank.read(f"SELECT * FROM {table}"), key=repr) for table in (
        "deposit_products", "deposit_product_versions", "deposit_product_tiers")]


def audit_rows(bank, action):
    return bank.read("SELECT actor, entity_id, before, after, outcome FROM audit_log "
                     "WHERE action = ? ORDER BY id", [action])


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
    # The demo builder puts its accounts on products itself.
    assert bank.read_one("SELECT count(*) FROM accounts WHERE customer_id IS NOT NULL "
                         "AND product_id IS NULL")[0] == 0
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


# -- creating ------------------------------------------------------------------------------
VALID = dict(code="bonus_saver", name="Bonus saver", kind="savings",
             terms={"interest_rate_percent": "1.25", "min_balance": "100.00",
                    "min_balance_fee": "2.50", "withholding_tax_bp": 1500},
             tiers=[("0", "1.00"), ("5,000.00", "1.5"), (1_000_000, "1.9999")])

CREATE_REFUSED = [
    ({"terms": {"interest_rate_percent": "1.12345"}}, InvalidInput, "at most four decimals"),
    ({"terms": {"interest_rate_percent": "100.01"}}, InvalidInput, "between 0 and 100"),
    ({"terms": {"interest_rate_percent": 1.5}}, InvalidInput, "as text or Decimal"),
    ({"tiers": [(-100, "1")]}, InvalidInput, "below a zero balance"),
    ({"tiers": [("-1.00", "1")]}, InvalidInput, "below a zero balance"),
    ({"tiers": [(0, "1"), (0, "2")]}, InvalidInput, "strictly increasing"),
    ({"tiers": [(1000, "1"), (500, "2")]}, InvalidInput, "strictly increasing"),
    ({"tiers": [(0, "1.00001")]}, InvalidInput, "at most four decimals"),
    ({"tiers": [(0, "-1")]}, InvalidInput, "between 0 and 100"),
    ({"tiers": [(0,)]}, InvalidInput, "Each tier is a pair"),
    ({"terms": {"min_balance": "-5.00"}}, InvalidAmount, "greater than zero"),
    ({"terms": {"min_balance": 5.0}}, InvalidAmount, "floating-point"),
    ({"terms": {"min_balance": "5.001"}}, InvalidAmount, "at most two decimals"),
    ({"terms": {"min_balance_cents": "500"}}, InvalidInput, "whole cents"),
    ({"terms": {"day_count": "actual/360"}}, InvalidInput, "Unknown day count"),
    ({"terms": {"posting_period": "maturity"}}, InvalidInput, "paid at maturity"),
    ({"terms": {"posting_period": "weekly"}}, InvalidInput, "Unknown posting period"),
    ({"terms": {"overdraft_allowed": True}}, InvalidInput, "Only checking products"),
    ({"terms": {"overdraft_allowed": "yes"}}, InvalidInput, "yes or no"),
    ({"kind": "checking", "terms": {"overdraft_limit_max": "100.00"}}, InvalidInput,
     "needs the overdraft allowed"),
    ({"terms": {"min_balance": "0", "min_balance_fee": "2.00"}}, InvalidInput,
     "needs a minimum balance"),
    ({"terms": {"term_months_min": 3}}, InvalidInput, "Only term deposit products"),
    ({"kind": "term_deposit", "terms": {"term_months_min": 24, "term_months_max": 12}},
     InvalidInput, "shortest not above the longest"),
    ({"kind": "term_deposit", "terms": {"early_closure_penalty": "interest_months"}},
     InvalidInput, "how many months of interest"),
    ({"kind": "term_deposit", "terms": {"interest_rate_percent": "1", "penalty_rate_percent":
      "2", "early_closure_penalty": "reduced_rate"}}, InvalidInput, "must not exceed"),
    ({"terms": {"early_closure_penalty": "reduced_rate"}}, InvalidInput,
     "Only term deposits have an early-closure penalty"),
    ({"terms": {"withholding_tax_bp": 10_001}}, InvalidInput, "between 0 and 10,000"),
    ({"terms": {"dormancy_months": 0}}, InvalidInput, "between 1 and 120"),
    ({"terms": {"nonsense": 1}}, InvalidInput, "Unknown deposit product term 'nonsense'"),
    ({"terms": "rate 2"}, InvalidInput, "as a dict"),
    ({"code": "Bad Code!"}, InvalidInput, "product code is 2 to 30"),
    ({"code": "savings"}, InvalidInput, "already a deposit product 'savings'"),
    ({"kind": "loan"}, InvalidInput, "Unknown kind of product 'loan'"),
    ({"name": "x"}, InvalidInput, "product name"),
    ({"effective_date": "yesterday"}, InvalidInput, "must look like"),
    ({"effective_date": "past"}, InvalidInput, "the past never changes"),
]


@pytest.mark.parametrize("change, error, message", CREATE_REFUSED)
def test_a_bad_product_is_refused_and_nothing_changes(bank, staff, change, error, message):
    before = product_tables(bank)
    if change.get("effective_date") == "past":
        change = {**change, "effective_date": bank.business_date - DAY}
    with pytest.raises(error, match=message.replace("(", r"\(").replace(".", r"\.")):
        bank.deposit_products.create(staff["manager"], **{**VALID, **change})
    assert product_tables(bank) == before
    assert [r[4] for r in audit_rows(bank, "deposit_product.create")] == ["refused"]


def test_a_new_product_is_offered_at_once_and_audited(bank, staff):
    got = bank.deposit_products.create(staff["manager"], **VALID)
    assert (got["kind"], got["active"], got["effective_date"], got["interest_rate_percent"],
            got["min_balance_cents"], got["min_balance_fee_cents"], got["withholding_tax_bp"],
            got["posting_period"], got["day_count"], got["tiers"]) == (
        "savings", True, bank.business_date, Decimal("1.25"), 10_000, 250, 1500, "monthly",
        "actual/365",
        [(0, Decimal("1.00")), (500_000, Decimal("1.50")), (1_000_000, Decimal("1.9999"))])
    ((actor, code, before, after, outcome),) = audit_rows(bank, "deposit_product.create")
    after = json.loads(after)
    assert (actor, code, before, outcome) == (staff["manager"].username, "bonus_saver", None,
                                             "ok")
    assert (after["terms"]["interest_rate_percent"], after["tiers"][1]) == (
        "1.2500", [500_000, "1.5000"])


def test_only_managers_manage_products(bank, staff):
    cid = make_customer(bank)
    customer = bankms.domain.security.Actor(username="c", role="customer", customer_id=cid)
    before = product_tables(bank)
    tomorrow = bank.business_date + DAY
    for actor in (staff["teller"], customer):
        for call in (
                lambda: bank.deposit_products.create(actor, **VALID),
                lambda: bank.deposit_products.change(actor, "savings", terms={
                    "interest_rate_percent": "1"}, effective_date=tomorrow),
                lambda: bank.deposit_products.set_active(actor, "savings", False)):
            with pytest.raises(PermissionDenied):
                call()
    assert product_tables(bank) == before
    # Everybody signed in may read the products (public terms).
    assert bank.deposit_products.get(customer, "savings")["code"] == "savings"


# -- changing ------------------------------------------------------------------------------
CHANGE_REFUSED = [
    ({"effective_date": 0}, InvalidInput, "the past never changes"),
    ({"effective_date": -1}, InvalidInput, "the past never changes"),
    ({"effective_date": -365}, InvalidInput, "the past never changes"),
    ({"effective_date": None}, InvalidInput, "Give the business date"),
    ({"terms": {"interest_rate_percent": "2.12345"}}, InvalidInput, "at most four decimals"),
    ({"tiers": [(0, "1"), (-5000, "2")]}, InvalidInput, "below a zero balance"),
    ({"tiers": [("10.00", "1"), ("10.00", "2")]}, InvalidInput, "strictly increasing"),
    ({"terms": {"interest_rate_percent": "1.25"}}, InvalidInput, "Nothing to change"),
    ({"terms": {"posting_period": "maturity"}}, InvalidInput, "paid at maturity"),
    ({"code": "nope"}, InvalidInput, "no deposit product 'nope'"),
]


@pytest.mark.parametrize("change, error, message", CHANGE_REFUSED)
def test_a_bad_change_is_refused_and_nothing_changes(bank, staff, change, error, message):
    bank.deposit_products.create(staff["manager"], **VALID)
    before = product_tables(bank)
    args = {"code": "bonus_saver", "terms": {"interest_rate_percent": "1.5"},
            "effective_date": 1, **change}
    if isinstance(args["effective_date"], int):
        args["effective_date"] = bank.business_date + args["effective_date"] * DAY
    with pytest.raises(error, match=message):
        bank.deposit_products.change(staff["manager"], args.pop("code"), **args)
    assert product_tables(bank) == before
    assert [r[4] for r in audit_rows(bank, "deposit_product.change")] == ["refused"]


def test_a_change_applies_from_its_date_and_is_audited_with_before_and_after(bank, staff):
    products = bank.deposit_products
    products.create(staff["manager"], **VALID)
    today = bank.business_date
    got = products.change(staff["manager"], "bonus_saver", effective_date=today + 7 * DAY,
                          terms={"interest_rate_percent": "1.75", "maintenance_fee": "3.00"},
                          tiers=[(0, "1.1")])
    assert (got["effective_date"], got["interest_rate_percent"], got["maintenance_fee_cents"],
            got["min_balance_cents"], got["tiers"]) == (
        today + 7 * DAY, Decimal("1.75"), 300, 10_000, [(0, Decimal("1.1"))])
    # Tiers None keeps the tiers of the version it changes.
    products.change(staff["manager"], "bonus_saver", effective_date=today + 14 * DAY,
                    terms={"interest_rate_percent": "1.80"})
    for day, rate, tiers in ((today, "1.25", 3), (today + 6 * DAY, "1.25", 3),
                             (today + 7 * DAY, "1.75", 1), (today + 13 * DAY, "1.75", 1),
                             (today + 14 * DAY, "1.80", 1), (today + 900 * DAY, "1.80", 1)):
        got = products.get(staff["teller"], "bonus_saver", on=day)
        assert (got["interest_rate_percent"], len(got["tiers"])) == (Decimal(rate), tiers), day
    listed = products.list(staff["teller"]).set_index("code")
    assert (listed.loc["bonus_saver", "future_versions"],
            listed.loc["bonus_saver", "tier_count"]) == (2, 3)
    first, _ = [(json.loads(b), json.loads(a)) for _, _, b, a, _ in
                audit_rows(bank, "deposit_product.change")]
    before, after = first
    assert (before["effective_date"], before["interest_rate_percent"],
            before["maintenance_fee_cents"], before["tiers"],
            after["effective_date"], after["interest_rate_percent"],
            after["maintenance_fee_cents"], after["tiers"]) == (
        str(today), "1.2500", 0, [[0, "1.0000"], [500_000, "1.5000"], [1_000_000, "1.9999"]],
        str(today + 7 * DAY), "1.7500", 300, [[0, "1.1000"]])


def test_a_change_on_a_future_date_replaces_the_version_of_that_date(bank, staff):
    products = bank.deposit_products
    day = bank.business_date + 3 * DAY
    products.change(staff["manager"], "savings", effective_date=day,
                    terms={"interest_rate_percent": "1.5"})
    products.change(staff["manager"], "savings", effective_date=day,
                    terms={"interest_rate_percent": "1.6"}, tiers=[(0, "1.6"), (100, "1.7")])
    assert bank.read("SELECT v.effective_date, v.interest_rate_percent FROM "
                     "deposit_product_versions v JOIN deposit_products p ON p.id = v.product_id "
                     "WHERE p.code = 'savings' ORDER BY 1") == [
        (bank.business_date, Decimal("2.0000")), (day, Decimal("1.6000"))]
    assert products.get(staff["teller"], "savings", on=day)["tiers"] == [
        (0, Decimal("1.6")), (100, Decimal("1.7"))]


@pytest.mark.parametrize("terms, tiers, waits", [
    ({"interest_rate_percent": "1.99"}, None, False),
    ({"interest_rate_percent": "2.00"}, [(0, "2.00")], False),   # the limit itself is allowed
    ({"interest_rate_percent": "2.01"}, None, True),
    ({"interest_rate_percent": "1.00"}, [(0, "1.00"), (500_000, "2.50")], True),
    ({"maintenance_fee": "1.00"}, None, False),                 # savings already pays 2.00
])
def test_a_rate_above_the_four_eyes_rate_waits_for_a_second_manager(bank, staff, terms,
                                                                     tiers, waits):
    products = bank.deposit_products
    day = bank.business_date + DAY
    before = product_tables(bank)
    got = products.change(staff["manager"], "savings", terms=terms, tiers=tiers,
                          effective_date=day)
    assert isinstance(got, PendingApproval) == waits
    if not waits:
        return
    assert product_tables(bank) == before
    with pytest.raises(PermissionDenied):  # the maker never approves their own request
        bank.approvals.approve(staff["manager"], got.request_id)
    bank.approvals.approve(staff["manager2"], got.request_id)
    after = products.get(staff["teller"], "savings", on=day)
    assert (after["interest_rate_percent"], after["tiers"]) == (
        Decimal(terms["interest_rate_percent"]),
        [(c, Decimal(r)) for c, r in tiers or ()])
    ((actor, _, _, _, outcome),) = audit_rows(bank, "deposit_product.change")
    assert (actor, outcome) == (staff["manager"].username, "ok")


def test_an_approval_after_the_date_has_passed_is_refused(bank, staff, monkeypatch):
    pending = bank.deposit_products.change(
        staff["manager"], "savings", terms={"interest_rate_percent": "3"},
        effective_date=bank.business_date + DAY)
    before = product_tables(bank)
    bank.state.business_date += DAY  # as end of day would
    with pytest.raises(InvalidInput, match="the past never changes"):
        bank.approvals.approve(staff["manager2"], pending.request_id)
    assert product_tables(bank) == before


# -- withdrawing, and accounts opened on products ------------------------------------------
def test_a_withdrawn_product_takes_no_new_accounts_until_reinstated(bank, staff):
    products, cid = bank.deposit_products, make_customer(bank)
    products.create(staff["manager"], **VALID)
    kept = bank.accounts.open(staff["teller"], cid, product="bonus_saver")
    assert products.set_active(staff["manager"], "bonus_saver", False)["active"] is False
    with pytest.raises(InvalidInput, match="withdrawn"):
        bank.accounts.open(staff["teller"], cid, product="bonus_saver")
    assert bank.accounts.get(staff["teller"], kept)["product_code"] == "bonus_saver"
    products.set_active(staff["manager"], "bonus_saver", True)
    bank.accounts.open(staff["teller"], cid, product="bonus_saver")
    assert [(json.loads(b), json.loads(a)) for _, _, b, a, _ in
            audit_rows(bank, "deposit_product.set_active")] == [
        ({"active": True}, {"active": False}), ({"active": False}, {"active": True})]


OPENING = [
    # product, kind, overdraft limit, expected (kind, product name, rate) or (error, message)
    ("bonus_saver", None, "0", ("savings", "Bonus saver", Decimal("1.25"))),
    ("bonus_saver", "savings", "0", ("savings", "Bonus saver", Decimal("1.25"))),
    (None, "savings", "0", ("savings", "Savings", Decimal("2.00"))),
    (None, None, "0", ("checking", "Checking", Decimal("0"))),
    ("checking", None, "500.00", ("checking", "Checking", Decimal("0"))),
    ("capped", None, "200.00", ("checking", "Capped checking", Decimal("0"))),
    ("bonus_saver", "checking", "0", (InvalidInput, "is for savings accounts, not checking")),
    ("basic", None, "100.00", (InvalidInput, "allows no overdraft")),
    ("capped", None, "200.01", (InvalidInput, r"at most \$200\.00")),
    ("savings", None, "10.00", (InvalidInput, "Only checking accounts can have an overdraft")),
    ("nope", None, "0", (InvalidInput, "no deposit product 'nope'")),
]


@pytest.mark.parametrize("product, kind, overdraft, expected", OPENING)
def test_an_account_opens_on_a_product(bank, staff, product, kind, overdraft, expected):
    manager, products = staff["manager"], bank.deposit_products
    products.create(manager, **VALID)
    products.create(manager, code="basic", name="Basic checking", kind="checking", terms={})
    products.create(manager, code="capped", name="Capped checking", kind="checking",
                    terms={"overdraft_allowed": True, "overdraft_limit_max": "200.00"})
    cid = make_customer(bank)
    count = bank.read_one("SELECT count(*) FROM accounts")
    if isinstance(expected[0], type):
        with pytest.raises(expected[0], match=expected[1]):
            bank.accounts.open(manager, cid, kind, overdraft, product=product)
        assert bank.read_one("SELECT count(*) FROM accounts") == count
        return
    number = bank.accounts.open(manager, cid, kind, overdraft, product=product)
    got = bank.accounts.get(manager, number)
    assert (got["kind"], got["product_name"], got["interest_rate_percent"],
            got["rate_negotiated"], got["name"]) == (*expected, False, expected[1])
    listed = bank.accounts.list(manager, cid)
    assert list(listed["product_code"]) == [product or kind or "checking"]


def test_a_later_overdraft_limit_stays_within_the_product(bank, staff):
    manager = staff["manager"]
    bank.deposit_products.create(manager, code="capped", name="Capped checking",
                                 kind="checking", terms={"overdraft_allowed": True,
                                                         "overdraft_limit_max": "200.00"})
    number = bank.accounts.open(manager, make_customer(bank), product="capped")
    with pytest.raises(InvalidInput, match="at most"):
        bank.accounts.set_overdraft_limit(manager, number, "300.00")
    bank.accounts.set_overdraft_limit(manager, number, "150.00")
    assert bank.accounts.get(manager, number)["overdraft_limit"] == Decimal("150.00")


def test_a_new_product_paying_above_the_four_eyes_rate_waits_for_a_second_manager(bank,
                                                                                   staff):
    before = product_tables(bank)
    pending = bank.deposit_products.create(staff["manager"], **{
        **VALID, "tiers": [(0, "1.00"), (1_000_000, "2.75")]})
    assert isinstance(pending, PendingApproval)
    assert product_tables(bank) == before
    bank.approvals.approve(staff["manager2"], pending.request_id)
    got = bank.deposit_products.get(staff["teller"], "bonus_saver")
    assert (got["active"], got["tiers"]) == (
        True, [(0, Decimal("1.00")), (1_000_000, Decimal("2.75"))])


@pytest.mark.parametrize("balance, negotiated_rate, expected", [
    # Tiers of VALID: from 0.00 1.00 %, from 5,000.00 1.50 %, from 10,000.00 1.9999 %; the
    # tier the balance reaches pays on the whole balance.
    ("0", None, "1.00"),
    ("4999.99", None, "1.00"),
    ("5000.00", None, "1.50"),
    ("9999.99", None, "1.50"),
    ("10000.00", None, "1.9999"),
    ("250000.00", None, "1.9999"),
    ("250000.00", "0.50", "0.50"),   # the account's own rate wins over every tier
])
def test_account_rates_follow_the_tier_of_the_balance_unless_negotiated(
        bank, staff, balance, negotiated_rate, expected):
    from bankms.services.deposits.eod import account_rates_sql
    bank.deposit_products.create(staff["manager"], **VALID)
    cid = make_customer(bank)
    number = bank.accounts.open(staff["manager"], cid, product="bonus_saver",
                                interest_rate=negotiated_rate)
    if Decimal(balance):
        bank.payments.deposit(bank.system_actor(), number, balance)
    rates = dict(bank.read("SELECT a.account_number, r.rate_percent FROM ("
                           + account_rates_sql() + ") r JOIN accounts a ON a.id = r.account_id",
                           [bank.business_date]))
    assert rates[number] == Decimal(expected)


@pytest.mark.parametrize("kind, product, message", [
    ("loan", None, "must be checking or savings"),
    ("loan", "savings", "must be checking or savings"),
    (None, "term_deposit", "must be checking or savings"),
])
def test_an_account_of_another_kind_is_refused(bank, staff, kind, product, message):
    count = bank.read_one("SELECT count(*) FROM accounts")
    with pytest.raises(InvalidInput, match=message):
        bank.accounts.open(staff["manager"], make_customer(bank), kind, product=product)
    assert bank.read_one("SELECT count(*) FROM accounts") == count
