"""The one parser for ids that people type or pages pass on: customer, loan, approval request
and transaction ids.

An id is a small positive whole number: a Python int (not a bool), or text of ASCII digits
only, nothing around them. Everything else (40-digit numbers, "1e3", " 12 ", "-5", "١٢",
floats) is refused with InvalidInput before it reaches SQL, where it would otherwise raise a
database error (BIGINT overflow) or match something unintended.
"""
from __future__ import annotations

import numbers
import re

from .errors import InvalidInput

# Far above any id the bank hands out (sequences start near 1 and grow by one), far below the
# BIGINT range.
ID_DIGITS_MAX = 15
ID_MAX = 10 ** ID_DIGITS_MAX - 1
_DIGITS = re.compile(r"[0-9]{1,%d}" % ID_DIGITS_MAX)


def parse_id(value, label: str = "id") -> int:
    """The id as an int in 1..ID_MAX, or InvalidInput naming `label` ("customer id")."""
    if isinstance(value, bool):
        raise InvalidInput(f"A {label} is a whole number.")
    if isinstance(value, numbers.Integral):  # int, and numpy integers from DataFrames
        number = int(value)
    elif isinstance(value, str) and _DIGITS.fullmatch(value):
        number = int(value)
    else:
        shown = value if isinstance(value, str) and len(value) <= 20 else None
        raise InvalidInput(f"'{shown}' is not a {label}." if shown is not None else
                           f"That is not a {label}: use digits only, at most "
                           f"{ID_DIGITS_MAX} of them.")
    if not 1 <= number <= ID_MAX:
        raise InvalidInput(f"A {label} is a whole number from 1 to {ID_MAX}.")
    return number
