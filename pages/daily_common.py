"""Helpers for the daily-work pages (customers, accounts, cash, approvals, self-service).

Only functions live here (no PAGE), so running this file alone draws nothing. The review/confirm
steps keep their state in st.session_state: a review holds the form instance's idempotency key,
so a confirm repeated by a double click, a rerun or a refresh posts once, and the review is
taken out of the session before posting, so a second click finds nothing to confirm.

Runs of one session overlap: with fastReruns (the default) a click that arrives while a run is
blocked in a bank call starts a new run on another thread at once, and that run would draw the
page before the first one has stored what it did (seen in the browser: five quick clicks on
Confirm posted once but left the page on an empty form). So an action marks itself in flight,
and a run that finds the mark waits for it to clear before drawing.
"""
from __future__ import annotations

import time

import pandas as pd
import streamlit as st

from bankms.approvals import PendingApproval
from bankms.errors import BankError
from bankms.receipts import receipt_lines, receipt_pdf
from pages.common import current_actor, form_key, money, reset_form_key, show_error

STAFF = ("teller", "manager")
KIND_LABELS = {"deposit": "Deposit", "withdrawal": "Withdrawal", "transfer": "Transfer",
               "reversal": "Reversal"}


def signed_in(roles):
    """The signed-in actor if their role may see this page; otherwise the page stops."""
    actor = current_actor()
    if actor is None or actor.role not in roles:
        st.stop()
    return actor


# -- one-off messages that survive the st.rerun() after a successful action -------------------
def flash(message: str, kind: str = "success") -> None:
    st.session_state["_daily_flash"] = (kind, message)


def show_flash() -> None:
    item = st.session_state.pop("_daily_flash", None)
    if item:
        kind, message = item
        getattr(st, kind)(message)


# -- overlapping runs ---------------------------------------------------------------------------
INFLIGHT_WAIT_S = 30.0


def wait_for_other_run(name: str) -> None:
    """If another run of this session is still carrying out an action of `name`, wait for it
    (up to INFLIGHT_WAIT_S), so this run draws the state that action left."""
    slot = f"_inflight_{name}"
    if not st.session_state.get(slot):
        return
    with st.spinner("Working…"):
        deadline = time.monotonic() + INFLIGHT_WAIT_S
        while st.session_state.get(slot) and time.monotonic() < deadline:
            time.sleep(0.05)


def act(name: str, fn, message) -> None:
    """Run an action fn() of a page: on success a message (text, or a function of fn's result)
    for the next run and a rerun; a refusal is shown where the action was asked for (a refusal
    changes nothing)."""
    slot = f"_inflight_{name}"
    st.session_state[slot] = True
    try:
        result = fn()
    except BankError as exc:
        st.session_state.pop(slot, None)
        show_error(exc)
        return
    except BaseException:
        st.session_state.pop(slot, None)
        raise
    flash(message(result) if callable(message) else message)
    st.session_state.pop(slot, None)
    st.rerun()


# -- review / confirm ---------------------------------------------------------------------------
def begin_review(name: str, review: dict) -> None:
    st.session_state[f"_review_{name}"] = {**review, "key": form_key(name)}


def current_review(name: str):
    return st.session_state.get(f"_review_{name}")


def take_review(name: str):
    """Remove and return the review; a repeated confirm then has nothing left to post."""
    return st.session_state.pop(f"_review_{name}", None)


def restore_review(name: str, review: dict) -> None:
    st.session_state[f"_review_{name}"] = review


def confirm_review(name: str, post) -> None:
    """The Confirm button was clicked: post the review (post(review) -> result) once. The
    outcome (result, or the refusal with the review put back) is left in the session for the
    next run, whichever run draws it."""
    taken = take_review(name)
    if taken is None:
        return
    slot = f"_inflight_{name}"
    st.session_state[slot] = True
    try:
        result = post(taken)
    except Exception as exc:  # noqa: BLE001 - shown by show_error, in plain words
        restore_review(name, taken)
        st.session_state[f"_error_{name}"] = exc
    else:
        finish(name, result)
    finally:
        st.session_state.pop(slot, None)
    st.rerun()


def show_stashed_error(name: str) -> None:
    exc = st.session_state.pop(f"_error_{name}", None)
    if exc is not None:
        show_error(exc)


def finish(name: str, result) -> None:
    """After a successful post: a new form instance (new key) and the result to show."""
    reset_form_key(name)
    st.session_state.pop(f"_draft_{name}", None)
    st.session_state[f"_result_{name}"] = result


def draft(name: str) -> dict:
    """What was typed into a form before its review, to refill it after 'Change'."""
    return st.session_state.get(f"_draft_{name}", {})


def save_draft(name: str, values: dict) -> None:
    st.session_state[f"_draft_{name}"] = values


def result_of(name: str):
    return st.session_state.get(f"_result_{name}")


def clear_result(name: str) -> None:
    st.session_state.pop(f"_result_{name}", None)


# -- display ------------------------------------------------------------------------------------
def money_table(df: pd.DataFrame, columns: dict, money_columns=()) -> pd.DataFrame:
    """A copy of df with the given columns renamed for people and amounts as '$1,234.50'."""
    out = df[list(columns)].copy()
    for column in money_columns:
        out[column] = [None if pd.isna(v) else money(v) for v in out[column].astype(object)]
    return out.rename(columns=columns)


def show_table(df: pd.DataFrame, columns: dict, money_columns=(), empty="Nothing to show.",
               key=None) -> None:
    if df is None or len(df) == 0:
        st.caption(empty)
        return
    st.dataframe(money_table(df, columns, money_columns), hide_index=True, width="stretch",
                 key=key)


def show_pairs(rows) -> None:
    """(label, value) rows as a plain two-column table: real text (not a canvas), so it wraps
    on a phone, reads aloud and can be found by a browser test."""
    st.table(pd.DataFrame([(str(a), str(b)) for a, b in rows], columns=["", " "]),
             hide_index=True, hide_header=True)


def describe_review(review: dict) -> list:
    """The rows a person checks before confirming a payment."""
    rows = [("Type", KIND_LABELS[review["kind"]]), ("Amount", money(review["amount"]))]
    if review.get("source_account"):
        rows.append(("From", f"{review['source_account']} ({review['source_holder']})"))
    if review.get("target_account"):
        rows.append(("To", f"{review['target_account']} ({review['target_holder']})"))
    if review.get("memo"):
        rows.append(("Memo", review["memo"]))
    return rows


def show_payment_result(bank, actor, result, *, key_prefix: str) -> None:
    """A posted payment's receipt (with its PDF) or the state of one waiting for approval."""
    if isinstance(result, PendingApproval):
        amount = money(result.amount)
        if result.status == "approved":
            st.success(f"Request {result.request_id} for {amount} was approved and posted as "
                       f"transaction {result.transaction_id}.")
        elif result.status == "rejected":
            st.warning(f"Request {result.request_id} for {amount} was rejected.")
        else:
            st.info(f"Waiting for approval: request {result.request_id} for {amount} is above "
                    "the four-eyes limit. A manager must approve it before it posts; any money "
                    "leaving an account is on hold until then.", icon=":material/schedule:")
        return
    try:
        details = bank.payments.receipt_details(actor, result.transaction_id)
    except BankError as exc:
        show_error(exc)
        return
    st.success(f"Done: transaction {result.transaction_id} posted.",
               icon=":material/check_circle:")
    show_pairs(receipt_lines(details))
    st.download_button("Download receipt (PDF)", data=receipt_pdf(details),
                       file_name=f"receipt-{result.transaction_id}.pdf",
                       mime="application/pdf", on_click="ignore",
                       key=f"{key_prefix}_pdf_{result.transaction_id}",
                       icon=":material/download:")
