"""AppTest of the loan and end-of-day pages, through app.py, for customers, tellers and
managers.

One bank file for the module (the app's process-wide Bank from pages.common.get_bank); each
test makes its own customers so that tests do not depend on each other.
"""
from __future__ import annotations

import datetime as dt
import itertools
import re
from decimal import Decimal
from types import SimpleNamespace

import pytest

from apptest_util import app_bank_fixture, open_app, shown, urls
from bankms.domain.errors import BankError
from conftest import Clock, employee, funded_account, login_for, make_customer
from test_dashboard_pages import show_tab

_names = itertools.count(1)
D = Decimal


app_bank = app_bank_fixture("loan_pages")


@pytest.fixture(scope="module")
def staff(app_bank):
    return {"teller": employee(app_bank, "teller"), "manager": employee(app_bank, "manager")}


def borrower(bank, name, amount="500.00"):
    cid = make_customer(bank, name=name)
    number = funded_account(bank, amount, customer_id=cid)
    return cid, number, login_for(bank, cid, f"loanpage{next(_names)}")


def texts(at):
    parts = [e.value for e in (*at.title, *at.header, *at.markdown, *at.caption, *at.success,
                               *at.info, *at.warning, *at.error)]
    parts += [shown(d) for d in at.dataframe] + [t.value.to_string() for t in at.table]
    parts += [f"{m.label} {m.value}" for m in at.metric]
    # Markdown holds user text and messages escaped ('\\$1,000'); compare what a person reads.
    return re.sub(r"\\(.)", r"\1", "\n".join(str(p) for p in parts))


def click(at, label):
    buttons = [b for b in at.button if b.label == label]
    assert buttons, f"no button {label!r}"
    buttons[0].click().run()
    assert not at.exception, at.exception


def submitted_loan(bank, staff, cid, principal="10000.00"):
    return bank.loans.apply(staff["teller"], cid, product="personal", principal=principal,
                            term_months=12, purpose="new kitchen", monthly_income="4000")


def active_loan(bank, staff, cid, number):
    lid = submitted_loan(bank, staff, cid)
    bank.loans.approve(staff["manager"], lid, annual_rate_percent="12")
    bank.loans.disburse(staff["teller"], lid, number)
    return lid


ROLE_PAGES = [
    ("customer", {"my-loans"}, {"loan-applications", "take-loan-payment", "loan-review",
                                "end-of-day"}),
    ("teller", {"loan-applications", "take-loan-payment"}, {"my-loans", "loan-review",
                                                            "end-of-day"}),
    ("manager", {"loan-applications", "take-loan-payment", "loan-review", "end-of-day"},
     {"my-loans"}),
]


@pytest.mark.parametrize("role, offered, hidden", ROLE_PAGES)
def test_each_role_sees_its_loan_pages(app_bank, staff, role, offered, hidden):
    actor = staff.get(role) or borrower(app_bank, "Nav Person")[2]
    at = open_app(app_bank, actor)
    assert offered <= urls(at)
    assert not (hidden & urls(at))


def fill_application(at, prefix, amount="10,000.00", term=12):
    at.selectbox(key=f"{prefix}_product").select("personal")
    at.text_input(key=f"{prefix}_amount").input(amount)
    at.number_input(key=f"{prefix}_term").set_value(term)
    at.text_input(key=f"{prefix}_purpose").input("new kitchen")
    at.text_input(key=f"{prefix}_income").input("4,000.00")
    at.run()


def test_customer_sees_a_quote_then_applies(app_bank, staff):
    cid, _, ana = borrower(app_bank, "Quote Ana")
    at = open_app(app_bank, ana, "my-loans")
    fill_application(at, "myloans_apply")
    assert not [b for b in at.button if b.label == "Submit application"]
    click(at, "Show quote")
    # 10,000 at the personal loan's top rate of 19.9 % over 12 months.
    assert "$925.87 a month" in texts(at)
    quote = [d.value for d in at.dataframe if len(d.value) == 12]
    assert quote and quote[0]["Instalment"].iloc[0] == D("925.87")
    click(at, "Submit application")
    assert "submitted; a manager will review it" in texts(at)
    mine = app_bank.loans.list(ana)
    assert list(mine["status"]) == ["submitted"]
    assert (mine["principal"].iloc[0], mine["term_months"].iloc[0]) == (D("10000.00"), 12)


def test_changed_figures_need_a_new_quote(app_bank, staff):
    _, _, ana = borrower(app_bank, "Stale Quote")
    at = open_app(app_bank, ana, "my-loans")
    fill_application(at, "myloans_apply")
    click(at, "Show quote")
    at.text_input(key="myloans_apply_amount").input("12,000.00").run()
    assert "show the quote again" in texts(at)
    assert not [b for b in at.button if b.label == "Submit application"]
    assert app_bank.loans.list(ana).empty


def test_quote_refuses_an_amount_outside_the_product(app_bank, staff):
    _, _, ana = borrower(app_bank, "Too Much")
    at = open_app(app_bank, ana, "my-loans")
    fill_application(at, "myloans_apply", amount="90,000.00")
    click(at, "Show quote")
    assert "personal loan is for $1,000.00 to $50,000.00" in texts(at)


def test_teller_applies_for_a_customer(app_bank, staff):
    cid, _, _ = borrower(app_bank, "Desk Customer")
    at = open_app(app_bank, staff["teller"], "loan-applications")
    at.text_input(key="desk_customer").input(str(cid)).run()
    assert "Desk Customer" in texts(at)
    fill_application(at, "desk_apply", amount="5,000.00", term=24)
    click(at, "Show quote")
    click(at, "Submit application")
    loans = app_bank.loans.list(staff["teller"], cid)
    assert list(loans["status"]) == ["submitted"]
    assert loans["applied_by"].iloc[0] == staff["teller"].username


def test_manager_reviews_approves_and_pays_out(app_bank, staff):
    cid, number, ana = borrower(app_bank, "Review Rita", amount="1,234.56")
    lid = submitted_loan(app_bank, staff, cid)
    at = open_app(app_bank, staff["manager"], "loan-review")
    at.selectbox(key="review_pick").select(lid).run()
    page = texts(at)
    assert "Review Rita" in page and number in page and "$1,234.56" in page  # accounts, history
    at.text_input(key=f"review_rate_{lid}").input("25").run()
    click(at, "Approve")
    assert "between" in texts(at) and app_bank.loans.get(ana, lid)["status"] == "submitted"
    at.text_input(key=f"review_rate_{lid}").input("11.5").run()
    click(at, "Approve")
    loan = app_bank.loans.get(ana, lid)
    assert (loan["status"], loan["annual_rate_percent"]) == ("approved", D("11.5"))
    show_tab(at, "review_tab", "Pay out")  # the tab runs only when open
    at.selectbox(key="payout_pick").select(lid).run()
    click(at, "Pay out")
    assert f"Loan {lid} paid out into {number}" in texts(at)
    assert app_bank.loans.get(ana, lid)["status"] == "active"
    assert app_bank.accounts.balance(ana, number) == D("11234.56")


def test_rejection_reason_shows_on_the_customers_page(app_bank, staff):
    cid, _, ana = borrower(app_bank, "Rejected Rob")
    lid = submitted_loan(app_bank, staff, cid)
    at = open_app(app_bank, staff["manager"], "loan-review")
    at.selectbox(key="review_pick").select(lid).run()
    at.text_input(key=f"review_reason_{lid}").input("income does not cover the instalment")
    click(at, "Reject")
    mine = open_app(app_bank, ana, "my-loans")
    assert "Not approved: income does not cover the instalment" in texts(mine)


def test_customer_sees_schedule_and_pays(app_bank, staff):
    cid, number, ana = borrower(app_bank, "Paying Pia")
    lid = active_loan(app_bank, staff, cid, number)
    at = open_app(app_bank, ana, "my-loans")
    page = texts(at)
    assert "Outstanding principal $10,000.00" in page and "Next instalment $888.49" in page
    schedules = [d.value for d in at.dataframe if "State" in d.value]
    assert len(schedules) == 1 and len(schedules[0]) == 12
    assert schedules[0]["Instalment"].iloc[-1] == D("888.47")
    at.text_input(key=f"myloans_pay_amount_{lid}").input("500.00")
    click(at, "Review")
    assert "Check and confirm" in texts(at) and not at.warning
    click(at, "Confirm")
    assert "Paid $500.00" in texts(at)
    # Issue 9: paid before the due date, the 500.00 covers the coming instalment (interest
    # 100.00 first, then 400.00 of its principal).
    assert app_bank.loans.get(ana, lid)["outstanding_principal"] == D("9600.00")
    assert "Outstanding principal $9,600.00" in texts(at)  # the page redrew with new figures
    click(at, "New payment")
    assert at.text_input(key=f"myloans_pay_amount_{lid}").value == "388.49"  # what is left due


@pytest.fixture
def mypay(app_bank, staff):
    """A borrower with an active loan (paid into an account that held 500.00), a second
    account of hers holding 100.00, and her My loans page open on the loan."""
    cid, number, ana = borrower(app_bank, f"Paying Polly {next(_names)}")
    lid = active_loan(app_bank, staff, cid, number)
    other = funded_account(app_bank, "100.00", customer_id=cid)
    at = open_app(app_bank, ana, "my-loans")
    return SimpleNamespace(at=at, cid=cid, number=number, other=other, lid=lid, ana=ana)


def payments_of(bank, lid):
    return bank.read_one("SELECT count(*) FROM loan_payments WHERE loan_id = ?", [lid])[0]


def review_payment(at, lid, amount, source):
    at.text_input(key=f"myloans_pay_amount_{lid}").input(amount)
    at.selectbox(key=f"myloans_pay_source_{lid}").select(source)
    click(at, "Review")


# The customer's review shows the amount, the account and what Confirm would meet (from
# bank.loans.review_repayment), and posts nothing. (amount, source: the account the loan was
# paid into or her other one; what the review shows; its warning, or None)
MY_PAYMENT_REVIEWS = [
    ("250", "account", "$250.00", None),
    ("20000.00", "account", "$20,000.00",
     "$20,000.00 is more than the $10,000.00 that pays loan {lid} off today"),
    ("600.00", "other", "$600.00", "Only $100.00 is available on {other}"),
]


@pytest.mark.parametrize("amount, source, shown_amount, warning", MY_PAYMENT_REVIEWS)
def test_customer_reviews_a_payment_before_it_posts(app_bank, mypay, amount, source,
                                                    shown_amount, warning):
    at, lid = mypay.at, mypay.lid
    number = {"account": mypay.number, "other": mypay.other}[source]
    review_payment(at, lid, amount, number)
    page = texts(at)
    assert "Check and confirm" in page
    rows = dict(zip(at.table[0].value.iloc[:, 0], at.table[0].value.iloc[:, 1]))
    assert rows["Amount"].replace("\\", "") == shown_amount and number in rows["From"]
    assert "Money beyond the next instalment" not in rows  # customers choose no rule
    warnings = [w.value.replace("\\", "") for w in at.warning]
    if warning is None:
        assert warnings == []
    else:
        assert any(warning.format(lid=lid, other=mypay.other) in w for w in warnings), warnings
    assert payments_of(app_bank, lid) == 0
    assert not [b for b in at.button if b.label == "Review"]  # the form gives way to the review


def test_change_goes_back_to_what_the_customer_typed(app_bank, mypay):
    at, lid = mypay.at, mypay.lid
    review_payment(at, lid, "321.00", mypay.other)
    click(at, "Change")
    assert (at.text_input(key=f"myloans_pay_amount_{lid}").value,
            at.selectbox(key=f"myloans_pay_source_{lid}").value) == ("321.00", mypay.other)
    assert payments_of(app_bank, lid) == 0


def _rerun(at, review):
    at.run()


def _second_click(at, review):
    """A second click on Confirm that arrived while the review was still there (the run it
    starts saw the review before the first post took it away)."""
    at.session_state[f"_review_myloans_pay_{review['loan_id']}"] = review
    at.run()
    click(at, "Confirm")


@pytest.mark.parametrize("repeat", [_rerun, _second_click], ids=["rerun", "second click"])
def test_customer_confirm_pays_once(app_bank, mypay, repeat):
    at, lid = mypay.at, mypay.lid
    review_payment(at, lid, "300.00", mypay.number)
    review = dict(at.session_state[f"_review_myloans_pay_{lid}"])
    click(at, "Confirm")
    repeat(at, review)
    assert "Paid $300.00" in texts(at)
    assert payments_of(app_bank, lid) == 1
    assert app_bank.loans.get(mypay.ana, lid)["outstanding_principal"] == D("9800.00")


def test_customer_cannot_pay_from_an_account_not_hers(app_bank, staff, mypay):
    at, lid = mypay.at, mypay.lid
    stranger = funded_account(app_bank, "1,000.00",
                              customer_id=make_customer(app_bank, name="Stranger Sam"))
    at.run()
    offered = at.selectbox(key=f"myloans_pay_source_{lid}").options
    assert len(offered) == 2 and stranger not in " ".join(offered), offered
    assert [mypay.number in o or mypay.other in o for o in offered] == [True, True], offered
    # A review altered to name another customer's account: Confirm asks repay, which refuses.
    review_payment(at, lid, "300.00", mypay.number)
    at.session_state[f"_review_myloans_pay_{lid}"] = {
        **at.session_state[f"_review_myloans_pay_{lid}"], "source_account": stranger}
    at.run()
    click(at, "Confirm")
    assert [e.value for e in at.error] == ["You can only move money out of your own accounts."]
    assert not at.success
    assert payments_of(app_bank, lid) == 0
    assert app_bank.accounts.balance(staff["teller"], stranger) == D("1000.00")
    with pytest.raises(BankError):  # nor can a review name it
        app_bank.loans.review_repayment(mypay.ana, lid, "300.00", stranger)


@pytest.fixture
def takepay(app_bank, staff):
    """A borrower (500.00 in the account, then the 10,000.00 loan paid into it) and the
    teller's Take loan payment page open on the loan, which names the borrower."""
    name = f"Taking Tia {next(_names)}"
    cid, number, _ = borrower(app_bank, name)
    lid = active_loan(app_bank, staff, cid, number)
    at = open_app(app_bank, staff["teller"], "take-loan-payment")
    at.text_input(key="takepay_loan").input(str(lid)).run()
    assert name in texts(at)
    return SimpleNamespace(at=at, cid=cid, number=number, lid=lid)


def test_teller_takes_a_cash_payment(app_bank, takepay):
    at, lid = takepay.at, takepay.lid
    at.text_input(key=f"takepay_amount_{lid}").input("250.00")
    at.selectbox(key=f"takepay_source_{lid}").select("cash")
    click(at, "Review")
    key = at.session_state[f"_review_takepay_{lid}"]["key"]
    at.run()  # a rerun keeps the form instance's idempotency key
    assert at.session_state[f"_review_takepay_{lid}"]["key"] == key
    assert not at.warning and app_bank.read_one(
        "SELECT count(*) FROM loan_payments WHERE loan_id = ?", [lid]) == (0,)
    click(at, "Confirm")
    assert "Paid $250.00" in texts(at)
    assert app_bank.read_one("SELECT method, amount_cents FROM loan_payments WHERE loan_id = ?",
                             [lid]) == ("cash", 25_000)


# Take loan payment's review warns with the checks repay runs (bank.loans.review_repayment);
# nothing moves before Confirm, and Confirm then meets what the warning said.
# (source: cash, the account the loan was paid into or another one holding 100.00; amount;
#  the teller's deposit for the borrower first; warning; after Confirm)
TAKE_PAYMENT_REVIEWS = [
    ("other", "600.00", None, "Only $100.00 is available on {other}",
     "has $100.00 available; $600.00 is more than that"),
    ("cash", "20000.00", None,
     "$20,000.00 is more than the $10,000.00 that pays loan {lid} off today", "more than"),
    ("account", "2000.00", "9000.00",
     "With the $9,000.00 you moved for this customer today, this is above $10,000.00: a "
     "second manager must approve it", "waits for another manager's approval"),
]


@pytest.mark.parametrize("source, amount, deposit, warning, after", TAKE_PAYMENT_REVIEWS)
def test_take_loan_payment_review_warns_before_confirm(app_bank, staff, takepay, source, amount,
                                                       deposit, warning, after):
    at, number, lid = takepay.at, takepay.number, takepay.lid
    other = funded_account(app_bank, "100.00", customer_id=takepay.cid)
    if deposit:
        app_bank.payments.deposit(staff["teller"], number, deposit,
                                  idempotency_key=f"pre-{lid}")
    at.run()  # the page offers the new account
    at.text_input(key=f"takepay_amount_{lid}").input(amount)
    at.selectbox(key=f"takepay_source_{lid}").select(
        {"cash": "cash", "account": number, "other": other}[source])
    click(at, "Review")
    warnings = [w.value.replace("\\", "") for w in at.warning]
    assert any(warning.format(other=other, lid=lid) in w for w in warnings), warnings
    assert app_bank.read_one("SELECT count(*) FROM loan_payments WHERE loan_id = ?",
                             [lid]) == (0,)
    click(at, "Confirm")
    assert after in texts(at)


def test_teller_changes_a_reviewed_payment_with_its_rule(app_bank, takepay):
    # The staff page's Change refills the rule too (the steps are shared with My loans).
    at, lid = takepay.at, takepay.lid
    at.text_input(key=f"takepay_amount_{lid}").input("1,500.00")
    at.selectbox(key=f"takepay_source_{lid}").select("cash")
    at.selectbox(key=f"takepay_rule_{lid}").select("shorten_term")
    click(at, "Review")
    assert "shorten the term" in texts(at)
    click(at, "Change")
    assert (at.text_input(key=f"takepay_amount_{lid}").value,
            at.selectbox(key=f"takepay_source_{lid}").value,
            at.selectbox(key=f"takepay_rule_{lid}").value) == ("1,500.00", "cash", "shorten_term")
    assert payments_of(app_bank, lid) == 0


def test_manager_runs_end_of_day(app_bank, staff, monkeypatch):
    start = app_bank.business_date
    # Two days later, past the cut-off: the three days from `start` have ended.
    monkeypatch.setattr(app_bank, "clock", Clock(dt.datetime.combine(
        start + dt.timedelta(days=2), dt.time(23, 45))))
    at = open_app(app_bank, staff["manager"], "end-of-day")
    assert f"Business date {start:%a %d %b %Y}" in texts(at)
    at.date_input(key="eod_until").set_value(start + dt.timedelta(days=2))
    click(at, "Run end of day")
    # The page reloads after the run (the bar's progress is tested in test_eod.py) and says
    # what it closed at the top.
    assert "Closed 3 day(s)" in texts(at)
    assert f"Business date {start + dt.timedelta(days=3):%a %d %b %Y}" in texts(at)
    assert app_bank.business_date == start + dt.timedelta(days=3)
    assert app_bank.audit.verify() == []


# -- issue 9: payoff quote, accrued interest, history, corrections, repayment account ---------
def test_customer_sees_accrued_interest_payoff_quote_and_history(app_bank, staff):
    cid, number, ana = borrower(app_bank, "Quoting Quinn")
    lid = active_loan(app_bank, staff, cid, number)
    at = open_app(app_bank, ana, "my-loans")
    page = texts(at)
    assert "Interest accrued today $0.00" in page and "Pays it all off $10,000.00" in page
    first_due = app_bank.loans.schedule(ana, lid)["due_date"].iloc[0]
    at.date_input(key=f"myloans_payoff_day_{lid}").set_value(first_due).run()
    # A whole period to the first due date: the scheduled 100.00 of interest.
    assert (f"To pay loan {lid} off on {first_due}: **$10,100.00** (principal $10,000.00, "
            "interest accrued $100.00, fees $0.00)") in texts(at)
    assert f"This assumes nothing is paid or collected before {first_due}; an" in texts(at)
    # A day after the first instalment's fee date: the late fee end of day will charge by
    # then is in the quote, and the page says so.
    fee, grace = app_bank.read_one("SELECT late_fee_cents, late_fee_grace_days FROM loans "
                                   "WHERE id = ?", [lid])
    later = first_due + dt.timedelta(days=grace + 1)
    at.date_input(key=f"myloans_payoff_day_{lid}").set_value(later).run()
    assert (f"fees ${fee / 100:,.2f}).") in texts(at)
    assert (f"including ${fee / 100:,.2f} of late fees that end of day will charge by then "
            "on instalments still unpaid") in texts(at)
    assert "Disbursement" in texts(at)  # the history's event, in words


@pytest.fixture
def corrections(app_bank, staff):
    """A borrower with an active loan, and the manager's Loan review page open on its
    Corrections tab with the loan's number typed in."""
    cid, number, ana = borrower(app_bank, f"Corrected Cora {next(_names)}")
    lid = active_loan(app_bank, staff, cid, number)
    at = show_tab(open_app(app_bank, staff["manager"], "loan-review"), "review_tab",
                  "Corrections")
    at.text_input(key="correct_loan").input(str(lid)).run()
    return SimpleNamespace(at=at, number=number, ana=ana, lid=lid)


def test_manager_reverses_a_repayment_on_the_page(app_bank, corrections):
    at, lid, ana = corrections.at, corrections.lid, corrections.ana
    receipt = app_bank.loans.repay(ana, lid, "300.00", corrections.number)
    at.run()  # the page offers the new payment
    at.selectbox(key=f"correct_tid_{lid}").select(receipt.transaction_id)
    click(at, "Reverse repayment")
    assert any("Please give the reason" in e.value for e in at.error)
    at.text_input(key=f"correct_reason_{lid}").input("paid from the wrong account")
    click(at, "Reverse repayment")
    assert f"Repayment {receipt.transaction_id} of loan {lid} reversed." in texts(at)
    assert app_bank.loans.get(ana, lid)["outstanding_principal"] == D("10000.00")
    assert app_bank.audit.verify() == []


def test_manager_undoes_a_disbursement_on_the_page(app_bank, staff, corrections):
    at, lid, ana = corrections.at, corrections.lid, corrections.ana
    click(at, "Undo disbursement")
    assert any("Please give the reason" in e.value for e in at.error)
    assert app_bank.loans.get(ana, lid)["status"] == "active"
    at.text_input(key=f"correct_reason_{lid}").input("paid into the wrong account")
    click(at, "Undo disbursement")
    assert f"Loan {lid} is approved again; its payout was reversed." in texts(at)
    assert app_bank.loans.get(ana, lid)["status"] == "approved"
    events = app_bank.loans.history(staff["manager"], lid)["event"].tolist()
    assert events == ["disbursement", "undo disbursement"]
    assert app_bank.audit.verify() == []


def test_a_half_done_correction_survives_a_look_at_another_tab(corrections):
    # Widgets not drawn in a run lose their values: the Corrections tab, once opened, stays
    # drawn while the manager looks at the provisions (lazy_tabs keep=).
    at, lid = corrections.at, corrections.lid
    at.text_input(key=f"correct_reason_{lid}").input("paid into the wrong account").run()
    for tab in ("Provisions", "Corrections"):
        show_tab(at, "review_tab", tab)
    assert (at.text_input(key="correct_loan").value,
            at.text_input(key=f"correct_reason_{lid}").value) == (
        str(lid), "paid into the wrong account")


def test_teller_changes_the_repayment_account(app_bank, staff, takepay):
    at, lid = takepay.at, takepay.lid
    other = funded_account(app_bank, "0", customer_id=takepay.cid)
    at.run()  # the page offers the new account
    at.selectbox(key=f"takepay_account_{lid}").select(other)
    at.text_input(key=f"takepay_account_reason_{lid}").input("salary account moved")
    click(at, "Change repayment account")
    assert f"Loan {lid} is now repaid from {other}." in texts(at)
    assert app_bank.loans.get(staff["teller"], lid)["account_number"] == other


def test_manager_sees_the_provisioning_report(app_bank, staff):
    cid, number, _ = borrower(app_bank, "Provisioned Pia")
    active_loan(app_bank, staff, cid, number)
    report = app_bank.reports.provisioning(staff["manager"])
    at = open_app(app_bank, staff["manager"], "loan-review")
    # Only the open tab runs: the report is drawn once its tab is opened.
    assert "Provision required" not in [m.label for m in at.metric]
    show_tab(at, "review_tab", "Provisions")
    shown = {m.label: m.value for m in at.metric}
    required, booked = int(report["required_cents"].sum()), int(report["booked_cents"].sum())
    assert required >= 10_000  # at least 1 % of Pia's 10,000.00, current
    assert shown["Provision required"] == f"${required / 100:,.2f}"
    assert shown["Provision booked"] == f"${booked / 100:,.2f}"
    table = next(d.value for d in at.dataframe if "Provision rate" in d.value.columns)
    assert table["Days past due"].tolist() == ["current", "1-30", "31-60", "61-90", "over 90"]
    assert "csv_provisioning" in [b.key for b in at.get("download_button")]
