"""Operations on the bank as a whole: verify, backup and restore.

DuckDB lets one process hold a database file, so while the app runs, the command line cannot
reach the bank; these functions therefore work through the Bank's own connection, which the
app's Operations page and the command line both hold. A backup is a snapshot taken inside one
read transaction (DuckDB's MVCC), so writers carry on while it is written and it holds every
transaction committed before it started and nothing after. Backups never overwrite anything,
and every file they write is private to the bank's user (files.py).

Restore copies a backup into a path that holds nothing yet, and says done only after the copy
passes `audit.verify()`; it never touches a bank that is open.
"""
from __future__ import annotations

import datetime as dt
import os
import re
import threading
import uuid

from .store import files
from .domain.errors import InvalidInput, InvalidState, NotABank

BACKUP_FOLDER = "backups"
# A backup name typed on the Operations page: letters, digits, dot, dash and underscore.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")


def verify(bank, actor, *, on_read_model: bool = False) -> dict:
    """Every ledger invariant checked (audit.verify); managers and the system.

    Returns {"ok": bool, "problems": [str], "summary": {kind: count}}, where kind is each
    problem's words before its first number or account number (e.g. "account",
    "transaction", "trial balance is"), for a short overview.

    `on_read_model` (a bank on PostgreSQL with BANKMS_READ_MODEL set): the ledger's own
    consistency (balances equal postings, every transaction and the whole ledger sum to zero)
    checked on one snapshot of the read model, refreshed first, so that nothing is held on
    PostgreSQL while it runs; the answer then also has "as_of" (aware UTC), the time of the
    state checked. InvalidState when the bank has no read model (audited as a refusal, as a
    refused permission is)."""
    bank.require(actor, "audit.verify", entity="bank")
    as_of = None
    if on_read_model:
        rm = bank.read_model
        if rm is None:
            exc = InvalidState(no_read_model(bank))
            bank.record_refusal(actor, "audit.verify", exc, entity="bank")
            raise exc
        rm.ensure_fresh(bank.read_model_max_age_s)
        problems, fresh = rm.check_ledger()
        as_of = fresh.as_of
    else:
        problems = bank.audit.verify()
    summary: dict[str, int] = {}
    for problem in problems:
        kind = re.split(r"[\s]\d|\s[A-Z0-9]{6,}", problem, maxsplit=1)[0].strip() or problem
        summary[kind] = summary.get(kind, 0) + 1
    answer = {"ok": not problems, "problems": problems, "summary": summary}
    if on_read_model:
        answer["as_of"] = None if as_of is None else as_of.replace(tzinfo=dt.timezone.utc)
    return answer


def no_read_model(bank_or_path) -> str:
    """Why a bank (or the bank at a path or URL) has no read model to verify on, and what to
    do instead, in one sentence for the command line and the Operations page."""
    path = getattr(bank_or_path, "path", bank_or_path)
    if "://" not in str(path):
        return ("A bank in a DuckDB file has no read model (only a bank on PostgreSQL has "
                "one; DuckDB is its own columnar store): run verify without the read model.")
    return ("This bank has no read model: start with BANKMS_READ_MODEL=1 (a copy in memory) "
            "or BANKMS_READ_MODEL=<file> to verify on one, or run verify on the bank itself.")


def read_model_info(bank, actor) -> dict | None:
    """What a manager choosing where to verify is told of the read model: None when the bank
    has none (a DuckDB bank, or BANKMS_READ_MODEL unset); else {"as_of": the time of the state
    it holds, aware UTC, or None before its first refresh; "max_age_s": how old it may be
    before a check refreshes it first}. Managers and the system, as verify."""
    bank.require(actor, "audit.verify", entity="bank")
    rm = bank.read_model
    if rm is None:
        return None
    as_of = rm.freshness().as_of
    return {"as_of": None if as_of is None else as_of.replace(tzinfo=dt.timezone.utc),
            "max_age_s": bank.read_model_max_age_s}


def _refuse_existing(dest: str, kind: str) -> None:
    """Refuse (InvalidInput) a dest that holds anything: a file, a link, a folder (an empty
    one only for an export, which is a folder), or a WAL beside it."""
    if os.path.isdir(dest) and not os.path.islink(dest):
        if kind != "export":
            raise InvalidInput(f"{dest} is a folder; a backup never overwrites anything. "
                               "Choose a new name.")
        if os.listdir(dest):
            raise InvalidInput(f"{dest} is a folder that is not empty; a backup never "
                               "overwrites anything. Choose a new name.")
    elif os.path.lexists(dest):
        raise InvalidInput(f"{dest} already exists; a backup never overwrites anything. "
                           "Choose a new name.")
    if os.path.lexists(files.wal_path(dest)):
        raise InvalidInput(f"{files.wal_path(dest)} already exists; choose a new name.")


def backup(bank, actor, dest: str) -> dict:
    """Write a consistent copy of the open bank to dest, while the bank keeps running.

    dest ending in .duckdb: a database file (open it with open_bank, or `restore` it);
    anything else: a folder of Parquet files (EXPORT DATABASE). Refuses (InvalidInput) an
    existing file or a folder that is not empty. Managers and the system; audited.
    Returns {"path": absolute path, "bytes": size on disk, "kind": "file" | "export"}."""
    bank.require(actor, "bank.backup", entity="bank")
    dest = os.path.abspath(dest)
    # One backup at a time: two managers choosing the same name at once would both pass the
    # check below, the second copy would fail on the file the first is writing and its clean-up
    # would delete the first one's backup.
    with _BACKUP_LOCK:
        return _backup(bank, actor, dest)


_BACKUP_LOCK = threading.Lock()


def _backup(bank, actor, dest: str) -> dict:
    kind = "file" if dest.endswith(".duckdb") else "export"
    if bank.engine.name == "postgresql":
        kind = "pg_dump"  # a file in pg_dump's custom format, whatever its name
    try:
        _refuse_existing(dest, kind)
        if os.path.abspath(bank.path) == dest:
            raise InvalidInput("A backup cannot be written over the bank itself.")
    except InvalidInput as exc:
        bank.record_refusal(actor, "bank.backup", exc, entity="bank", entity_id=dest)
        raise
    files.private_umask()
    files.make_private_folder(os.path.dirname(dest))
    bank.write(lambda uow: None)  # let writes already queued land first
    # An export may go into an empty folder that was there before: a failure then empties
    # it but leaves the folder itself.
    folder_was_there = os.path.isdir(dest)
    try:
        if kind == "pg_dump":
            # One snapshot, taken by pg_dump's own connection while every process serves on.
            # The file is made here, new (O_EXCL: never one that appeared since the check)
            # and private, and pg_dump writes into it; a failure before it exists removes
            # nothing.
            from .store import pgtools
            try:
                fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, files.FILE_MODE)
            except FileExistsError:
                raise InvalidInput(f"{dest} already exists; a backup never overwrites "
                                   "anything. Choose a new name.") from None
            try:
                pgtools.dump(bank.path, fd)
            except BaseException:
                os.close(fd)
                os.remove(dest)
                raise
            os.close(fd)
        elif kind == "file":
            # One snapshot of the whole database, copied table by table with its sequences
            # and constraints, into a new file, through this thread's cursor.
            alias = f"bankms_backup_{uuid.uuid4().hex}"
            source = bank.read_one("SELECT current_database()")[0]
            bank.read(f"ATTACH {files.sql_literal(dest)} AS {alias}")
            try:
                bank.read(f"COPY FROM DATABASE {files.sql_ident(source)} TO {alias}")
            finally:
                bank.read(f"DETACH {alias}")
        else:
            bank.read(f"EXPORT DATABASE {files.sql_literal(dest)} (FORMAT parquet)")
    except Exception:
        if kind == "pg_dump":
            raise  # the file it made, and only that, is removed above
        if folder_was_there:
            for name in os.listdir(dest):
                _remove(os.path.join(dest, name))
        else:
            _remove(dest)
        raise
    files.tighten_tree(dest)
    size = _size(dest)

    def fn(uow):
        bank.audit_row(uow, actor, "bank.backup", "bank", None,
                       after={"path": dest, "kind": kind, "bytes": size})
    bank.write(fn)
    return {"path": dest, "bytes": size, "kind": kind}


def backup_folder(bank) -> str:
    """Where the Operations page writes backups: data/backups beside the database."""
    return os.path.join(files.data_folder(bank.path), BACKUP_FOLDER)


def suggested_name(now: dt.datetime | None = None) -> str:
    now = now or dt.datetime.now(dt.timezone.utc)
    return now.strftime("bank-%Y%m%d-%H%M%S")


def backup_named(bank, actor, name: str) -> dict:
    """backup() to data/backups/<name>.duckdb (<name>.dump, pg_dump's format, for a bank on
    PostgreSQL); the name is letters, digits, '.', '-', '_'."""
    # A PostgreSQL bank's backup is a pg_dump file, named so that nobody opens it as DuckDB.
    suffix = ".dump" if bank.engine.name == "postgresql" else ".duckdb"
    name = (name or "").strip()
    if name.endswith(suffix):
        name = name[:-len(suffix)]
    if not _NAME.match(name) or ".." in name:
        raise InvalidInput("A backup name has 1 to 80 letters, digits, dots, dashes or "
                           "underscores, and starts with a letter or digit.")
    return backup(bank, actor, os.path.join(backup_folder(bank), name + suffix))


def restore(src: str, dest: str) -> dict:
    """Copy the backup src (a .duckdb file holding a bank, or an EXPORT DATABASE folder) into
    dest, which must not exist yet, then open the copy and run audit.verify() on it. A copy
    that verifies starts with every session ended and no form key in flight (the backup's
    sessions may have been revoked since; audited as auth.sessions_ended).

    Raises NotABank for a src that holds no bank, InvalidInput for a dest that exists, and
    InvalidState when the copy fails verification (the copy is removed: nothing is restored).
    Returns {"path": dest, "bytes": size}. The caller must hold neither file open."""
    from .bank import open_bank

    if "://" in dest:
        return _restore_postgres(src, dest)
    dest = os.path.abspath(dest)
    src = os.path.abspath(src)
    export = os.path.isdir(src)
    if export:
        if not all(os.path.isfile(os.path.join(src, f)) for f in ("schema.sql", "load.sql")):
            raise NotABank(f"There is no bank at {src}: the folder is not a bankms export "
                           "(no schema.sql and load.sql).")
    else:
        files.check_bank_file(src)
    if os.path.lexists(dest) or os.path.lexists(files.wal_path(dest)):
        raise InvalidInput(f"{dest} already exists; restore only into a path that holds "
                           "nothing yet.")
    if not dest.endswith(".duckdb"):
        raise InvalidInput("The restored bank must be a file whose name ends in .duckdb.")
    files.private_umask()
    files.make_private_folder(os.path.dirname(dest))
    try:
        files.copy_database(src, dest, export=export)
        with open_bank(dest) as bank:
            problems = bank.audit.verify()
            if not problems:
                _end_restored_sessions(bank)
    except BaseException:
        _remove(dest)
        raise
    if problems:
        _remove(dest)
        raise InvalidState(f"The copy of {src} fails verification ({len(problems)} "
                           f"problem(s), first: {problems[0]}); nothing was restored.")
    files.tighten(dest)
    return {"path": dest, "bytes": _size(dest)}


def _restore_postgres(src: str, url: str) -> dict:
    """restore() into a PostgreSQL database: src is a pg_dump file (`backup` of a PostgreSQL
    bank), url an empty database (InvalidInput otherwise). The copy is verified like a file's;
    one that fails stays for inspection (a database is not ours to drop) and is reported."""
    from .bank import open_bank
    from .store import pgtools

    src = os.path.abspath(src)
    pgtools.restore(src, url)
    with open_bank(url) as bank:
        problems = bank.audit.verify()
        if not problems:
            _end_restored_sessions(bank)
    if problems:
        raise InvalidState(f"The copy of {src} in {pgtools.shown(url)} fails verification "
                           f"({len(problems)} problem(s), first: {problems[0]}); drop that "
                           "database before trying again.")
    return {"path": pgtools.shown(url), "bytes": _size(src)}


def _end_restored_sessions(bank) -> None:
    # A backup holds the sessions live at its moment: one signed out or revoked since (a
    # deactivated employee, a changed password) would be live again in the copy, and its cookie
    # would sign in. So a restored bank starts with no live session and no form key in flight;
    # everyone signs in again (audited as auth.sessions_ended, reason "restore").
    bank.auth.end_every_session(bank.system_actor(), reason="restore")


def _size(path: str) -> int:
    if os.path.isdir(path):
        return sum(os.path.getsize(os.path.join(root, name))
                   for root, _, names in os.walk(path) for name in names)
    return os.path.getsize(path)


def _remove(path: str) -> None:
    import shutil

    for target in (path, files.wal_path(path)):
        if os.path.isdir(target):
            shutil.rmtree(target, ignore_errors=True)
        elif os.path.lexists(target):
            os.remove(target)
