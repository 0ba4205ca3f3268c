"""Approvals (managers): payments above the four-eyes limit wait here. Approving posts the
payment (its hold is released in the same step); rejecting needs a reason and releases the
hold. Nobody approves their own request."""
import streamlit as st

PAGE = {"title": "Approvals", "icon": ":material/fact_check:", "roles": ("manager",),
        "order": 40, "url": "approvals"}


def _describe(row):
    from pages.common import money
    from pages.daily_common import md

    parts = [f"**{md(money(row['amount']))}** · {row['kind']}"]
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
    from pages import daily_common as dc

    rid = int(row["request_id"])
    with st.container(border=True):
        st.markdown(_describe(row))
        if row["maker"] == actor.username:
            st.caption("You made this request: another manager must approve it. You may "
                       "still reject it.")
        elif st.button("Approve and post", type="primary", key=f"approve_{rid}",
                       icon=":material/check:"):
            dc.act("approvals", lambda: bank.approvals.approve(actor, rid),
                   lambda receipt: f"Request {rid} approved: posted as transaction "
                                   f"{receipt.transaction_id}.")
        with st.form(f"reject_{rid}"):
            reason = st.text_input("Reason for rejecting", key=f"reject_reason_{rid}")
            go = st.form_submit_button("Reject", key=f"reject_go_{rid}", icon=":material/close:")
        if go:
            dc.act("approvals", lambda: bank.approvals.reject(actor, rid, reason),
                   f"Request {rid} rejected; its hold is released.")


def render() -> None:
    from bankms.errors import BankError
    from pages.common import get_bank, money, show_error
    from pages import daily_common as dc

    actor = dc.signed_in(("manager",))
    bank = get_bank()
    st.title("Approvals")
    dc.settle_job("approvals")
    dc.show_stashed_error("approvals")
    dc.show_flash()
    try:
        queue = bank.approvals.list(actor, "pending")
        decided = bank.approvals.list(actor, limit=50)
        threshold = bank.approvals.threshold_cents()
    except BankError as exc:
        show_error(exc)
        return
    st.caption(f"Staff payments above {dc.md(money(threshold))} wait here for a second person.")
    if queue.empty:
        st.info("Nothing is waiting for approval.", icon=":material/done_all:")
    for _, row in queue.iterrows():
        _request(bank, actor, row)
    st.subheader("Recent decisions")
    decided = decided[decided["status"] != "pending"]
    dc.show_table(decided, {"request_id": "Request", "status": "Status", "amount": "Amount",
                            "kind": "Type", "maker": "By", "decided_by": "Decided by",
                            "transaction_id": "Transaction", "reason": "Reason"},
                  ("amount",), empty="No decisions yet.", key="approvals_decided")
