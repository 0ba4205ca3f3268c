"""Dates typed or passed in by callers, turned into `datetime.date` in one place."""
from __future__ import annotations

import datetime as dt

from .errors import InvalidInput


def as_date(value, label: str = "date") -> dt.date | None:
    """None stays None; a datetime becomes its date; text must be ISO (2026-01-31)."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value).strip())
    except ValueError:
        raise InvalidInput(f"The {label} must look like 2026-01-31.") from None


def utcnow() -> dt.datetime:
    """Now in UTC as a naive datetime (the TIMESTAMP columns hold naive UTC)."""
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
