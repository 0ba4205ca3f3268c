"""Idempotency keys: the checks on keys callers give and the reserved namespace of the keys
bankms makes itself. A leaf module (errors only) shared by payments, once, accounts, loans,
charges, standing orders and term deposits, so none of them imports payments for it.
"""
from __future__ import annotations

import re
import uuid

from .errors import InvalidInput

KEY_CHARS_MAX = 128


# Keys that bankms makes up itself start with this prefix, which callers may not use, so nobody
# can take such a key first (a customer posting under "sys:reversal-of-7" would otherwise make
# the manager's reversal of transaction 7 fail as a conflict). Every key bankms makes comes
# from system_key; every key a caller gives goes through clean_key (or once.clean_key).
RESERVED_KEY_PREFIX = "sys:"


def system_key(*parts) -> str:
    """An idempotency key of bankms's own, in the reserved namespace:
    system_key("loan", 5001, "disbursement") -> "sys:loan-5001-disbursement"."""
    return RESERVED_KEY_PREFIX + "-".join(str(part) for part in parts)


def refuse_reserved(key: str) -> None:
    if key.startswith(RESERVED_KEY_PREFIX):
        raise InvalidInput(f"Idempotency keys starting with '{RESERVED_KEY_PREFIX}' are reserved.")


# C0 controls, DEL and C1 controls; one regular-expression search instead of a Python loop
# over the key's characters (every payment passes here).
_CONTROL_CHARACTER = re.compile("[\x00-\x1f\x7f-\x9f]")


def refuse_control_characters(key: str) -> None:
    """Keys are stored in the hash-chained transactions (chain.py), whose canonical content
    separates values with U+001F: no control character may be part of one."""
    if _CONTROL_CHARACTER.search(key):
        raise InvalidInput("An idempotency key may not hold control characters.")


def clean_key(key, *, reserved_ok=False) -> str:
    if key is None:
        return uuid.uuid4().hex
    if not isinstance(key, str) or not key.strip() or len(key) > KEY_CHARS_MAX:
        raise InvalidInput(f"An idempotency key is text of 1 to {KEY_CHARS_MAX} characters.")
    refuse_control_characters(key.strip())
    if not reserved_ok:
        refuse_reserved(key.strip())
    return key.strip()
