"""Checks of user input shared by the services: interest rates, whole numbers within bounds,
choices from a list, yes/no flags, product codes, memos, transaction ids and free text
(collapsed whitespace, bounded length). Pure functions raising InvalidInput; a leaf below every service, so that deposit
products, charges and loans share them without importing each other.
"""
from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from .errors import InvalidInput
from .ids import parse_id

MEMO_CHARS_MAX = 140

# A product's code: a lower-case letter, then 1-29 lower-case letters, digits or underscores.
PRODUCT_CODE = re.compile(r"^[a-z][a-z0-9_]{1,29}$")


def clean_rate(value) -> Decimal:
    if isinstance(value, float) or isinstance(value, bool):
        raise InvalidInput("Give the interest rate as text or Decimal, for example '2.50'.")
    try:
        rate = Decimal(str(value).strip().rstrip("%"))
    except InvalidOperation:
        raise InvalidInput(f"'{value}' is not an interest rate.") from None
    if not rate.is_finite() or rate < 0 or rate > 100:
        raise InvalidInput("The interest rate must be between 0 and 100 percent.")
    if rate != rate.quantize(Decimal("0.0001")):
        raise InvalidInput("The interest rate may have at most four decimals.")
    return rate


def whole(value, label, lowest, highest) -> int:
    if isinstance(value, (bool, float)):
        raise InvalidInput(f"Give the {label} as a whole number.")
    try:
        number = int(str(value).strip())
    except ValueError:
        raise InvalidInput(f"'{value}' is not a whole number ({label}).") from None
    if not lowest <= number <= highest:
        raise InvalidInput(f"The {label} must be between {lowest:,} and {highest:,}.")
    return number


def choice(value, choices, label) -> str:
    text = str(value).strip().lower().replace(" ", "_") if value is not None else ""
    if text not in choices:
        raise InvalidInput(f"Unknown {label} '{value}'; choose one of {', '.join(choices)}.")
    return text


def yes_no(value, label) -> bool:
    if not isinstance(value, bool):
        raise InvalidInput(f"Give {label} as yes or no (True or False).")
    return value


def clean_text(value, label, chars_min, chars_max):
    if not isinstance(value, str) or len(" ".join(value.split())) < chars_min:
        raise InvalidInput(f"Please give the {label} ({chars_min} characters or more).")
    value = " ".join(value.split())
    if len(value) > chars_max:
        raise InvalidInput(f"The {label} may have at most {chars_max} characters.")
    return value


def clean_memo(memo) -> str:
    if memo is None:
        return ""
    if not isinstance(memo, str):
        raise InvalidInput("A memo must be text.")
    memo = " ".join(memo.split())
    if len(memo) > MEMO_CHARS_MAX:
        raise InvalidInput(f"A memo may have at most {MEMO_CHARS_MAX} characters.")
    return memo


def clean_transaction_id(value) -> int:
    return parse_id(value, "transaction id")
