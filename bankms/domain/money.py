"""The one doorway for money: user text and Decimals become integer cents here, and back.

Nothing else in bankms turns outside values into amounts. Floats are refused because a binary
float cannot hold most decimal amounts exactly; more than two decimals are refused rather than
rounded, because silently rounding a typed amount moves money nobody asked to move.
"""
from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from .errors import InvalidAmount

# One hundred billion currency units: far above anything a small bank moves in one go, far below
# the BIGINT range, so sums of many maximal amounts still cannot overflow.
AMOUNT_CENTS_MAX = 100_000_000_000 * 100

# Rates (charges, withholding tax) are kept in basis points, hundredths of a percent: this many
# make the whole amount. Defined here, below both charges.py and tax.py, which import it.
BASIS_POINTS_PER_UNIT = 10_000

# Anything with more integer digits than this is far above AMOUNT_CENTS_MAX. It is refused before
# any arithmetic, because Decimal('1E+999999') would overflow the decimal context or spend many
# seconds of CPU turning itself into an int, and quantize() fails on more than 28 digits.
_INTEGER_DIGITS_MAX = 15

# People type "1,234.50", " 1234.5 " or "$1,234.50"; thousands separators must sit in groups of
# three so that "1,2345" (a likely typo) is refused instead of being read as 12345. Digits are
# ASCII only: Python reads "৪" (Bengali four) or "٤" (Arabic-Indic four) as 4, which a person
# checking the amount on screen may not.
_TEXT_AMOUNT = re.compile(r"^[+-]?([0-9]{1,3}(,[0-9]{3})+|[0-9]+)(\.[0-9]*)?$|^[+-]?\.[0-9]+$")


def to_decimal(value) -> Decimal:
    """Turn an int, Decimal or text into a finite Decimal with at most two decimals."""
    if isinstance(value, bool) or isinstance(value, float):
        raise InvalidAmount(
            "Amounts must be given as text or Decimal, not as a floating-point number."
        )
    if isinstance(value, int):
        dec = Decimal(value)
    elif isinstance(value, Decimal):
        dec = value
    elif isinstance(value, str):
        text = value.strip().replace(" ", "").replace("\u00a0", "")
        if text.startswith(("$", "€", "£")):
            text = text[1:]
        if not text:
            raise InvalidAmount("Please enter an amount.")
        if not _TEXT_AMOUNT.match(text):
            raise InvalidAmount(f"'{value}' is not an amount. Use digits, for example 1234.50.")
        try:
            dec = Decimal(text.replace(",", ""))
        except InvalidOperation:
            raise InvalidAmount(f"'{value}' is not an amount.") from None
    else:
        raise InvalidAmount(f"An amount cannot be of type {type(value).__name__}.")
    if not dec.is_finite():
        raise InvalidAmount("An amount must be a finite number.")
    if dec and dec.adjusted() >= _INTEGER_DIGITS_MAX:
        raise InvalidAmount(
            f"The amount is above the maximum of {format_cents(AMOUNT_CENTS_MAX)}."
        )
    if dec.as_tuple().exponent < -2 and dec != dec.quantize(Decimal("0.01")):
        raise InvalidAmount("Amounts may have at most two decimals (whole cents).")
    return dec


def to_cents(value, *, allow_zero: bool = False, allow_negative: bool = False) -> int:
    """Parse an amount into integer cents; by default it must be positive and below the maximum."""
    dec = to_decimal(value)
    cents = int(dec * 100)
    if cents == 0 and not allow_zero:
        raise InvalidAmount("The amount must be greater than zero.")
    if cents < 0 and not allow_negative:
        raise InvalidAmount("The amount must be greater than zero.")
    if abs(cents) > AMOUNT_CENTS_MAX:
        raise InvalidAmount(
            f"The amount is above the maximum of {format_cents(AMOUNT_CENTS_MAX)}."
        )
    return cents


def to_money(cents: int) -> Decimal:
    """Integer cents back to a Decimal in currency units, always with two decimals."""
    return (Decimal(int(cents)) / 100).quantize(Decimal("0.01"))


def money_text(cents: int) -> str:
    """str(to_money(cents)), e.g. '-0.05' or '1234.50', without building a Decimal: the posting
    batch writes several per transfer into its audit rows."""
    cents = int(cents)
    whole, frac = divmod(abs(cents), 100)
    return f"{'-' if cents < 0 else ''}{whole}.{frac:02d}"


def format_cents(cents: int, symbol: str = "$") -> str:
    """Cents as '$1,234.50' or '-$12.00' for display."""
    cents = int(cents)
    sign = "-" if cents < 0 else ""
    whole, frac = divmod(abs(cents), 100)
    return f"{sign}{symbol}{whole:,}.{frac:02d}"


def format_money(value: Decimal, symbol: str = "$") -> str:
    return format_cents(int(to_decimal(value) * 100), symbol)
