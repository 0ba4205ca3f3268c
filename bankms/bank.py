"""The Bank: one object per database file that wires the services together.

`open_bank(path)` opens (creating or migrating) the file, starts the single writer thread and
returns a Bank whose services (`users`, `auth`, `customers`, `accounts`, `payments`, `audit`,
`ledger`, `settings`, `workdays`, `charges`, `home`...) are safe to call from many threads at
once.

Several processes on one PostgreSQL database (issue 14): nothing a Bank keeps in memory is
trusted across processes. Its writer reads its mirrors of the store again under the store's
writer lock when another process wrote (store/writer.py). For reads outside the writer, every
committed writer unit of work is announced (NOTIFY) and each Bank's listener thread
(engine.listen) hears the other processes' announcements and forgets what it keeps
(_others_committed): answers kept by `kept` (settings, accounts.list, balances...) are computed
again, accounts.list reads its slow columns again (calls_seq), the calendar is loaded again,
and the business date is read again. Freshness: a read in process B after a commit in process
A sees that commit as soon as B's listener has heard of it, which is milliseconds after A's
COMMIT returned (benchmarks/bench_pg_notify.py), not at once: a read in B in between may get
the answer B kept from before. A listener that lost its connection forgets everything once it
is back (it may have missed announcements). On DuckDB one process owns the file and nothing of
this runs.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import threading

from .domain import chain, security
from .services import businessday
from .store import files
# The chart of accounts lives in chart.py, a leaf the services import; bank.INTERNAL stays
# importable for the tests and benchmarks that know it by that name.
from .domain.chart import INTERNAL, INTERNAL_ACCOUNTS  # noqa: F401
from .domain.errors import BankError, PermissionDenied
from .services.ledger import BatchPoster, LedgerState, utcnow
from .services.settings import REGISTRY
from .store.engines import POSTGRES_SCHEMES, open_engine
from .store.port import Change
from .store.writer import Writer

# Every registered setting is stored with its default at the first open (settings.py).
DEFAULT_SETTINGS = {key: setting.default for key, setting in REGISTRY.items()}


# How old the read model may be when a report reads it, in seconds, unless
# BANKMS_READ_MODEL_MAX_AGE_S says otherwise: a read finding it older refreshes it first.
READ_MODEL_MAX_AGE_S = 10.0


class ReadModelSetting(tuple):
    """(read model path, max age in seconds), as read_model_setting always returned (callers
    unpack or compare the pair), with `source`: the libpq URL the read model pulls from."""

    path = property(lambda self: self[0])
    max_age_s = property(lambda self: self[1])

    def __new__(cls, path: str, max_age_s: float, source: str):
        setting = super().__new__(cls, (path, max_age_s))
        setting.source = source
        return setting


def read_model_setting(url: str, environ=os.environ) -> ReadModelSetting | None:
    """(read model path, max age in seconds) when the managers' dashboards, analytics,
    ledger reports and verify(on_read_model=True) should read a DuckDB read model of the bank
    (issue 14, step H) rather than the bank itself; None to read the bank.

    BANKMS_READ_MODEL: unset, '' or '0' (the default): off. '1': a read model in memory,
    filled by the first report after the start. Any other value: the path of a DuckDB file for
    it, which a restart continues incrementally. Only a bank on PostgreSQL has one: a DuckDB
    bank is its own columnar store. BANKMS_READ_MODEL_MAX_AGE_S (default 10): how old the
    figures may be; pages say "Figures as of ..." with the copy's time.

    BANKMS_READ_MODEL_SOURCE (the result's `.source`; default: the bank's own URL): the
    PostgreSQL URL the read model pulls from, typically a streaming replica of the bank's
    primary (docs/deploy-postgresql.md, section 5), so that the pulls load the replica, not
    the primary. Its figures are then as old as the replica's replay, and "Figures as of" says
    so (store/readmodel.py). It must be a replica of this very database: each pull checks
    that the source holds it (the cluster's system identifier and the database's oid, the same
    on a physical replica) and pulls nothing otherwise (readmodel.SourceMismatch)."""
    value = environ.get("BANKMS_READ_MODEL", "").strip()
    if value in ("", "0") or not str(url).startswith(POSTGRES_SCHEMES):
        return None
    max_age_s = float(environ.get("BANKMS_READ_MODEL_MAX_AGE_S", READ_MODEL_MAX_AGE_S))
    source = environ.get("BANKMS_READ_MODEL_SOURCE", "").strip() or url
    if not source.startswith(POSTGRES_SCHEMES):
        # The value is not quoted: a URL may hold a password.
        raise ValueError("BANKMS_READ_MODEL_SOURCE must be a postgresql:// URL (a streaming "
                         "replica of the bank's database), or unset for the bank's own URL")
    return ReadModelSetting(":memory:" if value == "1" else value, max_age_s, source)


class Bank:
    def __init__(self, path: str, *, bcrypt_rounds: int | None = None,
                 batch_size_max: int = 512, clock=None):
        self.path = path
        # What time it is, for every rule that asks (aware UTC; see businessday.py). The
        # default looks businessday.system_clock up at each call so tests can replace it.
        self.clock = clock or (lambda: businessday.system_clock())
        self.eod_scheduler = None
        self.bcrypt_rounds = bcrypt_rounds or int(os.environ.get("BANKMS_BCRYPT_ROUNDS", "12"))
        # The storage engine (store/port.py): DuckDB for a path or ':memory:', PostgreSQL for
        # a postgresql:// URL (several processes may open one: engine.shared_writers).
        self.engine = open_engine(path)
        # The analytics' read model (store/readmodel.py) when the bank is on PostgreSQL and
        # BANKMS_READ_MODEL asks for one (read_model_setting); None otherwise.
        self.read_model = None
        self.read_model_max_age_s = READ_MODEL_MAX_AGE_S
        setting = read_model_setting(path)
        if setting is not None:
            # Imported here: DuckDB's and ADBC's modules load only for a bank that uses them.
            from .store.readmodel import ReadModel
            try:
                self.read_model = ReadModel(setting.source, setting.path, bank_url=path)
            except BaseException:
                # A read model that cannot open (its file held by another process, a source
                # that does not answer) fails the open: the engine's connections go with it.
                self.engine.close()
                raise
            self.read_model_max_age_s = setting.max_age_s
        self._closed = False
        self._lock = threading.Lock()
        # Answers kept per ledger version (see kept): key -> (writer version, answer).
        self._kept: dict = {}
        # Units of work other processes committed, as this bank's listener heard of them
        # (_others_committed): all of them, and those other than posting batches. Only the
        # listener thread raises them (under _foreign_lock), so no raise is lost; they are
        # counters of their own rather than raises of the writer's version and calls_seq,
        # which the writer thread raises with `+=` (a read, an add and a store: a raise from
        # a second thread in between would be lost). Readers read them without a lock: a
        # stale read of a monotonic int only means one more recompute.
        self._foreign_writes = 0
        self._foreign_calls = 0
        self._foreign_lock = threading.Lock()
        self._ensure_internal_accounts()
        # On DuckDB uow.take_ids serves the ledger's ids from the writer's counters
        # (LedgerState): the max(id)+1 read at open stays right while this process's one
        # writer thread is the only writer of the file. On PostgreSQL, which several processes
        # write at once, every id comes from the engine's sequences (db.LEDGER_SEQUENCES).
        counters = not self.engine.shared_writers
        with self.engine.snapshot() as snap:
            self.state = LedgerState(snap, counters=counters)
        if counters:
            self.engine.set_counters({"transaction_id_seq": self.state.take_transaction_ids,
                                      "posting_id_seq": self.state.take_posting_ids,
                                      "audit_id_seq": self.state.take_audit_ids})
        from .store.chains import Chains
        self.chain = Chains(self)
        self.chain.load(self.engine, self.state)
        self._writer = Writer(self.engine, None,
                              batch_size_max=batch_size_max, chains=self.chain,
                              refresh=self._reread)
        poster = BatchPoster(self.engine.batch_writer(self._writer.cursor), self.state,
                             self.chain)
        self._writer._post_batch = poster
        poster.open_tills = self._open_tills
        poster.must_wait = lambda uow, request, earlier: self.approvals.must_wait(
            uow, request, earlier)
        self._writer.on_new_session = (
            lambda session: poster.use(self.engine.batch_writer(session)))

        from .services.accounts import Accounts
        from .services.audit import Audit
        from .services.customers import Customers
        from .services.outbox import Outbox
        from .services.bulk import Bulk
        from .services.payments import Payments
        from .services.settings import Settings
        from .services.users import Auth, Users
        from .services.form_keys import FormKeys
        from .services.workdays import Workdays

        self.settings = Settings(self)
        self.users = Users(self)
        self.auth = Auth(self)
        self.form_keys = FormKeys(self)
        self.customers = Customers(self)
        self.accounts = Accounts(self)
        self.payments = Payments(self)
        self.audit = Audit(self)
        self.ledger = Bulk(self)
        self.outbox = Outbox(self)
        self.workdays = Workdays(self)
        self._extensions()

    def _extensions(self):
        """Services added by later modules (loans, reports) attach here when present."""
        from .services.approvals import Approvals
        self.approvals = Approvals(self)
        try:
            from .services.loans import Loans
        except ImportError:
            pass
        else:
            self.loans = Loans(self)
        from .services.deposits.products import DepositProducts
        self.deposit_products = DepositProducts(self)
        from .services.charges import Charges
        self.charges = Charges(self)
        from .reporting.export import Export
        self.export = Export(self)
        from .services.deposits.term import TermDeposits
        self.term_deposits = TermDeposits(self)
        from .services.standing_orders import StandingOrders
        self.standing_orders = StandingOrders(self)
        try:
            from .reporting.reports import Reports
        except ImportError:
            pass
        else:
            self.reports = Reports(self)
        # Role home pages (issue 13): reads through the services above.
        from .services.home import Home
        self.home = Home(self)
        # Other processes may write the store (PostgreSQL): hear of their commits. Last, once
        # every service whose memory it clears exists; then forget once what was read before
        # LISTEN ran (a commit between the two was never announced to this bank).
        self._listening = None
        if self.engine.shared_writers:
            self._listening = self.engine.listen(self._others_committed)
            self._others_committed(Change("call", lost=True))

    # -- lifecycle ---------------------------------------------------------------------------
    def close(self):
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if self.eod_scheduler is not None:
            self.eod_scheduler.stop()
        # Before the writer and engine go: the listener reads through the engine.
        if getattr(self, "_listening", None) is not None:
            self._listening.stop()
        # A verify the managers' home started reads through the connection closed below.
        if getattr(self, "home", None) is not None:
            self.home.stop()
        self._writer.stop()
        if self.read_model is not None:
            self.read_model.close()
        self.engine.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def system_actor(self) -> security.Actor:
        return security.Actor(username="system", role="system", full_name="System")

    @property
    def business_date(self):
        return self.state.business_date

    @property
    def calls_seq(self) -> int:
        """The writer's sequence lock over writes other than posting batches (Writer.calls_seq):
        odd while such a write runs, raised again when it ends. A reader that sees the same
        even value before and after its query knows that since then only posting batches ran,
        which change only balances and last activity of accounts and append ledger rows.
        Other processes' writes other than posting batches raise it by 2 each as this bank's
        listener hears of them (_foreign_calls), so it stays even when this writer is idle."""
        return self._writer.calls_seq + 2 * self._foreign_calls

    # -- plumbing for services ---------------------------------------------------------------
    def read(self, sql, params=None):
        """Rows of one query, read in one snapshot through this thread's cursor."""
        return self.engine.read(sql, params)

    def read_one(self, sql, params=None):
        rows = self.read(sql, params)
        return rows[0] if rows else None

    def snapshot(self):
        """A Reader (store/port.py) of its own inside one read transaction: every query
        through it sees the same committed state while writers carry on. Rolled back on
        exit."""
        return self.engine.snapshot()

    def read_columns(self, sql, params=None):
        """One query's answer as {column name: tuple of Python values}, read in one snapshot
        through this thread's cursor: plain fetchall, for callers that build a small
        DataFrame once themselves (DuckDB's .df() costs more than the query for a few rows)."""
        return self.engine.read_columns(sql, params)

    def read_df(self, sql, params=None):
        return self.engine.read_df(sql, params)

    # How many answers `kept` holds at most; past that it starts again from none.
    KEPT_MAX = 256

    def kept(self, key, compute):
        """compute()'s answer, kept until the writer ends its next unit of work: every write
        goes through the writer, which raises its version before any caller hears back, so a
        kept answer is as fresh as reading again, including right after the caller's own
        posting. `key` must hold everything the answer depends on besides the database;
        callers must not change the answer in place (return a copy when it is mutable).
        On PostgreSQL, another process's commit ends it too, once this bank's listener has
        heard of it (milliseconds: the module docstring)."""
        # The sum of two counters that only rise: equal to a kept one only if neither moved.
        version = self._writer.version + self._foreign_writes
        hit = self._kept.get(key)
        if hit is not None and hit[0] == version:
            # Served from memory without releasing the GIL: let a busy writer run first.
            self._writer.give_way()
            return hit[1]
        # The version is read before computing: an answer computed while a write committed
        # is kept under the older version, which the writer has already moved past.
        answer = compute()
        if len(self._kept) >= self.KEPT_MAX:
            self._kept.clear()
        self._kept[key] = (version, answer)
        return answer

    def give_way(self) -> None:
        """For reads served from memory: yield the GIL to the writer while it has work
        (Writer.give_way says why)."""
        self._writer.give_way()

    def write(self, fn):
        """Run fn(uow) on the writer thread in one transaction; it commits only if fn returns."""
        return self._writer.call(fn)

    def post(self, request):
        return self._writer.post(request)

    def post_in(self, uow, request):
        """Apply one PostingRequest inside the caller's unit of work (writer thread only), with
        every guard of `post`, so that a service can change its own tables in the same database
        transaction as the money. Returns the Receipt, or the refusal (a BankError) without
        raising it: the caller decides whether to keep the refusal's audit row (return
        normally) or roll everything back (raise). Keys are looked up first, so a repeated key
        answers with the earlier receipt. The caller may have changed account rows earlier in
        its fn (released a hold, say), so the poster's cached rows are dropped and read afresh."""
        poster = self._writer._post_batch
        poster.invalidate()
        return poster(uow, [request], lookup_keys=True)[0]

    def check_in(self, uow, request) -> dict:
        """Run the posting guards for one request inside a writer fn without posting it;
        returns the accounts it read (see ledger.load_accounts) or raises the refusal."""
        return self._writer._post_batch.check(uow, request)

    def end_of_day(self, actor, until=None, progress=None, *, confirm=False):
        """Close every business day from the current business date up to `until` (default:
        the last day that has ended), in order; see eod.py. progress(done, total) is called
        after each day. DayNotEnded for a day that has not ended, ConfirmationRequired for a
        long catch-up without confirm=True."""
        from .services.eod.run import end_of_day
        return end_of_day(self, actor, until=until, progress=progress, confirm=confirm)

    def audit_row(self, uow, actor, action, entity=None, entity_id=None, before=None,
                  after=None, outcome="ok"):
        """Write one audit record inside the caller's unit of work (writer thread only)."""
        aid = int(uow.take_ids("audit_id_seq", 1).ids[0])
        uow.execute(
            "INSERT INTO audit_log (id, ts, actor, actor_role, action, entity, entity_id, "
            "before, after, outcome) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            # Usernames and ids may be text typed by anyone (a refused sign-in): no control
            # character may reach a chained column (chain.plain).
            [aid, utcnow(), chain.plain(actor.username), chain.plain(actor.role), action,
             chain.plain(entity), None if entity_id is None else chain.plain(str(entity_id)),
             None if before is None else json.dumps(before, default=str),
             None if after is None else json.dumps(after, default=str), outcome],
        )

    def require(self, actor, action, customer_id=None, *, entity=None, entity_id=None):
        """Check a permission; a refusal is audited before PermissionDenied is raised."""
        try:
            security.check(actor, action, customer_id)
        except PermissionDenied as exc:
            self.record_refusal(actor, action, exc, entity=entity, entity_id=entity_id)
            raise

    def record_refusal(self, actor, action, exc, *, entity=None, entity_id=None):
        if not isinstance(actor, security.Actor):
            actor = security.Actor(username="anonymous", role="anonymous")

        def fn(uow):
            self.audit_row(uow, actor, action, entity, entity_id,
                           after={"reason": type(exc).__name__, "message": str(exc)},
                           outcome="refused")
        self.write(fn)

    def _others_committed(self, change):
        """On the listener thread (engine.listen): another process committed a unit of work
        (port.Change), or the listener may have missed some (change.lost). Forget what this
        bank keeps from before: after a posting batch only the kept answers (balances moved);
        after anything else also the slow columns accounts.list keeps, the calendar and the
        business date (read again here). The date and calendar come first, so that a reader
        who sees the counters move also finds them fresh. When the date cannot be read (the
        server gone) the counters move all the same; the date is then read again by this
        bank's writer before its next unit of work (another process wrote: store/writer.py),
        by the next announcement, or after the listener's reconnection."""
        with self._foreign_lock:
            try:
                if change.kind != "post":
                    try:
                        row = self.engine.read(
                            "SELECT value FROM settings WHERE key = 'business_date'")
                        if row and row[0][0]:
                            self.state.catch_up(dt.date.fromisoformat(row[0][0]))
                    finally:
                        self.workdays.invalidate()
                        self._foreign_calls += 1
            finally:
                self._foreign_writes += 1

    def _reread(self, uow):
        """On the writer thread, under the store's writer lock, when another process may have
        written (store/writer.py): read again what the writer mirrors in memory, the id
        counters (DuckDB only) and business date (LedgerState) and the chain heads. The writer forgets the
        poster's cached account rows itself."""
        self.state.reload(uow)
        self.chain.reload(uow.fetchall, self.state)

    def _open_tills(self, uow, lane):
        """Open the tills of writer lane `lane` (chart.LANE_TILLS) that do not exist yet,
        inside the caller's unit of work (after the rows of the lane's first posting batch that
        booked on teller cash or clearing), each with its audit record. Only the session
        holding the lane opens its tills, so two processes never open the same one."""
        from .domain.chart import INTERNAL_ACCOUNTS, LANE_TILLS, till_number

        names = {number: name for number, code, name in INTERNAL_ACCOUNTS if code in LANE_TILLS}
        wanted = {till_number(number, lane): (number, name) for number, name in names.items()}
        have = {row[0] for row in uow.fetchall(
            "SELECT account_number FROM accounts WHERE "
            + uow.dialect.in_list("account_number", "VARCHAR"), [sorted(wanted)])}
        now, today = utcnow(), self.state.business_date
        for till in sorted(set(wanted) - have):
            number, name = wanted[till]
            acc_id = uow.fetchone("SELECT nextval('account_id_seq')")[0]
            uow.execute(
                "INSERT INTO accounts (id, account_number, customer_id, kind, name, status, "
                "opened_at, opened_date) VALUES (?, ?, NULL, 'internal', ?, 'active', ?, ?)",
                [acc_id, till, f"{name} (writer lane {lane})", now, today])
            self.audit_row(uow, self.system_actor(), "account.open", "account", till, after={
                "kind": "internal", "till_of": number, "lane": lane})

    def _ensure_internal_accounts(self):
        # Before the writer exists: a unit of work of its own on this thread. Exclusive, so
        # that processes opening a new PostgreSQL database at once take turns (the second
        # then finds every row there) instead of one failing with a serialization error.
        now = utcnow()
        with self.engine.unit_of_work(exclusive=True) as uow:
            for number, code, name in INTERNAL_ACCOUNTS:
                uow.execute(
                    "INSERT INTO accounts (id, account_number, customer_id, kind, name, status, "
                    "opened_at, opened_date) SELECT coalesce((SELECT max(id) FROM accounts), 0) "
                    "+ 1, ?, NULL, 'internal', ?, 'active', ?, CAST(? AS DATE) WHERE NOT EXISTS "
                    "(SELECT 1 FROM accounts WHERE account_number = ?)",
                    [number, name, now, now, number],
                )
            for key, value in DEFAULT_SETTINGS.items():
                uow.execute("INSERT INTO settings VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
                            [key, value])
            # The business date is stored from the first open on, so that a bank reopened days
            # later still knows which days end of day has not closed yet.
            zone = businessday.parse_zone(uow.fetchone(
                "SELECT value FROM settings WHERE key = 'bank_time_zone'")[0])
            today = businessday.as_utc(self.clock()).astimezone(zone).date()
            uow.execute("INSERT INTO settings VALUES ('business_date', ?) "
                        "ON CONFLICT (key) DO NOTHING", [today.isoformat()])
            uow.commit()


def bank_exists(path: str) -> bool:
    """Whether `path` holds a bank already, without creating anything: a DuckDB file that
    exists, or a PostgreSQL database ('postgresql://...') that has the bank's tables (a server
    that cannot be reached raises NotABank). ':memory:' never does. For entry points that do
    something once, on a bank's very first start (the app's demo bank)."""
    if path == ":memory:":
        return False
    if path.startswith(POSTGRES_SCHEMES):
        from .store import pgtools
        return pgtools.has_bank(path)
    return os.path.exists(path)


def open_bank(path: str = None, **kwargs) -> Bank:
    """Open the bank in a DuckDB file (created and migrated as needed; ':memory:' works) or in
    a PostgreSQL database ('postgresql://...', migrated as needed; several processes may open
    the same database and post at once: store/writer.py)."""
    if path is None:
        path = os.environ.get("BANKMS_DB", "data/bank.duckdb")
    if path != ":memory:" and "://" not in path:
        # Before DuckDB creates the file or its WAL: both private to this user (files.py).
        files.private_umask()
        files.make_private_folder(files.data_folder(path))
        files.tighten(path)
    return Bank(path, **kwargs)


__all__ = ["Bank", "bank_exists", "open_bank", "BankError"]
