"""bankms web app: builds the navigation for the signed-in user's role and runs the page.

Pages live in pages/*.py; each declares a PAGE dict (title, icon, roles, order, url) and a
render() function, and app.py offers a user exactly the pages of their role.
"""
import streamlit as st

from pages.common import current_actor, get_bank, pages_for

st.set_page_config(page_title="bankms", page_icon=":material/account_balance:", layout="wide")

get_bank()
actor = current_actor()
entries = pages_for(actor.role if actor else None)
navigation = st.navigation([
    st.Page(module.render, title=meta["title"], icon=meta.get("icon"), url_path=meta["url"])
    for meta, module in entries
])
if actor is not None:
    with st.sidebar:
        st.write(f"**{actor.full_name or actor.username}**  \n{actor.role.capitalize()}")
        if st.button("Sign out", key="signout_button"):
            get_bank().auth.end_session(st.session_state.pop("session_id", None))
            st.rerun()
navigation.run()
