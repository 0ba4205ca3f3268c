"""bankms web app: signs the visitor in, builds the navigation for their role and runs the page.

Pages live in pages/*.py; each declares a PAGE dict (title, icon, roles, order, url) and a
render() function, and app.py offers a user exactly the pages of their navigation role (see
pages/common.py). Anything not offered is not reachable: st.navigation serves only the pages
it was given, and an unknown URL opens the first page offered (common.land_on_offered_page).
"""
import pathlib

import streamlit as st

from bankms.store import files
from bankms.domain.errors import FilesExposed, InvalidState, WeakCookieKey, WeakSigningKey
from pages import common
from pages.phone import phone_fixes
from pages.text import md

# The favicon is a file of ours, served by the app: a ":material/..." page icon makes every
# browser fetch it from fonts.gstatic.com, which fails offline and tells Google of each visit.
FAVICON = pathlib.Path(__file__).parent / "assets" / "favicon.png"
st.set_page_config(page_title="bankms", page_icon=str(FAVICON), layout="wide")

ROLE_LABELS = {"customer": "Customer", "teller": "Teller", "manager": "Manager"}

bank = common.get_bank()
try:
    common.cookie_key()
    common.signing_key()
    files.check_private(bank.path)
except (WeakCookieKey, WeakSigningKey, FilesExposed) as exc:
    # Refuse to serve anyone: with a known key, anybody could forge a manager's cookie, and
    # with the database open to other users, anybody on the machine could read it.
    st.error(f"bankms will not start: {exc}", icon=":material/gpp_bad:")
    st.stop()
try:
    common.build_demo_on_first_start(bank)
except InvalidState as exc:
    # Another process stopped halfway through the demo: part of one is not a bank to serve.
    st.error(f"bankms will not start: {exc}", icon=":material/gpp_bad:")
    st.stop()
common.start_eod_scheduler(bank)
common.restore_from_cookie()
actor = common.current_actor()
role = common.navigation_role(actor)
authenticator = common.make_authenticator(bank)
st.session_state["_authenticator"] = authenticator
common.run_cookie_job(authenticator)

pages = {
    meta["url"]: st.Page(module.render, title=meta["title"], icon=meta.get("icon"),
                         url_path=meta["url"])
    for meta, module in common.pages_for(role)
}
if not pages:
    st.error("There is no page for your user; please ask a manager.", icon=":material/block:")
    st.stop()
st.session_state["_nav_pages"] = pages
# An address naming no page of this user ("/start", another role's page, a typo) opens their
# first page, not Streamlit's "Page not found".
unknown_path = common.land_on_offered_page(list(pages))
st.session_state["_nav_role"] = role
# expanded=True: a manager has over twenty pages, and the default menu hides all but ten
# behind a "View more" button.
navigation = st.navigation(list(pages.values()), expanded=True)
# The browser tab names the page that runs (and lets a test see which page the server chose).
st.set_page_config(page_title=f"{navigation.title} · bankms")

with st.sidebar:
    if actor is not None:
        st.markdown(f"**{md(actor.full_name or actor.username)}**  \n"
                    f"{ROLE_LABELS.get(actor.role, actor.role)} · `{actor.username}`")
        st.button("Sign out", key="bankms_signout", on_click=common.sign_out,
                  icon=":material/logout:", width="stretch")
    else:
        st.caption("Not signed in")
    phone_fixes()  # the menu closes after a tap on narrow screens (pages/phone.py)

common.show_flashes()
if unknown_path:
    st.info(f"There is no page /{md(unknown_path)} for you; here is {md(navigation.title)}.",
            icon=":material/info:")
navigation.run()
