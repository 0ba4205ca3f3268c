"""Tellers and managers take a loan payment: cash at the counter or from the borrower's
account."""
import streamlit as st

from pages.text import md

PAGE = {"title": "Take loan payment", "icon": ":material/payments:",
        "roles": ("teller", "manager"), "order": 46, "url": "take-loan-payment"}


def render() -> None:
    from bankms.errors import BankError
    from pages.common import current_actor, get_bank, show_error
    from pages.loan_forms import payment_form, show_flash, show_schedule, show_summary

    actor = current_actor()
    if actor is None or not actor.is_staff:
        st.stop()
    bank = get_bank()
    st.title("Take loan payment")
    show_flash()
    number = st.text_input("Loan number", key="takepay_loan")
    if not number.strip():
        return
    try:
        loan = bank.loans.get(actor, number.strip())
    except BankError as exc:
        show_error(exc)
        return
    st.caption(f"Borrower: {md(loan['holder'])} (customer {loan['customer_id']})")
    show_summary(loan)
    if loan["status"] == "active":
        sources = {"cash": "Cash at the counter"}
        accounts = bank.accounts.list(actor, loan["customer_id"])
        for r in accounts[accounts["status"].isin(["active", "dormant"])].itertuples():
            sources[r.account_number] = f"{r.name} {r.account_number} (available {r.available})"
        payment_form(bank, actor, loan, sources, "takepay")
    with st.expander("Schedule"):
        show_schedule(bank.loans.schedule(actor, loan["loan_id"]), key="takepay_schedule")
