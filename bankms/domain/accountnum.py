"""Account numbers with ISO 7064 mod 97-10 check digits (the IBAN scheme).

A customer account number is twelve digits: the prefix 40, an eight-digit body and two check
digits chosen so that the whole number leaves remainder 1 when divided by 97. Any single mistyped
digit and almost every swap of two neighbours breaks that, so a typo is refused at the door
instead of reaching somebody else's account.

New accounts get a random body (`random_number`, from `secrets`), so knowing one number tells
nothing about the next: nobody can walk the numbers to find other customers' accounts. Numbers
made from a sequence (`make`, used by older banks and the bulk demo) stay valid.
"""
from __future__ import annotations

import secrets

from .errors import InvalidAccountNumber

BODY_DIGITS = 8

PREFIX = "40"
LENGTH = 12


def check_digits(body: str) -> str:
    return f"{98 - (int(body) * 100) % 97:02d}"


def make(sequence: int) -> str:
    body = f"{PREFIX}{sequence:08d}"
    return body + check_digits(body)


def random_number() -> str:
    """A fresh random account number (the caller retries if it is taken)."""
    return make(secrets.randbelow(10 ** BODY_DIGITS))


def normalize(text) -> str:
    """Validate a typed account number and return its canonical twelve digits."""
    if not isinstance(text, str):
        raise InvalidAccountNumber("An account number must be given as text.")
    digits = text.strip().replace(" ", "").replace("-", "")
    if not digits:
        raise InvalidAccountNumber("Please enter an account number.")
    if not digits.isdigit() or not digits.isascii():
        raise InvalidAccountNumber(f"'{text}' is not an account number: use digits only.")
    if len(digits) != LENGTH:
        raise InvalidAccountNumber(
            f"An account number has {LENGTH} digits; '{text}' has {len(digits)}."
        )
    if int(digits) % 97 != 1:
        raise InvalidAccountNumber(
            f"'{text}' is not a valid account number (its check digits do not match). "
            "Please check for a typo."
        )
    return digits


def is_valid(text) -> bool:
    try:
        normalize(text)
        return True
    except InvalidAccountNumber:
        return False


def pretty(number: str) -> str:
    """Group twelve digits as '4000 0001 2345' for reading aloud and on paper."""
    return " ".join(number[i:i + 4] for i in range(0, len(number), 4))
