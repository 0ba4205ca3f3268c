"""Printable receipts: one posted transaction as a one-page PDF (fpdf2).

Takes the dict from `Payments.receipt_details`, so the names on paper are exactly the names the
screen showed (another customer's name stays masked on a customer's receipt).
"""
from __future__ import annotations

from fpdf import FPDF

from .documents import FONT, printable, use_bank_fonts
from ..domain.labels import transaction_label
from ..domain.money import format_money


def _posted_at(details: dict) -> tuple[str, str]:
    """The posting time on the bank's clock when the details carry it, else in UTC."""
    if details.get("posted_at_local") is not None and details.get("time_zone"):
        return ("Posted at", f"{details['posted_at_local']:%Y-%m-%d %H:%M:%S} "
                             f"{details['time_zone']}")
    return ("Posted at", f"{details['posted_at']:%Y-%m-%d %H:%M:%S} UTC")


def receipt_lines(details: dict) -> list[tuple[str, str]]:
    """(label, value) rows of a receipt, shared by the PDF and the screen."""
    rows = [("Transaction id", str(details["transaction_id"])),
            # What happened, by kind and channel ('Card payment', 'Salary credit'), from labels.
            ("Type", transaction_label(details["kind"], details.get("channel"))),
            ("Amount", format_money(details["amount"])),
            _posted_at(details),
            ("Business date", str(details["business_date"]))]
    for side, label in (("source", "From"), ("target", "To")):
        number = details.get(f"{side}_account")
        if number:
            holder = details.get(f"{side}_holder")
            rows.append((label, f"{number}" + (f" ({holder})" if holder else "")))
    if details.get("memo"):
        rows.append(("Memo", details["memo"]))
    rows.append(("Served by", str(details.get("actor", ""))))
    return rows


def receipt_pdf(details: dict, *, bank_name: str = "bankms") -> bytes:
    lines = receipt_lines(details)
    pdf = FPDF(format=(148, 210))  # A5 in millimetres
    use_bank_fonts(pdf, bank_name, *(value for _, value in lines))
    pdf.set_auto_page_break(auto=True, margin=12)
    pdf.add_page()
    pdf.set_title(f"Receipt {details['transaction_id']}")
    pdf.set_font(FONT, "B", 16)
    pdf.cell(0, 10, printable(bank_name), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(FONT, "", 11)
    pdf.cell(0, 8, "Transaction receipt", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    for label, value in lines:
        pdf.set_font(FONT, "B", 10)
        pdf.cell(34, 7, printable(label))
        pdf.set_font(FONT, "", 10)
        pdf.multi_cell(0, 7, printable(value), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(6)
    pdf.set_font(FONT, "", 8)
    pdf.multi_cell(0, 5, "Keep this receipt. Quote the transaction id in any question about "
                         "this payment.")
    return bytes(pdf.output())
