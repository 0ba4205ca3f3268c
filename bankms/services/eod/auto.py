"""Automatic end of day: the process that serves the bank closes each business day by itself.

`start(bank)` gives the Bank one `EodScheduler` and a daemon thread that calls `tick()` every
`interval_s` seconds. A tick closes every business day that has ended (businessday.
last_closable_day: today after the `eod_cutoff_time`, earlier days always), so after downtime it
catches up on its own; that is within the safety rule, which refuses only days that have not
ended. Each day is closed once (eod.close_day skips a closed date, so a manager's run at the
same time is harmless). Progress and outcome go to the audit log ("eod.auto.started",
"eod.auto.finished" or "eod.auto.failed", plus the usual "bank.end_of_day" and eod_runs rows
per day) and to `status()` for the End of day page.
The setting `eod_auto` ("true"/"false") turns it off. Tests call `tick(now)` with a moved clock.
"""
from __future__ import annotations

import datetime as dt
import json
import threading

from .. import businessday
from .run import close_days_held, one_process
from ...domain.security import Actor

ACTOR = Actor(username="auto-eod", role="system", full_name="Automatic end of day")


class _Stopped(Exception):
    """Raised between two days when the bank is closing: the days closed so far stay closed."""


class EodScheduler:
    """Closes ended business days; `tick` is the whole job, the thread only repeats it."""

    def __init__(self, bank, *, interval_s: float = 30.0, retry_after_s: float = 900.0):
        self._bank = bank
        self.interval_s = interval_s
        self.retry_after_s = retry_after_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._tick_lock = threading.Lock()
        self.running = False
        self.progress = (0, 0)
        self.last_outcome: dict | None = None
        self._failed_at: dt.datetime | None = None

    # -- the job -------------------------------------------------------------------------------
    def tick(self, now: dt.datetime | None = None):
        """Close every ended business day as of `now` (default: the bank's clock). Returns the
        EodResult, or None when it is off, nothing has ended or a failure is being waited out."""
        bank = self._bank
        now = businessday.as_utc(now if now is not None else bank.clock())
        if not businessday.auto_enabled(bank):
            return None
        if self._failed_at is not None and \
                (now - self._failed_at).total_seconds() < self.retry_after_s:
            return None
        closable = businessday.last_closable_day(bank, now)
        if bank.business_date > closable:
            return None
        if not self._tick_lock.acquire(blocking=False):
            return None  # a tick is already running (the thread and a test, say)
        try:
            # Another process serving this bank (PostgreSQL) may be closing the days: skip,
            # and find them closed at a later tick. Once held, the business date is fresh.
            with one_process(bank) as held:
                first = bank.business_date
                if not held or first > closable:
                    return None
                return self._run(now, first, closable)
        finally:
            self._tick_lock.release()

    def _run(self, now, first, closable):
        bank = self._bank
        days = (closable - first).days + 1
        self._audit("eod.auto.started", closable, {"from": first, "until": closable,
                                                   "days": days})
        self.running, self.progress = True, (0, days)

        def progress(done, total):
            self.progress = (done, total)
            if self._stop.is_set() and done < total:
                raise _Stopped(f"stopped after {done} of {total} days: the bank is closing")
        try:
            # Confirmed by design: every day closed here has ended (see the module docstring).
            result = close_days_held(bank, ACTOR, closable, progress, confirm=True, now=now)
        except Exception as exc:  # noqa: BLE001 - recorded, retried after retry_after_s
            # (_Stopped included: the next process start catches up the rest.)
            self._failed_at = now
            self.last_outcome = {"at": now, "outcome": "failed", "business_date":
                                 bank.business_date, "message": f"{type(exc).__name__}: {exc}"}
            self._audit("eod.auto.failed", closable, self.last_outcome, outcome="failed")
            return None
        finally:
            self.running = False
        self._failed_at = None
        self.last_outcome = {"at": now, "outcome": "ok", "days": len(result.days),
                             "business_date": result.business_date, "summary": str(result)}
        self._audit("eod.auto.finished", closable, self.last_outcome)
        return result

    def _audit(self, action, day, after, outcome="ok"):
        bank = self._bank
        bank.write(lambda uow: bank.audit_row(uow, ACTOR, action, "business_date",
                                              day.isoformat(), after=after, outcome=outcome))

    # -- what the page shows ---------------------------------------------------------------------
    def status(self, now: dt.datetime | None = None) -> dict:
        return status(self._bank, now, scheduler=self)

    # -- the thread ------------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="bankms-eod-auto", daemon=True)
        self._thread.start()

    def _loop(self):
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # noqa: BLE001 - the thread must outlive a bad tick
                pass
            self._stop.wait(self.interval_s)

    def stop(self, timeout_s: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout_s)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()


def start(bank, **kwargs) -> EodScheduler:
    """The bank's scheduler, started once per Bank (a second call returns the same one)."""
    with _start_lock:
        if bank.eod_scheduler is None:
            bank.eod_scheduler = EodScheduler(bank, **kwargs)
        bank.eod_scheduler.start()
        return bank.eod_scheduler


_start_lock = threading.Lock()


def status(bank, now: dt.datetime | None = None, *, scheduler=None) -> dict:
    """What the End of day page shows: business date, calendar date and time in the bank's
    zone, the last closable day, the cut-off, whether automatic end of day is on and running,
    when it runs next (aware, bank zone; None when off) and its last outcome."""
    now = businessday.as_utc(now if now is not None else bank.clock())
    scheduler = scheduler or bank.eod_scheduler
    local = businessday.local_now(bank, now)
    closable = businessday.last_closable_day(bank, now)
    enabled = businessday.auto_enabled(bank)
    business_date = bank.business_date
    if not enabled:
        next_run = None
    elif business_date <= closable:
        next_run = local  # due now: the next tick closes it
    else:
        next_run = businessday.closes_at(bank, business_date)
    return {
        "business_date": business_date, "calendar_date": local.date(), "local_time": local,
        "time_zone": businessday.zone(bank).key, "cutoff": businessday.cutoff(bank),
        "last_closable_day": closable, "days_behind": max((closable - business_date).days + 1, 0),
        "auto": enabled, "scheduler_alive": bool(scheduler and scheduler.alive),
        "running": bool(scheduler and scheduler.running),
        "progress": scheduler.progress if scheduler else (0, 0),
        "next_run": next_run,
        "last_outcome": last_outcome(bank),
        "catch_up_days_max": businessday.catch_up_days_max(bank),
    }


def last_outcome(bank) -> dict | None:
    """The latest automatic run's end as the audit log recorded it (it outlives a restart):
    {"ts", "outcome", "business_date", "after"} or None."""
    row = bank.read_one(
        "SELECT ts, outcome, entity_id, after FROM audit_log WHERE action IN "
        "('eod.auto.finished', 'eod.auto.failed') ORDER BY id DESC LIMIT 1")
    if row is None:
        return None
    return {"ts": row[0], "outcome": row[1], "business_date": row[2],
            "after": json.loads(row[3]) if row[3] else {}}
