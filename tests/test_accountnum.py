"""Account numbers: twelve digits with ISO 7064 mod 97-10 check digits; typos are refused."""
from __future__ import annotations

import pytest

from bankms.domain import accountnum
from bankms.domain.errors import InvalidAccountNumber

SEQUENCES = [1, 2, 9, 10, 42, 97, 100, 12345, 99999999]
VALID = [accountnum.make(s) for s in SEQUENCES]


@pytest.mark.parametrize("sequence", SEQUENCES)
def test_made_numbers_are_valid(sequence):
    number = accountnum.make(sequence)
    assert len(number) == accountnum.LENGTH
    assert number.startswith(accountnum.PREFIX)
    assert number[2:10] == f"{sequence:08d}"
    assert int(number) % 97 == 1
    assert accountnum.normalize(number) == number
    assert accountnum.is_valid(number)


def test_known_number():
    # body 4000000001: 98 - (400000000100 mod 97) = 98 - 23 = 75
    assert accountnum.make(1) == "400000000175"


# (typed text, expected canonical number or exception)
NORMALIZE_CASES = [
    (VALID[0], VALID[0]),
    (f"  {VALID[0]}  ", VALID[0]),
    (accountnum.pretty(VALID[0]), VALID[0]),
    ("-".join([VALID[0][:4], VALID[0][4:8], VALID[0][8:]]), VALID[0]),
    (VALID[0][:-1], InvalidAccountNumber),  # too short
    (VALID[0] + "0", InvalidAccountNumber),  # too long
    ("4" * 13, InvalidAccountNumber),
    ("0" + VALID[0], InvalidAccountNumber),
    ("", InvalidAccountNumber),
    ("   ", InvalidAccountNumber),
    ("40000000017A", InvalidAccountNumber),  # letters
    ("4O0000000175", InvalidAccountNumber),  # letter O for zero
    ("GL1000", InvalidAccountNumber),  # internal ledger accounts are not typed in
    ("400000000175; DROP TABLE accounts", InvalidAccountNumber),
    ("4000.0000.0175", InvalidAccountNumber),
    ("+400000000175", InvalidAccountNumber),
    ("\u0664" * 12, InvalidAccountNumber),  # Arabic-Indic digits are digits but not ASCII
    ("４０００００００１７５", InvalidAccountNumber),  # full-width digits
    (400000000175, InvalidAccountNumber),  # numbers are not text: leading zeros would vanish
    (None, InvalidAccountNumber),
    (b"400000000175", InvalidAccountNumber),
    ("400000000176", InvalidAccountNumber),  # wrong check digits
    ("400000000100", InvalidAccountNumber),
]


@pytest.mark.parametrize("text,expected", NORMALIZE_CASES, ids=repr)
def test_normalize(text, expected):
    if isinstance(expected, type):
        with pytest.raises(expected) as info:
            accountnum.normalize(text)
        assert str(info.value)
        assert not accountnum.is_valid(text)
    else:
        assert accountnum.normalize(text) == expected
        assert accountnum.is_valid(text)


def single_digit_typos(number):
    for i, digit in enumerate(number):
        for other in "0123456789":
            if other != digit:
                yield number[:i] + other + number[i + 1:]


def adjacent_swaps(number):
    for i in range(len(number) - 1):
        if number[i] != number[i + 1]:
            yield number[:i] + number[i + 1] + number[i] + number[i + 2:]


@pytest.mark.parametrize("number", VALID)
def test_every_single_digit_typo_is_refused(number):
    typos = list(single_digit_typos(number))
    assert len(typos) == 12 * 9
    accepted = [t for t in typos if accountnum.is_valid(t)]
    assert accepted == []


@pytest.mark.parametrize("number", VALID)
def test_every_adjacent_swap_is_refused(number):
    swaps = list(adjacent_swaps(number))
    assert swaps, "each sample number has some distinct neighbours"
    accepted = [s for s in swaps if accountnum.is_valid(s)]
    assert accepted == []


def test_dropped_or_doubled_digit_is_refused_by_length():
    number = VALID[4]
    for i in range(len(number)):
        with pytest.raises(InvalidAccountNumber, match="12 digits"):
            accountnum.normalize(number[:i] + number[i + 1:])
        with pytest.raises(InvalidAccountNumber, match="12 digits"):
            accountnum.normalize(number[:i] + number[i] + number[i:])


def test_random_numbers_are_valid_and_spread():
    numbers = {accountnum.random_number() for _ in range(200)}
    assert all(accountnum.is_valid(n) and n.startswith(accountnum.PREFIX) for n in numbers)
    assert len(numbers) == 200  # 10**8 bodies: a repeat among 200 draws is vanishingly rare
    bodies = sorted(int(n[2:10]) for n in numbers)
    assert bodies[-1] - bodies[0] > 10 ** 7  # spread over the space, not a run


def test_pretty():
    assert accountnum.pretty("400000000175") == "4000 0000 0175"
