"""Tellers and managers take a loan payment: cash at the counter or from the borrower's
account, with a review step like the other money forms (Review shows what Confirm would meet,
from bank.loans.review_repayment; Confirm posts with the review's idempotency key, so a repeated
click or a rerun pays once)."""
import streamlit as st

from pages.text import md

PAGE = {"title": "Take loan payment", "icon": ":material/payments:",
        "roles": ("teller", "manager"), "order": 46, "url": "take-loan-payment"}


def render() -> None:
    from pages.common import current_actor, get_bank, money
    from pages import daily_common as dc
    from pages.loan_forms import (loan_by_number, payoff_quote, show_flash, show_history,
                                  show_schedule, show_summary)

    actor = current_actor()
    if actor is None or not actor.is_staff:
        st.stop()
    bank = get_bank()
    st.title("Take loan payment")
    show_flash()
    loan = loan_by_number(bank, actor, "takepay_loan")
    if loan is None:
        return
    st.caption(f"Borrower: {md(loan['holder'])} (customer {loan['customer_id']})")
    form = f"takepay_{loan['loan_id']}"
    dc.settle_job(form)
    show_summary(loan)
    review = dc.current_review(form)
    if review is not None:
        _review(bank, actor, form, review)
        return
    if dc.result_of(form) is not None:
        _result(form, dc.result_of(form))
    elif loan["status"] == "active":
        sources = {"cash": "Cash at the counter"}
        accounts = bank.accounts.list(actor, loan["customer_id"])
        for r in accounts[accounts["status"].isin(["active", "dormant"])].itertuples():
            sources[r.account_number] = (f"{r.name} {r.account_number} "
                                         f"(available {money(r.available)})")
        _form(bank, actor, loan, sources, form)
        with st.expander("Payoff quote"):
            payoff_quote(bank, actor, loan, "takepay")
        with st.expander("Repayment account"):
            _repayment_account(bank, actor, loan)
    with st.expander("Schedule"):
        show_schedule(bank.loans.schedule(actor, loan["loan_id"]), key="takepay_schedule")
    with st.expander("Payments and corrections"):
        show_history(bank, actor, loan["loan_id"], key="takepay_history")


def _repayment_account(bank, actor, loan):
    """Staff move instalment collection to another of the borrower's accounts (audited)."""
    from bankms.domain.errors import BankError
    from pages.common import show_error
    from pages.loan_forms import flash

    lid = loan["loan_id"]
    accounts = bank.accounts.list(actor, loan["customer_id"])
    accounts = accounts[accounts["status"].isin(["active", "dormant"])]
    options = {r.account_number: f"{r.name} {r.account_number}" for r in accounts.itertuples()}
    if not options:
        st.caption("The borrower has no other open account.")
        return
    current = loan["account_number"]
    number = st.selectbox("Collect instalments from", list(options), format_func=options.get,
                          index=list(options).index(current) if current in options else 0,
                          key=f"takepay_account_{lid}")
    reason = st.text_input("Reason", key=f"takepay_account_reason_{lid}")
    if st.button("Change repayment account", key=f"takepay_account_go_{lid}"):
        try:
            bank.loans.set_repayment_account(actor, lid, number, reason=reason)
        except BankError as exc:
            show_error(exc)
        else:
            flash(f"Loan {lid} is now repaid from {number}.")


def _form(bank, actor, loan, sources, form):
    from pages import daily_common as dc
    from pages.loan_forms import payment_inputs

    submitted, amount, source, rule = payment_inputs(actor, loan, sources, "takepay",
                                                     button="Review", typed=dc.draft(form))
    if submitted:
        dc.request_review(form, {"amount": amount, "source": source, "rule": rule},
                          lambda: {**bank.loans.review_repayment(
                              actor, loan["loan_id"], amount, source, prepayment=rule),
                              "source_label": sources.get(source, source)})


def _review(bank, actor, form, review):
    from pages import daily_common as dc
    from pages.common import money
    from pages.loan_forms import PREPAYMENT_CHOICES

    st.header("Check and confirm")
    rows = [("Loan", review["loan_id"]), ("Amount", money(review["amount"])),
            ("From", review["source_label"])]
    if review.get("prepayment"):
        rows.append(("Money beyond the next instalment",
                     PREPAYMENT_CHOICES.get(review["prepayment"], review["prepayment"])))
    dc.show_pairs(rows)
    if review.get("source_available") is not None:
        st.caption(f"Available in the account now: {md(money(review['source_available']))}")
    # Payoff, funds and four-eyes, from the checks repay runs (bank.loans.review_repayment).
    dc.show_warnings(review)
    tag = review["key"]
    confirm = st.button("Confirm", type="primary", key=f"takepay_confirm_{tag}",
                        icon=":material/check:")
    change = st.button("Change", key=f"takepay_change_{tag}")
    dc.show_stashed_error(form)
    if change:
        dc.drop_review(form)
        st.rerun()
    if confirm:
        dc.confirm_review(form, lambda taken: bank.loans.repay(
            actor, taken["loan_id"], taken["amount"], taken["source_account"],
            idempotency_key=taken["key"], prepayment=taken["prepayment"]))


def _result(form, result):
    from pages import daily_common as dc
    from pages.common import money

    text = dc.unless_waiting(lambda r: f"Paid {money(r.amount)} (transaction "
                                       f"{r.transaction_id}). {md(r.memo)}.")(result)
    st.success(text, icon=":material/check_circle:")
    if st.button("New payment", key=f"{form}_new", icon=":material/add:"):
        dc.clear_result(form)
        st.rerun()
