"""Opening a PostgreSQL bank that other processes serve locks none of its tables (issue 14).

Every open runs the schema migration (db.migrate). Its DDL (ALTER TABLE ... ADD COLUMN IF NOT
EXISTS, ALTER COLUMN ... SET NOT NULL or SET DEFAULT, CREATE INDEX IF NOT EXISTS) takes its
table's lock, ACCESS EXCLUSIVE or SHARE, before it finds there is nothing to do. Such a lock
waits for every reader of the table (a report, a read model's pull in REPEATABLE READ) and,
while it waits, every later reader and writer of that table in every process waits behind it:
one app process starting, or the command line's verify or backup, would stall the bank. So the
migration leaves a mark (db.SCHEMA_MARK: a fingerprint of its code and of the catalog it left)
and an open that finds it current runs no DDL. These tests hold the bank's tables as a reader
and as a job stronger than any writer would, and open the bank beside them; they check that
the open runs no DDL at all (the lanes' SET DEFAULT included), and that whatever makes the
schema differ from the mark (an old bank's missing column, default, index or sequence; a mark
left by other code) still migrates. DuckDB (one process per file) migrates at every open, as
before. The banks here start from the migrated template (pg_bank_database), so each costs one
open; the whole module takes a few seconds.
"""
from __future__ import annotations

import threading

import psycopg
import pytest

import bankms
from bankms.store import db, postgres

# Long enough for an open on a loaded machine; an open that waits for a lock never ends.
OPEN_WAIT_S = 10


def open_bank(url):
    return bankms.open_bank(url, bcrypt_rounds=4)


def bank_tables(conn) -> list[str]:
    return [name for (name,) in conn.execute(
        "SELECT relname FROM pg_class WHERE relkind = 'r' AND "
        "relnamespace = to_regnamespace(current_schema()) ORDER BY relname").fetchall()]


def open_beside(url, hold) -> tuple[bool, list]:
    """Open the bank at url on a thread while another session holds what `hold(conn)` takes
    inside its transaction; (whether the open was still waiting after OPEN_WAIT_S, the lock
    requests not granted then). The hold ends either way and the bank is closed."""
    holder = psycopg.connect(url)
    try:
        hold(holder)
        opened = []
        thread = threading.Thread(target=lambda: opened.append(open_bank(url)), daemon=True)
        thread.start()
        thread.join(OPEN_WAIT_S)
        waiting = thread.is_alive()
        with psycopg.connect(url, autocommit=True) as probe:
            ungranted = probe.execute(
                "SELECT c.relname, l.mode FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                "WHERE NOT l.granted AND l.database = "
                "(SELECT oid FROM pg_database WHERE datname = current_database())").fetchall()
        holder.rollback()
        thread.join(60)
        for bank in opened:
            bank.close()
        return waiting, ungranted
    finally:
        holder.close()


def table_waited_for(conn) -> str | None:
    """The name of a table of conn's database for which some session waits for a lock, or
    None. pg_locks lists every database's locks, and databases copied from one template have
    the same oids: only this database's lock requests name its tables."""
    row = conn.execute(
        "SELECT c.relname FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
        "WHERE NOT l.granted AND c.relkind = 'r' AND l.database = "
        "(SELECT oid FROM pg_database WHERE datname = current_database())").fetchone()
    return None if row is None else row[0]


def read_the_ledger(conn):
    """A report, or a read model's pull: REPEATABLE READ, every table read (ACCESS SHARE)."""
    conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
    for table in bank_tables(conn):
        conn.execute(f"SELECT count(*) FROM {table}").fetchone()


def hold_above_writers(conn):
    """SHARE UPDATE EXCLUSIVE on every table (what VACUUM and ANALYZE take): it lets readers
    and writers in, and stops any lock stronger than a writer's (DDL, CREATE INDEX)."""
    conn.execute("BEGIN")
    conn.execute(f"LOCK TABLE {', '.join(bank_tables(conn))} IN SHARE UPDATE EXCLUSIVE MODE")


def test_opening_a_bank_does_not_wait_for_a_reader_of_the_ledger(pg_bank_database):
    """The reader of rev30's review: before the mark, the open's ALTER TABLE waited for it."""
    open_bank(pg_bank_database).close()
    waiting, ungranted = open_beside(pg_bank_database, read_the_ledger)
    assert not waiting, f"the open waited behind a reader; lock requests not granted: {ungranted}"


def test_opening_a_bank_takes_no_lock_stronger_than_a_writers(pg_bank_database):
    open_bank(pg_bank_database).close()
    waiting, ungranted = open_beside(pg_bank_database, hold_above_writers)
    assert not waiting, f"the open waited for a table lock; not granted: {ungranted}"


class Recording:
    """The migration's connection, recording each statement it runs."""

    def __init__(self, conn):
        self._con = postgres._QmarkConnection(conn)
        self.statements: list[str] = []

    def execute(self, sql, params=None):
        self.statements.append(" ".join(sql.split()))
        return self._con.execute(sql, params)


def migrate(url) -> list[str]:
    """The statements an open's migration runs on the bank at url, as PostgresEngine runs it
    (its clocks as `extra`). Each is recorded as one line."""
    with psycopg.connect(url, autocommit=True) as conn:
        con = Recording(conn)
        db.migrate(con, engine="postgresql", extra=tuple(
            f"CREATE SEQUENCE IF NOT EXISTS {clock}"
            for clock in (postgres.WRITER_CLOCK, postgres.CALLS_CLOCK)))
        return con.statements


def ddl(statements) -> list[str]:
    return [s for s in statements if s.split()[0].upper() in (
        "ALTER", "CREATE", "DROP", "COMMENT", "LOCK", "INSERT", "UPDATE", "DELETE")
        or "pg_advisory" in s]


def test_an_open_of_a_current_bank_runs_no_ddl_and_takes_no_lock(pg_bank_database):
    """Not the lanes' ALTER ... SET DEFAULT either (before the mark it ran whenever the default
    read back otherwise), nor the migration's advisory lock."""
    open_bank(pg_bank_database).close()
    statements = migrate(pg_bank_database)
    assert statements and ddl(statements) == []


def column_default(url, table, column):
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT column_default FROM information_schema.columns WHERE "
                           "table_name = %s AND column_name = %s", [table, column]).fetchone()
    return row and row[0]


def index_count(url, name):
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM pg_indexes WHERE indexname = %s",
                            [name]).fetchone()[0]


# What an older bank lacks (run on the migrated bank), and how to see it is back.
OLD_BANKS = {
    "the transactions' lane default": (
        ["ALTER TABLE transactions ALTER COLUMN lane DROP DEFAULT"],
        lambda url: "bankms.lane" in column_default(url, "transactions", "lane")),
    "the audit log's lane default": (
        ["ALTER TABLE audit_log ALTER COLUMN lane DROP DEFAULT"],
        lambda url: "bankms.lane" in column_default(url, "audit_log", "lane")),
    "a column": (
        ["ALTER TABLE transactions DROP COLUMN channel"],
        lambda url: "channel" in bankms_columns(url, "transactions")),
    "an index": (
        ["DROP INDEX postings_id_brin"],
        lambda url: index_count(url, "postings_id_brin") == 1),
    "a clock": (
        [f"DROP SEQUENCE {postgres.CALLS_CLOCK}"],
        lambda url: sequence_exists(url, postgres.CALLS_CLOCK)),
    "the mark (made by the code before it)": (
        ["COMMENT ON TABLE settings IS NULL"], None),
    "a mark of other code": (
        ["COMMENT ON TABLE settings IS 'bankms schema 0123'"], None),
}


def bankms_columns(url, table):
    with psycopg.connect(url, autocommit=True) as conn:
        return {name for (name,) in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = %s",
            [table]).fetchall()}


def sequence_exists(url, name):
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute("SELECT to_regclass(%s) IS NOT NULL", [name]).fetchone()[0]


@pytest.mark.parametrize("lacking", OLD_BANKS)
def test_an_older_bank_is_migrated_then_opens_without_ddl(pg_bank_database, lacking):
    """Whatever makes the schema differ from what the migration left, or the mark differ from
    this code's, migrates (taking its locks, as before), and the next open runs no DDL."""
    fake, back = OLD_BANKS[lacking]
    open_bank(pg_bank_database).close()
    with psycopg.connect(pg_bank_database, autocommit=True) as conn:
        for statement in fake:
            conn.execute(statement)
    statements = migrate(pg_bank_database)
    assert any(s.startswith("ALTER TABLE transactions ADD COLUMN IF NOT EXISTS channel")
               for s in statements), "the migration did not run"
    if back is not None:
        assert back(pg_bank_database)
    assert ddl(migrate(pg_bank_database)) == []
    bank = open_bank(pg_bank_database)
    try:
        assert bank.audit.verify() == []
    finally:
        bank.close()


def test_a_migration_left_incomplete_leaves_no_mark_and_completes_later(pg_bank_database):
    """A bank holding two reversals of one transaction opens without the reversal index
    (db._add_lanes): it leaves no mark, so every open tries again, and the index comes the
    first time the bank opens without the pair (its rows are faked here in SQL)."""
    from conftest import funded_account

    bank = open_bank(pg_bank_database)
    try:
        account = funded_account(bank, "10.00")
        third, first, second = (
            bank.payments.deposit(bank.system_actor(), account, "1.00").transaction_id
            for _ in range(3))
    finally:
        bank.close()
    with psycopg.connect(pg_bank_database, autocommit=True) as conn:
        conn.execute(f"DROP INDEX {db.REVERSAL_INDEX}")
        conn.execute("UPDATE transactions SET reverses_id = %s WHERE id IN (%s, %s)",
                     [third, first, second])
    assert ddl(migrate(pg_bank_database)) != []
    assert index_count(pg_bank_database, db.REVERSAL_INDEX) == 0
    assert ddl(migrate(pg_bank_database)) != [], "the open did not try again"
    with psycopg.connect(pg_bank_database, autocommit=True) as conn:
        conn.execute("UPDATE transactions SET reverses_id = NULL WHERE id = %s", [second])
    migrate(pg_bank_database)
    assert index_count(pg_bank_database, db.REVERSAL_INDEX) == 1
    assert ddl(migrate(pg_bank_database)) == []


def test_a_migration_waiting_behind_a_report_gives_way_to_the_banks_other_users(
        pg_bank_database):
    """A bank that needs migrating (here: a mark of other code, as after an upgrade) is opened
    while a report reads the ledger in REPEATABLE READ. The migration's ALTER TABLE waits for
    ACCESS EXCLUSIVE behind the report; a lock request waiting in PostgreSQL's queue makes
    every later reader and writer of the table wait behind it, so before each attempt had a
    lock timeout a teller's balance lookup waited as long as the report ran (here: until the
    probe's statement timeout). Now each attempt gives its locks back after a short wait, the
    lookup gets through between attempts, and the migration completes once the report ends."""
    open_bank(pg_bank_database).close()
    with psycopg.connect(pg_bank_database, autocommit=True) as conn:
        conn.execute("COMMENT ON TABLE settings IS 'bankms schema 0123'")
    report = psycopg.connect(pg_bank_database)
    opened = []
    try:
        read_the_ledger(report)
        thread = threading.Thread(target=lambda: opened.append(open_bank(pg_bank_database)),
                                  daemon=True)
        thread.start()
        with psycopg.connect(pg_bank_database, autocommit=True) as probe:
            # The migration is queued for a table's lock (a condition, not a time).
            waited_for = None
            while waited_for is None:
                assert thread.is_alive() and not opened, "the open did not wait for the report"
                threading.Event().wait(0.005)
                waited_for = table_waited_for(probe)
            probe.execute("SET statement_timeout = '5s'")
            for _ in range(3):
                probe.execute(f"SELECT count(*) FROM {waited_for}").fetchone()
        assert thread.is_alive(), "the migration did not wait for the report"
        report.rollback()
        thread.join(OPEN_WAIT_S * 6)
        assert opened, "the migration did not complete after the report"
        assert ddl(migrate(pg_bank_database)) == []
    finally:
        report.close()
        for bank in opened:
            bank.close()
