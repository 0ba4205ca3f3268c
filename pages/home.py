"""A signed-in user's start page: who they are and what they can do here."""
import streamlit as st

from pages.text import md

PAGE = {"title": "Home", "icon": ":material/home:", "roles": ("customer", "teller", "manager"),
        "order": 2, "url": "start"}


def render() -> None:
    from pages.common import current_actor

    actor = current_actor()
    if actor is None:
        st.stop()
    st.title(f"Welcome, {md(actor.full_name or actor.username)}")
    st.caption(f"Signed in as {actor.role}.")
