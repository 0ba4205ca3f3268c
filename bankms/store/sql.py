"""The SQL text that differs between the engines bankms runs on, one `Dialect` per engine.

The service and reporting SQL is written once, with `?` placeholders, in the standard SQL both
DuckDB and PostgreSQL 15 accept: NOT EXISTS for an anti join, a row_number() subquery for
QUALIFY and arg_max, `CAST(x AS DECIMAL(38, 0))` where a product of BIGINT cents outgrows 64
bits, an alias on every subquery in FROM. Where no common form exists, the SQL asks its dialect
for the fragment: a membership test against one list parameter, exact integer division, the
days between two dates, the days from one date to another as rows, day and month truncation,
a JSON field as text, a timestamp as microseconds, and the user tables' columns. The helpers
are pure: they take column expressions as SQL text and return SQL text; nothing here opens a
connection or imports an engine's driver.
`DUCKDB` is the DuckDB engine's; `POSTGRES` is written from the PostgreSQL 15 documentation
for the engine of issue 14; `SQLITE` serves the reports benchmark's comparison.

There is no dialect of the module: each engine, and every reader and unit of work it hands
out, carries its own (`engine.dialect`, `uow.dialect`, port.py), and SQL whose text differs
between engines is built from that one at the call, or once per dialect (functools.cache on a
function of the dialect) where it is long.

tests/test_portable_sql.py runs the DuckDB fragments on edge cases and keeps the DuckDB-only
constructs out of the SQL outside bankms/store.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

# The element types a list parameter may carry (in_list): the types of the columns compared.
LIST_TYPES = frozenset({"BIGINT", "INTEGER", "VARCHAR", "DATE"})
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_JSON_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


@dataclass(frozen=True)
class Dialect:
    """SQL fragments for one engine, as format templates (see the methods for their shapes).

    A template names its arguments in the order the method takes them, so that `?`
    placeholders inside the arguments bind in that order (tests/test_portable_sql.py)."""

    name: str
    day_sql: str            # {col}: a timestamp's calendar day, as a DATE
    month_sql: str          # {col}: the first day of a timestamp's month, as a DATE
    json_text_sql: str      # {col}, {key}: a top-level field of JSON text, as text
    in_list_sql: str        # {column}, {sql_type}: membership in one list parameter
    int_div_sql: str        # {a}, {b}: exact integer quotient, truncated toward zero
    days_between_sql: str   # {start}, {end}: whole days from start to end
    columns_sql: str        # {where}: (table_name, column_name) of the user's tables
    epoch_us_sql: str       # {col}: a TIMESTAMP as microseconds since 1970, BIGINT
    # {col}: a TIMESTAMP as Python's isoformat() text (the hash chains' content); None where
    # the dialect has none (SQLite: no chain is checked there).
    iso_timestamp_sql: str | None = None
    # {prev_hex}, {text}: sha256(bytes of hex text + UTF-8 bytes of text) as 64 hex digits.
    sha256_chain_sql: str | None = None
    # {start}, {end}: a query of one DATE column `d`, a row per day from start to before end;
    # None where the dialect has none (SQLite: the demo is not built there).
    day_series_sql: str | None = None

    def day(self, col: str) -> str:
        """The calendar day of timestamp expression `col`, as a DATE."""
        return self.day_sql.format(col=col)

    def month(self, col: str) -> str:
        """The first day of the month of timestamp expression `col`, as a DATE."""
        return self.month_sql.format(col=col)

    def json_text(self, col: str, key: str) -> str:
        """Field `key` (a plain name) of the JSON object text in `col`, as text; NULL when
        absent."""
        if not _JSON_KEY.match(key):
            raise ValueError(f"not a plain JSON key: {key!r}")
        return self.json_text_sql.format(col=col, key=key)

    def in_list(self, column: str, sql_type: str) -> str:
        """A condition true when `column` equals an element of one list parameter (a Python
        list bound to the one `?` in the text), typed `sql_type[]` (one of LIST_TYPES). NULL
        semantics are those of IN: an empty list matches nothing; a NULL column or a NULL in
        the list never matches (the condition is then NULL, false in WHERE, and NOT of it is
        NULL too)."""
        if sql_type not in LIST_TYPES:
            raise ValueError(f"list element type {sql_type!r} is not one of {sorted(LIST_TYPES)}")
        return self.in_list_sql.format(column=column, sql_type=sql_type)

    def int_div(self, a: str, b: str) -> str:
        """The integer quotient of integer expressions `a` and `b`, exact and truncated toward
        zero (-7, 2 -> -3: DuckDB's `//` on integers, PostgreSQL's div(), not Python's floor).
        Operands may be BIGINT or DECIMAL(38,0) (a widened product of cents); the result is an
        integer wider than BIGINT, so CAST it back when it fits. Division by zero is an error
        on both engines."""
        return self.int_div_sql.format(a=a, b=b)

    def days_between(self, start: str, end: str) -> str:
        """Whole days from DATE expression `start` to DATE expression `end` (end - start:
        negative when end is earlier), as an integer."""
        return self.days_between_sql.format(start=start, end=end)

    def day_series(self, start: str, end: str) -> str:
        """A query (to use as a CTE or subquery) of one DATE column `d`: a row for each day
        from DATE expression `start` up to the day before DATE expression `end`, in order; no
        rows when `end` is not after `start`. Each argument appears once in the text, so a `?`
        in either binds once. ValueError where the dialect has no such fragment."""
        if self.day_series_sql is None:
            raise ValueError(f"no day series in the {self.name} dialect")
        return self.day_series_sql.format(start=start, end=end)

    def epoch_us(self, col: str) -> str:
        """TIMESTAMP expression `col` as whole microseconds since 1970-01-01 00:00 (BIGINT);
        NULL stays NULL."""
        return self.epoch_us_sql.format(col=col)

    def iso_timestamp(self, col: str) -> str:
        """TIMESTAMP expression `col` as the text Python's datetime.isoformat() gives it
        ('2026-12-01T06:02:34', '.123456' after the seconds unless the fraction is zero);
        NULL stays NULL. ValueError where the dialect has no such fragment."""
        if self.iso_timestamp_sql is None:
            raise ValueError(f"no isoformat() fragment in the {self.name} dialect")
        return self.iso_timestamp_sql.format(col=col)

    def sha256_chain(self, prev_hex: str, text: str) -> str:
        """sha256 of (the bytes that hex text `prev_hex` spells, then `text` in UTF-8) as 64
        lower-case hex digits: chain.entry_hash in SQL. ValueError where the dialect has no
        such fragment."""
        if self.sha256_chain_sql is None:
            raise ValueError(f"no sha256 fragment in the {self.name} dialect")
        return self.sha256_chain_sql.format(prev_hex=prev_hex, text=text)

    def table_columns(self, table: str | None = None) -> str:
        """SQL listing (table_name, column_name) of the user's tables, or of one table (a plain
        name), in column order within a table."""
        if table is None:
            return self.columns_sql.format(where="")
        if not _IDENTIFIER.match(table):
            raise ValueError(f"not a plain table name: {table!r}")
        return self.columns_sql.format(where=f" AND table_name = '{table}'")


DUCKDB = Dialect(
    name="duckdb",
    day_sql="CAST({col} AS DATE)",
    month_sql="CAST(date_trunc('month', {col}) AS DATE)",
    json_text_sql="json_extract_string({col}, '$.{key}')",
    # The text of before the dialect, to the byte: the posting path's lookups keep their plans
    # (a typed CAST(? AS T[]) and `= ANY(...)` measured within noise, load 20+). DuckDB types
    # the list from the Python values; an empty list matches nothing.
    in_list_sql="{column} IN (SELECT unnest(?))",
    # `//` on DECIMAL is DOUBLE division in DuckDB 2.0: the operands become HUGEINT (exact for
    # DECIMAL(38,0)), whose `//` truncates toward zero.
    int_div_sql="(CAST({a} AS HUGEINT) // CAST({b} AS HUGEINT))",
    days_between_sql="date_diff('day', {start}, {end})",
    # range() leaves its stop out.
    day_series_sql=("SELECT CAST(range AS DATE) AS d FROM range(CAST({start} AS TIMESTAMP), "
                    "CAST({end} AS TIMESTAMP), INTERVAL '1 day')"),
    columns_sql=("SELECT table_name, column_name FROM duckdb_columns() WHERE NOT internal{where} "
                 "ORDER BY table_name, column_index"),
    epoch_us_sql="epoch_us({col})",
    iso_timestamp_sql=("CASE WHEN strftime({col}, '%f') = '000000' THEN "
                       "strftime({col}, '%Y-%m-%dT%H:%M:%S') ELSE "
                       "strftime({col}, '%Y-%m-%dT%H:%M:%S.%f') END"),
    sha256_chain_sql="sha256(unhex({prev_hex}) || encode({text}))",
)

# PostgreSQL 15: `= ANY(array)` is the documented form for an array parameter (9.24.3, "IN
# (SELECT unnest(...))" needs the array typed anyway); div(numeric, numeric) truncates toward
# zero (9.3, table 9.5); date - date is an integer count of days (9.9, table 9.30), negated to
# keep start before end in the text. Checked by hand on PostgreSQL 15.20 with the edge cases of
# tests/test_portable_sql.py.
POSTGRES = Dialect(
    name="postgresql",
    day_sql="CAST({col} AS DATE)",
    month_sql="CAST(date_trunc('month', {col}) AS DATE)",
    json_text_sql="(CAST({col} AS jsonb) ->> '{key}')",
    in_list_sql="{column} = ANY(CAST(? AS {sql_type}[]))",
    int_div_sql="div({a}, {b})",
    days_between_sql="(-(CAST({start} AS DATE) - CAST({end} AS DATE)))",
    # generate_series(timestamp, timestamp, interval) includes its stop (9.25, set returning
    # functions), so the stop is the day before `end`. The casts through TIMESTAMP keep the
    # session's time zone out: given DATEs, PostgreSQL 15.18 picked the timestamptz form.
    day_series_sql=("SELECT CAST(g AS DATE) AS d FROM generate_series("
                    "CAST(CAST({start} AS DATE) AS TIMESTAMP), "
                    "CAST(CAST({end} AS DATE) AS TIMESTAMP) - INTERVAL '1 day', "
                    "INTERVAL '1 day') AS g"),
    columns_sql=("SELECT table_name, column_name FROM information_schema.columns "
                 "WHERE table_schema = current_schema(){where} "
                 "ORDER BY table_name, ordinal_position"),
    # extract() is NUMERIC since PostgreSQL 14, exact to the microsecond (9.9.1).
    epoch_us_sql="CAST(extract(epoch FROM {col}) * 1000000 AS BIGINT)",
    # to_char's US is the microseconds, six digits (9.8, table 9.26).
    iso_timestamp_sql=("CASE WHEN date_trunc('second', {col}) = {col} THEN "
                       "to_char({col}, 'YYYY-MM-DD\"T\"HH24:MI:SS') ELSE "
                       "to_char({col}, 'YYYY-MM-DD\"T\"HH24:MI:SS.US') END"),
    # sha256(bytea) returns bytea (9.5, table 9.13).
    sha256_chain_sql=("encode(sha256(decode({prev_hex}, 'hex') || convert_to({text}, 'UTF8')), "
                      "'hex')"),
)

# SQLite, for the reports benchmark's comparison on a copy (store/sqlite_copy.py): a list
# parameter is bound as JSON text (analytics.Source does it).
SQLITE = Dialect(
    name="sqlite",
    day_sql="date({col})",
    month_sql="strftime('%Y-%m-01', {col})",
    json_text_sql="json_extract({col}, '$.{key}')",
    in_list_sql="{column} IN (SELECT value FROM json_each(?))",
    int_div_sql="(CAST({a} AS INTEGER) / CAST({b} AS INTEGER))",
    days_between_sql="CAST(-(julianday({start}) - julianday({end})) AS INTEGER)",
    columns_sql=("SELECT m.name AS table_name, p.name AS column_name FROM sqlite_master m "
                 "JOIN pragma_table_info(m.name) p WHERE m.type = 'table'{where} "
                 "ORDER BY m.name, p.cid"),
    # Timestamps are ISO text here ('YYYY-MM-DD HH:MM:SS[.ffffff]'); `col` is read twice, so it
    # must be a column, not a parameter.
    epoch_us_sql=("(CAST(strftime('%s', substr({col}, 1, 19)) AS INTEGER) * 1000000 "
                  "+ CAST(substr({col} || '.000000', 21, 6) AS INTEGER))"),
)
