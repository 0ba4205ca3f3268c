"""Accounts (tellers, managers): open accounts; look one up to freeze, unfreeze or close it at a
zero balance; managers also change overdraft limits and interest rates."""
import streamlit as st

PAGE = {"title": "Accounts", "icon": ":material/account_balance_wallet:",
        "roles": ("teller", "manager"), "order": 20, "url": "accounts"}

SELECTED = "accounts_selected"


def _open(bank, actor):
    from bankms.domain.labels import account_kind_label
    from pages.common import form_key, reset_form_key
    from pages import daily_common as dc

    key = form_key("open_account")
    preset = st.session_state.get("customers_selected")
    with st.form(f"open_account_{key}"):
        customer = st.text_input("Customer id", value="" if preset is None else str(preset),
                                 key=f"open_customer_{key}")
        products = _offered_products(bank, actor)
        product = st.selectbox("Product", list(products), key=f"open_product_{key}",
                               format_func=lambda code: products[code]["label"])
        kind = products[product]["kind"] if product else "checking"
        overdraft = rate = None
        if actor.role == "manager":
            overdraft = st.text_input("Overdraft limit (checking)", value="0",
                                      key=f"open_overdraft_{key}")
            rate = st.text_input("Interest rate % (savings; empty for the default)",
                                 key=f"open_rate_{key}")
        submitted = st.form_submit_button("Open account", type="primary",
                                          key=f"open_go_{key}")
    if submitted:
        def opened(number):
            reset_form_key("open_account")
            st.session_state[SELECTED] = number
        dc.act("accounts", lambda: bank.accounts.open(
            actor, customer, overdraft_limit=overdraft or "0", interest_rate=rate or None,
            product=product, idempotency_key=key),
            lambda number: f"Opened {account_kind_label(kind).lower()} account {number} for "
                           f"customer {dc.md(customer.strip())}."
                           + _waiting_note(bank, actor, number),
            on_success=opened)


def _offered_products(bank, actor) -> dict:
    """The products a new account may be opened on, the standard checking product first:
    {code: {"kind", "label"}}."""
    from bankms.domain.labels import account_kind_label
    from bankms.services.ledger import CUSTOMER_KINDS

    df = bank.deposit_products.list(actor)
    df = df[df["active"] & df["kind"].isin(CUSTOMER_KINDS)]
    rows = sorted(df.to_dict("records"), key=lambda r: (
        CUSTOMER_KINDS.index(r["kind"]), r["code"] != r["kind"], r["name"]))
    return {r["code"]: {"kind": r["kind"], "label": (
        f"{r['name']} ({account_kind_label(r['kind']).lower()}, "
        f"{r['interest_rate_percent'].normalize():f} %)")}
        for r in rows}


def _waiting_note(bank, actor, number) -> str:
    """A limit or rate asked for at opening that waits for a second manager."""
    if bank.approvals.list(actor, "pending", account=number).empty:
        return ""
    return (" Its overdraft limit or interest rate waits for another manager's approval "
            "(Approvals page).")


def _manage(bank, actor):
    from bankms.domain.errors import BankError
    from pages.common import money, show_error
    from pages import daily_common as dc

    with st.form("accounts_lookup"):
        typed = st.text_input("Account number", value=st.session_state.get(SELECTED, ""),
                              key="accounts_number")
        go = st.form_submit_button("Show account", key="accounts_show",
                                   icon=":material/search:")
    if go:
        st.session_state[SELECTED] = typed
    number = st.session_state.get(SELECTED)
    if not number:
        return
    try:
        acc = bank.accounts.get(actor, number)
    except BankError as exc:
        show_error(exc)
        return
    number = acc["account_number"]
    st.header(f"{acc['name']} {number}")
    m = lambda value: dc.md(money(value))  # noqa: E731
    st.markdown(f"Holder **{dc.md(acc['holder'])}** (customer {acc['customer_id']}) · "
                f"status **{acc['status']}**  \n"
                f"Balance {m(acc['balance'])} · on hold {m(acc['holds'])} · "
                f"available {m(acc['available'])}  \n"
                f"Overdraft limit {m(acc['overdraft_limit'])} · "
                f"interest {acc['interest_rate_percent']:.2f} %  \n"
                f"Product **{dc.md(acc['product_name'] or '-')}**"
                + (" (its own rate)" if acc["rate_negotiated"] else ""))
    _status_actions(bank, actor, acc)
    if actor.role == "manager" and acc["status"] != "closed":
        _limits(bank, actor, acc)


def _act(fn, message):
    from pages import daily_common as dc

    dc.act("accounts", fn, dc.unless_waiting(message))


def _status_actions(bank, actor, acc):
    number, status = acc["account_number"], acc["status"]
    # Button keys name the account and its status: a click meant for the old state is
    # ignored once the status has changed.
    tag = f"{number}_{status}"
    if status in ("active", "dormant"):
        if st.button("Freeze", key=f"freeze_{tag}", icon=":material/ac_unit:"):
            _act(lambda: bank.accounts.freeze(actor, number),
                 f"Account {number} is frozen: no money can leave it.")
    if status == "frozen":
        if st.button("Unfreeze", key=f"unfreeze_{tag}", icon=":material/sunny:"):
            _act(lambda: bank.accounts.unfreeze(actor, number), f"Account {number} is active.")
    if status != "closed":
        with st.expander("Close account"):
            st.caption("Only an account with a zero balance and nothing on hold can be closed. "
                       "Interest earned up to today is paid with the close: in cash at the "
                       "counter, or to the account given here.")
            payout = st.text_input("Pay the interest to account (empty: cash)",
                                   key=f"close_payout_{tag}").strip()
            sure = st.checkbox("The customer asked to close this account", key=f"close_ok_{tag}")
            if st.button("Close account", key=f"close_{tag}", disabled=not sure,
                         icon=":material/block:"):
                _act(lambda: bank.accounts.close(actor, number, payout_account=payout or None),
                     _closed_message(number, payout))


def _closed_message(number, payout):
    from pages import daily_common as dc

    def where_to(payout):
        return (f"to account {dc.md(payout)}" if payout
                else "in cash: hand it to the customer")

    def text(result):
        if result.get("overdraft_interest"):
            charged = (f"Account {number} is closed; its overdraft interest of "
                       f"{result['overdraft_interest']} was charged")
            if result["payout_transaction_id"] is None:
                return charged + "."
            return f"{charged} and {result['payout']} of interest was paid {where_to(payout)}."
        if result["payout_transaction_id"] is None:
            return f"Account {number} is closed."
        where = where_to(payout)
        if result["tax_withheld"]:
            return (f"Account {number} is closed; its interest of {result['interest']} less "
                    f"{result['tax_withheld']} tax withheld, {result['interest_net']}, was paid "
                    f"{where}.")
        return (f"Account {number} is closed; its interest of {result['interest']} was paid "
                f"{where}.")
    return text


def _limits(bank, actor, acc):
    from pages import daily_common as dc

    number = acc["account_number"]
    if acc["kind"] == "checking":
        with st.form(f"overdraft_{number}"):
            limit = st.text_input("Overdraft limit", value=f"{acc['overdraft_limit']}",
                                  key=f"overdraft_value_{number}")
            go = st.form_submit_button("Set overdraft limit", key=f"overdraft_go_{number}")
        if go:
            _act(lambda: bank.accounts.set_overdraft_limit(actor, number, limit),
                 f"The overdraft limit of {number} is now {dc.md(limit)}.")
    else:
        with st.form(f"rate_{number}"):
            rate = st.text_input("Interest rate %", value=f"{acc['interest_rate_percent']}",
                                 key=f"rate_value_{number}")
            go = st.form_submit_button("Set interest rate", key=f"rate_go_{number}")
        if go:
            _act(lambda: bank.accounts.set_interest_rate(actor, number, rate),
                 f"The interest rate of {number} is now {dc.md(rate)} %.")


def render() -> None:
    from pages.common import get_bank
    from pages import daily_common as dc

    actor = dc.signed_in(dc.STAFF)
    bank = get_bank()
    st.title("Accounts")
    dc.settle_job("accounts")
    dc.show_stashed_error("accounts")
    dc.show_flash()
    manage, open_ = st.tabs(["Find an account", "Open an account"])
    with manage:
        _manage(bank, actor)
    with open_:
        _open(bank, actor)
