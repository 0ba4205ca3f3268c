"""Benchmark of the DuckDB read model of a bank on PostgreSQL (issue 14, step H).

    .venv/bin/python benchmarks/bench_readmodel.py [--postings 1000000 | --big] [--rebuild]

Builds (or reuses) the reports benchmark's bank at --postings (benchmarks/out/bank-<n>.duckdb,
made by bench_reports.build_bank through the bulk path), copies every table of it into a
PostgreSQL database of the same name (COPY, then VACUUM ANALYZE, as a database that has been
running would be), then prints:

- the full pull: every table through adbc-driver-postgresql in one REPEATABLE READ snapshot
  into an in-memory ReadModel (pull and merge apart);
- the dashboard queries (analytics.DASHBOARD, default filters) on the read model and on the
  DuckDB file holding the same rows, median of --repeat warm runs, with their ratio; and on
  PostgreSQL directly, once, for scale (each statement cut off after 30 s);
- the incremental refresh after 50,000 new postings (25,000 transfers between customers
  written straight into PostgreSQL in one transaction, balances kept equal to the postings),
  then removed again (remove_added), so that the next run need not copy the bank again.

Targets (issue 14): dashboards on the read model within 1.5x of the DuckDB file at 10 M
postings (--big); the incremental refresh after 50,000 postings under 1 s. The PostgreSQL
server is BANKMS_TEST_PG's when set, else a private cluster started here (tests/pgcluster.py,
durable: fsync on). Figures are from a shared 2-core machine: trust the ratios.
"""
from __future__ import annotations

import argparse
import os
import pathlib
import statistics
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import duckdb  # noqa: E402
import psycopg  # noqa: E402

import bankms  # noqa: E402
import bench_reports  # noqa: E402
import pgcluster  # noqa: E402
from bankms.reporting import analytics  # noqa: E402
from bankms.store.postgres import PostgresEngine  # noqa: E402
from bankms.store.readmodel import NOT_COPIED, ReadModel  # noqa: E402

OUT = ROOT / "benchmarks" / "out"
NEW_POSTINGS = 50_000
DASHBOARD_RATIO_MAX = 1.5
INCREMENTAL_S_MAX = 1.0
# Incremental refreshes timed, each after its own 50,000 new postings (the median is shown).
INCREMENTAL_RUNS = 3
# PostgreSQL's own time is shown for scale only; at 10 M postings one of key_figures'
# statements ran for over 4 minutes there (NOT IN over a subquery), so each is cut off.
POSTGRES_STATEMENT_S_MAX = 30


def tag_of(postings: int) -> str:
    return f"{postings // 1_000_000}m" if postings >= 1_000_000 else str(postings)


def copy_to_postgres(duck_path: pathlib.Path, url: str) -> None:
    """Every table of the DuckDB bank into the (migrated, emptied) PostgreSQL database."""
    PostgresEngine(url).close()            # the schema, by the engine's own migration
    src = duckdb.connect(str(duck_path), read_only=True)
    tables = [r[0] for r in src.execute(
        "SELECT table_name FROM duckdb_tables() WHERE NOT internal ORDER BY 1").fetchall()]
    engine = PostgresEngine(url)
    try:
        with engine.unit_of_work() as uow:
            uow.execute("TRUNCATE " + ", ".join(tables))
            for table in tables:
                if table in NOT_COPIED:
                    continue
                t0 = time.perf_counter()
                frame = src.sql(f"SELECT * FROM {table}").to_arrow_table()
                n = uow.load(table, frame)
                if n > 10_000:
                    print(f"  {table}: {n:,} rows ({time.perf_counter() - t0:.1f} s)", flush=True)
            uow.commit()
    finally:
        engine.close()
        src.close()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


def add_postings(url: str, n_postings: int) -> None:
    """n_postings / 2 transfers between random customer checking accounts, now, in one
    transaction: transactions, postings and the accounts' balances (so that balances still
    equal the postings), with ids after the highest."""
    n_tx = n_postings // 2
    with psycopg.connect(url) as conn:
        conn.execute("SET TimeZone TO 'UTC'")
        conn.execute(
            "CREATE TEMP TABLE new_tx ON COMMIT DROP AS "
            "WITH acc AS (SELECT id, account_number, row_number() OVER (ORDER BY id) AS k, "
            "count(*) OVER () AS n FROM accounts WHERE customer_id IS NOT NULL "
            "AND kind = 'checking'), "
            "pick AS (SELECT g, 1 + floor(random() * (SELECT max(n) FROM acc))::bigint AS s, "
            "1 + floor(random() * (SELECT max(n) FROM acc))::bigint AS t "
            "FROM generate_series(1, %s) g) "
            "SELECT (SELECT max(id) FROM transactions) + p.g AS id, "
            "(SELECT max(id) FROM postings) + 2 * p.g - 1 AS debit_id, "
            "a.id AS src_id, a.account_number AS src_no, b.id AS dst_id, "
            "b.account_number AS dst_no, 100 + (p.g %% 900) AS cents "
            "FROM pick p JOIN acc a ON a.k = p.s JOIN acc b ON b.k = p.t", [n_tx])
        conn.execute(
            "INSERT INTO transactions (id, kind, amount_cents, memo, source_account, "
            "target_account, actor, actor_role, posted_at, business_date, chain_hash) "
            "SELECT id, 'transfer', cents, 'bench', src_no, dst_no, 'bench', 'system', "
            "CAST(now() AT TIME ZONE 'UTC' AS TIMESTAMP), CAST(now() AS DATE), "
            # Every transaction carries its 64-digit chain hash: rows shorter than the bank's
            # own would slip into old pages' leftover space, which real ones rarely fit.
            "md5(CAST(id AS TEXT)) || md5(CAST(-id AS TEXT)) FROM new_tx")
        conn.execute(
            "INSERT INTO postings (id, transaction_id, account_id, amount_cents, posted_at) "
            "SELECT debit_id, id, src_id, -cents, CAST(now() AT TIME ZONE 'UTC' AS TIMESTAMP) "
            "FROM new_tx UNION ALL SELECT debit_id + 1, id, dst_id, cents, "
            "CAST(now() AT TIME ZONE 'UTC' AS TIMESTAMP) FROM new_tx")
        conn.execute(
            "UPDATE accounts SET balance_cents = balance_cents + d.delta FROM ("
            "SELECT account_id, sum(delta) AS delta FROM (SELECT src_id AS account_id, -cents "
            "AS delta FROM new_tx UNION ALL SELECT dst_id, cents FROM new_tx) x GROUP BY 1) d "
            "WHERE accounts.id = d.account_id")
        conn.commit()


def remove_added(url: str, postings_max: int, transactions_max: int) -> None:
    """Undo add_postings (rows above the given ids, and the balance moves they made), so that
    the next run finds the database equal to the DuckDB file and need not copy it again."""
    with psycopg.connect(url) as conn:
        conn.execute(
            "UPDATE accounts SET balance_cents = balance_cents - d.delta FROM (SELECT "
            "account_id, sum(amount_cents) AS delta FROM postings WHERE id > %s GROUP BY 1) d "
            "WHERE accounts.id = d.account_id", [postings_max])
        conn.execute("DELETE FROM postings WHERE id > %s", [postings_max])
        conn.execute("DELETE FROM transactions WHERE id > %s", [transactions_max])
        conn.commit()


def postgres_ms(fn, src, f) -> float:
    """One run on PostgreSQL in ms; inf when a statement hit the cap."""
    t0 = time.perf_counter()
    try:
        fn(src, f)
    except psycopg.errors.QueryCanceled:
        return float("inf")
    return (time.perf_counter() - t0) * 1000


def _pg(ms: float) -> str:
    if ms != ms:
        return "-"
    return f">{POSTGRES_STATEMENT_S_MAX * 1000}" if ms == float("inf") else f"{ms:.1f}"


def timed(fn, repeat: int) -> tuple[float, float]:
    """(median of `repeat` warm runs ms, fastest ms), after one run to warm up."""
    fn()
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - t0) * 1000)
    return statistics.median(runs), min(runs)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--postings", type=int, default=1_000_000)
    parser.add_argument("--big", action="store_true", help="10 M postings (the issue's target)")
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-postgres", action="store_true",
                        help="do not time the dashboards on PostgreSQL itself")
    args = parser.parse_args(argv)
    postings = 10_000_000 if args.big else args.postings
    OUT.mkdir(parents=True, exist_ok=True)
    tag = tag_of(postings)
    duck_path = OUT / f"bank-{tag}.duckdb"
    if args.rebuild and duck_path.exists():
        duck_path.unlink()
    if not duck_path.exists():
        print(f"building {duck_path} through the bulk path ...", flush=True)
        t0 = time.perf_counter()
        bench_reports.build_bank(duck_path, postings)
        print(f"built in {time.perf_counter() - t0:.0f} s", flush=True)

    cluster = None
    server = os.environ.get(pgcluster.PG_ENV)
    if not server:
        cluster = pgcluster.start_cluster(fsync=True)
        server = cluster.url
    name = f"bankms_bench_readmodel_{tag}"
    url = pgcluster.database_url(server, name)
    try:
        with psycopg.connect(server, autocommit=True) as admin:
            exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                   [name]).fetchone()
            if exists and args.rebuild:
                admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
                exists = None
            if not exists:
                admin.execute(f'CREATE DATABASE "{name}"')
        with duckdb.connect(str(duck_path), read_only=True) as con:
            (want,) = con.execute("SELECT count(*) FROM postings").fetchone()
        with psycopg.connect(url) as conn:
            have = conn.execute("SELECT count(*) FROM pg_tables WHERE tablename = 'postings'"
                                ).fetchone()[0] and conn.execute(
                "SELECT count(*) FROM postings").fetchone()[0]
        if have != want:
            print(f"copying {duck_path.name} into PostgreSQL database {name} ...", flush=True)
            t0 = time.perf_counter()
            copy_to_postgres(duck_path, url)
            print(f"copied in {time.perf_counter() - t0:.0f} s", flush=True)
        run(duck_path, url, args.repeat, not args.no_postgres)
    finally:
        if cluster is not None:
            cluster.stop()
    return 0


def run(duck_path: pathlib.Path, url: str, repeat: int, with_postgres: bool) -> None:
    load = os.getloadavg()
    print(f"\nload average before timing: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on "
          f"{os.cpu_count()} cores")
    PostgresEngine(url).close()   # migrations (indexes) apply before any statement is capped
    duck_bank = bankms.open_bank(str(duck_path), bcrypt_rounds=4)
    # libpq's options parameter: this connection's statements only, not the read model's pulls.
    capped = f"{url}&options=-c%20statement_timeout%3D{POSTGRES_STATEMENT_S_MAX}s"
    pg_bank = bankms.open_bank(capped, bcrypt_rounds=4)
    rm = ReadModel(url)
    added = None
    try:
        postings, rows = duck_bank.read_one(
            "SELECT (SELECT count(*) FROM postings), (SELECT count(*) FROM postings) + "
            "(SELECT count(*) FROM transactions) + (SELECT count(*) FROM audit_log) + "
            "(SELECT count(*) FROM accounts) + (SELECT count(*) FROM customers)")
        print(f"bank: {postings:,} postings; {rows:,} rows in its main tables")

        report = rm.refresh()
        pulled = sum(report.rows.values())
        print(f"\nFull pull ({pulled:,} rows, one REPEATABLE READ snapshot)")
        print(f"  pull (PostgreSQL -> Arrow, ADBC) {report.pull_s:8.2f} s")
        print(f"  merge (Arrow -> DuckDB)          {report.merge_s:8.2f} s")
        print(f"  total                            {report.pull_s + report.merge_s:8.2f} s")

        f = duck_bank.reports.filters()
        on_file = analytics.duckdb_source(duck_bank)
        on_copy = analytics.Source(rm.read_df, rm.dialect)
        on_pg = analytics.duckdb_source(pg_bank)
        print(f"\nDashboard (default filters {f.start} to {f.end}; median of {repeat} warm "
              "runs, fastest in brackets)")
        print(f"  {'query':<22}{'read model ms':>16}{'duckdb file ms':>17}{'ratio':>8}"
              f"{'postgres ms':>13}")
        totals = [0.0, 0.0, 0.0]
        for qname, fn in analytics.DASHBOARD.items():
            copy_ms, copy_best = timed(lambda: fn(on_copy, f), repeat)
            file_ms, file_best = timed(lambda: fn(on_file, f), repeat)
            pg_ms = postgres_ms(fn, on_pg, f) if with_postgres else float("nan")
            totals = [totals[0] + copy_ms, totals[1] + file_ms, totals[2] + pg_ms]
            print(f"  {qname:<22}{copy_ms:>9.1f} ({copy_best:>5.1f}){file_ms:>10.1f} "
                  f"({file_best:>5.1f}){copy_ms / file_ms:>7.2f}x{_pg(pg_ms):>13}", flush=True)
        ratio = totals[0] / totals[1]
        print(f"  {'total':<22}{totals[0]:>16.1f}{totals[1]:>17.1f}{ratio:>7.2f}x"
              f"{_pg(totals[2]):>13}")

        added = pg_bank.read_one("SELECT max(id) FROM postings")[0], pg_bank.read_one(
            "SELECT max(id) FROM transactions")[0]
        t0 = time.perf_counter()
        idle = rm.refresh()
        print(f"\nRefresh with nothing new (the floor: scans and round trips): "
              f"{time.perf_counter() - t0:.2f} s")
        runs = []
        for _ in range(INCREMENTAL_RUNS):
            t0 = time.perf_counter()
            add_postings(url, NEW_POSTINGS)
            print(f"{NEW_POSTINGS:,} new postings written to PostgreSQL "
                  f"({time.perf_counter() - t0:.1f} s)")
            t0 = time.perf_counter()
            inc = rm.refresh()
            runs.append(time.perf_counter() - t0)
            slowest = sorted(inc.pull_s_by_table.items(), key=lambda kv: -kv[1])[:5]
            print(f"  refresh {runs[-1]:.2f} s (pull {inc.pull_s:.2f}, merge {inc.merge_s:.2f});"
                  " pull by table: " + ", ".join(f"{t} {s:.2f}" for t, s in slowest))
        inc_s = statistics.median(runs)
        del idle
        print(f"Incremental refresh (append-only tables above their final watermark; "
              f"other tables by the change marker: {sum(inc.rows.values()):,} rows "
              f"pulled; pulled whole: {', '.join(sorted(inc.whole)) or 'none'})")
        print(f"  last run: pull {inc.pull_s:6.2f} s   merge {inc.merge_s:6.2f} s; median of "
              f"{len(runs)} runs {inc_s:6.2f} s")
        for table in ("postings", "transactions", "accounts", "customers"):
            print(f"    {table:<14}{inc.rows.get(table, 0):>10,} rows pulled")
        (copy_n,) = rm.read("SELECT count(*) FROM postings")[0]
        (pg_n,) = pg_bank.read_one("SELECT count(*) FROM postings")
        unbalanced = rm.read(
            "SELECT count(*) FROM accounts a LEFT JOIN (SELECT account_id, sum(amount_cents) "
            "AS s FROM postings GROUP BY 1) p ON p.account_id = a.id "
            "WHERE a.balance_cents <> coalesce(p.s, 0)")[0][0]
        print(f"  postings in the copy {copy_n:,} (PostgreSQL {pg_n:,}); accounts whose balance "
              f"differs from their postings: {unbalanced}")
        print(f"  freshness: {rm.freshness()}")

        print("\nTargets")
        print(f"  dashboards on the read model <= {DASHBOARD_RATIO_MAX}x the DuckDB file: "
              f"{'yes' if ratio <= DASHBOARD_RATIO_MAX else 'NO'} ({ratio:.2f}x at "
              f"{postings:,} postings; the target is set at 10 M)")
        print(f"  incremental refresh after {NEW_POSTINGS:,} postings < {INCREMENTAL_S_MAX} s: "
              f"{'yes' if inc_s < INCREMENTAL_S_MAX else 'NO'} ({inc_s:.2f} s, median; runs "
              + ", ".join(f"{r:.2f}" for r in runs) + ")")
        load = os.getloadavg()
        print(f"load average after timing: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    finally:
        rm.close()
        pg_bank.close()
        duck_bank.close()
        if added is not None:
            remove_added(url, *added)


if __name__ == "__main__":
    raise SystemExit(main())
