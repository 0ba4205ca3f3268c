"""`python -m bankms`: init, demo, verify, backup, create-employee and end of day.

The database path comes from --db, else the BANKMS_DB environment variable, else
data/bank.duckdb. DuckDB lets one process hold the file, so run these while the app is stopped.
"""
from __future__ import annotations

import argparse
import getpass
import os
import shutil
import sys

from .bank import open_bank
from .errors import BankError

DEFAULT_DB = "data/bank.duckdb"


def db_path(arg=None) -> str:
    return arg or os.environ.get("BANKMS_DB") or DEFAULT_DB


def _progress(label):
    def report(done, total):
        width = 30
        filled = int(width * done / total) if total else width
        sys.stderr.write(f"\r{label} [{'#' * filled}{'.' * (width - filled)}] "
                         f"{done}/{total}")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()
    return report


def cmd_init(args):
    bank = open_bank(db_path(args.db))
    try:
        if not args.no_demo:
            from .demo import build_demo, demo_exists, is_empty
            # A bank that already holds real customers gets no demo; init stays harmless.
            if not demo_exists(bank) and is_empty(bank):
                logins = build_demo(bank, customers=args.customers, months=args.months,
                                    progress=_progress("demo"))
                _print_logins(logins)
        print(f"bank ready at {bank.path}")
    finally:
        bank.close()


def _print_logins(logins):
    if not logins:
        return
    print("Demo logins (username / password):")
    for user in logins:
        print(f"  {user['role']:<9} {user['username']:<16} {user['password']}")


def cmd_demo(args):
    from .demo import build_demo
    bank = open_bank(db_path(args.db))
    try:
        logins = build_demo(bank, customers=args.customers, months=args.months, seed=args.seed,
                            progress=_progress("demo"))
        _print_logins(logins)
    finally:
        bank.close()


def cmd_verify(args):
    bank = open_bank(db_path(args.db))
    try:
        problems = bank.audit.verify()
    finally:
        bank.close()
    for problem in problems:
        print(problem)
    print("ok: every invariant holds" if not problems else f"{len(problems)} problems")
    return 1 if problems else 0


def backup(bank, dest: str) -> str:
    """A consistent copy: EXPORT DATABASE into a folder, or a checkpointed file copy."""
    if dest.endswith(".duckdb"):
        bank.write(lambda uow: None)  # let queued writes land first
        bank.read("CHECKPOINT")
        shutil.copyfile(bank.path, dest)
    else:
        bank.read(f"EXPORT DATABASE '{dest}' (FORMAT parquet)")
    return dest


def cmd_backup(args):
    bank = open_bank(db_path(args.db))
    try:
        print(f"backup written to {backup(bank, args.dest)}")
    finally:
        bank.close()


def cmd_create_employee(args):
    bank = open_bank(db_path(args.db))
    try:
        password = args.password or os.environ.get("BANKMS_NEW_PASSWORD")
        if not password:
            password = getpass.getpass("Password (12-64 characters): ")
        bank.users.create(bank.system_actor(), username=args.username, password=password,
                          role=args.role, full_name=args.full_name or args.username,
                          email=args.email)
        print(f"{args.role} '{args.username}' created")
    finally:
        bank.close()


def cmd_setting(args):
    """Show or change one bank setting, e.g. the idle timeout of signed-in sessions."""
    bank = open_bank(db_path(args.db))
    try:
        if args.value is not None:
            if args.key.endswith(("_s", "_max", "_cents")):
                try:
                    number = int(args.value)
                except ValueError:
                    number = -1
                if number <= 0:
                    print(f"error: {args.key} must be a whole number above zero",
                          file=sys.stderr)
                    return 2
            bank.settings.set(bank.system_actor(), args.key, args.value)
        print(f"{args.key} = {bank.settings.get(args.key)}")
    finally:
        bank.close()


def cmd_eod(args):
    bank = open_bank(db_path(args.db))
    try:
        result = bank.end_of_day(bank.system_actor(), until=args.until,
                                 progress=_progress("end of day"), confirm=args.yes)
        print(result)
    finally:
        bank.close()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bankms")
    parser.add_argument("--db", help=f"database file (default $BANKMS_DB or {DEFAULT_DB})")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("init", help="create the database (with a demo bank unless --no-demo)")
    p.add_argument("--no-demo", action="store_true")
    p.add_argument("--customers", type=int, default=200)
    p.add_argument("--months", type=int, default=6)
    p.set_defaults(fn=cmd_init)
    p = sub.add_parser("demo", help="build a realistic demo bank through the bulk path")
    p.add_argument("--customers", type=int, default=1000)
    p.add_argument("--months", type=int, default=12)
    p.add_argument("--seed", type=int, default=7)
    p.set_defaults(fn=cmd_demo)
    p = sub.add_parser("verify", help="check every ledger invariant; exit 1 on any problem")
    p.set_defaults(fn=cmd_verify)
    p = sub.add_parser("backup", help="write a consistent copy (DEST.duckdb or a folder)")
    p.add_argument("dest")
    p.set_defaults(fn=cmd_backup)
    p = sub.add_parser("create-employee", help="create a teller or manager")
    p.add_argument("--role", choices=["teller", "manager"], required=True)
    p.add_argument("--username", required=True)
    p.add_argument("--full-name")
    p.add_argument("--email")
    p.add_argument("--password", help="else $BANKMS_NEW_PASSWORD, else asked")
    p.set_defaults(fn=cmd_create_employee)
    p = sub.add_parser("setting", help="show or change a setting (e.g. session_idle_timeout_s)")
    p.add_argument("key")
    p.add_argument("value", nargs="?")
    p.set_defaults(fn=cmd_setting)
    p = sub.add_parser("eod", help="run end of day up to --until (default: the last day that "
                       "has ended)")
    p.add_argument("--until")
    p.add_argument("--yes", action="store_true", help="confirm a catch-up of many days")
    p.set_defaults(fn=cmd_eod)
    args = parser.parse_args(argv)
    try:
        return args.fn(args) or 0
    except BankError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
