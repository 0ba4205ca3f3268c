"""pgtools on a PostgreSQL server: what counts as an empty database for restore, and what its
messages may show of a URL (never a secret)."""
from __future__ import annotations

import psycopg
import pytest

from bankms.domain.errors import InvalidInput
from bankms.store import pgtools


@pytest.fixture
def fake_dump(tmp_path):
    """A file that passes check_dump: restore refuses a non-empty database before reading it."""
    path = tmp_path / "bank.dump"
    path.write_bytes(pgtools.DUMP_MAGIC + b"\0" * 16)
    return str(path)


@pytest.mark.parametrize("ddl", [
    "CREATE SEQUENCE lone_sequence",
    "CREATE SCHEMA elsewhere; CREATE TABLE elsewhere.accounts (id int)",
    "CREATE VIEW lone_view AS SELECT 1 AS one",
    "CREATE SCHEMA elsewhere; CREATE SEQUENCE elsewhere.counter",
])
def test_restore_refuses_a_database_holding_any_relation(pg_database, fake_dump, ddl):
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute(ddl)
    with pytest.raises(InvalidInput, match="is not empty"):
        pgtools.restore(fake_dump, pg_database)


def test_an_empty_database_has_no_relations(pg_database):
    assert pgtools._relations(pg_database) == set()


@pytest.mark.parametrize("url, expected", [
    ("postgresql://u:s3cret@db.example:5433/bank", "postgresql://db.example:5433/bank"),
    ("postgresql://u:se%2Fcret@h/bank?sslmode=require", "postgresql://h/bank"),
    ("host=/run/postgresql dbname=bank password=s3cret", "postgresql:///run/postgresql/bank"),
    # An unencoded '/', '?' or '@' in the password: libpq reads part of it as host, port or
    # database, so nothing of the URL is shown.
    ("postgresql://u:se/cret@h/bank", pgtools.UNPARSED),
    ("postgresql://u:12/cret@h/bank", pgtools.UNPARSED),
    ("postgresql://u:se@cret@h/bank", pgtools.UNPARSED),
    ("postgresql://u:se?cret@h/bank", "postgresql://h/bank"),
    ("host='unterminated", pgtools.UNPARSED),
])
def test_shown_prints_only_host_port_and_database(url, expected):
    assert pgtools.shown(url) == expected


@pytest.fixture
def socket_dir(pg_url):
    """The test server's socket folder (no password is checked there: trust)."""
    return psycopg.conninfo.conninfo_to_dict(pg_url)["host"]


# (URL with {sock} for the test server's socket folder, the secret its messages must not show).
LEAKY_URLS = [
    ("postgresql://u:se/cret@h/bank", "cret"),
    ("postgresql://u:12/cret@h/bank", "cret"),
    ("postgresql://u:se@cret@h/bank", "cret"),
    ("postgresql://bankms:se%3Fcret@/no_such_db?host={sock}", "cret"),
    ("host={sock} user=bankms dbname=no_such_db password=se/cret", "cret"),
    ("postgresql://bankms@/no_such_db?host={sock}&passfile=/tmp/se/cret", "cret"),
    ("postgresql://bankms@/no_such_db?host={sock}&sslpassword=se/cret", "cret"),
]


def _dump(url, path):
    with open(path, "wb") as out:
        pgtools.dump(url, out.fileno())


@pytest.mark.parametrize("url, secret", LEAKY_URLS)
def test_no_message_shows_a_secret_of_the_url(url, secret, socket_dir, fake_dump, tmp_path):
    url = url.format(sock=socket_dir)
    messages = []
    for call in (lambda: pgtools.check_bank_url(url),
                 lambda: pgtools.restore(fake_dump, url),
                 lambda: _dump(url, tmp_path / "out.dump")):
        with pytest.raises(Exception) as caught:
            call()
        messages.append(str(caught.value))
    assert all(secret not in m for m in messages), messages


def test_secrets_go_to_the_environment_not_the_command_line():
    conninfo, env, secrets = pgtools._without_secrets(
        "postgresql://u:pw%2F1@h/bank?passfile=/home/u/.pgpass")
    assert "pw/1" not in conninfo and ".pgpass" not in conninfo
    assert (env["PGPASSWORD"], env["PGPASSFILE"]) == ("pw/1", "/home/u/.pgpass")
    with pytest.raises(InvalidInput, match="sslpassword"):
        pgtools._without_secrets("postgresql://u@h/bank?sslpassword=x")


@pytest.fixture
def pg_bank(pg_database):
    import bankms
    with bankms.open_bank(pg_database, bcrypt_rounds=4) as bank:
        yield bank


def _make_folder(path):
    path.mkdir()


def _make_file(path):
    path.write_bytes(b"keep me")


@pytest.mark.parametrize("make, what", [(_make_folder, "is a folder"),
                                        (_make_file, "already exists")])
def test_backup_refuses_an_existing_destination_and_leaves_it(pg_bank, tmp_path, make, what):
    from bankms import operations
    dest = tmp_path / "taken.dump"
    make(dest)
    before = dest.read_bytes() if dest.is_file() else None
    with pytest.raises(InvalidInput, match=what):
        operations.backup(pg_bank, pg_bank.system_actor(), str(dest))
    assert dest.exists() and (before is None or dest.read_bytes() == before)


def test_a_failed_dump_removes_only_the_file_it_made(pg_bank, tmp_path, monkeypatch):
    import os
    from bankms import operations

    def fail(url, out):
        os.write(out, b"PGDMP partial")
        raise InvalidInput("pg_dump failed: on purpose")
    monkeypatch.setattr(pgtools, "dump", fail)
    (tmp_path / "other.dump").write_bytes(b"an older backup")
    with pytest.raises(InvalidInput, match="on purpose"):
        operations.backup(pg_bank, pg_bank.system_actor(), str(tmp_path / "new.dump"))
    assert sorted(os.listdir(tmp_path)) == ["other.dump"]


def test_a_backup_file_is_private_from_its_creation(pg_bank, tmp_path, monkeypatch):
    import os
    import stat
    from bankms import operations
    seen = []
    real = pgtools.dump

    def spy(url, out):
        seen.append(stat.S_IMODE(os.fstat(out).st_mode))
        real(url, out)
    monkeypatch.setattr(pgtools, "dump", spy)
    done = operations.backup(pg_bank, pg_bank.system_actor(), str(tmp_path / "b.dump"))
    assert seen == [0o600] and done["bytes"] > 0
    with open(done["path"], "rb") as handle:
        assert handle.read(5) == pgtools.DUMP_MAGIC
