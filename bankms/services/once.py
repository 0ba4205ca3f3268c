"""Idempotency for forms that do not move money (open an account, onboard a customer).

Money movements are made idempotent by the ledger's own `idempotency_keys`. Other forms pass
their form instance's key here: inside the same unit of work as the change, `recall` answers a
repeat with the first result, and `remember` stores the result with the change, so a double
click, a rerun or a refresh does the work once.
"""
from __future__ import annotations

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


def recall(uow, key, action, actor):
    """The stored result of an earlier use of this key, or MISSING."""
    if key is None:
        return MISSING
    row = uow.fetchone("SELECT action, actor, result FROM request_keys WHERE key = ?", [key])
    if row is None:
        return MISSING
    if row[0] != action or row[1] != actor.username:
        raise IdempotencyConflict("This request key was already used for a different request; "
                                  "nothing was changed.")
    return json.loads(row[2])


def remember(uow, key, action, actor, result) -> None:
    if key is not None:
        uow.execute("INSERT INTO request_keys VALUES (?, ?, ?, ?, ?)",
                    [key, action, actor.username, json.dumps(result), utcnow()])
