"""The auditor's export (issue 15): the bank's signing key, the signed bundle of a closed period,
and the offline check `python -m bankms check-export`, which must catch any changed byte."""
from __future__ import annotations

import datetime as dt
import io
import json
import os
import stat
import subprocess
import sys
import zipfile
from decimal import Decimal
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bankms import cli
from bankms.services import signing
from bankms.reporting import export_check as fmt
from bankms.domain.errors import InvalidInput, PermissionDenied, WeakSigningKey
from conftest import Clock, employee, funded_account

ROOT = Path(__file__).resolve().parents[1]
PERIOD_DAYS = 60


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """A small demo bank (the app's own Bank object, for the page test too) whose current
    business day, with a deposit and a refused request in it, end of day has closed; the export
    of the last PERIOD_DAYS days, and the public key."""
    from apptest_util import app_bank_on
    from bankms.demo import build_demo

    folder = tmp_path_factory.mktemp("export")
    path = str(folder / "bank.duckdb")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BANKMS_COOKIE_KEY_FILE", str(folder / "cookie.key"))
        mp.delenv("BANKMS_COOKIE_KEY", raising=False)
        mp.delenv("BANKMS_SIGNING_KEY_FILE", raising=False)
        mp.setenv("BANKMS_NO_DEMO", "1")
        mp.setenv("BANKMS_BCRYPT_ROUNDS", "4")
        with app_bank_on(path) as bank:
            build_demo(bank, customers=12, months=3, seed=3)
            day = bank.business_date
            system = bank.system_actor()
            funded_account(bank, "250.00")  # audit rows and a deposit on the day closed below
            with pytest.raises(PermissionDenied):
                bank.export.public_key_pem(employee(bank, "teller"))
            bank.clock = Clock(dt.datetime.combine(day + dt.timedelta(days=1), dt.time(1)))
            bank.end_of_day(system, until=day)
            manager = employee(bank, "manager")
            calls = []
            bundle = bank.export.auditor_bundle(
                manager, from_date=day - dt.timedelta(days=PERIOD_DAYS), to_date=day,
                progress=lambda fraction, message: calls.append((fraction, message)))
            yield {"bank": bank, "path": path, "folder": folder, "day": day,
                   "manager": manager, "bundle": bundle, "calls": calls,
                   "pem": bank.export.public_key_pem(manager)}


def members(bundle: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(bundle)) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def rezip(contents: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in contents.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def failed(checks) -> set[str]:
    return {c.name for c in checks if not c.ok}


def test_the_bundle_holds_the_period_and_its_manifest(demo):
    contents = members(demo["bundle"])
    manifest = json.loads(contents["manifest.json"])
    assert set(contents) == set(fmt.FILES) | {"manifest.json", "manifest.sig"}
    assert manifest["period"] == {"from": str(demo["day"] - dt.timedelta(days=PERIOD_DAYS)),
                                  "to": str(demo["day"])}
    assert manifest["format_version"] == fmt.FORMAT_VERSION and manifest["bank_name"]
    assert manifest["created_by"] == demo["manager"].username
    rows = {f["name"]: f["rows"] for f in manifest["files"]}
    # Every kind of row is there, so that the tamper cases below change real data.
    assert min(rows.values()) > 0, rows
    # The closed day's heads are in the bundle, and the recomputed chains end on them.
    assert {h["chain"] for h in fmt.read_csv(contents["chain_heads.csv"])} == {"ledger", "audit"}
    chain = [c for c in fmt.check_bundle(demo["bundle"], demo["pem"]) if c.name == "chain"]
    assert chain[0].ok and "2 daily heads match" in chain[0].detail, chain[0].detail
    accounts = fmt.read_csv(contents["accounts.csv"])
    assert {"GL1000", "GL1200"} <= {a["account_number"] for a in accounts}
    # The progress bar moves forward from 0 to 1, file by file.
    fractions = [f for f, _ in demo["calls"]]
    assert fractions == sorted(fractions) and fractions[0] == 0 and fractions[-1] == 1.0
    assert any("postings.csv" in message for _, message in demo["calls"])
    # Taking the export is audited.
    assert demo["bank"].read_one(
        "SELECT count(*) FROM audit_log WHERE action = 'export.auditor_bundle' "
        "AND outcome = 'ok'")[0] == 1


def test_check_export_passes_as_a_real_process(demo, tmp_path):
    bundle, key = tmp_path / "bundle.zip", tmp_path / "bank.pub"
    bundle.write_bytes(demo["bundle"])
    key.write_bytes(demo["pem"])
    # No BANKMS_DB: the check needs no bank (and the demo bank's file is held by this process).
    env = {k: v for k, v in os.environ.items() if k != "BANKMS_DB"}
    done = subprocess.run([sys.executable, "-m", "bankms", "check-export", str(bundle),
                           "--public-key", str(key)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    for name in ("signature", "transactions sum to zero", "closing = opening + postings",
                 "trial balance", "chain", *(f"file {n}" for n in fmt.FILES)):
        assert f"ok    {name}:" in done.stdout, name
    assert "ok: all" in done.stdout


@pytest.mark.parametrize("name", [*fmt.FILES, "manifest.json", "manifest.sig"])
def test_one_changed_byte_in_any_file_fails_naming_it(demo, name):
    contents = members(demo["bundle"])
    data = bytearray(contents[name])
    # A byte in the middle of the file (in the rows, past the header), changed to another.
    at = len(data) // 2 if name.endswith(".csv") else len(data) - 2
    data[at] = ord("7") if data[at] != ord("7") else ord("3")
    contents[name] = bytes(data)
    checks = fmt.check_bundle(rezip(contents), demo["pem"])
    bad = [c for c in checks if not c.ok]
    assert bad and any(name in c.name or name in c.detail for c in bad), \
        [c.line() for c in bad]


def _resign(contents, key=None, **changes):
    """Apply changes (file name -> new bytes), update the manifest's hashes and row counts, and
    sign it again with key (or leave the old signature when key is None)."""
    contents = dict(contents, **{k.replace("__", "."): v for k, v in changes.items()})
    manifest = json.loads(contents["manifest.json"])
    for entry in manifest["files"]:
        data = contents[entry["name"]]
        entry.update(sha256=fmt.sha256_hex(data), bytes=len(data), rows=len(fmt.read_csv(data)))
    contents["manifest.json"] = fmt.manifest_bytes(manifest)
    if key is not None:
        contents["manifest.sig"] = key.sign(contents["manifest.json"])
    return contents


def _edit_csv(data: bytes, column: str, change) -> bytes:
    rows = fmt.read_csv(data)
    rows[0][column] = change(rows[0][column])
    return fmt.csv_bytes(list(rows[0]), [list(r.values()) for r in rows])


def _drop_row(data: bytes, index: int) -> bytes:
    rows = fmt.read_csv(data)
    del rows[index]
    return fmt.csv_bytes(list(rows[0]), [list(r.values()) for r in rows])


def _bank_key(demo):
    return signing.load_or_create(signing.key_path_for(demo["path"]))


def _move_a_posting_keeping_the_balances(contents):
    """Posting 0 names another account (account_number is not chained, account_id is), and
    the closing balances of both accounts are changed to match: every sum still agrees."""
    postings = fmt.read_csv(contents["postings.csv"])
    moved = postings[0]
    cents = int(moved["amount_cents"])
    old_number = moved["account_number"]
    new_number = next(r["account_number"] for r in fmt.read_csv(contents["accounts.csv"])
                      if r["account_number"] != old_number)
    moved["account_number"] = new_number
    closing = fmt.read_csv(contents["closing_balances.csv"])
    numbers = {r["account_number"] for r in closing}
    if new_number not in numbers:
        closing.append({"account_id": "", "account_number": new_number, "balance_cents": "0"})
    for row in closing:
        if row["account_number"] == old_number:
            row["balance_cents"] = str(int(row["balance_cents"]) - cents)
        elif row["account_number"] == new_number:
            row["balance_cents"] = str(int(row["balance_cents"]) + cents)
    return {"postings__csv": fmt.csv_bytes(list(postings[0]), [list(r.values()) for r in postings]),
            "closing_balances__csv": fmt.csv_bytes(list(closing[0]),
                                                   [list(r.values()) for r in closing])}


def _drop_the_last_transaction_of_a_day(contents):
    """The transaction a daily head ends at, with its postings, and the closing balances
    changed to match: every sum agrees, and the chain run before it still chains."""
    heads = [h for h in fmt.read_csv(contents["chain_heads.csv"]) if h["chain"] == "ledger"]
    txs = fmt.read_csv(contents["transactions.csv"])
    exported = {t["id"] for t in txs}
    tid = next(h["last_id"] for h in reversed(heads) if h["last_id"] in exported)
    postings = fmt.read_csv(contents["postings.csv"])
    undo = {}
    for p in postings:
        if p["transaction_id"] == tid:
            undo[p["account_number"]] = undo.get(p["account_number"], 0) + int(p["amount_cents"])
    closing = fmt.read_csv(contents["closing_balances.csv"])
    for row in closing:
        row["balance_cents"] = str(int(row["balance_cents"]) - undo.get(row["account_number"], 0))

    def write(rows):
        return fmt.csv_bytes(list(rows[0]), [list(r.values()) for r in rows])
    return {"transactions__csv": write([t for t in txs if t["id"] != tid]),
            "postings__csv": write([p for p in postings if p["transaction_id"] != tid]),
            "closing_balances__csv": write(closing)}


def _drop_the_first_transaction_of_the_period(contents):
    """The period's first transaction, with its postings, the opening balances changed to
    match, and its run started at the next entry from its hash: every sum agrees, every run
    chains and every head of the period still ends at an exported entry."""
    txs = fmt.read_csv(contents["transactions.csv"])
    first = txs[0]
    postings = fmt.read_csv(contents["postings.csv"])
    moved = {}
    for p in postings:
        if p["transaction_id"] == first["id"]:
            moved[p["account_number"]] = moved.get(p["account_number"], 0) + int(p["amount_cents"])
    opening = fmt.read_csv(contents["opening_balances.csv"])
    for row in opening:
        row["balance_cents"] = str(int(row["balance_cents"]) + moved.get(row["account_number"], 0))
    segments = fmt.read_csv(contents["chain_segments.csv"])
    run = next(r for r in segments if r["chain"] == "ledger" and r["first_id"] == first["id"])
    run["first_id"], run["prev_hash"] = txs[1]["id"], first["chain_hash"]

    def write(rows):
        return fmt.csv_bytes(list(rows[0]), [list(r.values()) for r in rows])
    return {"transactions__csv": write(txs[1:]),
            "postings__csv": write([p for p in postings if p["transaction_id"] != first["id"]]),
            "opening_balances__csv": write(opening), "chain_segments__csv": write(segments)}


def _edit_channels(contents, change, which):
    """Change the channel of the first transaction for which which(channel) holds."""
    rows = fmt.read_csv(contents["transactions.csv"])
    row = next(r for r in rows if which(r["channel"]))
    row["channel"] = change(row["channel"])
    return {"transactions__csv": fmt.csv_bytes(list(rows[0]), [list(r.values()) for r in rows])}


CASES = [
    # (case, how the bundle is changed, the checks that must fail)
    ("untouched", lambda d, c: c, set()),
    ("manifest re-hashed, not re-signed", lambda d, c: _resign(
        c, postings__csv=_edit_csv(c["postings.csv"], "amount_cents", lambda v: str(int(v) + 1))),
     {"signature", "transactions sum to zero", "closing = opening + postings", "chain"}),
    # Edits that keep every sum: only the hash chain sees them.
    ("a memo changed, signed with the bank's key", lambda d, c: _resign(
        c, _bank_key(d), transactions__csv=_edit_csv(c["transactions.csv"], "memo",
                                                     lambda v: v + " (edited)")), {"chain"}),
    ("an audit row deleted, signed", lambda d, c: _resign(
        c, _bank_key(d), audit_log__csv=_drop_row(c["audit_log.csv"], 1)), {"chain"}),
    ("a daily head changed, signed", lambda d, c: _resign(
        c, _bank_key(d), chain_heads__csv=_edit_csv(c["chain_heads.csv"], "head_hash",
                                                    lambda v: "0" * 64)), {"chain"}),
    ("a closing balance changed and signed with the bank's key", lambda d, c: _resign(
        c, _bank_key(d), closing_balances__csv=_edit_csv(
            c["closing_balances.csv"], "balance_cents", lambda v: str(int(v) - 100))),
     {"closing = opening + postings", "trial balance"}),
    ("a posting moved to another account, signed", lambda d, c: _resign(
        c, _bank_key(d), postings__csv=_edit_csv(
            c["postings.csv"], "account_number", lambda v: "GL4100" if v != "GL4100"
            else "GL1000")), {"closing = opening + postings", "postings name their accounts"}),
    ("a file left out of the zip", lambda d, c: {k: v for k, v in c.items()
                                                 if k != "loan_events.csv"},
     {"file loan_events.csv"}),
    ("a file added to the zip", lambda d, c: {**c, "extra.csv": b"a\n1\n"}, {"manifest"}),
    # Review of issue 15.
    ("a posting moved to another account with the balances to match, signed",
     lambda d, c: _resign(c, _bank_key(d), **_move_a_posting_keeping_the_balances(c)),
     {"postings name their accounts"}),
    ("the transaction a daily head ends at removed, balances to match, signed",
     lambda d, c: _resign(c, _bank_key(d), **_drop_the_last_transaction_of_a_day(c)),
     {"chain"}),
    # Issue 13: the channel is chained when it holds a value, and an entry without one (as
    # every entry before channels) cannot be given one.
    ("a card payment made a salary credit, signed", lambda d, c: _resign(
        c, _bank_key(d), **_edit_channels(c, lambda v: "salary" if v != "salary" else "card",
                                          lambda v: v != "")), {"chain"}),
    ("an entry without a channel given one, signed", lambda d, c: _resign(
        c, _bank_key(d), **_edit_channels(c, lambda v: "card", lambda v: v == "")), {"chain"}),
    ("a channel removed, signed", lambda d, c: _resign(
        c, _bank_key(d), **_edit_channels(c, lambda v: "", lambda v: v != "")), {"chain"}),
    ("a truncated signature", lambda d, c: {**c, "manifest.sig": c["manifest.sig"][:-1]},
     {"signature"}),
    ("an empty signature", lambda d, c: {**c, "manifest.sig": b""}, {"signature"}),
    ("a zip-slip name added", lambda d, c: {**c, "../../evil.csv": b"a\n1\n"}, {"manifest"}),
]


@pytest.mark.parametrize("case, change, expected", CASES, ids=[c[0] for c in CASES])
def test_check_export_cases(demo, case, change, expected):
    contents = change(demo, members(demo["bundle"]))
    assert failed(fmt.check_bundle(rezip(contents), demo["pem"])) == expected


@pytest.mark.parametrize("value", [
    None, "", "text, with \"quotes\"\nand a line", "=1+1", 0, -12345, 2**62, True, False,
    dt.date(2026, 3, 31), dt.datetime(2026, 3, 31, 17, 5, 9), dt.datetime(2026, 3, 31, 17, 5, 9, 120),
    Decimal("7.9000"),
])
def test_a_field_is_exactly_the_chain_text_of_its_value(value):
    from bankms.domain import chain
    from bankms.reporting.export import cell

    assert cell(value) == chain.text(value)


def test_a_wrong_public_key_fails_the_signature_only(demo):
    other = signing.public_pem(Ed25519PrivateKey.generate())
    assert failed(fmt.check_bundle(demo["bundle"], other)) == {"signature"}


@pytest.mark.parametrize("argv_tail, code, output", [
    # (arguments after check-export, exit status, words printed)
    (["{bundle}", "--public-key", "{key}"], 0, "ok: all"),
    (["{bundle}"], 2, "--public-key"),
    (["{bundle}", "--public-key", "{missing}"], 2, "Cannot read the public key"),
    (["{missing}", "--public-key", "{key}"], 2, "Cannot read the export"),
    (["{bundle}", "--public-key", "{bundle}"], 2, "not a PEM public key"),
    (["{key}", "--public-key", "{key}"], 1, "not a zip file"),
])
def test_check_export_command_line(demo, tmp_path, capsys, argv_tail, code, output):
    places = {"bundle": tmp_path / "b.zip", "key": tmp_path / "k.pem",
              "missing": tmp_path / "nothing-here"}
    places["bundle"].write_bytes(demo["bundle"])
    places["key"].write_bytes(demo["pem"])
    argv = ["check-export", *(a.format(**places) for a in argv_tail)]
    assert cli.main(argv) == code
    captured = capsys.readouterr()
    assert output in captured.out + captured.err


@pytest.mark.parametrize("from_days, to_days, words", [
    # (period start and end as days after the last closed day, the refusal's words)
    (0, -1, "starts on"),
    (-5, 1, "last closed business day"),
    (1, 1, "last closed business day"),
    ("2026-02-30", 0, "must look like"),
    (None, 0, "first and the last day"),
])
def test_bad_periods_are_refused_and_audited(demo, from_days, to_days, words):
    bank, day = demo["bank"], demo["day"]

    def date(days):
        return day + dt.timedelta(days=days) if isinstance(days, int) else days
    before = bank.read_one("SELECT count(*) FROM audit_log WHERE action = "
                           "'export.auditor_bundle' AND outcome = 'refused'")[0]
    with pytest.raises(InvalidInput, match=words):
        bank.export.auditor_bundle(demo["manager"], from_date=date(from_days),
                                   to_date=date(to_days))
    assert bank.read_one("SELECT count(*) FROM audit_log WHERE action = "
                         "'export.auditor_bundle' AND outcome = 'refused'")[0] == before + 1


@pytest.mark.parametrize("role, allowed", [("teller", False), ("customer", False),
                                           ("manager", True)])
def test_only_managers_take_the_export(demo, role, allowed):
    from conftest import login_for, make_customer

    bank, day = demo["bank"], demo["day"]
    if role == "customer":
        cid = make_customer(bank)
        actor = login_for(bank, cid, f"exp{cid}")
    else:
        actor = employee(bank, role)

    def take():
        return bank.export.auditor_bundle(actor, from_date=day, to_date=day)
    if allowed:
        assert failed(fmt.check_bundle(take(), demo["pem"])) == set()
    else:
        with pytest.raises(PermissionDenied):
            take()


def test_the_signing_key_is_private_and_its_public_key_printed(demo, capsys, monkeypatch):
    path = signing.key_path_for(demo["path"])
    assert os.path.dirname(path) == str(demo["folder"])
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with open(path, "rb") as handle:
        assert b"PRIVATE KEY" in handle.read()
    monkeypatch.delenv("BANKMS_SIGNING_KEY_FILE", raising=False)
    assert cli.main(["public-key", "--db", demo["path"]]) == 0
    assert capsys.readouterr().out.encode() == demo["pem"]
    serialization.load_pem_public_key(demo["pem"])


def test_a_key_file_open_to_others_or_not_a_key_is_refused(tmp_path):
    path = tmp_path / "signing.key"
    first = signing.public_pem(signing.load_or_create(str(path)))
    assert signing.public_pem(signing.load_or_create(str(path))) == first  # never remade
    os.chmod(path, 0o644)
    with pytest.raises(WeakSigningKey, match="chmod 600"):
        signing.load_or_create(str(path))
    os.chmod(path, 0o600)
    path.write_bytes(b"not a key\n")
    with pytest.raises(WeakSigningKey, match="no private key"):
        signing.load_or_create(str(path))


def test_public_key_makes_no_key_for_a_path_without_a_bank(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("BANKMS_SIGNING_KEY_FILE", raising=False)
    assert cli.main(["public-key", "--db", str(tmp_path / "nothing.duckdb")]) == 2
    assert not (tmp_path / "signing.key").exists()
    assert "There is no bank" in capsys.readouterr().err


def test_the_auditor_export_page(demo):
    from apptest_util import open_app

    bank = demo["bank"]
    at = open_app(bank, employee(bank, "manager"), "auditor-export")
    assert not at.exception
    # As plain text (no syntax highlighter, no Markdown).
    assert demo["pem"].decode().strip() in [t.value.strip() for t in at.text]
    assert not at.code
    at.date_input(key="export_from").set_value(demo["day"] - dt.timedelta(days=10))
    at.button(key="FormSubmitter:export_form-Build the export").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    name, bundle = at.session_state["_auditor_export"]
    assert name == f"auditor-export-{demo['day'] - dt.timedelta(days=10)}-{demo['day']}.zip"
    assert failed(fmt.check_bundle(bundle, demo["pem"])) == set()
    # A period that runs backwards is refused on the page, without a traceback.
    at.date_input(key="export_to").set_value(demo["day"] - dt.timedelta(days=20))
    at.button(key="FormSubmitter:export_form-Build the export").click().run()
    assert any("starts on" in e.value for e in at.error)


def test_a_second_member_of_the_same_name_fails(demo):
    # A zip may hold two members of one name; tools differ on which they show, so the checker
    # must not pick one quietly.
    contents = members(demo["bundle"])
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in contents.items():
            zf.writestr(name, data)
        with pytest.warns(UserWarning):
            zf.writestr("transactions.csv", b"id\n1\n")
    assert failed(fmt.check_bundle(buffer.getvalue(), demo["pem"])) == {"bundle"}


@pytest.mark.parametrize("limit, expected", [
    ("MAX_UNZIPPED_BYTES", {"bundle"}),
    ("MAX_MEMBERS", {"bundle"}),
])
def test_a_bundle_beyond_the_limits_is_refused_unread(demo, monkeypatch, limit, expected):
    # A zip bomb: 64 MiB of zeros that deflate to a few kB; the checker must refuse it from the
    # sizes in the zip's directory, before inflating it.
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members(demo["bundle"]).items():
            zf.writestr(name, data)
        zf.writestr("padding.csv", bytes(64 << 20))
    monkeypatch.setattr(fmt, limit, {"MAX_UNZIPPED_BYTES": 32 << 20, "MAX_MEMBERS": 5}[limit])
    checks = fmt.check_bundle(bomb.getvalue(), demo["pem"])
    assert failed(checks) == expected
    assert "limit" in checks[0].detail


def test_check_file_refuses_a_file_beyond_the_limit(demo, tmp_path, monkeypatch):
    path = tmp_path / "big.zip"
    path.write_bytes(demo["bundle"])
    key = tmp_path / "bank.pub"
    key.write_bytes(demo["pem"])
    monkeypatch.setattr(fmt, "MAX_BUNDLE_BYTES", len(demo["bundle"]) - 1)
    with pytest.raises(InvalidInput, match="limit"):
        fmt.check_file(str(path), str(key))


@pytest.fixture
def three_days(tmp_path, monkeypatch):
    """A bank with transfers on three closed days (heads recorded for each) and the export of
    the last two; returns (bundle, public key PEM, private key)."""
    import bankms
    monkeypatch.setenv("BANKMS_SIGNING_KEY_FILE", str(tmp_path / "signing.key"))
    bank = bankms.open_bank(str(tmp_path / "bank.duckdb"), bcrypt_rounds=4)
    bank.clock = Clock(dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=10))
    try:
        system = bank.system_actor()
        a = funded_account(bank, "100.00")
        first = bank.business_date
        for offset in range(3):
            bank.payments.withdraw(system, a, "1.00")
            bank.payments.withdraw(system, a, "2.00")
            bank.end_of_day(system, until=first + dt.timedelta(days=offset))
        bundle = bank.export.auditor_bundle(system, from_date=first + dt.timedelta(days=1),
                                            to_date=first + dt.timedelta(days=2))
        key = signing.bank_key(bank)
        return bundle, signing.public_pem(key), key
    finally:
        bank.close()


@pytest.mark.parametrize("change, expected", [
    (lambda c, key: c, set()),
    (lambda c, key: _resign(c, key, **_drop_the_first_transaction_of_the_period(c)), {"chain"}),
], ids=["untouched", "the period's first transaction removed, its run moved on, signed"])
def test_the_period_starts_on_the_head_of_the_day_before(three_days, change, expected):
    bundle, pem, key = three_days
    heads = fmt.read_csv(members(bundle)["chain_heads.csv"])
    assert len({h["business_date"] for h in heads}) == 3  # the day before the period too
    contents = change(members(bundle), key)
    assert failed(fmt.check_bundle(rezip(contents), pem)) == expected
