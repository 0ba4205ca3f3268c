"""Monthly statements (PDF and CSV) and annual interest certificates. Customers see their own
accounts; staff any account, and staff can download every statement of a month as one zip."""
import streamlit as st

from pages.text import md

PAGE = {"title": "Statements", "icon": ":material/receipt_long:",
        "roles": ("customer", "teller", "manager"), "order": 40, "url": "statements"}


def _pick_account(bank, actor):
    if actor.role == "customer":
        accounts = bank.accounts.list(actor)
        if accounts.empty:
            st.info("You have no accounts yet.")
            return None
        labels = {row.account_number: f"{row.account_number} · {row.name}"
                  for row in accounts.itertuples()}
        return st.selectbox("Account", list(labels), format_func=labels.get,
                            key="statement_account")
    number = st.text_input("Account number", key="statement_account_number",
                           placeholder="12 digits")
    return number.strip() or None


def _statement(bank, actor, number):
    import calendar

    from bankms.domain.labels import account_kind_label
    from pages import daily_common as dc
    from pages.common import money

    months = bank.reports.statement_months(actor, number)
    year, month = st.selectbox(
        "Month", months, key="statement_month",
        format_func=lambda ym: f"{calendar.month_name[ym[1]]} {ym[0]}")
    s = bank.reports.statement(actor, number, year, month)
    st.header(f"{md(s.holder)} · {s.account_number} ({account_kind_label(s.kind)}) · "
                 f"{s.period_start:%d %b} to {s.period_end:%d %b %Y}")
    columns = st.columns(4)
    columns[0].metric("Opening balance", money(s.opening_cents), border=True)
    columns[1].metric("Money in", money(s.credits_cents), border=True,
                      help=f"Of which interest {money(s.interest_cents)}.")
    columns[2].metric("Money out", money(s.debits_cents), border=True,
                      help=f"Of which fees {money(s.fees_cents)}.")
    columns[3].metric("Closing balance", money(s.closing_cents), border=True)
    interest = (f"Interest {money(s.interest_gross_cents)} less tax withheld "
                f"{money(s.tax_withheld_cents)}: {money(s.interest_cents)} credited"
                if s.tax_withheld_cents else f"Interest earned {money(s.interest_cents)}")
    st.caption(f"{interest} · fees charged {money(s.fees_cents)} (less any waived) · "
               f"{len(s.lines)} transactions")
    dc.show_table(s.lines, {"date": "Date", "description": "Description",
                            "amount_cents": "Amount", "balance_cents": "Balance",
                            "transaction_id": "Transaction"},
                  money_columns=("amount_cents", "balance_cents"),
                  empty="No transactions this month.", key="statement_lines")
    left, right = st.columns(2)
    left.download_button("Statement as PDF", data=s.to_pdf(), file_name=f"{s.filename}.pdf",
                         mime="application/pdf", on_click="ignore", key="statement_pdf",
                         icon=":material/picture_as_pdf:")
    right.download_button("Statement as CSV", data=s.to_csv(), file_name=f"{s.filename}.csv",
                          mime="text/csv", on_click="ignore", key="statement_csv",
                          icon=":material/download:")


def _certificate(bank, actor):
    st.header("Annual interest certificate")
    if actor.role == "customer":
        customer_id = actor.customer_id
    else:
        customer_id = st.text_input("Customer id", key="certificate_customer").strip()
        if not customer_id:
            return
    this_year = bank.reports.today().year
    year = st.selectbox("Year", list(range(this_year, this_year - 6, -1)),
                        key="certificate_year")
    c = bank.reports.interest_certificate(actor, customer_id, year)
    from pages.common import money
    st.markdown(f"{md(c.full_name)}, {year}: interest paid **{money(c.interest_paid_cents)}**, "
             f"early-withdrawal penalties {money(c.penalties_cents)}, tax withheld "
             f"{money(c.tax_withheld_cents)}.")
    st.download_button("Certificate as PDF", data=c.to_pdf(), file_name=f"{c.filename}.pdf",
                       mime="application/pdf", on_click="ignore", key="certificate_pdf",
                       icon=":material/picture_as_pdf:")


def _all_statements(bank, actor):
    import calendar

    st.header("All statements of a month")
    today = bank.reports.today()
    months = []
    year, month = today.year, today.month
    for _ in range(24):
        months.append((year, month))
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    year, month = st.selectbox("Month", months, key="zip_month",
                               format_func=lambda ym: f"{calendar.month_name[ym[1]]} {ym[0]}")
    slot = f"_statements_zip_{year}_{month}"
    if st.button("Prepare the zip", key="zip_build", icon=":material/folder_zip:"):
        bar = st.progress(0.0, text="Writing statements ...")

        def progress(done, total):
            bar.progress(done / total if total else 1.0,
                         text=f"Writing statements: {done:,} of {total:,}")
        st.session_state[slot] = bank.reports.statements_zip(actor, year, month,
                                                             progress=progress)
        bar.progress(1.0, text="Done.")
    if slot in st.session_state:
        st.download_button(f"Download statements-{year}-{month:02d}.zip",
                           data=st.session_state[slot],
                           file_name=f"statements-{year}-{month:02d}.zip",
                           mime="application/zip", on_click="ignore", key="zip_download",
                           icon=":material/download:")


def render() -> None:
    from bankms.domain.errors import BankError
    from pages.common import current_actor, get_bank, show_error

    actor = current_actor()
    if actor is None:
        st.stop()
    bank = get_bank()
    st.title("Statements")
    try:
        number = _pick_account(bank, actor)
        if number:
            _statement(bank, actor, number)
    except BankError as exc:
        show_error(exc)
    st.divider()
    try:
        _certificate(bank, actor)
    except BankError as exc:
        show_error(exc)
    if actor.role in ("teller", "manager"):
        st.divider()
        try:
            _all_statements(bank, actor)
        except BankError as exc:
            show_error(exc)
