"""The demo bank: realistic customers, accounts and months of history, built through the bulk path.

`build_demo(bank, customers=, months=, seed=)` fills an empty bank with people (students,
professionals, retirees, small-business owners), their checking, savings and business accounts,
and every money movement of the last `months` calendar months up to the bank's business date:
salaries and pensions from the external `clearing` account, rent and bills, many small card
payments with the merchant in the memo, cash at ATMs, transfers between customers, standing
orders to savings, savings interest and account fees, with seasons (December spending, summer
travel, winter heating), and loans in every state with their instalment history
(demo_loans.py). It also creates a manager, a teller and a few customer logins with
known passwords, which it returns and keeps in the `demo_logins` setting for the sign-in page.

How no account can ever be overdrawn. Each calendar month (a "window") is generated for all
accounts at once with numpy. Money that an account may spend is known before it spends it: on
the first day of the month the salary arrives at 06:00-06:10, loan payoffs (topped up from
outside when short) leave at 06:25, owner draws at 06:30, holiday
money from savings at 06:45 and the standing order to savings leaves at 07:00, each capped by
what the paying account holds at that moment. Everything else an account pays happens from
08:00 on, in time order, and a payment is kept only while the running total of the month's
payments stays within the balance after those morning movements plus the overdraft limit.
A loan instalment due in the month is reserved from that total, and before its collection
(23:50 of the due date) payments may not touch it nor the overdraft. Money that arrives later
in the month (transfers from friends, sales, a loan payout that is spent right after) is never
counted, so the balance replayed in `posted_at` order can only be higher than that bound, never
below the limit. Accounts stop all activity when their holder is suspended, when they are frozen, or when
they are closed (savings are emptied to the holder's checking, then closed at zero).

Kinds used: deposit (money in from outside: pay, pension, sales, opening deposits), withdrawal
(money out to outside: card payments, rent, bills, suppliers, ATM cash), transfer (between two
customer accounts), interest (savings interest, from interest_expense), fee (to fee_income),
and loan_disbursement, loan_repayment and loan_write_off as loans.py and eod.py post them.

Channels (transactions.channel, labels.py) say how the money moved, as the bank's own payments
record it: card payments ("Card payment FreshMart") through `card`, ATM cash through `atm`,
pay and pensions through `salary`, rent and bills through `direct_debit`, the standing order
to savings through `standing_order`; other deposits and withdrawals through `cash` (the teller
cash account) or `transfer` (clearing: other banks). Each memo text is interned with its
channel (`_Builder.memo`), so a transaction's channel follows from its memo.
"""
from __future__ import annotations

import calendar
import concurrent.futures
import datetime as dt
import functools
import json
import secrets
import time

import bcrypt
import numpy as np
import pandas as pd

from ..store import db
from ..domain.chart import INTERNAL
from .codes import (  # noqa: F401 (demo.DEMO_CUSTOMERS and the rest stay importable)
    BUSINESS, DEMO_CUSTOMERS, DEMO_STAFF, DEPOSIT, FEE, INTEREST, KINDS, LOAN_DISBURSEMENT,
    LOAN_REPAYMENT, LOAN_WRITE_OFF, N_DEMO, N_DEMO_ACTIVE, PROFESSIONAL, RETIREE, SEGMENTS,
    STUDENT, TRANSFER, WITHDRAWAL)
from .loans import LoanBook
from ..domain.errors import InvalidInput, InvalidState
from ..domain.labels import CHANNEL_LABELS
from ..services import businessday
from ..services.loans import TERM_COLUMNS
from ..services.users import check_password_policy

CUSTOMERS_MAX = 2_000_000
MONTHS_MAX = 120

US = 1_000_000
MINUTE = 60 * US
HOUR = 60 * MINUTE
DAY = 24 * HOUR
MONTH = 30 * DAY
YEAR = 365 * DAY

# Loan transactions name the internal account they move money from or to (as loans.py does).
LOAN_KINDS = (LOAN_DISBURSEMENT, LOAN_REPAYMENT, LOAN_WRITE_OFF)
# Kinds that count as the customer's own activity (as in ledger.CUSTOMER_ACTIVITY_KINDS).
ACTIVITY_KINDS = (DEPOSIT, WITHDRAWAL, TRANSFER)
# Channel codes (index into CHANNELS; -1: none recorded).
CHANNELS = list(CHANNEL_LABELS)
(CH_CASH, CH_ATM, CH_CARD, CH_SALARY, CH_TRANSFER, CH_DIRECT_DEBIT,
 CH_STANDING_ORDER) = (CHANNELS.index(c) for c in (
    "cash", "atm", "card", "salary", "transfer", "direct_debit", "standing_order"))

SEGMENT_SHARE = [0.18, 0.52, 0.20, 0.10]

CHECKING, SAVINGS, BUSINESS_CHECKING = range(3)
ACCOUNT_NAME = ["Checking", "Savings", "Business checking"]

# Card spending: category, weight, median amount (cents), spread (log sigma), merchants.
CARD_CATEGORIES = [
    ("groceries", 30, 3800, 0.6, ["FreshMart", "Green Grocer", "Corner Market", "Family Foods",
                                  "Harvest Supermarket", "ValueSave", "Organic Basket"]),
    ("coffee", 18, 650, 0.4, ["Bean There Cafe", "Daily Grind", "Brew & Co", "Morning Perk",
                              "The Bakehouse"]),
    ("restaurants", 12, 3800, 0.55, ["Luigi's Trattoria", "Golden Dragon", "The Hungry Fork",
                                     "Spice Route", "Burger Barn", "Sushi Kan", "Taco Loco"]),
    ("transport", 10, 3000, 0.7, ["City Transit", "QuickFuel", "RoadStar Fuel", "RideNow Taxi",
                                  "ParkEasy"]),
    ("online", 10, 4200, 0.8, ["ShopNet", "ParcelPoint", "MegaStore Online", "BookNook",
                               "TechHub"]),
    ("health", 5, 1800, 0.6, ["WellCare Pharmacy", "HealthPlus", "Smile Dental"]),
    ("entertainment", 6, 2500, 0.5, ["Starlight Cinema", "GameZone", "City Museum",
                                     "Live Arena Tickets"]),
    ("clothing", 5, 5500, 0.6, ["Urban Threads", "Style House", "ShoeBox", "Kids Corner"]),
    ("travel", 1.5, 32000, 0.7, ["SkyWays Airlines", "Seaside Hotel", "Alpine Lodge",
                                 "TravelNow", "RailLink", "SunCar Rentals"]),
    ("gifts", 0.5, 4500, 0.7, ["Gift Gallery", "Toy Town", "Flower Corner", "Candle & Co"]),
]
CAT_TRAVEL = 8
CAT_GIFTS = 9
CAT_ONLINE = 4
# Seasons: how much more people buy in a month, and the weight of travel, gifts and online.
MONTH_SPEND = {1: 0.85, 2: 0.9, 3: 0.95, 4: 1.0, 5: 1.0, 6: 1.05, 7: 1.15, 8: 1.15, 9: 0.95,
               10: 1.0, 11: 1.1, 12: 1.35}
MONTH_TRAVEL = {6: 6.0, 7: 9.0, 8: 8.0, 12: 3.0, 4: 2.0}
MONTH_GIFTS = {11: 2.5, 12: 9.0}
MONTH_HEATING = {12: 1.4, 1: 1.45, 2: 1.3, 3: 1.1, 6: 0.75, 7: 0.7, 8: 0.75}

EMPLOYERS = ["Acme Logistics", "Northwind Traders", "Bluebird Health", "Crescent Software",
             "Riverside Council", "Summit Engineering", "Harbor Shipping", "Maple Schools",
             "Orion Insurance", "Pinecrest Hospital", "Atlas Construction", "Lumen Energy",
             "Cedar Retail Group", "Vertex Consulting", "Silverline Foods", "Nova Telecom"]
STUDENT_PAY = ["Campus Cafe", "City Library", "BookNook", "Student Union"]
BILLS = [  # memo, median cents, spread, share of customers, day of month
    ("Electricity BrightPower", 7500, 0.35, 0.9, 12),
    ("Water CityWater", 2800, 0.25, 0.6, 15),
    ("Mobile TelcoOne", 2900, 0.3, 0.95, 20),
    ("Internet FiberNet", 3900, 0.15, 0.75, 8),
    ("Insurance SafeGuard", 5200, 0.5, 0.5, 3),
    ("Gym FitLife", 3500, 0.2, 0.25, 6),
    ("Streaming StreamBox", 1299, 0.15, 0.55, 18),
]
LANDLORDS = ["Oakwood Properties", "City Housing", "Greenfield Lettings", "Parkview Estates"]
MORTGAGE = "Mortgage Northbank Home Loans"
ATM_PLACES = ["Central Station", "Market Square", "Airport", "High Street", "Mall"]
ATM_AMOUNTS = np.array([20, 40, 50, 60, 80, 100, 150, 200]) * 100
P2P_MEMOS = ["Dinner split", "Rent share", "Thanks!", "Concert tickets", "Birthday gift",
             "Groceries", "Taxi home", "Holiday costs", "Paying you back"]
SUPPLIERS = ["Metro Wholesale", "PrintWorks", "OfficeHub", "FreshFarm Produce",
             "TechParts Direct", "CleanPro Services"]
CLIENTS = ["Harbor Cafe", "Lumen Studio", "Greenleaf Ltd", "Quartz Media", "Maple Dental"]

FIRST_NAMES = [
    "James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David",
    "Elizabeth", "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas",
    "Sarah", "Charles", "Karen", "Daniel", "Nancy", "Matthew", "Lisa", "Anthony", "Betty",
    "Mark", "Sandra", "Paul", "Ashley", "Steven", "Emily", "Andrew", "Donna", "Joshua",
    "Michelle", "Kevin", "Carol", "Brian", "Amanda", "George", "Melissa", "Timothy",
    "Deborah", "Ryan", "Stephanie", "Jacob", "Rebecca", "Nicholas", "Laura", "Eric", "Helen",
    "Jonathan", "Sharon", "Samuel", "Cynthia", "Benjamin", "Kathleen", "Aaron", "Amy",
    "Wei", "Mei", "Hiroshi", "Yuki", "Arjun", "Priya", "Rahul", "Ananya", "Mohammed", "Fatima",
    "Omar", "Aisha", "Ali", "Leila", "Carlos", "Sofia", "Diego", "Lucia", "Mateo", "Valentina",
    "Luca", "Giulia", "Lars", "Ingrid", "Sven", "Astrid", "Pierre", "Camille", "Hugo", "Chloe",
    "Kwame", "Amara", "Chidi", "Zainab", "Tomasz", "Zofia", "Ivan", "Olga", "Noah", "Emma",
    "Liam", "Olivia", "Ethan", "Ava", "Lucas", "Mia", "Elijah", "Isabella", "Oliver", "Harper",
]
LAST_NAMES = [
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez",
    "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor",
    "Moore", "Jackson", "Martin", "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez",
    "Clark", "Ramirez", "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright",
    "Scott", "Torres", "Nguyen", "Hill", "Flores", "Green", "Adams", "Nelson", "Baker", "Hall",
    "Rivera", "Campbell", "Mitchell", "Carter", "Roberts", "Chen", "Wang", "Li", "Zhang",
    "Kim", "Park", "Tanaka", "Sato", "Patel", "Sharma", "Singh", "Khan", "Ahmed", "Hassan",
    "Ali", "Rossi", "Russo", "Ferrari", "Muller", "Schmidt", "Schneider", "Fischer", "Weber",
    "Dubois", "Moreau", "Laurent", "Jensen", "Nielsen", "Hansen", "Larsen", "Johansson",
    "Andersson", "Kowalski", "Nowak", "Ivanov", "Petrov", "Okafor", "Mensah", "Diallo",
    "Silva", "Santos", "Oliveira", "Costa", "Murphy", "Kelly", "OBrien", "Walsh", "Byrne",
]
STREETS = ["Main Street", "Oak Avenue", "Maple Road", "Cedar Lane", "Elm Street", "Park Road",
           "High Street", "Church Lane", "Mill Road", "Station Road", "Victoria Street",
           "Kings Road", "Queens Avenue", "Bridge Street", "River View", "Hillside Drive",
           "Lake Shore Drive", "Sunset Boulevard", "Garden Close", "Meadow Way"]
CITIES = [("Springfield", "10"), ("Riverton", "11"), ("Lakeside", "12"), ("Fairview", "13"),
          ("Greenville", "14"), ("Brookfield", "15"), ("Ashford", "16"), ("Kingsport", "17"),
          ("Westbury", "18"), ("Northgate", "19"), ("Eastwood", "20"), ("Milton", "21")]
EMAIL_DOMAINS = ["example.com", "example.net", "example.org", "mail.example", "post.example"]


# -- public API -----------------------------------------------------------------------------

def demo_exists(bank) -> bool:
    """True when this bank was built as a demo bank (so `init` does not build it twice)."""
    return bank.settings.get("demo_bank") == "1"


def demo_logins(bank) -> list[dict]:
    """The public demo logins (role, username, password, full_name); [] for a real bank."""
    if not demo_exists(bank):
        return []
    try:
        return json.loads(bank.settings.get("demo_logins") or "[]")
    except ValueError:
        return []


def is_empty(bank) -> bool:
    """True when the bank has no customers, no transactions and no users at all, so a demo
    bank can go into it. Any user counts: a demo built beside a real bank's first manager would
    put public demo passwords on that bank's sign-in page."""
    used = bank.read_one(
        "SELECT (SELECT count(*) FROM customers) + (SELECT count(*) FROM transactions) + "
        "(SELECT count(*) FROM users)")[0]
    return used == 0


def build_demo(bank, customers: int = 200, months: int = 6, seed: int = 7,
               progress=None) -> list[dict]:
    """Fill an empty bank with a demo bank; returns the demo logins.

    `progress(done, total)` is called from the calling thread after each step.
    """
    for value, label in ((customers, "number of customers"), (months, "number of months")):
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidInput(f"The {label} must be a whole number.")
    if customers < 10 or customers > CUSTOMERS_MAX:
        raise InvalidInput(f"A demo bank has 10 to {CUSTOMERS_MAX:,} customers.")
    if months < 1 or months > MONTHS_MAX:
        raise InvalidInput(f"A demo bank covers 1 to {MONTHS_MAX} months.")
    if demo_exists(bank):
        raise InvalidState("This bank already holds the demo bank.")
    if not is_empty(bank):
        raise InvalidState("The demo bank can be built only into a new, empty bank; this one "
                           "already has customers, transactions or users. Use a new "
                           "database file.")
    # Marked before the first row, so that a build that stops halfway is known as such by
    # every later start (half_built), not served as a bank.
    _mark_building(bank)
    return _Builder(bank, customers, months, seed, progress).run()


HALF_BUILT = ("A demo bank build began on this database and stopped before it finished; it "
              "holds part of one. Drop it (or delete the file), create it again and start the "
              "app.")


def half_built(bank) -> bool:
    """True when a demo build began here and never finished (its process stopped or died):
    the bank holds part of a demo, which must not be served as a bank (the app refuses to
    start on it; build_once raises). The mark is written before the build's first row."""
    return bank.settings.get("demo_building") == "1" and not demo_exists(bank)


def _mark_building(bank) -> None:
    system = bank.system_actor()

    def fn(uow):
        uow.execute("INSERT INTO settings VALUES ('demo_building', '1') ON CONFLICT (key) "
                    "DO UPDATE SET value = excluded.value")
        bank.audit_row(uow, system, "demo.build_started", "bank", None)
    bank.write(fn)


def build_once(bank, customers: int = 200, months: int = 6, seed: int = 7, *, progress=None,
               on_wait=None, wait_s_max: float = 1800.0) -> list[dict] | None:
    """build_demo into a new, empty bank, once, even when several app processes start on one
    new PostgreSQL database at the same moment; returns the demo logins, or None when the bank
    already holds the demo or anything else (then nothing is built).

    Each process found the database new, so each would build: the emptiness check and the
    build run under the "first_start" job lock (engine.job_lock, a PostgreSQL advisory lock;
    always granted on DuckDB, whose file one process owns). A process that finds the lock
    held calls on_wait() once and waits, taking the lock again every half second, until the
    builder is done, then finds the bank no longer empty. Raises InvalidState after wait_s_max
    seconds of waiting."""
    deadline = time.monotonic() + wait_s_max
    told = False
    while True:
        with bank.engine.job_lock("first_start") as held:
            if held:
                if demo_exists(bank):
                    return None
                if half_built(bank):
                    raise InvalidState(HALF_BUILT)
                if not is_empty(bank):
                    if told:
                        # The builder we waited for let go of the lock (it stopped, or its
                        # process died) before it marked the demo built: what it wrote is part
                        # of a demo, and an app started on it would look like a bank.
                        raise InvalidState(HALF_BUILT)
                    return None
                return build_demo(bank, customers=customers, months=months, seed=seed,
                                  progress=progress)
        if not told and on_wait is not None:
            on_wait()
        told = True
        if time.monotonic() > deadline:
            raise InvalidState("Another app process has been building the demo bank for "
                               f"more than {wait_s_max:.0f} s; check that process's log.")
        # Polling, not a blocking advisory lock: job_lock never waits (port.Engine.job_lock).
        time.sleep(0.5)


# -- the builder ----------------------------------------------------------------------------

def _us(moment: dt.datetime) -> int:
    return int((moment - dt.datetime(1970, 1, 1)).total_seconds()) * US + moment.microsecond


def _dt64(us_array):
    return np.asarray(us_array, dtype="int64").astype("datetime64[us]")


def _add_months(day: dt.date, n: int) -> dt.date:
    month_index = day.year * 12 + day.month - 1 + n
    return dt.date(month_index // 12, month_index % 12 + 1, 1)


# Savings interest accrued on each day of the running month before the business date, on the
# day's closing balance, as eod.accrue_sql would have. Parameters: month start, business date,
# month start (three times), business date. Built once per engine dialect (store/sql.py).
@functools.cache
def accruals_sql(dialect) -> str:
    """The demo's accrual INSERT in `dialect`."""
    return """
INSERT INTO interest_accruals (account_id, accrual_date, balance_cents, rate_percent,
                               accrued_micro_cents)
WITH days AS (""" + dialect.day_series("?", "?") + """),
paying AS (
    SELECT id, interest_rate_percent AS rate FROM accounts
    WHERE customer_id IS NOT NULL AND status <> 'closed' AND interest_rate_percent > 0),
opening AS (
    SELECT p.account_id, sum(p.amount_cents) AS cents FROM postings p
    JOIN paying a ON a.id = p.account_id WHERE p.posted_at < ? GROUP BY 1),
daily AS (
    SELECT p.account_id, CAST(p.posted_at AS DATE) AS d, sum(p.amount_cents) AS cents
    FROM postings p JOIN paying a ON a.id = p.account_id
    WHERE p.posted_at >= ? AND CAST(p.posted_at AS DATE) < ? GROUP BY 1, 2),
closing AS (
    SELECT a.id, a.rate, days.d, CAST(coalesce(o.cents, 0) + coalesce(sum(x.cents) OVER (
        PARTITION BY a.id ORDER BY days.d ROWS UNBOUNDED PRECEDING), 0) AS BIGINT) AS cents
    FROM paying a CROSS JOIN days LEFT JOIN opening o ON o.account_id = a.id
    LEFT JOIN daily x ON x.account_id = a.id AND x.d = days.d)
SELECT id, d, cents, rate,
       CAST(""" + dialect.int_div(
        "2 * CAST(cents AS DECIMAL(38, 0)) * CAST(rate * 10000 AS BIGINT) + 365",
        "730") + """ AS BIGINT)
FROM closing WHERE cents > 0
"""


class _Tx:
    """Transactions of one batch as parallel arrays, gathered piece by piece.

    A transaction moves `amount` from `debit` to `credit`, except that `interest` and `fee`
    of it go to interest and fee income instead (loan repayments); `ref` marks loan events
    whose transaction ids the loan tables need (-1 for everything else)."""

    FIELDS = ("t", "kind", "memo", "amount", "debit", "credit", "interest", "fee", "ref")

    def __init__(self):
        self.parts = {f: [] for f in self.FIELDS}

    def add(self, t, kind, memo, amount, debit, credit, interest=0, fee=0, ref=-1):
        t = np.asarray(t, dtype=np.int64)
        n = t.shape[0]
        if n == 0:
            return
        for name, value in (("t", t), ("kind", kind), ("memo", memo), ("amount", amount),
                            ("debit", debit), ("credit", credit), ("interest", interest),
                            ("fee", fee), ("ref", ref)):
            self.parts[name].append(np.broadcast_to(np.asarray(value, dtype=np.int64), (n,)))

    def arrays(self):
        if not self.parts["t"]:
            return {f: np.zeros(0, dtype=np.int64) for f in self.FIELDS}
        return {f: np.concatenate(v) for f, v in self.parts.items()}


class _Builder:
    def __init__(self, bank, customers, months, seed, progress):
        self.bank = bank
        self.n = customers
        self.months = months
        self.rng = np.random.default_rng(seed)
        self.seed = seed
        self.progress = progress or (lambda done, total: None)
        self.system = bank.system_actor()
        self.memos: list[str] = []
        self._memo_index: dict[str, int] = {}
        # The channel (code in CHANNELS, -1 for none) of each memo, by memo code.
        self.memo_channels: list[int] = []
        self.counts = {"transactions": 0, "postings": 0}

    # -- helpers ------------------------------------------------------------------------------
    def memo(self, text: str, channel: int = -1) -> int:
        """The code of a memo text; its channel is the one given when it was first seen."""
        code = self._memo_index.get(text)
        if code is None:
            code = self._memo_index[text] = len(self.memos)
            self.memos.append(text)
            self.memo_channels.append(channel)
        return code

    def memo_codes(self, texts, channel: int = -1) -> np.ndarray:
        return np.array([self.memo(t, channel) for t in texts], dtype=np.int64)

    def lognormal(self, median, sigma, size):
        return np.asarray(median) * self.rng.lognormal(0.0, sigma, size)

    # -- the whole build ------------------------------------------------------------------------
    def run(self):
        self._plan_time()
        hashes = self._start_hashing()
        self._make_customers()
        self._make_accounts()
        self._plan_stops()
        self._plan_spending()
        self.loans = LoanBook(self, self.seed)
        self.loans.plan()
        total = len(self.windows) + 4
        step = 0
        self._write_people({k: f.result() for k, f in hashes.items()})
        step += 1
        self.progress(step, total)
        # Posting a window runs on the writer thread while the next one is generated here.
        with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="demo-post") as pool:
            pending = None
            batches = [self._opening_balances] + [
                (lambda w=w: self._window(w)) for w in range(len(self.windows))]
            for make in batches:
                tx = make()
                if pending is not None:
                    pending.result()
                    step += 1
                    self.progress(step, total)
                # Frames are built here: the next window adds memos while this one posts.
                pending = pool.submit(self._post, *self._frames(tx))
            pending.result()
            step += 1
            self.progress(step, total)
        self._write_loans()
        step += 1
        self.progress(step, total)
        logins = self._finish()
        self.progress(total, total)
        return logins

    # -- time --------------------------------------------------------------------------------------
    def _plan_time(self):
        bank = self.bank
        # The bank's clock, not the machine's, so that a test can build the demo at any hour.
        now = businessday.as_utc(bank.clock()).astimezone(dt.timezone.utc).replace(tzinfo=None)
        business_date = bank.state.business_date
        end = min(now - dt.timedelta(minutes=2),
                  dt.datetime.combine(business_date, dt.time(23, 59)))
        self.end = _us(end)
        self.end_date = end.date()
        first = _add_months(self.end_date, -self.months)
        self.start = _us(dt.datetime.combine(first, dt.time()))
        # Calendar months from the first of the month `months` back, the last one running.
        # A month is "full" when it ended before the end of the demo: interest and fees are
        # posted at a month's end, so only full months carry them.
        self.windows = []
        month_start = first
        while True:
            nxt = _add_months(month_start, 1)
            ws = _us(dt.datetime.combine(month_start, dt.time()))
            month_end = _us(dt.datetime.combine(nxt, dt.time()))
            self.windows.append((ws, min(month_end, self.end), month_start.month,
                                 month_start.year, month_end <= self.end))
            if month_end >= self.end:
                break
            month_start = nxt

    # -- people ------------------------------------------------------------------------------------
    def _start_hashing(self):
        """bcrypt at the bank's cost takes ~0.5 s a login; hash on threads meanwhile."""
        for user in DEMO_STAFF + DEMO_CUSTOMERS:
            check_password_policy(user["password"], user["username"])
        pool = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="demo-hash")
        rounds = self.bank.bcrypt_rounds

        def hash_one(password):
            return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds)).decode()
        futures = {u["username"]: pool.submit(hash_one, u["password"])
                   for u in DEMO_STAFF + DEMO_CUSTOMERS}
        # Self-registered (pending) customers have logins nobody knows the password of: one
        # hash of a random secret that is thrown away. A manager can reset it.
        futures["*unusable*"] = pool.submit(hash_one, secrets.token_urlsafe(32))
        pool.shutdown(wait=False)
        return futures

    def _make_customers(self):
        rng, n = self.rng, self.n
        seg = rng.choice(4, size=n, p=SEGMENT_SHARE)
        span = self.end - self.start
        new_share = min(0.45, 0.03 + 0.035 * self.months)
        u = rng.random(n)
        is_new = u < new_share
        is_pending = rng.random(n) < 0.025
        self._at_least(is_pending, np.arange(n) >= N_DEMO, 1)
        # Growth: the density of sign-ups rises over the period (sqrt of a uniform).
        created = np.where(
            is_new,
            self.start + (np.sqrt(rng.random(n)) * (span - DAY)).astype(np.int64),
            self.start - MONTH - (rng.random(n) ** 1.4 * 10 * YEAR).astype(np.int64))
        # Students have not been customers for long.
        created = np.where((seg == STUDENT) & ~is_new,
                           self.start - (rng.random(n) * 4 * YEAR).astype(np.int64) - DAY,
                           created)
        created = np.where(is_pending,
                           self.end - (rng.random(n) * 30 * DAY).astype(np.int64) - HOUR, created)
        # Staff onboard during office hours; keep everyone at least a few hours before the end.
        day0 = created - created % DAY
        created = day0 + 9 * HOUR + (rng.random(n) * 8 * HOUR).astype(np.int64)
        created = np.minimum(created, self.end - 4 * HOUR)
        status = np.where(is_pending, "pending", "active").astype(object)
        self._pin_demo_customers(seg, created, status)
        # Ages per segment at the end date; nobody became a customer before 18.
        age_low = np.array([18, 24, 65, 27])[seg]
        age_high = np.array([26, 63, 92, 67])[seg]
        age_days = ((age_low + rng.random(n) * (age_high - age_low)) * 365.25).astype(np.int64)
        dob_us = self.end - age_days * DAY
        dob_us = np.minimum(dob_us, created - 18 * YEAR - (rng.random(n) * 2 * YEAR).astype(np.int64))
        self.seg, self.created, self.status = seg, created, status
        self.dob = _dt64(dob_us).astype("datetime64[D]")
        first = rng.integers(0, len(FIRST_NAMES), n)
        last = rng.integers(0, len(LAST_NAMES), n)
        names = [f"{FIRST_NAMES[a]} {LAST_NAMES[b]}" for a, b in zip(first, last)]
        house = rng.integers(1, 240, n)
        street = rng.integers(0, len(STREETS), n)
        city = rng.integers(0, len(CITIES), n)
        zips = rng.integers(0, 1000, n)
        addresses = [f"{h} {STREETS[s]}, {CITIES[c][1]}{z:03d} {CITIES[c][0]}"
                     for h, s, c, z in zip(house, street, city, zips)]
        phones = [f"+1 555 {a:03d} {b:04d}" for a, b in
                  zip(rng.integers(100, 1000, n), rng.integers(0, 10000, n))]
        domain = rng.integers(0, len(EMAIL_DOMAINS), n)
        emails = [f"{FIRST_NAMES[a].lower()}.{LAST_NAMES[b].lower()}{i % 997}@{EMAIL_DOMAINS[d]}"
                  for i, (a, b, d) in enumerate(zip(first, last, domain))]
        # National ids: two letters, six digits, a letter; unique by construction.
        codes = rng.choice(26 * 26 * 1_000_000 * 26, size=n, replace=False)
        ids = []
        for code in codes.tolist():
            code, tail = divmod(code, 26)
            code, digits = divmod(code, 1_000_000)
            a, b = divmod(code, 26)
            ids.append(f"{chr(65 + a)}{chr(65 + b)}{digits:06d}{chr(65 + tail)}")
        for i, spec in enumerate(DEMO_CUSTOMERS):
            names[i] = spec["full_name"]
            emails[i] = f"{spec['username']}@example.com"
        self.names, self.addresses, self.phones, self.emails, self.national_ids = (
            names, addresses, phones, emails, ids)
        self.usernames = [None] * n
        for i, spec in enumerate(DEMO_CUSTOMERS):
            self.usernames[i] = spec["username"]
        for i in np.flatnonzero(status == "pending"):
            if self.usernames[i] is None:
                self.usernames[i] = (f"{FIRST_NAMES[first[i]].lower()}"
                                     f"{LAST_NAMES[last[i]][0].lower()}{i}")

    def _pin_demo_customers(self, seg, created, status):
        years_before = [4, 6, 9]
        for i, spec in enumerate(DEMO_CUSTOMERS):
            seg[i] = spec["segment"]
            status[i] = spec["status"]
            if spec["status"] == "pending":
                created[i] = self.end - 2 * DAY - 3 * HOUR
            else:
                created[i] = self.start - years_before[i] * YEAR + 10 * HOUR

    def _make_accounts(self):
        """Accounts per customer: everyone active has a checking account; savings by segment;
        business owners a business account; some old customers an untouched (dormant) one."""
        rng, n = self.rng, self.n
        seg, created = self.seg, self.created
        active = self.status == "active"
        old_enough = created <= self.end - 15 * MONTH
        demo = np.arange(n) < N_DEMO
        self.cust_dormant = active & old_enough & ~demo & (rng.random(n) < 0.015)
        self._at_least(self.cust_dormant, active & old_enough & ~demo, 1)
        has_sav = active & (rng.random(n) < np.array([0.3, 0.65, 0.75, 0.5])[seg])
        has_sav[:N_DEMO_ACTIVE] = True
        extra_dormant = active & old_enough & ~demo & ~self.cust_dormant & (rng.random(n) < 0.04)
        self._at_least(extra_dormant, active & old_enough & ~demo & ~self.cust_dormant, 1)
        cust = np.arange(n)
        late_savings = has_sav & ~demo & (rng.random(n) < 0.3)
        late_open = created + (rng.random(n) * np.maximum(self.end - 20 * DAY - created, 0)
                               ).astype(np.int64)
        sav_open = np.where(late_savings & (late_open > created), late_open, created + 15 * MINUTE)
        parts = [
            (cust[active], CHECKING, created[active] + 10 * MINUTE, self.cust_dormant[active]),
            (cust[has_sav], SAVINGS, sav_open[has_sav], self.cust_dormant[has_sav]),
            (cust[active & (seg == BUSINESS)], BUSINESS_CHECKING,
             created[active & (seg == BUSINESS)] + 20 * MINUTE,
             self.cust_dormant[active & (seg == BUSINESS)]),
        ]
        dormant_cust = cust[extra_dormant]
        latest = self.end - 14 * MONTH
        dormant_open = created[extra_dormant] + 30 * MINUTE + (
            rng.random(dormant_cust.size) * np.maximum(latest - created[extra_dormant], 0)
        ).astype(np.int64)
        dormant_kind = np.where(rng.random(dormant_cust.size) < 0.6, SAVINGS, CHECKING)
        acc_cust = np.concatenate([p[0] for p in parts] + [dormant_cust])
        acc_kind = np.concatenate([np.full(p[0].size, p[1]) for p in parts] + [dormant_kind])
        acc_open = np.concatenate([p[2] for p in parts] + [dormant_open])
        acc_dormant = np.concatenate([p[3] for p in parts] + [np.ones(dormant_cust.size, bool)])
        order = np.lexsort((acc_kind, acc_open))
        self.acc_cust = acc_cust[order]
        self.acc_kind = acc_kind[order]
        self.acc_open = acc_open[order]
        self.acc_dormant = acc_dormant[order]
        a = self.acc_cust.size
        self.a = a
        acc_seg = seg[self.acc_cust]
        # Main accounts per customer (-1 when none); the dormant extra is never a main account.
        self.chk = np.full(n, -1)
        self.sav = np.full(n, -1)
        self.biz = np.full(n, -1)
        for kind, target in ((CHECKING, self.chk), (SAVINGS, self.sav),
                             (BUSINESS_CHECKING, self.biz)):
            idx = np.flatnonzero((self.acc_kind == kind) & ~(self.acc_dormant
                                                               & ~self.cust_dormant[self.acc_cust]))
            target[self.acc_cust[idx]] = idx
        # Overdraft limits on some checking accounts, interest rates on savings.
        draw = rng.random(a)
        limit_share = np.array([0.10, 0.25, 0.05, 0.5])[acc_seg]
        limit_amount = np.array([200, 1500, 500, 1000])[acc_seg] * 100
        is_checking = self.acc_kind != SAVINGS
        limit = np.where(is_checking & (draw < limit_share),
                         limit_amount * rng.choice([1, 1, 2, 3], size=a), 0)
        limit = np.where(self.acc_kind == BUSINESS_CHECKING,
                         np.where(draw < 0.6, rng.choice([2500, 5000, 10000], size=a) * 100, 0),
                         limit)
        self.acc_limit = np.where(self.acc_dormant, 0, limit).astype(np.int64)
        rate_bp = rng.choice([150, 175, 200, 225, 250, 275, 300], size=a)
        self.acc_rate_bp = np.where(self.acc_kind == SAVINGS,
                                    np.where(self.acc_dormant, 50, rate_bp), 0).astype(np.int64)
        self._pin_demo_accounts()
        self.acc_stop = np.full(a, np.iinfo(np.int64).max, dtype=np.int64)
        self.acc_status = np.full(a, "active", dtype=object)
        self.acc_closing = np.zeros(a, dtype=bool)

    def _pin_demo_accounts(self):
        alice, bob, carol = range(N_DEMO_ACTIVE)
        self.acc_limit[self.chk[alice]] = 100_000
        self.acc_rate_bp[self.sav[alice]] = 250
        self.acc_limit[self.biz[bob]] = 500_000
        self.acc_rate_bp[self.sav[carol]] = 300

    def _plan_stops(self):
        """Suspended customers, frozen accounts and closed savings: when activity stops."""
        rng, n = self.rng, self.n
        end = self.end
        eligible = ((self.status == "active") & ~self.cust_dormant
                    & (self.created < end - 60 * DAY) & (np.arange(n) >= N_DEMO))
        self.suspended = eligible & (rng.random(n) < 0.01)
        self._at_least(self.suspended, eligible, 1)
        t = self._stop_time(np.maximum(self.created + 14 * DAY, end - 120 * DAY), end - 2 * DAY, n)
        self.suspend_at = np.where(self.suspended, t, 0)
        self.status[self.suspended] = "suspended"
        owned = self.suspended[self.acc_cust] & ~self.acc_dormant
        self.acc_stop[owned] = self.suspend_at[self.acc_cust[owned]]
        # Frozen checking accounts (fraud suspected) of otherwise active customers.
        free = eligible & ~self.suspended
        frozen_cust = free & (self.chk >= 0) & (rng.random(n) < 0.004)
        self._at_least(frozen_cust, free & (self.chk >= 0), 1)
        acc = self.chk[frozen_cust]
        self.acc_stop[acc] = self._stop_time(np.full(acc.size, end - 60 * DAY), end - 2 * DAY,
                                             acc.size)
        self.acc_status[acc] = "frozen"
        # Closed savings: emptied into the holder's checking, then closed at zero.
        # The closing month must come after the month the savings was opened in.
        sav = self.sav
        open_month_end = (_dt64(self.acc_open[sav]).astype("datetime64[M]") + 1
                          ).astype("datetime64[us]").astype(np.int64)
        low = np.maximum(open_month_end + 2 * DAY, self.start + 2 * DAY)
        candidates = free & ~frozen_cust & (sav >= 0) & (self.chk >= 0) & (low < end - 2 * DAY)
        closing = candidates & (rng.random(n) < 0.03)
        self._at_least(closing, candidates, 1)
        sav, low = sav[closing], low[closing]
        tc = self._stop_time(low, end - DAY, sav.size)
        self.acc_stop[sav] = tc
        self.acc_closing[sav] = True
        self.acc_status[sav] = "closed"

    def _at_least(self, mask, candidates, count):
        """Make sure even a small demo shows each case: mark up to `count` more candidates."""
        missing = count - int(mask.sum())
        pool = np.flatnonzero(candidates & ~mask)
        if missing > 0 and pool.size:
            mask[self.rng.choice(pool, size=min(missing, pool.size), replace=False)] = True

    def _stop_time(self, low, high, size):
        """A time in [low, high) that is at least a day into its month, in office hours, so
        that the morning movements of that month happen before it."""
        t = low + (self.rng.random(size) * np.maximum(high - low, 0)).astype(np.int64)
        t = t - t % DAY + 10 * HOUR + (self.rng.random(size) * 6 * HOUR).astype(np.int64)
        days = _dt64(t).astype("datetime64[D]")
        day_of_month = (days - days.astype("datetime64[M]")).astype(np.int64)
        return np.minimum(np.where(day_of_month == 0, t + DAY, t), high)

    def _plan_spending(self):
        """Per customer: income, rent, bills and habits that stay the same month to month."""
        rng, n = self.rng, self.n
        seg = self.seg
        income = np.select(
            [seg == STUDENT, seg == PROFESSIONAL, seg == RETIREE, seg == BUSINESS],
            [rng.uniform(450, 1100, n), np.clip(self.lognormal(3800, 0.35, n), 2200, 14000),
             rng.uniform(1300, 2900, n), np.clip(self.lognormal(4000, 0.3, n), 2500, 9000)])
        self.income = (income * 100).astype(np.int64)
        self.revenue = np.where(seg == BUSINESS,
                                (np.clip(self.lognormal(18000, 0.5, n), 6000, 80000) * 100), 0
                                ).astype(np.int64)
        self.employer = rng.integers(0, len(EMPLOYERS), n)
        self.salary_memo = np.select(
            [seg == STUDENT, seg == PROFESSIONAL, seg == RETIREE],
            [self.memo_codes([f"Part-time pay {p}" for p in STUDENT_PAY], CH_SALARY)[
                rng.integers(0, len(STUDENT_PAY), n)],
             self.memo_codes([f"Salary {e}" for e in EMPLOYERS], CH_SALARY)[self.employer],
             np.full(n, self.memo("Pension State Pension Service", CH_SALARY))], -1)
        self.bonus = (seg == PROFESSIONAL) & (rng.random(n) < 0.35)
        # Housing: rent or mortgage on the 1st-5th; many retirees own their home.
        pays_housing = rng.random(n) < np.array([0.5, 0.9, 0.4, 0.85])[seg]
        housing = np.array([550, 1300, 850, 1500])[seg] * self.lognormal(1.0, 0.25, n) * 100
        mortgage = rng.random(n) < np.array([0.0, 0.35, 0.3, 0.4])[seg]
        housing_memo = np.where(
            mortgage, self.memo(MORTGAGE, CH_DIRECT_DEBIT),
            self.memo_codes([f"Rent {x}" for x in LANDLORDS], CH_DIRECT_DEBIT)[
                rng.integers(0, len(LANDLORDS), n)])
        bills_amount = [np.where(pays_housing, housing, 0)]
        bills_day = [rng.integers(1, 6, n)]
        bills_memo = [housing_memo]
        for memo, median, sigma, share, day in BILLS:
            has = rng.random(n) < share
            bills_amount.append(np.where(has, self.lognormal(median, sigma, n), 0))
            bills_day.append(np.full(n, day))
            bills_memo.append(np.full(n, self.memo(memo, CH_DIRECT_DEBIT)))
        self.bill_amount = np.stack(bills_amount, 1).astype(np.int64)
        self.bill_day = np.stack(bills_day, 1)
        self.bill_memo = np.stack(bills_memo, 1)
        self.heating_column = 1  # electricity follows the seasons
        self.card_lam = np.array([24, 26, 12, 18])[seg] * rng.uniform(0.6, 1.4, n)
        self.atm_lam = np.array([1.5, 1.2, 2.5, 1.0])[seg] * rng.uniform(0.3, 1.7, n)
        self.p2p_lam = np.array([2.5, 1.5, 0.6, 1.0])[seg] * rng.uniform(0.2, 1.8, n)
        self.fee = np.where((seg == PROFESSIONAL) | (seg == BUSINESS), 450, 0).astype(np.int64)
        wants_saving = rng.random(n) < np.array([0.3, 0.7, 0.4, 0.5])[seg]
        self.standing_order = np.where(
            wants_saving & (self.sav >= 0),
            (self.income * rng.uniform(0.05, 0.15, n) // 1000) * 1000, 0).astype(np.int64)
        self.owner_draw = np.where(seg == BUSINESS, self.income, 0)
        # Demo customers: a fixed, readable profile.
        alice, bob, carol = range(N_DEMO_ACTIVE)
        self.income[alice], self.standing_order[alice] = 420_000, 50_000
        self.income[bob], self.owner_draw[bob], self.revenue[bob] = 380_000, 380_000, 2_400_000
        self.income[carol], self.standing_order[carol] = 210_000, 20_000
        self.card_lam[alice] = 30
        self.p2p_lam[:N_DEMO_ACTIVE] = 3
        # Card merchants flattened into one table of memo codes.
        self.cat_memos = [self.memo_codes([f"Card payment {m}" for m in c[4]], CH_CARD)
                          for c in CARD_CATEGORIES]
        self.cat_median = np.array([c[2] for c in CARD_CATEGORIES], dtype=float)
        self.cat_sigma = np.array([c[3] for c in CARD_CATEGORIES], dtype=float)
        self.atm_memos = self.memo_codes([f"ATM withdrawal {p}" for p in ATM_PLACES], CH_ATM)
        self.p2p_memos = self.memo_codes(P2P_MEMOS)
        self.supplier_memos = self.memo_codes([f"Supplier {s}" for s in SUPPLIERS])
        self.sales_memos = self.memo_codes(["Card sales settlement PayTerm"] * 3 + [
            f"Invoice payment {c}" for c in CLIENTS])
        self.premises = (self.revenue * 0.08).astype(np.int64)
        self._calibrate_spending()

    def _calibrate_spending(self):
        """Choose card spending so that each household spends about what comes in.

        Each customer gets a target share of income to spend in an average month (some save,
        some live beyond their means and lean on the overdraft); card payments fill whatever
        rent, bills, cash, transfers, fees and the standing order leave of that target. Without
        this, balances drift far up or down over a long demo.
        """
        rng, n, seg = self.rng, self.n, self.seg
        weights = np.array([c[1] for c in CARD_CATEGORIES], dtype=float)
        card_unit = float((weights / weights.sum() * self.cat_median
                           * np.exp(self.cat_sigma ** 2 / 2)).sum())
        season = float(np.mean(list(MONTH_SPEND.values())))
        target = np.select([seg == STUDENT, seg == RETIREE],
                           [rng.uniform(0.92, 1.08, n), rng.uniform(0.84, 1.0, n)],
                           rng.uniform(0.82, 1.0, n))
        fixed = (self.bill_amount.sum(axis=1) + self.atm_lam * ATM_AMOUNTS.mean()
                 + self.p2p_lam * 2500 * np.exp(0.7 ** 2 / 2) + self.fee + self.standing_order)
        card = target * self.income / season - fixed
        self.card_scale = np.clip(card / (self.card_lam * card_unit), 0.25, 4.0)
        # Businesses: suppliers take what premises and the owner's draw leave of the target.
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.where(self.revenue > 0, rng.uniform(0.88, 0.98, n) - 0.08
                             - self.owner_draw / np.maximum(self.revenue, 1), 0)
        self.supplier_share = np.clip(share, 0.15, 0.8)

    # -- writing people and accounts ---------------------------------------------------------------
    def _write_people(self, hashes):
        bank, system = self.bank, self.system
        n, a = self.n, self.a
        order = np.argsort(self.created, kind="stable")
        unusable = hashes.pop("*unusable*")

        def fn(uow):
            # Ids come ascending from the engine's sequences (port.UnitOfWork.take_ids).
            cust_id = np.empty(n, dtype=np.int64)
            cust_id[order] = uow.take_ids("customer_id_seq", n).ids  # grow with sign-up time
            self.cust_id = cust_id
            # Accounts are already ordered by opening time.
            self.acc_id = uow.take_ids("account_id_seq", a).ids
            body = 4_000_000_000 + uow.take_ids("account_number_seq", a).ids
            check = 98 - (body * 100) % 97
            self.acc_number = np.array([f"{b:010d}{c:02d}" for b, c in zip(body, check)],
                                       dtype=object)
            internal = dict(uow.fetchall(
                "SELECT account_number, id FROM accounts WHERE "
                + uow.dialect.in_list("account_number", "VARCHAR"), [list(INTERNAL.values())]))
            self.internal_ids = {code: internal[number] for code, number in INTERNAL.items()}
            self.loans.take_ids(uow)
            self._insert_customers(uow, order)
            self._insert_accounts(uow)
            self._insert_logins(uow, hashes, unusable)
            counts = {"customers": n, "accounts": a,
                      "by_status": pd.Series(self.status).value_counts().to_dict(),
                      "by_segment": {SEGMENTS[k]: int(v) for k, v in
                                     zip(*np.unique(self.seg, return_counts=True))},
                      "months": self.months}
            bank.audit_row(uow, system, "demo.create_customers", "customer", None, after=counts)
            bank.audit_row(uow, system, "demo.open_accounts", "account", None, after={
                "accounts": a,
                "by_kind": {ACCOUNT_NAME[k]: int(v) for k, v in
                            zip(*np.unique(self.acc_kind, return_counts=True))},
                "by_status": pd.Series(self.acc_status).value_counts().to_dict(),
                "with_overdraft": int((self.acc_limit > 0).sum()),
                "dormant_candidates": int(self.acc_dormant.sum())})
        bank.write(fn)

    def _insert_customers(self, uow, order):
        created_by = np.where(self.created < self.start, "system", "teller").astype(object)
        pending = self.status == "pending"
        created_by[pending] = np.array(self.usernames, dtype=object)[pending]
        df = pd.DataFrame({
            "id": self.cust_id, "full_name": self.names, "email": self.emails,
            "phone": self.phones, "date_of_birth": self.dob, "national_id": self.national_ids,
            "address": self.addresses, "status": self.status,
            "segment": pd.Categorical.from_codes(self.seg, SEGMENTS),
            "created_at": _dt64(self.created), "created_by": created_by})
        df = df.iloc[order]
        history = pd.DataFrame({
            "customer_id": self.cust_id, "old_status": None,
            "new_status": np.where(pending, "pending", "active"),
            "changed_at": _dt64(self.created), "changed_by": created_by,
            "reason": np.where(pending, "self-registration", "created")})
        sus = np.flatnonzero(self.suspended)
        reasons = ["identity documents expired", "suspicious activity under review",
                   "court order"]
        history = pd.concat([history.iloc[order], pd.DataFrame({
            "customer_id": self.cust_id[sus], "old_status": "active",
            "new_status": "suspended", "changed_at": _dt64(self.suspend_at[sus]),
            "changed_by": "manager",
            "reason": [reasons[i % len(reasons)] for i in range(sus.size)]})],
            ignore_index=True)
        with uow.scan("demo_customers", df), uow.scan("demo_history", history):
            uow.execute(
                "INSERT INTO customers (id, full_name, email, phone, date_of_birth, national_id, "
                "address, status, segment, created_at, created_by) SELECT id, full_name, email, "
                "phone, CAST(date_of_birth AS DATE), national_id, address, status, segment, "
                "CAST(created_at AS TIMESTAMP), created_by FROM demo_customers")
            uow.execute(
                "INSERT INTO customer_status_history SELECT customer_id, old_status, "
                "new_status, CAST(changed_at AS TIMESTAMP), changed_by, reason FROM demo_history")

    def _insert_accounts(self, uow):
        rate = np.array([f"{r // 100}.{r % 100:02d}" for r in self.acc_rate_bp.tolist()],
                        dtype=object)
        closed = self.acc_closing
        df = pd.DataFrame({
            "id": self.acc_id, "account_number": self.acc_number,
            "customer_id": self.cust_id[self.acc_cust],
            "kind": np.where(self.acc_kind == SAVINGS, "savings", "checking"),
            "name": pd.Categorical.from_codes(self.acc_kind, ACCOUNT_NAME),
            "status": self.acc_status,
            "overdraft_limit_cents": self.acc_limit, "interest_rate_percent": rate,
            "opened_at": _dt64(self.acc_open),
            "closed_at": pd.Series(_dt64(np.where(closed, self.acc_stop, 0))).where(closed)})
        with uow.scan("demo_accounts", df):
            uow.execute(
                "INSERT INTO accounts (id, account_number, customer_id, kind, name, status, "
                "balance_cents, holds_cents, overdraft_limit_cents, interest_rate_percent, "
                "opened_at, closed_at, last_activity_at, opened_date, closed_date, "
                "last_activity_date) SELECT id, account_number, customer_id, "
                "kind, name, status, 0, 0, overdraft_limit_cents, "
                "CAST(interest_rate_percent AS DECIMAL(9, 4)), CAST(opened_at AS TIMESTAMP), "
                "CAST(closed_at AS TIMESTAMP), CAST(opened_at AS TIMESTAMP), "
                # The demo's business dates are its stamps' days (see _transactions).
                "CAST(opened_at AS DATE), CAST(closed_at AS DATE), CAST(opened_at AS DATE) "
                "FROM demo_accounts")
            for statement in db.ASSIGN_PRODUCTS_SQL:
                uow.execute(statement)

    def _insert_logins(self, uow, hashes, unusable):
        bank, system = self.bank, self.system
        for spec in DEMO_STAFF:
            bank.users._insert(uow, system, spec["username"], hashes[spec["username"]],
                               spec["role"], None, spec["full_name"], spec["email"], False)
        for i, spec in enumerate(DEMO_CUSTOMERS):
            bank.users._insert(uow, system, spec["username"], hashes[spec["username"]],
                               "customer", int(self.cust_id[i]), spec["full_name"],
                               self.emails[i], False)
        others = [i for i in np.flatnonzero(self.status == "pending") if i >= N_DEMO]
        if not others:
            return
        ids = uow.take_ids("user_id_seq", len(others)).ids
        df = pd.DataFrame({
            "id": ids, "username": [self.usernames[i] for i in others],
            "customer_id": self.cust_id[others], "full_name": [self.names[i] for i in others],
            "email": [self.emails[i] for i in others],
            "created_at": _dt64(self.created[others])})
        with uow.scan("demo_users", df):
            uow.execute(
                "INSERT INTO users (id, username, password_hash, role, customer_id, full_name, "
                "email, created_at, password_changed_at) SELECT id, username, ?, 'customer', "
                "customer_id, full_name, email, CAST(created_at AS TIMESTAMP), "
                "CAST(created_at AS TIMESTAMP) FROM demo_users", [unusable])
        bank.audit_row(uow, system, "demo.create_logins", "user", None, after={
            "self_registered_pending": len(others),
            "note": "pending customers' logins have an unknown password; reset to use"})

    # -- money -------------------------------------------------------------------------------------
    def _opening_balances(self):
        """Accounts opened before the period: their opening deposit, when they were opened,
        is the balance they bring into the period."""
        self.bal = np.zeros(self.a, dtype=np.int64)
        self.last_activity = self.acc_open.copy()
        acc = np.flatnonzero(self.acc_open < self.start)
        return self._opening_deposits(acc, pre_period=True)

    def _opening_deposits(self, acc, *, pre_period):
        rng = self.rng
        tx = _Tx()
        if acc.size == 0:
            return tx
        cust = self.acc_cust[acc]
        kind = self.acc_kind[acc]
        income = self.income[cust]
        if pre_period:
            factor = np.select([kind == CHECKING, kind == SAVINGS],
                               [rng.uniform(0.4, 2.0, acc.size), rng.uniform(1.0, 15.0, acc.size)],
                               rng.uniform(0.8, 2.5, acc.size))
        else:
            factor = np.select([kind == CHECKING, kind == SAVINGS],
                               [rng.uniform(0.3, 1.5, acc.size), rng.uniform(0.5, 4.0, acc.size)],
                               rng.uniform(0.5, 1.5, acc.size))
        base = np.where(kind == BUSINESS_CHECKING, self.revenue[cust], income)
        amount = (base * factor).astype(np.int64)
        dormant_extra = self.acc_dormant[acc] & ~self.cust_dormant[cust]
        amount = np.where(dormant_extra, rng.integers(5_000, 300_000, acc.size), amount)
        amount = np.maximum(amount // 100 * 100, 2_000)
        cash = rng.random(acc.size) < 0.4
        t = self.acc_open[acc] + 5 * MINUTE
        credit = acc
        debit = np.where(cash, self.ix("teller_cash"), self.ix("clearing"))
        memo = np.where(cash, self.memo("Opening deposit (cash)"),
                        self.memo("Opening deposit (transfer from another bank)"))
        tx.add(t, DEPOSIT, memo, amount, debit, credit)
        self._apply(t, DEPOSIT, amount, debit, credit)
        return tx

    def ix(self, code):
        """Index of an internal account in the combined index space (after customer accounts)."""
        return self.a + list(INTERNAL).index(code)

    def _apply(self, t, kind, amount, debit, credit):
        """Move the model balances (customer accounts only) and the last customer activity."""
        a = self.a
        amount = np.broadcast_to(np.asarray(amount, dtype=np.int64), np.shape(t))
        debit = np.broadcast_to(np.asarray(debit, dtype=np.int64), np.shape(t))
        credit = np.broadcast_to(np.asarray(credit, dtype=np.int64), np.shape(t))
        mask = debit < a
        np.subtract.at(self.bal, debit[mask], amount[mask])
        mask = credit < a
        np.add.at(self.bal, credit[mask], amount[mask])
        kind = np.broadcast_to(np.asarray(kind), np.shape(t))
        act = np.isin(kind, ACTIVITY_KINDS)
        for side in (debit, credit):
            mask = act & (side < a)
            np.maximum.at(self.last_activity, side[mask], np.asarray(t)[mask])

    def _window(self, w):
        rng = self.rng
        ws, we, month, year, full = self.windows[w]
        tx = _Tx()
        month_name = f"{calendar.month_name[month]} {year}"
        stop = self.acc_stop
        open_ = self.acc_open
        live = ~self.acc_dormant & (open_ < we) & (stop > ws)
        pre = open_ < ws
        morning = ws + 6 * HOUR
        # Closing savings are emptied in their closing month; nothing else touches them then.
        closing_now = self.acc_closing & (stop >= ws) & (stop < we)
        # The morning of the 1st (pay at 06:00 to the standing order at 07:00) happens only in a
        # window that runs past it: a demo built just after midnight on the 1st ends before it.
        start_ok = live & pre & (stop > ws + 8 * HOUR) & (we > ws + 8 * HOUR) & ~closing_now
        # Borrowers in trouble (demo_loans.py): from the month of their first missed
        # instalment on, no money comes into their checking account at all.
        self._no_income = self.loans.no_income(ws)
        bal_start = self.bal.copy()

        # 1. New accounts: their opening deposit (also for dormant ones opened in the period).
        opening = np.flatnonzero((open_ >= ws) & (open_ < we))
        opened = self._opening_deposits(opening, pre_period=False)
        for f in _Tx.FIELDS:
            tx.parts[f].extend(opened.parts[f])

        # 2. Morning of the 1st: pay and pensions, year-end bonuses.
        cust = np.arange(self.n)
        chk = self.chk
        paid = (chk >= 0) & (self.salary_memo >= 0) & (self.seg != BUSINESS)
        paid &= np.where(chk >= 0, start_ok[np.maximum(chk, 0)], False) & ~self._no_income
        c = cust[paid]
        noise = np.where(self.seg[c] == STUDENT, rng.uniform(0.8, 1.2, c.size),
                         rng.uniform(0.995, 1.005, c.size))
        amount = (self.income[c] * noise).astype(np.int64)
        t = morning + (rng.random(c.size) * 10 * MINUTE).astype(np.int64)
        self._move(tx, t, DEPOSIT, self.salary_memo[c], amount, self.ix("clearing"), chk[c])
        if month == 12:
            c = cust[paid & self.bonus]
            amount = (self.income[c] * rng.uniform(0.3, 1.0, c.size)).astype(np.int64)
            memo = self.memo_codes([f"Year-end bonus {e}" for e in EMPLOYERS],
                                   CH_SALARY)[self.employer[c]]
            self._move(tx, morning + 12 * MINUTE, DEPOSIT, memo, amount, self.ix("clearing"),
                       chk[c])

        # 2b. Loans: trouble begins (the money leaves), early payoffs (demo_loans.py).
        self.loans.morning(w, tx, ws)

        # 3. Owner draws from the business to the owner's checking, at most what it holds.
        has = (self.biz >= 0) & (chk >= 0) & ~self._no_income
        has &= start_ok[np.maximum(self.biz, 0)] & start_ok[np.maximum(chk, 0)]
        c = cust[has]
        amount = np.minimum(self.owner_draw[c], np.maximum(self.bal[self.biz[c]], 0))
        self._move(tx, morning + 30 * MINUTE, TRANSFER, self.memo("Owner draw"), amount,
                   self.biz[c], chk[c])

        # 4. Holiday money from savings in summer and December.
        both = (self.sav >= 0) & (chk >= 0) & ~self._no_income
        both &= start_ok[np.maximum(self.sav, 0)] & start_ok[np.maximum(chk, 0)]
        share = {6: 0.15, 7: 0.3, 8: 0.2, 12: 0.25}.get(month, 0.02)
        holiday = both & (rng.random(self.n) < share)
        c = cust[holiday]
        amount = np.maximum(self.bal[self.sav[c]], 0) // 8 // 100 * 100
        memo = self.memo("Holiday money" if month in (6, 7, 8) else
                         "Christmas money" if month == 12 else "From savings")
        self._move(tx, morning + 45 * MINUTE, TRANSFER, memo, amount, self.sav[c], chk[c])

        # 5. Standing order to savings, at most what the checking account holds after pay.
        c = cust[both & ~holiday & (self.standing_order > 0)]
        amount = np.minimum(self.standing_order[c], np.maximum(self.bal[chk[c]], 0))
        self._move(tx, morning + 60 * MINUTE, TRANSFER,
                   self.memo("Standing order to savings", CH_STANDING_ORDER),
                   amount, chk[c], self.sav[c])

        # 6. What each account may spend for the rest of the month: its balance after the
        # morning plus its overdraft limit. Later credits are deliberately not counted.
        spenders = np.flatnonzero(live & (self.acc_kind != SAVINGS))
        free_start = np.where(pre[spenders], ws + 8 * HOUR, open_[spenders] + 2 * HOUR)
        free_end = np.minimum(np.minimum(stop[spenders], we), self.end) - MINUTE
        keep = free_end > free_start
        spenders, free_start, free_end = spenders[keep], free_start[keep], free_end[keep]
        # A loan instalment due this month is reserved: until its collection at the end of
        # the due date the account may not spend into the reserved part (demo_loans.py).
        collect_at, reserved = self.loans.reserve(w, spenders)
        budget = np.maximum(self.bal[spenders] + self.acc_limit[spenders] - reserved, 0)
        budget_before = self.bal[spenders] - reserved

        # 7. Closing savings: everything to the holder's checking, then the account closes.
        acc = np.flatnonzero(closing_now)
        holder_chk = chk[self.acc_cust[acc]]
        amount = np.maximum(self.bal[acc], 0)
        self._move(tx, stop[acc] - 5 * MINUTE, TRANSFER,
                   self.memo("Closing balance to checking"), amount, acc, holder_chk)

        # 8. Payments through the month, kept in time order while they fit the budget.
        items = self._month_items(spenders, free_start, free_end, ws, we, month, full)
        self._spend(tx, items, spenders, budget, budget_before, collect_at)

        # 9. Money that arrives during the month (counted in no budget): sales of businesses.
        self._sales(tx, spenders, free_start, free_end)

        # 10. Month end: savings interest on the closing balance (not for the running month).
        if full:
            acc = np.flatnonzero((self.acc_kind == SAVINGS) & (open_ < we) & (stop >= we)
                                 & (self.bal > 0))
            amount = self.bal[acc] * self.acc_rate_bp[acc] // 120_000
            self._move(tx, we - 30 * MINUTE, INTEREST, self.memo(f"Interest {month_name}"),
                       amount, self.ix("interest_expense"), acc)

        # 11. Loans: payouts (spent at once), write-offs, and the instalments collected at the
        # end of their due dates, checked against the balances of this month (demo_loans.py).
        self.loans.pass_through(w, tx)
        self.loans.collect(w, tx, bal_start)
        return tx

    def _move(self, tx, t, kind, memo, amount, debit, credit):
        """Add transactions (dropping zero amounts) and apply them to the model at once."""
        amount = np.asarray(amount, dtype=np.int64)
        size = amount.shape[0] if amount.ndim else np.shape(debit)[0]
        amount = np.broadcast_to(amount, (size,))
        keep = amount > 0
        if not keep.any():
            return

        def pick(value):
            value = np.asarray(value)
            return value[keep] if value.ndim else value
        t = np.broadcast_to(np.asarray(t, dtype=np.int64), (size,))[keep]
        amount, debit, credit = amount[keep], pick(debit), pick(credit)
        memo = pick(memo)
        tx.add(t, kind, memo, amount, debit, credit)
        self._apply(t, kind, amount, debit, credit)

    def _month_items(self, acc, fs, fe, ws, we, month, full):
        """Candidate payments of each spending account: (account, time, amount, memo, kind,
        counterparty) arrays; the budget decides later which of them happen."""
        rng = self.rng
        cust = self.acc_cust[acc]
        personal = self.acc_kind[acc] == CHECKING
        frac = (fe - fs) / MONTH
        season = MONTH_SPEND[month]
        out = []

        def add(idx, t, amount, memo, kind, counterparty):
            t = np.asarray(t, dtype=np.int64)
            ok = (t >= fs[idx]) & (t < fe[idx]) & (amount > 0)
            out.append(tuple(np.broadcast_to(np.asarray(v, dtype=np.int64), t.shape)[ok]
                             for v in (idx, t, amount, memo, kind, counterparty)))

        def daytime(idx):
            """Times spread over the days of each account's free phase, in waking hours."""
            start, stop = fs[idx], fe[idx]
            t = start + (rng.random(idx.size) * (stop - start)).astype(np.int64)
            tod = (7 * HOUR + rng.beta(2.2, 2.0, idx.size) * 15 * HOUR).astype(np.int64)
            t = t - t % DAY + tod
            return np.clip(t, start, stop - 1)

        # Card payments.
        lam = np.where(personal, self.card_lam[cust], 6.0) * season * frac
        idx = np.repeat(np.arange(acc.size), rng.poisson(lam))
        weights = np.array([c[1] for c in CARD_CATEGORIES], dtype=float)
        weights[CAT_TRAVEL] *= MONTH_TRAVEL.get(month, 1.0)
        weights[CAT_GIFTS] *= MONTH_GIFTS.get(month, 1.0)
        weights[CAT_ONLINE] *= 1.6 if month in (11, 12) else 1.0
        cat = rng.choice(len(weights), size=idx.size, p=weights / weights.sum())
        scale = self.card_scale[cust[idx]]
        amount = (self.cat_median[cat] * rng.lognormal(0, self.cat_sigma[cat]) * scale)
        amount = np.maximum(amount.astype(np.int64), 50)
        memo = np.empty(idx.size, dtype=np.int64)
        for k, codes in enumerate(self.cat_memos):
            sel = cat == k
            memo[sel] = codes[rng.integers(0, codes.size, sel.sum())]
        add(idx, daytime(idx), amount, memo, WITHDRAWAL, self.ix("clearing"))

        # Rent and bills on fixed days (personal checking only).
        p = np.flatnonzero(personal)
        heating = MONTH_HEATING.get(month, 1.0)
        for j in range(self.bill_amount.shape[1]):
            c = cust[p]
            amount = self.bill_amount[c, j]
            if j > 0:
                amount = (amount * rng.uniform(0.93, 1.07, p.size)
                          * (heating if j == self.heating_column else 1.0)).astype(np.int64)
            t = ws + (self.bill_day[c, j] - 1) * DAY + 9 * HOUR + (
                rng.random(p.size) * 2 * HOUR).astype(np.int64)
            add(p, t, amount, self.bill_memo[c, j], WITHDRAWAL, self.ix("clearing"))

        # Cash from ATMs.
        idx = np.repeat(p, rng.poisson(self.atm_lam[cust[p]] * frac[p]))
        amount = ATM_AMOUNTS[rng.integers(0, ATM_AMOUNTS.size, idx.size)]
        memo = self.atm_memos[rng.integers(0, self.atm_memos.size, idx.size)]
        add(idx, daytime(idx), amount, memo, WITHDRAWAL, self.ix("teller_cash"))

        # Transfers to other customers' checking accounts that are open all month.
        receivers = np.flatnonzero((self.acc_kind == CHECKING) & ~self.acc_dormant
                                   & (self.acc_open < ws) & (self.acc_stop >= we)
                                   & ~self._no_income[self.acc_cust])
        gift = 1.6 if month == 12 else 1.0
        idx = np.repeat(p, rng.poisson(self.p2p_lam[cust[p]] * frac[p] * gift))
        if receivers.size and idx.size:
            to = receivers[rng.integers(0, receivers.size, idx.size)]
            # The demo customers pay each other often, so their histories show it.
            sender = cust[idx]
            demo = sender < N_DEMO_ACTIVE
            friend = (sender + 1 + rng.integers(0, N_DEMO_ACTIVE - 1, idx.size)) % N_DEMO_ACTIVE
            friend_acc = self.chk[friend]
            usable = demo & (rng.random(idx.size) < 0.6) & np.isin(friend_acc, receivers)
            to = np.where(usable, friend_acc, to)
            ok = self.acc_cust[to] != sender
            idx, to = idx[ok], to[ok]
            amount = (self.lognormal(2500, 0.7, idx.size) * gift).astype(np.int64) // 50 * 50
            memo = self.p2p_memos[rng.integers(0, self.p2p_memos.size, idx.size)]
            if month == 12:
                memo = np.where(rng.random(idx.size) < 0.5, self.memo("Christmas gift"), memo)
            add(idx, daytime(idx), amount, memo, TRANSFER, to)

        # Businesses: suppliers through the month, premises rent on the 3rd.
        b = np.flatnonzero(~personal)
        if b.size:
            c = cust[b]
            idx = np.repeat(b, rng.poisson(6 * frac[b]))
            amount = (self.revenue[cust[idx]] * self.supplier_share[cust[idx]] / 6
                      * rng.lognormal(0, 0.4, idx.size) / np.exp(0.4 ** 2 / 2)).astype(np.int64)
            memo = self.supplier_memos[rng.integers(0, self.supplier_memos.size, idx.size)]
            add(idx, daytime(idx), amount, memo, WITHDRAWAL, self.ix("clearing"))
            t = ws + 2 * DAY + 10 * HOUR + (rng.random(b.size) * HOUR).astype(np.int64)
            add(b, t, self.premises[c], self.memo("Premises rent Parkview Estates"), WITHDRAWAL,
                self.ix("clearing"))

        # The monthly account fee, on the last evening of a finished month.
        if full:
            fee = np.where(personal, self.fee[cust], 900)
            add(np.arange(acc.size), np.full(acc.size, we - 2 * HOUR), fee,
                self.memo("Monthly account fee"), FEE, self.ix("fee_income"))
        return [np.concatenate(parts) for parts in zip(*out)] if out else None

    def _spend(self, tx, items, acc, budget, budget_before, collect_at):
        """Keep each account's payments, in time order, while their running total stays within
        its budget (balance after the morning plus overdraft limit, less a reserved loan
        instalment); drop the rest. Before the instalment's collection the running total must
        also stay within `budget_before` (no overdraft, the instalment untouched), so that the
        account holds the instalment when end of day collects it."""
        if items is None or items[0].size == 0:
            return
        idx, t, amount, memo, kind, counterparty = items
        order = np.lexsort((t, idx))
        idx, t, amount, memo, kind, counterparty = (
            v[order] for v in (idx, t, amount, memo, kind, counterparty))
        running = np.cumsum(amount)
        first = np.searchsorted(idx, idx, side="left")
        before = np.concatenate([[0], running])[first]
        limit = np.where(t < collect_at[idx], budget_before[idx], budget[idx])
        keep = running - before <= limit
        idx, t, amount, memo, kind, counterparty = (
            v[keep] for v in (idx, t, amount, memo, kind, counterparty))
        debit = acc[idx]
        for k in np.unique(kind):
            sel = kind == k
            self._move(tx, t[sel], int(k), memo[sel], amount[sel], debit[sel], counterparty[sel])

    def _sales(self, tx, acc, fs, fe):
        rng = self.rng
        b = np.flatnonzero(self.acc_kind[acc] == BUSINESS_CHECKING)
        if b.size == 0:
            return
        idx = np.repeat(b, rng.poisson(20 * (fe[b] - fs[b]) / MONTH))
        revenue = self.revenue[self.acc_cust[acc[idx]]]
        amount = (revenue / 20 * rng.lognormal(0, 0.5, idx.size) / np.exp(0.125)).astype(np.int64)
        t = fs[idx] + (rng.random(idx.size) * (fe[idx] - fs[idx])).astype(np.int64)
        memo = self.sales_memos[rng.integers(0, self.sales_memos.size, idx.size)]
        self._move(tx, t, DEPOSIT, memo, amount, self.ix("clearing"), acc[idx])

    # -- posting -----------------------------------------------------------------------------------
    def _frames(self, tx: _Tx):
        arr = tx.arrays()
        n = arr["t"].size
        order = np.argsort(arr["t"], kind="stable")
        arr = {k: v[order] for k, v in arr.items()}
        a = self.a
        full_ids = np.concatenate([self.acc_id, [self.internal_ids[c] for c in INTERNAL]])
        numbers = pd.Index(np.concatenate([self.acc_number, list(INTERNAL.values())]))
        named = np.isin(arr["kind"], LOAN_KINDS)
        src = np.where((arr["debit"] < a) | named, arr["debit"], -1)
        tgt = np.where((arr["credit"] < a) | named, arr["credit"], -1)
        posted = _dt64(arr["t"])
        transactions = pd.DataFrame({
            "tx_ref": np.arange(n, dtype=np.int64),
            "kind": pd.Categorical.from_codes(arr["kind"], KINDS),
            "amount_cents": arr["amount"],
            "memo": pd.Categorical.from_codes(arr["memo"], list(self.memos)),
            "source_account": pd.Categorical.from_codes(src, numbers),
            "target_account": pd.Categorical.from_codes(tgt, numbers),
            "posted_at": posted,
            "business_date": posted.astype("datetime64[D]"),
            "channel": pd.Categorical.from_codes(self._channels(arr), CHANNELS),
        })
        refs = np.flatnonzero(arr["ref"] >= 0)
        credit_part = arr["amount"] - arr["interest"] - arr["fee"]
        postings = pd.DataFrame({
            "tx_ref": np.repeat(np.arange(n, dtype=np.int64), 2),
            "account_id": np.stack([full_ids[arr["debit"]], full_ids[arr["credit"]]], 1).ravel(),
            "amount_cents": np.stack([-arr["amount"], credit_part], 1).ravel(),
        })
        # Loan repayments: the interest and fee parts are income (see loans.py).
        split = [postings]
        for column, code in (("interest", "interest_income"), ("fee", "fee_income")):
            some = np.flatnonzero(arr[column] > 0)
            if some.size:
                split.append(pd.DataFrame({"tx_ref": some,
                                           "account_id": full_ids[self.ix(code)],
                                           "amount_cents": arr[column][some]}))
        if len(split) > 1:
            postings = pd.concat(split, ignore_index=True)
            postings = postings[postings["amount_cents"] != 0].reset_index(drop=True)
        return transactions, postings, (arr["ref"][refs], refs)

    def _channels(self, arr) -> np.ndarray:
        """Channel codes of the transactions in arr: the memo's channel; for deposits and
        withdrawals without one, cash when the bank's side is the teller cash account and a
        bank transfer otherwise (clearing); -1 (none) for kinds whose label says it all."""
        kind = arr["kind"]
        channel = np.asarray(self.memo_channels, dtype=np.int64)[arr["memo"]]
        money = (kind == DEPOSIT) | (kind == WITHDRAWAL)
        bank_side = np.where(kind == DEPOSIT, arr["debit"], arr["credit"])
        fallback = np.where(bank_side == self.ix("teller_cash"), CH_CASH, CH_TRANSFER)
        channel = np.where(money & (channel < 0), fallback, channel)
        return np.where(money | (kind == TRANSFER), channel, -1)

    def _post(self, transactions, postings, refs):
        if len(transactions) == 0:
            return 0
        bank, system = self.bank, self.system

        def fn(uow):
            return bank.ledger.post_frames_in(uow, system, transactions, postings,
                                              action="demo.post_history")
        ids = bank.write(fn)
        # The transaction id of each tx_ref (bulk.py); the loan tables refer to some of them.
        codes, positions = refs
        if codes.size:
            self.loans.record_tx_ids(codes, ids[positions])
        self.counts["transactions"] += len(transactions)
        self.counts["postings"] += len(postings)
        return len(transactions)

    def _write_loans(self):
        """The loan tables (demo_loans.py) with arrears aged as of the business date, and the
        savings interest accrued on the days of the running month before the business date:
        the demo pays interest only for whole months, so end of day's first month end pays
        this month from these accruals (nothing is paid twice)."""
        bank, system = self.bank, self.system
        from ..services.loans import age_arrears
        loans, schedule, payments = self.loans.frames()
        business_date = bank.state.business_date
        month_start = self.end_date.replace(day=1)

        def fn(uow):
            with uow.scan("demo_loans", loans), uow.scan("demo_schedule", schedule), \
                    uow.scan("demo_payments", payments):
                uow.execute(
                    "INSERT INTO loans (id, customer_id, product_code, principal_cents, "
                    "term_months, purpose, monthly_income_cents, status, annual_rate_percent, "
                    "applied_by, applied_role, applied_at, applied_date, decided_by, decided_at, "
                    "decision_reason, account_number, disbursed_by, disbursed_at, "
                    "disbursement_date, disbursement_tx_id, principal_outstanding_cents, "
                    "days_past_due, arrears_bucket, closed_date, written_off_cents, "
                    "write_off_reason, " + ", ".join(TERM_COLUMNS) + ") SELECT id, customer_id, "
                    "product_code, principal_cents, term_months, purpose, monthly_income_cents, "
                    "status, CAST(annual_rate_percent AS DECIMAL(9, 4)), applied_by, "
                    "applied_role, CAST(applied_at AS TIMESTAMP), CAST(applied_date AS DATE), "
                    "decided_by, CAST(decided_at AS TIMESTAMP), decision_reason, account_number, "
                    "disbursed_by, CAST(disbursed_at AS TIMESTAMP), "
                    "CAST(disbursement_date AS DATE), disbursement_tx_id, "
                    "principal_outstanding_cents, days_past_due, arrears_bucket, "
                    "CAST(closed_date AS DATE), written_off_cents, write_off_reason, "
                    # Each loan keeps its product's terms, as loans.apply snapshots them.
                    + ", ".join(f"p.{c}" for c in TERM_COLUMNS) + " FROM demo_loans d "
                    "JOIN loan_products p ON p.code = d.product_code")
                uow.execute(
                    "INSERT INTO loan_schedule (loan_id, n, due_date, payment_cents, "
                    "interest_cents, principal_cents, balance_cents, interest_paid_cents, "
                    "principal_paid_cents, fee_cents, fee_paid_cents, fee_date) "
                    "SELECT loan_id, n, CAST(due_date AS DATE), "
                    "payment_cents, interest_cents, principal_cents, balance_cents, "
                    "interest_paid_cents, principal_paid_cents, fee_cents, fee_paid_cents, "
                    "CAST(fee_date AS DATE) FROM demo_schedule")
                uow.execute(
                    "INSERT INTO loan_payments (transaction_id, loan_id, business_date, "
                    "method, source_account, amount_cents, fee_cents, interest_cents, "
                    "principal_cents, prepayment_cents, actor) SELECT transaction_id, loan_id, "
                    "CAST(business_date AS DATE), method, source_account, amount_cents, "
                    "fee_cents, interest_cents, principal_cents, prepayment_cents, actor "
                    "FROM demo_payments")
            age_arrears(uow, business_date)
            if month_start < business_date:
                uow.execute(accruals_sql(uow.dialect), [month_start, business_date,
                                                        month_start, month_start, business_date])
            bank.audit_row(uow, system, "demo.loans", "loan", None,
                           after=self.loans.summary())
        bank.write(fn)

    def _finish(self):
        bank, system = self.bank, self.system
        logins = [{k: u[k] for k in ("role", "username", "password", "full_name")}
                  for u in DEMO_STAFF + DEMO_CUSTOMERS]
        last = pd.DataFrame({"id": self.acc_id, "last_activity_at": _dt64(self.last_activity)})

        def fn(uow):
            with uow.scan("demo_last", last):
                uow.execute("UPDATE accounts SET last_activity_at = CAST(d.last_activity_at AS "
                            "TIMESTAMP), last_activity_date = CAST(d.last_activity_at AS DATE) "
                            "FROM demo_last d WHERE accounts.id = d.id")
            # The model's balances must be the ledger's: a mismatch means a generator bug.
            with uow.scan("demo_bal", pd.DataFrame({"id": self.acc_id, "bal": self.bal})):
                wrong = uow.fetchone("SELECT count(*) FROM accounts a JOIN demo_bal d "
                                     "ON d.id = a.id WHERE a.balance_cents <> d.bal")[0]
            if wrong:
                raise InvalidState(f"demo generator bug: {wrong} balances differ from the plan")
            for key, value in (("demo_bank", "1"), ("demo_logins", json.dumps(logins))):
                uow.execute("INSERT INTO settings VALUES (?, ?) ON CONFLICT (key) DO UPDATE "
                            "SET value = excluded.value", [key, value])
            bank.audit_row(uow, system, "demo.build", "bank", None, after={
                "customers": self.n, "accounts": self.a, "months": self.months,
                "windows": len(self.windows), "transactions": self.counts["transactions"],
                "postings": self.counts["postings"],
                "logins": [u["username"] for u in logins]})
        bank.write(fn)
        return logins
