"""Customer self-service: my loans with status, schedule and next due amount; pay (Review,
then Confirm, as on every money form: pages.loan_forms.payment_steps); apply."""
import streamlit as st

PAGE = {"title": "My loans", "icon": ":material/request_quote:", "roles": ("customer",),
        "order": 40, "url": "my-loans"}


def render() -> None:
    from bankms.domain.errors import BankError
    from pages.common import current_actor, get_bank, money, show_error
    from pages.loan_forms import (application_form, payment_steps, payoff_quote,
                                  settle_payment, show_flash, show_history, show_schedule,
                                  show_summary)
    from pages.tables import show_columns

    actor = current_actor()
    if actor is None or actor.role != "customer":
        st.stop()
    bank = get_bank()
    st.title("My loans")
    show_flash()
    mine, apply_tab = st.tabs(["My loans", "Apply for a loan"])
    with mine:
        try:
            loans = bank.loans.list(actor)
        except BankError as exc:
            show_error(exc)
            loans = None
        if loans is None or loans.empty:
            st.info("You have no loans or applications yet.")
        else:
            show_columns(loans, {
                "loan_id": "Loan", "product": "Product", "status": "Status",
                "principal": "Amount", "principal_outstanding": "Outstanding",
                "arrears_bucket": "Days past due", "decision_reason": "Reason"},
                key="myloans_table")
            labels = {int(r.loan_id): f"Loan {r.loan_id} · {r.product} · "
                                      f"{r.status.replace('_', ' ')}"
                      for r in loans.itertuples()}
            lid = st.selectbox("Loan", list(labels), format_func=labels.get,
                               key="myloans_pick")
            settle_payment("myloans_pay", lid)
            loan = bank.loans.get(actor, lid)
            show_summary(loan)
            sources = {}
            if loan["status"] == "active":
                # Only the customer's own open accounts are offered; repay refuses any other.
                accounts = bank.accounts.list(actor)
                accounts = accounts[accounts["status"].isin(["active", "dormant"])]
                sources = {r.account_number: f"{r.name} {r.account_number} "
                                             f"(available {money(r.available)})"
                           for r in accounts.itertuples()}
            step = payment_steps(bank, actor, loan, sources, "myloans_pay",
                                 heading="Make a payment")
            if loan["status"] == "active" and step not in ("review", "result"):
                with st.expander("Payoff quote"):
                    payoff_quote(bank, actor, loan, "myloans")
            st.header("Schedule")
            show_schedule(bank.loans.schedule(actor, lid), key="myloans_schedule")
            if loan["status"] != "submitted":
                with st.expander("Payments and corrections"):
                    show_history(bank, actor, lid, key="myloans_history")
    with apply_tab:
        st.caption("See the full schedule before you apply; nothing is filed until you "
                   "submit.")
        application_form(bank, actor, actor.customer_id, "myloans_apply")
