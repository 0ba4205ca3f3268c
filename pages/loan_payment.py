"""Tellers and managers take a loan payment: cash at the counter or from the borrower's
account, with a review step like the other money forms (Review shows what Confirm would meet,
from bank.loans.review_repayment; Confirm posts with the review's idempotency key, so a repeated
click or a rerun pays once). The steps are pages.loan_forms.payment_steps, shared with the
customer's My loans page."""
import streamlit as st

from pages.text import md

PAGE = {"title": "Take loan payment", "icon": ":material/payments:",
        "roles": ("teller", "manager"), "order": 46, "url": "take-loan-payment"}


def render() -> None:
    from pages.common import current_actor, get_bank, money
    from pages.loan_forms import (loan_by_number, payment_steps, payoff_quote, settle_payment,
                                  show_flash, show_history, show_schedule, show_summary)

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
    settle_payment("takepay", loan["loan_id"])
    show_summary(loan)
    sources = {}
    if loan["status"] == "active":
        sources = {"cash": "Cash at the counter"}
        accounts = bank.accounts.list(actor, loan["customer_id"])
        for r in accounts[accounts["status"].isin(["active", "dormant"])].itertuples():
            sources[r.account_number] = (f"{r.name} {r.account_number} "
                                         f"(available {money(r.available)})")
    step = payment_steps(bank, actor, loan, sources, "takepay")
    if step == "review":
        return
    if step == "form":
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
