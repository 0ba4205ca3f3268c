"""Employee management (managers): create tellers and managers, deactivate and reactivate
them, reset a password (to be changed at the next sign-in), move them between teller and
manager, and unlock locked users. A new manager, a manager's password reset and a raised role
wait for a second manager (Approvals page); they are listed here as waiting."""
import streamlit as st

from pages.tables import show_columns, show_table
from pages.text import md

PAGE = {"title": "Employees", "icon": ":material/badge:", "roles": ("manager",), "order": 80,
        "url": "staff"}

COLUMNS = {"username": "Username", "full_name": "Name", "role": "Role", "active": "Active",
           "must_change_password": "Must change password", "locked_until": "Locked until (UTC)",
           "created_at": "Created (UTC)"}


def render() -> None:
    from pages import common

    actor = common.current_actor()
    if actor is None or actor.role != "manager":
        st.stop()
    bank = common.get_bank()
    st.title(":material/badge: Employees")
    shown = st.session_state.pop("_temporary_password", None)
    if shown:
        st.success(f"Temporary password for **{md(shown[0])}**: `{shown[1]}`  \nGive it to them in "
                   "person; they must choose their own at the next sign-in. It is not shown "
                   "again.", icon=":material/key:")
    staff = _employees(bank, actor)
    show_columns(staff, {c: h for c, h in COLUMNS.items() if c in staff.columns})
    _waiting(bank, actor)
    create_tab, manage_tab, locked_tab = st.tabs(
        [":material/person_add: Add", ":material/manage_accounts: Manage",
         ":material/lock_open: Locked users"])
    with create_tab:
        _create(bank, actor)
    with manage_tab:
        _manage(bank, actor, staff)
    with locked_tab:
        _locked(bank, actor)


def _employees(bank, actor):
    import pandas as pd

    frames = [bank.users.list(actor, role=role) for role in ("manager", "teller")]
    return pd.concat(frames, ignore_index=True)


USER_OPERATIONS = ("user.create_manager", "user.reset_password", "user.raise_role")


def _waiting(bank, actor) -> None:
    """Requests about logins that wait for a second manager."""
    waiting = bank.approvals.list(actor, "pending", kinds=USER_OPERATIONS)
    if waiting.empty:
        return
    st.header("Waiting for a second manager")
    show_columns(waiting, {"request_id": "Request", "memo": "What", "maker": "Asked by",
                           "created_at": "Asked (UTC)"}, key="bankms_employees_waiting")


def _outcome(result, done: str) -> str:
    """The message for a call that either happened or waits for a second manager."""
    from bankms.services.approvals import PendingApproval

    if isinstance(result, PendingApproval):
        return (f"Request {result.request_id} waits for another manager's approval "
                "(Approvals page); the approver receives any temporary password.")
    return done


def _run(action, success: str) -> None:
    """Call one bankms action; show its refusal in plain words, or rerun with a message."""
    from pages import common
    from bankms.domain.errors import BankError

    try:
        action()
    except BankError as exc:
        common.show_error(exc)
        return
    common.flash(success() if callable(success) else success)
    st.rerun()


def _create(bank, actor) -> None:
    from bankms.services.users import temporary_password

    with st.form("bankms_add_employee", clear_on_submit=True):
        left, right = st.columns(2)
        full_name = left.text_input("Full name", max_chars=100)
        username = right.text_input("Username", max_chars=32)
        email = left.text_input("Email (optional)", max_chars=254)
        role = right.selectbox("Role", ("teller", "manager"),
                               format_func=str.capitalize)
        submitted = st.form_submit_button("Add employee", type="primary",
                                          icon=":material/person_add:")
    if submitted:
        # A manager login needs a second manager, who receives its temporary password.
        password = temporary_password() if role == "teller" else None
        outcome = {}

        def action():
            outcome["result"] = bank.users.create(
                actor, username=username, password=password, role=role, full_name=full_name,
                email=email or None, must_change_password=True)
            if password is not None:
                st.session_state["_temporary_password"] = (username.strip().lower(), password)
        _run(action, lambda: _outcome(outcome.get("result"),
                                      f"{role.capitalize()} {md(username.strip().lower())} added."))


def _manage(bank, actor, staff) -> None:
    others = [u for u in staff["username"].tolist()]
    if not others:
        st.caption("No employees yet.")
        return
    username = st.selectbox("Employee", others, key="bankms_manage_user")
    row = staff[staff["username"] == username].iloc[0]
    st.caption(f"{md(row['full_name'])} · {row['role']} · "
               f"{'active' if row['active'] else 'deactivated'}")
    left, middle, right = st.columns(3)
    if row["active"]:
        if left.button("Deactivate", icon=":material/person_off:", key="bankms_deactivate",
                       disabled=username == actor.username, width="stretch"):
            _run(lambda: bank.users.deactivate(actor, username), f"{md(username)} deactivated.")
    elif left.button("Reactivate", icon=":material/person_check:", key="bankms_activate",
                     width="stretch"):
        _run(lambda: bank.users.activate(actor, username), f"{md(username)} reactivated.")
    if middle.button("Reset password", icon=":material/lock_reset:", key="bankms_reset",
                     disabled=username == actor.username, width="stretch"):
        outcome = {}

        def action():
            outcome["result"] = result = bank.users.reset_password(actor, username)
            if isinstance(result, str):
                st.session_state["_temporary_password"] = (username, result)
        _run(action, lambda: _outcome(outcome.get("result"), f"Password of {md(username)} reset."))
    other_role = "teller" if row["role"] == "manager" else "manager"
    if right.button(f"Make {other_role}", icon=":material/swap_vert:", key="bankms_role",
                    disabled=username == actor.username, width="stretch"):
        outcome = {}

        def change():
            outcome["result"] = bank.users.set_role(actor, username, other_role)
        _run(change, lambda: _outcome(outcome.get("result"),
                                      f"{md(username)} is now a {other_role}."))
    st.caption("Your own password: use *Change password*.")


def _locked(bank, actor) -> None:
    locked = bank.users.locked(actor)
    if locked.empty:
        st.caption("Nobody is locked out right now.")
        return
    show_table(locked, headers=COLUMNS)
    username = st.selectbox("User to unlock", locked["username"].tolist(),
                            key="bankms_unlock_user")
    if st.button("Unlock", icon=":material/lock_open:", key="bankms_unlock"):
        _run(lambda: bank.users.unlock(actor, username), f"{md(username)} unlocked.")
