"""The idempotency key of a form in flight lives in the database (issue 14, step G): every app
process serving a session hands out the same key until the page resets it, so a click that
lands on another process after a failover posts nothing twice (services/form_keys.py).

On PostgreSQL a second Bank on the same database stands for a second app process; on DuckDB
(one process owns the file) the same bank answers for both.
"""
from __future__ import annotations

import contextlib

import pytest

import bankms
from bankms.domain.errors import AuthenticationError
from conftest import employee

pytestmark = pytest.mark.engines


@contextlib.contextmanager
def other_process(bank, engine):
    if engine.name != "pg":
        yield bank
        return
    other = bankms.open_bank(engine.url, bcrypt_rounds=4)
    try:
        yield other
    finally:
        other.close()


def test_a_form_keeps_its_key_in_every_process_until_reset(bank, engine):
    teller = employee(bank, "teller")
    sid = bank.auth.start_session(teller)
    other_sid = bank.auth.start_session(teller)
    with other_process(bank, engine) as other:
        key = bank.form_keys.key(sid, "transfer")
        assert other.form_keys.key(sid, "transfer") == key
        assert bank.form_keys.key(sid, "transfer") == key
        assert other.form_keys.key(sid, "deposit") != key
        assert other.form_keys.key(other_sid, "transfer") != key

        other.form_keys.reset(sid, "transfer")
        renewed = bank.form_keys.key(sid, "transfer")
        assert renewed != key
        assert other.form_keys.key(sid, "transfer") == renewed


def test_keys_go_with_their_session(bank):
    teller = employee(bank, "teller")
    sid = bank.auth.start_session(teller)
    bank.form_keys.key(sid, "transfer")
    bank.auth.end_session(sid)
    assert bank.read("SELECT count(*) FROM form_keys WHERE session_id = ?", [sid]) == [(0,)]
    with pytest.raises(AuthenticationError):
        bank.form_keys.key(sid, "transfer")
    with pytest.raises(AuthenticationError):
        bank.form_keys.key("no such session", "transfer")
    assert bank.read("SELECT count(*) FROM form_keys") == [(0,)]


@pytest.mark.parametrize("orphan", ["a session row deleted", "never a session"])
def test_making_a_key_sweeps_keys_whose_session_is_gone(bank, orphan):
    teller = employee(bank, "teller")
    gone = bank.auth.start_session(teller)
    bank.form_keys.key(gone, "transfer")
    if orphan == "a session row deleted":
        bank.write(lambda uow: uow.execute("DELETE FROM sessions WHERE id = ?", [gone]))
    else:
        gone = "no-such-session"
        bank.write(lambda uow: uow.execute(
            "INSERT INTO form_keys (session_id, form, key, created_at) "
            "SELECT ?, 'transfer', 'k', created_at FROM sessions LIMIT 1", [gone]))
    assert bank.read("SELECT count(*) FROM form_keys WHERE session_id = ?", [gone]) == [(1,)]
    live = bank.auth.start_session(teller)
    bank.form_keys.key(live, "deposit")
    assert bank.read("SELECT count(*) FROM form_keys WHERE session_id = ?", [gone]) == [(0,)]
    assert bank.read("SELECT count(*) FROM form_keys WHERE session_id = ?", [live]) == [(1,)]
