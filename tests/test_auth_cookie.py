"""The sign-in cookie: key handling, signed tokens bound to server-side sessions, navigation
roles, and the password policy rule the sign-in widget needs."""
from __future__ import annotations

import datetime as dt
import os
import stat

import jwt
import pytest

from bankms.services import tokens
from bankms.domain.errors import PasswordPolicyError, WeakCookieKey
from bankms.services.ledger import utcnow
from bankms.services.users import check_password_policy
from conftest import employee, login_for, make_customer

GOOD_KEY = "0123456789abcdef" * 8


@pytest.mark.parametrize("key, ok", [
    (GOOD_KEY, True),
    ("some_key", False),
    ("SOME_KEY", False),
    ("", False),
    ("   ", False),
    (None, False),
    ("a" * 200, False),                       # long but not random
    ("0123456789abcdef" * 3, False),          # 48 characters: too short
])
def test_check_key(key, ok):
    if ok:
        assert tokens.check_key(key) == key
    else:
        with pytest.raises(WeakCookieKey):
            tokens.check_key(key)


def test_key_file_is_made_once_private_and_random(tmp_path):
    path = str(tmp_path / "sub" / "cookie.key")
    first = tokens.load_or_create_key(path)
    assert tokens.load_or_create_key(path) == first
    assert len(bytes.fromhex(first)) >= 64
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    other = tokens.load_or_create_key(str(tmp_path / "other.key"))
    assert other != first


@pytest.mark.parametrize("content, mode, ok", [
    ("some_key\n", 0o600, False),
    (GOOD_KEY, 0o644, False),
    (GOOD_KEY, 0o600, True),
])
def test_existing_key_file(tmp_path, content, mode, ok):
    path = tmp_path / "cookie.key"
    path.write_text(content)
    os.chmod(path, mode)
    if ok:
        assert tokens.load_or_create_key(str(path)) == GOOD_KEY
    else:
        with pytest.raises(WeakCookieKey):
            tokens.load_or_create_key(str(path))


def test_env_key_is_checked(monkeypatch, tmp_path):
    monkeypatch.setenv("BANKMS_COOKIE_KEY", "some_key")
    with pytest.raises(WeakCookieKey):
        tokens.cookie_key(str(tmp_path / "bank.duckdb"))
    monkeypatch.setenv("BANKMS_COOKIE_KEY", GOOD_KEY)
    assert tokens.cookie_key(str(tmp_path / "bank.duckdb")) == GOOD_KEY


def _forge(key, **payload):
    return jwt.encode(payload, key, algorithm="HS256")


def test_session_from_token_cases(bank):
    teller = employee(bank, "teller", username="tina")
    sid = bank.auth.start_session(teller)
    good = bank.auth.issue_token(sid, GOOD_KEY)
    future = int((dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)).timestamp())
    past = int((dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=5)).timestamp())
    other = bank.auth.start_session(employee(bank, "manager", username="mona"))
    cases = [
        ("our key, live session", good, True),
        ("library default key", _forge("some_key", sid=sid, username="tina", exp=future), False),
        ("another random key", _forge("f" * 64 + "e" * 64, sid=sid, username="tina",
                                      exp=future), False),
        ("expired", _forge(GOOD_KEY, sid=sid, username="tina", exp=past), False),
        ("no expiry", _forge(GOOD_KEY, sid=sid, username="tina"), False),
        ("no session id (the library's own payload)",
         _forge(GOOD_KEY, username="tina", exp_date=future, exp=future), False),
        ("unknown session", _forge(GOOD_KEY, sid="nope", username="tina", exp=future), False),
        ("someone else's session", _forge(GOOD_KEY, sid=other, username="tina", exp=future),
         False),
        ("not a token", "garbage", False),
        ("alg none", jwt.encode({"sid": sid, "username": "tina", "exp": future}, None,
                                algorithm="none"), False),
    ]
    for label, token, ok in cases:
        result = bank.auth.session_from_token(token, GOOD_KEY)
        assert (result is not None) == ok, label
        if ok:
            assert result[0] == sid and result[1].username == "tina"
    refused = bank.read_one("SELECT count(*) FROM audit_log WHERE action = 'auth.cookie' "
                            "AND outcome = 'refused'")[0]
    assert refused == len([c for c in cases if not c[2]])


def test_token_dies_with_its_session(bank):
    teller = employee(bank, "teller", username="tom")
    sid = bank.auth.start_session(teller)
    token = bank.auth.issue_token(sid, GOOD_KEY)
    assert bank.auth.session_from_token(token, GOOD_KEY) is not None
    bank.auth.end_session(sid)
    assert bank.auth.session_from_token(token, GOOD_KEY) is None
    logouts = bank.read_one("SELECT count(*) FROM audit_log WHERE action = 'auth.logout'")[0]
    bank.auth.end_session(sid)  # a second logout changes and audits nothing
    assert bank.read_one("SELECT count(*) FROM audit_log WHERE action = 'auth.logout'")[0] \
        == logouts


def test_token_dies_at_password_change(bank):
    teller = employee(bank, "teller", username="tess", password="a long test password 1")
    token = bank.auth.issue_token(bank.auth.start_session(teller), GOOD_KEY)
    bank.users.change_password(teller, "a long test password 1", "another long password 2")
    assert bank.auth.session_from_token(token, GOOD_KEY) is None


def test_token_dies_at_idle_timeout(bank):
    teller = employee(bank, "teller", username="ted")
    sid = bank.auth.start_session(teller)
    token = bank.auth.issue_token(sid, GOOD_KEY)
    stale = utcnow() - dt.timedelta(seconds=901)
    bank.write(lambda uow: uow.execute("UPDATE sessions SET last_seen_at = ? WHERE id = ?",
                                       [stale, sid]))
    assert bank.auth.session_from_token(token, GOOD_KEY) is None


def test_cookie_expires_with_absolute_timeout(bank):
    teller = employee(bank, "teller", username="tia")
    sid = bank.auth.start_session(teller)
    payload = tokens.read(GOOD_KEY, bank.auth.issue_token(sid, GOOD_KEY))
    created = bank.read_one("SELECT created_at FROM sessions WHERE id = ?", [sid])[0]
    expected = created.replace(tzinfo=dt.timezone.utc) + dt.timedelta(seconds=43200)
    assert abs(payload["exp"] - expected.timestamp()) < 2


def test_navigation_role(bank):
    system = bank.system_actor()
    manager = employee(bank, "manager", username="max")
    active = login_for(bank, make_customer(bank, name="Ann Active"), "ann")
    bank.customers.register(
        full_name="Pat Pending", email="pat@example.com", phone="+1 555 0101",
        date_of_birth="1991-02-03", national_id="REG0001", address="2 Side Street",
        username="pat", password="a long test password 1")
    pending_id = bank.users.get("pat")["customer_id"]
    pending = bank.auth.login("pat", "a long test password 1")
    bank.users.reset_password(system, "max", "a fresh temporary pass")
    cases = [
        (None, "anonymous"),
        (active, "customer"),
        (pending, "pending"),
        (manager, "must_change_password"),
    ]
    for actor, expected in cases:
        assert bank.auth.navigation_role(actor) == expected
    bank.customers.verify(system, pending_id)
    assert bank.auth.navigation_role(pending) == "customer"


@pytest.mark.parametrize("password, ok", [
    ("a long test password", True),
    (" a long test password", False),
    ("a long test password ", False),
])
def test_password_may_not_have_outer_spaces(password, ok):
    if ok:
        check_password_policy(password, "someone")
    else:
        with pytest.raises(PasswordPolicyError):
            check_password_policy(password, "someone")


def test_users_backing_off_are_listed(bank):
    manager = employee(bank, "manager", username="meg")
    employee(bank, "teller", username="lou")
    bank.settings.set(bank.system_actor(), "login_backoff_user_after_failures", "5")
    for _ in range(5):
        with pytest.raises(Exception):
            bank.auth.login("lou", "wrong password here")
    assert list(bank.users.locked(manager)["username"]) == ["lou"]
    audited = bank.read("SELECT after FROM audit_log WHERE entity_id = 'lou' "
                        "AND action = 'auth.login' AND outcome = 'refused' ORDER BY id")
    assert '"user_failures": 5' in audited[-1][0] and '"retry_after_s": 1' in audited[-1][0]
    bank.users.unlock(manager, "lou")
    assert bank.users.locked(manager).empty


@pytest.mark.parametrize("old, new, error", [
    ("a long test password 1", "another long password 2", None),
    ("not the current one!!", "another long password 2", "current password is wrong"),
    ("a long test password 1", "a long test password 1", "differ"),
    ("a long test password 1", "short", "at least 12"),
])
def test_change_password_checks_the_current_one(bank, old, new, error):
    teller = employee(bank, "teller", username="tad", password="a long test password 1")
    if error is None:
        bank.users.change_password(teller, old, new)
        assert bank.auth.login("tad", new).username == "tad"
    else:
        with pytest.raises(Exception, match=error):
            bank.users.change_password(teller, old, new)
        assert bank.auth.login("tad", "a long test password 1").username == "tad"


# (case, bcrypt checks): a sign-in refused while backing off checks no password at all,
# for a known and an unknown username alike.
@pytest.mark.parametrize("case, checks", [("unknown user", 1), ("wrong password", 1),
                                          ("inactive user", 1), ("backing off user", 0),
                                          ("backing off unknown user", 0)])
def test_every_failed_sign_in_checks_one_bcrypt_hash(bank, monkeypatch, case, checks):
    """Unknown and known usernames fail through the same work (one bcrypt check of equal
    cost and one audit write), so timing does not tell which usernames exist. The timings
    themselves are measured by benchmarks/login_timing.py."""
    import bcrypt

    system = bank.system_actor()
    employee(bank, "teller", username="tam")
    bank.settings.set(system, "login_backoff_user_after_failures", "5")
    username = "nobody" if "unknown" in case else "tam"
    if case == "inactive user":
        bank.users.deactivate(system, "tam")
    if case.startswith("backing off"):
        for _ in range(5):
            with pytest.raises(Exception):
                bank.auth.login(username, "wrong password here")
    calls = []
    real = bcrypt.checkpw
    monkeypatch.setattr(bcrypt, "checkpw", lambda pw, h: calls.append(h) or real(pw, h))
    password = "a long test password 1" if case in ("inactive user", "backing off user") \
        else "wrong password here"
    with pytest.raises(Exception) as info:
        bank.auth.login(username, password)
    assert str(info.value).startswith("The username or password is wrong.")
    assert len(calls) == checks
    assert all(h[:7] == f"$2b${bank.bcrypt_rounds:02d}$".encode() for h in calls)


@pytest.mark.parametrize("settings, idle_s, age_s, alive", [
    ({}, 890, 890, True),
    ({}, 901, 901, False),                                  # idle 15 minutes by default
    ({}, 10, 43201, False),                                 # absolute 12 hours by default
    ({}, 10, 43100, True),
    ({"session_idle_timeout_s": 60}, 61, 61, False),        # both are settings
    ({"session_absolute_timeout_s": 3600}, 10, 3601, False),
])
def test_session_timeouts(bank, settings, idle_s, age_s, alive):
    system = bank.system_actor()
    for key, value in settings.items():
        bank.settings.set(system, key, value)
    sid = bank.auth.start_session(employee(bank, "teller"))
    now = utcnow()
    bank.write(lambda uow: uow.execute(
        "UPDATE sessions SET created_at = ?, last_seen_at = ? WHERE id = ?",
        [now - dt.timedelta(seconds=age_s), now - dt.timedelta(seconds=idle_s), sid]))
    assert (bank.auth.check_session(sid) is not None) == alive
    if not alive:
        reason = bank.read_one("SELECT after FROM audit_log WHERE action = 'auth.logout' "
                               "ORDER BY id DESC LIMIT 1")[0]
        assert "timeout" in reason
