"""The bank's working-day calendar (issue 9: due dates "moved off weekends and bank holidays to
the next working day when the product says so"): weekends, the country's public holidays from
the `holidays` package, the days managers add, and loans whose due dates follow it.

Expected dates are read off a 2027 wall calendar and the US federal holiday list (5 U.S.C.
6103, with its Friday/Monday observance), not from bankms."""
from __future__ import annotations

import datetime as dt
import json
from fractions import Fraction

import pytest

from bankms.domain.errors import InvalidInput, InvalidState, PermissionDenied
from conftest import employee, funded_account, login_for, make_customer

D = dt.date.fromisoformat
DAY = dt.timedelta(days=1)


@pytest.fixture
def manager(bank):
    return employee(bank, "manager")


def state(bank):
    """Everything a calendar change may touch, to show a refusal changed nothing."""
    return (bank.read("SELECT * FROM bank_holidays ORDER BY 1"),
            bank.read("SELECT * FROM bank_calendar_eras ORDER BY 1"),
            bank.read("SELECT key, value FROM settings WHERE key LIKE 'bank_%' ORDER BY 1"),
            bank.read("SELECT * FROM loan_schedule ORDER BY loan_id, n"))


def refusals(bank, action):
    return bank.read("SELECT actor, after FROM audit_log WHERE action = ? AND outcome = "
                     "'refused' ORDER BY id", [action])


# -- the calendar -----------------------------------------------------------------------------
@pytest.mark.parametrize("day, working", [
    ("2027-07-05", False),   # Independence Day (Sunday the 4th) observed on Monday
    ("2027-07-04", False),   # Sunday
    ("2027-07-03", False),   # Saturday
    ("2027-07-06", True),
    ("2027-02-15", False),   # Washington's Birthday, third Monday of February
    ("2027-05-31", False),   # Memorial Day, last Monday of May
    ("2027-12-24", False),   # Christmas Day (a Saturday) observed on Friday
    ("2027-12-31", False),   # New Year's Day 2028 (a Saturday) observed on Friday
    ("2027-03-01", True),
    ("2027-03-31", True),
])
def test_working_days_of_a_us_bank(bank, day, working):
    assert bank.workdays.is_working_day(D(day)) is working
    assert bank.workdays.is_working_day(day) is working   # ISO text too


@pytest.mark.parametrize("day, expected", [
    ("2027-03-01", "2027-03-01"),   # a working day is its own next working day
    ("2027-02-27", "2027-03-01"),   # Saturday -> Monday
    ("2027-02-28", "2027-03-01"),   # Sunday -> Monday
    ("2027-07-03", "2027-07-06"),   # Saturday, Sunday, observed holiday -> Tuesday
    ("2027-12-24", "2027-12-27"),
    ("2027-12-31", "2028-01-03"),
    ("2027-05-29", "2027-06-01"),   # over Memorial Day
])
def test_next_working_day(bank, day, expected):
    assert bank.workdays.next_working_day(D(day)) == D(expected)


def test_the_years_calendar_lists_the_public_holidays(bank, manager):
    frame = bank.workdays.holidays(manager, 2027)
    assert list(frame.columns) == ["date", "name", "source"]
    assert len(frame) == 15 and set(frame["source"]) == {"country"}
    rows = {(d.isoformat(), n, s) for d, n, s in frame.itertuples(index=False)}
    assert ("2027-07-05", "Independence Day (observed)", "country") in rows
    assert ("2027-11-25", "Thanksgiving Day", "country") in rows


def test_a_manager_adds_and_removes_a_bank_holiday(bank, manager):
    added = bank.workdays.add_holiday(manager, "2027-12-27", "  Staff   day ")
    assert added == {"date": D("2027-12-27"), "name": "Staff day", "loans_moved": 0}
    assert not bank.workdays.is_working_day(D("2027-12-27"))
    assert bank.workdays.next_working_day(D("2027-12-24")) == D("2027-12-28")
    frame = bank.workdays.holidays(manager, 2027)
    assert [tuple(r) for r in frame[frame["source"] == "bank"].itertuples(index=False)] == [
        (D("2027-12-27"), "Staff day", "bank")]
    assert bank.read("SELECT holiday_date, name, added_by FROM bank_holidays") == [
        (D("2027-12-27"), "Staff day", manager.username)]
    removed = bank.workdays.remove_holiday(manager, "2027-12-27")
    assert removed["name"] == "Staff day"
    assert bank.workdays.is_working_day(D("2027-12-27"))
    audit = bank.read("SELECT action, entity_id, before, after FROM audit_log WHERE action "
                      "LIKE 'bank_holiday.%' AND outcome = 'ok' ORDER BY id")
    assert [(a, e) for a, e, _, _ in audit] == [("bank_holiday.add", "2027-12-27"),
                                               ("bank_holiday.remove", "2027-12-27")]
    assert json.loads(audit[0][3]) == {"date": "2027-12-27", "name": "Staff day"}
    assert json.loads(audit[1][2]) == {"date": "2027-12-27", "name": "Staff day"}


def test_the_calendar_is_cached_until_it_changes(bank, manager):
    first = bank.workdays.calendar()
    assert bank.workdays.calendar() is first
    assert first.move_due_date is first.move_due_date
    bank.workdays.add_holiday(manager, "2027-12-27", "Staff day")
    second = bank.workdays.calendar()
    assert second is not first and second.move_due_date is not first.move_due_date
    assert bank.workdays.calendar() is second
    bank.settings.set(bank.system_actor(), "bank_subdivision", "NY")
    assert bank.workdays.calendar() is not second


def past(bank):
    return str(bank.business_date - DAY)


def today(bank):
    return str(bank.business_date)


LONG = "x" * 81


@pytest.mark.parametrize("role, call, args, error, words, action", [
    ("manager", "add", (past, "Staff day"), InvalidInput, "after the business date",
     "bank_holiday.add"),
    ("manager", "add", (today, "Staff day"), InvalidInput, "after the business date",
     "bank_holiday.add"),
    ("manager", "add", (lambda b: "2027-07-03", "Staff day"), InvalidInput, "Saturday",
     "bank_holiday.add"),
    ("manager", "add", (lambda b: "2027-12-27", LONG), InvalidInput, "at most 80",
     "bank_holiday.add"),
    ("manager", "add", (lambda b: "2027-12-27", " "), InvalidInput, "holiday's name",
     "bank_holiday.add"),
    ("manager", "add", (lambda b: "27.12.2027", "Staff day"), InvalidInput, "2026-01-31",
     "bank_holiday.add"),
    ("teller", "add", (lambda b: "2027-12-27", "Staff day"), PermissionDenied,
     "calendar.change", "calendar.change"),
    ("customer", "add", (lambda b: "2027-12-27", "Staff day"), PermissionDenied,
     "calendar.change", "calendar.change"),
    ("manager", "remove", (lambda b: "2027-07-05",), InvalidInput, "public holiday",
     "bank_holiday.remove"),
    ("manager", "remove", (lambda b: "2027-12-28",), InvalidInput, "not a bank holiday",
     "bank_holiday.remove"),
    ("manager", "remove", (past,), InvalidInput, "after the business date",
     "bank_holiday.remove"),
    ("teller", "remove", (lambda b: "2027-12-27",), PermissionDenied, "calendar.change",
     "calendar.change"),
    ("manager", "country", ("XX",), InvalidInput, "ISO 3166", "settings.change"),
    ("manager", "country", ("USA",), InvalidInput, "ISO 3166", "settings.change"),
    ("manager", "subdivision", ("ZZ",), InvalidInput, "not a subdivision of US",
     "settings.change"),
    ("teller", "country", ("DE",), PermissionDenied, "settings.change", "settings.change"),
])
def test_refusals_change_nothing_and_are_audited(bank, role, call, args, error, words,
                                                  action):
    if role == "customer":
        cid = make_customer(bank)
        actor = login_for(bank, cid, "ana")
    else:
        actor = employee(bank, role)
    before = state(bank)
    args = [a(bank) if callable(a) else a for a in args]
    with pytest.raises(error, match=words):
        if call == "add":
            bank.workdays.add_holiday(actor, *args)
        elif call == "remove":
            bank.workdays.remove_holiday(actor, *args)
        else:
            bank.settings.set(actor, f"bank_{call}", *args)
    assert state(bank) == before
    assert [who for who, _ in refusals(bank, action)] == [actor.username]


def test_a_duplicate_bank_holiday_is_refused(bank, manager):
    bank.workdays.add_holiday(manager, "2027-12-27", "Staff day")
    before = state(bank)
    with pytest.raises(InvalidInput, match="already a bank holiday"):
        bank.workdays.add_holiday(manager, "2027-12-27", "Other day")
    assert state(bank) == before


def test_holidays_are_read_by_staff_only(bank):
    cid = make_customer(bank)
    with pytest.raises(PermissionDenied):
        bank.workdays.holidays(login_for(bank, cid, "ana"), 2027)
    assert len(bank.workdays.holidays(employee(bank, "teller"), 2027)) == 15


@pytest.mark.parametrize("key, value, stored", [
    ("bank_country", "de", "DE"),
    ("bank_country", " GB ", "GB"),
    ("bank_subdivision", "ny", "NY"),
    ("bank_subdivision", "none", ""),
])
def test_country_and_subdivision_settings(bank, key, value, stored):
    assert bank.settings.set(bank.system_actor(), key, value) == stored
    assert bank.settings.get(key) == stored


def test_a_country_with_another_subdivision_is_refused(bank):
    system = bank.system_actor()
    bank.settings.set(system, "bank_subdivision", "NY")
    with pytest.raises(InvalidInput, match="set bank_subdivision to none first"):
        bank.settings.set(system, "bank_country", "DE")
    assert bank.settings.get("bank_country") == "US"


def test_a_new_country_applies_only_after_the_business_date(bank):
    import holidays
    system, today = bank.system_actor(), bank.business_date
    years = [today.year - 1, today.year]
    us, de = holidays.US(years=years), holidays.DE(years=years)
    # The last weekday up to the business date that only one of the two countries closes on.
    us_only = max(d for d in us if d <= today and d.weekday() < 5 and d not in de)
    de_only = max(d for d in de if d <= today and d.weekday() < 5 and d not in us)
    assert not bank.workdays.is_working_day(D("2027-07-05"))
    bank.settings.set(system, "bank_country", "DE")
    assert bank.workdays.is_working_day(D("2027-07-05"))         # an ordinary Monday in DE
    assert not bank.workdays.is_working_day(D("2027-03-26"))     # Good Friday
    # Days up to the business date keep the country they had.
    assert not bank.workdays.is_working_day(us_only)
    assert bank.workdays.is_working_day(de_only)
    assert bank.read("SELECT effective_date, country, subdivision FROM bank_calendar_eras "
                     "ORDER BY 1") == [(dt.date(1, 1, 1), "US", ""), (today + DAY, "DE", "")]


# -- loans with working-day due dates ---------------------------------------------------------
@pytest.fixture
def staff(bank, years_ahead):
    return {"teller": employee(bank, "teller"), "manager": employee(bank, "manager")}


@pytest.fixture
def borrower(bank):
    cid = make_customer(bank, name="Ana Borrower")
    return {"cid": cid, "checking": funded_account(bank, "0", customer_id=cid)}


def working_day_loan(bank, staff, borrower, working_days=True):
    """10,000.00 at 12 % over 12 months, due dates on working days (the product's choice,
    copied into the loan at application), disbursed today."""
    if working_days:
        bank.loans.update_product(staff["manager"], "personal", due_dates_working_days=True)
    lid = bank.loans.apply(staff["teller"], borrower["cid"], product="personal",
                           principal="10000.00", term_months=12, purpose="new kitchen",
                           monthly_income="4000.00")
    assert bank.read_one("SELECT due_dates_working_days FROM loans WHERE id = ?", [lid]) == (
        working_days,)
    bank.loans.approve(staff["manager"], lid, annual_rate_percent="12")
    bank.loans.disburse(staff["teller"], lid, borrower["checking"])
    return lid


def due_dates(bank, lid):
    return [d.isoformat() for d, in bank.read(
        "SELECT due_date FROM loan_schedule WHERE loan_id = ? ORDER BY n", [lid])]


def withdraw_all(bank, number):
    balance = bank.accounts.balance(bank.system_actor(), number)
    if balance > 0:
        bank.payments.withdraw(bank.system_actor(), number, str(balance))


@pytest.fixture
def month_end_loan(bank, staff, borrower):
    bank.end_of_day(bank.system_actor(), until=D("2027-01-30"))
    assert bank.business_date == D("2027-01-31")
    return working_day_loan(bank, staff, borrower)


def test_due_dates_move_to_the_next_working_day_without_drifting(bank, month_end_loan):
    assert due_dates(bank, month_end_loan) == [
        "2027-03-01",   # Feb 28 is a Sunday
        "2027-03-31",   # the anchor holds: not Apr 1
        "2027-04-30",
        "2027-06-01",   # May 31 is Memorial Day
        "2027-06-30",
        "2027-08-02",   # Jul 31 is a Saturday
        "2027-08-31",
        "2027-09-30",
        "2027-11-01",   # Oct 31 is a Sunday
        "2027-11-30",
        "2028-01-03",   # Dec 31 is New Year's Day 2028 observed
        "2028-01-31"]
    assert bank.audit.verify() == []


@pytest.mark.parametrize("working_days, first_due, days_past_due_mar_1, fees_cents", [
    (True, "2027-03-01", 0, 0),
    # The same loan without working-day due dates: due on Sunday, late on Monday.
    (False, "2027-02-28", 1, 2500),
])
def test_a_payment_on_the_moved_due_date_is_on_time(bank, staff, borrower, working_days,
                                                    first_due, days_past_due_mar_1,
                                                    fees_cents):
    system = bank.system_actor()
    # A late fee on the first late day.
    bank.loans.update_product(staff["manager"], "personal", late_fee_grace_days=0)
    bank.end_of_day(system, until=D("2027-01-30"))
    lid = working_day_loan(bank, staff, borrower, working_days)
    assert due_dates(bank, lid)[0] == first_due
    withdraw_all(bank, borrower["checking"])   # nothing for end of day to collect
    bank.end_of_day(system, until=D("2027-02-28"))
    assert bank.business_date == D("2027-03-01")
    assert bank.read_one("SELECT days_past_due FROM loans WHERE id = ?", [lid])[0] == \
        days_past_due_mar_1
    # The borrower pays the instalment at the counter on Monday, Mar 1.
    first = bank.read_one("SELECT payment_cents FROM loan_schedule WHERE loan_id = ? AND n = 1",
                          [lid])[0]
    bank.loans.repay(staff["teller"], lid, f"{first / 100:.2f}", "cash")
    bank.end_of_day(system, until=D("2027-03-10"))
    fees = bank.read_one("SELECT sum(fee_cents) FROM loan_schedule WHERE loan_id = ?", [lid])[0]
    assert fees == fees_cents
    if working_days:
        assert bank.read_one("SELECT days_past_due, arrears_bucket FROM loans WHERE id = ?",
                             [lid]) == (0, "current")
    assert bank.audit.verify() == []


def test_a_holiday_on_a_future_due_date_moves_the_loan(bank, staff, month_end_loan):
    lid = month_end_loan
    moved = bank.workdays.add_holiday(staff["manager"], "2027-03-31", "Staff day")
    assert moved["loans_moved"] == 1
    assert due_dates(bank, lid)[:3] == ["2027-03-01", "2027-04-01", "2027-04-30"]
    assert bank.audit.verify() == []
    audit = bank.read("SELECT before, after FROM audit_log WHERE action = 'loan.reschedule'")
    assert [(json.loads(b)["due_dates"], json.loads(a)["due_dates"]) for b, a in audit] == [
        (["2027-03-31"], ["2027-04-01"])]
    bank.workdays.remove_holiday(staff["manager"], "2027-03-31")
    assert due_dates(bank, lid)[1] == "2027-03-31"
    assert bank.audit.verify() == []


def interest_by_search(amount, days, period_days, opening=921_151, principal=79_637):
    """The second instalment's interest when `amount` is paid on day `days` of its period: the
    prepayment P with amount = interest(P) + the instalment's principal + P, interest(P) =
    1 % x (opening x days + (opening - P) x the rest) / period_days, half-up; found by trying
    every P. Opening 9,211.51 = 10,000.00 - 788.49; principal 796.37 = 888.49 - 92.12."""
    for p in range(amount + 1):
        exact = Fraction(opening * days + (opening - p) * (period_days - days),
                         100 * period_days)
        interest = int(exact + Fraction(1, 2))
        if interest + principal + p == amount:
            return interest
    raise AssertionError("no prepayment fits")


def test_a_moved_due_date_splits_a_payment_of_its_period_again(bank, staff, month_end_loan):
    lid, system = month_end_loan, bank.system_actor()
    bank.end_of_day(system, until=D("2027-03-14"))   # the first instalment collected Mar 1
    bank.loans.repay(staff["teller"], lid, "6000.00", "cash")   # day 14 of Mar 1 - Mar 31
    second = "SELECT interest_cents FROM loan_schedule WHERE loan_id = ? AND n = 2"
    assert bank.read_one(second, [lid])[0] == interest_by_search(600_000, 14, 30)
    bank.workdays.add_holiday(staff["manager"], "2027-03-31", "Staff day")
    # The period now ends Apr 1: 31 days, so each of the 14 days before the payment weighs less.
    assert bank.read_one(second, [lid])[0] == interest_by_search(600_000, 14, 31)
    moved = interest_by_search(600_000, 14, 30) - interest_by_search(600_000, 14, 31)
    assert bank.read("SELECT method, interest_cents, principal_cents FROM loan_payments WHERE "
                     "loan_id = ? AND method = 'reallocation'", [lid]) == [
        ("reallocation", -moved, moved)]
    assert bank.audit.verify() == []


def test_a_holiday_that_would_merge_two_due_dates_is_refused(bank, staff, month_end_loan):
    # Every weekday from Mar 31 to Apr 28 closed: the second due date (Mar 31) moves to Apr 29.
    manager, day = staff["manager"], D("2027-03-31")
    while day < D("2027-04-29"):
        if day.weekday() < 5:
            bank.workdays.add_holiday(manager, day, "Inventory")
        day += DAY
    assert due_dates(bank, month_end_loan)[1:3] == ["2027-04-29", "2027-04-30"]
    before = state(bank)
    # Closing Apr 29 too would make the second and third instalments fall due on Apr 30.
    with pytest.raises(InvalidState, match="not after the previous due date"):
        bank.workdays.add_holiday(manager, "2027-04-29", "Inventory")
    assert state(bank) == before
    assert [who for who, _ in refusals(bank, "bank_holiday.add")] == [manager.username]
    assert bank.workdays.is_working_day(D("2027-04-29"))
    assert bank.audit.verify() == []


def test_a_country_change_moves_only_future_due_dates(bank, staff, month_end_loan):
    lid = month_end_loan
    bank.end_of_day(bank.system_actor(), until=D("2027-03-15"))
    bank.settings.set(bank.system_actor(), "bank_country", "DE")
    got = due_dates(bank, lid)
    assert got[0] == "2027-03-01"              # passed: kept under the US calendar
    assert got[3] == "2027-05-31"              # Memorial Day is a working day in Germany
    assert got[10] == "2027-12-31"             # and so is New Year's Eve
    assert bank.audit.verify() == []


def test_a_loan_without_the_flag_keeps_its_anchored_dates(bank, staff, borrower):
    bank.end_of_day(bank.system_actor(), until=D("2027-01-30"))
    lid = bank.loans.apply(staff["teller"], borrower["cid"], product="personal",
                           principal="10000.00", term_months=12, purpose="new kitchen",
                           monthly_income="4000.00")
    bank.loans.approve(staff["manager"], lid, annual_rate_percent="12")
    bank.loans.disburse(staff["teller"], lid, borrower["checking"])
    assert due_dates(bank, lid)[:2] == ["2027-02-28", "2027-03-31"]
    assert bank.workdays.add_holiday(staff["manager"], "2027-03-31", "Staff day")[
        "loans_moved"] == 0
    assert due_dates(bank, lid)[:2] == ["2027-02-28", "2027-03-31"]


# -- the Operations page ----------------------------------------------------------------------
def holidays_table(at):
    tables = [d.value for d in at.dataframe if "Source" in d.value.columns]
    assert len(tables) == 1
    return tables[0]


def test_the_operations_page_keeps_bank_holidays(app_env):
    from apptest_util import open_app
    from pages.operations import TAB, TABS
    from test_dashboard_pages import show_tab

    bank = app_env
    at = open_app(bank, bank.auth.actor_for("mara"), "bank-operations")
    show_tab(at, TAB, TABS[3])  # the tab runs only when open
    at.number_input(key="ops_holiday_year").set_value(2027).run()
    table = holidays_table(at)
    assert len(table) == 15 and set(table["Source"]) == {"Country"}  # the code in words
    assert "Independence Day (observed)" in set(table["Name"])
    # Add a named day; a name with Markdown shows as typed.
    at.date_input(key="ops_holiday_date").set_value(D("2027-12-27"))
    at.text_input(key="ops_holiday_name").input("Staff *party*")
    at.button(key="FormSubmitter:ops_holiday_add_form-Add bank holiday").click().run()
    assert not at.exception
    assert [s.value for s in at.success] == [
        r"2027-12-27 is a bank holiday (Staff \*party\*); 0 loan(s) moved."]
    table = holidays_table(at)
    assert [tuple(r) for r in table[table["Source"] == "Bank"].itertuples(index=False)] == [
        (D("2027-12-27"), "Staff *party*", "Bank")]
    # A weekend is refused with a message, and nothing changes.
    at.date_input(key="ops_holiday_date").set_value(D("2027-07-03"))
    at.text_input(key="ops_holiday_name").input("Picnic")
    at.button(key="FormSubmitter:ops_holiday_add_form-Add bank holiday").click().run()
    assert any("Saturday" in e.value for e in at.error)
    assert list(bank.read("SELECT holiday_date FROM bank_holidays")) == [(D("2027-12-27"),)]
    # Remove the day the bank added.
    assert at.selectbox(key="ops_holiday_remove").options == ["2027-12-27"]
    at.button(key="FormSubmitter:ops_holiday_remove_form-Remove bank holiday").click().run()
    assert any("is a working day again" in s.value for s in at.success)
    assert bank.read("SELECT * FROM bank_holidays") == []
    assert set(holidays_table(at)["Source"]) == {"Country"}
