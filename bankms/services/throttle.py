"""Counters that slow down guessing and walking, kept in the `throttles` table.

A row is keyed by (kind, value): `login_user` and `login_address` count failed sign-ins per
username and per client address; `login_known` marks an address from which a user has signed
in before; `signup_address` counts sign-ups per client address and `payee_lookup` a customer's
look-ups of other customers' account numbers. Every change happens inside the caller's unit of
work, next to the caller's audit record, so a counter never moves without an audit row.

Sign-in failures back off exponentially instead of locking a user out for a long time (OWASP
Authentication Cheat Sheet, "Login Throttling"): after `after` failures the next attempt must
wait `base_s * 2 ** (failures - after)` seconds, at most `cap_s`; failures older than
`forget_s` are forgotten. Rate limits count events in a fixed window of `window_s` seconds
that starts at the window's first event.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import math

from . import ledger

LOGIN_USER = "login_user"
LOGIN_ADDRESS = "login_address"
LOGIN_KNOWN = "login_known"
SIGNUP_ADDRESS = "signup_address"
PAYEE_LOOKUP = "payee_lookup"

ADDRESS_CHARS_MAX = 64
VALUE_CHARS_MAX = 128


def utcnow() -> dt.datetime:
    """The clock of every counter (tests replace it to step through back-off windows)."""
    return ledger.utcnow()


def clean_address(address) -> str | None:
    """A client address as a plain string, or None when the caller does not know it."""
    if not isinstance(address, str) or not address.strip():
        return None
    return address.strip()[:ADDRESS_CHARS_MAX]


@dataclasses.dataclass(frozen=True)
class Backoff:
    """One kind's back-off rule: free failures, first wait, cap, and when failures are
    forgotten (all from settings)."""
    after: int
    base_s: int
    cap_s: int
    forget_s: int

    def wait_s(self, failures: int) -> int:
        """Seconds the next attempt waits after `failures` failures in a row."""
        if failures < self.after:
            return 0
        exponent = min(failures - self.after, 40)  # 2**40 s is far above any cap
        return min(self.cap_s, self.base_s * 2 ** exponent)

    def remaining_s(self, row, now: dt.datetime) -> float:
        """Seconds left to wait for a counter row (count, first_at, last_at), 0 when free."""
        if row is None:
            return 0.0
        count, _, last_at = row
        if (now - last_at).total_seconds() > self.forget_s:
            return 0.0
        left = (last_at + dt.timedelta(seconds=self.wait_s(count)) - now).total_seconds()
        return max(0.0, left)

    def current(self, row, now: dt.datetime) -> int:
        """Failures that still count (0 once forgotten)."""
        if row is None or (now - row[2]).total_seconds() > self.forget_s:
            return 0
        return row[0]


def seconds_text(seconds: float) -> int:
    """Whole seconds to tell a person, never 0 while a wait remains."""
    return max(1, math.ceil(seconds))


def read(fetchone, kind: str, value) -> tuple | None:
    """(count, first_at, last_at) of one counter, or None. `fetchone` is a unit of work's
    fetchone or a bank's read_one."""
    if value is None:
        return None
    return fetchone("SELECT count, first_at, last_at FROM throttles WHERE kind = ? AND "
                    "value = ?", [kind, str(value)[:VALUE_CHARS_MAX]])


def store(uow, kind: str, value, count: int, first_at, last_at) -> None:
    uow.execute("INSERT INTO throttles VALUES (?, ?, ?, ?, ?) ON CONFLICT (kind, value) DO "
                "UPDATE SET count = excluded.count, first_at = excluded.first_at, "
                "last_at = excluded.last_at",
                [kind, str(value)[:VALUE_CHARS_MAX], count, first_at, last_at])


def add_failure(uow, kind: str, value, rule: Backoff, now) -> int:
    """Count one more failure (forgotten ones start again at 1); returns the count."""
    row = read(uow.fetchone, kind, value)
    count = rule.current(row, now) + 1
    first_at = row[1] if row is not None and count > 1 else now
    store(uow, kind, value, count, first_at, now)
    return count


def refund(uow, kind: str, value, earlier_row) -> None:
    """Take back one failure counted up front for an attempt that then succeeded, and put
    back the time of the last real failure (`earlier_row`: the row as it was before the
    charge, or None), so a success neither counts nor prolongs a back-off."""
    last_at = earlier_row[2] if earlier_row is not None else None
    uow.execute("UPDATE throttles SET count = greatest(count - 1, 0), "
                "last_at = coalesce(?, last_at) WHERE kind = ? AND value = ?",
                [last_at, kind, str(value)[:VALUE_CHARS_MAX]])


def clear(uow, kind: str, value) -> int:
    """Forget a counter; returns the count it had."""
    row = read(uow.fetchone, kind, value)
    if row is None:
        return 0
    uow.execute("UPDATE throttles SET count = 0 WHERE kind = ? AND value = ?",
                [kind, str(value)[:VALUE_CHARS_MAX]])
    return row[0]


def take(uow, kind: str, value, *, events_max: int, window_s: int, now) -> tuple[bool, int]:
    """Count one event in a fixed window unless the window is full: (allowed, seconds until
    the window ends). A refused event is not counted."""
    row = read(uow.fetchone, kind, value)
    if row is not None and (now - row[1]).total_seconds() < window_s:
        count, first_at = row[0], row[1]
    else:
        count, first_at = 0, now
    if count >= events_max:
        left = (first_at + dt.timedelta(seconds=window_s) - now).total_seconds()
        return False, seconds_text(left)
    store(uow, kind, value, count + 1, first_at, now)
    return True, 0
