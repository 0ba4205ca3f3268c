"""Frames of transactions and postings posted in one block inside a unit of work, for the
set-based steps of end of day (loan collection, interest, standing orders, maturities).

A leaf below end of day and its steps, so that no step imports eod.py.
"""
from __future__ import annotations

import pandas as pd


def post_frames(bank, actor, uow, tx, postings, action, *, allow_overdraw=False):
    """Post frames; returns the transaction ids by tx_ref (a numpy array: ids[tx_ref]).
    Ascending with tx_ref, but not a contiguous block on PostgreSQL (sequences: bulk.py)."""
    return bank.ledger.post_frames_in(uow, actor, tx, postings, action=action,
                                      allow_overdraw=allow_overdraw)


def tx_ids_at(ids, refs) -> pd.Series:
    """The transaction ids (post_frames' answer, or None when nothing was posted) of `refs`, a
    column of tx_refs that may hold <NA>: an Int64 column on refs' index, <NA> where the ref
    is."""
    out = pd.Series(pd.NA, index=refs.index, dtype="Int64")
    held = refs.notna()
    if ids is not None and held.any():
        out[held] = ids[refs[held].astype("int64").to_numpy()]
    return out
