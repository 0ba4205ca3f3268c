"""Term deposits (customers): their term deposits with maturity date and expected payout, and
opening one from their own account, with a review step that shows the rate, the maturity date
and the expected payout before any money moves."""
import streamlit as st

PAGE = {"title": "Term deposits", "icon": ":material/savings:", "roles": ("customer",),
        "order": 35, "url": "my-term-deposits"}

FORM = "my_term_deposit"
INSTRUCTIONS = {"payout": "Pay principal and interest to my account",
                "renew": "Renew principal and interest for the same term",
                "renew_principal": "Renew the principal, pay the interest to my account"}
LIST_COLUMNS = {"account_number": "Term deposit", "principal": "Principal",
                "rate_percent": "Rate %", "maturity_date": "Matures", "payout": "Payout",
                "maturity_instruction": "At maturity", "status": "Status",
                "start_date": "Opened", "linked_account": "Paid to"}


def _list(bank, actor):
    from pages import daily_common as dc

    deposits = bank.term_deposits.list(actor)
    shown = deposits.assign(maturity_instruction=deposits["maturity_instruction"].map(
        lambda v: INSTRUCTIONS.get(v, v)), status=deposits["status"].str.replace("_", " "))
    dc.show_table(shown, LIST_COLUMNS, money_columns=("principal", "payout"),
                  empty="You have no term deposits yet.", key="my_td_table")
    if len(deposits):
        st.caption("For a running deposit, the payout is what it pays at maturity: the "
                   "principal and its interest for the whole term after tax.")


def _form(bank, actor, accounts):
    from pages import daily_common as dc

    typed = dc.draft(FORM)
    numbers = list(accounts["account_number"])
    names = dict(zip(accounts["account_number"], accounts["name"]))
    choices = list(INSTRUCTIONS)
    with st.form("my_td_form"):
        source = st.selectbox("From account", numbers, format_func=lambda n: f"{names[n]} {n}",
                              key="my_td_source", index=numbers.index(typed["source"])
                              if typed.get("source") in numbers else 0)
        amount = st.text_input("Amount", value=typed.get("amount", ""), placeholder="5,000.00",
                               key="my_td_amount")
        months = st.number_input("Term in months", min_value=1, max_value=600, step=1,
                                 value=int(typed.get("months", 12)), key="my_td_months")
        instruction = st.radio("At maturity", choices, format_func=INSTRUCTIONS.get,
                               index=choices.index(typed.get("instruction", "payout")),
                               key="my_td_instruction")
        submitted = st.form_submit_button("Review", type="primary", key="my_td_review")
    if submitted:
        dc.request_review(FORM, {"source": source, "amount": amount, "months": int(months),
                                 "instruction": instruction},
                          lambda: bank.term_deposits.quote(
                              actor, linked_account=source, amount=amount,
                              term_months=int(months), maturity_instruction=instruction))


def review_rows(review) -> list:
    """What a person checks before a term deposit is opened (customer and teller pages)."""
    from pages.common import money

    return [("From account", review["linked_account"]), ("Amount", money(review["amount"])),
            ("Product", review["product_name"]),
            ("Term", f"{review['term_months']} months"),
            ("Rate", f"{review['rate_percent']} % a year"),
            ("Matures on", str(review["maturity_date"])),
            ("Interest expected", money(review["interest"])),
            ("Tax withheld", money(review["tax"])),
            ("Payout at maturity", money(review["payout"])),
            ("At maturity", INSTRUCTIONS[review["maturity_instruction"]])]


def open_confirmed(bank, actor, review):
    return bank.term_deposits.open(
        actor, customer_id=review["customer_id"], linked_account=review["linked_account"],
        amount=review["amount"], term_months=review["term_months"],
        product=review["product"], maturity_instruction=review["maturity_instruction"],
        idempotency_key=review["key"])


def _review(bank, actor, review):
    from pages import daily_common as dc

    st.subheader("Check and confirm")
    st.markdown("The amount leaves your account now and is paid back with its interest on "
                "the maturity date. Before then only the bank can close it, with a penalty.")
    dc.show_pairs(review_rows(review))
    tag = review["key"]
    confirm = st.button("Open term deposit", type="primary", key=f"my_td_confirm_{tag}",
                        icon=":material/check:")
    change = st.button("Change", key=f"my_td_change_{tag}")
    dc.show_stashed_error(FORM)
    if change:
        dc.drop_review(FORM)
        st.rerun()
    if confirm:
        dc.confirm_review(FORM, lambda taken: open_confirmed(bank, actor, taken))


def render() -> None:
    from bankms.errors import BankError
    from pages.common import get_bank, money, show_error
    from pages import daily_common as dc

    actor = dc.signed_in(("customer",))
    bank = get_bank()
    st.title("Term deposits")
    dc.settle_job(FORM)
    review = dc.current_review(FORM)
    if review is not None:
        _review(bank, actor, review)
        return
    result = dc.result_of(FORM)
    if result is not None:
        st.success(f"Term deposit {result['account_number']} is open: "
                   f"{dc.md(money(result['principal']))} until {result['maturity_date']}.",
                   icon=":material/check_circle:")
        if st.button("Done", key="my_td_done"):
            dc.clear_result(FORM)
            st.rerun()
    try:
        _list(bank, actor)
        accounts = bank.accounts.list(actor)
    except BankError as exc:
        show_error(exc)
        return
    accounts = accounts[accounts["status"].isin(["active", "dormant"])
                        & accounts["kind"].isin(["checking", "savings"])]
    st.subheader("Open a term deposit")
    if accounts.empty:
        st.info("You need an open checking or savings account to fund a term deposit.")
        return
    _form(bank, actor, accounts)
