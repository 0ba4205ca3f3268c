"""User text that stays text: the one place that neutralises what people type (names,
addresses, emails, memos, loan purposes, reasons, usernames) before it is shown or exported.

- `markdown_escape` for anything rendered as Markdown (Streamlit's markdown, captions, titles,
  alerts, toasts and widget labels all render Markdown, including links, images, `:green[...]`
  colour directives, `:material/...:` icons and `$...$` formulas).
- `chart_text` for chart labels, legend names and categories (bankms.reporting.figures, drawn by Apache
  ECharts): ECharts draws them as text, not markup (rich text `{style|...}` only where an
  option sets `rich`, and its default tooltips escape HTML), but it starts a new line at each
  line break, so a name could push itself over its neighbours: line breaks become spaces.
- `csv_rows` and `csv_text` for every CSV the bank offers: a text cell starting with
  `=`, `+`, `-`, `@`, `|`, `%`, a tab or a carriage return is made inert by a leading apostrophe
  (OWASP "CSV injection"), through the `defusedcsv` package. Numbers (int, Decimal, float) and
  text that is a plain number such as "-12.50" stay as they are, so amounts in machine-readable
  columns remain numbers.

This module never imports Streamlit; pages wrap these functions in pages/text.py.
"""
from __future__ import annotations

import csv as _std_csv
import io
import math
import re
from numbers import Number

from defusedcsv import csv as _defused

# CommonMark lets a backslash escape any ASCII punctuation character. Escaped here: every
# character that starts or forms a construct of CommonMark, GitHub's extensions (tables,
# strike-through, autolinked URLs and emails) or Streamlit's own (":green[...]" directives,
# ":material/...:" icons and ":emoji:" shortcodes, "$...$" math, raw HTML). Plain punctuation
# (, . ; ? ' " / %) stays as it is, so ordinary text reads the same in tests and messages;
# a '.' only matters after leading digits (a numbered list).
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-!|<>~$:=^&@])")
_LIST_NUMBER = re.compile(r"^(\d+)\.")
# GitHub's autolinks ("http://...", "www....", "name@host.tld") are found in the text after the
# escapes are resolved, so no backslash stops them (seen in Chromium: "http\://evil.test" was a
# link). An invisible WORD JOINER (U+2060) between "http" and "://", "www" and ".", and before
# "@" breaks the pattern while the text reads the same.
_AUTOLINK_START = re.compile(r"(?i)(https?|ftp|www)(?=\\:|\.)")
_EMAIL_AT = re.compile(r"\\@")
WORD_JOINER = "\u2060"
_LINE_BREAKS = re.compile(r"[\r\n\u2028\u2029\x0b\x0c\x85]+")
# Cells that a spreadsheet would read as the start of a formula; defusedcsv covers
# = + - @ | %, and tab and carriage return are added here (OWASP's list).
_CSV_EXTRA_PREFIXES = ("\t", "\r")


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and math.isnan(value):
        return ""
    return str(value)


def markdown_escape(value) -> str:
    """`value` as Markdown that renders exactly as its characters: Markdown's punctuation
    backslash-escaped, line breaks turned into spaces (so no heading, list, table or code
    block can start) and autolinks broken by an invisible word joiner. None gives ''."""
    text = _MARKDOWN_SPECIAL.sub(r"\\\1", _LINE_BREAKS.sub(" ", _text(value)))
    text = _AUTOLINK_START.sub(lambda m: m.group(1) + WORD_JOINER, text)
    text = _EMAIL_AT.sub(lambda m: WORD_JOINER + m.group(0), text)
    return _LIST_NUMBER.sub(r"\1\\.", text)


def chart_text(value) -> str:
    """`value` for a chart's label, legend name or category: its characters as typed, on one
    line (line breaks as spaces). None gives ''."""
    return _LINE_BREAKS.sub(" ", _text(value))


def _csv_cell(value):
    """A cell ready for defusedcsv's writer: None and NaN as '', numbers (not bool) unchanged,
    text starting with a tab or CR given the apostrophe that defusedcsv gives the others, and
    line breaks inside text as '\\n'."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, Number) and not isinstance(value, bool):
        return value
    text = str(value)
    if text.startswith(_CSV_EXTRA_PREFIXES):
        text = "'" + text
    # The csv module quotes a field only for a character of the line terminator ("\n"), so a
    # carriage return inside a cell would end the row for a reader: written as "\n" instead.
    return text.replace("\r\n", "\n").replace("\r", "\n")


def csv_rows(rows, *, lineterminator: str = "\n") -> str:
    """Rows (iterables of cells) as CSV text in which no text cell can start a formula."""
    out = io.StringIO()
    writer = _defused.writer(out, lineterminator=lineterminator,
                             quoting=_std_csv.QUOTE_MINIMAL)
    writer.writerows([_csv_cell(cell) for cell in row] for row in rows)
    return out.getvalue()


def csv_text(df, *, header: bool = True, lineterminator: str = "\n") -> str:
    """A DataFrame as CSV text (no index), through csv_rows: the one way the
    bank writes a CSV. Timestamps and dates are written in ISO form, as pandas does."""
    rows = []
    if header:
        rows.append([str(c) for c in df.columns])
    for record in df.itertuples(index=False, name=None):
        rows.append([_csv_value(v) for v in record])
    return csv_rows(rows, lineterminator=lineterminator)


def _csv_value(value):
    # pandas' own missing values (NaT, NA) and its Timestamp: what DataFrame.to_csv would write.
    try:
        import pandas as pd
        if value is pd.NaT or value is pd.NA:
            return None
        if isinstance(value, pd.Timestamp):
            return str(value)
    except ImportError:  # pragma: no cover - pandas is a dependency of the bank
        pass
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        return value.item()  # numpy scalars to plain Python numbers
    return value


def mask_name(full_name: str) -> str:
    """'Jane Doe' -> 'J*** D**': enough to recognise a payee, too little to learn one."""
    return " ".join(part[0] + "*" * (len(part) - 1) for part in str(full_name).split())
