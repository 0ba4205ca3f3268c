"""AppTest of the daily-work pages: tellers, managers and customers, each through app.py.

One bank file for the module (the app's process-wide Bank from pages.common.get_bank); each
test makes its own customers so tests do not depend on each other.
"""
from __future__ import annotations

import datetime as dt
import itertools
import re
from decimal import Decimal

import pytest
from apptest_util import app_bank_fixture, goto, open_app, shown, urls
from conftest import employee, funded_account, login_for, make_customer

_names = itertools.count(1)


app_bank = app_bank_fixture("daily_pages")


@pytest.fixture(scope="module")
def staff(app_bank):
    return {"teller": employee(app_bank, "teller"), "manager": employee(app_bank, "manager"),
            "manager2": employee(app_bank, "manager")}


def by_label(elements, label):
    found = [e for e in elements if e.label == label]
    assert found, f"no widget labelled {label!r}"
    return found[0]


def button_starting(at, prefix):
    found = [b for b in at.button if (b.key or "").startswith(prefix)]
    assert found, f"no button with key {prefix}*"
    return found[0]


def texts(at):
    """Everything the page says in markdown, captions, alerts and tables, as one string (and
    the page raised nothing)."""
    assert not at.exception, at.exception
    parts = [e.value for e in (*at.title, *at.header, *at.markdown, *at.caption, *at.success,
                               *at.info, *at.warning, *at.error)]
    parts += [shown(d) for d in at.dataframe] + [t.value.to_string() for t in at.table]
    # Markdown holds user text escaped ('J\\*\\*\\*'); compare with what a person reads.
    return re.sub(r"\\(.)", r"\1", "\n".join(str(p) for p in parts))


def customer_with_login(bank, name, amount="1,000.00"):
    cid = make_customer(bank, name=name)
    number = funded_account(bank, amount, customer_id=cid)
    return cid, number, login_for(bank, cid, f"cust{next(_names)}")


# -- navigation ---------------------------------------------------------------------------------
ROLE_PAGES = [
    ("teller", {"customers", "accounts", "cash"}, {"approvals", "reversals", "my-accounts"}),
    ("manager", {"customers", "accounts", "cash", "approvals", "reversals"}, {"my-transfer"}),
    ("customer", {"my-accounts", "my-history", "my-transfer", "my-profile"},
     {"cash", "customers", "approvals"}),
]


@pytest.mark.parametrize("role, offered, hidden", ROLE_PAGES)
def test_each_role_sees_its_pages(app_bank, staff, role, offered, hidden):
    actor = staff.get(role) or customer_with_login(app_bank, "Nav Person")[2]
    at = open_app(app_bank, actor)
    assert offered <= urls(at)
    assert not (hidden & urls(at))


# -- cash & transfers ---------------------------------------------------------------------------
def test_teller_deposit_review_confirm_receipt(app_bank, staff):
    _, number, _ = customer_with_login(app_bank, "Dora Deposit", amount="0")
    at = open_app(app_bank, staff["teller"], "cash")
    at.text_input(key="cash_target_deposit").input(number)
    at.text_input(key="cash_amount_deposit").input("1,234.50")
    at.button(key="cash_review_deposit").click().run()
    assert "Dora Deposit" in texts(at) and "$1,234.50" in texts(at)
    assert app_bank.accounts.balance(staff["teller"], number) == Decimal("0.00")
    saved_review = dict(at.session_state["_review_cash"])
    button_starting(at, "cash_confirm_").click().run()
    assert not at.exception
    assert app_bank.accounts.balance(staff["teller"], number) == Decimal("1234.50")
    assert "posted" in at.success[0].value
    assert [b for b in at.get("download_button")], "the receipt offers a PDF"
    # A stale confirm (a refresh or a second click replaying the same review) posts nothing new.
    at.session_state["_review_cash"] = saved_review
    at.run()
    button_starting(at, "cash_confirm_").click().run()
    assert app_bank.accounts.balance(staff["teller"], number) == Decimal("1234.50")
    assert app_bank.read_one("SELECT count(*) FROM transactions WHERE target_account = ?",
                             [number])[0] == 1


CASH_ERRORS = [
    ("deposit", {"cash_amount_deposit": "12,34"}, "is not an amount"),
    ("deposit", {"cash_amount_deposit": "10.005"}, "two decimals"),
    ("deposit", {"cash_amount_deposit": "-5"}, "greater than zero"),
    ("deposit", {"cash_amount_deposit": "5", "target": "400000000000"}, "not a valid account"),
    ("withdrawal", {"cash_amount_withdrawal": "5,000.00"}, "available"),
]


@pytest.mark.parametrize("kind, fields, message", CASH_ERRORS)
def test_cash_errors_are_shown_next_to_the_form_and_nothing_posts(app_bank, staff, kind,
                                                                  fields, message):
    _, number, _ = customer_with_login(app_bank, "Erin Error", amount="100.00")
    at = open_app(app_bank, staff["teller"], "cash")
    if kind != "deposit":
        at.radio(key="cash_kind").set_value(kind.capitalize()).run()
    account_key = "cash_target_deposit" if kind == "deposit" else "cash_source_withdrawal"
    at.text_input(key=account_key).input(fields.get("target", number))
    for key, value in fields.items():
        if key != "target":
            at.text_input(key=key).input(value)
    at.button(key=f"cash_review_{kind}").click().run()
    if at.error:
        assert message in at.error[0].value
    else:  # refused only when confirming (funds are checked by the ledger)
        button_starting(at, "cash_confirm_").click().run()
        assert message in at.error[0].value
    assert app_bank.accounts.balance(staff["teller"], number) == Decimal("100.00")


def test_teller_transfer_review_names_both_holders(app_bank, staff):
    _, a, _ = customer_with_login(app_bank, "Tina Source")
    _, b, _ = customer_with_login(app_bank, "Tom Target", amount="0")
    at = open_app(app_bank, staff["teller"], "cash")
    at.radio(key="cash_kind").set_value("Transfer").run()
    at.text_input(key="cash_source_transfer").input(a)
    at.text_input(key="cash_target_transfer").input(b)
    at.text_input(key="cash_amount_transfer").input("250")
    at.button(key="cash_review_transfer").click().run()
    assert "Tina Source" in texts(at) and "Tom Target" in texts(at)
    button_starting(at, "cash_change_").click().run()
    assert at.text_input(key="cash_amount_transfer").value == "250"  # the draft comes back
    at.button(key="cash_review_transfer").click().run()
    button_starting(at, "cash_confirm_").click().run()
    assert app_bank.accounts.balance(staff["teller"], b) == Decimal("250.00")


# -- four-eyes through the pages ----------------------------------------------------------------
def test_large_withdrawal_waits_then_a_manager_approves(app_bank, staff):
    _, number, _ = customer_with_login(app_bank, "Walter Wealthy", amount="30,000.00")
    at = open_app(app_bank, staff["teller"], "cash")
    at.radio(key="cash_kind").set_value("Withdrawal").run()
    at.text_input(key="cash_source_withdrawal").input(number)
    at.text_input(key="cash_amount_withdrawal").input("12,000.00")
    at.button(key="cash_review_withdrawal").click().run()
    assert "a second manager must approve it" in at.warning[0].value
    button_starting(at, "cash_confirm_").click().run()
    assert "Waiting for approval" in at.info[0].value
    acc = app_bank.accounts.get(staff["manager"], number)
    assert (acc["balance"], acc["available"]) == (Decimal("30000.00"), Decimal("18000.00"))

    pending = app_bank.approvals.list(staff["manager"], "pending")
    rid = int(pending[pending["source_account"] == number]["request_id"].iloc[0])
    mgr = open_app(app_bank, staff["manager"], "approvals")
    assert "Walter Wealthy" in texts(mgr)
    mgr.button(key=f"approve_{rid}").click().run()
    assert not mgr.exception
    assert f"Request {rid} approved" in mgr.success[0].value
    acc = app_bank.accounts.get(staff["manager"], number)
    assert (acc["balance"], acc["holds"]) == (Decimal("18000.00"), Decimal("0.00"))
    assert not [b for b in mgr.button if b.key == f"approve_{rid}"]


def test_a_manager_cannot_approve_their_own_request_but_can_reject_it(app_bank, staff):
    _, number, _ = customer_with_login(app_bank, "Mona Maker", amount="20,000.00")
    pending = app_bank.payments.withdraw(staff["manager2"], number, "15,000.00")
    at = open_app(app_bank, staff["manager2"], "approvals")
    rid = pending.request_id
    assert not [b for b in at.button if b.key == f"approve_{rid}"]
    assert "another manager must approve" in texts(at)
    at.button(key=f"reject_go_{rid}").click().run()
    assert "reason" in at.error[0].value
    at.text_input(key=f"reject_reason_{rid}").input("Customer left")
    at.button(key=f"reject_go_{rid}").click().run()
    assert f"Request {rid} rejected" in at.success[0].value
    assert app_bank.accounts.get(staff["manager"], number)["holds"] == Decimal("0.00")
    assert app_bank.audit.verify() == []


def test_manager_reverses_a_transaction_once(app_bank, staff):
    _, number, _ = customer_with_login(app_bank, "Rita Reverse", amount="0")
    receipt = app_bank.payments.deposit(staff["teller"], number, "75.00")
    at = open_app(app_bank, staff["manager"], "reversals")
    at.text_input(key="reversal_tid").input(str(receipt.transaction_id))
    at.button(key="reversal_find_go").click().run()
    assert "Rita Reverse" in texts(at)
    tid = receipt.transaction_id
    at.button(key=f"reversal_go_{tid}").click().run()
    assert "reason" in at.error[0].value
    at.text_input(key=f"reversal_reason_{tid}").input("Counterfeit note")
    at.button(key=f"reversal_go_{tid}").click().run()
    assert "is reversed by transaction" in at.success[0].value
    assert "was reversed by transaction" in at.info[0].value
    assert app_bank.accounts.balance(staff["manager"], number) == Decimal("0.00")


# -- customers and accounts ---------------------------------------------------------------------
def test_teller_onboards_a_customer_and_opens_an_account(app_bank, staff):
    at = open_app(app_bank, staff["teller"], "customers")
    fill = {"Full name": "Olga Onboard", "National id": "OLGA-1", "Address": "3 Elm Road",
            "Phone": "+1 555 0142", "Email": "olga@example.com"}
    for label, value in fill.items():
        by_label(at.text_input, label).input(value)
    by_label(at.date_input, "Date of birth").set_value(dt.date(1980, 3, 4))
    button_starting(at, "onboard_go_").click().run()
    assert not at.exception
    assert "is onboarded" in at.success[0].value
    cid = at.session_state["customers_selected"]
    assert app_bank.customers.get(staff["teller"], cid)["full_name"] == "Olga Onboard"
    assert by_label(at.text_input, "Full name").value == ""  # a fresh form instance
    assert "Olga Onboard" in texts(at)  # her overview is open

    goto(at, "accounts")
    assert by_label(at.text_input, "Customer id").value == str(cid)
    button_starting(at, "open_go_").click().run()
    assert "Opened checking account" in at.success[0].value
    assert len(app_bank.accounts.list(staff["teller"], cid)) == 1


def test_an_open_form_keeps_its_key_when_the_browser_lands_on_another_process(app_bank, staff):
    """The form's idempotency key lives in the database (bank.form_keys), keyed by the
    server-side session: a new AppTest with the same session, as a browser whose next click
    reaches another app process, draws the form with the same key (so a repeated submit posts
    nothing twice), and after a success every process draws a new one."""
    from streamlit.testing.v1 import AppTest
    from apptest_util import APP, button_starting

    sid = app_bank.auth.start_session(staff["teller"])

    def accounts_page():
        at = AppTest.from_file(APP, default_timeout=30)
        at.session_state["session_id"] = sid
        at.run()
        goto(at, "accounts")
        return at

    first = button_starting(accounts_page(), "open_go_").key
    at = accounts_page()
    assert button_starting(at, "open_go_").key == first
    cid = make_customer(app_bank, name="Failover Fay")
    by_label(at.text_input, "Customer id").input(str(cid))
    button_starting(at, "open_go_").click().run()
    assert "Opened checking account" in at.success[0].value
    renewed = button_starting(accounts_page(), "open_go_").key
    assert renewed != first and renewed == button_starting(at, "open_go_").key


def test_two_tabs_of_one_session_post_their_own_reviews(app_bank, staff):
    """Two browser tabs share the sign-in session and so the form's key in the database; each
    review's key is that key with the review's content, so two different deposits reviewed side
    by side both post, and a repeat of one review still posts once."""
    from streamlit.testing.v1 import AppTest
    from apptest_util import APP

    _, number, _ = customer_with_login(app_bank, "Tabitha Tabs", amount="0")
    sid = app_bank.auth.start_session(staff["teller"])
    tabs = []
    for amount in ("10.00", "20.00"):
        at = AppTest.from_file(APP, default_timeout=30)
        at.session_state["session_id"] = sid
        at.run()
        goto(at, "cash")
        at.text_input(key="cash_target_deposit").input(number)
        at.text_input(key="cash_amount_deposit").input(amount)
        at.button(key="cash_review_deposit").click().run()
        tabs.append((at, dict(at.session_state["_review_cash"])))
    for at, _ in tabs:
        button_starting(at, "cash_confirm_").click().run()
        assert at.success and "posted" in at.success[0].value, texts(at)
    at, saved_review = tabs[1]
    at.session_state["_review_cash"] = saved_review
    at.run()
    button_starting(at, "cash_confirm_").click().run()
    assert app_bank.accounts.balance(staff["teller"], number) == Decimal("30.00")
    assert app_bank.read_one("SELECT count(*) FROM transactions WHERE target_account = ?",
                             [number])[0] == 2


def test_a_transfer_reviewed_again_in_another_process_after_it_posted_posts_once(app_bank,
                                                                                  staff):
    """A confirm that committed but whose process died before the page heard back: the same
    transfer reviewed again through another process (its review now shows less available)
    gets the same key, so its confirm replays the first posting instead of paying twice."""
    from streamlit.testing.v1 import AppTest
    from apptest_util import APP

    _, a, _ = customer_with_login(app_bank, "Rita Retry", amount="1,000.00")
    _, b, _ = customer_with_login(app_bank, "Paul Payee", amount="0")
    sid = app_bank.auth.start_session(staff["teller"])

    def reviewed(amount):
        at = AppTest.from_file(APP, default_timeout=30)
        at.session_state["session_id"] = sid
        at.run()
        goto(at, "cash")
        at.radio(key="cash_kind").set_value("Transfer").run()
        at.text_input(key="cash_source_transfer").input(a)
        at.text_input(key="cash_target_transfer").input(b)
        at.text_input(key="cash_amount_transfer").input(amount)
        at.button(key="cash_review_transfer").click().run()
        return at

    first = reviewed("100").session_state["_review_cash"]["key"]
    app_bank.payments.transfer(staff["teller"], a, b, "100.00", idempotency_key=first)
    again = reviewed("100.00")
    assert again.session_state["_review_cash"]["key"] == first
    button_starting(again, "cash_confirm_").click().run()
    assert app_bank.accounts.balance(staff["teller"], b) == Decimal("100.00")


def test_the_birth_date_field_ends_on_the_banks_calendar_date(app_bank, staff):
    """At 2031-05-06 20:00 UTC it is 7 May in Tokyo: the field offers the bank's date, not the
    machine's (date.today())."""
    from conftest import Clock
    clock, system = app_bank.clock, app_bank.system_actor()
    app_bank.clock = Clock(dt.datetime(2031, 5, 6, 20, 0))
    app_bank.settings.set(system, "bank_time_zone", "Asia/Tokyo")
    try:
        at = open_app(app_bank, staff["teller"], "customers")
        assert by_label(at.date_input, "Date of birth").max == dt.date(2031, 5, 7)
    finally:
        app_bank.settings.set(system, "bank_time_zone", "UTC")
        app_bank.clock = clock


def test_onboarding_errors_change_nothing(app_bank, staff):
    at = open_app(app_bank, staff["teller"], "customers")
    before = len(app_bank.customers.list(staff["teller"]))
    by_label(at.text_input, "Full name").input("No Birthday")
    button_starting(at, "onboard_go_").click().run()
    assert at.error[0].value == "Please enter the email."
    assert len(app_bank.customers.list(staff["teller"])) == before


def test_search_opens_an_overview_and_contact_details_can_be_edited(app_bank, staff):
    cid, number, login = customer_with_login(app_bank, "Sally Searchable")
    app_bank.loans.apply(login, cid, product="personal", principal="2,500.00", term_months=12,
                         purpose="a new roof", monthly_income="4,000.00")
    at = open_app(app_bank, staff["teller"], "customers")
    at.text_input(key="customers_query").input(number)
    at.button(key="customers_search_go").click().run()
    page = texts(at)
    assert "Sally Searchable" in page and "$1,000.00" in page and "$2,500.00" in page
    at.text_input(key=f"contact_phone_{cid}").input("+1 555 0999")
    at.button(key=f"contact_save_{cid}").click().run()
    assert "saved" in at.success[0].value
    assert app_bank.customers.get(staff["teller"], cid)["phone"] == "+1 555 0999"
    at.text_input(key=f"contact_email_{cid}").input("not-an-email")
    at.button(key=f"contact_save_{cid}").click().run()
    assert "not an email address" in at.error[0].value


def test_teller_verifies_a_self_registration(app_bank, staff):
    app_bank.customers.register(
        full_name="Pat Pending", email="pat@example.com", phone="+1 555 0177",
        date_of_birth="1991-01-01", national_id="PAT-1", address="4 Oak St",
        username="patpending", password="a long test password 1")
    cid = app_bank.users.get("patpending")["customer_id"]
    at = open_app(app_bank, staff["teller"], "customers")
    assert "Pat Pending" in texts(at)
    at.button(key=f"verify_{cid}").click().run()
    assert "verified" in at.success[0].value
    assert app_bank.customers.get(staff["teller"], cid)["status"] == "active"
    assert not [b for b in at.button if b.key == f"verify_{cid}"]


def test_accounts_freeze_unfreeze_close_and_manager_limits(app_bank, staff):
    cid, number, _ = customer_with_login(app_bank, "Fred Freeze", amount="10.00")
    at = open_app(app_bank, staff["teller"], "accounts")
    at.text_input(key="accounts_number").input(number)
    at.button(key="accounts_show").click().run()
    assert "Fred Freeze" in texts(at)
    at.button(key=f"freeze_{number}_active").click().run()
    assert app_bank.accounts.get(staff["teller"], number)["status"] == "frozen"
    at.button(key=f"unfreeze_{number}_frozen").click().run()
    assert app_bank.accounts.get(staff["teller"], number)["status"] == "active"
    at.checkbox(key=f"close_ok_{number}_active").check().run()
    at.button(key=f"close_{number}_active").click().run()
    assert "zero balance" in at.error[0].value
    assert not [t for t in at.text_input if (t.key or "").startswith("overdraft_value_")]

    mgr = open_app(app_bank, staff["manager"], "accounts")
    mgr.text_input(key="accounts_number").input(number)
    mgr.button(key="accounts_show").click().run()
    mgr.text_input(key=f"overdraft_value_{number}").input("250")
    mgr.button(key=f"overdraft_go_{number}").click().run()
    assert not mgr.exception
    assert app_bank.accounts.get(staff["manager"], number)["overdraft_limit"] == Decimal("250.00")


# -- customer self-service ----------------------------------------------------------------------
def test_closing_a_savings_account_pays_its_interest_in_cash(app_bank, staff):
    cid = make_customer(app_bank, name="Cora Close")
    number = funded_account(app_bank, "0", kind="savings", customer_id=cid)
    # What 19 end-of-day runs would have accrued on 10,000.00 at 2.00 % (tests of the rule
    # itself: tests/test_account_closing.py); this bank's days have not ended yet.
    app_bank.write(lambda uow: uow.execute(
        "INSERT INTO interest_accruals SELECT id, ?, 1000000, 2.00, 1041095899 FROM accounts "
        "WHERE account_number = ?", [app_bank.business_date, number]))
    at = open_app(app_bank, staff["teller"], "accounts")
    at.text_input(key="accounts_number").input(number)
    at.button(key="accounts_show").click().run()
    at.checkbox(key=f"close_ok_{number}_active").check().run()
    at.button(key=f"close_{number}_active").click().run()
    assert "interest of 10.41 was paid in cash" in texts(at)
    assert app_bank.accounts.get(staff["teller"], number)["status"] == "closed"
    assert app_bank.accounts.balance(staff["teller"], number) == 0


def test_customer_sees_accounts_with_available_and_ledger_balance(app_bank, staff):
    _, number, login = customer_with_login(app_bank, "Carl Customer", amount="20,000.00")
    app_bank.payments.withdraw(staff["teller"], number, "15,000.00")  # waits, holds 15,000
    at = open_app(app_bank, login, "my-accounts")
    assert [m.value for m in at.metric] == ["$5,000.00"]
    assert "Ledger balance $20,000.00" in texts(at)


def test_customer_transfers_to_another_customer_with_a_masked_payee(app_bank, staff):
    _, a, login = customer_with_login(app_bank, "Cora Payer", amount="2,000.00")
    _, b, _ = customer_with_login(app_bank, "John Doe", amount="0")
    at = open_app(app_bank, login, "my-transfer")
    assert at.radio(key="my_transfer_where").value == "To someone else"
    at.text_input(key="my_transfer_target").input(b)
    at.text_input(key="my_transfer_amount").input("1,234.50")
    at.text_input(key="my_transfer_memo").input("Rent")
    at.button(key="my_transfer_review").click().run()
    page = texts(at)
    assert "J*** D**" in page and "John Doe" not in page
    button_starting(at, "my_transfer_confirm_").click().run()
    assert "posted" in at.success[0].value
    assert app_bank.accounts.balance(login, a) == Decimal("765.50")

    goto(at, "my-history")
    at.text_input(key="history_text").input("rent").run()
    assert "Rent" in texts(at) and "$-1,234.50" not in texts(at)
    assert "-$1,234.50" in texts(at)


def test_customer_daily_limit_is_shown_and_nothing_moves(app_bank, staff):
    _, a, login = customer_with_login(app_bank, "Lim Itless", amount="9,000.00")
    _, b, _ = customer_with_login(app_bank, "Other Payee", amount="0")
    at = open_app(app_bank, login, "my-transfer")
    at.text_input(key="my_transfer_target").input(b)
    at.text_input(key="my_transfer_amount").input("5,000.01")
    at.button(key="my_transfer_review").click().run()
    button_starting(at, "my_transfer_confirm_").click().run()
    assert "daily transfer limit" in at.error[0].value
    assert app_bank.accounts.balance(login, a) == Decimal("9000.00")


def test_customer_history_filters_and_csv(app_bank, staff):
    _, a, login = customer_with_login(app_bank, "Hilda History", amount="500.00")
    app_bank.payments.deposit(staff["teller"], a, "20.00", memo="Gift")
    app_bank.payments.withdraw(staff["teller"], a, "70.00")
    at = open_app(app_bank, login, "my-history")
    assert "3 transactions" in texts(at)
    # The type filter offers labels, never kind codes, and the table says them too.
    assert at.selectbox(key="history_kind").options == [
        "All types", "Cash deposit", "Cash withdrawal"]
    at.selectbox(key="history_kind").set_value("Cash withdrawal").run()
    assert "1 transactions" in texts(at)
    shown = at.dataframe[0].value
    assert shown["Type"].tolist() == ["Cash withdrawal"]
    assert shown["Counterparty"].tolist() == [""]
    at.selectbox(key="history_kind").set_value("All types").run()
    future = app_bank.business_date + dt.timedelta(days=1)
    at.date_input(key="history_dates").set_value((future, future)).run()
    assert "0 transactions" in texts(at)
    from bankms.services.accounts import history_csv
    csv = history_csv(app_bank.accounts.history(login, a))
    assert csv.splitlines()[1].endswith(",-70.00,450.00")


def test_customer_edits_profile(app_bank, staff):
    cid, _, login = customer_with_login(app_bank, "Paula Profile")
    at = open_app(app_bank, login, "my-profile")
    at.text_input(key="my_profile_address").input("9 New Street")
    at.button(key="my_profile_save").click().run()
    assert "saved" in at.success[0].value
    assert app_bank.customers.get(login, cid)["address"] == "9 New Street"
    at.text_input(key="my_profile_phone").input("call me")
    at.button(key="my_profile_save").click().run()
    assert "not a phone number" in at.error[0].value


def test_a_run_that_replaced_a_posting_run_waits_for_it_and_shows_its_receipt(app_bank, staff):
    """With fastReruns a second click starts a new run while the first is still in the bank
    call, and the first is stopped at its next Streamlit call. The new run must wait for the
    job the first run left in the session and show its receipt, not an empty form."""
    import threading

    from pages import daily_common as dc

    _, number, _ = customer_with_login(app_bank, "Olive Overlap", amount="0")
    at = open_app(app_bank, staff["teller"], "cash")
    receipt = app_bank.payments.deposit(staff["teller"], number, "5.00")
    job = {"done": False, "on_success": lambda result: dc.finish("cash", result),
           "message": None}
    at.session_state["_job_cash"] = job
    threading.Timer(0.3, lambda: job.update(result=receipt, done=True)).start()
    at.run()
    assert not at.exception
    assert f"transaction {receipt.transaction_id} posted" in at.success[0].value


def test_pending_sign_ups_are_shown_a_page_at_a_time(app_bank, staff):
    for n in range(45):
        app_bank.customers.register(
            full_name=f"Page Person {n}", email=f"page{n}@example.com", phone="+1 555 0178",
            date_of_birth="1990-01-01", national_id=f"PAGE-{n}", address="5 Page St",
            username=f"pageperson{n}", password="a long test password 1")
    mine = [app_bank.users.get(f"pageperson{n}")["customer_id"] for n in range(45)]
    total = app_bank.customers.pending(staff["teller"], limit=1)["total"]
    at = open_app(app_bank, staff["teller"], "customers")
    first = [b.key for b in at.button if (b.key or "").startswith("verify_")]
    assert len(first) == 20
    assert f"{total:,} sign-ups waiting" in texts(at) and "page 1 of" in texts(at)
    at.button(key="pending_next").click().run()
    second = [b.key for b in at.button if (b.key or "").startswith("verify_")]
    assert len(second) == 20 and not set(first) & set(second)
    assert "page 2 of" in texts(at)
    at.button(key="pending_prev").click().run()
    assert [b.key for b in at.button if (b.key or "").startswith("verify_")] == first
    for cid in mine:  # leave no pending sign-ups for the other tests
        app_bank.customers.verify(staff["teller"], cid)
