"""One vocabulary (issue 13, bankms/domain/labels.py): transaction labels from kind, channel and the
sign on the account, the same in SQL as in Python; channels stored with deposits and
withdrawals (and refused when unknown); the demo's card payments and salaries named as such
in history, the statement PDF and receipts."""
from __future__ import annotations

import datetime as dt
import io
import itertools

import duckdb
import pypdf
import pytest

import bankms
from bankms.domain import labels
from bankms.domain.errors import InvalidInput
from bankms.reporting.receipts import receipt_lines, receipt_pdf
from conftest import funded_account

# kind, channel, amount_cents on the account, the label people read
LABELS = [
    ("deposit", "cash", 5000, "Cash deposit"),
    ("deposit", "atm", 5000, "ATM deposit"),
    ("deposit", "salary", 420000, "Salary credit"),
    ("deposit", "card", 1200, "Card refund"),
    ("deposit", "transfer", 5000, "Transfer in"),
    ("deposit", None, 5000, "Deposit"),
    ("deposit", "", 5000, "Deposit"),
    ("withdrawal", "card", -3800, "Card payment"),
    ("withdrawal", "atm", -2000, "ATM withdrawal"),
    ("withdrawal", "cash", -2000, "Cash withdrawal"),
    ("withdrawal", "direct_debit", -7500, "Direct debit"),
    ("withdrawal", "transfer", -7500, "Transfer out"),
    ("withdrawal", None, -2000, "Withdrawal"),
    ("transfer", None, 1000, "Transfer in"),
    ("transfer", None, -1000, "Transfer out"),
    ("transfer", None, None, "Transfer"),
    ("transfer", "standing_order", -5000, "Standing order"),
    ("transfer", "standing_order", 5000, "Standing order"),
    ("loan_repayment", None, -5000, "Loan instalment"),
    ("loan_disbursement", None, 100000, "Loan disbursement"),
    ("loan_write_off", None, -100000, "Loan write-off"),
    ("interest", None, 170, "Interest"),
    ("overdraft_interest", None, -512, "Overdraft interest"),
    ("fee", None, -450, "Fee"),
    ("tax", None, -20, "Tax"),
    ("tax_withholding", None, -20, "Tax withheld"),
    ("penalty", None, -393, "Early closure penalty"),
    ("reversal", None, 2000, "Reversal"),
    ("reversal", "card", 2000, "Reversal"),
    ("some_new_kind", None, 1, "Some new kind"),
    ("deposit", "carrier_pigeon", 1, "Carrier pigeon"),
]


@pytest.mark.parametrize("kind, channel, amount_cents, expected", LABELS)
def test_transaction_label(kind, channel, amount_cents, expected):
    assert labels.transaction_label(kind, channel, amount_cents) == expected


@pytest.mark.parametrize("kind, channel, amount_cents, expected", LABELS)
def test_label_sql_says_what_python_says(kind, channel, amount_cents, expected):
    con = duckdb.connect()
    got = con.execute(f"SELECT {labels.label_sql('k', 'c', 'a')} FROM (SELECT ? AS k, "
                      "CAST(? AS VARCHAR) AS c, CAST(? AS BIGINT) AS a)",
                      [kind, channel, amount_cents]).fetchone()[0]
    assert got == expected


def test_label_sql_and_python_agree_on_every_known_pair():
    kinds = [*labels.KIND_LABELS, "unknown_kind"]
    channels = [None, *labels.CHANNEL_LABELS, "unknown_channel"]
    cases = list(itertools.product(kinds, channels, (-1, 0, 1, None)))
    con = duckdb.connect()
    con.execute("CREATE TABLE t (k VARCHAR, c VARCHAR, a BIGINT)")
    con.executemany("INSERT INTO t VALUES (?, ?, ?)", cases)
    got = con.execute(f"SELECT k, c, a, {labels.label_sql('k', 'c', 'a')} FROM t").fetchall()
    assert [(k, c, a, labels.transaction_label(k, c, a)) for k, c, a in cases] == got
    without_side = con.execute(f"SELECT k, c, {labels.label_sql('k', 'c')} FROM t").fetchall()
    assert all(label == labels.transaction_label(k, c) for k, c, label in without_side)


@pytest.mark.parametrize("code, expected", [
    ("loan_write_off", "Loan write-off"), ("avg_recency_days", "Avg recency days"),
    ("", ""), (None, ""), ("x", "X")])
def test_kind_label_and_humanize(code, expected):
    assert labels.kind_label(code) == expected


def test_every_label_is_human():
    every = [*labels.KIND_LABELS.values(), *labels.CHANNEL_LABELS.values(),
             *labels.KIND_CHANNEL_LABELS.values()]
    assert all("_" not in text and text[:1].isupper() for text in every)


# call, channel, the label stored and shown, the ledger account on the bank's side
CHANNELS = [
    ("deposit", "salary", "Salary credit", "GL1100"),
    ("deposit", "cash", "Cash deposit", "GL1000"),
    ("deposit", " ATM ", "ATM deposit", "GL1000"),
    ("withdraw", "card", "Card payment", "GL1100"),
    ("withdraw", "atm", "ATM withdrawal", "GL1000"),
    ("withdraw", "direct_debit", "Direct debit", "GL1100"),
]


@pytest.mark.parametrize("call, channel, label, gl", CHANNELS)
def test_payments_store_their_channel(bank, system, call, channel, label, gl):
    number = funded_account(bank, "100.00")
    receipt = getattr(bank.payments, call)(system, number, "10.00", memo="x", channel=channel)
    assert receipt.channel == channel.strip().lower()
    assert bank.accounts.history(system, number, limit=1)["label"].tolist() == [label]
    details = bank.payments.receipt_details(system, receipt.transaction_id)
    assert ("Type", label) in receipt_lines(details)
    legs = bank.read("SELECT a.account_number FROM postings p JOIN accounts a "
                     "ON a.id = p.account_id WHERE p.transaction_id = ? "
                     "AND a.customer_id IS NULL", [receipt.transaction_id])
    assert legs == [(gl,)]
    assert bank.audit.verify() == []


# call, channel, words the refusal must hold
REFUSED = [
    ("deposit", "carrier_pigeon", "cash (Cash), atm (ATM), card (Card payment)"),
    ("deposit", "direct_debit", "A deposit can be made by"),
    ("withdraw", "salary", "A withdrawal can be made by"),
    ("withdraw", "standing_order", "not 'standing_order'"),
    ("withdraw", None, "A withdrawal"),
    ("deposit", 7, "A deposit"),
    ("deposit", "", "A deposit"),
]


@pytest.mark.parametrize("call, channel, words", REFUSED)
def test_an_unknown_channel_is_refused_and_nothing_moves(bank, system, call, channel, words):
    number = funded_account(bank, "100.00")
    before = bank.read("SELECT count(*) FROM transactions")
    with pytest.raises(InvalidInput, match=words.replace("(", r"\(").replace(")", r"\)")):
        getattr(bank.payments, call)(system, number, "10.00", channel=channel)
    assert bank.read("SELECT count(*) FROM transactions") == before


def test_the_key_covers_the_channel(bank, system):
    from bankms.domain.errors import IdempotencyConflict
    number = funded_account(bank, "100.00")
    bank.payments.withdraw(system, number, "10.00", idempotency_key="k-1", channel="card")
    again = bank.payments.withdraw(system, number, "10.00", idempotency_key="k-1",
                                   channel="card")
    assert again.replayed and again.channel == "card"
    with pytest.raises(IdempotencyConflict):
        bank.payments.withdraw(system, number, "10.00", idempotency_key="k-1", channel="atm")


def test_a_payment_waiting_for_approval_keeps_its_channel(bank, system):
    from bankms.services.approvals import PendingApproval
    from conftest import employee
    number = funded_account(bank, "90000.00")
    maker, checker = employee(bank, "manager"), employee(bank, "manager")
    pending = bank.payments.deposit(maker, number, "60000.00", channel="salary",
                                    memo="Salary Acme")
    assert isinstance(pending, PendingApproval)
    bank.approvals.approve(checker, pending.request_id)
    assert bank.accounts.history(system, number, limit=1)["label"].tolist() == ["Salary credit"]


# A teller's payments move the teller's cash (GL1000), which the drawer count reconciles: a
# teller who could book a counter deposit as a card or salary credit (from clearing, GL1100)
# could keep the cash and still balance the drawer. call, channel, allowed to a teller
TELLER_CHANNELS = [
    ("deposit", "cash", True),
    ("deposit", "atm", True),
    ("deposit", "salary", False),
    ("deposit", "card", False),
    ("deposit", "transfer", False),
    ("withdraw", "cash", True),
    ("withdraw", "card", False),
    ("withdraw", "direct_debit", False),
]


@pytest.mark.parametrize("call, channel, allowed", TELLER_CHANNELS)
def test_a_teller_moves_money_only_through_the_tellers_cash(bank, system, call, channel,
                                                           allowed):
    from bankms.domain.errors import PermissionDenied
    from conftest import employee
    number = funded_account(bank, "100.00")
    teller = employee(bank, "teller")
    before = bank.read("SELECT count(*) FROM transactions")
    if allowed:
        getattr(bank.payments, call)(teller, number, "10.00", channel=channel)
        assert bank.read("SELECT count(*) FROM transactions") != before
        return
    with pytest.raises(PermissionDenied, match="teller"):
        getattr(bank.payments, call)(teller, number, "10.00", channel=channel)
    assert bank.read("SELECT count(*) FROM transactions") == before
    assert bank.read("SELECT count(*) FROM audit_log WHERE outcome = 'refused' "
                     "AND action = ?", ["payment." + call]) == [(1,)]


def test_bulk_refuses_an_unknown_channel(bank, system):
    import pandas as pd
    from bankms.services.bulk import BulkInvariantError
    number = funded_account(bank, "100.00")
    (aid,) = bank.read_one("SELECT id FROM accounts WHERE account_number = ?", [number])
    (gl,) = bank.read_one("SELECT id FROM accounts WHERE account_number = 'GL1100'")
    tx = pd.DataFrame({"tx_ref": [0], "kind": ["deposit"], "amount_cents": [100],
                       "channel": ["pigeon"]})
    postings = pd.DataFrame({"tx_ref": [0, 0], "account_id": [gl, aid],
                             "amount_cents": [-100, 100]})
    with pytest.raises(BulkInvariantError, match="pigeon"):
        bank.ledger.post_frames(system, tx, postings)


# -- the demo: card payments, ATM cash and salaries as such, everywhere they are read --------
@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from bankms.demo import build_demo
    path = tmp_path_factory.mktemp("labels-demo") / "bank.duckdb"
    bank = bankms.open_bank(str(path), bcrypt_rounds=4)
    build_demo(bank, customers=12, months=2, seed=5)
    alice = bank.auth.login("alice", "alice-demo-pass")
    number = bank.accounts.list(alice).query("kind == 'checking'")["account_number"].iloc[0]
    yield bank, alice, number
    bank.close()


def _last_full_month(bank):
    first = bank.business_date.replace(day=1) - dt.timedelta(days=1)
    return first.year, first.month


def test_the_demo_records_its_channels(demo):
    bank, _, _ = demo
    rows = dict(bank.read(
        "SELECT channel, count(*) FROM transactions WHERE kind IN ('deposit', 'withdrawal') "
        "GROUP BY 1"))
    assert {"card", "atm", "salary", "direct_debit", "transfer"} <= set(rows), rows
    assert None not in rows  # every demo deposit and withdrawal says how it came or went
    wrong = bank.read("SELECT count(*) FROM transactions WHERE memo LIKE 'Card payment %' "
                      "AND channel IS DISTINCT FROM 'card'")
    assert wrong == [(0,)]
    assert bank.read("SELECT count(*) FROM transactions WHERE memo = 'Standing order to "
                     "savings' AND channel IS DISTINCT FROM 'standing_order'") == [(0,)]
    assert bank.audit.verify() == []


def test_history_names_card_payments_and_salaries(demo):
    bank, alice, number = demo
    history = bank.accounts.history(alice, number)
    card = history[history["memo"].str.startswith("Card payment ")]
    salary = history[history["memo"].str.startswith("Salary ")]
    assert len(card) and set(card["label"]) == {"Card payment"}
    assert len(salary) and set(salary["label"]) == {"Salary credit"}
    # No kind codes where people read: counterparty only ever holds an account number.
    assert set(history["counterparty"]) <= {""} | set(history["source_account"].dropna()) | \
        set(history["target_account"].dropna())
    assert not set(history["counterparty"]) & {"withdrawal", "deposit", "loan_repayment"}
    chosen = bank.accounts.history_labels(alice, number)
    assert {"Card payment", "Salary credit", "ATM withdrawal"} <= set(chosen)
    assert all("_" not in label for label in chosen)
    only = bank.accounts.history(alice, number, label="Card payment")
    assert len(only) == len(card)


def test_the_statement_pdf_says_card_payment_and_salary_credit(demo):
    bank, alice, number = demo
    year, month = _last_full_month(bank)
    statement = bank.reports.statement(alice, number, year, month)
    described = statement.lines["description"].tolist()
    assert any(d.startswith("Card payment ") for d in described)
    assert any(d.startswith("Salary credit - Salary ") for d in described)
    text = "".join(page.extract_text() for page in
                   pypdf.PdfReader(io.BytesIO(statement.to_pdf())).pages)
    flat = " ".join(text.split())
    assert "Card payment" in flat and "Salary credit" in flat
    assert "Cash withdrawal - Card payment" not in flat and "Cash deposit - Salary" not in flat
    assert "(Checking)" in flat and "(checking)" not in flat  # the account kind in words
    assert "Card payment" in statement.to_csv()


def test_receipts_name_the_card_payment_and_the_salary(demo):
    bank, alice, number = demo
    history = bank.accounts.history(alice, number)
    for prefix, label in (("Card payment ", "Card payment"), ("Salary ", "Salary credit")):
        tid = int(history[history["memo"].str.startswith(prefix)]["transaction_id"].iloc[0])
        details = bank.payments.receipt_details(alice, tid)
        assert ("Type", label) in receipt_lines(details)
        text = pypdf.PdfReader(io.BytesIO(receipt_pdf(details))).pages[0].extract_text()
        assert label in text and "Cash" not in text


def test_dashboard_volume_legends_are_labels(demo):
    bank, _, _ = demo
    from conftest import employee
    manager = employee(bank, "manager")
    f = bank.reports.filters(days=60)
    volume = bank.reports.query(manager, "daily_volume", f)
    kinds = set(volume["kind"])
    assert {"Card payment", "Salary credit", "ATM withdrawal", "Direct debit"} <= kinds, kinds
    assert all("_" not in k for k in kinds)


# account kind code, as people read it
ACCOUNT_KINDS = [("checking", "Checking"), ("savings", "Savings"),
                 ("term_deposit", "Term deposit"), ("new_kind", "New kind")]


@pytest.mark.parametrize("code, expected", ACCOUNT_KINDS)
def test_account_kind_label_in_python_and_sql(code, expected):
    assert labels.account_kind_label(code) == expected
    con = duckdb.connect()
    assert con.execute(f"SELECT {labels.account_kind_sql('k')} FROM (SELECT ? AS k)",
                       [code]).fetchone()[0] == expected
