"""Standing orders on screen, shared by the customers' and the tellers' pages: the list with the
next payment date and the last outcome, one order's attempts with their reasons, cancelling,
and the set-up form with its review and confirm steps (the review keeps one idempotency key
across reruns, as the payment forms do). Only functions live here; running this file alone
draws nothing."""
from __future__ import annotations

import datetime as dt

import streamlit as st

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
NO_END, END_DATE, COUNT = "No end", "Until a date", "A number of payments"
LIST_COLUMNS = {"id": "Order", "source_account": "From", "target_account": "To",
                "amount_cents": "Amount", "schedule": "Schedule", "next_due_date": "Next payment",
                "status": "Status", "last_outcome": "Last outcome", "last_reason": "Reason",
                "failures": "Failures"}
RUN_COLUMNS = {"attempt_date": "Attempted", "due_date": "Due", "outcome": "Outcome",
               "reason": "Reason", "amount_cents": "Amount", "transaction_id": "Transaction"}
# Words for the stored codes: an attempt that failed is tried again (retry_days), one missed
# is not.
OUTCOME_LABELS = {"executed": "Paid", "failed": "Failed, will retry", "missed": "Missed"}
STATUS_LABELS = {"active": "Active", "cancelled": "Cancelled", "finished": "Finished"}
FAILURE_COLUMNS = {"attempt_date": "Attempted", "due_date": "Due", "order_id": "Order",
                   "customer_id": "Customer", "source_account": "From", "target_account": "To",
                   "amount_cents": "Amount", "outcome": "Outcome", "reason": "Reason"}


def _in_words(df, outcome_column):
    """A copy with the outcome in words and no reason shown as blank (not 'None')."""
    reason = "last_reason" if outcome_column == "last_outcome" else "reason"
    return df.assign(**{outcome_column: df[outcome_column].map(
        lambda v: OUTCOME_LABELS.get(v, v), na_action="ignore"),
        reason: df[reason].astype(object).where(df[reason].notna(), "")})


def orders(bank, actor, prefix, customer_id=None) -> None:
    """The customer's orders; pick one to see its attempts or cancel it."""
    from bankms.domain.errors import BankError
    from pages import daily_common as dc
    from pages.common import show_error

    try:
        df = bank.standing_orders.list(actor, customer_id)
    except BankError as exc:
        show_error(exc)
        return
    dc.show_table(_in_words(df, "last_outcome").assign(status=df["status"].map(
        lambda v: STATUS_LABELS.get(v, v))), LIST_COLUMNS, money_columns=("amount_cents",),
        empty="No standing orders yet.", key=f"{prefix}_list")
    if df.empty:
        return
    ids = [int(i) for i in df["id"]]
    chosen = st.selectbox("Order", ids, key=f"{prefix}_order",
                          format_func=lambda i: f"{i}: " + df.loc[df["id"] == i,
                                                                  "schedule"].iloc[0])
    dc.show_table(_in_words(bank.standing_orders.runs(actor, chosen), "outcome"), RUN_COLUMNS,
                  money_columns=("amount_cents",), empty="Not attempted yet.",
                  key=f"{prefix}_runs")
    if df.loc[df["id"] == chosen, "status"].iloc[0] != "active":
        return
    with st.form(f"{prefix}_cancel_form"):
        reason = st.text_input("Reason for cancelling", key=f"{prefix}_cancel_reason")
        go = st.form_submit_button("Cancel this standing order", key=f"{prefix}_cancel",
                                   icon=":material/cancel:")
    if go:
        dc.act(prefix, lambda: bank.standing_orders.cancel(actor, chosen, reason),
               f"Standing order {chosen} is cancelled; nothing more will be paid.")


def payable_accounts(accounts):
    """The accounts a standing order may pay from: open (active or dormant) and of a kind
    that standing orders serve (not a term deposit, whose money only its service moves)."""
    from bankms.services.standing_orders import ORDER_KINDS

    return accounts[accounts["status"].isin(["active", "dormant"])
                    & accounts["kind"].isin(ORDER_KINDS)]


def form(bank, actor, accounts, name) -> None:
    """The set-up form, its review, and the result, for form `name`."""
    from pages import daily_common as dc

    dc.settle_job(name)
    review = dc.current_review(name)
    if review is not None:
        _review(bank, actor, review, name)
        return
    result = dc.result_of(name)
    if result is not None:
        st.success(f"Standing order {result['id']} is set up: {result['schedule'].lower()}, "
                   f"first payment on {result['next_due_date']}.",
                   icon=":material/check_circle:")
        if st.button("Set up another", key=f"{name}_new", icon=":material/add:"):
            dc.clear_result(name)
            st.rerun()
        return
    _form(bank, actor, accounts, name)


def _form(bank, actor, accounts, name):
    from pages import daily_common as dc

    typed = dc.draft(name)
    numbers = list(accounts["account_number"])
    names = dict(zip(accounts["account_number"], accounts["name"]))
    frequency = st.radio("Frequency", ["Monthly", "Weekly"], horizontal=True,
                         key=f"{name}_frequency")
    ending = st.radio("Ends", [NO_END, END_DATE, COUNT], horizontal=True, key=f"{name}_ends")
    with st.form(f"{name}_form_{frequency}_{ending}"):
        source = st.selectbox("From", numbers, format_func=lambda n: f"{names[n]} {n}",
                              key=f"{name}_source",
                              index=numbers.index(typed["source"])
                              if typed.get("source") in numbers else 0)
        target = st.text_input("To account number", value=typed.get("target", ""),
                               key=f"{name}_target")
        amount = st.text_input("Amount", value=typed.get("amount", ""), placeholder="250.00",
                               key=f"{name}_amount")
        day_of_month = weekday = None
        if frequency == "Monthly":
            day_of_month = st.number_input(
                "Day of the month", min_value=1, max_value=31, step=1,
                value=int(typed.get("day_of_month") or 1), key=f"{name}_day",
                help="29th-31st: in shorter months the payment goes on the month's last day.")
        else:
            weekday = st.selectbox("Weekday", list(range(7)), format_func=WEEKDAYS.__getitem__,
                                   key=f"{name}_weekday")
        start = st.date_input("First payment on or after", value=bank.business_date,
                              min_value=bank.business_date, key=f"{name}_start")
        end_date = count = None
        if ending == END_DATE:
            end_date = st.date_input("Last payment on or before",
                                     value=bank.business_date + dt.timedelta(days=365),
                                     key=f"{name}_end")
        elif ending == COUNT:
            count = st.number_input("Number of payments", min_value=1, max_value=1200, step=1,
                                    value=12, key=f"{name}_count")
        memo = st.text_input("Memo (optional)", value=typed.get("memo", ""), key=f"{name}_memo")
        submitted = st.form_submit_button("Review", type="primary", key=f"{name}_review")
    st.caption("End of day pays standing orders due that day. If the money is not there, it "
               "tries again on the next two days; then that payment is missed and your "
               "account's product may charge a fee.")
    if submitted:
        fields = dict(source_account=source, target_account=target or "", amount=amount,
                      frequency=frequency.lower(), day_of_month=day_of_month, weekday=weekday,
                      start_date=start, end_date=end_date, count=count, memo=memo)
        dc.request_review(name, {"source": source, "target": target or "", "amount": amount,
                                 "memo": memo, "day_of_month": day_of_month},
                          lambda: {**bank.standing_orders.review(actor, **fields),
                                   "fields": fields})


def _review(bank, actor, review, name):
    from pages import daily_common as dc
    from pages.common import money

    st.header("Check and confirm")
    ends = ("no end date" if review["end_date"] is None and review["count"] is None else
            f"until {review['end_date']}" if review["end_date"] is not None else
            f"after {review['count']} payments")
    dc.show_pairs([("Amount", money(review["amount"])),
                   ("From", review["source_account"]),
                   ("To", f"{review['target_account']} ({review['target_holder']})"),
                   ("Schedule", review["schedule"]),
                   ("First payment", review["first_due_date"]), ("Ends", ends)]
                  + ([("Memo", review["memo"])] if review["memo"] else []))
    dc.show_warnings(review)
    tag = review["key"]
    confirm = st.button("Confirm standing order", type="primary", key=f"{name}_confirm_{tag}",
                        icon=":material/check:")
    change = st.button("Change", key=f"{name}_change_{tag}")
    dc.show_stashed_error(name)
    if change:
        dc.drop_review(name)
        st.rerun()
    if confirm:
        dc.confirm_review(name, lambda taken: bank.standing_orders.create(
            actor, idempotency_key=taken["key"], **taken["fields"]))


def failures(bank, actor, prefix) -> None:
    """Staff: failed and missed attempts of the last 31 days, with their reasons."""
    from pages import daily_common as dc

    dc.show_table(_in_words(bank.standing_orders.failures(actor), "outcome"), FAILURE_COLUMNS,
                  money_columns=("amount_cents",),
                  empty="No standing order failed in the last 31 days.", key=f"{prefix}_fail")
