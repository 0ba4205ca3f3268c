"""Standing orders (customers): their recurring transfers with the next payment date, the last
outcome and every failure with its reason; set up a new one (review, then confirm) or cancel
one. bankms decides what may be set up (own accounts only, within the daily limit)."""
import streamlit as st

PAGE = {"title": "Standing orders", "icon": ":material/event_repeat:", "roles": ("customer",),
        "order": 35, "url": "my-standing-orders"}

FORM = "my_standing_order"


def render() -> None:
    from bankms.domain.errors import BankError
    from pages import daily_common as dc
    from pages import standing_common as sc
    from pages.common import get_bank, show_error

    actor = dc.signed_in(("customer",))
    bank = get_bank()
    st.title("Standing orders")
    dc.settle_job("my_standing_orders")
    dc.show_flash()
    dc.show_stashed_error("my_standing_orders")
    sc.orders(bank, actor, "my_standing_orders")
    st.header("Set up a standing order")
    try:
        accounts = bank.accounts.list(actor)
    except BankError as exc:
        show_error(exc)
        return
    accounts = sc.payable_accounts(accounts)
    if accounts.empty:
        st.info("You have no open account to pay standing orders from.")
        return
    sc.form(bank, actor, accounts, FORM)
