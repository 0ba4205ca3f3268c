"""PDF layouts of the documents customers receive: monthly statements and interest certificates.

Only layout lives here; the figures come in already computed (integer cents) from
`bankms.reports`. The PDFs use the built-in Helvetica font so that no font file has to ship
with the app; it covers Latin-1, and other characters are written in their closest plain form.
"""
from __future__ import annotations

import datetime as dt
import unicodedata

from fpdf import FPDF
from fpdf.enums import XPos, YPos

from .money import format_cents

BANK_NAME = "bankms"
_LINE_MM = 5.2
# Letters that Unicode does not decompose into a base letter plus accents.
_PLAIN_LETTERS = str.maketrans({"Ł": "L", "ł": "l", "Đ": "D", "đ": "d", "Œ": "OE", "œ": "oe",
                                "ı": "i", "Ħ": "H", "ħ": "h", "ŀ": "l", "Ŀ": "L"})


def plain(text) -> str:
    """Text the built-in PDF fonts can draw: Latin-1 kept, accents elsewhere dropped, the rest
    replaced by '?'."""
    text = "" if text is None else str(text)
    text = text.replace("\u2013", "-").replace("\u2014", "-").replace("\u2019", "'")
    try:
        text.encode("latin-1")
        return text
    except UnicodeEncodeError:
        pass
    out = []
    for ch in text.translate(_PLAIN_LETTERS):
        try:
            ch.encode("latin-1")
            out.append(ch)
        except UnicodeEncodeError:
            base = unicodedata.normalize("NFKD", ch).encode("ascii", "ignore").decode()
            out.append(base or "?")
    return "".join(out)


class _Document(FPDF):
    def __init__(self, title: str, subtitle: str):
        super().__init__(format="A4")
        self.doc_title = title
        self.doc_subtitle = subtitle
        self.table_columns = None  # [(label, width_mm, align)], repeated on every page
        self.set_auto_page_break(True, margin=16)
        self.set_margins(14, 14, 14)
        self.set_title(plain(f"{title} {subtitle}"))
        self.set_author(BANK_NAME)
        self.set_creator(BANK_NAME)

    def header(self):
        self.set_font("Helvetica", "B", 14)
        self.cell(0, 7, BANK_NAME, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_font("Helvetica", "B", 11)
        self.cell(0, 6, plain(self.doc_title), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_font("Helvetica", "", 9)
        self.cell(0, 5, plain(self.doc_subtitle), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.ln(2)
        if self.table_columns and self.page_no() > 1:
            self.table_header()

    def footer(self):
        self.set_y(-12)
        self.set_font("Helvetica", "", 7)
        self.cell(0, 5, f"Page {self.page_no()} of {{nb}}", align="R")

    def table_header(self):
        self.set_font("Helvetica", "B", 8)
        self.set_fill_color(230, 230, 230)
        for label, width, align in self.table_columns:
            self.cell(width, 6, label, border="B", align=align, fill=True)
        self.ln(6)
        self.set_font("Helvetica", "", 8)

    def key_values(self, rows):
        """A two-column block of labels and values."""
        for label, value, bold in rows:
            self.set_font("Helvetica", "B" if bold else "", 9)
            self.cell(60, 5.5, plain(label))
            self.cell(40, 5.5, plain(value), align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.ln(3)


def statement_pdf(s) -> bytes:
    """The monthly statement `s` (a bankms.reports.Statement) as PDF bytes."""
    pdf = _Document(
        "Account statement",
        f"{s.holder} - account {s.account_number} ({s.kind}) - "
        f"{s.period_start:%d %b %Y} to {s.period_end:%d %b %Y}")
    pdf.add_page()
    pdf.key_values([
        ("Opening balance", format_cents(s.opening_cents), True),
        ("Money in (credits)", format_cents(s.credits_cents), False),
        ("Money out (debits)", format_cents(s.debits_cents), False),
        ("  of which interest earned", format_cents(s.interest_cents), False),
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
        text = plain(description)
        if pdf.get_string_width(text) > 70:
            while text and pdf.get_string_width(text + "...") > 70:
                text = text[:-1]
            text += "..."
        row([f"{day:%d %b}", str(ref), text,
             format_cents(amount) if amount > 0 else "",
             format_cents(-amount) if amount < 0 else "", format_cents(int(balance))])
    pdf.set_font("Helvetica", "B", 8)
    row(["", "", "Totals and closing balance", format_cents(s.credits_cents),
         format_cents(s.debits_cents), format_cents(s.closing_cents)])
    pdf.ln(4)
    pdf.set_font("Helvetica", "", 7)
    pdf.multi_cell(0, 4, plain(
        f"Opening balance + money in - money out = closing balance. Produced "
        f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC."))
    return bytes(pdf.output())


def certificate_pdf(c) -> bytes:
    """The annual interest certificate `c` (a bankms.reports.InterestCertificate) as PDF."""
    pdf = _Document("Annual interest certificate",
                    f"Tax year {c.year} - {c.full_name} (customer {c.customer_id})")
    pdf.add_page()
    pdf.key_values([
        ("Interest paid", format_cents(c.interest_paid_cents), True),
        ("Early-withdrawal penalties", format_cents(c.penalties_cents), False),
        ("Tax withheld", format_cents(c.tax_withheld_cents), False),
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
    pdf.set_font("Helvetica", "", 7)
    pdf.multi_cell(0, 4, plain(
        f"Interest credited to your accounts from 1 January to 31 December {c.year}, less any "
        f"interest reversed. Keep this certificate for your tax return."))
    return bytes(pdf.output())
