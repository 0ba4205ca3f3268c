"""Transfer (customers): between their own accounts, or to another customer's account by its
number. The review step shows the payee's masked name ("J*** D**") before anything moves;
transfers to other customers count against a daily limit."""
import streamlit as st

PAGE = {"title": "Transfer", "icon": ":material/swap_horiz:", "roles": ("customer",),
        "order": 30, "url": "my-transfer"}

FORM = "my_transfer"
OWN, OTHER = "Between my accounts", "To someone else"


def _form(bank, actor, accounts):
    from pages.common import money
    from pages import daily_common as dc

    typed = dc.draft(FORM)
    numbers = list(accounts["account_number"])
    names = dict(zip(accounts["account_number"], accounts["name"]))
    label = lambda n: f"{names[n]} {n}"  # noqa: E731
    where = st.radio("Transfer", [OWN, OTHER], horizontal=True, key="my_transfer_where",
                     index=[OWN, OTHER].index(typed.get("where", OWN if len(numbers) > 1
                                                        else OTHER)))
    with st.form(f"my_transfer_form_{where == OWN}"):
        source = st.selectbox("From", numbers, format_func=label, key="my_transfer_source",
                              index=numbers.index(typed["source"])
                              if typed.get("source") in numbers else 0)
        if where == OWN:
            target = st.selectbox("To", numbers, format_func=label, key="my_transfer_own",
                                  index=numbers.index(typed["target"])
                                  if typed.get("target") in numbers else min(1, len(numbers) - 1))
        else:
            target = st.text_input("To account number", value=typed.get("target", ""),
                                   key="my_transfer_target")
        amount = st.text_input("Amount", value=typed.get("amount", ""), placeholder="1,234.50",
                               key="my_transfer_amount")
        memo = st.text_input("Memo (optional)", value=typed.get("memo", ""),
                             key="my_transfer_memo")
        submitted = st.form_submit_button("Review", type="primary", key="my_transfer_review")
    limit = bank.settings.get_int("customer_daily_transfer_cents_max", 500000)
    st.caption(f"Transfers to other customers are limited to {dc.md(money(limit))} a day.")
    if submitted:
        dc.request_review(FORM, {"where": where, "source": source, "target": target or "",
                                 "amount": amount, "memo": memo},
                          lambda: bank.payments.review(actor, "transfer", amount=amount,
                                                       source=source, target=target, memo=memo))


def _review(bank, actor, review):
    from pages.common import money
    from pages import daily_common as dc

    st.header("Check and confirm")
    if not review["own_target"]:
        st.markdown(f"You are paying **{dc.md(review['target_holder'])}**. Check that this is "
                    "who you mean to pay: money sent to the wrong account may not come back.")
    dc.show_pairs(dc.describe_review(review))
    st.caption(f"Available now: {dc.md(money(review['source_available']))}")
    dc.show_warnings(review)
    tag = review["key"]
    confirm = st.button("Confirm transfer", type="primary", key=f"my_transfer_confirm_{tag}",
                        icon=":material/check:")
    change = st.button("Change", key=f"my_transfer_change_{tag}")
    dc.show_stashed_error(FORM)
    if change:
        dc.drop_review(FORM)
        st.rerun()
    if confirm:
        dc.confirm_review(FORM, lambda taken: bank.payments.transfer(
            actor, taken["source_account"], taken["target_account"], taken["amount"],
            idempotency_key=taken["key"], memo=taken["memo"]))


def render() -> None:
    from bankms.domain.errors import BankError
    from pages.common import get_bank, show_error
    from pages import daily_common as dc

    actor = dc.signed_in(("customer",))
    bank = get_bank()
    st.title("Transfer")
    dc.settle_job(FORM)
    review = dc.current_review(FORM)
    if review is not None:
        _review(bank, actor, review)
        return
    result = dc.result_of(FORM)
    if result is not None:
        dc.show_payment_result(bank, actor, result, key_prefix="my_transfer")
        if st.button("New transfer", key="my_transfer_new", icon=":material/add:"):
            dc.clear_result(FORM)
            st.rerun()
        return
    try:
        accounts = bank.accounts.list(actor)
    except BankError as exc:
        show_error(exc)
        return
    # A term deposit's money moves only at maturity or by an early closure at the bank.
    accounts = accounts[(accounts["status"] != "closed") & (accounts["kind"] != "term_deposit")]
    if accounts.empty:
        st.info("You have no open accounts to transfer from.")
        return
    _form(bank, actor, accounts)
