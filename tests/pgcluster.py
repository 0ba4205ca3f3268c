"""A private PostgreSQL cluster for tests and benchmarks, and the pytest fixtures over it.

This module owns how a test reaches PostgreSQL:

- `start_cluster()` runs `initdb` and `pg_ctl start` for a throwaway cluster in a short /tmp
  directory (unix socket only, no TCP; superuser `bankms`, trust auth) and returns a `Cluster`
  whose `url` libpq and psycopg accept. As root it creates the system user `bankmsci` and runs
  the server as that user through `runuser`, because initdb refuses root. Tests run it with
  `fsync=off`; the durable benchmarks pass `fsync=True`. `.ci/run` starts the same cluster in
  shell and exports its URL as `BANKMS_TEST_PG`. The directory names the process that started
  it (owner.pid), so the next start stops clusters whose process was killed.
- `start_standby(primary)` makes a hot standby of a running cluster (pg_basebackup -R -X
  stream) and `wait_replayed` waits until it has replayed the primary's WAL;
  `base_backup` and `start_recovered` do point-in-time recovery from a base backup and a WAL
  archive (tests/test_replica.py; docs/deploy-postgresql.md, sections 5 and 6).
- Fixtures: `pg_url` (session: `BANKMS_TEST_PG` when set, else a cluster this process starts on
  first use and stops at the end), `pg_template` (session: the template database every test
  database is copied from), `pg_database` (per test: the URL of a fresh, empty database,
  dropped WITH (FORCE) after the test), `pg_bank_database` (the same, copied from a template
  holding the bank's migrated schema: `pg_bank_templates`) and `engine` (per test:
  `EngineUnderTest(name, url)`, on pg_bank_database for a test that takes the `bank` fixture;
  tests in modules marked `engines` run once per name in `ENGINES`).
- When no server can be started, PostgreSQL tests skip with a reason that starts with
  `SKIP_PREFIX`, and `report_skipped` (called from tests/conftest.py's `pytest_terminal_summary`)
  prints a loud banner with their count. With `BANKMS_TEST_PG` set, an unreachable server is an
  error, not a skip: CI must not pass by skipping.

Under pytest-xdist each worker is its own session: without `BANKMS_TEST_PG` each worker starts
its own cluster; with it, the workers share one server and their database names carry the
worker id and process id, so they never collide.

`BANKMS_TEST_PGBIN` names the directory holding initdb and pg_ctl (default: the newest
/usr/lib/postgresql/*/bin, then initdb on PATH); pointing it at a missing directory is how a test
simulates a machine without PostgreSQL.

Measured on the shared 2-core machine while other work kept it at load average 5-9,
every command at nice 19 (so these are ceilings; `python tests/pgcluster.py` prints them again;
PostgreSQL 15, 5 runs):

- cluster start, initdb + pg_ctl start: 1.3-3.0 s (initdb most of it: 2.4 of 2.7 s in the
  run timed apart; pg_ctl start 0.2-0.3 s), once per session (per xdist worker); up to 6 s as
  a test's setup under the heaviest load; stop 0.25 s;
- a test database copied from a template of 30 tables with an index each: CREATE DATABASE ...
  STRATEGY FILE_COPY median 0.04-0.13 s at load 5, 0.47-0.59 s at load 6-9 (WAL_LOG 0.04-0.68 s:
  no steady winner); DROP ... WITH (FORCE) 0.02 s. In test runs pg_database's setup took
  0.2-0.8 s and its teardown 0.02-0.2 s. FILE_COPY is used as planned: it does not write the
  copy to WAL, which matters as the template grows.
"""
from __future__ import annotations

import fcntl
import glob
import itertools
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlsplit

import pytest

PG_ENV = "BANKMS_TEST_PG"
PGBIN_ENV = "BANKMS_TEST_PGBIN"
CI_USER = "bankmsci"
SUPERUSER = "bankms"
TEMPLATE = "bankms_template"
OWNER_FILE = "owner.pid"
SKIP_PREFIX = "PostgreSQL: no server could be started"
ENGINES = ("duckdb", "pg")
# A test server needs no durability: kill -9 tests kill app processes, never this server.
NO_DURABILITY = {"fsync": "off", "full_page_writes": "off"}


class ClusterUnavailable(Exception):
    """No cluster could be started here; the message says why, for the skip reason."""


class Cluster:
    """A running private cluster: `directory` holds the data directory, the log and the socket;
    `url` is `postgresql:///postgres?host=<directory>&user=bankms`. `stop()` may be called
    twice; the cluster is also a context manager that stops it."""

    def __init__(self, *, directory: Path, bin_dir: Path, run_as: list[str]):
        self.directory = directory
        self.bin_dir = bin_dir
        self.run_as = run_as
        self.url = f"postgresql:///postgres?host={directory}&user={SUPERUSER}"
        self.running = False

    def pg_ctl(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*self.run_as, str(self.bin_dir / "pg_ctl"), "-D",
                               str(self.directory / "data"), *args],
                              capture_output=True, text=True)

    def stop(self) -> None:
        if self.running:
            self.pg_ctl("-m", "fast", "-w", "stop")
            self.running = False
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> "Cluster":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def find_bin_dir() -> Path | None:
    """The directory of initdb and pg_ctl: `BANKMS_TEST_PGBIN` when set (even if it has no
    initdb), else Debian's newest /usr/lib/postgresql/<version>/bin, else initdb's on PATH."""
    if os.environ.get(PGBIN_ENV):
        return Path(os.environ[PGBIN_ENV])
    debian = glob.glob("/usr/lib/postgresql/*/bin/initdb")
    if debian:
        newest = max(debian, key=lambda p: [int(n) for n in re.findall(r"\d+", p)])
        return Path(newest).parent
    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path else None


def _unprivileged_user() -> list[str]:
    """The command prefix that runs the server: nothing for an ordinary user; for root,
    `runuser -u bankmsci --`, creating that system user (no home) when it is missing."""
    if os.geteuid() != 0:
        return []
    if shutil.which("runuser") is None:
        raise ClusterUnavailable("running as root and runuser is missing (initdb refuses root)")
    # pytest-xdist's workers start clusters at the same moment: without the lock two of them
    # both found the user missing, and one worker's initdb then ran while the other's useradd
    # was rewriting /etc/passwd ("could not look up effective user ID"), so that worker's
    # PostgreSQL tests all skipped.
    with open("/tmp/bankms-pg-useradd.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if subprocess.run(["id", CI_USER], capture_output=True).returncode != 0:
            made = subprocess.run(["useradd", "--system", "-M", CI_USER], capture_output=True,
                                  text=True)
            if made.returncode != 0:
                raise ClusterUnavailable(f"running as root and could not create user "
                                         f"{CI_USER}: {made.stderr.strip()}")
    return ["runuser", "-u", CI_USER, "--"]


def start_cluster(*, fsync: bool = False, settings: dict | None = None) -> Cluster:
    """Start a private cluster and return it running; the caller stops it.

    fsync=False (tests) turns off fsync and full_page_writes; fsync=True
    (durability benchmarks) keeps PostgreSQL's defaults. `settings` adds postgresql.conf lines
    (values written as the file wants them, quotes included). Raises ClusterUnavailable(reason)
    when there is no initdb, no unprivileged user to run it as, or initdb or the start fails."""
    bin_dir = find_bin_dir()
    if bin_dir is None or not (bin_dir / "initdb").exists():
        where = bin_dir or f"/usr/lib/postgresql/*/bin or PATH (set {PGBIN_ENV})"
        raise ClusterUnavailable(f"no initdb in {where}; install Debian's postgresql or set "
                                 f"{PG_ENV} to a server's URL")
    run_as = _unprivileged_user()
    reap_orphans(bin_dir, run_as)
    # A short path: a unix socket's path must stay under 107 bytes.
    directory = _new_directory(run_as)
    cluster = Cluster(directory=directory, bin_dir=bin_dir, run_as=run_as)
    try:
        # C collation sorts text byte-wise, as DuckDB does; the ctype stays UTF-8 so upper()
        # and lower() handle accented letters. Neither depends on the machine's LANG.
        initdb = subprocess.run(
            [*run_as, str(bin_dir / "initdb"), "-D", str(directory / "data"), "-U", SUPERUSER,
             "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8", "--lc-collate=C", "--no-sync"],
            capture_output=True, text=True)
        if initdb.returncode != 0:
            raise ClusterUnavailable(f"initdb failed: {_tail(initdb.stderr)}")
        conf = {"listen_addresses": "''", "unix_socket_directories": f"'{directory}'",
                "max_connections": "200"}
        if not fsync:
            conf.update(NO_DURABILITY)
        conf.update(settings or {})
        _configure_and_start(cluster, conf)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _configure_and_start(cluster: Cluster, conf: dict) -> None:
    """Append `conf` to the cluster's postgresql.conf (a later line wins over an earlier one)
    and start it, waiting until it accepts connections (a standby: read-only ones)."""
    with open(cluster.directory / "data" / "postgresql.conf", "a") as file:
        file.write("".join(f"{k} = {v}\n" for k, v in conf.items()))
    started = cluster.pg_ctl("-l", str(cluster.directory / "log"), "-w", "start")
    cluster.running = started.returncode == 0
    if not cluster.running:
        path = cluster.directory / "log"
        log = path.read_text() if path.exists() else ""
        raise ClusterUnavailable(f"pg_ctl start failed: {_tail(started.stderr + log)}")


def _new_directory(run_as: list[str]) -> Path:
    """A short /tmp directory for a cluster, owned by the user the server runs as."""
    directory = Path(tempfile.mkdtemp(prefix="bmpg.", dir="/tmp"))
    (directory / OWNER_FILE).write_text(str(os.getpid()))
    if run_as:
        shutil.chown(directory, user=CI_USER)
    return directory


def _from_base_backup(primary: Cluster, args: list[str], conf: dict) -> Cluster:
    """A cluster made by pg_basebackup of `primary` with `args`, configured with `conf` (its
    own socket folder always) and started."""
    directory = _new_directory(primary.run_as)
    cluster = Cluster(directory=directory, bin_dir=primary.bin_dir, run_as=primary.run_as)
    try:
        # --checkpoint=fast: without it the backup waits for the primary's next spread
        # checkpoint (1 min 36 s on a quiet cluster here).
        made = subprocess.run(
            [*primary.run_as, str(primary.bin_dir / "pg_basebackup"), "-h",
             str(primary.directory), "-U", SUPERUSER, "-D", str(directory / "data"),
             "--checkpoint=fast", "--no-sync", *args], capture_output=True, text=True)
        if made.returncode != 0:
            raise ClusterUnavailable(f"pg_basebackup failed: {_tail(made.stderr)}")
        _configure_and_start(cluster, {"unix_socket_directories": f"'{directory}'", **conf})
    except BaseException:
        cluster.stop()
        raise
    return cluster


def start_standby(primary: Cluster) -> Cluster:
    """A hot standby of `primary` streaming from it, started (the caller stops it): a base
    backup with `pg_basebackup -R -X stream` (-R writes standby.signal and primary_conninfo),
    then its own socket folder. The primary needs wal_level replica and max_wal_senders > 0
    (PostgreSQL's defaults) and a `local replication` line in pg_hba.conf (initdb's
    --auth=trust writes one). The standby has no slot: a test's standby keeps up."""
    return _from_base_backup(primary, ["-R", "-X", "stream"], {})


def start_recovered(primary: Cluster, base: Path, archive: Path, target_time: str) -> Cluster:
    """Point-in-time recovery as docs/deploy-postgresql.md describes it: a copy of the base
    backup folder `base` (pg_basebackup -D base -X fetch, plain format) that replays WAL from
    `archive` (restore_command) up to `target_time` (a timestamptz literal), then is promoted
    and opens for writes. Returns it running once it has left recovery; the caller stops it.
    Raises ClusterUnavailable when the recovery fails (its log's tail in the message)."""
    directory = _new_directory(primary.run_as)
    cluster = Cluster(directory=directory, bin_dir=primary.bin_dir, run_as=primary.run_as)
    try:
        copied = subprocess.run([*primary.run_as, "cp", "-a", str(base), str(directory / "data")],
                                capture_output=True, text=True)
        if copied.returncode != 0:
            raise ClusterUnavailable(f"copying the base backup failed: {_tail(copied.stderr)}")
        subprocess.run([*primary.run_as, "touch", str(directory / "data" / "recovery.signal")],
                       check=True)
        _configure_and_start(cluster, {
            "unix_socket_directories": f"'{directory}'",
            # Not the primary's archive: this cluster's new timeline would archive into it.
            "archive_mode": "off",
            "restore_command": f"'cp {archive}/%f %p'",
            "recovery_target_time": f"'{target_time}'",
            "recovery_target_action": "'promote'"})
        # pg_ctl -w returns once read-only connections are accepted; promotion follows the
        # replay up to the target, or the server stops ("recovery ended before configured
        # recovery target was reached" when the archive ends first).
        import psycopg
        try:
            with _connect(cluster.url) as conn:
                deadline = time.monotonic() + 60
                while conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]:
                    if time.monotonic() > deadline:
                        raise ClusterUnavailable("recovery did not end in 60 s")
                    time.sleep(0.05)
        except (psycopg.Error, ClusterUnavailable) as exc:
            raise ClusterUnavailable(f"recovery failed ({exc}): "
                                     f"{_tail((directory / 'log').read_text())}") from exc
    except BaseException:
        cluster.stop()
        raise
    return cluster


def base_backup(primary: Cluster, folder: Path) -> None:
    """A plain-format base backup of `primary` into the new folder `folder` with the WAL it
    needs (-X fetch), for start_recovered."""
    made = subprocess.run(
        [*primary.run_as, str(primary.bin_dir / "pg_basebackup"), "-h", str(primary.directory),
         "-U", SUPERUSER, "-D", str(folder), "--checkpoint=fast", "--no-sync", "-X", "fetch"],
        capture_output=True, text=True)
    if made.returncode != 0:
        raise ClusterUnavailable(f"pg_basebackup failed: {_tail(made.stderr)}")


def wait_replayed(primary_url: str, standby_url: str, timeout_s: float = 30.0) -> str:
    """Wait until the standby has replayed everything the primary had written when this was
    called (its replay LSN reaches the primary's current WAL LSN); the LSN waited for. Polls
    the condition; raises TimeoutError after `timeout_s`."""
    with _connect(primary_url) as primary:
        (lsn,) = primary.execute("SELECT CAST(pg_current_wal_lsn() AS TEXT)").fetchone()
    with _connect(standby_url) as standby:
        deadline = time.monotonic() + timeout_s
        while not standby.execute("SELECT pg_last_wal_replay_lsn() >= CAST(%s AS pg_lsn)",
                                  [lsn]).fetchone()[0]:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the standby did not replay up to {lsn} in {timeout_s} s")
            time.sleep(0.01)
    return lsn


def reap_orphans(bin_dir: Path, run_as: list[str]) -> None:
    """Stop and remove the clusters this module started for processes that are gone (a test
    run killed with -9 cannot stop its own). Clusters without an owner file (.ci/run's) and
    those of live processes are left alone."""
    for owner in glob.glob(f"/tmp/bmpg.*/{OWNER_FILE}"):
        try:
            pid = int(Path(owner).read_text())
            os.kill(pid, 0)
            continue
        except ProcessLookupError:
            pass
        except (ValueError, OSError):
            continue
        orphan = Cluster(directory=Path(owner).parent, bin_dir=bin_dir, run_as=run_as)
        orphan.running = (orphan.directory / "data" / "postmaster.pid").exists()
        orphan.stop()


def _tail(text: str, lines: int = 3) -> str:
    return " / ".join(text.strip().splitlines()[-lines:])


def database_url(url: str, name: str) -> str:
    """url with its database replaced by name, keeping host, user and every other parameter."""
    parts = urlsplit(url)
    # Written out by hand: urlunsplit drops the "//" of an empty host ("postgresql:///db").
    query = f"?{parts.query}" if parts.query else ""
    return f"{parts.scheme}://{parts.netloc}/{name}{query}"


def _connect(url: str):
    import psycopg
    return psycopg.connect(url, autocommit=True, connect_timeout=10)


# Session state of this process (one per xdist worker).
_worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def pg_url():
    """The URL of a PostgreSQL server's `postgres` database as its superuser: `BANKMS_TEST_PG`
    when set (an unreachable one fails the tests), else a private cluster started now and
    stopped at the end of the session. Skips (reason starting with SKIP_PREFIX) when none can
    be started."""
    url = os.environ.get(PG_ENV)
    if url:
        try:
            _connect(url).close()
        except Exception as exc:  # noqa: BLE001 - any failure to reach the server says the same
            pytest.fail(f"{PG_ENV}={url} is set but no server answers there: {exc}")
        yield url
        return
    try:
        cluster = start_cluster()
    except ClusterUnavailable as exc:
        pytest.skip(f"{SKIP_PREFIX} ({exc})")
    try:
        yield cluster.url
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def pg_admin(pg_url):
    """An autocommit connection to the server's `postgres` database, for creating and dropping
    databases."""
    conn = _connect(pg_url)
    yield conn
    conn.close()


@pytest.fixture(scope="session")
def pg_template(pg_admin):
    """The name of this session's template database (`bankms_template_<worker>_<pid>`: two
    runs may share one server), made once and left empty: tests of a first migration and of
    restores into an empty database need it so. The bank's schema is in pg_bank_templates."""
    name = f"{TEMPLATE}_{_worker}_{os.getpid()}".lower()
    pg_admin.execute(f'CREATE DATABASE "{name}"')
    yield name
    pg_admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _copied_database(pg_url, pg_admin, template: str):
    """The URL of a fresh database copied from `template` for this test alone, dropped WITH
    (FORCE) after it (connections the test left open are ended)."""
    name = f"t_{_worker}_{os.getpid()}_{next(_numbers)}".lower()
    # FILE_COPY copies the template's files without writing them to WAL (PostgreSQL 15+).
    strategy = " STRATEGY FILE_COPY" if pg_admin.info.server_version >= 150000 else ""
    pg_admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"{strategy}')
    try:
        yield database_url(pg_url, name)
    finally:
        pg_admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_database(pg_url, pg_admin, pg_template):
    """The URL of a fresh, empty database copied from the template for this test alone,
    dropped WITH (FORCE) after it (connections the test left open are ended)."""
    yield from _copied_database(pg_url, pg_admin, pg_template)


@pytest.fixture(scope="session")
def pg_bank_templates(pg_url, pg_admin, pg_template):
    """Databases holding the bank's schema as the PostgreSQL engine's first open migrates it
    (db.migrate; no bank rows: internal accounts and the business date depend on the test's
    clock and are written by the Bank's open), made once per session and copied for each test
    that opens a bank on its database (pg_bank_database). The migration took about 0.15-0.2 s
    of each such test's open; copying the bigger template costs about 0.1 s more than the empty
    one (measured side by side at load 5-6), for about 420 tests.

    What the migration writes depends on the clock only through the server's current_date
    (the seeded deposit products' first versions) and now() (their created_at), so a template
    is made per UTC date, as new_duckdb_bank keys DuckDB's by utcnow's date. Once migrated, a
    template accepts no connections (ALLOW_CONNECTIONS false): CREATE DATABASE ... TEMPLATE
    fails while anyone is connected to the source, and the migrating engine's backends may
    outlive its close by a moment, so the copy waits until they are gone."""
    made: dict = {}
    yield made
    for name in made.values():
        pg_admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _bank_template(pg_url, pg_admin, pg_template, made: dict) -> str:
    import datetime as dt

    from bankms.store.postgres import PostgresEngine

    today = dt.datetime.now(dt.timezone.utc).date()
    if today not in made:
        name = f"{TEMPLATE}_schema_{len(made)}_{_worker}_{os.getpid()}".lower()
        pg_admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"')
        try:
            PostgresEngine(database_url(pg_url, name)).close()
            pg_admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
            deadline = time.monotonic() + 30
            while pg_admin.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s",
                                   [name]).fetchone()[0]:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"template {name} is still in use after 30 s")
                time.sleep(0.01)
        except BaseException:
            # Never offered half-built or still open to later tests (found in review).
            pg_admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            raise
        made[today] = name
    return made[today]


@pytest.fixture
def pg_bank_database(pg_url, pg_admin, pg_template, pg_bank_templates):
    """Like pg_database, but copied from a template that holds the bank's migrated schema
    (pg_bank_templates): for tests whose bank is opened by the `bank` fixture, which test
    nothing about a first migration (tests/test_store_contract.py and tests/test_pgtools.py
    test that on pg_database's empty databases). Opening a bank on it migrates nothing and
    writes what a first open on an empty database writes."""
    template = _bank_template(pg_url, pg_admin, pg_template, pg_bank_templates)
    yield from _copied_database(pg_url, pg_admin, template)


class EngineUnderTest(NamedTuple):
    """The storage engine a test runs on: name is one of ENGINES; url is the test's own
    PostgreSQL database for "pg" and None for "duckdb" (which uses a file under tmp_path)."""
    name: str
    url: str | None


@pytest.fixture
def engine(request):
    """EngineUnderTest("duckdb", None) unless the module is marked `engines`, in which case
    `pytest_generate_tests` runs the test once per name in ENGINES."""
    # BANKMS_TEST_ENGINE=pg runs every test that takes `engine` (or the `bank` fixture) on
    # PostgreSQL: a sweep to find what does not yet run there, not a CI setting.
    name = getattr(request, "param", os.environ.get("BANKMS_TEST_ENGINE", "duckdb"))
    if name == "pg":
        # A test that takes the `bank` fixture gets its bank on a copy of the migrated schema,
        # as on DuckDB (tests/conftest.py, new_duckdb_bank); any other test an empty database.
        database = "pg_bank_database" if "bank" in request.fixturenames else "pg_database"
        return EngineUnderTest("pg", request.getfixturevalue(database))
    return EngineUnderTest("duckdb", None)


def pytest_generate_tests(metafunc):
    if "engine" in metafunc.fixturenames and metafunc.definition.get_closest_marker("engines"):
        metafunc.parametrize("engine", ENGINES, indirect=True)


def skipped_reasons(terminalreporter) -> dict[str, int]:
    """How many tests skipped because no PostgreSQL server could be started, by reason (the
    text in brackets). Reports come from xdist workers too, with longrepr as a list."""
    counts: dict[str, int] = {}
    for report in terminalreporter.stats.get("skipped", []):
        longrepr = report.longrepr
        if isinstance(longrepr, (tuple, list)) and len(longrepr) == 3:
            message = str(longrepr[2])
            at = message.find(SKIP_PREFIX)
            if at >= 0:
                reason = message[at + len(SKIP_PREFIX):].strip().removeprefix("(")
                reason = reason.removesuffix(")")
                counts[reason] = counts.get(reason, 0) + 1
    return counts


def report_skipped(terminalreporter) -> None:
    """The loud banner: "N PostgreSQL tests SKIPPED: no server could be started (reason)"."""
    for reason, count in skipped_reasons(terminalreporter).items():
        terminalreporter.write_sep(
            "!", f"{count} PostgreSQL tests SKIPPED: no server could be started ({reason})",
            red=True, bold=True)


def _measure(rounds: int = 10) -> None:
    """Print how long a cluster takes to start and a test database to be copied and dropped."""
    t0 = time.perf_counter()
    with start_cluster() as cluster:
        started_s = time.perf_counter() - t0
        admin = _connect(cluster.url)
        admin.execute("CREATE DATABASE tmpl")
        with _connect(database_url(cluster.url, "tmpl")) as conn:
            for i in range(30):
                conn.execute(f"CREATE TABLE x{i} (id BIGINT PRIMARY KEY, amount_cents BIGINT "
                             f"NOT NULL, note TEXT)")
                conn.execute(f"CREATE INDEX ON x{i} (amount_cents)")
        print(f"cluster start (initdb + pg_ctl start): {started_s:.2f} s")
        for strategy in ("FILE_COPY", "WAL_LOG"):
            create_s, drop_s = [], []
            for i in range(rounds):
                t1 = time.perf_counter()
                admin.execute(f"CREATE DATABASE t{i} TEMPLATE tmpl STRATEGY {strategy}")
                t2 = time.perf_counter()
                admin.execute(f"DROP DATABASE t{i} WITH (FORCE)")
                create_s.append(t2 - t1)
                drop_s.append(time.perf_counter() - t2)
            print(f"{strategy}: create median {sorted(create_s)[rounds // 2]:.3f} s "
                  f"(max {max(create_s):.3f} s), drop median {sorted(drop_s)[rounds // 2]:.3f} s")
        admin.close()
        t3 = time.perf_counter()
    print(f"stop: {time.perf_counter() - t3:.2f} s; load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    _measure()
