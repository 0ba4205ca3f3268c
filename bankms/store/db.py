"""The schema and its migrations, run at open on DuckDB (store/duckdb.py) and PostgreSQL
(store/postgres.py).

Schema changes happen only here, at open. On DuckDB they are followed by a CHECKPOINT, because
WAL replay of run-time schema changes is where DuckDB has failed upstream. Every DDL statement
below runs on both engines as written; the few migration statements with no form both accept
(DuckDB's TRY_CAST, the CHECKPOINT, PostgreSQL's lock against two processes migrating at once)
come from `MIGRATION_SQL`, the one place that chooses per engine. On PostgreSQL, where many
processes open one bank while others serve it, an open of a schema the migration already left
current runs no DDL and locks no table (SCHEMA_MARK).
"""
from __future__ import annotations

import hashlib
import random
import time
from dataclasses import dataclass
from pathlib import Path

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class MigrationSQL:
    """The migration's SQL that differs between engines. The try_* templates take `{expr}` (a
    text expression) and give its value as that type, or NULL when the text is not one."""

    try_bigint: str
    try_integer: str
    try_date: str
    lock: str | None        # run first inside the migration's transaction
    checkpoint: str | None  # run after its COMMIT
    indexes: tuple[str, ...] = ()  # run after the schema, inside the migration's transaction
    reversal_index: str = ""  # the unique index on transactions.reverses_id (_add_lanes)
    index_exists: str = ""  # count of indexes named ? (one parameter)
    # Run after chain_heads is made again under another name (_add_lanes), where the primary
    # key is named after the table it was built as.
    heads_key_rename: str = ""
    # Whether the ledger's ids (transactions, postings, audit_log) come from sequences
    # (LEDGER_SEQUENCES, made and moved past max(id) by _add_ledger_sequences) rather than from
    # the writer's in-process counters (ledger.LedgerState): PostgreSQL, where several
    # processes' writers take ids at once.
    ledger_sequences: bool = False
    # The lane columns' default (_add_lanes): on PostgreSQL the writer session's lane (the
    # session setting bankms.lane, store/postgres.py writer_session), 0 elsewhere.
    lane_default: str = "0"
    # Where the schema is current, the migration is skipped (see SCHEMA_MARK): `catalog` gives
    # rows of one text each describing the schema, `mark` the mark the last migration left
    # (one row, NULL when none), `set_mark` records one ({mark}: a quoted literal, or NULL).
    # None on DuckDB, one process per file, where every open migrates as before.
    catalog: str | None = None
    mark: str = ""
    set_mark: str = ""
    # A migration that has to change the schema waits for its tables' locks (ACCESS EXCLUSIVE
    # for ALTER TABLE), and while it waits every later reader and writer of those tables
    # queues behind it. Where several processes serve one bank (PostgreSQL), each attempt
    # waits at most lock_timeout_ms[i] ({ms} in `lock_timeout`), gives its locks back and
    # tries again (see migrate); None: one attempt that waits as long as it takes.
    lock_timeout: str | None = None
    lock_timeout_ms: tuple[int, ...] = ()
    lock_timeout_state: str = ""  # the SQLSTATE of a lock wait that timed out


# -- An open of a current schema locks no table (issue 14: many app processes on one PostgreSQL
# bank). ALTER TABLE ... ADD COLUMN IF NOT EXISTS, ALTER COLUMN ... SET NOT NULL and CREATE
# INDEX IF NOT EXISTS take their table's lock (ACCESS EXCLUSIVE; SHARE for an index) before they
# find that there is nothing to do. Such a lock waits for every reader of the table (a report, a
# read model's REPEATABLE READ pull), and while it waits every later reader and writer of the
# table, in every process, waits behind it: a process starting (or the command line's verify or
# backup) would stall the bank. So the migration leaves a mark when it completes, the comment of
# the settings table: a fingerprint of the migration (this module's source and the engine's own
# statements, migrate's `extra`) and of the catalog it left. An open that finds the mark equal to
# the fingerprint it computes runs nothing. Anything else migrates (idempotently, as before) and
# leaves the new mark: a bank made before the mark, one made or migrated by other code (any edit
# of this module, a comment's too, runs the migration once more), one whose tables, columns,
# defaults, indexes, constraints or sequences differ from what the migration left (a test's fake
# of an old bank, a hand-made change). The catalog is read from pg_catalog's own columns (the
# expressions as stored node trees), not deparsed: pg_get_expr and pg_get_indexdef (and with
# them information_schema.columns and pg_indexes) take ACCESS SHARE on each table and would wait
# behind another process's pending migration; reading the catalog locks no table. Node trees
# hold object ids, so a restored copy (new ids) migrates once on its first open.
_PG_CATALOG_SQL = """
    WITH bank AS (SELECT oid, relname, relkind, relam FROM pg_class
                  WHERE relnamespace = to_regnamespace(current_schema()))
    SELECT concat_ws(' ', 'relation', relname, relkind, relam) FROM bank
    UNION ALL
    SELECT concat_ws(' ', 'column', b.relname, a.attnum, a.attname, a.atttypid, a.atttypmod,
                     a.attnotnull, CAST(d.adbin AS TEXT))
    FROM bank b JOIN pg_attribute a ON a.attrelid = b.oid AND a.attnum > 0
    LEFT JOIN pg_attrdef d ON d.adrelid = b.oid AND d.adnum = a.attnum
    WHERE NOT a.attisdropped
    UNION ALL
    SELECT concat_ws(' ', 'index', x.relname, b.relname, i.indisunique, i.indisprimary,
                     i.indisvalid, CAST(i.indkey AS TEXT), CAST(i.indclass AS TEXT),
                     CAST(i.indexprs AS TEXT), CAST(i.indpred AS TEXT))
    FROM pg_index i JOIN bank b ON b.oid = i.indrelid JOIN bank x ON x.oid = i.indexrelid
    UNION ALL
    SELECT concat_ws(' ', 'constraint', b.relname, c.conname, c.contype, c.convalidated,
                     CAST(c.conkey AS TEXT), CAST(c.conbin AS TEXT), c.confrelid)
    FROM pg_constraint c JOIN bank b ON b.oid = c.conrelid"""
# What the mark says: this, then the fingerprint (hex).
SCHEMA_MARK = "bankms schema "
# The migration's source, read once: a changed migration is another migration.
_SOURCE = Path(__file__).read_bytes()

# Keyed by Engine.name. DuckDB's text is what migrate ran before PostgreSQL existed, to the byte.
# PostgreSQL 15 has no TRY_CAST: a pattern guards the CAST (digits that fit the type; an ISO
# date, whose impossible days such as 2024-02-30 still fail the CAST: bankms writes these
# settings itself). Its DDL is transactional, so two processes opening one new database would
# race on CREATE ... IF NOT EXISTS (a unique violation in pg_type): an advisory lock taken
# inside the transaction queues the second until the first has committed. CHECKPOINT on
# PostgreSQL needs a superuser and is not needed for its WAL.
MIGRATION_SQL = {
    "duckdb": MigrationSQL(
        try_bigint="TRY_CAST({expr} AS BIGINT)",
        try_integer="TRY_CAST({expr} AS INTEGER)",
        try_date="TRY_CAST({expr} AS DATE)",
        lock=None,
        checkpoint="CHECKPOINT",
        # DuckDB has no partial index; its unique index lets any number of NULLs in.
        reversal_index=("CREATE UNIQUE INDEX IF NOT EXISTS transactions_reverses_id "
                        "ON transactions (reverses_id)"),
        index_exists="SELECT count(*) FROM duckdb_indexes() WHERE index_name = ?"),
    "postgresql": MigrationSQL(
        try_bigint=("CASE WHEN {expr} ~ '^[[:space:]]*[+-]?[0-9]{{1,18}}[[:space:]]*$' "
                    "THEN CAST({expr} AS BIGINT) END"),
        try_integer=("CASE WHEN {expr} ~ '^[[:space:]]*[+-]?[0-9]{{1,9}}[[:space:]]*$' "
                     "THEN CAST({expr} AS INTEGER) END"),
        try_date=("CASE WHEN {expr} ~ '^[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}$' "
                  "THEN CAST({expr} AS DATE) END"),
        # The key is "bankms" read as an integer: one lock for every bankms database.
        lock="SELECT pg_advisory_xact_lock(7089075474165619059)",
        checkpoint=None,
        # Partial: only reversals are indexed, not the NULL of every other transaction.
        reversal_index=("CREATE UNIQUE INDEX IF NOT EXISTS transactions_reverses_id "
                        "ON transactions (reverses_id) WHERE reverses_id IS NOT NULL"),
        index_exists="SELECT count(*) FROM pg_indexes WHERE indexname = ?",
        catalog=_PG_CATALOG_SQL,
        mark="SELECT obj_description(to_regclass('settings'), 'pg_class')",
        set_mark="COMMENT ON TABLE settings IS {mark}",
        # About a minute of attempts (35 s of waits, the pauses between them), each lock wait
        # stalling the table's other users at most 0.75 s, then one that waits without limit
        # (a schema change must be made in the end); the pattern of GitLab's
        # with_lock_retries. Under deadlock_timeout (1 s by default): a wait that ends in a
        # deadlock check is a WriteConflict, not a lock timeout, and would not be tried again.
        lock_timeout="SET LOCAL lock_timeout = {ms}",
        lock_timeout_ms=(50, 100, 200, 400) + (750,) * 45,
        lock_timeout_state="55P03",
        # The key keeps the name a new bank's has (renaming the index renames the constraint).
        heads_key_rename="ALTER INDEX chain_heads_lanes_pkey RENAME TO chain_heads_pkey",
        ledger_sequences=True,
        lane_default=("CAST(coalesce(nullif(current_setting('bankms.lane', true), ''), '0') "
                      "AS SMALLINT)"),
        # The read model (store/readmodel.py) pulls the append-only tables by `id > last` at
        # every refresh; without an index that reads the whole table (0.15 s each at 1 M
        # postings, ten times that at 10 M). Postings get a BRIN index: their rows are all
        # one width, so they fill pages in id order and a block range index of a few pages
        # finds the new ones, at next to no cost on the hottest insert. The others get a
        # B-tree: their rows vary in width (memo, JSON), and PostgreSQL puts a short new row
        # into the leftover space of any old page, which spoiled BRIN there (at 10 M postings,
        # 25,000 short transactions spread over 75,000 of 118,000 pages: 60,000 rows cost
        # 0.9 s to find). DuckDB's zone maps do this work there without DDL. The two B-trees
        # on ids are unique: with several processes writing (store/writer.py's writer lock),
        # a transaction or audit id taken twice is refused at insert instead of forking the
        # chains.
        indexes=(
            "CREATE INDEX IF NOT EXISTS postings_id_brin ON postings USING brin (id)",
            "CREATE UNIQUE INDEX IF NOT EXISTS transactions_id ON transactions (id)",
            "CREATE UNIQUE INDEX IF NOT EXISTS audit_log_id ON audit_log (id)",
            "CREATE INDEX IF NOT EXISTS idempotency_keys_transaction_id "
            "ON idempotency_keys (transaction_id)",
            # The day's totals that posting decides on: a customer's transfers out
            # (ledger.spent_today_cents, the daily limit, in every customer transfer's batch)
            # and a staff member's payments (approvals._moved_today, the four-eyes rule, in
            # every staff payment's). Without them each read every transaction of the bank,
            # 0.6 s a staff payment at 2 million transactions. DuckDB finds them by its zone
            # maps (transactions come in business date order) without an index to maintain.
            "CREATE INDEX IF NOT EXISTS accounts_customer_id ON accounts (customer_id)",
            "CREATE INDEX IF NOT EXISTS transactions_source_day "
            "ON transactions (source_account, business_date)",
            "CREATE INDEX IF NOT EXISTS transactions_actor_day "
            "ON transactions (actor, business_date)")),
}

# A period's interest posting per account (interest_postings, overdraft_interest_postings).
_INTEREST_POSTING_COLUMNS = """
        account_id BIGINT NOT NULL,
        period_start DATE NOT NULL,
        period_end DATE NOT NULL,
        carry_in_micro_cents BIGINT NOT NULL,
        accrued_micro_cents BIGINT NOT NULL,
        posted_cents BIGINT NOT NULL,
        carry_out_micro_cents BIGINT NOT NULL,
        transaction_id BIGINT"""

# The recorded heads of the hash chains (store/chains.py), keyed by day, chain and lane.
_CHAIN_HEADS_COLUMNS = """
        business_date DATE NOT NULL,
        chain VARCHAR NOT NULL,
        lane SMALLINT NOT NULL DEFAULT 0,
        last_id BIGINT NOT NULL,
        head_hash VARCHAR NOT NULL,
        recorded_at TIMESTAMP NOT NULL,
        PRIMARY KEY (business_date, chain, lane)"""

# Amounts are BIGINT cents everywhere; rates are DECIMAL percent. Columns avoid the word `at`,
# which DuckDB 2.0 reserves.
SCHEMA = [
    """CREATE TABLE IF NOT EXISTS settings (
        key VARCHAR PRIMARY KEY,
        value VARCHAR NOT NULL)""",
    "CREATE SEQUENCE IF NOT EXISTS customer_id_seq START 1001",
    """CREATE TABLE IF NOT EXISTS customers (
        id BIGINT PRIMARY KEY,
        full_name VARCHAR NOT NULL,
        email VARCHAR,
        phone VARCHAR,
        date_of_birth DATE,
        national_id VARCHAR,
        address VARCHAR,
        status VARCHAR NOT NULL,
        segment VARCHAR,
        created_at TIMESTAMP NOT NULL,
        created_by VARCHAR NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS customer_status_history (
        customer_id BIGINT NOT NULL,
        old_status VARCHAR,
        new_status VARCHAR NOT NULL,
        changed_at TIMESTAMP NOT NULL,
        changed_by VARCHAR NOT NULL,
        reason VARCHAR)""",
    "CREATE SEQUENCE IF NOT EXISTS account_id_seq START 100",
    "CREATE SEQUENCE IF NOT EXISTS account_number_seq START 1",
    """CREATE TABLE IF NOT EXISTS accounts (
        id BIGINT PRIMARY KEY,
        account_number VARCHAR NOT NULL UNIQUE,
        customer_id BIGINT,
        kind VARCHAR NOT NULL,
        name VARCHAR NOT NULL,
        status VARCHAR NOT NULL,
        balance_cents BIGINT NOT NULL DEFAULT 0,
        holds_cents BIGINT NOT NULL DEFAULT 0,
        overdraft_limit_cents BIGINT NOT NULL DEFAULT 0,
        interest_rate_percent DECIMAL(9, 4) NOT NULL DEFAULT 0,
        opened_at TIMESTAMP NOT NULL,
        closed_at TIMESTAMP,
        last_activity_at TIMESTAMP,
        opened_date DATE,
        closed_date DATE,
        last_activity_date DATE)""",
    """CREATE TABLE IF NOT EXISTS transactions (
        id BIGINT NOT NULL,
        kind VARCHAR NOT NULL,
        amount_cents BIGINT NOT NULL,
        memo VARCHAR,
        source_account VARCHAR,
        target_account VARCHAR,
        actor VARCHAR NOT NULL,
        actor_role VARCHAR NOT NULL,
        idempotency_key VARCHAR,
        reverses_id BIGINT,
        posted_at TIMESTAMP NOT NULL,
        business_date DATE NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS postings (
        id BIGINT NOT NULL,
        transaction_id BIGINT NOT NULL,
        account_id BIGINT NOT NULL,
        amount_cents BIGINT NOT NULL,
        posted_at TIMESTAMP NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS idempotency_keys (
        key VARCHAR PRIMARY KEY,
        request_hash VARCHAR NOT NULL,
        transaction_id BIGINT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS audit_log (
        id BIGINT NOT NULL,
        ts TIMESTAMP NOT NULL,
        actor VARCHAR NOT NULL,
        actor_role VARCHAR NOT NULL,
        action VARCHAR NOT NULL,
        entity VARCHAR,
        entity_id VARCHAR,
        before VARCHAR,
        after VARCHAR,
        outcome VARCHAR NOT NULL DEFAULT 'ok')""",
    "CREATE SEQUENCE IF NOT EXISTS user_id_seq START 1",
    """CREATE TABLE IF NOT EXISTS users (
        id BIGINT PRIMARY KEY,
        username VARCHAR NOT NULL UNIQUE,
        password_hash VARCHAR NOT NULL,
        role VARCHAR NOT NULL,
        customer_id BIGINT,
        full_name VARCHAR NOT NULL,
        email VARCHAR,
        active BOOLEAN NOT NULL DEFAULT TRUE,
        failed_attempts INTEGER NOT NULL DEFAULT 0,
        locked_until TIMESTAMP,
        must_change_password BOOLEAN NOT NULL DEFAULT FALSE,
        created_at TIMESTAMP NOT NULL,
        password_changed_at TIMESTAMP)""",
    """CREATE TABLE IF NOT EXISTS sessions (
        id VARCHAR PRIMARY KEY,
        username VARCHAR NOT NULL,
        created_at TIMESTAMP NOT NULL,
        last_seen_at TIMESTAMP NOT NULL,
        revoked_at TIMESTAMP)""",
    # The idempotency key of each form a session has open (services/form_keys.py): in the
    # database, so that every app process serving the session hands out the same key.
    """CREATE TABLE IF NOT EXISTS form_keys (
        session_id VARCHAR NOT NULL,
        form VARCHAR NOT NULL,
        key VARCHAR NOT NULL,
        created_at TIMESTAMP NOT NULL,
        PRIMARY KEY (session_id, form))""",
    # -- Four-eyes approvals and holds (bankms/services/approvals.py) -----------------------------------
    # A staff payment above the four-eyes threshold waits here instead of posting; `legs` is
    # the JSON of its PostingRequest legs, and `idempotency_key` the key of the form that made
    # it, which the posted transaction reuses once a second person approves.
    "CREATE SEQUENCE IF NOT EXISTS approval_id_seq START 1",
    """CREATE TABLE IF NOT EXISTS approval_requests (
        id BIGINT PRIMARY KEY,
        kind VARCHAR NOT NULL,
        action VARCHAR NOT NULL,
        amount_cents BIGINT NOT NULL,
        source_account VARCHAR,
        target_account VARCHAR,
        memo VARCHAR,
        legs VARCHAR NOT NULL,
        idempotency_key VARCHAR NOT NULL UNIQUE,
        request_hash VARCHAR NOT NULL,
        maker VARCHAR NOT NULL,
        maker_role VARCHAR NOT NULL,
        status VARCHAR NOT NULL,
        created_at TIMESTAMP NOT NULL,
        decided_by VARCHAR,
        decided_at TIMESTAMP,
        reason VARCHAR,
        transaction_id BIGINT)""",
    # Money reserved on an account; accounts.holds_cents caches the sum of its open holds
    # (audit.verify checks that), and the funds guard subtracts it from what can leave.
    "CREATE SEQUENCE IF NOT EXISTS hold_id_seq START 1",
    """CREATE TABLE IF NOT EXISTS holds (
        id BIGINT PRIMARY KEY,
        account_id BIGINT NOT NULL,
        amount_cents BIGINT NOT NULL,
        reason VARCHAR NOT NULL,
        approval_id BIGINT,
        placed_at TIMESTAMP NOT NULL,
        placed_by VARCHAR NOT NULL,
        released_at TIMESTAMP,
        released_by VARCHAR,
        release_reason VARCHAR)""",
    # -- Segregation of duties (issue 12: approvals.py, users.py) -----------------------------
    # Who made a login and who last reset its password, and the second manager who approved
    # either: nobody may approve a request of a user whose credentials they handled, nor one
    # made by the person who handled theirs. Added at open so older files migrate.
    "ALTER TABLE users ADD COLUMN IF NOT EXISTS created_by VARCHAR",
    "ALTER TABLE users ADD COLUMN IF NOT EXISTS created_approved_by VARCHAR",
    "ALTER TABLE users ADD COLUMN IF NOT EXISTS last_reset_by VARCHAR",
    "ALTER TABLE users ADD COLUMN IF NOT EXISTS last_reset_approved_by VARCHAR",
    # Requests other than payments (creating a manager, an overdraft limit, a rate, a loan
    # write-off...) keep what to do in `params` (JSON) and a line for people in `memo`; a
    # reversal keeps the transaction it undoes in `reverses_id`.
    "ALTER TABLE approval_requests ADD COLUMN IF NOT EXISTS params VARCHAR",
    "ALTER TABLE approval_requests ADD COLUMN IF NOT EXISTS reverses_id BIGINT",
    # Single-use activation codes for customer logins made by staff (users.py): only the
    # SHA-256 of the code is kept; the customer sets their own password with it.
    """CREATE TABLE IF NOT EXISTS activation_codes (
        username VARCHAR NOT NULL,
        code_hash VARCHAR NOT NULL,
        created_at TIMESTAMP NOT NULL,
        expires_at TIMESTAMP NOT NULL,
        created_by VARCHAR NOT NULL,
        used_at TIMESTAMP)""",
    # Messages for the customer (activation codes) waiting for the mail/SMS relay
    # (outbox.py): written in the same transaction as what they announce; only the system
    # actor reads them, so staff never see a code.
    "CREATE SEQUENCE IF NOT EXISTS outbox_id_seq START 1",
    """CREATE TABLE IF NOT EXISTS outbox (
        id BIGINT PRIMARY KEY,
        created_at TIMESTAMP NOT NULL,
        customer_id BIGINT NOT NULL,
        channel VARCHAR NOT NULL CHECK (channel IN ('email', 'sms')),
        recipient VARCHAR NOT NULL,
        subject VARCHAR NOT NULL,
        body VARCHAR NOT NULL,
        sent_at TIMESTAMP)""",
    # -- Idempotency of non-money forms (bankms/services/once.py): opening an account or onboarding a
    # customer twice from one form instance returns the first result instead.
    """CREATE TABLE IF NOT EXISTS request_keys (
        key VARCHAR PRIMARY KEY,
        action VARCHAR NOT NULL,
        actor VARCHAR NOT NULL,
        result VARCHAR NOT NULL,
        created_at TIMESTAMP NOT NULL)""",
    # -- Loans and interest (issue 5: loans.py, eod.py) ---------------------------------------
    # Loan principal lives in the one GL1200 loans-receivable account; these tables are its
    # subledger (per loan: outstanding principal, schedule, payments), reconciled by
    # Loans.verify(). Interest and fees are income when paid (cash basis).
    """CREATE TABLE IF NOT EXISTS loan_products (
        code VARCHAR PRIMARY KEY,
        name VARCHAR NOT NULL,
        amount_min_cents BIGINT NOT NULL,
        amount_max_cents BIGINT NOT NULL,
        term_min_months INTEGER NOT NULL,
        term_max_months INTEGER NOT NULL,
        rate_min_percent DECIMAL(9, 4) NOT NULL,
        rate_max_percent DECIMAL(9, 4) NOT NULL,
        active BOOLEAN NOT NULL DEFAULT TRUE)""",
    """INSERT INTO loan_products (code, name, amount_min_cents, amount_max_cents,
        term_min_months, term_max_months, rate_min_percent, rate_max_percent, active) VALUES
        ('personal', 'Personal loan', 100000, 5000000, 6, 60, 7.9, 19.9, TRUE),
        ('car', 'Car loan', 500000, 10000000, 12, 84, 4.9, 11.9, TRUE),
        ('home_improvement', 'Home improvement loan', 200000, 7500000, 12, 120, 5.9, 14.9, TRUE)
        ON CONFLICT (code) DO NOTHING""",
    "CREATE SEQUENCE IF NOT EXISTS loan_id_seq START 5001",
    """CREATE TABLE IF NOT EXISTS loans (
        id BIGINT PRIMARY KEY,
        customer_id BIGINT NOT NULL,
        product_code VARCHAR NOT NULL,
        principal_cents BIGINT NOT NULL,
        term_months INTEGER NOT NULL,
        purpose VARCHAR NOT NULL,
        monthly_income_cents BIGINT NOT NULL,
        status VARCHAR NOT NULL,
        annual_rate_percent DECIMAL(9, 4),
        applied_by VARCHAR NOT NULL,
        applied_role VARCHAR NOT NULL,
        applied_at TIMESTAMP NOT NULL,
        applied_date DATE NOT NULL,
        decided_by VARCHAR,
        decided_at TIMESTAMP,
        decision_reason VARCHAR,
        account_number VARCHAR,
        disbursed_by VARCHAR,
        disbursed_at TIMESTAMP,
        disbursement_date DATE,
        disbursement_tx_id BIGINT,
        principal_outstanding_cents BIGINT NOT NULL DEFAULT 0,
        days_past_due INTEGER NOT NULL DEFAULT 0,
        arrears_bucket VARCHAR NOT NULL DEFAULT 'current',
        closed_date DATE,
        written_off_cents BIGINT NOT NULL DEFAULT 0,
        write_off_reason VARCHAR,
        request_key VARCHAR)""",
    # One row per instalment. A plan, not the ledger: paid amounts grow as payments are
    # allocated, and a prepayment re-amortises the rows not yet due (audited).
    """CREATE TABLE IF NOT EXISTS loan_schedule (
        loan_id BIGINT NOT NULL,
        n INTEGER NOT NULL,
        due_date DATE NOT NULL,
        payment_cents BIGINT NOT NULL,
        interest_cents BIGINT NOT NULL,
        principal_cents BIGINT NOT NULL,
        balance_cents BIGINT NOT NULL,
        interest_paid_cents BIGINT NOT NULL DEFAULT 0,
        principal_paid_cents BIGINT NOT NULL DEFAULT 0,
        fee_cents BIGINT NOT NULL DEFAULT 0,
        fee_paid_cents BIGINT NOT NULL DEFAULT 0,
        fee_date DATE)""",
    # The end of day that charged the late fee (issue 9): the replay lets payments dated
    # after it pay the fee.
    "ALTER TABLE loan_schedule ADD COLUMN IF NOT EXISTS fee_date DATE",
    # How each repayment transaction was split; prepayment_cents is the part of principal_cents
    # paid ahead of the schedule.
    """CREATE TABLE IF NOT EXISTS loan_payments (
        transaction_id BIGINT NOT NULL,
        loan_id BIGINT NOT NULL,
        business_date DATE NOT NULL,
        method VARCHAR NOT NULL,
        source_account VARCHAR NOT NULL,
        amount_cents BIGINT NOT NULL,
        fee_cents BIGINT NOT NULL,
        interest_cents BIGINT NOT NULL,
        principal_cents BIGINT NOT NULL,
        prepayment_cents BIGINT NOT NULL,
        actor VARCHAR NOT NULL,
        prepayment_rule VARCHAR)""",
    # The teller's choice for the prepayment part (NULL: the product's), replayed (issue 9).
    "ALTER TABLE loan_payments ADD COLUMN IF NOT EXISTS prepayment_rule VARCHAR",
    # Loan interest accrued and unpaid per loan as of its last end of day (GL1210 is their
    # sum, negative as an asset); end of day keeps it (issue 9).
    """CREATE TABLE IF NOT EXISTS loan_accruals (
        loan_id BIGINT PRIMARY KEY,
        accrued_cents BIGINT NOT NULL,
        business_date DATE NOT NULL)""",
    # Loan-loss provision held per loan (GL1290 is their sum); end of day keeps it (issue 9).
    """CREATE TABLE IF NOT EXISTS loan_provisions (
        loan_id BIGINT PRIMARY KEY,
        bucket VARCHAR NOT NULL,
        percent DECIMAL(9, 4) NOT NULL,
        provision_cents BIGINT NOT NULL,
        business_date DATE NOT NULL)""",
    # Savings interest accrued per account and day, in micro-cents (1e-6 cent): not money yet.
    """CREATE TABLE IF NOT EXISTS interest_accruals (
        account_id BIGINT NOT NULL,
        accrual_date DATE NOT NULL,
        balance_cents BIGINT NOT NULL,
        rate_percent DECIMAL(9, 4) NOT NULL,
        accrued_micro_cents BIGINT NOT NULL)""",
    # Period end: whole cents posted, the sub-cent remainder carried into the next period.
    f"CREATE TABLE IF NOT EXISTS interest_postings ({_INTEREST_POSTING_COLUMNS})",
    # One row per closed business day; its presence makes end of day for that date a no-op.
    """CREATE TABLE IF NOT EXISTS eod_runs (
        business_date DATE PRIMARY KEY,
        actor VARCHAR NOT NULL,
        started_at TIMESTAMP NOT NULL,
        finished_at TIMESTAMP NOT NULL,
        accounts_accrued BIGINT NOT NULL,
        accrued_micro_cents BIGINT NOT NULL,
        interest_posted_accounts BIGINT NOT NULL,
        interest_posted_cents BIGINT NOT NULL,
        loans_collected BIGINT NOT NULL,
        collected_cents BIGINT NOT NULL,
        late_fees_charged BIGINT NOT NULL,
        late_fee_cents BIGINT NOT NULL,
        loans_in_arrears BIGINT NOT NULL,
        accounts_made_dormant BIGINT NOT NULL,
        accounts_reactivated BIGINT NOT NULL)""",
    # -- End of day on deposit products (issue 10: deposit_eod.py). Overdraft interest accrues
    # in interest_accruals as negative micro-cents on negative balances; at each posting period
    # end the whole cents owed are debited and the sub-cent carried, as for credit interest
    # (amounts here are positive: what the customer owes).
    f"CREATE TABLE IF NOT EXISTS overdraft_interest_postings ({_INTEREST_POSTING_COLUMNS})",
    *(f"ALTER TABLE eod_runs ADD COLUMN IF NOT EXISTS {name} BIGINT DEFAULT 0"
      for name in ("interest_tax_cents", "overdraft_accrued_accounts",
                   "overdraft_accrued_micro_cents", "overdraft_interest_accounts",
                   "overdraft_interest_cents", "fees_charged", "fee_cents")),
    # -- The working-day calendar (issue 9: workdays.py) ----------------------------------------
    # Days a manager closed the bank on, besides weekends and the country's public holidays.
    """CREATE TABLE IF NOT EXISTS bank_holidays (
        holiday_date DATE PRIMARY KEY,
        name VARCHAR NOT NULL,
        added_by VARCHAR NOT NULL,
        added_at TIMESTAMP NOT NULL)""",
    # Which country's (and subdivision's) holidays apply from which day on; written at the first
    # change of bank_country or bank_subdivision, so days already passed keep their country.
    """CREATE TABLE IF NOT EXISTS bank_calendar_eras (
        effective_date DATE PRIMARY KEY,
        country VARCHAR NOT NULL,
        subdivision VARCHAR NOT NULL,
        changed_by VARCHAR NOT NULL,
        changed_at TIMESTAMP NOT NULL)""",
    # Whether the loan's due dates move off days the bank does not work (copied from its
    # product at application). DuckDB cannot add a NOT NULL column with IF NOT EXISTS, so the
    # constraint is set after (a no-op once set).
    "ALTER TABLE loans ADD COLUMN IF NOT EXISTS due_dates_working_days BOOLEAN DEFAULT FALSE",
    "ALTER TABLE loans ALTER COLUMN due_dates_working_days SET NOT NULL",
    # -- The hash chains over the ledger and the audit log (issue 15: chain.py, chain_store.py).
    # Each transaction and audit row carries its chain hash, written in the same database
    # transaction as the row; end of day records the heads of each closed day here.
    "ALTER TABLE transactions ADD COLUMN IF NOT EXISTS chain_hash VARCHAR",
    "ALTER TABLE audit_log ADD COLUMN IF NOT EXISTS chain_hash VARCHAR",
    # -- How the money moved (issue 13: labels.py): card, atm, cash, salary, standing_order...
    # NULL for entries posted before channels were recorded. Added after chain_hash, so the
    # posting batch appends (chained columns, chain_hash, channel) in every file; the chain
    # hashes it only when it holds a value (chain.py), so older entries keep their hashes. A
    # payment waiting for a second person keeps its channel until it is posted.
    "ALTER TABLE transactions ADD COLUMN IF NOT EXISTS channel VARCHAR",
    "ALTER TABLE approval_requests ADD COLUMN IF NOT EXISTS channel VARCHAR",
    # One head per closed day, chain and lane (chain.py: each lane is its own chain). Banks
    # made before lanes get the lane column from _add_lanes.
    f"CREATE TABLE IF NOT EXISTS chain_heads ({_CHAIN_HEADS_COLUMNS})",
    # -- Charges (issue 10: bankms/services/charges.py). The catalogue of what the bank may charge, and
    # the register of every charge applied: by staff with a reason, or by end of day for an
    # event. 'product' charges take their amount from the account's product (the caller passes
    # it); system rows are the events' own and cannot be withdrawn. A charge's money is its fee
    # transaction (debit the account, credit GL4100); a waiver is a second, reversing one.
    """CREATE TABLE IF NOT EXISTS charge_catalogue (
        code VARCHAR PRIMARY KEY,
        name VARCHAR NOT NULL,
        calc VARCHAR NOT NULL,
        amount_cents BIGINT NOT NULL DEFAULT 0,
        rate_bp INTEGER NOT NULL DEFAULT 0,
        min_cents BIGINT NOT NULL DEFAULT 0,
        max_cents BIGINT,
        active BOOLEAN NOT NULL DEFAULT TRUE,
        system BOOLEAN NOT NULL DEFAULT FALSE)""",
    """INSERT INTO charge_catalogue (code, name, calc, system) VALUES
        ('maintenance', 'Monthly maintenance', 'product', TRUE),
        ('min_balance', 'Below minimum balance', 'product', TRUE),
        ('overdraft', 'Overdraft', 'product', TRUE),
        ('standing_order_failed', 'Failed standing order', 'product', TRUE),
        ('loan_disbursement', 'Loan disbursement', 'product', TRUE)
        ON CONFLICT (code) DO NOTHING""",
    "CREATE SEQUENCE IF NOT EXISTS charge_id_seq START 1",
    # status: 'charged' | 'waived' | 'not_collected' (an event charge the account could not pay:
    # recorded, no money moved). Event charges are unique per (code, account_id,
    # business_date, reason), which post_event_charges checks in SQL rather than by an index
    # (DuckDB refuses updates of rows under a unique index in some cases).
    """CREATE TABLE IF NOT EXISTS charges (
        id BIGINT PRIMARY KEY,
        account_id BIGINT NOT NULL,
        code VARCHAR NOT NULL,
        amount_cents BIGINT NOT NULL,
        reason VARCHAR NOT NULL,
        business_date DATE NOT NULL,
        transaction_id BIGINT,
        applied_by VARCHAR NOT NULL,
        status VARCHAR NOT NULL,
        waived_by VARCHAR,
        waive_reason VARCHAR,
        waiver_transaction_id BIGINT)""",
    # -- Throttles (issue 12: bankms/services/throttle.py): failed sign-ins per username and per client
    # address, sign-ups per address, payee look-ups per customer.
    """CREATE TABLE IF NOT EXISTS throttles (
        kind VARCHAR NOT NULL,
        value VARCHAR NOT NULL,
        count INTEGER NOT NULL,
        first_at TIMESTAMP NOT NULL,
        last_at TIMESTAMP NOT NULL,
        PRIMARY KEY (kind, value))""",
    # -- Deposit products (issue 10: deposit_products.py). A product's terms are versioned:
    # a version applies from its effective_date (a business date, never before tomorrow's
    # when a manager changes it), so the past never changes. Tiers, when a version has any,
    # give the rate of the highest tier whose from_balance_cents <= the end-of-day balance to
    # the whole balance. Accounts point at their product; `rate_negotiated` accounts earn
    # their own interest_rate_percent instead of the product's.
    "CREATE SEQUENCE IF NOT EXISTS deposit_product_id_seq START 1",
    """CREATE TABLE IF NOT EXISTS deposit_products (
        id BIGINT PRIMARY KEY,
        code VARCHAR NOT NULL UNIQUE,
        name VARCHAR NOT NULL,
        kind VARCHAR NOT NULL,
        active BOOLEAN NOT NULL DEFAULT TRUE,
        created_at TIMESTAMP NOT NULL,
        created_by VARCHAR NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS deposit_product_versions (
        product_id BIGINT NOT NULL,
        effective_date DATE NOT NULL,
        interest_rate_percent DECIMAL(9, 4) NOT NULL,
        day_count VARCHAR NOT NULL,
        posting_period VARCHAR NOT NULL,
        min_balance_cents BIGINT NOT NULL DEFAULT 0,
        min_balance_fee_cents BIGINT NOT NULL DEFAULT 0,
        maintenance_fee_cents BIGINT NOT NULL DEFAULT 0,
        overdraft_allowed BOOLEAN NOT NULL DEFAULT FALSE,
        overdraft_limit_max_cents BIGINT NOT NULL DEFAULT 0,
        overdraft_rate_percent DECIMAL(9, 4) NOT NULL DEFAULT 0,
        overdraft_fee_cents BIGINT NOT NULL DEFAULT 0,
        withholding_tax_bp INTEGER NOT NULL DEFAULT 0,
        dormancy_months INTEGER NOT NULL DEFAULT 12,
        term_months_min INTEGER,
        term_months_max INTEGER,
        early_closure_penalty VARCHAR NOT NULL DEFAULT 'none',
        penalty_months INTEGER NOT NULL DEFAULT 0,
        penalty_rate_percent DECIMAL(9, 4) NOT NULL DEFAULT 0,
        standing_order_fail_fee_cents BIGINT NOT NULL DEFAULT 0,
        changed_at TIMESTAMP NOT NULL,
        changed_by VARCHAR NOT NULL,
        PRIMARY KEY (product_id, effective_date))""",
    """CREATE TABLE IF NOT EXISTS deposit_product_tiers (
        product_id BIGINT NOT NULL,
        effective_date DATE NOT NULL,
        from_balance_cents BIGINT NOT NULL,
        rate_percent DECIMAL(9, 4) NOT NULL,
        PRIMARY KEY (product_id, effective_date, from_balance_cents))""",
    "ALTER TABLE accounts ADD COLUMN IF NOT EXISTS product_id BIGINT",
    "ALTER TABLE accounts ADD COLUMN IF NOT EXISTS rate_negotiated BOOLEAN DEFAULT FALSE",
    # -- Term (fixed) deposits (issue 10: bankms/services/deposits/term.py). One row per term: the
    # deposit is an account of kind 'term_deposit'; a renewal opens a new account and row.
    """CREATE TABLE IF NOT EXISTS term_deposits (
        account_id BIGINT PRIMARY KEY,
        customer_id BIGINT NOT NULL,
        linked_account_id BIGINT NOT NULL,
        product_id BIGINT NOT NULL,
        principal_cents BIGINT NOT NULL,
        rate_percent DECIMAL(9, 4) NOT NULL,
        day_count VARCHAR NOT NULL,
        start_date DATE NOT NULL,
        term_months INTEGER NOT NULL,
        maturity_date DATE NOT NULL,
        maturity_instruction VARCHAR NOT NULL,
        status VARCHAR NOT NULL,
        opened_by VARCHAR NOT NULL,
        opened_at TIMESTAMP NOT NULL,
        open_transaction_id BIGINT,
        renewed_from_account_id BIGINT,
        renewed_to_account_id BIGINT,
        closed_date DATE,
        closed_by VARCHAR,
        close_reason VARCHAR,
        interest_cents BIGINT NOT NULL DEFAULT 0,
        tax_cents BIGINT NOT NULL DEFAULT 0,
        penalty_cents BIGINT NOT NULL DEFAULT 0,
        interest_transaction_id BIGINT,
        penalty_transaction_id BIGINT,
        payout_transaction_id BIGINT)""",
    "ALTER TABLE eod_runs ADD COLUMN IF NOT EXISTS term_deposits_matured BIGINT DEFAULT 0",
    "ALTER TABLE eod_runs ADD COLUMN IF NOT EXISTS term_deposits_renewed BIGINT DEFAULT 0",
    "ALTER TABLE eod_runs ADD COLUMN IF NOT EXISTS term_deposit_interest_cents BIGINT DEFAULT 0",
]


# -- Standing orders (issue 10: bankms/services/standing_orders.py): the instruction, and one row per
# attempt at end of day (executed, failed or missed, with its reason).
STANDING_ORDER_SCHEMA = [
    "CREATE SEQUENCE IF NOT EXISTS standing_order_id_seq START 1",
    """CREATE TABLE IF NOT EXISTS standing_orders (
        id BIGINT PRIMARY KEY,
        customer_id BIGINT NOT NULL,
        source_account_id BIGINT NOT NULL,
        source_account VARCHAR NOT NULL,
        target_account VARCHAR NOT NULL,
        amount_cents BIGINT NOT NULL,
        frequency VARCHAR NOT NULL,           -- 'monthly' | 'weekly'
        day_of_month INTEGER,                 -- 1..31 for monthly
        weekday INTEGER,                      -- 0 (Monday)..6 for weekly
        start_date DATE NOT NULL,
        end_date DATE,                        -- NULL: no end date
        count INTEGER,                        -- NULL: no count; else executions in all
        executed_count INTEGER NOT NULL DEFAULT 0,
        retry_days INTEGER NOT NULL DEFAULT 2,
        memo VARCHAR NOT NULL DEFAULT '',
        status VARCHAR NOT NULL,              -- 'active' | 'cancelled' | 'finished'
        idempotency_key VARCHAR NOT NULL,
        request_hash VARCHAR NOT NULL,
        created_by VARCHAR NOT NULL,
        created_role VARCHAR NOT NULL,
        created_at TIMESTAMP NOT NULL,
        created_date DATE NOT NULL,
        cancelled_by VARCHAR,
        cancelled_at TIMESTAMP,
        cancel_reason VARCHAR,
        finished_date DATE)""",
    """CREATE TABLE IF NOT EXISTS standing_order_runs (
        order_id BIGINT NOT NULL,
        due_date DATE NOT NULL,
        attempt_date DATE NOT NULL,
        outcome VARCHAR NOT NULL,             -- 'executed' | 'failed' | 'missed'
        reason VARCHAR,
        amount_cents BIGINT NOT NULL,
        transaction_id BIGINT,
        charge_id BIGINT,
        PRIMARY KEY (order_id, due_date, attempt_date))""",
    # End-of-day counters of standing orders (eod.DayClosed).
    *(f"ALTER TABLE eod_runs ADD COLUMN IF NOT EXISTS {name} BIGINT DEFAULT 0"
      for name in ("standing_orders_executed", "standing_orders_executed_cents",
                   "standing_orders_failed", "standing_orders_missed", "standing_order_fees")),
]

# Rules read business dates, never the clock's stamps (issue 11): banks made before the
# accounts' *_date columns get them here, filled from the ledger. An account's last activity is
# the business date of the posting the ledger stamped it with (same instant), its opening day
# the earlier of the opening stamp's date and its first posting's business date.
_BUSINESS_DATE_COLUMNS = ("opened_date", "closed_date", "last_activity_date")
_BACKFILL_SQL = [
    "UPDATE accounts SET opened_date = CAST(opened_at AS DATE), "
    "closed_date = CAST(closed_at AS DATE), last_activity_date = CAST(last_activity_at AS DATE)",
    """UPDATE accounts SET opened_date = least(accounts.opened_date, f.first_day)
    FROM (SELECT p.account_id, min(t.business_date) AS first_day FROM postings p
          JOIN transactions t ON t.id = p.transaction_id GROUP BY 1) f
    WHERE f.account_id = accounts.id""",
    """UPDATE accounts SET last_activity_date = l.day
    FROM (SELECT p.account_id, p.posted_at, max(t.business_date) AS day FROM postings p
          JOIN transactions t ON t.id = p.transaction_id GROUP BY 1, 2) l
    WHERE l.account_id = accounts.id AND l.posted_at = accounts.last_activity_at""",
]


def _add_business_dates(con) -> None:
    have = {row[0] for row in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'accounts'"
    ).fetchall()}
    if set(_BUSINESS_DATE_COLUMNS) <= have:
        return
    for column in _BUSINESS_DATE_COLUMNS:
        con.execute(f"ALTER TABLE accounts ADD COLUMN IF NOT EXISTS {column} DATE")
    for statement in _BACKFILL_SQL:
        con.execute(statement)


# -- Loan products are data (issue 9): each product's terms, snapshotted onto each loan when it
# is applied for (loans.py), so that editing a product never changes an existing loan. Added at
# open; the defaults keep what banks did before (monthly equal instalments, no grace, no
# disbursement fee, actual/365, prepayments lowering the instalments). The late fee and its
# grace days were global settings: the migration copies them into the products and loans that
# exist then (`_add_loan_terms`).
LOAN_TERM_COLUMNS = (
    ("amortization", "VARCHAR", "'equal_instalments'"),
    ("frequency", "VARCHAR", "'monthly'"),
    ("grace_principal_periods", "INTEGER", "0"),
    ("disbursement_fee_cents", "BIGINT", "0"),
    ("disbursement_fee_bp", "INTEGER", "0"),
    ("late_fee_cents", "BIGINT", "2500"),
    ("late_fee_grace_days", "INTEGER", "5"),
    ("day_count", "VARCHAR", "'actual/365'"),
    ("prepayment_rule", "VARCHAR", "'reduce_instalment'"),
    ("due_dates_working_days", "BOOLEAN", "FALSE"),
)
# The settings that held the late fee before products did, and their defaults then.
_LATE_FEE_SETTINGS = (("late_fee_cents", "loan_late_fee_cents", 2500),
                      ("late_fee_grace_days", "loan_late_fee_grace_days", 5))


def _add_loan_terms(con, variant: MigrationSQL) -> None:
    for table in ("loan_products", "loans"):
        have = {row[0] for row in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ?",
            [table]).fetchall()}
        if {name for name, _, _ in LOAN_TERM_COLUMNS} <= have:
            continue
        for name, sql_type, default in LOAN_TERM_COLUMNS:
            con.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {name} {sql_type} "
                        f"DEFAULT {default}")
        for column, key, default in _LATE_FEE_SETTINGS:
            con.execute(f"UPDATE {table} SET {column} = coalesce((SELECT "
                        f"{variant.try_bigint.format(expr='value')} FROM settings WHERE key = ?), "
                        f"{default})", [key])


# -- Deposit products (issue 10): the products every bank starts with, made at open, so that
# older files migrate too. They keep what accounts did before products existed: checking pays
# no interest and may be overdrawn up to any limit a manager sets (no overdraft interest or
# fee); savings pays DEFAULT_SAVINGS_RATE (the rate a savings account opened with), monthly,
# actual/365, with the bank's dormancy and withholding-tax settings; term deposits are new,
# at 0 % until a manager sets a rate. Their first versions start on the bank's first business
# date (the earliest day anything happened), so nothing in the past reads other terms.
DEFAULT_SAVINGS_RATE = "2.00"
OVERDRAFT_LIMIT_MAX_CENTS = 100_000_000_000 * 100  # money.AMOUNT_CENTS_MAX: no cap before
_SEED_PRODUCTS = (
    # code, name, interest rate, posting period, overdraft allowed, overdraft max,
    # term months min and max, early-closure penalty, penalty months
    ("checking", "Checking", "0", "monthly", True, OVERDRAFT_LIMIT_MAX_CENTS,
     None, None, "none", 0),
    ("savings", "Savings", DEFAULT_SAVINGS_RATE, "monthly", False, 0, None, None, "none", 0),
    ("term_deposit", "Term deposit", "0", "maturity", False, 0, 3, 60, "interest_months", 3),
)
_FIRST_BUSINESS_DATE_SQL = """SELECT least(
    (SELECT {business_date} FROM settings WHERE key = 'business_date'),
    (SELECT min(business_date) FROM transactions),
    (SELECT min(business_date) FROM eod_runs),
    (SELECT min(opened_date) FROM accounts WHERE customer_id IS NOT NULL),
    current_date)"""


def _setting_int(con, key: str, default: int, variant: MigrationSQL) -> int:
    row = con.execute(f"SELECT {variant.try_integer.format(expr='value')} FROM settings "
                      "WHERE key = ?", [key]).fetchone()
    return default if row is None or row[0] is None else row[0]


def _add_deposit_products(con, variant: MigrationSQL) -> None:
    """Seed the three products once, then put every account without a product on the one
    of its kind. An existing account whose own rate differs from its product's base rate
    keeps earning its own (rate_negotiated), so no account earns other than before."""
    if con.execute("SELECT count(*) FROM deposit_products").fetchone()[0] == 0:
        first_day = con.execute(_FIRST_BUSINESS_DATE_SQL.format(
            business_date=variant.try_date.format(expr="value"))).fetchone()[0]
        dormancy_months = _setting_int(con, "dormancy_months", 12, variant)
        tax_bp = _setting_int(con, "interest_withholding_tax_bp", 0, variant)
        for (code, name, rate, period, overdraft, overdraft_max, term_min, term_max,
             penalty, penalty_months) in _SEED_PRODUCTS:
            pid = con.execute("SELECT nextval('deposit_product_id_seq')").fetchone()[0]
            con.execute("INSERT INTO deposit_products (id, code, name, kind, active, "
                        "created_at, created_by) VALUES (?, ?, ?, ?, TRUE, now(), 'system')",
                        [pid, code, name, code])
            con.execute(
                "INSERT INTO deposit_product_versions (product_id, effective_date, "
                "interest_rate_percent, day_count, posting_period, overdraft_allowed, "
                "overdraft_limit_max_cents, withholding_tax_bp, dormancy_months, "
                "term_months_min, term_months_max, early_closure_penalty, penalty_months, "
                "changed_at, changed_by) VALUES (?, ?, CAST(? AS DECIMAL(9, 4)), "
                "'actual/365', ?, ?, ?, ?, ?, ?, ?, ?, ?, now(), 'system')",
                [pid, first_day, rate, period, overdraft, overdraft_max,
                 0 if code == "checking" else tax_bp, dormancy_months, term_min, term_max,
                 penalty, penalty_months])
    assign_products(con)


# Put every account without a product on the product whose code is its kind; an account
# whose own rate differs from its product's first rate keeps it (rate_negotiated). Run by the
# migration at open (assign_products) and, through its unit of work, by the demo builder,
# which inserts accounts itself.
ASSIGN_PRODUCTS_SQL = (
    """UPDATE accounts SET rate_negotiated = TRUE FROM (
        SELECT product_id, interest_rate_percent, code FROM (
            SELECT v.product_id, v.interest_rate_percent, p.code, row_number() OVER (
                PARTITION BY p.id ORDER BY v.effective_date) AS version_number
            FROM deposit_products p JOIN deposit_product_versions v ON v.product_id = p.id
        ) numbered WHERE version_number = 1) f
    WHERE accounts.product_id IS NULL AND accounts.kind = f.code
      AND accounts.interest_rate_percent <> f.interest_rate_percent""",
    "UPDATE accounts SET product_id = p.id FROM deposit_products p "
    "WHERE accounts.product_id IS NULL AND p.code = accounts.kind",
)


def assign_products(con) -> None:
    """ASSIGN_PRODUCTS_SQL on the migration's connection (DuckDB's `execute(...) -> cursor`
    shape), when some account lacks its product. A unit of work runs the statements itself:
    the port does not return rows from execute."""
    if con.execute("SELECT count(*) FROM accounts a JOIN deposit_products p "
                   "ON p.code = a.kind WHERE a.product_id IS NULL").fetchone()[0] == 0:
        return
    for statement in ASSIGN_PRODUCTS_SQL:
        con.execute(statement)


# -- Writer lanes (issue 14): several app processes posting to one PostgreSQL bank, each
# process's writer in a lane of its own, a hash chain per lane (domain/chain.py). Every row
# written before, and every row main writes, is lane 0, whose rows hash as before lanes.
LANE_TABLES = ("transactions", "audit_log")
# The unique index on transactions.reverses_id: DuplicateKey.constraint names it on both engines
# (store/duckdb.py reads it from DuckDB's message), and the ledger answers AlreadyReversed.
REVERSAL_INDEX = "transactions_reverses_id"


def _columns(con, table) -> set:
    return {row[0] for row in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = ?",
        [table]).fetchall()}


def _add_lanes(con, variant: MigrationSQL) -> bool:
    """The lane column on the chained tables and chain_heads, and the unique index on
    transactions.reverses_id (two writers can never both reverse one transaction). False when
    the index had to be left out (below): the migration is then not complete."""
    for table in LANE_TABLES:
        if "lane" not in _columns(con, table):
            # Before the unique index below: DuckDB 2.0 refuses ADD COLUMN ... NOT NULL (and
            # ALTER COLUMN ... SET NOT NULL) on a table that has an index ("Cannot alter
            # entry ... because there are entries that depend on it"); a nullable ADD COLUMN
            # still works there. Not IF NOT EXISTS: DuckDB refuses it with NOT NULL.
            con.execute(f"ALTER TABLE {table} ADD COLUMN lane SMALLINT NOT NULL DEFAULT 0")
    if variant.lane_default != "0":
        # Rows a writer session writes carry its lane whatever statement writes them (the
        # posting batch names it; audit rows and the set-based writes of end of day do not).
        # Only when not yet set: ALTER TABLE takes an ACCESS EXCLUSIVE lock, which would make
        # every open wait for the ledger's readers and block them meanwhile.
        for table in LANE_TABLES:
            default = con.execute(
                "SELECT column_default FROM information_schema.columns "
                "WHERE table_name = ? AND column_name = 'lane'", [table]).fetchone()
            if default is None or "bankms.lane" not in str(default[0]):
                con.execute(f"ALTER TABLE {table} ALTER COLUMN lane SET DEFAULT "
                            f"{variant.lane_default}")
    if "lane" not in _columns(con, "chain_heads"):
        # The primary key gains the lane, which neither engine can do in place on DuckDB:
        # the table is made again, its heads kept as lane 0's.
        con.execute(f"CREATE TABLE chain_heads_lanes ({_CHAIN_HEADS_COLUMNS})")
        con.execute("INSERT INTO chain_heads_lanes (business_date, chain, lane, last_id, "
                    "head_hash, recorded_at) SELECT business_date, chain, 0, last_id, "
                    "head_hash, recorded_at FROM chain_heads")
        con.execute("DROP TABLE chain_heads")
        con.execute("ALTER TABLE chain_heads_lanes RENAME TO chain_heads")
        if variant.heads_key_rename:
            con.execute(variant.heads_key_rename)
    # A bank that already holds two reversals of one transaction (written past the guard)
    # would not open with the index: it opens without, and audit.verify names the pair
    # (Chains.verify). The index comes the first time the bank opens without such a pair.
    if con.execute(variant.index_exists, [REVERSAL_INDEX]).fetchone()[0]:
        return True
    (doubled,) = con.execute(
        "SELECT count(*) FROM (SELECT reverses_id FROM transactions WHERE reverses_id IS NOT "
        "NULL GROUP BY reverses_id HAVING count(*) > 1) AS d").fetchone()
    if not doubled:
        con.execute(variant.reversal_index)
    return not doubled


# The sequences the ledger's ids come from on an engine with ledger_sequences (PostgreSQL),
# by table. CACHE 1 (the default) is required: the read model's watermark trusts only ids a
# transaction took after it had its xid (store/readmodel.py, above LEDGER_SEQUENCES), and a
# session's cached values would be used by later transactions.
LEDGER_SEQUENCES = {"transactions": "transaction_id_seq", "postings": "posting_id_seq",
                    "audit_log": "audit_id_seq"}


def _add_ledger_sequences(con) -> None:
    """Make the ledger's sequences, and move each past its table's highest id when rows were
    written without it (_move_ledger_sequences)."""
    for sequence in LEDGER_SEQUENCES.values():
        con.execute(f"CREATE SEQUENCE IF NOT EXISTS {sequence} START 1 CACHE 1")
    _move_ledger_sequences(con)


def _move_ledger_sequences(con) -> None:
    """Move each ledger sequence past its table's highest id when rows were written without it
    (a bank whose ids came from the writers' counters: a process of a version before writer
    lanes beside a new one; a copy loaded with its ids). Such rows change no catalog, so this
    runs at every open, also of a schema the mark calls current: the upgrade's advice (stop
    every process, start the new version) relies on it. It reads each table's highest id
    (ACCESS SHARE, a reader's lock: it waits only for DDL in progress, never for a reader or a
    writer) and runs no DDL. Only ever forward, and only when behind: once every id comes from
    the sequence no row's id is above the value it last handed out, and nothing here moves it
    (a setval racing another process's nextval could go backwards and hand an id out twice)."""
    for table, sequence in LEDGER_SEQUENCES.items():
        # last_value is handed out already only when is_called (a new sequence's is not).
        con.execute(
            f"SELECT setval('{sequence}', m.top) FROM (SELECT max(id) AS top FROM {table}) m, "
            f"{sequence} s WHERE m.top IS NOT NULL AND m.top > CASE WHEN s.is_called "
            "THEN s.last_value ELSE s.last_value - 1 END")


def _fingerprint(con, variant: MigrationSQL, extra: tuple[str, ...]) -> str:
    """What the migration leaves as its mark (SCHEMA_MARK): a hash of this module's source,
    the engine's own statements and the catalog as it is now (the catalog's rows sorted here,
    so that no collation orders them)."""
    digest = hashlib.sha256(_SOURCE)
    for text in (*extra, *sorted(row[0] for row in con.execute(variant.catalog).fetchall())):
        digest.update(b"\0" + text.encode())
    return SCHEMA_MARK + digest.hexdigest()


def _current(con, variant: MigrationSQL, extra: tuple[str, ...]) -> bool:
    """Whether the last migration completed on this very schema with this very code (its mark
    is the fingerprint): reads only the catalog, so it waits for no lock on any table."""
    (mark,) = con.execute(variant.mark).fetchone()
    return mark is not None and mark == _fingerprint(con, variant, extra)


def migrate(con, engine: str = "duckdb", extra: tuple[str, ...] = ()) -> None:
    """Create or upgrade the schema in one transaction; on DuckDB then checkpoint so no schema
    change waits in the WAL. `con` has DuckDB's `execute(sql, params) -> cursor` with `?`
    parameters (store/postgres.py hands PostgreSQL's connection in that shape, autocommit);
    `engine` is an Engine.name, a key of MIGRATION_SQL; `extra` are the engine's own DDL
    statements, run last in the same transaction. Idempotent: a second run changes nothing.
    Where the engine has a catalog query (PostgreSQL), a schema the migration left complete
    with this code is not migrated again (see SCHEMA_MARK): the open runs no DDL and takes no
    lock stronger than a reader's (_move_ledger_sequences)."""
    variant = MIGRATION_SQL[engine]
    if variant.catalog is not None and _current(con, variant, extra):
        if variant.ledger_sequences:
            _move_ledger_sequences(con)
        return
    # Attempts with a lock timeout each, then one without (MigrationSQL.lock_timeout): a table
    # held by a long report makes the migration give way again and again instead of stalling
    # every other user of the table behind its pending lock for the report's whole length.
    timeouts_ms = (*variant.lock_timeout_ms, None) if variant.lock_timeout else (None,)
    for timeout_ms in timeouts_ms:
        try:
            _migrate_once(con, variant, extra, timeout_ms)
            break
        except Exception as exc:  # noqa: BLE001 (only a lock timeout is tried again)
            if timeout_ms is None or getattr(exc, "sqlstate", None) != variant.lock_timeout_state:
                raise
            # Some jitter, so that two processes opening at once do not keep meeting.
            time.sleep(min(timeout_ms, 500) / 1000 * (0.5 + random.random()))
    if variant.checkpoint is not None:
        con.execute(variant.checkpoint)


def _migrate_once(con, variant: MigrationSQL, extra: tuple[str, ...], timeout_ms) -> None:
    """One attempt of migrate, in one transaction: rolled back on any error (a lock wait
    longer than `timeout_ms` included, when not None)."""
    con.execute("BEGIN")
    try:
        if variant.lock is not None:
            con.execute(variant.lock)
        # Another process may have migrated while this one waited for the lock.
        if variant.catalog is not None and _current(con, variant, extra):
            if variant.ledger_sequences:
                _move_ledger_sequences(con)
            con.execute("COMMIT")
            return
        if timeout_ms is not None:
            # After the advisory lock: waiting for another process's migration is not a wait
            # that stalls anyone else.
            con.execute(variant.lock_timeout.format(ms=int(timeout_ms)))
        for statement in (*SCHEMA, *STANDING_ORDER_SCHEMA, *variant.indexes):
            con.execute(statement)
        _add_business_dates(con)
        _add_loan_terms(con, variant)
        _add_deposit_products(con, variant)
        complete = _add_lanes(con, variant)
        if variant.ledger_sequences:
            _add_ledger_sequences(con)
        for statement in extra:
            con.execute(statement)
        con.execute(
            "INSERT INTO settings VALUES ('schema_version', ?) ON CONFLICT (key) DO NOTHING",
            [str(SCHEMA_VERSION)],
        )
        if variant.catalog is not None:
            # An incomplete migration leaves no mark, so that every open tries again (the
            # reversal index once the bank holds no doubled reversal, _add_lanes).
            mark = f"'{_fingerprint(con, variant, extra)}'" if complete else "NULL"
            con.execute(variant.set_mark.format(mark=mark))
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
