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
import urllib.request

import jwt

REPO = pathlib.Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1366, "height": 900}
COOKIE_NAME = "bankms_session"
WAIT_MS = 30_000

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
        from bankms import tokens

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
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.folder / "server.log"
        server_env = {k: v for k, v in os.environ.items() if k != "BANKMS_COOKIE_KEY"}
        server_env.update({"BANKMS_DB": self.db_path, "BANKMS_COOKIE_KEY_FILE": self.key_path,
                           "BANKMS_BCRYPT_ROUNDS": "4", "BANKMS_NO_DEMO": "1", **(env or {})})
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port",
             str(self.port), "--server.address", "127.0.0.1", "--server.headless", "true",
             "--browser.gatherUsageStats", "false"],
            cwd=REPO, env=server_env, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True)
        self._wait_healthy()

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
def _watch_frames(page) -> None:
    """Count the server's websocket messages: every script run sends some, so a quiet socket
    plus an idle app means the page is done (even reruns started by a component)."""
    state = {"frames": 0, "last": time.monotonic()}

    def bump(_payload):
        state["frames"] += 1
        state["last"] = time.monotonic()
    page.on("websocket", lambda ws: ws.on("framereceived", bump))
    page._bankms_frames = state


def settle(page, quiet_s: float = 0.3) -> None:
    """Wait until the app is idle: no script running and no server message for quiet_s."""
    idle = "[data-testid=stApp][data-test-script-state=notRunning]"
    state = getattr(page, "_bankms_frames", None)
    deadline = time.monotonic() + WAIT_MS / 1000
    while time.monotonic() < deadline:
        page.wait_for_selector(idle, timeout=WAIT_MS)
        quiet_since = state["last"] if state else time.monotonic()
        if time.monotonic() - quiet_since >= quiet_s and page.locator(idle).count():
            return
        page.wait_for_timeout(100 if state else int(quiet_s * 1000))
        if not state and page.locator(idle).count():
            return
    raise AssertionError("the app did not settle")


def new_page(browser, server: Server, path: str = "", *, viewport=None, cookies=()):
    """A fresh browser context (no cookies but those given) opened at server.url + path."""
    context = browser.new_context(viewport=viewport or DESKTOP)
    if cookies:
        context.add_cookies(list(cookies))
    page = context.new_page()
    _watch_frames(page)
    page.goto(server.url + "/" + path.lstrip("/"))
    settle(page)
    return page


def visit_each(browser, server: Server, paths, *, cookies=(), viewport=None, tabs: int = 4):
    """Yield (path, page) for each path, each a new page load (a new Streamlit session) in one
    new browser context that holds only the given cookies. Up to `tabs` pages load side by
    side; the shared context keeps the browser cache warm."""
    context = browser.new_context(viewport=viewport or DESKTOP)
    try:
        if cookies:
            context.add_cookies(list(cookies))
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


def main_text(page) -> str:
    return page.locator("[data-testid=stMain]").inner_text()


def page_title(page) -> str:
    """The title of the page the server chose to run ('Sign in', 'Employees', ...)."""
    return page.title().removesuffix(" · bankms")


def login(page, username: str, password: str, *, expect_success: bool = True) -> None:
    """Sign in through the sign-in form of the page (which must show it)."""
    page.get_by_role("textbox", name="Username").fill(username)
    page.get_by_role("textbox", name="Password").fill(password)
    click_and_settle(page, page.get_by_role("button", name="Sign in", exact=True),
                     settle_after=not expect_success)
    if expect_success:
        page.get_by_role("button", name="Sign out").wait_for(timeout=WAIT_MS)
        wait_for_cookie(page)
        settle(page)


def click_and_settle(page, locator, *, settle_after: bool = True) -> None:
    """Click, wait for the server to answer (the run the click starts), then settle."""
    state = page._bankms_frames
    before = state["frames"]
    locator.click()
    deadline = time.monotonic() + 10
    while state["frames"] == before and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    if settle_after:
        settle(page)


def error_text(page) -> str:
    """The text of the error messages on the page, without their icons."""
    texts = page.get_by_test_id("stAlertContentError").all_inner_texts()
    return "\n".join(t.strip().splitlines()[-1] for t in texts if t.strip())


def wait_for_cookie(page, present: bool = True, timeout_s: float = 15.0) -> dict | None:
    """The session cookie once the browser has it (or once it is gone)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = next((c for c in page.context.cookies() if c["name"] == COOKIE_NAME), None)
        if (found is not None) == present:
            return found
        page.wait_for_timeout(200)
    raise AssertionError(f"session cookie {'never set' if present else 'never removed'}")


def logout(page) -> None:
    click_and_settle(page, page.get_by_role("button", name="Sign out"))
    page.get_by_role("button", name="Sign in", exact=True).wait_for(timeout=WAIT_MS)
    wait_for_cookie(page, present=False)
    settle(page)


def sidebar_text(page) -> str:
    sidebar = page.locator("[data-testid=stSidebar]")
    return sidebar.inner_text() if sidebar.count() else ""


def screenshot(page, name: str) -> pathlib.Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)
