"""Reports: monthly statements, interest certificates, ledger views and the managers' analytics.

`bank.reports` is the one doorway to everything a manager looks at and every document a
customer receives. It checks who asks (customers see statements of their own accounts only;
analytics and ledger views are for managers), then runs the SQL in `bankms.reporting.analytics` and turns
integer cents into Decimals at the edge. Statements reconcile by construction: the closing
balance is the opening balance plus the signed postings of the month, all in integer cents.

Documents and ledger views (statements, certificates, trial balance, general ledger) follow the
bank's business date of each transaction, so that interest which end of day books for 31 March
is on March's statement even when the run happened on 2 April. The dashboard's analytics follow
the time money moved (`posted_at`), which needs no join and keeps them fast; the two differ only
for postings booked on a business day other than the calendar day they were made.
"""
from __future__ import annotations

import calendar
import datetime as dt
import io
import threading
import time
import zipfile
from dataclasses import dataclass

import pandas as pd

from ..domain import accountnum
from . import analytics, documents
from ..services import businessday
from .analytics import Filters
from ..domain.dates import as_date
from ..domain.errors import AccountNotFound, CustomerNotFound, InvalidInput
from ..domain.labels import transaction_label, transaction_labels
from ..domain.money import to_money
from ..domain.text import csv_text

def describe(kind, memo, source, target, amount_cents, channel=None) -> str:
    """What a statement line says: the transaction's label (labels.transaction_label: 'Card
    payment', 'Salary credit'), for a transfer with the other account ('Transfer to
    400000000123', 'Standing order to ...'), then the memo: 'Card payment FreshMart',
    'Transfer to 400000000123 - rent'."""
    if kind == "transfer":
        base = "Standing order" if channel == "standing_order" else "Transfer"
        text = (f"{base} to {target}" if amount_cents < 0 else f"{base} from {source}")
    else:
        text = transaction_label(kind, channel, amount_cents)
    if isinstance(memo, str) and memo.strip():
        # "Interest for December 2026", not "Interest - Interest for December 2026", and
        # "Card payment FreshMart", not "Card payment - Card payment FreshMart".
        head = memo.strip()[:len(text)]
        rest = memo.strip()[len(text):]
        if head.lower() == text.lower() and (not rest or not rest[0].isalnum()):
            return memo.strip()
        text += f" - {memo.strip()}"
    return text


def _money_or_blank(cents: int) -> str:
    return str(to_money(cents)) if cents else ""


@dataclass
class Statement:
    """One account's month. Amounts are integer cents (`*_cents`) with Decimal properties.

    `lines` has one row per posting: date, posted_at, transaction_id, kind, label
    (labels.transaction_label), description (label, other account and memo),
    amount_cents (signed: credits positive), balance_cents (after the line), and the same as
    Decimals in `amount` and `balance`; tax_withheld_cents and gross_cents split an interest
    line (amount = gross - tax; 0 and the amount on other lines).

    Interest: interest_gross_cents - tax_withheld_cents = interest_cents, the net credited
    (reversals of interest count with their signs)."""

    account_number: str
    customer_id: int
    holder: str
    kind: str
    year: int
    month: int
    period_start: dt.date
    period_end: dt.date
    opening_cents: int
    credits_cents: int
    debits_cents: int
    interest_cents: int
    fees_cents: int
    closing_cents: int
    lines: pd.DataFrame
    interest_gross_cents: int = 0
    tax_withheld_cents: int = 0

    opening_balance = property(lambda self: to_money(self.opening_cents))
    closing_balance = property(lambda self: to_money(self.closing_cents))
    total_credits = property(lambda self: to_money(self.credits_cents))
    total_debits = property(lambda self: to_money(self.debits_cents))
    interest = property(lambda self: to_money(self.interest_cents))
    interest_gross = property(lambda self: to_money(self.interest_gross_cents))
    tax_withheld = property(lambda self: to_money(self.tax_withheld_cents))
    fees = property(lambda self: to_money(self.fees_cents))

    @property
    def filename(self) -> str:
        return f"statement-{self.account_number}-{self.year}-{self.month:02d}"

    def reconciles(self) -> bool:
        return (self.opening_cents + self.credits_cents - self.debits_cents == self.closing_cents
                and (self.lines.empty or int(self.lines["balance_cents"].iloc[-1])
                     == self.closing_cents))

    def to_pdf(self) -> bytes:
        return documents.statement_pdf(self)

    def to_csv(self) -> str:
        """A short block of account, period and totals, a blank line, then one row per line."""
        head = pd.DataFrame([
            ("Account", self.account_number), ("Holder", self.holder), ("Kind", self.kind),
            ("Period start", self.period_start.isoformat()),
            ("Period end", self.period_end.isoformat()),
            ("Opening balance", str(self.opening_balance)),
            ("Money in", str(self.total_credits)), ("Money out", str(self.total_debits)),
            ("Interest (gross)", str(self.interest_gross)),
            ("Tax withheld", str(self.tax_withheld)),
            ("Interest (net)", str(self.interest)), ("Fees", str(self.fees)),
            ("Closing balance", str(self.closing_balance)),
        ])
        table = pd.DataFrame({
            "date": [d.isoformat() for d in self.lines["date"]],
            "transaction_id": self.lines["transaction_id"],
            "description": self.lines["description"],
            "money_in": [_money_or_blank(max(int(c), 0)) for c in self.lines["amount_cents"]],
            "money_out": [_money_or_blank(max(-int(c), 0)) for c in self.lines["amount_cents"]],
            "balance": [str(to_money(c)) for c in self.lines["balance_cents"]],
        })
        # No holder or description can start a formula; amounts stay numbers (bankms.domain.text).
        return csv_text(head, header=False) + "\n" + csv_text(table)


@dataclass
class InterestCertificate:
    """Interest paid, early-withdrawal penalties and tax withheld for a customer's year."""

    customer_id: int
    full_name: str
    year: int
    interest_paid_cents: int
    penalties_cents: int
    tax_withheld_cents: int
    accounts: pd.DataFrame  # account_number, kind, interest_paid_cents, penalties_cents, ...

    interest_paid = property(lambda self: to_money(self.interest_paid_cents))
    penalties = property(lambda self: to_money(self.penalties_cents))
    tax_withheld = property(lambda self: to_money(self.tax_withheld_cents))

    @property
    def filename(self) -> str:
        return f"interest-certificate-{self.customer_id}-{self.year}"

    def to_pdf(self) -> bytes:
        return documents.certificate_pdf(self)


# The business date an account opened on. Rows loaded in bulk without it (older loaders) fall
# back to the opening stamp's day rather than vanish from statements.
OPENED = "coalesce(a.opened_date, CAST(a.opened_at AS DATE))"


def month_bounds(year, month) -> tuple[dt.date, dt.date]:
    try:
        year, month = int(year), int(month)
    except (TypeError, ValueError):
        raise InvalidInput("Give the year and month as numbers, for example 2026 and 1.") \
            from None
    if not 1 <= month <= 12 or not 1900 <= year <= 9999:
        raise InvalidInput("The month must be 1 to 12 and the year a four-digit year.")
    return dt.date(year, month, 1), dt.date(year, month, calendar.monthrange(year, month)[1])


class Reports:
    # How many analytics answers are kept at most; past that it starts again from none.
    ANSWERS_MAX = 256

    def __init__(self, bank):
        self._bank = bank
        # Analytics answers by (what, filters): (monotonic time computed, answer). See _aged.
        self._answers = {}
        self._answers_lock = threading.Lock()
        # The clock of answers' ages (seconds, never going back); tests replace it.
        self.monotonic = time.monotonic

    # -- shared ------------------------------------------------------------------------------
    @property
    def source(self) -> analytics.Source:
        return analytics.duckdb_source(self._bank)

    def _on_read_side(self, fn):
        """(fn(source), as of) for the managers' analytics and ledger views: on the bank's
        read model when it has one (BANKMS_READ_MODEL, bank.read_model_setting), refreshed
        first when older than the bank's read_model_max_age_s and read in one snapshot of it,
        with its time (aware UTC, the source's state copied); else on the bank itself, with
        None. Statements and certificates stay on the bank: a customer's document must hold
        the payment just made."""
        rm = self._bank.read_model
        if rm is None:
            return fn(self.source), None
        rm.ensure_fresh(self._bank.read_model_max_age_s)
        with rm.snapshot() as reader:
            as_of = rm.freshness(reader).as_of
            value = fn(analytics.Source(reader.fetch_df, rm.dialect))
        return value, (None if as_of is None else as_of.replace(tzinfo=dt.timezone.utc))

    def _read_side(self, fn) -> pd.DataFrame:
        """fn(source)'s DataFrame by _on_read_side, its attrs["as_of"] the read model's time
        (ISO text, as _aged writes it) when it came from one."""
        answer, as_of = self._on_read_side(fn)
        if as_of is not None:
            answer.attrs["as_of"] = as_of.isoformat()
        return answer

    def today(self) -> dt.date:
        """The latest day reports can show: the business date, or today in the bank's time
        zone if that is later."""
        return max(self._bank.business_date, businessday.calendar_date(self._bank))

    def filters(self, start=None, end=None, kind="all", as_of=None, *, days=90) -> Filters:
        end = end or self.today()
        end = as_date(end, "end date")
        start = start or end - dt.timedelta(days=days - 1)
        return Filters(start=start, end=end, kind=kind, as_of=as_of)

    def loans_available(self) -> bool:
        return analytics.loans_available(self.source)

    def dormancy_rule(self, day=None) -> str:
        """How long an account goes without its holder's transactions before it is dormant,
        in words ('12 months'; per product when they differ), on `day` (default: the business
        date): the one definition that end of day applies and the dashboard lists
        (analytics.dormancy_periods). Not restricted: the same words are on every page that
        speaks of dormancy."""
        day = as_date(day, "day") if day is not None else self._bank.business_date
        return analytics.dormancy_rule(analytics.dormancy_periods(self.source, day))

    # -- managers' analytics -----------------------------------------------------------------
    def _aged(self, key, compute, fresh, max_age_s=None):
        """compute()'s DataFrame, or the one computed for `key` less than the setting
        dashboard_max_age_s ago (0: always computed; `fresh` computes it anyway). Unlike
        Bank.kept, which is exact and forgets at every write, these answers outlive
        postings: issue 13 allows a manager's figures to be a few seconds old if the page
        says so. The answer's attrs["as_of"] is when it was computed (ISO text, UTC, Bank.clock;
        Reports.as_of reads it);
        each caller gets its own shallow copy (pandas copies on write)."""
        try:
            hash(key)
        except TypeError:
            # A selection of a value that cannot be a key (none today): not kept.
            fresh, key = True, None
        if max_age_s is None:
            max_age_s = self._bank.settings.value("dashboard_max_age_s")
        hit = None if key is None else self._answers.get(key)
        if (not fresh and max_age_s > 0 and hit is not None
                and self.monotonic() - hit[0] < max_age_s):
            # Served from memory without releasing the GIL: let a busy writer run first.
            self._bank.give_way()
            return hit[1].copy(deep=False)
        started = self.monotonic()
        as_of = businessday.as_utc(self._bank.clock())
        answer = compute()
        # Text (ISO 8601, UTC): Streamlit carries a frame's attrs to the browser as JSON. An
        # answer from the read model (_read_side) already says the time of its copy.
        answer.attrs.setdefault("as_of", as_of.isoformat())
        if key is not None:
            with self._answers_lock:
                if len(self._answers) >= self.ANSWERS_MAX:
                    self._answers.clear()
                if key[0] == "query":
                    # The rows behind figures of these filters were kept from before this
                    # figure: forgotten, so that rows are never older than the figure they open.
                    for kept in [k for k in self._answers
                                 if k[0] == "drill" and k[2] == key[2]]:
                        del self._answers[kept]
                self._answers[key] = (started, answer)
        return answer.copy(deep=False)

    def forget_answers(self, actor) -> None:
        """Forget every kept analytics answer (the page's "Refresh now"), so that the next
        figures and the rows behind them are computed afresh together. Managers only."""
        self._bank.require(actor, "report.read", entity="report", entity_id="refresh")
        with self._answers_lock:
            self._answers.clear()
        if self._bank.read_model is not None:
            # On demand: the next figures come from a copy pulled now.
            self._bank.read_model.ensure_fresh(0)

    @staticmethod
    def as_of(*answers) -> dt.datetime | None:
        """When the oldest of these answers (query, dashboard or drill DataFrames, or dicts of
        them) was computed: aware UTC, or None if none says."""
        stamps = []
        for answer in answers:
            for df in (answer.values() if isinstance(answer, dict) else [answer]):
                if df.attrs.get("as_of") is not None:
                    stamps.append(dt.datetime.fromisoformat(df.attrs["as_of"]))
        return min(stamps) if stamps else None

    def query(self, actor, name: str, filters: Filters, *, fresh=False,
              _max_age_s=None) -> pd.DataFrame:
        """One dashboard or customer-analytics query by name (see analytics.DASHBOARD and
        analytics.CUSTOMER); managers only, checked at every call. The answer may be up to
        dashboard_max_age_s old unless `fresh`; its attrs["as_of"] says when it was computed
        (_aged)."""
        self._bank.require(actor, "report.read", entity="report", entity_id=name)
        fn = analytics.DASHBOARD.get(name) or analytics.CUSTOMER.get(name)
        if fn is None:
            raise InvalidInput(f"There is no report called '{name}'.")
        if not isinstance(filters, Filters):
            raise InvalidInput("Give the report's filters as a bankms.reporting.analytics.Filters.")
        return self._aged(("query", name, filters), lambda: self._read_side(lambda src: fn(src, filters)), fresh,
                          _max_age_s)

    def drill(self, actor, figure: str, filters: Filters, *, fresh=False,
              **selection) -> pd.DataFrame:
        """The rows behind one figure, chart bar or point, or table row (bankms.reporting.drill.DRILLS:
        its name, then what was picked, e.g. day= and kind= for a bar of daily volume). A money
        figure is the sum of the rows' value column (`drill_total`), a count their number.
        Managers only, as the figures; InvalidInput for an unknown figure or selection. Kept
        as long as the figures (_aged), so that rows are no older than the figure they open."""
        from . import drill
        self._bank.require(actor, "report.read", entity="report", entity_id=figure)
        key = ("drill", figure, filters, tuple(sorted(selection.items())))
        return self._aged(key, lambda: self._read_side(
            lambda src: drill.drill(src, figure, filters, selection)), fresh)

    @staticmethod
    def drill_total(figure: str, rows: pd.DataFrame) -> int:
        """What drilled rows add up to: cents for a money figure, rows for a count."""
        from . import drill
        return drill.total(figure, rows)

    def provisioning(self, actor) -> pd.DataFrame:
        """The provisioning report by arrears bucket (analytics.provisioning): loans,
        outstanding principal, rate, provision required, provision booked by the last end of
        day, difference; with Decimal columns beside the *_cents ones. Managers only."""
        from ..services.eod.run import provision_basis_points
        self._bank.require(actor, "report.read", entity="report", entity_id="provisioning")
        if not self.loans_available():
            raise InvalidInput("This bank has no loans module.")
        points = provision_basis_points(self._bank.settings)
        return _with_money(self._read_side(lambda src: analytics.provisioning(src, points)),
                           "outstanding_cents",
                           "required_cents", "booked_cents", "difference_cents")

    def dashboard(self, actor, filters: Filters, *, fresh=False) -> dict[str, pd.DataFrame]:
        """Every dashboard query by name (query: each may be up to dashboard_max_age_s old
        unless `fresh`; Reports.as_of(answer) says when the oldest was computed)."""
        # The setting is read once for the whole dashboard rather than once per query.
        max_age_s = self._bank.settings.value("dashboard_max_age_s")
        return {name: self.query(actor, name, filters, fresh=fresh, _max_age_s=max_age_s)
                for name in analytics.DASHBOARD}

    def rfm_summary(self, members: pd.DataFrame) -> pd.DataFrame:
        return analytics.rfm_summary(members)

    def trial_balance(self, actor, as_of=None) -> pd.DataFrame:
        """Ledger lines with debit/credit columns as of the day (now if None); sums to zero."""
        self._bank.require(actor, "report.read", entity="report", entity_id="trial_balance")
        as_of = None if as_of is None else as_date(as_of, "as-of date")
        return _with_money(self._read_side(lambda src: analytics.trial_balance(src, as_of)),
                           "debit_cents", "credit_cents", "balance_cents")

    def general_ledger(self, actor, start, end) -> pd.DataFrame:
        self._bank.require(actor, "report.read", entity="report", entity_id="general_ledger")
        f = Filters(start=start, end=end)
        return _with_money(self._read_side(
            lambda src: analytics.general_ledger(src, f.start, f.end)),
                           "opening_cents", "debit_cents", "credit_cents", "closing_cents")

    def ledger_lines(self, actor, account_number, start, end, limit=2000):
        """(opening cents, DataFrame of the first `limit` postings) of any account."""
        self._bank.require(actor, "report.read", entity="report", entity_id="ledger_lines")
        f = Filters(start=start, end=end)
        number = str(account_number).strip()
        if not self._bank.read_one("SELECT 1 FROM accounts WHERE account_number = ?", [number]):
            raise AccountNotFound(f"There is no account {number}.")
        (opening, df), as_of = self._on_read_side(
            lambda src: analytics.ledger_lines(src, number, f.start, f.end, limit))
        if as_of is not None:
            df.attrs["as_of"] = as_of.isoformat()
        # What each posting was, as people say it, beside the kind and channel codes.
        df.insert(df.columns.get_loc("kind") + 1, "label", transaction_labels(
            df["kind"], df["channel"], df["amount_cents"]))
        return opening, _with_money(df, "amount_cents", "balance_cents")

    def ledger_accounts(self, actor) -> pd.DataFrame:
        """The internal ledger accounts (number and name), for picking one."""
        self._bank.require(actor, "report.read", entity="report", entity_id="ledger_accounts")
        return self._bank.read_df("SELECT account_number, name FROM accounts "
                                  "WHERE customer_id IS NULL ORDER BY account_number")

    # -- statements --------------------------------------------------------------------------
    def _account(self, actor, account_number):
        number = accountnum.normalize(account_number)
        row = self._bank.read_one(
            f"SELECT a.id, a.account_number, a.customer_id, c.full_name, a.kind, {OPENED} "
            "FROM accounts a JOIN customers c ON c.id = a.customer_id "
            "WHERE a.account_number = ?", [number])
        if row is None:
            raise AccountNotFound(f"There is no account {number}.")
        self._bank.require(actor, "report.statement", row[2], entity="account",
                           entity_id=number)
        return row

    def _check_month(self, first: dt.date, last: dt.date, opened_date) -> None:
        """Statements follow value dates: the account's opening is a business date too."""
        if first > self.today():
            raise InvalidInput(f"{first:%B %Y} has not started yet; there is no statement.")
        if opened_date is not None and last < opened_date:
            raise InvalidInput(f"The account was opened on {opened_date:%Y-%m-%d}; there is no "
                               f"statement for {first:%B %Y}.")

    def statement(self, actor, account_number, year, month) -> Statement:
        """The statement of one account for one calendar month (customers: own accounts)."""
        first, last = month_bounds(year, month)
        account_id, number, customer_id, holder, kind, opened_date = self._account(
            actor, account_number)
        self._check_month(first, last, opened_date)
        opening, lines = analytics.statement_rows(self.source, account_id, first, last)
        return build_statement((number, customer_id, holder, kind), first, last, opening, lines)

    def statement_months(self, actor, account_number) -> list[tuple[int, int]]:
        """(year, month) of every statement the account has, newest first."""
        *_, opened_date = self._account(actor, account_number)
        month = self.today().replace(day=1)
        first = (opened_date or month).replace(day=1)
        out = []
        while month >= first:
            out.append((month.year, month.month))
            month = (month - dt.timedelta(days=1)).replace(day=1)
        return out

    def statements_zip(self, actor, year, month, progress=None) -> bytes:
        """Every customer account's statement of the month (PDF and CSV) in one zip; staff
        only. `progress(done, total)` is called as statements are written."""
        self._bank.require(actor, "report.statement", None, entity="report",
                           entity_id="statements_zip")
        first, last = month_bounds(year, month)
        self._check_month(first, last, None)
        accounts = self._bank.read_df(
            "SELECT a.id AS account_id, a.account_number, a.customer_id, c.full_name, a.kind "
            "FROM accounts a JOIN customers c ON c.id = a.customer_id "
            f"WHERE {OPENED} <= ? AND (a.closed_date IS NULL OR a.closed_date >= ?) "
            "ORDER BY a.account_number", [last, first])
        openings, lines = analytics.month_rows(self.source, first, last)
        opening_of = dict(zip(openings["account_id"], openings["opening_cents"]))
        by_account = {key: group for key, group in lines.groupby("account_id", sort=False)}
        empty = lines.iloc[0:0]
        total = len(accounts)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
            for done, (account_id, number, customer_id, holder, kind) in enumerate(
                    accounts.itertuples(index=False, name=None), start=1):
                s = build_statement((number, int(customer_id), holder, kind), first, last,
                                    int(opening_of.get(account_id, 0)),
                                    by_account.get(account_id, empty))
                zf.writestr(f"{s.filename}.pdf", s.to_pdf())
                zf.writestr(f"{s.filename}.csv", s.to_csv())
                if progress is not None:
                    progress(done, total)
        if progress is not None and total == 0:
            progress(0, 0)
        return buffer.getvalue()

    # -- certificates ------------------------------------------------------------------------
    def interest_certificate(self, actor, customer_id, year) -> InterestCertificate:
        bank = self._bank
        cid = bank.customers._id(customer_id)
        bank.require(actor, "report.statement", cid, entity="customer", entity_id=cid)
        first, _ = month_bounds(year, 1)
        if first > self.today():
            raise InvalidInput(f"The year {first.year} has not started yet.")
        row = bank.read_one("SELECT full_name FROM customers WHERE id = ?", [cid])
        if row is None:
            raise CustomerNotFound(f"There is no customer {cid}.")
        rows = analytics.interest_rows(self.source, cid, first, first.replace(month=12, day=31))
        accounts = bank.read_df("SELECT account_number, kind FROM accounts "
                                "WHERE customer_id = ? ORDER BY id", [cid])
        wide = rows.pivot_table(index="account_number", columns="effective_kind",
                                values="amount_cents", aggfunc="sum", fill_value=0)
        for kind in ("interest", "penalty", "tax_withholding"):
            if kind not in wide:
                wide[kind] = 0
        per = accounts.set_index("account_number").join(wide).fillna(0)
        per["interest_paid_cents"] = per["interest"].astype("int64")
        # Penalties and tax are debits (negative postings); the certificate shows them as
        # positive amounts taken.
        per["penalties_cents"] = (-per["penalty"]).astype("int64")
        per["tax_withheld_cents"] = (-per["tax_withholding"]).astype("int64")
        per = per.reset_index()[["account_number", "kind", "interest_paid_cents",
                                 "penalties_cents", "tax_withheld_cents"]]
        return InterestCertificate(
            customer_id=cid, full_name=row[0], year=first.year,
            interest_paid_cents=int(per["interest_paid_cents"].sum()),
            penalties_cents=int(per["penalties_cents"].sum()),
            tax_withheld_cents=int(per["tax_withheld_cents"].sum()), accounts=per)


def _tax_note(amount_cents: int, tax_cents: int) -> str:
    """What an interest line adds when tax was withheld from it: ' (gross 10.41, tax withheld
    1.56)'; nothing for other lines."""
    if not tax_cents:
        return ""
    return (f" (gross {to_money(amount_cents + tax_cents)}, tax withheld "
            f"{to_money(tax_cents)})")


def build_statement(account, first: dt.date, last: dt.date, opening_cents: int,
                    lines: pd.DataFrame) -> Statement:
    """Totals and running balances of a month from its opening balance and postings."""
    number, customer_id, holder, kind = account
    lines = lines.reset_index(drop=True)
    amounts = [int(c) for c in lines["amount_cents"]]
    running, balance = [], opening_cents
    for amount in amounts:
        balance += amount
        running.append(balance)
    effective = list(lines["effective_kind"])
    # Lines read before channels existed (or without the column) have none.
    channels = (list(lines["channel"]) if "channel" in lines else [None] * len(amounts))
    taxes = ([int(c) for c in lines["tax_cents"]] if "tax_cents" in lines
             else [0] * len(amounts))
    out = pd.DataFrame({
        "date": [ts.date() for ts in lines["business_date"]],
        "posted_at": lines["posted_at"],
        "transaction_id": lines["transaction_id"].astype("int64"),
        "kind": lines["kind"],
        "label": [transaction_label(k, c, a) for k, c, a in zip(lines["kind"], channels,
                                                                  amounts)],
        "description": [describe(k, m, s, t, a, c) + _tax_note(a, x)
                        for k, m, s, t, a, x, c in zip(
            lines["kind"], lines["memo"], lines["source_account"], lines["target_account"],
            amounts, taxes, channels)],
        "amount_cents": pd.Series(amounts, dtype="int64"),
        "balance_cents": pd.Series(running, dtype="int64"),
        "gross_cents": pd.Series([a + x for a, x in zip(amounts, taxes)], dtype="int64"),
        "tax_withheld_cents": pd.Series(taxes, dtype="int64"),
    })
    out["amount"] = [to_money(c) for c in amounts]
    out["balance"] = [to_money(c) for c in running]
    credits = sum(a for a in amounts if a > 0)
    debits = -sum(a for a in amounts if a < 0)
    return Statement(
        account_number=number, customer_id=customer_id, holder=holder, kind=kind,
        year=first.year, month=first.month, period_start=first, period_end=last,
        opening_cents=opening_cents, credits_cents=credits, debits_cents=debits,
        interest_cents=sum(a for a, k in zip(amounts, effective) if k == "interest"),
        interest_gross_cents=sum(a + x for a, x, k in zip(amounts, taxes, effective)
                                 if k == "interest"),
        tax_withheld_cents=sum(x for x, k in zip(taxes, effective) if k == "interest"),
        fees_cents=-sum(a for a, k in zip(amounts, effective) if k == "fee"),
        closing_cents=opening_cents + credits - debits, lines=out)


def key_figures_table(df: pd.DataFrame) -> pd.DataFrame:
    """The key figures for reading and downloading: money as Decimal currency units, counts as
    whole numbers, shares in percent, each with its change against the previous period."""
    rows = []
    for figure, unit, value, previous in df[["figure", "unit", "value", "previous"]].itertuples(
            index=False, name=None):
        if unit == "money":
            value, previous = to_money(value), to_money(previous)
        rows.append((figure, {"money": "$", "percent": "%"}.get(unit, "count"), value, previous,
                     value - previous))
    return pd.DataFrame(rows, columns=["figure", "unit", "value", "previous", "change"])


def with_money(df: pd.DataFrame) -> pd.DataFrame:
    """A copy for showing and downloading: every `*_cents` column becomes a Decimal amount
    column of the same name without the suffix."""
    out = df.copy()
    for column in [c for c in out.columns if c.endswith("_cents")]:
        name = column.removesuffix("_cents")
        values = [None if pd.isna(c) else to_money(c) for c in out[column]]
        position = out.columns.get_loc(column)
        out = out.drop(columns=[column])
        if name not in out:
            out.insert(position, name, values)
    return out


def _with_money(df: pd.DataFrame, *cents_columns) -> pd.DataFrame:
    """Add a Decimal column beside each `*_cents` column (named without the suffix)."""
    for column in cents_columns:
        df[column.removesuffix("_cents")] = [to_money(c) for c in df[column]]
    return df


__all__ = ["Reports", "Statement", "InterestCertificate", "Filters"]
