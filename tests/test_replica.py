"""A streaming replica and point-in-time recovery, for real (docs/deploy-postgresql.md, sections
5 and 6; issue 14).

The module starts its own private primary (tests/pgcluster.py, fsync off) with WAL archiving to
a folder, and a hot standby of it made by `pg_basebackup -R -X stream`: a cluster of the shared
test server (BANKMS_TEST_PG) cannot be given a standby or an archive. Then:

- the DuckDB read model pulling from the standby (BANKMS_READ_MODEL_SOURCE) holds exactly what
  one pulling from the primary holds, and gives the same dashboard figures as the primary
  itself, after a full pull and after an incremental one, once the standby has replayed the
  primary's WAL (waited for: replay LSN >= the primary's LSN, never a fixed sleep);
- with the standby's replay paused, a posting on the primary is not in the copy, and the copy's
  "as of" is earlier than that posting (the figures do not claim to be fresher than they are);
- a base backup and the archived WAL, recovered to a time between two postings, give a bank
  that verify() finds clean and that holds exactly the postings committed before that time.

Without BANKMS_TEST_PG, a machine where no cluster starts skips these tests loudly (SKIP_PREFIX);
with it (CI), failing to start one is an error.
"""
from __future__ import annotations

import datetime as dt
import os
import subprocess
import time

import pandas.testing as pdt
import pytest

import bankms
import pgcluster
from bankms import operations
from bankms.bank import read_model_setting
from bankms.reporting import analytics
from bankms.store.readmodel import NOT_COPIED, ReadModel
from bankms.store.sql import DUCKDB
from conftest import employee, make_customer

BANK = "bank"
# The dashboard figures compared with the primary's own (the pages' key figures and charts).
FIGURES = ("key_figures", "daily_volume", "top_customers", "balance_distribution")


class Pair:
    """The private primary, its standby, and the URLs of the bank's database on each."""

    def __init__(self, primary, standby):
        self.primary, self.standby = primary, standby
        self.primary_url = pgcluster.database_url(primary.url, BANK)
        self.standby_url = pgcluster.database_url(standby.url, BANK)
        self.archive = primary.directory / "archive"


@pytest.fixture(scope="module")
def pair():
    started = []
    try:
        # The archive lies beside the data directory (the command runs in it), in the folder
        # owned by the server's user.
        primary = pgcluster.start_cluster(settings={
            "archive_mode": "on",
            "archive_command": "'test ! -f ../archive/%f && cp %p ../archive/%f'"})
        started.append(primary)
        subprocess.run([*primary.run_as, "mkdir", "-m", "700", str(primary.directory / "archive")],
                       check=True)
        with pgcluster._connect(primary.url) as admin:
            admin.execute(f"CREATE DATABASE {BANK}")
        started.append(pgcluster.start_standby(primary))
    except pgcluster.ClusterUnavailable as exc:
        for cluster in started:
            cluster.stop()
        if os.environ.get(pgcluster.PG_ENV):
            pytest.fail(f"a private primary and standby could not be started: {exc}")
        pytest.skip(f"{pgcluster.SKIP_PREFIX} ({exc})")
    try:
        yield Pair(*started)
    finally:
        for cluster in reversed(started):
            cluster.stop()


@pytest.fixture(scope="module")
def bank(pair):
    bank = bankms.open_bank(pair.primary_url, bcrypt_rounds=4)
    yield bank
    bank.close()


def activity(bank, n: int) -> list[str]:
    """n customers with a checking and a savings account, deposits, transfers, withdrawals."""
    system, numbers = bank.system_actor(), []
    for i in range(n):
        cid = make_customer(bank, name=f"Replica Customer {i}")
        checking = bank.accounts.open(system, cid, kind="checking")
        savings = bank.accounts.open(system, cid, kind="savings")
        bank.payments.deposit(system, checking, f"{500 + 10 * i}.{i:02d}")
        bank.payments.transfer(system, checking, savings, f"{50 + i}.25")
        bank.payments.withdraw(system, checking, "12.00")
        numbers += [checking, savings]
    return numbers


def copy_of(rm: ReadModel) -> dict:
    """Every copied table of the read model, its rows in the order of all its columns."""
    out = {}
    for table in rm._columns:
        if table in NOT_COPIED:
            continue
        n = len(rm._columns[table])
        out[table] = rm.read(f"SELECT * FROM {table} ORDER BY "
                             + ", ".join(str(i + 1) for i in range(n)))
    return out


def assert_same_copy(on_standby: ReadModel, on_primary: ReadModel) -> None:
    mine, theirs = copy_of(on_standby), copy_of(on_primary)
    assert mine.keys() == theirs.keys()
    for table in mine:
        assert mine[table] == theirs[table], table
    assert len(mine["postings"]) > 0 and len(mine["accounts"]) > 0


def balance(source, number: str) -> int:
    """An account's balance in cents, read from a bank or a read model."""
    return source.read("SELECT balance_cents FROM accounts WHERE account_number = ?",
                       [number])[0][0]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def test_the_read_model_pulls_from_the_standby_what_the_primary_holds(pair, bank):
    numbers = activity(bank, 4)
    before_last = utcnow()
    bank.payments.deposit(bank.system_actor(), numbers[0], "1.23")
    with pgcluster._connect(pair.primary_url) as conn:
        (state,) = conn.execute("SELECT state FROM pg_stat_replication").fetchone()
    assert state == "streaming"
    with ReadModel(pair.standby_url) as standby, ReadModel(pair.primary_url) as primary:
        for phase in ("full", "incremental"):
            if phase == "incremental":
                activity(bank, 2)
                before_last = utcnow()
                bank.payments.deposit(bank.system_actor(), numbers[1], "4.56")
            pgcluster.wait_replayed(pair.primary_url, pair.standby_url)
            pulled_at = utcnow()
            report = standby.refresh()
            primary.refresh()
            assert report.full == (phase == "full"), phase
            assert_same_copy(standby, primary)
            # The dashboards on the standby's copy give the primary's own figures (the same
            # copy gives the same figures for every query: tests/test_readmodel.py).
            f = bank.reports.filters()
            for name in FIGURES:
                fn = analytics.DASHBOARD[name]
                pdt.assert_frame_equal(fn(analytics.Source(standby.read_df, DUCKDB), f),
                                       fn(analytics.duckdb_source(bank), f),
                                       check_dtype=False, obj=f"{phase}: {name}")
            fresh = standby.freshness()
            # As of the last commit replayed: the last deposit's, by the primary's clock.
            assert fresh.replica is True and primary.freshness().replica is False
            assert before_last <= fresh.as_of <= pulled_at, (phase, fresh)
        assert standby.check_ledger()[0] == []


def test_the_copy_of_a_lagging_standby_says_it_is_older(pair, bank):
    """Replay paused: the primary's new posting is not in the copy, and the copy's "as of" is
    before it was made, however late the copy was pulled."""
    system = bank.system_actor()
    number = activity(bank, 1)[0]
    pgcluster.wait_replayed(pair.primary_url, pair.standby_url)
    with pgcluster._connect(pair.standby_url) as standby_conn, ReadModel(pair.standby_url) as rm:
        standby_conn.execute("SELECT pg_wal_replay_pause()")
        try:
            deadline = time.monotonic() + 30
            while standby_conn.execute(
                    "SELECT pg_get_wal_replay_pause_state()").fetchone()[0] != "paused":
                assert time.monotonic() < deadline, "the standby's replay did not pause"
                time.sleep(0.01)
            before_posting = utcnow()
            bank.payments.deposit(system, number, "77.77")
            rm.refresh()
            assert balance(rm, number) == balance(bank, number) - 7777
            fresh = rm.freshness()
            assert fresh.replica and fresh.as_of < before_posting < fresh.refreshed_at
        finally:
            standby_conn.execute("SELECT pg_wal_replay_resume()")
        pgcluster.wait_replayed(pair.primary_url, pair.standby_url)
        rm.refresh()
        assert balance(rm, number) == balance(bank, number)
        assert rm.freshness().as_of >= before_posting


def test_a_bank_reads_its_reports_from_the_replica_it_is_given(pair, bank, monkeypatch):
    from bankms.reporting.reports import Reports

    activity(bank, 1)
    monkeypatch.setenv("BANKMS_READ_MODEL", "1")
    monkeypatch.setenv("BANKMS_READ_MODEL_SOURCE", pair.standby_url)
    pgcluster.wait_replayed(pair.primary_url, pair.standby_url)
    wired = bankms.open_bank(pair.primary_url, bcrypt_rounds=4)
    try:
        assert wired.read_model.source_url == pair.standby_url
        system = wired.system_actor()
        manager = employee(bank, "manager")
        f = wired.reports.filters()
        answer = wired.reports.query(manager, "key_figures", f, fresh=True)
        pdt.assert_frame_equal(answer, bank.reports.query(manager, "key_figures", f, fresh=True),
                               check_dtype=False)
        fresh = wired.read_model.freshness()
        assert fresh.replica is True
        assert Reports.as_of(answer) == fresh.as_of.replace(tzinfo=dt.timezone.utc)
        assert operations.verify(wired, system, on_read_model=True)["ok"]
    finally:
        wired.close()


@pytest.mark.parametrize("environ, source", [
    ({"BANKMS_READ_MODEL": "1"}, "postgresql:///bank?host=/tmp"),
    ({"BANKMS_READ_MODEL": "1", "BANKMS_READ_MODEL_SOURCE": ""}, "postgresql:///bank?host=/tmp"),
    ({"BANKMS_READ_MODEL": "1", "BANKMS_READ_MODEL_SOURCE": "postgresql://ro@replica/bank"},
     "postgresql://ro@replica/bank"),
])
def test_the_read_model_source_defaults_to_the_banks_url(environ, source):
    setting = read_model_setting("postgresql:///bank?host=/tmp", environ)
    assert setting == (":memory:", 10.0)          # what callers have always unpacked
    assert (setting.path, setting.max_age_s, setting.source) == (":memory:", 10.0, source)


def test_a_read_model_source_that_is_not_postgresql_is_refused_without_quoting_it():
    with pytest.raises(ValueError) as refused:
        read_model_setting("postgresql:///bank", {"BANKMS_READ_MODEL": "1",
                                                  "BANKMS_READ_MODEL_SOURCE": "s3cret.duckdb"})
    assert "s3cret" not in str(refused.value)


def test_point_in_time_recovery_restores_exactly_the_postings_before_the_target(pair, bank,
                                                                               tmp_path):
    """docs/deploy-postgresql.md, section 6: a base backup, postings A, a target time, postings
    B, the WAL archived; recovered to the target, the bank holds A and not B and verifies. A
    file read model that had copied B, pointed at the recovered server once that has used more
    transaction ids than the old one had, pulls whole (a new timeline) and so loses B too."""
    base = pair.primary.directory / "base"
    pgcluster.base_backup(pair.primary, base)
    system = bank.system_actor()
    number = activity(bank, 1)[0]
    bank.payments.deposit(system, number, "10.00")                       # A
    with pgcluster._connect(pair.primary_url) as conn:
        # The target: a time on the primary's clock after A committed and before B does.
        target, last_id = conn.execute(
            "SELECT CAST(clock_timestamp() AS TEXT), (SELECT max(id) FROM postings)").fetchone()
        before = conn.execute("SELECT * FROM postings ORDER BY id").fetchall()
    bank.payments.deposit(system, number, "20.00")                       # B
    rm_file = str(tmp_path / "readmodel.duckdb")
    with ReadModel(pair.primary_url, rm_file) as rm:
        rm.refresh()
        assert rm.read("SELECT count(*) FROM postings")[0][0] > len(before)
    with pgcluster._connect(pair.primary_url) as conn:
        assert conn.execute("SELECT max(id) FROM postings").fetchone()[0] > last_id
        (segment,) = conn.execute("SELECT pg_walfile_name(pg_switch_wal())").fetchone()
        deadline = time.monotonic() + 30
        while (conn.execute("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")
               .fetchone()[0] < segment):
            assert time.monotonic() < deadline, f"{segment} was not archived"
            time.sleep(0.02)
    recovered = pgcluster.start_recovered(pair.primary, base, pair.archive, target)
    try:
        url = pgcluster.database_url(recovered.url, BANK)
        with pgcluster._connect(url) as conn:
            assert conn.execute("SELECT * FROM postings ORDER BY id").fetchall() == before
            # The recovered bank serves a while: its transaction ids pass the old server's.
            for _ in range(50):
                conn.execute("SELECT pg_current_xact_id()")
        with ReadModel(url, rm_file) as rm:
            assert rm.refresh().full
            assert rm.read("SELECT * FROM postings ORDER BY id") == before
        restored = bankms.open_bank(url, bcrypt_rounds=4)
        try:
            checked = operations.verify(restored, restored.system_actor())
            assert checked["ok"], checked["problems"]
            assert balance(restored, number) == balance(bank, number) - 2000
        finally:
            restored.close()
    finally:
        recovered.stop()


def test_a_standbys_copy_gets_rows_committed_out_of_id_order_on_the_primary(pair):
    """Writer lanes on the primary (ids from posting_id_seq, taken after the xid) commit out of
    id order; read models on the standby end with every row. Given the bank's URL, one settles
    its watermarks with the primary's xids against the standby's snapshots; without it, a
    ledger sequence leaves the other no watermark, and it pulls the append-only tables whole
    (readmodel.py, LEDGER_SEQUENCES)."""
    from test_readmodel import Writer, copied_ids, insert_postings

    from bankms.store.postgres import PostgresEngine

    name = "out_of_order"
    with pgcluster._connect(pair.primary.url) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {name}")
    primary_url = pgcluster.database_url(pair.primary.url, name)
    standby_url = pgcluster.database_url(pair.standby.url, name)

    def replayed():
        # Through the clusters' own databases: the standby may not have replayed the CREATE
        # DATABASE yet (replay positions are the cluster's, whichever database is asked).
        pgcluster.wait_replayed(pair.primary.url, pair.standby.url)

    PostgresEngine(primary_url).close()
    with pgcluster._connect(primary_url) as conn:
        # The bank's own sequence (db.LEDGER_SEQUENCES) made again to start past these rows.
        conn.execute("DROP SEQUENCE posting_id_seq")
        conn.execute("CREATE SEQUENCE posting_id_seq START 11")
        # One value taken (and logged 32 ahead) first, so that the writers' nextval write no
        # WAL: the standby learns of A's xid only from the WAL of xids after it.
        conn.execute("SELECT nextval('posting_id_seq')")
    insert_postings(primary_url, range(1, 11))
    replayed()
    a, b = Writer(primary_url), Writer(primary_url)
    try:
        with ReadModel(standby_url, bank_url=primary_url) as knows, \
                ReadModel(standby_url) as alone:
            for rm in (knows, alone):
                rm.refresh()
            # B holds the older xid, A the lower id (tests/test_readmodel.py, OUT_OF_ORDER).
            b.xid(), a.xid(), a.take(), b.take(), b.commit()
            for _ in range(2):
                # The second time, the standby has replayed the end of the first refresh's
                # own xid (taken on the primary after A's): A must still count as in flight.
                replayed()
                for rm in (knows, alone):
                    rm.refresh()
                    assert copied_ids(rm) == list(range(1, 11)) + b.ids
            a.commit()
            replayed()
            for rm, pulled in ((knows, 2), (alone, 12)):
                report = rm.refresh()
                assert copied_ids(rm) == list(range(1, 11)) + a.ids + b.ids == \
                    list(range(1, 11)) + [12, 13]
                # Above the watermark only, or whole without one.
                assert report.rows["postings"] == pulled
    finally:
        for writer in (a, b):
            writer.conn.close()
        with pgcluster._connect(pair.primary.url) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
