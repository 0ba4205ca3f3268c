"""bankms: an exact, double-entry bank on DuckDB. This package never imports Streamlit."""
from .bank import Bank, open_bank
from .errors import *  # noqa: F401,F403
from .errors import BankError
from .ledger import Receipt
from .money import format_cents, format_money, to_cents, to_decimal, to_money
from .security import Actor

__all__ = ["Bank", "open_bank", "BankError", "Receipt", "Actor", "to_cents", "to_decimal",
           "to_money", "format_cents", "format_money"]
