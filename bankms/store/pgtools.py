"""Operations on a bank in a PostgreSQL database as a whole, for the command line and
operations.py: is there a bank at this URL, backup with pg_dump, restore with pg_restore.

All of them work while app processes serve the bank. pg_dump reads in one snapshot (one
REPEATABLE READ transaction), so a backup holds every transaction committed before it started
and nothing after, and it blocks no writer. Restore goes only into a database that holds no
tables yet, so it never mixes two banks or overwrites one. The URL is passed to the tools as
given (libpq reads the same URL syntax); messages show it without any password.
"""
from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess

import psycopg
import psycopg.conninfo

from ..domain.errors import InvalidInput, NotABank
from . import files

# The tables every bankms bank has; a database holding all four is a bank.
BANK_TABLES = ("settings", "accounts", "postings", "transactions")
# What a file written by `pg_dump --format=custom` starts with.
DUMP_MAGIC = b"PGDMP"


def shown(url: str) -> str:
    """The URL as messages print it: any password replaced by ***."""
    url = re.sub(r"(://[^:/@?]*:)[^@/?]*@", r"\1***@", url)
    return re.sub(r"(password=)[^&\s]*", r"\1***", url)


def _query(url: str, sql: str) -> list[tuple]:
    """The rows of one query on the database at url; connection errors are NotABank."""
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
            return conn.execute(sql).fetchall()
    except psycopg.Error as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise NotABank(f"There is no bank at {shown(url)}: cannot connect ({first}).") from None


def _tables(url: str) -> set[str]:
    """The names of the ordinary tables in the database's current schema."""
    return {row[0] for row in _query(
        url, "SELECT table_name FROM information_schema.tables "
             "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'")}


# Every relation a user can make (tables, partitioned and foreign tables, views, materialized
# views, sequences) in any schema but the system's own: a database holding any of them is not
# empty, even if its current schema holds nothing (a bank restored there would be mixed with
# them, or fail half way on a name that is taken).
_RELATIONS = (
    "SELECT n.nspname || '.' || c.relname FROM pg_class c "
    "JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.relkind IN ('r', 'p', 'f', 'v', 'm', 'S') "
    "AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
    "AND n.nspname NOT LIKE 'pg\\_toast%'")


def _relations(url: str) -> set[str]:
    """schema.name of every user relation in the database (_RELATIONS)."""
    return {row[0] for row in _query(url, _RELATIONS)}


def has_bank(url: str) -> bool:
    """Whether the database at url holds a bankms bank (its tables); connection errors are
    NotABank."""
    return set(BANK_TABLES) <= _tables(url)


def check_bank_url(url: str) -> None:
    """Raise NotABank unless the database at url holds a bankms bank. Nothing is created: a
    mistyped URL must not become an empty bank (open_bank would create the schema)."""
    if not has_bank(url):
        raise NotABank(f"There is no bank at {shown(url)}: the database has no bank tables "
                       "(create one with `python -m bankms init --db URL`).")


def tool(name: str) -> str:
    """The path of a PostgreSQL client program (pg_dump, pg_restore): on PATH, else the newest
    of Debian's /usr/lib/postgresql/*/bin."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                        key=lambda p: int(re.search(r"/(\d+)/bin/", p).group(1)))
    if not candidates:
        raise InvalidInput(f"{name} is not installed (Debian: apt-get install "
                           "postgresql-client); it is needed to back up or restore a "
                           "PostgreSQL bank.")
    return candidates[-1]


def _without_password(url: str) -> tuple[str, dict]:
    """(connection string, environment) for a client program: a password in the URL goes in
    PGPASSWORD, where other users' `ps` cannot read it, instead of on the command line."""
    params = psycopg.conninfo.conninfo_to_dict(url)
    password = params.pop("password", None)
    env = dict(os.environ)
    if password is not None:
        env["PGPASSWORD"] = str(password)
        return psycopg.conninfo.make_conninfo(**params), env
    return url, env


def _run(argv: list[str], what: str, env: dict) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        first = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[0]
        raise InvalidInput(f"{what} failed: {first}")


def dump(url: str, dest: str) -> None:
    """Write the bank at url to the new file dest (pg_dump's custom format, readable by
    pg_restore), private to this user. The caller has checked that dest does not exist."""
    files.private_umask()
    conninfo, env = _without_password(url)
    _run([tool("pg_dump"), "--format=custom", "--no-owner", "--file", dest,
          "--dbname", conninfo], f"pg_dump of {shown(url)}", env)


def check_dump(src: str) -> None:
    """Raise NotABank unless src is a pg_dump custom-format file."""
    if not os.path.isfile(src):
        raise NotABank(f"There is no backup at {src}: the file does not exist.")
    with open(src, "rb") as handle:
        if handle.read(len(DUMP_MAGIC)) != DUMP_MAGIC:
            raise NotABank(f"{src} is not a PostgreSQL backup (pg_dump custom format, as "
                           "`python -m bankms backup` writes for a PostgreSQL bank).")


def restore(src: str, url: str) -> None:
    """Load the backup src into the database at url, which must hold no tables yet
    (InvalidInput otherwise: a restore never overwrites or mixes banks). One transaction: a
    failure leaves the database empty."""
    check_dump(src)
    present = _relations(url)
    if present:
        raise InvalidInput(f"The database at {shown(url)} is not empty ({len(present)} "
                           "table(s), view(s) or sequence(s)); restore only into a new, empty "
                           "database (createdb NAME).")
    conninfo, env = _without_password(url)
    _run([tool("pg_restore"), "--no-owner", "--exit-on-error", "--single-transaction",
          "--dbname", conninfo, src], f"pg_restore into {shown(url)}", env)
