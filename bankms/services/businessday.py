"""The bank's clock, time zone and which business days may be closed.

Two meanings of time, never mixed in a rule:

- the **business date** (value date): the day a transaction belongs to; every date a business
  rule reads (statements, certificates, dormancy, arrears, account opening and closing) is one;
- the **posting time**: the UTC instant money moved, kept for display and for the dashboards.

The clock is `Bank.clock`, a callable returning an aware UTC datetime; by default it calls
`system_clock` below at each call, so tests either give a Bank its own clock or replace
`system_clock` for banks they do not open themselves (the command line).

A calendar day *has ended* in the bank's time zone (setting `bank_time_zone`, an IANA name such
as "Europe/Berlin") once the next day has begun; the day of today may be closed early, after the
cut-off time (setting `eod_cutoff_time`, "HH:MM", local), the way branches close their books
after the last counter hour. End of day never closes a day after `last_closable_day`.
"""
from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..domain.errors import InvalidInput


def system_clock() -> dt.datetime:
    """The machine's time now, aware, in UTC."""
    return dt.datetime.now(dt.timezone.utc)


def as_utc(now: dt.datetime) -> dt.datetime:
    """An aware datetime; a naive one is taken to be UTC (as every stored stamp is)."""
    return now.replace(tzinfo=dt.timezone.utc) if now.tzinfo is None else now


# -- the settings (registered, typed and checked in settings.py) --------------------------------
def parse_zone(value) -> ZoneInfo:
    try:
        return ZoneInfo(str(value).strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"'{value}' is not a time zone; give an IANA name such as UTC or "
                           "Europe/Berlin.") from None


def zone(bank) -> ZoneInfo:
    return parse_zone(bank.settings.value("bank_time_zone"))


def cutoff(bank) -> dt.time:
    return bank.settings.value("eod_cutoff_time")


def catch_up_days_max(bank) -> int:
    """Closing more days than this at once needs confirmation (confirm=True, --yes, the
    page's checkbox): closing days pays interest and collects instalments for each of them."""
    return bank.settings.value("eod_catchup_days_confirm")


def auto_enabled(bank) -> bool:
    return bank.settings.value("eod_auto")


# -- the calendar in the bank's zone ------------------------------------------------------------
def local_now(bank, now: dt.datetime | None = None) -> dt.datetime:
    """`now` (default: the bank's clock) as an aware datetime in the bank's time zone."""
    return as_utc(now if now is not None else bank.clock()).astimezone(zone(bank))


def calendar_date(bank, now: dt.datetime | None = None) -> dt.date:
    """Today's date in the bank's time zone."""
    return local_now(bank, now).date()


def last_closable_day(bank, now: dt.datetime | None = None) -> dt.date:
    """The latest day end of day may close: today after the cut-off time, else yesterday."""
    return _last_closable(local_now(bank, now), cutoff(bank))


def _last_closable(local: dt.datetime, cut_off: dt.time) -> dt.date:
    today = local.date()
    return today if local.time().replace(tzinfo=None) >= cut_off else today - \
        dt.timedelta(days=1)


def check_day_change(bank, *, zone_name: str | None = None, cut_off: dt.time | None = None,
                     now: dt.datetime | None = None) -> None:
    """Refuse (InvalidInput) a new time zone or cut-off under which the last day end of day
    has closed would not have ended yet: switching to a zone further east, closing a day
    early and switching back would otherwise leave the business date ahead of the calendar,
    so that today's deposits carry tomorrow's value date."""
    row = bank.read_one("SELECT max(business_date) FROM eod_runs")
    last_closed = row[0] if row else None
    if last_closed is None:
        return
    tz = parse_zone(zone_name) if zone_name is not None else zone(bank)
    cut_off = cut_off if cut_off is not None else cutoff(bank)
    local = as_utc(now if now is not None else bank.clock()).astimezone(tz)
    if _last_closable(local, cut_off) < last_closed:
        raise InvalidInput(
            f"Business day {last_closed} is already closed, and with time zone {tz.key} and "
            f"cut-off {cut_off:%H:%M} it would not have ended yet (it is {local:%Y-%m-%d %H:%M} "
            "there): the business date would run ahead of the calendar. Change it after that "
            "day has ended there.")


def closes_at(bank, day: dt.date) -> dt.datetime:
    """The moment (aware, bank zone) from which `day` may be closed: its cut-off time."""
    return dt.datetime.combine(day, cutoff(bank), tzinfo=zone(bank))


def to_bank_time(bank, stamps):
    """Stored UTC stamps (a datetime or a pandas Series of naive UTC) as naive wall-clock time
    in the bank's time zone, for pages that show a posting time beside a business date."""
    import pandas as pd
    tz = zone(bank)
    if isinstance(stamps, pd.Series):
        if stamps.empty:
            return stamps
        values = pd.to_datetime(stamps)
        if values.dt.tz is None:
            values = values.dt.tz_localize("UTC")
        return values.dt.tz_convert(tz).dt.tz_localize(None)
    if stamps is None:
        return None
    return as_utc(stamps).astimezone(tz).replace(tzinfo=None)
