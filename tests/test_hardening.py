"""Refusals found in review: reserved idempotency keys and LIKE wildcards in customer search
(more attacks on keys, ids and sign-in: test_attacks_signin.py)."""
import pytest

import bankms
from bankms.services.payments import system_key
from conftest import funded_account, login_for, make_customer


def test_nobody_can_take_the_key_of_a_future_reversal(bank, system):
    cid = make_customer(bank, name="Kim Key")
    source = funded_account(bank, "100.00", customer_id=cid)
    target = funded_account(bank, "0", customer_id=make_customer(bank, name="Lee Key"))
    kim = login_for(bank, cid, "kimkey")
    first = bank.payments.transfer(kim, source, target, "10.00")
    with pytest.raises(bankms.InvalidInput):
        bank.payments.transfer(kim, source, target, "1.00",
                               idempotency_key=f"sys:reversal-of-{first.transaction_id + 1}")
    reversal = bank.payments.reverse(system, first.transaction_id, "typo")
    # bankms's own keys all live in the reserved namespace.
    assert reversal.idempotency_key == f"sys:reversal-of-{first.transaction_id}"
    assert system_key("reversal", "of", first.transaction_id) == \
        reversal.idempotency_key
    again = bank.payments.reverse(system, first.transaction_id, "typo")
    assert (again.transaction_id, again.replayed) == (reversal.transaction_id, True)
    assert bank.accounts.balance(system, source) == bankms.to_money(10000)


@pytest.mark.parametrize("query, expected_names", [
    ("%", ["Percy 100% Real"]),
    ("_", ["Ann_Underscore"]),
    ("ann_", ["Ann_Underscore"]),
    ("100%", ["Percy 100% Real"]),
    ("ann", ["Ann_Underscore", "Anna Plain"]),
    ("555 0100", ["Ann_Underscore", "Anna Plain", "Percy 100% Real"]),
])
def test_search_reads_wildcards_literally(bank, system, query, expected_names):
    for name in ("Ann_Underscore", "Anna Plain", "Percy 100% Real"):
        make_customer(bank, name=name, email=f"{len(name)}x@example.com")
    found = bank.customers.search(system, query)["full_name"].tolist()
    assert sorted(found) == expected_names
