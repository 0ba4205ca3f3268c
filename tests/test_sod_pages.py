"""AppTest of segregation of duties on the pages (issue 12): the Employees page shows new
managers, managers' resets and raised roles as waiting; the Approvals page carries them out
(the approver sees the temporary password once), refuses an approver who handled the maker's
login, and lists structuring alerts with their audit trail; a customer activates a login."""
from __future__ import annotations

import itertools
import re

import pytest
from apptest_util import APP, app_bank_fixture, goto, open_app, shown
from bankms.domain.text import markdown_escape
from conftest import employee, funded_account, make_customer, sent_code
from streamlit.testing.v1 import AppTest

_names = itertools.count(1)


app_bank = app_bank_fixture("sod_pages")


def manager(bank):
    return employee(bank, "manager", username=f"mgr{next(_names)}")


def texts(at):
    assert not at.exception, at.exception
    parts = [e.value for e in (*at.title, *at.header, *at.markdown, *at.caption, *at.success,
                               *at.info, *at.warning, *at.error, *at.toast)]
    parts += [shown(d) for d in at.dataframe]
    return re.sub(r"\\(.)", r"\1", "\n".join(str(p) for p in parts))


def add_employee(at, full_name, username, role):
    for widget in at.text_input:
        if widget.label == "Full name":
            widget.input(full_name)
        elif widget.label == "Username":
            widget.input(username)
    next(s for s in at.selectbox if s.label == "Role").set_value(role)
    at.button(key="FormSubmitter:bankms_add_employee-Add employee").click().run()


def test_a_new_manager_waits_on_employees_and_is_made_on_approvals(app_bank):
    maker, approver = manager(app_bank), manager(app_bank)
    at = open_app(app_bank, maker, "staff")
    add_employee(at, "Gus Ghost", "gus", "manager")
    assert "waits for another manager" in texts(at)
    assert not [s for s in at.success if "Temporary password" in s.value]
    assert app_bank.users.get("gus") is None
    assert "Create manager login gus" in texts(at)  # the waiting table
    rid = int(app_bank.approvals.list(maker, "pending", kinds=["user.create_manager"])
              ["request_id"].iloc[0])
    # The maker sees no Approve button on their own request.
    mine = open_app(app_bank, maker, "approvals")
    assert not [b for b in mine.button if b.key == f"approve_{rid}"]
    other = open_app(app_bank, approver, "approvals")
    other.button(key=f"approve_{rid}").click().run()
    shown = [s.value for s in other.success if "Temporary password" in s.value]
    assert shown and "gus" in shown[0]
    password = shown[0].split("`")[1]
    assert app_bank.auth.login("gus", password).username == "gus"
    other.run()
    assert not [s for s in other.success if "Temporary password" in s.value]  # shown once


def test_approvals_refuses_an_approver_whose_login_the_maker_made(app_bank):
    maker, approver = manager(app_bank), manager(app_bank)
    made = app_bank.users.create(maker, username=f"pal{next(_names)}", role="manager",
                                 full_name="Pal")
    created = app_bank.approvals.approve(approver, made.request_id)
    pal = app_bank.auth.login(created["username"], created["temporary_password"])
    app_bank.users.change_password(pal, created["temporary_password"], "pal own password 1")
    number = funded_account(app_bank, "60000.00", customer_id=make_customer(app_bank))
    pending = app_bank.payments.withdraw(maker, number, "50000.00")
    at = open_app(app_bank, pal, "approvals")
    at.button(key=f"approve_{pending.request_id}").click().run()
    assert "created or reset your login" in texts(at)
    assert app_bank.approvals.get(maker, pending.request_id)["status"] == "pending"


def test_resetting_a_managers_password_and_raising_a_role_wait(app_bank):
    maker = manager(app_bank)
    colleague = manager(app_bank)
    teller = employee(app_bank, "teller", username=f"tel{next(_names)}")
    at = open_app(app_bank, maker, "staff")
    at.selectbox(key="bankms_manage_user").set_value(colleague.username).run()
    at.button(key="bankms_reset").click().run()
    assert "waits for another manager" in texts(at)
    assert not app_bank.users.get(colleague.username)["must_change_password"]
    at.selectbox(key="bankms_manage_user").set_value(teller.username).run()
    at.button(key="bankms_role").click().run()
    assert "waits for another manager" in texts(at)
    assert app_bank.users.get(teller.username)["role"] == "teller"
    page = texts(at)
    assert f"Reset the password of manager {colleague.username}" in page
    assert f"Make {teller.username} a manager" in page


def test_structuring_alert_and_its_trail_on_approvals(app_bank):
    cid = make_customer(app_bank, name="Stella Split")
    number = funded_account(app_bank, "0", customer_id=cid)
    for _ in range(3):
        app_bank.payments.deposit(employee(app_bank, "teller",
                                           username=f"tel{next(_names)}"), number, "9900.00")
    at = open_app(app_bank, manager(app_bank), "approvals")
    page = texts(at)
    assert "Structuring alerts" in page and "Stella Split" in page
    trail = next(d.value for d in at.dataframe if "Action" in d.value.columns)
    assert list(trail["Action"]) == ["payment.deposit"] * 3


def test_a_customer_activates_their_login(app_bank):
    cid = make_customer(app_bank, name="Ada Activate")
    teller = employee(app_bank, "teller", username=f"tel{next(_names)}")
    app_bank.users.create_customer_login(teller, cid, "ada")
    at = AppTest.from_file(APP, default_timeout=30)
    at.run()
    hashes = [h for h, i in at._registered_pages.items() if i.get("url_pathname") == "activate"]
    at._page_hash = hashes[0]
    at.run()
    values = {"Username": "ada", "Activation code": "wrong-code",
              "New password": "ada own password 1", "Repeat the new password":
              "ada own password 1"}
    for widget in at.text_input:
        widget.input(values[widget.label])
    at.button[0].click().run()
    assert "wrong, used or expired" in at.error[0].value
    next(w for w in at.text_input if w.label == "Activation code").input(
        sent_code(app_bank, "ada"))
    at.button[0].click().run()
    assert "Your password is set" in texts(at)
    assert app_bank.auth.login("ada", "ada own password 1").customer_id == cid


def test_a_teller_makes_a_login_and_never_sees_its_code_or_a_password(app_bank):
    cid = make_customer(app_bank, name="Lena Login", email="lena@example.com")
    teller = employee(app_bank, "teller", username=f"tel{next(_names)}")
    at = AppTest.from_file(APP, default_timeout=30)
    at.session_state["session_id"] = app_bank.auth.start_session(teller)
    at.session_state["customers_selected"] = cid
    at.run()
    goto(at, "customers")
    assert not [w for w in at.text_input if "password" in w.label.lower()]
    at.text_input(key=f"login_user_{cid}").input("lena")
    at.button(key=f"login_create_{cid}").click().run()
    code = sent_code(app_bank, "lena")
    shown = [s.value for s in at.success if "activation code was sent" in s.value]
    assert shown and "lena" in shown[0] and markdown_escape("l***@example.com") in shown[0]
    assert code not in texts(at)
    held = list(at.session_state)
    assert "session_id" in held and not [k for k in held if code in repr(at.session_state[k])]
    app_bank.users.activate_login("lena", code, "lena own password 1")
    assert app_bank.auth.login("lena", "lena own password 1").customer_id == cid


def test_a_tellers_large_loan_payment_waits_on_the_loan_page(app_bank):
    system = app_bank.system_actor()
    cid = make_customer(app_bank, name="Lou Lender")
    number = funded_account(app_bank, "0", customer_id=cid)
    lid = app_bank.loans.apply(system, cid, product="personal", principal="20000.00",
                               term_months=24, purpose="new roof", monthly_income="9000.00")
    app_bank.loans.approve(system, lid, annual_rate_percent="12")
    app_bank.loans.disburse(system, lid, number)
    teller = employee(app_bank, "teller", username=f"tel{next(_names)}")
    at = open_app(app_bank, teller, "take-loan-payment")
    at.text_input(key="takepay_loan").input(str(lid)).run()
    at.text_input(key=f"takepay_amount_{lid}").input("15,000.00")
    at.selectbox(key=f"takepay_source_{lid}").select(number)
    # The page reviews first (the payment form's Review -> Confirm): the review already says
    # that a second manager must approve, and nothing moves before Confirm.
    next(b for b in at.button if b.label == "Review").click().run()
    assert "a second manager must approve it" in texts(at)
    assert app_bank.loans.get(system, lid)["outstanding_principal"] == 20000
    next(b for b in at.button if b.label == "Confirm").click().run()
    assert "waits for another manager" in texts(at)
    assert app_bank.accounts.balance(system, number) == 20000
    assert app_bank.loans.get(system, lid)["outstanding_principal"] == 20000
