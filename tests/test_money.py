"""The money doorway: every outside value becomes integer cents through `to_cents`, or is refused
with InvalidAmount (never another exception, never a silently rounded amount)."""
from __future__ import annotations

from decimal import Decimal

import pytest

from bankms.domain.errors import InvalidAmount
from bankms.domain.money import (
    AMOUNT_CENTS_MAX,
    format_cents,
    format_money,
    money_text,
    to_cents,
    to_decimal,
    to_money,
)

MAX_UNITS = AMOUNT_CENTS_MAX // 100

# (value, keyword arguments for to_cents, expected cents or the exception class)
TO_CENTS_CASES = [
    # plain text
    ("12", {}, 1200),
    ("12.3", {}, 1230),
    ("12.34", {}, 1234),
    ("0.01", {}, 1),
    (".5", {}, 50),
    ("5.", {}, 500),
    ("+5", {}, 500),
    ("  1234.5  ", {}, 123450),
    ("1 234.50", {}, 123450),
    ("1\u00a0234.50", {}, 123450),
    ("007", {}, 700),
    # thousands separators and currency symbols
    ("1,234.50", {}, 123450),
    ("1,234,567", {}, 123456700),
    ("$12", {}, 1200),
    ("$1,234.50", {}, 123450),
    ("€3.10", {}, 310),
    ("£0.99", {}, 99),
    ("1,2345", {}, InvalidAmount),
    ("12,34", {}, InvalidAmount),
    (",123", {}, InvalidAmount),
    ("1,,234", {}, InvalidAmount),
    ("$$12", {}, InvalidAmount),
    ("12$", {}, InvalidAmount),
    ("USD 12", {}, InvalidAmount),
    # decimals: more than two are refused, not rounded (unless they are zeros)
    ("1.005", {}, InvalidAmount),
    ("0.001", {}, InvalidAmount),
    ("1.000", {}, 100),
    ("1.2300000", {}, 123),
    ("1.999", {}, InvalidAmount),
    # zero and sign
    ("0", {}, InvalidAmount),
    ("0.00", {}, InvalidAmount),
    ("-0", {}, InvalidAmount),
    ("-0", {"allow_zero": True}, 0),
    ("0", {"allow_zero": True}, 0),
    ("-5", {}, InvalidAmount),
    ("-5", {"allow_zero": True}, InvalidAmount),
    ("-5", {"allow_negative": True}, -500),
    ("-0.01", {"allow_negative": True}, -1),
    ("--5", {"allow_negative": True}, InvalidAmount),
    ("+-5", {"allow_negative": True}, InvalidAmount),
    # empty text and words
    ("", {}, InvalidAmount),
    ("   ", {}, InvalidAmount),
    ("$", {}, InvalidAmount),
    ("abc", {}, InvalidAmount),
    ("12abc", {}, InvalidAmount),
    ("twelve", {}, InvalidAmount),
    ("1e3", {}, InvalidAmount),
    ("1E+2", {}, InvalidAmount),
    ("0x10", {}, InvalidAmount),
    ("1_000", {}, InvalidAmount),
    ("NaN", {}, InvalidAmount),
    ("nan", {}, InvalidAmount),
    ("Infinity", {}, InvalidAmount),
    ("-Infinity", {"allow_negative": True}, InvalidAmount),
    ("inf", {}, InvalidAmount),
    ("sNaN", {}, InvalidAmount),
    # SQL and other injections are just not amounts
    ("1; DROP TABLE accounts", {}, InvalidAmount),
    ("1 OR 1=1", {}, InvalidAmount),
    ("1'--", {}, InvalidAmount),
    ("1\n2", {}, InvalidAmount),
    ("1.2.3", {}, InvalidAmount),
    # the maximum
    (f"{MAX_UNITS}", {}, AMOUNT_CENTS_MAX),
    (f"{MAX_UNITS}.01", {}, InvalidAmount),
    (f"-{MAX_UNITS}.01", {"allow_negative": True}, InvalidAmount),
    ("9" * 40, {}, InvalidAmount),
    ("1" * 31 + ".001", {}, InvalidAmount),
    # digits other than ASCII are refused: Python reads them as numbers, people may not
    ("\u09ea", {}, InvalidAmount),                 # Bengali four
    ("\u0664\u0660.50", {}, InvalidAmount),        # Arabic-Indic forty
    ("\uff11\uff12", {}, InvalidAmount),           # full-width twelve
    ("1\u0660", {}, InvalidAmount),                # one ASCII digit and one other
    ("12.\u0665", {}, InvalidAmount),              # in the decimals
    ("\u0967,000", {}, InvalidAmount),             # Devanagari one, ASCII thousands
    # floats are refused whatever their value, as are other non-amount types
    (12.5, {}, InvalidAmount),
    (0.1, {}, InvalidAmount),
    (1.0, {}, InvalidAmount),
    (float("nan"), {}, InvalidAmount),
    (float("inf"), {}, InvalidAmount),
    (float("-inf"), {"allow_negative": True}, InvalidAmount),
    (-0.0, {"allow_zero": True}, InvalidAmount),
    (True, {}, InvalidAmount),
    (False, {"allow_zero": True}, InvalidAmount),
    (None, {}, InvalidAmount),
    (b"12", {}, InvalidAmount),
    ([12], {}, InvalidAmount),
    ({"amount": 12}, {}, InvalidAmount),
    (object(), {}, InvalidAmount),
    # ints are whole currency units
    (12, {}, 1200),
    (1, {}, 100),
    (0, {}, InvalidAmount),
    (0, {"allow_zero": True}, 0),
    (-3, {}, InvalidAmount),
    (-3, {"allow_negative": True}, -300),
    (MAX_UNITS, {}, AMOUNT_CENTS_MAX),
    (MAX_UNITS + 1, {}, InvalidAmount),
    (10 ** 30, {}, InvalidAmount),
    # Decimals
    (Decimal("12.34"), {}, 1234),
    (Decimal("1E+2"), {}, 10000),
    (Decimal("1.0E+1"), {}, 1000),
    (Decimal("12.340"), {}, 1234),
    (Decimal("12.345"), {}, InvalidAmount),
    (Decimal("-0"), {}, InvalidAmount),
    (Decimal("-0"), {"allow_zero": True}, 0),
    (Decimal("-0.00"), {"allow_zero": True}, 0),
    (Decimal("-7.5"), {"allow_negative": True}, -750),
    (Decimal("NaN"), {}, InvalidAmount),
    (Decimal("sNaN"), {}, InvalidAmount),
    (Decimal("Infinity"), {}, InvalidAmount),
    (Decimal("-Infinity"), {"allow_negative": True}, InvalidAmount),
    (Decimal("1E+100"), {}, InvalidAmount),
    (Decimal("1E-100"), {}, InvalidAmount),
    (Decimal("0E-100"), {"allow_zero": True}, 0),
    (Decimal("0E+100"), {"allow_zero": True}, 0),
    (Decimal("999999999999999.99"), {}, InvalidAmount),
    (Decimal("1" * 31 + ".001"), {}, InvalidAmount),
]


def _case_id(case):
    value, kwargs, _ = case.values if hasattr(case, "values") else case
    # A bare object's repr carries its address, which differs between xdist workers, so such
    # values are named by their type alone.
    text = f"<{type(value).__name__}>" if type(value).__repr__ is object.__repr__ else repr(value)
    return text[:40] + (f"-{kwargs}" if kwargs else "")


@pytest.mark.parametrize("value,kwargs,expected", TO_CENTS_CASES,
                         ids=[_case_id(c) for c in TO_CENTS_CASES])
def test_to_cents(value, kwargs, expected):
    if isinstance(expected, type):
        with pytest.raises(expected) as info:
            to_cents(value, **kwargs)
        assert str(info.value), "a refusal must say why in words"
    else:
        cents = to_cents(value, **kwargs)
        assert type(cents) is int
        assert cents == expected


# Exponents so large that turning them into an int would take the CPU for a long time, or
# overflow the decimal context: they must be refused at once, as InvalidAmount.
HUGE_EXPONENT_CASES = [
    (Decimal("1E+999990"), InvalidAmount),
    (Decimal("1E+10000000"), InvalidAmount),
    (Decimal("-1E+999990"), InvalidAmount),
]


@pytest.mark.timeout(10)  # not a speed target: arithmetic on a million-digit number hangs ~20 s
@pytest.mark.parametrize("value,expected", HUGE_EXPONENT_CASES, ids=str)
def test_huge_exponents_are_refused(value, expected):
    with pytest.raises(expected):
        to_cents(value, allow_negative=True)


# (value, expected Decimal or exception)
TO_DECIMAL_CASES = [
    ("1,234.5", Decimal("1234.5")),
    (Decimal("2.50"), Decimal("2.50")),
    (3, Decimal(3)),
    ("-1.25", Decimal("-1.25")),
    ("1.234", InvalidAmount),
    (1.5, InvalidAmount),
]


@pytest.mark.parametrize("value,expected", TO_DECIMAL_CASES, ids=repr)
def test_to_decimal(value, expected):
    if isinstance(expected, type):
        with pytest.raises(expected):
            to_decimal(value)
    else:
        assert to_decimal(value) == expected


# (cents, to_money, format_cents)
DISPLAY_CASES = [
    (0, Decimal("0.00"), "$0.00"),
    (1, Decimal("0.01"), "$0.01"),
    (-1, Decimal("-0.01"), "-$0.01"),
    (99, Decimal("0.99"), "$0.99"),
    (-5, Decimal("-0.05"), "-$0.05"),
    (-100, Decimal("-1.00"), "-$1.00"),
    (123450, Decimal("1234.50"), "$1,234.50"),
    (-123456789, Decimal("-1234567.89"), "-$1,234,567.89"),
    (AMOUNT_CENTS_MAX, Decimal("100000000000.00"), "$100,000,000,000.00"),
]


@pytest.mark.parametrize("cents,money,text", DISPLAY_CASES, ids=str)
def test_display(cents, money, text):
    assert to_money(cents) == money
    assert str(to_money(cents)) == str(money)  # always exactly two decimals
    # The posting batch's audit rows write money_text, which must be that same text.
    assert money_text(cents) == str(money)
    assert format_cents(cents) == text


def test_format_money_and_symbol():
    assert format_money(Decimal("1234.5")) == "$1,234.50"
    assert format_cents(150, symbol="€") == "€1.50"


@pytest.mark.parametrize("cents", [0, 1, -1, 5, 10, 99, 100, 101, 123456, -98765,
                                   AMOUNT_CENTS_MAX, -AMOUNT_CENTS_MAX])
def test_round_trip(cents):
    """Display text and Decimals read back to the same cents."""
    assert to_cents(to_money(cents), allow_zero=True, allow_negative=True) == cents
    text = format_cents(cents).replace("$", "")
    assert to_cents(text, allow_zero=True, allow_negative=True) == cents
