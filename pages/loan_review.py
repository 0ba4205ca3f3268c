"""Managers review loan applications beside the applicant's accounts and history, approve at a
rate within the product's range or reject with a reason, pay out approved loans and write off
loans in arrears."""
import streamlit as st

from pages.text import md

PAGE = {"title": "Loan review", "icon": ":material/gavel:", "roles": ("manager",),
        "order": 50, "url": "loan-review"}
TAB = "review_tab"  # session state key of the open tab


def _pick(loans, label, key):
    labels = {int(r.loan_id): f"Loan {r.loan_id} · {r.holder} · {r.product} · "
                              f"{r.principal} over {r.term_months} months"
              for r in loans.itertuples()}
    return st.selectbox(label, list(labels), format_func=labels.get, key=key)


def _applications(bank, actor):
    from bankms.domain.errors import BankError
    from pages.common import money, show_error
    from pages.loan_forms import PER_PERIOD, flash
    from pages.tables import show_columns

    pending = bank.loans.list(actor, status="submitted")
    if pending.empty:
        st.info("No applications are waiting.")
        return
    lid = _pick(pending, "Application", "review_pick")
    review = bank.loans.review(actor, lid)
    loan = review["loan"]
    left, right = st.columns(2)
    with left:
        st.header("Application")
        st.markdown(
            f"**{md(loan['holder'])}** (customer {loan['customer_id']}) asks for "
            f"**{money(loan['principal'])}** over {loan['term_months']} months "
            f"({loan['product']}) for *{md(loan['purpose'])}*.  \n"
            f"Monthly income {money(loan['monthly_income'])}; instalment at the product's top "
            f"rate {money(review['instalment'])} {PER_PERIOD[review['frequency']]} "
            f"({review['instalment_to_income_percent']} % of income).  \n"
            f"Entered by {md(loan['applied_by'])} ({loan['applied_role']}) on "
            f"{loan['applied_date']}.")
    with right:
        st.header("Applicant's accounts")
        show_columns(review["accounts"], {
            "account_number": "Account", "kind": "Kind", "status": "Status",
            "balance": "Balance"}, key="review_accounts")
        st.caption(f"Last 90 days: {money(review['inflow_90d'])} in, "
                   f"{money(review['outflow_90d'])} out.")
        if not review["other_loans"].empty:
            show_columns(review["other_loans"], {
                "loan_id": "Loan", "status": "Status",
                "principal_outstanding": "Outstanding", "arrears_bucket": "Arrears"},
                key="review_other_loans")
    st.header("Recent transactions")
    show_columns(review["history"], {
        "business_date": "Date", "account_number": "Account", "kind": "Kind",
        "memo": "Memo", "amount": "Amount"}, key="review_history")
    product = bank.loans.products().set_index("code").loc[loan["product_code"]]
    lo, hi = product["rate_min_percent"], product["rate_max_percent"]
    approve, reject = st.columns(2)
    with approve:
        rate = st.text_input(f"Annual rate % ({lo} to {hi})", value=str(hi),
                             key=f"review_rate_{lid}")
        if st.button("Approve", type="primary", key=f"review_approve_{lid}"):
            try:
                bank.loans.approve(actor, lid, annual_rate_percent=rate)
            except BankError as exc:
                show_error(exc)
            else:
                flash(f"Loan {lid} approved at {rate} %.")
    with reject:
        reason = st.text_input("Reason for rejecting", key=f"review_reason_{lid}")
        if st.button("Reject", key=f"review_reject_{lid}"):
            try:
                bank.loans.reject(actor, lid, reason=reason)
            except BankError as exc:
                show_error(exc)
            else:
                flash(f"Loan {lid} rejected.")


def _payouts(bank, actor):
    from bankms.domain.errors import BankError
    from pages.common import show_error
    from pages.loan_forms import flash

    approved = bank.loans.list(actor, status="approved")
    if approved.empty:
        st.info("No approved loans are waiting to be paid out.")
        return
    lid = _pick(approved, "Approved loan", "payout_pick")
    loan = approved[approved["loan_id"] == lid].iloc[0]
    accounts = bank.accounts.list(actor, int(loan["customer_id"]))
    accounts = accounts[accounts["status"].isin(["active", "dormant"])]
    if accounts.empty:
        st.warning("The borrower has no open account to pay into; open one first.")
        return
    options = {r.account_number: f"{r.name} {r.account_number}" for r in accounts.itertuples()}
    number = st.selectbox("Pay into (instalments are collected from here too)", list(options),
                          format_func=options.get, key=f"payout_account_{lid}")
    if st.button("Pay out", type="primary", key=f"payout_go_{lid}"):
        try:
            receipt = bank.loans.disburse(actor, lid, number)
        except BankError as exc:
            show_error(exc)
        else:
            flash(f"Loan {lid} paid out into {number} (transaction {receipt.transaction_id}).")


def _arrears(bank, actor):
    from bankms.domain.errors import BankError
    from pages.common import show_error
    from pages.loan_forms import flash
    from pages.tables import show_columns

    active = bank.loans.list(actor, status="active").sort_values(
        "days_past_due", ascending=False)
    if active.empty:
        st.info("No active loans.")
        return
    show_columns(active, {
        "loan_id": "Loan", "holder": "Borrower", "principal_outstanding": "Outstanding",
        "days_past_due": "Days past due", "arrears_bucket": "Bucket"},
        key="arrears_table")
    late = active[active["days_past_due"] > 0]
    if late.empty:
        st.caption("No loan is in arrears.")
        return
    lid = _pick(late, "Write off", "writeoff_pick")
    reason = st.text_input("Reason for the write-off", key=f"writeoff_reason_{lid}")
    if st.button("Write off", key=f"writeoff_go_{lid}"):
        try:
            result = bank.loans.write_off(actor, lid, reason=reason)
        except BankError as exc:
            show_error(exc)
        else:
            from pages.daily_common import unless_waiting
            flash(unless_waiting(f"Loan {lid} written off.")(result))


def _corrections(bank, actor):
    """Managers correct a loan with a reason: reverse one repayment (the loan is replayed
    without it) or undo a payout that took no repayment."""
    from bankms.domain.errors import BankError
    from pages.common import show_error
    from pages.loan_forms import flash, loan_by_number, show_history

    loan = loan_by_number(bank, actor, "correct_loan")
    if loan is None:
        return
    lid = loan["loan_id"]
    st.caption(f"Loan {lid} · {md(loan['holder'])} · status {loan['status'].replace('_', ' ')}")
    show_history(bank, actor, lid, key=f"correct_history_{lid}")
    history = bank.loans.history(actor, lid)
    payments = history[history["event"].isin(["manual", "cash", "automatic"])
                       & ~history["reversed"].astype(bool)]
    reason = st.text_input("Reason for the correction", key=f"correct_reason_{lid}")
    left, right = st.columns(2)
    with left:
        if not payments.empty:
            labels = {int(r.transaction_id): f"{r.value_date} · transaction {r.transaction_id}"
                                             f" · {r.amount}" for r in payments.itertuples()}
            tid = st.selectbox("Repayment", list(labels), format_func=labels.get,
                               key=f"correct_tid_{lid}")
            if st.button("Reverse repayment", key=f"correct_reverse_{lid}"):
                try:
                    outcome = bank.loans.reverse_repayment(actor, lid, tid, reason)
                except BankError as exc:
                    show_error(exc)
                else:
                    flash(_waits(outcome) or f"Repayment {tid} of loan {lid} reversed.")
    with right:
        if loan["status"] == "active" and payments.empty:
            if st.button("Undo disbursement", key=f"correct_undo_{lid}"):
                try:
                    outcome = bank.loans.undo_disbursement(actor, lid, reason)
                except BankError as exc:
                    show_error(exc)
                else:
                    flash(_waits(outcome)
                          or f"Loan {lid} is approved again; its payout was reversed.")


def _waits(outcome) -> str:
    """The notice for a correction that waits for a second manager, else an empty string."""
    from bankms.services.approvals import PendingApproval

    if isinstance(outcome, PendingApproval):
        return (f"Above the four-eyes limit: request {outcome.request_id} waits for "
                "another manager's approval.")
    return ""


def _provisions(bank, actor):
    """The provisioning report (issue 9): by arrears bucket, what the rates require now and
    what the last end of day booked in GL1290."""
    from pages.common import money
    from pages.tables import show_columns
    from pages.reports_dashboard import csv_button

    df = bank.reports.provisioning(actor)
    required, booked = int(df["required_cents"].sum()), int(df["booked_cents"].sum())
    left, middle, right = st.columns(3)
    left.metric("Provision required", money(required), border=True)
    middle.metric("Provision booked", money(booked), border=True,
                  help="The loan-loss provision (GL1290) as the last end of day set it.")
    right.metric("Difference", money(required - booked), border=True,
                 help="Booked by the next end of day: loans moved, or a rate changed, since.")
    show_columns(df, {"bucket": "Days past due", "loans": "Loans",
                                  "outstanding": "Outstanding principal",
                                  "rate_percent": "Provision rate",
                                  "required": "Provision required",
                                  "booked": "Provision booked", "difference": "Difference"},
                 key="provision_table")
    st.caption("Rates are the settings loan_provision_bp_* (hundredths of a percent).")
    csv_button(df, "provisioning", key="csv_provisioning", label="Provisioning report as CSV")


def render() -> None:
    from pages.common import current_actor, get_bank, lazy_tabs
    from pages.loan_forms import show_flash

    actor = current_actor()
    if actor is None or actor.role != "manager":
        st.stop()
    bank = get_bank()
    st.title("Loan review")
    show_flash()
    # Only the open tab runs: the arrears table, the corrections and the provisioning report
    # are drawn when their tab is opened (the page took 1.2 times the one-line page with all
    # five tabs drawn at once).
    lazy_tabs({"Applications": lambda: _applications(bank, actor),
               "Pay out": lambda: _payouts(bank, actor),
               "Arrears": lambda: _arrears(bank, actor),
               "Corrections": lambda: _corrections(bank, actor),
               "Provisions": lambda: _provisions(bank, actor)}, key=TAB,
              keep=("Applications", "Pay out", "Arrears", "Corrections"))
