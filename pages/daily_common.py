"""Helpers for the daily-work pages (customers, accounts, cash, approvals, self-service).

Only functions live here (no PAGE), so running this file alone draws nothing. The review/confirm
steps keep their state in st.session_state: a review holds the form instance's idempotency key,
so a confirm repeated by a double click, a rerun or a refresh posts once, and the review is
taken out of the session before posting, so a second click finds nothing to confirm.

Runs of one session overlap: with fastReruns (the default) a click that arrives while a run is
blocked in a bank call starts a new run on another thread at once and tells the old one to
stop, which it does at its next Streamlit call, and reading or writing st.session_state counts
as one. So the old run is stopped just after the bank call returns, before it can record what
happened (seen in the browser: five quick clicks on Confirm posted once but left the page on an
empty form). Hence every action here runs as a job: a plain dict put in the session before the
bank call and filled in after it without touching st.session_state; the next run to draw the
page (the old run's own rerun, or the run that replaced it) waits for the job to finish and
applies its outcome, in steps that are safe to repeat.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import time

import pandas as pd
import streamlit as st

from bankms.services.approvals import PendingApproval
from bankms.domain.errors import BankError
from bankms.domain.money import to_cents
from bankms.reporting.receipts import receipt_lines, receipt_pdf
from pages.common import current_actor, form_key, money, reset_form_key, show_error
from pages.text import md, plain_table  # noqa: F401 - md is used by pages as dc.md

STAFF = ("teller", "manager")


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


# -- actions as jobs (see the module docstring) ------------------------------------------------
JOB_WAIT_S = 30.0


def run_job(name: str, fn, *, on_success=None, message=None, inline_errors=True) -> None:
    """Run fn() (bank calls only: no st.* inside, since any of them may stop this run) for
    page `name`. Afterwards the page reruns and the next run
    calls on_success(result) and shows message (text or a function of the result). A refusal
    is shown right here when inline_errors and this run is still the one being drawn;
    otherwise the next run leaves it for show_stashed_error(name)."""
    job = {"done": False, "on_success": on_success, "message": message}
    st.session_state[f"_job_{name}"] = job  # if this run is stopped here, nothing has run
    try:
        job["result"] = fn()
    except Exception as exc:  # noqa: BLE001 - shown in plain words by show_error
        job["error"] = exc
    finally:
        job["done"] = True
    if "error" in job and inline_errors:
        show_error(job["error"])
        job["shown"] = True
        return
    st.rerun()


def settle_job(name: str) -> None:
    """Call before drawing a page: wait for a job of an overlapping run, then apply it."""
    slot = f"_job_{name}"
    job = st.session_state.get(slot)
    if job is None:
        return
    if not job["done"]:
        with st.spinner("Working…"):
            deadline = time.monotonic() + JOB_WAIT_S
            while not job["done"] and time.monotonic() < deadline:
                time.sleep(0.05)
        if not job["done"]:
            st.session_state.pop(slot, None)
            st.warning("An earlier request is still being processed. Check the result before "
                       "you repeat it.")
            return
    if not job.get("applied"):
        if "error" in job:
            if not job.get("shown"):
                st.session_state[f"_error_{name}"] = job["error"]
        elif "result" in job:
            if job["on_success"] is not None:
                job["on_success"](job["result"])
            message = job["message"]
            if message is not None:
                flash(message(job["result"]) if callable(message) else message)
        job["applied"] = True
    st.session_state.pop(slot, None)


def act(name: str, fn, message, on_success=None) -> None:
    """A page action with a success message; a refusal is shown where it was asked for.
    fn must only call bankms: anything for the session goes in on_success(result)."""
    run_job(name, fn, message=message, on_success=on_success)


def unless_waiting(message):
    """A success message for a call that may instead wait for a second manager (it returned a
    PendingApproval): then the message says so. message is text or a function of the result."""
    def text(result):
        if isinstance(result, PendingApproval):
            return (f"Request {result.request_id} waits for another manager's approval "
                    "(Approvals page); nothing has changed yet.")
        return message(result) if callable(message) else message
    return text


def show_stashed_error(name: str) -> None:
    exc = st.session_state.pop(f"_error_{name}", None)
    if exc is not None:
        show_error(exc)


# -- review / confirm ---------------------------------------------------------------------------
def request_review(name: str, typed: dict, make_review) -> None:
    """The Review button was clicked: keep what was typed (to refill the form after
    'Change'), ask bankms for the review, and show it, or the refusal beside the form."""
    save_draft(name, typed)
    try:
        review = make_review()
    except BankError as exc:
        show_error(exc)
        return
    clear_result(name)
    begin_review(name, review, typed)
    st.rerun()


def begin_review(name: str, review: dict, typed: dict) -> None:
    st.session_state[f"_review_{name}"] = {**review, "key": review_key(form_key(name), typed)}


def review_key(form_key_: str, typed: dict) -> str:
    """The idempotency key of one review: the form's key joined with what was typed (the
    request), never with what the review worked out from the bank's state (available funds,
    warnings), which changes once the payment posts. The form's key lives in the database per
    signed-in session (common.form_key), which every tab of the browser shares; without the
    request, two tabs reviewing two different payments held one key and the second confirm was
    refused as a reused key. The same request reviewed again, in this process or in another
    after a failover, gets the same key and so posts once; the amount counts in cents, so
    "250" and "250.00" are one request."""
    request = dict(typed)
    with contextlib.suppress(BankError, KeyError, TypeError, ValueError):
        request["amount"] = to_cents(request["amount"])
    content = json.dumps(request, sort_keys=True, default=str)
    return hashlib.sha256(f"{form_key_}\x1f{content}".encode()).hexdigest()[:32]


def current_review(name: str):
    return st.session_state.get(f"_review_{name}")


def drop_review(name: str) -> None:
    st.session_state.pop(f"_review_{name}", None)


def confirm_review(name: str, post) -> None:
    """The Confirm button was clicked: post(review) with the review's idempotency key. The
    review stays until the post succeeded, so a repeat finds the same key (and gets the same
    receipt); a refusal is shown beside the review."""
    review = current_review(name)
    if review is None:
        return
    run_job(name, lambda: post(review), on_success=lambda result: finish(name, result),
            inline_errors=False)


def finish(name: str, result) -> None:
    """After a successful post: the result to show, no review, a new form instance."""
    st.session_state[f"_result_{name}"] = result
    drop_review(name)
    st.session_state.pop(f"_draft_{name}", None)
    reset_form_key(name)


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
def show_table(df: pd.DataFrame, columns: dict, money_columns=(), empty="Nothing to show.",
               key=None) -> None:
    """The given columns (most important first: a phone shows only the first few) under the
    given headers, through pages.tables.show_table (money, dates and ids formatted there)."""
    from pages.tables import show_columns

    show_columns(df, columns, money=money_columns, empty=empty, key=key)


def show_pairs(rows) -> None:
    """(label, value) rows as a plain two-column table: real text (not a canvas), so it wraps
    on a phone, reads aloud and can be found by a browser test."""
    plain_table(pd.DataFrame([(str(a), str(b)) for a, b in rows], columns=["", " "]),
                hide_index=True, hide_header=True)


def describe_review(review: dict) -> list:
    """The rows a person checks before confirming a payment."""
    from bankms.domain.labels import kind_label

    rows = [("Type", kind_label(review["kind"])), ("Amount", money(review["amount"]))]
    if review.get("source_account"):
        rows.append(("From", f"{review['source_account']} ({review['source_holder']})"))
    if review.get("target_account"):
        rows.append(("To", f"{review['target_account']} ({review['target_holder']})"))
    if review.get("memo"):
        rows.append(("Memo", review["memo"]))
    return rows


def show_warnings(review: dict) -> None:
    """What Confirm would meet (a review's `warnings`: funds, daily limit, four-eyes), each as
    a warning above the Confirm button."""
    for warning in review.get("warnings") or ():
        st.warning(md(warning), icon=":material/warning:")


def show_payment_result(bank, actor, result, *, key_prefix: str) -> None:
    """A posted payment's receipt (with its PDF) or the state of one waiting for approval."""
    if isinstance(result, PendingApproval):
        amount = money(result.amount)
        if result.status == "approved":
            st.success(f"Request {result.request_id} for {md(amount)} was approved and posted as "
                       f"transaction {result.transaction_id}.")
        elif result.status == "rejected":
            st.warning(f"Request {result.request_id} for {md(amount)} was rejected.")
        else:
            st.info(f"Waiting for approval: request {result.request_id} for {md(amount)} is above "
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
