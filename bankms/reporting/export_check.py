"""The auditor's export format, and its offline check (`python -m bankms check-export`).

This module owns what a bundle looks like, so that the bank that writes it (export.py) and the
auditor who checks it read one description. It opens no bank and needs no database: the check
works from the zip and the bank's public key alone.

A bundle is a zip of:
- CSV files (FILES below), UTF-8 without a byte-order mark, in the `bankms-audit` dialect: comma
  separated, `"` quotes only where a field needs it (a comma, quote or line break inside),
  quotes doubled, `\\n` line ends, one header row. An empty field is a NULL. Money is integer
  cents (`*_cents`), dates ISO 8601, timestamps UTC "YYYY-MM-DD HH:MM:SS[.ffffff]".
  The files are for machines, so no cell is "defused" against spreadsheet formulas (as the
  bank's other CSVs are, text.py): defusedcsv puts an apostrophe before text such as "-fee" or
  "=1", which would change the bytes that are hashed, signed and chained, so a memo in the
  bundle would no longer be the memo in the ledger, and the hash chain could not be recomputed
  from the exported columns. An auditor who opens a file in a spreadsheet should import it as
  text.
- manifest.json: format and format_version, bank name, period (from, to: business dates, both
  included), created_at (UTC), created_by, the CSV dialect, and for each file its name, SHA-256
  (hex) of its bytes, size and row count (without the header).
- manifest.sig: the Ed25519 signature (64 raw bytes, RFC 8032) of manifest.json's bytes, with
  the bank's signing key (signing.py).

The check verifies the signature, every file's hash and row count, that every transaction's
postings sum to zero, that every posting and balance names the account of its account id, that each account's closing balance equals its opening balance plus the
postings of the period, that the trial balance (sum of closing balances) is zero, and the hash
chains of the period (chain.py): every exported transaction (with its postings) and audit row
is hashed again from its exported columns, each run of entries from the hash of the entry
before it, and every stored hash and daily head of the period must agree; an entry whose text
holds U+001F, the chain's separator, fails it (chain.ambiguous). A zip with two members of one
name, or beyond the limits below (MAX_*), is refused before anything is inflated.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import zipfile
from dataclasses import dataclass

from ..domain import chain
from ..services import signing

FORMAT = "bankms-auditor-export"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
DIALECT = "bankms-audit"


# Limits of what the checker reads, so that a hostile file (a zip bomb, a zip of many tiny
# members) cannot exhaust the auditor's memory: the sizes are taken from the zip's directory
# and enforced again while inflating. A bundle of a large bank's year stays well below them
# (the demo bank's quarter is under 2 MiB); raise them here for a larger one.
MAX_BUNDLE_BYTES = 512 << 20
MAX_UNZIPPED_BYTES = 2 << 30
MAX_MEMBERS = 64


class AuditDialect(csv.Dialect):
    """The bundle's CSV dialect (see the module docstring)."""

    delimiter = ","
    quotechar = '"'
    doublequote = True
    escapechar = None
    lineterminator = "\n"
    quoting = csv.QUOTE_MINIMAL
    skipinitialspace = False
    strict = True


csv.register_dialect(DIALECT, AuditDialect)

DIALECT_DESCRIPTION = {
    "name": DIALECT, "encoding": "utf-8", "delimiter": ",", "quotechar": '"',
    "doublequote": True, "lineterminator": "\\n", "quoting": "minimal", "header": True,
    "null": "empty field",
}

# name -> columns, in the order written.
FILES = {
    "accounts.csv": ("id", "account_number", "customer_id", "kind", "name", "status",
                     "opened_date", "closed_date"),
    "transactions.csv": ("id", "kind", "amount_cents", "memo", "source_account",
                         "target_account", "actor", "actor_role", "idempotency_key",
                         "reverses_id", "posted_at", "business_date", "chain_hash",
                         "channel", "lane"),
    "postings.csv": ("id", "transaction_id", "account_id", "account_number", "amount_cents",
                     "posted_at"),
    "opening_balances.csv": ("account_id", "account_number", "balance_cents"),
    "closing_balances.csv": ("account_id", "account_number", "balance_cents"),
    "loan_events.csv": ("loan_id", "value_date", "transaction_id", "event", "amount_cents",
                        "fee_cents", "interest_cents", "principal_cents", "prepayment_cents",
                        "actor"),
    "audit_log.csv": ("id", "ts", "actor", "actor_role", "action", "entity", "entity_id",
                      "before", "after", "outcome", "chain_hash", "lane"),
    # The heads end of day recorded for the days of the period (chain_store.py), and those of
    # the last day closed before it, on which the period's first entry of each chain and lane
    # follows.
    "chain_heads.csv": ("business_date", "chain", "lane", "last_id", "head_hash"),
    # Each run of exported entries that follow one another in the chain of their lane, and the
    # hash of the entry before the run, from which the checker recomputes it
    # (export._segments).
    "chain_segments.csv": ("chain", "lane", "first_id", "last_id", "prev_hash"),
}


def csv_bytes(columns, rows) -> bytes:
    """One CSV file of the bundle: header and rows (already text) in the bundle's dialect."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, dialect=DIALECT)
    writer.writerow(columns)
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


def read_csv(data: bytes) -> list[dict]:
    """The rows of one bundle CSV as dicts of text (header row as keys)."""
    return list(csv.DictReader(io.StringIO(data.decode("utf-8"), newline=""), dialect=DIALECT))


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def manifest_bytes(manifest: dict) -> bytes:
    """manifest.json as written and signed: sorted keys, two-space indent, UTF-8."""
    return (json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


@dataclass(frozen=True)
class Check:
    """One line of the check's report: what was checked, whether it held, and the detail."""

    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'}  {self.name}: {self.detail}"


class BundleUnreadable(Exception):
    """The file is no bundle at all (not a zip, or no manifest): nothing else can be checked."""


def check_bundle(bundle: bytes, public_key_pem: bytes) -> list[Check]:
    """Every check of one bundle, in order; the bundle passes when every Check is ok.

    bundle: the zip's bytes; public_key_pem: the bank's public key (PEM SubjectPublicKeyInfo).
    Raises InvalidInput (a BankError) for a key that is not an Ed25519 public key; a bundle
    that is no zip or has no manifest gives one failed check."""
    public_key = signing.load_public(public_key_pem)
    try:
        contents = _unzip(bundle)
    except BundleUnreadable as exc:
        return [Check("bundle", False, str(exc))]
    checks = [_signature(contents, public_key)]
    try:
        manifest = json.loads(contents[MANIFEST].decode("utf-8"))
        listed = {f["name"]: f for f in manifest["files"]}
    except (ValueError, KeyError, TypeError):
        return checks + [Check("manifest", False, "manifest.json is not a bankms manifest")]
    checks.append(_manifest(manifest, contents, listed))
    tables = {}
    for name in set(FILES) | {n for n in listed if n.endswith(".csv")}:
        try:
            tables[name] = read_csv(contents[name])
        except (KeyError, UnicodeDecodeError, csv.Error) as exc:
            tables[name] = None if isinstance(exc, KeyError) else exc
    for name, entry in listed.items():
        checks.append(_file(name, entry, contents.get(name), tables.get(name)))
    tables = {name: rows if isinstance(rows, list) else None for name, rows in tables.items()}
    try:
        checks += _ledger(tables)
    except (KeyError, ValueError, TypeError) as exc:
        checks.append(Check("ledger", False, f"the CSV files cannot be read as the ledger "
                                             f"({type(exc).__name__}: {exc})"))
    try:
        checks.append(_chain(tables, str(manifest.get("period", {}).get("from", ""))))
    except (KeyError, ValueError, TypeError) as exc:
        checks.append(Check("chain", False, f"the chain columns cannot be read "
                                            f"({type(exc).__name__}: {exc})"))
    return checks


def _unzip(bundle: bytes) -> dict[str, bytes]:
    """The members by name. Nothing is written to disk, so a name such as "../x" only
    counts as a file the manifest does not list. Refused: a name held twice (zip tools differ
    on which member they show), more than MAX_MEMBERS members, more than MAX_UNZIPPED_BYTES
    inflated."""
    try:
        with zipfile.ZipFile(io.BytesIO(bundle)) as zf:
            infos = zf.infolist()
            if len(infos) > MAX_MEMBERS:
                raise BundleUnreadable(f"{len(infos)} members, above the limit of "
                                       f"{MAX_MEMBERS}")
            names = [info.filename for info in infos]
            twice = sorted({n for n in names if names.count(n) > 1})
            if twice:
                raise BundleUnreadable(f"the zip holds more than one member named "
                                       f"{', '.join(twice)}")
            declared = sum(info.file_size for info in infos)
            if declared > MAX_UNZIPPED_BYTES:
                raise BundleUnreadable(f"{declared} bytes inflated, above the limit of "
                                       f"{MAX_UNZIPPED_BYTES}")
            contents, total = {}, 0
            for info in infos:
                # zipfile stops at the declared size and checks the CRC; read one byte more
                # than the room left all the same, should a member inflate beyond it.
                with zf.open(info) as member:
                    data = member.read(MAX_UNZIPPED_BYTES - total + 1)
                total += len(data)
                if total > MAX_UNZIPPED_BYTES:
                    raise BundleUnreadable(f"more than {MAX_UNZIPPED_BYTES} bytes inflated, "
                                           "above the limit")
                contents[info.filename] = data
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as exc:
        raise BundleUnreadable(f"not a zip file ({exc})") from None
    for name in (MANIFEST, SIGNATURE):
        if name not in contents:
            raise BundleUnreadable(f"{name} is missing")
    return contents


def _signature(contents, public_key) -> Check:
    if signing.verifies(public_key, contents[SIGNATURE], contents[MANIFEST]):
        return Check("signature", True, "manifest.sig is the bank's Ed25519 signature of "
                                        "manifest.json")
    return Check("signature", False, "manifest.sig does not verify with this public key: "
                                     "manifest.json was changed or signed by another key")


def _manifest(manifest, contents, listed) -> Check:
    if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
        return Check("manifest", False, f"format {manifest.get('format')!r} version "
                                        f"{manifest.get('format_version')!r} is not "
                                        f"{FORMAT} version {FORMAT_VERSION}")
    unlisted = sorted(set(contents) - set(listed) - {MANIFEST, SIGNATURE})
    if unlisted:
        return Check("manifest", False, f"files not in the manifest: {', '.join(unlisted)}")
    missing = sorted(set(FILES) - set(listed))
    if missing:
        return Check("manifest", False, f"the manifest lists no {', '.join(missing)}")
    period = manifest.get("period", {})
    return Check("manifest", True, f"{manifest.get('bank_name')}, {period.get('from')} to "
                                   f"{period.get('to')}, {len(listed)} files")


def _file(name, entry, data, rows) -> Check:
    """rows: the file's parsed rows, or the error that stopped its parsing (None if no CSV)."""
    label = f"file {name}"
    if data is None:
        return Check(label, False, "listed in the manifest but missing from the zip")
    digest = sha256_hex(data)
    if digest != entry.get("sha256"):
        return Check(label, False, f"SHA-256 {digest} differs from the manifest's "
                                   f"{entry.get('sha256')}: the file was changed")
    if isinstance(rows, Exception):
        return Check(label, False, f"not a CSV file of the bundle's dialect ({rows})")
    count = None if rows is None else len(rows)
    if count is not None and count != entry.get("rows"):
        return Check(label, False, f"{count} rows, the manifest says {entry.get('rows')}")
    return Check(label, True, f"SHA-256 matches, {count} rows")


def _ledger(tables) -> list[Check]:
    """Transactions sum to zero, balances roll forward, the trial balance is zero: from the
    postings alone, in integer cents."""
    missing = [name for name in ("transactions.csv", "postings.csv", "opening_balances.csv",
                                 "closing_balances.csv", "accounts.csv") if tables[name] is None]
    if missing:
        return [Check("ledger", False, f"cannot read {', '.join(missing)}")]
    accounts = {row["account_number"] for row in tables["accounts.csv"]}
    sums = {row["id"]: 0 for row in tables["transactions.csv"]}
    legs = dict.fromkeys(sums, 0)
    moved: dict[str, int] = {}
    strays = []
    for row in tables["postings.csv"]:
        cents = int(row["amount_cents"])
        if row["transaction_id"] not in sums:
            strays.append(f"posting {row['id']} belongs to no exported transaction")
            continue
        sums[row["transaction_id"]] += cents
        legs[row["transaction_id"]] += 1
        moved[row["account_number"]] = moved.get(row["account_number"], 0) + cents
    unbalanced = [f"transaction {tid} sums to {total} cents" for tid, total in sums.items()
                  if total]
    unbalanced += [f"transaction {tid} has no postings" for tid, n in legs.items() if not n]
    problems = strays + unbalanced
    checks = [Check("transactions sum to zero", not problems,
                    f"{len(sums)} transactions, {sum(legs.values())} postings"
                    if not problems else "; ".join(problems[:5])
                    + (f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""))]

    checks.append(_accounts_named(tables))
    opening = {row["account_number"]: int(row["balance_cents"])
               for row in tables["opening_balances.csv"]}
    closing = {row["account_number"]: int(row["balance_cents"])
               for row in tables["closing_balances.csv"]}
    wrong = []
    for number in sorted(set(opening) | set(closing) | set(moved)):
        if number not in accounts:
            wrong.append(f"account {number} is not in the chart of accounts")
            continue
        expected = opening.get(number, 0) + moved.get(number, 0)
        if closing.get(number) != expected:
            wrong.append(f"account {number} closes at {closing.get(number)} cents, opening "
                         f"{opening.get(number, 0)} + postings {moved.get(number, 0)} = "
                         f"{expected}")
    checks.append(Check("closing = opening + postings", not wrong,
                        f"{len(closing)} accounts recomputed" if not wrong
                        else "; ".join(wrong[:5])
                        + (f" (and {len(wrong) - 5} more)" if len(wrong) > 5 else "")))
    trial_open, trial_close = sum(opening.values()), sum(closing.values())
    checks.append(Check("trial balance", trial_open == 0 and trial_close == 0,
                        f"closing balances sum to {trial_close} cents, opening balances to "
                        f"{trial_open} cents"))
    return checks


def _accounts_named(tables) -> Check:
    """Every posting and balance row names the account of its account id in accounts.csv.
    The chain covers a posting's account_id, not the account_number beside it, on which the
    balances are recomputed: without this check a posting could be moved to another account
    number, with the balances changed to match, and every other check would still hold."""
    numbers = {row["id"]: row["account_number"] for row in tables["accounts.csv"]}
    wrong = []
    for name, key in (("postings.csv", "id"), ("opening_balances.csv", "account_id"),
                      ("closing_balances.csv", "account_id")):
        for row in tables[name]:
            if numbers.get(row["account_id"]) != row["account_number"]:
                label = (f"posting {row['id']}" if name == "postings.csv"
                         else f"{name} row of account {row['account_number']}")
                wrong.append(f"{label} names account {row['account_number']} but its account id "
                             f"{row['account_id']} is account {numbers.get(row['account_id'])}")
    return Check("postings name their accounts", not wrong,
                 "every posting and balance names the account of its id" if not wrong
                 else "; ".join(wrong[:5])
                 + (f" (and {len(wrong) - 5} more)" if len(wrong) > 5 else ""))


def _lane(row) -> int:
    """A row's lane; a bundle written before lanes has no lane column: lane 0."""
    return int(row.get("lane") or chain.MAIN_LANE)


def _chain(tables, period_from: str = "") -> Check:
    """Recompute both hash chains of the period (chain.py) from the exported columns, run by
    run from the hash before each run, each lane on its own, and compare the stored hashes
    and the daily heads."""
    if tables["chain_segments.csv"] is None or tables["chain_heads.csv"] is None:
        return Check("chain", False, "not present in this export")
    postings: dict[str, list] = {}
    for row in tables["postings.csv"] or []:
        postings.setdefault(row["transaction_id"], []).append(
            [_chained(row, column) for column in chain.CHAIN_COLUMNS["ledger"]["postings"]])
    # name -> {id: (lane, content, stored hash)}
    entries = {"ledger": {}, "audit": {}}
    for row in tables["transactions.csv"] or []:
        # A bundle written before channels or lanes has no such column: chained as empty.
        lane = _lane(row)
        values = [lane if c == "lane" else row.get(c)
                  for c in chain.CHAIN_COLUMNS["ledger"]["transactions"]]
        entries["ledger"][int(row["id"])] = (
            lane, chain.ledger_content(values, postings.get(row["id"], [])), row["chain_hash"])
    for row in tables["audit_log.csv"] or []:
        lane = _lane(row)
        values = [lane if c == "lane" else row[c]
                  for c in chain.CHAIN_COLUMNS["audit"]["audit_log"]]
        entries["audit"][int(row["id"])] = (lane, chain.audit_content(values), row["chain_hash"])
    problems, covered = [], {"ledger": set(), "audit": set()}
    for row in tables["transactions.csv"] or []:
        if chain.ambiguous(row.values()):
            problems.append(f"ledger entry {row['id']} holds U+001F, the separator of the chain's "
                            "content, so its text may have moved between values")
    for row in tables["audit_log.csv"] or []:
        if chain.ambiguous(row.values()):
            problems.append(f"audit entry {row['id']} holds U+001F, the separator of the chain's "
                            "content, so its text may have moved between values")
    for seg in tables["chain_segments.csv"]:
        name, lane = seg["chain"], _lane(seg)
        first, last = int(seg["first_id"]), int(seg["last_id"])
        mine = entries.get(name, {})
        ids = sorted(i for i in mine if first <= i <= last and mine[i][0] == lane)
        _, bad = chain.verify_rows(name, ((i, *mine[i][1:]) for i in ids), seg["prev_hash"])
        if bad is not None:
            problems.append(f"{name} entry {bad} does not chain: it, or an entry before it, "
                            "was changed, removed or inserted")
        covered[name].update(ids)
    for name in entries:
        loose = sorted(set(entries[name]) - covered[name])
        if loose:
            problems.append(f"{len(loose)} {name} entries lie in no chain run (first {loose[0]})")
    # The heads of the day before the period anchor its start: the first run of each lane
    # after such a head must chain on it, else entries were taken from the start of the period.
    for name in entries:
        before = [h for h in tables["chain_heads.csv"]
                  if h["chain"] == name and h["business_date"] < period_from]
        for lane in sorted({_lane(h) for h in before}):
            anchor = max((h for h in before if _lane(h) == lane),
                         key=lambda h: h["business_date"])
            runs = sorted((int(r["first_id"]), r["prev_hash"])
                          for r in tables["chain_segments.csv"]
                          if r["chain"] == name and _lane(r) == lane
                          and int(r["first_id"]) > int(anchor["last_id"]))
            if runs and runs[0][1] != anchor["head_hash"]:
                problems.append(f"the period's first {name} entry {runs[0][0]} does not follow "
                                f"the head of {anchor['business_date']}, the day before the "
                                "period: entries were taken from its start")
    matched = 0
    # The covered entries of each chain and lane, gathered once: built per head, they cost
    # entries x heads (25 s for 200,000 entries and 300 heads).
    lanes_covered: dict = {}
    for name, ids in covered.items():
        for i in ids:
            lanes_covered.setdefault((name, entries[name][i][0]), set()).add(i)
    lowest = {key: min(ids) for key, ids in lanes_covered.items()}
    for head in tables["chain_heads.csv"]:
        if head["business_date"] < period_from:
            continue
        name, lane, last_id = head["chain"], _lane(head), int(head["last_id"])
        in_lane = lanes_covered.get((name, lane), set())
        if last_id not in in_lane:
            # A day of the period with no entry of its own keeps an earlier day's head, from
            # before the period. A head past the lane's first entry of the period must end at
            # an entry of the lane that is there: else that entry was taken out of the bundle.
            if in_lane and last_id > lowest[(name, lane)]:
                problems.append(f"the {name} head of {head['business_date']} ends at entry "
                                f"{last_id}, which is not in the export (removed?)")
            continue
        if entries[name][last_id][2] != head["head_hash"]:
            problems.append(f"the {name} head of {head['business_date']} is not the hash of "
                            f"entry {last_id}")
        matched += 1
    if problems:
        return Check("chain", False, "; ".join(problems[:5])
                     + (f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""))
    return Check("chain", True, f"{len(entries['ledger'])} ledger and {len(entries['audit'])} "
                                f"audit entries recomputed in "
                                f"{len(tables['chain_segments.csv'])} runs; {matched} daily "
                                "heads match")


def _chained(row, column):
    """A posting's chained value: the columns it is sorted by as integers (chain.POSTING_SORT
    sorts numbers, not text), the rest as exported text (chain.text renders both the same)."""
    return int(row[column]) if column in ("id", "transaction_id", "account_id",
                                          "amount_cents") else row[column]


def check_file(path: str, key_path: str) -> list[Check]:
    """check_bundle on files; InvalidInput (a BankError) when either cannot be read."""
    from ..domain.errors import InvalidInput

    try:
        with open(key_path, "rb") as handle:
            pem = handle.read()
    except OSError as exc:
        raise InvalidInput(f"Cannot read the public key {key_path}: {exc.strerror}.") from None
    try:
        with open(path, "rb") as handle:
            bundle = handle.read(MAX_BUNDLE_BYTES + 1)
    except OSError as exc:
        raise InvalidInput(f"Cannot read the export {path}: {exc.strerror}.") from None
    if len(bundle) > MAX_BUNDLE_BYTES:
        raise InvalidInput(f"The export {path} is larger than the limit of {MAX_BUNDLE_BYTES} "
                           "bytes (export_check.MAX_BUNDLE_BYTES).")
    return check_bundle(bundle, pem)
