"""Customer self-registration: a pending customer with a login. Nothing financial is shown to
them until a teller has checked their identity and verified them."""
import datetime as dt

import streamlit as st

PAGE = {"title": "Register", "icon": ":material/person_add:", "roles": ("anonymous",),
        "order": 5, "url": "sign-up"}

RECEIVED = ("We received your sign-up. Sign in with the username and password you chose to "
            "follow it; a teller checks your identity documents before any account is opened. "
            "If you cannot sign in, please visit a branch with your identity documents.")


def render() -> None:
    from pages import common
    from bankms.domain.errors import BankError
    from bankms.services.users import PASSWORD_CHARS_MAX, PASSWORD_CHARS_MIN

    if common.current_actor() is not None:
        st.stop()
    st.title(":material/person_add: Become a customer")
    if st.session_state.get("_registered"):
        # The same words whether or not the username or national id was new: the answer must
        # not tell a stranger who banks here. A refused duplicate never becomes a login.
        st.success(RECEIVED, icon=":material/check_circle:")
        common.page_link("sign-in", label="Go to sign in", icon=":material/login:")
        return
    st.caption("Tell us who you are. A teller checks your identity documents before any "
               "account is opened.")
    # The bank's calendar date (its clock in its time zone), the date the service checks.
    from bankms.services import businessday
    today = businessday.calendar_date(common.get_bank())
    with st.form("bankms_register", clear_on_submit=False):
        left, right = st.columns(2)
        full_name = left.text_input("Full name", max_chars=100)
        email = right.text_input("Email", max_chars=254)
        phone = left.text_input("Phone", max_chars=24, placeholder="+1 555 0100")
        born = right.date_input("Date of birth", value=None, min_value=dt.date(today.year - 120, 1, 1),
                                max_value=today, format="YYYY-MM-DD")
        national_id = left.text_input("National id", max_chars=30)
        address = right.text_input("Address", max_chars=200)
        st.divider()
        left, right = st.columns(2)
        username = left.text_input("Username", max_chars=32,
                                   help="3 to 32 characters: letters, digits, '.', '_' or '-'.")
        password = right.text_input(
            "Password", type="password", max_chars=PASSWORD_CHARS_MAX,
            help=f"{PASSWORD_CHARS_MIN} to {PASSWORD_CHARS_MAX} characters, not your username "
                 "and not a common password. A few unrelated words make a good one.")
        repeat = right.text_input("Repeat the password", type="password",
                                  max_chars=PASSWORD_CHARS_MAX)
        submitted = st.form_submit_button("Register", type="primary",
                                          icon=":material/person_add:")
    if not submitted:
        return
    if password != repeat:
        st.error("The two passwords differ.", icon=":material/error:")
        return
    try:
        common.get_bank().customers.register(
            full_name=full_name, email=email, phone=phone, date_of_birth=born,
            national_id=national_id, address=address, username=username, password=password,
            client_address=common.client_address())
    except BankError as exc:
        common.show_error(exc)
        return
    st.session_state["_registered"] = True
    st.rerun()
