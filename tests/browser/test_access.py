"""In Chromium, on a freshly started server: nobody gets to a page by typing its URL, and no
cookie but a live one of ours signs anybody in."""
from __future__ import annotations

import pathlib

import pytest

from browser import helpers
from browser.helpers import SECRET_TEXT, USERS, main_text, page_title

pytestmark = pytest.mark.browser

PAGES_DIR = pathlib.Path(__file__).resolve().parents[2] / "pages"
VISITORS = ("anonymous", "customer", "pending", "teller", "manager")


def prepare(bank, server):
    """Sessions and cookie tokens, made before the server holds the database."""
    from bankms.services import tokens

    made = {}
    for role in ("customer", "pending", "teller", "manager"):
        username = USERS[role][0]
        sid = helpers.make_session(bank, username)
        made[role] = helpers.sign_token(server.key, sid=sid, username=username)
    manager = USERS["manager"][0]
    live = helpers.make_session(bank, manager)
    revoked = helpers.make_session(bank, manager)
    bank.auth.end_session(revoked)
    library_style = tokens.jwt.encode({"username": manager, "exp_date": 4102444800},
                                      server.key, algorithm="HS256")
    made["forged"] = {
        "signed with some_key": helpers.sign_token("some_key", sid=live, username=manager),
        "signed with another key": helpers.sign_token("f00d" * 32, sid=live, username=manager),
        "expired": helpers.sign_token(server.key, sid=live, username=manager,
                                      expires_in_s=-60),
        "revoked session": helpers.sign_token(server.key, sid=revoked, username=manager),
        "no session id (library format)": library_style,
        "unknown session": helpers.sign_token(server.key, sid="x" * 43, username=manager),
    }
    made["manager_live"] = helpers.sign_token(server.key, sid=live, username=manager)
    return made


@pytest.fixture(scope="module")
def fresh_server(tmp_path_factory, browser):
    running = helpers.Server(tmp_path_factory.mktemp("access"), prepare=prepare)
    yield running
    running.stop()


def cookies_for(server, visitor):
    if visitor == "anonymous":
        return []
    return [helpers.cookie(server, server.prepared[visitor])]


def all_pages():
    from pages.common import discover_pages
    return discover_pages()


def assert_nothing_protected(page, visitor, server, where):
    text = main_text(page) + helpers.sidebar_text(page)
    if visitor in ("anonymous", "pending"):
        assert server.facts["account"] not in text, where
    if visitor == "anonymous":
        leaked = [secret for secret in SECRET_TEXT if secret in text]
        assert not leaked, f"{where}: {leaked}"


def one_url_per_gate(visitor):
    """{url: PAGE meta} of the pages `visitor` may not open, one per distinct roles list: app.py
    offers a page by its PAGE["roles"] alone (pages.common.pages_for), so pages with the same
    list are withheld from a visitor together. Which page of a list stands for it rotates
    with the visitor, so more pages are loaded across visitors. Every page x visitor pair is
    asked for in-process (test_app_navigation's
    test_a_role_cannot_switch_to_a_page_it_is_not_offered), at a fraction of a page load."""
    gates = {}
    for meta, _ in all_pages():
        if visitor not in meta["roles"]:
            gates.setdefault(tuple(sorted(meta["roles"])), []).append(meta)
    rotation = VISITORS.index(visitor)
    chosen = [sorted(metas, key=lambda m: m["url"])[rotation % len(metas)]
              for metas in gates.values()]
    return {meta["url"]: meta for meta in chosen}


def test_direct_urls_on_a_fresh_server(fresh_server, browser):
    server = fresh_server
    stems = sorted(p.stem for p in PAGES_DIR.glob("*.py") if p.stem != "__init__")
    # 1. Before any session has run app.py, Streamlit serves pages/<file> by file name and
    #    runs the bare file, which must draw nothing. Such a run never reaches app.py, so it
    #    cannot know the visitor: each file is loaded once, by a visitor without a cookie or
    #    one with a customer's cookie in turn, so that both kinds of visitor are covered.
    #    (Nothing here may open "/" or a page URL yet: that would end the fresh state.)
    bare = {"anonymous": stems[0::2], "customer": stems[1::2]}
    assert bare["anonymous"] and bare["customer"]
    for visitor, files in bare.items():
        for stem, page in helpers.visit_each(browser, server, files,
                                             cookies=cookies_for(server, visitor)):
            where = f"{visitor} at /{stem} (bare file)"
            assert page.locator("[data-testid=stMain] h1").count() == 0, where
            assert main_text(page).strip() == "", where
            assert_nothing_protected(page, visitor, server, where)
    # 2. A page's own URL: a visitor whose role does not list the page gets a page of their
    #    own role instead (the first one offered), never the page asked for. One page per
    #    roles list (one_url_per_gate).
    for visitor in VISITORS:
        allowed = {meta["title"] for meta, _ in all_pages() if visitor in meta["roles"]}
        forbidden = one_url_per_gate(visitor)
        assert forbidden, visitor
        for url, page in helpers.visit_each(browser, server, list(forbidden),
                                            cookies=cookies_for(server, visitor)):
            where = f"{visitor} at /{url}"
            shown = page_title(page)
            assert shown != forbidden[url]["title"] and shown in allowed, f"{where}: {shown}"
            assert_nothing_protected(page, visitor, server, where)


def test_only_a_live_cookie_of_ours_signs_in(fresh_server, browser):
    server = fresh_server
    cases = list(server.prepared["forged"].items()) + [("live", server.prepared["manager_live"])]
    # Each cookie in a browser context of its own; the pages load side by side and are then
    # looked at one by one (as visit_each does for one context).
    contexts, loading = [], []
    try:
        for label, token in cases:
            context = helpers.new_context(browser, server,
                                          cookies=[helpers.cookie(server, token)])
            contexts.append(context)
            page = context.new_page()
            helpers._watch_frames(page)
            page.goto(server.url + "/", wait_until="commit")
            loading.append((label, page))
        for label, page in loading:
            page.wait_for_load_state("load")
            helpers.settle(page)
            if label == "live":
                assert page_title(page) == "Home", label
                assert USERS["manager"][2] in helpers.sidebar_text(page), label
            else:
                assert page_title(page) == "Sign in", label
                assert_nothing_protected(page, "anonymous", server, label)
                assert not page.get_by_role("button", name="Sign out").count(), label
    finally:
        for context in contexts:
            context.close()


# Streamlit serves the first page of a navigation at "/" only: "/start" (Home's own path) and
# any path naming no page of the visitor showed its "Page not found" dialog until
# pages.common.land_on_offered_page. (visitor, path, page shown, notice)
LANDINGS = [
    ("customer", "start", "Home", None),
    ("manager", "start", "Home", None),
    ("manager", "", "Home", None),
    ("customer", "no-such-page", "Home", "There is no page /no-such-page for you"),
    ("customer", "end-of-day", "Home", "There is no page /end-of-day for you"),
    ("anonymous", "start", "Sign in", "There is no page /start for you"),
]


def test_a_bare_or_unknown_path_lands_on_the_visitors_first_page(fresh_server, browser):
    # One browser context per visitor, whose paths load side by side (visit_each).
    by_visitor = {}
    for visitor, path, title, notice in LANDINGS:
        by_visitor.setdefault(visitor, {})[path] = (title, notice)
    assert sum(map(len, by_visitor.values())) == len(LANDINGS)
    for visitor, expected in by_visitor.items():
        for path, page in helpers.visit_each(browser, fresh_server, list(expected),
                                             cookies=cookies_for(fresh_server, visitor)):
            title, notice = expected[path]
            where = f"{visitor} at /{path}"
            assert page_title(page) == title, where
            assert page.get_by_text("Page not found").count() == 0, where
            if notice:
                assert notice in main_text(page), where
            else:
                assert "There is no page" not in main_text(page), where
