"""Loans: products, applications, decisions, disbursement, schedules, repayments, write-offs.

This module owns the loan tables (loan_products, loans, loan_schedule, loan_payments) and the
instalment arithmetic. End of day (eod.py) uses its set-based pieces to collect instalments and
age arrears.

Design, in short:

* A loan is the replay of its events (issue 9). The arithmetic lives in loan_replay.py (due
  dates anchored on the disbursement day, the annuity schedule, interest by the day, advance
  payments, prepayments, payoffs; read its docstring for the rules). The events are the
  disbursement (the loan row), the repayments in loan_payments (value date = business date;
  methods manual, cash, automatic) minus those reversed (transactions.reverses_id), and the
  late fees end of day charges (loan_schedule.fee_cents / fee_date). loan_schedule and
  loans.principal_outstanding_cents are a cache of that replay: every service call rewrites
  them from a fresh replay, end of day updates them set-based with the same allocation order,
  and `verify()` replays every loan and compares.
* Money is integer cents; rates are Decimal percent; a cent is rounded half-up, which for the
  positive amounts rounded here is also DuckDB's round().
* Ledger: all loan principal sits in GL1200 loans receivable; per-loan principal is this
  module's subledger, reconciled to the cent by `verify()`. A repayment is one transaction:
  source -amount, GL1200 +principal, GL4000 interest income +interest, GL4100 fee income
  +fees. Interest and fees are income when paid (cash basis). A write-off moves the unpaid
  principal to GL5100 loan losses; later payments on it are recoveries (GL4200).
* Corrections are new transactions: reverse_repayment posts the reversal, replays the loan
  without the payment and posts any change in how the later payments split between principal,
  interest and fees as one loan_reallocation transaction (rows 'reversal' and 'reallocation'
  in loan_payments keep the per-transaction split check exact). A payment's own split never
  shows negative interest: when a prepayment (or the payoff) makes interest paid ahead
  unearned, the payment is shown without it and the difference moves from interest income to
  principal in a loan_reallocation of the same unit of work (loan_replay: "Interest paid
  ahead"). undo_disbursement reverses the
  payout of a loan that took no repayment and returns it to approved.
* Loan products are data managers edit (create_product, update_product, set_product_active;
  audited; a rate-range change by staff waits for a second manager). A loan snapshots its
  product's terms (TERM_COLUMNS: amortization, frequency, grace on principal, disbursement
  fee, late fee and grace days, day count, prepayment rule, working-day due dates) when it is
  applied for, so editing a product never changes an existing loan. The disbursement fee
  (flat + basis points of the principal, half-up) is kept back from the payout in the
  disbursement transaction and credited to GL4100 fee income; undo_disbursement reverses it.
* Days past due on business date B: B minus the due date of the oldest instalment due before
  B that is not fully paid (an instalment due today is not late until today has closed).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
from decimal import ROUND_HALF_UP, Decimal, localcontext

import pandas as pd
from dateutil.relativedelta import relativedelta

from ..domain import accountnum, loan_replay
from ..domain.chart import INTERNAL
from ..store.db import LOAN_TERM_COLUMNS
from ..domain.dates import as_date
from ..domain.errors import (
    AccountNotFound,
    BankError,
    CustomerNotActive,
    CustomerNotFound,
    IdempotencyConflict,
    InvalidAmount,
    InvalidInput,
    InvalidState,
    PermissionDenied,
)
from ..domain.keys import clean_key, system_key
from .ledger import TRANSACTIONAL_KINDS, PostingRequest, utcnow
from ..domain.money import format_cents, to_cents, to_money
# The arithmetic and input checks live in leaf modules (schedule.py, validate.py) that loans,
# deposit products, charges and end of day share; loans.add_months and the rest stay importable.
from ..domain.schedule import BUCKETS, add_months, bucket  # noqa: F401
from ..domain.validate import PRODUCT_CODE as _PRODUCT_CODE
from ..domain.validate import choice as _choice
from ..domain.validate import clean_rate
from ..domain.validate import clean_text as _clean_text
from ..domain.validate import clean_transaction_id
from ..domain.validate import whole as _whole
from ..domain.validate import yes_no as _yes_no

ROUNDING = ROUND_HALF_UP
TERM_MONTHS_MAX = 480
PURPOSE_CHARS_MAX = 200
REASON_CHARS_MAX = 300
STATUSES = ("submitted", "approved", "rejected", "active", "paid_off", "written_off")
CASH = "cash"


class LoanNotFound(BankError):
    pass


# -- loan products: the terms a loan snapshots when it is applied for --------------------------
# The columns of a product's terms (db.LOAN_TERM_COLUMNS), copied onto the loan at apply.
TERM_COLUMNS = tuple(name for name, _, _ in LOAN_TERM_COLUMNS)
PRODUCT_COLUMNS = ("code", "name", "amount_min_cents", "amount_max_cents", "term_min_months",
                   "term_max_months", "rate_min_percent", "rate_max_percent", "active",
                   *TERM_COLUMNS)
FREQUENCIES = loan_replay.FREQUENCIES
AMORTIZATIONS = loan_replay.AMORTIZATIONS
# Issue 9: any sane contract has a schedule within these bounds.
PRINCIPAL_CENTS_MIN = loan_replay.PRINCIPAL_CENTS_MIN
PRINCIPAL_CENTS_MAX = loan_replay.PRINCIPAL_CENTS_MAX
RATE_PERCENT_MAX = loan_replay.RATE_PERCENT_MAX
LATE_FEE_CENTS_MAX = 100_000
LATE_FEE_GRACE_DAYS_MAX = 90
BP_MAX = 10_000
PRODUCT_NAME_CHARS_MAX = 60
# Changes of a product's rate range by staff wait for a second manager (approvals.py).
FOUR_EYES_PRODUCT_FIELDS = frozenset({"rate_min_percent", "rate_max_percent"})


# -- the arithmetic (pure) -------------------------------------------------------------------
# Every loan's money events, one row each: the repayments as allocated (loan_payments, whose
# method names the event: manual, cash, automatic, reversal, reallocation, recovery), and the
# ledger transactions that have no allocation (disbursement, write-off, undone disbursement),
# whose loan is the number their memo starts with ("Loan 5001 disbursement").
EVENTS_SQL = (
    "SELECT lp.loan_id, lp.business_date AS value_date, lp.transaction_id, lp.method AS event, "
    "lp.amount_cents, lp.fee_cents, lp.interest_cents, lp.principal_cents, lp.prepayment_cents, "
    "lp.actor FROM loan_payments lp UNION ALL "
    # The memo's second word is the loan number (split_part: regexp_extract is DuckDB's alone).
    "SELECT CAST(split_part(t.memo, ' ', 2) AS BIGINT), t.business_date, t.id, "
    "CASE t.kind WHEN 'loan_disbursement' THEN 'disbursement' WHEN 'loan_write_off' "
    "THEN 'write-off' ELSE 'undo disbursement' END, t.amount_cents, "
    # A disbursement's fee column is the disbursement fee kept back from the payout (its credit
    # to fee income; negative on the undo that returned it).
    "CAST(coalesce((SELECT sum(p.amount_cents) FROM postings p JOIN accounts a ON "
    "a.id = p.account_id WHERE p.transaction_id = t.id AND a.account_number = "
    f"'{INTERNAL['fee_income']}'), 0) AS BIGINT), 0, 0, 0, t.actor "
    "FROM transactions t WHERE t.memo LIKE 'Loan %' AND (t.kind IN ('loan_disbursement', "
    "'loan_write_off') OR t.kind = 'reversal' AND t.memo LIKE 'Loan % disbursement undone%')")


def _round_cents(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUNDING))


def monthly_rate(annual_rate_percent) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = 50
        return Decimal(annual_rate_percent) / 1200


# The schedule arithmetic lives in loan_replay (one rule for quotes, disbursements, the demo
# and the replay); these names stay importable from here.
amortize = loan_replay.amortize
annuity_payment_cents = loan_replay.annuity_payment_cents


def due_dates(first_due: dt.date, term_months: int) -> list[dt.date]:
    """Due dates when the first is given: each counted from the first (relativedelta), so the
    day of month is clamped to a shorter month's end and never drifts."""
    return [first_due + relativedelta(months=k) for k in range(term_months)]


BUCKET_SQL = ("CASE WHEN {d} <= 0 THEN 'current' WHEN {d} <= 30 THEN '1-30' "
              "WHEN {d} <= 60 THEN '31-60' WHEN {d} <= 90 THEN '61-90' ELSE 'over 90' END")


def _money_frame(df, columns):
    for column in columns:
        df[column.removesuffix("_cents")] = [to_money(c) for c in df[column]]
    return df


def clean_term(value) -> int:
    if isinstance(value, bool) or isinstance(value, float):
        raise InvalidInput("Give the term as a whole number of months.")
    try:
        term = int(str(value).strip())
    except ValueError:
        raise InvalidInput(f"'{value}' is not a number of months.") from None
    if not 1 <= term <= TERM_MONTHS_MAX:
        raise InvalidInput(f"The term must be between 1 and {TERM_MONTHS_MAX} months.")
    return term


def _within_product(prod: dict, cents: int, term: int) -> None:
    if not prod["amount_min_cents"] <= cents <= prod["amount_max_cents"]:
        raise InvalidAmount(
            f"A {prod['name'].lower()} is for {format_cents(prod['amount_min_cents'])} to "
            f"{format_cents(prod['amount_max_cents'])}.")
    if not prod["term_min_months"] <= term <= prod["term_max_months"]:
        raise InvalidInput(
            f"A {prod['name'].lower()} runs {prod['term_min_months']} to "
            f"{prod['term_max_months']} months.")


def disbursement_fee_cents(terms: dict, principal_cents: int) -> int:
    """The fee charged at disbursement: the flat part plus disbursement_fee_bp hundredths of a
    percent of the principal, rounded half-up to the cent (terms: a product or a loan)."""
    share = Decimal(int(principal_cents) * int(terms["disbursement_fee_bp"])) / BP_MAX
    return int(terms["disbursement_fee_cents"]) + _round_cents(share)


def _loan_rate(value) -> Decimal:
    rate = clean_rate(value)
    if rate > RATE_PERCENT_MAX:
        raise InvalidInput(f"A loan rate must be between 0 and {RATE_PERCENT_MAX} % a year.")
    return rate


def _principal(value, label) -> int:
    cents = to_cents(value)
    if not PRINCIPAL_CENTS_MIN <= cents <= PRINCIPAL_CENTS_MAX:
        raise InvalidAmount(f"The {label} must be between {format_cents(PRINCIPAL_CENTS_MIN)} "
                            f"and {format_cents(PRINCIPAL_CENTS_MAX)}.")
    return cents


def _money_upto(value, label, highest) -> int:
    cents = to_cents(value, allow_zero=True)
    if cents > highest:
        raise InvalidAmount(f"The {label} may be at most {format_cents(highest)}.")
    return cents


# What create_product and update_product take: argument -> (column, cleaner). Amounts are
# money (text or Decimal, through to_cents), rates percent, the rest whole numbers or choices.
_PRODUCT_FIELDS = {
    "name": ("name", lambda v: _clean_text(v, "product name", 3, PRODUCT_NAME_CHARS_MAX)),
    "amount_min": ("amount_min_cents", lambda v: _principal(v, "smallest amount")),
    "amount_max": ("amount_max_cents", lambda v: _principal(v, "largest amount")),
    "term_min_months": ("term_min_months", clean_term),
    "term_max_months": ("term_max_months", clean_term),
    "rate_min_percent": ("rate_min_percent", _loan_rate),
    "rate_max_percent": ("rate_max_percent", _loan_rate),
    "amortization": ("amortization", lambda v: _choice(v, AMORTIZATIONS, "amortization")),
    "frequency": ("frequency", lambda v: _choice(v, FREQUENCIES, "repayment frequency")),
    "grace_principal_periods": ("grace_principal_periods", lambda v: _whole(
        v, "grace period on principal (instalments)", 0, 480 * 5)),
    "disbursement_fee": ("disbursement_fee_cents", lambda v: _money_upto(
        v, "flat disbursement fee", PRINCIPAL_CENTS_MAX)),
    "disbursement_fee_bp": ("disbursement_fee_bp", lambda v: _whole(
        v, "disbursement fee in hundredths of a percent", 0, BP_MAX)),
    "late_fee": ("late_fee_cents", lambda v: _money_upto(v, "late fee", LATE_FEE_CENTS_MAX)),
    "late_fee_grace_days": ("late_fee_grace_days", lambda v: _whole(
        v, "late fee grace days", 0, LATE_FEE_GRACE_DAYS_MAX)),
    "day_count": ("day_count", lambda v: _choice(v, loan_replay.DAY_COUNTS, "day count")),
    "prepayment_rule": ("prepayment_rule", lambda v: _choice(
        v, loan_replay.PREPAYMENT_RULES, "prepayment rule")),
    "due_dates_working_days": ("due_dates_working_days", lambda v: _yes_no(
        v, "whether due dates move to working days")),
}
# A new product's terms unless given (today's behaviour; the late fee as before products).
PRODUCT_DEFAULTS = {"amortization": "equal_instalments", "frequency": "monthly",
                    "grace_principal_periods": 0, "disbursement_fee": "0",
                    "disbursement_fee_bp": 0, "late_fee": "25.00", "late_fee_grace_days": 5,
                    "day_count": loan_replay.DEFAULT_DAY_COUNT,
                    "prepayment_rule": loan_replay.DEFAULT_PREPAYMENT,
                    "due_dates_working_days": False}


def clean_product_changes(changes: dict) -> dict:
    """Arguments of create_product/update_product -> {column: stored value}; InvalidInput or
    InvalidAmount names the first bad one (unknown names included)."""
    unknown = sorted(set(changes) - set(_PRODUCT_FIELDS))
    if unknown:
        raise InvalidInput(f"Unknown product field(s) {', '.join(unknown)}; a product has "
                           f"{', '.join(_PRODUCT_FIELDS)}.")
    return {_PRODUCT_FIELDS[k][0]: _PRODUCT_FIELDS[k][1](v) for k, v in changes.items()}


def check_product(prod: dict) -> None:
    """Rules across a product's fields (stored values): ranges in order, a grace period shorter
    than the instalments, a disbursement fee below every amount it may lend."""
    if prod["amount_min_cents"] > prod["amount_max_cents"]:
        raise InvalidAmount("The smallest amount must not exceed the largest.")
    if prod["term_min_months"] > prod["term_max_months"]:
        raise InvalidInput("The shortest term must not exceed the longest.")
    if prod["rate_min_percent"] > prod["rate_max_percent"]:
        raise InvalidInput("The lowest rate must not exceed the highest.")
    shortest = loan_replay.instalment_count(prod["term_min_months"], prod["frequency"])
    if prod["grace_principal_periods"] >= shortest:
        raise InvalidInput(f"The grace period on principal ({prod['grace_principal_periods']} "
                           f"instalments) must be shorter than the {shortest} instalments of "
                           "the shortest term.")
    for cents in (prod["amount_min_cents"], prod["amount_max_cents"]):
        fee = disbursement_fee_cents(prod, cents)
        if fee >= cents:
            raise InvalidAmount(f"The disbursement fee on {format_cents(cents)} would be "
                                f"{format_cents(fee)}: it must leave the borrower something.")


def _loan_id(value) -> int:
    from ..domain.ids import parse_id
    return parse_id(value, "loan number")


def quote_frame(principal_cents, rate, term_months, first_due=None, *,
                anchor=None) -> pd.DataFrame:
    """The schedule as a frame; due dates from `anchor` (the disbursement day: anchor + k
    months) or, given only `first_due`, from the first due date."""
    rows = amortize(principal_cents, rate, term_months)
    df = pd.DataFrame(rows, columns=["payment_cents", "interest_cents", "principal_cents",
                                     "balance_cents"])
    dates = (loan_replay.due_dates(anchor, term_months) if anchor is not None
             else due_dates(first_due, term_months))
    df.insert(0, "due_date", dates)
    df.insert(0, "n", range(1, term_months + 1))
    return _money_frame(df, ["payment_cents", "interest_cents", "principal_cents",
                             "balance_cents"])


# -- set-based pieces shared by repayments and end of day ---------------------------------------
# Split the amounts in the registered relation loan_pay(loan_id, amount_cents) over what each
# loan owes: fees first, then interest of due instalments, then their principal, oldest first.
# Parameters: the business date twice (instalments due on or before it are due).
ALLOCATION_SQL = """
WITH claims AS (
    SELECT loan_id, n, due_date, 1 AS priority, fee_cents - fee_paid_cents AS owed_cents
    FROM loan_schedule WHERE fee_cents > fee_paid_cents
    UNION ALL
    SELECT loan_id, n, due_date, 2, interest_cents - interest_paid_cents
    FROM loan_schedule WHERE due_date <= ? AND interest_cents > interest_paid_cents
    UNION ALL
    SELECT loan_id, n, due_date, 3, principal_cents - principal_paid_cents
    FROM loan_schedule WHERE due_date <= ? AND principal_cents > principal_paid_cents
), ranked AS (
    SELECT c.loan_id, c.n, c.priority, c.owed_cents, p.amount_cents,
           sum(c.owed_cents) OVER (PARTITION BY c.loan_id ORDER BY c.priority, c.due_date, c.n
                                   ROWS UNBOUNDED PRECEDING) - c.owed_cents AS before_cents
    FROM claims c JOIN loan_pay p ON p.loan_id = c.loan_id
), paid AS (
    SELECT loan_id, n, priority,
           least(owed_cents, greatest(amount_cents - before_cents, 0)) AS paid_cents
    FROM ranked
)
SELECT loan_id, n,
       CAST(sum(CASE WHEN priority = 1 THEN paid_cents ELSE 0 END) AS BIGINT) AS fee_cents,
       CAST(sum(CASE WHEN priority = 2 THEN paid_cents ELSE 0 END) AS BIGINT) AS interest_cents,
       CAST(sum(CASE WHEN priority = 3 THEN paid_cents ELSE 0 END) AS BIGINT) AS principal_cents
FROM paid WHERE paid_cents > 0 GROUP BY loan_id, n ORDER BY loan_id, n
"""

# What each active loan owes on business date ? (fees, and interest and principal of due
# instalments).
OWED_SQL = """
SELECT loan_id, CAST(sum(fee_cents - fee_paid_cents
    + CASE WHEN due_date <= ? THEN interest_cents - interest_paid_cents
                                 + principal_cents - principal_paid_cents ELSE 0 END)
    AS BIGINT) AS owed_cents
FROM loan_schedule GROUP BY loan_id
"""


def allocate(uow, payments: pd.DataFrame, as_of: dt.date) -> pd.DataFrame:
    """Rows (loan_id, n, fee_cents, interest_cents, principal_cents) that the amounts in
    `payments` (loan_id, amount_cents) pay, in the order described in the module docstring."""
    with uow.scan("loan_pay", payments[["loan_id", "amount_cents"]]):
        return uow.fetch_df(ALLOCATION_SQL, [as_of, as_of])


def apply_allocation(uow, alloc: pd.DataFrame) -> None:
    if len(alloc) == 0:
        return
    with uow.scan("loan_alloc", alloc):
        uow.execute(
            "UPDATE loan_schedule SET "
            "fee_paid_cents = loan_schedule.fee_paid_cents + a.fee_cents, "
            "interest_paid_cents = loan_schedule.interest_paid_cents + a.interest_cents, "
            "principal_paid_cents = loan_schedule.principal_paid_cents + a.principal_cents "
            "FROM loan_alloc a WHERE loan_schedule.loan_id = a.loan_id "
            "AND loan_schedule.n = a.n")


def record_payments(uow, payments: pd.DataFrame) -> None:
    """Insert loan_payments rows and lower each loan's outstanding principal.

    `payments` columns: transaction_id, loan_id, business_date, method, source_account,
    amount_cents, fee_cents, interest_cents, principal_cents, prepayment_cents, actor."""
    with uow.scan("loan_paid", payments):
        rule = "prepayment_rule" if "prepayment_rule" in payments else "NULL"
        uow.execute(
            "INSERT INTO loan_payments (transaction_id, loan_id, business_date, method, "
            "source_account, amount_cents, fee_cents, interest_cents, principal_cents, "
            "prepayment_cents, actor, prepayment_rule) SELECT transaction_id, loan_id, "
            "CAST(business_date AS DATE), method, source_account, amount_cents, fee_cents, "
            f"interest_cents, principal_cents, prepayment_cents, actor, {rule} FROM loan_paid")
        uow.execute(
            "UPDATE loans SET principal_outstanding_cents = "
            "loans.principal_outstanding_cents - p.principal "
            "FROM (SELECT loan_id, sum(principal_cents) AS principal FROM loan_paid GROUP BY 1) p "
            "WHERE loans.id = p.loan_id")


def close_paid_off(uow, as_of: dt.date, loan_ids) -> list[int]:
    """Loans among `loan_ids` that owe nothing more become paid_off; returns their ids."""
    if not loan_ids:
        return []
    ids = [int(i) for i in loan_ids]
    in_list = uow.dialect.in_list
    done = [row[0] for row in uow.fetchall(
        "SELECT id FROM loans l WHERE " + in_list("id", "BIGINT") + " AND status = 'active' "
        "AND principal_outstanding_cents = 0 AND NOT EXISTS (SELECT 1 FROM loan_schedule s "
        "WHERE s.loan_id = l.id AND (s.fee_paid_cents < s.fee_cents "
        "OR s.interest_paid_cents < s.interest_cents AND s.due_date <= ?))",
        [ids, as_of])]
    if done:
        # Instalments never reached (after a payoff) are dropped from the plan.
        uow.execute("DELETE FROM loan_schedule WHERE " + in_list("loan_id", "BIGINT") + " "
                    "AND principal_paid_cents = 0 AND interest_paid_cents = 0 "
                    "AND fee_cents = 0 AND due_date > ?", [done, as_of])
        uow.execute("UPDATE loans SET status = 'paid_off', closed_date = ?, days_past_due = 0, "
                    "arrears_bucket = 'current' WHERE " + in_list("id", "BIGINT"),
                    [as_of, done])
    return done


def age_arrears(uow, as_of: dt.date, loan_id=None) -> None:
    """Store days past due and the arrears bucket of active loans as of business date as_of."""
    where = "" if loan_id is None else " AND l.id = " + str(int(loan_id))
    uow.execute(
        "UPDATE loans SET days_past_due = x.dpd, arrears_bucket = x.bucket FROM ("
        "SELECT id, dpd, " + BUCKET_SQL.format(d="dpd") + " AS bucket FROM ("
        "SELECT l.id, coalesce(" + uow.dialect.days_between("o.oldest", "CAST(? AS DATE)")
        + ", 0) AS dpd "
        "FROM loans l LEFT JOIN (SELECT loan_id, min(due_date) AS oldest FROM loan_schedule "
        "WHERE due_date < ? AND (interest_paid_cents < interest_cents "
        "OR principal_paid_cents < principal_cents) GROUP BY 1) o ON o.loan_id = l.id "
        "WHERE l.status = 'active'" + where + ") d) x "
        "WHERE loans.id = x.id AND (loans.days_past_due <> x.dpd "
        "OR loans.arrears_bucket <> x.bucket)", [as_of, as_of])


# -- the loan as the replay of its events (loan_replay), and its cache ------------------------
# Payments that the replay applies (reversal, reallocation and recovery rows are bookkeeping).
REPLAYED_METHODS = ("manual", "cash", "automatic")
# A new payment is the last of its value date: it sorts after every stored transaction id.
_LAST = 2 ** 62

_EVENTS_SQL = (
    "SELECT business_date, transaction_id, amount_cents, prepayment_rule FROM loan_payments lp "
    "WHERE loan_id = ? AND method IN ('manual', 'cash', 'automatic') AND NOT EXISTS "
    "(SELECT 1 FROM transactions t WHERE t.reverses_id = lp.transaction_id) "
    "ORDER BY business_date, transaction_id")
# A late fee is charged at the end of day of fee_date and payable from the next day on.
_FEES_SQL = ("SELECT n, fee_cents, coalesce(fee_date, due_date) FROM loan_schedule "
             "WHERE loan_id = ? AND fee_cents > 0")


def _clean_rule(value):
    if value is None or value == "":
        return None
    rule = str(value).strip().lower().replace(" ", "_")
    if rule not in loan_replay.PREPAYMENT_RULES:
        raise InvalidInput("A prepayment either reduces the instalments "
                           "(reduce_instalment) or shortens the term (shorten_term).")
    return rule


def _contract(loan, work_calendar) -> loan_replay.Contract:
    """The replay's contract of a loan row (or of a product's terms with principal, rate, term
    and disbursement date filled in): the terms the loan snapshotted when applied for.
    `work_calendar` (anything with move_due_date(date) -> date: bank.workdays.calendar(); None
    only where no loan can have the flag) moves the due dates of a loan with
    due_dates_working_days off the days the bank does not work."""
    moves = ({"move_due_date": work_calendar.move_due_date}
             if work_calendar is not None and loan.get("due_dates_working_days") else {})
    return loan_replay.Contract(
        int(loan["principal_cents"]), Decimal(str(loan["annual_rate_percent"])),
        int(loan["term_months"]), as_date(loan["disbursement_date"], "disbursement date"),
        **moves,
        day_count=loan.get("day_count") or loan_replay.DEFAULT_DAY_COUNT,
        prepayment=loan.get("prepayment_rule") or loan_replay.DEFAULT_PREPAYMENT,
        frequency=loan.get("frequency") or loan_replay.DEFAULT_FREQUENCY,
        amortization=loan.get("amortization") or loan_replay.DEFAULT_AMORTIZATION,
        grace_principal_periods=int(loan.get("grace_principal_periods") or 0))


def contract_frame(contract: loan_replay.Contract) -> pd.DataFrame:
    """The schedule of a contract not yet disbursed (n, due_date, payment, interest,
    principal, balance as Decimal and in *_cents)."""
    rows = loan_replay.Loan(contract).rows
    df = pd.DataFrame([(r.n, r.due, r.payment, r.interest, r.principal, r.balance)
                       for r in rows], columns=["n", "due_date", "payment_cents",
                                                "interest_cents", "principal_cents",
                                                "balance_cents"])
    return _money_frame(df, ["payment_cents", "interest_cents", "principal_cents",
                             "balance_cents"])


def _replay_in(fetchall, loan, extra=(), *, work_calendar) -> loan_replay.Loan:
    """Replay a disbursed loan from its stored events; fetchall is uow.fetchall or bank.read,
    work_calendar the bank's working-day calendar (bank.workdays.calendar())."""
    lid = loan["id"]
    events = [loan_replay.Payment(d, int(t), int(a), r)
              for d, t, a, r in fetchall(_EVENTS_SQL, [lid])]
    fees = {int(n): (int(c), d) for n, c, d in fetchall(_FEES_SQL, [lid])}
    try:
        return loan_replay.replay(_contract(loan, work_calendar), [*events, *extra], fees)
    except loan_replay.ReplayError as exc:
        if "payoff" in str(exc):
            raise InvalidAmount(f"Loan {lid} cannot take this: it is {exc}.") from None
        raise InvalidState(f"Loan {lid} cannot take this: {exc}.") from None


SCHEDULE_COLUMNS = ("loan_id", "n", "due_date", "payment_cents", "interest_cents",
                    "principal_cents", "balance_cents", "interest_paid_cents",
                    "principal_paid_cents", "fee_cents", "fee_paid_cents", "fee_date")


def schedule_frame(lid, replayed: loan_replay.Loan) -> pd.DataFrame:
    return pd.DataFrame([(lid, r.n, r.due, r.payment, r.interest, r.principal, r.balance,
                          r.interest_paid, r.principal_paid, r.fee, r.fee_paid, r.fee_date)
                         for r in replayed.rows], columns=SCHEDULE_COLUMNS)


def _write_schedule(uow, lid, replayed) -> None:
    frame = schedule_frame(lid, replayed)
    frame["fee_date"] = pd.to_datetime(frame["fee_date"])
    uow.execute("DELETE FROM loan_schedule WHERE loan_id = ?", [lid])
    with uow.scan("new_schedule", frame):
        uow.execute(f"INSERT INTO loan_schedule ({', '.join(SCHEDULE_COLUMNS)}) SELECT "
                    "loan_id, n, CAST(due_date AS DATE), payment_cents, interest_cents, "
                    "principal_cents, balance_cents, interest_paid_cents, principal_paid_cents, "
                    "fee_cents, fee_paid_cents, CAST(fee_date AS DATE) FROM new_schedule")


def _store(uow, loan, replayed, today, reopen=False) -> bool:
    """Write the replay into the cache (schedule, outstanding principal, status, arrears);
    returns whether the loan is now paid off."""
    lid = loan["id"]
    _write_schedule(uow, lid, replayed)
    uow.execute("UPDATE loans SET principal_outstanding_cents = ? WHERE id = ?",
                [replayed.principal_outstanding, lid])
    done = replayed.owes_nothing(today)
    if done:
        uow.execute("UPDATE loans SET status = 'paid_off', closed_date = ?, days_past_due = 0, "
                    "arrears_bucket = 'current' WHERE id = ? AND status = 'active'", [today, lid])
    elif reopen:
        uow.execute("UPDATE loans SET status = 'active', closed_date = NULL WHERE id = ? "
                    "AND status = 'paid_off'", [lid])
    if not done:
        age_arrears(uow, today, lid)
    return done


def _request_hash(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _clean_key(key):
    return clean_key(key)


LOAN_COLUMNS = (
    "id", "customer_id", "product_code", "principal_cents", "term_months", "purpose",
    "monthly_income_cents", "status", "annual_rate_percent", "applied_by", "applied_role",
    "applied_at", "applied_date", "decided_by", "decided_at", "decision_reason",
    "account_number", "disbursed_by", "disbursed_at", "disbursement_date", "disbursement_tx_id",
    "principal_outstanding_cents", "days_past_due", "arrears_bucket", "closed_date",
    "written_off_cents", "write_off_reason", *TERM_COLUMNS)
_LOAN_SELECT = "SELECT " + ", ".join(LOAN_COLUMNS) + " FROM loans WHERE id = ?"


def _product_dict(row) -> dict:
    prod = dict(zip(PRODUCT_COLUMNS, row))
    for key in ("rate_min_percent", "rate_max_percent"):
        prod[key] = Decimal(str(prod[key]))
    return prod


def _rate_shown(value) -> Decimal:
    """A stored rate for people: two decimals, or all four when it has them."""
    rate = Decimal(str(value))
    return rate.quantize(Decimal("0.01")) if rate == rate.quantize(Decimal("0.01")) \
        else rate.quantize(Decimal("0.0001"))


def _shown(value) -> str:
    return str(value.normalize() if isinstance(value, Decimal) else value)


def _product_audit(values: dict) -> dict:
    return {k: (f"{v.normalize():f}" if isinstance(v, Decimal) else v)
            for k, v in values.items()}


class Loans:
    def __init__(self, bank):
        self._bank = bank

    # -- reading helpers ---------------------------------------------------------------------
    def _loan(self, loan_id) -> dict:
        lid = _loan_id(loan_id)
        row = self._bank.read_one(_LOAN_SELECT, [lid])
        if row is None:
            raise LoanNotFound(f"There is no loan {lid}.")
        return dict(zip(LOAN_COLUMNS, row))

    @staticmethod
    def _loan_in(uow, lid) -> dict:
        row = uow.fetchone(_LOAN_SELECT, [lid])
        if row is None:
            raise LoanNotFound(f"There is no loan {lid}.")
        return dict(zip(LOAN_COLUMNS, row))

    def _readable(self, actor, loan_id, action="loan.read") -> dict:
        loan = self._loan(loan_id)
        self._bank.require(actor, action, loan["customer_id"], entity="loan",
                           entity_id=loan["id"])
        return loan

    _PRODUCT_SELECT = "SELECT " + ", ".join(PRODUCT_COLUMNS) + " FROM loan_products"

    def _product(self, code, include_inactive=False, fetchone=None) -> dict:
        """A product's stored row as a dict; InvalidInput when there is none (or, unless
        include_inactive, when it is no longer offered). fetchone: uow.fetchone in a write."""
        row = (fetchone or self._bank.read_one)(
            self._PRODUCT_SELECT + " WHERE code = ?",
            [str(code).strip().lower().replace(" ", "_")])
        if row is None or not (row[8] or include_inactive):
            raise InvalidInput(f"There is no loan product '{code}'.")
        return _product_dict(row)

    # -- products and quotes -----------------------------------------------------------------
    def products(self, include_inactive=False) -> pd.DataFrame:
        """The loan products on offer (public information), or all of them: code, name,
        amount_min/max (Decimal and *_cents), term_min/max_months, rate_min/max_percent
        (Decimal), active, and the terms a loan snapshots (TERM_COLUMNS; disbursement_fee and
        late_fee also as Decimal)."""
        df = self._bank.read_df(self._PRODUCT_SELECT + ("" if include_inactive
                                                        else " WHERE active") + " ORDER BY code")
        for column in ("rate_min_percent", "rate_max_percent"):
            df[column] = [_rate_shown(v) for v in df[column]]
        return _money_frame(df, ["amount_min_cents", "amount_max_cents",
                                 "disbursement_fee_cents", "late_fee_cents"])

    def create_product(self, actor, *, code, name, amount_min, amount_max, term_min_months,
                       term_max_months, rate_min_percent, rate_max_percent, **terms) -> dict:
        """Managers: a new loan product, offered at once. `terms` are any of amortization,
        frequency, grace_principal_periods, disbursement_fee (money, flat),
        disbursement_fee_bp (hundredths of a percent of the principal), late_fee (money),
        late_fee_grace_days, day_count, prepayment_rule, due_dates_working_days; the rest
        take PRODUCT_DEFAULTS. Returns the stored product (as products() rows, a dict).
        Raises PermissionDenied, InvalidInput or InvalidAmount (audited); nothing changes."""
        bank = self._bank
        bank.require(actor, "loan.manage_products", entity="loan_product", entity_id=code)
        try:
            text = str(code).strip().lower()
            if not _PRODUCT_CODE.match(text):
                raise InvalidInput("A product code is 2 to 30 lower-case letters, digits or "
                                   "underscores, starting with a letter.")
            prod = {"code": text, "active": True, **clean_product_changes({
                **PRODUCT_DEFAULTS, **terms, "name": name, "amount_min": amount_min,
                "amount_max": amount_max, "term_min_months": term_min_months,
                "term_max_months": term_max_months, "rate_min_percent": rate_min_percent,
                "rate_max_percent": rate_max_percent})}
            check_product(prod)
        except BankError as exc:
            bank.record_refusal(actor, "loan_product.create", exc, entity="loan_product",
                                entity_id=str(code)[:40])
            raise

        def fn(uow):
            if uow.fetchone("SELECT 1 FROM loan_products WHERE code = ?", [prod["code"]]):
                raise InvalidInput(f"There is already a loan product '{prod['code']}'.")
            columns = list(PRODUCT_COLUMNS)
            uow.execute(f"INSERT INTO loan_products ({', '.join(columns)}) VALUES "
                        f"({', '.join('?' * len(columns))})", [prod[c] for c in columns])
            bank.audit_row(uow, actor, "loan_product.create", "loan_product", prod["code"],
                           after=_product_audit(prod))
        self._write_refusing(actor, "loan_product.create", prod["code"], fn)
        return self._product_out(prod["code"])

    def update_product(self, actor, code, **changes):
        """Managers: change a product's fields (the names create_product takes). Loans already
        applied for keep the terms they snapshotted. A change of the rate range made by staff
        waits for a second manager: the call returns a PendingApproval and nothing changes
        until then; otherwise it returns the stored product (a dict). Raises
        PermissionDenied, InvalidInput or InvalidAmount (audited); nothing changes then."""
        bank = self._bank
        bank.require(actor, "loan.manage_products", entity="loan_product", entity_id=code)
        try:
            prod = self._product(code, include_inactive=True)
            if not changes:
                raise InvalidInput("Nothing to change: give at least one field.")
            columns = clean_product_changes(changes)
            check_product({**prod, **columns})
        except BankError as exc:
            bank.record_refusal(actor, "loan_product.update", exc, entity="loan_product",
                                entity_id=str(code)[:40])
            raise
        changed = {k: v for k, v in columns.items() if v != prod[k]}
        if not changed:
            exc = InvalidInput(f"Nothing to change: loan product {prod['code']} already has "
                               "these values.")
            bank.record_refusal(actor, "loan_product.update", exc, entity="loan_product",
                                entity_id=prod["code"])
            raise exc
        if FOUR_EYES_PRODUCT_FIELDS & set(changed) and bank.approvals.applies_to(actor):
            return bank.approvals.request(
                actor, "loan.update_product", params={
                    "code": prod["code"], "changes": {k: str(v) if isinstance(v, Decimal)
                                                      else v for k, v in changed.items()}},
                summary=f"Loan product {prod['code']}: " + ", ".join(
                    f"{k} {_shown(prod[k])} -> {_shown(v)}" for k, v in changed.items()))
        self._write_refusing(actor, "loan_product.update", prod["code"],
                             lambda uow: self._update_product_in(uow, actor, prod["code"],
                                                                 changed))
        return self._product_out(prod["code"])

    def _update_product_in(self, uow, actor, code, columns: dict) -> None:
        """Write checked column values of a product and audit before/after (also what an
        approved four-eyes request carries out: the rules are checked again on today's row)."""
        columns = {k: Decimal(v) if k in ("rate_min_percent", "rate_max_percent") else v
                   for k, v in columns.items()}
        before = self._product(code, include_inactive=True, fetchone=uow.fetchone)
        after = {**before, **columns}
        check_product(after)
        if columns:
            uow.execute(f"UPDATE loan_products SET {', '.join(f'{k} = ?' for k in columns)} "
                        "WHERE code = ?", [*columns.values(), code])
        self._bank.audit_row(uow, actor, "loan_product.update", "loan_product", code,
                             before=_product_audit({k: before[k] for k in columns}),
                             after=_product_audit(columns))

    def set_product_active(self, actor, code, active) -> dict:
        """Managers: offer a product again (True) or stop offering it (False) to new
        applications; loans already applied for are not touched. Audited. Returns the
        product (a dict)."""
        bank = self._bank
        bank.require(actor, "loan.manage_products", entity="loan_product", entity_id=code)
        try:
            active = _yes_no(active, "whether the product is offered")
            prod = self._product(code, include_inactive=True)
        except BankError as exc:
            bank.record_refusal(actor, "loan_product.set_active", exc, entity="loan_product",
                                entity_id=str(code)[:40])
            raise

        def fn(uow):
            uow.execute("UPDATE loan_products SET active = ? WHERE code = ?",
                        [active, prod["code"]])
            bank.audit_row(uow, actor, "loan_product.set_active", "loan_product",
                           prod["code"], before={"active": prod["active"]},
                           after={"active": active})
        self._write_refusing(actor, "loan_product.set_active", prod["code"], fn)
        return self._product_out(prod["code"])

    def _write_refusing(self, actor, action, code, fn):
        """bank.write(fn); a BankError raised inside is audited as a refusal, then raised."""
        try:
            return self._bank.write(fn)
        except BankError as exc:
            self._bank.record_refusal(actor, action, exc, entity="loan_product",
                                      entity_id=code)
            raise

    def _product_out(self, code) -> dict:
        df = self.products(include_inactive=True)
        row = df[df["code"] == code].iloc[0].to_dict()
        # Plain Python values out, not numpy scalars.
        return {k: v.item() if hasattr(v, "item") else v for k, v in row.items()}

    def quote(self, principal, annual_rate_percent, term_months, first_due=None) -> pd.DataFrame:
        """The full schedule (n, due_date, payment, interest, principal, balance as Decimal, and
        the same in *_cents) of an annuity loan; a pure calculation. Without first_due, the first
        instalment falls one month after the current business date."""
        cents = to_cents(principal)
        rate = clean_rate(annual_rate_percent)
        term = clean_term(term_months)
        first = as_date(first_due, "first due date") or add_months(self._bank.business_date, 1)
        return quote_frame(cents, rate, term, first)

    def product_quote(self, product, principal, term_months) -> pd.DataFrame:
        """A quote at the product's highest rate: the most the applicant would pay (the manager
        may approve a lower rate), on the product's terms (frequency, amortization, grace,
        day count), first due date counted from the business date. Refuses what the product
        does not lend, as apply would. The frame's `attrs` hold what the schedule does not
        show: disbursement_fee and net_amount (what reaches the borrower's account; Decimal
        and *_cents), rate_percent, frequency, amortization, grace_principal_periods."""
        prod = self._product(product)
        cents, term = to_cents(principal), clean_term(term_months)
        _within_product(prod, cents, term)
        fee = disbursement_fee_cents(prod, cents)
        df = contract_frame(_contract({**prod, "principal_cents": cents, "term_months": term,
                                       "annual_rate_percent": prod["rate_max_percent"],
                                       "disbursement_date": self._bank.business_date},
                                      self._bank.workdays.calendar()))
        df.attrs.update({
            "disbursement_fee_cents": fee, "disbursement_fee": to_money(fee),
            "net_amount_cents": cents - fee, "net_amount": to_money(cents - fee),
            "rate_percent": _rate_shown(prod["rate_max_percent"]), "frequency": prod["frequency"],
            "amortization": prod["amortization"],
            "grace_principal_periods": prod["grace_principal_periods"]})
        return df

    # -- applications and decisions ----------------------------------------------------------
    def apply(self, actor, customer_id, *, product, principal, term_months, purpose,
              monthly_income=None, idempotency_key=None) -> int:
        """File an application (status submitted). With an idempotency key, a repeat of the
        same request returns the loan it created instead of filing a second one."""
        bank = self._bank
        cid = bank.customers._id(customer_id)
        bank.require(actor, "loan.apply", cid, entity="customer", entity_id=cid)
        prod = self._product(product)
        cents = to_cents(principal)
        term = clean_term(term_months)
        purpose = _clean_text(purpose, "purpose of the loan", 3, PURPOSE_CHARS_MAX)
        if monthly_income is None or (isinstance(monthly_income, str)
                                      and not monthly_income.strip()):
            raise InvalidInput("Please give the monthly income.")
        income_cents = to_cents(monthly_income, allow_zero=True)
        _within_product(prod, cents, term)
        # The product's terms as they are today: the loan keeps them whatever the product
        # becomes (issue 9).
        terms = {column: prod[column] for column in TERM_COLUMNS}

        key = None if idempotency_key is None else _clean_key(idempotency_key)

        def fn(uow):
            if key is not None:
                prior = uow.fetchone(
                    "SELECT id, customer_id, product_code, principal_cents, term_months "
                    "FROM loans WHERE request_key = ?", [key])
                if prior is not None:
                    if tuple(prior[1:]) != (cid, prod["code"], cents, term):
                        raise IdempotencyConflict(
                            "This request key was already used for a different application.")
                    return int(prior[0])
            row = uow.fetchone("SELECT status FROM customers WHERE id = ?", [cid])
            if row is None:
                raise CustomerNotFound(f"There is no customer {cid}.")
            if row[0] != "active":
                raise CustomerNotActive(
                    f"Customer {cid} is {row[0]}; only active customers can apply for a loan.")
            (lid,) = uow.fetchone("SELECT nextval('loan_id_seq')")
            uow.execute(
                "INSERT INTO loans (id, customer_id, product_code, principal_cents, term_months, "
                "purpose, monthly_income_cents, status, applied_by, applied_role, applied_at, "
                "applied_date, request_key, " + ", ".join(terms) + ") VALUES (?, ?, ?, ?, ?, "
                "?, ?, 'submitted', ?, ?, ?, ?, ?" + ", ?" * len(terms) + ")",
                [lid, cid, prod["code"], cents, term, purpose, income_cents,
                 actor.username, actor.role, utcnow(), bank.state.business_date, key,
                 *terms.values()])
            bank.audit_row(uow, actor, "loan.apply", "loan", lid, after={
                "customer_id": cid, "product": prod["code"], "principal": str(to_money(cents)),
                "term_months": term, "purpose": purpose,
                "monthly_income": str(to_money(income_cents)), "terms": terms})
            return int(lid)
        return bank.write(fn)

    def _decide(self, actor, loan_id, action, decide):
        bank = self._bank
        lid = _loan_id(loan_id)
        bank.require(actor, "loan.decide", entity="loan", entity_id=lid)
        # Four eyes: whoever entered an application does not decide it (applied_by never
        # changes, so checking before the write is safe).
        if actor.role != "system" and actor.username == self._loan(lid)["applied_by"]:
            exc = PermissionDenied("You entered this application; another manager must "
                                   "decide it.")
            bank.record_refusal(actor, action, exc, entity="loan", entity_id=lid)
            raise exc

        def fn(uow):
            loan = self._loan_in(uow, lid)
            if loan["status"] != "submitted":
                raise InvalidState(f"Loan {lid} is {loan['status'].replace('_', ' ')}; only a "
                                   "submitted application can be decided.")
            changes = decide(uow, loan)
            sets = ", ".join(f"{k} = ?" for k in changes)
            uow.execute(f"UPDATE loans SET {sets} WHERE id = ?", [*changes.values(), lid])
            bank.audit_row(uow, actor, action, "loan", lid,
                           before={"status": loan["status"]},
                           after={k: v for k, v in changes.items() if k != "decided_at"})
        bank.write(fn)

    def approve(self, actor, loan_id, *, annual_rate_percent) -> None:
        """Approve a submitted application at a rate within its product's range."""
        rate = clean_rate(annual_rate_percent)

        def decide(uow, loan):
            lo, hi = uow.fetchone("SELECT rate_min_percent, rate_max_percent FROM "
                                  "loan_products WHERE code = ?", [loan["product_code"]])
            if not lo <= rate <= hi:
                raise InvalidInput(f"The rate for this product must be between "
                                   f"{lo.normalize():f} % and {hi.normalize():f} %.")
            return {"status": "approved", "annual_rate_percent": rate,
                    "decided_by": actor.username, "decided_at": utcnow(),
                    "decision_reason": None}
        self._decide(actor, loan_id, "loan.approve", decide)

    def reject(self, actor, loan_id, *, reason) -> None:
        reason = _clean_text(reason, "reason for the rejection", 3, REASON_CHARS_MAX)
        self._decide(actor, loan_id, "loan.reject", lambda uow, loan: {
            "status": "rejected", "decided_by": actor.username, "decided_at": utcnow(),
            "decision_reason": reason, "closed_date": self._bank.state.business_date})

    # -- money -------------------------------------------------------------------------------
    def _replay_or_conflict(self, uow, key, request):
        """When the key was used before, the ledger answers with the earlier receipt (or a
        conflict) before any rule of this module could refuse the retry."""
        if uow.fetchone("SELECT 1 FROM idempotency_keys WHERE key = ?", [key]):
            return self._bank.post_in(uow, request)
        return None

    @staticmethod
    def _raise_refusal(result):
        if isinstance(result, BaseException):
            raise result
        return result

    def disburse(self, actor, loan_id, account_number, idempotency_key=None):
        """Pay an approved loan into one of its customer's accounts (which then also pays the
        instalments at end of day). The schedule starts one month after the business date."""
        bank = self._bank
        loan = self._loan(loan_id)
        lid = loan["id"]
        bank.require(actor, "loan.disburse", loan["customer_id"], entity="loan", entity_id=lid)
        number = accountnum.normalize(account_number)
        # After an undone disbursement the loan may be paid out again, under a fresh key.
        (undone,) = bank.read_one("SELECT count(*) FROM audit_log WHERE action = "
                                  "'loan.undo_disbursement' AND entity_id = ?", [str(lid)])
        key = (_clean_key(idempotency_key) if idempotency_key
               else system_key("loan", lid, "disbursement", *([undone + 1] if undone else [])))
        gl = INTERNAL["loans_receivable"]

        def fn(uow):
            loan = self._loan_in(uow, lid)
            cents = loan["principal_cents"]
            # The disbursement fee (the loan's snapshot of its product) is kept back from the
            # payout in the same transaction: Dr loans receivable P, Cr the account P - fee,
            # Cr fee income fee.
            fee = disbursement_fee_cents(loan, cents)
            legs = [(gl, -cents), (number, cents - fee)]
            memo = f"Loan {lid} disbursement"
            if fee:
                legs.append((INTERNAL["fee_income"], fee))
                memo += (f": disbursement fee {to_money(fee)}, paid out "
                         f"{to_money(cents - fee)}")
            req = PostingRequest(
                kind="loan_disbursement", actor=actor, action="loan.disburse",
                legs=legs, amount_cents=cents, idempotency_key=key,
                memo=memo, source_account=gl, target_account=number,
                internal_ok=True)
            replay = self._replay_or_conflict(uow, key, req)
            if replay is not None:
                return replay
            if loan["status"] != "approved":
                raise InvalidState(f"Loan {lid} is {loan['status'].replace('_', ' ')}; only an "
                                   "approved loan can be paid out.")
            acc = uow.fetchone("SELECT customer_id, kind FROM accounts WHERE account_number = ?",
                               [number])
            if acc is None or acc[0] is None:
                raise AccountNotFound(f"There is no account {number}.")
            if acc[0] != loan["customer_id"] or acc[1] not in TRANSACTIONAL_KINDS:
                raise InvalidInput(f"Account {number} does not belong to the borrower.")
            outcome = bank.post_in(uow, req)
            if isinstance(outcome, BaseException):
                return outcome
            if fee:
                # The fee is in the charges register too (issue 10), as part of this payout.
                from .charges import record_in
                record_in(bank, actor, uow, account_number=number, code="loan_disbursement",
                          amount_cents=fee, reason=f"Loan {lid}",
                          transaction_id=outcome.transaction_id)
            today = bank.state.business_date
            replayed = loan_replay.Loan(_contract({**loan, "disbursement_date": today},
                                                  bank.workdays.calendar()))
            _write_schedule(uow, lid, replayed)
            first = replayed.rows[0].due
            rows = [(replayed.rows[0].payment,)]
            uow.execute(
                "UPDATE loans SET status = 'active', account_number = ?, disbursed_by = ?, "
                "disbursed_at = ?, disbursement_date = ?, disbursement_tx_id = ?, "
                "principal_outstanding_cents = ? WHERE id = ?",
                [number, actor.username, utcnow(), today, outcome.transaction_id, cents, lid])
            bank.audit_row(uow, actor, "loan.disburse", "loan", lid,
                           before={"status": "approved"},
                           after={"status": "active", "account": number,
                                  "amount": str(to_money(cents)),
                                  "disbursement_fee": str(to_money(fee)),
                                  "paid_out": str(to_money(cents - fee)),
                                  "transaction_id": outcome.transaction_id,
                                  "first_due": first.isoformat(),
                                  "instalment": str(to_money(rows[0][0]))})
            return outcome
        return self._raise_refusal(bank.write(fn))

    def repay(self, actor, loan_id, amount, source_account, idempotency_key=None, *,
              prepayment=None, value_date=None):
        """A manual payment from one of the borrower's accounts (or, for staff, `"cash"` taken
        at the counter), value-dated on the business date. Returns the ledger Receipt; the split
        is in its memo and in loan_payments.

        The split follows loan_replay (fees, what is due, the coming instalment, then a
        prepayment re-amortised by `prepayment`: "reduce_instalment" (default) or
        "shorten_term"). A payment equal to the payoff closes the loan; more is refused with
        InvalidAmount. On a written-off loan the payment is a recovery: income in GL4200,
        at most the amount written off less earlier recoveries.

        `value_date` (managers, a correction): a payment that should have counted on an
        earlier day, not before the disbursement. The loan is replayed with it in its place;
        any change in how the later payments split is posted as a loan_reallocation."""
        bank = self._bank
        loan, cents, rule, source, is_cash = self._repay_request(actor, loan_id, amount,
                                                                  source_account, prepayment)
        lid = loan["id"]
        vday = as_date(value_date, "value date")
        if vday is not None and vday != bank.business_date:
            bank.require(actor, "loan.correct", entity="loan", entity_id=lid)
        key = _clean_key(idempotency_key)
        # Refused before the four-eyes gate: no second person can make an overpayment right.
        # A back-dated payment on an active loan is checked against the replay instead.
        refusal = (None if loan["status"] == "active" and vday is not None
                   else self._amount_refusal(loan, cents))
        if refusal is not None:
            bank.record_refusal(actor, "loan.repay", refusal, entity="loan", entity_id=lid)
            raise refusal
        # Whether the four-eyes rule applies is known here, on the caller's thread: an approved
        # request carried out by approvals._approve_loan says so in a context variable the
        # writer's thread does not see.
        four_eyes = bank.approvals.applies_to(actor)
        parts = ("loan_repayment", actor.username, lid, cents, source)
        if vday is not None:
            parts += (vday.isoformat(),)
        request_hash = _request_hash(*parts, rule) if rule else _request_hash(*parts)
        owned = (source,) if actor.role == "customer" else ()

        def request(legs, memo="", kind="loan_repayment", target=INTERNAL["loans_receivable"]):
            return PostingRequest(
                kind=kind, actor=actor, action="loan.repay", legs=legs,
                amount_cents=cents, idempotency_key=key, memo=memo, source_account=source,
                target_account=target, owned_accounts=owned,
                internal_ok=True, request_hash=request_hash)

        def fn(uow):
            simple = [(source, -cents), (INTERNAL["loans_receivable"], cents)]
            replay = self._replay_or_conflict(uow, key, request(simple))
            if replay is not None:
                return replay
            # Issue 12: staff repayments above the four-eyes threshold wait (approvals.py),
            # decided in this unit of work with the day's payments it posts beside.
            held = four_eyes and bank.approvals.gate_loan(
                actor, "loan.repay", lid, amount_cents=cents, source_account=source_account,
                idempotency_key=key, prepayment=rule, uow=uow,
                value_date=vday.isoformat() if vday else None)
            if held:
                return held
            loan = self._loan_in(uow, lid)
            today = bank.state.business_date
            if loan["status"] not in ("active", "written_off"):
                raise InvalidState(f"Loan {lid} is {loan['status'].replace('_', ' ')}; "
                                   "payments are taken only on active or written-off loans.")
            if not is_cash:
                owner = uow.fetchone("SELECT customer_id FROM accounts WHERE account_number = ?",
                                     [source])
                if owner is None or owner[0] is None:
                    raise AccountNotFound(f"There is no account {source}.")
                if owner[0] != loan["customer_id"] and actor.role != "customer":
                    raise InvalidInput(f"Account {source} does not belong to the borrower.")
            if loan["status"] == "written_off":
                return self._recover_in(uow, actor, loan, cents, source, is_cash, request)
            day = vday or today
            if day > today or day < loan["disbursement_date"]:
                raise InvalidInput(f"The value date must lie between the disbursement "
                                   f"({loan['disbursement_date']}) and today ({today}).")
            if day == today:
                replayed = _replay_in(uow.fetchall, loan,
                                      work_calendar=bank.workdays.calendar())
                quote = replayed.payoff(today)
                if cents > quote["total_cents"]:
                    self._refuse_overpayment(lid, cents, quote["total_cents"])
                split = replayed.pay(loan_replay.Payment(today, _LAST, cents, rule))
            else:
                # Back-dated: the whole history is replayed with the payment in its place.
                replayed = _replay_in(uow.fetchall, loan,
                                      [loan_replay.Payment(day, _LAST, cents, rule)],
                                      work_calendar=bank.workdays.calendar())
                split = next(s for s in replayed.splits if s.transaction_id == _LAST)
            # The payment's own split never shows negative interest: interest paid ahead that
            # this prepayment made unearned becomes principal in a reallocation (below).
            fee, interest = split.fee_cents, split.shown_interest_cents
            principal = split.shown_principal_cents
            prepay = max(0, split.prepayment_cents - split.reapplied_cents)
            legs = [(source, -cents)]
            for code, part in (("loans_receivable", principal), ("interest_income", interest),
                               ("fee_income", fee)):
                if part:
                    legs.append((INTERNAL[code], part))
            memo = (f"Loan {lid} payment: fees {to_money(fee)}, interest {to_money(interest)}, "
                    f"principal {to_money(principal)}")
            outcome = bank.post_in(uow, request(legs, memo))
            if isinstance(outcome, BaseException) or outcome.replayed:
                return outcome
            record_payments(uow, pd.DataFrame({
                "transaction_id": [outcome.transaction_id], "loan_id": [lid],
                "business_date": [day], "method": ["cash" if is_cash else "manual"],
                "source_account": [source], "amount_cents": [cents], "fee_cents": [fee],
                "interest_cents": [interest], "principal_cents": [principal],
                "prepayment_cents": [prepay], "actor": [actor.username],
                "prepayment_rule": [rule]}))
            moved = (self._reallocate(uow, actor, loan, replayed, today, key)
                     if day != today or split.reapplied_cents else None)
            closed = _store(uow, loan, replayed, today)
            bank.audit_row(uow, actor, "loan.repay", "loan", lid, after={
                "transaction_id": outcome.transaction_id, "amount": str(to_money(cents)),
                "fees": str(to_money(fee)), "interest": str(to_money(interest)),
                "principal": str(to_money(principal)), "prepayment": str(to_money(prepay)),
                "prepayment_rule": rule or loan_replay.DEFAULT_PREPAYMENT,
                "value_date": day.isoformat(), "reallocated": moved, "paid_off": closed})
            return outcome
        return self._raise_refusal(bank.write(fn))

    def _repay_request(self, actor, loan_id, amount, source_account, prepayment):
        """A repayment form checked as repay and review_repayment both check it: (loan, cents,
        prepayment rule, the ledger account paid from, whether it is cash at the counter).
        Raises PermissionDenied (a customer asking for cash: audited), InvalidAmount,
        InvalidInput."""
        loan = self._readable(actor, loan_id, "loan.repay")
        cents = to_cents(amount)
        rule = _clean_rule(prepayment)
        is_cash = isinstance(source_account, str) and source_account.strip().lower() == CASH
        if not is_cash:
            return loan, cents, rule, accountnum.normalize(source_account), False
        if not getattr(actor, "is_staff", False):
            exc = PermissionDenied("Only a teller can take a cash payment.")
            self._bank.record_refusal(actor, "loan.repay", exc, entity="loan",
                                      entity_id=loan["id"])
            raise exc
        return loan, cents, rule, INTERNAL["teller_cash"], True

    def _amount_refusal(self, loan, cents) -> InvalidAmount | None:
        """The InvalidAmount a payment of `cents` today meets (more than pays an active loan
        off, more than is left to recover on a written-off one), else None."""
        lid = loan["id"]
        try:
            if loan["status"] == "active":
                payoff_cents = self._payoff_today(loan)
                if cents > payoff_cents:
                    self._refuse_overpayment(lid, cents, payoff_cents)
            elif loan["status"] == "written_off":
                self._refuse_over_recovery(lid, cents, self._recovery_left_cents(
                    self._bank.read_one, loan))
        except InvalidAmount as exc:
            return exc
        return None

    def review_repayment(self, actor, loan_id, amount, source_account, *,
                         prepayment=None) -> dict:
        """Check a repayment form and describe it for a confirm step, posting nothing.

        Returns {loan_id, amount (Decimal), amount_cents, source_account ("cash" or the
        account number), source_holder, source_available (Decimal or None for cash),
        prepayment, needs_approval (bool), warnings (list[str])}. `warnings` says what Confirm
        would meet, from the checks repay runs on the same request: the loan's state, more
        than the payoff (or than is left to recover), an account not the borrower's, the
        ledger's guards (ledger.foreseen_refusals: funds, a frozen or closed account), or
        else the four-eyes wait (approvals.repayment_moved_cents, as gate_loan counts it).
        Raises what repay raises for the form itself (PermissionDenied, InvalidAmount for a
        malformed amount, InvalidInput for a bad rule or account number). Posting decides
        again at Confirm."""
        from .ledger import foreseen_refusals, refusal_warning

        bank = self._bank
        loan, cents, rule, source, is_cash = self._repay_request(actor, loan_id, amount,
                                                                  source_account, prepayment)
        lid = loan["id"]
        out = {"loan_id": lid, "amount": to_money(cents), "amount_cents": cents,
               "source_account": CASH if is_cash else source, "source_holder": None,
               "source_available": None, "prepayment": rule, "needs_approval": False}
        what = f"this payment of {format_cents(cents)}"
        warnings = []
        if loan["status"] not in ("active", "written_off"):
            warnings.append(f"Loan {lid} is {loan['status'].replace('_', ' ')}; payments are "
                            f"taken only on active or written-off loans, so {what} would be "
                            "refused.")
        refusal = self._amount_refusal(loan, cents)
        if refusal is not None:
            warnings.append(refusal_warning(refusal, what))
        if not is_cash:
            owner = bank.read_one("SELECT customer_id FROM accounts WHERE account_number = ?",
                                  [source])
            if owner is None or owner[0] is None:
                raise AccountNotFound(f"There is no account {source}.")
            if owner[0] != loan["customer_id"] and actor.role != "customer":
                warnings.append(f"Account {source} does not belong to the borrower; {what} "
                                "would be refused.")
            info = bank.accounts.get(actor, source)
            out["source_holder"], out["source_available"] = info["holder"], info["available"]
            request = PostingRequest(
                kind="loan_repayment", actor=actor, action="loan.repay",
                legs=[(source, -cents), (INTERNAL["loans_receivable"], cents)],
                amount_cents=cents, idempotency_key="review", source_account=source,
                target_account=INTERNAL["loans_receivable"],
                owned_accounts=(source,) if actor.role == "customer" else (),
                internal_ok=True)
            warnings += [refusal_warning(r, what) for r in
                         foreseen_refusals(bank.read, request, bank.state.business_date,
                                           bank.engine.dialect)]
        if bank.approvals.applies_to(actor):
            moved_cents = bank.approvals.repayment_moved_cents(actor, source_account)
            out["needs_approval"] = cents + moved_cents > bank.approvals.threshold_cents()
            if out["needs_approval"] and not warnings:
                warnings.append(bank.approvals.wait_warning(moved_cents, held=False))
        out["warnings"] = warnings
        return out

    def _recover_in(self, uow, actor, loan, cents, source, is_cash, request):
        """A payment on a written-off loan: recovery income (GL4200), never more than what was
        written off and not yet recovered."""
        bank, lid = self._bank, loan["id"]
        left_cents = self._recovery_left_cents(uow.fetchone, loan)
        self._refuse_over_recovery(lid, cents, left_cents)
        recoveries = INTERNAL["loan_recoveries"]
        outcome = bank.post_in(uow, request(
            [(source, -cents), (recoveries, cents)], f"Loan {lid} recovery after write-off",
            kind="loan_recovery", target=recoveries))
        if isinstance(outcome, BaseException) or outcome.replayed:
            return outcome
        today = bank.state.business_date
        record_payments(uow, pd.DataFrame({
            "transaction_id": [outcome.transaction_id], "loan_id": [lid],
            "business_date": [today], "method": ["recovery"], "source_account": [source],
            "amount_cents": [cents], "fee_cents": [0], "interest_cents": [0],
            "principal_cents": [0], "prepayment_cents": [0], "actor": [actor.username],
            "prepayment_rule": [None]}))
        bank.audit_row(uow, actor, "loan.recovery", "loan", lid, after={
            "transaction_id": outcome.transaction_id, "amount": str(to_money(cents)),
            "recovered": str(to_money(loan["written_off_cents"] - left_cents + cents)),
            "cash": is_cash})
        return outcome

    def _payoff_today(self, loan) -> int:
        """The payoff total of an active loan on the business date, in cents."""
        return _replay_in(self._bank.read, loan, work_calendar=self._bank.workdays.calendar()) \
            .payoff(self._bank.business_date)["total_cents"]

    @staticmethod
    def _recovery_left_cents(fetchone, loan) -> int:
        """What is still written off on a loan and not yet recovered; fetchone runs the query
        (in a unit of work, or as a plain read)."""
        (recovered,) = fetchone("SELECT coalesce(sum(amount_cents), 0) FROM loan_payments "
                                "WHERE loan_id = ? AND method = 'recovery'", [loan["id"]])
        return loan["written_off_cents"] - int(recovered)

    @staticmethod
    def _refuse_over_recovery(lid, cents, left_cents):
        if cents > left_cents:
            raise InvalidAmount(f"{format_cents(cents)} is more than the "
                                f"{format_cents(left_cents)} still written off on loan {lid}.")

    @staticmethod
    def _refuse_overpayment(lid, cents, payoff_cents):
        raise InvalidAmount(
            f"{format_cents(cents)} is more than the {format_cents(payoff_cents)} that pays "
            f"loan {lid} off today (bank.loans.payoff gives the parts).")

    def payoff(self, actor, loan_id, on=None) -> dict:
        """What closes an active loan on value date `on` (default: the business date; not
        earlier), if nothing is paid before then: principal, interest accrued to `on` (see
        loan_replay; negative when interest was paid ahead of its accrual), fees (those charged
        and, in late_fees_expected, the loan's late fee on each instalment whose fee date +
        grace days passes before `on` while it is unpaid: end of day will have charged them),
        total, as Decimal and as *_cents. Paying the total with repay on that date closes the
        loan; a collection or payment before then lowers it."""
        loan = self._readable(actor, loan_id)
        today = self._bank.business_date
        day = as_date(on, "payoff date") or today
        if day < today:
            raise InvalidInput(f"A payoff is quoted for the business date {today} or later.")
        if loan["status"] != "active":
            raise InvalidState(f"Loan {loan['id']} is {loan['status'].replace('_', ' ')}; "
                               "only an active loan has a payoff.")
        replayed = _replay_in(self._bank.read, loan,
                              work_calendar=self._bank.workdays.calendar())
        quote = replayed.payoff(day)
        # A late fee is charged at the end of its fee date and payable from the next day: the
        # unpaid instalments whose fee date falls before `on` will carry one by then.
        grace = dt.timedelta(days=int(loan["late_fee_grace_days"]))
        expected = int(loan["late_fee_cents"]) * sum(
            1 for r in replayed.rows if not r.fee and r.due + grace < day
            and (r.interest_paid < r.interest or r.principal_paid < r.principal))
        quote = {**quote, "fees_cents": quote["fees_cents"] + expected,
                 "late_fees_expected_cents": expected,
                 "total_cents": quote["total_cents"] + expected}
        out = {"loan_id": loan["id"], "on": day}
        for key, cents in quote.items():
            out[key] = cents
            out[key.removesuffix("_cents")] = to_money(cents)
        return out

    def history(self, actor, loan_id) -> pd.DataFrame:
        """The loan's money events, oldest first: value date, transaction, kind (disbursement,
        manual, cash, automatic, reversal, reallocation, recovery, write-off), amount and split,
        and whether a later reversal undid it. A disbursement's fee column is the disbursement
        fee kept back from the payout (negative on the undo that returned it)."""
        loan = self._readable(actor, loan_id)
        df = self._bank.read_df(
            "SELECT value_date, transaction_id, event, amount_cents, fee_cents, "
            "interest_cents, principal_cents, prepayment_cents, actor, EXISTS (SELECT 1 FROM "
            "transactions t WHERE t.reverses_id = e.transaction_id) AS reversed "
            f"FROM ({EVENTS_SQL}) e WHERE e.loan_id = ? ORDER BY 1, 2", [loan["id"]])
        return _money_frame(df, ["amount_cents", "fee_cents", "interest_cents",
                                 "principal_cents", "prepayment_cents"])

    def provisions(self, actor) -> pd.DataFrame:
        """Managers: the loan-loss provision by arrears bucket as end of day last set it:
        bucket, loans, outstanding principal, percent, provision (Decimal and *_cents)."""
        self._bank.require(actor, "report.read", entity="loan")
        df = self._bank.read_df(
            "SELECT l.arrears_bucket AS bucket, count(*) AS loans, "
            "CAST(sum(l.principal_outstanding_cents) AS BIGINT) AS outstanding_cents, "
            "max(p.percent) AS percent, CAST(coalesce(sum(p.provision_cents), 0) AS BIGINT) "
            "AS provision_cents FROM loans l LEFT JOIN loan_provisions p ON p.loan_id = l.id "
            "WHERE l.status = 'active' GROUP BY 1")
        order = {b: i for i, b in enumerate(BUCKETS)}
        df = df.sort_values("bucket", key=lambda s: s.map(order)).reset_index(drop=True)
        return _money_frame(df, ["outstanding_cents", "provision_cents"])

    # -- corrections (managers) --------------------------------------------------------------
    def reverse_repayment(self, actor, loan_id, transaction_id, reason, idempotency_key=None):
        """Undo one repayment: a reversing ledger transaction gives the money back to where it
        came from, and the loan is replayed without it (later payments are split again; any
        change of their split is posted as one loan_reallocation transaction between GL1200,
        GL4000 and GL4100). Managers only; audited. Returns the reversal's Receipt, or a PendingApproval
        when the repayment is above the four-eyes threshold (a second manager carries it out)."""
        bank = self._bank
        lid = _loan_id(loan_id)
        bank.require(actor, "loan.correct", entity="loan", entity_id=lid)
        reason = _clean_text(reason, "reason for the reversal", 3, REASON_CHARS_MAX)
        tid = clean_transaction_id(transaction_id)
        key = (_clean_key(idempotency_key) if idempotency_key
               else system_key("loan", lid, "reversal-of", tid))
        # Known on the caller's thread (see repay).
        four_eyes = bank.approvals.applies_to(actor)

        def fn(uow):
            loan = self._loan_in(uow, lid)
            row = uow.fetchone(
                "SELECT method, amount_cents, fee_cents, interest_cents, principal_cents, "
                "prepayment_cents, source_account FROM loan_payments WHERE loan_id = ? "
                "AND transaction_id = ?", [lid, tid])
            legs = [(number, -amount) for number, amount in uow.fetchall(
                "SELECT a.account_number, p.amount_cents FROM postings p JOIN accounts a "
                "ON a.id = p.account_id WHERE p.transaction_id = ? ORDER BY p.id", [tid])]
            req = PostingRequest(
                kind="reversal", actor=actor, action="loan.reverse_repayment", legs=legs,
                amount_cents=row[1] if row else 0, idempotency_key=key,
                memo=f"Loan {lid} reversal of payment {tid}: {reason}",
                source_account=INTERNAL["loans_receivable"],
                target_account=row[6] if row else None, reverses_id=tid, internal_ok=True)
            if row is not None:
                replay = self._replay_or_conflict(uow, key, req)
                if replay is not None:
                    return replay
            if row is None or row[0] not in REPLAYED_METHODS:
                raise InvalidInput(f"Transaction {tid} is not a repayment of loan {lid}.")
            if loan["status"] not in ("active", "paid_off"):
                raise InvalidState(f"Loan {lid} is {loan['status'].replace('_', ' ')}; "
                                   "repayments are reversed only on active or paid-off loans.")
            # Issue 12: a reversal above the four-eyes threshold, with what this manager moved
            # for the borrower today, waits (approvals.py), decided in this unit of work.
            held = four_eyes and bank.approvals.gate_loan(
                actor, "loan.reverse_repayment", lid, amount_cents=row[1], reason=reason,
                idempotency_key=idempotency_key, transaction_id=tid, uow=uow,
                customer_account=row[6] if row[0] != "cash" else None)
            if held:
                return held
            outcome = bank.post_in(uow, req)
            if isinstance(outcome, BaseException):
                return outcome
            today = bank.state.business_date
            record_payments(uow, pd.DataFrame({
                "transaction_id": [outcome.transaction_id], "loan_id": [lid],
                "business_date": [today], "method": ["reversal"], "source_account": [row[6]],
                "amount_cents": [-row[1]], "fee_cents": [-row[2]], "interest_cents": [-row[3]],
                "principal_cents": [-row[4]], "prepayment_cents": [-row[5]],
                "actor": [actor.username], "prepayment_rule": [None]}))
            replayed = _replay_in(uow.fetchall, loan, work_calendar=bank.workdays.calendar())
            moved = self._reallocate(uow, actor, loan, replayed, today, key)
            _store(uow, loan, replayed, today, reopen=True)
            bank.audit_row(uow, actor, "loan.reverse_repayment", "loan", lid,
                           before={"status": loan["status"], "transaction_id": tid},
                           after={"reason": reason, "reversal_id": outcome.transaction_id,
                                  "amount": str(to_money(row[1])), "reallocated": moved})
            return outcome
        return self._raise_refusal(bank.write(fn))

    def _reallocate(self, uow, actor, loan, replayed, today, key):
        """Post the difference between the splits stored for the loan and the replay's."""
        lid = loan["id"]
        stored = uow.fetchone(
            "SELECT coalesce(sum(fee_cents), 0), coalesce(sum(interest_cents), 0), "
            "coalesce(sum(principal_cents), 0), coalesce(sum(prepayment_cents), 0) "
            "FROM loan_payments WHERE loan_id = ? AND method <> 'recovery'", [lid])
        want = [sum(getattr(s, f) for s in replayed.splits) for f in
                ("fee_cents", "interest_cents", "principal_cents", "prepayment_cents")]
        fee, interest, principal, prepay = (w - int(s) for w, s in zip(want, stored))
        if not (fee or interest or principal):
            if prepay:
                uow.execute("UPDATE loan_payments SET prepayment_cents = prepayment_cents + ? "
                            "WHERE transaction_id = (SELECT max(transaction_id) FROM "
                            "loan_payments WHERE loan_id = ?)", [prepay, lid])
            return None
        legs = [(INTERNAL[code], part) for code, part in (
            ("loans_receivable", principal), ("interest_income", interest),
            ("fee_income", fee)) if part]
        outcome = self._bank.post_in(uow, PostingRequest(
            kind="loan_reallocation", actor=actor, action="loan.reallocate", legs=legs,
            amount_cents=sum(p for _, p in legs if p > 0), idempotency_key=key + "-split",
            memo=(f"Loan {lid} payments split again after a correction" if interest >= 0
                  or fee or principal != -interest else
                  f"Loan {lid} interest paid ahead of {to_money(-interest)} re-applied to "
                  "principal after a prepayment"),
            source_account=legs[0][0], target_account=legs[-1][0], internal_ok=True))
        if isinstance(outcome, BaseException):
            raise outcome
        record_payments(uow, pd.DataFrame({
            "transaction_id": [outcome.transaction_id], "loan_id": [lid],
            "business_date": [today], "method": ["reallocation"], "source_account": [""],
            "amount_cents": [0], "fee_cents": [fee], "interest_cents": [interest],
            "principal_cents": [principal], "prepayment_cents": [prepay],
            "actor": [actor.username], "prepayment_rule": [None]}))
        return {"transaction_id": outcome.transaction_id, "fees": str(to_money(fee)),
                "interest": str(to_money(interest)), "principal": str(to_money(principal))}

    def undo_disbursement(self, actor, loan_id, reason, idempotency_key=None):
        """Managers: reverse the payout of an active loan that has taken no repayment (or whose
        repayments were all reversed); the loan goes back to approved and may be paid out
        again. The borrower's account must still hold the money. Returns the Receipt, or a
        PendingApproval when the principal is above the four-eyes threshold. A repeat under
        the same idempotency key answers with the first receipt (another request under it:
        IdempotencyConflict)."""
        bank = self._bank
        lid = _loan_id(loan_id)
        bank.require(actor, "loan.correct", entity="loan", entity_id=lid)
        reason = _clean_text(reason, "reason for undoing the disbursement", 3, REASON_CHARS_MAX)
        # Known on the caller's thread (see repay).
        four_eyes = bank.approvals.applies_to(actor)

        given = _clean_key(idempotency_key) if idempotency_key else None

        def request(tid, key, uow, account, cents):
            legs = [(number, -amount) for number, amount in uow.fetchall(
                "SELECT a.account_number, p.amount_cents FROM postings p JOIN accounts a "
                "ON a.id = p.account_id WHERE p.transaction_id = ? ORDER BY p.id", [tid])]
            return PostingRequest(
                kind="reversal", actor=actor, action="loan.undo_disbursement", legs=legs,
                amount_cents=cents, idempotency_key=key,
                memo=f"Loan {lid} disbursement undone: {reason}", source_account=account,
                target_account=INTERNAL["loans_receivable"], reverses_id=tid,
                internal_ok=True)

        def fn(uow):
            loan = self._loan_in(uow, lid)
            # A key already used is answered by the ledger (the receipt, or a conflict for
            # another request) before the loan's state is looked at: once undone, the loan is
            # 'approved' and its payout's transaction cleared, so a repeat (or an approval
            # carried out again after its request failed to be marked) would be refused.
            done = given and uow.fetchone(
                "SELECT t.reverses_id, t.source_account, t.amount_cents FROM "
                "idempotency_keys k JOIN transactions t "
                "ON t.id = k.transaction_id WHERE k.key = ?", [given])
            if done:
                # As it was posted (the loan may have been paid out again since).
                if done[0] is None:
                    raise IdempotencyConflict("This request key was already used for a "
                                              "different request; nothing was changed.")
                return bank.post_in(uow, request(done[0], given, uow, done[1], done[2]))
            if loan["status"] != "active":
                raise InvalidState(f"Loan {lid} is {loan['status'].replace('_', ' ')}; only an "
                                   "active loan's disbursement can be undone.")
            tid = loan["disbursement_tx_id"]
            key = given or system_key("loan", lid, "undo-disbursement", tid)
            (paid,) = uow.fetchone(
                "SELECT count(*) FROM loan_payments lp WHERE loan_id = ? AND method IN "
                "('manual', 'cash', 'automatic') AND NOT EXISTS (SELECT 1 FROM transactions t "
                "WHERE t.reverses_id = lp.transaction_id)", [lid])
            if paid:
                raise InvalidState(f"Loan {lid} has taken repayments; reverse them first "
                                   "(bank.loans.reverse_repayment).")
            # Issue 12: undoing a payout above the four-eyes threshold, with what this manager
            # moved for the borrower today, waits (approvals.py), decided in this unit of work.
            held = four_eyes and bank.approvals.gate_loan(
                actor, "loan.undo_disbursement", lid, amount_cents=loan["principal_cents"],
                reason=reason, idempotency_key=idempotency_key, uow=uow,
                customer_account=loan["account_number"])
            if held:
                return held
            outcome = bank.post_in(uow, request(tid, key, uow, loan["account_number"],
                                                loan["principal_cents"]))
            if isinstance(outcome, BaseException):
                return outcome
            from .charges import given_back_in
            given_back_in(bank, actor, uow, transaction_id=tid,
                          reversal_id=outcome.transaction_id,
                          reason=f"Loan {lid} disbursement undone: {reason}")
            uow.execute("DELETE FROM loan_schedule WHERE loan_id = ?", [lid])
            uow.execute(
                "UPDATE loans SET status = 'approved', disbursed_by = NULL, disbursed_at = NULL, "
                "disbursement_date = NULL, disbursement_tx_id = NULL, "
                "principal_outstanding_cents = 0, days_past_due = 0, "
                "arrears_bucket = 'current' WHERE id = ?", [lid])
            bank.audit_row(uow, actor, "loan.undo_disbursement", "loan", lid,
                           before={"status": "active", "disbursement_tx_id": tid,
                                   "account": loan["account_number"]},
                           after={"status": "approved", "reason": reason,
                                  "reversal_id": outcome.transaction_id})
            return outcome
        return self._raise_refusal(bank.write(fn))

    def set_repayment_account(self, actor, loan_id, account_number, reason=""):
        """Staff: the borrower's account that end of day collects instalments from (one of
        their own open customer accounts). Audited."""
        bank = self._bank
        lid = _loan_id(loan_id)
        bank.require(actor, "loan.change_account", entity="loan", entity_id=lid)
        number = accountnum.normalize(account_number)

        def fn(uow):
            loan = self._loan_in(uow, lid)
            if loan["status"] != "active":
                raise InvalidState(f"Loan {lid} is {loan['status'].replace('_', ' ')}; only an "
                                   "active loan has a repayment account.")
            acc = uow.fetchone("SELECT customer_id, kind, status FROM accounts "
                               "WHERE account_number = ?", [number])
            if acc is None or acc[0] is None:
                raise AccountNotFound(f"There is no account {number}.")
            if acc[0] != loan["customer_id"] or acc[1] not in TRANSACTIONAL_KINDS:
                raise InvalidInput(f"Account {number} does not belong to the borrower.")
            if acc[2] == "closed":
                raise InvalidState(f"Account {number} is closed.")
            uow.execute("UPDATE loans SET account_number = ? WHERE id = ?", [number, lid])
            bank.audit_row(uow, actor, "loan.change_account", "loan", lid,
                           before={"account": loan["account_number"]},
                           after={"account": number, "reason": str(reason or "")[:300]})
        bank.write(fn)

    def write_off(self, actor, loan_id, *, reason, idempotency_key=None):
        """Managers only: the unpaid principal becomes a loan loss; unpaid interest and fees are
        cancelled. Returns the Receipt, or None when no principal was left."""
        bank = self._bank
        lid = _loan_id(loan_id)
        bank.require(actor, "loan.write_off", entity="loan", entity_id=lid)
        reason = _clean_text(reason, "reason for the write-off", 3, REASON_CHARS_MAX)
        key = (_clean_key(idempotency_key) if idempotency_key
               else system_key("loan", lid, "write-off"))
        # Issue 12: a write-off above the four-eyes threshold waits (approvals.py).
        held = bank.approvals.gate_loan(actor, "loan.write_off", lid, reason=reason,
                                        idempotency_key=idempotency_key)
        if held is not None:
            return held

        def fn(uow):
            loan = self._loan_in(uow, lid)
            cents = loan["principal_outstanding_cents"]
            req = PostingRequest(
                kind="loan_write_off", actor=actor, action="loan.write_off",
                legs=[(INTERNAL["loan_losses"], -cents), (INTERNAL["loans_receivable"], cents)],
                amount_cents=cents, idempotency_key=key, memo=f"Loan {lid} written off: {reason}",
                source_account=INTERNAL["loan_losses"],
                target_account=INTERNAL["loans_receivable"], internal_ok=True)
            replay = self._replay_or_conflict(uow, key, req)
            if replay is not None:
                return replay
            if loan["status"] != "active":
                raise InvalidState(f"Loan {lid} is {loan['status'].replace('_', ' ')}; only an "
                                   "active loan can be written off.")
            outcome = None
            if cents:
                outcome = bank.post_in(uow, req)
                if isinstance(outcome, BaseException):
                    return outcome
            today = bank.state.business_date
            uow.execute(
                "UPDATE loans SET status = 'written_off', written_off_cents = ?, "
                "principal_outstanding_cents = 0, write_off_reason = ?, closed_date = ? "
                "WHERE id = ?", [cents, reason, today, lid])
            bank.audit_row(uow, actor, "loan.write_off", "loan", lid,
                           before={"status": "active", "outstanding": str(to_money(cents)),
                                   "days_past_due": loan["days_past_due"]},
                           after={"status": "written_off", "reason": reason,
                                  "transaction_id": outcome.transaction_id if outcome else None})
            return outcome
        return self._raise_refusal(bank.write(fn))

    # -- reading -----------------------------------------------------------------------------
    def _figures(self, lid, today) -> dict:
        """Amounts a borrower sees: due now, overdue, next instalment, payoff."""
        row = self._bank.read_one(
            "SELECT "
            "coalesce(sum(fee_cents - fee_paid_cents), 0), "
            "coalesce(sum(CASE WHEN due_date <= ? THEN interest_cents - interest_paid_cents "
            "ELSE 0 END), 0), "
            "coalesce(sum(CASE WHEN due_date <= ? THEN principal_cents - principal_paid_cents "
            "ELSE 0 END), 0), "
            "coalesce(sum(CASE WHEN due_date < ? THEN interest_cents - interest_paid_cents "
            "+ principal_cents - principal_paid_cents ELSE 0 END), 0) "
            "FROM loan_schedule WHERE loan_id = ?", [today, today, today, lid])
        fees, interest, principal, overdue = (int(v) for v in row)
        nxt = self._bank.read_one(
            "SELECT due_date, payment_cents - interest_paid_cents - principal_paid_cents "
            "FROM loan_schedule WHERE loan_id = ? AND due_date >= ? AND "
            "interest_paid_cents + principal_paid_cents < payment_cents "
            "ORDER BY n LIMIT 1", [lid, today])
        return {"fees_due_cents": fees, "interest_due_cents": interest,
                "principal_due_cents": principal, "overdue_cents": overdue + fees,
                "due_now_cents": fees + interest + principal,
                "next_due_date": nxt[0] if nxt else None,
                "next_due_cents": int(nxt[1]) if nxt else 0}

    def get(self, actor, loan_id) -> dict:
        """A loan as its borrower or staff see it: status, decision, outstanding principal,
        amounts due, next instalment, payoff amount, days past due and bucket."""
        loan = self._readable(actor, loan_id)
        bank = self._bank
        today = bank.business_date
        prod = bank.read_one("SELECT name FROM loan_products WHERE code = ?",
                             [loan["product_code"]])
        holder = bank.read_one("SELECT full_name FROM customers WHERE id = ?",
                               [loan["customer_id"]])
        out = dict(loan)
        out["loan_id"] = loan["id"]
        out["product"] = prod[0] if prod else loan["product_code"]
        out["holder"] = holder[0] if holder else ""
        out["business_date"] = today
        figures = self._figures(loan["id"], today) if loan["status"] == "active" else {
            "fees_due_cents": 0, "interest_due_cents": 0, "principal_due_cents": 0,
            "overdue_cents": 0, "due_now_cents": 0, "next_due_date": None, "next_due_cents": 0}
        out.update(figures)
        out["payoff_cents"] = out["accrued_interest_cents"] = 0
        if loan["status"] == "active":
            # Interest by the day: the payoff today includes the interest accrued to today.
            quote = _replay_in(bank.read, loan,
                               work_calendar=bank.workdays.calendar()).payoff(today)
            out["payoff_cents"] = quote["total_cents"]
            out["accrued_interest_cents"] = quote["interest_cents"]
        paid = bank.read_one(
            "SELECT coalesce(sum(amount_cents), 0), coalesce(sum(interest_cents), 0), "
            "coalesce(sum(fee_cents), 0), coalesce(sum(CASE WHEN method = 'recovery' THEN "
            "amount_cents END), 0) FROM loan_payments WHERE loan_id = ?", [loan["id"]])
        (out["paid_cents"], out["interest_paid_cents"], out["fees_paid_cents"],
         out["recovered_cents"]) = (int(v) for v in paid)
        for key in [k for k in out if k.endswith("_cents")]:
            out[key.removesuffix("_cents")] = to_money(out[key])
        out["outstanding_principal"] = out["principal_outstanding"]
        out["bucket"] = loan["arrears_bucket"]
        return out

    def schedule(self, actor, loan_id) -> pd.DataFrame:
        """The instalments with what has been paid and each one's state. Before disbursement,
        the projected schedule (approved rate, else the product's highest rate)."""
        loan = self._readable(actor, loan_id)
        bank = self._bank
        if loan["status"] in ("submitted", "approved", "rejected"):
            rate = loan["annual_rate_percent"]
            if rate is None:
                rate = bank.read_one("SELECT rate_max_percent FROM loan_products WHERE code = ?",
                                     [loan["product_code"]])[0]
            df = contract_frame(_contract({**loan, "annual_rate_percent": rate,
                                           "disbursement_date": bank.business_date},
                                          bank.workdays.calendar()))
            df["state"] = "projected"
            return df
        today = bank.business_date
        df = bank.read_df(
            "SELECT n, due_date, payment_cents, interest_cents, principal_cents, balance_cents, "
            "interest_paid_cents + principal_paid_cents AS paid_cents, fee_cents, "
            "fee_paid_cents, CASE "
            "WHEN interest_paid_cents + principal_paid_cents >= payment_cents THEN 'paid' "
            "WHEN due_date < ? THEN 'overdue' WHEN due_date = ? THEN 'due today' "
            "WHEN interest_paid_cents + principal_paid_cents > 0 THEN 'part paid' "
            "ELSE 'upcoming' END AS state "
            "FROM loan_schedule WHERE loan_id = ? ORDER BY n", [today, today, loan["id"]])
        df["due_date"] = [d.date() if hasattr(d, "date") else d for d in df["due_date"]]
        return _money_frame(df, ["payment_cents", "interest_cents", "principal_cents",
                                 "balance_cents", "paid_cents", "fee_cents", "fee_paid_cents"])

    def list(self, actor, customer_id=None, status=None) -> pd.DataFrame:
        """Loans of one customer (a customer sees only their own), or all loans for staff."""
        bank = self._bank
        if customer_id is None and getattr(actor, "role", None) == "customer":
            customer_id = actor.customer_id
        if customer_id is None:
            bank.require(actor, "account.list_all", entity="loan")
        else:
            customer_id = bank.customers._id(customer_id)
            bank.require(actor, "loan.read", customer_id, entity="customer",
                         entity_id=customer_id)
        if status is not None and status not in STATUSES:
            raise InvalidInput(f"A loan status is one of {', '.join(STATUSES)}.")
        sql = ("SELECT l.id AS loan_id, l.customer_id, c.full_name AS holder, p.name AS product, "
               "l.status, l.principal_cents, l.term_months, l.annual_rate_percent, l.purpose, "
               "l.monthly_income_cents, l.applied_date, l.applied_by, l.decided_by, "
               "l.decision_reason, l.account_number, l.disbursement_date, "
               "l.principal_outstanding_cents, l.days_past_due, l.arrears_bucket, l.closed_date "
               "FROM loans l JOIN customers c ON c.id = l.customer_id "
               "JOIN loan_products p ON p.code = l.product_code WHERE true")
        params = []
        if customer_id is not None:
            sql += " AND l.customer_id = ?"
            params.append(customer_id)
        if status is not None:
            sql += " AND l.status = ?"
            params.append(status)
        df = bank.read_df(sql + " ORDER BY l.id DESC", params)
        df["annual_rate_percent"] = [None if pd.isna(v) else Decimal(str(v)).quantize(
            Decimal("0.01")) for v in df["annual_rate_percent"]]
        return _money_frame(df, ["principal_cents", "monthly_income_cents",
                                 "principal_outstanding_cents"])

    def review(self, actor, loan_id) -> dict:
        """What a manager weighs an application against: the loan, the applicant's accounts,
        their recent transactions and their other loans."""
        bank = self._bank
        loan = self._readable(actor, loan_id, "loan.decide")
        cid = loan["customer_id"]
        accounts = bank.accounts.list(actor, cid)
        history = bank.read_df(
            "SELECT t.business_date, t.id AS transaction_id, a.account_number, t.kind, t.memo, "
            "p.amount_cents FROM postings p JOIN transactions t ON t.id = p.transaction_id "
            "JOIN accounts a ON a.id = p.account_id WHERE a.customer_id = ? "
            "ORDER BY t.id DESC LIMIT 50", [cid])
        history = _money_frame(history, ["amount_cents"])
        flows = bank.read_one(
            "SELECT coalesce(sum(CASE WHEN p.amount_cents > 0 THEN p.amount_cents END), 0), "
            "coalesce(sum(CASE WHEN p.amount_cents < 0 THEN -p.amount_cents END), 0) "
            "FROM postings p JOIN transactions t ON t.id = p.transaction_id "
            "JOIN accounts a ON a.id = p.account_id WHERE a.customer_id = ? "
            "AND t.business_date > ? AND t.kind <> 'loan_disbursement'",
            [cid, bank.business_date - dt.timedelta(days=90)])
        others = self.list(actor, cid)
        others = others[others["loan_id"] != loan["id"]]
        rows = loan_replay.Loan(_contract({
            **loan, "disbursement_date": bank.business_date,
            "annual_rate_percent": loan["annual_rate_percent"] or bank.read_one(
                "SELECT rate_max_percent FROM loan_products WHERE code = ?",
                [loan["product_code"]])[0]}, bank.workdays.calendar())).rows
        # The largest instalment (after any grace period on principal), as a month's worth
        # of instalments at the loan's frequency, is what the monthly income must carry.
        instalment = max(row.payment for row in rows)
        monthly = _round_cents(Decimal(instalment * loan_replay.PERIODS_PER_YEAR[
            loan["frequency"]]) / 12)
        return {"loan": self.get(actor, loan["id"]), "accounts": accounts, "history": history,
                "other_loans": others, "inflow_90d": to_money(int(flows[0])),
                "outflow_90d": to_money(int(flows[1])),
                "instalment": to_money(instalment), "frequency": loan["frequency"],
                "monthly_payment": to_money(monthly),
                "instalment_to_income_percent": (
                    None if not loan["monthly_income_cents"] else
                    (Decimal(monthly * 100) / loan["monthly_income_cents"]).quantize(
                        Decimal("0.1"), rounding=ROUNDING))}

    # -- invariants --------------------------------------------------------------------------
    def _replay_problems(self) -> list[str]:
        """The cache (schedule rows, outstanding principal, payment splits) against a fresh
        replay of every disbursed loan's events."""
        bank = self._bank
        problems = []
        work_calendar = bank.workdays.calendar()
        loans = [dict(zip(LOAN_COLUMNS, row)) for row in bank.read(
            "SELECT " + ", ".join(LOAN_COLUMNS) + " FROM loans WHERE status IN ('active', "
            "'paid_off', 'written_off') ORDER BY id")]
        events, fees, cached, stored = {}, {}, {}, {}
        for lid, d, t, a, r in bank.read(
                "SELECT loan_id, business_date, transaction_id, amount_cents, prepayment_rule "
                "FROM loan_payments lp WHERE method IN ('manual', 'cash', 'automatic') AND NOT "
                "EXISTS (SELECT 1 FROM transactions t WHERE t.reverses_id = lp.transaction_id)"):
            events.setdefault(lid, []).append(loan_replay.Payment(d, int(t), int(a), r))
        for row in bank.read(
                "SELECT " + ", ".join(SCHEDULE_COLUMNS[:-1]) + ", coalesce(fee_date, due_date) "
                "FROM loan_schedule ORDER BY loan_id, n"):
            cached.setdefault(row[0], []).append(tuple(int(v) if i != 2 else v
                                                       for i, v in enumerate(row[:-1])))
            if row[9] > 0:
                fees.setdefault(row[0], {})[int(row[1])] = (int(row[9]), row[11])
        for lid, *sums in bank.read(
                "SELECT loan_id, sum(fee_cents), sum(interest_cents), sum(principal_cents) "
                "FROM loan_payments WHERE method <> 'recovery' GROUP BY 1"):
            stored[lid] = tuple(int(v) for v in sums)
        for loan in loans:
            lid = loan["id"]
            try:
                replayed = loan_replay.replay(_contract(loan, work_calendar), events.get(lid, []),
                                              fees.get(lid))
            except (loan_replay.ReplayError, BankError) as exc:
                problems.append(f"loan {lid} does not replay: {exc}")
                continue
            want = [(lid, r.n, r.due, r.payment, r.interest, r.principal, r.balance,
                     r.interest_paid, r.principal_paid, r.fee, r.fee_paid)
                    for r in replayed.rows]
            if cached.get(lid, []) != want:
                problems.append(f"loan {lid} schedule differs from the replay of its events")
            totals = tuple(sum(getattr(s, f) for s in replayed.splits)
                           for f in ("fee_cents", "interest_cents", "principal_cents"))
            if stored.get(lid, (0, 0, 0)) != totals:
                problems.append(f"loan {lid} payments split {stored.get(lid)} differs from the "
                                f"replay {totals}")
            outstanding = (loan["written_off_cents"] if loan["status"] == "written_off"
                           else loan["principal_outstanding_cents"])
            if outstanding != replayed.principal_outstanding:
                problems.append(f"loan {lid} outstanding {outstanding} differs from the replay "
                                f"{replayed.principal_outstanding}")
            if len(problems) >= 100:
                break
        return problems

    def verify(self) -> list[str]:
        """The loan subledger against the ledger; called by audit.verify()."""
        bank = self._bank
        problems = []
        (gl_balance,) = bank.read_one("SELECT balance_cents FROM accounts WHERE "
                                      "account_number = ?", [INTERNAL["loans_receivable"]])
        (outstanding,) = bank.read_one(
            "SELECT CAST(coalesce(sum(principal_outstanding_cents), 0) AS BIGINT) FROM loans")
        if -gl_balance != outstanding:
            problems.append(f"loans receivable {-gl_balance} cents differs from the loans' "
                            f"outstanding principal {outstanding}")
        for lid, stored, derived in bank.read(
                "SELECT l.id, l.principal_outstanding_cents, l.principal_cents - "
                "coalesce(p.principal, 0) - l.written_off_cents FROM loans l LEFT JOIN "
                "(SELECT loan_id, sum(principal_cents) AS principal FROM loan_payments "
                "GROUP BY 1) p ON p.loan_id = l.id WHERE l.status IN ('active', 'paid_off', "
                "'written_off') AND l.principal_outstanding_cents <> l.principal_cents - "
                "coalesce(p.principal, 0) - l.written_off_cents ORDER BY 1 LIMIT 100"):
            problems.append(f"loan {lid} outstanding {stored} differs from principal less "
                            f"payments {derived}")
        for lid, stored, scheduled in bank.read(
                "SELECT l.id, l.principal_outstanding_cents, coalesce(s.unpaid, 0) FROM loans l "
                "LEFT JOIN (SELECT loan_id, sum(principal_cents - principal_paid_cents) AS unpaid "
                "FROM loan_schedule GROUP BY 1) s ON s.loan_id = l.id WHERE l.status = 'active' "
                "AND l.principal_outstanding_cents <> coalesce(s.unpaid, 0) ORDER BY 1 LIMIT 100"):
            problems.append(f"loan {lid} outstanding {stored} differs from its schedule's unpaid "
                            f"principal {scheduled}")
        problems += self._replay_problems()
        (provision,) = bank.read_one("SELECT balance_cents FROM accounts WHERE "
                                     "account_number = ?", [INTERNAL["loan_loss_provision"]])
        (held,) = bank.read_one("SELECT CAST(coalesce(sum(provision_cents), 0) AS BIGINT) "
                                "FROM loan_provisions")
        (receivable,) = bank.read_one("SELECT balance_cents FROM accounts WHERE "
                                      "account_number = ?", [INTERNAL["interest_receivable"]])
        (accrued,) = bank.read_one("SELECT CAST(coalesce(sum(accrued_cents), 0) AS BIGINT) "
                                   "FROM loan_accruals")
        if -receivable != accrued:
            problems.append(f"interest receivable {-receivable} cents differs from the loans' "
                            f"accrued interest {accrued}")
        if provision != held:
            problems.append(f"loan-loss provision {provision} cents differs from the loans' "
                            f"provisions {held}")
        for tid, in bank.read(
                "SELECT lp.transaction_id FROM loan_payments lp LEFT JOIN (SELECT "
                "p.transaction_id, sum(CASE WHEN a.account_number = ? THEN p.amount_cents END) g, "
                "sum(CASE WHEN a.account_number = ? THEN p.amount_cents END) i, "
                "sum(CASE WHEN a.account_number = ? THEN p.amount_cents END) f "
                "FROM postings p JOIN accounts a ON a.id = p.account_id GROUP BY 1) x "
                "ON x.transaction_id = lp.transaction_id WHERE lp.method <> 'recovery' AND ("
                "lp.amount_cents <> lp.fee_cents + lp.interest_cents + lp.principal_cents OR "
                "coalesce(x.g, 0) <> lp.principal_cents OR coalesce(x.i, 0) <> lp.interest_cents "
                "OR coalesce(x.f, 0) <> lp.fee_cents) ORDER BY 1 LIMIT 100",
                [INTERNAL["loans_receivable"], INTERNAL["interest_income"],
                 INTERNAL["fee_income"]]):
            problems.append(f"loan payment transaction {tid} does not match its split")
        for tid, in bank.read(
                "SELECT lp.transaction_id FROM loan_payments lp LEFT JOIN (SELECT "
                "p.transaction_id, sum(p.amount_cents) AS r FROM postings p JOIN accounts a ON "
                "a.id = p.account_id WHERE a.account_number = ? GROUP BY 1) x ON "
                "x.transaction_id = lp.transaction_id WHERE lp.method = 'recovery' AND "
                "coalesce(x.r, 0) <> lp.amount_cents ORDER BY 1 LIMIT 100",
                [INTERNAL["loan_recoveries"]]):
            problems.append(f"loan recovery transaction {tid} does not match GL4200")
        for lid, n in bank.read(
                "SELECT loan_id, n FROM loan_schedule WHERE principal_paid_cents > principal_cents "
                "OR interest_paid_cents > interest_cents OR fee_paid_cents > fee_cents "
                "OR least(principal_paid_cents, interest_paid_cents, fee_paid_cents) < 0 "
                "ORDER BY 1, 2 LIMIT 100"):
            problems.append(f"loan {lid} instalment {n} is paid beyond what it asked")
        return problems
