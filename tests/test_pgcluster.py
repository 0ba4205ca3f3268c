"""The PostgreSQL test harness (tests/pgcluster.py): the server it gives answers on a unix socket
only, each test gets its own database that is dropped afterwards, cents survive as BIGINT, the
`engines` marker runs a test per engine, and tests skip with a loud banner when no server can be
started."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import pgcluster

psycopg = pytest.importorskip("psycopg")

REPO = Path(__file__).resolve().parent.parent


def one(url, sql, params=None):
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchone()[0]


PROBES = [
    ("SELECT 1", 1),
    ("SELECT current_user", pgcluster.SUPERUSER),
    ("SELECT current_database() LIKE 't\\_%'", True),
    # A unix-socket connection has no server address.
    ("SELECT inet_server_addr() IS NULL", True),
    ("SHOW listen_addresses", ""),
    ("SELECT pg_encoding_to_char(encoding) FROM pg_database WHERE datname = current_database()",
     "UTF8"),
    # Text sorts byte-wise, as on DuckDB: upper case before lower case.
    ("SELECT string_agg(x, '' ORDER BY x) FROM unnest(ARRAY['b', 'a', 'B']) AS x", "Bab"),
    ("SELECT upper('é')", "É"),
]


@pytest.mark.parametrize("sql, expected", PROBES)
def test_harness_probe(pg_database, sql, expected):
    assert one(pg_database, sql) == expected


_seen_databases: list[str] = []


@pytest.mark.parametrize("turn", ["first", "second"])
def test_each_test_gets_a_fresh_database_dropped_after_it(pg_database, pg_admin, turn):
    with psycopg.connect(pg_database) as conn:
        name = conn.execute("SELECT current_database()").fetchone()[0]
        # Fails if an earlier test's database (and its table) were handed out again.
        conn.execute("CREATE TABLE marker (id BIGINT)")
    existing = {row[0] for row in pg_admin.execute("SELECT datname FROM pg_database")}
    assert name in existing
    if turn == "second":
        earlier = _seen_databases[-1]
        assert earlier != name
        assert earlier not in existing
    _seen_databases.append(name)


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        target = os.readlink(fd)
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    return inodes


def _listening_inodes(table: str) -> set[str]:
    """Inodes of listening sockets in /proc/net/<table>: state 0A (LISTEN) for TCP; for unix
    sockets, flag 00010000 (__SO_ACCEPTCON)."""
    lines = Path(f"/proc/net/{table}").read_text().splitlines()[1:]
    if table == "unix":
        return {f[6] for f in (line.split() for line in lines) if f[3] == "00010000"}
    return {f[9] for f in (line.split() for line in lines) if f[3] == "0A"}


@pytest.mark.parametrize("table, listens", [
    ("tcp", False),
    ("tcp6", False),
    ("unix", True),  # the check can see a listening socket: the server's own
])
def test_server_listens_on_no_tcp_port(pg_admin, table, listens):
    data_directory = pg_admin.execute("SHOW data_directory").fetchone()[0]
    postmaster_pid = int(Path(data_directory, "postmaster.pid").read_text().split()[0])
    mine = _socket_inodes(postmaster_pid) & _listening_inodes(table)
    assert bool(mine) == listens


@pytest.mark.parametrize("cents, expected", [
    (0, 0),
    (1, 1),
    (-1, -1),
    (123_456_789_01, 123_456_789_01),
    (-9223372036854775808, -9223372036854775808),
    (9223372036854775807, 9223372036854775807),
    (9223372036854775808, psycopg.errors.NumericValueOutOfRange),
])
def test_money_stays_bigint(pg_database, cents, expected):
    with psycopg.connect(pg_database) as conn:
        conn.execute("CREATE TABLE postings (amount_cents BIGINT NOT NULL)")
        if isinstance(expected, type):
            with pytest.raises(expected):
                conn.execute("INSERT INTO postings VALUES (%s)", (cents,))
            return
        conn.execute("INSERT INTO postings VALUES (%s)", (cents,))
        back, kind = conn.execute(
            "SELECT amount_cents, pg_typeof(amount_cents)::text FROM postings").fetchone()
    assert (back, type(back), kind) == (expected, int, "bigint")


@pytest.mark.engines
def test_engines_marker_runs_once_per_engine(engine, request):
    expected = request.node.callspec.params["engine"]
    assert engine.name == expected
    if engine.name == "pg":
        assert one(engine.url, "SELECT current_database()") != "postgres"
    else:
        assert engine.url is None


def test_engine_is_duckdb_without_the_marker_unless_a_sweep_asks(engine):
    # BANKMS_TEST_ENGINE=pg (the sweep switch) puts every unmarked test on PostgreSQL, this
    # one included; the fixture reads it before the test runs, so it is read here too.
    if os.environ.get("BANKMS_TEST_ENGINE", "duckdb") == "pg":
        assert engine.name == "pg"
        assert one(engine.url, "SELECT current_database()") != "postgres"
    else:
        assert engine == pgcluster.EngineUnderTest("duckdb", None)


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


@pytest.mark.slow
@pytest.mark.parametrize("owner, reaped", [
    ("this process", False),
    ("a finished process", True),
])
def test_clusters_of_killed_runs_are_reaped(owner, reaped):
    try:
        cluster = pgcluster.start_cluster()
    except pgcluster.ClusterUnavailable as exc:
        pytest.skip(f"{pgcluster.SKIP_PREFIX} ({exc})")
    with cluster:
        if owner == "a finished process":
            (cluster.directory / pgcluster.OWNER_FILE).write_text(str(_dead_pid()))
        pgcluster.reap_orphans(cluster.bin_dir, cluster.run_as)
        assert (cluster.directory.exists(), _answers(cluster.url)) == (not reaped, not reaped)
        cluster.running = not reaped


def _answers(url: str) -> bool:
    try:
        psycopg.connect(url, connect_timeout=5).close()
    except psycopg.OperationalError:
        return False
    return True


def test_database_url_keeps_socket_and_user():
    url = "postgresql:///postgres?host=/tmp/bmpg.ab12&user=bankms"
    assert pgcluster.database_url(url, "t_main_1") == \
        "postgresql:///t_main_1?host=/tmp/bmpg.ab12&user=bankms"


BANNER = "PostgreSQL tests SKIPPED: no server could be started"


@pytest.mark.slow
@pytest.mark.parametrize("server, workers, expected", [
    # No initdb where the harness looks: every probe skips and the banner counts them.
    ("none", "0", f"{len(PROBES)} {BANNER} (no initdb in /nonexistent/bin"),
    ("none", "2", f"{len(PROBES)} {BANNER} (no initdb in /nonexistent/bin"),
    # A server given by BANKMS_TEST_PG: the probes pass and there is no banner.
    ("given", "0", f"{len(PROBES)} passed"),
], ids=["no-server", "no-server-xdist", "server-given"])
def test_skip_banner_when_no_server_can_start(request, server, workers, expected):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTEST_", "BANKMS_TEST_PG"))}
    if server == "given":
        env[pgcluster.PG_ENV] = request.getfixturevalue("pg_url")
    else:
        env[pgcluster.PGBIN_ENV] = "/nonexistent/bin"
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/test_pgcluster.py", "-k", "harness_probe",
         "-n", workers, "-p", "no:cacheprovider", "-q"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert expected in run.stdout, run.stdout[-3000:]
    assert (BANNER in run.stdout) == (server == "none")
