"""End of day: closing business dates, savings interest, instalment collection, arrears, dormancy.

The bank keeps a business date (settings key `business_date`, mirrored in `bank.state`): every
transaction posted while it is D carries business date D. **End of day for date D closes D**:
in one database transaction it

0. executes the standing orders due on D and retries earlier failed ones
   (standing_orders.run_due: one set-based batch, once per order and due date);
1. collects the instalments due on or before D (and unpaid fees) from each loan's linked
   account, as far as the account's balance less holds allows (never into an overdraft, and not
   from frozen or closed accounts or suspended customers);
2. charges each loan's late fee (its product's, snapshotted when applied for) once on each
   instalment still unpaid the loan's grace days after its due date;
3. ages arrears: days past due and bucket as of D+1;
4. accrues one day of interest on each account's end-of-day balance of D at its deposit
   product's rate (tiers, day count) or its own negotiated rate, and overdraft interest on
   negative balances, in micro-cents (deposit_eod.accrue);
5. on the last day of a product's posting period (monthly, quarterly, yearly), posts the
   interest accrued since each account's last posting as one `interest` transaction against
   GL5000 interest expense, tax withheld at the product's rate to GL2100 (whole cents paid,
   the sub-cent carried on; an account closed meanwhile was paid at the close and is
   skipped), and overdraft interest as one `overdraft_interest` debit to GL4000; on a month
   end, charges the products' monthly fees through charges.post_event_charges
   (deposit_eod.post_period_end);
6. marks accounts dormant after their product's dormancy_months without customer activity
   (accounts.last_activity_date, the business date of the last deposit, withdrawal, transfer
   or loan repayment, which the ledger sets), and makes dormant accounts active again once
   such activity appears: the ledger already lets dormant accounts move money, so
   reactivating at the next end of day keeps the posting path untouched (deposit_eod.dormancy);
7. records D in eod_runs and moves the business date to D+1.

The business date is the clock here: dormancy compares last activity with D+1 minus the
product's dormancy months.
Every calendar day is a business day (there is no holiday calendar). `end_of_day(until=U)`
closes each day from the current business date through U in order, never a day that has not
ended in the bank's time zone (businessday.py), and more than a few days only when confirmed;
one transaction per day, so a crash leaves whole days closed or not; a date already closed is
skipped, so running it twice changes nothing. Bulk postings go through
bank.ledger.post_frames_in, with funds checked in SQL.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import functools
import time
from dataclasses import dataclass, field

import pandas as pd

from .. import businessday, standing_orders
from ..deposits import eod as deposit_eod, term as term_deposits
from ..audit_sets import audit_set
from ...domain.chart import INTERNAL
from ...domain.errors import ConfirmationRequired, DayNotEnded, EndOfDayRunning, InvalidInput
from ..ledger import utcnow
from ..loans import OWED_SQL, age_arrears, allocate, apply_allocation, close_paid_off, \
    record_payments
from ..deposits.eod import MICRO_PER_CENT
# The checks of what end of day keeps live in eod_checks.py (audit.verify runs them); eod.verify
# stays importable.
from .checks import CLOSING_ROW, verify  # noqa: F401
from ...domain.money import format_cents
from ..posting_frames import post_frames
from ...domain.schedule import BUCKETS
# The step modules (deposit_eod, term_deposits, accounts.close) share the tax rule through
# tax.py; these names stay importable from here.
from ..deposits.tax import withholding_tax_bp, withholding_tax_cents  # noqa: F401

# Loans owing something on business date ? and what their linked accounts can pay. Accounts
# paying several loans pay the oldest loan first.
COLLECT_SQL = f"""
SELECT loan_id, account_id, account_number, amount_cents FROM (
    SELECT l.id AS loan_id, a.id AS account_id, a.account_number,
        CAST(least(o.owed_cents, greatest(a.balance_cents - a.holds_cents - coalesce(
            sum(o.owed_cents) OVER (PARTITION BY a.id ORDER BY l.id
                ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0), 0)) AS BIGINT)
            AS amount_cents
    FROM ({OWED_SQL}) o JOIN loans l ON l.id = o.loan_id
    JOIN accounts a ON a.account_number = l.account_number
    JOIN customers c ON c.id = a.customer_id
    WHERE o.owed_cents > 0 AND l.status = 'active' AND a.status IN ('active', 'dormant')
      AND c.status = 'active') payable
WHERE amount_cents > 0 ORDER BY loan_id
"""

# Whether the loan steps of end of day have anything to do: each of them reads active loans
# only, except that accrual and provisioning also release what loans no longer active still
# hold in loan_accruals and loan_provisions. When none of the three has a row, every loan step
# would read nothing and write nothing, so one statement stands for their eight or so (most
# of a day's statements at a bank without loans).
LOANS_TO_SERVE_SQL = (
    "SELECT EXISTS (SELECT 1 FROM loans WHERE status = 'active') "
    "OR EXISTS (SELECT 1 FROM loan_accruals) OR EXISTS (SELECT 1 FROM loan_provisions)")

SUMMARY_FIELDS = ("accounts_accrued", "accrued_micro_cents", "interest_posted_accounts",
                  "interest_posted_cents", "loans_collected", "collected_cents",
                  "late_fees_charged", "late_fee_cents", "loans_in_arrears",
                  "accounts_made_dormant", "accounts_reactivated",
                  # Deposit products (deposit_eod.py; eod_runs columns added in db.SCHEMA).
                  "interest_tax_cents", "overdraft_accrued_accounts",
                  "overdraft_accrued_micro_cents", "overdraft_interest_accounts",
                  "overdraft_interest_cents", "fees_charged", "fee_cents",
                  # Term deposits (term_deposits.mature).
                  "term_deposits_matured", "term_deposits_renewed",
                  "term_deposit_interest_cents",
                  *standing_orders.EOD_FIELDS)


@dataclass
class DayClosed:
    business_date: dt.date
    accounts_accrued: int = 0
    accrued_micro_cents: int = 0
    interest_posted_accounts: int = 0
    interest_posted_cents: int = 0
    loans_collected: int = 0
    collected_cents: int = 0
    late_fees_charged: int = 0
    late_fee_cents: int = 0
    loans_in_arrears: int = 0
    accounts_made_dormant: int = 0
    accounts_reactivated: int = 0
    # Deposit products (deposit_eod.py): tax withheld from the interest posted, overdraft
    # interest accrued (negative micro-cents) and posted, product fees charged.
    interest_tax_cents: int = 0
    overdraft_accrued_accounts: int = 0
    overdraft_accrued_micro_cents: int = 0
    overdraft_interest_accounts: int = 0
    overdraft_interest_cents: int = 0
    fees_charged: int = 0
    fee_cents: int = 0
    standing_orders_executed: int = 0
    standing_orders_executed_cents: int = 0
    standing_orders_failed: int = 0
    standing_orders_missed: int = 0
    standing_order_fees: int = 0
    term_deposits_matured: int = 0
    term_deposits_renewed: int = 0
    term_deposit_interest_cents: int = 0
    loans_paid_off: int = 0
    provision_change_cents: int = 0
    loan_accrual_change_cents: int = 0
    # The hash chains' heads at the close of the day (chain_store.record_heads): dicts of
    # chain, last_id and head_hash.
    chain_heads: list = field(default_factory=list)
    # Wall seconds per step of close_day, in order (for benchmarks; not stored in eod_runs).
    step_seconds: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("business_date", *SUMMARY_FIELDS,
                                               "loans_paid_off", "provision_change_cents",
                                               "loan_accrual_change_cents")}


@dataclass
class EodResult:
    """What a call to end_of_day did: the days it closed and the business date it left."""
    days: list = field(default_factory=list)
    business_date: dt.date | None = None
    seconds: float = 0.0

    def total(self, name) -> int:
        return sum(getattr(day, name) for day in self.days)

    def __str__(self) -> str:
        if not self.days:
            return f"nothing to close; the business date is {self.business_date}"
        first, last = self.days[0].business_date, self.days[-1].business_date
        span = f"{first}" if first == last else f"{first} to {last}"
        return (f"closed {len(self.days)} day(s), {span}, in {self.seconds:.2f} s; business "
                f"date now {self.business_date}. Interest posted "
                f"{format_cents(self.total('interest_posted_cents'))} to "
                f"{self.total('interest_posted_accounts')} accounts (tax withheld "
                f"{format_cents(self.total('interest_tax_cents'))}); overdraft interest "
                f"{format_cents(self.total('overdraft_interest_cents'))} from "
                f"{self.total('overdraft_interest_accounts')} accounts; "
                f"{self.total('fees_charged')} product fees "
                f"({format_cents(self.total('fee_cents'))}); collected "
                f"{format_cents(self.total('collected_cents'))} from "
                f"{self.total('loans_collected')} loan payments; "
                f"{self.total('late_fees_charged')} late fees; "
                f"{self.days[-1].loans_in_arrears} loans in arrears; "
                f"{self.total('accounts_made_dormant')} accounts made dormant; "
                f"{self.total('term_deposits_matured')} term deposits paid out and "
                f"{self.total('term_deposits_renewed')} renewed."
                + "".join(f" {head['chain'].capitalize()} chain head at the close of {last}: "
                          f"{head['head_hash']} ({_ENTRY[head['chain']]} {head['last_id']})."
                          for head in self.days[-1].chain_heads))


_ENTRY = {"ledger": "up to transaction", "audit": "up to audit row"}


def _clean_until(until, closable: dt.date) -> dt.date:
    """The last day to close: `closable` when None, else the date given (or its ISO text)."""
    if until is None:
        return closable
    if isinstance(until, dt.datetime):
        until = until.date()
    elif not isinstance(until, dt.date):
        try:
            until = dt.date.fromisoformat(str(until).strip())
        except ValueError:
            raise InvalidInput("The end-of-day date must look like 2026-01-31.") from None
    return until


def end_of_day(bank, actor, until=None, progress=None, *, confirm=False) -> EodResult:
    """Close every business day from the current business date through `until` (default: the
    last day that has ended, see businessday.last_closable_day), in order; progress(done,
    total) is called after each day.

    Raises DayNotEnded for a day after the last closable one (nothing is closed), and
    ConfirmationRequired when more than `eod_catchup_days_confirm` days would be closed and
    `confirm` is not true."""
    bank.require(actor, "bank.end_of_day", entity="business_date")
    return close_days(bank, actor, until, progress, confirm=confirm, now=bank.clock())


RUNNING_ELSEWHERE = ("End of day is already running, in another process of this bank or in "
                     "this one; nothing was closed by this request. Its days appear once it "
                     "has finished.")


@contextlib.contextmanager
def one_process(bank):
    """Hold end of day for this process (engine.job_lock: PostgreSQL's advisory lock, so that
    several app processes serving one bank never run it at once); yields False when another
    holds it. Once held, the business date is read again from the store: another process may
    have closed days since this one last heard (its listener is milliseconds behind)."""
    with bank.engine.job_lock("end_of_day") as held:
        if held and bank.engine.shared_writers:
            row = bank.read_one("SELECT value FROM settings WHERE key = 'business_date'")
            if row and row[0]:
                bank.state.catch_up(dt.date.fromisoformat(row[0]))
        yield held


def close_days(bank, actor, until, progress, *, confirm, now) -> EodResult:
    """end_of_day at the instant `now` (aware UTC), for end_of_day: refused (audited,
    EndOfDayRunning) while another process runs end of day."""
    with one_process(bank) as held:
        if not held:
            _refuse(bank, actor, EndOfDayRunning(RUNNING_ELSEWHERE), until or "")
        return close_days_held(bank, actor, until, progress, confirm=confirm, now=now)


def close_days_held(bank, actor, until, progress, *, confirm, now) -> EodResult:
    """close_days for a caller that holds one_process already (the scheduler).

    Each day is one writer unit of work, which on PostgreSQL holds the writer lock of every
    process (store/postgres.py) while the day closes: the day posts interest, fees and
    instalments with ids from the shared counters and must see no posting land in between, so
    the other processes' writers wait for that one day (their reads go on). Between two days
    they get their turn. Measured on the demo bank (200 customers, 6 months) on PostgreSQL on
    a loaded 2-core machine: one day closed in 0.6 s, the slowest of a 31-day catch-up in
    1.1 s; a deposit in another process waited at most that long (12 ms median otherwise)."""
    closable = businessday.last_closable_day(bank, now)
    until = _clean_until(until, closable)
    first = bank.state.business_date
    if until > closable:
        _refuse(bank, actor, DayNotEnded(
            f"{until} has not ended yet in the bank's time zone "
            f"({businessday.zone(bank).key}); end of day can close days up to {closable}. "
            f"A day may be closed after {businessday.cutoff(bank):%H:%M} on that day."), until)
    count = (until - first).days + 1
    limit = businessday.catch_up_days_max(bank)
    if count > limit and not confirm:
        _refuse(bank, actor, ConfirmationRequired(
            f"This would close {count} days at once ({first} to {until}): interest, "
            f"instalments and fees for each of them. Confirm the catch-up to go on (more than "
            f"{limit} days always needs confirmation)."), until)
    started = time.perf_counter()
    days = [first + dt.timedelta(days=k) for k in range(max(count, 0))]
    result = EodResult()
    if progress is not None and days:
        progress(0, len(days))
    for done, day in enumerate(days, start=1):
        try:
            closed = bank.write(lambda uow, day=day: close_day(bank, actor, uow, day))
        except BaseException:
            # The day rolled back; make sure the writer's business date matches the stored one
            # even if the failure came at COMMIT, after the date had been moved.
            bank.write(_reload_business_date(bank))
            raise
        if closed is not None:
            result.days.append(closed)
        if progress is not None:
            progress(done, len(days))
    result.business_date = bank.state.business_date
    result.seconds = time.perf_counter() - started
    return result


def _refuse(bank, actor, exc, until):
    bank.record_refusal(actor, "bank.end_of_day", exc, entity="business_date",
                        entity_id=str(until))
    raise exc


def _reload_business_date(bank):
    def fn(uow):
        row = uow.fetchone("SELECT value FROM settings WHERE key = 'business_date'")
        if row:
            bank.state.business_date = dt.date.fromisoformat(row[0])
    return fn


def _settings(uow) -> dict:
    return dict(uow.fetchall("SELECT key, value FROM settings"))


def close_day(bank, actor, uow, day: dt.date) -> DayClosed | None:
    """Close business date `day` inside the caller's unit of work (see the module docstring).
    Returns None, changing nothing, unless `day` is the open business date."""
    state = bank.state
    if state.business_date != day:
        return None
    if uow.fetchone("SELECT 1 FROM eod_runs WHERE business_date = ?", [day]):
        return None
    started = utcnow()
    nxt = day + dt.timedelta(days=1)
    settings = _settings(uow)
    internal = dict(uow.fetchall(
        "SELECT account_number, id FROM accounts WHERE customer_id IS NULL"))
    out = DayClosed(business_date=day)
    clock = [time.perf_counter()]

    def step(name):
        now = time.perf_counter()
        out.step_seconds[name] = now - clock[0]
        clock[0] = now
    standing_orders.run_due(bank, actor, uow, day, out)
    step("standing orders")
    if uow.fetchone(LOANS_TO_SERVE_SQL)[0]:
        _collect(bank, actor, uow, day, internal, out)
        _late_fees(bank, actor, uow, day, out)
        age_arrears(uow, nxt)
        (out.loans_in_arrears,) = uow.fetchone(
            "SELECT count(*) FROM loans WHERE status = 'active' AND days_past_due > 0")
        _accrue_loans(bank, actor, uow, day, internal, out)
        _provision(bank, actor, uow, day, internal, settings, out)
    step("loans")
    _accrue(uow, day, out)
    step("deposit accrual")
    # Maturities after the day's accrual (the deposit's last day earns), before the period end.
    term_deposits.mature(bank, actor, uow, day, out)
    step("term deposit maturity")
    deposit_eod.post_period_end(bank, actor, uow, day, internal, out)
    step("period-end posting")
    deposit_eod.dormancy(bank, actor, uow, day, settings, out)
    step("dormancy")
    uow.execute("INSERT INTO eod_runs (business_date, actor, started_at, finished_at, "
                + ", ".join(SUMMARY_FIELDS) + ") VALUES (?, ?, ?, ?, "
                + ", ".join("?" * len(SUMMARY_FIELDS)) + ")",
                [day, actor.username, started, utcnow(),
                 *(int(getattr(out, k)) for k in SUMMARY_FIELDS)])
    # The row exists from the first open (bank.py); a plain UPDATE is much cheaper in DuckDB
    # than an upsert.
    uow.execute("UPDATE settings SET value = ? WHERE key = 'business_date'", [nxt.isoformat()])
    bank.audit_row(uow, actor, "bank.end_of_day", "business_date", day.isoformat(),
                   before={"business_date": day.isoformat()},
                   after={**out.as_dict(), "business_date": nxt.isoformat()})
    # The heads cover everything the day wrote, this end of day's own audit row included.
    out.chain_heads = bank.chain.record_heads(uow, day)
    step("run record and chain heads")
    # Last, so that nothing below can fail after the writer has moved to the next date.
    state.business_date = nxt
    return out


def _collect(bank, actor, uow, day, internal, out):
    due = uow.fetch_df(COLLECT_SQL, [day])
    if len(due) == 0:
        return
    alloc = allocate(uow, due, day)
    parts = alloc.groupby("loan_id")[["fee_cents", "interest_cents", "principal_cents"]].sum()
    due = due.join(parts, on="loan_id").fillna(0)
    for column in ("fee_cents", "interest_cents", "principal_cents"):
        due[column] = due[column].astype("int64")
    if not (due["fee_cents"] + due["interest_cents"] + due["principal_cents"]
            == due["amount_cents"]).all():
        raise AssertionError("a collection was not fully allocated to what the loan owes")
    due = due.reset_index(drop=True)
    due["tx_ref"] = range(len(due))
    gl = INTERNAL["loans_receivable"]
    tx = pd.DataFrame({
        "tx_ref": due["tx_ref"], "kind": "loan_repayment", "amount_cents": due["amount_cents"],
        "memo": [f"Loan {lid} instalment collected at end of day" for lid in due["loan_id"]],
        "source_account": due["account_number"], "target_account": gl})
    legs = [pd.DataFrame({"tx_ref": due["tx_ref"], "account_id": due["account_id"],
                          "amount_cents": -due["amount_cents"]})]
    for code, column in (("loans_receivable", "principal_cents"),
                         ("interest_income", "interest_cents"), ("fee_income", "fee_cents")):
        part = due[due[column] > 0]
        legs.append(pd.DataFrame({"tx_ref": part["tx_ref"],
                                  "account_id": internal[INTERNAL[code]],
                                  "amount_cents": part[column]}))
    postings = pd.concat(legs, ignore_index=True)
    ids = post_frames(bank, actor, uow, tx, postings, "eod.loan_collection")
    apply_allocation(uow, alloc)
    record_payments(uow, pd.DataFrame({
        "transaction_id": ids[due["tx_ref"].to_numpy()], "loan_id": due["loan_id"],
        "business_date": day, "method": "automatic", "source_account": due["account_number"],
        "amount_cents": due["amount_cents"], "fee_cents": due["fee_cents"],
        "interest_cents": due["interest_cents"], "principal_cents": due["principal_cents"],
        "prepayment_cents": 0, "actor": actor.username}))
    out.loans_paid_off = len(close_paid_off(uow, day, due["loan_id"].tolist()))
    out.loans_collected = len(due)
    out.collected_cents = int(due["amount_cents"].sum())


def _late_fees(bank, actor, uow, day, out):
    """Charge each active loan's own late fee once on an instalment still unpaid at the end of
    its due date + grace days: the fee and grace days are the loan's snapshot of its product
    (loans.late_fee_cents, late_fee_grace_days; issue 9); a fee of 0 charges nothing."""
    where = ("l.status = 'active' AND l.late_fee_cents > 0 AND loan_schedule.fee_cents = 0 "
             "AND loan_schedule.due_date + l.late_fee_grace_days <= ? "
             "AND (loan_schedule.interest_paid_cents < loan_schedule.interest_cents "
             "OR loan_schedule.principal_paid_cents < loan_schedule.principal_cents)")
    late = uow.fetchall(
        "SELECT loan_schedule.loan_id, l.late_fee_cents, l.late_fee_grace_days "
        "FROM loan_schedule JOIN loans l ON l.id = loan_schedule.loan_id "
        f"WHERE {where} ORDER BY loan_schedule.loan_id, loan_schedule.n", [day])
    if not late:
        return
    uow.execute("UPDATE loan_schedule SET fee_cents = l.late_fee_cents, fee_date = ? "
                f"FROM loans l WHERE l.id = loan_schedule.loan_id AND {where}", [day, day])
    groups = {}
    for lid, fee, grace in late:
        groups.setdefault((int(fee), int(grace)), []).append(lid)
    for (fee, grace), ids in sorted(groups.items()):
        audit_set(bank, uow, actor, "loan.late_fee", "loan", ids, None,
                  {"fee_cents": fee, "grace_days": grace, "business_date": day})
    out.late_fees_charged = len(late)
    out.late_fee_cents = sum(int(fee) for _, fee, _ in late)


NON_ACCRUAL_DAYS = 90

# Interest accrued and unpaid per active accruing loan as of the end of business date D (value
# date D+1, parameter ? = D+1), from the schedule cache: unpaid interest of instalments due by
# then, plus the coming instalment's interest for the days of its period so far, exactly as
# loan_replay computes it for a period whose interest-bearing principal did not change
# (opening balance x rate / 1200 x days / period days, half-up, in integer arithmetic), less
# what was paid ahead on it. `changed` marks periods where a prepayment changed the principal
# mid-period, and loans whose product terms this shortcut does not cover (a 30/360 day count,
# repayments other than monthly); those loans are replayed instead. The text depends on the
# engine's dialect only (store/sql.py), so it is built once per dialect.
@functools.cache
def loan_accrual_sql(dialect) -> str:
    """The loan accrual query in `dialect` (parameters: D+1 three times)."""
    days_so_far = dialect.days_between("start_date", "CAST(? AS DATE)")
    period_days = dialect.days_between("start_date", "due_date")
    accrued = dialect.int_div(
        f"2 * opening_cents * rate_e4 * {days_so_far} + 12000000 * {period_days}",
        f"24000000 * {period_days}")
    scheduled = dialect.int_div("2 * opening_cents * rate_e4 + 12000000", "24000000")
    return f"""
WITH s AS (
    SELECT loan_id, n, due_date, interest_cents, interest_paid_cents,
           coalesce(lag(due_date) OVER w, l.disbursement_date) AS start_date,
           coalesce(lag(balance_cents) OVER w, l.principal_cents) AS opening_cents,
           CAST(round(l.annual_rate_percent * 10000) AS DECIMAL(38, 0)) AS rate_e4,
           l.day_count = '30/360' OR l.frequency <> 'monthly' AS other_terms
    FROM loan_schedule JOIN loans l ON l.id = loan_schedule.loan_id
    WHERE l.status = 'active' AND l.days_past_due <= {NON_ACCRUAL_DAYS}
    WINDOW w AS (PARTITION BY loan_id ORDER BY n)
), coming AS (
    SELECT loan_id, interest_cents, interest_paid_cents,
           {accrued} AS accrued,
           other_terms OR interest_cents <> {scheduled} AS changed
    FROM (SELECT s.*, row_number() OVER (PARTITION BY loan_id ORDER BY n) AS nth
          FROM s WHERE due_date > CAST(? AS DATE)) f
    WHERE nth = 1
), due AS (
    SELECT loan_id, sum(interest_cents - interest_paid_cents) AS unpaid
    FROM s WHERE due_date <= CAST(? AS DATE) GROUP BY 1
)
SELECT coalesce(c.loan_id, d.loan_id) AS loan_id,
       CAST(coalesce(d.unpaid, 0) + coalesce(c.accrued - c.interest_paid_cents, 0) AS BIGINT)
           AS accrued_cents,
       coalesce(c.changed, false) AS changed
FROM coming c FULL JOIN due d ON d.loan_id = c.loan_id
"""


def _accrue_loans(bank, actor, uow, day, internal, out):
    """Accrual accounting for loan interest: keep GL1210 interest receivable at the interest
    earned and not yet paid (to the end of `day`) of each accruing loan, against GL4000
    interest income, one transaction a day for the whole change. Repayments still credit
    GL4000 with the interest they pay, so the next end of day settles the receivable by that
    amount and income is what was earned. A loan more than 90 days past due stops accruing
    (non-accrual) and its accrued interest is reversed; so is a loan paid off or written off.
    Interest paid ahead of its accrual nets against the receivable (interest in advance)."""
    nxt = day + dt.timedelta(days=1)
    # The targets beside what loan_accruals holds, in one statement: every loan with either.
    both = uow.fetch_df(
        "SELECT coalesce(t.loan_id, a.loan_id) AS loan_id, coalesce(t.accrued_cents, 0) AS "
        "accrued_cents, coalesce(t.changed, false) AS changed, CAST(coalesce(a.accrued_cents, "
        f"0) AS BIGINT) AS held_cents FROM ({loan_accrual_sql(uow.dialect)}) t "
        "FULL JOIN loan_accruals a ON a.loan_id = t.loan_id", [nxt, nxt, nxt])
    both["accrued_cents"] = both["accrued_cents"].astype("int64")
    changed = both[both["changed"]]
    if len(changed):
        from ..loans import _replay_in
        for index, lid in zip(changed.index, changed["loan_id"]):
            loan = bank.loans._loan_in(uow, int(lid))
            both.at[index, "accrued_cents"] = _replay_in(
                uow.fetchall, loan, work_calendar=bank.workdays.calendar()) \
                .accrued_interest(nxt)
    diff = both[both["accrued_cents"] != both["held_cents"]].reset_index(drop=True)
    diff = pd.DataFrame({"loan_id": diff["loan_id"].astype("int64"),
                         "accrued_cents": diff["accrued_cents"].astype("int64"),
                         "change_cents": (diff["accrued_cents"]
                                          - diff["held_cents"]).astype("int64")})
    out.loan_accrual_change_cents = _post_loan_changes(
        bank, actor, uow, day, internal, diff, kind="loan_accrual",
        memo=f"Loan interest accrued for {day}", debit="interest_receivable",
        credit="interest_income", table="loan_accruals",
        columns="loan_id, accrued_cents, CAST(business_date AS DATE)",
        nonzero="accrued_cents")


PROVISION_KEYS = ("loan_provision_bp_current", "loan_provision_bp_1_30",
                  "loan_provision_bp_31_60", "loan_provision_bp_61_90",
                  "loan_provision_bp_over_90")


def provision_basis_points(settings) -> list[int]:
    """Hundredths of a percent of outstanding principal per bucket (loans.BUCKETS order)."""
    from ..settings import REGISTRY
    return [int(settings.get(key, REGISTRY[key].default)) for key in PROVISION_KEYS]


def _post_loan_changes(bank, actor, uow, day, internal, diff, *, kind, memo, debit, credit,
                       table, columns, nonzero) -> int:
    """Post the day's total change_cents of per-loan figures as one transaction (debit the
    `debit` internal account, credit `credit`; reversed when negative) and store the new
    per-loan rows of `table` (rows whose `nonzero` column is zero are dropped)."""
    if len(diff) == 0:
        return 0
    change = int(diff["change_cents"].sum())
    if change:
        debit, credit = INTERNAL[debit], INTERNAL[credit]
        tx = pd.DataFrame({"tx_ref": [0], "kind": [kind], "amount_cents": [abs(change)],
                           "memo": [memo],
                           "source_account": [debit if change > 0 else credit],
                           "target_account": [credit if change > 0 else debit]})
        postings = pd.DataFrame({"tx_ref": [0, 0],
                                 "account_id": [internal[debit], internal[credit]],
                                 "amount_cents": [-change, change]})
        # Both legs are internal accounts, which the bulk path's overdraft check never counts
        # (it reads customer accounts only): skipping it saves a statement and changes nothing.
        post_frames(bank, actor, uow, tx, postings, f"eod.{kind}", allow_overdraw=True)
    diff = diff.assign(business_date=day)
    with uow.scan("loan_changes", diff):
        uow.execute(f"DELETE FROM {table} WHERE loan_id IN (SELECT loan_id FROM loan_changes)")
        uow.execute(f"INSERT INTO {table} SELECT {columns} FROM loan_changes "
                    f"WHERE {nonzero} <> 0")
    return change


def _provision(bank, actor, uow, day, internal, settings, out):
    """Keep each loan's loan-loss provision at its bucket's percentage of the outstanding
    principal (after arrears are aged): one transaction a day for the whole change, GL5200
    provision expense against GL1290 loan-loss provision; loans no longer active release
    theirs. loan_provisions holds the per-loan figures that verify() sums against GL1290."""
    points = provision_basis_points(settings)
    # The five rates as constant rows typed as the frame registered before was (VARCHAR,
    # BIGINT, DOUBLE PRECISION, which both engines spell so): a registered frame costs a
    # registration on DuckDB and three statements on PostgreSQL (a temporary table, COPY,
    # DROP); five constant rows in the query cost nothing.
    rates = " UNION ALL ".join(
        ["SELECT CAST(? AS VARCHAR) AS bucket, CAST(? AS BIGINT) AS basis_points, "
         "CAST(? AS DOUBLE PRECISION) AS percent"] * len(BUCKETS))
    params = [v for bucket, p in zip(BUCKETS, points) for v in (bucket, p, p / 100)]
    changed = uow.fetch_df(
        "SELECT coalesce(t.loan_id, p.loan_id) AS loan_id, coalesce(t.bucket, 'closed') "
        "AS bucket, coalesce(t.percent, 0) AS percent, CAST(coalesce(t.target, 0) AS "
        "BIGINT) AS provision_cents, CAST(coalesce(t.target, 0) - coalesce("
        "p.provision_cents, 0) AS BIGINT) AS change_cents FROM (SELECT l.id AS loan_id, "
        "l.arrears_bucket AS bucket, r.percent, "
        + uow.dialect.int_div("2 * CAST(l.principal_outstanding_cents AS DECIMAL(38, 0)) "
                              "* r.basis_points + 10000", "20000")
        + f" AS target FROM loans l JOIN ({rates}) r ON r.bucket = l.arrears_bucket "
        "WHERE l.status = 'active') t "
        "FULL JOIN loan_provisions p ON p.loan_id = t.loan_id "
        "WHERE coalesce(t.target, 0) <> coalesce(p.provision_cents, 0) "
        "OR coalesce(t.bucket, 'closed') <> coalesce(p.bucket, 'closed')", params)
    out.provision_change_cents = _post_loan_changes(
        bank, actor, uow, day, internal, changed, kind="loan_provision",
        memo=f"Loan-loss provision for {day}", debit="provision_expense",
        credit="loan_loss_provision", table="loan_provisions",
        columns="loan_id, bucket, percent, provision_cents, CAST(business_date AS DATE)",
        nonzero="provision_cents")


def _accrue(uow, day, out):
    """Step 4 (deposit_eod.accrue); its own name here so that tests can break a day in it."""
    deposit_eod.accrue(uow, day, out)


def recent_runs(bank, actor, limit=30) -> pd.DataFrame:
    """The latest closed business days, newest first, for the end-of-day page."""
    bank.require(actor, "bank.end_of_day", entity="business_date")
    df = bank.read_df(f"SELECT * FROM eod_runs ORDER BY business_date DESC LIMIT {int(limit)}")
    # A value date, not midnight of one (pandas reads DATE as a timestamp).
    df["business_date"] = pd.to_datetime(df["business_date"]).dt.date
    df["seconds"] = [(b - a).total_seconds() for a, b in zip(df["started_at"],
                                                              df["finished_at"])]
    return df
