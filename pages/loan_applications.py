"""Tellers and managers apply for a loan on a customer's behalf, with the quote first."""
import streamlit as st

from pages.text import md

PAGE = {"title": "Loan applications", "icon": ":material/note_add:",
        "roles": ("teller", "manager"), "order": 45, "url": "loan-applications"}


def render() -> None:
    from bankms.domain.errors import BankError
    from pages.common import current_actor, get_bank, show_error
    from pages.loan_forms import application_form, show_flash
    from pages.tables import show_columns

    actor = current_actor()
    if actor is None or not actor.is_staff:
        st.stop()
    bank = get_bank()
    st.title("Loan applications")
    show_flash()
    number = st.text_input("Customer number", key="desk_customer")
    if number.strip():
        try:
            customer = bank.customers.get(actor, number.strip())
        except BankError as exc:
            show_error(exc)
        else:
            st.markdown(f"**{md(customer['full_name'])}** · customer {customer['id']} · "
                        f"{customer['status']}")
            application_form(bank, actor, customer["id"], "desk_apply")
    st.header("Recent applications")
    loans = bank.loans.list(actor).head(20)
    show_columns(loans, {
        "loan_id": "Loan", "holder": "Customer", "product": "Product", "principal": "Amount",
        "term_months": "Months", "status": "Status", "applied_by": "Entered by",
        "decision_reason": "Reason"}, key="desk_recent")
