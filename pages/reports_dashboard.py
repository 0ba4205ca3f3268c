"""Managers' dashboard: key figures with their change, charts of the ledger, and filters."""
import streamlit as st

PAGE = {"title": "Dashboard", "icon": ":material/monitoring:", "roles": ("manager",),
        "order": 60, "url": "dashboard"}

# Dashboard answers are kept this long per (bank, manager, query, filters), so that moving
# between pages and widgets does not rerun the SQL, yet new postings show within a minute.
CACHE_TTL_S = 60


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False, max_entries=500)
def cached_query(db_path, actor, name, filters):
    """One dashboard query; db_path is part of the key so two banks never share answers."""
    from pages.common import get_bank
    return get_bank().reports.query(actor, name, filters)


def period_filters(bank, *, key, with_kind=True, with_as_of=True):
    """The period, account kind and as-of widgets; returns a bankms Filters (or None)."""
    from bankms.analytics import ACCOUNT_KINDS
    from bankms.errors import BankError
    from pages.common import show_error

    today = bank.reports.today()
    default = bank.reports.filters()
    columns = st.columns(3 if with_kind else 2)
    period = columns[0].date_input("Period", value=(default.start, default.end),
                                   max_value=today, key=f"{key}_period", format="YYYY-MM-DD")
    kind = "all"
    if with_kind:
        kind = columns[1].selectbox("Account kind", ACCOUNT_KINDS, key=f"{key}_kind")
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
    spreadsheet would read as a formula (bankms.text.csv_text)."""
    from bankms.reports import with_money
    from bankms.text import csv_text

    st.download_button(label, data=csv_text(with_money(df)), file_name=f"{name}.csv",
                       mime="text/csv", key=key, on_click="ignore",
                       icon=":material/download:")


def _delta(unit, value, previous):
    from pages.common import money

    if unit == "money":
        change = int(value) - int(previous)
        return ("+" if change > 0 else "") + money(change)
    if unit == "percent":
        change = value - previous
        return f"{'+' if change > 0 else ''}{change} pp"
    change = int(value) - int(previous)
    return f"{'+' if change > 0 else ''}{change:,}"


def _shown(unit, value):
    from pages.common import money

    if unit == "money":
        return money(int(value))
    if unit == "percent":
        return f"{value} %"
    return f"{int(value):,}"


def key_figures(df, f):
    # A rise in loans at risk is bad news, so those deltas are coloured the other way round.
    bad_when_up = {"Portfolio at risk > 30 days", "Non-performing loans"}
    per_row = 3  # four to a row cut amounts in the millions short on a laptop screen
    for i, row in enumerate(df.itertuples()):
        if i % per_row == 0:
            # One st.columns call per row, so that phones stack the figures in reading order.
            columns = st.columns(per_row)
        same = row.value == row.previous
        columns[i % per_row].metric(
            row.figure, _shown(row.unit, row.value),
            delta=_delta(row.unit, row.value, row.previous),
            delta_color="off" if same else "inverse" if row.figure in bad_when_up else "normal",
            delta_arrow="off" if same else "auto",
            delta_description=f"vs. previous {f.days} days",
            help=f"Change against the {f.days} days before {f.start:%Y-%m-%d}; balances as of "
                 f"{f.as_of:%Y-%m-%d} against {f.previous.as_of:%Y-%m-%d}.",
            border=True)


def chart(fig, df, name, key):
    st.plotly_chart(fig, width="stretch", key=f"chart_{key}")
    csv_button(df, name, key=f"csv_{key}")


def render() -> None:
    from bankms import analytics, figures
    from bankms.errors import BankError
    from bankms.reports import key_figures_table, with_money
    from pages.common import current_actor, db_path, get_bank, show_error

    actor = current_actor()
    if actor is None or actor.role != "manager":
        st.stop()
    bank = get_bank()
    title, refresh = st.columns([4, 1], vertical_alignment="bottom")
    title.title("Dashboard")
    if refresh.button("Refresh", icon=":material/refresh:", key="dashboard_refresh"):
        cached_query.clear()
    f = period_filters(bank, key="dashboard")
    if f is None:
        return
    try:
        data = {name: cached_query(db_path(), actor, name, f) for name in analytics.DASHBOARD}
    except BankError as exc:
        show_error(exc)
        return
    st.caption(f"{f.start:%d %b %Y} to {f.end:%d %b %Y} · {f.kind} accounts · balances as of "
               f"{f.as_of:%d %b %Y}")
    key_figures(data["key_figures"], f)
    csv_button(key_figures_table(data["key_figures"]), "key-figures", key="csv_key_figures",
               label="Key figures as CSV")

    left, right = st.columns(2)
    with left:
        chart(figures.daily_amount(data["daily_volume"]), data["daily_volume"],
              "daily-volume", "daily_amount")
    with right:
        chart(figures.daily_count(data["daily_volume"]), data["daily_volume"],
              "daily-volume", "daily_count")
    left, right = st.columns(2)
    with left:
        chart(figures.deposits_by_product(data["deposits_by_product"]),
              data["deposits_by_product"], "balances-by-product", "deposits_by_product")
    with right:
        chart(figures.balance_distribution(data["balance_distribution"]),
              data["balance_distribution"], "balance-distribution", "balance_distribution")
    left, right = st.columns(2)
    with left:
        if not bank.reports.loans_available():
            st.caption("Loan figures appear once the loans module is installed.")
        chart(figures.loan_portfolio(data["loan_portfolio"]), data["loan_portfolio"],
              "loan-portfolio", "loan_portfolio")
    with right:
        chart(figures.customer_growth(data["customer_growth"]), data["customer_growth"],
              "customer-growth", "customer_growth")
    left, right = st.columns(2)
    with left:
        chart(figures.top_customers(data["top_customers"]), data["top_customers"],
              "top-customers", "top_customers")
    with right:
        chart(figures.dormant_accounts(data["dormant_accounts"]), data["dormant_accounts"],
              "dormant-accounts", "dormant_accounts")

    st.subheader("Top customers")
    st.dataframe(with_money(data["top_customers"]), hide_index=True, width="stretch")
    dormant = data["dormant_accounts"]
    st.subheader(f"Dormant accounts ({len(dormant):,})")
    st.caption(f"Open accounts with no transaction made by their holder in the "
               f"{analytics.DORMANT_AFTER_DAYS} days up to {f.as_of:%d %b %Y}; interest and "
               f"fees do not count. Biggest balances first.")
    st.dataframe(with_money(dormant.head(analytics.DORMANT_LIST_ROWS_MAX)), hide_index=True,
                 width="stretch")
    csv_button(dormant, "dormant-accounts", key="csv_dormant_table",
               label="All dormant accounts as CSV")
