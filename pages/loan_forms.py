"""Widgets shared by the loan pages: the application form with its quote, the loan summary,
the schedule and the payment steps (form, review, result). Only functions live here (no PAGE): running this file on its
own draws nothing."""
from __future__ import annotations

from decimal import Decimal

import pandas as pd
import streamlit as st

from pages.tables import show_columns
from pages.text import day_text, md


FLASH = "_loan_flash"
FREQUENCY_LABELS = {"monthly": "monthly", "biweekly": "every two weeks", "weekly": "weekly"}
# What one instalment is called in a sentence ("888.49 a month").
PER_PERIOD = {"monthly": "a month", "biweekly": "every two weeks", "weekly": "a week"}
AMORTIZATION_LABELS = {"equal_instalments": "equal instalments",
                       "equal_principal": "equal principal (instalments fall over time)"}


def flash(message: str) -> None:
    """Keep a confirmation for the next run and rerun, so figures drawn above the form that
    just changed them are read again."""
    st.session_state[FLASH] = message
    st.rerun()


def show_flash() -> None:
    message = st.session_state.pop(FLASH, None)
    if message:
        st.success(message, icon=":material/check_circle:")


def fee_text(row) -> str:
    """A product's disbursement fee in words: '$10.00 + 1.50 %', 'none'."""
    from pages.common import money

    parts = []
    if row["disbursement_fee_cents"]:
        parts.append(money(row["disbursement_fee"]))
    if row["disbursement_fee_bp"]:
        parts.append(f"{Decimal(int(row['disbursement_fee_bp'])) / 100:.2f} %")
    return " + ".join(parts) or "none"


def product_table(products: pd.DataFrame, key: str, with_status=False) -> None:
    """The products with their ranges and terms, as people read them."""
    shown = products.copy()
    shown["repayments"] = [FREQUENCY_LABELS.get(v, v) for v in shown["frequency"]]
    shown["amortization"] = [AMORTIZATION_LABELS.get(v, v).split(" (")[0]
                             for v in shown["amortization"]]
    shown["fee"] = [fee_text(row) for row in shown.to_dict("records")]
    shown["status"] = ["offered" if v else "not offered" for v in shown["active"]]
    columns = {"code": "Code", "name": "Name", "amount_min": "From", "amount_max": "To",
               "term_min_months": "Months from", "term_max_months": "Months to",
               "rate_min_percent": "Rate from", "rate_max_percent": "Rate to",
               "repayments": "Repayments", "amortization": "Amortization",
               "grace_principal_periods": "Grace (instalments)", "fee": "Disbursement fee",
               "late_fee": "Late fee", "late_fee_grace_days": "Grace days",
               "day_count": "Day count", "prepayment_rule": "Prepayment"}
    if with_status:
        columns["status"] = "Status"
    show_columns(shown, columns, key=key)


def show_schedule(schedule: pd.DataFrame, key: str) -> None:
    columns = {"n": "#", "due_date": "Due", "payment": "Instalment", "interest": "Interest",
               "principal": "Principal", "balance": "Balance after"}
    if "paid" in schedule:
        columns.update({"paid": "Paid", "fee": "Late fee", "state": "State"})
    show_columns(schedule, columns, key=key)


def show_summary(loan: dict) -> None:
    """Status (with the decision's reason) and the figures a borrower acts on."""
    from pages.common import money

    status = loan["status"].replace("_", " ")
    st.markdown(f"**Loan {loan['loan_id']}** · {loan['product']} · {money(loan['principal'])} "
                f"over {loan['term_months']} months · status **{status}**")
    if loan["status"] == "rejected" and loan.get("decision_reason"):
        st.warning(f"Not approved: {md(loan['decision_reason'])}", icon=":material/info:")
    if loan["status"] == "written_off" and loan.get("write_off_reason"):
        st.warning(f"Written off: {md(loan['write_off_reason'])}", icon=":material/info:")
    if loan["status"] != "active":
        return
    cols = st.columns(5)
    cols[0].metric("Outstanding principal", money(loan["outstanding_principal"]))
    cols[1].metric("Due now", money(loan["due_now"]))
    nxt = loan["next_due_date"]
    cols[2].metric("Next instalment", money(loan["next_due"]) if nxt else "none",
                   help=f"due {day_text(nxt)}" if nxt else None)
    cols[3].metric("Interest accrued today", money(loan["accrued_interest"]),
                   help="Interest runs by the day on the outstanding principal; negative "
                        "when interest was paid ahead of its accrual.")
    cols[4].metric("Pays it all off", money(loan["payoff"]),
                   help="Principal, interest accrued to today and fees due.")
    if loan["days_past_due"]:
        st.error(f"{money(loan['overdue'])} is overdue: {loan['days_past_due']} days past due "
                 f"(bucket {loan['bucket']}).", icon=":material/warning:")
    elif nxt:
        st.caption(f"The next instalment, {money(loan['next_due'])} on {day_text(nxt)}, is "
                   f"collected "
                   f"from account {loan['account_number']} at end of day when funds allow. "
                   "A payment before its due date covers the next instalment first; only "
                   "what is paid beyond it lowers the later instalments.")


def application_form(bank, actor, customer_id, prefix: str) -> None:
    """Product, amount, term, purpose, income; a quote with the full schedule; then submit.
    The application is filed only with the figures the quote showed."""
    from bankms.domain.errors import BankError
    from pages.common import form_key, money, reset_form_key, show_error

    products = bank.loans.products()
    labels = {row.code: f"{row.name} ({money(row.amount_min)}–{money(row.amount_max)}, "
                        f"{row.term_min_months}–{row.term_max_months} months, "
                        f"{FREQUENCY_LABELS.get(row.frequency, row.frequency)})"
              for row in products.itertuples()}
    code = st.selectbox("Product", list(labels), format_func=labels.get, key=f"{prefix}_product")
    product = products[products["code"] == code].iloc[0]
    amount = st.text_input("Amount", placeholder="10,000.00", key=f"{prefix}_amount")
    term = st.number_input("Term (months)", min_value=int(product["term_min_months"]),
                           max_value=int(product["term_max_months"]),
                           value=int(product["term_min_months"]), step=1, key=f"{prefix}_term")
    purpose = st.text_input("Purpose", placeholder="What is the loan for?",
                            key=f"{prefix}_purpose")
    income = st.text_input("Monthly income", placeholder="3,500.00", key=f"{prefix}_income")
    asked = {"product": code, "principal": amount, "term_months": int(term),
             "purpose": purpose, "monthly_income": income}
    slot = f"_{prefix}_quoted"
    if st.button("Show quote", key=f"{prefix}_quote"):
        try:
            st.session_state[slot] = (asked, bank.loans.product_quote(code, amount, int(term)))
        except BankError as exc:
            st.session_state.pop(slot, None)
            show_error(exc)
    quoted = st.session_state.get(slot)
    if quoted is None:
        return
    if quoted[0] != asked:
        st.info("The figures changed since the quote: show the quote again before applying.")
        return
    schedule = quoted[1]
    terms = schedule.attrs
    per = PER_PERIOD.get(terms["frequency"], terms["frequency"])
    st.markdown(
        f"**{money(schedule['payment'].iloc[0])} {per}**, {len(schedule)} instalments "
        f"(last {money(schedule['payment'].iloc[-1])}); total interest "
        f"{money(sum(schedule['interest']))}, at the product's highest rate of "
        f"{terms['rate_percent']} % a year. A manager sets the final rate, "
        f"never above this.")
    grace = terms["grace_principal_periods"]
    st.markdown(
        f"Repayments {FREQUENCY_LABELS.get(terms['frequency'], terms['frequency'])}, "
        f"{AMORTIZATION_LABELS.get(terms['amortization'], terms['amortization'])}"
        + (f", the first {grace} instalments interest only" if grace else "") + ". "
        f"Disbursement fee **{money(terms['disbursement_fee'])}**: "
        f"**{money(terms['net_amount'])}** reaches the account.")
    show_schedule(schedule, key=f"{prefix}_quote_table")
    if st.button("Submit application", type="primary", key=f"{prefix}_submit"):
        try:
            loan_id = bank.loans.apply(actor, customer_id, idempotency_key=form_key(prefix),
                                       **asked)
        except BankError as exc:
            show_error(exc)
            return
        reset_form_key(prefix)
        st.session_state.pop(slot, None)
        flash(f"Application {loan_id} submitted; a manager will review it.")


def loan_by_number(bank, actor, key: str):
    """A typed loan number read through bank.loans.get, or None (errors shown)."""
    from bankms.domain.errors import BankError
    from pages.common import show_error

    number = st.text_input("Loan number", key=key)
    if not number.strip():
        return None
    try:
        return bank.loans.get(actor, number.strip())
    except BankError as exc:
        show_error(exc)
        return None


def payoff_quote(bank, actor, loan: dict, prefix: str) -> None:
    """What pays the loan off on a chosen date (today or later)."""
    from bankms.domain.errors import BankError
    from pages.common import money, show_error

    lid = loan["loan_id"]
    day = st.date_input("Payoff date", value=loan["business_date"],
                        min_value=loan["business_date"], key=f"{prefix}_payoff_day_{lid}")
    try:
        quote = bank.loans.payoff(actor, lid, on=day)
    except BankError as exc:
        show_error(exc)
        return
    interest = (f"interest accrued {money(quote['interest'])}" if quote["interest_cents"] >= 0
                else f"less interest paid ahead {money(-quote['interest'])}")
    st.markdown(f"To pay loan {lid} off on {quote['on']}: **{money(quote['total'])}** "
                f"(principal {money(quote['principal'])}, {interest}, "
                f"fees {money(quote['fees'])}).")
    if quote["on"] > loan["business_date"]:
        expected = (f", including {money(quote['late_fees_expected'])} of late fees that end "
                    "of day will charge by then on instalments still unpaid"
                    if quote["late_fees_expected_cents"] else "")
        st.caption(f"This assumes nothing is paid or collected before {quote['on']}{expected}; "
                   "an instalment collected in the meantime lowers it. Interest is counted to "
                   "the payoff date.")


def show_history(bank, actor, loan_id, key: str) -> None:
    """The loan's money events, oldest first, with reversals marked."""
    df = bank.loans.history(actor, loan_id)
    show_columns(df, {
        "value_date": "Value date", "transaction_id": "Transaction", "event": "Event",
        "amount": "Amount", "interest": "Interest", "principal": "Principal", "fee": "Fees",
        "reversed": "Reversed", "actor": "By"}, key=key)


PREPAYMENT_CHOICES = {"reduce_instalment": "lower the later instalments",
                      "shorten_term": "shorten the term"}


def payment_inputs(actor, loan: dict, sources: dict, prefix: str, *, button: str = "Review",
                   typed: dict | None = None):
    """The payment form of an active loan: (submitted, amount, source, rule). Pay from one of
    `sources` ({value: label}); staff choose what a prepayment does. `typed` refills the form
    (amount, source, rule) after a review's 'Change'."""
    typed = typed or {}
    lid = loan["loan_id"]
    suggested = loan["due_now"] if loan["due_now"] > 0 else loan["next_due"]
    with st.form(f"{prefix}_{lid}"):
        amount = st.text_input("Amount", value=typed.get("amount", str(suggested) if suggested
                                                          else ""),
                               key=f"{prefix}_amount_{lid}")
        options = list(sources)
        source = st.selectbox("Pay from", options, format_func=sources.get,
                              index=_index(options, typed.get("source")),
                              key=f"{prefix}_source_{lid}")
        rule = None
        if getattr(actor, "is_staff", False):
            rules = list(PREPAYMENT_CHOICES)
            rule = st.selectbox("Money beyond the next instalment should", rules,
                                format_func=PREPAYMENT_CHOICES.get,
                                index=_index(rules, typed.get("rule")),
                                key=f"{prefix}_rule_{lid}")
        submitted = st.form_submit_button(button, type="primary")
    return submitted, amount, source, rule


def _index(options: list, value) -> int:
    return options.index(value) if value in options else 0


def settle_payment(prefix: str, loan_id) -> str:
    """The name of one loan's payment form (its review, job and result are kept under it),
    once a payment that an overlapping run posted has been applied (daily_common.settle_job).
    Call it before the loan's figures are read, so that they include that payment."""
    from pages import daily_common as dc

    form = f"{prefix}_{loan_id}"
    dc.settle_job(form)
    return form


def payment_steps(bank, actor, loan: dict, sources: dict, prefix: str, *,
                  heading: str | None = None) -> str:
    """A loan payment taken like every other money form, in three steps. The form (paid from
    one of `sources`, {value: label}; drawn for an active loan only) has Review, which shows
    what Confirm would meet (bank.loans.review_repayment). Confirm posts with the review's
    idempotency key, so a repeated click or a rerun pays once; Change goes back to the filled
    form. After the payment, the result with a New payment button. `heading` is drawn above
    whichever step is shown. Returns the step drawn: "review", "result", "form" or "" (none).
    Widget keys start with `prefix`; call settle_payment(prefix, loan_id) first."""
    from pages import daily_common as dc

    form = f"{prefix}_{loan['loan_id']}"
    review, result = dc.current_review(form), dc.result_of(form)
    step = ("review" if review is not None else "result" if result is not None
            else "form" if loan["status"] == "active" and sources else "")
    if step and heading:
        st.header(heading)
    if step == "review":
        _payment_review(bank, actor, form, review, prefix)
    elif step == "result":
        _payment_result(form, result)
    elif step == "form":
        _payment_request(bank, actor, loan, sources, prefix, form)
    return step


def _payment_request(bank, actor, loan, sources, prefix, form):
    from pages import daily_common as dc

    submitted, amount, source, rule = payment_inputs(actor, loan, sources, prefix,
                                                     button="Review", typed=dc.draft(form))
    if submitted:
        dc.request_review(form, {"amount": amount, "source": source, "rule": rule},
                          lambda: {**bank.loans.review_repayment(
                              actor, loan["loan_id"], amount, source, prepayment=rule),
                              "source_label": sources.get(source, source)})


def _payment_review(bank, actor, form, review, prefix):
    from pages import daily_common as dc
    from pages.common import money

    st.header("Check and confirm")
    rows = [("Loan", review["loan_id"]), ("Amount", money(review["amount"])),
            ("From", review["source_label"])]
    if review.get("prepayment"):
        rows.append(("Money beyond the next instalment",
                     PREPAYMENT_CHOICES.get(review["prepayment"], review["prepayment"])))
    dc.show_pairs(rows)
    if review.get("source_available") is not None:
        st.caption(f"Available in the account now: {md(money(review['source_available']))}")
    # Payoff, funds and four-eyes, from the checks repay runs (bank.loans.review_repayment).
    dc.show_warnings(review)
    tag = review["key"]
    confirm = st.button("Confirm", type="primary", key=f"{prefix}_confirm_{tag}",
                        icon=":material/check:")
    change = st.button("Change", key=f"{prefix}_change_{tag}")
    dc.show_stashed_error(form)
    if change:
        dc.drop_review(form)
        st.rerun()
    if confirm:
        dc.confirm_review(form, lambda taken: bank.loans.repay(
            actor, taken["loan_id"], taken["amount"], taken["source_account"],
            idempotency_key=taken["key"], prepayment=taken["prepayment"]))


def _payment_result(form, result):
    from pages import daily_common as dc
    from pages.common import money

    text = dc.unless_waiting(lambda r: f"Paid {money(r.amount)} (transaction "
                                       f"{r.transaction_id}). {md(r.memo)}.")(result)
    st.success(text, icon=":material/check_circle:")
    if st.button("New payment", key=f"{form}_new", icon=":material/add:"):
        dc.clear_result(form)
        st.rerun()
