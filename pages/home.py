"""A signed-in user's start page: what they act on first today, by role (bankms/services/home.py).

Customers see their balances, next loan instalment, latest postings and anything waiting;
tellers their queue, a customer search and the business date; managers what waits for them,
key figures with their change, end of day and the last verify. Each item links to the page
that acts on it. Figures come from one call to `bank.home`; nothing here computes them.
"""
import streamlit as st

from pages.text import md

PAGE = {"title": "Home", "icon": ":material/home:", "roles": ("customer", "teller", "manager"),
        "order": 2, "url": "start"}

# The page that acts on each kind of item waiting on a customer's home (bankms.services.home topics).
CUSTOMER_TOPIC_PAGES = {"approval": "my-accounts", "loan": "my-loans",
                        "standing_order": "my-standing-orders",
                        "term_deposit": "my-term-deposits", "account": "my-accounts"}
# While a verify runs on its thread, its panel asks again this often.
VERIFY_POLL_S = 2
# How long the page waits for a verify it starts: a small bank's ends within it (no polling),
# a large one's does not hold the page up (bankms/services/home.py).
VERIFY_WAIT_S = 0.3


def render() -> None:
    from bankms.domain.errors import BankError
    from pages.common import current_actor, get_bank, show_error

    actor = current_actor()
    if actor is None:
        st.stop()
    bank = get_bank()
    st.title("Home")
    st.caption(md(actor.full_name or actor.username))
    try:
        if actor.role == "customer":
            _customer(bank, actor)
        elif actor.role == "teller":
            _teller(bank, actor)
        elif actor.role == "manager":
            _manager(bank, actor)
    except BankError as exc:
        show_error(exc)


# -- customer -----------------------------------------------------------------------------------
def _customer(bank, actor) -> None:
    from bankms.domain.labels import account_kind_label
    from pages.common import money, page_link
    from pages.tables import show_table

    home = bank.home.customer(actor)
    st.header("Your money")
    st.metric("Available now", money(home["total_available_cents"]), border=True,
              delta=f"balance {money(home['total_balance_cents'])}", delta_color="off",
              delta_arrow="off",
              help="What can leave your accounts now: balance, less money held for payments "
                   "waiting, plus any overdraft limit (term deposits wait for maturity).")
    for i, row in enumerate(home["accounts"].itertuples()):
        if i % 2 == 0:
            columns = st.columns(2)
        status = "" if row.status == "active" else f" · {row.status}"
        # A term deposit's money waits for maturity: its balance, not an amount to spend.
        locked = row.kind == "term_deposit"
        columns[i % 2].metric(f"{md(row.name or account_kind_label(row.kind))} {row.account_number}{status}",
                              money(row.balance_cents if locked else row.available_cents),
                              border=True, delta="until maturity" if locked else
                              f"balance {money(row.balance_cents)}", delta_color="off",
                              delta_arrow="off")
    if home["accounts"].empty:
        st.info("You have no open account yet.")
    links = st.columns(3)
    with links[0]:
        page_link("my-transfer", label="Make a transfer")
    with links[1]:
        page_link("my-accounts", label="Accounts")
    with links[2]:
        page_link("statements", label="Statements")
    _instalment(home["next_instalment"])
    st.header("Waiting")
    if not home["pending"]:
        st.caption("Nothing is waiting for you or for the bank.")
    for item in home["pending"]:
        with st.container(border=True):
            st.markdown(md(item["message"]))
            if item["topic"] in CUSTOMER_TOPIC_PAGES:
                page_link(CUSTOMER_TOPIC_PAGES[item["topic"]])
    st.header("Recent activity")
    activity = home["activity"]
    if activity.empty:
        st.caption("No transactions yet.")
    else:
        show_table(activity[["posted_at", "label", "memo", "amount"]], key="home_activity",
                   headers={"posted_at": "When", "label": "Type", "memo": "Details",
                            "amount": "Amount"})
    page_link("my-history", label="All your history")


def _instalment(nxt) -> None:
    from pages.common import money, page_link

    if nxt is None:
        return
    st.header("Next loan instalment")
    if nxt["overdue_cents"]:
        st.warning(f"{money(nxt['overdue_cents'])} of loan {nxt['loan_id']} is overdue. "
                   "Please pay it as soon as you can.", icon=":material/warning:")
    if nxt["due_date"] is not None:
        st.metric(f"Loan {nxt['loan_id']} · due {nxt['due_date']:%d %b %Y}",
                  money(nxt["amount_cents"]), border=True,
                  help=f"Collected from account {nxt['account_number']} at the end of the "
                       "due day when it holds enough.")
    page_link("my-loans", label="Your loans")


# -- teller -------------------------------------------------------------------------------------
def _teller(bank, actor) -> None:
    from pages.common import page_link
    from pages.tables import show_table

    home = bank.home.teller(actor)
    _search(bank, actor)
    st.header("Your queue")
    columns = st.columns(4)
    columns[0].metric("Business date", f"{home['business_date']:%a %d %b %Y}", border=True,
                      help=f"Today's calendar date is {home['calendar_date']:%d %b %Y}; "
                           "postings carry the business date until end of day closes it.")
    columns[1].metric("Sign-ups to verify", f"{home['signups_total']:,}", border=True)
    columns[2].metric("Your requests waiting", f"{home['requests_total']:,}", border=True,
                      help="Payments you made that wait for a manager's approval.")
    columns[3].metric("Standing orders failed", f"{home['failed_orders_total']:,}",
                      border=True, help="Failed or missed in the last 7 days.")
    if home["signups_total"]:
        st.markdown("**Sign-ups to verify**, oldest first")
        show_table(home["signups"], key="home_signups",
                   headers={"customer_id": "Customer", "full_name": "Name",
                            "created_at": "Registered"})
        page_link("customers", label="Verify them on Customers")
    if home["requests_total"]:
        st.markdown("**Your requests waiting for a manager**")
        show_table(home["requests"][["request_id", "created_at", "label", "amount"]],
                   key="home_requests", headers={"request_id": "Request",
                                                 "created_at": "Made", "label": "Type",
                                                 "amount": "Amount"})
    if home["failed_orders_total"]:
        st.markdown("**Standing orders that failed**")
        show_table(home["failed_orders"][["attempt_date", "order_id", "source_account",
                                          "amount", "reason"]], key="home_failed_orders",
                   headers={"attempt_date": "Tried", "order_id": "Order",
                            "source_account": "From account", "amount": "Amount",
                            "reason": "Why"})
        page_link("standing-orders")
    if not (home["signups_total"] or home["requests_total"] or home["failed_orders_total"]):
        st.caption("Nothing is waiting.")


def _search(bank, actor) -> None:
    """Find a customer and open their overview on the Customers page: the search runs here,
    and its matches go to that page through the session state its Find tab reads."""
    from bankms.domain.errors import BankError
    from pages import teller_customers
    from pages.common import show_error, switch_to

    with st.form("home_search"):
        query = st.text_input("Find a customer", key="home_query",
                              placeholder="Name, phone, email, customer id or account number")
        submitted = st.form_submit_button("Search", type="primary", key="home_search_go",
                                          icon=":material/search:")
    if not submitted:
        return
    try:
        results = bank.customers.search(actor, query)
    except BankError as exc:
        show_error(exc)
        return
    if results.empty:
        st.info("No customer matches that search.")
        return
    st.session_state["customers_query"] = query
    st.session_state["customers_results"] = results
    st.session_state["customers_searches"] = st.session_state.get("customers_searches", 0) + 1
    st.session_state.pop(teller_customers.SELECTED, None)
    switch_to("customers")


# -- manager ------------------------------------------------------------------------------------
def _manager(bank, actor) -> None:
    from pages.common import page_link
    from pages.tables import show_table

    home = bank.home.manager(actor)
    st.header("Waiting for you")
    columns = st.columns(4)
    waiting = (("Approvals", home["approvals_total"], "approvals"),
               ("Structuring alerts", home["alerts_total"], "approvals"),
               ("Loan applications", home["applications_total"], "loan-review"),
               ("Sign-ups to verify", home["signups_total"], "customers"))
    for column, (label, count, url) in zip(columns, waiting):
        with column:
            st.metric(label, f"{count:,}", border=True)
            page_link(url, label="Open" if count else "View", icon=":material/arrow_forward:")
    if home["approvals_total"]:
        st.markdown("**Approvals waiting**, oldest first")
        approvals = home["approvals"]
        show_table(approvals[["request_id", "created_at", "label", "amount", "maker"]],
                   key="home_approvals", headers={"request_id": "Request",
                                                  "created_at": "Made", "label": "Type",
                                                  "amount": "Amount", "maker": "By"})
        if approvals["own"].any():
            st.caption("Requests you made wait for another manager.")
    if home["alerts_total"]:
        st.markdown("**Structuring alerts**, last 30 days")
        show_table(home["alerts"], key="home_alerts",
                   headers={"customer_id": "Customer", "holder": "Holder",
                            "payments": "Payments", "total": "Total", "last_at": "Last"})
    _key_figures(bank, home)
    _eod(home["eod"])
    _verify_panel(bank, actor)


def _key_figures(bank, home) -> None:
    from bankms.services.businessday import to_bank_time
    from pages.common import figure_change, figure_shown, page_link

    st.header("Key figures")
    days = (home["period_end"] - home["period_start"]).days + 1
    bad_when_up = {"Non-performing loans"}
    rows = list(home["key_figures"].itertuples())
    for i, row in enumerate(rows):
        if i % 3 == 0:
            columns = st.columns(3)
        same = row.value == row.previous
        columns[i % 3].metric(
            row.figure, figure_shown(row.unit, row.value),
            delta=figure_change(row.unit, row.value, row.previous),
            delta_color="off" if same else "inverse" if row.figure in bad_when_up else "normal",
            delta_arrow="off" if same else "auto", delta_description=f"vs. previous {days} days",
            border=True)
    st.caption(f"{home['period_start']:%d %b} to {home['period_end']:%d %b %Y} against the "
               f"{days} days before.")
    # Kept up to dashboard_max_age_s like the dashboard's (issue 13): the page says how old.
    if home["key_figures_as_of"] is not None:
        st.caption(f"Figures as of {to_bank_time(bank, home['key_figures_as_of']):%H:%M:%S}; "
                   "the Dashboard can refresh them.")
    page_link("dashboard", label="Dashboard")


def _eod(eod) -> None:
    from pages.common import page_link

    st.header("End of day")
    left, right = st.columns(2)
    last = eod["last_run_date"]
    left.metric("Business date", f"{eod['business_date']:%a %d %b %Y}", border=True,
                help=f"Calendar date: {eod['calendar_date']:%d %b %Y}.")
    right.metric("Last day closed", "none yet" if last is None else f"{last:%a %d %b %Y}",
                 border=True)
    if eod["calendar_date"] != eod["business_date"]:
        st.caption(f"Today is {eod['calendar_date']:%a %d %b %Y}.")
    for sentence in eod["due"]:
        st.warning(md(sentence), icon=":material/event_busy:")
    for sentence in eod["at_close"]:
        st.markdown(f"- At the close: {md(sentence)}")
    if eod["next_run"] is not None and not eod["due"]:
        st.caption(f"Automatic end of day closes the day at {eod['next_run']:%H:%M %Z}.")
    page_link("end-of-day")


def _verify_panel(bank, actor) -> None:
    """The last verify, asked again every VERIFY_POLL_S seconds while one runs; the whole page
    reruns once it ends so the polling stops."""
    state = bank.home.verify(actor, wait_s=VERIFY_WAIT_S)
    st.fragment(_verify_body, run_every=VERIFY_POLL_S if state["running"] else None)(
        bank, actor, state["running"])


def _verify_body(bank, actor, was_running) -> None:
    from pages.common import page_link

    st.header("Ledger check")
    state = bank.home.verify(actor)
    if was_running and not state["running"]:
        st.rerun(scope="app")
    if state["problems"] is None:
        st.info("The ledger is being checked now; the result appears here in a moment.",
                icon=":material/hourglass_top:")
    else:
        when = _ago(state["age_s"])
        if state["problems"]:
            st.error(f"{len(state['problems']):,} problem(s) found by verify {when}.",
                     icon=":material/error:")
            st.text("\n".join(state["problems"][:5]))
        else:
            st.success(f"Every ledger invariant held when checked {when} (it took "
                       f"{state['seconds']:.1f} s).", icon=":material/check_circle:")
        if state["running"]:
            st.caption("Checking again now…")
    if state.get("error"):
        st.warning(md(f"The last check could not finish: {state['error']}"))
    left, right = st.columns(2)
    if left.button("Check now", key="home_verify", icon=":material/fact_check:",
                   disabled=state["running"]):
        bank.home.verify(actor, refresh=True)
        st.rerun(scope="app")
    with right:
        page_link("bank-operations", label="Operations")


def _ago(seconds) -> str:
    """'just now', '4 minutes ago', '2 hours ago'."""
    seconds = int(seconds)
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{seconds // 60} minute{'s' if seconds >= 120 else ''} ago"
    return f"{seconds // 3600} hour{'s' if seconds >= 7200 else ''} ago"
