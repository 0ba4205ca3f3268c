"""The auditor's export: one signed zip of the books of a closed period (`bank.export`).

What the bundle holds and how it is checked is described in export_check.py, which the
auditor's command (`python -m bankms check-export`) runs without the bank. This module reads the
ledger in one snapshot, writes the CSV files, the manifest and its Ed25519 signature with the
bank's key (signing.py), and audits who took the export.

Periods are business dates (value dates): a transaction belongs to the day end of day closed it
under, as on statements and in the general ledger (reports.py). The audit rows of a period are
those written after the audit chain's head recorded when the day before it was closed, up to
the head of its last day (chain_store.py). Only closed days can be exported, so that two
exports of one period hold the same rows.
"""
from __future__ import annotations

import datetime as dt
import io
import zipfile

from . import export_check as fmt
from ..domain import chain
from ..services import signing
from ..domain.dates import as_date
from .documents import BANK_NAME
from ..domain.errors import InvalidInput
from ..services.ledger import utcnow

def cell(value) -> str:
    """One CSV field, exactly as the hash chain renders the value (chain.text): NULL as an
    empty field, dates and UTC timestamps ISO 8601 ("2026-03-31T17:05:09.123456"), booleans
    true/false, numbers and text as they are; so the checker hashes what the bank hashed.
    The common types go through a table of chain.text's own renderings (a bundle has millions
    of fields); tests/test_auditor_export.py checks the two agree."""
    render = _RENDER.get(type(value))
    return render(value) if render is not None else chain.text(value)


_RENDER = {type(None): lambda v: "", str: lambda v: v, int: int.__str__,
           bool: lambda v: "true" if v else "false", dt.date: dt.date.isoformat,
           dt.datetime: dt.datetime.isoformat}


# name -> SQL of its rows (the columns of fmt.FILES, in order); ? are (from, to) as needed.
_QUERIES = {
    "accounts.csv": (
        "SELECT id, account_number, customer_id, kind, name, status, "
        "coalesce(opened_date, CAST(opened_at AS DATE)), closed_date FROM accounts "
        "ORDER BY id", ()),
    "transactions.csv": (
        "SELECT id, kind, amount_cents, memo, source_account, target_account, actor, "
        "actor_role, idempotency_key, reverses_id, posted_at, business_date, chain_hash, "
        "channel, lane FROM transactions WHERE business_date BETWEEN ? AND ? ORDER BY id",
        ("from", "to")),
    "postings.csv": (
        "SELECT p.id, p.transaction_id, p.account_id, a.account_number, p.amount_cents, "
        "p.posted_at FROM postings p JOIN transactions t ON t.id = p.transaction_id "
        "JOIN accounts a ON a.id = p.account_id WHERE t.business_date BETWEEN ? AND ? "
        "ORDER BY p.id", ("from", "to")),
    # Balances by value date: every posting of a transaction dated before the day counts.
    "opening_balances.csv": (
        "SELECT a.id, a.account_number, CAST(coalesce(sum(p.amount_cents), 0) AS BIGINT) "
        "FROM accounts a LEFT JOIN (postings p JOIN transactions t ON t.id = p.transaction_id "
        "AND t.business_date < ?) ON p.account_id = a.id GROUP BY 1, 2 ORDER BY 1", ("from",)),
    "closing_balances.csv": (
        "SELECT a.id, a.account_number, CAST(coalesce(sum(p.amount_cents), 0) AS BIGINT) "
        "FROM accounts a LEFT JOIN (postings p JOIN transactions t ON t.id = p.transaction_id "
        "AND t.business_date <= ?) ON p.account_id = a.id GROUP BY 1, 2 ORDER BY 1", ("to",)),
    "audit_log.csv": (
        "SELECT id, ts, actor, actor_role, action, entity, entity_id, before, after, outcome, "
        "chain_hash, lane FROM audit_log WHERE id > ? AND id <= ? ORDER BY id",
        ("audit_after", "audit_last")),
    "chain_heads.csv": (
        # With the heads of the last day closed before the period: the period's first entry
        # of each chain and lane must chain on them (export_check._chain).
        "SELECT business_date, chain, lane, last_id, head_hash FROM chain_heads "
        "WHERE business_date BETWEEN coalesce((SELECT max(business_date) FROM chain_heads "
        "WHERE business_date < ?), ?) AND ? ORDER BY business_date, chain, lane",
        ("from", "from", "to")),
}

# Where each chain's entries of the period start again after an entry not exported: (lane,
# entry id, the previous entry's id and chain hash in the whole chain of its lane), for the
# exported entries only, by lane and id.
_PREVIOUS = {
    "ledger": "SELECT lane, id, prev_id, prev_hash FROM (SELECT lane, id, business_date, "
              "lag(id) OVER w AS prev_id, lag(chain_hash) OVER w AS prev_hash FROM "
              "transactions WINDOW w AS (PARTITION BY lane ORDER BY id)) e "
              "WHERE business_date BETWEEN ? AND ? ORDER BY lane, id",
    "audit": "SELECT lane, id, prev_id, prev_hash FROM (SELECT lane, id, lag(id) OVER w AS "
             "prev_id, lag(chain_hash) OVER w AS prev_hash FROM audit_log "
             "WINDOW w AS (PARTITION BY lane ORDER BY id)) e "
             "WHERE id > ? AND id <= ? ORDER BY lane, id",
}


def _audit_range(snap, start: dt.date, end: dt.date) -> tuple[int, int]:
    """The audit rows of the period, as ids (after, last]: those written after the audit head
    recorded when the day before the period was closed, up to the head of its last day; where
    no head was recorded (days closed before the chain existed), by the rows' UTC stamps."""
    def head(day_sql, params):
        # The highest head of the day's lanes: every lane's rows up to it are the day's.
        row = snap.fetchall("SELECT max(last_id) FROM chain_heads WHERE chain = 'audit' AND "
                            f"business_date = ({day_sql})", params)
        return row[0][0] if row else None

    after = head("SELECT max(business_date) FROM chain_heads WHERE chain = 'audit' AND "
                 "business_date < ?", [start])
    if after is None:
        after = snap.fetchone("SELECT coalesce(max(id), 0) FROM audit_log WHERE ts < ?",
                              [dt.datetime.combine(start, dt.time())])[0]
    last = head("SELECT CAST(? AS DATE)", [end])
    if last is None:
        last = snap.fetchone("SELECT coalesce(max(id), 0) FROM audit_log WHERE ts < ?",
                             [dt.datetime.combine(end + dt.timedelta(days=1), dt.time())])[0]
    return after, last


def _segments(snap, name: str, params) -> list[tuple]:
    """(chain, lane, first_id, last_id, prev_hash) of each run of exported entries that follow
    one another in the chain of their lane; prev_hash is the hash of the entry just before the
    run (GENESIS for the lane's first entry), from which the checker recomputes the run."""
    runs = []
    for lane, entry_id, prev_id, prev_hash in snap.fetchall(_PREVIOUS[name], params):
        if runs and runs[-1][1] == lane and runs[-1][3] == prev_id:
            runs[-1][3] = entry_id
        else:
            runs.append([name, lane, entry_id, entry_id, prev_hash or chain.GENESIS])
    return [tuple(run) for run in runs]


def _loan_events_query():
    from ..services.loans import EVENTS_SQL

    return (f"SELECT * FROM ({EVENTS_SQL}) e WHERE value_date BETWEEN ? AND ? "
            "ORDER BY value_date, transaction_id, loan_id", ("from", "to"))


class Export:
    def __init__(self, bank):
        self._bank = bank

    def last_closed_day(self) -> dt.date:
        """The latest business day end of day has closed: the day before the business date."""
        return self._bank.business_date - dt.timedelta(days=1)

    def public_key_pem(self, actor) -> bytes:
        """The bank's public signing key (PEM), for auditors; managers and the system."""
        self._bank.require(actor, "audit.read", entity="export", entity_id="public_key")
        return signing.public_pem(signing.bank_key(self._bank))

    def _period(self, from_date, to_date) -> tuple[dt.date, dt.date]:
        start = as_date(from_date, "first day of the period")
        end = as_date(to_date, "last day of the period")
        if start is None or end is None:
            raise InvalidInput("Give the first and the last day of the period.")
        if start > end:
            raise InvalidInput(f"The period starts on {start} after it ends on {end}.")
        last = self.last_closed_day()
        if end > last:
            raise InvalidInput(f"The period ends on {end}, but the last closed business day is "
                               f"{last}: only closed days can be exported.")
        return start, end

    def auditor_bundle(self, actor, *, from_date, to_date, progress=None) -> bytes:
        """The signed zip of the period from_date..to_date (business dates, both included).

        Managers and the system only (PermissionDenied, audited); InvalidInput when the period
        is not dates, runs backwards, or ends after the last closed business day (nothing is
        written then, the refusal is audited). progress(fraction 0..1, message) is called as
        each file is written. Returns the zip's bytes; the format is export_check.py's."""
        bank = self._bank
        bank.require(actor, "audit.read", entity="export", entity_id="auditor_bundle")
        try:
            start, end = self._period(from_date, to_date)
        except InvalidInput as exc:
            bank.record_refusal(actor, "export.auditor_bundle", exc, entity="export")
            raise
        key = signing.bank_key(bank)
        report = progress or (lambda fraction, message: None)
        params = {"from": start, "to": end}
        queries = dict(_QUERIES)
        queries["loan_events.csv"] = _loan_events_query()
        names = list(fmt.FILES)
        entries, buffer = [], io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf, \
                bank.snapshot() as snap:
            params["audit_after"], params["audit_last"] = _audit_range(snap, start, end)
            for done, name in enumerate(names):
                report(done / (len(names) + 1), f"writing {name}")
                if name == "chain_segments.csv":
                    rows = (_segments(snap, "ledger", [start, end])
                            + _segments(snap, "audit", [params["audit_after"],
                                                        params["audit_last"]]))
                else:
                    sql, wanted = queries[name]
                    rows = snap.fetchall(sql, [params[p] for p in wanted])
                data = fmt.csv_bytes(fmt.FILES[name], ([cell(v) for v in row] for row in rows))
                zf.writestr(name, data)
                entries.append({"name": name, "sha256": fmt.sha256_hex(data),
                                "bytes": len(data), "rows": len(rows)})
            report(len(names) / (len(names) + 1), "signing the manifest")
            manifest = {
                "format": fmt.FORMAT, "format_version": fmt.FORMAT_VERSION,
                "bank_name": BANK_NAME, "period": {"from": str(start), "to": str(end)},
                "created_at": cell(utcnow()) + "Z", "created_by": actor.username,
                "csv": fmt.DIALECT_DESCRIPTION, "files": entries,
            }
            manifest_data = fmt.manifest_bytes(manifest)
            zf.writestr(fmt.MANIFEST, manifest_data)
            zf.writestr(fmt.SIGNATURE, key.sign(manifest_data))
        bundle = buffer.getvalue()

        def audit(uow):
            bank.audit_row(uow, actor, "export.auditor_bundle", "export", None, after={
                "from": str(start), "to": str(end), "bytes": len(bundle),
                "manifest_sha256": fmt.sha256_hex(manifest_data)})
        bank.write(audit)
        report(1.0, "done")
        return bundle
