"""bankms web app entry point (placeholder until the app issue lands)."""
import streamlit as st

import bankms

st.set_page_config(page_title="bankms", page_icon="🏦")
st.title("bankms")
st.write("The bank is running.")
