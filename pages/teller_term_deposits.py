"""Term deposits (tellers, managers): a customer's term deposits, opening one for a customer
from their account (review, then confirm), and closing one early with the product's penalty."""
import streamlit as st

PAGE = {"title": "Term deposits", "icon": ":material/savings:", "roles": ("teller", "manager"),
        "order": 25, "url": "term-deposits"}

FORM = "teller_term_deposit"
CUSTOMER = "td_customer"


def _lookup(bank, actor):
    from bankms.domain.errors import BankError
    from pages.common import show_error
    from pages import daily_common as dc
    from pages.my_term_deposits import LIST_COLUMNS, in_words

    with st.form("td_lookup"):
        typed = st.text_input("Customer id", value=str(st.session_state.get(CUSTOMER) or
                                                       st.session_state.get(
                                                           "customers_selected") or ""),
                              key="td_customer_id")
        go = st.form_submit_button("Show term deposits", key="td_show",
                                   icon=":material/search:")
    if go:
        st.session_state[CUSTOMER] = typed.strip()
    customer = st.session_state.get(CUSTOMER)
    if not customer:
        return None
    try:
        deposits = bank.term_deposits.list(actor, customer_id=customer)
    except BankError as exc:
        show_error(exc)
        return None
    dc.show_table(in_words(deposits), {**LIST_COLUMNS, "penalty": "Penalty"},
                  money_columns=("principal", "payout", "penalty"),
                  empty="This customer has no term deposits.", key="td_table")
    return customer


def _open(bank, actor, customer):
    from pages import daily_common as dc
    from pages.my_term_deposits import ask_review, term_inputs

    typed = dc.draft(FORM)
    with st.form("td_open_form"):
        source = st.text_input("From account", value=typed.get("source", ""),
                               key="td_open_source")
        amount, months, instruction = term_inputs(typed, "td_open")
        submitted = st.form_submit_button("Review", type="primary", key="td_open_review")
    if submitted:
        ask_review(bank, actor, FORM, customer_id=customer, source=source, amount=amount,
                   months=months, instruction=instruction)


def _close_early(bank, actor):
    from pages.common import form_key, money, reset_form_key
    from pages import daily_common as dc

    key = form_key("td_close")
    with st.form(f"td_close_{key}"):
        number = st.text_input("Term deposit account", key=f"td_close_number_{key}")
        reason = st.text_input("Reason", key=f"td_close_reason_{key}")
        sure = st.checkbox("The customer asked to close it before maturity and accepts the "
                           "penalty", key=f"td_close_ok_{key}")
        go = st.form_submit_button("Close early", key=f"td_close_go_{key}",
                                   icon=":material/block:")
    if go:
        if not sure:
            st.error("Tick the box to confirm the customer's request.")
            return

        def message(result):
            return (f"Term deposit {dc.md(number.strip())} is closed: interest "
                    f"{dc.md(money(result['interest']))}, penalty "
                    f"{dc.md(money(result['penalty']))}, tax withheld "
                    f"{dc.md(money(result['tax_withheld']))}; "
                    f"{dc.md(money(result['payout']))} was paid to its linked account.")
        dc.act("td_close", lambda: bank.term_deposits.close_early(
            actor, number, reason=reason, idempotency_key=key), message,
            on_success=lambda _: reset_form_key("td_close"))


def render() -> None:
    from pages.common import get_bank
    from pages import daily_common as dc
    from pages.my_term_deposits import opened_message, review_step

    actor = dc.signed_in(dc.STAFF)
    bank = get_bank()
    st.title("Term deposits")
    dc.settle_job(FORM)
    dc.settle_job("td_close")
    dc.show_flash()
    review = dc.current_review(FORM)
    if review is not None:
        review_step(bank, actor, review, form=FORM, prefix="td_open",
                    heading="Check and confirm with the customer")
        return
    result = dc.result_of(FORM)
    if result is not None:
        opened_message(result)
        dc.clear_result(FORM)
    customer = _lookup(bank, actor)
    if customer:
        st.header(f"Open a term deposit for customer {dc.md(customer)}")
        _open(bank, actor, customer)
    st.header("Close a term deposit early")
    st.caption("Pays the interest earned to today less the product's early-closure penalty "
               "(never more than the interest) and tax, with the principal, to the deposit's "
               "linked account.")
    _close_early(bank, actor)
