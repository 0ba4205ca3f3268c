"""The day's totals posting decides on, read from the transactions alone (issue 14): what a
customer sent to others today (ledger.spent_today_cents, the daily transfer limit) and what a
staff member moved for a customer (approvals._moved_today, the four-eyes rule). On PostgreSQL
each is found by index (db.MIGRATION_SQL: accounts_customer_id, transactions_source_day,
transactions_actor_day), where the limit's earlier join of the postings read them all. The
limit's total must stay what the postings say: the earlier query is kept here as the reference,
and every kind of movement in the table below is checked against it on both engines."""
from __future__ import annotations

import pytest

from bankms.services import ledger
from conftest import employee, funded_account, login_for, make_customer

pytestmark = pytest.mark.engines

# The daily limit's total as first written: every debit posting of a customer's account in a
# customer's transfer to an account not theirs.
FROM_POSTINGS = (
    "SELECT a.customer_id, sum(-p.amount_cents) FROM postings p "
    "JOIN transactions t ON t.id = p.transaction_id JOIN accounts a ON a.id = p.account_id "
    "WHERE t.kind = 'transfer' AND t.actor_role = 'customer' AND p.amount_cents < 0 "
    "AND t.business_date = ? AND t.target_account NOT IN (SELECT account_number FROM "
    "accounts b WHERE b.customer_id = a.customer_id) GROUP BY 1")

# (who acts, from, to, amount, reversed afterwards, cents it adds to Ana's total today)
MOVES = [
    ("ana", "ana_checking", "ben", "10.00", False, 1000),
    ("ana", "ana_savings", "ben", "2.50", False, 250),
    ("ana", "ana_checking", "ana_savings", "40.00", False, 0),   # between her own accounts
    ("ben", "ben", "ana_checking", "7.00", False, 0),            # money in
    ("teller", "ana_checking", "ben", "30.00", False, 0),        # staff, not the limit's
    ("ana", "ana_checking", "ben", "5.00", True, 500),           # reversed: still sent today
]


@pytest.fixture
def people(bank):
    system = bank.system_actor()
    ana_id, ben_id = make_customer(bank, name="Ana Sender"), make_customer(bank, name="Ben")
    accounts = {"ana_checking": funded_account(bank, "500.00", customer_id=ana_id),
                "ana_savings": funded_account(bank, "500.00", kind="savings",
                                              customer_id=ana_id),
                "ben": funded_account(bank, "500.00", customer_id=ben_id)}
    actors = {"ana": login_for(bank, ana_id, "ana.sender"),
              "ben": login_for(bank, ben_id, "ben.receiver"),
              "teller": employee(bank, "teller"), "manager": employee(bank, "manager")}
    return system, accounts, actors, ana_id, ben_id


@pytest.mark.parametrize("upto", range(1, len(MOVES) + 1))
def test_the_daily_limits_total_is_what_the_postings_say(bank, people, upto):
    system, accounts, actors, ana_id, ben_id = people
    for who, source, target, amount, reverse, _ in MOVES[:upto]:
        receipt = bank.payments.transfer(actors[who], accounts[source], accounts[target],
                                         amount)
        if reverse:
            bank.payments.reverse(actors["manager"], receipt.transaction_id, "sent in error")
    day = bank.business_date
    totals = ledger.spent_today_cents(bank.read, day, [ana_id, ben_id], bank.engine.dialect)
    reference = {cid: int(cents) for cid, cents in bank.read(FROM_POSTINGS, [day])}
    assert totals == {cid: c for cid, c in reference.items() if cid in (ana_id, ben_id)}
    assert totals.get(ana_id, 0) == sum(row[-1] for row in MOVES[:upto])


def test_the_day_totals_are_found_by_index_on_postgresql(bank, people):
    """PostgreSQL: with sequential scans priced out, both totals are read through the indexes
    (a plan that still scanned a table would mean a missing index: every customer transfer
    and staff payment would read the whole ledger of a large bank)."""
    if bank.engine.name != "postgresql":
        pytest.skip("DuckDB finds the day by its zone maps; it has no such index")
    system, accounts, actors, ana_id, ben_id = people
    bank.payments.transfer(actors["ana"], accounts["ana_checking"], accounts["ben"], "1.00")
    day = bank.business_date
    queries = []

    def explain(sql, params=None):
        queries.append((sql, params))
        return bank.read(sql, params)
    ledger.spent_today_cents(explain, day, [ana_id], bank.engine.dialect)
    bank.approvals._moved_today(explain, actors["teller"], [accounts["ben"]])
    assert len(queries) == 3
    with bank.engine.unit_of_work() as uow:
        uow.execute("SET LOCAL enable_seqscan = off")
        for sql, params in queries:
            plan = "\n".join(row[0] for row in uow.fetchall("EXPLAIN " + sql, params))
            assert "Seq Scan on transactions" not in plan and "Seq Scan on accounts" not in \
                plan and "postings" not in plan, plan
