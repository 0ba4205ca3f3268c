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
