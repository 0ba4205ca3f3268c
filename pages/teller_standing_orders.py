"""Standing orders (tellers, managers): a customer's standing orders (list, attempts with
reasons, cancel, set up a new one from their accounts) and every failed or missed payment of
the last 31 days."""
import streamlit as st

PAGE = {"title": "Standing orders", "icon": ":material/event_repeat:",
        "roles": ("teller", "manager"), "order": 35, "url": "standing-orders"}

FORM = "teller_standing_order"
SELECTED = "standing_orders_customer"


def render() -> None:
    from bankms.domain.errors import BankError
    from pages import daily_common as dc
    from pages import standing_common as sc
    from pages.common import get_bank, show_error

    actor = dc.signed_in(("teller", "manager"))
    bank = get_bank()
    st.title("Standing orders")
    dc.settle_job("standing_orders")
    dc.show_flash()
    dc.show_stashed_error("standing_orders")
    st.header("Failed and missed payments")
    sc.failures(bank, actor, "standing_orders")
    st.header("A customer's standing orders")
    preset = st.session_state.get(SELECTED) or st.session_state.get("customers_selected")
    with st.form("standing_orders_lookup"):
        typed = st.text_input("Customer id", value="" if preset is None else str(preset),
                              key="standing_orders_customer_id")
        go = st.form_submit_button("Show", key="standing_orders_show", icon=":material/search:")
    if go:
        st.session_state[SELECTED] = typed.strip()
    customer = st.session_state.get(SELECTED)
    if not customer:
        return
    try:
        accounts = bank.accounts.list(actor, customer)
    except BankError as exc:
        show_error(exc)
        return
    sc.orders(bank, actor, "standing_orders", customer_id=customer)
    accounts = sc.payable_accounts(accounts)
    if accounts.empty:
        st.info("This customer has no open account to pay standing orders from.")
        return
    st.header("Set up a standing order")
    sc.form(bank, actor, accounts, FORM)
