"""Idempotency for forms that do not move money (open an account, onboard a customer).

Money movements are made idempotent by the ledger's own `idempotency_keys`. Other forms pass
their form instance's key here: inside the same unit of work as the change, `recall` answers a
repeat with the first result, and `remember` stores the result with the change, so a double
click, a rerun or a refresh does the work once.

A caller that passes `request` (what the key stands for) has the key refused with another
request (IdempotencyConflict), as the ledger refuses a key with other content. Form keys are
kept per signed-in session (form_keys.py), which every tab of a browser shares: without this,
a second tab opening an account for another customer under the same key was answered with the
first tab's account, and its own request was silently dropped. The request's SHA-256 is stored
inside the result's JSON, so rows written before it stay readable.
"""
from __future__ import annotations

import hashlib
import json

from ..domain.errors import IdempotencyConflict, InvalidInput
from ..domain.keys import KEY_CHARS_MAX, refuse_control_characters, refuse_reserved
from .ledger import utcnow

MISSING = object()


def clean_key(key):
    """None (no idempotency asked for) or the stripped key."""
    if key is None:
        return None
    if not isinstance(key, str) or not key.strip() or len(key) > KEY_CHARS_MAX:
        raise InvalidInput(f"An idempotency key is text of 1 to {KEY_CHARS_MAX} characters.")
    refuse_control_characters(key.strip())
    refuse_reserved(key.strip())
    return key.strip()


# The result's wrapper when a request is remembered with it (module docstring); names no result
# of ours uses.
_WRAPPED = ("_once_result", "_once_request_sha256")
_CONFLICT = "This request key was already used for a different request; nothing was changed."


def request_hash(request) -> str:
    """SHA-256 (hex) of a request's canonical JSON (sorted keys; dates and Decimals as text)."""
    return hashlib.sha256(json.dumps(request, sort_keys=True, default=str).encode()).hexdigest()


def recall(uow, key, action, actor, request=None):
    """The stored result of an earlier use of this key, or MISSING. IdempotencyConflict when
    the key was used for another action, by another actor, or (both calls passing `request`)
    for another request."""
    if key is None:
        return MISSING
    row = uow.fetchone("SELECT action, actor, result FROM request_keys WHERE key = ?", [key])
    if row is None:
        return MISSING
    if row[0] != action or row[1] != actor.username:
        raise IdempotencyConflict(_CONFLICT)
    stored = json.loads(row[2])
    if isinstance(stored, dict) and set(stored) == set(_WRAPPED):
        if request is not None and stored[_WRAPPED[1]] != request_hash(request):
            raise IdempotencyConflict(_CONFLICT)
        return stored[_WRAPPED[0]]
    return stored


def remember(uow, key, action, actor, result, request=None) -> None:
    if key is not None:
        if request is not None:
            result = {_WRAPPED[0]: result, _WRAPPED[1]: request_hash(request)}
        uow.execute("INSERT INTO request_keys VALUES (?, ?, ?, ?, ?)",
                    [key, action, actor.username, json.dumps(result), utcnow()])
