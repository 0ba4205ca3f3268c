"""The hash chains in the database: sealing each unit of work, the daily heads, and checks.

transactions.chain_hash and audit_log.chain_hash hold each entry's chain hash (chain.py). They
are written in the same database transaction as the rows: the writer thread seals every unit of
work before its COMMIT (`Chains.seal`, set-based: the new rows read in id order, hashed here,
the hashes written with one UPDATE per table), and the posting batch, which has its rows in
hand, hashes them before it appends them (`Chains.hash_batch`), which saves the read and the
update on the hot path. Only the writer thread touches the heads kept in memory; they are read
again from the file at every open.

End of day records the heads of each closed day in chain_heads; managers download them and keep
them elsewhere, and `check_heads` compares such a kept copy with the chain recomputed from the
rows, so that a rewrite of the whole chain (and of chain_heads) is caught too.

Each chain is a chain per lane (chain.py): this process's writer hashes its own lane (`lane`,
always chain.MAIN_LANE in main); the checks, the heads end of day records and the kept copies
cover every lane that has rows.
"""
from __future__ import annotations

import csv
import datetime as dt
import io

import pyarrow as pa

from ..domain import chain
from ..domain.errors import InvalidInput
from ..domain.dates import utcnow
from ..domain.text import csv_rows

TX_COLUMNS = chain.CHAIN_COLUMNS["ledger"]["transactions"]
POSTING_COLUMNS = chain.CHAIN_COLUMNS["ledger"]["postings"]
AUDIT_COLUMNS = chain.CHAIN_COLUMNS["audit"]["audit_log"]
_POSTING_TX = POSTING_COLUMNS.index("transaction_id")
HEAD_FIELDS = ("business_date", "chain", "lane", "last_id", "head_hash")
# The heads CSV before lanes: read as lane 0's.
_OLD_HEAD_FIELDS = ("business_date", "chain", "last_id", "head_hash")
_TABLE = {"ledger": "transactions", "audit": "audit_log"}
_ENTRY = {"ledger": "transaction", "audit": "audit row"}


def _select(table, columns, where="", order="id"):
    return (f"SELECT {', '.join(columns)}, chain_hash FROM {table} {where} ORDER BY {order}")


class Chains:
    """The heads of both chains, owned by the writer thread, and the chain checks."""

    def __init__(self, bank):
        self._bank = bank
        # The lane this process's writer chains its rows in (the posting batch stamps it on
        # them too); the heads below are this lane's.
        self.lane = chain.MAIN_LANE
        # chain -> [last hashed id, head hash]
        self._heads = {"ledger": [0, chain.GENESIS], "audit": [0, chain.GENESIS]}
        # The ledger and audit ids taken so far (engine.ids_taken) as of the last seal: when
        # they have not moved, no row was written and the seal reads nothing.
        self._seen = {"ledger": 0, "audit": 0}
        # (table, column) of the chained tables' TIMESTAMP columns, read once (content_sql).
        self._timestamps = None

    # -- at open -----------------------------------------------------------------------------
    def load(self, engine, state) -> None:
        """Read the heads from the store (`engine`, store/port.py). A bank made before the
        chain existed (no chain_started setting, no stored hash anywhere, no recorded head)
        gets the chain computed for all its rows, in order, once, and an audit row saying so."""
        self._heads = {"ledger": [0, chain.GENESIS], "audit": [0, chain.GENESIS]}
        if _started(engine.read):
            self.reload(engine.read, state)
            return
        try:
            # Exclusive: another process opening the same new database at the same moment
            # (engine.shared_writers) waits, then finds the chain started and only reads it.
            with engine.unit_of_work(exclusive=True) as uow:
                if _started(uow.fetchall):
                    state.reload(uow)
                    self.reload(uow.fetchall, state)
                    return
                state.reload(uow)
                counts = self._hash_new(uow)
                if any(counts.values()):
                    aid = int(uow.take_ids("audit_id_seq", 1).ids[0])
                    uow.execute(
                        "INSERT INTO audit_log (id, ts, actor, actor_role, action, entity, "
                        "entity_id, after, outcome) VALUES (?, ?, 'system', 'system', "
                        "'ledger.chain_started', 'ledger', NULL, ?, 'ok')",
                        [aid, utcnow(), f'{{"transactions": {counts["ledger"]}, '
                                        f'"audit_rows": {counts["audit"]}}}'])
                    self._hash_new(uow)
                uow.execute("INSERT INTO settings VALUES ('chain_started', ?)",
                            [utcnow().isoformat()])
                uow.commit()
        except BaseException:
            self._heads = {"ledger": [0, chain.GENESIS], "audit": [0, chain.GENESIS]}
            raise
        self._seen = self._taken()

    def reload(self, fetchall, state) -> None:
        """Read the heads again from the last row of each chain, through `fetchall` (a
        Reader's or engine.read): at open, and on the writer thread under the store's writer
        lock whenever another process may have written (store/writer.py). `state` is the
        LedgerState read in the same snapshot."""
        self._heads = {"ledger": [0, chain.GENESIS], "audit": [0, chain.GENESIS]}
        for name, table in (("ledger", "transactions"), ("audit", "audit_log")):
            row = fetchall(f"SELECT id, chain_hash FROM {table} WHERE lane = ? "
                           "ORDER BY id DESC LIMIT 1", [self.lane])
            if row:
                # A last row without a valid hash was written past the bank (or changed):
                # new entries chain on from GENESIS rather than quietly hashing it, and
                # verify names the first unhashed row.
                stored = row[0][1]
                valid = isinstance(stored, str) and len(stored) == 64
                self._heads[name] = [row[0][0], stored if valid else chain.GENESIS]
        self._seen = self._taken()

    # -- on the writer thread ----------------------------------------------------------------
    def _taken(self) -> dict:
        """The ledger and audit ids this process's units of work have taken so far (rows
        of either chain are written only with ids taken through uow.take_ids)."""
        taken = self._bank.engine.ids_taken
        return {"ledger": taken["transaction_id_seq"], "audit": taken["audit_id_seq"]}

    def mark(self):
        """What to go back to if the unit of work rolls back."""
        return ({k: list(v) for k, v in self._heads.items()}, dict(self._seen))

    def restore(self, marked) -> None:
        heads, seen = marked
        self._heads = {k: list(v) for k, v in heads.items()}
        self._seen = dict(seen)

    def seal(self, uow) -> None:
        """Hash whatever this unit of work added to either chain (called before COMMIT)."""
        taken = self._taken()
        moved = {name for name in ("ledger", "audit") if taken[name] != self._seen[name]}
        if not moved:
            return
        # A chain whose ids have not moved has no new row: its read is skipped (end of day
        # on a quiet day writes audit rows only).
        self._hash_new(uow, moved)
        self._seen = taken

    def _hash_new(self, uow, names=("ledger", "audit")) -> dict:
        """Hash this lane's rows after each head of the chains `names`, in id order: their
        content built in SQL (as verify builds it), the chain walked here, one UPDATE per
        table. Returns the number of entries hashed per chain. Other lanes' rows are their
        writers' to hash."""
        counts = {"ledger": 0, "audit": 0}
        for name, table in (("ledger", "transactions"), ("audit", "audit_log")):
            if name not in names:
                continue
            last, head = self._heads[name]
            rows = uow.fetchall(
                self.content_sql(name, after_id=True, lane=True) + " ORDER BY 1",
                [last] * (2 if name == "ledger" else 1) + [self.lane])
            if not rows:
                continue
            # chain_hashes carries the previous hash as bytes: the same hashes as entry_hash
            # in a loop, without parsing hex per entry (end of day seals ~100,000 at once).
            ids = [row[0] for row in rows]
            hashes = chain.chain_hashes(head, [row[1].encode("utf-8") for row in rows])
            head = hashes[-1]
            self._write_hashes(uow, table, last, ids, hashes)
            self._heads[name] = [ids[-1], head]
            counts[name] = len(ids)
        return counts

    @staticmethod
    def _write_hashes(uow, table, after_id, ids, hashes):
        # A registered Arrow table rather than two list parameters: DuckDB converts list
        # parameters value by value, which costs seconds for an end of day's ~100,000 hashes
        # (and pandas would first convert the strings once more).
        with uow.scan("new_chain_hashes", pa.table({"id": pa.array(ids, pa.int64()),
                                                    "hash": pa.array(hashes, pa.string())})):
            uow.execute(
                f"UPDATE {table} SET chain_hash = h.hash FROM new_chain_hashes h "
                f"WHERE {table}.id = h.id AND {table}.id > ?", [after_id])

    def hash_batch(self, uow, tx_rows, posting_rows, audit_rows):
        """Hashes for rows about to be appended by the posting batch, which builds them in
        CHAIN_COLUMNS order (transactions and audit rows) and (id, transaction_id,
        account_id, amount_cents, posted_at) order (postings). The caller seals the unit of
        work before it takes the rows' ids, so the chain stays in id order. Returns
        (transaction hashes, audit hashes) in the order of the rows given."""
        tx_hashes, audit_hashes = [], []
        if tx_rows:
            tx_hashes = chain.chain_hashes(
                self._heads["ledger"][1],
                chain.ledger_contents(tx_rows, _group_postings(posting_rows)))
            self._heads["ledger"] = [tx_rows[-1][0], tx_hashes[-1]]
        if audit_rows:
            audit_hashes = chain.chain_hashes(self._heads["audit"][1],
                                              chain.audit_contents(audit_rows))
            self._heads["audit"] = [audit_rows[-1][0], audit_hashes[-1]]
        self._seen = self._taken()
        return tx_hashes, audit_hashes

    def record_heads(self, uow, business_date) -> list[dict]:
        """Seal, then store the heads as of the close of `business_date` (end of day): this
        lane's (always, GENESIS before its first entry) and every other lane's that has rows.
        End of day runs alone (no batch of any lane is under way), so another lane's head is
        the stored hash of its last row."""
        self.seal(uow)
        now = utcnow()
        rows = []
        for name in chain.CHAINS:
            heads = self._lane_heads(uow, name)
            heads[self.lane] = tuple(self._heads[name])
            for lane in sorted(heads):
                last_id, head = heads[lane]
                rows.append({"business_date": business_date, "chain": name, "lane": lane,
                             "last_id": last_id, "head_hash": head})
        # One statement for all the day's heads.
        uow.execute("INSERT INTO chain_heads (business_date, chain, lane, last_id, head_hash, "
                    "recorded_at) VALUES " + ", ".join(["(?, ?, ?, ?, ?, ?)"] * len(rows)),
                    [v for r in rows for v in (*(r[k] for k in HEAD_FIELDS), now)])
        return rows

    @staticmethod
    def _lane_heads(uow, name) -> dict:
        """{lane: (last id, stored hash)} of chain `name`'s lanes that have rows. Only rows
        after the lowest head of the last recorded day are read (ids grow with time and that
        day recorded every lane that had rows), so a day's close reads its own rows only."""
        table = _TABLE[name]
        heads = {lane: (last_id, head) for lane, last_id, head in uow.fetchall(
            "SELECT lane, last_id, head_hash FROM chain_heads WHERE chain = ? AND "
            "business_date = (SELECT max(business_date) FROM chain_heads WHERE chain = ?)",
            [name, name])}
        floor = min((last_id for last_id, _ in heads.values()), default=0)
        for lane, last_id, head in uow.fetchall(
                f"SELECT t.lane, t.id, coalesce(t.chain_hash, '') FROM {table} t JOIN "
                f"(SELECT max(id) AS id FROM {table} WHERE id > ? GROUP BY lane) m "
                "ON m.id = t.id",
                [floor]):
            heads[lane] = (last_id, head)
        return heads

    # -- checks (any thread) -----------------------------------------------------------------
    def recompute(self, want=()) -> dict:
        """Walk both chains from the rows in Python (chain.py, as the offline checker does),
        each lane on its own. Returns {chain: {"bad" (the lowest id of an entry whose stored
        hash differs from the recomputed one, or None), "before_bad" (the entry before it in
        its lane), "count", "at" {(lane, id): recomputed hash for each (lane, id) in
        want[chain]}, "lanes" {lane: {"last_id", "head", "bad", "before_bad", "count"}}}}.
        verify() gets the same answer set-based (see _checked)."""
        bank = self._bank
        out = {}
        # One snapshot for both tables of the ledger chain.
        with bank.engine.snapshot() as snap:
            txs = snap.fetchall(_select("transactions", TX_COLUMNS))
            postings = _group_postings(snap.fetchall(
                f"SELECT {', '.join(POSTING_COLUMNS)} FROM postings "
                "ORDER BY transaction_id"))
            audit = snap.fetchall(_select("audit_log", AUDIT_COLUMNS))
        want = dict(want)
        # The lane is the last chained column, before the stored hash.
        out["ledger"] = _walk_lanes(
            ((r[-2], r[0], chain.ledger_content(r[:-1], postings.get(r[0], ())), r[-1])
             for r in txs), set(want.get("ledger", ())))
        out["audit"] = _walk_lanes(((r[-2], r[0], chain.audit_content(r[:-1]), r[-1])
                                    for r in audit), set(want.get("audit", ())))
        return out

    def content_sql(self, name, *, after_id=False, lane=False) -> str:
        """SQL giving (id, content VARCHAR, chain_hash, lane) per entry of chain `name`, the
        content built in SQL exactly as chain.py builds it in Python (a test holds them
        equal). With after_id, only entries whose id is above a parameter (given twice for
        the ledger); with lane, only those of the lane given as the next parameter."""
        if self._timestamps is None:
            # The schema is fixed once the bank is open (db.migrate).
            # upper(): PostgreSQL names the type 'timestamp without time zone'.
            self._timestamps = {(t, c) for t, c in self._bank.engine.read(
                "SELECT table_name, column_name FROM information_schema.columns "
                "WHERE upper(data_type) LIKE 'TIMESTAMP%' AND table_name IN "
                "('transactions', 'postings', 'audit_log')")}
        timestamps = self._timestamps
        dialect = self._bank.engine.dialect

        def content(table, alias, columns):
            # concat() reads NULL as '' (chain.text(None)) and builds each string once.
            parts = []
            for column in columns:
                ref = f"{alias}.{column}"
                if (table, column) in timestamps:
                    # isoformat() leaves out a zero fraction of a second.
                    parts.append(dialect.iso_timestamp(ref))
                else:
                    parts.append(f"CAST({ref} AS VARCHAR)")
            return "concat(" + ", chr(31), ".join(parts) + ")"

        def tails(table, alias, columns):
            # Optional trailing columns (chain.OPTIONAL_COLUMNS) count up to the last one
            # that holds a value, as chain.trimmed keeps them: each with its separator when
            # it or one after it holds one (a lane holds one when not 0).
            def held(column):
                if column == "lane":
                    return f"{alias}.lane <> 0"
                return f"coalesce(CAST({alias}.{column} AS VARCHAR), '') <> ''"
            optional = chain.OPTIONAL_COLUMNS[name][table]
            return "".join(
                f"CASE WHEN {' OR '.join(held(c) for c in optional[i:])} THEN chr(31) || "
                f"coalesce(CAST({alias}.{column} AS VARCHAR), '') ELSE '' END, "
                for i, column in enumerate(optional))

        def required(table, columns):
            return [c for c in columns if c not in chain.OPTIONAL_COLUMNS[name][table]]

        only = " AND {alias}.lane = ?" if lane else ""
        if name == "audit":
            where = (" WHERE a.id > ?" + only if after_id
                     else " WHERE a.lane = ?" if lane else "")
            values = content("audit_log", "a", required("audit_log", AUDIT_COLUMNS))
            return (f"SELECT a.id, concat({values}, {tails('audit_log', 'a', AUDIT_COLUMNS)}"
                    "'') AS content, a.chain_hash, a.lane FROM audit_log a"
                    + where.format(alias="a"))
        where = (" WHERE t.id > ?" + only if after_id else " WHERE t.lane = ?" if lane else "")
        values = content("transactions", "t", required("transactions", TX_COLUMNS))
        return (f"SELECT t.id, concat({values}, "
                + tails("transactions", "t", TX_COLUMNS)
                + "chr(31) || p.content) AS content, t.chain_hash, t.lane "
                "FROM transactions t LEFT JOIN (SELECT p.transaction_id, string_agg("
                f"{content('postings', 'p', POSTING_COLUMNS)}, chr(31) "
                "ORDER BY p.account_id, p.amount_cents, p.id) AS content FROM postings p "
                + ("WHERE p.transaction_id > ? " if after_id else "")
                + "GROUP BY 1) p ON p.transaction_id = t.id" + where.format(alias="t"))

    def _checked(self, name, want) -> dict:
        """The chain check done set-based: in each lane, every entry's stored hash must equal
        sha256(the previous entry's stored hash + its content), the first entry's previous
        being GENESIS. That holds for every entry exactly when the walk of chain.verify_rows
        finds no difference, and the first entry where it fails is the walk's first_bad.
        `want` holds (lane, id) pairs. Returns {"bad" (the lowest first bad id of any lane),
        "before_bad", "lanes" {lane: (first bad id, the entry before it in its lane)} for the
        lanes that break, "at" {(lane, id): the walk's hash at id, for pairs of want up to
        their lane's first bad entry}, "missing" [pairs of want that are not entries]}."""
        bank = self._bank
        # A previous hash is used only when it is 64 lower-case hex digits (ltrim of those
        # digits leaves nothing), as chain.py's walk would find it unusable otherwise.
        broken = bank.read(
            "SELECT lane, id, previous_id FROM (SELECT lane, id, previous_id, row_number() "
            "OVER (PARTITION BY lane ORDER BY id) AS k FROM (SELECT id, lane, chain_hash, "
            f"lag(id) OVER w AS previous_id, CASE WHEN row_number() OVER w = 1 THEN "
            f"'{chain.GENESIS}' ELSE lag(chain_hash) OVER w END AS previous, content "
            f"FROM ({self.content_sql(name)}) AS c WINDOW w AS (PARTITION BY lane ORDER BY id)"
            ") AS x WHERE chain_hash IS NULL OR chain_hash IS DISTINCT FROM CASE WHEN "
            "length(previous) = 64 AND ltrim(previous, '0123456789abcdef') = '' THEN "
            + bank.engine.dialect.sha256_chain("previous", "content") + " END) AS y "
            "WHERE k = 1 ORDER BY id")
        lanes = {lane: (bad, before) for lane, bad, before in broken}
        ids = sorted({i for _, i in want})
        stored = {(lane, i): h for i, h, lane in bank.read(
            f"SELECT id, chain_hash, lane FROM {_TABLE[name]} WHERE "
            + bank.engine.dialect.in_list("id", "BIGINT"), [ids])} if ids else {}
        first = broken[0] if broken else None
        return {"bad": first[1] if first else None, "before_bad": first[2] if first else None,
                "lanes": lanes,
                "at": {(lane, i): h for (lane, i), h in stored.items()
                       if lane not in lanes or i < lanes[lane][0]},
                "missing": [pair for pair in want if pair not in stored]}

    def _check_all(self, want) -> dict:
        return {name: self._checked(name, set(want.get(name, ()))) for name in chain.CHAINS}

    def verify(self) -> list[str]:
        """Chain problems, for audit.verify: the first entry of each chain and lane whose
        stored hash differs from the recomputed one, recorded heads that the chain no longer
        reproduces, transactions dated on a day that was already closed when they came, and
        transactions reversed more than once."""
        bank = self._bank
        recorded = bank.read("SELECT business_date, chain, lane, last_id, head_hash "
                             "FROM chain_heads ORDER BY business_date, chain, lane")
        want = {"ledger": set(), "audit": set()}
        for _, name, lane, last_id, _ in recorded:
            want.setdefault(name, set()).add((lane, last_id))
        walked = self._check_all(want)
        problems = []
        for name in chain.CHAINS:
            for lane, (bad, before) in sorted(walked[name]["lanes"].items()):
                problems.append(
                    f"{_label(name, lane)} breaks at {_ENTRY[name]} {bad}: its stored hash "
                    "does not match its content and the entries before it "
                    + (f"(the entry before it is {_ENTRY[name]} {before}); "
                       if before is not None else "(it is the first entry); ")
                    + "it, or an entry before it, was changed, removed or inserted")
        problems.extend(self._ambiguous())
        (strays,) = bank.read_one(
            "SELECT count(*) FROM postings p WHERE NOT EXISTS (SELECT 1 FROM transactions t "
            "WHERE t.id = p.transaction_id)")
        if strays:
            problems.append(f"ledger chain: {strays} postings belong to no transaction")
        problems.extend(_compare_heads("recorded head", recorded, walked))
        # A closed day is one with heads (end of day records lane 0's always). A transaction
        # of a lane dated on or before it comes after that lane's head of the day, or its
        # lane had no rows when the day closed: either way it came after the close. Only the
        # first closed day on or after a transaction's date is compared: a lane's heads only
        # grow from day to day and a lane once recorded is recorded every day after, so a
        # transaction that came after a later close came after that one too. Joining each
        # transaction with every closed day after its date instead made about N x D / 2
        # rows (9-11 s at a million transactions over a year, against 0.1 s so).
        for tid, day, closed in bank.read(
                "SELECT t.id, t.business_date, d.closed FROM transactions t JOIN ("
                "SELECT b.business_date AS dated, min(c.business_date) AS closed FROM "
                "(SELECT DISTINCT business_date FROM transactions) b JOIN chain_heads c "
                "ON c.chain = 'ledger' AND c.lane = 0 AND b.business_date <= c.business_date "
                "GROUP BY b.business_date) d ON d.dated = t.business_date "
                "LEFT JOIN chain_heads h ON h.chain = 'ledger' AND h.lane = t.lane "
                "AND h.business_date = d.closed "
                "WHERE h.last_id IS NULL OR t.id > h.last_id ORDER BY t.id LIMIT 20"):
            problems.append(f"ledger chain: transaction {tid} is dated {day} but comes after "
                            f"the head recorded when {closed} was closed (a back-dated entry)")
        for original, count in bank.read(
                "SELECT reverses_id, count(*) FROM transactions WHERE reverses_id IS NOT NULL "
                "GROUP BY reverses_id HAVING count(*) > 1 ORDER BY reverses_id LIMIT 20"):
            problems.append(f"ledger: transaction {original} is reversed {count} times")
        return problems

    def _ambiguous(self) -> list[str]:
        """The first transaction and audit row holding U+001F in a chained text column: their
        content cannot tell where one value ends (chain.ambiguous), so text may have moved
        across a field boundary without changing the hash. Postings chain no text."""
        bank = self._bank
        problems = []
        for name, table, columns in (("ledger", "transactions", TX_COLUMNS),
                                     ("audit", "audit_log", AUDIT_COLUMNS)):
            texts = [c for (c,) in bank.read(
                "SELECT column_name FROM information_schema.columns WHERE table_name = ? "
                "AND upper(data_type) IN ('VARCHAR', 'CHARACTER VARYING', 'TEXT')", [table])
                if c in columns]
            if not texts:
                continue
            row = bank.read_one(f"SELECT min(id), count(*) FROM {table} WHERE "
                                + " OR ".join(f"strpos({c}, chr(31)) > 0" for c in texts))
            if row[1]:
                problems.append(
                    f"{name} chain: {_ENTRY[name]} {row[0]} holds U+001F (the separator of the "
                    f"chain's content) in a text column ({row[1]} such entries): text may have "
                    "moved from one value to the next without changing its hash")
        return problems

    def check(self, actor) -> list[str]:
        """verify() for a manager (the End of day page): the chain problems, empty when both
        chains recompute to their stored hashes and recorded heads."""
        self._bank.require(actor, "audit.verify", entity="chain")
        return self.verify()

    def heads(self, actor, from_date=None, to_date=None) -> list[dict]:
        """The recorded heads of closed days between the dates (inclusive; None: open), oldest
        first: dicts of business_date (date), chain ("ledger"/"audit"), lane (int), last_id
        (the last transaction or audit row id of the lane covered) and head_hash (64 hex
        digits). Managers only."""
        bank = self._bank
        bank.require(actor, "audit.verify", entity="chain")
        rows = bank.read(
            "SELECT business_date, chain, lane, last_id, head_hash, recorded_at "
            "FROM chain_heads "
            "WHERE business_date >= coalesce(CAST(? AS DATE), DATE '0001-01-01') "
            "AND business_date <= coalesce(CAST(? AS DATE), DATE '9999-12-31') "
            "ORDER BY business_date, chain, lane", [from_date, to_date])
        return [dict(zip((*HEAD_FIELDS, "recorded_at"), row)) for row in rows]

    def heads_csv(self, actor, from_date=None, to_date=None) -> str:
        """The heads as CSV text (header business_date,chain,lane,last_id,head_hash), to keep
        elsewhere and give back to check_heads."""
        rows = [HEAD_FIELDS] + [
            (h["business_date"].isoformat(), h["chain"], h["lane"], h["last_id"],
             h["head_hash"])
            for h in self.heads(actor, from_date, to_date)]
        return csv_rows(rows)

    def check_heads(self, actor, heads_text: str) -> list[str]:
        """Compare a kept copy of the heads (the CSV of heads_csv, or one kept before lanes,
        read as lane 0's) with the chain recomputed from the rows and with the heads recorded
        in the bank. Returns the differences (an empty list: every kept head matches). Raises
        InvalidInput for text that is not such a CSV. Managers only."""
        bank = self._bank
        bank.require(actor, "audit.verify", entity="chain")
        kept = parse_heads(heads_text)
        want = {"ledger": set(), "audit": set()}
        for _, name, lane, last_id, _ in kept:
            want[name].add((lane, last_id))
        walked = self._check_all(want)
        problems = _compare_heads("kept head", kept, walked)
        recorded = {(day, name, lane): (last_id, head)
                    for day, name, lane, last_id, head in bank.read(
                        "SELECT business_date, chain, lane, last_id, head_hash "
                        "FROM chain_heads")}
        for day, name, lane, last_id, head in kept:
            if (day, name, lane) in recorded and recorded[(day, name, lane)] != (last_id, head):
                problems.append(f"the {_label(name, lane, 'head')} recorded in the bank for "
                                f"{day} differs from the kept copy (chain_heads was changed)")
        for day, name, lane, last_id, head in kept:
            if (day, name, lane) not in recorded:
                problems.append(f"the bank has no recorded {_label(name, lane, 'head')} for "
                                f"{day} (chain_heads was changed)")
        return problems


def _label(name, lane, noun="chain") -> str:
    """"ledger chain", or "ledger chain (lane 2)" for a lane other than main's."""
    return f"{name} {noun}" + ("" if lane == chain.MAIN_LANE else f" (lane {lane})")


def _started(fetchall) -> bool:
    """Whether anything of a chain is in the bank, read through `fetchall`. A bank is taken
    for one made before the chain only when nothing is: were the chain_started setting alone to
    decide, deleting it would make the next open hash every row again over whatever was
    changed, and launder the change."""
    return bool(fetchall(
        "SELECT 1 FROM settings WHERE key = 'chain_started' UNION ALL "
        "SELECT 1 FROM (SELECT 1 FROM transactions WHERE chain_hash IS NOT NULL LIMIT 1) "
        "AS t UNION ALL SELECT 1 FROM (SELECT 1 FROM audit_log WHERE chain_hash IS NOT "
        "NULL LIMIT 1) AS a UNION ALL SELECT 1 FROM (SELECT 1 FROM chain_heads LIMIT 1) "
        "AS h"))


def parse_heads(heads_text: str) -> list[tuple]:
    """(business_date, chain, lane, last_id, head_hash) tuples from a kept heads CSV; a copy
    kept before lanes (no lane column) holds lane 0's heads."""
    if not isinstance(heads_text, str) or not heads_text.strip():
        raise InvalidInput("Paste or upload the kept chain heads (a CSV with the columns "
                           "business_date, chain, lane, last_id, head_hash).")
    reader = csv.reader(io.StringIO(heads_text.strip()))
    rows = list(reader)
    header = tuple(c.strip() for c in rows[0])
    if header not in (HEAD_FIELDS, _OLD_HEAD_FIELDS):
        raise InvalidInput("The kept chain heads must start with the header line "
                           "business_date,chain,lane,last_id,head_hash.")
    kept = []
    for number, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        try:
            cells = dict(zip(header, (c.strip() for c in row), strict=True))
            day = dt.date.fromisoformat(cells["business_date"])
            name, head = cells["chain"], cells["head_hash"]
            lane = int(cells.get("lane", chain.MAIN_LANE))
            last_id = int(cells["last_id"])
            if name not in chain.CHAINS or len(head) != 64 or not 0 <= lane <= 32767:
                raise ValueError
            bytes.fromhex(head)
        except ValueError:
            raise InvalidInput(f"Line {number} of the kept chain heads is not a head "
                               "(date, ledger or audit, a lane, an id, 64 hex digits).") \
                from None
        kept.append((day, name, lane, last_id, head.lower()))
    return kept


def _group_postings(rows) -> dict:
    grouped: dict = {}
    for row in rows:
        grouped.setdefault(row[_POSTING_TX], []).append(row)
    return grouped


def _walk_lanes(entries, want) -> dict:
    """Recompute one chain from (lane, id, content, stored hash) entries in id order, a walk
    per lane; `want` holds (lane, id) pairs. See Chains.recompute."""
    lanes, at = {}, {}
    for lane, entry_id, content, stored in entries:
        walk = lanes.get(lane)
        if walk is None:
            walk = lanes[lane] = {"last_id": None, "head": chain.GENESIS, "bad": None,
                                  "before_bad": None, "count": 0}
        walk["head"] = head = chain.entry_hash(walk["head"], content)
        walk["count"] += 1
        if walk["bad"] is None and stored != head:
            walk["bad"], walk["before_bad"] = entry_id, walk["last_id"]
        if (lane, entry_id) in want:
            at[(lane, entry_id)] = head
        walk["last_id"] = entry_id
    first = min((w for w in lanes.values() if w["bad"] is not None),
                key=lambda w: w["bad"], default=None)
    return {"bad": first["bad"] if first else None,
            "before_bad": first["before_bad"] if first else None,
            "count": sum(w["count"] for w in lanes.values()), "at": at, "lanes": lanes}


def _compare_heads(label, heads, walked) -> list[str]:
    problems = []
    for day, name, lane, last_id, head in heads:
        if last_id == 0 and head == chain.GENESIS:
            continue
        result = walked[name]
        where = _label(name, lane)
        if (lane, last_id) in result["missing"]:
            problems.append(f"{where}: the {label} for {day} ends at {_ENTRY[name]} "
                            f"{last_id}, which is no longer there"
                            + ("" if lane == chain.MAIN_LANE else " in its lane"))
        elif result["at"].get((lane, last_id)) != head:
            problems.append(f"{where}: the {label} for {day} (up to {_ENTRY[name]} "
                            f"{last_id}) does not match the chain recomputed from the rows")
    return problems
