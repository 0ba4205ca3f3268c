"""Helpers shared by every page: the process-wide Bank, the signed-in actor, form keys,
error display and page discovery. Only functions live here; running this file alone draws
nothing."""
from __future__ import annotations

import importlib
import os
import pathlib
import uuid

import streamlit as st

import bankms
from bankms.errors import BankError
from bankms.money import format_cents

PAGES_DIR = pathlib.Path(__file__).parent


@st.cache_resource(show_spinner=False)
def _open_bank(path: str):
    return bankms.open_bank(path)


def db_path() -> str:
    return os.environ.get("BANKMS_DB", "data/bank.duckdb")


def get_bank() -> bankms.Bank:
    """One Bank per process and file; each script run reads through its own thread's cursor."""
    return _open_bank(db_path())


def current_actor():
    """The signed-in Actor, checked against the server-side session on every run."""
    sid = st.session_state.get("session_id")
    if not sid:
        return None
    actor = get_bank().auth.check_session(sid)
    if actor is None:
        st.session_state.pop("session_id", None)
    return actor


def form_key(name: str) -> str:
    """An idempotency key for one instance of a form, kept across reruns until reset."""
    slot = f"_form_key_{name}"
    if slot not in st.session_state:
        st.session_state[slot] = uuid.uuid4().hex
    return st.session_state[slot]


def reset_form_key(name: str) -> None:
    st.session_state.pop(f"_form_key_{name}", None)


def show_error(exc: Exception) -> None:
    """A refusal in plain words; anything unexpected without a traceback."""
    if isinstance(exc, BankError):
        st.error(str(exc), icon=":material/error:")
    else:
        st.error("Something went wrong on our side; nothing was changed. Please try again.",
                 icon=":material/error:")


def money(value) -> str:
    """Cents (int) or a Decimal amount as '$1,234.50'."""
    if isinstance(value, int):
        return format_cents(value)
    return format_cents(int(bankms.to_decimal(value) * 100))


def discover_pages() -> list:
    """Every pages/*.py module that declares a PAGE dict, in PAGE['order']."""
    found = []
    for path in sorted(PAGES_DIR.glob("*.py")):
        if path.stem in ("common", "__init__"):
            continue
        module = importlib.import_module(f"pages.{path.stem}")
        meta = getattr(module, "PAGE", None)
        if isinstance(meta, dict) and callable(getattr(module, "render", None)):
            # A url equal to a file's stem collides with the page Streamlit registers for the
            # pages/ folder itself, and that page runs the bare file (which draws nothing).
            if meta["url"] in {p.stem for p in PAGES_DIR.glob("*.py")}:
                raise RuntimeError(f"pages/{path.name}: url '{meta['url']}' equals a file name")
            found.append((meta, module))
    found.sort(key=lambda item: (item[0].get("order", 100), item[0]["title"]))
    return found


def pages_for(role: str | None) -> list:
    role = role or "anonymous"
    return [(meta, module) for meta, module in discover_pages() if role in meta["roles"]]
