"""Loans: products, applications, decisions, disbursement, schedules, repayments, write-offs.

This module owns the loan tables (loan_products, loans, loan_schedule, loan_payments) and the
instalment arithmetic. End of day (eod.py) uses its set-based pieces to collect instalments and
age arrears.

Design, in short:

* Money is integer cents; rates are Decimal percent. The schedule is an annuity: equal monthly
  instalments rounded to the cent, each month's interest = outstanding principal x annual
  rate / 12 rounded to the cent, and the last instalment pays whatever principal is left (so it
  absorbs every rounding difference).
* Rounding is ROUND_HALF_UP everywhere a cent is rounded. It is the customary rule in consumer
  lending and, for the positive amounts rounded here, the same as DuckDB's round() (half away
  from zero), so a figure recomputed in SQL agrees with Python. The golden case (10,000.00 at
  12 % over 12 months: 888.49 a month, last 888.47, 661.86 interest) holds under half-even too;
  the two rules differ only on exact half cents.
* Ledger: all loan principal sits in the one GL1200 loans-receivable account (an asset, so a
  negative balance under our sign convention). Per-loan principal is kept in this module's
  subledger (loans.principal_outstanding_cents, the schedule and loan_payments), and
  `verify()` reconciles the two to the cent. One ledger account per loan would have needed
  the core's customer-account checks (overdraft guards, verify, account lists) to learn about
  a new account kind; the subledger leaves the core untouched and keeps GL1200 meaningful.
* Interest and late fees are income when paid (cash basis): a repayment is one transaction
  with legs source -amount, GL1200 +principal, GL4000 interest income +interest, GL4100 fee
  income +fees. Interest and fees that are due but unpaid are claims in the schedule, not
  ledger balances, so -GL1200 always equals the outstanding principal of all loans exactly. A
  write-off moves the unpaid principal from GL1200 to GL5100 loan losses and cancels unpaid
  interest and fees (they were never income).
* A payment goes to fees, then interest of instalments that are due (due date on or before the
  business date), then principal of due instalments, oldest first; anything left is a
  prepayment that lowers the outstanding principal, and the instalments not yet due are
  recomputed on the lower principal over the same dates (lower instalments, same term). Paying
  everything off closes the loan.
* Days past due on business date B: B minus the due date of the oldest instalment due before
  B that is not fully paid (an instalment due today is not late until today has closed).
"""
from __future__ import annotations

import calendar
import datetime as dt
import hashlib
import json
from decimal import ROUND_HALF_UP, Decimal, localcontext

import pandas as pd

from . import accountnum
from .accounts import clean_rate
from .bank import INTERNAL
from .dates import as_date
from .errors import (
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
from .ledger import CUSTOMER_KINDS, PostingRequest, utcnow
from .money import format_cents, to_cents, to_money

ROUNDING = ROUND_HALF_UP
TERM_MONTHS_MAX = 600
PURPOSE_CHARS_MAX = 200
REASON_CHARS_MAX = 300
STATUSES = ("submitted", "approved", "rejected", "active", "paid_off", "written_off")
BUCKETS = ("current", "1-30", "31-60", "61-90", "over 90")
CASH = "cash"


class LoanNotFound(BankError):
    pass


# -- the arithmetic (pure) -------------------------------------------------------------------
def _round_cents(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUNDING))


def monthly_rate(annual_rate_percent) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = 50
        return Decimal(annual_rate_percent) / 1200


def annuity_payment_cents(principal_cents: int, annual_rate_percent, term_months: int) -> int:
    """A = P r / (1 - (1 + r)^-n), rounded to the cent; P / n when the rate is zero."""
    with localcontext() as ctx:
        ctx.prec = 50
        r = monthly_rate(annual_rate_percent)
        if r == 0:
            return _round_cents(Decimal(principal_cents) / term_months)
        return _round_cents(Decimal(principal_cents) * r / (1 - (1 + r) ** -term_months))


def amortize(principal_cents: int, annual_rate_percent, term_months: int) -> list[tuple]:
    """(payment, interest, principal, balance after) in cents for each month."""
    payment = annuity_payment_cents(principal_cents, annual_rate_percent, term_months)
    r = monthly_rate(annual_rate_percent)
    rows = []
    balance = principal_cents
    with localcontext() as ctx:
        ctx.prec = 50
        for k in range(term_months):
            interest = _round_cents(Decimal(balance) * r)
            if k == term_months - 1:
                principal = balance
            else:
                principal = payment - interest
                if not 0 <= principal < balance:
                    # Only for tiny amounts over long terms (never within a product's range):
                    # the rounded instalment would repay the loan before its last month.
                    raise InvalidInput(
                        "This amount is too small for this term: the instalments would repay "
                        "it early. Choose a shorter term or a larger amount.")
            balance -= principal
            rows.append((principal + interest, interest, principal, balance))
    return rows


def add_months(start: dt.date, months: int) -> dt.date:
    """The same day `months` later, or the month's last day when it is shorter."""
    index = start.year * 12 + start.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    return dt.date(year, month, min(start.day, calendar.monthrange(year, month)[1]))


def due_dates(first_due: dt.date, term_months: int) -> list[dt.date]:
    # Anchored on the first due date's day, so 31 Jan -> 28 Feb -> 31 Mar (not 28 Mar).
    return [add_months(first_due, k) for k in range(term_months)]


def bucket(days_past_due: int) -> str:
    if days_past_due <= 0:
        return "current"
    if days_past_due <= 30:
        return "1-30"
    if days_past_due <= 60:
        return "31-60"
    if days_past_due <= 90:
        return "61-90"
    return "over 90"


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


def _clean_text(value, label, chars_min, chars_max):
    if not isinstance(value, str) or len(" ".join(value.split())) < chars_min:
        raise InvalidInput(f"Please give the {label} ({chars_min} characters or more).")
    value = " ".join(value.split())
    if len(value) > chars_max:
        raise InvalidInput(f"The {label} may have at most {chars_max} characters.")
    return value


def _loan_id(value) -> int:
    from .ids import parse_id
    return parse_id(value, "loan number")


def quote_frame(principal_cents, rate, term_months, first_due) -> pd.DataFrame:
    rows = amortize(principal_cents, rate, term_months)
    df = pd.DataFrame(rows, columns=["payment_cents", "interest_cents", "principal_cents",
                                     "balance_cents"])
    df.insert(0, "due_date", due_dates(first_due, term_months))
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
    cur = uow.cur
    cur.register("loan_pay", payments[["loan_id", "amount_cents"]])
    try:
        return uow.execute(ALLOCATION_SQL, [as_of, as_of]).df()
    finally:
        cur.unregister("loan_pay")


def apply_allocation(uow, alloc: pd.DataFrame) -> None:
    if len(alloc) == 0:
        return
    cur = uow.cur
    cur.register("loan_alloc", alloc)
    try:
        uow.execute(
            "UPDATE loan_schedule SET "
            "fee_paid_cents = loan_schedule.fee_paid_cents + a.fee_cents, "
            "interest_paid_cents = loan_schedule.interest_paid_cents + a.interest_cents, "
            "principal_paid_cents = loan_schedule.principal_paid_cents + a.principal_cents "
            "FROM loan_alloc a WHERE loan_schedule.loan_id = a.loan_id "
            "AND loan_schedule.n = a.n")
    finally:
        cur.unregister("loan_alloc")


def record_payments(uow, payments: pd.DataFrame) -> None:
    """Insert loan_payments rows and lower each loan's outstanding principal.

    `payments` columns: transaction_id, loan_id, business_date, method, source_account,
    amount_cents, fee_cents, interest_cents, principal_cents, prepayment_cents, actor."""
    cur = uow.cur
    cur.register("loan_paid", payments)
    try:
        uow.execute(
            "INSERT INTO loan_payments SELECT transaction_id, loan_id, "
            "CAST(business_date AS DATE), method, source_account, amount_cents, fee_cents, "
            "interest_cents, principal_cents, prepayment_cents, actor FROM loan_paid")
        uow.execute(
            "UPDATE loans SET principal_outstanding_cents = "
            "loans.principal_outstanding_cents - p.principal "
            "FROM (SELECT loan_id, sum(principal_cents) AS principal FROM loan_paid GROUP BY 1) p "
            "WHERE loans.id = p.loan_id")
    finally:
        cur.unregister("loan_paid")


def close_paid_off(uow, as_of: dt.date, loan_ids) -> list[int]:
    """Loans among `loan_ids` that owe nothing more become paid_off; returns their ids."""
    if not loan_ids:
        return []
    ids = [int(i) for i in loan_ids]
    done = [row[0] for row in uow.fetchall(
        "SELECT id FROM loans l WHERE id IN (SELECT unnest(?)) AND status = 'active' "
        "AND principal_outstanding_cents = 0 AND NOT EXISTS (SELECT 1 FROM loan_schedule s "
        "WHERE s.loan_id = l.id AND (s.fee_paid_cents < s.fee_cents "
        "OR s.interest_paid_cents < s.interest_cents AND s.due_date <= ?))",
        [ids, as_of])]
    if done:
        # Instalments never reached (after a payoff) are dropped from the plan.
        uow.execute("DELETE FROM loan_schedule WHERE loan_id IN (SELECT unnest(?)) "
                    "AND principal_paid_cents = 0 AND interest_paid_cents = 0 "
                    "AND fee_cents = 0 AND due_date > ?", [done, as_of])
        uow.execute("UPDATE loans SET status = 'paid_off', closed_date = ?, days_past_due = 0, "
                    "arrears_bucket = 'current' WHERE id IN (SELECT unnest(?))", [as_of, done])
    return done


def age_arrears(uow, as_of: dt.date, loan_id=None) -> None:
    """Store days past due and the arrears bucket of active loans as of business date as_of."""
    where = "" if loan_id is None else " AND l.id = " + str(int(loan_id))
    uow.execute(
        "UPDATE loans SET days_past_due = x.dpd, arrears_bucket = x.bucket FROM ("
        "SELECT id, dpd, " + BUCKET_SQL.format(d="dpd") + " AS bucket FROM ("
        "SELECT l.id, coalesce(date_diff('day', o.oldest, CAST(? AS DATE)), 0) AS dpd "
        "FROM loans l LEFT JOIN (SELECT loan_id, min(due_date) AS oldest FROM loan_schedule "
        "WHERE due_date < ? AND (interest_paid_cents < interest_cents "
        "OR principal_paid_cents < principal_cents) GROUP BY 1) o ON o.loan_id = l.id "
        "WHERE l.status = 'active'" + where + ")) x "
        "WHERE loans.id = x.id AND (loans.days_past_due <> x.dpd "
        "OR loans.arrears_bucket <> x.bucket)", [as_of, as_of])


def _request_hash(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _clean_key(key):
    from .payments import clean_key
    return clean_key(key)


def system_key(*parts):
    from .payments import system_key
    return system_key(*parts)


LOAN_COLUMNS = (
    "id", "customer_id", "product_code", "principal_cents", "term_months", "purpose",
    "monthly_income_cents", "status", "annual_rate_percent", "applied_by", "applied_role",
    "applied_at", "applied_date", "decided_by", "decided_at", "decision_reason",
    "account_number", "disbursed_by", "disbursed_at", "disbursement_date", "disbursement_tx_id",
    "principal_outstanding_cents", "days_past_due", "arrears_bucket", "closed_date",
    "written_off_cents", "write_off_reason")
_LOAN_SELECT = "SELECT " + ", ".join(LOAN_COLUMNS) + " FROM loans WHERE id = ?"


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

    def _product(self, code) -> dict:
        row = self._bank.read_one(
            "SELECT code, name, amount_min_cents, amount_max_cents, term_min_months, "
            "term_max_months, rate_min_percent, rate_max_percent, active FROM loan_products "
            "WHERE code = ?", [str(code).strip().lower().replace(" ", "_")])
        if row is None or not row[8]:
            raise InvalidInput(f"There is no loan product '{code}'.")
        return dict(zip(("code", "name", "amount_min_cents", "amount_max_cents",
                         "term_min_months", "term_max_months", "rate_min_percent",
                         "rate_max_percent", "active"), row))

    # -- products and quotes -----------------------------------------------------------------
    def products(self) -> pd.DataFrame:
        """The loan products on offer (public information)."""
        df = self._bank.read_df(
            "SELECT code, name, amount_min_cents, amount_max_cents, term_min_months, "
            "term_max_months, rate_min_percent, rate_max_percent FROM loan_products "
            "WHERE active ORDER BY code")
        df["rate_min_percent"] = [Decimal(str(v)).quantize(Decimal("0.01"))
                                  for v in df["rate_min_percent"]]
        df["rate_max_percent"] = [Decimal(str(v)).quantize(Decimal("0.01"))
                                  for v in df["rate_max_percent"]]
        return _money_frame(df, ["amount_min_cents", "amount_max_cents"])

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
        may approve a lower rate). Refuses what the product does not lend, as apply would."""
        prod = self._product(product)
        _within_product(prod, to_cents(principal), clean_term(term_months))
        return self.quote(principal, prod["rate_max_percent"], term_months)

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
                "applied_date, request_key) VALUES (?, ?, ?, ?, ?, ?, ?, 'submitted', ?, ?, ?, ?, "
                "?)", [lid, cid, prod["code"], cents, term, purpose, income_cents,
                       actor.username, actor.role, utcnow(), bank.state.business_date, key])
            bank.audit_row(uow, actor, "loan.apply", "loan", lid, after={
                "customer_id": cid, "product": prod["code"], "principal": str(to_money(cents)),
                "term_months": term, "purpose": purpose,
                "monthly_income": str(to_money(income_cents))})
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
        key = (_clean_key(idempotency_key) if idempotency_key
               else system_key("loan", lid, "disbursement"))
        gl = INTERNAL["loans_receivable"]

        def fn(uow):
            loan = self._loan_in(uow, lid)
            cents = loan["principal_cents"]
            req = PostingRequest(
                kind="loan_disbursement", actor=actor, action="loan.disburse",
                legs=[(gl, -cents), (number, cents)], amount_cents=cents, idempotency_key=key,
                memo=f"Loan {lid} disbursement", source_account=gl, target_account=number,
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
            if acc[0] != loan["customer_id"] or acc[1] not in CUSTOMER_KINDS:
                raise InvalidInput(f"Account {number} does not belong to the borrower.")
            outcome = bank.post_in(uow, req)
            if isinstance(outcome, BaseException):
                return outcome
            today = bank.state.business_date
            first = add_months(today, 1)
            rows = amortize(cents, loan["annual_rate_percent"], loan["term_months"])
            sched = pd.DataFrame(rows, columns=["payment_cents", "interest_cents",
                                                "principal_cents", "balance_cents"])
            sched.insert(0, "due_date", due_dates(first, loan["term_months"]))
            sched.insert(0, "n", range(1, loan["term_months"] + 1))
            sched.insert(0, "loan_id", lid)
            uow.cur.register("new_schedule", sched)
            try:
                uow.execute("INSERT INTO loan_schedule (loan_id, n, due_date, payment_cents, "
                            "interest_cents, principal_cents, balance_cents) SELECT loan_id, n, "
                            "CAST(due_date AS DATE), payment_cents, interest_cents, "
                            "principal_cents, balance_cents FROM new_schedule")
            finally:
                uow.cur.unregister("new_schedule")
            uow.execute(
                "UPDATE loans SET status = 'active', account_number = ?, disbursed_by = ?, "
                "disbursed_at = ?, disbursement_date = ?, disbursement_tx_id = ?, "
                "principal_outstanding_cents = ? WHERE id = ?",
                [number, actor.username, utcnow(), today, outcome.transaction_id, cents, lid])
            bank.audit_row(uow, actor, "loan.disburse", "loan", lid,
                           before={"status": "approved"},
                           after={"status": "active", "account": number,
                                  "amount": str(to_money(cents)),
                                  "transaction_id": outcome.transaction_id,
                                  "first_due": first.isoformat(),
                                  "instalment": str(to_money(rows[0][0]))})
            return outcome
        return self._raise_refusal(bank.write(fn))

    def repay(self, actor, loan_id, amount, source_account, idempotency_key=None):
        """A manual payment from one of the borrower's accounts (or, for staff, `"cash"` taken
        at the counter). Returns the ledger Receipt; the split is in its memo and in
        loan_payments."""
        bank = self._bank
        loan = self._readable(actor, loan_id, "loan.repay")
        lid = loan["id"]
        cents = to_cents(amount)
        is_cash = isinstance(source_account, str) and source_account.strip().lower() == CASH
        if is_cash:
            if not getattr(actor, "is_staff", False):
                exc = PermissionDenied("Only a teller can take a cash payment.")
                bank.record_refusal(actor, "loan.repay", exc, entity="loan", entity_id=lid)
                raise exc
            source = INTERNAL["teller_cash"]
        else:
            source = accountnum.normalize(source_account)
        key = _clean_key(idempotency_key)
        # Issue 12: staff repayments above the four-eyes threshold wait (approvals.py).
        held = bank.approvals.gate_loan(actor, "loan.repay", lid, amount_cents=cents,
                                        source_account=source_account, idempotency_key=key)
        if held is not None:
            return held
        request_hash = _request_hash("loan_repayment", actor.username, lid, cents, source)
        owned = (source,) if actor.role == "customer" else ()

        def request(legs, memo=""):
            return PostingRequest(
                kind="loan_repayment", actor=actor, action="loan.repay", legs=legs,
                amount_cents=cents, idempotency_key=key, memo=memo, source_account=source,
                target_account=INTERNAL["loans_receivable"], owned_accounts=owned,
                internal_ok=True, request_hash=request_hash)

        def fn(uow):
            simple = [(source, -cents), (INTERNAL["loans_receivable"], cents)]
            replay = self._replay_or_conflict(uow, key, request(simple))
            if replay is not None:
                return replay
            loan = self._loan_in(uow, lid)
            today = bank.state.business_date
            if loan["status"] != "active":
                raise InvalidState(f"Loan {lid} is {loan['status'].replace('_', ' ')}; "
                                   "payments are taken only on active loans.")
            if not is_cash:
                owner = uow.fetchone("SELECT customer_id FROM accounts WHERE account_number = ?",
                                     [source])
                if owner is None or owner[0] is None:
                    raise AccountNotFound(f"There is no account {source}.")
                if owner[0] != loan["customer_id"] and actor.role != "customer":
                    raise InvalidInput(f"Account {source} does not belong to the borrower.")
            (owed,) = uow.fetchone(
                "SELECT coalesce(sum(fee_cents - fee_paid_cents + CASE WHEN due_date <= ? THEN "
                "interest_cents - interest_paid_cents ELSE 0 END), 0) FROM loan_schedule "
                "WHERE loan_id = ?", [today, lid])
            payoff = int(owed) + loan["principal_outstanding_cents"]
            if cents > payoff:
                raise InvalidAmount(f"{format_cents(cents)} is more than the "
                                    f"{format_cents(payoff)} that pays loan {lid} off.")
            alloc = allocate(uow, pd.DataFrame({"loan_id": [lid], "amount_cents": [cents]}),
                             today)
            fee = int(alloc["fee_cents"].sum())
            interest = int(alloc["interest_cents"].sum())
            principal_due = int(alloc["principal_cents"].sum())
            prepay = cents - fee - interest - principal_due
            principal = principal_due + prepay
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
            apply_allocation(uow, alloc)
            record_payments(uow, pd.DataFrame({
                "transaction_id": [outcome.transaction_id], "loan_id": [lid],
                "business_date": [today], "method": ["cash" if is_cash else "manual"],
                "source_account": [source], "amount_cents": [cents], "fee_cents": [fee],
                "interest_cents": [interest], "principal_cents": [principal],
                "prepayment_cents": [prepay], "actor": [actor.username]}))
            if prepay:
                self._reamortize(uow, loan, today)
            closed = close_paid_off(uow, today, [lid])
            if not closed:
                age_arrears(uow, today, lid)
            bank.audit_row(uow, actor, "loan.repay", "loan", lid, after={
                "transaction_id": outcome.transaction_id, "amount": str(to_money(cents)),
                "fees": str(to_money(fee)), "interest": str(to_money(interest)),
                "principal": str(to_money(principal)), "prepayment": str(to_money(prepay)),
                "paid_off": bool(closed)})
            return outcome
        return self._raise_refusal(bank.write(fn))

    def _reamortize(self, uow, loan, today):
        """After a prepayment, spread what principal is left over the instalments not yet due,
        same dates, same rate."""
        lid = loan["id"]
        (outstanding,) = uow.fetchone(
            "SELECT principal_outstanding_cents FROM loans WHERE id = ?", [lid])
        future = [row[0] for row in uow.fetchall(
            "SELECT n FROM loan_schedule WHERE loan_id = ? AND due_date > ? ORDER BY n",
            [lid, today])]
        (unpaid_due,) = uow.fetchone(
            "SELECT coalesce(sum(principal_cents - principal_paid_cents), 0) FROM loan_schedule "
            "WHERE loan_id = ? AND due_date <= ?", [lid, today])
        remaining = outstanding - int(unpaid_due)
        before = uow.fetchall("SELECT n, payment_cents FROM loan_schedule WHERE loan_id = ? "
                              "AND due_date > ? ORDER BY n LIMIT 1", [lid, today])
        if remaining == 0 or not future:
            uow.execute("DELETE FROM loan_schedule WHERE loan_id = ? AND due_date > ?",
                        [lid, today])
            return
        rows = amortize(remaining, loan["annual_rate_percent"], len(future))
        frame = pd.DataFrame(rows, columns=["payment_cents", "interest_cents",
                                            "principal_cents", "balance_cents"])
        frame.insert(0, "n", future)
        uow.cur.register("new_amounts", frame)
        try:
            uow.execute(
                "UPDATE loan_schedule SET payment_cents = x.payment_cents, "
                "interest_cents = x.interest_cents, principal_cents = x.principal_cents, "
                "balance_cents = x.balance_cents FROM new_amounts x "
                "WHERE loan_schedule.loan_id = ? AND loan_schedule.n = x.n", [lid])
        finally:
            uow.cur.unregister("new_amounts")
        self._bank.audit_row(uow, self._bank.system_actor(), "loan.reschedule", "loan", lid,
                             before={"next_instalment": str(to_money(before[0][1]))},
                             after={"principal": str(to_money(remaining)),
                                    "instalments": len(future),
                                    "next_instalment": str(to_money(rows[0][0]))})

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
        out["payoff_cents"] = (figures["fees_due_cents"] + figures["interest_due_cents"]
                               + loan["principal_outstanding_cents"])
        paid = bank.read_one(
            "SELECT coalesce(sum(amount_cents), 0), coalesce(sum(interest_cents), 0), "
            "coalesce(sum(fee_cents), 0) FROM loan_payments WHERE loan_id = ?", [loan["id"]])
        out["paid_cents"], out["interest_paid_cents"], out["fees_paid_cents"] = (
            int(v) for v in paid)
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
            df = quote_frame(loan["principal_cents"], rate, loan["term_months"],
                             add_months(bank.business_date, 1))
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
        instalment = annuity_payment_cents(
            loan["principal_cents"], loan["annual_rate_percent"] or bank.read_one(
                "SELECT rate_max_percent FROM loan_products WHERE code = ?",
                [loan["product_code"]])[0], loan["term_months"])
        return {"loan": self.get(actor, loan["id"]), "accounts": accounts, "history": history,
                "other_loans": others, "inflow_90d": to_money(int(flows[0])),
                "outflow_90d": to_money(int(flows[1])),
                "instalment": to_money(instalment),
                "instalment_to_income_percent": (
                    None if not loan["monthly_income_cents"] else
                    (Decimal(instalment * 100) / loan["monthly_income_cents"]).quantize(
                        Decimal("0.1"), rounding=ROUNDING))}

    # -- invariants --------------------------------------------------------------------------
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
        for lid, pf, sf, pi, si, pp, sp in bank.read(
                "SELECT coalesce(p.loan_id, s.loan_id), coalesce(p.f, 0), coalesce(s.f, 0), "
                "coalesce(p.i, 0), coalesce(s.i, 0), coalesce(p.pr, 0), coalesce(s.pr, 0) "
                "FROM (SELECT loan_id, sum(fee_cents) f, sum(interest_cents) i, "
                "sum(principal_cents - prepayment_cents) pr FROM loan_payments GROUP BY 1) p "
                "FULL JOIN (SELECT loan_id, sum(fee_paid_cents) f, sum(interest_paid_cents) i, "
                "sum(principal_paid_cents) pr FROM loan_schedule GROUP BY 1) s "
                "ON s.loan_id = p.loan_id WHERE coalesce(p.f, 0) <> coalesce(s.f, 0) "
                "OR coalesce(p.i, 0) <> coalesce(s.i, 0) OR coalesce(p.pr, 0) <> coalesce(s.pr, 0) "
                "ORDER BY 1 LIMIT 100"):
            problems.append(f"loan {lid} payments (fees {pf}, interest {pi}, scheduled principal "
                            f"{pp}) disagree with its schedule ({sf}, {si}, {sp})")
        for tid, in bank.read(
                "SELECT lp.transaction_id FROM loan_payments lp LEFT JOIN (SELECT "
                "p.transaction_id, sum(CASE WHEN a.account_number = ? THEN p.amount_cents END) g, "
                "sum(CASE WHEN a.account_number = ? THEN p.amount_cents END) i, "
                "sum(CASE WHEN a.account_number = ? THEN p.amount_cents END) f "
                "FROM postings p JOIN accounts a ON a.id = p.account_id GROUP BY 1) x "
                "ON x.transaction_id = lp.transaction_id WHERE "
                "lp.amount_cents <> lp.fee_cents + lp.interest_cents + lp.principal_cents OR "
                "coalesce(x.g, 0) <> lp.principal_cents OR coalesce(x.i, 0) <> lp.interest_cents "
                "OR coalesce(x.f, 0) <> lp.fee_cents ORDER BY 1 LIMIT 100",
                [INTERNAL["loans_receivable"], INTERNAL["interest_income"],
                 INTERNAL["fee_income"]]):
            problems.append(f"loan payment transaction {tid} does not match its split")
        for lid, n in bank.read(
                "SELECT loan_id, n FROM loan_schedule WHERE principal_paid_cents > principal_cents "
                "OR interest_paid_cents > interest_cents OR fee_paid_cents > fee_cents "
                "OR least(principal_paid_cents, interest_paid_cents, fee_paid_cents) < 0 "
                "ORDER BY 1, 2 LIMIT 100"):
            problems.append(f"loan {lid} instalment {n} is paid beyond what it asked")
        return problems
