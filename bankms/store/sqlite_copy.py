"""A copy of the tables the reports read into SQLite, for the reports benchmark's comparison
(benchmarks/bench_reports.py) and the tests that hold the reports' SQL equal on both.

The copy reads DuckDB through the driver's cursor (`execute(sql)` returns it), streaming rows
in chunks with fetchmany and naming columns from its description, which the storage port does
not offer; so it lives in the store with the DuckDB engine. bankms.reporting.analytics
re-exports it.
"""
from __future__ import annotations

from .sql import DUCKDB


SQLITE_COPY = {
    "customers": "id, full_name, email, phone, status, "
                 "strftime(created_at, '%Y-%m-%d %H:%M:%S.%f') AS created_at",
    "accounts": "id, account_number, customer_id, kind, name, status, balance_cents, product_id, "
                "strftime(opened_at, '%Y-%m-%d %H:%M:%S.%f') AS opened_at, "
                "strftime(closed_at, '%Y-%m-%d %H:%M:%S.%f') AS closed_at",
    "transactions": "id, kind, channel, amount_cents, memo, source_account, target_account, "
                    "reverses_id, "
                    "strftime(posted_at, '%Y-%m-%d %H:%M:%S.%f') AS posted_at, "
                    "strftime(business_date, '%Y-%m-%d') AS business_date",
    "postings": "id, transaction_id, account_id, amount_cents, "
                "strftime(posted_at, '%Y-%m-%d %H:%M:%S.%f') AS posted_at",
    "audit_log": "id, strftime(ts, '%Y-%m-%d %H:%M:%S.%f') AS ts, actor, action, entity, "
                 "after, outcome",
    # What dormancy is (dormancy_periods): the setting and the products' versions.
    "settings": "key, value",
    "deposit_products": "id, name",
    "deposit_product_versions": "product_id, strftime(effective_date, '%Y-%m-%d') AS "
                                "effective_date, dormancy_months",
    # The loans module's tables (copied only when the bank has them).
    "loans": "id, customer_id, status, principal_cents, strftime(applied_date, '%Y-%m-%d') AS "
             "applied_date, strftime(applied_at, '%Y-%m-%d %H:%M:%S.%f') AS applied_at, "
             "strftime(decided_at, '%Y-%m-%d %H:%M:%S.%f') AS decided_at, "
             "strftime(disbursement_date, '%Y-%m-%d') AS disbursement_date, "
             "strftime(closed_date, '%Y-%m-%d') AS closed_date",
    "loan_schedule": "loan_id, n, strftime(due_date, '%Y-%m-%d') AS due_date, interest_cents, "
                     "principal_cents",
    "loan_payments": "transaction_id, loan_id, strftime(business_date, '%Y-%m-%d') AS "
                     "business_date, interest_cents, principal_cents, prepayment_cents",
}
SQLITE_INDEXES = [
    "CREATE UNIQUE INDEX accounts_number ON accounts(account_number)",
    "CREATE INDEX accounts_customer ON accounts(customer_id)",
    "CREATE INDEX postings_account_time ON postings(account_id, posted_at)",
    "CREATE INDEX postings_time ON postings(posted_at)",
    "CREATE INDEX transactions_time ON transactions(posted_at)",
    "CREATE INDEX transactions_day ON transactions(business_date)",
    "CREATE INDEX transactions_reverses ON transactions(reverses_id)",
    "CREATE INDEX audit_time ON audit_log(ts)",
    "CREATE INDEX loan_schedule_loan ON loan_schedule(loan_id, n)",
    "CREATE INDEX loan_payments_loan ON loan_payments(loan_id)",
]


def copy_to_sqlite(execute, con, progress=None) -> None:
    """Copy the tables the reports read into the sqlite3 connection `con`, with the indexes a
    fair comparison needs. `execute(sql)` runs SQL on DuckDB and returns its cursor."""
    present = {row[0] for row in execute(DUCKDB.table_columns()).fetchall()}
    for table, columns in SQLITE_COPY.items():
        if table not in present:
            continue
        cur = execute(f"SELECT {columns} FROM {table} ORDER BY 1")
        names = [d[0] for d in cur.description]
        con.execute(f"CREATE TABLE {table} (" + ", ".join(
            f"{n} INTEGER PRIMARY KEY" if n == "id" else n for n in names) + ")")
        marks = ", ".join("?" * len(names))
        while True:
            rows = cur.fetchmany(200_000)
            if not rows:
                break
            con.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)
        con.commit()
        if progress is not None:
            progress(table)
    for statement in SQLITE_INDEXES:
        table = statement.split(" ON ")[1].split("(")[0]
        if table in present:
            con.execute(statement)
    con.execute("ANALYZE")
    con.commit()
