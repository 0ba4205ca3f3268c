"""What a customer who is not (yet) active sees: their status and the profile they gave us.
Nothing financial appears here; the customer's pages open once a teller has verified them."""
import streamlit as st

PAGE = {"title": "Verification", "icon": ":material/hourglass_top:", "roles": ("pending",),
        "order": 3, "url": "awaiting-verification"}

MESSAGES = {
    "pending": "We have your registration. A teller will check your identity documents and "
               "verify you; your accounts appear here after that.",
    "suspended": "Your customer record is suspended. Please contact the bank.",
    "closed": "Your customer record is closed. Please contact the bank.",
}


def render() -> None:
    import pandas as pd

    from pages import common
    from bankms.domain.errors import BankError
    from pages.tables import show_table

    actor = common.current_actor()
    if actor is None or actor.role != "customer":
        st.stop()
    bank = common.get_bank()
    try:
        profile = bank.customers.get(actor, actor.customer_id)
    except BankError as exc:
        common.show_error(exc)
        return
    status = profile["status"]
    st.title(":material/hourglass_top: Waiting for verification" if status == "pending"
             else ":material/block: Customer record not active")
    st.info(MESSAGES.get(status, f"Your customer record is {status}."), icon=":material/info:")
    st.header("Your profile")
    rows = [("Full name", profile["full_name"]), ("Email", profile["email"]),
            ("Phone", profile["phone"]), ("Date of birth", str(profile["date_of_birth"])),
            ("National id", profile["national_id"]), ("Address", profile["address"]),
            ("Customer number", str(profile["id"])), ("Status", status)]
    show_table(pd.DataFrame(rows, columns=["", "Value"]))
