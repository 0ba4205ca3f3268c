"""The demo bank's loans: applications in every state, and the whole history of those paid out.

demo.py's builder uses this module while it generates its monthly windows, so that the money of
the loans (disbursements, instalments collected at end of day, early payoffs, write-offs) moves
the same modelled balances as everything else and no account is ever below its overdraft limit.

About 8 % of the customers get a loan. Each loan gets a scenario up front and dates that fit it:
an application waiting for review, an approval not paid out yet, a rejection (with a reason), a
current loan, a loan 1-30, 31-60, 61-90 or over 90 days past due (with late fees), a loan paid
off (early, from the borrower's checking account, or by its last instalment) and a loan written
off (with a reason). Alice has a current car loan with several instalments collected, Bob an
application waiting for the manager, Carol a loan she paid off early. Scenarios the period has
no room for (over 90 days past due in a two-month demo) are left out. Every date lies within
the demo period and before the business date.

Why the history is the one end of day would have written. End of day (eod.py) collects from the
loan's linked account, every day, whatever the loan owes and the account holds (never into the
overdraft). Two kinds of borrowers make that checkable without replaying every day:

* Borrowers in good standing are salaried customers whose salary, less their overdraft limit
  and standing order, covers the instalment with a margin. In each month with a due date their
  budget (see demo.py) reserves the instalment, and until the due date they may not spend into
  the reserved part; so the account holds the instalment when end of day collects it in full at
  23:50 of the due date. Between due dates such a loan owes nothing, so there is nothing to
  collect. An instalment due on the business date itself is reserved the same way, so the
  first real end of day collects it in full.
* Borrowers in trouble lose their income on the first of the month of their first missed
  instalment: the salary stops, the positive balance leaves in the morning, and no money comes
  in from then on (no transfers from friends or savings). End of day finds nothing to collect
  on any later day; unpaid instalments age and draw their product's late fee once, the
  product's grace days after their due date, as end of day charges it.

The builder checks both facts against the generated balances (the account held the instalment,
or nothing, at 23:50 of each due date) and stops with a generator bug otherwise. The loan rows,
schedules (from loans.amortize) and payment splits are derived from the same plan, and
loans.age_arrears stores days past due and the bucket as of the business date, so
`Loans.verify()` holds. The demo does not claim that end of day ran on past days (eod_runs
stays empty, dormancy is left for the first real run); it only fills in interest_accruals for
the days of the running month, which the demo does not pay itself, so that the first month end
pays a whole month.
"""
from __future__ import annotations

import datetime as dt
import functools
import math
from decimal import Decimal

import numpy as np
import pandas as pd

from ..domain import loan_replay
from .codes import (DEPOSIT, LOAN_DISBURSEMENT, LOAN_REPAYMENT, LOAN_WRITE_OFF, N_DEMO,
                         PROFESSIONAL, RETIREE, WITHDRAWAL)
from ..domain.errors import InvalidState
from ..services.loans import schedule_frame as loans_schedule_frame
from ..domain.schedule import add_months, amortize, annuity_payment_cents, bucket

US = 1_000_000
MINUTE = 60 * US
HOUR = 60 * MINUTE
DAY = 24 * HOUR
NEVER = np.iinfo(np.int64).max

LOAN_SHARE = 0.08  # of all customers
# Scenario: share of all loans. Each scenario that fits the demo period gets at least one loan.
SCENARIOS = {
    "submitted": 0.07, "approved": 0.04, "rejected": 0.10, "current": 0.43,
    "1-30": 0.07, "31-60": 0.05, "61-90": 0.04, "over 90": 0.04,
    "paid_off": 0.11, "written_off": 0.05,
}
ARREARS = {"1-30": (1, 30), "31-60": (31, 60), "61-90": (61, 90), "over 90": (91, 170)}
TROUBLE = (*ARREARS, "written_off")
DISBURSED = ("current", "paid_off", *TROUBLE)
APPLICATIONS = ("submitted", "approved", "rejected")
STATUS = {"submitted": "submitted", "approved": "approved", "rejected": "rejected",
          "current": "active", "paid_off": "paid_off", "written_off": "written_off",
          **{bucket: "active" for bucket in ARREARS}}

# Product: share, median principal (cents), the terms people choose, and purposes with the
# payee that receives the money right after the payout.
PRODUCTS = {
    "personal": (0.45, 600_000, (6, 12, 18, 24, 36, 48, 60), [
        ("Furniture for a new flat", "Payment HomeStyle Furniture"),
        ("Wedding costs", "Payment Grand Oak Venue"),
        ("Consolidating card debts", "Payment CardOne card balance"),
        ("Dental treatment", "Payment Smile Dental Clinic"),
        ("Moving house", "Payment SwiftMove Removals"),
        ("Used motorbike", "Payment MotoMart")]),
    "car": (0.33, 1_600_000, (24, 36, 48, 60, 72, 84), [
        ("Used car purchase", "Car purchase Riverside Motors"),
        ("New family car", "Car purchase AutoCity Dealers"),
        ("Replacing an old car", "Car purchase Northgate Cars")]),
    "home_improvement": (0.22, 1_200_000, (12, 24, 36, 48, 60, 84, 120), [
        ("Kitchen renovation", "Payment KitchenCraft Renovations"),
        ("New roof", "Payment TopRoof Contractors"),
        ("Bathroom remodel", "Payment AquaBath Fitters"),
        ("Solar panels", "Payment SunHarvest Solar"),
        ("Windows and insulation", "Payment WarmHome Insulation")]),
}
REJECT_REASONS = [
    "The instalment would be more than 40 % of the monthly income.",
    "Income too low for the amount asked; a smaller loan could be considered.",
    "Too short a history with the bank; please apply again in six months.",
    "The checking account was overdrawn most of the last three months.",
    "Documents incomplete: no proof of income was provided.",
]
WRITE_OFF_REASONS = [
    "No payment for more than 90 days; the borrower cannot be reached.",
    "The borrower is insolvent; nothing is expected from the estate.",
    "The collection agency found no assets to recover.",
]
TROUBLE_MEMOS = ["Transfer to another bank", "Tax settlement Revenue Office",
                 "Hospital bill City Clinic", "Legal fees Barrett & Co"]
WINDFALL_MEMOS = ["Transfer from another bank", "Car sale proceeds", "Inheritance payment",
                  "Bonus payment"]
MANAGER, TELLER = "manager", "teller"
COLUMNS = ["cust", "scenario", "product", "principal", "term", "rate", "purpose", "payee",
           "income", "applied_by", "applied_role", "applied_at", "decided_at", "reason",
           "paid_out", "paid_out_at", "bought_at", "first_missed", "written_off",
           "write_off_at", "write_off_reason", "payoff"]


@functools.lru_cache(maxsize=None)
def _amortized(principal_cents: int, rate: str, term: int) -> np.ndarray:
    """loans.amortize as an array (payment, interest, principal, balance), cached: many loans
    share an amount, rate and term."""
    return np.array(amortize(principal_cents, Decimal(rate), term), dtype=np.int64)


def _month_index(day) -> int:
    return day.year * 12 + day.month - 1


def _us(day: dt.date, seconds: float = 0.0) -> int:
    moment = dt.datetime.combine(day, dt.time()) - dt.datetime(1970, 1, 1)
    return (moment.days * 86_400 + int(seconds)) * US


def _date(us: int) -> dt.date:
    return (dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=int(us))).date()


def _dues_before(first_paid_out: dt.date, day: dt.date) -> int:
    """How many monthly due dates (one month after the payout, same day of month; days above
    28 never occur here) fall strictly before `day`."""
    months = _month_index(day) - _month_index(first_paid_out)
    return max(months - (1 if day.day <= first_paid_out.day else 0), 0)


class LoanBook:
    """The demo's loans: planned once (`plan`), then played month by month through the hooks
    that the builder calls from its window, then written (`write`)."""

    def __init__(self, builder, seed):
        self.b = builder
        self.rng = np.random.default_rng([seed, 5])  # its own stream: the rest stays as it was
        bank = builder.bank
        self.products = {row[0]: row[1:] for row in bank.read(
            "SELECT code, amount_min_cents, amount_max_cents, term_min_months, "
            "term_max_months, rate_min_percent, rate_max_percent FROM loan_products "
            "WHERE active")}
        # Each loan snapshots its product's late fee and grace days (loans.apply); so does
        # every demo loan (demo.py copies the product's terms onto the loan rows).
        self.late_fees = {row[0]: (int(row[1]), int(row[2])) for row in bank.read(
            "SELECT code, late_fee_cents, late_fee_grace_days FROM loan_products WHERE active")}
        self.business_date = bank.state.business_date
        end = dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=int(builder.end))
        # Loan events fall on days before `today`, at the latest at 23:55; normally today is
        # the business date (a business date ahead of the clock would put them in the future).
        today = self.business_date
        while dt.datetime.combine(today - dt.timedelta(days=1), dt.time(23, 55)) >= end:
            today -= dt.timedelta(days=1)
        self.today = today
        self.first = _date(builder.start)
        self.ids = None

    # -- planning ------------------------------------------------------------------------------
    def plan(self):
        b, rng = self.b, self.rng
        n = b.n
        chk = np.maximum(b.chk, 0)
        steady_chk = (b.chk >= 0) & (b.acc_status[chk] == "active") & (b.acc_stop[chk] == NEVER)
        base = (b.status == "active") & ~b.cust_dormant & steady_chk
        others = base & (np.arange(n) >= N_DEMO)
        # What a borrower can pay each month for sure: the salary (within 0.5 %) less the
        # overdraft a month may end in and the standing order, with a margin; and no more
        # than 35 % of the income, as a lender would insist.
        cap = np.minimum(0.9 * (np.floor(0.995 * b.income) - 1 - b.acc_limit[chk]
                                - b.standing_order), 0.35 * b.income)
        # Whole cents, rounded down, so the payments compared with it stay integer arithmetic.
        self.cap = np.where(b.chk >= 0, np.floor(cap), 0).astype(np.int64)
        salaried = np.isin(b.seg, [PROFESSIONAL, RETIREE])
        # Borrowers whose money the bank has watched since before the period.
        settled = b.acc_open[chk] < b.start
        good = others & salaried & settled & (self.cap >= 10_000)
        sav = np.maximum(b.sav, 0)
        trouble = good & ~((b.sav >= 0) & b.acc_closing[sav])

        total = max(int(round(LOAN_SHARE * n)), 1)
        counts = {s: max(1, int(round(share * total))) for s, share in SCENARIOS.items()}
        wanted = [(0, "current"), (1, "submitted"), (2, "paid_off")]  # Alice, Bob, Carol
        counts["current"] -= 1
        counts["submitted"] -= 1
        counts["paid_off"] -= 1
        used = np.zeros(n, dtype=bool)
        used[:N_DEMO] = True

        def draw(pool, count):
            free = np.flatnonzero(pool & ~used)
            picked = rng.choice(free, size=min(count, free.size), replace=False)
            used[picked] = True
            return picked.tolist()
        for scenario in TROUBLE:
            wanted += [(c, scenario) for c in draw(trouble, counts[scenario])]
        for scenario in ("current", "paid_off"):
            wanted += [(c, scenario) for c in draw(good, counts[scenario])]
        for scenario in APPLICATIONS:
            wanted += [(c, scenario) for c in draw(others, counts[scenario])]

        loans = []
        for c, scenario in wanted:
            if not base[c]:
                continue
            loan = self._plan_one(int(c), scenario)
            if loan is not None:
                loans.append(loan)
        loans.sort(key=lambda x: x["applied_at"])
        self.loans = pd.DataFrame(loans, columns=COLUMNS)
        self.loans["cust"] = self.loans["cust"].astype(np.int64)
        self._plan_money()

    def _plan_one(self, c, scenario):
        """One loan's dates, amount, term and rate; None when the period has no room for it."""
        b, rng = self.b, self.rng
        today, first = self.today, self.first
        created = _date(b.created[c])
        chk_open = _date(b.acc_open[b.chk[c]])
        # A payout needs an application within the period and a settled account.
        lo = max(first + dt.timedelta(days=7), chk_open + dt.timedelta(days=14),
                 created + dt.timedelta(days=14))
        loan = {"cust": c, "scenario": scenario, "paid_out": None, "first_missed": None,
                "written_off": None, "payoff": None, "reason": None, "write_off_reason": None,
                "applied_by": TELLER, "applied_role": "teller"}
        if scenario in APPLICATIONS:
            return self._plan_application(c, scenario, loan)

        if c == 0:  # Alice: a car loan paid out about five months ago, paid on time since.
            day0 = max(add_months(today, -5) - dt.timedelta(days=3), lo)
            if day0.day > 28:
                day0 = min(day0 + dt.timedelta(days=4), today - dt.timedelta(days=2))
            if day0.day > 28 or day0 > today - dt.timedelta(days=2):
                day0 = self._day_in(lo, today - dt.timedelta(days=2))
            loan.update(applied_by="alice", applied_role="customer")
            terms = dict(product="car", principal=1_800_000, term=48, rate="6.90")
        elif c == 2:  # Carol: a home improvement loan, paid off early from her account.
            terms = dict(product="home_improvement", principal=600_000, term=24, rate="7.50")
            day0 = None
        else:
            terms = {}
            day0 = None

        if scenario == "current":
            if day0 is None:
                day0 = self._day_in(lo, today - dt.timedelta(days=2))
            if day0 is None:
                return None
            terms.setdefault("term_min", _dues_before(day0, today) + 1)
        elif scenario == "paid_off":
            natural = rng.random() < 0.35 and c != 2
            if natural:  # by the last instalment: a short loan within the period
                term = int(rng.choice([6, 12]))
                day0 = self._day_in(lo, add_months(today - dt.timedelta(days=1), -term)
                                    - dt.timedelta(days=1))
                if day0 is not None and _dues_before(day0, today) >= term:
                    terms.update(product="personal", term=term)
                else:
                    natural = False
            if not natural:  # early: on the first of a month, at least one instalment after
                last = add_months((today - dt.timedelta(days=1)).replace(day=1), -2)
                day0 = self._day_in(lo, last.replace(day=28), day_min=2)
                if day0 is None:
                    return None
                months = _month_index(today - dt.timedelta(days=1)) - _month_index(day0)
                # Paid off in month j after the payout, before the last instalment.
                j = int(rng.integers(2, min(months, terms.get("term", months)) + 1))
                loan["payoff"] = add_months(day0.replace(day=1), j)
                terms.setdefault("term_min", j)
        else:  # trouble: the first instalment missed so that the arrears fit the scenario
            if scenario == "written_off":
                latest = today - dt.timedelta(days=92)
                first_missed = self._day_in(add_months(lo, 1), latest)
                if first_missed is None:
                    return None
                limit = min(first_missed + dt.timedelta(days=180), today - dt.timedelta(days=1))
                off = first_missed + dt.timedelta(
                    days=int(rng.integers(91, (limit - first_missed).days + 1)))
                loan["written_off"] = off
                loan["write_off_at"] = _us(off, 10 * 3600 + rng.random() * 7 * 3600)
                loan["write_off_reason"] = WRITE_OFF_REASONS[int(rng.integers(
                    len(WRITE_OFF_REASONS)))]
            else:
                low, high = ARREARS[scenario]
                first_missed = self._day_in(max(add_months(lo, 1), today - dt.timedelta(high)),
                                            today - dt.timedelta(low))
                if first_missed is None:
                    return None
            k_max = 0
            while add_months(first_missed, -(k_max + 1)) >= lo and k_max < 12:
                k_max += 1
            if k_max == 0:
                return None
            k = int(rng.integers(min(2, k_max), k_max + 1))
            day0 = add_months(first_missed, -k)
            loan["first_missed"] = first_missed
            terms.setdefault("term_min", k + 1)

        chosen = self._terms(c, **terms)
        if chosen is None:
            return None
        loan.update(chosen)
        loan["paid_out"] = day0
        paid_at = _us(day0, 9.5 * 3600 + rng.random() * 6.5 * 3600)
        applied = max(paid_at - int((1 + rng.random() * 9) * DAY),
                      _us(max(first, created) + dt.timedelta(days=1), 9 * 3600))
        applied = min(applied, paid_at - 2 * HOUR)
        loan["applied_at"] = applied
        loan["decided_at"] = applied + min(self._delay(), max(paid_at - applied - HOUR,
                                                              20 * MINUTE))
        loan["paid_out_at"] = paid_at
        loan["bought_at"] = paid_at + int((1 + rng.random() * 2) * HOUR)
        return loan

    def _plan_application(self, c, scenario, loan):
        b, rng = self.b, self.rng
        end = int(b.end)
        created = int(b.created[c])
        earliest = max(int(b.start), created) + HOUR
        if c == 1:  # Bob: a van for his business, waiting for the manager
            loan.update(applied_by="bob", applied_role="customer")
            chosen = self._terms(c, product="car", principal=2_400_000, term=60, fit=False)
            chosen["purpose"] = "Delivery van for the business"
        else:
            chosen = self._terms(c, fit=False)
        loan.update(chosen)
        if scenario == "submitted":
            low, high = end - 9 * DAY, end - 30 * MINUTE
        elif scenario == "approved":
            low, high = end - 15 * DAY, end - 3 * DAY
        else:
            low, high = earliest, end - 2 * DAY
        low = max(low, earliest)
        if high <= low:
            return None
        applied = low + int(rng.random() * (high - low))
        loan["applied_at"] = applied
        if scenario == "submitted":
            loan["decided_at"] = None
            loan["rate"] = None
        else:
            loan["decided_at"] = min(applied + self._delay(), end - 10 * MINUTE)
            if scenario == "rejected":
                loan["rate"] = None
                loan["reason"] = REJECT_REASONS[int(rng.integers(len(REJECT_REASONS)))]
        return loan

    def _delay(self) -> int:
        """How long a manager takes to decide: often the same day, sometimes a week."""
        u, rng = self.rng.random(), self.rng
        hours = (rng.uniform(0.5, 6) if u < 0.35 else rng.uniform(18, 72) if u < 0.8
                 else rng.uniform(72, 192))
        return int(hours * HOUR)

    def _day_in(self, lo, hi, day_min=1, day_max=28):
        """A random date in [lo, hi] whose day of month is in [day_min, day_max] (so that
        monthly due dates keep their day); None when there is none."""
        if lo is None or hi is None or hi < lo:
            return None
        span = (hi - lo).days + 1
        for _ in range(6):
            day = lo + dt.timedelta(days=int(self.rng.integers(span)))
            if day_min <= day.day <= day_max:
                return day
        days = [lo + dt.timedelta(days=k) for k in range(span)]
        days = [d for d in days if day_min <= d.day <= day_max]
        return days[int(self.rng.integers(len(days)))] if days else None

    def _terms(self, c, product=None, principal=None, term=None, rate=None, term_min=1,
               fit=True):
        """Product, amount, term, rate and purpose; with `fit`, an instalment within what the
        borrower can surely pay (self.cap). None when nothing fits."""
        rng = self.rng
        if product is None:
            shares = np.array([PRODUCTS[p][0] for p in PRODUCTS])
            product = str(rng.choice(list(PRODUCTS), p=shares / shares.sum()))
        lo_c, hi_c, term_lo, term_hi, rate_lo, rate_hi = self.products[product]
        _, median, usual, purposes = PRODUCTS[product]
        terms = [t for t in usual if term_lo <= t <= term_hi and t >= term_min]
        if term is None:
            if not terms:
                return None
            term = int(rng.choice(terms))
        if rate is None:
            step = int((Decimal(rate_hi) - Decimal(rate_lo)) * 10)
            rate = f"{Decimal(rate_lo) + Decimal(int(rng.integers(step + 1))) / 10:.2f}"
        if principal is None:
            principal = int(median * rng.lognormal(0, 0.5)) // 50_000 * 50_000
        principal = int(min(max(principal, lo_c), hi_c))
        if fit:
            cap = int(self.cap[c])
            for option in (term, max(terms or [term])):
                payment = annuity_payment_cents(principal, Decimal(rate), option)
                if payment > cap:
                    principal = max(principal * cap // payment // 50_000 * 50_000, 0)
                    principal = min(principal, hi_c)
                if principal >= lo_c:
                    term = option
                    break
            else:
                return None
            if _amortized(principal, rate, term)[0, 0] > cap:
                return None
        purpose, payee = purposes[int(rng.integers(len(purposes)))]
        return {"product": product, "principal": principal, "term": int(term), "rate": rate,
                "purpose": purpose, "payee": payee, "income": int(self.b.income[c])}

    def _plan_money(self):
        """Schedules and every money event, from the plan (see the module docstring)."""
        b, loans = self.b, self.loans
        today = np.datetime64(self.today, "D")
        first_index = _month_index(self.first)
        out = loans[loans["scenario"].isin(DISBURSED)]
        terms = out["term"].to_numpy(dtype=np.int64)
        amounts = [_amortized(int(p), r, int(t))
                   for p, r, t in zip(out["principal"], out["rate"], out["term"])]
        amounts = np.concatenate(amounts) if amounts else np.zeros((0, 4), dtype=np.int64)
        loan = np.repeat(out.index.to_numpy(dtype=np.int64), terms)
        n = np.arange(terms.sum()) - np.repeat(np.cumsum(terms) - terms, terms) + 1
        paid_out = np.array(list(out["paid_out"]), dtype="datetime64[D]")
        day = np.repeat(paid_out - paid_out.astype("datetime64[M]").astype("datetime64[D]"),
                        terms)
        due = (np.repeat(paid_out.astype("datetime64[M]"), terms) + n).astype(
            "datetime64[D]") + day
        sched = pd.DataFrame({"loan": loan, "n": n, "due": due, "payment": amounts[:, 0],
                              "interest": amounts[:, 1], "principal": amounts[:, 2],
                              "balance": amounts[:, 3]})

        def column(name):  # a date column of the loans, per schedule row (NaT when none)
            days = np.array([np.datetime64(v, "D") if v is not None and v == v
                             else np.datetime64("NaT") for v in loans[name]],
                            dtype="datetime64[D]")
            return days[sched["loan"].to_numpy()]
        missed, off, payoff = column("first_missed"), column("written_off"), column("payoff")
        stop = np.minimum.reduce([np.where(np.isnat(d), today, d) for d in (missed, payoff)])
        stop = np.minimum(stop, today)
        due = sched["due"].to_numpy().astype("datetime64[D]")
        sched["collected"] = due < stop
        # An early payoff drops the instalments after it (loans.repay re-amortises to nothing).
        sched = sched[np.isnat(payoff) | (due <= payoff)].reset_index(drop=True)
        due = sched["due"].to_numpy().astype("datetime64[D]")
        missed, off = column("first_missed"), column("written_off")
        # Late fees: charged at the end of day `grace` days after an unpaid due date, while the
        # loan is active (through the day before the write-off, or yesterday).
        last_eod = np.where(np.isnat(off), today, off) - np.timedelta64(1, "D")
        product = loans["product"].to_numpy()[sched["loan"].to_numpy()]
        sched["grace"] = np.array([self.late_fees[p][1] for p in product], dtype=np.int64)
        fee = np.array([self.late_fees[p][0] for p in product], dtype=np.int64)
        late = (~np.isnat(missed) & (due >= missed)
                & (due + sched["grace"].to_numpy().astype("timedelta64[D]") <= last_eod))
        sched["fee"] = np.where(late & (fee > 0), fee, 0)
        self.sched = sched

        paid = sched[sched["collected"]].groupby("loan")["principal"].sum()
        loans["collected_principal"] = paid.reindex(loans.index, fill_value=0).astype(np.int64)
        loans["left"] = np.where(loans["scenario"].isin(DISBURSED),
                                 loans["principal"] - loans["collected_principal"], 0)
        self._plan_payoffs(loans, sched)
        every = sched.groupby("loan")["collected"].all()
        last_due = sched.groupby("loan")["due"].max()
        done = loans.index.isin(every[every].index)
        loans["status"] = loans["scenario"].map(STATUS)
        loans.loc[done & (loans["status"] == "active"), "status"] = "paid_off"
        loans["closed"] = None
        for i in loans.index[done]:
            loans.at[i, "closed"] = pd.Timestamp(last_due[i]).date()
        for i in loans.index[loans["payoff"].notna()]:
            loans.at[i, "closed"] = loans.at[i, "payoff"]
        for i in loans.index[loans["written_off"].notna()]:
            loans.at[i, "closed"] = loans.at[i, "written_off"]
        for i in loans.index[loans["scenario"] == "rejected"]:
            loans.at[i, "closed"] = _date(loans.at[i, "decided_at"])

        # Money events by window. Collections at 23:50 of the due date (a few seconds apart).
        chk = b.chk[loans["cust"].to_numpy()]
        loans["account"] = chk
        sched["account"] = chk[sched["loan"].to_numpy()]
        sched["tc"] = (due.astype("datetime64[us]").astype(np.int64)
                       + 23 * HOUR + 50 * MINUTE + sched["loan"].to_numpy() % 240 * US)
        sched["w"] = ((due.astype("datetime64[M]").astype(np.int64) + 1970 * 12)
                      - first_index)
        # Instalments the account must hold at the end of their due date: those collected, and
        # those of good loans due on the business date, which end of day collects next.
        good_now = ((loans["status"] == "active") & loans["first_missed"].isna()).to_numpy()
        sched["held"] = sched["collected"] | ((due == today) & good_now[sched["loan"]])
        self.held_rows = {w: g for w, g in sched[sched["held"]].groupby("w")}
        # Due dates in trouble, while the loan was active: the account must hold nothing.
        unpaid = (~sched["collected"] & (due < today)
                  & (np.isnat(off) | (due < np.where(np.isnat(off), today, off))))
        self.empty_rows = {w: g for w, g in sched[unpaid].groupby("w")}

        def window_of(day):
            return _month_index(day) - first_index
        trouble = loans[loans["first_missed"].notna()]
        self.no_income_from = np.full(b.n, NEVER, dtype=np.int64)
        self.drains = {}
        for i, row in trouble.iterrows():
            w = window_of(row["first_missed"])
            self.no_income_from[row["cust"]] = b.windows[w][0]
            self.drains.setdefault(w, []).append(i)
        self.payoffs, self.paid_out, self.write_offs = {}, {}, {}
        for i, row in loans[loans["payoff"].notna()].iterrows():
            self.payoffs.setdefault(window_of(row["payoff"]), []).append(i)
        for i, row in out.iterrows():
            self.paid_out.setdefault(window_of(row["paid_out"]), []).append(i)
        for i, row in loans[loans["written_off"].notna()].iterrows():
            self.write_offs.setdefault(window_of(row["written_off"]), []).append(i)
        self.tx_ids = {}  # ("paid_out" | "payoff", loan) or ("collect", schedule row) -> id

    # -- ids -----------------------------------------------------------------------------------
    def _plan_payoffs(self, loans, sched):
        """An early payoff pays the interest accrued to its day (loan_replay), so its amount,
        its split and the loan's last instalment come from the replay of the loan."""
        self.payoff_rows = {}
        for column in ("payoff_cents", "payoff_interest", "payoff_principal", "payoff_prepaid"):
            loans[column] = 0
        for i in loans.index[loans["payoff"].notna()]:
            got = sched[(sched["loan"] == i) & sched["collected"]]
            contract = loan_replay.Contract(
                int(loans.at[i, "principal"]), Decimal(loans.at[i, "rate"]),
                int(loans.at[i, "term"]), loans.at[i, "paid_out"])
            replayed = loan_replay.replay(contract, [
                loan_replay.Payment(pd.Timestamp(d).date(), int(n), int(p))
                for d, n, p in zip(got["due"], got["n"], got["payment"])])
            day = loans.at[i, "payoff"]
            total = replayed.payoff(day)["total_cents"]
            split = replayed.pay(loan_replay.Payment(day, 2 ** 62, total))
            loans.at[i, "payoff_cents"] = total
            loans.at[i, "payoff_interest"] = split.interest_cents
            loans.at[i, "payoff_principal"] = split.principal_cents
            loans.at[i, "payoff_prepaid"] = split.prepayment_cents
            self.payoff_rows[i] = replayed.rows

    def take_ids(self, uow):
        """Loan ids from the loan sequence, in the order of application."""
        self.ids = uow.take_ids("loan_id_seq", len(self.loans)).ids

    def lid(self, i) -> int:
        return int(self.ids[i])

    # -- hooks called from the builder's window ------------------------------------------------
    def no_income(self, ws) -> np.ndarray:
        """Customers whose money has stopped coming in (borrowers in trouble)."""
        return self.no_income_from <= ws

    def morning(self, w, tx, ws):
        """The first of the month, after the salaries: trouble begins (the positive balance
        leaves), and early payoffs (topped up from outside when the account is short)."""
        b, loans = self.b, self.loans
        for i in self.drains.get(w, []):
            acc = int(loans.at[i, "account"])
            memo = b.memo(TROUBLE_MEMOS[i % len(TROUBLE_MEMOS)])
            b._move(tx, np.array([ws + 6 * HOUR + 15 * MINUTE]), WITHDRAWAL, memo,
                    np.array([max(int(b.bal[acc]), 0)]), np.array([acc]), b.ix("clearing"))
        for i in self.payoffs.get(w, []):
            acc = int(loans.at[i, "account"])
            amount = int(loans.at[i, "payoff_cents"])
            short = amount - max(int(b.bal[acc]), 0)
            if short > 0:
                top_up = math.ceil(short / 10_000) * 10_000
                b._move(tx, np.array([ws + 6 * HOUR + 20 * MINUTE]), DEPOSIT,
                        b.memo(WINDFALL_MEMOS[i % len(WINDFALL_MEMOS)]), np.array([top_up]),
                        b.ix("clearing"), np.array([acc]))
            t = ws + 6 * HOUR + 25 * MINUTE
            memo = b.memo(
                f"Loan {self.lid(i)} payment: fees 0.00, interest "
                f"{Decimal(int(loans.at[i, 'payoff_interest'])) / 100:.2f}, principal "
                f"{Decimal(int(loans.at[i, 'payoff_principal'])) / 100:.2f}")
            self._add(tx, t, LOAN_REPAYMENT, memo, amount, acc, b.ix("loans_receivable"),
                      interest=int(loans.at[i, "payoff_interest"]), ref=("payoff", i))
            # A payment the customer makes counts as their activity (as in the ledger).
            b.last_activity[acc] = max(int(b.last_activity[acc]), t)

    def reserve(self, w, spenders):
        """For each spending account: the time of this month's collection (the smallest time
        when none, so that no payment falls before it) and the part of its budget the
        instalment takes."""
        b = self.b
        tc = np.full(spenders.size, np.iinfo(np.int64).min, dtype=np.int64)
        reserved = np.zeros(spenders.size, dtype=np.int64)
        rows = self.held_rows.get(w)
        if rows is None:
            return tc, reserved
        where = pd.Series(np.arange(spenders.size), index=spenders)
        acc = rows["account"].to_numpy()
        pos = where.reindex(acc).to_numpy()
        ok = ~np.isnan(pos)
        pos = pos[ok].astype(np.int64)
        tc[pos] = rows["tc"].to_numpy()[ok]
        reserved[pos] = np.minimum(rows["payment"].to_numpy()[ok],
                                   np.maximum(b.bal[acc[ok]], 0))
        return tc, reserved

    def pass_through(self, w, tx):
        """Payouts (spent at once on what the loan is for) and write-offs of this month."""
        b, loans = self.b, self.loans
        index = self.paid_out.get(w)
        if index:
            part = loans.loc[index]
            acc = part["account"].to_numpy()
            amount = part["principal"].to_numpy(dtype=np.int64)
            memo = [b.memo(f"Loan {self.lid(i)} disbursement") for i in index]
            self._add(tx, part["paid_out_at"].to_numpy(dtype=np.int64), LOAN_DISBURSEMENT,
                      memo, amount, b.ix("loans_receivable"), acc, ref=("paid_out", index))
            b._move(tx, part["bought_at"].to_numpy(dtype=np.int64), WITHDRAWAL,
                    np.array([b.memo(p) for p in part["payee"]]), amount, acc,
                    b.ix("clearing"))
        index = [i for i in self.write_offs.get(w, []) if loans.at[i, "left"] > 0]
        if index:
            part = loans.loc[index]
            memo = [b.memo(f"Loan {self.lid(i)} written off: {reason}")
                    for i, reason in zip(index, part["write_off_reason"])]
            self._add(tx, part["write_off_at"].to_numpy(dtype=np.int64), LOAN_WRITE_OFF, memo,
                      part["left"].to_numpy(dtype=np.int64), b.ix("loan_losses"),
                      b.ix("loans_receivable"))

    def collect(self, w, tx, bal_start):
        """End of day on this month's due dates: collect each instalment in full, after
        checking that the account held it (or, for borrowers in trouble, held nothing)."""
        b = self.b
        rows = self.held_rows.get(w)
        empty = self.empty_rows.get(w)
        if rows is None and empty is None:
            return
        both = pd.concat([r for r in (rows, empty) if r is not None])
        acc = both["account"].to_numpy()
        if np.unique(acc).size != acc.size:
            raise InvalidState("demo generator bug: two loan due dates on one account a month")
        arr = tx.arrays()
        tc_of = np.full(b.a, np.iinfo(np.int64).min, dtype=np.int64)
        tc_of[acc] = both["tc"].to_numpy()
        delta = np.zeros(b.a, dtype=np.int64)
        for side, sign in ((arr["debit"], -1), (arr["credit"], 1)):
            mine = side < b.a
            before = mine.copy()
            before[mine] = arr["t"][mine] < tc_of[side[mine]]
            np.add.at(delta, side[before], sign * arr["amount"][before])
        held = bal_start[acc] + delta[acc]
        owed = np.concatenate([r["payment"].to_numpy() for r in (rows, empty) if r is not None])
        paying = np.arange(acc.size) < (0 if rows is None else len(rows))
        if (paying & (held < owed)).any() or (~paying & (held > 0)).any():
            raise InvalidState("demo generator bug: a loan account did not hold what the "
                               "instalment plan needs at the end of a due date")
        if rows is None:
            return
        got = rows[rows["collected"]]
        if len(got):
            memo = [b.memo(f"Loan {self.lid(i)} instalment collected at end of day")
                    for i in got["loan"]]
            self._add(tx, got["tc"].to_numpy(), LOAN_REPAYMENT, memo, got["payment"].to_numpy(),
                      got["account"].to_numpy(), b.ix("loans_receivable"),
                      interest=got["interest"].to_numpy(), ref=("collect", got.index))

    def _add(self, tx, t, kind, memo, amount, debit, credit, interest=0, ref=None):
        """Add loan transactions (arrays or scalars) and apply them to the modelled balances.
        `ref` = (event kind, loan or schedule row indexes) marks them for record_tx_ids."""
        t = np.atleast_1d(np.asarray(t, dtype=np.int64))
        amount = np.broadcast_to(np.asarray(amount, dtype=np.int64), t.shape)
        code = -1
        if ref is not None:
            kind_name, index = ref
            offset = {"paid_out": 0, "payoff": 1, "collect": 2}[kind_name]
            code = np.atleast_1d(np.asarray(index, dtype=np.int64)) * 3 + offset
        tx.add(t, kind, np.asarray(memo), amount, debit, credit, interest=interest, ref=code)
        self.b._apply(t, kind, amount, debit, credit)

    def record_tx_ids(self, codes, ids):
        """Called after a window is posted: the transaction ids of loan events."""
        for code, tid in zip(np.asarray(codes).tolist(), np.asarray(ids).tolist()):
            kind = ("paid_out", "payoff", "collect")[code % 3]
            self.tx_ids[(kind, code // 3)] = tid

    # -- the loan tables -----------------------------------------------------------------------
    def frames(self):
        """loans, loan_schedule and loan_payments rows as DataFrames."""
        b, loans, sched = self.b, self.loans.copy(), self.sched
        ids = self.ids
        decided = loans["decided_at"].notna()
        out = loans["scenario"].isin(DISBURSED)

        def to_ts(column):  # microseconds (or None) to timestamps (or NaT)
            return pd.to_datetime(loans[column].astype("float64"), unit="us").astype(
                "datetime64[us]")

        def to_day(column):  # dates (or None) to datetimes that DuckDB casts to DATE
            return pd.to_datetime(loans[column]).astype("datetime64[s]")
        frame = pd.DataFrame({
            "id": ids, "customer_id": b.cust_id[loans["cust"].to_numpy()],
            "product_code": loans["product"], "principal_cents": loans["principal"],
            "term_months": loans["term"], "purpose": loans["purpose"],
            "monthly_income_cents": loans["income"], "status": loans["status"],
            "annual_rate_percent": loans["rate"], "applied_by": loans["applied_by"],
            "applied_role": loans["applied_role"], "applied_at": to_ts("applied_at"),
            "decided_by": np.where(decided, MANAGER, None), "decided_at": to_ts("decided_at"),
            "decision_reason": loans["reason"],
            "account_number": np.where(out, b.acc_number[loans["account"].to_numpy()], None),
            "disbursed_by": np.where(out, MANAGER, None),
            "disbursed_at": to_ts("paid_out_at"),
            "disbursement_date": to_day("paid_out"),
            "disbursement_tx_id": pd.array([self.tx_ids.get(("paid_out", i)) if o else None
                                            for i, o in zip(loans.index, out)], dtype="Int64"),
            "principal_outstanding_cents": np.where(loans["status"] == "active",
                                                    loans["left"], 0),
            "closed_date": to_day("closed"),
            # A write-off keeps the arrears of the last end of day before it (loans.write_off
            # does not touch them); age_arrears fills in the active loans.
            "days_past_due": [(w - f).days if s == "written_off" else 0 for s, w, f in zip(
                loans["status"], loans["written_off"], loans["first_missed"])],
            "written_off_cents": np.where(loans["status"] == "written_off", loans["left"], 0),
            "write_off_reason": loans["write_off_reason"]})
        frame["arrears_bucket"] = [bucket(d) for d in frame["days_past_due"]]
        frame["applied_date"] = frame["applied_at"].dt.floor("D")
        schedule = pd.DataFrame({
            "loan_id": ids[sched["loan"].to_numpy()], "n": sched["n"], "due_date": sched["due"],
            "payment_cents": sched["payment"], "interest_cents": sched["interest"],
            "principal_cents": sched["principal"], "balance_cents": sched["balance"],
            "interest_paid_cents": np.where(sched["collected"], sched["interest"], 0),
            "principal_paid_cents": np.where(sched["collected"], sched["principal"], 0),
            "fee_cents": sched["fee"], "fee_paid_cents": 0,
            # The end of day that charged the fee: `grace` days after the due date.
            "fee_date": np.where(sched["fee"] > 0, sched["due"].to_numpy().astype(
                "datetime64[D]") + sched["grace"].to_numpy().astype("timedelta64[D]"),
                np.datetime64("NaT"))})
        if self.payoff_rows:
            replayed = pd.concat([
                loans_schedule_frame(ids[i], type("R", (), {"rows": rows})())
                for i, rows in self.payoff_rows.items()], ignore_index=True)
            replayed["due_date"] = pd.to_datetime(replayed["due_date"])
            replayed["fee_date"] = pd.to_datetime(replayed["fee_date"])
            schedule = pd.concat([schedule[~schedule["loan_id"].isin(replayed["loan_id"])],
                                  replayed], ignore_index=True)
        got = sched[sched["collected"]]
        payments = pd.DataFrame({
            "transaction_id": [self.tx_ids[("collect", r)] for r in got.index],
            "loan_id": ids[got["loan"].to_numpy()], "business_date": got["due"],
            "method": "automatic", "source_account": b.acc_number[got["account"].to_numpy()],
            "amount_cents": got["payment"], "fee_cents": 0, "interest_cents": got["interest"],
            "principal_cents": got["principal"], "prepayment_cents": 0, "actor": "system"})
        early = loans[loans["payoff"].notna()]
        if len(early):
            payments = pd.concat([payments, pd.DataFrame({
                "transaction_id": [self.tx_ids[("payoff", i)] for i in early.index],
                "loan_id": ids[early.index.to_numpy()],
                "business_date": pd.to_datetime(early["payoff"]).astype("datetime64[s]"),
                "method": "manual", "source_account": b.acc_number[early["account"].to_numpy()],
                "amount_cents": early["payoff_cents"], "fee_cents": 0,
                "interest_cents": early["payoff_interest"],
                "principal_cents": early["payoff_principal"],
                "prepayment_cents": early["payoff_prepaid"],
                "actor": [self.b.usernames[c] or TELLER for c in early["cust"]]})],
                ignore_index=True)
        return frame, schedule, payments

    def summary(self) -> dict:
        loans = self.loans
        return {"loans": len(loans),
                "by_scenario": loans["scenario"].value_counts().to_dict(),
                "instalments_collected": int(self.sched["collected"].sum()),
                "late_fees": int((self.sched["fee"] > 0).sum())}
