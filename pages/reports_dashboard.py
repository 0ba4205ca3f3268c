"""Managers' dashboard: key figures with their change, charts of the ledger, and filters."""
import re
from functools import partial

import streamlit as st

PAGE = {"title": "Dashboard", "icon": ":material/monitoring:", "roles": ("manager",),
        "order": 60, "url": "dashboard"}

# Session state key of the figure opened on the dashboard: {source, figure, selection}.
DASHBOARD_DRILL = "dashboard_drill"
# Session state key of when each answer drawn in this run was computed (figures_as_of).
ANSWERS_AS_OF = "analytics_answers_as_of"


def cached_query(actor, name, filters):
    """One dashboard or customer-analytics query. bank.reports keeps its answers up to the
    setting dashboard_max_age_s (the one place they are kept), so that moving between pages
    and widgets does not rerun the SQL; figures_as_of says how old what was drawn is."""
    from pages.common import get_bank
    answer = get_bank().reports.query(actor, name, filters)
    st.session_state.setdefault(ANSWERS_AS_OF, []).append(answer)
    return answer


def figures_as_of(placeholder, bank, refresh_key):
    """Fill `placeholder` (made at the top of the page, before the answers were read) with
    when the oldest answer drawn in this run was computed, in the bank's time, and a
    "Refresh now" button that forgets the kept answers (bank.reports.forget_answers)."""
    from bankms.services.businessday import to_bank_time
    from pages.common import current_actor

    oldest = bank.reports.as_of(*st.session_state.pop(ANSWERS_AS_OF, []))
    with placeholder.container():
        text, button = st.columns([4, 1], vertical_alignment="center")
        if oldest is not None:
            text.caption(f"Figures as of {to_bank_time(bank, oldest):%H:%M:%S}")
        button.button("Refresh now", icon=":material/refresh:", key=refresh_key,
                      on_click=refresh_answers, args=(current_actor(),))


def period_filters(bank, *, key, with_kind=True, with_as_of=True):
    """The period, account kind and as-of widgets; returns a bankms Filters (or None)."""
    from bankms.reporting.analytics import ACCOUNT_KINDS
    from bankms.domain.labels import account_kind_label
    from bankms.domain.errors import BankError
    from pages.common import show_error

    today = bank.reports.today()
    default = bank.reports.filters()
    columns = st.columns(3 if with_kind else 2)
    period = columns[0].date_input("Period", value=(default.start, default.end),
                                   max_value=today, key=f"{key}_period", format="YYYY-MM-DD")
    kind = "all"
    if with_kind:
        kind = columns[1].selectbox("Account kind", ACCOUNT_KINDS, key=f"{key}_kind",
                                    format_func=account_kind_label)
    as_of = None
    if with_as_of:
        as_of = columns[-1].date_input(
            "Balances as of", value=None, max_value=today, key=f"{key}_as_of",
            format="YYYY-MM-DD", help="Leave empty for the last day of the period.")
    if not isinstance(period, (tuple, list)) or len(period) != 2:
        st.info("Pick the first and the last day of the period.")
        return None
    try:
        return bank.reports.filters(start=period[0], end=period[1], kind=kind, as_of=as_of)
    except BankError as exc:
        show_error(exc)
        return None


def csv_button(df, name, *, key, label="Download CSV"):
    """A CSV download of a table, with amounts in currency units and no cell that a
    spreadsheet would read as a formula (bankms.domain.text.csv_text)."""
    from bankms.reporting.reports import with_money
    from bankms.domain.text import csv_text

    st.download_button(label, data=csv_text(with_money(df)), file_name=f"{name}.csv",
                       mime="text/csv", key=key, on_click="ignore",
                       icon=":material/download:")


# How many drilled rows are drawn on screen; the CSV always has them all.
DRILL_ROWS_SHOWN = 1000


def cached_drill(actor, figure, filters, selection):
    """The rows behind one figure (bankms.reporting.drill); `selection` as sorted (name, value) pairs.
    Kept in bank.reports as long as the figures."""
    from pages.common import get_bank
    return get_bank().reports.drill(actor, figure, filters, **dict(selection))


def refresh_answers(actor):
    """Forget the kept figures and the rows behind them together, so that the rows of an
    open figure are never older than the figure."""
    from pages.common import get_bank
    get_bank().reports.forget_answers(actor)


def open_drill(state_key, source, figure, selection):
    """Remember which figure to open, and where on the page (`source`) to show it."""
    st.session_state[state_key] = {"source": source, "figure": figure,
                                   "selection": dict(selection)}


def _close_drill(state_key):
    st.session_state.pop(state_key, None)


def _on_select(state_key, source, widget_key, field, to_drill):
    """A chart's or table's selection changed: open the first picked point or row (`field`
    of the event: "points" or "rows"; `to_drill` maps it to (figure, selection)), or close
    what this source had open when the selection was cleared."""
    from bankms.domain.errors import BankError

    event = st.session_state.get(widget_key) or {}
    picked = (event.get("selection") or {}).get(field) or []
    if not picked:
        if (st.session_state.get(state_key) or {}).get("source") == source:
            _close_drill(state_key)
        return
    try:
        figure, selection = to_drill(picked[0])
    except BankError as exc:
        st.session_state[state_key] = {"source": source, "error": str(exc)}
        return
    open_drill(state_key, source, figure, selection)


def picked_points(widget_key) -> list[tuple[int, int]]:
    """The (series index, data index) pairs an ECharts chart's selection holds, the one
    picked last first: each series keeps its own pick (selectedMode "single"), so after a
    click on another series both are selected, and the new one is the one not held before."""
    event = st.session_state.get(widget_key) or {}
    held = [(group.get("series_index") or 0, index)
            for group in (event.get("selection") or {}).get("selected") or []
            for index in group.get("data_indices") or []]
    before = st.session_state.get(f"{widget_key}_held") or []
    st.session_state[f"{widget_key}_held"] = held
    return [p for p in held if p not in before] + [p for p in held if p in before]


def selectable_chart(spec, df, name, *, source, state_key, csv_name=None):
    """A chart (a bankms.reporting.figures option) whose bars and points open the rows behind them,
    shown below it."""
    widget_key = f"chart_{name}"
    from bankms.reporting import figures
    from bankms.reporting.drill import chart_selection

    def on_select():
        st.session_state[f"{widget_key}_points"] = {"selection": {"points": picked_points(
            widget_key)}}
        _on_select(state_key, source, f"{widget_key}_points", "points", to_drill)

    def to_drill(picked):
        point, series_id = figures.point(spec, *picked)
        return chart_selection(name, point, series_id)

    selectable = any(s.get("selectedMode") for s in spec.get("series", []))
    st.echarts_chart(spec, width="stretch", key=widget_key, renderer=figures.RENDERER,
                     on_select=on_select if selectable else "ignore")
    csv_button(df, csv_name or name, key=f"csv_{name}")


def selectable_table(df, shown, *, table, state_key, key, source=None):
    """A table (drill.TABLE_DRILLS) whose rows open the rows behind them, one at a time;
    `shown` is what is drawn of `df`, row for row."""
    from bankms.reporting.drill import row_selection
    from pages.tables import show_table

    rows = df.reset_index(drop=True)
    show_table(shown, key=key, selection_mode="single-row",
               on_select=partial(_on_select, state_key, source or table, key, "rows",
                                 lambda i: row_selection(table, rows.iloc[i].to_dict())))


def drill_panel(bank, actor, f, *, state_key, source, context=None):
    """The rows behind the figure opened from `source` (if any): what they are, how many,
    their total (equal to the figure), the first DRILL_ROWS_SHOWN of them and a CSV of all.
    `context` is whatever else the picked bar or row depends on (the segment or offer a table
    shows); when it or the filters change, the panel closes."""
    from bankms.reporting import drill
    from bankms.domain.errors import BankError
    from bankms.domain.text import markdown_escape
    from pages.common import money, show_error
    from pages.tables import show_table

    state = st.session_state.get(state_key)
    if not state or state.get("source") != source:
        return
    # What was picked belongs to the chart or table as it was drawn: after a change of filters
    # the bar or row may be gone or mean something else, and its rows would no longer add up
    # to anything on the page.
    shown_for = (f, context)
    if state.setdefault("shown_for", shown_for) != shown_for:
        _close_drill(state_key)
        return
    with st.container(border=True, key=f"drill_{source}"):
        if "error" in state:
            st.warning(state["error"])
            return
        figure, selection = state["figure"], state["selection"]
        try:
            rows = cached_drill(actor, figure, f, tuple(sorted(selection.items())))
        except BankError as exc:
            show_error(exc)
            return
        spec = drill.DRILLS[figure]
        # Selections can carry stored text (a refusal's reason): shown as typed.
        picked = ", ".join(f"{k.replace('_', ' ')} {markdown_escape(v)}"
                           for k, v in selection.items())
        title, close = st.columns([5, 1], vertical_alignment="center")
        title.markdown(f"**{spec.title}**" + (f" · {picked}" if picked else ""))
        close.button("Close", key=f"close_{source}", on_click=_close_drill, args=(state_key,),
                     icon=":material/close:", type="tertiary")
        total = bank.reports.drill_total(figure, rows)
        if spec.value is None:
            st.caption(f"{total:,} rows: {spec.total_is}.")
        else:
            st.caption(f"{len(rows):,} rows adding up to {money(total)}: {spec.total_is}.")
        if len(rows) > DRILL_ROWS_SHOWN:
            st.caption(f"The first {DRILL_ROWS_SHOWN:,} are shown; the CSV has them all.")
        show_table(rows.head(DRILL_ROWS_SHOWN), key=f"drill_rows_{source}")
        csv_button(rows, f"{figure}-rows", key=f"csv_drill_{source}",
                   label="These rows as CSV")


def key_figures(df, f, state_key):
    from bankms.reporting.drill import KEY_FIGURE_DRILLS
    from pages.common import figure_change, figure_shown

    # A rise in loans at risk is bad news, so those deltas are coloured the other way round.
    bad_when_up = {"Portfolio at risk > 30 days", "Non-performing loans"}
    per_row = 3  # four to a row cut amounts in the millions short on a laptop screen
    for i, row in enumerate(df.itertuples()):
        if i % per_row == 0:
            # One st.columns call per row, so that phones stack the figures in reading order.
            columns = st.columns(per_row)
        same = row.value == row.previous
        columns[i % per_row].metric(
            row.figure, figure_shown(row.unit, row.value),
            delta=figure_change(row.unit, row.value, row.previous),
            delta_color="off" if same else "inverse" if row.figure in bad_when_up else "normal",
            delta_arrow="off" if same else "auto",
            delta_description=f"vs. previous {f.days} days",
            help=f"Change against the {f.days} days before {f.start:%Y-%m-%d}; balances as of "
                 f"{f.as_of:%Y-%m-%d} against {f.previous.as_of:%Y-%m-%d}.",
            border=True)
        figure = KEY_FIGURE_DRILLS.get(row.figure)
        if figure is not None:
            columns[i % per_row].button(
                "Show the rows", key="open_" + re.sub(r"\W+", "_", row.figure.lower()),
                type="tertiary",
                icon=":material/table_rows:", on_click=open_drill,
                args=(state_key, "key_figures", figure, {}),
                help=f"Open what {row.figure.lower()} is made of, with a CSV.")


# Session state key of the dashboard's open tab (st.tabs key).
DASHBOARD_TAB = "dashboard_tab"
TABLES_TAB = "Top customers and dormant accounts"


def _dashboard_tabs() -> dict:
    """Tab label -> its two charts as (figure function, query, chart name, CSV name)."""
    from bankms.reporting import figures

    return {
        "Money moved": [
            (figures.daily_amount, "daily_volume", "daily_amount", "daily-volume"),
            (figures.daily_count, "daily_volume", "daily_count", "daily-volume")],
        "Balances": [
            (figures.deposits_by_product, "deposits_by_product", "deposits_by_product",
             "balances-by-product"),
            (figures.balance_distribution, "balance_distribution", "balance_distribution",
             "balance-distribution")],
        "Loans and customers": [
            (figures.loan_portfolio, "loan_portfolio", "loan_portfolio", "loan-portfolio"),
            (figures.customer_growth, "customer_growth", "customer_growth",
             "customer-growth")],
        TABLES_TAB: [
            (figures.top_customers, "top_customers", "top_customers", "top-customers"),
            (figures.dormant_accounts, "dormant_accounts", "dormant_accounts",
             "dormant-accounts")],
    }


def render() -> None:
    from bankms.domain.errors import BankError
    from bankms.domain.labels import account_kind_label
    from bankms.reporting.reports import key_figures_table
    from pages.common import current_actor, get_bank, show_error

    actor = current_actor()
    if actor is None or actor.role != "manager":
        st.stop()
    bank = get_bank()
    st.title("Dashboard")
    as_of = st.empty()
    st.session_state.pop(ANSWERS_AS_OF, None)
    f = period_filters(bank, key="dashboard")
    if f is None:
        return
    try:
        key_data = cached_query(actor, "key_figures", f)
    except BankError as exc:
        show_error(exc)
        return
    kinds = account_kind_label(f.kind).lower()
    st.caption(f"{f.start:%d %b %Y} to {f.end:%d %b %Y} · {kinds} accounts · balances as of "
               f"{f.as_of:%d %b %Y}")
    drill = dict(state_key=DASHBOARD_DRILL)
    key_figures(key_data, f, DASHBOARD_DRILL)
    csv_button(key_figures_table(key_data), "key-figures", key="csv_key_figures",
               label="Key figures as CSV")
    drill_panel(bank, actor, f, source="key_figures", **drill)
    st.caption("Click a bar or a point of a chart, or a row of a table, to see the postings, "
               "accounts or loans behind it.")
    # Only the open tab runs its queries and draws its charts (on_change="rerun"): drawing
    # all eight charts at once took 3.6 s on a quiet machine, most of it in the browser.
    spec = _dashboard_tabs()
    tabs = st.tabs(list(spec), key=DASHBOARD_TAB, on_change="rerun")
    for tab, (label, pair) in zip(tabs, spec.items()):
        if not tab.open:
            continue
        with tab:
            try:
                # Each query once, though both volume charts draw daily_volume.
                data = {query: cached_query(actor, query, f)
                        for query in dict.fromkeys(query for _, query, _, _ in pair)}
            except BankError as exc:
                show_error(exc)
                continue
            _charts(bank, actor, f, pair, data, drill)
            if label == TABLES_TAB:
                _tables(bank, actor, f, data, drill)
    figures_as_of(as_of, bank, "dashboard_refresh")


def _charts(bank, actor, f, pair, data, drill):
    """Two charts side by side (stacked on a phone); the rows behind a picked bar show
    below both."""
    for column, (make, query, name, csv_name) in zip(st.columns(2), pair):
        with column:
            if name == "loan_portfolio" and not bank.reports.loans_available():
                st.caption("Loan figures appear once the loans module is installed.")
            selectable_chart(make(data[query]), data[query], name, source=name,
                             csv_name=csv_name, **drill)
    for _, _, name, _ in pair:
        drill_panel(bank, actor, f, source=name, **drill)


def _tables(bank, actor, f, data, drill):
    """The top customers and the dormant accounts as tables, with a CSV of all dormant ones."""
    from bankms.reporting import analytics
    from bankms.reporting.reports import with_money

    st.header("Top customers")
    top = data["top_customers"]
    selectable_table(top, with_money(top), table="top_customers",
                     source="top_customers_table", key="top_table", **drill)
    drill_panel(bank, actor, f, source="top_customers_table", **drill)
    dormant = data["dormant_accounts"]
    st.header(f"Dormant accounts ({len(dormant):,})")
    st.caption(f"Open accounts with no transaction made by their holder in their product's "
               f"dormancy period ({bank.reports.dormancy_rule(f.as_of)}) up to "
               f"{f.as_of:%d %b %Y}, as end of day marks them dormant; interest and fees do "
               f"not count. Biggest balances first.")
    shown = dormant.head(analytics.DORMANT_LIST_ROWS_MAX)
    selectable_table(shown, with_money(shown), table="dormant_accounts",
                     source="dormant_accounts_table", key="dormant_table", **drill)
    drill_panel(bank, actor, f, source="dormant_accounts_table", **drill)
    csv_button(dormant, "dormant-accounts", key="csv_dormant_table",
               label="All dormant accounts as CSV")
