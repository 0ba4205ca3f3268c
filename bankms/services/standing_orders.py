"""Standing orders: recurring transfers between customer accounts that end of day executes.

This module owns the tables `standing_orders` (the instruction) and `standing_order_runs` (one
row per attempt: executed, failed or missed, with its reason), the service `bank.standing_orders`
(create, cancel, list, runs, failures, review) and `run_due`, step 1 of end of day (eod.py).

Rules (issue 10; where the issue is silent, what a retail bank does):

* Schedule. 'monthly' on day_of_month 1..31: on that day, or on the month's last day when the
  month is shorter (an order on the 31st runs on Feb 28/29, Apr 30, Jun 30 ...; dateutil's
  relativedelta(day=N) clamps the same way). 'weekly' on weekday 0..6 (Monday = 0). An
  occurrence is due on dates from start_date (never before the business date it is created on)
  through end_date (if any). An order with a count finishes after that many *executions* (a
  missed occurrence does not use one up); one with an end date finishes when the end date has
  passed and no occurrence is still being retried.
* Execution. End of day for date D executes, in one set-based batch (bank.ledger.post_frames_in),
  the occurrences due on D and the retries of earlier failed occurrences whose window includes
  D, oldest due date first, then by order id; each source account pays as far as its available
  balance (ledger.available_cents: balance - holds + overdraft) goes, order by order. The
  transfer is an ordinary 'transfer' transaction (statements show it) with the memo
  "Standing order N: memo".
* Once only. Each occurrence (order, due date) has the idempotency key
  sys:so-<order id>-<due date> in `idempotency_keys`, and one run row per attempt date (primary
  key order_id, due_date, attempt_date): a rerun of end of day (already prevented by eod_runs)
  or a catch-up over several days never moves an occurrence twice.
* Failures. An occurrence fails when the source account is closed, frozen or not active, its
  holder is not active (suspended), the target account is closed, frozen or not active or its
  holder is not active, or the source cannot pay. It is retried at the end of each of the next
  `retry_days` business days (0..5, default 2; every calendar day is an end-of-day business day,
  see eod.py), and its last failed attempt is recorded as 'missed'. Cancelling an order stops
  its retries; so does closing the source account (end of day cancels its orders before
  attempting anything).
* Fee. A missed occurrence (the final failure, never the earlier attempts) is charged once: the
  source account's product's `standing_order_fail_fee_cents` (the product version in force on D,
  deposit_products.versions_in_force) through charges.post_event_charges with code
  'standing_order_failed'. Charging on the final failure gives the customer the retry window to
  pay in without cost, and charges at most once per occurrence by construction.
* Limits. A customer may create orders only from their own open checking or savings accounts.
  A customer's active orders to other customers' accounts may together pay at most
  `customer_daily_transfer_cents_max` (the transfer path's daily limit, which is also the most
  one transfer may send) when the customer sets one up, and at most the four-eyes threshold
  when a teller or manager does (what staff may move for one customer in a day without a
  second manager): end of day executes orders without a limit and may run all of them on one
  day, so the sum, not each order, is what is capped. At execution the order is the bank's
  instruction from the customer, posted by end of day, and does not count against the
  customer's daily limit (it is checked when the order is given).
  Targets are internal customer accounts only (payments.py has no external payees).
"""
from __future__ import annotations

import calendar
import datetime as dt
import hashlib
import json

import pandas as pd
from dateutil.relativedelta import relativedelta

from ..domain import accountnum
from .approvals import _clean_reason as clean_reason
from .audit_sets import audit_set
from ..domain.dates import as_date
from ..domain.errors import (
    AccountClosed,
    BankError,
    AccountNotActive,
    AccountNotFound,
    IdempotencyConflict,
    InvalidInput,
    LimitExceeded,
    PermissionDenied,
    SameAccount,
)
from ..domain.ids import parse_id
from ..domain.keys import clean_key, system_key
from .ledger import available_cents, utcnow
from ..domain.money import format_cents, to_cents, to_money
from .posting_frames import post_frames
from ..domain.validate import clean_memo

FREQUENCIES = ("monthly", "weekly")
STATUSES = ("active", "cancelled", "finished")
ORDER_KINDS = ("checking", "savings")
RETRY_DAYS_DEFAULT = 2
# Below a week, so that the retries of one occurrence never overlap the next occurrence.
RETRY_DAYS_MAX = 5
COUNT_MAX = 1200
FEE_CODE = "standing_order_failed"
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

# Tables: db.STANDING_ORDER_SCHEMA (created at open).

# Counters of end of day (eod.DayClosed, eod_runs columns).
EOD_FIELDS = ("standing_orders_executed", "standing_orders_executed_cents",
              "standing_orders_failed", "standing_orders_missed", "standing_order_fees")


# -- the schedule (pure) ------------------------------------------------------------------------
def occurs_on(frequency: str, day_of_month, weekday, day: dt.date) -> bool:
    """True if an order of this schedule has an occurrence on `day` (ignoring start/end)."""
    if frequency == "weekly":
        return day.weekday() == weekday
    last = calendar.monthrange(day.year, day.month)[1]
    return day.day == min(int(day_of_month), last)


def next_occurrence(frequency: str, day_of_month, weekday, on_or_after: dt.date) -> dt.date:
    """The first occurrence on or after `on_or_after`: monthly on day N, or the month's last day
    when the month is shorter (relativedelta(day=N) clamps); weekly on the weekday."""
    if frequency == "weekly":
        return on_or_after + relativedelta(weekday=int(weekday))
    candidate = on_or_after + relativedelta(day=int(day_of_month))
    if candidate < on_or_after:
        candidate = on_or_after + relativedelta(months=1, day=int(day_of_month))
    return candidate


def next_due_date(order: dict, on_or_after: dt.date) -> dt.date | None:
    """The next date the order is due on or after `on_or_after` (an order's dict or row with
    status, frequency, day_of_month, weekday, start_date, end_date, count, executed_count);
    None when it is no longer active, its count is used up or its end date has passed."""
    if order["status"] != "active":
        return None
    count = order.get("count")
    if count is not None and not pd.isna(count) and order["executed_count"] >= count:
        return None
    day = next_occurrence(order["frequency"], order.get("day_of_month"), order.get("weekday"),
                          max(on_or_after, _date(order["start_date"])))
    end = order.get("end_date")
    if end is not None and not pd.isna(end) and day > _date(end):
        return None
    return day


def describe_schedule(frequency, day_of_month, weekday) -> str:
    """'Monthly on day 31 (or the month's last day)' / 'Weekly on Friday'."""
    if frequency == "weekly":
        return f"Weekly on {WEEKDAYS[int(weekday)]}"
    tail = " (or the month's last day)" if int(day_of_month) > 28 else ""
    return f"Monthly on day {int(day_of_month)}{tail}"


def _date(value) -> dt.date:
    if isinstance(value, pd.Timestamp):
        return value.date()
    if isinstance(value, dt.datetime):
        return value.date()
    return value


# -- input ---------------------------------------------------------------------------------------
def _small_int(value, label, low, high):
    if value is None or isinstance(value, bool):
        raise InvalidInput(f"The {label} must be a whole number from {low} to {high}.")
    try:
        number = int(str(value).strip()) if isinstance(value, str) else value
    except ValueError:
        raise InvalidInput(f"The {label} must be a whole number from {low} to {high}.") from None
    if not isinstance(number, int) or not low <= number <= high:
        raise InvalidInput(f"The {label} must be a whole number from {low} to {high}.")
    return number


def clean_schedule(frequency, day_of_month, weekday) -> tuple:
    """(frequency, day_of_month or None, weekday or None), or InvalidInput."""
    frequency = str(frequency or "").strip().lower()
    if frequency not in FREQUENCIES:
        raise InvalidInput("The frequency must be 'monthly' or 'weekly'.")
    if frequency == "monthly":
        if weekday is not None:
            raise InvalidInput("A monthly standing order takes a day of the month, not a weekday.")
        return frequency, _small_int(day_of_month, "day of the month", 1, 31), None
    if day_of_month is not None:
        raise InvalidInput("A weekly standing order takes a weekday, not a day of the month.")
    if isinstance(weekday, str) and weekday.strip().capitalize() in WEEKDAYS:
        return frequency, None, WEEKDAYS.index(weekday.strip().capitalize())
    return frequency, None, _small_int(weekday, "weekday (0 = Monday ... 6 = Sunday)", 0, 6)


class StandingOrderNotFound(BankError):
    """No standing order has this id."""


class StandingOrders:
    """bank.standing_orders: customers for their own accounts, staff for any customer."""

    def __init__(self, bank):
        self._bank = bank

    # -- create ----------------------------------------------------------------------------
    def _clean(self, actor, *, source_account, target_account, amount, frequency, day_of_month,
               weekday, start_date, end_date, count, memo, retry_days) -> dict:
        """Check an order's input against the bank's state, writing nothing. Returns the clean
        order (account rows included) or raises the BankError that refuses it."""
        bank = self._bank
        cents = to_cents(amount)
        frequency, day_of_month, weekday = clean_schedule(frequency, day_of_month, weekday)
        start = as_date(start_date, "start date")
        if start is None:
            raise InvalidInput("Please give the date of the first payment.")
        end = as_date(end_date, "end date")
        if count is not None:
            count = _small_int(count, "number of payments", 1, COUNT_MAX)
        retry_days = (RETRY_DAYS_DEFAULT if retry_days is None else
                      _small_int(retry_days, "number of retry days", 0, RETRY_DAYS_MAX))
        memo = clean_memo(memo)
        source = accountnum.normalize(source_account)
        target = accountnum.normalize(target_account)
        src = self._account(source)
        if src is None:
            raise AccountNotFound(f"There is no account {source}.")
        bank.require(actor, "standing_order.create", src["customer_id"],
                     entity="account", entity_id=source)
        if source == target:
            raise SameAccount("The source and target accounts must differ.")
        tgt = self._account(target)
        customer = getattr(actor, "role", None) == "customer"
        if tgt is None:
            raise AccountNotFound(f"There is no account {target}.")
        own_target = tgt["customer_id"] == src["customer_id"]
        if src["status"] == "closed":
            raise AccountClosed(f"Account {source} is closed; no money can leave it.")
        if src["status"] == "frozen":
            raise AccountNotActive(f"Account {source} is frozen; no money can leave it.")
        if src["kind"] not in ORDER_KINDS:
            raise InvalidInput(f"Standing orders can only be paid from checking or savings "
                               f"accounts; {source} is a {src['kind'].replace('_', ' ')} account.")
        if src["customer_status"] != "active":
            raise AccountNotActive(f"The holder of account {source} is "
                                   f"{src['customer_status']}; no standing order can be set up.")
        if tgt["status"] not in ("active", "dormant") or tgt["customer_status"] != "active" \
                or tgt["kind"] not in ORDER_KINDS:
            if customer and not own_target:
                # Never tell a customer anything about another customer's account.
                raise AccountNotActive(f"Account {target} cannot receive standing orders; "
                                       "please check the account number with the payee.")
            error = AccountClosed if tgt["status"] == "closed" else AccountNotActive
            raise error(f"Account {target} cannot receive standing orders (it is "
                        f"{tgt['status']}, a {tgt['kind'].replace('_', ' ')} account, holder "
                        f"{tgt['customer_status']}).")
        if not own_target:
            self._check_third_party_cap(actor, bank.read_one, src["customer_id"], cents)
        today = bank.state.business_date
        if start < today:
            raise InvalidInput(f"The first payment date {start} is in the past; the business "
                               f"date is {today}.")
        if end is not None and end < start:
            raise InvalidInput(f"The end date {end} is before the start date {start}.")
        first = next_occurrence(frequency, day_of_month, weekday, start)
        if end is not None and first > end:
            raise InvalidInput(f"No payment falls between {start} and {end}: the first one "
                               f"would be on {first}.")
        return {"customer_id": src["customer_id"], "source_account_id": src["id"],
                "source_account": source, "target_account": target, "amount_cents": cents,
                "frequency": frequency, "day_of_month": day_of_month, "weekday": weekday,
                "start_date": start, "end_date": end, "count": count, "retry_days": retry_days,
                "memo": memo, "first_due_date": first, "own_target": own_target,
                "target_holder": tgt["holder"]}

    def _third_party_cap(self, actor) -> int | None:
        """The most a customer's active orders to other customers may add up to when `actor`
        sets one up: the customer's daily transfer limit, or for staff the four-eyes
        threshold (what a teller may move for one customer in a day without a second
        manager); None for the system actor."""
        bank = self._bank
        if getattr(actor, "role", None) == "customer":
            return bank.settings.get_int("customer_daily_transfer_cents_max", 500000)
        if bank.approvals.applies_to(actor):
            return bank.approvals.threshold_cents()
        return None

    def _check_third_party_cap(self, actor, read_one, customer_id, cents) -> None:
        """LimitExceeded when this order and the customer's active orders to other customers'
        accounts would together pay more than the cap (see _third_party_cap) on one day. End
        of day executes orders without a limit, and all of them may fall due on the same day
        (or a retry on the day of another order), so the sum is what one day can move."""
        cap = self._third_party_cap(actor)
        if cap is None:
            return
        (active,) = read_one(
            "SELECT coalesce(sum(o.amount_cents), 0) FROM standing_orders o "
            "JOIN accounts t ON t.account_number = o.target_account "
            "WHERE o.customer_id = ? AND o.status = 'active' "
            "AND t.customer_id IS DISTINCT FROM o.customer_id", [customer_id])
        if cents + int(active) > cap:
            who = ("your daily transfer limit" if getattr(actor, "role", None) == "customer"
                   else "the four-eyes threshold")
            raise LimitExceeded(
                f"Standing orders to other customers may together pay at most {who} of "
                f"{format_cents(cap)} (end of day may run them all on one day); the active ones "
                f"already pay {format_cents(int(active))}, so this one may be at most "
                f"{format_cents(max(cap - int(active), 0))}.")

    def _account(self, number):
        row = self._bank.read_one(
            "SELECT a.id, a.customer_id, a.kind, a.status, coalesce(c.status, 'internal'), "
            "c.full_name FROM accounts a LEFT JOIN customers c ON c.id = a.customer_id "
            "WHERE a.account_number = ?", [number])
        if row is None:
            return None
        if row[1] is None:
            raise PermissionDenied("Internal ledger accounts cannot be used here.")
        return dict(zip(("id", "customer_id", "kind", "status", "customer_status", "holder"),
                        row))

    def review(self, actor, *, source_account, target_account, amount, frequency,
               day_of_month=None, weekday=None, start_date, end_date=None, count=None, memo="",
               retry_days=None) -> dict:
        """Check an order for a confirm step, writing nothing: the clean order with the
        schedule in words, the first payment date and the payee's name (masked when a
        customer pays another customer, as payments.review does). `warnings` (list[str]):
        when the source's available balance now (ledger.available_cents, the rule end of day
        pays by) is less than the amount, a sentence saying the first payment fails unless
        money comes in before its date (only the payer's own account is named)."""
        order = self._clean(actor, source_account=source_account, target_account=target_account,
                            amount=amount, frequency=frequency, day_of_month=day_of_month,
                            weekday=weekday, start_date=start_date, end_date=end_date,
                            count=count, memo=memo, retry_days=retry_days)
        customer = getattr(actor, "role", None) == "customer"
        holder = order.pop("target_holder")
        if customer and not order["own_target"]:
            holder = self._bank.accounts.payee_name(actor, order["target_account"])
        # Decimal with two places: exact in cents.
        have = int(self._bank.accounts.available(actor, order["source_account"]) * 100)
        warnings = []
        if have < order["amount_cents"]:
            warnings.append(
                f"Only {format_cents(max(have, 0))} is available on {order['source_account']} "
                f"now, less than {format_cents(order['amount_cents'])}: if that is still so on "
                f"{order['first_due_date']:%d %B %Y}, the payment fails"
                + (f" (end of day tries again on the next {order['retry_days']} days, then it "
                   "is missed)." if order["retry_days"] else " and is missed."))
        return {**order, "target_holder": holder, "warnings": warnings,
                "amount": to_money(order["amount_cents"]),
                "schedule": describe_schedule(order["frequency"], order["day_of_month"],
                                              order["weekday"])}

    def create(self, actor, *, source_account, target_account, amount, frequency,
               day_of_month=None, weekday=None, start_date, end_date=None, count=None, memo="",
               retry_days=None, idempotency_key) -> dict:
        """Set up a standing order; returns the order (see get). Customers only from their own
        accounts (PermissionDenied otherwise, audited); tellers and managers for any customer.

        Raises InvalidAmount (amount through money.to_cents), InvalidInput (frequency, day 1..31,
        weekday 0..6, start before the business date, end before start, count < 1, retry days
        outside 0..5, a bad key or memo), AccountNotFound, AccountClosed / AccountNotActive
        (closed or frozen source, target that cannot receive, holder not active), SameAccount,
        LimitExceeded (a customer's order to someone else above the daily transfer limit),
        IdempotencyConflict (the key was used for another order). A repeat with the same key
        and content returns the first order and writes nothing."""
        bank = self._bank
        key = clean_key(idempotency_key)
        try:
            order = self._clean(actor, source_account=source_account,
                                target_account=target_account, amount=amount,
                                frequency=frequency, day_of_month=day_of_month, weekday=weekday,
                                start_date=start_date, end_date=end_date, count=count, memo=memo,
                                retry_days=retry_days)
        except PermissionDenied:
            raise  # require() audited it already
        except BankError as exc:
            bank.record_refusal(actor, "standing_order.create", exc, entity="standing_order")
            raise
        content = {k: order[k] for k in ("source_account", "target_account", "amount_cents",
                                         "frequency", "day_of_month", "weekday", "start_date",
                                         "end_date", "count", "retry_days", "memo")}
        request_hash = hashlib.sha256(json.dumps([actor.username, content], sort_keys=True,
                                                 default=str).encode()).hexdigest()

        def fn(uow):
            prior = uow.fetchone("SELECT id, request_hash FROM standing_orders "
                                 "WHERE idempotency_key = ?", [key])
            if prior is not None:
                if prior[1] != request_hash:
                    raise IdempotencyConflict("This request key was already used for a "
                                              "different standing order; nothing was set up.")
                return int(prior[0])
            if not order["own_target"]:
                # Again on the writer thread: two orders given at once cannot both slip under.
                self._check_third_party_cap(actor, uow.fetchone, order["customer_id"],
                                            order["amount_cents"])
            (oid,) = uow.fetchone("SELECT nextval('standing_order_id_seq')")
            now = utcnow()
            uow.execute(
                "INSERT INTO standing_orders (id, customer_id, source_account_id, source_account, "
                "target_account, amount_cents, frequency, day_of_month, weekday, start_date, "
                "end_date, count, executed_count, retry_days, memo, status, idempotency_key, "
                "request_hash, created_by, created_role, created_at, created_date) VALUES "
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, 'active', ?, ?, ?, ?, ?, ?)",
                [oid, order["customer_id"], order["source_account_id"], order["source_account"],
                 order["target_account"], order["amount_cents"], order["frequency"],
                 order["day_of_month"], order["weekday"], order["start_date"],
                 order["end_date"], order["count"], order["retry_days"], order["memo"], key,
                 request_hash, actor.username, actor.role, now, bank.state.business_date])
            bank.audit_row(uow, actor, "standing_order.create", "standing_order", str(oid),
                           after={**content, "idempotency_key": key,
                                  "first_due_date": order["first_due_date"]})
            return int(oid)
        return self._get(bank.write(fn))

    # -- cancel ----------------------------------------------------------------------------
    def cancel(self, actor, order_id, reason) -> dict:
        """Cancel an active order: nothing more is executed or retried. Customers for their own
        orders, staff for any. InvalidState if it is not active; InvalidInput without a reason.
        Cancelling a cancelled order again changes nothing and returns it."""
        from ..domain.errors import InvalidState
        bank = self._bank
        order = self._readable(actor, order_id, "standing_order.cancel")
        reason = clean_reason(reason)
        if order["status"] == "cancelled":
            return order
        if order["status"] != "active":
            raise InvalidState(f"Standing order {order['id']} is {order['status']}; only an "
                               "active order can be cancelled.")

        def fn(uow):
            now = utcnow()
            uow.execute("UPDATE standing_orders SET status = 'cancelled', cancelled_by = ?, "
                        "cancelled_at = ?, cancel_reason = ? WHERE id = ? AND status = 'active'",
                        [actor.username, now, reason, order["id"]])
            bank.audit_row(uow, actor, "standing_order.cancel", "standing_order",
                           str(order["id"]), before={"status": order["status"]},
                           after={"status": "cancelled", "reason": reason,
                                  "business_date": bank.state.business_date})
        bank.write(fn)
        return self._get(order["id"])

    # -- reading ---------------------------------------------------------------------------
    _COLUMNS = ("id, customer_id, source_account, target_account, amount_cents, frequency, "
                "day_of_month, weekday, start_date, end_date, count, executed_count, retry_days, "
                "memo, status, created_by, created_at, created_date, cancelled_by, "
                "cancel_reason, finished_date")

    def _get(self, order_id) -> dict:
        df = self._bank.read_df(f"SELECT {self._COLUMNS} FROM standing_orders WHERE id = ?",
                                [order_id])
        if df.empty:
            raise StandingOrderNotFound(f"There is no standing order {order_id}.")
        row = df.iloc[0].to_dict()
        out = {k: (None if (not isinstance(v, str) and pd.isna(v)) else v) for k, v in row.items()}
        for name in ("id", "customer_id", "amount_cents", "executed_count", "retry_days",
                     "day_of_month", "weekday", "count"):
            if out[name] is not None:
                out[name] = int(out[name])
        for name in ("start_date", "end_date", "created_date", "finished_date"):
            if out[name] is not None:
                out[name] = _date(out[name])
        out["amount"] = to_money(out["amount_cents"])
        out["schedule"] = describe_schedule(out["frequency"], out["day_of_month"], out["weekday"])
        out["next_due_date"] = next_due_date(out, self._bank.state.business_date)
        return out

    def _readable(self, actor, order_id, action="standing_order.read") -> dict:
        oid = parse_id(order_id, "standing order id")
        order = self._get(oid)
        self._bank.require(actor, action, order["customer_id"], entity="standing_order",
                           entity_id=oid)
        return order

    def get(self, actor, order_id) -> dict:
        """One order as a dict (columns of the table, amount as Decimal, schedule in words,
        next_due_date)."""
        return self._readable(actor, order_id)

    def list(self, actor, customer_id=None, *, account=None, status=None) -> pd.DataFrame:
        """Orders, newest first, with schedule, next_due_date (from the business date on),
        last_outcome, last_reason, last_attempt_date and failures (failed or missed attempts).
        Customers see their own (customer_id defaults to theirs); staff any customer's, one
        account's (`account`, an account number, as source or target) or all."""
        bank = self._bank
        where, params = [], []
        if customer_id is None and getattr(actor, "role", None) == "customer":
            customer_id = actor.customer_id
        if customer_id is not None:
            customer_id = parse_id(customer_id, "customer id")
            bank.require(actor, "standing_order.read", customer_id, entity="customer",
                         entity_id=customer_id)
            where.append("o.customer_id = ?")
            params.append(customer_id)
        else:
            bank.require(actor, "standing_order.list_all", entity="standing_order")
        if account is not None:
            number = accountnum.normalize(account)
            where.append("(o.source_account = ? OR o.target_account = ?)")
            params += [number, number]
        if status is not None:
            if status not in STATUSES:
                raise InvalidInput("The status must be active, cancelled or finished.")
            where.append("o.status = ?")
            params.append(status)
        df = bank.read_df(
            f"SELECT {', '.join('o.' + c.strip() for c in self._COLUMNS.split(','))}, "
            "l.outcome AS last_outcome, l.reason AS last_reason, "
            "l.attempt_date AS last_attempt_date, coalesce(f.failures, 0) AS failures "
            "FROM standing_orders o LEFT JOIN (SELECT order_id, outcome, reason, attempt_date "
            "FROM (SELECT order_id, outcome, reason, attempt_date, row_number() OVER ("
            "PARTITION BY order_id ORDER BY attempt_date DESC, due_date DESC) AS latest "
            "FROM standing_order_runs) r WHERE latest = 1) l ON l.order_id = o.id "
            "LEFT JOIN (SELECT order_id, count(*) AS failures FROM standing_order_runs "
            "WHERE outcome <> 'executed' GROUP BY 1) f ON f.order_id = o.id"
            + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY o.id DESC",
            params)
        today = bank.state.business_date
        df["schedule"] = [describe_schedule(f, d, w) for f, d, w in
                          zip(df["frequency"], df["day_of_month"], df["weekday"])]
        df["next_due_date"] = [next_due_date(row, today) for row in df.to_dict("records")]
        df["amount"] = [to_money(c) for c in df["amount_cents"]]
        for name in ("start_date", "end_date", "last_attempt_date"):
            df[name] = [None if pd.isna(v) else _date(v) for v in df[name]]
        return df

    def runs(self, actor, order_id) -> pd.DataFrame:
        """Every attempt of one order, newest first: due_date, attempt_date, outcome
        ('executed' | 'failed' | 'missed'), reason, amount_cents, transaction_id, charge_id."""
        order = self._readable(actor, order_id)
        return self._bank.read_df(
            "SELECT order_id, due_date, attempt_date, outcome, reason, amount_cents, "
            "transaction_id, charge_id FROM standing_order_runs WHERE order_id = ? "
            "ORDER BY attempt_date DESC, due_date DESC", [order["id"]])

    def verify(self) -> list[str]:
        """Standing orders against the ledger (audit.verify): each executed attempt is the one
        transfer under its occurrence's key, with the order's accounts and amount; no
        occurrence executed twice; each order's executed_count equals its executed attempts."""
        problems = []
        for oid, due in self._bank.read(
                "SELECT r.order_id, r.due_date FROM standing_order_runs r "
                "JOIN standing_orders o ON o.id = r.order_id "
                "LEFT JOIN transactions t ON t.id = r.transaction_id "
                "LEFT JOIN idempotency_keys k ON k.key = 'sys:so-' || r.order_id || '-' "
                "|| CAST(r.due_date AS VARCHAR) WHERE r.outcome = 'executed' AND (t.id IS NULL "
                "OR t.kind <> 'transfer' OR t.amount_cents <> r.amount_cents "
                "OR t.source_account <> o.source_account OR t.target_account <> o.target_account "
                "OR k.transaction_id IS DISTINCT FROM t.id) ORDER BY 1, 2 LIMIT 100"):
            problems.append(f"standing order {oid} due {due}: its executed attempt does not "
                            "match its transaction")
        for oid, due in self._bank.read(
                "SELECT order_id, due_date FROM standing_order_runs WHERE outcome = 'executed' "
                "GROUP BY 1, 2 HAVING count(*) > 1 ORDER BY 1, 2 LIMIT 100"):
            problems.append(f"standing order {oid} due {due} was executed more than once")
        for oid, stored, counted in self._bank.read(
                "SELECT o.id, o.executed_count, count(r.order_id) FROM standing_orders o "
                "LEFT JOIN standing_order_runs r ON r.order_id = o.id AND r.outcome = 'executed' "
                "GROUP BY 1, 2 HAVING o.executed_count <> count(r.order_id) ORDER BY 1 LIMIT 100"):
            problems.append(f"standing order {oid} counts {stored} executions, its attempts "
                            f"{counted}")
        return problems

    def failures(self, actor, *, since=None) -> pd.DataFrame:
        """Staff: failed and missed attempts of every order since `since` (a business date;
        default the last 31 days), newest first, with the accounts and the reason."""
        bank = self._bank
        bank.require(actor, "standing_order.list_all", entity="standing_order")
        since = as_date(since, "date") or bank.state.business_date - dt.timedelta(days=31)
        return bank.read_df(
            "SELECT r.attempt_date, r.due_date, r.order_id, o.customer_id, o.source_account, "
            "o.target_account, r.amount_cents, r.outcome, r.reason, r.charge_id "
            "FROM standing_order_runs r JOIN standing_orders o ON o.id = r.order_id "
            "WHERE r.outcome <> 'executed' AND r.attempt_date >= ? "
            "ORDER BY r.attempt_date DESC, r.order_id", [since])


# -- end of day ---------------------------------------------------------------------------------
# Occurrences to attempt on business date D: those due on D and earlier failed ones still in
# their retry window, never one already attempted on D or already executed or missed. The
# ledger key of each executed occurrence is the second guard: idempotency_keys' primary key
# refuses a second insert, which rolls the whole day back rather than move money twice (it is
# not read here, so this query does not scan every key the bank ever stored).
# The parameters come in once, positionally (candidate_params), as the one row of `p`: the
# same text binds on both engines, which share no form of named parameter.
CANDIDATES_SQL = """
WITH p AS (
    SELECT CAST(? AS DATE) AS run_day, CAST(? AS INTEGER) AS dom,
           CAST(? AS BOOLEAN) AS last_day, CAST(? AS INTEGER) AS dow
), due AS (
    SELECT o.id AS order_id, p.run_day AS due_date FROM standing_orders o CROSS JOIN p
    WHERE o.status = 'active' AND o.start_date <= p.run_day
      AND (o.end_date IS NULL OR o.end_date >= p.run_day)
      AND (o.count IS NULL OR o.executed_count < o.count)
      AND ((o.frequency = 'monthly' AND (o.day_of_month = p.dom
                                         OR (p.last_day AND o.day_of_month > p.dom)))
           OR (o.frequency = 'weekly' AND o.weekday = p.dow))
), retry AS (
    SELECT r.order_id, r.due_date FROM standing_order_runs r
    JOIN standing_orders o ON o.id = r.order_id CROSS JOIN p
    WHERE o.status = 'active' AND r.due_date < p.run_day AND r.due_date + o.retry_days >= p.run_day
    GROUP BY 1, 2 HAVING bool_and(r.outcome = 'failed')
), cand AS (SELECT * FROM due UNION SELECT * FROM retry)
SELECT c.order_id, c.due_date, o.amount_cents, o.retry_days, o.memo, o.source_account,
       o.target_account, s.id AS source_id, s.status AS source_status, s.kind AS source_kind,
       s.balance_cents AS source_balance, s.holds_cents AS source_holds,
       s.overdraft_limit_cents AS source_overdraft, sc.status AS source_holder_status,
       t.id AS target_id, t.status AS target_status, t.kind AS target_kind,
       t.balance_cents AS target_balance, t.holds_cents AS target_holds,
       t.overdraft_limit_cents AS target_overdraft, tc.status AS target_holder_status,
       'sys:so-' || c.order_id || '-' || CAST(c.due_date AS VARCHAR) AS key
FROM cand c JOIN standing_orders o ON o.id = c.order_id CROSS JOIN p
LEFT JOIN accounts s ON s.account_number = o.source_account
LEFT JOIN customers sc ON sc.id = s.customer_id
LEFT JOIN accounts t ON t.account_number = o.target_account
LEFT JOIN customers tc ON tc.id = t.customer_id
WHERE NOT EXISTS (SELECT 1 FROM standing_order_runs r WHERE r.order_id = c.order_id
                  AND r.due_date = c.due_date AND (r.attempt_date = p.run_day OR r.outcome <> 'failed'))
ORDER BY c.due_date, c.order_id
"""


def candidate_params(day: dt.date) -> list:
    """CANDIDATES_SQL's parameters for business date `day`: the day, its day of the month,
    whether it is the month's last day (monthly orders on a later day fall due then) and its
    weekday (Monday = 0)."""
    last = calendar.monthrange(day.year, day.month)[1]
    return [day, day.day, day.day == last, day.weekday()]


def occurrence_key(order_id: int, due_date: dt.date) -> str:
    """The ledger idempotency key of one occurrence: sys:so-<order id>-<due date>."""
    return system_key("so", int(order_id), due_date.isoformat())


def _side_refusal(side, status, kind, holder_status) -> str | None:
    if status is None or pd.isna(status):
        return f"{side} account not found"
    if status == "closed":
        return f"{side} account closed"
    if status == "frozen":
        return f"{side} account frozen"
    if status not in ("active", "dormant"):
        return f"{side} account {status}"
    if kind not in ORDER_KINDS:
        return f"{side} account is a {kind} account"
    if holder_status != "active":
        return f"{side} account holder {holder_status}"
    return None


def _decide(cand: pd.DataFrame, day: dt.date) -> pd.DataFrame:
    """Outcome and reason per candidate, in order: each source pays as far as its available
    balance (ledger.available_cents) goes, after the orders before it; a credit
    from an earlier order of the run counts for a later order from that account."""
    available = {}
    outcomes, reasons = [], []
    # Plain lists: iterating pandas' Arrow-backed columns value by value is slow.
    cols = {name: cand[name].tolist() for name in cand.columns}
    for i in range(len(cand)):
        reason = (_side_refusal("source", cols["source_status"][i], cols["source_kind"][i],
                                cols["source_holder_status"][i])
                  or _side_refusal("target", cols["target_status"][i], cols["target_kind"][i],
                                   cols["target_holder_status"][i]))
        amount = int(cols["amount_cents"][i])
        if reason is None:
            src = int(cols["source_id"][i])
            have = available.setdefault(src, available_cents(
                int(cols["source_balance"][i]), int(cols["source_holds"][i]),
                int(cols["source_overdraft"][i]), cols["source_status"][i]))
            if have < amount:
                reason = (f"insufficient funds: {format_cents(max(have, 0))} available, "
                          f"{format_cents(amount)} needed")
            else:
                tgt = int(cols["target_id"][i])
                available.setdefault(tgt, available_cents(
                    int(cols["target_balance"][i]), int(cols["target_holds"][i]),
                    int(cols["target_overdraft"][i]), cols["target_status"][i]))
                available[src] -= amount
                available[tgt] += amount
        if reason is None:
            outcomes.append("executed")
        else:
            final = _date(cols["due_date"][i]) + dt.timedelta(
                days=int(cols["retry_days"][i])) <= day
            outcomes.append("missed" if final else "failed")
        reasons.append(reason)
    return cand.assign(outcome=outcomes, reason=reasons)


def _fees(uow, day, missed: pd.DataFrame) -> pd.Series:
    """The fail fee in cents for each missed row (indexed like it): the source account's
    product version in force on `day` (deposit products, PLAN10 interface 1); 0 where there is
    none (a bank without products, an account without one)."""
    zero = pd.Series(0, index=missed.index, dtype="int64")
    if missed.empty:
        return zero
    try:
        from .deposits.products import versions_in_force
    except ImportError:
        return zero
    terms = versions_in_force(uow, day)
    if terms is None or terms.empty or "standing_order_fail_fee_cents" not in terms:
        return zero
    fee_by_product = dict(zip(terms["product_id"].astype("int64"),
                              terms["standing_order_fail_fee_cents"].astype("int64")))
    ids = [int(i) for i in missed["source_id"]]
    products = dict(uow.fetchall("SELECT id, product_id FROM accounts WHERE "
                                 + uow.dialect.in_list("id", "BIGINT"), [ids]))
    return pd.Series([int(fee_by_product.get(products.get(i), 0) or 0) for i in ids],
                     index=missed.index, dtype="int64")




def run_due(bank, actor, uow, day: dt.date, out) -> None:
    """End of day step 1 (eod.close_day): attempt the occurrences due on `day` and the retries
    of earlier failures whose window includes `day`, each once, in one set-based batch; record
    every attempt in standing_order_runs; charge missed occurrences their fee; finish orders
    whose count is used up or whose end date has passed; set out's counters (EOD_FIELDS)."""
    # Every statement of this step reads active orders only (due, retried, cancelled or
    # finished), so a bank without any skips them all; and the cancellation's own read is
    # needed only when an active order pays from a closed account. One statement answers both.
    active, closing = uow.fetchone(
        "SELECT count(*), count(*) FILTER (WHERE source_account_id IN (SELECT id FROM "
        "accounts WHERE status = 'closed')) FROM standing_orders WHERE status = 'active'")
    if not active:
        return
    if closing:
        _cancel_closed_sources(bank, actor, uow, day)
    cand = uow.fetch_df(CANDIDATES_SQL, candidate_params(day))
    if len(cand):
        _attempt(bank, actor, uow, day, cand, out, post_frames)
    _finish(bank, actor, uow, day)


def _attempt(bank, actor, uow, day, cand, out, post):
    cand = _decide(cand, day)
    done = cand[cand["outcome"] == "executed"].reset_index(drop=True)
    cand["transaction_id"] = pd.array([None] * len(cand), dtype="Int64")
    cand["charge_id"] = pd.array([None] * len(cand), dtype="Int64")
    if len(done):
        done["tx_ref"] = range(len(done))
        tx = pd.DataFrame({
            "tx_ref": done["tx_ref"], "kind": "transfer", "amount_cents": done["amount_cents"],
            "memo": [f"Standing order {o}" + (f": {m}" if m else "")
                     for o, m in zip(done["order_id"].tolist(), done["memo"].tolist())],
            "source_account": done["source_account"], "target_account": done["target_account"],
            "channel": "standing_order"})
        postings = pd.concat([
            pd.DataFrame({"tx_ref": done["tx_ref"], "account_id": done["source_id"],
                          "amount_cents": -done["amount_cents"]}),
            pd.DataFrame({"tx_ref": done["tx_ref"], "account_id": done["target_id"],
                          "amount_cents": done["amount_cents"]})], ignore_index=True)
        ids = post(bank, actor, uow, tx, postings, "eod.standing_orders")
        done["transaction_id"] = ids[done["tx_ref"].to_numpy()]
        ids = dict(zip(done["key"].tolist(), done["transaction_id"].tolist()))
        cand["transaction_id"] = pd.array([ids.get(k) for k in cand["key"].tolist()],
                                          dtype="Int64")
        keys = pd.DataFrame({
            "key": done["key"],
            "request_hash": [hashlib.sha256(f"{k}:{a}:{s}:{t}".encode()).hexdigest()
                             for k, a, s, t in zip(done["key"].tolist(),
                                                   done["amount_cents"].tolist(),
                                                   done["source_account"].tolist(),
                                                   done["target_account"].tolist())],
            "transaction_id": done["transaction_id"].astype("int64")})
        with uow.scan("so_keys", keys):
            uow.execute("INSERT INTO idempotency_keys SELECT key, request_hash, transaction_id "
                        "FROM so_keys")
            uow.execute("UPDATE standing_orders SET executed_count = executed_count + d.n FROM "
                        "(SELECT CAST(split_part(key, '-', 2) AS BIGINT) AS id, count(*) AS n "
                        "FROM so_keys GROUP BY 1) d WHERE standing_orders.id = d.id")
    missed = cand[cand["outcome"] == "missed"]
    fees = _fees(uow, day, missed)
    charged = missed[fees > 0]
    if len(charged) and hasattr(bank, "charges"):
        from .charges import post_event_charges
        reasons = [f"Standing order {o} due {_date(d)} missed: {r}"
                   for o, d, r in zip(charged["order_id"], charged["due_date"], charged["reason"])]
        frame = pd.DataFrame({"account_id": charged["source_id"].astype("int64"),
                              "code": FEE_CODE, "amount_cents": fees[charged.index],
                              "reason": reasons})
        out.standing_order_fees = int(post_event_charges(bank, actor, uow, frame, day=day))
        found = dict(((int(a), r), int(i)) for a, r, i in uow.fetchall(
            "SELECT account_id, reason, id FROM charges WHERE code = ? AND business_date = ? "
            "AND " + uow.dialect.in_list("reason", "VARCHAR"), [FEE_CODE, day, reasons]))
        ids = {idx: found.get((int(a), r)) for idx, a, r in
               zip(charged.index, charged["source_id"], reasons)}
        cand["charge_id"] = pd.array([ids.get(i) for i in cand.index], dtype="Int64")
    runs = cand.assign(attempt_date=day)[["order_id", "due_date", "attempt_date", "outcome",
                                          "reason", "amount_cents", "transaction_id",
                                          "charge_id"]]
    with uow.scan("so_runs", runs):
        uow.execute("INSERT INTO standing_order_runs SELECT order_id, CAST(due_date AS DATE), "
                    "CAST(attempt_date AS DATE), outcome, reason, amount_cents, transaction_id, "
                    "charge_id FROM so_runs")
    out.standing_orders_executed = len(done)
    out.standing_orders_executed_cents = int(done["amount_cents"].sum()) if len(done) else 0
    out.standing_orders_failed = int((cand["outcome"] == "failed").sum())
    out.standing_orders_missed = len(missed)
    bank.audit_row(uow, actor, "standing_order.run", "business_date", day.isoformat(), after={
        "attempted": len(cand), **{k: int(getattr(out, k)) for k in EOD_FIELDS}})


def _cancel_closed_sources(bank, actor, uow, day):
    """Orders paying from an account closed since are cancelled (audited), as a bank does when
    an account closes: nothing more is attempted, retried or charged for them."""
    where = ("status = 'active' AND source_account_id IN (SELECT id FROM accounts "
             "WHERE status = 'closed')")
    ids = [row[0] for row in uow.fetchall(f"SELECT id FROM standing_orders WHERE {where} "
                                          "ORDER BY id")]
    if not ids:
        return
    uow.execute("UPDATE standing_orders SET status = 'cancelled', cancelled_by = ?, "
                f"cancelled_at = ?, cancel_reason = 'source account closed' WHERE {where}",
                [actor.username, utcnow()])
    audit_set(bank, uow, actor, "standing_order.cancel", "standing_order", ids,
              {"status": "active"}, {"status": "cancelled", "reason": "source account closed",
                                     "business_date": day})


def _finish(bank, actor, uow, day):
    """Active orders whose count is used up, or whose end date is reached with no occurrence
    still being retried after `day`, become 'finished' (audited, one row per order)."""
    where = ("status = 'active' AND ((count IS NOT NULL AND executed_count >= count) OR "
             "(end_date IS NOT NULL AND end_date <= ? AND NOT EXISTS (SELECT 1 FROM "
             "standing_order_runs r WHERE r.order_id = standing_orders.id "
             "AND r.due_date + standing_orders.retry_days > ? AND r.outcome = 'failed' "
             "AND NOT EXISTS (SELECT 1 FROM standing_order_runs x WHERE x.order_id = r.order_id "
             "AND x.due_date = r.due_date AND x.outcome <> 'failed'))))")
    ids = [row[0] for row in uow.fetchall(
        f"SELECT id FROM standing_orders WHERE {where} ORDER BY id", [day, day])]
    if not ids:
        return
    uow.execute(f"UPDATE standing_orders SET status = 'finished', finished_date = ? "
                f"WHERE {where}", [day, day, day])
    audit_set(bank, uow, actor, "standing_order.finish", "standing_order", ids,
              {"status": "active"}, {"status": "finished", "business_date": day})
