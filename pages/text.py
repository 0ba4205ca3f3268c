"""Showing user text in Streamlit as plain text: the page side of bankms.domain.text.

Streamlit renders Markdown almost everywhere it draws text: st.markdown, st.write, captions,
titles and subheaders, alerts, toasts, widget labels, st.table cells and st.tabs labels. Any
of these that shows something a person typed (a name, an address, a memo, a loan purpose, a
reason, a username) goes through `md` (inside an f-string) or `plain_table`. st.dataframe draws
cells as plain text on a canvas and needs nothing; its own CSV export is switched off in
.streamlit/config.toml (client.disableDataExport), so every CSV goes through bankms.domain.text.
Only functions live here: running this file alone draws nothing.
"""
from __future__ import annotations

import pandas as pd
import streamlit as st

from bankms.domain.text import chart_text, markdown_escape  # noqa: F401 - re-exported for pages

md = markdown_escape


def day_text(day, *, weekday: bool = False) -> str:
    """A day in captions, messages and metrics: "30 Nov 2026" ("Mon 30 Nov 2026" with
    weekday), as the home pages write it; None as "-". Tables keep YYYY-MM-DD (pages.tables),
    which sorts."""
    if day is None:
        return "-"
    return f"{day:%a %d %b %Y}" if weekday else f"{day:%d %b %Y}"


def moment_text(moment) -> str:
    """A time in captions and metrics: "30 Nov 2026 23:30"; None as "-"."""
    return "-" if moment is None else f"{moment:%d %b %Y %H:%M}"


def plain_table(df: pd.DataFrame, **kwargs) -> None:
    """st.table (real text: it wraps on a phone and reads aloud) with every cell and column
    name shown as typed; st.table renders Markdown in cells."""
    shown = df.copy()
    shown.columns = [md(c) if str(c).strip() else c for c in shown.columns]
    for column in shown.columns:
        shown[column] = [v if not isinstance(v, str) else md(v) for v in shown[column]]
    st.table(shown, **kwargs)
