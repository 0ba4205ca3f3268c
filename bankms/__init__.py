"""bankms: an exact, double-entry bank on DuckDB. This package never imports Streamlit."""
from .bank import Bank, bank_exists, open_bank
from .domain.errors import *  # noqa: F401,F403
from .domain.errors import BankError
from .services.ledger import Receipt
from .domain.money import format_cents, format_money, to_cents, to_decimal, to_money
from .domain.security import Actor

__all__ = ["Bank", "bank_exists", "open_bank", "BankError", "Receipt", "Actor", "to_cents",
           "to_decimal", "to_money", "format_cents", "format_money"]
