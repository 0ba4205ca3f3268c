"""Approvals (managers): payments above the four-eyes limit wait here, and so do new manager
logins, managers' password resets, raised roles, large reversals, overdraft limits, high rates,
loan write-offs and large staff loan repayments. Approving carries the request out (a payment's
hold is released in the same step); rejecting needs a reason. Nobody approves their own request
or one of someone whose login they made or reset (bankms refuses). Below the queue: structuring
alerts (runs of payments just under the limit) with the audit trail behind each."""
import streamlit as st

PAGE = {"title": "Approvals", "icon": ":material/fact_check:", "roles": ("manager",),
        "order": 40, "url": "approvals"}


def _describe(row):
    from bankms.services.approvals import OPERATIONS
    from pages.common import money
    from pages.daily_common import md

    if row["kind"] in OPERATIONS:
        text = f"**{md(OPERATIONS[row['kind']].capitalize())}** · {md(row['memo'])}"
        if row["amount"]:
            text += f" · {md(money(row['amount']))}"
        return text + (f"  \nRequest {row['request_id']} by {md(row['maker'])} at "
                       f"{row['created_at']:%Y-%m-%d %H:%M}")
    parts = [f"**{md(money(row['amount']))}** · {md(row['label'])}"]
    if row["source_account"]:
        parts.append(f"from {row['source_account']} ({md(row['source_holder'])})")
    if row["target_account"]:
        parts.append(f"to {row['target_account']} ({md(row['target_holder'])})")
    text = " ".join(parts)
    text += (f"  \nRequest {row['request_id']} by {md(row['maker'])} at "
             f"{row['created_at']:%Y-%m-%d %H:%M}")
    if isinstance(row["memo"], str) and row["memo"]:
        text += f" · memo: {md(row['memo'])}"
    return text


def _request(bank, actor, row):
    from bankms.services.approvals import OPERATIONS
    from pages import daily_common as dc

    rid = int(row["request_id"])
    with st.container(border=True):
        st.markdown(_describe(row))
        if row["maker"] == actor.username:
            st.caption("You made this request: another manager must approve it. You may "
                       "still reject it.")
        elif st.button("Approve" if row["kind"] in OPERATIONS else "Approve and post",
                       type="primary", key=f"approve_{rid}", icon=":material/check:"):
            dc.act("approvals", lambda: bank.approvals.approve(actor, rid),
                   lambda result: _approved_message(rid, result), on_success=_keep_password)
        with st.form(f"reject_{rid}"):
            reason = st.text_input("Reason for rejecting", key=f"reject_reason_{rid}")
            go = st.form_submit_button("Reject", key=f"reject_go_{rid}", icon=":material/close:")
        if go:
            dc.act("approvals", lambda: bank.approvals.reject(actor, rid, reason),
                   f"Request {rid} rejected; its hold is released.")


def _approved_message(rid, result) -> str:
    if isinstance(result, dict):
        return f"Request {rid} approved and carried out."
    if getattr(result, "transaction_id", None) is None:
        return f"Request {rid} approved."
    return f"Request {rid} approved: posted as transaction {result.transaction_id}."


def _keep_password(result) -> None:
    """A new manager's or a reset password is shown once, to the approver, on the next run."""
    if isinstance(result, dict) and result.get("temporary_password"):
        st.session_state["_approval_password"] = (result["username"],
                                                  result["temporary_password"])


def _show_password() -> None:
    from pages.text import md

    shown = st.session_state.pop("_approval_password", None)
    if shown:
        st.success(f"Temporary password for **{md(shown[0])}**: `{shown[1]}`  \nGive it to "
                   "them in person; they must choose their own at the next sign-in. It is not "
                   "shown again.", icon=":material/key:")


def _alerts(bank, actor) -> None:
    """Structuring alerts: each row a customer with several payments just under the limit in a
    short window; choosing one shows the audit trail behind it."""
    from pages import daily_common as dc

    st.header("Structuring alerts")
    alerts = bank.approvals.structuring_alerts(actor)
    if alerts.empty:
        st.caption("No runs of payments just under the limit in the last 30 days.")
        return
    dc.show_table(alerts.drop(columns=["transaction_ids"]),
                  {"customer_id": "Customer", "holder": "Holder", "payments": "Payments",
                   "total": "Total", "first_at": "First (UTC)", "last_at": "Last (UTC)",
                   "actors": "Made by"}, ("total",), key="approvals_alerts")
    choice = st.selectbox("Audit trail of", alerts.index.tolist(), key="approvals_alert_pick",
                          format_func=lambda i: f"{alerts.loc[i, 'holder']} "
                                                f"({alerts.loc[i, 'payments']} payments)")
    trail = bank.approvals.alert_trail(actor, alerts.loc[choice, "transaction_ids"])
    dc.show_table(trail, {"ts": "When (UTC)", "actor": "Who", "actor_role": "Role",
                          "action": "Action", "entity_id": "Transaction", "outcome": "Outcome",
                          "after": "Details"}, key="approvals_alert_trail")


def render() -> None:
    from bankms.domain.errors import BankError
    from pages.common import get_bank, money, show_error
    from pages import daily_common as dc

    actor = dc.signed_in(("manager",))
    bank = get_bank()
    st.title("Approvals")
    dc.settle_job("approvals")
    dc.show_stashed_error("approvals")
    dc.show_flash()
    _show_password()
    try:
        queue = bank.approvals.list(actor, "pending")
        decided = bank.approvals.list(actor, limit=50)
        threshold = bank.approvals.threshold_cents()
    except BankError as exc:
        show_error(exc)
        return
    st.caption(f"Staff payments above {dc.md(money(threshold))} (one person's payments for "
               "one customer in a day count together), new managers, password resets and "
               "raised roles, and large reversals, limits, rates and loan write-offs wait here "
               "for a second manager.")
    if queue.empty:
        st.info("Nothing is waiting for approval.", icon=":material/done_all:")
    for _, row in queue.iterrows():
        _request(bank, actor, row)
    st.header("Recent decisions")
    decided = decided[decided["status"] != "pending"]
    dc.show_table(decided, {"request_id": "Request", "status": "Status", "amount": "Amount",
                            "label": "Type", "maker": "By", "decided_by": "Decided by",
                            "transaction_id": "Transaction", "reason": "Reason"},
                  ("amount",), empty="No decisions yet.", key="approvals_decided")
    try:
        _alerts(bank, actor)
    except BankError as exc:
        show_error(exc)
