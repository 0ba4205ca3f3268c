"""Reports on small hand-built ledgers whose answers were worked out by hand.

The ledger below is posted through the bulk path with backdated times (year 2025). Its
balances, month by month:

    account  holder  Jan 31    Feb 28    Jun 30    Dec 31
    A1 chk   Ann      798.00    748.00    748.00    758.00
    S1 sav   Ann      201.50    203.20    197.90    197.90
    B1 chk   Bob      500.00    -50.00  1,150.00  1,150.00   (overdraft limit 200.00)
    C1 chk   Cat       30.00     30.00  6,030.00  6,030.00
    Dan has no accounts and joined on 15 Feb 2025.
"""
from __future__ import annotations

import datetime as dt
import io
import sqlite3
import zipfile
from decimal import Decimal

import numpy as np
import pandas as pd
import pypdf
import pytest
from conftest import employee, login_for, make_customer

import bankms
from bankms.reporting import analytics
from bankms.reporting.analytics import Filters
from bankms.bank import INTERNAL
from bankms.domain.errors import (
    AccountNotFound,
    InvalidAccountNumber,
    InvalidInput,
    PermissionDenied,
)
from bankms.services.ledger import PostingRequest

LEDGER = [
    # posted at, kind, legs (account, signed cents), memo
    ("2025-01-02 09:00", "deposit", [("TELLER", -3000), ("C1", 3000)], ""),
    ("2025-01-05 10:00", "deposit", [("TELLER", -100000), ("A1", 100000)], ""),
    ("2025-01-10 10:00", "deposit", [("TELLER", -50000), ("B1", 50000)], ""),
    ("2025-01-15 10:00", "transfer", [("A1", -20000), ("S1", 20000)], "to savings"),
    ("2025-01-31 23:00", "interest", [("GL5000", -150), ("S1", 150)], ""),
    ("2025-01-31 23:30", "fee", [("A1", -200), ("GL4100", 200)], "monthly fee"),
    ("2025-02-03 10:00", "withdrawal", [("A1", -10000), ("TELLER", 10000)], ""),
    ("2025-02-10 10:00", "transfer", [("B1", -5000), ("A1", 5000)], "dinner"),
    ("2025-02-20 10:00", "withdrawal", [("B1", -50000), ("TELLER", 50000)], ""),
    ("2025-02-28 23:00", "interest", [("GL5000", -170), ("S1", 170)], ""),
    ("2025-03-01 09:00", "deposit", [("CLEARING", -60000), ("B1", 60000)], "Salary"),
    ("2025-03-10 09:00", "deposit", [("TELLER", -600000), ("C1", 600000)], ""),
    ("2025-04-01 09:00", "deposit", [("CLEARING", -60000), ("B1", 60000)], "Salary"),
    ("2025-06-30 12:00", "penalty", [("S1", -500), ("GL4000", 500)], "early withdrawal"),
    ("2025-06-30 12:00", "tax_withholding", [("S1", -30), ("CLEARING", 30)], ""),
    ("2025-09-15 10:00", "deposit", [("TELLER", -1000), ("A1", 1000)], ""),
]
INTERNAL_NAMES = {"TELLER": INTERNAL["teller_cash"], "CLEARING": INTERNAL["clearing"],
                  "GL5000": INTERNAL["interest_expense"], "GL4100": INTERNAL["fee_income"],
                  "GL4000": INTERNAL["interest_income"]}
FEB = Filters(start="2025-02-01", end="2025-02-28")
FEB_SAVINGS = Filters(start="2025-02-01", end="2025-02-28", kind="savings")


def backdate(bank, *, customer_id=None, account=None, when):
    """Test set-up only: make a customer or account look older than the test run."""
    when = dt.datetime.fromisoformat(when)
    if customer_id is not None:
        bank.write(lambda uow: uow.execute("UPDATE customers SET created_at = ? WHERE id = ?",
                                           [when, customer_id]))
    if account is not None:
        bank.write(lambda uow: uow.execute(
            "UPDATE accounts SET opened_at = ?, opened_date = ? WHERE account_number = ?",
            [when, when.date(), account]))


def post_backdated(bank, rows, names):
    """Post (when, kind, legs, memo) rows through the bulk path, one batch per row."""
    system = bank.system_actor()
    for when, kind, legs, memo in rows:
        numbers = [(names.get(n) or INTERNAL_NAMES[n], cents) for n, cents in legs]
        ids = {num: bank.read_one("SELECT id FROM accounts WHERE account_number = ?", [num])[0]
               for num, _ in numbers}
        customer = {num for num, _ in numbers if not num.startswith("GL")}
        source = next((num for num, c in numbers if c < 0 and num in customer), None)
        target = next((num for num, c in numbers if c > 0 and num in customer), None)
        tx = pd.DataFrame({"tx_ref": [0], "kind": [kind],
                           "amount_cents": [sum(c for _, c in numbers if c > 0)],
                           "memo": [memo], "source_account": [source],
                           "target_account": [target],
                           "posted_at": [dt.datetime.fromisoformat(when)],
                           "business_date": [dt.date.fromisoformat(when[:10])]})
        postings = pd.DataFrame({"tx_ref": [0] * len(numbers),
                                 "account_id": [ids[num] for num, _ in numbers],
                                 "amount_cents": [c for _, c in numbers]})
        bank.ledger.post_frames(system, tx, postings)


@pytest.fixture(scope="module")
def ledger(tmp_path_factory):
    bank = bankms.open_bank(str(tmp_path_factory.mktemp("reports") / "bank.duckdb"),
                            bcrypt_rounds=4)
    system = bank.system_actor()
    ann = make_customer(bank, name="Ann Able")
    bob = make_customer(bank, name="Bob Baker")
    cat = make_customer(bank, name="Cat Cole")
    dan = make_customer(bank, name="Dan Dunn")
    names = {
        "A1": bank.accounts.open(system, ann, "checking"),
        "S1": bank.accounts.open(system, ann, "savings"),
        "B1": bank.accounts.open(system, bob, "checking", overdraft_limit="200.00"),
        "C1": bank.accounts.open(system, cat, "checking"),
    }
    for cid, when in ((ann, "2024-12-01"), (bob, "2025-01-08"), (cat, "2024-11-01"),
                      (dan, "2025-02-15")):
        backdate(bank, customer_id=cid, when=when)
    for name, when in (("A1", "2024-12-01"), ("S1", "2024-12-01"), ("B1", "2025-01-08"),
                       ("C1", "2024-11-01")):
        backdate(bank, account=names[name], when=when)
    post_backdated(bank, LEDGER, names)
    manager = employee(bank, "manager")
    teller = employee(bank, "teller")
    ns = type("Ledger", (), {})()
    ns.bank, ns.names, ns.manager, ns.teller = bank, names, manager, teller
    ns.customers = {"Ann": ann, "Bob": bob, "Cat": cat, "Dan": dan}
    ns.ann_login = login_for(bank, ann, "ann.able")
    ns.bob_login = login_for(bank, bob, "bob.baker")
    yield ns
    assert bank.audit.verify() == []
    bank.close()


def figures(df):
    return {row.figure: (row.value, row.previous) for row in df.itertuples()}


# -- dashboard -----------------------------------------------------------------------------------
@pytest.mark.parametrize("filters, figure, expected", [
    (FEB, "Total deposits", (98120, 152950)),
    (FEB, "Loans outstanding", (0, 0)),
    (FEB, "Portfolio at risk > 30 days", (Decimal("0.00"), Decimal("0.00"))),
    (FEB, "Non-performing loans", (Decimal("0.00"), Decimal("0.00"))),
    (FEB, "Active customers", (2, 2)),
    (FEB, "New customers", (1, 1)),
    (FEB, "New accounts", (0, 1)),
    (FEB, "Net flow", (-59830, 149950)),
    (FEB_SAVINGS, "Total deposits", (20320, 20150)),
    (FEB_SAVINGS, "Active customers", (0, 1)),
    (FEB_SAVINGS, "New accounts", (0, 0)),
    (FEB_SAVINGS, "Net flow", (170, 20150)),
])
def test_key_figures(ledger, filters, figure, expected):
    df = ledger.bank.reports.query(ledger.manager, "key_figures", filters)
    assert figures(df)[figure] == expected


def test_key_figures_table_for_download(ledger):
    from bankms.reporting.reports import key_figures_table
    table = key_figures_table(ledger.bank.reports.query(ledger.manager, "key_figures", FEB))
    rows = {row.figure: (row.unit, row.value, row.previous, row.change)
            for row in table.itertuples()}
    assert rows["Total deposits"] == ("$", Decimal("981.20"), Decimal("1529.50"),
                                      Decimal("-548.30"))
    assert rows["Active customers"] == ("count", 2, 2, 0)
    assert rows["Non-performing loans"] == ("%", Decimal("0.00"), Decimal("0.00"),
                                            Decimal("0.00"))


@pytest.mark.parametrize("filters, expected", [
    # The types as the legends name them (labels.py); this ledger has no channels.
    (FEB, [("2025-02-03", "Withdrawal", 1, 10000), ("2025-02-10", "Transfer", 1, 5000),
           ("2025-02-20", "Withdrawal", 1, 50000), ("2025-02-28", "Interest", 1, 170)]),
    (FEB_SAVINGS, [("2025-02-28", "Interest", 1, 170)]),
    (Filters(start="2025-02-01", end="2025-02-28", kind="checking"),
     [("2025-02-03", "Withdrawal", 1, 10000), ("2025-02-10", "Transfer", 1, 5000),
      ("2025-02-20", "Withdrawal", 1, 50000)]),
])
def test_daily_volume(ledger, filters, expected):
    df = ledger.bank.reports.query(ledger.manager, "daily_volume", filters)
    got = [(d.date().isoformat(), k, n, a) for d, k, n, a in df.itertuples(index=False)]
    assert got == expected


@pytest.mark.parametrize("day, kind, expected_cents", [
    ("2025-02-01", "checking", 132800),
    ("2025-02-02", "checking", 132800),
    ("2025-02-03", "checking", 122800),
    ("2025-02-28", "checking", 72800),
    ("2025-02-01", "savings", 20150),
    ("2025-02-28", "savings", 20320),
])
def test_deposits_by_product(ledger, day, kind, expected_cents):
    df = ledger.bank.reports.query(ledger.manager, "deposits_by_product", FEB)
    assert len(df) == 28 * 2
    row = df[(df["day"] == pd.Timestamp(day)) & (df["kind"] == kind)]
    assert row["balance_cents"].tolist() == [expected_cents]


def test_balance_distribution(ledger):
    df = ledger.bank.reports.query(ledger.manager, "balance_distribution", FEB)
    assert df.values.tolist() == [
        ["below $0", 1, -5000], ["$0 – $100", 1, 3000], ["$100 – $1k", 2, 95120],
        ["$1k – $10k", 0, 0], ["$10k – $100k", 0, 0], ["$100k and more", 0, 0]]


def test_balance_distribution_as_of_an_earlier_day(ledger):
    # As of 31 Jan: A1 798.00, S1 201.50, B1 500.00 (all $100-$1k), C1 30.00.
    df = ledger.bank.reports.query(ledger.manager, "balance_distribution",
                                   Filters(start="2025-02-01", end="2025-02-28",
                                           as_of="2025-01-31"))
    assert df["accounts"].tolist() == [0, 1, 3, 0, 0, 0]
    assert df["balance_cents"].tolist() == [0, 3000, 149950, 0, 0, 0]


def test_top_customers(ledger):
    df = ledger.bank.reports.query(ledger.manager, "top_customers", FEB)
    assert df[["full_name", "accounts", "balance_cents"]].values.tolist() == [
        ["Ann Able", 2, 95120], ["Cat Cole", 1, 3000], ["Bob Baker", 1, -5000]]


def test_customer_growth(ledger):
    df = ledger.bank.reports.query(ledger.manager, "customer_growth", FEB)
    assert len(df) == 28
    assert df["customers"].iloc[0] == 3
    assert df.loc[df["day"] == pd.Timestamp("2025-02-15"), "new_customers"].tolist() == [1]
    assert df["customers"].iloc[-1] == 4


# As of, the dormant accounts (the products' dormancy period: 12 months, as end of day uses).
DORMANT = [
    # Since 1 Jan 2025 every account saw its holder's transaction (S1 on 15 January).
    ("2025-12-31", []),
    # Since 1 May 2025 only A1 did (a deposit on 15 September); the penalty and tax on S1 on
    # 30 June do not count as activity.
    ("2026-04-30", [("C1", 603000), ("B1", 115000), ("S1", 19790)]),
    # Since 16 Sep 2025 none did, but A1 only by a day.
    ("2026-09-15", [("C1", 603000), ("B1", 115000), ("A1", 75800), ("S1", 19790)]),
    ("2026-09-14", [("C1", 603000), ("B1", 115000), ("S1", 19790)]),
]


@pytest.mark.parametrize("as_of, expected", DORMANT)
def test_dormant_accounts(ledger, as_of, expected):
    df = ledger.bank.reports.query(ledger.manager, "dormant_accounts",
                                   Filters(start="2025-12-01", end=as_of))
    n = ledger.names
    assert df[["account_number", "balance_cents"]].values.tolist() == [
        [n[name], cents] for name, cents in expected]


def test_dormancy_is_the_products_period(ledger):
    periods = analytics.dormancy_periods(analytics.duckdb_source(ledger.bank),
                                         dt.date(2026, 4, 30))
    assert set(periods["months"]) == {12}
    assert ledger.bank.reports.dormancy_rule() == "12 months"


@pytest.mark.parametrize("rows, expected", [
    ([(1, "Checking", 12), (None, None, 12)], "12 months"),
    ([(1, "Checking", 12), (2, "Savings", 6), (None, None, 12)],
     "Checking 12 months, Savings 6 months; 12 months without a product"),
])
def test_dormancy_rule_in_words(rows, expected):
    periods = pd.DataFrame(rows, columns=["product_id", "name", "months"])
    assert analytics.dormancy_rule(periods) == expected


def test_a_bank_without_loans_has_an_empty_loan_book(ledger):
    assert ledger.bank.reports.loans_available() is True
    df = ledger.bank.reports.query(ledger.manager, "loan_portfolio", FEB)
    assert df.empty and list(df.columns) == ["status", "arrears", "loans", "outstanding_cents",
                                             "provision_cents"]


def test_loan_figures_are_zero_where_the_loan_tables_are_missing(ledger):
    con = sqlite3.connect(":memory:")
    analytics.copy_to_sqlite(ledger.bank.engine.thread_cursor().execute, con)
    con.execute("DROP TABLE loan_payments")
    src = analytics.sqlite_source(con)
    assert analytics.loans_available(src) is False
    assert analytics.loan_portfolio(src, FEB).empty
    assert figures(analytics.key_figures(src, FEB))["Portfolio at risk > 30 days"] == (
        Decimal("0.00"), Decimal("0.00"))
    con.close()


# -- customer analytics --------------------------------------------------------------------------
# The segments count the customers' own transactions in the chosen period, recency up to its
# last day.
YEAR_TO_FEB = Filters(start="2024-03-01", end="2025-02-28")
RFM = [
    (YEAR_TO_FEB, {
        "Ann Able": ("At risk", 18, 4, 135000, 2, 3, 3),
        "Bob Baker": ("Needs attention", 8, 3, 105000, 3, 2, 2),
        "Cat Cole": ("Hibernating", 57, 1, 3000, 1, 1, 1),
        "Dan Dunn": ("Inactive", pd.NA, 0, 0, 0, 0, 0)}),
    # February alone: Ann's withdrawal (100.00) and the dinner transfer (50.00) with Bob,
    # Bob's withdrawal (500.00); Cat did nothing in February.
    (FEB, {
        "Ann Able": ("Hibernating", 18, 2, 15000, 1, 1, 1),
        "Bob Baker": ("Hibernating", 8, 2, 55000, 2, 2, 2),
        "Cat Cole": ("Inactive", pd.NA, 0, 0, 0, 0, 0),
        "Dan Dunn": ("Inactive", pd.NA, 0, 0, 0, 0, 0)}),
]


@pytest.mark.parametrize("period, expected", RFM)
def test_rfm(ledger, period, expected):
    df = ledger.bank.reports.query(ledger.manager, "rfm", period)
    got = {row.full_name: (row.segment, row.recency_days, row.frequency, row.monetary_cents,
                           row.r_score, row.f_score, row.m_score)
           for row in df.itertuples()}
    assert got == expected


def test_rfm_summary_counts_every_segment(ledger):
    summary = ledger.bank.reports.rfm_summary(
        ledger.bank.reports.query(ledger.manager, "rfm", YEAR_TO_FEB))
    assert summary["segment"].tolist() == analytics.RFM_SEGMENTS
    sizes = dict(zip(summary["segment"], summary["customers"]))
    assert sizes == {"Champions": 0, "Loyal": 0, "Potential loyalists": 0, "New": 0,
                     "Needs attention": 1, "At risk": 1, "Hibernating": 1, "Inactive": 1}


@pytest.mark.parametrize("r, f, m, expected", [
    (0, 0, 0, "Inactive"), (5, 5, 5, "Champions"), (4, 4, 4, "Champions"),
    (3, 4, 3, "Loyal"), (5, 1, 1, "New"), (4, 2, 3, "Potential loyalists"),
    (2, 3, 3, "At risk"), (1, 2, 2, "Hibernating"), (3, 2, 2, "Needs attention"),
])
def test_rfm_segment_rules(r, f, m, expected):
    s = analytics.rfm_segment(pd.Series([r]), pd.Series([f]), pd.Series([m]))
    assert s.tolist() == [expected]


def test_cross_sell(ledger):
    df = ledger.bank.reports.query(ledger.manager, "cross_sell",
                                   Filters(start="2025-05-01", end="2025-05-15"))
    got = [(row.offer, row.full_name,
            None if pd.isna(row.months) else int(row.months),
            None if pd.isna(row.monthly_income_cents) else int(row.monthly_income_cents),
            None if pd.isna(row.balance_cents) else int(row.balance_cents))
           for row in df.itertuples()]
    assert got == [("Savings account for a regular income", "Bob Baker", 2, 60000, None),
                   ("Savings account for a high balance", "Cat Cole", None, None, 603000)]


def test_falling_activity(ledger):
    df = ledger.bank.reports.query(ledger.manager, "falling_activity",
                                   Filters(start="2025-05-01", end="2025-05-31"))
    assert df[["full_name", "before_count", "recent_count"]].values.tolist() == [
        ["Ann Able", 4, 0], ["Bob Baker", 4, 1]]


# -- ledger views --------------------------------------------------------------------------------
def test_trial_balance_as_of_a_day(ledger):
    df = ledger.bank.reports.trial_balance(ledger.manager, as_of="2025-02-28")
    lines = {row.code: (row.debit_cents, row.credit_cents) for row in df.itertuples()}
    assert lines == {
        "DEP-CHECKING": (0, 77800), "DEP-SAVINGS": (0, 20320), "ODR-CHECKING": (5000, 0),
        "GL1000": (93000, 0), "GL1100": (0, 0), "GL1200": (0, 0), "GL4000": (0, 0),
        "GL1210": (0, 0), "GL1290": (0, 0), "GL2100": (0, 0), "GL4100": (0, 200), "GL4200": (0, 0), "GL5000": (320, 0),
        "GL5100": (0, 0), "GL5200": (0, 0)}
    assert df["balance_cents"].sum() == 0
    assert df["debit"].sum() == df["credit"].sum() == Decimal("983.20")


@pytest.mark.parametrize("code, name", [
    ("GL1210", "Loan interest receivable"), ("GL1290", "Loan-loss provision"),
    ("GL5200", "Loan-loss provision expense"), ("GL2100", "Withholding tax payable")])
def test_trial_balance_names_the_accrual_and_provision_accounts(ledger, code, name):
    tb = ledger.bank.reports.trial_balance(ledger.manager)
    assert tb.loc[tb["code"] == code, "account"].tolist() == [name]


@pytest.mark.parametrize("as_of", [None, "2024-12-31", "2025-01-31", "2025-03-05",
                                   "2025-06-30", "2030-01-01"])
def test_trial_balance_is_zero(ledger, as_of):
    df = ledger.bank.reports.trial_balance(ledger.manager, as_of=as_of)
    assert df["balance_cents"].sum() == 0
    assert df["debit_cents"].sum() == df["credit_cents"].sum()


def test_general_ledger(ledger):
    df = ledger.bank.reports.general_ledger(ledger.manager, "2025-02-01", "2025-02-28")
    lines = {row.code: (row.opening_cents, row.debit_cents, row.credit_cents, row.closing_cents)
             for row in df.itertuples()}
    assert lines["CUST-CHECKING"] == (132800, 65000, 5000, 72800)
    assert lines["CUST-SAVINGS"] == (20150, 0, 170, 20320)
    assert lines["GL1000"] == (-153000, 0, 60000, -93000)
    assert lines["GL5000"] == (-150, 170, 0, -320)
    assert df["opening_cents"].sum() == df["closing_cents"].sum() == 0
    assert df["debit_cents"].sum() == df["credit_cents"].sum() == 65170


def test_ledger_lines_of_an_internal_account(ledger):
    opening, df = ledger.bank.reports.ledger_lines(ledger.manager, "GL1000", "2025-02-01",
                                                   "2025-02-28")
    assert opening == -153000
    assert df["amount_cents"].tolist() == [10000, 50000]
    assert df["balance_cents"].tolist() == [-143000, -93000]


# -- statements ----------------------------------------------------------------------------------
@pytest.mark.parametrize("account, year, month, expected", [
    # opening, credits, debits, interest, fees, closing, lines
    ("A1", 2025, 1, (0, 100000, 20200, 0, 200, 79800, 3)),
    ("A1", 2025, 2, (79800, 5000, 10000, 0, 0, 74800, 2)),
    ("A1", 2025, 12, (75800, 0, 0, 0, 0, 75800, 0)),
    ("S1", 2025, 1, (0, 20150, 0, 150, 0, 20150, 2)),
    ("S1", 2025, 6, (20320, 0, 530, 0, 0, 19790, 2)),
    ("B1", 2025, 2, (50000, 0, 55000, 0, 0, -5000, 2)),
    ("C1", 2025, 5, (603000, 0, 0, 0, 0, 603000, 0)),
    ("C1", 2024, 11, (0, 0, 0, 0, 0, 0, 0)),
])
def test_statement_figures(ledger, account, year, month, expected):
    s = ledger.bank.reports.statement(ledger.manager, ledger.names[account], year, month)
    assert (s.opening_cents, s.credits_cents, s.debits_cents, s.interest_cents, s.fees_cents,
            s.closing_cents, len(s.lines)) == expected
    assert s.reconciles()
    assert s.opening_balance + s.total_credits - s.total_debits == s.closing_balance
    assert isinstance(s.closing_balance, Decimal)


def test_statement_lines_carry_running_balances_and_descriptions(ledger):
    n = ledger.names
    s = ledger.bank.reports.statement(ledger.manager, n["A1"], 2025, 1)
    # The fixture posts without channels (as banks did before them): a plain "Deposit".
    assert s.lines["description"].tolist() == [
        "Deposit", f"Transfer to {n['S1']} - to savings", "Fee - monthly fee"]
    assert s.lines["amount_cents"].tolist() == [100000, -20000, -200]
    assert s.lines["balance_cents"].tolist() == [100000, 80000, 79800]
    assert s.lines["balance"].tolist() == [Decimal("1000.00"), Decimal("800.00"),
                                           Decimal("798.00")]
    assert [d.isoformat() for d in s.lines["date"]] == ["2025-01-05", "2025-01-15",
                                                         "2025-01-31"]


def test_statement_pdf_shows_the_totals(ledger):
    s = ledger.bank.reports.statement(ledger.manager, ledger.names["A1"], 2025, 1)
    pdf = s.to_pdf()
    assert pdf.startswith(b"%PDF")
    text = "\n".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(pdf)).pages)
    for needle in ("Account statement", "Ann Able", ledger.names["A1"],
                   "01 Jan 2025 to 31 Jan 2025", "Opening balance", "$0.00",
                   "Money in (credits)", "$1,000.00", "Money out (debits)", "$202.00",
                   "of which fees charged", "$2.00", "Closing balance", "$798.00",
                   "Transfer to"):
        assert needle in text, needle


@pytest.mark.slow
def test_statement_pdf_runs_over_several_pages(tmp_path):
    bank = bankms.open_bank(str(tmp_path / "b.duckdb"), bcrypt_rounds=4)
    try:
        system = bank.system_actor()
        number = bank.accounts.open(system, make_customer(bank, name="Zoë Łukasz"), "checking")
        for i in range(130):
            bank.payments.deposit(system, number, f"{i + 1}.00", memo=f"line {i}")
        today = bank.reports.today()
        s = bank.reports.statement(system, number, today.year, today.month)
        reader = pypdf.PdfReader(io.BytesIO(s.to_pdf()))
        assert len(reader.pages) >= 3
        text = "\n".join(page.extract_text() for page in reader.pages)
        assert "Zoë Łukasz" in text  # printed as written (bankms/fonts)
        assert "$8,515.00" in text  # 1 + 2 + ... + 130
        assert text.count("Money in") >= len(reader.pages)  # table header on every page
    finally:
        bank.close()


def test_statement_csv_reconciles(ledger):
    s = ledger.bank.reports.statement(ledger.manager, ledger.names["B1"], 2025, 2)
    head, table = s.to_csv().split("\n\n")
    info = dict(line.split(",", 1) for line in head.splitlines())
    assert info["Account"] == ledger.names["B1"]
    assert (info["Period start"], info["Period end"]) == ("2025-02-01", "2025-02-28")
    assert (info["Opening balance"], info["Money in"], info["Money out"],
            info["Closing balance"]) == ("500.00", "0.00", "550.00", "-50.00")
    lines = pd.read_csv(io.StringIO(table), dtype=str, keep_default_na=False)
    total_in = sum(Decimal(v) for v in lines["money_in"] if v)
    total_out = sum(Decimal(v) for v in lines["money_out"] if v)
    assert Decimal(info["Opening balance"]) + total_in - total_out \
        == Decimal(info["Closing balance"]) == Decimal(lines["balance"].iloc[-1])


@pytest.mark.parametrize("who, account, allowed", [
    ("ann", "A1", True), ("ann", "S1", True), ("ann", "B1", False), ("bob", "A1", False),
    ("teller", "B1", True), ("manager", "C1", True),
])
def test_statement_permissions(ledger, who, account, allowed):
    actor = {"ann": ledger.ann_login, "bob": ledger.bob_login, "teller": ledger.teller,
             "manager": ledger.manager}[who]
    number = ledger.names[account]
    if allowed:
        assert ledger.bank.reports.statement(actor, number, 2025, 2).account_number == number
    else:
        with pytest.raises(PermissionDenied):
            ledger.bank.reports.statement(actor, number, 2025, 2)


@pytest.mark.parametrize("account, year, month, error", [
    ("A1", 2025, 13, InvalidInput),
    ("A1", "x", 1, InvalidInput),
    ("A1", 2099, 1, InvalidInput),          # not started yet
    ("A1", 2024, 11, InvalidInput),         # before the account was opened
    ("400000000000", 2025, 1, InvalidAccountNumber),
    ("GL1000", 2025, 1, InvalidAccountNumber),
])
def test_statement_refusals(ledger, account, year, month, error):
    number = ledger.names.get(account, account)
    with pytest.raises(error):
        ledger.bank.reports.statement(ledger.manager, number, year, month)


def test_statement_of_an_unknown_account(ledger):
    from bankms.domain import accountnum
    with pytest.raises(AccountNotFound):
        ledger.bank.reports.statement(ledger.manager, accountnum.make(99_999_999), 2025, 1)


def test_statement_months_newest_first(ledger):
    months = ledger.bank.reports.statement_months(ledger.ann_login, ledger.names["A1"])
    assert months[-1] == (2024, 12)
    assert months == sorted(months, reverse=True)
    today = ledger.bank.reports.today()
    assert months[0] == (today.year, today.month)


def test_statements_zip(ledger):
    calls = []
    data = ledger.bank.reports.statements_zip(ledger.teller, 2025, 2,
                                              progress=lambda d, t: calls.append((d, t)))
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = sorted(zf.namelist())
        assert len(names) == 8  # four accounts, a PDF and a CSV each
        for number in ledger.names.values():
            csv = zf.read(f"statement-{number}-2025-02.csv").decode()
            one = ledger.bank.reports.statement(ledger.manager, number, 2025, 2)
            assert csv == one.to_csv()
            assert zf.read(f"statement-{number}-2025-02.pdf").startswith(b"%PDF")
    assert calls[-1] == (4, 4) and [d for d, _ in calls] == [1, 2, 3, 4]


def test_statements_zip_is_for_staff(ledger):
    with pytest.raises(PermissionDenied):
        ledger.bank.reports.statements_zip(ledger.ann_login, 2025, 2)


# -- interest certificates -----------------------------------------------------------------------
@pytest.mark.parametrize("who, year, expected", [
    ("Ann", 2025, (320, 500, 30)),
    ("Ann", 2024, (0, 0, 0)),
    ("Bob", 2025, (0, 0, 0)),
    ("Dan", 2025, (0, 0, 0)),
])
def test_interest_certificate(ledger, who, year, expected):
    c = ledger.bank.reports.interest_certificate(ledger.manager, ledger.customers[who], year)
    assert (c.interest_paid_cents, c.penalties_cents, c.tax_withheld_cents) == expected
    assert c.interest_paid == Decimal(expected[0]) / 100


def test_interest_certificate_pdf(ledger):
    c = ledger.bank.reports.interest_certificate(ledger.ann_login, ledger.customers["Ann"], 2025)
    text = pypdf.PdfReader(io.BytesIO(c.to_pdf())).pages[0].extract_text()
    for needle in ("Annual interest certificate", "Tax year 2025", "Ann Able",
                   "Interest paid", "$3.20", "Early-withdrawal penalties", "$5.00",
                   "Tax withheld", "$0.30", ledger.names["S1"]):
        assert needle in text, needle


def test_interest_certificate_of_someone_else_is_refused(ledger):
    with pytest.raises(PermissionDenied):
        ledger.bank.reports.interest_certificate(ledger.ann_login, ledger.customers["Bob"], 2025)


# -- permissions on manager reports --------------------------------------------------------------
@pytest.mark.parametrize("who", ["teller", "ann"])
def test_analytics_are_for_managers(ledger, who):
    actor = ledger.teller if who == "teller" else ledger.ann_login
    with pytest.raises(PermissionDenied):
        ledger.bank.reports.query(actor, "key_figures", FEB)
    with pytest.raises(PermissionDenied):
        ledger.bank.reports.trial_balance(actor)


@pytest.mark.parametrize("kwargs, message", [
    (dict(start="2025-02-10", end="2025-02-01"), "start date"),
    (dict(start="2025-02-01", end="2025-02-10", kind="loans"), "account kind"),
    (dict(start="2025-02-30", end="2025-03-01"), "look like"),
])
def test_filters_refuse_bad_input(kwargs, message):
    with pytest.raises(InvalidInput, match=message):
        Filters(**kwargs)


def test_unknown_report_name(ledger):
    with pytest.raises(InvalidInput):
        ledger.bank.reports.query(ledger.manager, "everything", FEB)


# -- the same SQL on SQLite gives the same answers -----------------------------------------------
def _normalize(df):
    out = df.copy()
    for column in out.columns:
        if out[column].dtype == object and out[column].map(
                lambda v: isinstance(v, str) and len(v) >= 10 and v[4] == "-").all() \
                and len(out):
            out[column] = pd.to_datetime(out[column])
        if pd.api.types.is_datetime64_any_dtype(out[column]):
            out[column] = out[column].astype("datetime64[us]")
    return out.reset_index(drop=True)


@pytest.mark.parametrize("name", list(analytics.DASHBOARD) + list(analytics.CUSTOMER))
@pytest.mark.parametrize("filters", [
    FEB, FEB_SAVINGS, Filters(start="2025-05-01", end="2025-05-31"),
    Filters(start="2025-01-01", end="2025-12-31", kind="checking", as_of="2025-06-30")])
def test_sqlite_gives_the_same_answers(ledger, sqlite_copy, name, filters):
    fn = analytics.DASHBOARD.get(name) or analytics.CUSTOMER[name]
    duck = fn(analytics.duckdb_source(ledger.bank), filters)
    lite = fn(sqlite_copy, filters)
    pd.testing.assert_frame_equal(_normalize(duck), _normalize(lite), check_dtype=False)


@pytest.fixture(scope="module")
def sqlite_copy(ledger):
    con = sqlite3.connect(":memory:")
    analytics.copy_to_sqlite(ledger.bank.engine.thread_cursor().execute, con)
    yield analytics.sqlite_source(con)
    con.close()


# -- reversals and online postings ---------------------------------------------------------------
def test_reversed_interest_is_not_interest(bank, system):
    number = bank.accounts.open(system, make_customer(bank), "savings")
    bank.payments.deposit(system, number, "100.00")

    def interest(cents, key):
        return bank.post(PostingRequest(
            kind="interest", actor=system, action="test.interest",
            legs=[(INTERNAL["interest_expense"], -cents), (number, cents)], amount_cents=cents,
            idempotency_key=key, target_account=number, internal_ok=True))
    first = interest(123, "i1")
    interest(45, "i2")
    bank.payments.reverse(system, first.transaction_id, "posted twice")
    today = bank.reports.today()
    s = bank.reports.statement(system, number, today.year, today.month)
    assert (s.interest_cents, s.credits_cents, s.debits_cents, s.closing_cents) == (
        45, 10000 + 123 + 45, 123, 10045)
    cid = bank.accounts.get(system, number)["customer_id"]
    assert bank.reports.interest_certificate(system, cid, today.year).interest_paid_cents == 45


def test_refusals_by_reason(bank, system):
    a = bank.accounts.open(system, make_customer(bank), "checking")
    b = bank.accounts.open(system, make_customer(bank), "checking")
    bank.payments.deposit(system, a, "10.00")
    customer_b = login_for(bank, bank.accounts.get(system, b)["customer_id"], "bee.customer")
    for source, actor, amount in ((a, system, "50.00"), (a, system, "60.00"),
                                  (a, customer_b, "1.00")):
        with pytest.raises(bankms.BankError):
            bank.payments.transfer(actor, source, b, amount)
    today = bank.reports.today()
    df = bank.reports.query(system, "refusals_by_reason", Filters(start=today, end=today))
    assert df.values.tolist() == [["InsufficientFunds", 2], ["PermissionDenied", 1]]


# -- every statement of a whole bank reconciles --------------------------------------------------
def _random_bank(bank, rng, months=4, accounts_n=15):
    """A small random ledger through the bulk path: deposits, withdrawals, transfers,
    interest and fees over a few months ending last month."""
    system = bank.system_actor()
    numbers = []
    for i in range(accounts_n):
        cid = make_customer(bank, name=f"Random {i}")
        numbers.append(bank.accounts.open(system, cid, "savings" if i % 3 == 0 else "checking"))
    first_day = (pd.Timestamp(bank.reports.today().replace(day=1))
                 - pd.DateOffset(months=months)).date()
    for number in numbers:
        backdate(bank, account=number, when=first_day.isoformat())
    ids = dict(bank.read("SELECT account_number, id FROM accounts"))
    teller, gl5000 = ids[INTERNAL["teller_cash"]], ids[INTERNAL["interest_expense"]]
    balance = {n: 0 for n in numbers}
    today = bank.reports.today().replace(day=1)
    for m in range(months, 0, -1):
        start = (pd.Timestamp(today) - pd.DateOffset(months=m)).to_pydatetime()
        txs, posts = [], []
        for k in range(60):
            when = start + dt.timedelta(days=float(rng.uniform(0, 27)))
            a, b = rng.choice(numbers, 2, replace=False)
            kind = rng.choice(["deposit", "withdrawal", "transfer", "interest", "fee"])
            cents = int(rng.integers(1, 50_000))
            if kind in ("withdrawal", "transfer", "fee"):
                cents = min(cents, balance[a])
                if cents <= 0:
                    kind, cents = "deposit", int(rng.integers(1, 50_000))
            legs = {"deposit": [(teller, -cents), (a, cents)],
                    "withdrawal": [(a, -cents), (teller, cents)],
                    "transfer": [(a, -cents), (b, cents)],
                    "interest": [(gl5000, -cents), (a, cents)],
                    "fee": [(a, -cents), (ids[INTERNAL["fee_income"]], cents)]}[kind]
            for acc, delta in legs:
                if acc in balance:
                    balance[acc] += delta
            txs.append({"tx_ref": k, "kind": kind, "amount_cents": cents, "memo": "",
                        "source_account": a if kind != "deposit" and kind != "interest" else None,
                        "target_account": b if kind == "transfer" else (
                            a if kind in ("deposit", "interest") else None),
                        "posted_at": when, "business_date": when.date()})
            posts += [{"tx_ref": k, "account_id": ids[acc] if isinstance(acc, str) else acc,
                       "amount_cents": delta} for acc, delta in legs]
        bank.ledger.post_frames(system, pd.DataFrame(txs), pd.DataFrame(posts))
    return numbers


@pytest.mark.parametrize("source", ["demo", "generated"])
@pytest.mark.slow
@pytest.mark.engines
def test_every_statement_of_a_bank_reconciles(engine, bank, system, source):
    if source == "demo":
        demo = pytest.importorskip("bankms.demo")
        demo.build_demo(bank, customers=12, months=3, seed=3)
        numbers = [n for (n,) in bank.read(
            "SELECT account_number FROM accounts WHERE customer_id IS NOT NULL")]
    else:
        numbers = _random_bank(bank, np.random.default_rng(5))
    assert bank.audit.verify() == []
    checked = 0
    for number in numbers:
        # Every month with postings, and the current one; a month without postings in
        # between would carry the balance unchanged, so each opening equals the closing of
        # the month checked before it.
        busy = {(d.year, d.month) for (d,) in bank.read(
            "SELECT DISTINCT t.business_date FROM postings p "
            "JOIN accounts a ON a.id = p.account_id JOIN transactions t ON t.id = p.transaction_id "
            "WHERE a.account_number = ?", [number])}
        every = bank.reports.statement_months(system, number)
        months = [ym for ym in every if ym in busy or ym == every[0]]
        closing = 0
        for year, month in reversed(months):
            s = bank.reports.statement(system, number, year, month)
            assert s.reconciles(), (number, year, month)
            assert s.opening_cents == closing, (number, year, month)
            closing = s.closing_cents
            checked += 1
        assert closing == int(bank.accounts.balance(system, number) * 100)
    assert checked >= len(numbers)


# -- loans and end of day ------------------------------------------------------------------------
DAY = dt.timedelta(days=1)


def _loan(bank, staff, cid, account, principal, *, approve=True, disburse=True, reject=False):
    lid = bank.loans.apply(staff["teller"], cid, product="personal", principal=principal,
                           term_months=12, purpose="home office", monthly_income="5000")
    if reject:
        bank.loans.reject(staff["manager"], lid, reason="income too low")
    elif approve:
        bank.loans.approve(staff["manager"], lid, annual_rate_percent="12")
        if disburse:
            bank.loans.disburse(staff["teller"], lid, account)
    return lid


@pytest.fixture
def loan_bank(bank, system):
    """Five applications on one day: a loan nobody repays, one repaid on time, one waiting for
    a decision, one approved but not paid out, one refused; and a savings account."""
    staff = {"teller": employee(bank, "teller"), "manager": employee(bank, "manager")}
    late, good, waiting, approved, refused = (make_customer(bank, name=n) for n in (
        "Lou Late", "Gus Good", "Wen Waiting", "Abe Approved", "Ray Refused"))
    late_acc = bank.accounts.open(system, late, "checking")
    good_acc = bank.accounts.open(system, good, "checking")
    savings = bank.accounts.open(system, good, "savings", interest_rate="3.00")
    bank.payments.deposit(system, good_acc, "20000.00")
    bank.payments.deposit(system, savings, "10000.00")
    ns = type("Loans", (), {})()
    ns.start = bank.business_date
    ns.late = _loan(bank, staff, late, late_acc, "10000.00")
    bank.payments.withdraw(system, late_acc, "10000.00")  # nothing left to collect
    ns.good = _loan(bank, staff, good, good_acc, "5000.00")
    ns.waiting = _loan(bank, staff, waiting, None, "2000.00", approve=False)
    ns.approved = _loan(bank, staff, approved, None, "3000.00", disburse=False)
    ns.refused = _loan(bank, staff, refused, None, "1500.00", reject=True)
    ns.dues = list(bank.loans.schedule(staff["teller"], ns.late)["due_date"])
    ns.staff, ns.savings, ns.good_customer = staff, savings, good
    return ns


def _stored(bank, lid):
    return bank.read_one("SELECT principal_outstanding_cents, days_past_due FROM loans "
                         "WHERE id = ?", [lid])


@pytest.mark.parametrize("days_after_first_due, late_days, bucket, late_provision", [
    (10, 11, "1–30 days", 50_000), (44, 45, "31–60 days", 250_000),
    (95, 96, "over 90 days", 1_000_000)])
@pytest.mark.slow
def test_loan_book_matches_end_of_day(bank, system, loan_bank, days_after_first_due, late_days,
                                      bucket, late_provision, years_ahead):
    day = loan_bank.dues[0] + days_after_first_due * DAY
    bank.end_of_day(system, until=day)
    src = analytics.duckdb_source(bank)
    book = analytics.loan_book(src, day).set_index("loan_id")
    # The rebuilt book agrees with what end of day stored for the day it just closed.
    for lid in (loan_bank.late, loan_bank.good):
        assert (book.at[lid, "outstanding_cents"], book.at[lid, "days_past_due"]) == \
            _stored(bank, lid)
    assert book.at[loan_bank.late, "days_past_due"] == late_days
    assert book.at[loan_bank.late, "outstanding_cents"] == 1_000_000
    assert book.at[loan_bank.good, "days_past_due"] == 0
    assert book["status"].to_dict() == {loan_bank.late: "active", loan_bank.good: "active",
                                        loan_bank.waiting: "submitted",
                                        loan_bank.approved: "approved"}
    f = Filters(start=day - 29 * DAY, end=day)
    portfolio = analytics.loan_portfolio(src, f)
    good_left = int(book.at[loan_bank.good, "outstanding_cents"])
    good_provision = (good_left + 50) // 100  # 1 %, half up to the cent
    assert portfolio.values.tolist() == [
        ["active", "current", 1, good_left, good_provision],
        ["active", bucket, 1, 1_000_000, late_provision],
        ["approved", "current", 1, 300_000, 0], ["submitted", "current", 1, 200_000, 0]]
    shown = figures(analytics.key_figures(src, f))
    at_risk = (Decimal(1_000_000) * 100 / (1_000_000 + good_left)).quantize(Decimal("0.01"))
    assert shown["Portfolio at risk > 30 days"][0] == (at_risk if late_days > 30
                                                       else Decimal("0.00"))
    assert shown["Non-performing loans"][0] == (at_risk if late_days > 90 else Decimal("0.00"))
    # Loans outstanding comes from the ledger (GL1200), which must agree with the book.
    assert shown["Loans outstanding"][0] == 1_000_000 + good_left
    # Provision figures: the GL1290 balance that end of day booked, its cover of the
    # non-performing principal, and loans net of it.
    provision = good_provision + late_provision
    assert shown["Provision booked"][0] == provision
    assert shown["Provision coverage of NPL"][0] == (
        (Decimal(provision) * 100 / 1_000_000).quantize(Decimal("0.01")) if late_days > 90
        else Decimal("0.00"))
    assert shown["Net loans"][0] == 1_000_000 + good_left - provision
    assert bank.loans.verify() == [] and bank.audit.verify() == []
    # The SQL on SQLite rebuilds the book from the schedule and the payments (no end of day
    # tables there): it agrees with what end of day stored, less the per-loan provision. The
    # copy to SQLite reads through a DuckDB cursor (the reports benchmark's tool), so it runs
    # on DuckDB only.
    if bank.engine.dialect.name != "duckdb":
        return
    con = sqlite3.connect(":memory:")
    analytics.copy_to_sqlite(bank.engine.thread_cursor().execute, con)
    lite = analytics.loan_book(analytics.sqlite_source(con), day)
    pd.testing.assert_frame_equal(lite.drop(columns=["provision_cents"]),
                                  book.reset_index()[lite.columns.drop("provision_cents")],
                                  check_dtype=False)
    con.close()


def test_loan_book_before_anyone_applied_is_empty(bank, system, loan_bank):
    assert analytics.loan_book(analytics.duckdb_source(bank), loan_bank.start - DAY).empty


def test_month_end_interest_is_on_the_month_of_its_business_date(bank, system, loan_bank,
                                                                  years_ahead):
    """End of day books savings interest on the month's last business day, whenever it runs
    (here: today, for days in the future). Statements follow the business date."""
    month_end = (loan_bank.start.replace(day=28) + 4 * DAY).replace(day=1) - DAY
    bank.end_of_day(system, until=month_end + DAY)
    rows = bank.read("SELECT t.id, t.business_date, t.amount_cents FROM transactions t "
                     "WHERE t.kind = 'interest' AND t.target_account = ?", [loan_bank.savings])
    assert len(rows) == 1 and rows[0][1] == month_end
    interest = rows[0][2]
    s = bank.reports.statement(system, loan_bank.savings, month_end.year, month_end.month)
    assert s.interest_cents == interest > 0
    assert s.lines["date"].iloc[-1] == month_end and s.reconciles()
    after = bank.reports.statement(system, loan_bank.savings, *(
        (month_end + DAY).year, (month_end + DAY).month))
    assert after.interest_cents == 0 and after.opening_cents == s.closing_cents
    c = bank.reports.interest_certificate(system, loan_bank.good_customer, month_end.year)
    assert c.interest_paid_cents == interest
    tb = bank.reports.trial_balance(system, as_of=month_end)
    assert tb["balance_cents"].sum() == 0
    assert tb.set_index("code").at["GL5000", "debit_cents"] == interest


# kind, memo, source, target, amount_cents, channel, what the statement line says
DESCRIBE = [
    ("interest", "Interest for December 2026", None, None, 1699, None,
     "Interest for December 2026"),
    ("overdraft_interest", "Overdraft interest for December 2026", None, None, -512, None,
     "Overdraft interest for December 2026"),
    ("fee", "Statement copy - Paper statement", None, None, -500, None,
     "Fee - Statement copy - Paper statement"),
    ("penalty", "Early closure penalty: interest of the last 3 months", None, None, -393, None,
     "Early closure penalty: interest of the last 3 months"),
    ("transfer", "Standing order 1: Rent", "400000000001", "400000000002", -10000, None,
     "Transfer to 400000000002 - Standing order 1: Rent"),
    ("transfer", "Standing order 1: Rent", "400000000001", "400000000002", -10000,
     "standing_order", "Standing order to 400000000002 - Standing order 1: Rent"),
    ("interest", "", None, None, 5, None, "Interest"),
    # Card payments and salaries say so, never "Cash withdrawal - Card payment ...".
    ("withdrawal", "Card payment FreshMart", "400000000001", None, -3800, "card",
     "Card payment FreshMart"),
    ("withdrawal", "ATM withdrawal Airport", "400000000001", None, -2000, "atm",
     "ATM withdrawal Airport"),
    ("deposit", "Salary Acme Logistics", None, "400000000001", 420000, "salary",
     "Salary credit - Salary Acme Logistics"),
    ("deposit", "", None, "400000000001", 5000, "cash", "Cash deposit"),
    ("deposit", "", None, "400000000001", 5000, None, "Deposit"),
    ("loan_repayment", "Loan 7 instalment", "400000000001", None, -5000, None,
     "Loan instalment - Loan 7 instalment"),
    ("loan_write_off", "", None, None, -5000, None, "Loan write-off"),
]


@pytest.mark.parametrize("kind, memo, source, target, amount_cents, channel, expected",
                         DESCRIBE)
def test_statement_descriptions_do_not_repeat_the_kind(kind, memo, source, target,
                                                       amount_cents, channel, expected):
    from bankms.reporting.reports import describe
    assert describe(kind, memo, source, target, amount_cents, channel) == expected


def test_ledger_lines_name_account_kinds_in_words(ledger):
    tb = ledger.bank.reports.trial_balance(ledger.manager)
    gl = ledger.bank.reports.general_ledger(ledger.manager, "2025-02-01", "2025-02-28")
    names = {**dict(zip(tb["code"], tb["account"])), **dict(zip(gl["code"], gl["account"]))}
    assert names["DEP-CHECKING"] == "Customer deposits (Checking)"
    assert names["CUST-SAVINGS"] == "Customer accounts (Savings)"
    assert not [name for name in names.values() if "_" in name or "(checking)" in name]


# Ledger reports: one row per case, the call on a source last.
LEDGER_REPORTS = [
    ("trial balance now", lambda src: analytics.trial_balance(src)),
    ("trial balance at the end of February", lambda src: analytics.trial_balance(
        src, dt.date(2025, 2, 28))),
    ("general ledger of February", lambda src: analytics.general_ledger(
        src, dt.date(2025, 2, 1), dt.date(2025, 2, 28))),
    ("general ledger of the year", lambda src: analytics.general_ledger(
        src, dt.date(2025, 1, 1), dt.date(2025, 12, 31))),
]


@pytest.mark.parametrize("name, run", LEDGER_REPORTS, ids=[r[0] for r in LEDGER_REPORTS])
def test_sqlite_gives_the_same_ledger_reports(ledger, sqlite_copy, name, run):
    """The trial balance and general ledger on the SQLite copy too (their line labels used
    left(), which SQLite lacks)."""
    duck = run(analytics.duckdb_source(ledger.bank))
    assert len(duck)
    pd.testing.assert_frame_equal(_normalize(duck), _normalize(run(sqlite_copy)),
                                  check_dtype=False)
