"""The bank's files on disk: who may read them, and whether a path holds a bank at all.

The database and its WAL hold password hashes, national ids and live session ids, so they are
readable by the bank's own user only: files 0600, folders 0700. DuckDB creates the WAL (and
EXPORT DATABASE its files) later, on its own, so the process umask is tightened before the
first file is made; files that already exist are tightened with chmod at open. The app checks
the modes on every run and refuses to serve while any of them is open to other users, the way
it refuses a weak cookie key (see `check_private`).
"""
from __future__ import annotations

import os
import stat

from ..domain.errors import FilesExposed, NotABank

FILE_MODE = 0o600
FOLDER_MODE = 0o700
# Mode bits that let anyone but the owner read, write or enter.
OTHERS = 0o077


def private_umask() -> None:
    """Make every file this process creates from now on private to its user (umask 077)."""
    current = os.umask(0o077)
    os.umask(current | OTHERS)


def create_private_file(path: str, data: bytes) -> bool:
    """Write data to a new file at path, readable and writable by this user only (0600),
    created atomically with O_EXCL so that a file already there is never overwritten nor
    widened. Returns True if the file was made, False if one was already there. The folder is
    made (0700) when missing; an existing folder is left as it is. Used for the secrets made
    on first start: the cookie key (tokens.py) and the bank's signing key (signing.py)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), mode=FOLDER_MODE, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    return True


def open_to_others(path: str) -> int | None:
    """The file's mode if anyone but its owner may read, write or run it, else None."""
    mode = _mode(path)
    return mode if mode is not None and mode & OTHERS else None


def wal_path(db_path: str) -> str:
    return db_path + ".wal"


def data_folder(db_path: str) -> str:
    """The folder of the bank's local files (keys, backups): the database file's folder, or
    ./data for a bank that has no file here (':memory:', or a server's URL such as
    postgresql://...; several app processes over one server share keys only when
    BANKMS_COOKIE_KEY_FILE and BANKMS_SIGNING_KEY_FILE name the same files)."""
    if db_path == ":memory:" or "://" in db_path:
        return os.path.abspath("data")
    return os.path.dirname(os.path.abspath(db_path))


def _mode(path: str) -> int | None:
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return None


def _own_folder(folder: str) -> bool:
    """A folder we may tighten: ours, and not a shared one such as /tmp (sticky bit)."""
    try:
        info = os.stat(folder)
    except FileNotFoundError:
        return False
    return info.st_uid == os.getuid() and not info.st_mode & stat.S_ISVTX


def make_private_folder(folder: str) -> str:
    """Create folder (and parents) as 0700; an existing folder of ours is tightened."""
    os.makedirs(folder, mode=FOLDER_MODE, exist_ok=True)
    if _own_folder(folder):
        os.chmod(folder, FOLDER_MODE)
    return folder


def tighten(db_path: str) -> None:
    """chmod the database, its WAL (0600) and its folder (0700) where they are too open."""
    if db_path == ":memory:":
        return
    for path in (db_path, wal_path(db_path)):
        mode = _mode(path)
        if mode is not None and mode & OTHERS:
            os.chmod(path, FILE_MODE)
    folder = data_folder(db_path)
    mode = _mode(folder)
    if mode is not None and mode & OTHERS and _own_folder(folder):
        os.chmod(folder, FOLDER_MODE)


def tighten_tree(path: str) -> None:
    """A backup or export: files 0600, folders 0700, all the way down."""
    if os.path.isdir(path):
        os.chmod(path, FOLDER_MODE)
        for root, folders, names in os.walk(path):
            for name in folders:
                os.chmod(os.path.join(root, name), FOLDER_MODE)
            for name in names:
                os.chmod(os.path.join(root, name), FILE_MODE)
    elif os.path.exists(path):
        os.chmod(path, FILE_MODE)


def exposed(db_path: str) -> list[tuple[str, int, str]]:
    """(path, mode, fix) for the database, WAL and data folder where others have any access;
    fix is what to do, in words ("run chmod 600 PATH")."""
    if db_path == ":memory:":
        return []
    found = []
    for path, fix in ((db_path, "chmod 600"), (wal_path(db_path), "chmod 600"),
                      (data_folder(db_path), "chmod 700")):
        mode = _mode(path)
        if mode is not None and mode & OTHERS:
            if path == data_folder(db_path) and not _own_folder(path):
                # A shared folder such as /tmp must stay open to everybody else.
                found.append((path, mode, "move the bank into a folder of its own "
                                          "(such as data/)"))
                continue
            found.append((path, mode, f"run {fix} {path}"))
    return found


def check_private(db_path: str) -> None:
    """Raise FilesExposed naming the first file open to other users, and the fix."""
    for path, mode, fix in exposed(db_path):
        raise FilesExposed(f"{path} is readable by other users of this machine (mode "
                           f"{mode:o}), and it holds password hashes and personal data; "
                           f"{fix}")


def check_bank_file(path: str) -> None:
    """Raise NotABank unless path is an existing DuckDB file that holds a bankms bank. Nothing
    is created: a mistyped path must not become an empty bank. The file is opened read-only."""
    import duckdb

    if path == ":memory:" or not os.path.exists(path):
        raise NotABank(f"There is no bank at {path}: the file does not exist "
                       "(create one with `python -m bankms init`).")
    if not os.path.isfile(path):
        raise NotABank(f"There is no bank at {path}: it is not a file.")
    with open(path, "rb") as handle:
        header = handle.read(12)
    if header[8:12] != b"DUCK":
        raise NotABank(f"There is no bank at {path}: it is not a DuckDB database.")
    from .duckdb import duckdb_error
    from .port import StoreLocked

    try:
        con = duckdb.connect(path, read_only=True)
    except duckdb.IOException as exc:
        if isinstance(duckdb_error(exc), StoreLocked):
            raise NotABank(f"The bank at {path} is in use by another process (is the app "
                           "running? Use its Operations page, or stop it first).") from None
        raise NotABank(f"There is no bank at {path}: {str(exc).splitlines()[0]}") from None
    try:
        row = con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name IN "
                          "('settings', 'accounts', 'postings', 'transactions')").fetchone()
    finally:
        con.close()
    if row[0] < 4:
        raise NotABank(f"There is no bank at {path}: the database has no bank tables.")


def copy_database(src: str, dest: str, *, export: bool) -> None:
    """Copy the bank at src into the new DuckDB file dest: src is a database file, or an
    EXPORT DATABASE folder when export is True. The caller has checked src and that dest
    holds nothing yet (operations.restore); duckdb errors pass through unchanged."""
    import duckdb

    con = duckdb.connect(dest)
    try:
        if export:
            con.execute(f"IMPORT DATABASE {sql_literal(src)}")
        else:
            target = con.execute("SELECT current_database()").fetchone()[0]
            con.execute(f"ATTACH {sql_literal(src)} AS bankms_restore_src (READ_ONLY)")
            con.execute(f"COPY FROM DATABASE bankms_restore_src TO {sql_ident(target)}")
            con.execute("DETACH bankms_restore_src")
    finally:
        con.close()


def sql_literal(text: str) -> str:
    """text as an SQL string literal (a path in ATTACH, EXPORT or IMPORT DATABASE)."""
    return "'" + text.replace("'", "''") + "'"


def sql_ident(name: str) -> str:
    """name as a quoted SQL identifier (a database name)."""
    return '"' + name.replace('"', '""') + '"'
