"""Helpers shared by every page: the process-wide Bank, the signed-in actor, the sign-in cookie,
form keys, messages, error display and page discovery. Only functions live here; running this
file alone draws nothing.

Who is signed in is decided by bankms alone: `st.session_state["session_id"]` names a row of the
`sessions` table, and every script run asks `bank.auth.check_session` again, so a revoked, idle
or expired session signs the browser out at its next click. The cookie (set through
streamlit-authenticator's cookie manager) carries only a signed token naming that session.

Navigation roles: besides "anonymous", "customer", "teller" and "manager", a page may list
"pending" (a customer not yet verified, or suspended or closed: nothing financial) and
"must_change_password" (a user whose password was reset: only the change-password page).
"""
from __future__ import annotations

import datetime as dt
import importlib
import os
import pathlib
import threading
import uuid

import streamlit as st

import bankms
from bankms.services import tokens
from bankms.domain.errors import AuthenticationError, BankError, InvalidState
from bankms.domain.money import format_cents
from bankms.domain.text import markdown_escape as md
from bankms.store.port import StoreUnavailable

PAGES_DIR = pathlib.Path(__file__).parent
COOKIE_NAME = "bankms_session"
SIGNED_IN_ROLES = ("customer", "teller", "manager")

_new_files: set = set()
_demo_lock = threading.Lock()
# path -> why the first start was refused (demo.build_once: another process stopped halfway
# through the demo). Kept for the process's life: the next run would find the bank not empty
# and serve part of a demo as a bank.
_first_start_refused: dict = {}
# Paths whose existing database this process has asked demo.half_built once.
_half_built_checked: set = set()


@st.cache_resource(show_spinner=False)
def _open_bank(path: str):
    # New: no database file yet, or (PostgreSQL) a database without the bank's tables; opening
    # creates them, so ask first.
    if path != ":memory:" and not bankms.bank_exists(path):
        _new_files.add(path)
    return bankms.open_bank(path)


def db_path() -> str:
    return os.environ.get("BANKMS_DB", "data/bank.duckdb")


def get_bank() -> bankms.Bank:
    """One Bank per process and file; each script run reads through its own thread's cursor."""
    return _open_bank(db_path())


@st.cache_resource(show_spinner=False)
def _cookie_key(path: str, env_key: str | None, env_file: str | None) -> str:
    return tokens.cookie_key(path)


def cookie_key() -> str:
    """The cookie signing key (made on first start); WeakCookieKey if it must not be used."""
    return _cookie_key(db_path(), os.environ.get("BANKMS_COOKIE_KEY"),
                       os.environ.get("BANKMS_COOKIE_KEY_FILE"))


@st.cache_resource(show_spinner=False)
def _signing_key(path: str, env_file: str | None) -> None:
    from bankms.services import signing
    signing.bank_key(get_bank())


def signing_key() -> None:
    """Make the bank's Ed25519 signing key on first start (beside the cookie key, 0600);
    WeakSigningKey if the file is open to other users or holds no key (bankms.services.signing)."""
    _signing_key(db_path(), os.environ.get("BANKMS_SIGNING_KEY_FILE"))


def demo_module():
    """bankms.demo when it is installed, else None (the app works without it)."""
    try:
        from bankms import demo
    except ImportError:
        return None
    return demo


def build_demo_on_first_start(bank) -> None:
    """On the very first start (no database file yet, or a PostgreSQL database without a
    bank) build the small demo bank, once. InvalidState, on this run and every later one,
    when a demo build on this database stopped halfway, in another process or in an earlier
    run of this one (demo.half_built; app.py refuses to serve part of a demo as a bank)."""
    refused = _first_start_refused.get(bank.path)
    if refused is not None:
        raise InvalidState(refused)
    demo = demo_module()
    new = bank.path in _new_files
    if not new:
        # A start on a database that exists: once per process, ask whether a demo build
        # stopped halfway there (the process that built it died). build_once then tells a
        # build still going on in another process (it waits for it) from a dead one.
        if demo is None or bank.path in _half_built_checked:
            return
        _half_built_checked.add(bank.path)
        if not demo.half_built(bank):
            return
    with _demo_lock:
        if new and bank.path not in _new_files:
            return
        try:
            if not new or (not os.environ.get("BANKMS_NO_DEMO") and demo is not None
                           and not demo.demo_exists(bank) and demo.is_empty(bank)):
                with st.spinner("First start: building the demo bank. This takes a moment…"):
                    # build_once: another app process on the same new database may be
                    # building it already; then this one waits and builds nothing.
                    demo.build_once(bank, customers=int(os.environ.get(
                        "BANKMS_DEMO_CUSTOMERS", "200")), months=6, seed=7)
        except InvalidState as exc:
            _first_start_refused[bank.path] = str(exc)
            raise
        finally:
            _new_files.discard(bank.path)


def start_eod_scheduler(bank):
    """Automatic end of day in the process that serves the bank: one daemon thread per Bank
    (bankms.services.eod.auto), started after any first-start demo build. BANKMS_EOD_AUTO=0 keeps it
    from starting (tests); the `eod_auto` setting turns it off in a running bank."""
    if os.environ.get("BANKMS_EOD_AUTO", "1") == "0":
        return None
    from bankms.services.eod import auto as eod_auto
    return eod_auto.start(bank)


def demo_logins(bank) -> list:
    demo = demo_module()
    if demo is None or not hasattr(demo, "demo_logins"):
        return []
    return list(demo.demo_logins(bank) or [])


# -- who is signed in ---------------------------------------------------------------------------
def current_actor():
    """The signed-in Actor, checked against the server-side session on every run."""
    sid = st.session_state.get("session_id")
    if not sid:
        return None
    actor = get_bank().auth.check_session(sid)
    if actor is None:
        _forget_session()
        st.session_state["_session_ended"] = True
    return actor


def navigation_role(actor) -> str:
    return get_bank().auth.navigation_role(actor)


def restore_from_cookie() -> None:
    """A new browser session (a reload, a new tab) signs in again from the cookie, but only if
    the token is signed with our key, not expired, and names a live server-side session."""
    if st.session_state.get("session_id") or st.session_state.get("_cookie_checked"):
        return
    st.session_state["_cookie_checked"] = True
    token = st.context.cookies.get(COOKIE_NAME)
    if not token:
        return
    found = get_bank().auth.session_from_token(token, cookie_key())
    if found is not None:
        st.session_state["session_id"] = found[0]


def signed_in(sid: str) -> None:
    """Remember a new server-side session and have the browser keep its cookie."""
    st.session_state["session_id"] = sid
    st.session_state.pop("_session_ended", None)
    st.session_state["_cookie_checked"] = True
    request_cookie(get_bank().auth.issue_token(sid, cookie_key()))


def request_cookie(token: str | None) -> None:
    """Ask the browser to store (token) or delete (None) the cookie. The cookie component is
    drawn on every run until the browser confirms, because a rerun right after drawing it can
    remove it before its JavaScript ran."""
    st.session_state["_cookie_seq"] = st.session_state.get("_cookie_seq", 0) + 1
    st.session_state["_cookie_job"] = (st.session_state["_cookie_seq"], token)


def sign_out() -> None:
    """End the server-side session (a copied cookie stops working) and drop the cookie."""
    sid = st.session_state.get("session_id")
    if sid:
        get_bank().auth.end_session(sid, reason="logout")
    _forget_session()
    st.session_state["_cookie_checked"] = True  # never sign in again from the old cookie
    request_cookie(None)
    flash("You are signed out.")


def _forget_session() -> None:
    st.session_state.pop("session_id", None)
    # streamlit-authenticator's own session keys: clear them so its widget shows again.
    for key in ("name", "username", "authentication_status", "email", "roles"):
        st.session_state[key] = None


def client_address() -> str | None:
    """The browser's IP address as plain text, or None when unknown (Streamlit gives None for
    a browser on localhost, and AppTest has none); bankms throttles sign-ins and sign-ups by
    it. Behind a reverse proxy every browser arrives from the proxy's address, so one
    attacker would slow everybody down: set BANKMS_CLIENT_IP_HEADER to the header that the
    proxy sets (e.g. X-Forwarded-For); its last entry, the address the proxy saw, is used
    (earlier entries come from the client and can be forged)."""
    try:
        header = os.environ.get("BANKMS_CLIENT_IP_HEADER")
        if header:
            forwarded = (st.context.headers.get(header) or "").split(",")[-1].strip()
            if forwarded:
                return forwarded
        address = st.context.ip_address
    except Exception:  # no request context (bare runs): nothing to throttle by
        return None
    return str(address) if address else None


def make_authenticator(bank):
    """streamlit-authenticator set up for bankms: it draws the sign-in form and owns the cookie
    component, while bankms decides who gets in (back-off, equal timing, audit) and the cookie
    carries a token bound to our server-side session. Call once per run (the library's widgets
    have fixed keys)."""
    import streamlit_authenticator as stauth

    _quiet_cookie_manager()
    key = cookie_key()
    absolute_s = bank.settings.get_int("session_absolute_timeout_s", 43200)
    # The credentials dict holds no users and no hashes up front: our check adds the one user
    # who signed in, which is all the library needs to fill its session keys.
    authenticator = stauth.Authenticate({"usernames": {}}, cookie_name=COOKIE_NAME,
                                        cookie_key=key, cookie_expiry_days=absolute_s / 86400,
                                        auto_hash=False, login_sleep_time=0)
    model = authenticator.authentication_controller.authentication_model
    cookie = authenticator.cookie_controller.cookie_model

    def check_credentials(username, password):
        st.session_state.pop("_signin_error", None)
        try:
            actor = bank.auth.login(username, password, client_address=client_address())
        except BankError as exc:
            st.session_state["_signin_error"] = str(exc)
            return False
        model.credentials["usernames"][actor.username] = {
            "name": actor.full_name or actor.username, "email": None, "roles": [actor.role]}
        st.session_state["session_id"] = bank.auth.start_session(actor)
        st.session_state["_cookie_checked"] = True
        st.session_state.pop("_session_ended", None)
        return True

    model.check_credentials = check_credentials
    # Reading the cookie back is ours (restore_from_cookie), not the library's: its reader
    # trusts any unexpired token signed with the key and has no server-side session to ask.
    cookie.get_cookie = lambda: None
    # Writing goes through run_cookie_job, which keeps drawing the library's cookie component
    # until the browser confirms (the library draws it once, and a rerun can lose it).
    cookie.set_cookie = lambda: request_cookie(
        bank.auth.issue_token(st.session_state["session_id"], key))
    return authenticator


def _quiet_cookie_manager() -> None:
    """Stop the library's cookie manager from reading every cookie through a component at each
    start: that costs a hidden frame and a second script run per page load, and its answer is
    never used (the server reads the cookie from the request, st.context.cookies)."""
    import extra_streamlit_components as stx
    from streamlit_authenticator.models import cookie_model

    if getattr(cookie_model.stx, "_bankms_quiet", False):
        return

    class QuietCookieManager(stx.CookieManager):
        def __init__(self, key="init"):
            self.cookie_manager = stx.CookieManager.__init__.__globals__["_component_func"]
            self.cookies = {}

    class Namespace:
        _bankms_quiet = True
        CookieManager = QuietCookieManager
    cookie_model.stx = Namespace


def run_cookie_job(authenticator) -> None:
    """Draw the pending cookie write or delete until the browser reports it done."""
    job = st.session_state.get("_cookie_job")
    if not job:
        return
    seq, token = job
    # The cookie component has no height; keep its empty container from taking room.
    st.html("<style>.element-container:has(iframe[height='0']) {display: none;}</style>")
    component = authenticator.cookie_controller.cookie_model.cookie_manager.cookie_manager
    if token is None:
        done = component(method="delete", cookie=COOKIE_NAME, key=f"bankms_cookie_{seq}",
                         default=False)
    else:
        bank = get_bank()
        expires = bank.auth.session_expires_at(st.session_state.get("session_id")) or \
            dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
        options = {"path": "/", "expires": expires.replace(microsecond=0).isoformat() + "Z",
                   "sameSite": "strict"}
        if (st.context.url or "").startswith("https:"):
            options["secure"] = True  # never sent over plain http once served over https
        done = component(method="set", cookie=COOKIE_NAME, value=token, options=options,
                         key=f"bankms_cookie_{seq}", default=False)
    if done and st.session_state.get("_cookie_job") == job:
        st.session_state.pop("_cookie_job", None)


# -- small page helpers -------------------------------------------------------------------------
def form_key(name: str) -> str:
    """An idempotency key for one instance of a form, kept across reruns until reset. A
    signed-in browser's keys live in the database (bank.form_keys), so a click that lands on
    another app process after a failover reuses the key; a signed-out visitor's stay in this
    process's session state."""
    sid = st.session_state.get("session_id")
    if sid:
        try:
            return get_bank().form_keys.key(sid, name)
        except AuthenticationError:
            pass  # the session ended since this run checked it; the next run signs out
    slot = f"_form_key_{name}"
    if slot not in st.session_state:
        st.session_state[slot] = uuid.uuid4().hex
    return st.session_state[slot]


def reset_form_key(name: str) -> None:
    sid = st.session_state.get("session_id")
    if sid:
        get_bank().form_keys.reset(sid, name)
    st.session_state.pop(f"_form_key_{name}", None)


def flash(message: str, icon: str = ":material/check_circle:") -> None:
    """A message to show once, at the top of the next page drawn (it survives a rerun)."""
    st.session_state.setdefault("_flash", []).append((message, icon))


def land_on_offered_page(urls: list) -> str | None:
    """Make a browser's address that names no page of this user's navigation open the first
    page of `urls` (their home, or Sign in) instead of Streamlit's "Page not found" dialog.

    Call before st.navigation with the url paths in menu order. Streamlit serves its default
    (first) page at "/" only, so "/start", the home page's own path, named nothing; nor did a
    page of another role, or a typo. Returns the unknown path for a notice (None when the
    address was fine, bare, or the home page's own path).

    Reaches into Streamlit's page manager (1.67: `intended_page_name`, `set_script_intent`)
    because no public API says which path a fresh page load asked for; a menu click or
    st.switch_page names a page by its hash and is left alone."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx
    from streamlit.util import calc_hash

    manager = getattr(get_script_run_ctx(), "pages_manager", None)
    asked = getattr(manager, "intended_page_name", None)
    if not urls or not asked or manager.intended_page_script_hash:
        return None
    asked = asked.strip("/")
    if asked in urls[1:]:
        return None
    # The first page is served at "/"; its hash is that of its own url path.
    manager.set_script_intent(calc_hash(urls[0]), "")
    return None if asked in ("", urls[0]) else asked


def show_flashes() -> None:
    for message, icon in st.session_state.pop("_flash", []):
        st.toast(message, icon=icon)


def show_error(exc: Exception) -> None:
    """A refusal in plain words; anything unexpected without a traceback."""
    if isinstance(exc, BankError):
        st.error(md(str(exc)), icon=":material/error:")
    elif isinstance(exc, StoreUnavailable):
        # The connection died, perhaps after the server committed (the answer to COMMIT was
        # lost): "nothing was changed" could be false, and a person trusting it would enter
        # again what may be saved already (found in review).
        st.error("The bank's database did not answer, so this may or may not have been saved. "
                 "Please check (the account's history, the list) before you try again.",
                 icon=":material/error:")
    else:
        st.error("Something went wrong on our side; nothing was changed. Please try again.",
                 icon=":material/error:")


def money(value) -> str:
    """Cents (int) or a Decimal amount as '$1,234.50'."""
    if isinstance(value, int):
        return format_cents(value)
    return format_cents(int(bankms.to_decimal(value) * 100))


def figure_shown(unit: str, value) -> str:
    """A key figure as the dashboard and the manager's home show it; `unit` is "money"
    (value in cents), "percent" or a count."""
    if unit == "money":
        return money(int(value))
    if unit == "percent":
        return f"{value} %"
    return f"{int(value):,}"


def figure_change(unit: str, value, previous) -> str:
    """The change of a key figure from `previous` to `value`, signed, in the figure's unit
    (percentage points for a percent)."""
    if unit == "money":
        change = int(value) - int(previous)
        return ("+" if change > 0 else "") + money(change)
    if unit == "percent":
        change = value - previous
        return f"{'+' if change > 0 else ''}{change} pp"
    change = int(value) - int(previous)
    return f"{'+' if change > 0 else ''}{change:,}"


def lazy_tabs(spec: dict, key: str, *, keep=()) -> None:
    """Tabs labelled by spec's keys, of which only the open one runs its function (st.tabs
    on_change="rerun"; the first is open until another is clicked). A tab not drawn costs the
    browser nothing: on this machine each grid or form of a dozen widgets drawn up front cost
    a page about a tenth of a second of the browser's main thread (bench_pages_browser.py
    --profile). A tab labelled in `keep` (one holding a form), once opened, stays drawn while
    closed: what is typed in a form lives only in the browser until it is submitted, and a tab
    no longer drawn loses it. Tests open a tab by setting st.session_state[key] to its label
    and rerunning."""
    tabs = st.tabs(list(spec), key=key, on_change="rerun")
    opened = st.session_state.setdefault(f"_{key}_opened", set())
    for (label, draw), tab in zip(spec.items(), tabs):
        if tab.open and label in keep:
            opened.add(label)
        if tab.open or label in opened:
            with tab:
                draw()


def page_link(url: str, label: str | None = None, icon: str | None = None) -> None:
    """A link to another page of the signed-in user's navigation (nothing if not offered)."""
    page = st.session_state.get("_nav_pages", {}).get(url)
    if page is not None:
        st.page_link(page, label=label or page.title, icon=icon or page.icon)


def switch_to(url: str) -> None:
    page = st.session_state.get("_nav_pages", {}).get(url)
    if page is not None:
        st.switch_page(page)
    st.rerun()


# -- page discovery -----------------------------------------------------------------------------
def discover_pages() -> list:
    """Every pages/*.py module that declares a PAGE dict, in PAGE['order']."""
    found = []
    stems = {p.stem for p in PAGES_DIR.glob("*.py")}
    for path in sorted(PAGES_DIR.glob("*.py")):
        if path.stem in ("common", "__init__"):
            continue
        module = importlib.import_module(f"pages.{path.stem}")
        meta = getattr(module, "PAGE", None)
        if isinstance(meta, dict) and callable(getattr(module, "render", None)):
            # A url equal to a file's stem collides with the page Streamlit registers for the
            # pages/ folder itself, and that page runs the bare file (which draws nothing).
            if meta["url"] in stems:
                raise RuntimeError(f"pages/{path.name}: url '{meta['url']}' equals a file name")
            found.append((meta, module))
    found.sort(key=lambda item: (item[0].get("order", 100), item[0]["title"]))
    return found


def pages_for(role: str | None) -> list:
    role = role or "anonymous"
    return [(meta, module) for meta, module in discover_pages() if role in meta["roles"]]
