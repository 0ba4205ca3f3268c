"""The command line on a PostgreSQL URL (issue 14, step G): verify, backup (pg_dump) and restore
(pg_restore into an empty database) while the bank is open in another Bank (an app process
serving it); a database without a bank is refused and left as it was.
"""
from __future__ import annotations

import os

import pytest

import bankms
from bankms import cli, operations
from conftest import employee, funded_account, make_customer
from pgcluster import database_url


@pytest.fixture
def empty_database(pg_url, pg_admin):
    """The URL of a new database holding no tables."""
    name = f"cli_empty_{os.getpid()}"
    pg_admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    pg_admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield database_url(pg_url, name)
    finally:
        pg_admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


BALANCES = "SELECT account_number, balance_cents FROM accounts ORDER BY id"


def test_verify_backup_and_restore_on_a_server_url(pg_database, empty_database, tmp_path,
                                                   capsys, monkeypatch):
    dump = str(tmp_path / "bank.dump")
    # A database without a bank is refused by every existing-bank command, and stays empty.
    assert cli.main(["verify", "--db", empty_database]) == 2
    assert "has no bank tables" in capsys.readouterr().err
    assert cli.main(["restore", dump, "--db", empty_database]) == 2  # no such file
    with bankms.open_bank(pg_database, bcrypt_rounds=4) as serving:  # the app, serving on
        cid = make_customer(serving)
        source = funded_account(serving, "250.00", customer_id=cid)
        target = funded_account(serving, "10.00", customer_id=cid)
        serving.payments.transfer(serving.system_actor(), source, target, "40.00")
        sid = serving.auth.start_session(employee(serving, "teller"))  # live at the backup
        assert serving.auth.check_session(sid) is not None
        assert cli.main(["verify", "--db", pg_database]) == 0
        assert cli.main(["backup", dump, "--db", pg_database]) == 0
        balances = serving.read(BALANCES)
        serving.payments.deposit(serving.system_actor(), target, "1.00")  # after the backup
        assert cli.main(["backup", dump, "--db", pg_database]) == 2  # never overwrites
        # The Operations page's named backup: a .dump file in data/backups.
        monkeypatch.chdir(tmp_path)
        named = operations.backup_named(serving, serving.system_actor(), "nightly")
        assert (named["kind"], os.path.basename(named["path"])) == ("pg_dump", "nightly.dump")
    assert os.stat(dump).st_mode & 0o077 == 0
    capsys.readouterr()

    assert cli.main(["restore", dump, "--db", empty_database]) == 0
    assert cli.main(["verify", "--db", empty_database]) == 0
    assert "every invariant holds" in capsys.readouterr().out
    with bankms.open_bank(empty_database, bcrypt_rounds=4) as restored:
        # The copy is the bank as it was when the backup began: without the later deposit.
        assert restored.read(BALANCES) == balances
        # ... but with every session of the backup's moment ended (operations.restore).
        assert restored.auth.check_session(sid) is None
    assert dict(balances)[source] == 21000

    assert cli.main(["restore", dump, "--db", empty_database]) == 2
    assert "is not empty" in capsys.readouterr().err
