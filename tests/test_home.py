"""bank.home (issue 13): what each role's home page is made of, checked against the services
that own the data, and who may ask for it.

One bank for the module: it starts on 1 Mar 2027 with a loan paid out, a one-month term deposit
and a standing order from an empty account, and closes two days, so the order has failed; then
a teller's large withdrawal waits for approval with a hold, three deposits just under the
four-eyes threshold make a structuring alert and a new customer waits for verification.
"""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from conftest import Clock, employee, funded_account, login_for, make_customer

import bankms
from bankms.services.approvals import PendingApproval
from bankms.domain.errors import CustomerNotFound, PermissionDenied

D = dt.date
START, TODAY = D(2027, 3, 1), D(2027, 3, 3)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    path = tmp_path_factory.mktemp("home") / "bank.duckdb"
    clock = Clock(dt.datetime(2027, 3, 1, 12, tzinfo=dt.timezone.utc))
    bank = bankms.open_bank(str(path), bcrypt_rounds=4, clock=clock)
    system = bank.system_actor()
    clock.advance(days=800)  # every day until TODAY has ended
    bank.settings.set(system, "eod_catchup_days_confirm", "366")
    teller, manager = employee(bank, "teller"), employee(bank, "manager")
    ana = make_customer(bank, name="Ana Home")
    checking = funded_account(bank, "20000.00", customer_id=ana)
    savings = bank.accounts.open(system, ana, kind="savings")
    bank.accounts.set_overdraft_limit(system, checking, "500.00")
    ana_login = login_for(bank, ana, "ana")
    loan = bank.loans.apply(teller, ana, product="personal", principal="6000.00",
                            term_months=12, purpose="new roof", monthly_income="4000.00")
    bank.loans.approve(manager, loan, annual_rate_percent="12")
    bank.loans.disburse(teller, loan, checking)
    bank.deposit_products.create(system, code="month_td", name="One month", kind="term_deposit",
                                 terms={"term_months_min": 1, "term_months_max": 12})
    deposit = bank.term_deposits.open(ana_login, linked_account=checking, amount="5000.00",
                                      term_months=1, product="month_td",
                                      idempotency_key="home-td")
    order = bank.standing_orders.create(
        ana_login, source_account=savings, target_account=checking, amount="50.00",
        frequency="monthly", day_of_month=1, start_date=START, idempotency_key="home-so")
    bank.end_of_day(system, until=TODAY - dt.timedelta(days=1), confirm=True)
    application = bank.loans.apply(ana_login, ana, product="personal", principal="2000.00",
                                   term_months=12, purpose="bike", monthly_income="4000.00")
    waiting = bank.payments.withdraw(teller, checking, "12000.00")
    assert isinstance(waiting, PendingApproval)
    bob = make_customer(bank, name="Bob Busy")
    bobs = bank.accounts.open(system, bob, kind="checking")
    for _ in range(3):  # by the system actor: posted, not queued
        bank.payments.deposit(system, bobs, "9000.00")
    bank.customers.register(full_name="Pete Pending", email="pete@example.com",
                            phone="+1 555 0102", date_of_birth="1992-03-04",
                            national_id="HOME0002", address="2 Side Street", username="pete",
                            password="a long test password 1")
    cy = make_customer(bank, name="Cy Quiet")
    funded_account(bank, "10.00", customer_id=cy)
    yield {"bank": bank, "teller": teller, "manager": manager, "ana": ana_login, "ana_id": ana,
           "checking": checking, "savings": savings, "loan": loan, "deposit": deposit,
           "order": order, "application": application, "waiting": waiting, "bob": bob,
           "cy": login_for(bank, cy, "cyq"), "cy_id": cy}
    bank.close()


def test_the_demo_of_this_module_is_what_the_tests_expect(world):
    assert world["bank"].business_date == TODAY


def test_a_customer_sees_balances_and_available_as_the_account_service_gives_them(world):
    bank, ana = world["bank"], world["ana"]
    home = bank.home.customer(ana)
    accounts = home["accounts"].set_index("account_number")
    assert set(accounts.index) == {world["checking"], world["savings"],
                                   world["deposit"]["account_number"]}
    for number in accounts.index:
        got = bank.accounts.get(ana, number)
        assert accounts.loc[number, "balance"] == got["balance"]
        assert accounts.loc[number, "available"] == \
            bank.accounts.list(ana).set_index("account_number").loc[number, "available"]
    checking = accounts.loc[world["checking"]]
    assert checking["holds_cents"] == 1_200_000  # the withdrawal waiting for approval
    assert checking["overdraft_limit_cents"] == 50_000
    assert home["total_balance_cents"] == int(accounts["balance_cents"].sum())
    assert home["total_available_cents"] == int(
        accounts.loc[[world["checking"], world["savings"]], "available_cents"].sum())
    assert (home["customer_id"], home["full_name"], home["status"]) == (
        world["ana_id"], "Ana Home", "active")


def test_the_next_instalment_is_the_loans_own(world):
    bank, ana = world["bank"], world["ana"]
    loan = bank.loans.get(ana, world["loan"])
    nxt = bank.home.customer(ana)["next_instalment"]
    assert nxt["loan_id"] == world["loan"]
    assert nxt["due_date"] == loan["next_due_date"] == D(2027, 4, 1)
    assert nxt["amount_cents"] == loan["next_due_cents"] > 0
    assert nxt["amount"] == Decimal(nxt["amount_cents"]) / 100
    assert nxt["overdue_cents"] == loan["overdue_cents"] == 0
    assert nxt["account_number"] == world["checking"]


def test_recent_activity_is_the_latest_postings_newest_first_with_labels(world):
    bank, ana = world["bank"], world["ana"]
    activity = bank.home.customer(ana, rows=3)["activity"]
    assert len(activity) == 3
    assert list(activity["posted_at"]) == sorted(activity["posted_at"], reverse=True)
    assert set(activity["account_number"]) <= {world["checking"], world["savings"],
                                               world["deposit"]["account_number"]}
    assert all(label and "_" not in label for label in activity["label"])
    assert (activity["amount"] * 100 == activity["amount_cents"]).all()


@pytest.mark.parametrize("topic, words", [
    ("approval", ["Withdrawal of $12,000.00", "$12,000.00 is held on account"]),
    ("loan", ["Loan application", "$2,000.00", "waiting for the bank's decision"]),
    ("standing_order", ["Standing order", "$50.00 to", "insufficient funds"]),
    ("term_deposit", ["matures on 01 Apr 2027", "expected"]),
])
def test_what_waits_for_a_customer(world, topic, words):
    pending = world["bank"].home.customer(world["ana"])["pending"]
    assert [item["topic"] for item in pending] == [
        "approval", "loan", "standing_order", "term_deposit"]
    message = next(item["message"] for item in pending if item["topic"] == topic)
    if topic == "standing_order":
        order = world["bank"].standing_orders.get(world["ana"], world["order"]["id"])
        last = world["bank"].standing_orders.runs(world["ana"], order["id"]).iloc[0]
        words = words + [f"{last['outcome']} on "
                         f"{last['attempt_date']:%d %b %Y}", world["checking"]]
    for word in words:
        assert word in message, message


def test_a_customer_with_nothing_waiting(world):
    home = world["bank"].home.customer(world["cy"])
    assert home["pending"] == [] and home["next_instalment"] is None
    assert home["total_balance_cents"] == 1000


def test_the_tellers_queue(world):
    bank, teller = world["bank"], world["teller"]
    home = bank.home.teller(teller)
    assert home["business_date"] == TODAY
    pending = bank.customers.pending(teller)
    assert home["signups_total"] == pending["total"] == 1
    assert list(home["signups"]["full_name"]) == ["Pete Pending"]
    assert home["requests_total"] == 1
    request = home["requests"].iloc[0]
    assert (request["request_id"], request["amount_cents"], request["source_account"]) == (
        world["waiting"].request_id, 1_200_000, world["checking"])
    # A teller's withdrawal is cash unless it says otherwise: named, never a kind code.
    assert request["label"] == "Cash withdrawal"
    failed = home["failed_orders"]
    assert home["failed_orders_total"] == len(failed) >= 1
    assert set(failed["order_id"]) == {world["order"]["id"]}
    assert set(failed["outcome"]) <= {"failed", "missed"}
    # Another teller has made no request.
    assert bank.home.teller(employee(bank, "teller"))["requests_total"] == 0


def test_the_managers_day(world):
    bank, manager = world["bank"], world["manager"]
    home = bank.home.manager(manager)
    assert home["approvals_total"] == 1
    assert list(home["approvals"]["request_id"]) == [world["waiting"].request_id]
    assert not home["approvals"]["own"].any()
    assert home["alerts_total"] == 1
    assert home["alerts"].iloc[0]["customer_id"] == world["bob"]
    assert home["alerts"].iloc[0]["payments"] == 3
    assert home["applications_total"] == 1 and home["signups_total"] == 1
    figures = home["key_figures"].set_index("figure")
    assert list(figures.index) == ["Total deposits", "Loans outstanding",
                                   "Non-performing loans", "Active customers", "New customers"]
    full = bank.reports.query(manager, "key_figures", bank.reports.filters(days=30)) \
        .set_index("figure")
    for figure in figures.index:
        assert figures.loc[figure, "value"] == full.loc[figure, "value"]
        assert figures.loc[figure, "previous"] == full.loc[figure, "previous"]
    assert (home["period_end"] - home["period_start"]).days == 29
    eod = home["eod"]
    assert eod["business_date"] == TODAY and eod["last_run_date"] == TODAY - dt.timedelta(1)
    # The clock stands 800 days ahead: those days have ended and wait.
    assert eod["days_behind"] > 700
    assert any("wait for end of day" in sentence for sentence in eod["due"])


def test_a_managers_own_request_is_marked(world):
    bank = world["bank"]
    other = employee(bank, "manager")
    home = bank.home.manager(other)
    assert not home["approvals"]["own"].any()
    made = bank.payments.deposit(other, world["checking"], "11000.00")
    try:
        rows = bank.home.manager(other)["approvals"].set_index("request_id")
        assert bool(rows.loc[made.request_id, "own"]) is True
        assert bool(rows.loc[world["waiting"].request_id, "own"]) is False
    finally:
        bank.approvals.reject(world["manager"], made.request_id, "test over")


@pytest.mark.parametrize("who, call, refused", [
    ("ana", "teller", True),
    ("ana", "manager", True),
    ("ana", "verify", True),
    ("ana", "eod_status", True),
    ("ana", "other customer", True),
    ("teller", "manager", True),
    ("teller", "verify", True),
    ("teller", "customer", False),
    ("manager", "teller", False),
    ("manager", "customer", False),
    ("ana", "customer", False),
])
def test_who_may_ask_for_which_home(world, who, call, refused):
    bank, actor = world["bank"], world[who]
    calls = {
        "teller": lambda: bank.home.teller(actor),
        "manager": lambda: bank.home.manager(actor),
        "verify": lambda: bank.home.verify(actor),
        "eod_status": lambda: bank.home.eod_status(actor),
        "customer": lambda: bank.home.customer(actor, world["ana_id"]),
        "other customer": lambda: bank.home.customer(actor, world["cy_id"]),
    }
    before = bank.read_one("SELECT count(*) FROM audit_log WHERE outcome = 'refused'")[0]
    if refused:
        with pytest.raises(PermissionDenied):
            calls[call]()
        after = bank.read_one("SELECT count(*) FROM audit_log WHERE outcome = 'refused'")[0]
        assert after == before + 1  # the refusal is audited
    else:
        assert calls[call]() is not None


def test_a_customer_home_of_no_customer(world):
    with pytest.raises(CustomerNotFound):
        world["bank"].home.customer(world["teller"], 999_999)


def test_verify_is_kept_and_checked_again_when_old_or_asked(bank):
    manager = employee(bank, "manager")
    funded_account(bank, "100.00")
    first = bank.home.verify(manager, wait_s=60)
    assert (first["problems"], first["running"], first["error"]) == ([], False, None)
    assert first["seconds"] >= 0 and first["age_s"] >= 0
    kept = bank.home.verify(manager)
    assert kept["checked_at"] == first["checked_at"] and not kept["running"]
    again = bank.home.verify(manager, refresh=True, wait_s=60)
    assert again["checked_at"] > first["checked_at"]
    old = bank.home.verify(manager, max_age_s=0, wait_s=60)
    assert old["checked_at"] > again["checked_at"]


def test_verify_shows_what_is_wrong(bank):
    manager = employee(bank, "manager")
    number = funded_account(bank, "100.00")
    assert bank.home.verify(manager, wait_s=60)["problems"] == []
    bank.write(lambda uow: uow.execute(
        "UPDATE accounts SET balance_cents = balance_cents + 1 WHERE account_number = ?",
        [number]))
    # Kept: the change shows only once it is checked again.
    assert bank.home.verify(manager)["problems"] == []
    problems = bank.home.verify(manager, refresh=True, wait_s=60)["problems"]
    assert any(number in p and "differs from its postings" in p for p in problems)
    assert problems == bank.audit.verify()


def test_a_verify_that_fails_is_reported_and_the_last_result_kept(bank, monkeypatch):
    manager = employee(bank, "manager")
    assert bank.home.verify(manager, wait_s=60)["problems"] == []

    def broken():
        raise RuntimeError("disk on fire")
    monkeypatch.setattr(bank.audit, "verify", broken)
    state = bank.home.verify(manager, refresh=True, wait_s=60)
    assert state["problems"] == [] and "disk on fire" in state["error"]


@pytest.mark.parametrize("day, expected", [
    (TODAY, []),
    (D(2027, 4, 1), ["1 loan instalment(s) fall due and are collected.",
                     "1 term deposit(s) mature."]),
])
def test_what_closing_a_day_will_do(world, day, expected):
    home = world["bank"].home
    assert home._at_close(day) == expected
    if day == TODAY:
        assert home.eod_status(world["manager"])["at_close"] == expected
