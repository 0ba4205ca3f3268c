"""The demo bank: it builds through the bulk path, keeps every ledger invariant at every moment,
looks like a real bank, signs its demo users in, and works from the command line."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import bankms
from bankms import accountnum, cli
from bankms.demo import (DEMO_CUSTOMERS, DEMO_STAFF, build_demo, demo_exists, demo_logins,
                         is_empty)
from bankms.errors import InvalidInput, InvalidState
from bankms.ledger import utcnow
from conftest import make_customer

ROOT = Path(__file__).resolve().parents[1]
PYTHON = "/work/venv/bin/python" if os.path.exists("/work/venv/bin/python") else sys.executable
CUSTOMERS, MONTHS = 200, 12


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """One demo bank (200 customers, 12 months) shared by the read-only tests below."""
    path = tmp_path_factory.mktemp("demo") / "bank.duckdb"
    bank = bankms.open_bank(str(path), bcrypt_rounds=4)
    calls = []
    logins = build_demo(bank, customers=CUSTOMERS, months=MONTHS, seed=7,
                        progress=lambda done, total: calls.append((done, total)))
    yield bank, logins, calls
    bank.close()


@pytest.fixture(scope="module")
def empty(tmp_path_factory):
    """A new bank that the refusal tests leave untouched."""
    bank = bankms.open_bank(str(tmp_path_factory.mktemp("empty") / "bank.duckdb"),
                            bcrypt_rounds=4)
    yield bank
    bank.close()


def scalar(bank, sql, params=None):
    return bank.read_one(sql, params)[0]


def test_demo_keeps_every_ledger_invariant(demo):
    bank, _, _ = demo
    assert bank.audit.verify() == []
    assert scalar(bank, "SELECT count(*) FROM postings") > 100_000


def test_no_balance_is_ever_below_its_overdraft_limit_when_replayed(demo):
    bank, _, _ = demo
    # Debits first among postings at the same instant: the harshest order a replay can take.
    below = scalar(bank, """
        SELECT count(*) FROM (
            SELECT a.overdraft_limit_cents AS limit_cents,
                   sum(p.amount_cents) OVER (PARTITION BY p.account_id
                       ORDER BY p.posted_at, p.amount_cents, p.id
                       ROWS UNBOUNDED PRECEDING) AS running_cents
            FROM postings p JOIN accounts a ON a.id = p.account_id
            WHERE a.customer_id IS NOT NULL)
        WHERE running_cents < -limit_cents""")
    assert below == 0


def test_progress_is_reported_up_to_the_total(demo):
    _, _, calls = demo
    done = [d for d, _ in calls]
    assert done == sorted(done)
    assert calls[-1][0] == calls[-1][1]
    assert len(calls) >= MONTHS


SUSPENSIONS = ("SELECT h.customer_id, h.changed_at FROM customer_status_history h "
               "WHERE h.new_status = 'suspended'")
ACTIVITY_KINDS = "('deposit', 'withdrawal', 'transfer')"

REALISM = [
    # (what, SQL giving one number, comparison, value)
    ("pending self-registered customers", "SELECT count(*) FROM customers "
     "WHERE status = 'pending' AND created_by <> 'system'", ">", 0),
    ("pending customers have no accounts", "SELECT count(*) FROM accounts a JOIN customers c "
     "ON c.id = a.customer_id WHERE c.status = 'pending'", "==", 0),
    ("suspended customers", "SELECT count(*) FROM customers WHERE status = 'suspended'", ">", 0),
    ("no money moves after a suspension", "SELECT count(*) FROM postings p JOIN accounts a "
     f"ON a.id = p.account_id JOIN ({SUSPENSIONS}) s ON s.customer_id = a.customer_id "
     "WHERE p.posted_at >= s.changed_at", "==", 0),
    ("four segments", "SELECT count(DISTINCT segment) FROM customers", "==", 4),
    ("national ids are unique", "SELECT count(*) - count(DISTINCT national_id) FROM customers",
     "==", 0),
    ("customers joined before the period", "SELECT count(*) FROM customers "
     "WHERE created_at < current_date - INTERVAL 14 MONTH", ">", 0),
    ("customers joined during the period", "SELECT count(*) FROM customers "
     "WHERE created_at > current_date - INTERVAL 6 MONTH", ">", 0),
    ("frozen accounts", "SELECT count(*) FROM accounts WHERE status = 'frozen'", ">", 0),
    ("closed accounts at zero", "SELECT count(*) FROM accounts WHERE status = 'closed' "
     "AND balance_cents = 0 AND closed_at IS NOT NULL", ">", 0),
    ("nothing moves after a closing", "SELECT count(*) FROM postings p JOIN accounts a "
     "ON a.id = p.account_id WHERE a.closed_at IS NOT NULL AND p.posted_at > a.closed_at",
     "==", 0),
    ("savings without interest", "SELECT count(*) FROM accounts WHERE kind = 'savings' "
     "AND interest_rate_percent <= 0", "==", 0),
    ("checking with interest", "SELECT count(*) FROM accounts WHERE kind = 'checking' "
     "AND interest_rate_percent <> 0", "==", 0),
    ("overdraft limits", "SELECT count(*) FROM accounts WHERE overdraft_limit_cents > 0",
     ">", 0),
    ("accounts that used their overdraft", "SELECT count(DISTINCT account_id) FROM ("
     "SELECT p.account_id, sum(p.amount_cents) OVER (PARTITION BY p.account_id "
     "ORDER BY p.posted_at, p.id) AS running FROM postings p JOIN accounts a "
     "ON a.id = p.account_id WHERE a.customer_id IS NOT NULL) WHERE running < 0", ">", 0),
    ("salaries paid from clearing", "SELECT count(*) FROM transactions t JOIN postings p "
     "ON p.transaction_id = t.id JOIN accounts a ON a.id = p.account_id "
     "WHERE a.account_number = 'GL1100' AND p.amount_cents < 0 AND t.memo LIKE 'Salary %'",
     ">", 0),
    ("card payments with merchants", "SELECT count(*) FROM transactions "
     "WHERE memo LIKE 'Card payment %' AND kind = 'withdrawal'", ">", CUSTOMERS * MONTHS * 5),
    ("rent and bills", "SELECT count(DISTINCT memo) FROM transactions WHERE memo LIKE 'Rent %' "
     "OR memo LIKE 'Electricity %' OR memo LIKE 'Mobile %'", ">=", 3),
    ("transfers between customers", "SELECT count(*) FROM transactions t "
     "JOIN accounts s ON s.account_number = t.source_account "
     "JOIN accounts r ON r.account_number = t.target_account "
     "WHERE t.kind = 'transfer' AND s.customer_id <> r.customer_id", ">", 0),
    ("savings interest", "SELECT count(*) FROM transactions WHERE kind = 'interest'", ">", 0),
    ("dormant candidates", "SELECT count(*) FROM accounts WHERE customer_id IS NOT NULL "
     "AND status = 'active' AND last_activity_at < current_date - INTERVAL 12 MONTH", ">", 0),
    ("last activity matches the ledger", "SELECT count(*) FROM accounts a JOIN (SELECT "
     "p.account_id, max(p.posted_at) AS last FROM postings p JOIN transactions t "
     f"ON t.id = p.transaction_id WHERE t.kind IN {ACTIVITY_KINDS} GROUP BY 1) l "
     "ON l.account_id = a.id WHERE a.last_activity_at <> l.last", "==", 0),
    ("business date is the posting day", "SELECT count(*) FROM transactions "
     "WHERE business_date <> CAST(posted_at AS DATE)", "==", 0),
    ("December spends more than January", "SELECT sum(amount_cents) FILTER "
     "(WHERE month(business_date) = 12) / sum(amount_cents) FILTER "
     "(WHERE month(business_date) = 1) FROM transactions WHERE memo LIKE 'Card payment %' "
     "AND business_date < date_trunc('month', current_date)", ">", 1.2),
    ("July travels more than February", "SELECT count(*) FILTER (WHERE month(business_date) = 7)"
     " / count(*) FILTER (WHERE month(business_date) = 2) FROM transactions "
     "WHERE memo IN ('Card payment SkyWays Airlines', 'Card payment Seaside Hotel', "
     "'Card payment Alpine Lodge', 'Card payment TravelNow') "
     "AND business_date < date_trunc('month', current_date)", ">", 2),
    ("summary audit rows by system", "SELECT count(DISTINCT action) FROM audit_log "
     "WHERE actor = 'system' AND action IN ('demo.create_customers', 'demo.open_accounts', "
     "'demo.post_history', 'demo.build')", "==", 4),
]


@pytest.mark.parametrize("what,sql,op,expected", REALISM, ids=[r[0] for r in REALISM])
def test_demo_looks_like_a_bank(demo, what, sql, op, expected):
    bank, _, _ = demo
    value = scalar(bank, sql)
    assert {">": value > expected, ">=": value >= expected, "==": value == expected}[op], \
        f"{what}: {value} {op} {expected} fails"


def test_no_posting_is_in_the_future_or_before_the_period(demo):
    bank, _, _ = demo
    first, last = bank.read_one("SELECT min(t.posted_at), max(t.posted_at) FROM transactions t "
                                "WHERE t.kind <> 'deposit'")
    assert last < utcnow()
    assert (utcnow() - first).days <= MONTHS * 31 + 31


def test_account_numbers_carry_valid_check_digits(demo):
    bank, _, _ = demo
    numbers = [n for (n,) in bank.read("SELECT account_number FROM accounts "
                                       "WHERE customer_id IS NOT NULL")]
    assert numbers and all(accountnum.is_valid(n) for n in numbers)


@pytest.mark.parametrize("spec", DEMO_STAFF + DEMO_CUSTOMERS, ids=lambda s: s["username"])
def test_demo_logins_sign_in(demo, spec):
    bank, logins, _ = demo
    assert {"role": spec["role"], "username": spec["username"], "password": spec["password"],
            "full_name": spec["full_name"]} in logins
    actor = bank.auth.login(spec["username"], spec["password"])
    assert (actor.role, actor.full_name) == (spec["role"], spec["full_name"])
    assert (actor.customer_id is not None) == (spec["role"] == "customer")


@pytest.mark.parametrize("username,accounts_min", [("alice", 2), ("bob", 3), ("carol", 2)])
def test_demo_customers_have_interesting_histories(demo, username, accounts_min):
    bank, logins, _ = demo
    password = next(u["password"] for u in logins if u["username"] == username)
    actor = bank.auth.login(username, password)
    accounts = bank.accounts.list(actor)
    assert len(accounts) >= accounts_min
    history = bank.accounts.history(actor, accounts["account_number"].iloc[0])
    assert len(history) >= 10 * MONTHS


def test_demo_exists_and_its_logins_are_kept_for_the_sign_in_page(demo, empty):
    demo_bank, logins, _ = demo
    assert demo_exists(demo_bank) and demo_logins(demo_bank) == logins
    assert not demo_exists(empty) and demo_logins(empty) == [] and is_empty(empty)


def test_a_second_demo_is_refused(demo):
    demo_bank, _, _ = demo
    before = scalar(demo_bank, "SELECT count(*) FROM customers")
    with pytest.raises(InvalidState):
        build_demo(demo_bank, customers=10, months=1)
    assert scalar(demo_bank, "SELECT count(*) FROM customers") == before


@pytest.mark.parametrize("kwargs,error", [
    ({"customers": 9}, InvalidInput),
    ({"customers": 2_000_001}, InvalidInput),
    ({"customers": True}, InvalidInput),
    ({"customers": "50"}, InvalidInput),
    ({"months": 0}, InvalidInput),
    ({"months": 121}, InvalidInput),
    ({"months": 2.0}, InvalidInput),
])
def test_bad_arguments_are_refused_and_change_nothing(empty, kwargs, error):
    with pytest.raises(error):
        build_demo(empty, **kwargs)
    assert is_empty(empty) and not demo_exists(empty)


def test_a_bank_with_customers_gets_no_demo(bank):
    make_customer(bank)
    with pytest.raises(InvalidState):
        build_demo(bank, customers=10, months=1)
    assert scalar(bank, "SELECT count(*) FROM transactions") == 0


def test_the_same_seed_builds_the_same_people(tmp_path):
    people = []
    for name in ("a", "b"):
        with bankms.open_bank(str(tmp_path / f"{name}.duckdb"), bcrypt_rounds=4) as bank:
            build_demo(bank, customers=10, months=1, seed=3)
            people.append(bank.read("SELECT full_name, national_id, date_of_birth "
                                    "FROM customers ORDER BY id"))
    assert people[0] == people[1]


def run_cli(*args):
    env = {**os.environ, "BANKMS_BCRYPT_ROUNDS": "4"}
    return subprocess.run([PYTHON, "-m", "bankms", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_cli_demo_then_verify_init_and_backup(tmp_path):
    db = str(tmp_path / "cli.duckdb")
    built = run_cli("--db", db, "demo", "--customers", "30", "--months", "2")
    assert built.returncode == 0, built.stderr
    assert "alice" in built.stdout and "alice-demo-pass" in built.stdout
    checked = run_cli("--db", db, "verify")
    assert (checked.returncode, "ok" in checked.stdout) == (0, True), checked.stdout
    assert cli.main(["--db", db, "init"]) == 0  # the demo is there already: nothing is added
    dest = str(tmp_path / "copy.duckdb")
    copied = run_cli("--db", db, "backup", dest)
    assert copied.returncode == 0, copied.stderr
    with bankms.open_bank(db, bcrypt_rounds=4) as original, \
            bankms.open_bank(dest, bcrypt_rounds=4) as backup:
        assert backup.audit.verify() == [] and demo_exists(backup)
        count = "SELECT count(*) FROM customers"
        assert scalar(backup, count) == scalar(original, count) == 30
        assert scalar(original, "SELECT count(*) FROM audit_log WHERE action = 'demo.build'") == 1


def test_cli_init_leaves_a_real_bank_without_a_demo(tmp_path):
    db = str(tmp_path / "real.duckdb")
    with bankms.open_bank(db, bcrypt_rounds=4) as bank:
        make_customer(bank)
    assert cli.main(["--db", db, "init"]) == 0
    with bankms.open_bank(db, bcrypt_rounds=4) as bank:
        assert not demo_exists(bank)
        assert scalar(bank, "SELECT count(*) FROM customers") == 1
