"""Managers close business days: interest, instalment collection, arrears and dormancy."""
import streamlit as st

PAGE = {"title": "End of day", "icon": ":material/event_available:", "roles": ("manager",),
        "order": 90, "url": "end-of-day"}


def render() -> None:
    import datetime as dt

    from bankms.eod import recent_runs
    from bankms.errors import BankError
    from pages.common import current_actor, get_bank, money, show_error

    actor = current_actor()
    if actor is None or actor.role != "manager":
        st.stop()
    bank = get_bank()
    st.title("End of day")
    today = dt.datetime.now(dt.timezone.utc).date()
    date_slot = st.empty()  # filled last, so it shows the date after a run
    st.caption("Closing a day collects due instalments, charges late fees, ages arrears, "
               "accrues savings interest (posted on the last day of each month) and marks "
               "accounts dormant after 12 months without activity. Missed days are closed in "
               "order; a day already closed is never closed again.")
    until = st.date_input("Close every day up to and including", value=today, key="eod_until")
    if st.button("Run end of day", type="primary", key="eod_run"):
        bar = st.progress(0.0, text="Starting")

        def progress(done, total):
            bar.progress(done / total if total else 1.0, text=f"Closed {done} of {total} days")
        try:
            result = bank.end_of_day(actor, until=until, progress=progress)
        except BankError as exc:
            show_error(exc)
        else:
            st.success(str(result).capitalize(), icon=":material/check_circle:")
    date_slot.metric("Business date", str(bank.business_date))
    runs = recent_runs(bank, actor, limit=30)
    if not runs.empty:
        st.subheader("Recent days")
        table = runs[["business_date", "actor", "seconds", "accounts_accrued",
                      "loans_collected", "late_fees_charged", "loans_in_arrears",
                      "accounts_made_dormant"]].copy()
        table.insert(4, "interest_posted", [money(int(c)) for c in runs["interest_posted_cents"]])
        table.insert(6, "collected", [money(int(c)) for c in runs["collected_cents"]])
        st.dataframe(table, hide_index=True, width="stretch", key="eod_runs")
