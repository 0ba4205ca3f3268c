"""The idempotency key of each form a signed-in browser has open, kept in the `form_keys` table.

A form instance posts with one key until it succeeded (the ledger and once.py turn a repeat
into the first answer). Streamlit keeps widget state in the memory of one process, so a key
kept there is lost when the browser's next click lands on another app process (a failover
behind the load balancer): the repeated click would then post again under a fresh key. Here
the key is keyed by the server-side session (users.Auth.start_session) and the form's name,
so every process serving that session hands out the same key until the page resets it.

Keys are plumbing of the sign-in, like a session's last_seen_at: making or resetting one is not
audited (it changes nothing of the bank's; the action posted with the key is audited). They go
when their session ends (Auth.end_session, a revoke of all of a user's sessions) and rows of
sessions older than the absolute session timeout, or of sessions no longer there, are swept when
a new key is made.
"""
from __future__ import annotations

import datetime as dt
import secrets

from ..domain.errors import AuthenticationError, InvalidInput
from .ledger import utcnow

FORM_CHARS_MAX = 64


def _clean(sid, form) -> tuple[str, str]:
    if not isinstance(sid, str) or not sid:
        raise AuthenticationError("This session has ended; please sign in again.")
    if not isinstance(form, str) or not form.strip() or len(form) > FORM_CHARS_MAX:
        raise InvalidInput(f"A form name is text of 1 to {FORM_CHARS_MAX} characters.")
    return sid, form.strip()


def forget_in(uow, sid: str) -> None:
    """Drop every form key of one session, inside the caller's unit of work (its end)."""
    uow.execute("DELETE FROM form_keys WHERE session_id = ?", [sid])


def forget_user_in(uow, username: str) -> None:
    """Drop the form keys of every session of one user (all of them revoked at once)."""
    uow.execute("DELETE FROM form_keys WHERE session_id IN "
                "(SELECT id FROM sessions WHERE username = ?)", [username])


def forget_all_in(uow) -> None:
    """Drop every form key (every session ended at once: a restored copy of the bank)."""
    uow.execute("DELETE FROM form_keys")


class FormKeys:
    def __init__(self, bank):
        self._bank = bank

    def key(self, sid: str, form: str) -> str:
        """The key of the form `form` open in session `sid`: the same in every process until
        reset. AuthenticationError when the session is unknown or ended."""
        sid, form = _clean(sid, form)
        found = self._bank.read_one("SELECT key FROM form_keys WHERE session_id = ? AND form = ?",
                                    [sid, form])
        if found is not None:
            return found[0]
        now = utcnow()
        oldest = now - dt.timedelta(
            seconds=self._bank.settings.get_int("session_absolute_timeout_s", 43200))
        proposed = secrets.token_hex(16)

        def insert(uow):
            # Two processes serving the same session at once make one key: the second insert
            # does nothing and both read the row that won.
            uow.execute("INSERT INTO form_keys (session_id, form, key, created_at) "
                        "SELECT ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM sessions WHERE id = ? "
                        "AND revoked_at IS NULL) ON CONFLICT (session_id, form) DO NOTHING",
                        [sid, form, proposed, now, sid])
            # Keys of sessions past the absolute timeout, and keys whose session row is gone
            # (NOT EXISTS rather than NOT IN: a NULL id would make NOT IN match nothing).
            uow.execute("DELETE FROM form_keys WHERE session_id IN (SELECT id FROM sessions "
                        "WHERE created_at < ?) OR NOT EXISTS (SELECT 1 FROM sessions "
                        "WHERE sessions.id = form_keys.session_id)", [oldest])
            row = uow.fetchone("SELECT key FROM form_keys WHERE session_id = ? AND form = ?",
                               [sid, form])
            return row[0] if row else None
        key = self._bank.write(insert)
        if key is None:
            raise AuthenticationError("This session has ended; please sign in again.")
        return key

    def reset(self, sid: str, form: str) -> None:
        """Forget the form's key (it succeeded): the next key() makes a new one."""
        sid, form = _clean(sid, form)
        if self._bank.read_one("SELECT 1 FROM form_keys WHERE session_id = ? AND form = ?",
                               [sid, form]) is None:
            return

        def forget(uow):
            uow.execute("DELETE FROM form_keys WHERE session_id = ? AND form = ?", [sid, form])
        self._bank.write(forget)
