"""Cash & transfers (tellers, managers): deposit, withdraw or transfer with a review step that
shows both holders' names and the amount, then a receipt with its PDF. Payments above the
four-eyes limit wait for a manager's approval instead of posting."""
import streamlit as st

PAGE = {"title": "Cash & transfers", "icon": ":material/payments:",
        "roles": ("teller", "manager"), "order": 30, "url": "cash"}

FORM = "cash"
KINDS = {"Deposit": "deposit", "Withdrawal": "withdrawal", "Transfer": "transfer"}


def _post(bank, actor, review):
    key, memo, amount = review["key"], review["memo"], review["amount"]
    if review["kind"] == "deposit":
        return bank.payments.deposit(actor, review["target_account"], amount,
                                     idempotency_key=key, memo=memo)
    if review["kind"] == "withdrawal":
        return bank.payments.withdraw(actor, review["source_account"], amount,
                                      idempotency_key=key, memo=memo)
    return bank.payments.transfer(actor, review["source_account"], review["target_account"],
                                  amount, idempotency_key=key, memo=memo)


def _form(bank, actor):
    from pages import daily_common as dc

    typed = dc.draft(FORM)
    label = st.radio("Payment", list(KINDS), horizontal=True, key="cash_kind",
                     index=list(KINDS).index(typed.get("label", "Deposit")))
    kind = KINDS[label]
    with st.form(f"cash_form_{kind}"):
        source = target = None
        if kind == "deposit":
            target = st.text_input("Into account number", value=typed.get("target", ""),
                                   key="cash_target_deposit")
        elif kind == "withdrawal":
            source = st.text_input("From account number", value=typed.get("source", ""),
                                   key="cash_source_withdrawal")
        else:
            source = st.text_input("From account number", value=typed.get("source", ""),
                                   key="cash_source_transfer")
            target = st.text_input("To account number", value=typed.get("target", ""),
                                   key="cash_target_transfer")
        amount = st.text_input("Amount", value=typed.get("amount", ""), placeholder="1,234.50",
                               key=f"cash_amount_{kind}")
        memo = st.text_input("Memo (optional)", value=typed.get("memo", ""),
                             key=f"cash_memo_{kind}")
        submitted = st.form_submit_button("Review", type="primary", key=f"cash_review_{kind}")
    if submitted:
        dc.request_review(FORM, {"label": label, "source": source or "", "target": target or "",
                                 "amount": amount, "memo": memo},
                          lambda: bank.payments.review(actor, kind, amount=amount, source=source,
                                                       target=target, memo=memo))


def _review(bank, actor, review):
    from pages.common import money
    from pages import daily_common as dc

    st.header("Check and confirm")
    dc.show_pairs(dc.describe_review(review))
    if review.get("source_available") is not None:
        st.caption("Available in the source account now: "
                   f"{dc.md(money(review['source_available']))}")
    # Funds, limits and four-eyes, from the checks posting runs (bank.payments.review).
    dc.show_warnings(review)
    tag = review["key"]
    confirm = st.button("Confirm", type="primary", key=f"cash_confirm_{tag}",
                        icon=":material/check:")
    change = st.button("Change", key=f"cash_change_{tag}")
    dc.show_stashed_error(FORM)
    if change:
        dc.drop_review(FORM)
        st.rerun()
    if confirm:
        dc.confirm_review(FORM, lambda taken: _post(bank, actor, taken))


def render() -> None:
    from pages.common import get_bank
    from pages import daily_common as dc

    actor = dc.signed_in(dc.STAFF)
    bank = get_bank()
    st.title("Cash & transfers")
    dc.settle_job(FORM)
    review = dc.current_review(FORM)
    if review is not None:
        _review(bank, actor, review)
        return
    result = dc.result_of(FORM)
    if result is not None:
        dc.show_payment_result(bank, actor, result, key_prefix="cash")
        if st.button("New payment", key="cash_new", icon=":material/add:"):
            dc.clear_result(FORM)
            st.rerun()
        return
    _form(bank, actor)
