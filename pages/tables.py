"""Every table a page shows goes through `show_table`: one place that turns a service's
DataFrame into what people read (human headers, money as currency with thousands separators,
dates without midnight times, ids as plain numbers) through `st.column_config`. CSV downloads
do not go through here: they keep machine-readable columns. Only functions live here.

(Issue 13. The skeleton was fixed by the lead; the owner of the tables work fills it in.)
"""
from __future__ import annotations

import pandas as pd
import streamlit as st


def show_table(df: pd.DataFrame, *, headers: dict | None = None, hide=(), key: str | None = None,
               height=None, **kwargs):
    """Show df with st.dataframe, formatted by column name (`*_cents` and money columns as
    currency, `*_date`/`*_at` as dates/times, `*id`/`*_number` as plain text), human headers
    (from `headers`, else bankms.labels), the columns in `hide` left out and no index.
    Returns what st.dataframe returns (selection events when `on_select` is passed)."""
    shown = df.drop(columns=[c for c in hide if c in df.columns])
    return st.dataframe(shown, hide_index=True, key=key, height=height or "auto", **kwargs)
