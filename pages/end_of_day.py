"""Managers close business days: interest, instalment collection, arrears and dormancy."""
import streamlit as st

PAGE = {"title": "End of day", "icon": ":material/event_available:", "roles": ("manager",),
        "order": 90, "url": "end-of-day"}

# What each closed day did, in words, most telling first (a phone shows the first few).
# Standing orders that failed are tried again; missed ones are not.
RUN_COLUMNS = {
    "business_date": "Day", "interest_posted_cents": "Interest paid",
    "interest_tax_cents": "Tax withheld", "overdraft_interest_cents": "Overdraft interest",
    "fees_charged": "Fees charged", "fee_cents": "Fees",
    "standing_orders_executed": "Standing orders paid",
    "standing_orders_failed": "Standing orders failed",
    "standing_orders_missed": "Standing orders missed",
    "term_deposits_matured": "Term deposits matured",
    "term_deposits_renewed": "Term deposits renewed",
    "term_deposit_interest_cents": "Term deposit interest",
    "loans_collected": "Instalments collected", "collected_cents": "Collected",
    "late_fees_charged": "Late fees", "loans_in_arrears": "Loans in arrears",
    "accounts_accrued": "Accounts earning interest",
    "accounts_made_dormant": "Accounts made dormant", "actor": "Closed by", "took": "Took"}


TAB = "eod_tab"
TABS = ("Close days", "Recent days", "Chain heads")


def render() -> None:
    from bankms.services.eod import auto as eod_auto
    from pages.common import current_actor, get_bank, lazy_tabs

    actor = current_actor()
    if actor is None or actor.role != "manager":
        st.stop()
    bank = get_bank()
    st.title("End of day")
    status_slot = st.container()  # filled last, so it shows the state after a run
    done = st.session_state.pop("eod_done", None)
    if done:
        st.success(done, icon=":material/check_circle:")
    # Only the open tab runs (pages.common.lazy_tabs); the two holding inputs stay drawn once
    # opened, so a date picked or heads pasted survive a look at another tab.
    lazy_tabs({TABS[0]: lambda: _close(bank, actor), TABS[1]: lambda: _recent(bank, actor),
               TABS[2]: lambda: _chain(bank, actor)}, key=TAB, keep=(TABS[0], TABS[2]))
    _show_status(status_slot, eod_auto.status(bank))


def _close(bank, actor) -> None:
    """What closing a day does, and the form that closes every ended day up to a date."""
    from bankms.services.eod import auto as eod_auto
    from bankms.domain.errors import BankError
    from pages.common import show_error
    from pages.text import day_text

    st.caption("Closing a day pays the standing orders due, collects due instalments and "
               "charges late fees, accrues deposit interest on each product's terms (and "
               "overdraft interest on negative balances), pays out or renews the term deposits "
               "that mature, posts interest with tax withheld and the products' fees at the "
               "end of each posting period, ages arrears and marks accounts dormant after "
               "their product's dormancy period without a transaction made by their holder "
               f"({bank.reports.dormancy_rule()}; interest and fees do not count). Missed "
               "days are closed in "
               "order; a day already closed is never closed again, and a day that has not "
               "ended in the bank's time zone cannot be closed.")
    status = eod_auto.status(bank)
    first, last = status["business_date"], status["last_closable_day"]
    if first > last:
        st.info(f"Nothing to close: business date {day_text(first)} ends at "
                f"{status['cutoff']:%H:%M} ({status['time_zone']}) on that day.",
                icon=":material/schedule:")
        return
    until = st.date_input("Close every day up to and including", value=last,
                          min_value=first, max_value=last, key="eod_until")
    count = (until - first).days + 1 if until else 0
    confirm = False
    if count > status["catch_up_days_max"]:
        confirm = st.checkbox(f"Yes, close {count} days at once ({day_text(first)} to "
                              f"{day_text(until)})",
                              key="eod_confirm")
    if st.button("Run end of day", type="primary", key="eod_run"):
        bar = st.progress(0.0, text="Starting")

        def progress(done, total):
            bar.progress(done / total if total else 1.0, text=f"Closed {done} of {total} days")
        try:
            result = bank.end_of_day(actor, until=until, progress=progress, confirm=confirm)
        except BankError as exc:
            bar.empty()
            show_error(exc)
        else:
            # Run the page again so that the form offers only what is still open; the
            # outcome is shown at the top. (str.capitalize would lower-case the rest.)
            text = str(result)
            st.session_state["eod_done"] = text[:1].upper() + text[1:]
            st.rerun()


def _recent(bank, actor) -> None:
    """What each of the last 30 closed days did."""
    from bankms.services.eod.run import recent_runs
    from pages import daily_common as dc

    runs = recent_runs(bank, actor, limit=30)
    dc.show_table(runs.assign(took=[f"{s:.1f} s" for s in runs["seconds"]]), RUN_COLUMNS,
                  money_columns=[c for c in RUN_COLUMNS if c.endswith("_cents")],
                  empty="No day has been closed yet.", key="eod_runs")


def _chain(bank, actor) -> None:
    """The hash chains' heads of the closed days, their check, and a kept copy's check."""
    import pandas as pd

    from bankms.domain.errors import BankError
    from pages.common import show_error
    from pages.tables import show_columns

    st.caption("At each close the ledger's and the audit log's hash chains end in a head: "
               "any change, removal or insertion of an earlier entry changes it. Keep the "
               "heads outside the bank (print or e-mail the file); checking a kept copy "
               "catches even a rewrite of the whole chain.")
    heads = bank.chain.heads(actor)
    if heads:
        show_columns(pd.DataFrame(heads[-20:][::-1]),
                     {"business_date": "Day", "chain": "Chain", "lane": "Lane",
                      "last_id": "Up to id",
                      "head_hash": "Head"}, key="eod_chain_heads")
        st.download_button("Download every head (CSV)", bank.chain.heads_csv(actor),
                           file_name=f"chain-heads-{heads[-1]['business_date']}.csv",
                           mime="text/csv", key="eod_chain_download",
                           icon=":material/download:")
    else:
        st.caption("No day has been closed since the chain began.")
    if st.button("Check the chains", key="eod_chain_check", icon=":material/link:"):
        _show_chain_problems(bank.chain.check(actor), "Both chains recompute to their stored "
                             "hashes and to every recorded head.")
    kept = st.text_area("Kept heads (paste the CSV you downloaded)", key="eod_chain_kept")
    if st.button("Check the kept heads", key="eod_chain_check_kept"):
        try:
            problems = bank.chain.check_heads(actor, kept)
        except BankError as exc:
            show_error(exc)
        else:
            _show_chain_problems(problems, "Every kept head matches the chain recomputed from "
                                 "the ledger and the audit log.")


def _show_chain_problems(problems, ok_text) -> None:
    from pages.text import md

    if not problems:
        st.success(ok_text, icon=":material/check_circle:")
        return
    st.error(f"{len(problems)} chain problem(s):\n\n" + "\n".join(
        f"- {md(p)}" for p in problems[:50]), icon=":material/error:")


def _show_status(slot, status) -> None:
    """Business date, the bank's calendar, and the automatic run: next, running, last."""
    from pages.text import day_text, moment_text

    with slot:
        left, middle, right = st.columns(3)
        left.metric("Business date", day_text(status["business_date"], weekday=True))
        middle.metric(f"Calendar date ({status['time_zone']})",
                      day_text(status["calendar_date"]))
        if not status["auto"]:
            right.metric("Automatic end of day", "off")
        elif status["running"]:
            done, total = status["progress"]
            right.metric("Automatic end of day", f"running: {done} of {total} days")
        elif status["days_behind"]:
            right.metric("Next automatic run", "due now")
        else:
            nxt = status["next_run"]
            right.metric("Next automatic run", moment_text(nxt))
        if status["auto"] and not status["scheduler_alive"]:
            st.caption("The automatic run starts with the app's server process; it is not "
                       "running in this process.")
        last = status["last_outcome"]
        if last is not None:
            text = (f"Last automatic run ({moment_text(last['ts'])} UTC): "
                    f"{last['after'].get('summary') or last['after'].get('message', '')}")
            if last["outcome"] == "ok":
                st.caption(text)
            else:
                st.warning(text, icon=":material/warning:")
