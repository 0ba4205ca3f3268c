"""`python -m bankms`: init, demo, verify, backup, restore, create-employee, setting, end of
day, outbox (the hand-off of customer messages to the mail/SMS relay), public-key (the bank's
key for checking its signed exports) and check-export (an auditor's check of an export, which
opens no bank and needs neither the database nor the app).

The database path comes from --db (before or after the subcommand), else the BANKMS_DB
environment variable, else data/bank.duckdb. Only `init` and `demo` create a bank; every other
command refuses a path that does not hold one, so a mistyped path never becomes an empty bank.
DuckDB lets one process hold the file, so run these while the app is stopped (or use the app's
Operations page). A PostgreSQL URL (postgresql://...) may be used while app processes serve
it: verify, backup (pg_dump, one snapshot) and the other commands work beside them, and
restore loads a pg_dump file into a new, empty database. `verify --read-model` checks the ledger
on the bank's DuckDB read model instead (a PostgreSQL bank with BANKMS_READ_MODEL set), so that
nothing is held on PostgreSQL, and says how old that copy is. Every failure is one line on
stderr and a non-zero exit status: 1 when verify or check-export finds a problem, 2 for a
refusal or a mistyped command, 3 for anything unexpected.
"""
from __future__ import annotations

import argparse
import datetime as dt
import getpass
import os
import sys

from . import operations
from .store import files
from .bank import open_bank
from .domain.errors import (BankError, ConfirmationRequired, InvalidInput,
                            InvalidState)

DEFAULT_DB = "data/bank.duckdb"
EXIT_PROBLEMS, EXIT_REFUSED, EXIT_UNEXPECTED = 1, 2, 3


class UsageError(Exception):
    """A mistyped command line (argparse's complaint, in one line)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(f"{self.prog}: {message}")


def db_path(arg=None) -> str:
    return arg or os.environ.get("BANKMS_DB") or DEFAULT_DB


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date; use YYYY-MM-DD, "
                                         "e.g. 2026-12-31") from None


def _existing(args):
    """The bank at --db, which must exist already (NotABank otherwise; nothing is created). A
    PostgreSQL URL must name a database holding a bank; such a bank may be served by the app
    at the same time (several processes share it)."""
    path = db_path(args.db)
    _check_bank(path)
    return open_bank(path)


def _check_bank(path: str) -> None:
    if "://" in path:
        from .store import pgtools
        pgtools.check_bank_url(path)
    else:
        files.check_bank_file(path)


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


def _new_or_existing(path: str):
    """A bank at path, created when nothing is there; never some other file made into one."""
    if os.path.exists(path):
        files.check_bank_file(path)
    return open_bank(path)


def cmd_init(args):
    bank = _new_or_existing(db_path(args.db))
    try:
        if not args.no_demo:
            from .demo import build_once
            # A bank that already holds real customers gets no demo; init stays harmless,
            # also beside app processes starting on the same new database (build_once).
            logins = build_once(bank, customers=args.customers, months=args.months,
                                progress=_progress("demo"))
            if logins is not None:
                _print_logins(logins)
        where = bank.path
        if "://" in where:
            from .store import pgtools
            where = pgtools.shown(where)  # a URL may hold a password
        print(f"bank ready at {where}")
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
    bank = _new_or_existing(db_path(args.db))
    try:
        # build_demo refuses a bank with any user, customer or transaction (demo.is_empty).
        logins = build_demo(bank, customers=args.customers, months=args.months, seed=args.seed,
                            progress=_progress("demo"))
        _print_logins(logins)
    finally:
        bank.close()


def cmd_verify(args):
    if args.read_model and "://" not in db_path(args.db):
        # Refused before the file is opened: while the app runs it holds the file, and the
        # answer would be "in use" rather than why the flag cannot apply.
        raise InvalidState(operations.no_read_model(db_path(args.db)))
    try:
        bank = _existing(args)
    except Exception as exc:
        # A read model kept in a file (BANKMS_READ_MODEL=<file>) belongs to one process, as
        # any DuckDB file does: the app's, while it runs.
        if args.read_model and "lock" in str(exc).lower():
            raise InvalidState(
                "The read model's file is in use by another process (the app?): verify on it "
                "from the app's Operations page, or run this command with BANKMS_READ_MODEL=1 "
                "(a copy of its own, in memory).") from None
        raise
    try:
        result = operations.verify(bank, bank.system_actor(), on_read_model=args.read_model)
    finally:
        bank.close()
    if args.read_model:
        # The state checked: the read model's copy of the bank, as PostgreSQL held it then.
        as_of = result["as_of"]
        shown = "never filled" if as_of is None else f"{as_of:%Y-%m-%d %H:%M:%S} UTC"
        print(f"read model as of {shown}: balances equal their postings, every transaction "
              "and the whole ledger sum to zero")
    for problem in result["problems"]:
        print(problem)
    if result["ok"]:
        print("ok: the ledger holds on the read model" if args.read_model
              else "ok: every invariant holds")
        return 0
    print(f"error: {len(result['problems'])} problem(s) found", file=sys.stderr)
    return EXIT_PROBLEMS


def cmd_backup(args):
    bank = _existing(args)
    try:
        done = operations.backup(bank, bank.system_actor(), args.dest)
    finally:
        bank.close()
    print(f"backup written to {done['path']} ({done['bytes']:,} bytes)")


def cmd_restore(args):
    dest = db_path(args.db)
    done = operations.restore(args.src, dest)
    print(f"restored {args.src} to {done['path']}; verify: every invariant holds")


def cmd_create_employee(args):
    bank = _existing(args)
    try:
        password = args.password or os.environ.get("BANKMS_NEW_PASSWORD")
        if not password:
            if not sys.stdin.isatty():
                # getpass would fall back to echoing, warn over several lines and then fail.
                raise InvalidInput("No password given and no terminal to ask on: use "
                                   "--password or the BANKMS_NEW_PASSWORD variable.")
            password = getpass.getpass("Password (12-64 characters): ")
        bank.users.create(bank.system_actor(), username=args.username, password=password,
                          role=args.role, full_name=args.full_name or args.username,
                          email=args.email)
        print(f"{args.role} '{args.username}' created")
    finally:
        bank.close()


def cmd_setting(args):
    """List the settings, show one, or change one (validated against settings.REGISTRY)."""
    from .services.settings import INTERNAL_KEYS, describe
    if args.key is not None and (args.value is not None or args.key not in INTERNAL_KEYS):
        describe(args.key)  # an unknown key is refused before the bank is opened
    bank = _existing(args)
    try:
        if args.key is None:
            for row in bank.settings.listing():
                print(f"{row['key']} = {row['value']}    ({row['type']}; {row['allowed']})")
            return 0
        if args.value is not None:
            bank.settings.set(bank.system_actor(), args.key, args.value)
        print(f"{args.key} = {bank.settings.get(args.key)}")
    finally:
        bank.close()


def cmd_eod(args):
    bank = _existing(args)
    try:
        try:
            result = bank.end_of_day(bank.system_actor(), until=args.until,
                                     progress=_progress("end of day"), confirm=args.yes)
        except ConfirmationRequired as exc:
            # The service's words fit the page's checkbox; here the confirmation is --yes.
            raise ConfirmationRequired(f"{_one_line(exc)} To confirm, run it again with "
                                       "--yes.") from None
        print(result)
    finally:
        bank.close()


def cmd_end_sessions(args):
    """End every live session (everyone signs in again) and drop every form key, as the system
    actor, audited as auth.sessions_ended: after a point-in-time recovery, whose bank holds the
    sessions live at the recovery target, among them any signed out or revoked since (restore
    does this itself)."""
    bank = _existing(args)
    try:
        ended = bank.auth.end_every_session(bank.system_actor(), reason=args.reason)
    finally:
        bank.close()
    print(f"ended {ended} live session(s): everyone signs in again")


def cmd_outbox(args):
    """Print the pending customer messages (activation codes) for the mail/SMS relay, as the
    system actor; with --mark-sent, mark exactly the printed ones sent."""
    bank = _existing(args)
    try:
        system = bank.system_actor()
        messages = bank.outbox.pending(system)
        for m in messages:
            print(f"--- message {m['id']} ({m['created_at']:%Y-%m-%d %H:%M} UTC) "
                  f"{m['channel']} to {m['recipient']}")
            print(f"Subject: {m['subject']}")
            print(m["body"])
        print(f"{len(messages)} pending message(s)")
        if args.mark_sent and messages:
            done = bank.outbox.mark_sent(system, [m["id"] for m in messages])
            print(f"{done} message(s) marked sent")
    finally:
        bank.close()


def cmd_public_key(args):
    """Print the bank's public signing key (PEM), made with the private key on first use."""
    from .services import signing

    path = db_path(args.db)
    key_path = signing.key_path_for(path)
    if not os.path.exists(key_path):
        # A key is made only beside a real bank: a mistyped --db must not leave one behind.
        _check_bank(path)
    sys.stdout.write(signing.public_pem(signing.load_or_create(key_path)).decode())


def cmd_check_export(args):
    """Check an auditor's export offline: print each check, exit 1 if any fails."""
    from .reporting.export_check import check_file

    checks = check_file(args.file, args.public_key)
    for check in checks:
        print(check.line())
    failed = [c for c in checks if not c.ok]
    if failed:
        print(f"error: {len(failed)} of {len(checks)} checks failed", file=sys.stderr)
        return EXIT_PROBLEMS
    print(f"ok: all {len(checks)} checks passed")
    return 0


def build_parser() -> argparse.ArgumentParser:
    # --db is accepted before and after the subcommand: the subcommands share it through a
    # parent parser whose default is SUPPRESS, so it never overwrites one given earlier.
    shared = argparse.ArgumentParser(add_help=False)
    shared.add_argument("--db", default=argparse.SUPPRESS,
                        help=f"database file (default $BANKMS_DB or {DEFAULT_DB})")
    parser = _Parser(prog="python -m bankms")
    parser.add_argument("--db", default=None,
                        help=f"database file (default $BANKMS_DB or {DEFAULT_DB})")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def command(name, fn, help_text):
        p = sub.add_parser(name, help=help_text, parents=[shared])
        p.set_defaults(fn=fn)
        return p

    p = command("init", cmd_init, "create the database (with a demo bank unless --no-demo)")
    p.add_argument("--no-demo", action="store_true")
    p.add_argument("--customers", type=int, default=200)
    p.add_argument("--months", type=int, default=6)
    p = command("demo", cmd_demo, "build a demo bank into a new, empty bank (bulk path)")
    p.add_argument("--customers", type=int, default=1000)
    p.add_argument("--months", type=int, default=12)
    p.add_argument("--seed", type=int, default=7)
    p = command("verify", cmd_verify, "check every ledger invariant; exit 1 on any problem")
    p.add_argument("--read-model", action="store_true",
                   help="check the ledger (balances against postings, sums to zero) on the "
                   "bank's DuckDB read model instead, holding nothing on PostgreSQL; a "
                   "PostgreSQL bank with BANKMS_READ_MODEL set only")
    p = command("backup", cmd_backup, "write a consistent copy (DEST.duckdb or a new folder; "
                "a pg_dump file for a PostgreSQL bank); never overwrites")
    p.add_argument("dest")
    p = command("restore", cmd_restore, "copy a backup into --db (a file that must not exist "
                "yet, or an empty PostgreSQL database) and verify it")
    p.add_argument("src")
    p = command("create-employee", cmd_create_employee, "create a teller or manager")
    p.add_argument("--role", choices=["teller", "manager"], required=True)
    p.add_argument("--username", required=True)
    p.add_argument("--full-name")
    p.add_argument("--email")
    p.add_argument("--password", help="else $BANKMS_NEW_PASSWORD, else asked")
    p = command("setting", cmd_setting, "list the settings, show one, or change one")
    p.add_argument("key", nargs="?")
    p.add_argument("value", nargs="?")
    p = command("eod", cmd_eod, "run end of day up to --until (default: the last day that "
                "has ended)")
    p.add_argument("--until", type=_date, help="YYYY-MM-DD")
    p.add_argument("--yes", action="store_true", help="confirm a catch-up of many days")
    p = command("end-sessions", cmd_end_sessions, "end every live session (everyone signs "
                "in again), e.g. after a point-in-time recovery")
    p.add_argument("--reason", default="operator",
                   choices=["operator", "point-in-time recovery", "restore"],
                   help="why, as the audit row says (default: operator)")
    p = command("outbox", cmd_outbox, "print the customer messages (activation codes) waiting "
                "for the mail/SMS relay")
    p.add_argument("--mark-sent", action="store_true",
                   help="mark the printed messages sent (the relay has taken them)")
    command("public-key", cmd_public_key, "print the bank's public key (PEM) that checks its "
            "signed auditor's exports")
    # No --db: the check reads the zip and the key only, never a bank.
    p = sub.add_parser("check-export", help="check an auditor's export (zip) against the "
                       "bank's public key; exit 1 if any check fails")
    p.set_defaults(fn=cmd_check_export)
    p.add_argument("file", help="the export (.zip)")
    p.add_argument("--public-key", required=True, metavar="KEY",
                   help="the bank's public key, PEM (from `python -m bankms public-key`)")
    return parser


def _one_line(text) -> str:
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return lines[0] if lines else type(text).__name__


def main(argv=None) -> int:
    """Run one command; returns the exit status. Failures print one line on stderr."""
    try:
        args = build_parser().parse_args(argv)
        return args.fn(args) or 0
    except SystemExit as exc:  # --help
        return exc.code if isinstance(exc.code, int) else 0
    except UsageError as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_REFUSED
    except BankError as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_REFUSED
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - a command line never shows a traceback
        message = f"{type(exc).__name__}: {_one_line(exc)}"
        if "lock" in message.lower():
            message = ("the database is in use by another process (is the app running? "
                       "Use its Operations page, or stop it first)")
        print(f"error: {message}", file=sys.stderr)
        return EXIT_UNEXPECTED
