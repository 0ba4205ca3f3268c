"""Calendar arithmetic of loan schedules, pure: months added with the day clamped to a shorter
month's end, arrears buckets, and the amortization of loan_replay under the names the services
and the demo use. A leaf below loans, end of day, analytics and the demo bank.
"""
from __future__ import annotations

import calendar
import datetime as dt

from .loan_replay import amortize, annuity_payment_cents  # noqa: F401

BUCKETS = ("current", "1-30", "31-60", "61-90", "over 90")


def add_months(start: dt.date, months: int) -> dt.date:
    """The same day `months` later, or the month's last day when it is shorter."""
    index = start.year * 12 + start.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    return dt.date(year, month, min(start.day, calendar.monthrange(year, month)[1]))


def bucket(days_past_due: int) -> str:
    if days_past_due <= 0:
        return "current"
    if days_past_due <= 30:
        return "1-30"
    if days_past_due <= 60:
        return "31-60"
    if days_past_due <= 90:
        return "61-90"
    return "over 90"
