"""Operations (issue 11): the command line's refusals, the settings registry, private file modes,
backup and restore, and the managers' Operations page."""
from __future__ import annotations

import os
import pathlib
import re
import stat
import subprocess
import sys

import duckdb
import pytest

import bankms
from bankms import cli, operations
from bankms.store import files
from bankms.store.port import StoreUnavailable
from bankms.domain.errors import FilesExposed, InvalidInput, NotABank, PermissionDenied
from bankms.services.settings import INTERNAL_KEYS, REGISTRY
from conftest import employee, make_customer

REPO = pathlib.Path(__file__).resolve().parents[1]
PASSWORD = "the boss password 1"


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture(scope="module")
def real_bank(tmp_path_factory):
    """A real bank as an operator makes one: init --no-demo, then a first manager."""
    folder = tmp_path_factory.mktemp("cli")
    db = str(folder / "bank.duckdb")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BANKMS_BCRYPT_ROUNDS", "4")
        assert cli.main(["init", "--no-demo", "--db", db]) == 0
        assert cli.main(["--db", db, "create-employee", "--role", "manager", "--username",
                         "boss", "--password", PASSWORD]) == 0
    (folder / "full").mkdir()
    (folder / "full" / "x.txt").write_text("x")
    (folder / "taken.duckdb").write_text("not mine")
    (folder / "notes.txt").write_text("hello")
    duckdb.connect(str(folder / "other.duckdb")).execute("CREATE TABLE t (x INT)").close()
    return folder


# One row per case: the arguments ({db} is the real bank, {dir} its folder), then the exit
# status and a piece of the one line on stderr (None: success, checked on stdout instead).
CASES = [
    (["verify", "--db", "{dir}/missing.duckdb"], 2, "There is no bank at"),
    (["--db", "{dir}/notes.txt", "verify"], 2, "not a DuckDB database"),
    (["verify", "--db", "{dir}/other.duckdb"], 2, "no bank tables"),
    (["verify", "--db", "{dir}"], 2, "not a file"),
    (["eod", "--db", "{dir}/missing.duckdb"], 2, "There is no bank at"),
    (["backup", "{dir}/b1.duckdb", "--db", "{dir}/missing.duckdb"], 2, "There is no bank at"),
    (["create-employee", "--role", "teller", "--username", "tom", "--db",
      "{dir}/missing.duckdb"], 2, "There is no bank at"),
    (["setting", "login_backoff_forget_s", "--db", "{dir}/missing.duckdb"], 2, "There is no bank at"),
    (["restore", "{dir}/missing.duckdb", "--db", "{dir}/r1.duckdb"], 2, "There is no bank at"),
    (["restore", "{dir}/full", "--db", "{dir}/r1.duckdb"], 2, "not a bankms export"),
    (["restore", "{db}", "--db", "{dir}/taken.duckdb"], 2, "already exists"),
    (["restore", "{db}", "--db", "{dir}/r1.txt"], 2, "must be a file whose name ends in .duckdb"),
    (["eod", "--until", "2026-13-45", "--db", "{db}"], 2, "'2026-13-45' is not a date"),
    (["eod", "--until", "tomorrow", "--db", "{db}"], 2, "use YYYY-MM-DD"),
    (["setting", "no_such_key", "1", "--db", "{db}"], 2, "Unknown setting 'no_such_key'"),
    (["setting", "business_date", "2030-01-01", "--db", "{db}"], 2, "kept by the bank"),
    (["setting", "login_backoff_forget_s", "-5", "--db", "{db}"], 2, "not a valid value for login_backoff_forget_s"),
    (["setting", "login_backoff_forget_s", "abc", "--db", "{db}"], 2, "a whole number of seconds"),
    (["setting", "session_idle_timeout_s", "1.5", "--db", "{db}"], 2, "not a valid value"),
    (["setting", "four_eyes_threshold_cents", "0", "--db", "{db}"], 2, "1 to 10,000,000"),
    (["setting", "session_absolute_timeout_s", "59", "--db", "{db}"], 2, "60 to 604,800"),
    (["setting", "bank_time_zone", "Mars/Base", "--db", "{db}"], 2, "IANA time zone"),
    (["setting", "eod_cutoff_time", "24:00", "--db", "{db}"], 2, "HH:MM"),
    (["setting", "eod_cutoff_time", "9:30", "--db", "{db}"], 2, "HH:MM"),
    (["setting", "eod_auto", "maybe", "--db", "{db}"], 2, "not a valid value for eod_auto"),
    (["setting", "eod_catchup_days_confirm", "0", "--db", "{db}"], 2, "1 to 366 days"),
    (["backup", "{dir}/taken.duckdb", "--db", "{db}"], 2, "never overwrites"),
    (["backup", "{dir}/full", "--db", "{db}"], 2, "not empty"),
    (["backup", "{db}", "--db", "{db}"], 2, "never overwrites"),
    (["demo", "--customers", "10", "--months", "1", "--db", "{db}"], 2,
     "only into a new, empty bank"),
    (["demo", "--customers", "10", "--db", "{dir}/other.duckdb"], 2, "no bank tables"),
    (["init", "--db", "{dir}/other.duckdb"], 2, "no bank tables"),
    (["init", "--no-demo", "--db", "{dir}/notes.txt"], 2, "not a DuckDB database"),
    (["--db", "{db}"], 2, "required: command"),
    (["frobnicate", "--db", "{db}"], 2, "invalid choice"),
    (["backup", "--db", "{db}"], 2, "required: dest"),
    (["setting", "login_backoff_forget_s", "120", "--db", "{db}"], 0, "login_backoff_forget_s = 120"),
    (["setting", "bank_time_zone", "Europe/Berlin", "--db", "{db}"], 0,
     "bank_time_zone = Europe/Berlin"),
    (["setting", "eod_auto", "no", "--db", "{db}"], 0, "eod_auto = 0"),
    (["setting", "--db", "{db}"], 0, "eod_cutoff_time = 23:30"),
    (["setting", "business_date", "--db", "{db}"], 0, "business_date = 20"),
    (["verify", "--db", "{db}"], 0, "ok: every invariant holds"),
    (["--db", "{db}", "verify"], 0, "ok: every invariant holds"),
    # Only a bank on PostgreSQL has a read model; the file is not even opened.
    (["verify", "--read-model", "--db", "{db}"], 2, "A bank in a DuckDB file has no read model"),
    (["outbox", "--db", "{dir}/missing.duckdb"], 2, "There is no bank at"),
    (["outbox", "--db", "{db}"], 0, "0 pending message(s)"),
]


def test_outbox_command_hands_codes_to_the_relay(tmp_path, capsys):
    db = str(tmp_path / "bank.duckdb")
    with bankms.open_bank(db, bcrypt_rounds=4) as bank:
        teller = employee(bank, "teller", username="tom")
        cid = make_customer(bank, name="Olga Outbox", email="olga@example.com")
        made = bank.users.create_customer_login(teller, cid, "olga")
    # (arguments, what stdout holds)
    for argv, shown in [(["outbox"], "1 pending message(s)"),
                        (["outbox", "--mark-sent"], "1 message(s) marked sent"),
                        (["outbox"], "0 pending message(s)")]:
        assert cli.main([*argv, "--db", db]) == 0
        out, err = capsys.readouterr()
        assert shown in out and err == ""
        if shown.startswith("1 pending"):
            assert "email to olga@example.com" in out and "username is olga" in out
            assert made["sent_to"] == "o***@example.com"


@pytest.mark.parametrize("argv, code, message", CASES)
def test_command_line(real_bank, capsys, argv, code, message):
    db = str(real_bank / "bank.duckdb")
    before = sorted(os.listdir(real_bank))
    argv = [a.format(db=db, dir=real_bank) for a in argv]
    assert cli.main(argv) == code
    out, err = capsys.readouterr()
    if code == 0:
        assert message in out and err == ""
    else:
        assert err.startswith("error: ") and err.count("\n") == 1, err
        assert message in err, err
        assert "Traceback" not in err
        # A refused command creates nothing (no empty bank on a mistyped path, no half copy).
        assert sorted(os.listdir(real_bank)) == before


@pytest.mark.parametrize("args, code, message", [
    (["eod", "--until", "2026-13-45"], 2, "is not a date"),
    (["verify", "--db", "{dir}/mistyped.duckdb"], 2, "There is no bank at"),
    (["setting", "no_such_key", "1"], 2, "Unknown setting"),
    (["verify"], 0, None),
])
@pytest.mark.slow
def test_command_line_as_a_real_process(real_bank, args, code, message):
    db = str(real_bank / "bank.duckdb")
    env = {**os.environ, "BANKMS_BCRYPT_ROUNDS": "4", "BANKMS_DB": db}
    done = subprocess.run([sys.executable, "-m", "bankms",
                           *[a.format(dir=real_bank) for a in args]], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr
    if message:
        assert done.stderr.count("\n") == 1 and message in done.stderr, done.stderr
    assert not os.path.exists(real_bank / "mistyped.duckdb")


@pytest.mark.slow
def test_create_employee_without_a_terminal_or_password_says_so(real_bank):
    """No --password, no $BANKMS_NEW_PASSWORD and no terminal to ask on: one clear line."""
    env = {k: v for k, v in os.environ.items() if k != "BANKMS_NEW_PASSWORD"}
    done = subprocess.run([sys.executable, "-m", "bankms", "create-employee", "--role", "teller",
                           "--username", "tess", "--db", str(real_bank / "bank.duckdb")],
                          cwd=REPO, env={**env, "BANKMS_BCRYPT_ROUNDS": "4"},
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "BANKMS_NEW_PASSWORD" in done.stderr, done.stderr


def test_demo_refuses_a_bank_with_a_manager_and_keeps_it_real(real_bank):
    with bankms.open_bank(str(real_bank / "bank.duckdb"), bcrypt_rounds=4) as bank:
        from bankms.demo import demo_exists, demo_logins
        assert not demo_exists(bank) and demo_logins(bank) == []
        assert bank.read_one("SELECT count(*) FROM customers")[0] == 0


def test_verify_exits_1_and_lists_problems(tmp_path, capsys):
    db = str(tmp_path / "broken.duckdb")
    with bankms.open_bank(db, bcrypt_rounds=4) as bank:
        bank.write(lambda uow: uow.execute(
            "UPDATE accounts SET balance_cents = 5 WHERE account_number = 'GL1000'"))
    assert cli.main(["verify", "--db", db]) == 1
    out, err = capsys.readouterr()
    assert "GL1000" in out and err.count("\n") == 1 and "problem(s) found" in err


# -- backup and restore -------------------------------------------------------------------------

def customer_account(bank, name) -> tuple[int, str]:
    """(customer id, checking account number) of a new active customer."""
    system = bank.system_actor()
    cid = bank.customers.create(system, full_name=name, email="c@example.com",
                                phone="+1 555 0100", date_of_birth="1990-01-02",
                                national_id=name.upper().replace(" ", ""),
                                address="1 Main Street")
    return cid, bank.accounts.open(system, cid, kind="checking")


@pytest.mark.slow
def test_backup_and_restore_round_trip_with_private_modes(tmp_path, capsys):
    db = str(tmp_path / "live" / "bank.duckdb")
    with bankms.open_bank(db, bcrypt_rounds=4) as bank:
        cid, number = customer_account(bank, "Rosa Restore")
        bank.payments.deposit(bank.system_actor(), number, "321.09")
    file_copy, folder_copy = str(tmp_path / "b" / "copy.duckdb"), str(tmp_path / "export")
    assert cli.main(["backup", file_copy, "--db", db]) == 0
    assert cli.main(["--db", db, "backup", folder_copy]) == 0
    assert mode(file_copy) == 0o600 and mode(tmp_path / "b") == 0o700
    assert mode(folder_copy) == 0o700
    assert {mode(p) for p in pathlib.Path(folder_copy).iterdir()} == {0o600}
    for src, name in ((file_copy, "from-file.duckdb"), (folder_copy, "from-export.duckdb")):
        dest = str(tmp_path / "restored" / name)
        assert cli.main(["restore", src, "--db", dest]) == 0
        assert "every invariant holds" in capsys.readouterr().out
        assert mode(dest) == 0o600
        with bankms.open_bank(dest, bcrypt_rounds=4) as copy:
            assert copy.accounts.balance(copy.system_actor(), number) == bankms.to_decimal(
                "321.09")
            assert copy.audit.verify() == []
            # The sequences came along: new rows do not collide with restored ones.
            copy.accounts.open(copy.system_actor(), cid, kind="savings")


def test_a_restored_copy_starts_with_no_live_session(tmp_path):
    """A session revoked after the backup must not sign in again on the restored copy."""
    db, copy_path = str(tmp_path / "bank.duckdb"), str(tmp_path / "copy.duckdb")
    with bankms.open_bank(db, bcrypt_rounds=4) as bank:
        teller = employee(bank, "teller")
        sid = bank.auth.start_session(teller)
        bank.form_keys.key(sid, "deposit")
        operations.backup(bank, bank.system_actor(), str(tmp_path / "b.duckdb"))
        bank.auth.end_session(sid)  # signed out after the backup
    operations.restore(str(tmp_path / "b.duckdb"), copy_path)
    with bankms.open_bank(copy_path, bcrypt_rounds=4) as copy:
        assert copy.auth.check_session(sid) is None
        assert copy.read("SELECT count(*) FROM form_keys") == [(0,)]
        assert copy.read("SELECT actor, before, after FROM audit_log "
                         "WHERE action = 'auth.sessions_ended'") == [
            ("system", '{"live_sessions": 1}', '{"live_sessions": 0, "reason": "restore"}')]
        assert copy.audit.verify() == []
        # Only the system actor ends every session; a manager is refused and nothing changes.
        manager = employee(copy, "manager")
        live = copy.auth.start_session(manager)
        with pytest.raises(PermissionDenied):
            copy.auth.end_every_session(manager, reason="restore")
        assert copy.auth.check_session(live) is not None


def test_end_sessions_from_the_command_line(tmp_path, capsys):
    """After a point-in-time recovery the bank holds the sessions live at the target, among
    them any revoked since: the operator ends them all (review: restore did, PITR had no way)."""
    db = str(tmp_path / "bank.duckdb")
    with bankms.open_bank(db, bcrypt_rounds=4) as bank:
        sid = bank.auth.start_session(employee(bank, "teller"))
        bank.form_keys.key(sid, "deposit")
    assert cli.main(["end-sessions", "--reason", "point-in-time recovery", "--db", db]) == 0
    assert "ended 1 live session(s)" in capsys.readouterr().out
    with bankms.open_bank(db, bcrypt_rounds=4) as bank:
        assert bank.auth.check_session(sid) is None
        assert bank.read("SELECT count(*) FROM form_keys") == [(0,)]
        assert bank.read("SELECT actor, after FROM audit_log "
                         "WHERE action = 'auth.sessions_ended'") == [
            ("system", '{"live_sessions": 0, "reason": "point-in-time recovery"}')]


@pytest.mark.parametrize("exc, shown", [
    (InvalidInput("Amount must be positive."), "Amount must be positive."),
    (RuntimeError("boom"), "nothing was changed"),
    # Its COMMIT's answer may have been lost: never "nothing was changed" (found in review).
    (StoreUnavailable("server closed the connection unexpectedly"), "may or may not have been saved"),
])
def test_errors_shown_on_a_page(monkeypatch, exc, shown):
    from pages import common

    said = []
    monkeypatch.setattr(common.st, "error", lambda text, **kw: said.append(text))
    common.show_error(exc)
    assert len(said) == 1 and shown in said[0] and "server closed" not in said[0]


def test_restore_refuses_a_copy_that_fails_verify(tmp_path):
    bad = str(tmp_path / "bad.duckdb")
    with bankms.open_bank(bad, bcrypt_rounds=4) as bank:
        bank.write(lambda uow: uow.execute(
            "UPDATE accounts SET balance_cents = 7 WHERE account_number = 'GL1100'"))
    dest = str(tmp_path / "restored.duckdb")
    with pytest.raises(bankms.BankError, match="fails verification"):
        operations.restore(bad, dest)
    assert not os.path.exists(dest) and not os.path.exists(dest + ".wal")


def test_backup_while_the_bank_keeps_posting(tmp_path):
    """The snapshot is consistent although writes go on through the same connection."""
    import threading

    db = str(tmp_path / "busy.duckdb")
    with bankms.open_bank(db, bcrypt_rounds=4) as bank:
        system = bank.system_actor()
        _, number = customer_account(bank, "Busy Bee")
        stop = threading.Event()

        def deposits():
            while not stop.is_set():
                bank.payments.deposit(system, number, "1.00")
        worker = threading.Thread(target=deposits)
        worker.start()
        try:
            done = [operations.backup(bank, system, str(tmp_path / f"b{i}.duckdb"))
                    for i in range(3)]
        finally:
            stop.set()
            worker.join()
    for copy in done:
        with bankms.open_bank(copy["path"], bcrypt_rounds=4) as restored:
            assert restored.audit.verify() == []


def test_backup_needs_a_manager_and_a_good_name(tmp_path):
    with bankms.open_bank(str(tmp_path / "bank.duckdb"), bcrypt_rounds=4) as bank:
        system = bank.system_actor()
        bank.users.create(system, username="tess", password="teller password 1",
                          role="teller", full_name="Tess")
        with pytest.raises(PermissionDenied):
            operations.backup_named(bank, bank.auth.actor_for("tess"), "nightly")
        for name in ("", "../escape", "a/b", ".hidden", "x" * 81):
            with pytest.raises(InvalidInput):
                operations.backup_named(bank, system, name)
        done = operations.backup_named(bank, system, "nightly.duckdb")
        assert done["path"] == str(tmp_path / "backups" / "nightly.duckdb")
        assert mode(tmp_path / "backups") == 0o700 and mode(done["path"]) == 0o600
        with pytest.raises(InvalidInput, match="never overwrites"):
            operations.backup_named(bank, system, "nightly")
        assert bank.read_one("SELECT count(*) FROM audit_log WHERE action = 'bank.backup' "
                             "AND outcome = 'ok'")[0] == 1


# -- file modes ---------------------------------------------------------------------------------

def test_init_makes_private_files_and_tightens_open_ones(tmp_path):
    folder = tmp_path / "data"
    db = str(folder / "bank.duckdb")
    assert cli.main(["init", "--no-demo", "--db", db]) == 0
    with bankms.open_bank(db, bcrypt_rounds=4) as bank:
        bank.settings.set(bank.system_actor(), "login_backoff_forget_s", "60")  # the WAL now exists
        assert os.path.exists(db + ".wal") and mode(db + ".wal") == 0o600
    assert (mode(db), mode(folder)) == (0o600, 0o700)
    os.chmod(db, 0o644)
    os.chmod(folder, 0o755)
    assert [path for path, _, _ in files.exposed(db)] == [db, str(folder)]
    with pytest.raises(FilesExposed, match=re.escape(f"chmod 600 {db}")):
        files.check_private(db)
    bankms.open_bank(db, bcrypt_rounds=4).close()
    assert (mode(db), mode(folder)) == (0o600, 0o700) and files.exposed(db) == []


def test_a_shared_folder_is_left_alone(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    files.tighten(str(shared / "bank.duckdb"))
    assert mode(shared) == 0o1777
    # The app still refuses to serve from it, but never advises closing a shared folder such
    # as /tmp to everybody else: the bank moves instead.
    [(path, _, fix)] = files.exposed(str(shared / "bank.duckdb"))
    assert path == str(shared) and "chmod" not in fix and "folder of its own" in fix


def test_check_bank_file_creates_nothing(tmp_path):
    with pytest.raises(NotABank):
        files.check_bank_file(str(tmp_path / "nope.duckdb"))
    assert os.listdir(tmp_path) == []


# -- the settings registry ----------------------------------------------------------------------

def _keys_read_by_the_code() -> set:
    pattern = re.compile(r"""(?:settings\.get(?:_int)?|settings\.value|settings\.get)\(\s*["']([a-z_]+)["']""")
    found = set()
    for path in list((REPO / "bankms").rglob("*.py")) + list((REPO / "pages").glob("*.py")):
        found |= set(pattern.findall(path.read_text()))
        found |= set(re.findall(r"key = '([a-z_]+)'", path.read_text()))
    return found


def test_every_setting_the_code_reads_is_registered():
    keys = _keys_read_by_the_code()
    assert {"login_backoff_forget_s", "four_eyes_rate_bp", "dormancy_months"} <= keys  # the scan works
    assert keys - set(REGISTRY) - INTERNAL_KEYS == set()


@pytest.mark.parametrize("key", sorted(REGISTRY))
def test_each_default_is_valid_and_stored_at_first_open(key):
    setting = REGISTRY[key]
    assert setting.parse(setting.default) == setting.default
    assert setting.meaning and setting.type_label and setting.allowed
    with bankms.open_bank(":memory:", bcrypt_rounds=4) as bank:
        assert bank.settings.get(key) == setting.default


@pytest.mark.parametrize("key, value, stored", [
    ("login_backoff_forget_s", " 120 ", "120"),
    ("four_eyes_threshold_cents", 250000, "250000"),
    ("dormancy_months", "24", "24"),
    ("eod_auto", "Yes", "1"),
    ("eod_auto", False, "0"),
    ("eod_cutoff_time", "23:59", "23:59"),
    ("bank_time_zone", "America/New_York", "America/New_York"),
    ("login_backoff_forget_s", 1.0, InvalidInput),
    ("login_backoff_forget_s", True, InvalidInput),
    ("login_backoff_forget_s", "", InvalidInput),
    ("login_backoff_forget_s", "86401", InvalidInput),
    ("eod_cutoff_time", "12:60", InvalidInput),
    ("eod_cutoff_time", "12:00", "12:00"),
    ("eod_cutoff_time", "11:59", InvalidInput),   # today closed before half of it has passed
    ("eod_cutoff_time", "00:00", InvalidInput),   # today closed as it begins
    ("bank_time_zone", "../etc/passwd", InvalidInput),
    ("bank_time_zone", "", InvalidInput),
    ("schema_version", "2", InvalidInput),
    ("no_such_key", "1", InvalidInput),
])
def test_set_validates_and_audits(key, value, stored):
    with bankms.open_bank(":memory:", bcrypt_rounds=4) as bank:
        system = bank.system_actor()
        before = bank.settings.get(key)
        if stored is InvalidInput:
            with pytest.raises(InvalidInput):
                bank.settings.set(system, key, value)
            assert bank.settings.get(key) == before
            assert bank.read_one("SELECT count(*) FROM audit_log WHERE action = "
                                 "'settings.change' AND outcome = 'refused'")[0] == 1
            return
        assert bank.settings.set(system, key, value) == stored
        assert bank.settings.get(key) == stored
        row = bank.read_one("SELECT before, after FROM audit_log WHERE action = "
                            "'setting.change' AND entity_id = ?", [key])
        assert (row[0], row[1]) == (f'{{"value": "{before}"}}', f'{{"value": "{stored}"}}')


def test_typed_values():
    import datetime as dt
    with bankms.open_bank(":memory:", bcrypt_rounds=4) as bank:
        assert bank.settings.value("eod_cutoff_time") == dt.time(23, 30)
        assert bank.settings.value("eod_auto") is True
        assert bank.settings.value("dormancy_months") == 12
        assert bank.settings.value("bank_time_zone") == "UTC"


# -- the Operations page and the app's refusal --------------------------------------------------

def _table(at, column):
    """The dataframe on show that has `column` (AppTest does not keep a dataframe's key)."""
    tables = [d.value for d in at.dataframe if column in d.value.columns]
    assert tables, f"no table with {column}"
    return tables[0]


def _submit(at, form, label):
    at.button(key=f"FormSubmitter:{form}-{label}").click().run()
    assert not at.exception, at.exception


def test_operations_page(app_env):
    from apptest_util import open_app

    bank = app_env
    from pages.operations import TAB, TABS
    from test_dashboard_pages import show_tab

    at = open_app(bank, bank.auth.actor_for("mara"), "bank-operations")
    assert [m.label for m in at.metric] == ["Business date", "Calendar date (UTC)"]
    # Only the open tab runs: the page opens on Verify, with no form drawn.
    assert [t.label for t in at.tabs] == list(TABS) and not at.get("form")
    # A DuckDB bank has no read model: nothing to choose, verify runs on the bank.
    assert not at.radio
    at.button(key="ops_verify").click().run()
    assert [s.value for s in at.success] == ["Every invariant holds."]
    # Backup to a named file, never over an existing one.
    show_tab(at, TAB, TABS[1])
    at.text_input(key="ops_backup_name").input("before-upgrade")
    _submit(at, "ops_backup_form", "Write backup")
    written = pathlib.Path(bank.path).parent / "backups" / "before-upgrade.duckdb"
    assert any(str(written) in s.value for s in at.success) and mode(written) == 0o600
    _submit(at, "ops_backup_form", "Write backup")
    assert any("never overwrites" in e.value for e in at.error)
    # Settings: meaning, type and range on show; bad values and unknown keys refused.
    show_tab(at, TAB, TABS[2])
    table = _table(at, "Setting")
    # Human labels and values with units; the key (what the command line takes) comes last.
    assert list(table.columns) == ["Setting", "Value", "Meaning", "Allowed", "Default", "Key"]
    assert set(table["Key"]) == set(REGISTRY)
    assert not any("_" in label for label in table["Setting"])
    shown = table.set_index("Key")
    for key, label, value in SETTING_ROWS:
        assert (shown.loc[key, "Setting"], shown.loc[key, "Value"]) == (label, value), key
    for value, message in (("-1", "not a valid value"),
                           ("120", "Session idle timeout is now 120 seconds")):
        at.selectbox(key="ops_setting_key").set_value("session_idle_timeout_s")
        at.text_input(key="ops_setting_value").input(value)
        _submit(at, "ops_setting_form", "Save setting")
        assert any(message in m.value for m in [*at.error, *at.success]), value
    assert bank.settings.get("session_idle_timeout_s") == "120"
    table = _table(at, "Setting")
    assert table.set_index("Key").loc["session_idle_timeout_s", "Value"] == "120 seconds"


# How the settings table shows a setting of each kind: (key, label, value with its unit).
SETTING_ROWS = [
    ("dashboard_max_age_s", "Dashboard figures' maximum age", "30 seconds"),
    ("four_eyes_threshold_cents", "Four-eyes threshold for payments", "$10,000.00"),
    ("loan_provision_bp_1_30", "Loan-loss provision: 1-30 days past due", "5.00 %"),
    ("eod_auto", "Automatic end of day", "yes"),
    ("bank_subdivision", "Bank region (regional holidays)", "none"),
    ("eod_cutoff_time", "End-of-day cut-off time", "23:30"),
]


def test_every_setting_has_a_label():
    from bankms.services.settings import LABELS
    assert set(LABELS) == set(REGISTRY)


def test_the_calendar_date_is_the_banks_clock_in_its_zone(app_env):
    """Before midnight UTC it is already tomorrow in Tokyo, and the bank's clock is the one."""
    import datetime as dt

    from apptest_util import open_app
    from conftest import Clock

    bank = app_env
    bank.clock = Clock(dt.datetime(2031, 5, 6, 20, 0, tzinfo=dt.timezone.utc))
    bank.settings.set(bank.system_actor(), "bank_time_zone", "Asia/Tokyo")
    at = open_app(bank, bank.auth.actor_for("mara"), "bank-operations")
    assert {m.label: m.value for m in at.metric}["Calendar date (Asia/Tokyo)"] == "07 May 2031"


def test_a_broken_ledger_shows_a_summary(app_env):
    from apptest_util import open_app

    bank = app_env
    bank.write(lambda uow: uow.execute(
        "UPDATE accounts SET balance_cents = balance_cents + 1 WHERE account_number = 'GL1000'"))
    at = open_app(bank, bank.auth.actor_for("mara"), "bank-operations")
    at.button(key="ops_verify").click().run()
    assert any("problem(s) found" in e.value for e in at.error)
    summary = _table(at, "Problem")
    assert summary["Count"].sum() >= 1


@pytest.mark.parametrize("target, fix", [("file", "chmod 600"), ("folder", "chmod 700")])
def test_the_app_refuses_to_serve_files_open_to_others(app_env, target, fix):
    from streamlit.testing.v1 import AppTest

    from apptest_util import APP

    path = app_env.path if target == "file" else os.path.dirname(app_env.path)
    os.chmod(path, 0o644 if target == "file" else 0o755)
    at = AppTest.from_file(APP, default_timeout=30).run()
    errors = [e.value for e in at.error]
    assert any("will not start" in e and f"{fix} {path}" in e for e in errors), errors
    assert not at.text_input  # no sign-in form


@pytest.mark.slow
def test_two_backups_to_the_same_name_at_once_keep_one(tmp_path, monkeypatch):
    """Both pass the existence check together; the second is refused and the first's file
    stays (it used to be deleted by the second one's clean-up)."""
    import threading

    from bankms import operations

    barrier = threading.Barrier(2)
    check = operations._refuse_existing

    def check_then_wait(dest, kind):
        check(dest, kind)
        try:
            barrier.wait(timeout=2)
        except threading.BrokenBarrierError:
            pass  # serialised: the other backup waits on the lock, not here
    monkeypatch.setattr(operations, "_refuse_existing", check_then_wait)
    dest = str(tmp_path / "same.duckdb")
    outcomes = []
    with bankms.open_bank(str(tmp_path / "bank.duckdb"), bcrypt_rounds=4) as bank:
        def run():
            try:
                operations.backup(bank, bank.system_actor(), dest)
                outcomes.append("ok")
            except InvalidInput as exc:
                outcomes.append("never overwrites" in str(exc))
        threads = [threading.Thread(target=run) for _ in range(2)]
        [t.start() for t in threads]
        [t.join(60) for t in threads]
    assert sorted(outcomes, key=str) == [True, "ok"]
    with bankms.open_bank(dest, bcrypt_rounds=4) as copy:
        assert copy.audit.verify() == []


@pytest.mark.parametrize("db_path, folder", [
    ("/srv/bank/bank.duckdb", "/srv/bank"),
    ("bank.duckdb", "."),
    (":memory:", "data"),
    # A server's URL is no path: taken as one, it put cookie.key in "./postgresql:/...".
    ("postgresql:///bank?host=/run/postgresql&user=bankms", "data"),
    ("postgresql://bankms@db.example:5432/bank", "data"),
])
def test_the_local_files_of_a_bank_live_beside_its_file_or_in_data(db_path, folder, monkeypatch):
    from bankms.services import signing, tokens
    monkeypatch.delenv("BANKMS_SIGNING_KEY_FILE", raising=False)
    want = os.path.abspath(folder)
    assert files.data_folder(db_path) == want
    assert tokens.key_path_for(db_path) == os.path.join(want, "cookie.key")
    assert signing.key_path_for(db_path) == os.path.join(want, "signing.key")


@pytest.mark.parametrize("name, refused", [("empty.duckdb", "is a folder"),
                                           ("empty_export", None)])
def test_a_backup_into_an_existing_empty_folder(tmp_path, name, refused, monkeypatch):
    """A .duckdb backup never goes over a folder (and a failure never deletes one); an export
    may fill an empty folder, and when it fails the folder stays."""
    from bankms import operations

    folder = tmp_path / "out"
    folder.mkdir()
    dest = folder / name
    dest.mkdir()
    with bankms.open_bank(str(tmp_path / "bank.duckdb"), bcrypt_rounds=4) as bank:
        if refused:
            with pytest.raises(InvalidInput, match=refused):
                operations.backup(bank, bank.system_actor(), str(dest))
        else:
            real_read = bank.read

            def failing_export(sql, *args, **kw):
                if sql.startswith("EXPORT DATABASE"):
                    (dest / "partial.parquet").write_bytes(b"x")
                    raise RuntimeError("export failed on purpose")
                return real_read(sql, *args, **kw)
            monkeypatch.setattr(bank, "read", failing_export)
            with pytest.raises(RuntimeError, match="on purpose"):
                operations.backup(bank, bank.system_actor(), str(dest))
    assert dest.is_dir() and list(dest.iterdir()) == []
