"""Frames of transactions and postings posted in one block inside a unit of work, for the
set-based steps of end of day (loan collection, interest, standing orders, maturities).

A leaf below end of day and its steps, so that no step imports eod.py.
"""
from __future__ import annotations


def post_frames(bank, actor, uow, tx, postings, action, *, allow_overdraw=False) -> int:
    """Post frames and return the first transaction id (tx_ref 0)."""
    base = bank.state.next_transaction_id
    bank.ledger.post_frames_in(uow, actor, tx, postings, action=action,
                               allow_overdraw=allow_overdraw)
    if bank.state.next_transaction_id != base + len(tx):
        raise AssertionError("transaction ids were not allocated as one block")
    return base
