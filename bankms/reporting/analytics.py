"""The reports' SQL: dashboard and customer analytics, ledger views, the rows behind statements
and certificates, and the loan book; each returns a DataFrame.

Every dashboard and analytics query is a plain function `query(src, f)` taking a `Source`
(something that runs SQL and returns a DataFrame) and a `Filters` value, and is listed in
`DASHBOARD` or `CUSTOMER` so that the Reports service, the pages and the benchmark all run the
same code. Permission checks live
in `bankms.reporting.reports`; nothing here checks who asks.

Conventions that every query follows:
- Money stays in BIGINT cents through SQL (`CAST(sum(...) AS BIGINT)`, because DuckDB's sum of
  BIGINT is HUGEINT, which `.df()` turns into float64) and comes out in `*_cents` int64 columns.
- In the dashboard and customer analytics a posting belongs to the calendar day of its
  `posted_at` (when the money moved), which reads the postings alone; "as of day D" means every
  posting before midnight at the end of D. Documents and ledger views (statements,
  certificates, trial balance, general ledger) use the transaction's `business_date` instead,
  the day the bank booked it (end of day books month-end interest on the month's last day
  even when it runs later). Balances as of D are read as the stored balance less the
  postings after D (balances always equal the sum of postings, see `audit.verify`), so looking
  at a recent date reads only the recent postings.
- The SQL is written once for every dialect (DuckDB, PostgreSQL, and SQLite for the
  benchmark's comparison): what differs comes from `src.d`, a `bankms.store.sql.Dialect`.
- What the reports know about the loans module's tables is in one marked block near the end.
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Callable

import pandas as pd

from ..domain.chart import INTERNAL, INTERNAL_ACCOUNTS, LANE_TILLS
from ..domain.dates import as_date
from ..domain.errors import InvalidInput
from ..domain.labels import account_kind_sql, label_sql, transaction_labels
from ..services.ledger import CUSTOMER_ACTIVITY_KINDS, CUSTOMER_KINDS
from ..domain.schedule import BUCKETS, add_months
from ..store.sql import DUCKDB, SQLITE, Dialect  # noqa: F401  (re-exported)
# The comparison copy reads DuckDB through its cursor, so it lives in the store; it stays
# importable from here, where the benchmark and the tests look for it.
from ..store.sqlite_copy import SQLITE_COPY, SQLITE_INDEXES, copy_to_sqlite  # noqa: F401

ACCOUNT_KINDS = ("all",) + CUSTOMER_KINDS
FALLING_WINDOW_DAYS = 90
# Income of at least this much a month from someone else, in at least two of the last three
# calendar months, counts as a regular income (a salary, a pension) for cross-selling.
REGULAR_INCOME_CENTS_MIN = 50_000
REGULAR_INCOME_MONTHS_MIN = 2
HIGH_BALANCE_CENTS_MIN = 500_000
TOP_CUSTOMERS_N = 10
DORMANT_LIST_ROWS_MAX = 500

# Balance buckets (lower bound in cents, label); the first catches overdrawn accounts.
BALANCE_BUCKETS = [
    (None, "below $0"),
    (0, "$0 – $100"),
    (10_000, "$100 – $1k"),
    (100_000, "$1k – $10k"),
    (1_000_000, "$10k – $100k"),
    (10_000_000, "$100k and more"),
]
LOAN_STATUS_ORDER = ["active", "approved", "submitted"]
# Portfolio at risk counts loans 30 days or more past due (here: from day 31), non-performing
# loans those more than 90 days past due: the same lines as the loans module's arrears buckets
# and end of day's provisioning (loans.BUCKETS).
PAR_DAYS_MIN = 31
NPL_DAYS_MIN = 91
ARREARS_BUCKETS = [(0, "current"), (1, "1–30 days"), (31, "31–60 days"), (61, "61–90 days"),
                   (91, "over 90 days")]

_ACTIVITY_IN = "(" + ", ".join(f"'{k}'" for k in sorted(CUSTOMER_ACTIVITY_KINDS)) + ")"
# Ids of the bank's own transactions (interest, fees, reversals, ...) in a window [?, ?).
# Customer activity is read from the postings (the accounts actually touched) less these,
# which also works for bulk-posted transactions that leave source_account and target_account
# empty; bank-made transactions are the fewer, so they are the side looked up. A posting is
# taken to carry its transaction's time: the online path writes both at once, and although
# the bulk path accepts a separate time per posting, none of its callers (demo, end of day)
# gives one.
_BANK_MADE_TX = (f"SELECT id FROM transactions WHERE kind NOT IN {_ACTIVITY_IN} "
                 "AND posted_at >= ? AND posted_at < ?")


# -- dialects and sources ------------------------------------------------------------------------
class Source:
    """Runs SQL for the queries: `read_df(sql, params) -> DataFrame` in the given dialect."""

    def __init__(self, read_df, dialect: Dialect = DUCKDB):
        self._read_df = read_df
        self.d = dialect

    def df(self, sql: str, params=()) -> pd.DataFrame:
        params = list(params)
        if self.d is SQLITE:
            # SQLite keeps timestamps as ISO text, which compares correctly as text; a list
            # parameter goes as JSON text (SQLITE.in_list reads it with json_each).
            params = [p.isoformat(" ") if isinstance(p, dt.datetime)
                      else p.isoformat() if isinstance(p, dt.date)
                      else json.dumps(list(p)) if isinstance(p, (list, tuple)) else p
                      for p in params]
        return self._read_df(sql, params)

    def one(self, sql: str, params=()):
        df = self.df(sql, params)
        return tuple(df.iloc[0]) if len(df) else None


def duckdb_source(bank) -> Source:
    """The bank's own store as a Source, in its engine's dialect (DuckDB today; the name is
    older than the storage port)."""
    return Source(bank.read_df, bank.engine.dialect)


def sqlite_source(con) -> Source:
    return Source(lambda sql, params: pd.read_sql_query(sql, con, params=params), SQLITE)


# -- filters -------------------------------------------------------------------------------------
def midnight_after(day: dt.date) -> dt.datetime:
    """The first instant after the day: 'as of D' means every posting before this."""
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time())


def midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time())


@dataclass(frozen=True)
class Filters:
    """What the manager picked: a date range for flows, an account kind, and the day whose
    balances are shown (the end of the range unless set). Hashable, so pages can cache on it."""

    start: dt.date
    end: dt.date
    kind: str = "all"
    as_of: dt.date | None = None

    def __post_init__(self):
        if self.start is None or self.end is None:
            raise InvalidInput("Please choose a start and an end date.")
        object.__setattr__(self, "start", as_date(self.start, "start date"))
        object.__setattr__(self, "end", as_date(self.end, "end date"))
        if self.as_of is None:
            object.__setattr__(self, "as_of", self.end)
        else:
            object.__setattr__(self, "as_of", as_date(self.as_of, "as-of date"))
        if self.start > self.end:
            raise InvalidInput("The start date must not be after the end date.")
        if self.kind not in ACCOUNT_KINDS:
            raise InvalidInput("The account kind must be all, checking or savings.")

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    @property
    def previous(self) -> "Filters":
        """The period of the same length just before this one (for the changes shown)."""
        step = dt.timedelta(days=self.days)
        return replace(self, start=self.start - step, end=self.end - step,
                       as_of=self.as_of - step)


def _kind_sql(f: Filters, alias: str = "a") -> tuple[str, list]:
    if f.kind == "all":
        return "", []
    return f" AND {alias}.kind = ?", [f.kind]


def _balances_sql(cuts: list[dt.datetime], f: Filters) -> tuple[str, list]:
    """A subquery: one row per customer account (of the chosen kind) with `balance_i_cents`,
    its balance just before cut i, read as the stored balance less the later postings."""
    first = min(cuts)
    sums = ", ".join(
        f"CAST(sum(CASE WHEN posted_at >= ? THEN amount_cents ELSE 0 END) AS BIGINT) AS after_{i}"
        for i in range(len(cuts)))
    cols = ", ".join(f"a.balance_cents - coalesce(l.after_{i}, 0) AS balance_{i}_cents"
                     for i in range(len(cuts)))
    kind_sql, kind_params = _kind_sql(f)
    sql = (f"SELECT a.id AS account_id, a.account_number, a.customer_id, a.kind, a.status, "
           f"a.opened_at, a.closed_at, {cols} FROM accounts a LEFT JOIN (SELECT account_id, "
           f"{sums} FROM postings WHERE posted_at >= ? GROUP BY account_id) l "
           f"ON l.account_id = a.id WHERE a.customer_id IS NOT NULL{kind_sql}")
    return sql, [*cuts, first, *kind_params]


def _to_day(df: pd.DataFrame, *columns) -> pd.DataFrame:
    for column in columns:
        df[column] = pd.to_datetime(df[column])
    return df


def _int(value) -> int:
    return 0 if value is None or pd.isna(value) else int(value)


# -- dashboard queries ---------------------------------------------------------------------------
def key_figures(src: Source, f: Filters) -> pd.DataFrame:
    """One row per key figure: value now and in the previous period, with its unit
    ('money' in cents, 'count', or 'percent' as a Decimal)."""
    prev = f.previous
    cut_now, cut_prev = midnight_after(f.as_of), midnight_after(prev.as_of)
    start_now, end_now, start_prev = midnight(f.start), midnight_after(f.end), midnight(prev.start)
    lo = min(cut_now, cut_prev, start_prev)
    # The kind is one of ACCOUNT_KINDS (checked by Filters), so it can sit in the SQL text.
    customer = "a.customer_id IS NOT NULL" + ("" if f.kind == "all" else f" AND a.kind = '{f.kind}'")
    # One pass over the postings since `lo` gives, per account, what was posted after each
    # as-of cut (to step back from the stored balance) and the flows of both periods.
    (deposits_now, deposits_prev, loans_now, loans_prev, provision_now, provision_prev,
     flow_now, flow_prev) = src.one(
        "WITH per AS (SELECT account_id, "
        "sum(CASE WHEN posted_at >= ? THEN amount_cents ELSE 0 END) AS after_now, "
        "sum(CASE WHEN posted_at >= ? THEN amount_cents ELSE 0 END) AS after_prev, "
        "sum(CASE WHEN posted_at >= ? AND posted_at < ? THEN amount_cents ELSE 0 END) "
        "AS flow_now, "
        "sum(CASE WHEN posted_at >= ? AND posted_at < ? THEN amount_cents ELSE 0 END) "
        "AS flow_prev FROM postings WHERE posted_at >= ? GROUP BY account_id), "
        "b AS (SELECT a.account_number, a.customer_id, a.kind, "
        "a.balance_cents - coalesce(per.after_now, 0) AS now_cents, "
        "a.balance_cents - coalesce(per.after_prev, 0) AS prev_cents, "
        "coalesce(per.flow_now, 0) AS flow_now, coalesce(per.flow_prev, 0) AS flow_prev "
        "FROM accounts a LEFT JOIN per ON per.account_id = a.id) "
        f"SELECT CAST(coalesce(sum(CASE WHEN {customer} AND now_cents > 0 THEN now_cents END), 0)"
        " AS BIGINT), "
        f"CAST(coalesce(sum(CASE WHEN {customer} AND prev_cents > 0 THEN prev_cents END), 0) "
        "AS BIGINT), "
        "CAST(coalesce(sum(CASE WHEN account_number = 'GL1200' THEN now_cents END), 0) AS BIGINT), "
        "CAST(coalesce(sum(CASE WHEN account_number = 'GL1200' THEN prev_cents END), 0) AS BIGINT), "
        "CAST(coalesce(sum(CASE WHEN account_number = 'GL1290' THEN now_cents END), 0) AS BIGINT), "
        "CAST(coalesce(sum(CASE WHEN account_number = 'GL1290' THEN prev_cents END), 0) AS BIGINT), "
        f"CAST(coalesce(sum(CASE WHEN {customer} THEN flow_now END), 0) AS BIGINT), "
        f"CAST(coalesce(sum(CASE WHEN {customer} THEN flow_prev END), 0) AS BIGINT) "
        "FROM b a",
        [cut_now, cut_prev, start_now, end_now, start_prev, start_now, lo])
    active_now, active_prev = src.one(
        "SELECT count(DISTINCT CASE WHEN p.posted_at >= ? THEN a.customer_id END), "
        "count(DISTINCT CASE WHEN p.posted_at < ? THEN a.customer_id END) "
        "FROM postings p JOIN accounts a ON a.id = p.account_id "
        f"WHERE p.posted_at >= ? AND p.posted_at < ? AND {customer} "
        f"AND p.transaction_id NOT IN ({_BANK_MADE_TX})",
        [start_now, start_now, start_prev, end_now, start_prev, end_now])
    new_customers_now, new_customers_prev = src.one(
        "SELECT count(CASE WHEN created_at >= ? THEN 1 END), count(CASE WHEN created_at < ? "
        "THEN 1 END) FROM customers WHERE created_at >= ? AND created_at < ?",
        [start_now, start_now, start_prev, end_now])
    new_accounts_now, new_accounts_prev = src.one(
        "SELECT count(CASE WHEN opened_at >= ? THEN 1 END), count(CASE WHEN opened_at < ? "
        f"THEN 1 END) FROM accounts a WHERE {customer} AND opened_at >= ? AND opened_at < ?",
        [start_now, start_now, start_prev, end_now])
    book_now, book_prev = loan_book(src, f.as_of), loan_book(src, prev.as_of)
    provision_now, provision_prev = _int(provision_now), _int(provision_prev)
    rows = [
        ("Total deposits", "money", _int(deposits_now), _int(deposits_prev)),
        ("Loans outstanding", "money", -_int(loans_now), -_int(loans_prev)),
        ("Portfolio at risk > 30 days", "percent", _at_risk(book_now, PAR_DAYS_MIN),
         _at_risk(book_prev, PAR_DAYS_MIN)),
        ("Non-performing loans", "percent", _at_risk(book_now, NPL_DAYS_MIN),
         _at_risk(book_prev, NPL_DAYS_MIN)),
        ("Provision booked", "money", provision_now, provision_prev),
        ("Provision coverage of NPL", "percent", _coverage(provision_now, book_now),
         _coverage(provision_prev, book_prev)),
        ("Net loans", "money", -_int(loans_now) - provision_now,
         -_int(loans_prev) - provision_prev),
        ("Active customers", "count", _int(active_now), _int(active_prev)),
        ("New customers", "count", _int(new_customers_now), _int(new_customers_prev)),
        ("New accounts", "count", _int(new_accounts_now), _int(new_accounts_prev)),
        ("Net flow", "money", _int(flow_now), _int(flow_prev)),
    ]
    return pd.DataFrame(rows, columns=["figure", "unit", "value", "previous"])


def at_risk_loans(book: pd.DataFrame, days_min: int) -> pd.DataFrame:
    """The active loans of a `loan_book` at least `days_min` days past due: the rows behind
    PAR (PAR_DAYS_MIN) and NPL (NPL_DAYS_MIN), and their drill-down."""
    return book[(book["status"] == "active") & (book["days_past_due"] >= days_min)]


def _at_risk(book: pd.DataFrame, days_min: int) -> Decimal:
    """Share of outstanding principal in loans at least `days_min` days past due, in percent."""
    total = int(book.loc[book["status"] == "active", "outstanding_cents"].sum())
    if total <= 0:
        return Decimal("0.00")
    late = int(at_risk_loans(book, days_min)["outstanding_cents"].sum())
    return (Decimal(late) * 100 / Decimal(total)).quantize(Decimal("0.01"))


def _coverage(provision_cents: int, book: pd.DataFrame) -> Decimal:
    """Provision booked as a percentage of non-performing principal (0 when there is none)."""
    npl = int(at_risk_loans(book, NPL_DAYS_MIN)["outstanding_cents"].sum())
    if npl <= 0:
        return Decimal("0.00")
    return (Decimal(provision_cents) * 100 / Decimal(npl)).quantize(Decimal("0.01"))


def gl_postings_sql(dialect: Dialect) -> str:
    """Postings of the ledger accounts given as a list parameter, made before a cut: the rows
    behind a ledger balance as of a day (parameters: the account numbers, the cut), in
    `dialect` (the source's, src.d)."""
    # Run on the bank (drill-downs never run on the SQLite copy).
    return ("SELECT p.id AS posting_id, p.posted_at, p.transaction_id, t.kind, "
            f"{label_sql('t.kind', 't.channel', 'p.amount_cents')} AS label, t.memo, "
            "a.account_number, p.amount_cents FROM postings p "
            "JOIN accounts a ON a.id = p.account_id JOIN transactions t ON t.id = p.transaction_id "
            f"WHERE {dialect.in_list('a.account_number', 'VARCHAR')} AND p.posted_at < ? "
            "ORDER BY p.posted_at, p.id")


def daily_volume(src: Source, f: Filters) -> pd.DataFrame:
    """Per day and transaction type: how many transactions and how much money moved.
    Columns day, kind, transactions, amount_cents; `kind` holds the type as people read it
    (labels.transaction_label of kind and channel: 'Card payment', 'Loan write-off'), which
    the charts show in their legends and a click gives back to drill.daily_volume."""
    where, params = daily_volume_where(f, midnight(f.start), midnight_after(f.end))
    df = src.df(
        f"SELECT {src.d.day('t.posted_at')} AS day, t.kind, t.channel, count(*) AS transactions, "
        "CAST(sum(t.amount_cents) AS BIGINT) AS amount_cents FROM transactions t "
        f"WHERE {where} GROUP BY 1, 2, 3", params)
    df["kind"] = transaction_labels(df["kind"], df["channel"])
    df = (df.groupby(["day", "kind"], as_index=False, sort=True)[["transactions",
                                                                 "amount_cents"]].sum())
    df = df.astype({"transactions": "int64", "amount_cents": "int64"})
    return _to_day(df, "day")


def daily_volume_where(f: Filters, lo: dt.datetime, hi: dt.datetime) -> tuple[str, list]:
    """The transactions t of the volume charts posted in [lo, hi): shared with their
    drill-down (bankms.reporting.drill), so that a bar and its rows cannot disagree."""
    where, params = "t.posted_at >= ? AND t.posted_at < ?", [lo, hi]
    if f.kind != "all":
        where += (" AND (t.source_account IN (SELECT account_number FROM accounts "
                  "WHERE kind = ?) OR t.target_account IN (SELECT account_number "
                  "FROM accounts WHERE kind = ?))")
        params += [f.kind, f.kind]
    return where, params


def deposits_by_product(src: Source, f: Filters) -> pd.DataFrame:
    """End-of-day balance of each account kind on every day of the range."""
    kind_sql, kind_params = _kind_sql(f)
    start = midnight(f.start)
    # One pass: net postings per kind and day since the start (days after the range too).
    # The balance before the start is today's stored total less all of them.
    flows = src.df(
        f"SELECT {src.d.day('p.posted_at')} AS day, a.kind, "
        "CAST(sum(p.amount_cents) AS BIGINT) AS net_cents FROM postings p "
        "JOIN accounts a ON a.id = p.account_id WHERE p.posted_at >= ? "
        f"AND a.customer_id IS NOT NULL{kind_sql} GROUP BY 1, 2", [start, *kind_params])
    totals = src.df("SELECT kind, CAST(sum(balance_cents) AS BIGINT) AS balance_cents "
                    f"FROM accounts a WHERE a.customer_id IS NOT NULL{kind_sql} GROUP BY 1",
                    kind_params)
    _to_day(flows, "day")
    kinds = sorted(set(totals["kind"]) | set(flows["kind"]))
    days = pd.date_range(f.start, f.end, freq="D")
    frames = []
    for kind in kinds:
        mine = flows.loc[flows["kind"] == kind]
        now = totals.loc[totals["kind"] == kind, "balance_cents"]
        base = (int(now.iloc[0]) if len(now) else 0) - int(mine["net_cents"].sum())
        net = mine.set_index("day")["net_cents"].reindex(days, fill_value=0).astype("int64")
        frames.append(pd.DataFrame({"day": days, "kind": kind,
                                    "balance_cents": (base + net.cumsum()).to_numpy()}))
    if not frames:
        return pd.DataFrame({"day": pd.Series(dtype="datetime64[ns]"),
                             "kind": pd.Series(dtype=str),
                             "balance_cents": pd.Series(dtype="int64")})
    return pd.concat(frames, ignore_index=True)


def balance_distribution(src: Source, f: Filters) -> pd.DataFrame:
    """How many open accounts (of the chosen kind) held how much, as of the as-of day."""
    sql, params = balance_buckets_sql(f, midnight_after(f.as_of))
    df = src.df(
        "SELECT bucket_index, count(*) AS accounts, "
        f"CAST(sum(balance_0_cents) AS BIGINT) AS balance_cents FROM ({sql}) b GROUP BY 1",
        params)
    full = pd.DataFrame({"bucket_index": range(len(BALANCE_BUCKETS)),
                         "bucket": [label for _, label in BALANCE_BUCKETS]})
    full = full.merge(df, on="bucket_index", how="left").fillna(0)
    full["accounts"] = full["accounts"].astype("int64")
    full["balance_cents"] = full["balance_cents"].astype("int64")
    return full.drop(columns=["bucket_index"])


def balance_buckets_sql(f: Filters, cut: dt.datetime) -> tuple[str, list]:
    """A subquery: the accounts open at `cut` (of the chosen kind) with balance_0_cents, their
    balance then, and bucket_index into BALANCE_BUCKETS. Shared with the drill-down."""
    bal_sql, bal_params = _balances_sql([cut], f)
    cases = " ".join(f"WHEN balance_0_cents >= {low} THEN {i}"
                     for i, (low, _) in reversed(list(enumerate(BALANCE_BUCKETS))) if low is not None)
    return (f"SELECT b.*, CASE {cases} ELSE 0 END AS bucket_index FROM ({bal_sql}) b "
            "WHERE opened_at < ? AND (closed_at IS NULL OR closed_at >= ?)",
            [*bal_params, cut, cut])


def loan_portfolio(src: Source, f: Filters) -> pd.DataFrame:
    """Loans by status and arrears bucket: how many and how much principal is outstanding."""
    book = loan_book(src, f.as_of)
    columns = ["status", "arrears", "loans", "outstanding_cents", "provision_cents"]
    if book.empty:
        return pd.DataFrame({c: pd.Series(dtype=str if c in ("status", "arrears") else "int64")
                             for c in columns})
    book = book.copy()
    book["arrears"] = arrears_bucket(book["days_past_due"])
    out = (book.groupby(["status", "arrears"], as_index=False)
           .agg(loans=("loan_id", "count"), outstanding_cents=("outstanding_cents", "sum"),
                provision_cents=("provision_cents", "sum")))
    out["outstanding_cents"] = out["outstanding_cents"].astype("int64")
    out["provision_cents"] = out["provision_cents"].astype("int64")
    order = {label: i for i, (_, label) in enumerate(ARREARS_BUCKETS)}
    out = out.sort_values(["status", "arrears"], key=lambda c: c.map(LOAN_STATUS_ORDER.index)
                          if c.name == "status" else c.map(order), ignore_index=True)
    return out[columns]


def provisioning(src: Source, basis_points: list[int]) -> pd.DataFrame:
    """The provisioning report: per arrears bucket (loans.BUCKETS order, every bucket shown)
    the active loans, their outstanding principal, the provision rate (percent, Decimal), the
    provision required now at that rate, the provision end of day last booked, and the
    difference (required less booked; not zero when loans moved since the last end of day or
    a rate changed). `basis_points` are the rates per bucket in hundredths of a percent
    (eod.provision_basis_points). Each loan's requirement is rounded half up to the cent as
    end of day rounds it (eod._provision), then summed.

    Loans paid off or written off since the last end of day still hold the provision it
    booked until the next one releases it: they show in a last row, bucket 'closed' (as end
    of day names them), with rate 0 and nothing required, and only while there are any. So
    the booked column always sums to the GL1290 balance, as verify() checks loan_provisions."""
    loans = src.df(
        "SELECT CASE WHEN l.status = 'active' THEN l.arrears_bucket ELSE 'closed' END AS bucket, "
        "CASE WHEN l.status = 'active' THEN l.principal_outstanding_cents ELSE 0 END "
        "AS outstanding_cents, coalesce(p.provision_cents, 0) AS booked_cents FROM loans l "
        "LEFT JOIN loan_provisions p ON p.loan_id = l.id "
        "WHERE l.status = 'active' OR p.loan_id IS NOT NULL")
    rate = {**dict(zip(BUCKETS, basis_points)), "closed": 0}
    outstanding = loans["outstanding_cents"].astype("int64")
    points = loans["bucket"].map(rate).astype("int64")
    loans["required_cents"] = (2 * outstanding * points + 10_000) // 20_000
    loans["loans"] = 1
    sums = loans.groupby("bucket")[["loans", "outstanding_cents", "required_cents",
                                    "booked_cents"]].sum()
    buckets = list(BUCKETS) + (["closed"] if "closed" in sums.index else [])
    out = sums.reindex(buckets, fill_value=0).astype("int64").reset_index()
    out.insert(3, "rate_percent", [Decimal(rate[b]) / 100 for b in buckets])
    out["difference_cents"] = out["required_cents"] - out["booked_cents"]
    return out[["bucket", "loans", "outstanding_cents", "rate_percent", "required_cents",
                "booked_cents", "difference_cents"]]


def arrears_bucket(days_past_due: pd.Series) -> pd.Series:
    labels = pd.Series("current", index=days_past_due.index)
    for low, label in ARREARS_BUCKETS[1:]:
        labels[days_past_due >= low] = label
    return labels


def customer_growth(src: Source, f: Filters) -> pd.DataFrame:
    """New customers on each day of the range and the running number of customers."""
    df = src.df(f"SELECT {src.d.day('created_at')} AS day, count(*) AS new_customers "
                "FROM customers WHERE created_at < ? GROUP BY 1", [midnight_after(f.end)])
    _to_day(df, "day")
    before = int(df.loc[df["day"] < pd.Timestamp(f.start), "new_customers"].sum())
    days = pd.date_range(f.start, f.end, freq="D")
    new = (df.set_index("day")["new_customers"].reindex(days, fill_value=0).astype("int64"))
    return pd.DataFrame({"day": days, "new_customers": new.to_numpy(),
                         "customers": (before + new.cumsum()).to_numpy()})


def top_customers(src: Source, f: Filters, n: int = TOP_CUSTOMERS_N) -> pd.DataFrame:
    """The customers holding the most money (in accounts of the chosen kind) as of the day."""
    bal_sql, bal_params = _balances_sql([midnight_after(f.as_of)], f)
    return src.df(
        "SELECT c.id AS customer_id, c.full_name, count(*) AS accounts, "
        f"CAST(sum(b.balance_0_cents) AS BIGINT) AS balance_cents FROM ({bal_sql}) b "
        "JOIN customers c ON c.id = b.customer_id GROUP BY 1, 2 "
        "ORDER BY balance_cents DESC, c.id LIMIT ?", [*bal_params, int(n)])


def dormancy_periods(src: Source, day: dt.date) -> pd.DataFrame:
    """The one definition of dormancy, as end of day applies it (deposit_eod.dormancy): an
    account is dormant after `months` without a transaction made by its holder, `months` being
    the dormancy_months of its deposit product's version in force on `day` (the latest
    effective on or before it, else the earliest), or the `dormancy_months` setting for an
    account without a product. Rows: product_id (None for that setting), name, months.
    Term deposits never go dormant."""
    from ..services.settings import REGISTRY

    tables = set(src.df(src.d.table_columns())["table_name"])
    fallback = int(REGISTRY["dormancy_months"].default)
    if "settings" in tables:
        stored = src.df("SELECT value FROM settings WHERE key = 'dormancy_months'")
        fallback = int(stored["value"].iloc[0]) if len(stored) else fallback
    rows = []
    if {"deposit_products", "deposit_product_versions"} <= tables:
        versions = src.df(
            "SELECT v.product_id, p.name, v.effective_date, v.dormancy_months "
            "FROM deposit_product_versions v JOIN deposit_products p ON p.id = v.product_id "
            "ORDER BY v.product_id, v.effective_date")
        versions["effective_date"] = [as_date(v) for v in versions["effective_date"]]
        for product_id, group in versions.groupby("product_id", sort=True):
            in_force = group[group["effective_date"] <= day]
            row = (in_force if len(in_force) else group.iloc[:1]).iloc[-1]
            rows.append((int(product_id), row["name"], int(row["dormancy_months"])))
    rows.append((None, None, fallback))
    return pd.DataFrame(rows, columns=["product_id", "name", "months"])


def dormancy_rule(periods: pd.DataFrame) -> str:
    """dormancy_periods in words: '12 months' when every product and the setting agree, else
    'Checking 12 months, Savings 6 months; 12 months without a product'."""
    months = periods["months"].astype(int)
    if months.nunique() == 1:
        return f"{int(months.iloc[0])} months"
    named = periods[periods["product_id"].notna()]
    parts = [f"{row.name} {int(row.months)} months" for row in named.itertuples()]
    fallback = int(periods.loc[periods["product_id"].isna(), "months"].iloc[0])
    return ", ".join(parts) + f"; {fallback} months without a product"


def dormant_accounts(src: Source, f: Filters) -> pd.DataFrame:
    """Open accounts (of the chosen kind) with no customer-made transaction in their dormancy
    period (dormancy_periods on the as-of day) before the as-of day, biggest balance first.
    Interest and fees do not count as activity; term deposits never go dormant."""

    cut = midnight_after(f.as_of)
    periods = dormancy_periods(src, f.as_of)
    # Per product (-1: no product), the first instant of its dormancy window; the same
    # month arithmetic as end of day (D+1 minus the months, clamped to a shorter month).
    since = [(-1 if pd.isna(p) else int(p), midnight(add_months(cut.date(), -int(m))))
             for p, m in zip(periods["product_id"], periods["months"])]
    windows = " UNION ALL ".join("SELECT ? AS product_key, ? AS since" for _ in since)
    bal_sql, bal_params = _balances_sql([cut], f)
    df = src.df(
        f"WITH w AS ({windows}) "
        f"SELECT b.account_number, b.customer_id, c.full_name, b.kind, b.opened_at, "
        f"b.balance_0_cents AS balance_cents FROM ({bal_sql}) b "
        "JOIN accounts x ON x.id = b.account_id "
        "JOIN w ON w.product_key = coalesce(x.product_id, -1) "
        "JOIN customers c ON c.id = b.customer_id "
        "WHERE b.kind <> 'term_deposit' AND b.opened_at < w.since "
        "AND (b.closed_at IS NULL OR b.closed_at >= ?) "
        "AND NOT EXISTS (SELECT 1 FROM postings p WHERE p.account_id = b.account_id "
        "AND p.posted_at >= w.since AND p.posted_at < ? AND p.transaction_id NOT IN "
        f"({_BANK_MADE_TX})) "
        "ORDER BY balance_cents DESC, b.account_number",
        [*[v for pair in since for v in pair], *bal_params, cut, cut, min(s for _, s in since),
         cut])
    return _to_day(df, "opened_at")


DASHBOARD: dict[str, Callable[[Source, Filters], pd.DataFrame]] = {
    "key_figures": key_figures,
    "daily_volume": daily_volume,
    "deposits_by_product": deposits_by_product,
    "balance_distribution": balance_distribution,
    "loan_portfolio": loan_portfolio,
    "customer_growth": customer_growth,
    "top_customers": top_customers,
    "dormant_accounts": dormant_accounts,
}


# -- customer analytics --------------------------------------------------------------------------
RFM_SEGMENTS = ["Champions", "Loyal", "Potential loyalists", "New", "Needs attention",
                "At risk", "Hibernating", "Inactive"]


def _activity_sql(src: Source) -> str:
    """Customer-made transactions on customers' accounts, one row per (customer, transaction)
    even when a transfer joins two accounts of the same customer. Parameters: the window
    [lo, hi) twice."""
    return (
        "SELECT a.customer_id, p.transaction_id AS id, max(p.posted_at) AS posted_at, "
        "max(abs(p.amount_cents)) AS amount_cents FROM postings p "
        "JOIN accounts a ON a.id = p.account_id "
        "WHERE p.posted_at >= ? AND p.posted_at < ? AND a.customer_id IS NOT NULL "
        f"AND p.transaction_id NOT IN ({_BANK_MADE_TX}) GROUP BY 1, 2")


def rfm_window(f: Filters) -> tuple[dt.datetime, dt.datetime]:
    """[since, cut) of the RFM segments: the filters' period, its first day to its last."""
    return midnight(f.start), midnight_after(f.end)


def rfm(src: Source, f: Filters) -> pd.DataFrame:
    """Every active customer (joined before the period ended) with recency (days from their
    last own transaction to the period's last day), frequency (transactions) and monetary
    value (money moved) in the chosen period, their 1–5 scores (5 best, by quintile) and a
    segment."""
    since, cut = rfm_window(f)
    df = src.df(
        f"WITH act AS ({_activity_sql(src)}), per AS (SELECT customer_id, "
        "max(posted_at) AS last_at, count(*) AS frequency, "
        "CAST(sum(amount_cents) AS BIGINT) AS monetary_cents FROM act GROUP BY 1) "
        "SELECT c.id AS customer_id, c.full_name, per.last_at, "
        "coalesce(per.frequency, 0) AS frequency, "
        "coalesce(per.monetary_cents, 0) AS monetary_cents, "
        "CASE WHEN per.customer_id IS NULL THEN 0 ELSE ntile(5) OVER (PARTITION BY "
        "per.customer_id IS NULL ORDER BY per.last_at, c.id) END AS r_score, "
        "CASE WHEN per.customer_id IS NULL THEN 0 ELSE ntile(5) OVER (PARTITION BY "
        "per.customer_id IS NULL ORDER BY per.frequency, c.id) END AS f_score, "
        "CASE WHEN per.customer_id IS NULL THEN 0 ELSE ntile(5) OVER (PARTITION BY "
        "per.customer_id IS NULL ORDER BY per.monetary_cents, c.id) END AS m_score "
        "FROM customers c LEFT JOIN per ON per.customer_id = c.id "
        "WHERE c.status = 'active' AND c.created_at < ? ORDER BY c.id",
        [since, cut, since, cut, cut])
    _to_day(df, "last_at")
    df["recency_days"] = (pd.Timestamp(f.end) - df["last_at"].dt.normalize()).dt.days
    df["recency_days"] = df["recency_days"].astype("Int64")
    df["segment"] = rfm_segment(df["r_score"], df["f_score"], df["m_score"])
    return df[["customer_id", "full_name", "segment", "recency_days", "frequency",
               "monetary_cents", "r_score", "f_score", "m_score", "last_at"]]


def rfm_segment(r: pd.Series, f: pd.Series, m: pd.Series) -> pd.Series:
    """Segment names from the scores; the first rule that matches wins."""
    fm = (f + m) / 2
    rules = [
        (r == 0, "Inactive"),
        ((r >= 4) & (fm >= 4), "Champions"),
        ((r >= 3) & (fm >= 3.5), "Loyal"),
        ((r == 5) & (f <= 1), "New"),
        ((r >= 4) & (fm < 4), "Potential loyalists"),
        ((r <= 2) & (fm >= 3), "At risk"),
        ((r <= 2) & (fm < 3), "Hibernating"),
    ]
    out = pd.Series("Needs attention", index=r.index)
    decided = pd.Series(False, index=r.index)
    for mask, name in rules:
        take = mask & ~decided
        out[take] = name
        decided |= take
    return out


def rfm_summary(members: pd.DataFrame) -> pd.DataFrame:
    g = members.groupby("segment")
    out = pd.DataFrame({
        "customers": g.size(),
        "avg_recency_days": g["recency_days"].mean().round(1),
        "avg_frequency": g["frequency"].mean().round(1),
        "monetary_cents": g["monetary_cents"].sum().astype("int64"),
    }).reindex(RFM_SEGMENTS)
    out["customers"] = out["customers"].fillna(0).astype("int64")
    out["monetary_cents"] = out["monetary_cents"].fillna(0).astype("int64")
    return out.reset_index().rename(columns={"index": "segment"})


def income_sql(src: Source, f: Filters) -> tuple[str, list]:
    """A subquery: credits to customers' accounts from someone else (deposits, transfers from
    another customer) in the three calendar months before the as-of month, one row per
    transaction with its customer_id and month. The regular-income offer and its drill-down
    both read it."""
    month_start = f.as_of.replace(day=1)
    window_start = (pd.Timestamp(month_start) - pd.DateOffset(months=3)).date()
    return (f"SELECT a.customer_id, {src.d.month('t.posted_at')} AS month, "
            "t.id AS transaction_id, t.posted_at, t.kind, t.memo, t.source_account, "
            "t.target_account, t.amount_cents FROM transactions t "
            "JOIN accounts a ON a.account_number = t.target_account "
            "LEFT JOIN accounts s ON s.account_number = t.source_account "
            "WHERE t.kind IN ('deposit', 'transfer') AND t.posted_at >= ? AND t.posted_at < ? "
            "AND a.customer_id IS NOT NULL "
            "AND (s.customer_id IS NULL OR s.customer_id <> a.customer_id)",
            [midnight(window_start), midnight(month_start)])


def income_months_sql(src: Source, f: Filters) -> tuple[str, list]:
    """A subquery: (customer_id, month, income_cents) for the months whose income from others
    reached REGULAR_INCOME_CENTS_MIN."""
    sql, params = income_sql(src, f)
    return (f"SELECT customer_id, month, CAST(sum(amount_cents) AS BIGINT) AS income_cents "
            f"FROM ({sql}) i GROUP BY 1, 2 HAVING sum(amount_cents) >= ?",
            [*params, REGULAR_INCOME_CENTS_MIN])


def cross_sell(src: Source, f: Filters) -> pd.DataFrame:
    """Customers to offer something to, one row per (offer, customer):
    'Savings account for a regular income' - money from others of at least
    REGULAR_INCOME_CENTS_MIN in at least two of the last three calendar months before the as-of
    month, and no open savings account; 'Savings account for a high balance' - checking money
    of at least HIGH_BALANCE_CENTS_MIN as of the day, and no open savings account."""
    no_savings = ("c.id NOT IN (SELECT customer_id FROM accounts WHERE kind = 'savings' "
                  "AND status <> 'closed' AND customer_id IS NOT NULL)")
    income_sql, income_params = income_months_sql(src, f)
    income = src.df(
        f"WITH credits AS ({income_sql}) "
        "SELECT 'Savings account for a regular income' AS offer, c.id AS customer_id, "
        "c.full_name, c.email, c.phone, count(*) AS months, "
        "CAST(sum(cr.income_cents) AS BIGINT) AS income_cents "
        "FROM credits cr JOIN customers c ON c.id = cr.customer_id "
        f"WHERE c.status = 'active' AND {no_savings} GROUP BY 1, 2, 3, 4, 5 "
        "HAVING count(*) >= ? ORDER BY c.id", [*income_params, REGULAR_INCOME_MONTHS_MIN])
    bal_sql, bal_params = _balances_sql([midnight_after(f.as_of)],
                                        replace(f, kind="checking"))
    high = src.df(
        "SELECT 'Savings account for a high balance' AS offer, c.id AS customer_id, "
        "c.full_name, c.email, c.phone, CAST(sum(b.balance_0_cents) AS BIGINT) AS balance_cents "
        f"FROM ({bal_sql}) b JOIN customers c ON c.id = b.customer_id "
        f"WHERE c.status = 'active' AND {no_savings} GROUP BY 1, 2, 3, 4, 5 "
        "HAVING sum(b.balance_0_cents) >= ? ORDER BY balance_cents DESC, c.id",
        [*bal_params, HIGH_BALANCE_CENTS_MIN])
    # Whole cents, rounded down, computed here because SQLite and DuckDB divide differently.
    income["monthly_income_cents"] = (income["income_cents"].astype("int64")
                                      // income["months"].astype("int64"))
    income = income.sort_values(["monthly_income_cents", "customer_id"],
                                ascending=[False, True])
    return pd.concat([income, high], ignore_index=True)


def falling_activity(src: Source, f: Filters, window_days: int = FALLING_WINDOW_DAYS,
                     prior_min: int = 4) -> pd.DataFrame:
    """Customers whose own transactions in the last `window_days` fell to half or less of the
    window before (which had at least `prior_min`), biggest fall first."""
    cut = midnight_after(f.as_of)
    mid = cut - dt.timedelta(days=window_days)
    since = mid - dt.timedelta(days=window_days)
    # Ordered outside the grouping: PostgreSQL takes an output column's name in ORDER BY only
    # alone, not inside an expression such as this difference; DuckDB takes both.
    return src.df(
        f"WITH act AS ({_activity_sql(src)}) "
        "SELECT * FROM (SELECT c.id AS customer_id, c.full_name, c.email, c.phone, "
        "count(CASE WHEN act.posted_at < ? THEN 1 END) AS before_count, "
        "count(CASE WHEN act.posted_at >= ? THEN 1 END) AS recent_count "
        "FROM act JOIN customers c ON c.id = act.customer_id WHERE c.status = 'active' "
        "GROUP BY 1, 2, 3, 4 HAVING count(CASE WHEN act.posted_at < ? THEN 1 END) >= ? "
        "AND 2 * count(CASE WHEN act.posted_at >= ? THEN 1 END) "
        "<= count(CASE WHEN act.posted_at < ? THEN 1 END)) falling "
        "ORDER BY recent_count - before_count, customer_id",
        [since, cut, since, cut, mid, mid, mid, prior_min, mid, mid])


def refusals_by_reason(src: Source, f: Filters) -> pd.DataFrame:
    """Refused transactions in the date range by the reason the bank gave."""
    return src.df(
        f"SELECT coalesce({src.d.json_text('after', 'reason')}, 'unknown') AS reason, "
        "count(*) AS refusals FROM audit_log WHERE outcome = 'refused' "
        "AND entity = 'transaction' AND ts >= ? AND ts < ? GROUP BY 1 ORDER BY 2 DESC, 1",
        [midnight(f.start), midnight_after(f.end)])


def loan_decision_times(src: Source, f: Filters) -> pd.DataFrame:
    """Loans decided in the date range with the hours from application to decision."""
    df = loan_decisions(src, midnight(f.start), midnight_after(f.end))
    if df.empty:
        df["hours_to_decide"] = pd.Series(dtype=float)
        return df
    df["hours_to_decide"] = ((df["decided_at"] - df["applied_at"]).dt.total_seconds()
                             / 3600).round(1)
    return df


DECISION_BINS_MAX = 20


def decision_time_bins(df: pd.DataFrame) -> pd.DataFrame:
    """Loans of `loan_decision_times` counted by time to decide: from_hours, to_hours (bins of
    whole hours, at most DECISION_BINS_MAX, each [from, to)) and loans."""
    columns = ["from_hours", "to_hours", "loans"]
    if df.empty:
        return pd.DataFrame({c: pd.Series(dtype="int64") for c in columns})
    hours = df["hours_to_decide"]
    width = max(1, -(-int(hours.max() // 1 + 1) // DECISION_BINS_MAX))
    index = (hours // width).astype("int64")
    counts = index.value_counts().reindex(range(int(index.max()) + 1), fill_value=0)
    return pd.DataFrame({"from_hours": counts.index * width,
                         "to_hours": (counts.index + 1) * width,
                         "loans": counts.to_numpy()}).astype("int64")


CUSTOMER: dict[str, Callable[[Source, Filters], pd.DataFrame]] = {
    "rfm": rfm,
    "cross_sell": cross_sell,
    "falling_activity": falling_activity,
    "refusals_by_reason": refusals_by_reason,
    "loan_decision_times": loan_decision_times,
}


# -- ledger views and documents -----------------------------------------------------------------
# Transactions that reverse another count as the kind they reverse (a reversed interest payment
# lowers the interest shown), so documents read this instead of `t.kind`.
_EFFECTIVE_KIND = "CASE WHEN t.kind = 'reversal' THEN coalesce(o.kind, t.kind) ELSE t.kind END"
LAST_DAY = dt.date(9999, 12, 31)
# Ids of the transactions booked on business days after the day given as the parameter: what
# to take back from today's stored balances to see the balances at the end of that day.
_AFTER_DAY_TX = "SELECT id FROM transactions WHERE business_date > ?"


def _internal_line_sql(alias: str) -> tuple[str, str]:
    """The code and name of an internal account's ledger line (columns of `alias`): the
    account's own, but a writer lane's till (chart.LANE_TILLS, "GL1000-L01") is on the line
    of the account it belongs to."""
    tills = [(number, name) for number, code, name in INTERNAL_ACCOUNTS if code in LANE_TILLS]
    code = ("CASE " + " ".join(f"WHEN {alias}.account_number LIKE '{number}-L%' THEN '{number}'"
                               for number, _ in tills)
            + f" ELSE {alias}.account_number END")
    name = ("CASE " + " ".join(f"WHEN {alias}.account_number LIKE '{number}-L%' THEN '{name}'"
                               for number, name in tills)
            + f" ELSE {alias}.name END")
    return code, name


def _ledger_line_sql() -> tuple[str, str]:
    """Ledger lines: each internal account on its own (with its tills), customer accounts by
    kind."""
    internal_code, internal_name = _internal_line_sql("a")
    code = (f"CASE WHEN a.customer_id IS NULL THEN {internal_code} "
            "ELSE 'CUST-' || upper(a.kind) END")
    name = (f"CASE WHEN a.customer_id IS NULL THEN {internal_name} "
            f"ELSE 'Customer accounts (' || {account_kind_sql('a.kind')} || ')' END")
    return code, name


def trial_balance(src: Source, as_of: dt.date | None = None) -> pd.DataFrame:
    """Balance of every ledger line at the end of business day `as_of` (now if None):
    internal accounts one by one (a writer lane's till on its account's line), customer
    accounts by kind, split into money held (credit) and overdrawn accounts (debit). Under
    the one sign convention a positive balance is a credit and a negative one a debit, so
    `balance_cents` sums to zero and total debits equal total credits."""
    later = ("SELECT account_id, CAST(sum(amount_cents) AS BIGINT) AS later_cents "
             f"FROM postings WHERE transaction_id IN ({_AFTER_DAY_TX}) GROUP BY 1")
    code, name = _internal_line_sql("b")
    df = src.df(
        "WITH b AS (SELECT a.account_number, a.name, a.kind, a.customer_id, "
        "a.balance_cents - coalesce(l.later_cents, 0) AS balance_cents FROM accounts a "
        f"LEFT JOIN ({later}) l ON l.account_id = a.id) "
        f"SELECT {code} AS code, {name} AS account, "
        "CAST(sum(balance_cents) AS BIGINT) AS balance_cents "
        "FROM b WHERE customer_id IS NULL GROUP BY 1, 2 "
        "UNION ALL SELECT 'DEP-' || upper(kind), "
        f"'Customer deposits (' || {account_kind_sql('kind')} || ')', "
        "CAST(sum(balance_cents) AS BIGINT) FROM b WHERE customer_id IS NOT NULL "
        "AND balance_cents > 0 GROUP BY kind "
        "UNION ALL SELECT 'ODR-' || upper(kind), "
        f"'Overdrawn customer accounts (' || {account_kind_sql('kind')} || ')', "
        "CAST(sum(balance_cents) AS BIGINT) FROM b WHERE customer_id IS NOT NULL "
        "AND balance_cents < 0 GROUP BY kind ORDER BY 1", [as_of or LAST_DAY])
    df["balance_cents"] = df["balance_cents"].astype("int64")
    df["debit_cents"] = (-df["balance_cents"]).clip(lower=0)
    df["credit_cents"] = df["balance_cents"].clip(lower=0)
    return df[["code", "account", "debit_cents", "credit_cents", "balance_cents"]]


def general_ledger(src: Source, start: dt.date, end: dt.date) -> pd.DataFrame:
    """Per ledger line: opening balance, debits and credits of the business days from `start`
    to `end`, closing balance. Each of opening and closing sums to zero over the lines, and
    debits equal credits."""
    code, name = _ledger_line_sql()
    df = src.df(
        "WITH mv AS (SELECT p.account_id, "
        "CAST(sum(p.amount_cents) AS BIGINT) AS from_start, "
        "CAST(sum(CASE WHEN t.business_date > ? THEN p.amount_cents ELSE 0 END) AS BIGINT) "
        "AS from_end, "
        "CAST(sum(CASE WHEN t.business_date <= ? AND p.amount_cents < 0 THEN -p.amount_cents "
        "ELSE 0 END) AS BIGINT) AS debits, "
        "CAST(sum(CASE WHEN t.business_date <= ? AND p.amount_cents > 0 THEN p.amount_cents "
        "ELSE 0 END) AS BIGINT) AS credits FROM postings p "
        "JOIN transactions t ON t.id = p.transaction_id WHERE t.business_date >= ? GROUP BY 1) "
        f"SELECT {code} AS code, {name} AS account, "
        "CAST(sum(a.balance_cents - coalesce(mv.from_start, 0)) AS BIGINT) AS opening_cents, "
        "CAST(sum(coalesce(mv.debits, 0)) AS BIGINT) AS debit_cents, "
        "CAST(sum(coalesce(mv.credits, 0)) AS BIGINT) AS credit_cents, "
        "CAST(sum(a.balance_cents - coalesce(mv.from_end, 0)) AS BIGINT) AS closing_cents "
        "FROM accounts a LEFT JOIN mv ON mv.account_id = a.id GROUP BY 1, 2 ORDER BY 1",
        [end, end, end, start])
    for column in ("opening_cents", "debit_cents", "credit_cents", "closing_cents"):
        df[column] = df[column].astype("int64")
    return df


def ledger_lines(src: Source, account_number: str, start: dt.date, end: dt.date,
                 limit: int = 2000) -> tuple[int, pd.DataFrame]:
    """Opening balance and the first `limit` postings of one account on the business days
    from `start` to `end`, each with the balance after it. The ledger of teller cash or
    clearing takes in its writer lanes' tills (chart.LANE_TILLS), as its trial balance line
    does; a till asked for by its own number is on its own."""
    # The tills' numbers start with the account's and "-L"; any other number has none.
    tills = (f"{account_number}-L%"
             if any(INTERNAL[code] == account_number for code in LANE_TILLS) else "")
    opening = src.one(
        "SELECT CAST(coalesce(sum(p.amount_cents), 0) AS BIGINT) FROM postings p "
        "JOIN accounts a ON a.id = p.account_id JOIN transactions t ON t.id = p.transaction_id "
        "WHERE (a.account_number = ? OR a.account_number LIKE ?) AND t.business_date < ?",
        [account_number, tills, start])
    opening_cents = _int(opening[0]) if opening else 0
    df = src.df(
        "SELECT t.business_date, p.posted_at, t.id AS transaction_id, t.kind, t.channel, "
        "t.memo, t.source_account, t.target_account, p.amount_cents, "
        "? + sum(p.amount_cents) OVER "
        "(ORDER BY t.business_date, p.posted_at, p.id ROWS UNBOUNDED PRECEDING) AS balance_cents "
        "FROM postings p JOIN accounts a ON a.id = p.account_id "
        "JOIN transactions t ON t.id = p.transaction_id "
        "WHERE (a.account_number = ? OR a.account_number LIKE ?) "
        "AND t.business_date >= ? AND t.business_date <= ? "
        "ORDER BY t.business_date, p.posted_at, p.id LIMIT ?",
        [opening_cents, account_number, tills, start, end, int(limit)])
    df["balance_cents"] = df["balance_cents"].astype("int64")
    return opening_cents, _to_day(df, "business_date", "posted_at")


_LINE_COLUMNS = (
    "p.id AS posting_id, t.business_date, p.posted_at, t.id AS transaction_id, t.kind, "
    f"t.channel, {_EFFECTIVE_KIND} AS effective_kind, t.memo, t.source_account, "
    "t.target_account, p.amount_cents")


# Tax withheld per transaction: its postings to GL2100 withholding tax payable, positive for an
# interest posting that withheld tax, negative for its reversal (deposit_eod.post_period_end puts
# the tax in the interest transaction as a third leg).
# `which` narrows the transactions (SQL on p.transaction_id).
def _tax_by_tx(which: str) -> str:
    return ("SELECT p.transaction_id, CAST(sum(p.amount_cents) AS BIGINT) AS tax_cents "
            "FROM postings p JOIN accounts w ON w.id = p.account_id "
            f"WHERE w.account_number = '{INTERNAL['withholding_tax_payable']}' "
            f"AND p.transaction_id {which} GROUP BY 1")


_PERIOD_TX = "IN (SELECT id FROM transactions WHERE business_date >= ? AND business_date <= ?)"


def statement_rows(src: Source, account_id: int, first: dt.date,
                   last: dt.date) -> tuple[int, pd.DataFrame]:
    """Opening balance (postings of business days before `first`) and the account's postings
    of the business days from `first` to `last`, in order.

    One pass over the account's postings: those before the period collapse into one group
    (the opening balance), the period's stay one row each. The transactions' details are read
    after; they are written in the same commit as their postings and never change, so the two
    reads agree."""
    rows = src.df(
        "SELECT CASE WHEN t.business_date >= ? THEN p.id END AS posting_id, "
        "CASE WHEN t.business_date >= ? THEN p.posted_at END AS posted_at, "
        "CASE WHEN t.business_date >= ? THEN t.business_date END AS business_date, "
        "CASE WHEN t.business_date >= ? THEN p.transaction_id END AS transaction_id, "
        "CAST(sum(p.amount_cents) AS BIGINT) AS amount_cents FROM postings p "
        "JOIN transactions t ON t.id = p.transaction_id "
        "WHERE p.account_id = ? AND t.business_date <= ? GROUP BY 1, 2, 3, 4",
        [first, first, first, first, account_id, last])
    before = rows["posting_id"].isna()
    opening = int(rows.loc[before, "amount_cents"].sum())
    lines = rows.loc[~before].copy()
    lines["posted_at"] = pd.to_datetime(lines["posted_at"])
    lines["business_date"] = pd.to_datetime(lines["business_date"])
    lines = lines.sort_values(["business_date", "posted_at", "posting_id"])
    info = _transactions(src, [int(i) for i in lines["transaction_id"]])
    lines = lines.merge(info, how="left", left_on="transaction_id", right_on="id")
    return opening, _lines_frame(lines[["posting_id", "business_date", "posted_at",
                                        "transaction_id", "kind", "channel",
                                        "effective_kind", "memo",
                                        "source_account", "target_account", "amount_cents",
                                        "tax_cents"]])


def _transactions(src: Source, ids: list[int]) -> pd.DataFrame:
    """Kind, memo and counterparties of the given transactions, with the kind a reversal
    undoes as its effective kind."""
    columns = ["id", "kind", "channel", "effective_kind", "memo", "source_account",
               "target_account", "tax_cents"]
    frames = []
    for i in range(0, len(ids), 5000):
        chunk = ids[i:i + 5000]
        marks = ", ".join("?" * len(chunk))
        frames.append(src.df(
            f"SELECT t.id, t.kind, t.channel, {_EFFECTIVE_KIND} AS effective_kind, t.memo, "
            "t.source_account, t.target_account, coalesce(w.tax_cents, 0) AS tax_cents "
            "FROM transactions t "
            "LEFT JOIN transactions o ON o.id = t.reverses_id AND t.kind = 'reversal' "
            f"LEFT JOIN ({_tax_by_tx(f'IN ({marks})')}) w "
            "ON w.transaction_id = t.id "
            f"WHERE t.id IN ({marks})", chunk + chunk))
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype="int64" if c == "id" else object)
                             for c in columns})
    out = pd.concat(frames, ignore_index=True)
    out["id"] = out["id"].astype("int64")
    return out[columns]


def month_rows(src: Source, first: dt.date,
               last: dt.date) -> tuple[pd.DataFrame, pd.DataFrame]:
    """For every customer account at once: opening balances (account_id, opening_cents) and
    the postings of the business days from `first` to `last` with their account_id."""
    openings = src.df(
        "SELECT a.id AS account_id, a.balance_cents - coalesce(l.later_cents, 0) AS opening_cents"
        " FROM accounts a LEFT JOIN (SELECT account_id, CAST(sum(amount_cents) AS BIGINT) "
        f"AS later_cents FROM postings WHERE transaction_id IN ({_AFTER_DAY_TX}) GROUP BY 1) l "
        "ON l.account_id = a.id WHERE a.customer_id IS NOT NULL",
        [first - dt.timedelta(days=1)])
    lines = src.df(
        f"SELECT p.account_id, {_LINE_COLUMNS}, coalesce(w.tax_cents, 0) AS tax_cents "
        "FROM postings p "
        "JOIN accounts a ON a.id = p.account_id "
        "JOIN transactions t ON t.id = p.transaction_id "
        "LEFT JOIN transactions o ON o.id = t.reverses_id AND t.kind = 'reversal' "
        f"LEFT JOIN ({_tax_by_tx(_PERIOD_TX)}) w ON w.transaction_id = t.id "
        "WHERE a.customer_id IS NOT NULL AND t.business_date >= ? AND t.business_date <= ? "
        "ORDER BY p.account_id, t.business_date, p.posted_at, p.id", [first, last] * 2)
    openings["opening_cents"] = openings["opening_cents"].astype("int64")
    lines["business_date"] = pd.to_datetime(lines["business_date"])
    return openings, _lines_frame(lines)


def _lines_frame(df: pd.DataFrame) -> pd.DataFrame:
    df = df.drop(columns=[c for c in ("part",) if c in df]).reset_index(drop=True)
    df["posted_at"] = pd.to_datetime(df["posted_at"])
    df["business_date"] = pd.to_datetime(df["business_date"])
    for column in ("posting_id", "transaction_id", "amount_cents", "tax_cents"):
        if column in df:
            df[column] = df[column].astype("int64")
    return df


def interest_rows(src: Source, customer_id: int, first: dt.date,
                  last: dt.date) -> pd.DataFrame:
    """Per account of the customer and effective kind (interest, penalty, tax_withholding):
    the net postings of the business days from `first` to `last`.

    An interest transaction credits the account the net and withholds the tax in its own
    third leg (GL2100): its interest row counts the gross (the account's posting plus the
    tax) and its tax_withholding row the tax as a debit, reversals included with their
    signs, so the certificate equals the year's postings to the cent."""
    period = [first, last]
    df = src.df(
        "SELECT a.account_number, a.kind, e.effective_kind, "
        "CAST(sum(e.amount_cents) AS BIGINT) AS amount_cents FROM accounts a "
        f"JOIN (SELECT p.account_id, {_EFFECTIVE_KIND} AS effective_kind, "
        "p.amount_cents + coalesce(w.tax_cents, 0) AS amount_cents "
        "FROM postings p JOIN transactions t ON t.id = p.transaction_id "
        "LEFT JOIN transactions o ON o.id = t.reverses_id AND t.kind = 'reversal' "
        f"LEFT JOIN ({_tax_by_tx(_PERIOD_TX)}) w ON w.transaction_id = t.id "
        "WHERE t.business_date >= ? AND t.business_date <= ? AND p.account_id IN "
        "(SELECT id FROM accounts WHERE customer_id = ?) "
        "UNION ALL SELECT p.account_id, 'tax_withholding', -w.tax_cents "
        "FROM postings p JOIN transactions t ON t.id = p.transaction_id "
        f"JOIN ({_tax_by_tx(_PERIOD_TX)}) w ON w.transaction_id = t.id "
        "WHERE p.account_id IN (SELECT id FROM accounts WHERE customer_id = ?)"
        ") e ON e.account_id = a.id "
        "WHERE e.effective_kind IN ('interest', 'penalty', 'tax_withholding') "
        "GROUP BY 1, 2, 3 ORDER BY 1, 3",
        [*period, *period, customer_id, *period, customer_id])
    df["amount_cents"] = df["amount_cents"].astype("int64")
    return df


# == Loan tables =================================================================================
# The only place that knows the loans module's schema (bankms/services/loans.py: loans, loan_schedule,
# loan_payments). Every loan figure above reads the book through `loan_book` and
# `loan_decisions`; if these tables or columns are missing (a bank without the loans module),
# both return empty frames and the dashboard shows zeros and empty loan charts.
LOAN_COLUMNS = {
    "loans": {"id", "customer_id", "status", "principal_cents", "applied_date", "applied_at",
              "decided_at", "disbursement_date", "closed_date"},
    "loan_schedule": {"loan_id", "n", "due_date", "interest_cents", "principal_cents"},
    "loan_payments": {"loan_id", "business_date", "interest_cents", "principal_cents",
                      "prepayment_cents"},
}
# The book at the end of business day D, rebuilt from what was booked by then, so that past
# days can be compared (parameters: see loan_book):
# - status: 'active' from payout until the loan closed (paid off or written off); before the
#   payout 'approved' after the decision, 'submitted' before it;
# - outstanding principal: the principal less the principal repaid by D (for applications:
#   the principal asked for);
# - the oldest overdue instalment, as end of day ages arrears: the oldest instalment due by D
#   whose interest and principal, counted from the first instalment on, exceed what was paid
#   by D towards instalments (prepayments excluded). The schedule is the current plan, so for
#   days before a prepayment re-amortised it the figure is a close approximation.
LOAN_BOOK_SQL = """
WITH paid AS (
    SELECT loan_id, sum(principal_cents) AS principal_paid,
           sum(interest_cents + principal_cents - prepayment_cents) AS due_paid
    FROM loan_payments WHERE business_date <= ? GROUP BY loan_id),
due AS (
    SELECT loan_id, due_date, sum(interest_cents + principal_cents)
           OVER (PARTITION BY loan_id ORDER BY n ROWS UNBOUNDED PRECEDING) AS due_through
    FROM loan_schedule WHERE due_date < ?),
late AS (
    SELECT d.loan_id, min(d.due_date) AS oldest_due FROM due d
    LEFT JOIN paid ON paid.loan_id = d.loan_id
    WHERE d.due_through > coalesce(paid.due_paid, 0) GROUP BY d.loan_id),
book AS (
    SELECT l.id AS loan_id, l.customer_id,
           CASE WHEN l.disbursement_date <= ? THEN 'active'
                WHEN l.decided_at < ? THEN 'approved' ELSE 'submitted' END AS status,
           l.principal_cents - CASE WHEN l.disbursement_date <= ?
                                    THEN coalesce(paid.principal_paid, 0) ELSE 0 END
               AS outstanding_cents,
           CASE WHEN l.disbursement_date <= ? THEN late.oldest_due END AS oldest_due
    FROM loans l LEFT JOIN paid ON paid.loan_id = l.id LEFT JOIN late ON late.loan_id = l.id
    WHERE l.applied_date <= ? AND (l.closed_date IS NULL OR l.closed_date > ?)
      AND NOT (l.status = 'rejected' AND l.decided_at < ?))
SELECT loan_id, customer_id, status, CAST(outstanding_cents AS BIGINT) AS outstanding_cents,
       oldest_due FROM book ORDER BY loan_id
"""
LOAN_DECISIONS_SQL = """
SELECT id AS loan_id, customer_id, status, applied_at, decided_at FROM loans
WHERE decided_at >= ? AND decided_at < ? ORDER BY decided_at
"""


def loans_available(src: Source) -> bool:
    """Whether the loan tables exist with the columns used here (asked once per Source)."""
    known = getattr(src, "_loans_available", None)
    if known is not None:
        return known
    cols = src.df(src.d.table_columns())
    have: dict[str, set] = {}
    for table, column in zip(cols["table_name"], cols["column_name"]):
        have.setdefault(table, set()).add(column)
    src._loans_available = all(needed <= have.get(table, set())
                               for table, needed in LOAN_COLUMNS.items())
    return src._loans_available


# The book as end of day last left it: the arrears it aged and the provision it booked per loan
# (loans.days_past_due, loans.principal_outstanding_cents, loan_provisions), the same rows as
# the loans module's provisioning report. Read for any day from the last closed business day on.
LOAN_BOOK_NOW_SQL = """
SELECT l.id AS loan_id, l.customer_id, l.status,
       CAST(CASE WHEN l.status = 'active' THEN l.principal_outstanding_cents
                 ELSE l.principal_cents END AS BIGINT) AS outstanding_cents,
       CASE WHEN l.status = 'active' THEN l.days_past_due ELSE 0 END AS days_past_due,
       CAST(coalesce(p.provision_cents, 0) AS BIGINT) AS provision_cents
FROM loans l LEFT JOIN loan_provisions p ON p.loan_id = l.id
WHERE l.status IN ('active', 'approved', 'submitted') ORDER BY l.id
"""
EOD_BOOK_COLUMNS = {
    "loans": {"principal_outstanding_cents", "days_past_due", "arrears_bucket"},
    "loan_provisions": {"loan_id", "provision_cents"},
    "eod_runs": {"business_date"},
}


def _last_closed_day(src: Source) -> dt.date | None:
    """The last business day end of day closed, when the bank keeps arrears and provisions
    per loan (the loans module of issue 9); None otherwise (and on the SQLite copy)."""
    # The SQLite copy has no end-of-day tables; the bank's own engine may (DuckDB, PostgreSQL).
    if src.d is SQLITE:
        return None
    known = getattr(src, "_eod_book_available", None)
    if known is None:
        cols = src.df(src.d.table_columns())
        have: dict[str, set] = {}
        for table, column in zip(cols["table_name"], cols["column_name"]):
            have.setdefault(table, set()).add(column)
        known = src._eod_book_available = all(
            needed <= have.get(table, set()) for table, needed in EOD_BOOK_COLUMNS.items())
    if not known:
        return None
    row = src.one("SELECT max(business_date) FROM eod_runs")
    return None if row is None or row[0] is None or pd.isna(row[0]) else as_date(row[0])


def loan_book(src: Source, as_of: dt.date) -> pd.DataFrame:
    """Loans as they stood at the end of business day `as_of`: loan_id, customer_id, status
    ('submitted', 'approved', 'active'), outstanding_cents (principal; asked for, before the
    payout), days_past_due (0 unless active and late) and provision_cents.

    From the last day end of day closed on, the book is what end of day left: its aged arrears
    and its loan-loss provision per loan, so that PAR, NPL and provisioning agree with the
    provisioning report and the ledger. Earlier days are rebuilt from the schedule and the
    payments (LOAN_BOOK_SQL), without a per-loan provision (0; the provision booked on a past
    day is the GL1290 balance)."""
    columns = ["loan_id", "customer_id", "status", "outstanding_cents", "days_past_due",
               "provision_cents"]
    if not loans_available(src):
        return pd.DataFrame({c: pd.Series(dtype=str if c == "status" else "int64")
                             for c in columns})
    last = _last_closed_day(src)
    if last is not None and as_of >= last:
        df = src.df(LOAN_BOOK_NOW_SQL)
        for column in ("loan_id", "customer_id", "outstanding_cents", "days_past_due",
                       "provision_cents"):
            df[column] = df[column].astype("int64")
        return df[columns]
    cut = midnight_after(as_of)
    # As end of day does: after closing day D, an instalment due on D or before and still
    # unpaid is late, counted from the next business date.
    nxt = as_of + dt.timedelta(days=1)
    df = src.df(LOAN_BOOK_SQL, [as_of, nxt, as_of, cut, as_of, as_of, as_of, as_of, cut])
    due = pd.to_datetime(df["oldest_due"])
    df["days_past_due"] = (pd.Timestamp(nxt) - due).dt.days.fillna(0).astype("int64")
    df["provision_cents"] = 0
    for column in ("loan_id", "customer_id", "outstanding_cents", "provision_cents"):
        df[column] = df[column].astype("int64")
    return df[columns]


def loan_decisions(src: Source, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
    if not loans_available(src):
        return pd.DataFrame({"loan_id": pd.Series(dtype="int64"),
                             "customer_id": pd.Series(dtype="int64"),
                             "status": pd.Series(dtype=str),
                             "applied_at": pd.Series(dtype="datetime64[ns]"),
                             "decided_at": pd.Series(dtype="datetime64[ns]")})
    return _to_day(src.df(LOAN_DECISIONS_SQL, [start, end]), "applied_at", "decided_at")
# == end of loan tables ==========================================================================
