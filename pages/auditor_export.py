"""Auditor export (managers): a signed zip of the books of a closed period, and the bank's
public key that checks it offline (`python -m bankms check-export`). Every rule is in
bankms.reporting.export."""
import streamlit as st

PAGE = {"title": "Auditor export", "icon": ":material/verified:", "roles": ("manager",),
        "order": 93, "url": "auditor-export"}


def render() -> None:
    from bankms.domain.errors import BankError
    from pages.common import current_actor, get_bank, show_error

    actor = current_actor()
    if actor is None or actor.role != "manager":
        st.stop()
    bank = get_bank()
    st.title(":material/verified: Auditor export")
    st.caption("The chart of accounts, the transactions and postings, opening and closing "
               "balances, loan events and audit rows of a period of closed business days, "
               "with a manifest of their SHA-256 hashes signed with the bank's Ed25519 key. "
               "An auditor checks it with `python -m bankms check-export FILE --public-key "
               "KEY`, without the bank.")
    last = bank.export.last_closed_day()
    first = last.replace(day=1)
    with st.form("export_form"):
        left, right = st.columns(2)
        start = left.date_input("First day", value=first, max_value=last, key="export_from")
        end = right.date_input("Last day", value=last, max_value=last, key="export_to")
        submitted = st.form_submit_button("Build the export", type="primary",
                                          icon=":material/folder_zip:")
    if submitted:
        bar = st.progress(0.0, text="Reading the ledger ...")
        try:
            bundle = bank.export.auditor_bundle(
                actor, from_date=start, to_date=end,
                progress=lambda fraction, message: bar.progress(fraction, text=message))
        except BankError as exc:
            bar.empty()
            show_error(exc)
        else:
            st.session_state["_auditor_export"] = (f"auditor-export-{start}-{end}.zip", bundle)
    if "_auditor_export" in st.session_state:
        name, bundle = st.session_state["_auditor_export"]
        st.download_button(f"Download {name}", data=bundle, file_name=name,
                           mime="application/zip", on_click="ignore", key="export_download",
                           icon=":material/download:")
    st.divider()
    st.header("The bank's public key")
    try:
        pem = bank.export.public_key_pem(actor)
    except BankError as exc:
        show_error(exc)
        return
    # Plain preformatted text: st.code would load the browser's 1.6 MB syntax highlighter
    # (a third of this page's time in Chromium) to show a PEM without any highlighting.
    st.text(pem.decode())
    st.download_button("Download the public key (bankms-public-key.pem)", data=pem,
                       file_name="bankms-public-key.pem", mime="application/x-pem-file",
                       on_click="ignore", key="export_public_key", icon=":material/key:")
