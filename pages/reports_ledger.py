"""Managers' ledger views: the trial balance as of a day, the general ledger of a period and
the postings of one ledger account."""
import streamlit as st

PAGE = {"title": "Ledger", "icon": ":material/account_balance_wallet:", "roles": ("manager",),
        "order": 62, "url": "general-ledger"}
TAB = "ledger_tab"  # session state key of the open tab


def _trial_balance(bank, actor):
    from pages.common import money
    from pages.reports_dashboard import csv_button
    from pages.tables import show_table

    as_of = st.date_input("As of", value=None, max_value=bank.reports.today(),
                          key="ledger_as_of", format="YYYY-MM-DD",
                          help="Leave empty for balances now.")
    tb = bank.reports.trial_balance(actor, as_of=as_of)
    debits, credits = int(tb["debit_cents"].sum()), int(tb["credit_cents"].sum())
    left, middle, right = st.columns(3)
    left.metric("Total debits", money(debits), border=True)
    middle.metric("Total credits", money(credits), border=True)
    right.metric("Difference", money(debits - credits), border=True,
                 help="Zero whenever every transaction's postings sum to zero.")
    show_table(tb[["code", "account", "debit", "credit"]], key="ledger_trial_balance")
    st.caption("End of day keeps GL1210 loan interest receivable at the interest earned and "
               "not yet paid, and GL1290 loan-loss provision (a credit against loans "
               "receivable) at the provision by arrears bucket; GL5200 is its expense.")
    csv_button(tb.drop(columns=["debit", "credit", "balance"]), "trial-balance",
               key="csv_trial_balance")


def _general_ledger(bank, actor):
    from pages.common import money
    from pages.reports_dashboard import csv_button
    from pages.tables import show_table

    default = bank.reports.filters(days=30)
    period = st.date_input("Period", value=(default.start, default.end),
                           max_value=bank.reports.today(), key="ledger_period",
                           format="YYYY-MM-DD")
    if not isinstance(period, (tuple, list)) or len(period) != 2:
        st.info("Pick the first and the last day of the period.")
        return None
    gl = bank.reports.general_ledger(actor, period[0], period[1])
    show_table(gl[["code", "account", "opening", "debit", "credit", "closing"]],
               key="ledger_general")
    st.caption(f"Opening and closing balances each sum to "
               f"{money(int(gl['closing_cents'].sum()))}; debits "
               f"{money(int(gl['debit_cents'].sum()))} equal credits "
               f"{money(int(gl['credit_cents'].sum()))}.")
    csv_button(gl.drop(columns=["opening", "debit", "credit", "closing"]), "general-ledger",
               key="csv_general_ledger")
    return period


def _account_lines(bank, actor, period):
    from pages.common import money
    from pages.reports_dashboard import csv_button
    from pages.tables import show_table

    accounts = bank.reports.ledger_accounts(actor)
    labels = dict(zip(accounts["account_number"], accounts["name"]))
    number = st.selectbox("Ledger account", list(labels), key="ledger_account",
                          format_func=lambda n: f"{n} {labels[n]}")
    opening, lines = bank.reports.ledger_lines(actor, number, period[0], period[1])
    closing = int(lines["balance_cents"].iloc[-1]) if len(lines) else opening
    st.write(f"Opening balance **{money(opening)}**, {len(lines):,} postings shown, "
             f"balance after them **{money(closing)}**.")
    from bankms.services import businessday
    shown = lines[["business_date", "posted_at", "transaction_id", "label", "memo", "amount",
                   "balance"]].copy()
    # Value date beside the posting time, the latter on the bank's clock (stored in UTC).
    shown["posted_at"] = businessday.to_bank_time(bank, shown["posted_at"])
    show_table(shown, headers={"posted_at": f"When ({businessday.zone(bank).key})",
                               "business_date": "Value date", "balance": "Balance after"},
               key="ledger_lines")
    csv_button(lines.drop(columns=["amount", "balance"]), f"ledger-{number}",
               key="csv_ledger_lines")


def render() -> None:
    from bankms.domain.errors import BankError
    from pages.common import current_actor, get_bank, lazy_tabs, show_error

    actor = current_actor()
    if actor is None or actor.role != "manager":
        st.stop()
    bank = get_bank()
    st.title("Ledger")

    def general_ledger():
        period = _general_ledger(bank, actor)
        if period is not None:
            st.header("Postings of one ledger account")
            _account_lines(bank, actor, period)

    try:
        # Only the open tab runs: the general ledger's two grids are drawn when it is opened.
        lazy_tabs({"Trial balance": lambda: _trial_balance(bank, actor),
                   "General ledger": general_ledger}, key=TAB)
    except BankError as exc:
        show_error(exc)
