"""Reversals (managers): find a posted transaction and undo it with a reason. The reversal is
a new transaction with opposite postings; the original stays in the ledger."""
import streamlit as st

PAGE = {"title": "Reversals", "icon": ":material/undo:", "roles": ("manager",),
        "order": 45, "url": "reversals"}


def render() -> None:
    from bankms.domain.errors import BankError
    from bankms.reporting.receipts import receipt_lines
    from pages.common import get_bank, show_error
    from pages import daily_common as dc

    actor = dc.signed_in(("manager",))
    bank = get_bank()
    st.title("Reversals")
    dc.settle_job("reversals")
    dc.show_stashed_error("reversals")
    dc.show_flash()
    with st.form("reversal_find"):
        typed = st.text_input("Transaction id", key="reversal_tid")
        go = st.form_submit_button("Find transaction", key="reversal_find_go",
                                   icon=":material/search:")
    if go:
        st.session_state["reversal_selected"] = typed.strip()
    tid = st.session_state.get("reversal_selected")
    if not tid:
        return
    try:
        details = bank.payments.receipt_details(actor, tid)
    except BankError as exc:
        show_error(exc)
        return
    tid = details["transaction_id"]
    dc.show_pairs(receipt_lines(details))
    if details["kind"] == "reversal":
        st.info(f"Transaction {tid} is itself a reversal (of {details['reverses_id']}); post a "
                "new transaction instead.")
        return
    if details["reversed_by"] is not None:
        st.info(f"Transaction {tid} was reversed by transaction {details['reversed_by']}.")
        return
    with st.form(f"reversal_{tid}"):
        reason = st.text_input("Reason for the reversal", key=f"reversal_reason_{tid}")
        confirm = st.form_submit_button(f"Reverse transaction {tid}", type="primary",
                                        key=f"reversal_go_{tid}", icon=":material/undo:")
    if confirm:
        # The default key is derived from the transaction, so a repeat cannot reverse twice.
        dc.act("reversals", lambda: bank.payments.reverse(actor, tid, reason),
               dc.unless_waiting(lambda receipt: f"Transaction {tid} is reversed by "
                                                 f"transaction {receipt.transaction_id}."))
