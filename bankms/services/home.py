"""What each role sees first when they sign in: the figures and short lists of their home page.

`bank.home.customer(actor)`, `.teller(actor)` and `.manager(actor)` each gather, in a few
queries, what that person acts on first (a customer's balances, next instalment, latest
postings and anything waiting; a teller's queue and the business date; a manager's approvals,
alerts, key figures, end-of-day status and the last verify). Each call checks the actor with
the same permission the underlying data needs, and reads through the services that own that
data (accounts, loans, approvals, reports...) wherever one answers the question; the few
queries here are the ones no service offers (a customer's own pending requests and holds).
Values come back plain: dicts, ints in cents beside Decimal amounts, and DataFrames whose
column names follow pages/tables.py's conventions.

`audit.verify()` reads every posting and both hash chains: on the default demo bank (200
customers, 6 months, about 82,000 postings) it took 0.2-0.3 s warm on this 2-core machine when
it was quiet (1-3 s the first time after opening the file, and 2 s warm while other work kept
the cores busy), and on a demo bank of 5,000 customers over 12 months (3 million postings)
26-54 s (benchmarks/bench_home.py prints it). So a manager's home never runs it while the page waits: `verify`
returns the last result this process kept, with when it was checked, and starts a new check on
a thread of its own when that result is older than `VERIFY_MAX_AGE_S` (or on request).
"""
from __future__ import annotations

import datetime as dt
import threading
import time

import pandas as pd

from .ledger import utcnow
from ..domain.money import format_cents, to_money

# How many rows each short list on a home page holds; the page that acts on them has the rest.
HOME_ROWS = 5
# A term deposit maturing within this many days (a month) is shown to its holder.
MATURING_SOON_DAYS = 31
# Failed or missed standing orders this many days back are in a teller's queue.
FAILED_ORDERS_DAYS = 7
# The manager's key figures: this many days against the same number of days before.
KEY_FIGURES_DAYS = 30
# analytics.key_figures rows shown on the manager's home (the dashboard has them all).
KEY_FIGURES = ("Total deposits", "Loans outstanding", "Non-performing loans",
               "Active customers", "New customers")
# A verify result older than this is run again when a manager's home asks for it.
VERIFY_MAX_AGE_S = 600


def _money(df: pd.DataFrame, *cents_columns) -> pd.DataFrame:
    """Add a Decimal column beside each `*_cents` column (named without the suffix)."""
    for column in cents_columns:
        df[column.removesuffix("_cents")] = [None if pd.isna(c) else to_money(int(c))
                                             for c in df[column]]
    return df


def _labelled(activity: pd.DataFrame) -> pd.DataFrame:
    """customers.overview's activity with the `label` people read (bankms.domain.labels) beside each
    posting's kind, unless the overview already gives one."""
    from ..domain.labels import transaction_label

    if "label" not in activity.columns:
        channels = activity["channel"] if "channel" in activity.columns else \
            [None] * len(activity)
        activity.insert(activity.columns.get_loc("kind") + 1, "label", [
            transaction_label(k, c, int(a)) for k, c, a in
            zip(activity["kind"], channels, activity["amount_cents"])])
    return activity


def _day(value):
    """A DATE read through pandas comes back as a midnight Timestamp: the date alone."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    return value.date() if hasattr(value, "date") else value


class Home:
    def __init__(self, bank):
        self._bank = bank
        self._verified: dict | None = None
        self._verify_lock = threading.Lock()
        self._verifying: threading.Thread | None = None

    # -- customer -------------------------------------------------------------------------------
    def customer(self, actor, customer_id=None, *, rows=HOME_ROWS) -> dict:
        """A customer's home (a customer sees their own; staff may name one):
        {"customer_id", "full_name", "status", "business_date",
         "accounts": DataFrame of open accounts (account_number, name, kind, status,
             balance_cents, holds_cents, overdraft_limit_cents, available_cents and the Decimal
             balance / available; available as accounts.list defines it),
         "total_balance_cents" (over those accounts), "total_available_cents" (over those
             but term deposits, whose money waits for maturity),
         "next_instalment": {"loan_id", "due_date", "amount_cents", "amount",
             "overdue_cents", "overdue", "account_number"} of the earliest due active loan, or
             None,
         "activity": DataFrame of the latest `rows` postings on any of their accounts, newest
             first (customers.overview's: transaction_id, posted_at, account_number, kind,
             label, memo, amount_cents, amount),
         "pending": list of {"topic", "message"} (topic: "status", "approval", "loan",
             "standing_order", "term_deposit", "account") in that order}.
        PermissionDenied for another customer's home; CustomerNotFound."""
        bank = self._bank
        if customer_id is None:
            customer_id = getattr(actor, "customer_id", None)
        view = bank.customers.overview(actor, customer_id, activity_limit=rows)
        profile, accounts, loans = view["profile"], view["accounts"], view["loans"]
        accounts = accounts[accounts["status"] != "closed"].reset_index(drop=True)
        return {
            "customer_id": profile["id"], "full_name": profile["full_name"],
            "status": profile["status"], "business_date": bank.business_date,
            "accounts": accounts[["account_number", "name", "kind", "status", "balance_cents",
                                  "holds_cents", "overdraft_limit_cents", "available_cents",
                                  "balance", "available"]],
            "total_balance_cents": int(accounts["balance_cents"].sum()),
            # Money in a term deposit cannot leave before maturity (term_deposits.py).
            "total_available_cents": int(accounts.loc[accounts["kind"] != "term_deposit",
                                                      "available_cents"].sum()),
            "next_instalment": self._next_instalment(actor, loans),
            "activity": _labelled(view["activity"]),
            "pending": self._customer_pending(actor, profile, accounts, loans),
        }

    def _next_instalment(self, actor, loans) -> dict | None:
        """The active loan whose instalment comes first: overdue loans before the others,
        then by the next due date. From each loan's schedule (loans.schedule), read as
        Loans._figures reads it: the next instalment is the first unpaid one due on or after
        the business date; overdue is what is unpaid of earlier ones, with unpaid fees."""
        if loans is None:
            return None
        today = self._bank.business_date
        found = []
        for r in loans[loans["status"] == "active"].itertuples():
            schedule = self._bank.loans.schedule(actor, int(r.loan_id))
            unpaid = schedule["payment_cents"] - schedule["paid_cents"]
            due = pd.Series([_day(d) for d in schedule["due_date"]], index=schedule.index)
            overdue_cents = int(unpaid[(due < today) & (unpaid > 0)].sum()
                                + (schedule["fee_cents"] - schedule["fee_paid_cents"]).sum())
            upcoming = schedule[(due >= today) & (unpaid > 0)]
            if upcoming.empty and not overdue_cents:
                continue
            next_cents = int(unpaid[upcoming.index[0]]) if not upcoming.empty else 0
            found.append({"loan_id": int(r.loan_id),
                          "due_date": due[upcoming.index[0]] if not upcoming.empty else None,
                          "amount_cents": next_cents, "amount": to_money(next_cents),
                          "overdue_cents": overdue_cents, "overdue": to_money(overdue_cents),
                          "account_number": r.account_number})
        found.sort(key=lambda n: (n["overdue_cents"] == 0, n["due_date"] or dt.date.max))
        return found[0] if found else None

    def _customer_pending(self, actor, profile, accounts, loans) -> list[dict]:
        from ..domain.labels import kind_label

        bank = self._bank
        items = []
        if profile["status"] != "active":
            items.append({"topic": "status", "message": {
                "pending": "Your registration is waiting for a teller to check your identity "
                           "documents.",
            }.get(profile["status"], f"Your customer record is {profile['status']}; please "
                                     "contact the bank.")})
        for kind, cents, source, created, held in bank.read(
                "SELECT r.kind, r.amount_cents, r.source_account, r.created_at, "
                "coalesce(sum(h.amount_cents), 0) FROM approval_requests r "
                "LEFT JOIN holds h ON h.approval_id = r.id AND h.released_at IS NULL "
                "WHERE r.status = 'pending' AND (r.source_account IN (SELECT account_number "
                "FROM accounts WHERE customer_id = ?) OR r.target_account IN "
                "(SELECT account_number FROM accounts WHERE customer_id = ?)) "
                "GROUP BY r.id, r.kind, r.amount_cents, r.source_account, r.created_at "
                "ORDER BY r.id", [profile["id"]] * 2):
            message = (f"{kind_label(kind)} of {format_cents(cents)} is waiting for a second "
                       f"approval at the bank (since {created:%d %b %Y})")
            if held:
                message += f"; {format_cents(held)} is held on account {source} until it is decided"
            items.append({"topic": "approval", "message": message + "."})
        items += self._loan_items(loans)
        items += self._standing_order_items(actor, profile["id"])
        if (accounts["kind"] == "term_deposit").any():
            items += self._term_deposit_items(actor, profile["id"])
        for row in accounts.itertuples():
            if row.status in ("frozen", "dormant"):
                items.append({"topic": "account", "message": f"Account {row.account_number} "
                              f"is {row.status}" + (
                                  "; any payment in or out makes it active again."
                                  if row.status == "dormant" else "; please contact the bank.")})
        return items

    @staticmethod
    def _loan_items(loans) -> list[dict]:
        if loans is None:
            return []
        words = {"submitted": "is waiting for the bank's decision",
                 "approved": "is approved and waiting to be paid out"}
        return [{"topic": "loan", "message": f"Loan application {int(r.loan_id)} for "
                 f"{format_cents(int(r.principal_cents))} {words[r.status]}."}
                for r in loans.itertuples() if r.status in words]

    def _standing_order_items(self, actor, cid) -> list[dict]:
        orders = self._bank.standing_orders.list(actor, cid, status="active")
        failed = orders[orders["last_outcome"].isin(["failed", "missed"])]
        return [{"topic": "standing_order", "message":
                 f"Standing order {int(r.id)} of {format_cents(int(r.amount_cents))} to "
                 f"{r.target_account} {r.last_outcome} on {r.last_attempt_date:%d %b %Y}"
                 + (f": {r.last_reason}." if r.last_reason else ".")}
                for r in failed.itertuples()]

    def _term_deposit_items(self, actor, cid) -> list[dict]:
        deposits = self._bank.term_deposits.list(actor, cid)
        soon = self._bank.business_date + dt.timedelta(days=MATURING_SOON_DAYS)
        items = []
        for r in deposits.itertuples():
            maturity = _day(r.maturity_date)
            if r.status == "active" and maturity is not None and maturity <= soon:
                items.append({"topic": "term_deposit", "message":
                              f"Term deposit {r.account_number} matures on "
                              f"{maturity:%d %b %Y}: {format_cents(int(r.payout_cents))} expected "
                              f"({str(r.maturity_instruction).replace('_', ' ')})."})
        return items

    # -- teller ---------------------------------------------------------------------------------
    def teller(self, actor, *, rows=HOME_ROWS) -> dict:
        """A teller's queue (managers may ask too): {"business_date", "calendar_date",
         "signups_total", "signups": DataFrame of the oldest `rows` self-registrations waiting
             (customer_id, full_name, created_at),
         "requests_total", "requests": DataFrame of this teller's own requests waiting for a
             manager (request_id, created_at, kind, amount_cents, amount, source_account,
             target_account, memo),
         "failed_orders_total", "failed_orders": DataFrame of standing-order attempts that
             failed or were missed in the last FAILED_ORDERS_DAYS days, newest first
             (attempt_date, order_id, customer_id, source_account, amount_cents, amount,
             outcome, reason)}. Staff only (PermissionDenied)."""
        from . import businessday

        bank = self._bank
        signups = bank.customers.pending(actor, limit=rows)
        requests = bank.approvals.list(actor, "pending", maker=actor.username)
        failed = bank.standing_orders.failures(
            actor, since=bank.business_date - dt.timedelta(days=FAILED_ORDERS_DAYS))
        failed["attempt_date"] = [_day(d) for d in failed["attempt_date"]]
        return {
            "business_date": bank.business_date,
            "calendar_date": businessday.calendar_date(bank),
            "signups_total": signups["total"],
            "signups": signups["rows"][["customer_id", "full_name", "created_at"]],
            "requests_total": len(requests),
            "requests": requests[["request_id", "created_at", "kind", "label", "amount_cents",
                                  "amount", "source_account", "target_account", "memo"]]
            .head(rows),
            "failed_orders_total": len(failed),
            "failed_orders": _money(failed[["attempt_date", "order_id", "customer_id",
                                            "source_account", "amount_cents", "outcome",
                                            "reason"]].head(rows).copy(), "amount_cents"),
        }

    # -- manager --------------------------------------------------------------------------------
    def manager(self, actor, *, rows=HOME_ROWS) -> dict:
        """A manager's day: {"business_date",
         "approvals_total", "approvals": DataFrame of the oldest `rows` requests waiting for a
             second manager (request_id, created_at, kind, amount_cents, amount, maker, memo,
             own: True where this manager made it and so cannot decide it),
         "alerts_total", "alerts": DataFrame of structuring alerts of the last 30 days
             (customer_id, holder, payments, total, last_at),
         "applications_total" (loan applications waiting for a decision),
         "signups_total" (self-registrations waiting for verification),
         "key_figures": DataFrame (figure, unit, value, previous) of KEY_FIGURES over the
             last KEY_FIGURES_DAYS days against the days before (analytics.key_figures:
             money in cents, percent as Decimal, counts), "key_figures_as_of" (aware UTC:
             when they were computed, as they may be kept up to dashboard_max_age_s like the
             dashboard's), "period_start", "period_end",
         "eod": see `eod_status`}. The last verify comes from `verify` (it may be running).
        Managers only (PermissionDenied, audited)."""
        bank = self._bank
        bank.require(actor, "report.read", entity="report", entity_id="home")
        approvals = bank.approvals.list(actor, "pending")
        approvals = approvals.sort_values("request_id").reset_index(drop=True)
        approvals["own"] = approvals["maker"] == actor.username
        alerts = bank.approvals.structuring_alerts(actor)
        alerts = alerts.sort_values("last_at", ascending=False).reset_index(drop=True)
        figures, period = self._key_figures(actor)
        applications = bank.loans.list(actor, status="submitted") \
            if getattr(bank, "loans", None) else pd.DataFrame()
        return {
            "business_date": bank.business_date,
            "approvals_total": len(approvals),
            "approvals": approvals[["request_id", "created_at", "kind", "label", "amount_cents",
                                    "amount", "maker", "memo", "own"]].head(rows),
            "alerts_total": len(alerts),
            "alerts": alerts[["customer_id", "holder", "payments", "total", "last_at"]]
            .head(rows),
            "applications_total": len(applications),
            "signups_total": bank.customers.pending(actor, limit=1)["total"],
            "key_figures": figures, "key_figures_as_of": bank.reports.as_of(figures),
            "period_start": period.start, "period_end": period.end,
            "eod": self.eod_status(actor),
        }

    def _key_figures(self, actor):
        reports = self._bank.reports
        period = reports.filters(days=KEY_FIGURES_DAYS)
        df = reports.query(actor, "key_figures", period)
        df = df[df["figure"].isin(KEY_FIGURES)].reset_index(drop=True)
        return df[["figure", "unit", "value", "previous"]], period

    def eod_status(self, actor) -> dict:
        """End of day at a glance (managers): {"business_date", "calendar_date",
        "days_behind" (ended days not closed yet), "auto" (automatic end of day on),
        "next_run" (aware, bank zone, or None), "last_run_date" (the last closed business
        date, or None), "last_run_finished_at", "last_auto_outcome" ("ok" / "failed" / None),
        "at_close": sentences on what closing the business date will do (instalments falling
        due, term deposits maturing),
        "due": list of sentences about what needs a manager (days waiting to close, a failed
        automatic run, automatic end of day switched off)}."""
        from .eod import auto as eod_auto
        from .eod.run import recent_runs

        bank = self._bank
        runs = recent_runs(bank, actor, limit=1)
        status = eod_auto.status(bank)
        last = status["last_outcome"]
        due = []
        if status["days_behind"]:
            due.append(f"{status['days_behind']} business day(s) have ended and wait for end "
                       "of day.")
        if last is not None and last["outcome"] == "failed":
            due.append(f"The last automatic end of day failed ({last['ts']:%d %b %Y %H:%M} "
                       f"UTC): {last['after'].get('message', '')}")
        if not status["auto"]:
            due.append("Automatic end of day is off: a manager closes each day.")
        return {
            "business_date": status["business_date"],
            "at_close": self._at_close(status["business_date"]),
            "calendar_date": status["calendar_date"], "days_behind": status["days_behind"],
            "auto": status["auto"], "next_run": status["next_run"],
            "last_run_date": None if runs.empty else runs["business_date"].iloc[0],
            "last_run_finished_at": None if runs.empty else runs["finished_at"].iloc[0],
            "last_auto_outcome": None if last is None else last["outcome"],
            "due": due,
        }

    def _at_close(self, day) -> list[str]:
        """What the next end of day will do that people notice: instalments it collects and
        term deposits it matures (counts, for the manager's plan of the day)."""
        instalments, deposits = self._bank.read_one(
            "SELECT (SELECT count(*) FROM loan_schedule s JOIN loans l ON l.id = s.loan_id "
            "WHERE l.status = 'active' AND s.due_date = ? "
            "AND s.interest_paid_cents + s.principal_paid_cents < s.payment_cents), "
            "(SELECT count(*) FROM term_deposits WHERE status = 'active' "
            "AND maturity_date <= ?)", [day, day])
        said = []
        if instalments:
            said.append(f"{instalments:,} loan instalment(s) fall due and are collected.")
        if deposits:
            said.append(f"{deposits:,} term deposit(s) mature.")
        return said

    def verify(self, actor, *, refresh=False, wait_s=0.0, max_age_s=VERIFY_MAX_AGE_S) -> dict:
        """The last `audit.verify()` this process ran (managers: audit.verify). When there is
        none, it is older than max_age_s, or refresh, a check starts on a thread of its own
        (one at a time) and this call waits for it up to wait_s seconds, so a page never
        waits on a verify of a large bank. Returns {"checked_at" (naive UTC, as stored
        timestamps; None before the first check ends), "age_s", "seconds" (how long that
        check took), "problems" (list of str; None before the first check), "error" (text
        when the last check itself failed, else None), "running" (a check is under way)}."""
        bank = self._bank
        bank.require(actor, "audit.verify", entity="bank")
        with self._verify_lock:
            kept = self._verified
            stale = refresh or kept is None or \
                (utcnow() - kept["checked_at"]).total_seconds() > max_age_s
            if stale and self._verifying is None:
                self._verifying = threading.Thread(target=self._run_verify, daemon=True,
                                                   name="bankms-home-verify")
                self._verifying.start()
            running = self._verifying
        if running is not None and wait_s:
            running.join(wait_s)
        with self._verify_lock:
            kept = dict(self._verified or {"checked_at": None, "problems": None,
                                           "seconds": None, "error": None})
            kept["running"] = self._verifying is not None
        kept["age_s"] = None if kept["checked_at"] is None else \
            max((utcnow() - kept["checked_at"]).total_seconds(), 0.0)
        if kept["problems"] is not None:
            kept["problems"] = list(kept["problems"])
        return kept

    def stop(self, timeout_s: float = 120.0) -> None:
        """Wait for a verify under way to end (Bank.close, before the connection closes)."""
        with self._verify_lock:
            running = self._verifying
        if running is not None and running is not threading.current_thread():
            running.join(timeout_s)

    def _run_verify(self) -> None:
        started = time.perf_counter()
        try:
            problems, error = self._bank.audit.verify(), None
        except Exception as exc:  # noqa: BLE001 - kept and shown; the next check tries again
            problems, error = None, f"{type(exc).__name__}: {exc}"
        done = {"checked_at": utcnow(), "problems": problems, "error": error,
                "seconds": time.perf_counter() - started}
        with self._verify_lock:
            if error is None or self._verified is None:
                self._verified = done
            else:  # keep the last result, say the check failed
                self._verified = {**self._verified, "error": error}
            self._verifying = None
