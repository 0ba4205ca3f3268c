"""Charges (issue 10): the catalogue, the register, event charges from end of day, staff charges
and manager waivers. Expected amounts are worked out by hand in each row, with Decimal."""
from __future__ import annotations

from decimal import Decimal

import pandas as pd
import pytest

from bankms import charges as charges_mod
from bankms.errors import InvalidInput
from conftest import funded_account


def cents(text) -> int:
    return int(Decimal(text) * 100)


def account_id(bank, number):
    return bank.read_one("SELECT id FROM accounts WHERE account_number = ?", [number])[0]


def balance(bank, number) -> int:
    return bank.read_one("SELECT balance_cents FROM accounts WHERE account_number = ?",
                         [number])[0]


def fee_income(bank) -> int:
    return bank.read_one("SELECT balance_cents FROM accounts WHERE account_number = 'GL4100'")[0]


def post_events(bank, rows):
    actor = bank.system_actor()
    frame = pd.DataFrame(rows, columns=["account_id", "code", "amount_cents", "reason"])
    day = bank.business_date
    return bank.write(lambda uow: charges_mod.post_event_charges(bank, actor, uow, frame,
                                                                 day=day))


def assert_sound(bank):
    assert bank.audit.verify() == []
    assert bank.read_one("SELECT sum(balance_cents) FROM accounts")[0] == 0


def test_system_catalogue_is_seeded(bank):
    rows = bank.read("SELECT code, calc, system, active FROM charge_catalogue ORDER BY code")
    assert rows == [(code, "product", True, True) for code in sorted(
        ["maintenance", "min_balance", "overdraft", "standing_order_failed",
         "loan_disbursement"])]


# Each row: opening balance, overdraft limit, charges (code, amount text, reason) on one account,
# expected statuses, expected balance after.
EVENT_CASES = [
    ("100.00", "0", [("maintenance", "5.00", "Nov 2026")], ["charged"], "95.00"),
    ("3.00", "0", [("maintenance", "5.00", "Nov 2026")], ["not_collected"], "3.00"),
    ("5.00", "0", [("maintenance", "5.00", "Nov 2026")], ["charged"], "0.00"),
    # Within the overdraft limit a fee may take the balance below zero.
    ("2.00", "10.00", [("overdraft", "7.50", "Nov 2026")], ["charged"], "-5.50"),
    ("2.00", "5.00", [("overdraft", "7.50", "Nov 2026")], ["not_collected"], "2.00"),
    # Two charges: the first is paid, the second no longer fits.
    ("8.00", "0", [("maintenance", "5.00", "Nov 2026"), ("min_balance", "4.00", "Nov 2026")],
     ["charged", "not_collected"], "3.00"),
    # The same key twice in one frame counts once.
    ("50.00", "0", [("maintenance", "5.00", "Nov 2026"), ("maintenance", "5.00", "Nov 2026")],
     ["charged"], "45.00"),
]


@pytest.mark.parametrize("opening, limit, rows, statuses, after", EVENT_CASES)
def test_event_charges(bank, opening, limit, rows, statuses, after):
    number = funded_account(bank, opening, overdraft_limit=limit)
    aid = account_id(bank, number)
    income = fee_income(bank)
    posted = post_events(bank, [(aid, code, cents(a), r) for code, a, r in rows])
    assert posted == statuses.count("charged")
    got = bank.read("SELECT status FROM charges WHERE account_id = ? ORDER BY id", [aid])
    assert [s for (s,) in got] == statuses
    assert balance(bank, number) == cents(after)
    assert fee_income(bank) - income == cents(opening) - cents(after)
    # A rerun of the same day posts nothing and records nothing twice.
    assert post_events(bank, [(aid, code, cents(a), r) for code, a, r in rows]) == 0
    assert bank.read_one("SELECT count(*) FROM charges WHERE account_id = ?",
                         [aid])[0] == len(statuses)
    assert balance(bank, number) == cents(after)
    audits = bank.read_one("SELECT count(*) FROM audit_log WHERE action = 'charge.event'")[0]
    assert audits == len(statuses)
    assert_sound(bank)


def test_event_fee_transaction_names_the_charge(bank):
    number = funded_account(bank, "100.00")
    post_events(bank, [(account_id(bank, number), "maintenance", 500, "Nov 2026")])
    kind, amount, memo, src, tgt, tid = bank.read_one(
        "SELECT t.kind, t.amount_cents, t.memo, t.source_account, t.target_account, t.id "
        "FROM transactions t WHERE t.kind = 'fee'")
    assert (kind, amount, memo, src, tgt) == ("fee", 500, "Fee: Monthly maintenance - Nov 2026",
                                              number, "GL4100")
    assert bank.read_one("SELECT transaction_id FROM charges")[0] == tid


def test_event_charge_on_closed_account_is_not_collected(bank, system):
    number = funded_account(bank, "0")
    bank.accounts.close(system, number)
    assert post_events(bank, [(account_id(bank, number), "maintenance", 500, "Nov 2026")]) == 0
    assert bank.read_one("SELECT status, transaction_id FROM charges") == ("not_collected", None)
    assert_sound(bank)


@pytest.mark.parametrize("row, words", [
    ((None, "maintenance", 500, "x"), "account"),
    (("acct", "nope", 500, "Nov 2026"), "catalogue"),
    (("acct", "maintenance", 0, "Nov 2026"), "more than zero"),
    (("acct", "maintenance", -5, "Nov 2026"), "more than zero"),
    (("acct", "maintenance", 500, "  "), "reason"),
    ((999999, "maintenance", 500, "Nov 2026"), "no customer account"),
])
def test_event_charges_bad_input(bank, row, words):
    number = funded_account(bank, "100.00")
    row = tuple(account_id(bank, number) if v == "acct" else v for v in row)
    with pytest.raises(InvalidInput, match=words):
        post_events(bank, [row])
    assert bank.read_one("SELECT count(*) FROM charges")[0] == 0
    assert balance(bank, number) == cents("100.00")
