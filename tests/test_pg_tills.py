"""Tills of busy internal accounts in writer lanes (issue 14): a posting batch in writer lane n
books its legs on teller cash and clearing on that lane's till ("GL1000-L01"), so batches of
several processes never wait for one another on those rows; the account and its tills are one
ledger line; exclusive work and DuckDB book on the account itself."""
from __future__ import annotations

import threading

import pytest

import bankms
from bankms.domain.chart import INTERNAL, till_number
from bankms.domain.errors import InsufficientFunds
from conftest import make_customer
from test_pg_processes import HeldPoster

CASH, CLEARING = INTERNAL["teller_cash"], INTERNAL["clearing"]


def open_bank(url):
    return bankms.open_bank(url, bcrypt_rounds=4)


def internal_balances(bank) -> dict:
    return dict(bank.read("SELECT account_number, balance_cents FROM accounts "
                          "WHERE customer_id IS NULL AND balance_cents <> 0"))


def customer_accounts(bank, n):
    system = bank.system_actor()
    cid = make_customer(bank)
    return [bank.accounts.open(system, cid, kind="checking") for _ in range(n)]


def test_two_lanes_post_cash_at_once_on_tills_of_their_own(pg_database):
    """While one process's batch with a cash deposit is open (its rows written, before
    COMMIT), another process's cash deposit to another account commits: it does not wait for
    the teller cash row. The first cash of each lane books on teller cash itself and opens the
    lane's tills. Each lane's cash is on its own till, opened with an audit record; the
    trial balance has one teller cash line with both; verify is clean."""
    first, second = open_bank(pg_database), open_bank(pg_database)
    try:
        a, b = customer_accounts(first, 2)
        system = first.system_actor()
        first.payments.deposit(system, a, "1.00")
        second.payments.deposit(system, b, "1.00")
        held = HeldPoster(first._writer._post_batch)
        first._writer._post_batch = held
        done = []
        slow = threading.Thread(target=lambda: done.append(
            first.payments.deposit(system, a, "10.00")))
        slow.start()
        try:
            assert held.entered.wait(10)
            quick = threading.Thread(target=lambda: done.append(
                second.payments.deposit(system, b, "20.00")))
            quick.start()
            quick.join(10)
            assert not quick.is_alive() and len(done) == 1, "the second lane waited"
        finally:
            held.release.set()
            slow.join(10)
        assert len(done) == 2
        assert internal_balances(first) == {CASH: -200, till_number(CASH, 1): -1000,
                                            till_number(CASH, 2): -2000}
        opened = first.read("SELECT entity_id, lane FROM audit_log WHERE action = "
                            "'account.open' AND entity_id LIKE 'GL%' ORDER BY 1")
        assert opened == [(till_number(CASH, 1), 1), (till_number(CASH, 2), 2),
                          (till_number(CLEARING, 1), 1), (till_number(CLEARING, 2), 2)]
        lines = first.reports.trial_balance(system).set_index("code")
        assert lines.loc[CASH, "balance_cents"] == -3200
        assert lines.loc[CASH, "account"] == "Teller cash"
        assert not any("-L" in code for code in lines.index)
        assert int(lines["balance_cents"].sum()) == 0
        ledger = first.reports.general_ledger(system, first.business_date,
                                              first.business_date).set_index("code")
        assert ledger.loc[CASH, "closing_cents"] == -3200
        day = first.business_date
        _, cash_lines = first.reports.ledger_lines(system, CASH, day, day)
        assert sorted(cash_lines["amount_cents"]) == [-2000, -1000, -100, -100]
        _, till_lines = first.reports.ledger_lines(system, till_number(CASH, 2), day, day)
        assert list(till_lines["amount_cents"]) == [-2000]
        assert first.audit.verify() == []
    finally:
        second.close()
        first.close()


def test_a_till_deposit_replays_reverses_and_audits_the_till(pg_database):
    """A deposit's key sent again from another lane answers with the first receipt and moves
    nothing (the request hash names the account, not the till); its reversal, from the other
    lane, takes the money back off the first lane's till; the audit names the till that moved;
    a withdrawal through clearing books on the clearing till."""
    first, second = open_bank(pg_database), open_bank(pg_database)
    try:
        (a,) = customer_accounts(first, 1)
        system = first.system_actor()
        first.payments.deposit(system, a, "1.00")
        second.payments.deposit(system, a, "1.00")
        receipt = first.payments.deposit(system, a, "50.00", idempotency_key="till-1")
        again = second.payments.deposit(system, a, "50.00", idempotency_key="till-1")
        assert again.replayed and again.transaction_id == receipt.transaction_id
        after = first.read_one("SELECT after FROM audit_log WHERE entity_id = ?",
                               [str(receipt.transaction_id)])[0]
        assert till_number(CASH, 1) in after and f'"{CASH}"' not in after
        second.payments.reverse(system, receipt.transaction_id, "entered twice")
        first.payments.deposit(system, a, "30.00")
        second.payments.withdraw(system, a, "5.00", channel="transfer")
        assert internal_balances(first) == {CASH: -200, till_number(CASH, 1): -3000,
                                            till_number(CLEARING, 2): 500}
        assert first.audit.verify() == []
    finally:
        second.close()
        first.close()


def test_work_that_runs_alone_books_on_the_account_itself(pg_database):
    """Only posting batches beside other lanes use tills: a job that runs alone (here a
    deposit posted inside the caller's exclusive unit of work) books on teller cash itself."""
    bank = open_bank(pg_database)
    try:
        (a,) = customer_accounts(bank, 1)
        system = bank.system_actor()
        request = bank.payments._deposit_request(system, a, 700, "alone-1", "")
        bank.write(lambda uow: bank.post_in(uow, request))
        assert internal_balances(bank) == {CASH: -700}
        assert bank.audit.verify() == []
    finally:
        bank.close()


@pytest.mark.parametrize("engine_name", ["duckdb"])
def test_duckdb_books_cash_on_teller_cash(tmp_path, engine_name):
    """DuckDB has one writer (lane 0): no tills."""
    bank = open_bank(str(tmp_path / "bank.duckdb"))
    try:
        (a,) = customer_accounts(bank, 1)
        bank.payments.deposit(bank.system_actor(), a, "12.00")
        assert internal_balances(bank) == {CASH: -1200}
        assert bank.read("SELECT count(*) FROM accounts WHERE account_number LIKE "
                         "'GL%-L%'") == [(0,)]
    finally:
        bank.close()


def test_tills_opened_by_a_batch_that_rolls_back_are_opened_again(pg_database):
    """The first batch that posts on teller cash or clearing in a lane books there itself and
    opens the lane's tills after its rows, inside its own unit of work; if that unit fails,
    the tills go with it, and the next such batch opens them again (every batch reads the
    tills it would book on). A batch whose requests are all refused opens none."""
    bank = open_bank(pg_database)
    try:
        (a,) = customer_accounts(bank, 1)
        system = bank.system_actor()
        poster = bank._writer._post_batch
        opened, calls = poster.open_tills, []

        def open_then_fail(uow, lane):
            opened(uow, lane)
            calls.append(lane)
            if len(calls) == 1:
                raise RuntimeError("the unit fails after opening the tills")
        poster.open_tills = open_then_fail
        tills = "SELECT count(*) FROM accounts WHERE account_number LIKE 'GL%-L%'"
        with pytest.raises(InsufficientFunds):
            bank.payments.withdraw(system, a, "1.00", idempotency_key="refused")
        assert calls == [] and bank.read(tills) == [(0,)]
        with pytest.raises(RuntimeError):
            bank.payments.deposit(system, a, "1.00", idempotency_key="fails")
        assert internal_balances(bank) == {}
        bank.payments.deposit(system, a, "2.00", idempotency_key="posts")
        assert calls == [1, 1]
        bank.payments.deposit(system, a, "3.00", idempotency_key="on-the-till")
        assert internal_balances(bank) == {CASH: -200, till_number(CASH, 1): -300}
        assert bank.read(tills) == [(2,)]
        assert bank.audit.verify() == []
    finally:
        bank.close()
