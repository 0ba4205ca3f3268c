"""Customer analytics for marketing and service: RFM segments, cross-sell lists, falling
activity, and service figures (refusals by reason, time to decide a loan)."""
import streamlit as st

PAGE = {"title": "Customer analytics", "icon": ":material/groups:", "roles": ("manager",),
        "order": 61, "url": "customer-analytics"}


# Session state key of the figure opened on this page (pages.reports_dashboard.drill_panel).
CUSTOMERS_DRILL = "customers_drill"
DRILL = dict(state_key=CUSTOMERS_DRILL)
# Session state key of the open tab (st.tabs key).
CUSTOMERS_TAB = "customers_tab"


def _rfm(bank, actor, f):
    from bankms.reporting import figures
    from pages.reports_dashboard import cached_query, drill_panel, selectable_chart
    from pages.tables import show_table

    members = cached_query(actor, "rfm", f)
    summary = bank.reports.rfm_summary(members)
    st.caption(f"Recency, frequency and money moved by each active customer's own transactions "
               f"in the period, {f.start:%d %b %Y} to {f.end:%d %b %Y} ({f.days} days); "
               f"scores 1-5 by quintile, 5 best. Click a bar to see who is behind it; "
               f"Segment members lists each segment's customers.")
    selectable_chart(figures.rfm_segments(summary), summary, "rfm_segments",
                     source="rfm_segments", csv_name="rfm-segments", **DRILL)
    drill_panel(bank, actor, f, source="rfm_segments", **DRILL)
    # Eight rows that the bars above already open: a static table, so that the first tab
    # loads no data grid (a grid's first use costs the browser a few tenths of a second;
    # benchmarks/bench_pages_browser.py, notes of 30 Nov 2026).
    show_table(summary, static=True)


def _members(bank, actor, f):
    from bankms.reporting.analytics import RFM_SEGMENTS
    from bankms.reporting.reports import with_money
    from pages.reports_dashboard import cached_query, csv_button, drill_panel, selectable_table

    members = cached_query(actor, "rfm", f)
    segment = st.selectbox("Members of segment", RFM_SEGMENTS, key="rfm_segment")
    chosen = members[members["segment"] == segment].drop(columns=["segment"])
    st.caption(f"{len(chosen):,} customers; click one to see the transactions counted.")
    selectable_table(chosen, with_money(chosen), table="rfm_members", key="rfm_members",
                     **DRILL)
    drill_panel(bank, actor, f, source="rfm_members", context=segment, **DRILL)
    csv_button(chosen, f"rfm-{segment.lower().replace(' ', '-')}", key="csv_rfm_members",
               label=f"{segment} ({len(chosen):,}) as CSV")


def _cross_sell(bank, actor, f):
    from bankms.reporting.analytics import HIGH_BALANCE_CENTS_MIN, REGULAR_INCOME_CENTS_MIN
    from bankms.domain.money import format_cents
    from bankms.reporting.reports import with_money
    from pages.reports_dashboard import cached_query, csv_button, drill_panel, selectable_table

    lists = cached_query(actor, "cross_sell", f)
    offers = ["Savings account for a regular income", "Savings account for a high balance"]
    st.caption(f"Regular income: at least {format_cents(REGULAR_INCOME_CENTS_MIN)} a month from "
               f"others in two of the three months before {f.as_of:%B %Y}. High balance: "
               f"{format_cents(HIGH_BALANCE_CENTS_MIN)} or more in checking. Both without an "
               f"open savings account.")
    offer = st.selectbox("Offer", offers, key="cross_sell_offer",
                         format_func=lambda o: f"{o} ({int((lists['offer'] == o).sum()):,})")
    rows = lists[lists["offer"] == offer]
    chosen = rows.drop(columns=["offer"]).dropna(axis=1, how="all")
    selectable_table(rows, with_money(chosen), table="cross_sell", key="cross_sell_table",
                     **DRILL)
    drill_panel(bank, actor, f, source="cross_sell", context=offer, **DRILL)
    csv_button(chosen, "cross-sell", key="csv_cross_sell")


def _falling(bank, actor, f):
    from bankms.reporting.analytics import FALLING_WINDOW_DAYS
    from bankms.reporting.reports import with_money
    from pages.reports_dashboard import cached_query, csv_button, drill_panel, selectable_table

    df = cached_query(actor, "falling_activity", f)
    st.caption(f"Customers whose own transactions in the {FALLING_WINDOW_DAYS} days up to "
               f"{f.as_of:%d %b %Y} fell to half or less of the {FALLING_WINDOW_DAYS} days "
               f"before. {len(df):,} customers; click one to see the transactions counted.")
    selectable_table(df, with_money(df), table="falling_activity", key="falling_table",
                     **DRILL)
    drill_panel(bank, actor, f, source="falling_activity", **DRILL)
    csv_button(df, "falling-activity", key="csv_falling")


def _service(bank, actor, f):
    from bankms.reporting import figures
    from pages.reports_dashboard import (
        cached_query,
        csv_button,
        drill_panel,
        open_drill,
        selectable_chart,
        selectable_table,
    )

    refusals = cached_query(actor, "refusals_by_reason", f)
    decisions = cached_query(actor, "loan_decision_times", f)
    left, right = st.columns(2)
    left.metric("Refused transactions", f"{int(refusals['refusals'].sum()):,}", border=True)
    median = decisions["hours_to_decide"].median() if len(decisions) else None
    right.metric("Median time to decide a loan",
                 "-" if median is None else f"{median:.1f} h", border=True,
                 help="From application to approval or refusal, for loans decided in the "
                      "period.")
    for column, key, figure in ((left, "open_refused_transactions", "all_refusals"),
                                (right, "open_decision_times", "loan_decisions")):
        column.button("Show the rows", key=key, type="tertiary", icon=":material/table_rows:",
                      on_click=open_drill, args=(CUSTOMERS_DRILL, "service_figures", figure, {}))
    drill_panel(bank, actor, f, source="service_figures", **DRILL)
    left, right = st.columns(2)
    with left:
        selectable_chart(figures.refusals(refusals), refusals, "refusals", source="refusals",
                         csv_name="refusals-by-reason", **DRILL)
        selectable_table(refusals, refusals, table="refusals", key="refusals_table",
                         source="refusals_table", **DRILL)
    with right:
        if not bank.reports.loans_available():
            st.caption("Loan figures appear once the loans module is installed.")
        selectable_chart(figures.decision_times(decisions), decisions, "decision_times",
                         source="decision_times", csv_name="loan-decision-times", **DRILL)
    # Below both columns, so that the rows have the page's width.
    drill_panel(bank, actor, f, source="refusals", **DRILL)
    drill_panel(bank, actor, f, source="refusals_table", **DRILL)
    drill_panel(bank, actor, f, source="decision_times", **DRILL)


def render() -> None:
    from bankms.domain.errors import BankError
    from pages.common import current_actor, get_bank, show_error
    from pages.reports_dashboard import ANSWERS_AS_OF, figures_as_of, period_filters

    actor = current_actor()
    if actor is None or actor.role != "manager":
        st.stop()
    bank = get_bank()
    st.title("Customer analytics")
    as_of = st.empty()
    st.session_state.pop(ANSWERS_AS_OF, None)
    f = period_filters(bank, key="customers", with_kind=False)
    if f is None:
        return
    # Only the open tab runs its queries and draws (on_change="rerun"): a page of four tabs'
    # charts and tables at once took about 4.5 s to draw in the browser.
    sections = {"RFM segments": _rfm, "Segment members": _members, "Cross-sell": _cross_sell,
                "Falling activity": _falling, "Service": _service}
    tabs = st.tabs(list(sections), key=CUSTOMERS_TAB, on_change="rerun")
    try:
        for tab, section in zip(tabs, sections.values()):
            if tab.open:
                with tab:
                    section(bank, actor, f)
    except BankError as exc:
        show_error(exc)
    figures_as_of(as_of, bank, "customers_refresh")
