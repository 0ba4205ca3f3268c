"""Issue 9: loan products differ: repayment frequency, amortization, grace on principal and due
dates moved off non-working days (bankms.domain.loan_replay.Contract).

Expected values are computed here independently of bankms.domain.loan_replay: annuity instalments with
numpy-financial at the periodic rate (annual / 12, / 26, / 52), equal-principal and grace
schedules by hand with fractions.Fraction, and exact figures written out in the comments.
"""
from __future__ import annotations

import datetime as dt
from decimal import Decimal as D
from fractions import Fraction as F

import numpy_financial as npf
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bankms.domain.loan_replay import (
    AMORTIZATIONS,
    FREQUENCIES,
    Contract,
    Loan,
    Payment,
    ReplayError,
    amortize,
    due_dates,
    instalment_count,
    replay,
    validate_contract,
)

DAY = dt.timedelta(days=1)
PER_YEAR = {"monthly": 12, "biweekly": 26, "weekly": 52}


def cents(value) -> int:
    """Half-up to the cent, written out again so as not to reuse the module's helper."""
    value = F(value)
    return int(value + F(1, 2)) if value >= 0 else -int(-value + F(1, 2))


def rate_of(annual_percent, frequency) -> F:
    return F(D(str(annual_percent))) / 100 / PER_YEAR[frequency]


def next_working_day(day: dt.date) -> dt.date:
    """Saturday and Sunday move to Monday (a product that moves due dates off weekends)."""
    while day.weekday() >= 5:
        day += DAY
    return day


HOLIDAYS = {dt.date(2027, 3, 17), dt.date(2027, 3, 18)}


def next_working_day_or_holiday(day: dt.date) -> dt.date:
    while day.weekday() >= 5 or day in HOLIDAYS:
        day += DAY
    return day


def by_hand(principal, r, count, *, grace=0, kind="equal_instalments", payment=None):
    """(payment, interest, principal, balance after) rows: `grace` interest-only rows, then
    equal instalments of `payment` or equal principal parts of P / (count - grace) rounded
    half-up (below P / (n - 1) so that the last keeps a cent); interest = opening balance x r
    rounded half-up; the last row takes what is left."""
    rows, balance, amortising = [], principal, count - grace
    step = cents(F(principal, amortising))
    if amortising > 1:
        step = min(step, (principal - 1) // (amortising - 1))
    for k in range(count):
        interest = cents(balance * r)
        if k < grace:
            part = 0
        elif k == count - 1:
            part = balance
        elif kind == "equal_principal":
            part = step
        else:
            part = payment - interest
        balance -= part
        rows.append((part + interest, interest, part, balance))
    return rows


def npf_payment_cents(principal, r, count) -> int:
    """numpy-financial's annuity payment, to the cent (half-up on the float's decimal)."""
    exact = principal / 100 / count if r == 0 else float(
        npf.pmt(float(r), count, -principal / 100))
    return int((D(repr(exact)) * 100).quantize(D(1), rounding="ROUND_HALF_UP"))


# -- how many instalments ----------------------------------------------------------------------
@pytest.mark.parametrize("term, frequency, expected", [
    (12, "monthly", 12),
    (1, "monthly", 1),
    (12, "weekly", 52),
    (12, "biweekly", 26),
    (1, "weekly", 4),        # 52 / 12 = 4.33
    (1, "biweekly", 2),      # 26 / 12 = 2.17
    (3, "biweekly", 7),      # 6.5, half up
    (6, "biweekly", 13),
    (7, "weekly", 30),       # 30.33
    (8, "weekly", 35),       # 34.67
    (480, "weekly", 2080),
    (480, "biweekly", 1040),
])
def test_instalment_count(term, frequency, expected):
    assert instalment_count(term, frequency) == expected


# -- due dates by frequency, anchored on the disbursement day ----------------------------------
@pytest.mark.parametrize("anchor, term, frequency, first_three, last, count", [
    ("2027-01-31", 12, "weekly", ["2027-02-07", "2027-02-14", "2027-02-21"], "2028-01-30", 52),
    ("2027-01-31", 12, "biweekly", ["2027-02-14", "2027-02-28", "2027-03-14"], "2028-01-30",
     26),
    ("2027-01-31", 3, "monthly", ["2027-02-28", "2027-03-31", "2027-04-30"], "2027-04-30", 3),
    ("2028-02-22", 1, "weekly", ["2028-02-29", "2028-03-07", "2028-03-14"], "2028-03-21", 4),
])
def test_due_dates_by_frequency(anchor, term, frequency, first_three, last, count):
    got = due_dates(dt.date.fromisoformat(anchor), term, frequency)
    assert [d.isoformat() for d in got[:3]] == first_three
    assert (got[-1].isoformat(), len(got)) == (last, count)
    loan = Loan(Contract(1_000_000, D("12"), term, dt.date.fromisoformat(anchor),
                         frequency=frequency))
    assert [r.due for r in loan.rows] == got


# -- schedules: one row per contract, expected values computed here ------------------------------
@pytest.mark.parametrize("principal, rate, term, frequency, kind, grace, count, first, last", [
    # The golden case: 888.49 x 11 + 888.47.
    (1_000_000, "12", 12, "monthly", "equal_instalments", 0, 12, 88849, 88847),
    # Weekly: r = 12 / 5200; numpy-financial's payment is 204.30.
    (1_000_000, "12", 12, "weekly", "equal_instalments", 0, 52, 20430, None),
    # Every two weeks: r = 12 / 2600; 409.04.
    (1_000_000, "12", 12, "biweekly", "equal_instalments", 0, 26, 40904, None),
    (1_000_000, "0", 12, "weekly", "equal_instalments", 0, 52, 19231, 19219),
    (30_000_000, "6.5", 360, "weekly", "equal_instalments", 0, 1560, None, None),
    # Equal principal: 1,000.00 a month + 1 % of the balance: 1,120.00 first, 1,010.00 last.
    (1_200_000, "12", 12, "monthly", "equal_principal", 0, 12, 112000, 101000),
    # Weekly equal principal: 10,000 / 52 = 192.31 a week, the last 192.19.
    (1_000_000, "12", 12, "weekly", "equal_principal", 0, 52, 19231 + 2308, None),
    (1_000_000, "7.25", 5, "biweekly", "equal_principal", 0, 11, None, None),
    # Grace 3: 100.00 interest only three times, then pmt(1 %, 9, 10,000) = 1,167.40.
    (1_000_000, "12", 12, "monthly", "equal_instalments", 3, 12, 10000, None),
    # Grace 3 on equal principal: 120.00 x 3, then 12,000 / 9 = 1,333.33 + 120.00.
    (1_200_000, "12", 12, "monthly", "equal_principal", 3, 12, 12000, None),
    (1_000_000, "12", 12, "weekly", "equal_instalments", 4, 52, 2308, None),
])
def test_schedule(principal, rate, term, frequency, kind, grace, count, first, last):
    r = rate_of(rate, frequency)
    rows = amortize(principal, D(rate), term, frequency=frequency, amortization=kind,
                    grace_principal_periods=grace)
    assert len(rows) == count
    payment = None
    if kind == "equal_instalments":
        payment = npf_payment_cents(principal, r, count - grace)
    assert rows == by_hand(principal, r, count, grace=grace, kind=kind, payment=payment)
    if first is not None:
        assert rows[0][0] == first
    if last is not None:
        assert rows[-1][0] == last
    assert sum(row[2] for row in rows) == principal


def test_equal_principal_golden_figures():
    rows = amortize(1_200_000, D("12"), 12, amortization="equal_principal")
    assert [row[2] for row in rows] == [100_000] * 12
    # Interest 120 + 110 + ... + 10 = 780.00; payments fall by 10.00 a month.
    assert sum(row[1] for row in rows) == 78_000
    assert [row[0] for row in rows] == [112_000 - 1_000 * k for k in range(12)]


def test_grace_then_annuity_figures():
    rows = amortize(1_000_000, D("12"), 12, grace_principal_periods=3)
    assert rows[:3] == [(10_000, 10_000, 0, 1_000_000)] * 3
    assert rows[3][0] == 116_740 and all(row[0] == 116_740 for row in rows[3:-1])
    # A loan paid on its due dates pays the scheduled interest: 300.00 + the 9-month annuity's.
    loan = Loan(Contract(1_000_000, D("12"), 12, dt.date(2027, 1, 31),
                         grace_principal_periods=3))
    paid = replay(loan.c, [Payment(r.due, r.n, r.payment) for r in loan.rows])
    assert sum(s.interest_cents for s in paid.splits) == sum(row[1] for row in rows)
    assert paid.principal_outstanding == 0


# -- due dates moved off non-working days --------------------------------------------------------
def test_a_saturday_due_date_moves_to_monday_and_interest_is_unchanged():
    # Disbursed Wed 2027-03-10: the first anchor 2027-04-10 is a Saturday, payable Mon 04-12;
    # the second anchor Mon 2027-05-10 is not shifted by the move (no drift).
    start = dt.date(2027, 3, 10)
    moved = Contract(1_000_000, D("12"), 12, start, move_due_date=next_working_day)
    loan = Loan(moved)
    assert [r.due for r in loan.rows[:3]] == [dt.date(2027, 4, 12), dt.date(2027, 5, 10),
                                              dt.date(2027, 6, 10)]
    # The schedule is the golden one: each period's interest is the balance x 1 %.
    assert [(r.payment, r.interest) for r in loan.rows] == [
        (row[0], row[1]) for row in amortize(1_000_000, D("12"), 12)]
    # Paid on the moved date: exactly the scheduled 100.00 of interest and 788.49 principal.
    paid = replay(moved, [Payment(dt.date(2027, 4, 12), 1, 88849)])
    split = paid.splits[0]
    assert (split.interest_cents, split.principal_cents, split.prepayment_cents) == (
        10_000, 78_849, 0)
    # On the Saturday and Sunday nothing is due yet (no arrears, no late fee before Monday),
    # and a payoff on the Saturday pays 31 of the period's 33 days: 100 x 31/33 = 93.94.
    assert not [r for r in loan.rows if r.due <= dt.date(2027, 4, 11)]
    assert loan.payoff(dt.date(2027, 4, 10))["interest_cents"] == cents(F(10_000 * 31, 33))
    # The second period is 28 days (Mon 04-12 to Mon 05-10) and still earns 1 % of 9,211.51.
    assert paid.rows[1].interest == cents(F(921_151, 100))
    assert paid.payoff(dt.date(2027, 5, 1))["interest_cents"] == cents(
        F(921_151, 100) * 19 / 28)


def test_moved_weekly_dates_do_not_drift():
    # Weekly from Wed 2027-03-10: the anchor Wed 03-17 is a holiday and so is Thu 03-18, so it
    # is payable Fri 03-19; the next anchor stays Wed 03-24.
    got = due_dates(dt.date(2027, 3, 10), 2, "weekly", next_working_day_or_holiday)
    assert got[:3] == [dt.date(2027, 3, 19), dt.date(2027, 3, 24), dt.date(2027, 3, 31)]
    assert len(got) == 9 and got[-1] == dt.date(2027, 5, 12)


def test_a_move_that_goes_backwards_is_refused():
    def back_a_month(day):
        return day - dt.timedelta(days=40)

    with pytest.raises(ReplayError, match="not after the previous due date"):
        Loan(Contract(1_000_000, D("12"), 12, dt.date(2027, 3, 10), move_due_date=back_a_month))


def test_contracts_are_hashable_and_the_caches_tell_contracts_apart():
    start = dt.date(2027, 3, 10)
    plain = Contract(1_000_000, D("12"), 12, start)
    moved = Contract(1_000_000, D("12"), 12, start, move_due_date=next_working_day)
    assert plain != moved and len({plain, moved}) == 2
    assert hash(plain) == hash(Contract(1_000_000, D("12"), 12, start))
    assert Loan(plain).rows[0].due == dt.date(2027, 4, 10)
    assert Loan(moved).rows[0].due == dt.date(2027, 4, 12)
    assert Loan(plain).rows[0].due == dt.date(2027, 4, 10)
    # The same money on another frequency or amortization is another schedule.
    assert len(amortize(1_000_000, D("12"), 12)) == 12
    assert len(amortize(1_000_000, D("12"), 12, frequency="weekly")) == 52
    assert amortize(1_000_000, D("12"), 12)[0][0] == 88849
    assert amortize(1_000_000, D("12"), 12, amortization="equal_principal")[0][0] == 83333 + 10000


# -- prepayments under both rules, both amortizations -----------------------------------------
def prepayment_by_search(amount, days, period_days, opening, due_principal, r):
    """The prepayment P that `amount` paid on day `days` of the period makes, by trying every
    P: amount = interest(P) + the instalment's principal + P, interest(P) = r x (opening x days
    + (opening - P) x the rest) / period_days, rounded half-up.

    paid(P) = interest(P) + due_principal + P never decreases as P grows (one more cent of P
    lowers the unrounded interest by r x rest / period_days, under a cent, so the rounded
    interest drops by 0 or 1), so a bisection finds the smallest P that fits, the same P as
    trying each in turn from 0 (which took half a million Fraction sums a case)."""
    def interest_of(p):
        return cents(r * F(opening * days + (opening - p) * (period_days - days), period_days))

    assert r * (period_days - days) < period_days, "paid(P) would not be monotonic"
    lo, hi = 0, amount + 1
    while lo < hi:
        mid = (lo + hi) // 2
        if interest_of(mid) + due_principal + mid < amount:
            lo = mid + 1
        else:
            hi = mid
    if lo <= amount and interest_of(lo) + due_principal + lo == amount:
        return lo, interest_of(lo)
    raise AssertionError("no prepayment fits")


@pytest.mark.parametrize("principal, kind, grace, rule, amount", [
    (1_200_000, "equal_principal", 0, "reduce_instalment", 500_000),
    (1_200_000, "equal_principal", 0, "shorten_term", 500_000),
    (1_200_000, "equal_principal", 3, "reduce_instalment", 300_000),
    (1_200_000, "equal_principal", 3, "shorten_term", 300_000),
    (1_000_000, "equal_instalments", 0, "reduce_instalment", 500_000),
    (1_000_000, "equal_instalments", 0, "shorten_term", 500_000),
    (1_000_000, "equal_instalments", 3, "reduce_instalment", 300_000),
    (1_000_000, "equal_instalments", 3, "shorten_term", 300_000),
])
def test_prepayment_on_day_20(principal, kind, grace, rule, amount):
    # 2027-04-01 -> 2027-05-01 is a 30-day period; day 20 is 2027-04-21; r = 1 % a month.
    r = F(1, 100)
    c = Contract(principal, D("12"), 12, dt.date(2027, 4, 1), amortization=kind,
                 grace_principal_periods=grace, prepayment=rule)
    schedule = amortize(principal, D("12"), 12, amortization=kind,
                        grace_principal_periods=grace)
    due_principal = schedule[0][2]
    loan = replay(c, [Payment(dt.date(2027, 4, 21), 1, amount)])
    p, interest = prepayment_by_search(amount, 20, 30, principal, due_principal, r)
    split = loan.splits[0]
    assert (split.interest_cents, split.prepayment_cents) == (interest, p)
    left = principal - due_principal - p
    assert loan.principal_outstanding == left
    later = [row for row in loan.rows[1:]]
    assert all(row.principal >= 0 for row in later) and later[-1].balance == 0
    grace_left = max(grace - 1, 0)
    assert all(row.principal == 0 for row in later[:grace_left])
    got = [(row.payment, row.interest, row.principal, row.balance) for row in later]
    if rule == "reduce_instalment":
        payment = npf_payment_cents(left, r, 11 - grace_left)
        assert got == by_hand(left, r, 11, grace=grace_left, kind=kind, payment=payment)
    elif kind == "equal_principal":
        # The principal per instalment stays (1,000.00, or 1,333.33 after grace); fewer of them.
        step = schedule[grace][2]
        amortising = -(-left // step)
        assert len(later) == grace_left + amortising < 11
        assert [row.principal for row in later[grace_left:-1]] == [step] * (amortising - 1)
    else:
        # The instalment stays (888.49, or 1,167.40 after grace); fewer of them.
        kept = schedule[grace][0]
        assert len(later) < 11
        assert all(row.payment == kept for row in later[grace_left:-1])
        assert later[-1].payment <= kept
    # The prepaid principal is not an instalment's: the instalments now repay the rest.
    assert sum(row.principal for row in loan.rows) == principal - p


# -- extremes -----------------------------------------------------------------------------------
@pytest.mark.parametrize("principal, rate, term, frequency, kind", [
    (100, "0", 480, "weekly", "equal_instalments"),
    (100, "0", 480, "weekly", "equal_principal"),
    (100, "60", 480, "weekly", "equal_instalments"),
    (100, "60", 480, "weekly", "equal_principal"),
    (10_000_000_000, "60", 480, "weekly", "equal_instalments"),
    (10_000_000_000, "60", 480, "weekly", "equal_principal"),
    (10_000_000_000, "60", 1, "weekly", "equal_instalments"),
    (10_000_000_000, "60", 480, "monthly", "equal_principal"),
    (178_064, "19.63", 335, "biweekly", "equal_instalments"),
])
def test_extreme_contracts_have_a_schedule_and_pay_off(principal, rate, term, frequency, kind):
    c = Contract(principal, D(rate), term, dt.date(2027, 1, 31), frequency=frequency,
                 amortization=kind)
    loan = Loan(c)
    count = instalment_count(term, frequency)
    assert len(loan.rows) == count
    assert all(row.principal >= 0 and row.interest >= 0 for row in loan.rows)
    assert all(row.balance > 0 for row in loan.rows[:-1]) and loan.rows[-1].balance == 0
    assert sum(row.principal for row in loan.rows) == principal
    r = rate_of(rate, frequency)
    assert [row.interest for row in loan.rows] == [cents(row.opening * r) for row in loan.rows]
    # (1.00 at 0 % over 2,080 weeks has instalments of 0.00: nothing to pay then.)
    paid = replay(c, [Payment(row.due, row.n, row.payment) for row in loan.rows if row.payment])
    assert paid.owes_nothing(loan.rows[-1].due) and paid.principal_outstanding == 0


# -- bad contracts ------------------------------------------------------------------------------
GOOD = dict(principal_cents=1_000_000, annual_rate_percent=D("12"), term_months=12,
            disbursement_date=dt.date(2027, 1, 31))


@pytest.mark.parametrize("change, message", [
    ({"principal_cents": 99}, "principal"),
    ({"principal_cents": 10_000_000_001}, "principal"),
    ({"principal_cents": 1000.5}, "principal"),
    ({"annual_rate_percent": D("-0.01")}, "interest rate"),
    ({"annual_rate_percent": D("60.01")}, "interest rate"),
    ({"annual_rate_percent": "NaN"}, "interest rate"),
    ({"annual_rate_percent": "twelve"}, "interest rate"),
    ({"term_months": 0}, "term"),
    ({"term_months": 481}, "term"),
    ({"disbursement_date": "2027-01-31"}, "disbursement date"),
    ({"day_count": "act/360"}, "day count"),
    ({"prepayment": "skip"}, "prepayment rule"),
    ({"frequency": "daily"}, "frequency"),
    ({"amortization": "balloon"}, "amortization"),
    ({"grace_principal_periods": 12}, "grace"),
    ({"grace_principal_periods": 52, "frequency": "weekly"}, "grace"),
    ({"grace_principal_periods": -1}, "grace"),
    ({"move_due_date": "monday"}, "move_due_date"),
])
def test_bad_contracts_are_refused(change, message):
    c = Contract(**{**GOOD, **change})
    with pytest.raises(ReplayError, match=message):
        validate_contract(c)
    with pytest.raises(ReplayError, match=message):
        Loan(c)


def test_edges_of_the_range_are_accepted():
    for change in ({"principal_cents": 100}, {"principal_cents": 10_000_000_000},
                   {"annual_rate_percent": D("60")}, {"annual_rate_percent": D("0")},
                   {"term_months": 480}, {"grace_principal_periods": 51, "frequency": "weekly"}):
        validate_contract(Contract(**{**GOOD, **change}))
    with pytest.raises(ReplayError, match="frequency"):
        amortize(1_000_000, D("12"), 12, frequency="daily")


# -- properties ---------------------------------------------------------------------------------
@st.composite
def contracts(draw):
    frequency = draw(st.sampled_from(FREQUENCIES))
    term = draw(st.integers(1, 480))
    count = instalment_count(term, frequency)
    return Contract(
        draw(st.integers(100, 10_000_000_000)), D(draw(st.integers(0, 6000))) / 100, term,
        dt.date(2027, 1, 1) + draw(st.integers(0, 730)) * DAY,
        day_count=draw(st.sampled_from(("actual/365", "actual/actual", "30/360"))),
        prepayment=draw(st.sampled_from(("reduce_instalment", "shorten_term"))),
        frequency=frequency, amortization=draw(st.sampled_from(AMORTIZATIONS)),
        grace_principal_periods=draw(st.integers(0, min(count - 1, 24))),
        move_due_date=draw(st.sampled_from((None, next_working_day))))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(contracts())
def test_any_contract_in_range_has_a_schedule_that_never_overpays(c):
    loan = Loan(c)
    rows = loan.rows
    assert len(rows) == instalment_count(c.term_months, c.frequency)
    assert sum(row.principal for row in rows) == c.principal_cents
    assert all(row.principal >= 0 and row.payment == row.interest + row.principal
               for row in rows)
    # Never overpays: every instalment but the last leaves principal owing.
    assert all(row.balance > 0 for row in rows[:-1]) and rows[-1].balance == 0
    assert all(row.principal == 0 for row in rows[:c.grace_principal_periods])
    body = rows[c.grace_principal_periods:-1]
    if c.amortization == "equal_instalments":
        assert len({row.payment for row in body}) <= 1
    else:
        assert len({row.principal for row in body}) <= 1
    assert all(a.due < b.due for a, b in zip(rows, rows[1:]))
    assert rows[0].due > c.disbursement_date
    if c.move_due_date is not None:
        assert all(row.due.weekday() < 5 for row in rows)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(c=contracts(),
       steps=st.lists(st.tuples(st.integers(0, 45), st.integers(1, 1000),
                                st.sampled_from((None, "reduce_instalment", "shorten_term"))),
                      max_size=12),
       last_days=st.integers(0, 400))
@pytest.mark.slow
def test_random_histories_end_owing_nothing_after_the_payoff(c, steps, last_days):
    loan, events, day = Loan(c), [], c.disbursement_date
    for tid, (days, per_mille, rule) in enumerate(steps, start=1):
        day += days * DAY
        total = loan.payoff(day)["total_cents"]
        amount = max(1, total * per_mille // 1000)
        if total == 0:
            break
        event = Payment(day, tid, amount, rule)
        split = loan.pay(event)
        events.append(event)
        # (The interest part may be below zero: a prepayment after the coming instalment's
        # interest was paid ahead lowers that interest, and the surplus goes to principal.)
        assert min(split.fee_cents, split.principal_cents, split.prepayment_cents) >= 0
        assert split.interest_cents + split.principal_cents + split.fee_cents == amount
        assert all(row.principal >= 0 and row.balance >= 0 for row in loan.rows)
    # The same events replayed from scratch give the same loan.
    again = replay(c, events)
    assert [(r.due, r.payment, r.interest, r.principal, r.interest_paid, r.principal_paid)
            for r in again.rows] == [
        (r.due, r.payment, r.interest, r.principal, r.interest_paid, r.principal_paid)
        for r in loan.rows]
    day += last_days * DAY
    quote = loan.payoff(day)
    if quote["total_cents"]:
        with pytest.raises(ReplayError, match="payoff"):
            replay(c, [*events, Payment(day, 10_000, quote["total_cents"] + 1)])
        loan.pay(Payment(day, 10_000, quote["total_cents"]))
    assert loan.principal_outstanding == 0
    assert loan.payoff(day)["total_cents"] == 0
    assert loan.owes_nothing(day)
