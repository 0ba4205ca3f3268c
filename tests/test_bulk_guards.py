"""The bulk path refuses batches whose postings and transactions do not match one to one."""
from __future__ import annotations

import pandas as pd
import pytest

from bankms.services.bulk import BulkInvariantError
from conftest import funded_account


def ids(bank, *numbers):
    return [bank.read_one("SELECT id FROM accounts WHERE account_number = ?", [n])[0]
            for n in numbers]


@pytest.mark.parametrize("tx_refs,posting_refs,posted", [
    ([0], [0, 0], True),          # a well-formed transfer
    ([0], [1, 1], False),         # postings name a transaction that is not in the batch
    ([0, 1], [0, 0], False),      # transaction 1 has no postings
])
def test_bulk_postings_and_transactions_must_match(bank, system, tx_refs, posting_refs, posted):
    a, b = ids(bank, funded_account(bank, "100.00"), funded_account(bank, "100.00"))
    count_before = bank.read_one("SELECT count(*) FROM transactions")[0]
    tx = pd.DataFrame({"tx_ref": tx_refs, "kind": "transfer", "amount_cents": 500})
    postings = pd.DataFrame({"tx_ref": posting_refs, "account_id": [a, b],
                             "amount_cents": [-500, 500]})
    if posted:
        assert bank.ledger.post_frames(system, tx, postings) == len(tx_refs)
    else:
        with pytest.raises(BulkInvariantError):
            bank.ledger.post_frames(system, tx, postings)
        assert bank.read_one("SELECT count(*) FROM transactions")[0] == count_before
    assert bank.audit.verify() == []
