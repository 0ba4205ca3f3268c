"""A page of one line of text, offered to managers only while BANKMS_BENCH_ONE_LINE=1 is set
(benchmarks/bench_pages_browser.py sets it): the browser benchmark's baseline, so that each page's
time is printed beside the time the app takes to draw almost nothing, measured in the same run.
Without the variable this module declares no PAGE and no one can reach it."""
import os

import streamlit as st

if os.environ.get("BANKMS_BENCH_ONE_LINE") == "1":
    PAGE = {"title": "One line", "icon": ":material/short_text:", "roles": ("manager",),
            "order": 999, "url": "bench-one-line"}

ONE_LINE = "One line of text."


def render() -> None:
    st.write(ONE_LINE)
