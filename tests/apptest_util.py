"""AppTest helpers shared by the page tests: open the app as a signed-in user and go to a page.

Pages built from functions have no file of their own, so AppTest's switch_page (which matches
files) cannot find them; `goto` selects the page by its url through AppTest's page hash.
"""
from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[1] / "app.py")


def open_app(bank, actor, url=None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=30)
    at.session_state["session_id"] = bank.auth.start_session(actor)
    at.run()
    if url:
        goto(at, url)
    return at


def goto(at, url):
    hashes = [h for h, info in at._registered_pages.items() if info.get("url_pathname") == url]
    assert hashes, f"page {url} is not offered to this user"
    at._page_hash = hashes[0]
    at.run()
    assert not at.exception, at.exception


def texts(at) -> str:
    """Everything the page says in titles, markdown, captions, alerts and tables, as one string
    (and the page raised nothing); markdown escapes removed, as a person reads it."""
    assert not at.exception, at.exception
    parts = [e.value for e in (*at.title, *at.header, *at.markdown, *at.caption, *at.success,
                               *at.info, *at.warning, *at.error)]
    parts += [shown(d) for d in at.dataframe] + [t.value.to_string() for t in at.table]
    return re.sub(r"\\(.)", r"\1", "\n".join(str(p) for p in parts))


def shown(table) -> str:
    """An st.dataframe as its column formats draw it (pages.tables): money as '$1,234.50',
    dates and times without seconds, ids as plain digits; for tests that read a page's text."""
    import json

    import pandas as pd

    from bankms.domain.money import format_cents

    df = table.value.copy()
    config = json.loads(table.proto.columns or "{}")
    for name in df.columns:
        kind = config.get(str(name), {}).get("type_config", {})
        draw = {"dollar": lambda v: format_cents(int(v * 100)),
                "%d": lambda v: str(int(v))}.get(kind.get("format"))
        if kind.get("type") == "date":
            draw = lambda v: str(pd.Timestamp(v).date())  # noqa: E731
        elif kind.get("type") == "datetime":
            draw = lambda v: f"{pd.Timestamp(v):%Y-%m-%d %H:%M}"  # noqa: E731
        if draw is not None:
            df[name] = [None if v is None or pd.isna(v) else draw(v) for v in df[name]]
    return df.to_string()


def button_starting(at, prefix):
    """The first button whose key starts with `prefix` (keys that end in a form's key)."""
    found = [b for b in at.button if (b.key or "").startswith(prefix)]
    assert found, f"no button with key {prefix}*"
    return found[0]


def urls(at) -> set:
    return {info.get("url_pathname") for info in at._registered_pages.values()}


@contextlib.contextmanager
def app_bank_on(path: str):
    """The app's own process-wide Bank (pages.common.get_bank) on the database file `path`,
    for a test module's AppTests; closed and forgotten afterwards, BANKMS_DB restored."""
    from pages import common

    previous = os.environ.get("BANKMS_DB")
    os.environ["BANKMS_DB"] = path
    bank = common.get_bank()
    try:
        yield bank
    finally:
        bank.close()
        common._open_bank.clear()
        if previous is None:
            os.environ.pop("BANKMS_DB", None)
        else:
            os.environ["BANKMS_DB"] = previous


def app_bank_fixture(name: str):
    """A module-scoped `app_bank` fixture: the app's own Bank (app_bank_on) on a fresh database
    file in a temporary folder named `name`, shared by the page tests of one module.
    Use: `app_bank = app_bank_fixture("daily_pages")` at a test module's top level."""
    @pytest.fixture(scope="module")
    def app_bank(tmp_path_factory):
        with app_bank_on(str(tmp_path_factory.mktemp(name) / "bank.duckdb")) as bank:
            yield bank
    return app_bank
