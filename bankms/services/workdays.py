"""The bank's working-day calendar: which days the bank is open, and where a due date that falls
on a closed day moves to (issue 9: "moved off weekends and bank holidays to the next working
day when the product says so").

A day is *not* a working day when it is a Saturday or a Sunday, a public holiday of the bank's
country (settings `bank_country`, an ISO 3166 alpha-2 code, and `bank_subdivision`, a state or
region code, both as the `holidays` package knows them), or a day a manager added (table
bank_holidays). Nothing removes a public holiday: a bank open on one adds no exception here.

Changes only ever reach days after the business date, so no loan's past due date moves:

* managers add or remove bank holidays only after the business date;
* a change of country or subdivision on business date B applies from B + 1 on; the days up to B
  keep the country they had (table bank_calendar_eras keeps each country's first day), so that
  a replay of any loan from scratch gives the due dates it had when they passed.

When the calendar changes, every active loan with due_dates_working_days whose remaining due
dates move is re-stored from a fresh replay in the same transaction, audited (loan.reschedule),
so `audit.verify()` stays empty. Interest runs by the day over each period, so moving the end of
the current period changes the split of a payment already made in it (a prepayment, an early
instalment): the difference is posted as a reallocation, as for a corrected repayment.

`Workdays.calendar()` is cached until the calendar changes; its `move_due_date` is one object
for as long as the calendar is the same (the replay caches moved due dates on it).
"""
from __future__ import annotations

import contextlib
import datetime as dt
import functools
import threading

import pandas as pd

from ..domain.dates import as_date
from ..domain.errors import BankError, InvalidInput

HOLIDAY_NAME_CHARS_MIN = 2
HOLIDAY_NAME_CHARS_MAX = 80
CALENDAR_SETTINGS = ("bank_country", "bank_subdivision")
# The calendar is read for these years only: the holidays package covers them, and a due date
# beyond is no loan's (480 months at most).
YEAR_MIN, YEAR_MAX = 1950, 2200
_DAWN = dt.date(1, 1, 1)


# -- the countries the holidays package knows ---------------------------------------------------
@functools.lru_cache(maxsize=1)
def supported() -> dict[str, tuple[str, ...]]:
    """ISO 3166 alpha-2 country code -> the subdivision codes the holidays package knows."""
    import holidays
    return {code: tuple(subdivs) for code, subdivs in holidays.list_supported_countries().items()
            if len(code) == 2}


def clean_country(value) -> str:
    """An ISO 3166 alpha-2 code the holidays package supports, upper case; else InvalidInput."""
    code = str(value if value is not None else "").strip().upper()
    if code not in supported():
        raise InvalidInput(f"'{value}' is not a country whose public holidays the bank knows: "
                           "give its ISO 3166 two-letter code, such as US, GB or DE.")
    return code


def clean_subdivision(value, country: str) -> str:
    """A subdivision code of `country` ('' for none: the nationwide holidays only)."""
    text = str(value if value is not None else "").strip()
    if text.lower() in ("", "none", "-"):
        return ""
    known = supported().get(country, ())
    for code in known:
        if code.upper() == text.upper():
            return code
    sample = ", ".join(known[:12]) + (" ..." if len(known) > 12 else "")
    raise InvalidInput(f"'{value}' is not a subdivision of {country} whose holidays the bank "
                       f"knows; " + (f"give one of {sample}, or none." if known else
                                     f"{country} has none: leave it empty."))


def check_setting(bank, key: str, text: str) -> None:
    """Refuse (InvalidInput) a country that does not have the current subdivision, or a
    subdivision the current country does not have (settings.py calls this before a change)."""
    if key == "bank_country":
        subdivision = bank.settings.get("bank_subdivision") or ""
        if subdivision and subdivision not in supported().get(text, ()):
            raise InvalidInput(f"bank_subdivision is {subdivision}, which {text} does not have: "
                               "set bank_subdivision to none first.")
    elif key == "bank_subdivision":
        clean_subdivision(text, bank.settings.get("bank_country"))


@functools.lru_cache(maxsize=256)
def _country_year(country: str, subdivision: str, year: int) -> tuple:
    """((date, name), ...) the public holidays of one country (and subdivision) in one year."""
    import holidays
    days = holidays.country_holidays(country, subdiv=subdivision or None, years=year)
    return tuple(sorted((day, name) for day, name in days.items() if day.year == year))


# -- the calendar (immutable) -------------------------------------------------------------------
class Calendar:
    """One state of the bank's calendar. eras: ((first day, country, subdivision), ...) in
    date order, the first from the dawn of time; bank_days: {date: name} added by managers."""

    def __init__(self, eras, bank_days):
        self.eras = tuple(eras)
        self.bank_days = dict(bank_days)
        self._years: dict[int, dict] = {}
        self._lock = threading.Lock()
        # One object for the calendar's lifetime: the replay may cache schedules on it.
        self.move_due_date = self.next_working_day

    def with_bank_days(self, bank_days) -> "Calendar":
        return Calendar(self.eras, bank_days)

    def country_days(self, year: int) -> dict:
        """{date: name} the public holidays of `year`, each under the country of its era."""
        days = self._years.get(year)
        if days is None:
            days = {}
            ends = [start for start, _, _ in self.eras[1:]] + [dt.date.max]
            for (start, country, subdivision), end in zip(self.eras, ends):
                if start.year > year or end.year < year:
                    continue
                for day, name in _country_year(country, subdivision, year):
                    if start <= day < end:
                        days[day] = name
            with self._lock:
                self._years[year] = days
        return days

    def is_working_day(self, day: dt.date) -> bool:
        return (day.weekday() < 5 and day not in self.bank_days
                and day not in self.country_days(day.year))

    def next_working_day(self, day: dt.date) -> dt.date:
        """`day` itself when the bank works that day, else the first working day after it."""
        while not self.is_working_day(day):
            day += dt.timedelta(days=1)
        return day

    def listing(self, year: int) -> pd.DataFrame:
        rows = [(day, name, "country") for day, name in self.country_days(year).items()]
        rows += [(day, name, "bank") for day, name in self.bank_days.items() if day.year == year]
        frame = pd.DataFrame(sorted(rows), columns=["date", "name", "source"])
        return frame


# -- the service --------------------------------------------------------------------------------
class Workdays:
    """`bank.workdays`: the calendar, the managers' bank holidays, and loans moved with it."""

    def __init__(self, bank):
        self._bank = bank
        self._calendar: Calendar | None = None
        self._generation = 0
        self._lock = threading.Lock()

    # -- reading -------------------------------------------------------------------------------
    def calendar(self) -> Calendar:
        """The current calendar (cached until it changes)."""
        current = self._calendar
        if current is not None:
            return current
        with self._lock:
            generation = self._generation
        loaded = self._load(self._bank.read)
        with self._lock:
            # A change that landed while this one loaded wins.
            if self._generation == generation and self._calendar is None:
                self._calendar = loaded
            return self._calendar or loaded

    def _load(self, fetchall) -> Calendar:
        eras = [(as_date(d), c, s or "") for d, c, s in fetchall(
            "SELECT effective_date, country, subdivision FROM bank_calendar_eras "
            "ORDER BY effective_date")]
        if not eras:
            settings = dict(fetchall(
                "SELECT key, value FROM settings WHERE key IN ('bank_country', "
                "'bank_subdivision')"))
            eras = [(_DAWN, settings.get("bank_country") or "US",
                     settings.get("bank_subdivision") or "")]
        bank_days = {as_date(d): n for d, n in fetchall(
            "SELECT holiday_date, name FROM bank_holidays")}
        return Calendar(eras, bank_days)

    def _install(self, calendar: Calendar | None) -> None:
        with self._lock:
            self._generation += 1
            self._calendar = calendar

    def invalidate(self) -> None:
        self._install(None)

    def is_working_day(self, day) -> bool:
        """Whether the bank works on `day` (a date or ISO text): not a weekend, public holiday
        of the bank's country or bank holiday."""
        return self.calendar().is_working_day(_day(day))

    def next_working_day(self, day) -> dt.date:
        """`day` itself if the bank works then, else the next day it does."""
        return self.calendar().next_working_day(_day(day))

    def holidays(self, actor, year) -> pd.DataFrame:
        """The year's days off besides weekends: columns date, name, source ('country': a
        public holiday of bank_country/bank_subdivision; 'bank': added by a manager), by date.
        Staff only (PermissionDenied); InvalidInput for a year outside 1950-2200."""
        self._bank.require(actor, "calendar.read", entity="bank_holiday")
        return self.calendar().listing(_year(year))

    # -- changing ------------------------------------------------------------------------------
    def add_holiday(self, actor, day, name) -> dict:
        """Close the bank on `day` (after the business date), named `name` (2-80 characters).

        Managers only (PermissionDenied). InvalidInput for a day on or before the business
        date (it would rewrite loans already due), a weekend, a day already a bank holiday, or a
        bad name. Audited, refusals too. Loans with working-day due dates that fall on `day`
        move to the next working day in the same transaction. Returns {"date", "name",
        "loans_moved"}."""
        bank = self._bank
        bank.require(actor, "calendar.change", entity="bank_holiday", entity_id=day)
        with self._refusals_audited(actor, "bank_holiday.add", day):
            day = _day(day)
            name = clean_name(name)
            _after_business_date(day, bank.business_date, "add")
            if day.weekday() >= 5:
                raise InvalidInput(f"{day} is a {day:%A}: the bank does not work on weekends "
                                   "anyway.")
            if day in self.calendar().bank_days:
                raise InvalidInput(f"{day} is already a bank holiday "
                                   f"({self.calendar().bank_days[day]}).")

        def fn(uow):
            _after_business_date(day, _business_date_in(uow), "add")
            old = self._load(uow.fetchall)
            if day in old.bank_days:
                raise InvalidInput(f"{day} is already a bank holiday.")
            uow.execute("INSERT INTO bank_holidays VALUES (?, ?, ?, ?)",
                        [day, name, actor.username, _utcnow()])
            new = old.with_bank_days({**old.bank_days, day: name})
            bank.audit_row(uow, actor, "bank_holiday.add", "bank_holiday", str(day),
                           after={"date": day, "name": name})
            moved = reschedule_in(bank, uow, actor, old, new, since=day, until=day)
            self._install(new)
            return moved
        moved = self.write_change(fn, actor, "bank_holiday.add", "bank_holiday", str(day))
        return {"date": day, "name": name, "loans_moved": moved}

    def remove_holiday(self, actor, day) -> dict:
        """Open the bank again on a day a manager added (after the business date).

        Managers only (PermissionDenied); InvalidInput for a day on or before the business
        date or one that is not a bank-added holiday (public holidays cannot be removed).
        Audited, refusals too; loans move back in the same transaction. Returns {"date",
        "name", "loans_moved"}."""
        bank = self._bank
        bank.require(actor, "calendar.change", entity="bank_holiday", entity_id=day)
        with self._refusals_audited(actor, "bank_holiday.remove", day):
            day = _day(day)
            _after_business_date(day, bank.business_date, "remove")
            if day not in self.calendar().bank_days:
                country = self.calendar().country_days(day.year).get(day)
                raise InvalidInput(
                    f"{day} is a public holiday ({country}), which the bank cannot remove."
                    if country else f"{day} is not a bank holiday.")

        def fn(uow):
            _after_business_date(day, _business_date_in(uow), "remove")
            old = self._load(uow.fetchall)
            if day not in old.bank_days:
                raise InvalidInput(f"{day} is not a bank holiday.")
            name = old.bank_days[day]
            uow.execute("DELETE FROM bank_holidays WHERE holiday_date = ?", [day])
            new = old.with_bank_days({d: n for d, n in old.bank_days.items() if d != day})
            bank.audit_row(uow, actor, "bank_holiday.remove", "bank_holiday", str(day),
                           before={"date": day, "name": name})
            moved = reschedule_in(bank, uow, actor, old, new, since=day, until=day)
            self._install(new)
            return name, moved
        name, moved = self.write_change(fn, actor, "bank_holiday.remove", "bank_holiday",
                                        str(day))
        return {"date": day, "name": name, "loans_moved": moved}

    @contextlib.contextmanager
    def _refusals_audited(self, actor, action, day):
        """Audit an InvalidInput raised inside as a refusal of `action` on the day asked for."""
        try:
            yield
        except InvalidInput as exc:
            self._bank.record_refusal(actor, action, exc, entity="bank_holiday",
                                      entity_id=str(day))
            raise

    def setting_changed_in(self, uow, actor, key: str, old_text, new_text) -> None:
        """A change of bank_country or bank_subdivision, inside Settings.set's transaction: the
        days up to the business date keep the old country (an era row), the loans move."""
        if key not in CALENDAR_SETTINGS or (old_text or "") == (new_text or ""):
            return
        bank = self._bank
        today = _business_date_in(uow)
        settings = dict(uow.fetchall(
            "SELECT key, value FROM settings WHERE key IN ('bank_country', 'bank_subdivision')"))
        if not uow.fetchone("SELECT 1 FROM bank_calendar_eras LIMIT 1"):
            # The first change: until now the settings as they were applied to every day.
            before = {**settings, key: old_text or ""}
            uow.execute("INSERT INTO bank_calendar_eras VALUES (?, ?, ?, ?, ?)",
                        [_DAWN, before.get("bank_country") or "US",
                         before.get("bank_subdivision") or "", actor.username, _utcnow()])
        start = today + dt.timedelta(days=1)
        uow.execute("INSERT INTO bank_calendar_eras VALUES (?, ?, ?, ?, ?) ON CONFLICT "
                    "(effective_date) DO UPDATE SET country = excluded.country, subdivision = "
                    "excluded.subdivision, changed_by = excluded.changed_by, changed_at = "
                    "excluded.changed_at",
                    [start, settings.get("bank_country") or "US",
                     settings.get("bank_subdivision") or "", actor.username, _utcnow()])
        old, new = self.calendar(), self._load(uow.fetchall)
        reschedule_in(bank, uow, actor, old, new, since=start, until=None)
        self._install(new)

    def write_change(self, fn, actor, action, entity, entity_id):
        """bank.write(fn) for a fn that may install a new calendar (the calendar is dropped
        if the change does not commit). A refusal found inside (a weekly loan whose due dates
        the change would make collide, say) is audited as a refusal of `action`."""
        try:
            return self._bank.write(fn)
        except BaseException as exc:
            # fn may have installed a calendar that did not commit.
            self.invalidate()
            if isinstance(exc, BankError):
                self._bank.record_refusal(actor, action, exc, entity=entity,
                                          entity_id=entity_id)
            raise


def reschedule_in(bank, uow, actor, old: Calendar, new: Calendar, *, since: dt.date,
                  until: dt.date | None) -> int:
    """Re-store, from a replay under the `new` calendar, every active loan with working-day
    due dates whose schedule changes; the days that changed from `old` to `new` lie within
    since..until (None: no end). Each moved loan is audited (loan.reschedule, the due dates
    before and after). Returns how many loans moved.

    Which loans can move: a due date is next_working_day(anchor date). If it moves later, the
    old one became a closed day; if earlier, the new one opened, and the old one is the old
    calendar's next working day after it. Either way the stored (old) due date lies between
    `since` and old.next_working_day(until), whatever the repayment frequency."""
    from .loans import (LOAN_COLUMNS, SCHEDULE_COLUMNS, _replay_in, _store, age_arrears,
                        schedule_frame, system_key)
    params = [since] if until is None else [since, old.next_working_day(until)]
    loans = [dict(zip(LOAN_COLUMNS, row)) for row in uow.fetchall(
        "SELECT " + ", ".join(LOAN_COLUMNS) + " FROM loans WHERE status = 'active' AND "
        "due_dates_working_days AND id IN (SELECT loan_id FROM loan_schedule WHERE due_date "
        ">= ?" + ("" if until is None else " AND due_date <= ?") + ") ORDER BY id", params)]
    if not loans:
        return 0
    cached: dict[int, list] = {}
    for row in uow.fetchall(
            "SELECT " + ", ".join(SCHEDULE_COLUMNS) + " FROM loan_schedule WHERE "
            + uow.dialect.in_list("loan_id", "BIGINT") + " ORDER BY loan_id, n",
            [[loan["id"] for loan in loans]]):
        cached.setdefault(row[0], []).append(tuple(row))
    splits: dict[int, tuple] = {lid: tuple(int(v) for v in sums) for lid, *sums in uow.fetchall(
        "SELECT loan_id, sum(fee_cents), sum(interest_cents), sum(principal_cents) FROM "
        "loan_payments WHERE method <> 'recovery' AND " + uow.dialect.in_list("loan_id", "BIGINT")
        + " GROUP BY 1",
        [[loan["id"] for loan in loans]])}
    today = _business_date_in(uow)
    changed, moved = [], 0
    for loan in loans:
        lid = loan["id"]
        replayed = _replay_in(uow.fetchall, loan, work_calendar=new)
        fresh = [(lid, r.n, r.due, r.payment, r.interest, r.principal, r.balance,
                  r.interest_paid, r.principal_paid, r.fee, r.fee_paid, r.fee_date)
                 for r in replayed.rows]
        if fresh == cached.get(lid, []):
            continue
        moved += 1
        before = {(n, due) for _, n, due, *_ in cached.get(lid, [])}
        after = {(n, due) for _, n, due, *_ in fresh}
        bank.audit_row(uow, actor, "loan.reschedule", "loan", lid,
                       before={"due_dates": sorted(str(d) for _, d in before - after)},
                       after={"due_dates": sorted(str(d) for _, d in after - before),
                              "reason": "bank calendar changed"})
        want = tuple(sum(getattr(x, f) for x in replayed.splits)
                     for f in ("fee_cents", "interest_cents", "principal_cents"))
        if want == splits.get(lid, (0, 0, 0)):
            changed.append(schedule_frame(lid, replayed))
            continue
        # A payment made within the period whose end moves (a prepayment, or an instalment
        # paid early) earned interest by the day over that period: its split between interest
        # and principal changes, and the difference is posted as a reallocation, as for a
        # corrected repayment.
        count = uow.fetchone("SELECT count(*) FROM audit_log WHERE action = 'loan.reschedule' "
                             "AND entity_id = ?", [str(lid)])[0]
        bank.loans._reallocate(uow, actor, loan, replayed, today,
                               system_key("loan", lid, "reschedule", count))
        _store(uow, loan, replayed, today)
    if changed:
        # Only due dates after the business date move, and with them the instalments' split
        # of interest; what is paid and outstanding stays, so the schedule rows are the cache
        # to rewrite (set-based: a change may move thousands of loans).
        frame = pd.concat(changed, ignore_index=True)
        frame["fee_date"] = pd.to_datetime(frame["fee_date"])
        uow.execute("DELETE FROM loan_schedule WHERE " + uow.dialect.in_list("loan_id", "BIGINT"),
                    [[int(v) for v in frame["loan_id"].unique()]])
        with uow.scan("moved_schedule", frame):
            uow.execute(f"INSERT INTO loan_schedule ({', '.join(SCHEDULE_COLUMNS)}) SELECT "
                        "loan_id, n, CAST(due_date AS DATE), payment_cents, interest_cents, "
                        "principal_cents, balance_cents, interest_paid_cents, "
                        "principal_paid_cents, fee_cents, fee_paid_cents, CAST(fee_date AS "
                        "DATE) FROM moved_schedule")
        age_arrears(uow, today)
    return moved


def clean_name(value) -> str:
    """A holiday's name: spaces collapsed, 2 to 80 characters; else InvalidInput."""
    if not isinstance(value, str) or len(" ".join(value.split())) < HOLIDAY_NAME_CHARS_MIN:
        raise InvalidInput(f"Please give the holiday's name ({HOLIDAY_NAME_CHARS_MIN} "
                           "characters or more).")
    value = " ".join(value.split())
    if len(value) > HOLIDAY_NAME_CHARS_MAX:
        raise InvalidInput(f"A holiday's name may have at most {HOLIDAY_NAME_CHARS_MAX} "
                           "characters.")
    return value


def _day(value) -> dt.date:
    day = as_date(value, "holiday date")
    if day is None:
        raise InvalidInput("Please give a date such as 2027-12-27.")
    if not YEAR_MIN <= day.year <= YEAR_MAX:
        raise InvalidInput(f"The bank's calendar covers the years {YEAR_MIN} to {YEAR_MAX}.")
    return day


def _year(value) -> int:
    try:
        year = int(str(value).strip())
    except ValueError:
        raise InvalidInput(f"'{value}' is not a year.") from None
    if isinstance(value, (bool, float)) or not YEAR_MIN <= year <= YEAR_MAX:
        raise InvalidInput(f"The bank's calendar covers the years {YEAR_MIN} to {YEAR_MAX}.")
    return year


def _after_business_date(day: dt.date, today: dt.date, verb: str) -> None:
    # A holiday on or before the business date would move due dates that have already passed
    # (and been collected, or aged into arrears): loans already due would be rewritten.
    if day <= today:
        raise InvalidInput(f"Only days after the business date ({today}) can be changed: a "
                           f"bank holiday to {verb} on {day} would rewrite loans already due.")


def _business_date_in(uow) -> dt.date:
    return as_date(uow.fetchone("SELECT value FROM settings WHERE key = 'business_date'")[0])


def _utcnow():
    from .ledger import utcnow
    return utcnow()
