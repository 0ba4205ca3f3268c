"""History (customers): one account's transactions with a date range, type and text filter,
the running balance after each, and a CSV export of what is shown."""
import streamlit as st

PAGE = {"title": "History", "icon": ":material/receipt_long:", "roles": ("customer",),
        "order": 20, "url": "my-history"}


def render() -> None:
    import datetime as dt

    from bankms.services.accounts import history_csv
    from bankms.domain.errors import BankError
    from pages.common import get_bank, show_error
    from pages import daily_common as dc

    actor = dc.signed_in(("customer",))
    bank = get_bank()
    st.title("History")
    try:
        accounts = bank.accounts.list(actor)
    except BankError as exc:
        show_error(exc)
        return
    if accounts.empty:
        st.info("You have no accounts yet.")
        return
    numbers = list(accounts["account_number"])
    names = dict(zip(accounts["account_number"], accounts["name"]))
    number = st.selectbox("Account", numbers, format_func=lambda n: f"{names[n]} {n}",
                          key="history_account")
    today = bank.business_date
    dates = st.date_input("Dates", value=(today - dt.timedelta(days=90), today),
                          max_value=today + dt.timedelta(days=1), key="history_dates")
    # While a range is being picked the widget holds one date: show from it onwards.
    start, end = (tuple(dates) + (None, None))[:2] if dates else (None, None)
    try:
        # Labels as the table says them ("Card payment", "Transfer in"), never kind codes.
        labels = bank.accounts.history_labels(actor, number)
    except BankError as exc:
        show_error(exc)
        return
    label = st.selectbox("Type", ["All types"] + labels, key="history_kind")
    text = st.text_input("Search memo, account or transaction id", key="history_text")
    try:
        df = bank.accounts.history(actor, number, start=start, end=end,
                                   label=None if label == "All types" else label,
                                   text=text or None)
    except BankError as exc:
        show_error(exc)
        return
    st.caption(f"{len(df)} transactions")
    from bankms.services import businessday
    # The dates above pick value dates; "When" is the moment on the bank's clock.
    shown = df.assign(posted_at=businessday.to_bank_time(bank, df["posted_at"]),
                      business_date=[str(d)[:10] for d in df["business_date"]])
    dc.show_table(shown, {"posted_at": "When", "amount": "Amount", "balance": "Balance after",
                          "business_date": "Value date", "label": "Type", "memo": "Memo",
                          "counterparty": "Counterparty"},
                  ("amount", "balance"), empty="No transactions match.", key="history_table")
    st.download_button("Export CSV", data=history_csv(df),
                       file_name=f"history-{number}.csv", mime="text/csv", on_click="ignore",
                       key="history_csv", icon=":material/download:", disabled=df.empty)
