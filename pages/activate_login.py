"""Activate a login (anonymous): a customer whose login a teller made sets their own password
with the single-use activation code they were given. Staff never choose or see it."""
import streamlit as st

PAGE = {"title": "Activate login", "icon": ":material/key:", "roles": ("anonymous",),
        "order": 6, "url": "activate"}


def render() -> None:
    from pages import common
    from bankms.domain.errors import BankError
    from bankms.services.users import PASSWORD_CHARS_MAX, PASSWORD_CHARS_MIN

    if common.current_actor() is not None:
        st.stop()
    st.title(":material/key: Activate your login")
    if st.session_state.get("_activated"):
        st.success("Your password is set. Sign in with your username and new password.",
                   icon=":material/check_circle:")
        common.page_link("sign-in", label="Go to sign in", icon=":material/login:")
        return
    st.caption("Your bank sent you a username and an activation code by email or text "
               "message. Choose your password here; the code works once and expires.")
    with st.form("bankms_activate", clear_on_submit=False):
        username = st.text_input("Username", max_chars=32)
        code = st.text_input("Activation code", max_chars=32, placeholder="ABCD-EFGH-JKLM-NPQR")
        password = st.text_input(
            "New password", type="password", max_chars=PASSWORD_CHARS_MAX,
            help=f"{PASSWORD_CHARS_MIN} to {PASSWORD_CHARS_MAX} characters, not your username "
                 "and not a common password.")
        repeat = st.text_input("Repeat the new password", type="password",
                               max_chars=PASSWORD_CHARS_MAX)
        submitted = st.form_submit_button("Set my password", type="primary",
                                          icon=":material/key:")
    if not submitted:
        return
    if password != repeat:
        st.error("The two passwords differ.", icon=":material/error:")
        return
    try:
        common.get_bank().users.activate_login(username, code, password)
    except BankError as exc:
        common.show_error(exc)
        return
    st.session_state["_activated"] = True
    st.rerun()
