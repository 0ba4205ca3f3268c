"""PDF layouts of the documents customers receive: monthly statements and interest certificates,
and the fonts every PDF of the bank uses (receipts too).

Only layout lives here; the figures come in already computed (integer cents) from
`bankms.reporting.reports`. Names and memos are printed in any script: the PDFs embed DejaVu Sans (Latin,
Greek, Cyrillic, Arabic, Hebrew, ...) shipped in bankms/fonts with its licence, with Droid Sans
Fallback (Chinese, Japanese, Korean; Apache 2.0) as a fallback font loaded only when a document
needs it. Arabic letters are joined and right-to-left text ordered by text shaping (HarfBuzz,
through the `uharfbuzz` package) when it is installed. A character neither font has, such as
most emoji, prints as U+FFFD (a replacement mark) instead of an empty box or an error.
"""
from __future__ import annotations

import datetime as dt
import functools
import pathlib
import re
import unicodedata
from importlib import resources

from fpdf import FPDF
from fpdf.enums import XPos, YPos

from ..domain.labels import account_kind_label
from ..domain.money import format_cents

BANK_NAME = "bankms"
# Found through the package, not this file, so the module may live in any subpackage.
FONTS_DIR = pathlib.Path(str(resources.files("bankms").joinpath("fonts")))
FONT = "DejaVu"  # the family name every bankms PDF draws its text in
_FALLBACK = "DroidFallback"
_FONT_FILES = {(FONT, ""): "DejaVuSans.ttf", (FONT, "B"): "DejaVuSans-Bold.ttf",
               (_FALLBACK, ""): "DroidSansFallback.ttf"}
_REPLACEMENT = "\ufffd"
_REPLACEMENTS = re.compile("\ufffd{2,}")
_LINE_MM = 5.2
# Characters that only steer other characters (joiners, variation selectors, direction marks):
# they need no glyph of their own.
_FORMAT_CATEGORIES = ("Cf", "Mn", "Me")


@functools.lru_cache(maxsize=None)
def _font_chars(file_name: str) -> frozenset:
    from fontTools.ttLib import TTFont

    with TTFont(FONTS_DIR / file_name, lazy=True) as font:
        return frozenset(font.getBestCmap())


def printable(text) -> str:
    """`text` with every character that no bankms font can draw replaced by U+FFFD (emoji
    mostly); None gives ''."""
    text = "" if text is None else str(text)
    main, fallback = _font_chars(_FONT_FILES[FONT, ""]), _font_chars(_FONT_FILES[_FALLBACK, ""])
    out = "".join(ch if ord(ch) in main or ord(ch) in fallback
                  or unicodedata.category(ch) in _FORMAT_CATEGORIES else _REPLACEMENT
                  for ch in text)
    # One mark per missing symbol: an emoji with a skin tone is two code points.
    return _REPLACEMENTS.sub(_REPLACEMENT, out)


def _needs_fallback(text: str) -> bool:
    main = _font_chars(_FONT_FILES[FONT, ""])
    return any(ord(ch) not in main for ch in text)


def use_bank_fonts(pdf: FPDF, *texts) -> None:
    """Register the bank's fonts on `pdf` and turn on text shaping when available. The CJK
    fallback (3 MB to parse) is added only when one of `texts` has a character DejaVu lacks."""
    pdf.add_font(FONT, "", str(FONTS_DIR / _FONT_FILES[FONT, ""]))
    pdf.add_font(FONT, "B", str(FONTS_DIR / _FONT_FILES[FONT, "B"]))
    texts = [printable(t) for t in texts]
    if any(_needs_fallback(t) for t in texts):
        pdf.add_font(_FALLBACK, "", str(FONTS_DIR / _FONT_FILES[_FALLBACK, ""]))
        pdf.set_fallback_fonts([_FALLBACK], exact_match=False)
    # Shaping costs about a third of a statement's time, so only text that needs it gets it.
    if not any(_needs_shaping(t) for t in texts):
        return
    try:
        import uharfbuzz  # noqa: F401 - fpdf2 shapes text with it
    except ImportError:
        return  # without shaping Arabic prints as separate letters, still readable
    pdf.set_text_shaping(True)


def _needs_shaping(text: str) -> bool:
    """Right-to-left letters or a script whose letters join or combine (Arabic, Hebrew,
    Syriac, Thaana, N'Ko, the Indic scripts, Thai, ...), or combining marks."""
    return any(unicodedata.bidirectional(ch) in ("R", "AL", "AN")
               or 0x0900 <= ord(ch) <= 0x0DFF or 0x0E00 <= ord(ch) <= 0x0EFF
               or unicodedata.combining(ch) for ch in text)


class _Document(FPDF):
    def __init__(self, title: str, subtitle: str, texts=()):
        super().__init__(format="A4")
        use_bank_fonts(self, title, subtitle, *texts)
        self.doc_title = title
        self.doc_subtitle = subtitle
        self.table_columns = None  # [(label, width_mm, align)], repeated on every page
        self.set_auto_page_break(True, margin=16)
        self.set_margins(14, 14, 14)
        self.set_title(printable(f"{title} {subtitle}"))
        self.set_author(BANK_NAME)
        self.set_creator(BANK_NAME)

    def header(self):
        self.set_font(FONT, "B", 14)
        self.cell(0, 7, BANK_NAME, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_font(FONT, "B", 11)
        self.multi_cell(0, 6, printable(self.doc_title), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_font(FONT, "", 9)
        # A long name wraps instead of pushing the account number off the page.
        self.multi_cell(0, 5, printable(self.doc_subtitle), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.ln(2)
        if self.table_columns and self.page_no() > 1:
            self.table_header()

    def footer(self):
        self.set_y(-12)
        self.set_font(FONT, "", 7)
        self.cell(0, 5, f"Page {self.page_no()} of {{nb}}", align="R")

    def table_header(self):
        self.set_font(FONT, "B", 8)
        self.set_fill_color(230, 230, 230)
        for label, width, align in self.table_columns:
            self.cell(width, 6, label, border="B", align=align, fill=True)
        self.ln(6)
        self.set_font(FONT, "", 8)

    def key_values(self, rows):
        """A two-column block of labels and values."""
        for label, value, bold in rows:
            self.set_font(FONT, "B" if bold else "", 9)
            self.cell(60, 5.5, printable(label))
            self.cell(40, 5.5, printable(value), align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.ln(3)


def statement_pdf(s) -> bytes:
    """The monthly statement `s` (a bankms.reporting.reports.Statement) as PDF bytes."""
    pdf = _Document(
        "Account statement",
        f"{s.holder} - account {s.account_number} ({account_kind_label(s.kind)}) - "
        f"{s.period_start:%d %b %Y} to {s.period_end:%d %b %Y}", texts=s.lines["description"])
    pdf.add_page()
    pdf.key_values([
        ("Opening balance", format_cents(s.opening_cents), True),
        ("Money in (credits)", format_cents(s.credits_cents), False),
        ("Money out (debits)", format_cents(s.debits_cents), False),
        ("  of which interest, net", format_cents(s.interest_cents), False),
        ("    interest earned (gross)", format_cents(s.interest_gross_cents), False),
        ("    less tax withheld", format_cents(s.tax_withheld_cents), False),
        ("  of which fees charged", format_cents(s.fees_cents), False),
        ("Closing balance", format_cents(s.closing_cents), True),
    ])
    pdf.table_columns = [("Date", 20, "L"), ("Ref", 18, "L"), ("Description", 72, "L"),
                         ("Money in", 24, "R"), ("Money out", 24, "R"), ("Balance", 24, "R")]
    pdf.table_header()

    def row(values):
        for value, (_, width, align) in zip(values, pdf.table_columns):
            pdf.cell(width, _LINE_MM, value, align=align)
        pdf.ln(_LINE_MM)

    row([f"{s.period_start:%d %b}", "", "Opening balance", "", "", format_cents(s.opening_cents)])
    for day, ref, description, amount, balance in zip(
            s.lines["date"], s.lines["transaction_id"], s.lines["description"],
            s.lines["amount_cents"], s.lines["balance_cents"]):
        amount = int(amount)
        text = printable(description)
        if pdf.get_string_width(text) > 70:
            while text and pdf.get_string_width(text + "...") > 70:
                text = text[:-1]
            text += "..."
        row([f"{day:%d %b}", str(ref), text,
             format_cents(amount) if amount > 0 else "",
             format_cents(-amount) if amount < 0 else "", format_cents(int(balance))])
    pdf.set_font(FONT, "B", 8)
    row(["", "", "Totals and closing balance", format_cents(s.credits_cents),
         format_cents(s.debits_cents), format_cents(s.closing_cents)])
    pdf.ln(4)
    pdf.set_font(FONT, "", 7)
    pdf.multi_cell(0, 4, printable(
        f"Opening balance + money in - money out = closing balance. Produced "
        f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC."))
    return bytes(pdf.output())


def certificate_pdf(c) -> bytes:
    """The annual interest certificate `c` (a bankms.reporting.reports.InterestCertificate) as PDF."""
    pdf = _Document("Annual interest certificate",
                    f"Tax year {c.year} - {c.full_name} (customer {c.customer_id})")
    pdf.add_page()
    pdf.key_values([
        ("Interest paid (gross)", format_cents(c.interest_paid_cents), True),
        ("Early-withdrawal penalties", format_cents(c.penalties_cents), False),
        ("Tax withheld", format_cents(c.tax_withheld_cents), False),
        ("Interest credited (net)", format_cents(
            c.interest_paid_cents - c.tax_withheld_cents), False),
    ])
    pdf.table_columns = [("Account", 40, "L"), ("Kind", 30, "L"), ("Interest paid", 36, "R"),
                         ("Penalties", 36, "R"), ("Tax withheld", 36, "R")]
    pdf.table_header()
    for number, kind, interest, penalties, tax in zip(
            c.accounts["account_number"], c.accounts["kind"], c.accounts["interest_paid_cents"],
            c.accounts["penalties_cents"], c.accounts["tax_withheld_cents"]):
        for value, (_, width, align) in zip(
                [str(number), str(kind), format_cents(int(interest)), format_cents(int(penalties)),
                 format_cents(int(tax))], pdf.table_columns):
            pdf.cell(width, _LINE_MM, value, align=align)
        pdf.ln(_LINE_MM)
    pdf.ln(4)
    pdf.set_font(FONT, "", 7)
    pdf.multi_cell(0, 4, printable(
        f"Interest earned on your accounts from 1 January to 31 December {c.year} before tax, "
        f"and the tax withheld from it, less any interest reversed (with its tax). Keep this "
        f"certificate for your tax return."))
    return bytes(pdf.output())
