"""Audit rows written set-based: one row per entity for a change applied to many at once
(dormancy, late fees, standing orders cancelled or finished), in the caller's unit of work.

A leaf below end of day and its steps (deposit_eod, standing_orders), so that no step imports
eod.py.
"""
from __future__ import annotations

import json

import pandas as pd

from .ledger import utcnow


def audit_set(bank, uow, actor, action, entity, ids, before, after):
    """One audit row per entity, written set-based (dormancy can touch thousands at once)."""
    if not len(ids):
        return
    frame = pd.DataFrame({"entity_id": [str(i) for i in ids]})
    frame["id"] = uow.take_ids("audit_id_seq", len(ids)).ids
    with uow.scan("audit_set", frame):
        uow.execute(
            "INSERT INTO audit_log (id, ts, actor, actor_role, action, entity, entity_id, "
            "before, after, outcome) SELECT id, ?, ?, ?, ?, ?, entity_id, ?, ?, 'ok' "
            "FROM audit_set", [utcnow(), actor.username, actor.role, action, entity,
                               None if before is None else json.dumps(before, default=str),
                               json.dumps(after, default=str)])
