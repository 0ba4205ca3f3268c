"""AppTest of the Home page through app.py (issue 13): each role's sections show what
bank.home gives, with links to the pages that act on it; the teller's search opens the
customer's overview; the manager sees the last verify and its problems.

One bank file for the module: the standard bank (browser.helpers.seed_standard_bank) plus a
loan paid out to Alice, a deposit by the teller that waits for a second manager and a loan
application waiting for a decision, and a term deposit."""
from __future__ import annotations

import pytest

from apptest_util import app_bank_on, open_app, texts
from bankms.services.approvals import PendingApproval
from browser.helpers import USERS, seed_standard_bank


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    with app_bank_on(str(tmp_path_factory.mktemp("home_page") / "bank.duckdb")) as bank:
        facts = seed_standard_bank(bank)
        actors = {role: bank.auth.actor_for(USERS[role][0]) for role in USERS}
        loan = bank.loans.apply(actors["teller"], facts["customer_id"], product="personal",
                                principal="3000.00", term_months=12, purpose="car repair",
                                monthly_income="4000.00")
        bank.loans.approve(actors["manager"], loan, annual_rate_percent="12")
        bank.loans.disburse(actors["teller"], loan, facts["account"])
        waiting = bank.payments.deposit(actors["teller"], facts["account"], "11000.00")
        assert isinstance(waiting, PendingApproval)
        bank.loans.apply(actors["customer"], facts["customer_id"], product="personal",
                         principal="1500.00", term_months=12, purpose="holiday",
                         monthly_income="4000.00")
        deposit = bank.term_deposits.open(actors["customer"], linked_account=facts["account"],
                                          amount="1000.00", term_months=12,
                                          idempotency_key="home-page-td")
        yield {"bank": bank, **actors, **facts, "loan": loan, "waiting": waiting,
               "deposit": deposit["account_number"]}


def metrics(at) -> dict:
    return {m.label: m.value for m in at.metric}


def links(at) -> set:
    return {link.value for link in at.page_link}


def test_a_customer_starts_with_balances_instalment_waiting_and_activity(world):
    bank, alice = world["bank"], world["customer"]
    at = open_app(bank, alice)
    home = bank.home.customer(alice)
    shown = metrics(at)
    assert shown["Available now"] == f"${home['total_available_cents'] / 100:,.2f}"
    deltas = {m.label: m.delta for m in at.metric}
    assert deltas["Available now"] == f"balance ${home['total_balance_cents'] / 100:,.2f}"
    account = next(label for label in shown if world["account"] in label)
    assert shown[account] == f"${home['accounts'].iloc[0]['available_cents'] / 100:,.2f}"
    # A term deposit shows its balance, locked until maturity, and is not available now.
    deposit = next(label for label in shown if world["deposit"] in label)
    assert (shown[deposit], deltas[deposit]) == ("$1,000.00", "until maturity")
    nxt = home["next_instalment"]
    assert shown[f"Loan {world['loan']} · due {nxt['due_date']:%d %b %Y}"] == \
        f"${nxt['amount_cents'] / 100:,.2f}"
    said = texts(at)
    assert "Deposit of $11,000.00 is waiting for a second approval" in said
    assert "Loan application" in said and "$1,500.00" in said
    assert "Loan disbursement" in said  # recent activity, labelled
    assert {"Make a transfer", "All your history", "Your loans", "My loans"} <= links(at)
    assert not at.error


def test_a_teller_starts_with_the_queue_and_the_business_date(world):
    bank, teller = world["bank"], world["teller"]
    at = open_app(bank, teller)
    shown = metrics(at)
    assert shown["Sign-ups to verify"] == "1"
    assert shown["Your requests waiting"] == "1"
    assert shown["Standing orders failed"] == "0"
    assert shown["Business date"] == f"{bank.business_date:%a %d %b %Y}"
    said = texts(at)
    assert "Pete Pending" in said and "11000" in said.replace(",", "")
    assert "Verify them on Customers" in links(at)


def test_the_tellers_search_opens_the_customer_overview(world):
    bank = world["bank"]
    at = open_app(bank, world["teller"])
    at.text_input(key="home_query").input("Alice")
    at.button(key="home_search_go").click().run()
    assert not at.exception
    assert [t.value for t in at.title] == ["Customers"]
    assert at.text_input(key="customers_query").value == "Alice"
    assert any("Alice Example" in s.value and str(world["customer_id"]) in s.value
               for s in at.header)


def test_a_search_that_finds_nobody_stays_home(world):
    at = open_app(world["bank"], world["teller"])
    at.text_input(key="home_query").input("Nobody Atall")
    at.button(key="home_search_go").click().run()
    assert [t.value for t in at.title] == ["Home"]
    assert "No customer matches that search." in texts(at)


def test_a_manager_starts_with_what_waits_figures_end_of_day_and_verify(world):
    bank, manager = world["bank"], world["manager"]
    bank.home.verify(manager, refresh=True, wait_s=60)
    at = open_app(bank, manager)
    shown = metrics(at)
    assert (shown["Approvals"], shown["Structuring alerts"], shown["Loan applications"],
            shown["Sign-ups to verify"]) == ("1", "0", "1", "1")
    assert {"Total deposits", "Loans outstanding", "Non-performing loans", "Active customers",
            "New customers", "Business date", "Last day closed"} <= set(shown)
    assert shown["Last day closed"] == "none yet"
    said = texts(at)
    assert "Every ledger invariant held when checked just now" in said
    assert "Approvals waiting" in said and "theo" in said
    # Key figures may be kept up to dashboard_max_age_s: the page says how old they are.
    assert "Figures as of" in said
    assert {"Dashboard", "End of day", "Operations"} <= links(at)
    at.button(key="home_verify").click().run()
    assert not at.exception


def test_a_manager_sees_the_problems_verify_found(app_env):
    bank = app_env
    manager = bank.auth.actor_for(USERS["manager"][0])
    bank.write(lambda uow: uow.execute(
        "UPDATE accounts SET balance_cents = balance_cents + 1 WHERE customer_id IS NOT NULL"))
    bank.home.verify(manager, refresh=True, wait_s=60)
    at = open_app(bank, manager)
    assert any("problem(s) found by verify just now" in e.value for e in at.error)
    assert "differs from its postings" in "\n".join(t.value for t in at.text)


def test_a_manager_home_while_verify_runs_says_so(app_env, monkeypatch):
    import threading

    bank = app_env
    manager = bank.auth.actor_for(USERS["manager"][0])
    release = threading.Event()
    monkeypatch.setattr(bank.audit, "verify", lambda: release.wait(30) and [])
    try:
        at = open_app(bank, manager)
        assert "The ledger is being checked now" in texts(at)
    finally:
        release.set()
    assert bank.home.verify(manager, wait_s=30)["problems"] == []
