"""Change your own password. After a reset by a manager this is the only page offered until
the user has chosen a new password. Changing it ends every other session of the user."""
import streamlit as st

PAGE = {"title": "Change password", "icon": ":material/password:",
        "roles": ("customer", "teller", "manager", "pending", "must_change_password"),
        "order": 90, "url": "change-password"}


def render() -> None:
    from pages import common
    from bankms.domain.errors import BankError
    from bankms.services.users import PASSWORD_CHARS_MAX, PASSWORD_CHARS_MIN

    actor = common.current_actor()
    if actor is None:
        st.stop()
    bank = common.get_bank()
    st.title(":material/password: Change your password")
    if bank.auth.must_change_password(actor.username):
        st.warning("Your password was set by a manager. Please choose your own password "
                   "before you continue.", icon=":material/lock_reset:")
    st.caption(f"{PASSWORD_CHARS_MIN} to {PASSWORD_CHARS_MAX} characters, not your username and "
               "not a common password. A few unrelated words make a good password. Changing "
               "it signs you out everywhere else.")
    with st.form("bankms_change_password", clear_on_submit=True):
        old = st.text_input("Current password", type="password", max_chars=PASSWORD_CHARS_MAX)
        new = st.text_input("New password", type="password", max_chars=PASSWORD_CHARS_MAX)
        repeat = st.text_input("Repeat the new password", type="password",
                               max_chars=PASSWORD_CHARS_MAX)
        submitted = st.form_submit_button("Change password", type="primary",
                                          icon=":material/check:")
    if not submitted:
        return
    if new != repeat:
        st.error("The two new passwords differ.", icon=":material/error:")
        return
    try:
        bank.users.change_password(actor, old, new)
    except BankError as exc:
        common.show_error(exc)
        return
    # The change revoked every session of this user, this one too; carry on in a fresh one
    # with a fresh cookie, so that only a copied old cookie stops working.
    common.signed_in(bank.auth.start_session(actor))
    common.flash("Your password is changed. Other sessions are signed out.")
    st.rerun()
