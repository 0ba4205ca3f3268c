"""A loan as the replay of its events: the pure arithmetic of loan servicing.

This module owns the rules; loans.py stores their results (loan_schedule, loan_payments and
the loan row are a cache of the replay) and verify() checks the cache against a fresh replay.
Nothing here touches the database, so a replay is also the oracle of the tests.

The contract (Contract; validate_contract gives its range): principal P (cents, 1.00 to
100,000,000.00), annual rate R % (0 to 60), a term of 1 to 480 months, disbursed on day D0,
and the product's options, whose defaults are the original contract (monthly, equal
instalments, no grace, dates not moved). The rules, after Apache Fineract's
interest-recalculating loans:

* **Frequency** (`frequency`: monthly, biweekly, weekly). The periodic rate is r = R / 1200
  monthly, R / 2600 every two weeks and R / 5200 weekly (annual / 12, / 26, / 52, Fineract's
  periodic rate). The term stays in months; the number of instalments is
  instalment_count(term, frequency) = term x (12, 26 or 52 instalments a year) / 12, rounded
  half up, at least 1 (12 months weekly = 52 instalments, 1 month weekly = 4, 3 months
  biweekly = 7, 480 months weekly = 2,080).
* **Due dates** are anchored on D0: D0 + k months (python-dateutil's relativedelta, counted
  from D0 each time, so the day of month is kept and clamped to the month's end without
  drifting: 2027-01-31 -> 02-28, 03-31, 04-30 ... 2028-01-31, 02-29 in a leap year), or
  D0 + 14k days (biweekly) or D0 + 7k days (weekly).
* **Moved due dates** (`move_due_date`, a function date -> date, say to the next working day
  off weekends and bank holidays): each anchored date is payable on move_due_date(anchor) and
  that moved date is the instalment's due date for everything (arrears, late fees, advance
  payment, the period's length). Anchors are still counted from D0, so moving one date never
  shifts the next (no drift); moved dates must strictly increase. Moved dates are cached by
  the function's identity: give a new function when the calendar changes (or clear_caches()).
* **Equal instalments** (`amortization="equal_instalments"`): the annuity
  A = P r / (1 - (1 + r)^-n) rounded half-up to the cent; each instalment's interest is the
  period's opening balance x r, rounded half-up; the last instalment pays whatever principal
  is left. If the rounded A would repay the loan before the last instalment (tiny loans over
  long terms), A is lowered a cent at a time until it does not, so the instalments never
  overpay and no contract in range is refused for rounding. Golden case: 10,000.00 at 12 %
  over 12 months = 888.49 x 11 + 888.47, 661.86 interest.
* **Equal principal** (`amortization="equal_principal"`, Fineract's "equal principal
  payments"): each instalment repays P / n, rounded half-up but never so high that the first
  n - 1 would repay it all, plus the interest of its opening balance; the last takes the
  difference, and the payments fall over time. 12,000.00 at 12 % over 12 months: 1,120.00 first,
  1,010.00 last, 780.00 interest.
* **Grace on principal** (`grace_principal_periods` = g < n, Fineract's "grace on principal
  payment"): the first g instalments pay the interest only; the principal is amortised (either
  way) over the remaining n - g instalments.
* **Interest by the day.** A whole period on a constant balance B earns exactly B x r (the
  schedule's interest). Within a period, each day earns B(day) x r x w(day), where B(day) is
  the principal that bears interest that day and w(day) the day's share of the period under the
  day count: actual/365 and actual/actual weigh each day 1 / (days in the period), 30/360 weighs
  by 30/360 days. So 10,000.00 at 12 % with 5,000.00 prepaid on day 20 of a 30-day period earns
  100.00 x 20/30 + 50.00 x 10/30 = 83.33 for that period. A period's interest is summed exactly
  (fractions) and rounded half-up to the cent once. Periods run between the (moved) due
  dates by calendar day, and a whole period still earns B x r: a due date moved from a Saturday
  to the Monday costs no more interest when paid that Monday (the next period is two days
  shorter and earns its full B x r too).
* **What bears interest.** The principal of an instalment stays interest-bearing until the
  instalment's due date, whether it is paid early, on time or late (an instalment paid on its
  due date, or early, costs exactly its scheduled interest; lateness costs the late fee, not
  extra interest). Only a prepayment (below) lowers the interest-bearing principal at once.
* **A payment with value date d** pays, in this order: (1) fees charged before d; (2) the
  interest, then the principal, of the instalments due on or before d, oldest first; (3) the
  coming instalment (the first due after d): interest, then principal ("advance payment": no
  late flag, and end of day then collects only what is still due); (4) the excess prepays
  principal on d. The coming instalment's interest is then the interest accrued to d plus the
  rest of the period on the lowered principal, and the instalments after it are re-amortised:
  "reduce_instalment" (same dates; the default: the remaining principal is re-amortised over
  the remaining instalments, as an annuity or in equal parts) or "shorten_term" (the same
  instalment, or for equal principal the same principal per instalment, and fewer of them).
  Instalments still in the grace on principal stay interest-only under either rule.
  Only the coming instalment is ever paid ahead: the excess beyond it is a prepayment, not an
  advance on the instalments after it. (Apache Fineract's "next instalment" future-allocation
  rule is not offered: rows paid ahead beyond the coming one would have to survive every later
  prepayment, re-amortisation and payoff, which all rest on that one-row rule; "shorten_term"
  gives the borrower who pays extra the same end, fewer instalments to pay.)
* **Interest paid ahead.** When the coming instalment was paid ahead and a prepayment (or the
  payoff) then lowers its interest below what was paid, the difference is interest no longer
  earned and becomes principal: Split.interest_cents is then negative by reapplied_cents, and
  loans.py shows the payment with interest 0 (shown_interest_cents, never negative) and posts
  the difference as a reallocation from interest income to loans receivable. 10,000.00 at 12 %
  disbursed 2027-04-01, 888.49 paid 04-26, then 5,000.00 on 04-28: the payment is 5,000.00 of
  principal, and 5.00 of interest paid ahead becomes principal (5,005.00 prepaid in all).
* **Late fees** are charged by end of day on an instalment still unpaid at the end of its fee
  date (due date + grace days); a payment dated on or before the fee date that settles the
  instalment (a back-dated correction) drops that fee, as posting the history afresh would.
* **Payoff on d** = fees charged before d + everything due on or before d + the coming
  instalment's interest accrued to d (less any paid ahead) + all unpaid principal. (For a
  future d, loans.payoff adds the late fees end of day will charge by then if nothing is
  paid.) Paying it closes the loan (the
  instalments after the coming one are dropped); more than the payoff is refused.
"""
from __future__ import annotations

import bisect
import datetime as dt
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from fractions import Fraction

from dateutil.relativedelta import relativedelta

DAY_COUNTS = ("actual/365", "actual/actual", "30/360")
PREPAYMENT_RULES = ("reduce_instalment", "shorten_term")
FREQUENCIES = ("monthly", "biweekly", "weekly")
AMORTIZATIONS = ("equal_instalments", "equal_principal")
DEFAULT_DAY_COUNT = "actual/365"
DEFAULT_PREPAYMENT = "reduce_instalment"
DEFAULT_FREQUENCY = "monthly"
DEFAULT_AMORTIZATION = "equal_instalments"
# Instalments a year: the periodic rate is the annual rate / 100 / this (Apache Fineract's
# periodic rate for monthly, every-two-weeks and weekly repayments).
PERIODS_PER_YEAR = {"monthly": 12, "biweekly": 26, "weekly": 52}
_PERIOD_DAYS = {"biweekly": 14, "weekly": 7}
# The range of a sane contract (issue 9).
PRINCIPAL_CENTS_MIN = 100
PRINCIPAL_CENTS_MAX = 10_000_000_000
RATE_PERCENT_MAX = Decimal(60)
TERM_MONTHS_MAX = 480
# Initial schedules and moved due dates are cached (verify() replays every loan, and many share
# a contract); a weekly 40-year schedule has 2,080 rows, so the caches are kept modest.
_SCHEDULE_CACHE_SIZE = 512


class ReplayError(ValueError):
    """An event the contract cannot take (loans.py turns it into a BankError)."""


def round_half_up(value) -> int:
    """Fraction or int -> nearest integer, halves away from zero."""
    value = Fraction(value)
    if value >= 0:
        return int((value + Fraction(1, 2)).__floor__())
    return -int((-value + Fraction(1, 2)).__floor__())


def _periods_per_year(frequency) -> int:
    try:
        return PERIODS_PER_YEAR[frequency]
    except (KeyError, TypeError):
        raise ReplayError(f"the repayment frequency must be one of {', '.join(FREQUENCIES)}, "
                          f"not {frequency!r}") from None


def monthly_rate(annual_rate_percent) -> Fraction:
    return Fraction(Decimal(str(annual_rate_percent))) / 1200


def periodic_rate(annual_rate_percent, frequency: str = DEFAULT_FREQUENCY) -> Fraction:
    """The interest rate of one instalment period, exact: annual % / 1200 (monthly), / 2600
    (biweekly) or / 5200 (weekly), as Apache Fineract computes it. Raises ReplayError for an
    unknown frequency."""
    return Fraction(Decimal(str(annual_rate_percent))) / (100 * _periods_per_year(frequency))


def instalment_count(term_months: int, frequency: str = DEFAULT_FREQUENCY) -> int:
    """How many instalments a loan of `term_months` months has: term_months (monthly),
    term_months x 26 / 12 (biweekly) or term_months x 52 / 12 (weekly), rounded half up, at
    least 1. So 12 months weekly = 52 instalments, 1 month weekly = 4 (4.33), 1 month biweekly
    = 2 (2.17), 6 months biweekly = 13, 480 months weekly = 2,080. Raises ReplayError for an
    unknown frequency."""
    per_year = _periods_per_year(frequency)
    return max(1, round_half_up(Fraction(int(term_months) * per_year, 12)))


def due_dates(anchor: dt.date, term_months: int, frequency: str = DEFAULT_FREQUENCY,
              move_due_date: Callable[[dt.date], dt.date] | None = None) -> list[dt.date]:
    """The due dates of a loan disbursed on `anchor`, one per instalment (instalment_count):
    anchor + k months (monthly; day of month kept, clamped to a shorter month's end), + 14k
    days (biweekly) or + 7k days (weekly), each counted from the anchor, never from the previous
    date. `move_due_date` maps each anchored date to the date it is payable (say the next
    working day); moving one date never shifts the next. Raises ReplayError if the moved dates
    are not strictly increasing and after the anchor."""
    count = instalment_count(term_months, frequency)
    if move_due_date is None:
        return list(_anchored_dates(anchor, count, frequency))
    return list(_moved_dates(anchor, count, frequency, move_due_date))


@functools.lru_cache(maxsize=4096)
def _anchored_dates(anchor, count, frequency) -> tuple:
    # Cached: verify() replays every loan, and many share a disbursement day.
    if frequency == "monthly":
        return tuple(anchor + relativedelta(months=k) for k in range(1, count + 1))
    step = dt.timedelta(days=_PERIOD_DAYS[frequency])
    return tuple(anchor + k * step for k in range(1, count + 1))


@functools.lru_cache(maxsize=_SCHEDULE_CACHE_SIZE)
def _moved_dates(anchor, count, frequency, move_due_date) -> tuple:
    # Keyed on the function object (hashed by identity, and kept alive by the cache so its id
    # is never reused): a calendar that changes must come as a new function, or call
    # clear_caches(). Pass one function per calendar, not a new closure per loan, or the
    # cache holds many copies and helps nothing.
    moved, previous = [], anchor
    for day in _anchored_dates(anchor, count, frequency):
        due = move_due_date(day)
        if not isinstance(due, dt.date) or due <= previous:
            raise ReplayError(f"the due date {day} moves to {due}, which is not after the "
                              f"previous due date {previous}")
        moved.append(due)
        previous = due
    return tuple(moved)


def _days_30_360(a: dt.date, b: dt.date) -> int:
    d1, d2 = min(a.day, 30), b.day
    if d1 == 30 and d2 == 31:
        d2 = 30
    return 360 * (b.year - a.year) + 30 * (b.month - a.month) + d2 - d1


def day_share(day_count: str, start: dt.date, end: dt.date, a: dt.date, b: dt.date) -> Fraction:
    """The share of period [start, end) that the days [a, b) are, under the day count."""
    if day_count == "30/360":
        whole = _days_30_360(start, end)
        return Fraction(_days_30_360(a, b), whole) if whole else Fraction(0)
    whole = (end - start).days
    return Fraction((b - a).days, whole) if whole else Fraction(0)


def _interest(balance: int, r: Fraction) -> int:
    """balance x r rounded half-up, in integers (the replay's hot loop)."""
    num, den = r.numerator, r.denominator
    if balance >= 0:
        return (2 * balance * num + den) // (2 * den)
    return -((-2 * balance * num + den) // (2 * den))


def _instalment_ok(principal_cents, r, term, payment) -> list | None:
    rows, balance = [], principal_cents
    # _interest inlined (balances here are never negative): the hot loop of a re-amortisation.
    two_num, den = 2 * r.numerator, r.denominator
    two_den = 2 * den
    for k in range(term):
        interest = (two_num * balance + den) // two_den
        if k == term - 1:
            principal = balance
        else:
            principal = payment - interest
            if not 0 <= principal < balance:
                return None
        balance -= principal
        rows.append((principal + interest, interest, principal, balance))
    return rows


def _annuity(principal_cents: int, r: Fraction, count: int) -> list:
    """Equal instalments: A = P r / (1 - (1 + r)^-n) rounded half-up, lowered a cent at a
    time while it would repay the loan early; the last row takes what is left."""
    if r == 0:
        exact = Fraction(principal_cents, count)
    else:
        exact = principal_cents * r / (1 - (1 + r) ** -count)
    payment = round_half_up(exact)
    # The exact annuity never repays early, so this ends within a few cents of it; at the
    # latest at A = the first period's interest, where no principal is ever repaid early.
    for _ in range(10_000):
        rows = _instalment_ok(principal_cents, r, count, payment)
        if rows is not None:
            return rows
        payment -= 1
        if payment < 0:
            break
    # Unreachable within the documented range; a last resort that still never overpays:
    # principal never negative, the last instalment takes the rest.
    rows, balance = [], principal_cents
    for k in range(count):
        interest = _interest(balance, r)
        principal = balance if k == count - 1 else min(max(payment - interest, 0), balance)
        balance -= principal
        rows.append((principal + interest, interest, principal, balance))
    return rows


def _principal_step(principal_cents: int, count: int) -> int:
    """Equal principal: P / n rounded half-up, but never so much that the first n - 1
    instalments would repay it all (the last one takes the difference, at least a cent)."""
    step = round_half_up(Fraction(principal_cents, count))
    if count > 1:
        step = min(step, (principal_cents - 1) // (count - 1))
    return max(step, 0)


def _equal_principal(principal_cents: int, r: Fraction, count: int, step=None) -> list:
    """Equal principal: each instalment repays `step` (default _principal_step) plus the
    interest of its opening balance; the last takes whatever principal is left."""
    step = _principal_step(principal_cents, count) if step is None else step
    rows, balance = [], principal_cents
    two_num, den = 2 * r.numerator, r.denominator
    two_den = 2 * den
    last = count - 1
    for k in range(count):
        interest = (two_num * balance + den) // two_den
        principal = balance if k == last or step > balance else step
        balance -= principal
        rows.append((principal + interest, interest, principal, balance))
    return rows


def _schedule(principal_cents: int, r: Fraction, count: int, amortization: str,
              grace: int) -> list:
    """(payment, interest, principal, balance after) for `count` instalments at periodic rate
    r: `grace` interest-only instalments, then the principal amortised over the rest."""
    if amortization not in AMORTIZATIONS:
        raise ReplayError(f"the amortization must be one of {', '.join(AMORTIZATIONS)}, "
                          f"not {amortization!r}")
    grace = max(0, min(grace, count - 1))
    interest = _interest(principal_cents, r)
    rows = [(interest, interest, 0, principal_cents)] * grace
    if amortization == "equal_principal":
        return rows + _equal_principal(principal_cents, r, count - grace)
    return rows + _annuity(principal_cents, r, count - grace)


@functools.lru_cache(maxsize=_SCHEDULE_CACHE_SIZE)
def _cached_schedule(principal_cents, r, count, amortization, grace) -> tuple:
    return tuple(_schedule(principal_cents, r, count, amortization, grace))


def amortize(principal_cents: int, annual_rate_percent, term_months: int, *,
             frequency: str = DEFAULT_FREQUENCY, amortization: str = DEFAULT_AMORTIZATION,
             grace_principal_periods: int = 0) -> list[tuple]:
    """(payment, interest, principal, balance after) in cents for each instalment of a loan of
    `term_months` months (instalment_count of them); see the module docstring for the rules
    and the rounding. Never refuses a contract in range; ReplayError for an unknown frequency
    or amortization."""
    r = periodic_rate(annual_rate_percent, frequency)
    count = instalment_count(term_months, frequency)
    return list(_cached_schedule(int(principal_cents), r, count, amortization,
                                 int(grace_principal_periods)))


def annuity_payment_cents(principal_cents, annual_rate_percent, term_months) -> int:
    return amortize(principal_cents, annual_rate_percent, term_months)[0][0]


def clear_caches() -> None:
    """Forget cached due dates and schedules (say after a holiday calendar changed in place)."""
    for cached in (_anchored_dates, _moved_dates, _cached_schedule):
        cached.cache_clear()


@dataclass(frozen=True)
class Contract:
    """A loan's terms; frozen, so hashable (move_due_date hashes by identity). Defaults are the
    original contract: monthly equal instalments, no grace, due dates not moved."""
    principal_cents: int
    annual_rate_percent: Decimal
    term_months: int
    disbursement_date: dt.date
    day_count: str = DEFAULT_DAY_COUNT
    prepayment: str = DEFAULT_PREPAYMENT
    frequency: str = DEFAULT_FREQUENCY
    amortization: str = DEFAULT_AMORTIZATION
    grace_principal_periods: int = 0
    move_due_date: Callable[[dt.date], dt.date] | None = None

    @property
    def instalments(self) -> int:
        return instalment_count(self.term_months, self.frequency)


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate_contract(contract: Contract) -> None:
    """Raise ReplayError with a sentence naming the first term out of range: principal 1.00 to
    100,000,000.00, rate 0 to 60 % a year, term 1 to 480 months, a known day count,
    prepayment rule, frequency and amortization, 0 <= grace periods < instalments, a
    disbursement date and a callable (or no) move_due_date. The range is issue 9's."""
    c = contract
    if not _whole(c.principal_cents) or not (
            PRINCIPAL_CENTS_MIN <= c.principal_cents <= PRINCIPAL_CENTS_MAX):
        raise ReplayError("the principal must be a whole number of cents from 1.00 to "
                          "100,000,000.00")
    try:
        rate = Decimal(str(c.annual_rate_percent))
        in_range = rate.is_finite() and 0 <= rate <= RATE_PERCENT_MAX
    except (InvalidOperation, ValueError, TypeError):
        in_range = False
    if not in_range:
        raise ReplayError("the interest rate must be from 0 to 60 % a year")
    if not _whole(c.term_months) or not 1 <= c.term_months <= TERM_MONTHS_MAX:
        raise ReplayError("the term must be a whole number of months from 1 to 480")
    if not isinstance(c.disbursement_date, dt.date):
        raise ReplayError("the disbursement date must be a date")
    if c.day_count not in DAY_COUNTS:
        raise ReplayError(f"the day count must be one of {', '.join(DAY_COUNTS)}, "
                          f"not {c.day_count!r}")
    if c.prepayment not in PREPAYMENT_RULES:
        raise ReplayError(f"the prepayment rule must be one of {', '.join(PREPAYMENT_RULES)}, "
                          f"not {c.prepayment!r}")
    count = instalment_count(c.term_months, c.frequency)
    if c.amortization not in AMORTIZATIONS:
        raise ReplayError(f"the amortization must be one of {', '.join(AMORTIZATIONS)}, "
                          f"not {c.amortization!r}")
    if not _whole(c.grace_principal_periods) or not 0 <= c.grace_principal_periods < count:
        raise ReplayError(f"the grace on principal must be a whole number of instalments "
                          f"from 0 to {count - 1} (the loan has {count})")
    if c.move_due_date is not None and not callable(c.move_due_date):
        raise ReplayError("move_due_date must be a function from a date to a date")


@dataclass(slots=True)
class Row:
    n: int
    start: dt.date
    due: dt.date
    payment: int
    interest: int
    principal: int
    balance: int
    interest_paid: int = 0
    principal_paid: int = 0
    fee: int = 0
    fee_paid: int = 0
    fee_date: dt.date | None = None
    # (from date, interest-bearing principal) within the period; the first entry is the start.
    changes: list = field(default_factory=list)

    @property
    def opening(self) -> int:
        return self.changes[0][1]

    def bearing(self, day) -> int:
        value = self.changes[0][1]
        for when, amount in self.changes:
            if when <= day:
                value = amount
        return value


@dataclass
class Payment:
    """A repayment event: value date, ledger transaction id (orders a day's payments), amount,
    and the prepayment rule chosen for it (None: the contract's)."""
    value_date: dt.date
    transaction_id: int
    amount_cents: int
    prepayment: str | None = None


@dataclass
class Split:
    transaction_id: int
    fee_cents: int = 0
    interest_cents: int = 0
    principal_cents: int = 0
    prepayment_cents: int = 0
    # Interest paid ahead on the coming instalment that this payment's prepayment (or payoff)
    # made unearned: it becomes principal. It is inside interest_cents (negatively) and
    # principal_cents, so that the totals are the loan's; the bank shows the payment without it
    # (its interest part never negative) and posts it as a reallocation (loans.py).
    reapplied_cents: int = 0

    @property
    def shown_interest_cents(self) -> int:
        """The payment's own interest part, never negative."""
        return self.interest_cents + self.reapplied_cents

    @property
    def shown_principal_cents(self) -> int:
        return self.principal_cents - self.reapplied_cents


def _due_of(row) -> dt.date:
    return row.due


def _settled(row) -> bool:
    return (row.interest_paid >= row.interest and row.principal_paid >= row.principal
            and row.fee_paid >= row.fee)


class Loan:
    """The replayed state of one loan (rows = the schedule with what is paid)."""

    def __init__(self, contract: Contract, fees: dict | None = None):
        validate_contract(contract)
        c = self.c = contract
        self.r = periodic_rate(c.annual_rate_percent, c.frequency)
        self.rows: list[Row] = []
        dates = due_dates(c.disbursement_date, c.term_months, c.frequency, c.move_due_date)
        start = c.disbursement_date
        opening = c.principal_cents
        schedule = _cached_schedule(c.principal_cents, self.r, len(dates), c.amortization,
                                    c.grace_principal_periods)
        for n, (due, (pay, interest, principal, balance)) in enumerate(
                zip(dates, schedule), start=1):
            self.rows.append(Row(n, start, due, pay, interest, principal, balance,
                                 changes=[(start, opening)]))
            start, opening = due, balance
        # Rows before this index are settled (a hint that keeps a long replay linear; only a
        # fee charged afterwards can unsettle a row, and charge_fee resets it).
        self._settled_upto = 0
        self.splits: list[Split] = []
        self.last_value_date = contract.disbursement_date
        for n, (cents, when) in (fees or {}).items():
            self.charge_fee(n, cents, when)

    # -- figures -----------------------------------------------------------------------------
    def charge_fee(self, n, cents, when):
        for row in self.rows:
            if row.n == n:
                row.fee, row.fee_date = int(cents), when
                self._settled_upto = 0
                return
        raise ReplayError(f"no instalment {n} to charge a fee on")

    @property
    def principal_outstanding(self) -> int:
        return sum(r.principal - r.principal_paid for r in self.rows)

    def owes_nothing(self, as_of) -> bool:
        return self.principal_outstanding == 0 and all(
            r.fee_paid >= r.fee and (r.interest_paid >= r.interest or r.due > as_of)
            for r in self.rows)

    def _coming(self, day) -> Row | None:
        # Due dates strictly increase, so the first due after `day` is found by bisection.
        index = bisect.bisect_right(self.rows, day, key=_due_of)
        return self.rows[index] if index < len(self.rows) else None

    def _accrued(self, row: Row, day) -> Fraction:
        """Exact interest of `row`'s period from its start to `day` (exclusive)."""
        total, points = Fraction(0), row.changes + [(day, None)]
        for (a, amount), (b, _) in zip(points, points[1:]):
            a, b = max(a, row.start), min(b, day)
            if b > a:
                total += amount * self.r * day_share(self.c.day_count, row.start, row.due, a, b)
        return total

    def _rest_share(self, row, day) -> Fraction:
        return self.r * day_share(self.c.day_count, row.start, row.due, day, row.due)

    def accrued_interest(self, day) -> int:
        """Interest earned and unpaid by the end of `day - 1`: unpaid interest of instalments
        due before `day` plus the coming instalment's interest accrued to `day`."""
        due = sum(r.interest - r.interest_paid for r in self.rows if r.due <= day)
        row = self._coming(day)
        if row is None:
            return due
        return due + round_half_up(self._accrued(row, day)) - row.interest_paid

    def payoff(self, day) -> dict:
        """Cents that close the loan on value date `day` (see the module docstring)."""
        fees = sum(r.fee - r.fee_paid for r in self.rows
                   if r.fee_date is not None and r.fee_date < day)
        interest = self.accrued_interest(day)
        principal = self.principal_outstanding
        return {"principal_cents": principal, "interest_cents": interest, "fees_cents": fees,
                "total_cents": principal + interest + fees}

    # -- events ------------------------------------------------------------------------------
    def pay(self, event: Payment) -> Split:
        day, left = event.value_date, int(event.amount_cents)
        if day < self.c.disbursement_date:
            raise ReplayError("a payment cannot be dated before the disbursement")
        if left <= 0:
            raise ReplayError("a payment must be positive")
        split = Split(event.transaction_id)
        rows = self.rows
        # Rows before `first` are settled (their interest, principal and fees are paid); the
        # scan starts there so that a long loan's replay stays linear.
        first = min(self._settled_upto, len(rows))
        while first < len(rows) and _settled(rows[first]):
            first += 1
        self._settled_upto = first
        # Walked by index, not by slice: a slice would copy the rest of a long schedule on
        # every payment.
        for index in range(first, len(rows)):
            row = rows[index]
            if row.due > day:
                break
            if row.fee_date is not None and row.fee_date < day and row.fee > row.fee_paid:
                take = min(left, row.fee - row.fee_paid)
                row.fee_paid += take
                split.fee_cents += take
                left -= take
        due = []
        for index in range(first, len(rows)):
            row = rows[index]
            if row.due > day:
                break
            due.append(row)
        for row in due:
            take = min(left, row.interest - row.interest_paid)
            if take > 0:
                row.interest_paid += take
                split.interest_cents += take
                left -= take
        for row in due:
            take = min(left, row.principal - row.principal_paid)
            if take > 0:
                row.principal_paid += take
                split.principal_cents += take
                left -= take
        if left:
            row = self._coming(day)
            if row is None:
                raise ReplayError("more than the payoff")
            self._pay_coming(row, day, left, split, event.prepayment or self.c.prepayment)
        # A late fee is charged at the end of day of its fee date: an instalment this payment
        # settles on or before that day was never late, so its unpaid fee is dropped (the
        # corrected history posted from scratch would not have charged it). Only the due and
        # the coming instalments can have been settled by this payment.
        rows = self.rows
        for index in range(first, len(rows)):
            row = rows[index]
            if (row.fee and not row.fee_paid and row.fee_date is not None
                    and row.fee_date >= day and row.interest_paid >= row.interest
                    and row.principal_paid >= row.principal):
                row.fee, row.fee_date = 0, None
            if row.due > day:
                break
        self.splits.append(split)
        self.last_value_date = max(self.last_value_date, day)
        return split

    def _pay_coming(self, row: Row, day, left, split, rule):
        accrued = self._accrued(row, day)
        # Later rows are never paid ahead, so their principal is the row's balance after it.
        rest = row.principal - row.principal_paid + row.balance
        payoff_rest = round_half_up(accrued) - row.interest_paid + rest
        if left > payoff_rest:
            raise ReplayError("more than the payoff")
        if left == payoff_rest:
            # Payoff: interest to `day`, every cent of principal; later instalments dropped.
            interest = round_half_up(accrued)
            split.interest_cents += interest - row.interest_paid
            split.reapplied_cents += max(0, row.interest_paid - interest)
            split.principal_cents += rest
            split.prepayment_cents += rest - (row.principal - row.principal_paid)
            row.interest = row.interest_paid = interest
            row.principal = row.principal_paid = row.principal_paid + rest
            row.payment = row.interest + row.principal
            row.balance = 0
            row.changes.append((day, 0))
            self.rows = [r for r in self.rows if r.n <= row.n]
            return
        bearing = row.bearing(day)
        remaining = row.interest - row.interest_paid + row.principal - row.principal_paid
        if left <= remaining:
            take = min(left, row.interest - row.interest_paid)
            row.interest_paid += take
            row.principal_paid += left - take
            split.interest_cents += take
            split.principal_cents += left - take
            return
        # Prepayment P: left = (new interest - paid) + unpaid principal of the row + P, where
        # the new interest = accrued + (bearing - P) x the rest of the period's rate.
        share = self._rest_share(row, day)
        unpaid_principal = row.principal - row.principal_paid
        exact = (left - (accrued + bearing * share - row.interest_paid) - unpaid_principal) / (
            1 - share)
        prepay = int(exact.__floor__())
        for _ in range(4):
            interest = round_half_up(accrued + (bearing - prepay) * share)
            again = left - (interest - row.interest_paid) - unpaid_principal
            if again == prepay:
                break
            prepay = again
        interest = left - prepay - unpaid_principal + row.interest_paid
        split.interest_cents += interest - row.interest_paid
        split.reapplied_cents += max(0, row.interest_paid - interest)
        split.principal_cents += unpaid_principal + prepay
        split.prepayment_cents += prepay
        row.interest = row.interest_paid = interest
        row.principal_paid = row.principal
        row.payment = row.interest + row.principal
        row.changes.append((day, bearing - prepay))
        row.balance = bearing - prepay - row.principal
        self._reamortize(row, rule)

    def _reamortize(self, row: Row, rule):
        # Rows are numbered 1, 2, ... in order (only whole tails are ever dropped).
        index = row.n - 1
        if self.rows[index] is not row:
            index = self.rows.index(row)
        later = self.rows[index + 1:]
        balance = row.balance
        if balance <= 0 or not later:
            self.rows = self.rows[:index + 1]
            if later == [] and balance > 0:
                row.principal += balance  # cannot happen: the payoff branch takes it
            return
        # Instalments still in the grace on principal stay interest-only under either rule.
        grace = self.c.grace_principal_periods
        grace_left = max(0, min(grace - row.n, len(later)))
        equal_principal = self.c.amortization == "equal_principal"
        if rule == "shorten_term":
            # Keep the instalment (equal instalments) or the principal per instalment (equal
            # principal) of the first amortising instalment still to come; drop the surplus.
            amortising = later[grace_left]
            payment, step = amortising.payment, amortising.principal
            kept = []
            two_num, den = 2 * self.r.numerator, self.r.denominator
            two_den = 2 * den
            final = later[-1]
            for r in later:
                interest = (two_num * balance + den) // two_den
                if r.n <= grace:
                    principal = 0
                else:
                    principal = step if equal_principal else payment - interest
                    if principal < 0:
                        principal = 0
                    if principal > balance:
                        principal = balance
                if r is final or principal == balance:
                    principal = balance
                r.interest, r.principal = interest, principal
                r.payment = interest + principal
                r.changes = [(r.start, balance)]
                balance -= principal
                r.balance = balance
                kept.append(r)
                if balance == 0:
                    break
            self.rows = self.rows[:index + 1] + kept
            return
        if rule != "reduce_instalment":
            raise ReplayError(f"unknown prepayment rule {rule}")
        # Not cached: a re-amortised balance is seldom seen twice, and long schedules are big.
        for r, (pay, interest, principal, after) in zip(
                later, _schedule(balance, self.r, len(later), self.c.amortization, grace_left)):
            r.payment, r.interest, r.principal = pay, interest, principal
            r.changes = [(r.start, balance)]
            r.balance = balance = after


def replay(contract: Contract, payments, fees=None) -> Loan:
    """The loan after `payments` (Payment events, applied in value-date then transaction
    order) and `fees` ({instalment n: (cents, date charged)})."""
    loan = Loan(contract, fees)
    for event in sorted(payments, key=lambda p: (p.value_date, p.transaction_id)):
        loan.pay(event)
    return loan
