"""The sign-in cookie: its secret key and the signed token that names a server-side session.

The token is a JWT (HS256) whose payload carries the session id. A token is worth nothing on
its own: `Auth.session_from_token` also asks the `sessions` table, so logout, a password change
or a timeout revoke a copied cookie for real. The key is at least 64 random bytes, made on first
start and kept in a file outside git (mode 0600); known weak keys such as the library default
`some_key` are refused so that nobody can forge a cookie with a key printed in a tutorial.
"""
from __future__ import annotations

import datetime as dt
import os
import secrets

import jwt

from ..store import files
from ..domain.errors import WeakCookieKey

KEY_BYTES_MIN = 64
# Keys that appear in documentation, examples and tutorials; anyone can sign with them.
KNOWN_WEAK_KEYS = frozenset({
    "some_key", "some_signature_key", "random_signature_key", "abcdef", "secret", "secret_key",
    "key", "changeme", "change_me", "password", "streamlit", "cookie_key", "signature_key",
})
ALGORITHM = "HS256"


def check_key(key) -> str:
    """The key if it is strong enough; WeakCookieKey otherwise (before the app serves anyone)."""
    if not isinstance(key, str) or not key.strip():
        raise WeakCookieKey("The cookie key is empty.")
    key = key.strip()
    if key.lower() in KNOWN_WEAK_KEYS:
        raise WeakCookieKey("The cookie key is a well-known example key; refusing to start. "
                            "Delete it and let the app make a random one.")
    # A hex key of 64 random bytes has 128 characters; anything shorter than 64 characters
    # cannot carry 64 bytes of entropy in any of the usual text encodings.
    if len(key) < KEY_BYTES_MIN:
        raise WeakCookieKey(f"The cookie key is too short: it needs at least {KEY_BYTES_MIN} "
                            "random bytes.")
    if len(set(key)) < 8:
        raise WeakCookieKey("The cookie key is not random enough.")
    return key


def key_path_for(db_path: str) -> str:
    """Where the key lives by default: beside the database file (data/ is gitignored)."""
    return os.path.join(files.data_folder(db_path), "cookie.key")


def load_or_create_key(path: str) -> str:
    """Read the key file, or create it with 64 random bytes (hex) readable by the owner only."""
    files.create_private_file(path, (secrets.token_hex(KEY_BYTES_MIN) + "\n").encode())
    mode = files.open_to_others(path)
    if mode is not None:
        raise WeakCookieKey(f"The cookie key file {path} is readable by other users "
                            f"(mode {mode:o}); run: chmod 600 {path}")
    with open(path) as handle:
        return check_key(handle.read())


def cookie_key(db_path: str) -> str:
    """The app's key: $BANKMS_COOKIE_KEY if set (checked like a file key), else the key file
    ($BANKMS_COOKIE_KEY_FILE or cookie.key beside the database), made on first start."""
    env_key = os.environ.get("BANKMS_COOKIE_KEY")
    if env_key is not None:
        return check_key(env_key)
    return load_or_create_key(os.environ.get("BANKMS_COOKIE_KEY_FILE") or key_path_for(db_path))


def issue(key: str, *, sid: str, username: str, expires_at: dt.datetime) -> str:
    """A signed token naming a session; `exp_date` keeps streamlit-authenticator's field."""
    exp = int(expires_at.replace(tzinfo=dt.timezone.utc).timestamp())
    return jwt.encode({"sid": sid, "username": username, "exp": exp, "exp_date": exp},
                      check_key(key), algorithm=ALGORITHM)


def inspect(key: str, token) -> tuple[dict | None, str]:
    """(payload, "ok") for a token signed with our key and not expired, else (None, reason)."""
    if not isinstance(token, str) or not token or len(token) > 4096:
        return None, "malformed"
    try:
        payload = jwt.decode(token, key, algorithms=[ALGORITHM],
                             options={"require": ["exp", "sid", "username"]})
    except jwt.ExpiredSignatureError:
        return None, "expired"
    except jwt.InvalidSignatureError:
        return None, "bad signature"
    except jwt.InvalidTokenError:
        return None, "malformed"
    if not isinstance(payload.get("sid"), str) or not isinstance(payload.get("username"), str):
        return None, "malformed"
    return payload, "ok"


def read(key: str, token) -> dict | None:
    """The payload of a token signed with our key and not expired, else None."""
    return inspect(key, token)[0]
