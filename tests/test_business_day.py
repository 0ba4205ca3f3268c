"""One meaning of dates (issue 11): end of day closes only days that have ended in the bank's
time zone, long catch-ups need confirmation, the automatic end of day runs on a moved clock, and
statements, zips and dormancy follow business dates when the business date lags or leads the
calendar of the clock's stamps."""
from __future__ import annotations

import datetime as dt
import io
import zipfile

import duckdb
import pytest

import bankms
from bankms.services import businessday
from bankms.services.eod import run as eod, auto as eod_auto
from bankms.domain.errors import ConfirmationRequired, DayNotEnded, InvalidInput
from conftest import Clock, employee, funded_account, make_customer

DAY = dt.timedelta(days=1)
UTC = dt.timezone.utc
D0 = dt.date(2026, 3, 10)


def at(day, hh_mm="12:00", offset_days=0) -> dt.datetime:
    hours, minutes = map(int, hh_mm.split(":"))
    return dt.datetime.combine(day + offset_days * DAY, dt.time(hours, minutes), tzinfo=UTC)


@pytest.fixture
def clock():
    return Clock(at(D0))


@pytest.fixture
def day_bank(tmp_path, clock):
    """A bank opened on D0 (its first business date), reading the test's clock."""
    bank = bankms.open_bank(str(tmp_path / "day.duckdb"), bcrypt_rounds=4, clock=clock)
    assert bank.business_date == D0
    yield bank
    bank.close()


# -- the last closable day ----------------------------------------------------------------------
@pytest.mark.parametrize("zone, cutoff, now, expected", [
    ("UTC", "23:30", at(D0, "23:29"), D0 - DAY),
    ("UTC", "23:30", at(D0, "23:30"), D0),
    ("UTC", "23:30", at(D0, "00:00", 1), D0),
    ("UTC", "18:00", at(D0, "18:00"), D0),
    ("Europe/Berlin", "23:30", at(D0, "22:29"), D0 - DAY),   # 23:29 in Berlin (UTC+1)
    ("Europe/Berlin", "23:30", at(D0, "22:30"), D0),         # 23:30 in Berlin
    ("Pacific/Auckland", "23:30", at(D0, "12:00"), D0),      # 01:00 on the 11th in Auckland
    ("America/New_York", "23:30", at(D0, "02:00"), D0 - 2 * DAY),  # 22:00 on the 9th (EDT)
])
def test_last_closable_day_in_the_banks_time_zone(day_bank, zone, cutoff, now, expected):
    system = day_bank.system_actor()
    day_bank.settings.set(system, "bank_time_zone", zone)
    day_bank.settings.set(system, "eod_cutoff_time", cutoff)
    assert businessday.last_closable_day(day_bank, now) == expected


# -- end of day never closes a day that has not ended -----------------------------------------
# (clock: days after D0 and local time, until as days after D0 or None, confirm,
#  expected: days closed or the refusal)
EOD_CASES = [
    ((0, "12:00"), None, False, 0),
    ((0, "12:00"), 0, False, DayNotEnded),          # today, before the cut-off
    ((0, "23:31"), 0, False, 1),                    # today, after the cut-off
    ((0, "23:31"), 1, False, DayNotEnded),          # tomorrow
    ((0, "23:31"), 45, True, DayNotEnded),          # 45 days ahead, even when confirmed
    ((1, "00:10"), None, False, 1),                 # just after midnight: yesterday has ended
    ((3, "01:00"), None, False, 3),                 # three days missed: the limit, no question
    ((4, "01:00"), None, False, ConfirmationRequired),
    ((4, "01:00"), None, True, 4),
    ((4, "01:00"), 1, False, 2),                    # a short part of a long catch-up
    ((4, "01:00"), -1, False, 0),                   # a day already behind the business date
]


@pytest.mark.parametrize("now, until, confirm, expected", EOD_CASES)
def test_end_of_day_closes_only_ended_days(day_bank, clock, now, until, confirm, expected):
    clock.now = at(D0, now[1], now[0])
    system = day_bank.system_actor()
    until_date = None if until is None else D0 + until * DAY
    if isinstance(expected, type):
        with pytest.raises(expected) as refusal:
            day_bank.end_of_day(system, until=until_date, confirm=confirm)
        assert day_bank.business_date == D0
        assert day_bank.read_one("SELECT count(*) FROM eod_runs")[0] == 0
        assert day_bank.read_one(
            "SELECT count(*) FROM audit_log WHERE action = 'bank.end_of_day' "
            "AND outcome = 'refused'")[0] == 1
        if expected is DayNotEnded:
            closable = businessday.last_closable_day(day_bank)
            assert f"can close days up to {closable}" in str(refusal.value)
        else:
            assert "Confirm the catch-up" in str(refusal.value)
    else:
        result = day_bank.end_of_day(system, until=until_date, confirm=confirm)
        assert len(result.days) == expected
        assert day_bank.business_date == D0 + expected * DAY


def test_end_of_day_refuses_a_day_in_the_banks_zone_that_utc_has_ended(day_bank, clock):
    """At 01:00 UTC on the 11th it is still the 10th (20:00) in New York: not closable."""
    day_bank.settings.set(day_bank.system_actor(), "bank_time_zone", "America/New_York")
    clock.now = at(D0, "01:00", 1)
    with pytest.raises(DayNotEnded, match="America/New_York"):
        day_bank.end_of_day(day_bank.system_actor(), until=D0)


@pytest.mark.parametrize("argv, code, message", [
    (["eod", "--until", (D0 + 30 * DAY).isoformat()], 2, "has not ended yet"),
    (["eod", "--until", "2026-13-45"], 2, "is not a date"),
    (["eod"], 2, "Confirm the catch-up"),
    (["eod"], 2, "run it again with --yes"),
    (["eod", "--yes"], 0, "closed 5 day(s)"),
])
def test_command_line_end_of_day(tmp_path, monkeypatch, capsys, argv, code, message):
    from bankms.cli import main
    path = str(tmp_path / "cli.duckdb")
    monkeypatch.setattr(businessday, "system_clock", lambda: at(D0))
    bankms.open_bank(path, bcrypt_rounds=4).close()
    monkeypatch.setattr(businessday, "system_clock", lambda: at(D0, "01:00", 5))
    assert main(["--db", path, *argv]) == code
    out = capsys.readouterr()
    assert message in out.out + out.err
    assert "Traceback" not in out.err


# -- automatic end of day -----------------------------------------------------------------------
def audit_actions(bank):
    return [row[0] for row in bank.read(
        "SELECT action FROM audit_log WHERE action LIKE 'eod.auto%' ORDER BY id")]


def test_scheduler_closes_each_day_once_after_the_cutoff_and_catches_up(day_bank, clock):
    scheduler = eod_auto.EodScheduler(day_bank)
    status = scheduler.status()
    assert (status["business_date"], status["calendar_date"], status["next_run"]) == (
        D0, D0, at(D0, "23:30"))
    # (clock, business date after the tick, days closed by the tick)
    for now, business_date, closed in [
            (at(D0, "12:00"), D0, None),
            (at(D0, "23:29"), D0, None),
            (at(D0, "23:30"), D0 + DAY, 1),
            (at(D0, "23:59"), D0 + DAY, None),           # once: D0 is closed
            (at(D0, "10:00", 1), D0 + DAY, None),
            (at(D0, "09:00", 7), D0 + 7 * DAY, 6)]:      # after downtime: every ended day
        clock.now = now
        result = scheduler.tick()
        assert (now, day_bank.business_date, result and len(result.days)) == (
            now, business_date, closed)
    runs = day_bank.read("SELECT business_date, actor FROM eod_runs ORDER BY 1")
    assert runs == [(D0 + k * DAY, "auto-eod") for k in range(7)]
    assert audit_actions(day_bank) == ["eod.auto.started", "eod.auto.finished"] * 2
    status = scheduler.status()
    assert status["last_outcome"]["outcome"] == "ok"
    assert "closed 6 day(s)" in status["last_outcome"]["after"]["summary"]
    assert status["next_run"] == at(D0, "23:30", 7)
    assert day_bank.audit.verify() == []


def test_scheduler_can_be_turned_off(day_bank, clock):
    day_bank.settings.set(day_bank.system_actor(), "eod_auto", "false")
    clock.now = at(D0, "09:00", 3)
    scheduler = eod_auto.EodScheduler(day_bank)
    assert scheduler.tick() is None
    assert day_bank.business_date == D0 and audit_actions(day_bank) == []
    assert scheduler.status()["next_run"] is None


def test_a_failed_automatic_run_is_recorded_and_retried_later(day_bank, clock, monkeypatch):
    funded_account(day_bank, "100.00", kind="savings")

    def broken(uow, day, out):
        raise RuntimeError("disk on fire")
    monkeypatch.setattr(eod, "_accrue", broken)
    scheduler = eod_auto.EodScheduler(day_bank, retry_after_s=600)
    clock.now = at(D0, "00:30", 2)
    assert scheduler.tick() is None
    assert day_bank.business_date == D0
    assert audit_actions(day_bank) == ["eod.auto.started", "eod.auto.failed"]
    last = scheduler.status()["last_outcome"]
    assert last["outcome"] == "failed" and "disk on fire" in last["after"]["message"]
    clock.advance(minutes=5)
    assert scheduler.tick() is None and len(audit_actions(day_bank)) == 2  # waits it out
    monkeypatch.undo()
    clock.advance(minutes=6)
    assert len(scheduler.tick().days) == 2
    assert day_bank.audit.verify() == []


def test_the_scheduler_thread_is_one_per_bank_and_stops_with_it(tmp_path, clock):
    bank = bankms.open_bank(str(tmp_path / "thread.duckdb"), bcrypt_rounds=4, clock=clock)
    first = eod_auto.start(bank, interval_s=3600)
    assert eod_auto.start(bank) is first and first.alive
    bank.close()
    assert not first.alive


# -- value dates when the business date lags or leads the clock --------------------------------
@pytest.fixture
def lagging(tmp_path):
    """Business date 2026-03-15 while the calendar says 2026-04-20 (end of day not run since)."""
    clock = Clock(at(dt.date(2026, 3, 15)))
    bank = bankms.open_bank(str(tmp_path / "lag.duckdb"), bcrypt_rounds=4, clock=clock)
    clock.now = at(dt.date(2026, 4, 20))
    yield bank
    bank.close()


def test_statement_of_the_business_month_with_a_lagging_business_date(lagging):
    bank, system = lagging, lagging.system_actor()
    number = funded_account(bank, "250.00")
    account = bank.accounts.get(system, number)
    assert account["opened_date"] == account["last_activity_date"] == dt.date(2026, 3, 15)
    statement = bank.reports.statement(system, number, 2026, 3)
    assert (statement.opening_cents, statement.closing_cents) == (0, 25_000)
    assert list(statement.lines["date"]) == [dt.date(2026, 3, 15)]
    assert (2026, 3) in bank.reports.statement_months(system, number)
    with zipfile.ZipFile(io.BytesIO(bank.reports.statements_zip(system, 2026, 3))) as zf:
        assert any(number in name for name in zf.namelist())


def test_a_closed_account_is_in_the_zips_up_to_its_closing_business_date(lagging):
    bank, system = lagging, lagging.system_actor()
    number = funded_account(bank, "0")
    bank.accounts.close(system, number)
    assert bank.accounts.get(system, number)["closed_date"] == dt.date(2026, 3, 15)

    def zipped(year, month):
        with zipfile.ZipFile(io.BytesIO(bank.reports.statements_zip(system, year, month))) as zf:
            return any(number in name for name in zf.namelist())
    assert (zipped(2026, 3), zipped(2026, 4)) == (True, False)


# (business date against the stamps' calendar, days closed, expected status)
DORMANCY_CASES = [
    ("leads by two years", 730, "active"),
    ("lags by 40 days", -40, "active"),
]


@pytest.mark.parametrize("case, lead_days, expected", DORMANCY_CASES)
def test_a_deposit_today_keeps_the_account_active(tmp_path, case, lead_days, expected):
    """The deposit's clock stamp (posted_at, last_activity_at) is the machine's now; the
    business date is far from it. Dormancy reads the business date of the activity."""
    today = dt.datetime.now(UTC).date()
    business_date = today + lead_days * DAY
    clock = Clock(at(business_date))
    bank = bankms.open_bank(str(tmp_path / "dorm.duckdb"), bcrypt_rounds=4, clock=clock)
    try:
        teller = employee(bank, "teller")
        number = bank.accounts.open(bank.system_actor(), make_customer(bank))
        bank.payments.deposit(teller, number, "20.00")
        clock.now = at(business_date, "00:30", 1)
        result = bank.end_of_day(bank.system_actor())
        assert [d.business_date for d in result.days] == [business_date]
        assert (case, bank.accounts.get(teller, number)["status"]) == (case, expected)
    finally:
        bank.close()


def test_business_dates_are_filled_in_when_an_older_bank_opens(tmp_path):
    path = str(tmp_path / "old.duckdb")
    clock = Clock(at(dt.date(2026, 3, 15)))
    bank = bankms.open_bank(path, bcrypt_rounds=4, clock=clock)
    number = funded_account(bank, "75.00")
    bank.close()
    con = duckdb.connect(path)
    for column in ("opened_date", "closed_date", "last_activity_date"):
        con.execute(f"ALTER TABLE accounts DROP COLUMN {column}")
    con.close()
    bank = bankms.open_bank(path, bcrypt_rounds=4, clock=clock)
    try:
        account = bank.accounts.get(bank.system_actor(), number)
        # The stamps are the machine's today; the ledger's business date is 15 March.
        assert (account["opened_date"], account["closed_date"],
                account["last_activity_date"]) == (dt.date(2026, 3, 15), None,
                                                   dt.date(2026, 3, 15))
    finally:
        bank.close()


def test_closing_the_bank_stops_a_catch_up_between_days(day_bank, clock, monkeypatch):
    """The thread's stop flag is checked after each closed day; whole days stay closed."""
    scheduler = eod_auto.EodScheduler(day_bank)
    clock.now = at(D0, "01:00", 5)
    accrue = eod._accrue

    def accrue_then_stop(uow, day, out):
        accrue(uow, day, out)
        scheduler._stop.set()  # as bank.close() does, while the first day is being closed
    monkeypatch.setattr(eod, "_accrue", accrue_then_stop)
    assert scheduler.tick() is None
    assert day_bank.business_date == D0 + DAY
    assert "the bank is closing" in scheduler.status()["last_outcome"]["after"]["message"]
    assert day_bank.audit.verify() == []


@pytest.mark.parametrize("zone, hours", [("UTC", 0), ("Asia/Tokyo", 9), ("America/Bogota", -5)])
def test_receipts_show_the_posting_time_on_the_banks_clock(day_bank, zone, hours):
    from bankms.reporting.receipts import receipt_lines
    day_bank.settings.set(day_bank.system_actor(), "bank_time_zone", zone)
    number = funded_account(day_bank, "5.00")
    tid = day_bank.read_one("SELECT max(id) FROM transactions WHERE target_account = ?",
                            [number])[0]
    details = day_bank.payments.receipt_details(day_bank.system_actor(), tid)
    local = details["posted_at"] + dt.timedelta(hours=hours)
    lines = dict(receipt_lines(details))
    assert (lines["Posted at"], lines["Business date"]) == (
        f"{local:%Y-%m-%d %H:%M:%S} {zone}", str(D0))


# -- a time zone or cut-off change cannot put a closed day into the future ---------------------
# (setting, value, expected: stored or the refusal). The bank closed D0 at 23:31 UTC on D0.
ZONE_CHANGE_CASES = [
    ("bank_time_zone", "Europe/Berlin", "Europe/Berlin"),      # 00:31 on D0+1: D0 has ended
    ("bank_time_zone", "America/New_York", InvalidInput),     # 18:31 on D0: not ended there
    ("bank_time_zone", "localtime", InvalidInput),            # a file, not an IANA name
    ("eod_cutoff_time", "23:00", "23:00"),
    ("eod_cutoff_time", "23:45", InvalidInput),               # D0 could not be closed yet
]


@pytest.mark.parametrize("key, value, expected", ZONE_CHANGE_CASES)
def test_a_zone_or_cutoff_change_keeps_closed_days_in_the_past(day_bank, clock, key, value,
                                                               expected):
    system = day_bank.system_actor()
    clock.now = at(D0, "23:31")
    assert len(day_bank.end_of_day(system).days) == 1
    before = day_bank.settings.get(key)
    if expected is InvalidInput:
        with pytest.raises(InvalidInput):
            day_bank.settings.set(system, key, value)
        assert day_bank.settings.get(key) == before
        assert businessday.last_closable_day(day_bank) >= D0
    else:
        assert day_bank.settings.set(system, key, value) == expected
