"""The hash chains over the ledger and the audit log: canonical content and hashes, nothing else.

Pure functions on plain values, with no database, so that an auditor's checker
(`python -m bankms check-export`) can recompute the chains from exported rows alone; the
database side (hashing at commit, heads, verify) is in chain_store.py.

Two chains, each entry hashed as sha256(previous entry's hash bytes + canonical content):

- "ledger": one entry per transaction, in transaction id order. Its content is the
  transaction's CHAIN_COLUMNS["ledger"]["transactions"] values followed by, for each of its
  postings sorted by (account_id, amount_cents, id), that posting's
  CHAIN_COLUMNS["ledger"]["postings"] values.
- "audit": one entry per audit_log row, in id order, its CHAIN_COLUMNS["audit"]["audit_log"]
  values.

Columns added to a chained table after banks were sealed (OPTIONAL_COLUMNS: transactions.channel
and .lane, audit_log.lane) come last in the row's values and are chained only up to the last
one that holds a value (`trimmed`; a lane holds one when it is not 0, a text column when it is
neither NULL nor ""), those before it as they are: an entry written before the columns existed
(NULL channel, lane 0) keeps its content and hash, and giving one a value, or changing or
removing it, changes the hash. The content stays unambiguous: with no U+001F inside a value,
the bytes give the number of values, 12, 13 or 14 + 5 per posting for a transaction (without
channel and lane, with a channel only, with a lane), and 10 or 11 for an audit row, which never
coincide.

Each lane (the writer that wrote the row: 0 for every row main writes, and for every row made
before lanes existed) is its own chain: an entry's previous hash is that of the entry before it
in the same chain and lane, in id order, and the first entry of a lane follows GENESIS.

The first entry's previous hash is GENESIS. Values become text by `text` and are joined with the
unit separator U+001F, then encoded as UTF-8 (`canonical`).

The join is unambiguous only while no chained text value holds U+001F itself: otherwise text
could move across a field boundary ("system", "k<US>x" and "system<US>k", "x" give the same
bytes) and a changed row would keep its hash. So an entry with U+001F inside a value is itself a
finding (`ambiguous`): the bank refuses the character where people type it (memos and reasons
fold it into a space, idempotency keys with control characters are refused), verify() names any
such transaction or audit row, and the offline checker fails its chain check for one. NULL and
"" give the same text; no chained column gives them different meanings (the export writes both
as an empty field). Hashes of entries without the character are unchanged by this rule, so banks
sealed before it need no rehash.
"""
from __future__ import annotations

import datetime as dt
import functools
import hashlib
from decimal import Decimal
from typing import Iterable, Sequence

GENESIS = "0" * 64
SEPARATOR = "\x1f"
CHAINS = ("ledger", "audit")

# Only columns that never change after insert: no code updates transactions, postings or
# audit_log rows (checked with grep; the one UPDATE of audit_log, in benchmarks/bench_reports.py,
# back-dates stamps in the same unit of work as the insert, before the chain is sealed).
# Cached balances live on accounts and are not chained; the ledger proves them. No text value
# of these columns may hold U+001F (see `ambiguous`).
CHAIN_COLUMNS: dict[str, dict[str, list[str]]] = {
    "ledger": {
        "transactions": ["id", "kind", "amount_cents", "memo", "source_account",
                         "target_account", "actor", "actor_role", "idempotency_key",
                         "reverses_id", "posted_at", "business_date", "channel", "lane"],
        "postings": ["id", "transaction_id", "account_id", "amount_cents", "posted_at"],
    },
    "audit": {
        "audit_log": ["id", "ts", "actor", "actor_role", "action", "entity", "entity_id",
                      "before", "after", "outcome", "lane"],
    },
}

# Trailing columns of CHAIN_COLUMNS chained only when they hold a value (see the module
# docstring): added after banks were sealed, so that older entries keep their hashes.
OPTIONAL_COLUMNS: dict[str, dict[str, list[str]]] = {
    "ledger": {"transactions": ["channel", "lane"]},
    "audit": {"audit_log": ["lane"]},
}
_TX_REQUIRED = len(CHAIN_COLUMNS["ledger"]["transactions"]) - len(
    OPTIONAL_COLUMNS["ledger"]["transactions"])
_AUDIT_REQUIRED = len(CHAIN_COLUMNS["audit"]["audit_log"]) - len(
    OPTIONAL_COLUMNS["audit"]["audit_log"])
# The lane every row of main, and every row made before lanes, belongs to.
MAIN_LANE = 0

# Positions, within CHAIN_COLUMNS["ledger"]["postings"], of the posting sort key.
_POSTING_COLUMNS = CHAIN_COLUMNS["ledger"]["postings"]
POSTING_SORT = tuple(_POSTING_COLUMNS.index(c) for c in ("account_id", "amount_cents", "id"))
_ACCOUNT, _AMOUNT, _ID = POSTING_SORT
_ID_TX = CHAIN_COLUMNS["ledger"]["transactions"].index("id")


def text(value) -> str:
    """One value as chain text: None -> "", bool -> "true"/"false", int -> decimal digits,
    Decimal -> str, date and datetime -> isoformat(), str as is. Raises TypeError for anything
    else (a float would make the content depend on its rounding)."""
    convert = _TEXT.get(type(value))
    if convert is not None:
        return convert(value)
    # Subclasses (numpy integers are not ints; IntEnum, str subclasses are) take the long way.
    if isinstance(value, str):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    raise TypeError(f"no chain text for {type(value).__name__} {value!r}")


# The exact types met on the hot path (the posting batch hashes every row it appends).
_TEXT = {
    str: lambda v: v,
    int: int.__repr__,
    type(None): lambda v: "",
    bool: lambda v: "true" if v else "false",
    Decimal: str,
    # A posting batch stamps all its rows with one instant and one business date: remember
    # the last few texts (date.isoformat costs several times a cache look-up).
    dt.datetime: functools.lru_cache(maxsize=16)(dt.datetime.isoformat),
    dt.date: functools.lru_cache(maxsize=16)(dt.date.isoformat),
}


def canonical(values: Sequence) -> bytes:
    """The content bytes of one entry: text(v) joined by U+001F, UTF-8."""
    return SEPARATOR.join([v if type(v) is str else text(v) for v in values]).encode("utf-8")


def ambiguous(values: Sequence) -> bool:
    """True when a text value holds the separator U+001F, so that the content bytes no longer
    tell where one value ends (see the module docstring)."""
    return any(isinstance(v, str) and SEPARATOR in v for v in values)


_CONTROL = {code: "\ufffd" for code in (*range(32), 127)}


def plain(value):
    """Text for a chained column from text anyone may type (a username at sign-in, an id in an
    audit row): control characters, U+001F among them, become U+FFFD, so the entry is never
    `ambiguous`. Other values are returned as they are."""
    return value.translate(_CONTROL) if isinstance(value, str) else value


def _empty(value) -> bool:
    # An optional value that is not chained: NULL, "" (a channel) or the integer 0 (a lane;
    # the offline checker reads an exported lane as an integer). Text "0" is a value.
    return value is None or value == "" or (not isinstance(value, str) and value == 0)


def trimmed(values: Sequence, required: int) -> Sequence:
    """values without its trailing run of optional values (those after the first `required`)
    that hold nothing (`_empty`); an optional value before one that holds something stays."""
    end = len(values)
    while end > required and _empty(values[end - 1]):
        end -= 1
    return values if end == len(values) else values[:end]


def transaction_values(transaction: Sequence) -> Sequence:
    """A transaction's values (CHAIN_COLUMNS order) as chained: the optional trailing values
    (channel, lane) only up to the last one that holds a value (a row without them is
    returned as is)."""
    return trimmed(transaction, _TX_REQUIRED)


def audit_values(row: Sequence) -> Sequence:
    """An audit row's values (CHAIN_COLUMNS order) as chained: its lane only when not 0."""
    return trimmed(row, _AUDIT_REQUIRED)


def audit_content(row: Sequence) -> bytes:
    """Content of one audit entry: canonical(audit_values(row))."""
    return canonical(audit_values(row))


def ledger_content(transaction: Sequence, postings: Iterable[Sequence]) -> bytes:
    """Content of one ledger entry: the transaction's chained values (its optional ones only
    when they hold a value), then each posting's (values in CHAIN_COLUMNS order), postings
    sorted by (account_id, amount_cents, id)."""
    values = list(transaction_values(transaction))
    for posting in sorted(postings, key=_posting_key):
        values.extend(posting)
    return canonical(values)


def _posting_key(posting):
    return (posting[_ACCOUNT], posting[_AMOUNT], posting[_ID])


def entry_hash(prev_hex: str, content: bytes) -> str:
    """sha256(bytes.fromhex(prev_hex) + content), as 64 lower-case hex digits."""
    return hashlib.sha256(bytes.fromhex(prev_hex) + content).hexdigest()


def chain_hashes(prev_hex: str, contents: Iterable[bytes]) -> list[str]:
    """entry_hash along a run of entries: the hash of each content chained on the one before
    it, the first on prev_hex. The same hashes as calling entry_hash in a loop; the previous
    hash is carried as bytes, so no hex is parsed again per entry (the posting batch)."""
    sha256 = hashlib.sha256
    previous = bytes.fromhex(prev_hex)
    out = []
    for content in contents:
        previous = sha256(previous + content).digest()
        out.append(previous.hex())
    return out


def _texts(values, _int_text=int.__repr__) -> list[str]:
    # `text` with its three commonest cases inline: exactly str, exactly int (not bool), None.
    return [v if type(v) is str else _int_text(v) if type(v) is int else "" if v is None
            else text(v) for v in values]


def canonicals(rows: Iterable[Sequence]) -> list[bytes]:
    """canonical(row) for each row (the same bytes), for a batch of rows."""
    return [SEPARATOR.join(_texts(row)).encode("utf-8") for row in rows]


def audit_contents(rows: Iterable[Sequence]) -> list[bytes]:
    """audit_content(row) for each audit row (the same bytes), for a batch of rows."""
    return [SEPARATOR.join(_texts(trimmed(row, _AUDIT_REQUIRED))).encode("utf-8")
            for row in rows]


def ledger_contents(transactions: Iterable[Sequence], postings: dict) -> list[bytes]:
    """ledger_content(transaction, postings[transaction id]) for each transaction (the same
    bytes), for a batch: a transaction's two postings, the common case, are put in order by
    one comparison instead of a sort."""
    out = []
    for row in transactions:
        mine = postings.get(row[_ID_TX], ())
        row = transaction_values(row)
        if len(mine) == 2:
            a, b = mine
            if _posting_key(a) > _posting_key(b):
                a, b = b, a
            values = (*row, *a, *b)
        else:
            values = list(row)
            for posting in sorted(mine, key=_posting_key):
                values.extend(posting)
        out.append(SEPARATOR.join(_texts(values)).encode("utf-8"))
    return out


def verify_rows(chain_name: str, entries: Iterable[tuple], prev_hex: str = GENESIS):
    """Walk one chain: entries are (id, content bytes, stored hash hex) in chain order.

    Returns (last_hex, first_bad_id): the hash recomputed over all entries, and the id of the
    first entry whose stored hash differs from the recomputed one (None when all agree). The
    walk goes on with the recomputed hash, so last_hex is what the true chain's head would be.
    """
    if chain_name not in CHAINS:
        raise ValueError(f"unknown chain {chain_name!r}; expected one of {CHAINS}")
    first_bad = None
    head = prev_hex
    for entry_id, content, stored in entries:
        head = entry_hash(head, content)
        if first_bad is None and stored != head:
            first_bad = entry_id
    return head, first_bad
