"""How captions, messages and metrics write a day or a moment (pages.text.day_text and
moment_text): one format across the pages that use them; tables keep YYYY-MM-DD."""
from __future__ import annotations

import datetime as dt

import pytest

from pages.text import day_text, moment_text

# (helper, value, keyword arguments, text)
CASES = [
    (day_text, dt.date(2026, 11, 30), {}, "30 Nov 2026"),
    (day_text, dt.date(2026, 11, 30), {"weekday": True}, "Mon 30 Nov 2026"),
    (day_text, dt.date(2027, 1, 2), {}, "02 Jan 2027"),
    (day_text, None, {}, "-"),
    (moment_text, dt.datetime(2026, 11, 30, 23, 30, 59), {}, "30 Nov 2026 23:30"),
    (moment_text, None, {}, "-"),
]


@pytest.mark.parametrize("helper, value, kwargs, text", CASES)
def test_dates_in_text(helper, value, kwargs, text):
    assert helper(value, **kwargs) == text
