"""Term deposits (tellers, managers): a customer's term deposits, opening one for a customer
from their account (review, then confirm), and closing one early with the product's penalty."""
import streamlit as st

PAGE = {"title": "Term deposits", "icon": ":material/savings:", "roles": ("teller", "manager"),
        "order": 25, "url": "term-deposits"}

FORM = "teller_term_deposit"
CUSTOMER = "td_customer"


def _lookup(bank, actor):
    from bankms.errors import BankError
    from pages.common import show_error
    from pages import daily_common as dc
    from pages.my_term_deposits import INSTRUCTIONS, LIST_COLUMNS

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
    shown = deposits.assign(maturity_instruction=deposits["maturity_instruction"].map(
        lambda v: INSTRUCTIONS.get(v, v)), status=deposits["status"].str.replace("_", " "))
    dc.show_table(shown, {**LIST_COLUMNS, "penalty": "Penalty"},
                  money_columns=("principal", "payout", "penalty"),
                  empty="This customer has no term deposits.", key="td_table")
    return customer


def _open(bank, actor, customer):
    from pages import daily_common as dc
    from pages.my_term_deposits import INSTRUCTIONS

    typed = dc.draft(FORM)
    choices = list(INSTRUCTIONS)
    with st.form("td_open_form"):
        source = st.text_input("From account", value=typed.get("source", ""),
                               key="td_open_source")
        amount = st.text_input("Amount", value=typed.get("amount", ""), key="td_open_amount")
        months = st.number_input("Term in months", min_value=1, max_value=600, step=1,
                                 value=int(typed.get("months", 12)), key="td_open_months")
        instruction = st.radio("At maturity", choices, format_func=INSTRUCTIONS.get,
                               index=choices.index(typed.get("instruction", "payout")),
                               key="td_open_instruction")
        submitted = st.form_submit_button("Review", type="primary", key="td_open_review")
    if submitted:
        dc.request_review(FORM, {"source": source, "amount": amount, "months": int(months),
                                 "instruction": instruction},
                          lambda: bank.term_deposits.quote(
                              actor, customer_id=customer, linked_account=source,
                              amount=amount, term_months=int(months),
                              maturity_instruction=instruction))


def _review(bank, actor, review):
    from pages import daily_common as dc
    from pages.my_term_deposits import open_confirmed, review_rows

    st.subheader("Check and confirm with the customer")
    dc.show_pairs(review_rows(review))
    tag = review["key"]
    confirm = st.button("Open term deposit", type="primary", key=f"td_open_confirm_{tag}",
                        icon=":material/check:")
    change = st.button("Change", key=f"td_open_change_{tag}")
    dc.show_stashed_error(FORM)
    if change:
        dc.drop_review(FORM)
        st.rerun()
    if confirm:
        dc.confirm_review(FORM, lambda taken: open_confirmed(bank, actor, taken))


def _close_early(bank, actor):
    from pages.common import form_key, reset_form_key
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
                    f"{result['interest']}, penalty {result['penalty']}, tax withheld "
                    f"{result['tax_withheld']}; {result['payout']} was paid to its account.")
        dc.act("td_close", lambda: bank.term_deposits.close_early(
            actor, number, reason=reason, idempotency_key=key), message,
            on_success=lambda _: reset_form_key("td_close"))


def render() -> None:
    from pages.common import get_bank, money
    from pages import daily_common as dc

    actor = dc.signed_in(dc.STAFF)
    bank = get_bank()
    st.title("Term deposits")
    dc.settle_job(FORM)
    dc.settle_job("td_close")
    dc.show_flash()
    review = dc.current_review(FORM)
    if review is not None:
        _review(bank, actor, review)
        return
    result = dc.result_of(FORM)
    if result is not None:
        st.success(f"Term deposit {result['account_number']} is open: "
                   f"{dc.md(money(result['principal']))} until {result['maturity_date']}.",
                   icon=":material/check_circle:")
        dc.clear_result(FORM)
    customer = _lookup(bank, actor)
    if customer:
        st.subheader(f"Open a term deposit for customer {dc.md(customer)}")
        _open(bank, actor, customer)
    st.subheader("Close a term deposit early")
    st.caption("Pays the interest earned to today less the product's early-closure penalty "
               "(never more than the interest) and tax, with the principal, to the deposit's "
               "linked account.")
    _close_early(bank, actor)
