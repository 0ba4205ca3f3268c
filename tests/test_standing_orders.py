"""Standing orders (issue 10): schedule, end-of-day execution, failures, retries, the fail fee,
refusals, and exactly-once execution over reruns and catch-ups.

Each bank here starts on a chosen business date (its clock at noon UTC that day) and closes
days with the clock moved a year ahead. Expected dates and amounts are written out by hand.
"""
from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal
from urllib.parse import urlsplit

import pgcluster
import pytest
from conftest import Clock, funded_account, login_for, make_customer

import bankms
from bankms.services import standing_orders as so
from bankms.store.port import DuplicateKey
from bankms.domain.errors import (
    AccountClosed,
    AccountNotActive,
    AccountNotFound,
    IdempotencyConflict,
    InvalidAccountNumber,
    InvalidAmount,
    InvalidInput,
    InvalidState,
    LimitExceeded,
    PermissionDenied,
    SameAccount,
)

pytestmark = pytest.mark.engines

D = dt.date
_keys = itertools.count(1)


def open_on(url, day: dt.date):
    """A bank whose first business date is `day` (a DuckDB file's path or a PostgreSQL URL);
    call `ahead(bank)` before closing days."""
    clock = Clock(dt.datetime(day.year, day.month, day.day, 12, tzinfo=dt.timezone.utc))
    bank = bankms.open_bank(str(url), bcrypt_rounds=4, clock=clock)
    assert bank.business_date == day
    clock.advance(days=800)
    bank.settings.set(bank.system_actor(), "eod_catchup_days_confirm", "366")
    return bank


@pytest.fixture
def make_bank(engine, tmp_path, request):
    """make(day, name): a bank named `name` on the engine under test, its first business date
    `day`. On PostgreSQL the first bank is the test's own database (engine.url) and each further
    name gets a database of its own, copied from the session's template and dropped after."""
    banks, extra = [], []

    def url_for(name):
        if engine.name != "pg":
            return tmp_path / f"{name}.duckdb"
        if not banks:
            return engine.url
        admin = request.getfixturevalue("pg_admin")
        template = request.getfixturevalue("pg_template")
        db = f"{urlsplit(engine.url).path.lstrip('/')}_{name}"
        admin.execute(f'CREATE DATABASE "{db}" TEMPLATE "{template}"')
        extra.append(db)
        return pgcluster.database_url(engine.url, db)

    def make(day, name="bank"):
        bank = open_on(url_for(name), day)
        banks.append(bank)
        return bank
    yield make
    for bank in banks:
        bank.close()
    for db in extra:
        request.getfixturevalue("pg_admin").execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def close_until(bank, day):
    bank.end_of_day(bank.system_actor(), until=day, confirm=True)


def order(bank, source, target, amount, actor=None, **kw):
    kw.setdefault("start_date", bank.business_date)
    return bank.standing_orders.create(actor or bank.system_actor(), source_account=source,
                                       target_account=target, amount=amount,
                                       idempotency_key=f"so-test-{next(_keys)}", **kw)


def runs(bank, order_id):
    """(due date, attempt date, outcome) of every attempt of an order, oldest first."""
    return [(r[0], r[1], r[2]) for r in bank.read(
        "SELECT due_date, attempt_date, outcome FROM standing_order_runs WHERE order_id = ? "
        "ORDER BY attempt_date, due_date", [order_id])]


def balance(bank, number) -> Decimal:
    return bank.accounts.balance(bank.system_actor(), number)


def assert_books(bank):
    assert bank.audit.verify() == []
    assert bank.read_one("SELECT sum(balance_cents) FROM accounts")[0] == 0


# -- the schedule, as dates (pure) and as end of day selects them (SQL) --------------------------
MONTH_END_CASES = [
    # day of month, year, month, the day it runs in that month
    (31, 2027, 2, 28),
    (30, 2027, 2, 28),
    (29, 2027, 2, 28),
    (28, 2027, 2, 28),
    (29, 2028, 2, 29),
    (30, 2028, 2, 29),
    (31, 2028, 2, 29),
    (31, 2027, 4, 30),
    (30, 2027, 4, 30),
    (29, 2027, 4, 29),
    (31, 2027, 6, 30),
    (31, 2027, 7, 31),
    (15, 2027, 6, 15),
]


@pytest.mark.parametrize("dom, year, month, expected_day", MONTH_END_CASES)
def test_monthly_next_occurrence_runs_on_the_last_day_of_short_months(dom, year, month,
                                                                      expected_day):
    assert so.next_occurrence("monthly", dom, None, D(year, month, 1)) == D(year, month,
                                                                           expected_day)
    days = [D(year, month, d) for d in range(1, 32) if _valid(year, month, d)]
    assert [d.day for d in days if so.occurs_on("monthly", dom, None, d)] == [expected_day]


def _valid(year, month, day):
    try:
        D(year, month, day)
    except ValueError:
        return False
    return True


WEEKLY_CASES = [
    # weekday, from (a Monday, 2027-03-01), first occurrence
    (0, D(2027, 3, 1), D(2027, 3, 1)),
    (2, D(2027, 3, 1), D(2027, 3, 3)),
    (6, D(2027, 3, 1), D(2027, 3, 7)),
    (0, D(2027, 3, 2), D(2027, 3, 8)),
]


@pytest.mark.parametrize("weekday, start, expected", WEEKLY_CASES)
def test_weekly_next_occurrence(weekday, start, expected):
    assert so.next_occurrence("weekly", None, weekday, start) == expected


def test_end_of_day_selects_the_same_due_dates_as_the_schedule(make_bank):
    """The SQL that end of day runs picks, over two years (2027 and leap 2028), exactly the
    days the pure schedule gives: one a month on the day or the month's last day."""
    bank = make_bank(D(2026, 12, 30))
    a = funded_account(bank, "100.00")
    b = funded_account(bank, "0")
    ids = {dom: order(bank, a, b, "1.00", frequency="monthly", day_of_month=dom,
                      start_date=D(2027, 1, 1))["id"] for dom in (28, 29, 30, 31)}
    ids["wed"] = order(bank, a, b, "1.00", frequency="weekly", weekday=2,
                       start_date=D(2027, 1, 1))["id"]
    picked = {key: [] for key in ids}
    by_id = {oid: key for key, oid in ids.items()}
    day = D(2027, 1, 1)
    while day <= D(2028, 12, 31):
        for (oid,) in bank.read("SELECT order_id FROM (" + so.CANDIDATES_SQL + ") AS c",
                                so.candidate_params(day)):
            picked[by_id[oid]].append(day)
        day += dt.timedelta(days=1)
    for dom, year, month, expected_day in MONTH_END_CASES:
        if dom in ids:
            assert [d for d in picked[dom] if (d.year, d.month) == (year, month)] == \
                [D(year, month, expected_day)]
    assert len(picked[31]) == 24 and all(len(picked[d]) == 24 for d in (28, 29, 30))
    assert picked[31][:7] == [D(2027, 1, 31), D(2027, 2, 28), D(2027, 3, 31), D(2027, 4, 30),
                              D(2027, 5, 31), D(2027, 6, 30), D(2027, 7, 31)]
    assert all(d.weekday() == 2 for d in picked["wed"]) and len(picked["wed"]) == 52 + 52


# -- execution by end of day --------------------------------------------------------------------
EXECUTION_CASES = [
    # first business date, schedule, close through, expected due dates executed, final status
    (D(2027, 2, 25), dict(frequency="monthly", day_of_month=31), D(2027, 3, 1),
     [D(2027, 2, 28)], "active"),
    (D(2028, 2, 26), dict(frequency="monthly", day_of_month=30), D(2028, 3, 1),
     [D(2028, 2, 29)], "active"),
    (D(2027, 4, 28), dict(frequency="monthly", day_of_month=31), D(2027, 5, 1),
     [D(2027, 4, 30)], "active"),
    (D(2027, 6, 28), dict(frequency="monthly", day_of_month=31), D(2027, 7, 1),
     [D(2027, 6, 30)], "active"),
    (D(2027, 3, 1), dict(frequency="weekly", weekday=2, count=2), D(2027, 3, 20),
     [D(2027, 3, 3), D(2027, 3, 10)], "finished"),
    (D(2027, 3, 1), dict(frequency="weekly", weekday=2, end_date=D(2027, 3, 16)),
     D(2027, 3, 20), [D(2027, 3, 3), D(2027, 3, 10)], "finished"),
    (D(2027, 3, 1), dict(frequency="weekly", weekday=0), D(2027, 3, 15),
     [D(2027, 3, 1), D(2027, 3, 8), D(2027, 3, 15)], "active"),
]


@pytest.mark.parametrize("first_day, schedule, until, executed, status", EXECUTION_CASES)
def test_end_of_day_executes_each_due_date_once(make_bank, first_day, schedule, until,
                                                executed, status):
    bank = make_bank(first_day)
    a = funded_account(bank, "500.00")
    b = funded_account(bank, "0")
    oid = order(bank, a, b, "25.50", memo="Rent", **schedule)["id"]
    close_until(bank, until)
    assert runs(bank, oid) == [(d, d, "executed") for d in executed]
    assert balance(bank, b) == Decimal("25.50") * len(executed)
    assert balance(bank, a) == Decimal("500.00") - Decimal("25.50") * len(executed)
    got = bank.standing_orders.get(bank.system_actor(), oid)
    assert (got["status"], got["executed_count"]) == (status, len(executed))
    memos = [r[0] for r in bank.read("SELECT memo FROM transactions WHERE kind = 'transfer' "
                                     "AND source_account = ?", [a])]
    assert memos == [f"Standing order {oid}: Rent"] * len(executed)
    assert_books(bank)


FAILURE_CASES = [
    # what happens between the due day and its retries, expected attempts (day offsets from
    # the due date, outcome), balances of source and target at the end
    ("pay in 50.00 after the first failure", [(0, "failed"), (1, "executed")],
     "30.00", "30.00"),
    ("never enough", [(0, "failed"), (1, "failed"), (2, "missed")], "10.00", "0.00"),
    ("target closed", [(0, "failed"), (1, "failed"), (2, "missed")], "100.00", None),
    ("source frozen", [(0, "failed"), (1, "failed"), (2, "missed")], "100.00", "0.00"),
    ("holder suspended", [(0, "failed"), (1, "failed"), (2, "missed")], "100.00", "0.00"),
]


@pytest.mark.parametrize("case, attempts, source_left, target_left", FAILURE_CASES)
def test_failed_occurrences_are_retried_then_missed(make_bank, case, attempts, source_left,
                                                    target_left):
    due = D(2027, 3, 10)
    bank = make_bank(D(2027, 3, 9))
    system = bank.system_actor()
    funded = "10.00" if case in ("pay in 50.00 after the first failure", "never enough") \
        else "100.00"
    owner = make_customer(bank, name="Sam Source")
    a = funded_account(bank, funded, customer_id=owner)
    b = funded_account(bank, "0")
    oid = order(bank, a, b, "30.00", frequency="monthly", day_of_month=10)["id"]
    if case == "target closed":
        bank.accounts.close(system, b, "customer left")
    elif case == "source frozen":
        bank.accounts.freeze(system, a, "fraud check")
    elif case == "holder suspended":
        bank.customers.set_status(system, owner, "suspended", "under review")
    close_until(bank, due)
    if case == "pay in 50.00 after the first failure":
        bank.payments.deposit(system, a, "50.00")
    close_until(bank, due + dt.timedelta(days=5))
    assert runs(bank, oid) == [(due, due + dt.timedelta(days=k), outcome)
                               for k, outcome in attempts]
    reasons = {r[0] for r in bank.read("SELECT reason FROM standing_order_runs WHERE "
                                       "order_id = ? AND outcome <> 'executed'", [oid])}
    expected_reason = {"never enough": "insufficient funds: $10.00 available, $30.00 needed",
                       "pay in 50.00 after the first failure":
                           "insufficient funds: $10.00 available, $30.00 needed",
                       "target closed": "target account closed",
                       "source frozen": "source account frozen",
                       "holder suspended": "source account holder suspended"}[case]
    assert reasons == {expected_reason}
    assert balance(bank, a) == Decimal(source_left)
    if target_left is not None:
        assert balance(bank, b) == Decimal(target_left)
    listed = bank.standing_orders.list(system, account=a).iloc[0]
    assert listed["last_outcome"] == attempts[-1][1]
    assert listed["failures"] == sum(1 for _, o in attempts if o != "executed")
    assert_books(bank)


def test_staff_see_failures_with_their_reasons(make_bank):
    bank = make_bank(D(2027, 3, 9))
    a = funded_account(bank, "0")
    b = funded_account(bank, "0")
    oid = order(bank, a, b, "30.00", frequency="monthly", day_of_month=10)["id"]
    close_until(bank, D(2027, 3, 12))
    failures = bank.standing_orders.failures(bank.system_actor(), since=D(2027, 3, 1))
    assert list(zip(failures["order_id"], failures["outcome"])) == [
        (oid, "missed"), (oid, "failed"), (oid, "failed")]
    assert set(failures["reason"]) == {"insufficient funds: $0.00 available, $30.00 needed"}


# -- the fail fee ------------------------------------------------------------------------------
def test_a_missed_occurrence_is_charged_the_products_fee_once(make_bank):
    pytest.importorskip("bankms.services.charges")
    pytest.importorskip("bankms.services.deposits.products")
    bank = make_bank(D(2027, 3, 1))
    manager = bank.system_actor()
    bank.deposit_products.change(manager, "checking", terms={
        "standing_order_fail_fee": "2.50"}, effective_date=D(2027, 3, 2))
    a = funded_account(bank, "20.00")
    b = funded_account(bank, "0")
    oid = order(bank, a, b, "30.00", frequency="weekly", weekday=2)["id"]  # Wednesdays
    close_until(bank, D(2027, 3, 13))
    # 3 Mar: failed, failed 4 Mar, missed 5 Mar (one fee); 10 Mar: failed, failed, missed
    # 12 Mar (a second fee): one per occurrence, never per attempt.
    charged = bank.read("SELECT amount_cents, business_date, status FROM charges "
                        "WHERE code = 'standing_order_failed' ORDER BY business_date")
    assert [(c[0], c[1]) for c in charged if c[2] == "charged"] == [
        (250, D(2027, 3, 5)), (250, D(2027, 3, 12))]
    assert balance(bank, a) == Decimal("15.00")
    missed = bank.read("SELECT charge_id FROM standing_order_runs WHERE order_id = ? AND "
                       "outcome = 'missed' ORDER BY due_date", [oid])
    assert all(row[0] is not None for row in missed) and len(missed) == 2
    assert_books(bank)


# -- refusals -----------------------------------------------------------------------------------
def test_a_standing_order_from_someone_elses_account_is_refused_and_nothing_changes(make_bank):
    bank = make_bank(D(2027, 3, 1))
    me = make_customer(bank, name="Mia Mine")
    mine = funded_account(bank, "100.00", customer_id=me)
    theirs = funded_account(bank, "100.00")
    login = login_for(bank, me, "mia")
    before = bank.read_one("SELECT count(*) FROM standing_orders")[0]
    with pytest.raises(PermissionDenied):
        order(bank, theirs, mine, "10.00", actor=login, frequency="monthly", day_of_month=5)
    assert bank.read_one("SELECT count(*) FROM standing_orders")[0] == before
    assert bank.read_one("SELECT count(*) FROM audit_log WHERE action = "
                         "'standing_order.create' AND outcome = 'refused'")[0] == 1
    close_until(bank, D(2027, 3, 6))
    assert (balance(bank, mine), balance(bank, theirs)) == (Decimal("100.00"),
                                                             Decimal("100.00"))
    # ... while one from their own account to the other customer is set up, and runs.
    oid = order(bank, mine, theirs, "10.00", actor=login, frequency="monthly",
                day_of_month=7)["id"]
    assert list(bank.standing_orders.list(login)["id"]) == [oid]
    with pytest.raises(PermissionDenied):
        bank.standing_orders.list(login, customer_id=me + 1)
    assert_books(bank)


BAD_INPUT = [
    # field changes, the refusal
    (dict(amount="0"), InvalidAmount),
    (dict(amount="1.234"), InvalidAmount),
    (dict(amount="ten"), InvalidAmount),
    (dict(day_of_month=0), InvalidInput),
    (dict(day_of_month=32), InvalidInput),
    (dict(frequency="daily"), InvalidInput),
    (dict(frequency="weekly", day_of_month=None, weekday=7), InvalidInput),
    (dict(start_date=D(2027, 2, 28)), InvalidInput),
    (dict(end_date=D(2027, 3, 4)), InvalidInput),
    (dict(count=0), InvalidInput),
    (dict(retry_days=9), InvalidInput),
    (dict(target="same"), SameAccount),
    (dict(target="000000000001"), AccountNotFound),
    (dict(source="closed"), AccountClosed),
    (dict(target="closed"), AccountClosed),
    (dict(target="frozen"), AccountNotActive),
    (dict(target="GL1000"), InvalidAccountNumber),
    (dict(amount="5000.01", target="other"), LimitExceeded),
]


def test_bad_input_is_refused_and_nothing_changes(make_bank):
    """Every row of BAD_INPUT in one bank: a refusal changes nothing, so the rows cannot see
    each other (and one bank, not eighteen, keeps the table cheap on PostgreSQL)."""
    bank = make_bank(D(2027, 3, 1))
    me = make_customer(bank, name="Ann Input")
    a = funded_account(bank, "100.00", customer_id=me)
    own = funded_account(bank, "0", customer_id=me)
    other = funded_account(bank, "0")
    closed = funded_account(bank, "0", customer_id=me)
    bank.accounts.close(bank.system_actor(), closed, "not needed")
    frozen = funded_account(bank, "0")
    bank.accounts.freeze(bank.system_actor(), frozen, "fraud check")
    login = login_for(bank, me, "ann")
    names = {"same": a, "closed": closed, "other": other, "frozen": frozen, None: None}

    def refusal(changes):
        """The error the row's create raises (None if it was accepted), and whether the count
        of orders and of transactions stayed the same."""
        changes = dict(changes)
        fields = dict(source_account=names.get(changes.pop("source", None)) or a,
                      target_account=names.get(changes.get("target"), changes.get("target"))
                      or own, amount="10.00", frequency="monthly", day_of_month=5,
                      start_date=D(2027, 3, 5))
        changes.pop("target", None)
        fields.update(changes)
        counts = "SELECT count(*), (SELECT count(*) FROM transactions) FROM standing_orders"
        before = bank.read_one(counts)
        try:
            bank.standing_orders.create(login, idempotency_key="bad-1", **fields)
            raised = None
        except Exception as exc:  # noqa: BLE001 - the table says which error each row expects
            raised = type(exc)
        return raised, bank.read_one(counts) == before

    got = [(changes, *refusal(changes)) for changes, _ in BAD_INPUT]
    assert got == [(changes, error, True) for changes, error in BAD_INPUT]


def test_a_repeated_key_returns_the_same_order_and_cancel_stops_it(make_bank):
    bank = make_bank(D(2027, 3, 1))
    system = bank.system_actor()
    a = funded_account(bank, "100.00")
    b = funded_account(bank, "0")
    fields = dict(source_account=a, target_account=b, amount="10.00", frequency="weekly",
                  weekday=2, start_date=D(2027, 3, 1), idempotency_key="once")
    first = bank.standing_orders.create(system, **fields)
    assert bank.standing_orders.create(system, **fields)["id"] == first["id"]
    with pytest.raises(IdempotencyConflict):
        bank.standing_orders.create(system, **{**fields, "amount": "11.00"})
    close_until(bank, D(2027, 3, 5))
    with pytest.raises(InvalidInput):
        bank.standing_orders.cancel(system, first["id"], " ")
    cancelled = bank.standing_orders.cancel(system, first["id"], "customer asked")
    assert (cancelled["status"], cancelled["next_due_date"]) == ("cancelled", None)
    close_until(bank, D(2027, 3, 20))
    assert runs(bank, first["id"]) == [(D(2027, 3, 3), D(2027, 3, 3), "executed")]
    assert balance(bank, b) == Decimal("10.00")
    finished = order(bank, a, b, "1.00", frequency="weekly", weekday=0, count=1)["id"]
    close_until(bank, D(2027, 3, 22))
    with pytest.raises(InvalidState):
        bank.standing_orders.cancel(system, finished, "too late")
    assert_books(bank)


def test_closing_the_source_account_cancels_its_orders_at_end_of_day(make_bank):
    bank = make_bank(D(2027, 3, 1))
    system = bank.system_actor()
    a = funded_account(bank, "0")
    b = funded_account(bank, "0")
    oid = order(bank, a, b, "10.00", frequency="weekly", weekday=2)["id"]
    bank.accounts.close(system, a, "customer left")
    close_until(bank, D(2027, 3, 10))
    got = bank.standing_orders.get(system, oid)
    assert (got["status"], got["cancel_reason"], runs(bank, oid)) == (
        "cancelled", "source account closed", [])
    assert_books(bank)


# -- exactly once: reruns and catch-ups ----------------------------------------------------------
def _scenario(bank):
    """Orders that execute, fail, retry, miss and finish over two weeks."""
    a = funded_account(bank, "100.00")
    b = funded_account(bank, "5.00")
    c = funded_account(bank, "0")
    order(bank, a, b, "30.00", frequency="weekly", weekday=2)
    order(bank, b, c, "20.00", frequency="weekly", weekday=3, count=2)
    order(bank, c, a, "15.00", frequency="monthly", day_of_month=31)
    order(bank, a, c, "7.25", frequency="monthly", day_of_month=1, end_date=D(2027, 4, 2))
    return a, b, c


def _state(bank):
    return (bank.read("SELECT order_id, due_date, attempt_date, outcome, reason, amount_cents, "
                      "transaction_id FROM standing_order_runs ORDER BY 1, 2, 3, 4, 5, 6, 7"),
            bank.read("SELECT id, balance_cents FROM accounts ORDER BY 1"),
            bank.read("SELECT id, status, executed_count FROM standing_orders ORDER BY 1"))


def test_day_by_day_equals_one_catch_up_and_a_rerun_moves_nothing(make_bank):
    start, until = D(2027, 3, 25), D(2027, 4, 12)
    daily, catch_up = make_bank(start, "daily"), make_bank(start, "catch_up")
    for bank in (daily, catch_up):
        _scenario(bank)
    day = start
    while day <= until:
        close_until(daily, day)
        day += dt.timedelta(days=1)
    close_until(catch_up, until)
    assert _state(daily) == _state(catch_up)
    outcomes = {r[3] for r in _state(daily)[0]}
    assert outcomes == {"executed", "failed", "missed"}
    # Every executed occurrence holds one ledger key, once.
    executed = daily.read("SELECT order_id, due_date FROM standing_order_runs "
                          "WHERE outcome = 'executed'")
    keys = {r[0] for r in daily.read("SELECT key FROM idempotency_keys WHERE key LIKE 'sys:so-%'")}
    assert keys == {so.occurrence_key(o, d) for o, d in executed}
    # A rerun of end of day for closed days, and of the step itself for a day already run,
    # attempt nothing.
    before = _state(daily)
    close_until(daily, until)
    from bankms.services.eod.run import DayClosed
    for day in (D(2027, 3, 31), D(2027, 4, 7)):
        out = DayClosed(business_date=day)
        daily.write(lambda uow, day=day, out=out: so.run_due(daily, daily.system_actor(), uow,
                                                            day, out))
        assert out.standing_orders_executed == 0 and out.standing_orders_failed == 0
    assert _state(daily) == before
    counters = daily.read("SELECT sum(standing_orders_executed), "
                          "sum(standing_orders_missed) FROM eod_runs")[0]
    assert counters == (len(executed), sum(1 for r in before[0] if r[3] == "missed"))
    for bank in (daily, catch_up):
        assert_books(bank)


TAMPERING = [
    # a change behind the service's back, what verify() says
    ("UPDATE standing_order_runs SET amount_cents = amount_cents + 1 WHERE outcome = 'executed'",
     "its executed attempt does not match its transaction"),
    ("UPDATE standing_orders SET executed_count = executed_count + 1",
     "counts 2 executions, its attempts 1"),
    ("INSERT INTO standing_order_runs SELECT order_id, due_date, attempt_date + 1, outcome, "
     "reason, amount_cents, transaction_id, charge_id FROM standing_order_runs",
     "was executed more than once"),
]


@pytest.mark.parametrize("sql, problem", TAMPERING)
def test_verify_reconciles_standing_orders_with_the_ledger(make_bank, sql, problem):
    bank = make_bank(D(2027, 3, 1))
    a = funded_account(bank, "100.00")
    b = funded_account(bank, "0")
    order(bank, a, b, "10.00", frequency="weekly", weekday=2)
    close_until(bank, D(2027, 3, 3))
    assert_books(bank)
    bank.write(lambda uow: uow.execute(sql))
    assert any(problem in p for p in bank.audit.verify())


def test_an_occurrence_whose_ledger_key_is_taken_rolls_the_day_back(make_bank):
    """The second guard: if an occurrence's key were already in the ledger (a run row lost),
    the key's primary key refuses the day as a whole; nothing moves, the day stays open."""
    bank = make_bank(D(2027, 3, 3))
    a = funded_account(bank, "100.00")
    b = funded_account(bank, "0")
    oid = order(bank, a, b, "10.00", frequency="weekly", weekday=2)["id"]
    key = so.occurrence_key(oid, D(2027, 3, 3))
    bank.write(lambda uow: uow.execute("INSERT INTO idempotency_keys VALUES (?, 'x', 1)", [key]))
    # Each engine words it its own way (PostgreSQL names the key on a DETAIL line); the port
    # raises DuplicateKey for both.
    with pytest.raises(DuplicateKey, match=r"(?is)duplicate key.*sys:so-"):
        close_until(bank, D(2027, 3, 3))
    assert bank.business_date == D(2027, 3, 3)
    assert (balance(bank, a), balance(bank, b), runs(bank, oid)) == (Decimal("100.00"),
                                                                     Decimal("0.00"), [])
