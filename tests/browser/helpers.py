"""Reusable pieces for browser tests: start the app on its own database, drive Chromium, sign
in and out, forge cookies. Page authors import these: `from browser.helpers import login`.

The server is a real `streamlit run app.py` on a free port, with BANKMS_DB pointing at a file
that the test built beforehand through bankms (and closed: DuckDB lets one process hold it).
"""
from __future__ import annotations

import contextlib
import datetime as dt
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import jwt

REPO = pathlib.Path(__file__).resolve().parents[2]
# Screenshots of the journeys, kept by CI as artifacts (git-ignored).
ARTIFACTS = REPO / "artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1366, "height": 768}
COOKIE_NAME = "bankms_session"
# The longest any wait on a condition may take: generous, since CI machines and this shared
# 2-core one can be very busy (a dashboard took over 30 s to draw at a load average of 35).
WAIT_MS = 60_000
# How often a wait looks at its condition again (Playwright delivers page events meanwhile).
POLL_MS = 50
# Every request a browser context made here sent to a host other than the app's; the autouse
# fixture of conftest.py fails the test that caused one.
FOREIGN_REQUESTS: list = []

# The users every standard test bank has: role -> (username, password, full name).
USERS = {
    "manager": ("mara", "manager password 1", "Mara Manager"),
    "teller": ("theo", "teller password 1", "Theo Teller"),
    "customer": ("alice", "customer password 1", "Alice Example"),
    "pending": ("pete", "pending password 1", "Pete Pending"),
}
# Text that only signed-in staff or the customer herself may ever see.
SECRET_TEXT = ("Alice Example", "Mara Manager", "Theo Teller", "Pete Pending")


def chromium_available() -> bool:
    return os.path.exists(CHROMIUM) and shutil.which(CHROMIUM) is not None


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def seed_standard_bank(bank) -> dict:
    """Manager, teller, an active customer with a funded account and a pending customer.
    Returns facts tests need (account number, customer ids)."""
    system = bank.system_actor()
    for role in ("manager", "teller"):
        username, password, name = USERS[role]
        bank.users.create(system, username=username, password=password, role=role,
                          full_name=name)
    cid = bank.customers.create(system, full_name=USERS["customer"][2],
                                email="alice@example.com", phone="+1 555 0100",
                                date_of_birth="1990-01-02", national_id="BRW000001",
                                address="1 Main Street")
    account = bank.accounts.open(system, cid, kind="checking")
    bank.payments.deposit(system, account, "1234.56")
    username, password, _ = USERS["customer"]
    bank.users.create(system, username=username, password=password, role="customer",
                      customer_id=cid)
    username, password, name = USERS["pending"]
    bank.customers.register(
        full_name=name, email="pete@example.com", phone="+1 555 0102",
        date_of_birth="1992-03-04", national_id="BRW000002", address="2 Side Street",
        username=username, password=password)
    pending = bank.users.get(username)["customer_id"]
    return {"customer_id": cid, "account": account, "pending_customer_id": pending}


class Server:
    """A running `streamlit run app.py` on its own database file and cookie key."""

    def __init__(self, folder: pathlib.Path, *, seed=seed_standard_bank, settings=None,
                 env=None, prepare=None):
        import bankms
        from bankms.services import tokens

        self.folder = pathlib.Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.db_path = str(self.folder / "bank.duckdb")
        self.key_path = str(self.folder / "cookie.key")
        self.key = tokens.load_or_create_key(self.key_path)
        self.facts, self.prepared = {}, None
        if seed or settings or prepare:
            bank = bankms.open_bank(self.db_path, bcrypt_rounds=4)
            try:
                system = bank.system_actor()
                for key, value in (settings or {}).items():
                    bank.settings.set(system, key, value)
                self.facts = seed(bank) if seed else {}
                # Anything else a test needs in the database before the server holds the
                # file, such as sessions whose cookies the test will present.
                self.prepared = prepare(bank, self) if prepare else None
            finally:
                bank.close()
        # else: the app meets the database as it is (or makes it, on a first start).
        self.log_path = self.folder / "server.log"
        server_env = {k: v for k, v in os.environ.items() if k != "BANKMS_COOKIE_KEY"}
        server_env.update({"BANKMS_DB": self.db_path, "BANKMS_COOKIE_KEY_FILE": self.key_path,
                           "BANKMS_BCRYPT_ROUNDS": "4", "BANKMS_NO_DEMO": "1", **(env or {})})
        # A free port can be taken by another process (another xdist worker's server) between
        # free_port() closing it and Streamlit binding it: then start again on a new port.
        for attempt in range(3):
            self.port = free_port()
            self.url = f"http://127.0.0.1:{self.port}"
            self._log = open(self.log_path, "w")
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port",
                 str(self.port), "--server.address", "127.0.0.1", "--server.headless", "true",
                 "--browser.gatherUsageStats", "false"],
                cwd=REPO, env=server_env, stdout=self._log, stderr=subprocess.STDOUT,
                start_new_session=True)
            try:
                self._wait_healthy()
                return
            except RuntimeError:
                if attempt == 2 or "is not available" not in self.log():
                    raise
                self.stop()

    def _wait_healthy(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"streamlit exited early:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.url + "/_stcore/health", timeout=2) as reply:
                    if reply.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"streamlit did not become healthy:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text()[-4000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self._log.close()

    def open_bank(self):
        """The database after the server stopped (the server holds the lock while it runs)."""
        import bankms
        return bankms.open_bank(self.db_path, bcrypt_rounds=4)


def make_session(bank, username) -> str:
    """A live server-side session for a user, made while the server is not running."""
    actor = bank.auth.actor_for(username)
    return bank.auth.start_session(actor)


def sign_token(key, *, sid, username, expires_in_s=3600) -> str:
    exp = int(time.time()) + expires_in_s
    return jwt.encode({"sid": sid, "username": username, "exp": exp, "exp_date": exp}, key,
                      algorithm="HS256")


def cookie(server: Server, token: str) -> dict:
    return {"name": COOKIE_NAME, "value": token, "url": server.url}


# -- driving the page ---------------------------------------------------------------------------
def is_foreign(url: str, app_url: str) -> bool:
    """True for a web request to any host but the app's (data:, blob: and about: stay local)."""
    parts = urllib.parse.urlsplit(url)
    return parts.scheme in ("http", "https", "ws", "wss") and \
        parts.netloc != urllib.parse.urlsplit(app_url).netloc


def _check_host(url: str, app_url: str) -> None:
    if is_foreign(url, app_url):
        FOREIGN_REQUESTS.append(url)


def new_context(browser, server: Server, *, viewport=None, cookies=()):
    """A browser context holding only the given cookies, whose every request to another host
    is recorded in FOREIGN_REQUESTS (the app must serve all it needs itself)."""
    context = browser.new_context(viewport=viewport or DESKTOP)
    context._bankms_app_url = server.url
    context.on("request", lambda request: _check_host(request.url, server.url))
    if cookies:
        context.add_cookies(list(cookies))
    return context


# ScriptFinishedStatus.FINISHED_EARLY_FOR_RERUN: st.rerun or a widget change stopped the run
# and another run follows at once.
_FINISHED_EARLY_FOR_RERUN = 2
# The page shows that the last run has finished.
_PAGE_IDLE_JS = ("() => !!document.querySelector("
                 "'[data-testid=stApp][data-test-script-state=notRunning]')")
# The widget key of the cookie component that app.py draws while a cookie write is pending
# (pages.common.run_cookie_job); its answer starts one more run.
_COOKIE_WIDGET = "bankms_cookie_"


def _watch_frames(page) -> None:
    """Follow the websocket (Streamlit's protobufs): how many runs started, whether the last run
    chain has finished as the server says it (and no rerun the page asked for is still to
    come), and how many answers the cookie component sent."""
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    state = {"frames": 0, "runs": 0, "idle": False, "rerun_follows": False, "cookie_answers": 0}

    def on_sent(payload):
        if isinstance(payload, str):
            return
        message = BackMsg.FromString(payload)
        if message.WhichOneof("type") == "rerun_script":
            state["idle"] = False  # a run will follow this request
            widgets = message.rerun_script.widget_states.widgets
            if any(_COOKIE_WIDGET in widget.id for widget in widgets):
                state["cookie_answers"] += 1

    def on_frame(payload):
        state["frames"] += 1
        if isinstance(payload, str):
            return
        message = ForwardMsg.FromString(payload)
        kind = message.WhichOneof("type")
        if kind == "new_session":
            state["runs"] += 1
            state["idle"] = False
        elif kind == "script_finished":
            state["rerun_follows"] = message.script_finished == _FINISHED_EARLY_FOR_RERUN
        elif kind == "session_status_changed":
            running = message.session_status_changed.script_is_running
            state["idle"] = not running and not state["rerun_follows"]

    def on_socket(socket):
        app_url = getattr(page.context, "_bankms_app_url", None)
        if app_url:
            _check_host(socket.url, app_url)
        state["idle"] = False  # a new session: nothing is done until its server says so
        socket.on("framereceived", on_frame)
        socket.on("framesent", on_sent)
    page.on("websocket", on_socket)
    page._bankms_frames = state


def _wait_until(page, condition, what: str, timeout_ms: int = WAIT_MS) -> None:
    """Look at condition() until it holds; page events keep arriving while we wait."""
    deadline = time.monotonic() + timeout_ms / 1000
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout_ms / 1000:.0f} s for {what}")
        page.wait_for_timeout(POLL_MS)


def settle(page) -> None:
    """Wait until the app is idle: the server said its last run chain has finished (no rerun
    follows), the page shows that, and no cookie write is pending. Conditions only: a slow
    machine makes this wait longer, never shorter."""
    state = page._bankms_frames
    _wait_until(page, lambda: state["idle"] and _page_idle(page) and state["idle"],
                "the app to finish its runs")


def _page_idle(page) -> bool:
    try:
        return page.evaluate(_PAGE_IDLE_JS)
    except Exception:  # the page is navigating: its new document is not idle yet
        return False


def wait_for_cookie_answer(page, before: int) -> None:
    """Wait until the cookie component reported a write or delete done (a count of its answers
    above `before`, read before the click), then for the run that answer starts."""
    state = page._bankms_frames
    _wait_until(page, lambda: state["cookie_answers"] > before, "the cookie component's answer")
    settle(page)


def new_page(browser, server: Server, path: str = "", *, viewport=None, cookies=()):
    """A fresh browser context (no cookies but those given) opened at server.url + path."""
    context = new_context(browser, server, viewport=viewport, cookies=cookies)
    page = context.new_page()
    _watch_frames(page)
    page.goto(server.url + "/" + path.lstrip("/"))
    settle(page)
    return page


def visit_each(browser, server: Server, paths, *, cookies=(), viewport=None, tabs: int = 4):
    """Yield (path, page) for each path, each a new page load (a new Streamlit session) in one
    new browser context that holds only the given cookies. Up to `tabs` pages load side by
    side; the shared context keeps the browser cache warm."""
    context = new_context(browser, server, viewport=viewport, cookies=cookies)
    try:
        paths = list(paths)
        for start in range(0, len(paths), tabs):
            batch = []
            for path in paths[start:start + tabs]:
                page = context.new_page()
                _watch_frames(page)
                page.goto(server.url + "/" + path.lstrip("/"), wait_until="commit")
                batch.append((path, page))
            for path, page in batch:
                page.wait_for_load_state("load")
                settle(page)
                yield path, page
            for _, page in batch:
                page.close()
    finally:
        context.close()


# No element still waits for its lazily loaded code (Streamlit's Suspense fallback, stSkeleton),
# every table in view has its canvas and every chart its drawing (both draw after the run that
# sent them has ended; those in closed tabs or expanders wait), and no CSS transition is still
# running: elements faded during a run come back through an opacity transition, and a page read
# mid-way (axe's colour contrast, a screenshot) sees grey text (seen on a loaded machine).
_DRAWN_JS = """() => {
  const all = (sel, inner) => [...document.querySelectorAll(sel)]
    .every(e => !e.checkVisibility() || e.querySelector(inner));
  return !document.querySelector('[data-testid=stSkeleton]') &&
         all('[data-testid=stDataFrame]', 'canvas') &&
         all('[data-testid=stEChartsChart]', 'svg text') &&
         !document.getAnimations().some(a => a instanceof CSSTransition &&
                                             a.playState === 'running');
}"""


def wait_drawn(page) -> None:
    """Wait until the settled page has drawn its tables and charts, and the browser has
    painted them (two animation frames), e.g. before a screenshot."""
    settle(page)
    page.wait_for_function(_DRAWN_JS, timeout=WAIT_MS)
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")


def main_text(page) -> str:
    return page.locator("[data-testid=stMain]").inner_text()


def page_title(page) -> str:
    """The title of the page the server chose to run ('Sign in', 'Employees', ...)."""
    return page.title().removesuffix(" · bankms")


def login(page, username: str, password: str, *, expect_success: bool = True) -> None:
    """Sign in through the sign-in form of the page (which must show it)."""
    page.get_by_role("textbox", name="Username").fill(username)
    page.get_by_role("textbox", name="Password").fill(password)
    answers = page._bankms_frames["cookie_answers"]
    click_and_settle(page, page.get_by_role("button", name="Sign in", exact=True),
                     settle_after=not expect_success)
    if expect_success:
        page.get_by_role("button", name="Sign out").wait_for(timeout=WAIT_MS)
        wait_for_cookie(page)
        wait_for_cookie_answer(page, answers)


def click_and_settle(page, locator, *, settle_after: bool = True) -> None:
    """Click, wait until the run the click starts has begun, then settle."""
    state = page._bankms_frames
    before = state["runs"]
    locator.click()
    _wait_until(page, lambda: state["runs"] > before, "the run the click starts")
    if settle_after:
        settle(page)


def error_text(page) -> str:
    """The text of the error messages on the page, without their icons."""
    texts = page.get_by_test_id("stAlertContentError").all_inner_texts()
    return "\n".join(t.strip().splitlines()[-1] for t in texts if t.strip())


def wait_for_cookie(page, present: bool = True, *, other_than: str | None = None) -> dict | None:
    """The session cookie once the browser has it (with a value other than `other_than`, if
    given), or None once it is gone."""
    def found():
        return next((c for c in page.context.cookies() if c["name"] == COOKIE_NAME), None)

    def done():
        cookie_ = found()
        if not present:
            return cookie_ is None
        return cookie_ is not None and cookie_["value"] != other_than
    _wait_until(page, done, f"the session cookie to be {'set' if present else 'removed'}")
    return found()


def logout(page) -> None:
    answers = page._bankms_frames["cookie_answers"]
    click_and_settle(page, page.get_by_role("button", name="Sign out"))
    page.get_by_role("button", name="Sign in", exact=True).wait_for(timeout=WAIT_MS)
    wait_for_cookie(page, present=False)
    wait_for_cookie_answer(page, answers)


def sidebar_text(page) -> str:
    sidebar = page.locator("[data-testid=stSidebar]")
    return sidebar.inner_text() if sidebar.count() else ""


def screenshot(page, name: str) -> pathlib.Path:
    """A full-page PNG under artifacts/screenshots/ (kept by CI as an artifact)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)
