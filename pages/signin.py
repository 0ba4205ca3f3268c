"""Sign-in page: streamlit-authenticator's form, decided by bankms (back-off per username and
client address, one message for every failure, equal timing, audit); on a demo bank, the demo
logins under a clear banner."""
import streamlit as st

PAGE = {"title": "Sign in", "icon": ":material/login:", "roles": ("anonymous",), "order": 1,
        "url": "sign-in"}

FIELDS = {"Form name": "Sign in", "Username": "Username", "Password": "Password",
          "Login": "Sign in"}


def render() -> None:
    from pages import common

    bank = common.get_bank()
    authenticator = st.session_state.get("_authenticator")
    if authenticator is None or common.current_actor() is not None:
        st.stop()
    st.title(":material/account_balance: bankms")
    if st.session_state.pop("_session_ended", None):
        st.info("Your session has ended. Please sign in again.", icon=":material/timer_off:")
    logins = common.demo_logins(bank)
    form_column, side_column = st.columns([1, 1], gap="large")
    with form_column:
        # A fixed container keeps the library's form from being drawn twice while a run is
        # replaced by the next one.
        with st.container(key="signin_box"):
            authenticator.login(location="main", fields=FIELDS, key="bankms_signin")
        if st.session_state.get("session_id"):
            st.rerun()  # build the signed-in navigation; app.py then writes the cookie
        message = st.session_state.pop("_signin_error", None)
        if message:
            st.error(message, icon=":material/error:")
        common.page_link("sign-up", label="New customer? Register here",
                         icon=":material/person_add:")
    with side_column:
        if logins:
            _demo_banner(logins)
        elif not bank.users.any_exist():
            st.info("This bank has no users yet. Create the first manager with "
                    "`python -m bankms create-employee --role manager --username NAME` "
                    "(with the app stopped).", icon=":material/info:")


def _demo_banner(logins) -> None:
    import pandas as pd

    from pages.tables import show_columns

    with st.container(border=True, key="demo_banner"):
        st.markdown("## :material/science: Demo bank")
        st.warning("This is a **demo bank**: every customer, account and amount is made up. "
                   "Use these logins to try each role. Never run a real bank on this database.",
                   icon=":material/warning:")
        show_columns(pd.DataFrame(logins).reindex(
            columns=["role", "username", "password", "full_name"]).fillna(""),
            {"role": "Role", "username": "Username", "password": "Password",
             "full_name": "Name"})
