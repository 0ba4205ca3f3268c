"""My accounts (customers): each account with its available and ledger balance, and the latest
transactions of the chosen account."""
import streamlit as st

PAGE = {"title": "My accounts", "icon": ":material/account_balance_wallet:",
        "roles": ("customer",), "order": 10, "url": "my-accounts"}


def render() -> None:
    from bankms.domain.errors import BankError
    from pages.common import get_bank, money, show_error
    from pages import daily_common as dc

    actor = dc.signed_in(("customer",))
    bank = get_bank()
    st.title("My accounts")
    try:
        accounts = bank.accounts.list(actor)
    except BankError as exc:
        show_error(exc)
        return
    if accounts.empty:
        st.info("You have no accounts yet. Visit a branch to open one.")
        return
    for _, acc in accounts.iterrows():
        with st.container(border=True):
            st.markdown(f"**{dc.md(acc['name'])}** · {acc['account_number']}"
                        + ("" if acc["status"] == "active" else f" · {acc['status']}"))
            st.metric("Available", money(acc["available"]))
            # Available includes the overdraft limit; say so, or it looks like money held.
            st.caption(f"Ledger balance {dc.md(money(acc['balance']))}"
                       + (f" · overdraft limit {dc.md(money(int(acc['overdraft_limit_cents'])))}"
                          if acc["overdraft_limit_cents"] else ""))
    numbers = list(accounts["account_number"])
    names = dict(zip(accounts["account_number"], accounts["name"]))
    number = st.selectbox("Recent transactions of", numbers,
                          format_func=lambda n: f"{names[n]} {n}", key="my_accounts_pick")
    try:
        recent = bank.accounts.history(actor, number, limit=10)
    except BankError as exc:
        show_error(exc)
        return
    dc.show_table(recent, {"posted_at": "When", "amount": "Amount", "balance": "Balance",
                           "label": "Type", "memo": "Memo"},
                  ("amount", "balance"), empty="No transactions yet.", key="my_accounts_recent")
