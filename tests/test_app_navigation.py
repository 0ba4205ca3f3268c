"""AppTest: who sees which pages, the sign-in form, sign-out, registration, employee
management, password change, the demo banner, a refused weak key and bare page files."""
from __future__ import annotations

import datetime as dt
import pathlib
import sys
import types

import pytest
from streamlit.testing.v1 import AppTest
from streamlit.util import calc_hash

import bankms
from bankms.services.ledger import utcnow
from browser.helpers import USERS, seed_standard_bank

REPO = pathlib.Path(__file__).resolve().parents[1]
APP = str(REPO / "app.py")


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    folder = tmp_path_factory.mktemp("apptest")
    path = str(folder / "bank.duckdb")
    bank = bankms.open_bank(path, bcrypt_rounds=4)
    facts = seed_standard_bank(bank)
    bank.close()
    return {"path": path, "key_file": str(folder / "cookie.key"), **facts}


@pytest.fixture
def env(db, monkeypatch):
    monkeypatch.setenv("BANKMS_DB", db["path"])
    monkeypatch.setenv("BANKMS_COOKIE_KEY_FILE", db["key_file"])
    monkeypatch.delenv("BANKMS_COOKIE_KEY", raising=False)
    monkeypatch.setenv("BANKMS_NO_DEMO", "1")
    return db


@pytest.fixture
def bank(env):
    """The very Bank the app uses in this process (one connection per file and process)."""
    from pages.common import _open_bank
    return _open_bank(env["path"])


def app(session_id=None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=30)
    if session_id:
        at.session_state["session_id"] = session_id
    return at.run()


def session_for(bank, username) -> str:
    return bank.auth.start_session(bank.auth.actor_for(username))


def offered(at) -> set:
    """The url paths of the pages st.navigation registered for this session."""
    from pages.common import discover_pages

    by_hash = {calc_hash(meta["url"]): meta["url"] for meta, _ in discover_pages()}
    return {by_hash.get(page_hash, page_hash) for page_hash in at._registered_pages}


def titles(at) -> list:
    return [element.value for element in at.title]


def roles_pages(role):
    from pages.common import discover_pages
    return {meta["url"] for meta, _ in discover_pages() if role in meta["roles"]}


# Explicit expectations for the framework's own pages; pages added by other issues follow
# their PAGE["roles"], checked by the generic equality below.
@pytest.mark.parametrize("who, present, absent", [
    ("anonymous", {"sign-in", "sign-up", "activate"},
     {"start", "staff", "change-password", "awaiting-verification"}),
    ("customer", {"start", "change-password"},
     {"sign-in", "sign-up", "staff", "awaiting-verification", "bank-operations"}),
    ("teller", {"start", "change-password"},
     {"sign-in", "sign-up", "staff", "awaiting-verification", "bank-operations"}),
    ("manager", {"start", "change-password", "staff", "bank-operations"},
     {"sign-in", "sign-up", "awaiting-verification"}),
    ("pending", {"awaiting-verification", "change-password"},
     {"sign-in", "sign-up", "start", "staff"}),
])
def test_each_role_sees_exactly_its_pages(bank, who, present, absent):
    sid = None if who == "anonymous" else session_for(bank, USERS[who][0])
    at = app(sid)
    assert not at.exception
    pages = offered(at)
    assert present <= pages and not (absent & pages)
    assert pages == roles_pages(who)
    if who == "pending":
        # Only pages meant for a customer who is not verified yet: nothing financial.
        assert all(set(meta_roles) & {"pending"} for meta_roles in
                   _roles_of(pages))


def _roles_of(urls):
    from pages.common import discover_pages
    return [meta["roles"] for meta, _ in discover_pages() if meta["url"] in urls]


# Every page x visitor pair: the browser test (tests/browser/test_access.py) loads one page
# per roles list for each visitor and relies on this test for the rest.
@pytest.mark.parametrize("who", ["anonymous", "customer", "teller", "pending", "manager"])
def test_a_role_cannot_switch_to_a_page_it_is_not_offered(bank, who):
    from pages.common import discover_pages

    sid = None if who == "anonymous" else session_for(bank, USERS[who][0])
    at = app(sid)
    forbidden = [(meta, module) for meta, module in discover_pages()
                 if who not in meta["roles"]]
    assert forbidden
    for meta, module in forbidden:
        with pytest.raises(ValueError):
            at.switch_page(f"pages/{pathlib.Path(module.__file__).name}")
        # What a browser asking for the page's URL gets: the default page of its own role.
        at._page_hash = calc_hash(meta["url"])
        at.run()
        assert not at.exception
        assert not any(meta["title"] in title for title in titles(at)), meta["url"]
        assert offered(at) == roles_pages(who)


@pytest.mark.parametrize("username, password, outcome", [
    ("theo", "teller password 1", "signed in"),
    ("THEO ", "teller password 1", "signed in"),
    ("theo", "wrong password 11", "The username or password is wrong."),
    ("nobody", "teller password 1", "The username or password is wrong."),
])
def test_sign_in_form(bank, username, password, outcome):
    at = app()
    at.text_input[0].input(username)
    at.text_input[1].input(password)
    at.button[0].click().run()
    assert not at.exception
    if outcome == "signed in":
        assert offered(at) == roles_pages("teller")
        actor = bank.auth.check_session(at.session_state["session_id"])
        assert actor.username == "theo"
        assert at.session_state["_cookie_job"][1]  # the cookie token waits for the browser
        assert any("Theo Teller" in m.value for m in at.sidebar.markdown)
    else:
        assert [e.value for e in at.error] == [outcome]
        assert offered(at) == roles_pages("anonymous")
    bank.users.unlock(bank.system_actor(), "theo")


def test_sign_out_revokes_the_server_session(bank):
    sid = session_for(bank, "alice")
    at = app(sid)
    at.sidebar.button(key="bankms_signout").click().run()
    assert not at.exception
    assert offered(at) == roles_pages("anonymous")
    assert bank.auth.check_session(sid) is None
    assert at.session_state["_cookie_job"][1] is None  # the browser is told to drop it


def test_idle_session_ends_at_next_click(bank):
    sid = session_for(bank, "theo")
    at = app(sid)
    stale = utcnow() - dt.timedelta(seconds=901)
    bank.write(lambda uow: uow.execute("UPDATE sessions SET last_seen_at = ? WHERE id = ?",
                                       [stale, sid]))
    at.run()
    assert offered(at) == roles_pages("anonymous")
    assert any("session has ended" in m.value for m in at.info)


def test_registration_makes_a_pending_customer_who_sees_nothing_financial(bank):
    at = app()
    at._page_hash = calc_hash("sign-up")
    at.run()
    values = {"Full name": "Rita Register", "Email": "rita@example.com",
              "Phone": "+1 555 0199", "National id": "REG777", "Address": "7 New Road",
              "Username": "rita", "Password": "rita long password 1",
              "Repeat the password": "rita long password 1"}
    for widget in at.text_input:
        if widget.label in values:
            widget.input(values[widget.label])
    at.date_input[0].set_value(dt.date(1995, 5, 6))
    at.button[0].click().run()
    assert not at.exception and not at.error
    assert any("We received your sign-up" in s.value for s in at.success)
    customer = bank.users.get("rita")
    assert customer["role"] == "customer"
    status = bank.customers.get(bank.system_actor(), customer["customer_id"])["status"]
    assert status == "pending"
    at = app(session_for(bank, "rita"))
    assert offered(at) == {"awaiting-verification", "change-password"}
    assert any("Waiting for verification" in t for t in titles(at))


def test_employee_management(bank):
    at = app(session_for(bank, "mara"))
    at._page_hash = calc_hash("staff")
    at.run()
    values = {"Full name": "Nina New", "Username": "nina"}
    for widget in at.text_input:
        if widget.label in values:
            widget.input(values[widget.label])
    at.button(key="FormSubmitter:bankms_add_employee-Add employee").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    shown = [s.value for s in at.success if "Temporary password" in s.value]
    assert shown and "nina" in shown[0]
    password = shown[0].split("`")[1]
    nina = bank.users.get("nina")
    assert nina["role"] == "teller" and nina["must_change_password"]
    assert bank.auth.login("nina", password).username == "nina"
    # A user who must change the password is offered only that page.
    nina_at = app(session_for(bank, "nina"))
    assert offered(nina_at) == {"change-password"}
    fields = ["Current password", "New password", "Repeat the new password"]
    for widget, value in zip(fields, [password, "nina own password 1", "nina own password 1"]):
        next(w for w in nina_at.text_input if w.label == widget).input(value)
    old_sid = nina_at.session_state["session_id"]
    nina_at.button[0].click().run()
    assert not nina_at.exception and not nina_at.error
    assert offered(nina_at) == roles_pages("teller")
    assert bank.auth.check_session(old_sid) is None  # the old cookie's session is gone
    assert nina_at.session_state["session_id"] != old_sid
    # Deactivate: nina's live session ends at once.
    at.selectbox(key="bankms_manage_user").set_value("nina").run()
    at.button(key="bankms_deactivate").click().run()
    assert not at.exception and not at.error
    assert not bank.users.get("nina")["active"]
    assert bank.auth.check_session(nina_at.session_state["session_id"]) is None


def test_manager_unlocks_a_locked_user(bank):
    bank.settings.set(bank.system_actor(), "login_backoff_user_after_failures", "5")
    # A first wait of one second (the default) can end before a loaded machine draws the page,
    # and then nobody is locked; a minute does not.
    bank.settings.set(bank.system_actor(), "login_backoff_base_s", "60")
    bank.settings.set(bank.system_actor(), "login_backoff_user_cap_s", "600")
    for _ in range(5):
        with pytest.raises(bankms.AuthenticationError):
            bank.auth.login("alice", "not her password")
    at = app(session_for(bank, "mara"))
    at._page_hash = calc_hash("staff")
    at.run()
    at.selectbox(key="bankms_unlock_user").set_value("alice").run()
    at.button(key="bankms_unlock").click().run()
    assert not at.exception
    assert bank.users.get("alice")["locked_until"] is None
    assert bank.auth.login("alice", USERS["customer"][1]).username == "alice"


def test_teller_cannot_reach_employee_management_even_by_calling_it(bank):
    """The page hides itself for a teller, and bankms refuses the actions anyway."""
    teller = bank.auth.actor_for("theo")
    with pytest.raises(bankms.PermissionDenied):
        bank.users.create(teller, username="sneaky", password="sneaky password 1",
                          role="manager", full_name="Sneaky")


@pytest.mark.parametrize("logins, banner", [
    ([{"role": "manager", "username": "demo.manager", "password": "demo pass 12345",
       "full_name": "Dana Demo"}], True),
    ([], False),
])
def test_demo_banner(env, monkeypatch, logins, banner):
    fake = types.ModuleType("bankms.demo")
    fake.demo_logins = lambda bank: logins
    fake.demo_exists = lambda bank: bool(logins)
    fake.build_demo = lambda *a, **k: logins
    monkeypatch.setitem(sys.modules, "bankms.demo", fake)
    # `from bankms import demo` reads the package attribute once the real module was imported.
    monkeypatch.setattr(bankms, "demo", fake, raising=False)
    at = app()
    text = " ".join(m.value for m in at.markdown) + " ".join(w.value for w in at.warning)
    assert ("demo bank" in text.lower()) == banner
    shown = at.dataframe[0].value.to_dict("records") if at.dataframe else []
    assert (banner and shown[0]["Username"] == "demo.manager") or (not banner and not shown)


@pytest.mark.parametrize("key", ["some_key", "short", "secret"])
def test_app_refuses_a_weak_cookie_key(env, monkeypatch, key):
    monkeypatch.setenv("BANKMS_COOKIE_KEY", key)
    at = app()
    assert any("will not start" in e.value for e in at.error)
    assert not at.text_input
    assert not offered(at) & roles_pages("anonymous")  # st.navigation never ran


def test_every_page_file_is_safe_on_its_own(env):
    """A freshly started server runs pages/*.py directly: each must draw nothing."""
    for path in sorted((REPO / "pages").glob("*.py")):
        at = AppTest.from_file(str(path), default_timeout=30).run()
        assert not at.exception, path.name
        assert not at.main.children and not at.sidebar.children, path.name


def test_sections_start_with_a_level_two_heading():
    """A page's st.title is its h1, so its sections are st.header (h2): an st.subheader (h3)
    right under the title skips a level (axe-core's heading-order finding)."""
    import pathlib
    pages = pathlib.Path(__file__).resolve().parents[1] / "pages"
    skipping = [f"{path.name}:{number}" for path in sorted(pages.glob("*.py"))
                for number, line in enumerate(path.read_text().splitlines(), 1)
                if "st.subheader(" in line]
    assert not skipping, skipping


class _PagesManager:
    """The two fields of Streamlit's page manager that land_on_offered_page reads and sets."""

    def __init__(self, name, page_hash=""):
        self.intended_page_name, self.intended_page_script_hash = name, page_hash

    def set_script_intent(self, page_hash, name):
        self.intended_page_script_hash, self.intended_page_name = page_hash, name


# (asked by page name, asked by hash, url paths offered, intent afterwards, notice)
LANDINGS = [
    ("start", "", ["start", "my-accounts"], "start", None),   # Home's own path
    ("", "", ["start", "my-accounts"], None, None),           # "/": nothing to change
    ("my-accounts", "", ["start", "my-accounts"], None, None),
    ("end-of-day", "", ["start", "my-accounts"], "start", "end-of-day"),
    ("/typo/", "", ["sign-in", "sign-up"], "sign-in", "typo"),
    ("typo", "h1", ["start"], None, None),                    # a menu click names a hash
]


@pytest.mark.parametrize("name, page_hash, urls, intent, notice", LANDINGS)
def test_an_address_naming_no_offered_page_opens_the_first(monkeypatch, name, page_hash, urls,
                                                           intent, notice):
    from types import SimpleNamespace

    import streamlit.runtime.scriptrunner as scriptrunner

    from pages.common import land_on_offered_page

    manager = _PagesManager(name, page_hash)
    monkeypatch.setattr(scriptrunner, "get_script_run_ctx",
                        lambda: SimpleNamespace(pages_manager=manager))
    assert land_on_offered_page(urls) == notice
    expected = ((calc_hash(intent), "") if intent else (page_hash, name))
    assert (manager.intended_page_script_hash, manager.intended_page_name) == expected
