"""The command line on a PostgreSQL URL (issue 14, step G): verify, backup (pg_dump) and restore
(pg_restore into an empty database) while the bank is open in another Bank (an app process
serving it); a database without a bank is refused and left as it was.
"""
from __future__ import annotations

import datetime as dt
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


def test_verify_on_the_read_model(pg_database, capsys, monkeypatch):
    """`verify --read-model` checks the ledger on a read model of the bank (BANKMS_READ_MODEL)
    and says how old it is; it finds a balance changed behind the ledger's back; without the
    setting it is refused, and the refusal audited."""
    monkeypatch.delenv("BANKMS_READ_MODEL", raising=False)
    argv = ["verify", "--read-model", "--db", pg_database]
    with bankms.open_bank(pg_database, bcrypt_rounds=4) as serving:  # the app, serving on
        funded_account(serving, "250.00", customer_id=make_customer(serving))
        # (setting, what is planted first, exit status, what stdout or stderr holds)
        for setting, plant, code, shown in [
                (None, None, 2, "This bank has no read model: start with BANKMS_READ_MODEL=1"),
                ("1", None, 0, "ok: the ledger holds on the read model"),
                ("1", "GL1000", 1, "account GL1000 balance")]:
            if setting:
                monkeypatch.setenv("BANKMS_READ_MODEL", setting)
            if plant:
                serving.write(lambda uow: uow.execute(
                    "UPDATE accounts SET balance_cents = balance_cents + 1 "
                    "WHERE account_number = ?", [plant]))
            assert cli.main(argv) == code
            out, err = capsys.readouterr()
            assert shown in (err if code == 2 else out), (out, err)
            if code != 2:
                # The as-of line: the copy was pulled by this very command.
                stamp = out.split("read model as of ", 1)[1][:19]
                assert serving.clock().replace(tzinfo=None) - dt.datetime.fromisoformat(
                    stamp) < dt.timedelta(minutes=5)
        refused = serving.read_one(
            "SELECT count(*) FROM audit_log WHERE action = 'audit.verify' "
            "AND outcome = 'refused'")[0]
    assert refused == 1


def test_verify_on_a_read_model_file_the_app_holds_is_refused_in_one_line(pg_database, tmp_path,
                                                                          capsys, monkeypatch):
    """A read model kept in a file belongs to one process, as any DuckDB file does: while
    another holds it (the app), the command says so and where to verify instead."""
    import subprocess
    import sys

    bankms.open_bank(pg_database, bcrypt_rounds=4).close()
    path = str(tmp_path / "readmodel.duckdb")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys; con = duckdb.connect(sys.argv[1]); "
         "print('held', flush=True); sys.stdin.read()", path],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        monkeypatch.setenv("BANKMS_READ_MODEL", path)
        assert cli.main(["verify", "--read-model", "--db", pg_database]) == 2
    finally:
        holder.communicate("")  # end of input: the holder exits
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "read model's file is in use by another process" in err
