"""Operations on a bank in a PostgreSQL database as a whole, for the command line and
operations.py: is there a bank at this URL, backup with pg_dump, restore with pg_restore.

All of them work while app processes serve the bank. pg_dump reads in one snapshot (one
REPEATABLE READ transaction), so a backup holds every transaction committed before it started
and nothing after, and it blocks no writer. Restore goes only into a database that holds no
tables yet, so it never mixes two banks or overwrites one. Messages show only the host, port
and database name parsed from the URL (shown), never the URL itself nor libpq's own text, which
may quote a password that was not percent-encoded.
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

# The tables every bankms bank has; a database holding all four is a bank.
BANK_TABLES = ("settings", "accounts", "postings", "transactions")
# What a file written by `pg_dump --format=custom` starts with.
DUMP_MAGIC = b"PGDMP"


# What a message may show of a URL: a plain host (or socket folder), database name and port.
_PLAIN = re.compile(r"[^@\s?#&=]*\Z")
_PORT = re.compile(r"[0-9]*(,[0-9]*)*\Z")
# Connection parameters that are secrets, or name a file of them.
SECRET_KEYS = ("password", "sslpassword", "passfile")
UNPARSED = "the database URL"


def _params(url: str) -> dict | None:
    """The URL's connection parameters, or None when it does not parse cleanly. A password with
    an unencoded '/', '?' or '@' makes libpq read part of it as the host, port or database
    ('postgresql://u:se/cret@h/db' is host u, port se, database cret@h/db), so a host or
    database holding '@' or a port that is not a number counts as not parsed."""
    try:
        params = psycopg.conninfo.conninfo_to_dict(url)
    except (psycopg.Error, ValueError, TypeError):
        return None
    for key in ("host", "hostaddr", "dbname"):
        if key in params and not _PLAIN.match(str(params[key])):
            return None
    if "port" in params and not _PORT.match(str(params["port"])):
        return None
    return params


def shown(url: str) -> str:
    """The database as messages print it: postgresql://host:port/dbname from the parsed URL
    (nothing else of it), or "the database URL" when it does not parse cleanly (_params)."""
    params = _params(url)
    if params is None:
        return UNPARSED
    host = str(params.get("host") or params.get("hostaddr") or "")
    port = f":{params['port']}" if params.get("port") else ""
    return f"postgresql://{host}{port}/{params.get('dbname') or ''}"


def _parsed(url: str, refuse) -> dict:
    """_params(url), or refuse(message) raised when it does not parse cleanly."""
    params = _params(url)
    if params is None:
        raise refuse("The database URL does not parse as a PostgreSQL URL (write '/', '?' "
                     "and '@' in a password as %2F, %3F and %40).")
    return params


def _query(url: str, sql: str) -> list[tuple]:
    """The rows of one query on the database at url; connection errors are NotABank, naming
    the error's class and SQLSTATE only (libpq's text may quote the URL)."""
    _parsed(url, NotABank)
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
            return conn.execute(sql).fetchall()
    except psycopg.Error as exc:
        why = type(exc).__name__ + (f", SQLSTATE {exc.sqlstate}" if exc.sqlstate else "")
        raise NotABank(f"There is no bank at {shown(url)}: cannot connect ({why}; check the "
                       "host, port, database, user and password).") from None


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


def _without_secrets(url: str) -> tuple[str, dict, list[str]]:
    """(connection string, environment, secrets) for a client program: the password goes in
    PGPASSWORD and a passfile in PGPASSFILE, where other users' `ps` cannot read them, instead
    of on the command line. libpq has no environment variable for sslpassword (the passphrase
    of an encrypted client key), so a URL holding one is refused here: writing it to a
    temporary service file would put the secret on disk, and a service file of the user's own
    (service=NAME in the URL, PGSERVICEFILE) already does the job safely."""
    params = _parsed(url, InvalidInput)
    if params.get("sslpassword") is not None:
        raise InvalidInput("pg_dump and pg_restore cannot be given sslpassword without "
                           "showing it to other users (libpq has no environment variable "
                           "for it): put it in a service file (pg_service.conf) and use "
                           "service=NAME in the URL, or use a client key without a "
                           "passphrase.")
    env = dict(os.environ)
    secrets = []
    for key, var in (("password", "PGPASSWORD"), ("passfile", "PGPASSFILE")):
        value = params.pop(key, None)
        if value is not None:
            env[var] = str(value)
            secrets.append(str(value))
    return psycopg.conninfo.make_conninfo(**params), env, secrets


def _run(argv: list[str], what: str, env: dict, secrets: list[str], stdout=None) -> None:
    done = subprocess.run(argv, stdout=stdout if stdout is not None else subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, env=env)
    if done.returncode != 0:
        first = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[0]
        # The tool's own words help (a missing role, a name already taken); any secret they
        # might quote is blanked, longest first so that none is left in part.
        for secret in sorted(filter(None, secrets), key=len, reverse=True):
            first = first.replace(secret, "***")
        raise InvalidInput(f"{what} failed: {first}")


def dump(url: str, out: int) -> None:
    """Write the bank at url (pg_dump's custom format, readable by pg_restore) into the file
    open for writing at descriptor out: the caller made that file, new and private
    (operations.backup), so pg_dump never opens a path that something else may be at."""
    conninfo, env, secrets = _without_secrets(url)
    _run([tool("pg_dump"), "--format=custom", "--no-owner", "--dbname", conninfo],
         f"pg_dump of {shown(url)}", env, secrets, stdout=out)


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
    conninfo, env, secrets = _without_secrets(url)
    _run([tool("pg_restore"), "--no-owner", "--exit-on-error", "--single-transaction",
          "--dbname", conninfo, src], f"pg_restore into {shown(url)}", env, secrets)
