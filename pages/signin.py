"""Sign-in page (a plain placeholder until the app issue brings streamlit-authenticator)."""
import streamlit as st

PAGE = {"title": "Sign in", "icon": ":material/login:", "roles": ("anonymous",), "order": 1,
        "url": "sign-in"}


def render() -> None:
    from pages.common import get_bank, show_error
    from bankms.errors import BankError

    st.title("Sign in")
    with st.form("signin"):
        username = st.text_input("Username")
        password = st.text_input("Password", type="password")
        submitted = st.form_submit_button("Sign in")
    if submitted:
        bank = get_bank()
        try:
            actor = bank.auth.login(username, password)
        except BankError as exc:
            show_error(exc)
            return
        st.session_state["session_id"] = bank.auth.start_session(actor)
        st.rerun()

