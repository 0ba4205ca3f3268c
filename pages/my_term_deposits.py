"""Term deposits (customers): their term deposits with maturity date and expected payout, and
opening one from their own account, with a review step that shows the rate, the maturity date
and the expected payout before any money moves."""
from decimal import Decimal

import streamlit as st

PAGE = {"title": "Term deposits", "icon": ":material/savings:", "roles": ("customer",),
        "order": 35, "url": "my-term-deposits"}

FORM = "my_term_deposit"
# Shown to customers and to tellers (whose page lists a customer's deposits), so the words
# say where the money goes without "my".
INSTRUCTIONS = {"payout": "Pay principal and interest to the linked account",
                "renew": "Renew principal and interest for the same term",
                "renew_principal": "Renew the principal, pay the interest to the linked "
                                   "account"}
STATUS_LABELS = {"active": "Running", "matured": "Matured", "renewed": "Renewed",
                 "closed_early": "Closed early"}
LIST_COLUMNS = {"account_number": "Term deposit", "principal": "Principal",
                "rate_percent": "Rate", "maturity_date": "Matures", "payout": "Payout",
                "maturity_instruction": "At maturity", "status": "Status",
                "start_date": "Opened", "linked_account": "Paid to"}


def in_words(deposits):
    """term_deposits.list() for people: instruction and status in words, rate as '3.5 %'
    (customer and teller pages)."""
    return deposits.assign(
        maturity_instruction=deposits["maturity_instruction"].map(
            lambda v: INSTRUCTIONS.get(v, v)),
        status=deposits["status"].map(lambda v: STATUS_LABELS.get(v, v.replace("_", " "))),
        rate_percent=[f"{Decimal(r).normalize():f} %" for r in deposits["rate_percent"]])


def _list(bank, actor):
    from pages import daily_common as dc

    deposits = bank.term_deposits.list(actor)
    dc.show_table(in_words(deposits), LIST_COLUMNS, money_columns=("principal", "payout"),
                  empty="You have no term deposits yet.", key="my_td_table")
    if len(deposits):
        st.caption("For a running deposit, the payout is what it pays at maturity: the "
                   "principal and its interest for the whole term after tax.")


def term_inputs(typed: dict, prefix: str) -> tuple:
    """Amount, term and maturity instruction inputs inside an open st.form (customer and
    teller pages), refilled from what was typed before a review's 'Change'."""
    choices = list(INSTRUCTIONS)
    amount = st.text_input("Amount", value=typed.get("amount", ""), placeholder="5,000.00",
                           key=f"{prefix}_amount")
    months = st.number_input("Term in months", min_value=1, max_value=600, step=1,
                             value=int(typed.get("months", 12)), key=f"{prefix}_months")
    instruction = st.radio("At maturity", choices, format_func=INSTRUCTIONS.get,
                           index=choices.index(typed.get("instruction", "payout")),
                           key=f"{prefix}_instruction")
    return amount, int(months), instruction


def ask_review(bank, actor, form, *, customer_id, source, amount, months, instruction):
    from pages import daily_common as dc

    dc.request_review(form, {"source": source, "amount": amount, "months": months,
                             "instruction": instruction},
                      lambda: bank.term_deposits.quote(
                          actor, customer_id=customer_id, linked_account=source,
                          amount=amount, term_months=months,
                          maturity_instruction=instruction))


def _form(bank, actor, accounts):
    from pages import daily_common as dc

    typed = dc.draft(FORM)
    numbers = list(accounts["account_number"])
    names = dict(zip(accounts["account_number"], accounts["name"]))
    with st.form("my_td_form"):
        source = st.selectbox("From account", numbers, format_func=lambda n: f"{names[n]} {n}",
                              key="my_td_source", index=numbers.index(typed["source"])
                              if typed.get("source") in numbers else 0)
        amount, months, instruction = term_inputs(typed, "my_td")
        submitted = st.form_submit_button("Review", type="primary", key="my_td_review")
    if submitted:
        ask_review(bank, actor, FORM, customer_id=None, source=source, amount=amount,
                   months=months, instruction=instruction)


def review_rows(review) -> list:
    """What a person checks before a term deposit is opened (customer and teller pages)."""
    from pages.common import money

    return [("From account", review["linked_account"]), ("Amount", money(review["amount"])),
            ("Product", review["product_name"]),
            ("Term", f"{review['term_months']} months"),
            ("Rate", f"{Decimal(str(review['rate_percent'])).normalize():f} % a year"),
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


def review_step(bank, actor, review, *, form, prefix, heading, note=None):
    """The check-and-confirm step of a term deposit (customer and teller pages): confirm
    opens it with the review's idempotency key, so a repeat opens it once."""
    from pages import daily_common as dc

    st.header(heading)
    if note:
        st.markdown(note)
    dc.show_pairs(review_rows(review))
    tag = review["key"]
    confirm = st.button("Open term deposit", type="primary", key=f"{prefix}_confirm_{tag}",
                        icon=":material/check:")
    change = st.button("Change", key=f"{prefix}_change_{tag}")
    dc.show_stashed_error(form)
    if change:
        dc.drop_review(form)
        st.rerun()
    if confirm:
        dc.confirm_review(form, lambda taken: open_confirmed(bank, actor, taken))


def opened_message(result):
    from pages.common import money
    from pages import daily_common as dc

    st.success(f"Term deposit {result['account_number']} is open: "
               f"{dc.md(money(result['principal']))} until {result['maturity_date']}, "
               f"paying {dc.md(money(result['payout']))} at maturity (interest "
               f"{dc.md(money(result['interest']))}, tax {dc.md(money(result['tax']))}).",
               icon=":material/check_circle:")


def render() -> None:
    from bankms.domain.errors import BankError
    from pages.common import get_bank, show_error
    from pages import daily_common as dc

    actor = dc.signed_in(("customer",))
    bank = get_bank()
    st.title("Term deposits")
    dc.settle_job(FORM)
    review = dc.current_review(FORM)
    if review is not None:
        review_step(bank, actor, review, form=FORM, prefix="my_td", heading="Check and confirm",
                    note="The amount leaves your account now and is paid back with its "
                         "interest on the maturity date. Before then only the bank can close "
                         "it, with a penalty.")
        return
    result = dc.result_of(FORM)
    if result is not None:
        opened_message(result)
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
    st.header("Open a term deposit")
    if accounts.empty:
        st.info("You need an open checking or savings account to fund a term deposit.")
        return
    _form(bank, actor, accounts)
