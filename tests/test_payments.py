"""Payments: every guard refuses with its own error class and changes nothing; idempotency keys,
reversals, the customer daily limit, and the audit trail of refusals."""
from __future__ import annotations

import shutil
import threading
import time
from decimal import Decimal
from types import SimpleNamespace

import pytest
from conftest import employee, funded_account, login_for, make_customer

import bankms
from bankms.domain import accountnum
from bankms.bank import INTERNAL
from bankms.domain.errors import (
    AccountClosed,
    AccountFrozen,
    AccountNotActive,
    AccountNotFound,
    AlreadyReversed,
    BankError,
    IdempotencyConflict,
    InsufficientFunds,
    InvalidAccountNumber,
    InvalidAmount,
    InvalidInput,
    LimitExceeded,
    PermissionDenied,
    SameAccount,
    TransactionNotFound,
)
from bankms.services.ledger import PostingRequest
from bankms.domain.security import Actor

# Money moves or rules are checked here: each test runs on DuckDB and on PostgreSQL.
pytestmark = pytest.mark.engines


def snapshot(bank):
    """Everything a refused payment must leave untouched (the audit log may grow)."""
    return {
        "accounts": bank.read("SELECT account_number, balance_cents, status, last_activity_at "
                              "FROM accounts ORDER BY account_number"),
        "transactions": bank.read_one("SELECT count(*) FROM transactions")[0],
        "postings": bank.read_one("SELECT count(*) FROM postings")[0],
        "keys": bank.read_one("SELECT count(*) FROM idempotency_keys")[0],
    }


def cents(bank, number):
    return bank.read_one("SELECT balance_cents FROM accounts WHERE account_number = ?",
                         [number])[0]


def in_one_batch(bank, calls):
    """Run the calls from threads so that their requests reach the writer together: the writer
    is held busy until all of them are queued, then drains them as one batch. Returns each
    call's receipt or BankError, in order."""
    gate = threading.Event()
    holding = threading.Event()

    def hold(uow):
        holding.set()
        gate.wait(10)

    blocker = threading.Thread(target=bank.write, args=(hold,))
    blocker.start()
    holding.wait(10)
    outcomes = [None] * len(calls)

    def run(i, call):
        try:
            outcomes[i] = call()
        except BankError as exc:
            outcomes[i] = exc

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 10
    while bank._writer._queue.qsize() < len(calls) and time.monotonic() < deadline:
        time.sleep(0.001)
    gate.set()
    for t in threads + [blocker]:
        t.join(10)
    return outcomes


def typo(number):
    """The same number with its fifth digit changed: the check digits no longer match."""
    digit = "1" if number[4] != "1" else "2"
    return number[:4] + digit + number[5:]


def build_world(bank, system):
    """A small bank: Alice (checking 1,000.00 and savings 100.00), Bob (checking 50.00 with a
    200.00 overdraft), a closed account, a frozen account, a suspended holder, and the actors."""
    alice_id = make_customer(bank, name="Alice Able")
    bob_id = make_customer(bank, name="Bob Baker")
    carol_id = make_customer(bank, name="Carol Cole")
    world = dict(
        alice_id=alice_id, bob_id=bob_id,
        a1=funded_account(bank, "1000.00", customer_id=alice_id),
        a2=funded_account(bank, "100.00", kind="savings", customer_id=alice_id),
        b1=funded_account(bank, "50.00", customer_id=bob_id, overdraft_limit="200"),
        closed=bank.accounts.open(system, bob_id),
        frozen=funded_account(bank, "300.00", customer_id=bob_id),
        suspended=funded_account(bank, "20.00", customer_id=carol_id),
        unknown=accountnum.make(99_999_999),
        teller=employee(bank, "teller").username,
        manager=employee(bank, "manager").username,
        alice=login_for(bank, alice_id, "alice").username,
        bob=login_for(bank, bob_id, "bob").username,
    )
    bank.accounts.close(system, world["closed"])
    bank.accounts.freeze(system, world["frozen"])
    bank.customers.set_status(system, carol_id, "suspended", "fraud check")
    world["transfer"] = bank.payments.transfer(system, world["a1"], world["b1"], "10.00",
                                               memo="seed")
    world["deposit"] = bank.payments.deposit(system, world["a1"], "5.00")
    return world


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """Build the world once; each test gets its own copy of the closed database file."""
    path = tmp_path_factory.mktemp("payments") / "template.duckdb"
    bank = bankms.open_bank(str(path), bcrypt_rounds=4)
    try:
        world = build_world(bank, bank.system_actor())
    finally:
        bank.close()
    return path, world


@pytest.fixture
def w(template, tmp_path):
    path, world = template
    copy = tmp_path / "bank.duckdb"
    shutil.copyfile(path, copy)
    bank = bankms.open_bank(str(copy), bcrypt_rounds=4)
    try:
        ns = SimpleNamespace(bank=bank, system=bank.system_actor(), **world)
        for role in ("teller", "manager", "alice", "bob"):
            setattr(ns, role, bank.auth.actor_for(world[role]))
        yield ns
    finally:
        bank.close()


# (case id, the call that must be refused, the error class expected)
REFUSALS = [
    # amounts
    ("float amount", lambda w: w.bank.payments.deposit(w.teller, w.a1, 12.5), InvalidAmount),
    ("zero amount", lambda w: w.bank.payments.deposit(w.teller, w.a1, "0"), InvalidAmount),
    ("negative deposit", lambda w: w.bank.payments.deposit(w.teller, w.a1, "-5"),
     InvalidAmount),
    ("negative transfer reverses direction",
     lambda w: w.bank.payments.transfer(w.teller, w.b1, w.a1, "-5"), InvalidAmount),
    ("three decimals", lambda w: w.bank.payments.withdraw(w.teller, w.a1, "1.005"),
     InvalidAmount),
    ("text amount", lambda w: w.bank.payments.transfer(w.teller, w.a1, w.b1, "ten"),
     InvalidAmount),
    ("SQL amount", lambda w: w.bank.payments.transfer(w.teller, w.a1, w.b1, "1; DROP TABLE x"),
     InvalidAmount),
    ("None amount", lambda w: w.bank.payments.deposit(w.teller, w.a1, None), InvalidAmount),
    ("NaN amount", lambda w: w.bank.payments.deposit(w.teller, w.a1, Decimal("NaN")),
     InvalidAmount),
    ("over the maximum", lambda w: w.bank.payments.deposit(w.teller, w.a1, "100000000000.01"),
     InvalidAmount),
    # account numbers
    ("mistyped deposit account", lambda w: w.bank.payments.deposit(w.teller, typo(w.a1), "1"),
     InvalidAccountNumber),
    ("mistyped source", lambda w: w.bank.payments.transfer(w.teller, typo(w.a1), w.b1, "1"),
     InvalidAccountNumber),
    ("mistyped target", lambda w: w.bank.payments.transfer(w.teller, w.a1, typo(w.b1), "1"),
     InvalidAccountNumber),
    ("short number", lambda w: w.bank.payments.withdraw(w.teller, w.a1[:-1], "1"),
     InvalidAccountNumber),
    ("internal account typed in",
     lambda w: w.bank.payments.transfer(w.teller, INTERNAL["teller_cash"], w.a1, "1"),
     InvalidAccountNumber),
    ("account number as int", lambda w: w.bank.payments.deposit(w.teller, int(w.a1), "1"),
     InvalidAccountNumber),
    ("unknown deposit account", lambda w: w.bank.payments.deposit(w.teller, w.unknown, "1"),
     AccountNotFound),
    ("unknown target", lambda w: w.bank.payments.transfer(w.teller, w.a1, w.unknown, "1"),
     AccountNotFound),
    ("unknown source", lambda w: w.bank.payments.transfer(w.teller, w.unknown, w.a1, "1"),
     AccountNotFound),
    # account status
    ("deposit to closed", lambda w: w.bank.payments.deposit(w.teller, w.closed, "1"),
     AccountClosed),
    ("withdraw from closed", lambda w: w.bank.payments.withdraw(w.teller, w.closed, "1"),
     AccountClosed),
    ("transfer to closed", lambda w: w.bank.payments.transfer(w.teller, w.a1, w.closed, "1"),
     AccountClosed),
    ("withdraw from frozen", lambda w: w.bank.payments.withdraw(w.teller, w.frozen, "1"),
     AccountFrozen),
    ("transfer out of frozen",
     lambda w: w.bank.payments.transfer(w.teller, w.frozen, w.a1, "1"), AccountFrozen),
    ("transfer to suspended holder",
     lambda w: w.bank.payments.transfer(w.teller, w.a1, w.suspended, "1"), AccountNotActive),
    ("withdraw from suspended holder",
     lambda w: w.bank.payments.withdraw(w.teller, w.suspended, "1"), AccountNotActive),
    # same account, also when typed differently
    ("same source and target", lambda w: w.bank.payments.transfer(w.teller, w.a1, w.a1, "1"),
     SameAccount),
    ("same account spaced",
     lambda w: w.bank.payments.transfer(w.teller, w.a1, accountnum.pretty(w.a1), "1"),
     SameAccount),
    # funds and overdraft
    ("withdraw more than balance",
     lambda w: w.bank.payments.withdraw(w.teller, w.a1, "995.01"), InsufficientFunds),
    ("transfer more than balance",
     lambda w: w.bank.payments.transfer(w.teller, w.a2, w.a1, "100.01"), InsufficientFunds),
    ("beyond overdraft limit",
     lambda w: w.bank.payments.withdraw(w.teller, w.b1, "260.01"), InsufficientFunds),
    ("transfer beyond overdraft",
     lambda w: w.bank.payments.transfer(w.teller, w.b1, w.a1, "260.01"), InsufficientFunds),
    # who may do what
    ("customer moves someone else's money",
     lambda w: w.bank.payments.transfer(w.alice, w.b1, w.a1, "1"), PermissionDenied),
    ("customer empties a stranger into a stranger",
     lambda w: w.bank.payments.transfer(w.alice, w.b1, w.frozen, "1"), PermissionDenied),
    ("customer deposits", lambda w: w.bank.payments.deposit(w.alice, w.a1, "1"),
     PermissionDenied),
    ("customer withdraws", lambda w: w.bank.payments.withdraw(w.alice, w.a1, "1"),
     PermissionDenied),
    ("teller reverses",
     lambda w: w.bank.payments.reverse(w.teller, w.transfer.transaction_id, "mistake"),
     PermissionDenied),
    ("customer reverses",
     lambda w: w.bank.payments.reverse(w.alice, w.transfer.transaction_id, "mistake"),
     PermissionDenied),
    ("no actor", lambda w: w.bank.payments.deposit(None, w.a1, "1"), PermissionDenied),
    ("actor is a string", lambda w: w.bank.payments.transfer("manager", w.a1, w.b1, "1"),
     PermissionDenied),
    ("actor is a dict",
     lambda w: w.bank.payments.withdraw({"role": "system"}, w.a1, "1"), PermissionDenied),
    ("no actor reverses",
     lambda w: w.bank.payments.reverse(None, w.transfer.transaction_id, "x"), PermissionDenied),
    ("customer role without customer",
     lambda w: w.bank.payments.transfer(Actor("ghost", "customer"), w.a1, w.b1, "1"),
     PermissionDenied),
    ("unknown role",
     lambda w: w.bank.payments.deposit(Actor("eve", "admin"), w.a1, "1"), PermissionDenied),
    # keys and memos
    ("blank key", lambda w: w.bank.payments.deposit(w.teller, w.a1, "1", idempotency_key=" "),
     InvalidInput),
    ("key too long",
     lambda w: w.bank.payments.deposit(w.teller, w.a1, "1", idempotency_key="k" * 129),
     InvalidInput),
    ("key not text", lambda w: w.bank.payments.deposit(w.teller, w.a1, "1", idempotency_key=7),
     InvalidInput),
    ("memo too long", lambda w: w.bank.payments.deposit(w.teller, w.a1, "1", memo="m" * 141),
     InvalidInput),
    ("memo not text", lambda w: w.bank.payments.deposit(w.teller, w.a1, "1", memo=5),
     InvalidInput),
    # reversals
    ("reverse unknown transaction",
     lambda w: w.bank.payments.reverse(w.manager, 999_999, "mistake"), TransactionNotFound),
    ("reverse without reason",
     lambda w: w.bank.payments.reverse(w.manager, w.transfer.transaction_id, "  "),
     InvalidInput),
    ("reverse a non-id",
     lambda w: w.bank.payments.reverse(w.manager, "abc", "mistake"), InvalidInput),
]


@pytest.mark.parametrize("call,expected", [r[1:] for r in REFUSALS],
                         ids=[r[0] for r in REFUSALS])
def test_refusal_changes_nothing(w, call, expected):
    before = snapshot(w.bank)
    with pytest.raises(expected) as info:
        call(w)
    assert isinstance(info.value, BankError)
    assert str(info.value), "a refusal says why in plain words"
    assert snapshot(w.bank) == before
    assert w.bank.audit.verify() == []


def test_reversal_refused_when_the_money_is_gone(w):
    """A reversal is a payment like any other: it cannot overdraw the account it debits."""
    w.bank.payments.withdraw(w.system, w.a1, "995.00")
    before = snapshot(w.bank)
    with pytest.raises(InsufficientFunds):
        w.bank.payments.reverse(w.manager, w.deposit.transaction_id, "mistake")
    assert snapshot(w.bank) == before


def test_setup_sanity(w):
    """The fixture is what the refusal table assumes."""
    b = w.bank
    assert [cents(b, n) for n in (w.a1, w.a2, w.b1, w.closed, w.frozen, w.suspended)] == [
        99500, 10000, 6000, 0, 30000, 2000]
    assert b.accounts.get(w.system, w.frozen)["status"] == "frozen"
    assert b.accounts.get(w.system, w.closed)["status"] == "closed"
    assert b.accounts.available(w.system, w.b1) == Decimal("260.00")


def test_insufficient_funds_says_what_is_available(w):
    """The refusal names what could leave the account now, overdraft included."""
    b = w.bank
    # (withdrawal that succeeds first or None, refused amount, available in the message)
    for first, refused, available in [(None, "260.01", "$260.00"), ("160.00", "150.00", "$100.00"),
                                      ("100.00", "0.01", "$0.00")]:
        if first:
            b.payments.withdraw(w.teller, w.b1, first)
        with pytest.raises(InsufficientFunds, match=rf"has \{available} available"):
            b.payments.withdraw(w.teller, w.b1, refused)


# (case id, the call that must succeed, {account attribute: expected change in cents})
ACCEPTED = [
    ("deposit", lambda w: w.bank.payments.deposit(w.teller, w.a1, "12.34"), {"a1": 1234}),
    ("withdraw all", lambda w: w.bank.payments.withdraw(w.teller, w.a1, "995.00"),
     {"a1": -99500}),
    ("withdraw into overdraft to the limit",
     lambda w: w.bank.payments.withdraw(w.teller, w.b1, "260.00"), {"b1": -26000}),
    ("transfer", lambda w: w.bank.payments.transfer(w.teller, w.a1, w.b1, "100"),
     {"a1": -10000, "b1": 10000}),
    ("deposit into frozen", lambda w: w.bank.payments.deposit(w.teller, w.frozen, "1"),
     {"frozen": 100}),
    ("transfer into frozen", lambda w: w.bank.payments.transfer(w.teller, w.a1, w.frozen, "2"),
     {"a1": -200, "frozen": 200}),
    ("customer transfer from own account",
     lambda w: w.bank.payments.transfer(w.alice, w.a1, w.b1, "3.00"), {"a1": -300, "b1": 300}),
    ("customer transfer between own accounts",
     lambda w: w.bank.payments.transfer(w.alice, w.a2, w.a1, "100"),
     {"a2": -10000, "a1": 10000}),
    ("customer into overdraft",
     lambda w: w.bank.payments.transfer(w.bob, w.b1, w.a1, "260"), {"b1": -26000, "a1": 26000}),
    ("manager reverses a transfer",
     lambda w: w.bank.payments.reverse(w.manager, w.transfer.transaction_id, "typo"),
     {"a1": 1000, "b1": -1000}),
]


@pytest.mark.parametrize("call,changes", [r[1:] for r in ACCEPTED], ids=[r[0] for r in ACCEPTED])
def test_accepted_moves_exactly_the_amount(w, call, changes):
    numbers = {name: getattr(w, name) for name in ("a1", "a2", "b1", "frozen")}
    before = {name: cents(w.bank, n) for name, n in numbers.items()}
    cash_before = cents(w.bank, INTERNAL["teller_cash"])
    tx_before = snapshot(w.bank)["transactions"]
    receipt = call(w)
    assert receipt.replayed is False
    after = {name: cents(w.bank, n) for name, n in numbers.items()}
    assert {k: after[k] - before[k] for k in after if after[k] != before[k]} == changes
    # The other side of deposits and withdrawals is teller cash; money is never created.
    customer_change = sum(changes.values())
    assert cents(w.bank, INTERNAL["teller_cash"]) - cash_before == -customer_change
    assert snapshot(w.bank)["transactions"] == tx_before + 1
    assert w.bank.audit.verify() == []


def test_receipt_and_stored_rows(w):
    b = w.bank
    r = b.payments.transfer(w.teller, accountnum.pretty(w.a1), w.b1, "$1.50",
                            idempotency_key="  my-key  ", memo="  rent   for  May ")
    assert (r.amount, r.amount_cents, r.kind) == (Decimal("1.50"), 150, "transfer")
    assert (r.source_account, r.target_account) == (w.a1, w.b1)
    assert (r.idempotency_key, r.memo) == ("my-key", "rent for May")
    row = b.read_one("SELECT kind, amount_cents, memo, source_account, target_account, actor, "
                     "actor_role, idempotency_key FROM transactions WHERE id = ?",
                     [r.transaction_id])
    assert row == ("transfer", 150, "rent for May", w.a1, w.b1, w.teller.username, "teller",
                   "my-key")
    legs = b.read("SELECT a.account_number, p.amount_cents FROM postings p JOIN accounts a "
                  "ON a.id = p.account_id WHERE p.transaction_id = ? ORDER BY p.id",
                  [r.transaction_id])
    assert legs == [(w.a1, -150), (w.b1, 150)]
    got = b.payments.get(w.teller, r.transaction_id)
    assert got["amount_cents"] == 150 and got["memo"] == "rent for May"
    assert b.payments.get(w.alice, r.transaction_id)["transaction_id"] == r.transaction_id
    with pytest.raises(PermissionDenied):
        b.payments.get(Actor("x", "customer", customer_id=w.bob_id + 1000), r.transaction_id)


# -- idempotency -------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", ["abc", None, "1.5", ""])
def test_get_with_a_bad_id_is_refused_plainly(w, bad):
    with pytest.raises(InvalidInput):
        w.bank.payments.get(w.teller, bad)


def test_same_key_same_content_returns_first_receipt(w):
    b = w.bank
    first = b.payments.transfer(w.alice, w.a1, w.b1, "7.00", idempotency_key="k-1", memo="m")
    before = snapshot(b)
    again = b.payments.transfer(w.alice, w.a1, w.b1, "7.00", idempotency_key="k-1", memo="m")
    assert again.replayed is True and first.replayed is False
    assert again.transaction_id == first.transaction_id
    assert (again.amount, again.source_account, again.target_account, again.memo) == (
        first.amount, first.source_account, first.target_account, first.memo)
    assert snapshot(b) == before
    # The receipt comes back even after the account changed state: the payment happened.
    b.accounts.freeze(w.system, w.a1)
    third = b.payments.transfer(w.alice, w.a1, w.b1, "7.00", idempotency_key="k-1", memo="m")
    assert third.replayed is True and third.transaction_id == first.transaction_id
    assert b.read_one("SELECT count(*) FROM transactions WHERE idempotency_key = 'k-1'") == (1,)


# (case id, the service call replaying an old-style request, its kind, legs given the account
# number, the error expected or None when the first receipt must come back)
OLD_STYLE_REPLAYS = [
    ("deposit, default channel", "deposit", {}, lambda n: [(INTERNAL["teller_cash"], -700), (n, 700)],
     None),
    ("withdrawal, default channel", "withdraw", {},
     lambda n: [(n, -700), (INTERNAL["teller_cash"], 700)], None),
    ("deposit, now at an ATM", "deposit", {"channel": "atm"},
     lambda n: [(INTERNAL["teller_cash"], -700), (n, 700)], IdempotencyConflict),
]


@pytest.mark.parametrize("method,kwargs,legs,expected",
                         [c[1:] for c in OLD_STYLE_REPLAYS], ids=[c[0] for c in OLD_STYLE_REPLAYS])
def test_a_key_used_before_channels_existed_replays(w, method, kwargs, legs, expected):
    """A deposit or withdrawal posted before payments had channels (its request carried none)
    replays under the same key as the first receipt: the default channel, cash, is not part of
    the request's hash; another channel is a different request."""
    b = w.bank
    kind = "deposit" if method == "deposit" else "withdrawal"
    sides = {"target_account": w.a1} if kind == "deposit" else {"source_account": w.a1}
    old = PostingRequest(kind=kind, actor=w.teller, action=f"payment.{method}", legs=legs(w.a1),
                         amount_cents=700, idempotency_key="k-old", internal_ok=True, **sides)
    first = b.payments._post_or_queue(old)
    before = snapshot(b)
    call = getattr(b.payments, method)
    if expected is not None:
        with pytest.raises(expected):
            call(w.teller, w.a1, "7.00", idempotency_key="k-old", **kwargs)
    else:
        again = call(w.teller, w.a1, "7.00", idempotency_key="k-old", **kwargs)
        assert again.replayed is True and first.replayed is False
        assert again.transaction_id == first.transaction_id
    assert snapshot(b) == before


@pytest.mark.parametrize("method", ["deposit", "withdraw"])
def test_a_key_stored_while_cash_was_hashed_replays(w, method):
    """Between the landing of channels and the default channel's leaving the hash, a cash
    payment's key was stored with 'cash' in its hash: its replay is still the same request."""
    from bankms.services.ledger import _hash_parts
    b = w.bank
    kind = "deposit" if method == "deposit" else "withdrawal"
    if kind == "deposit":
        sides, legs = {"target_account": w.a1}, [(INTERNAL["teller_cash"], -700), (w.a1, 700)]
    else:
        sides, legs = {"source_account": w.a1}, [(w.a1, -700), (INTERNAL["teller_cash"], 700)]
    stored = _hash_parts([kind, w.teller.username, legs, 700, "", None, "cash"])
    then = PostingRequest(kind=kind, actor=w.teller, action=f"payment.{method}", legs=legs,
                          amount_cents=700, idempotency_key="k-then", internal_ok=True,
                          channel="cash", request_hash=stored, **sides)
    first = b.payments._post_or_queue(then)
    before = snapshot(b)
    again = getattr(b.payments, method)(w.teller, w.a1, "7.00", idempotency_key="k-then")
    assert again.replayed is True and again.transaction_id == first.transaction_id
    with pytest.raises(IdempotencyConflict):
        getattr(b.payments, method)(w.teller, w.a1, "7.01", idempotency_key="k-then")
    assert snapshot(b) == before


# (case id, a different request under the key 'k-2' of a 7.00 transfer from a1 to b1 by Alice)
CONFLICTS = [
    ("other amount", lambda w: w.bank.payments.transfer(w.alice, w.a1, w.b1, "7.01",
                                                        idempotency_key="k-2")),
    ("other target", lambda w: w.bank.payments.transfer(w.alice, w.a1, w.a2, "7.00",
                                                        idempotency_key="k-2")),
    ("other memo", lambda w: w.bank.payments.transfer(w.alice, w.a1, w.b1, "7.00",
                                                      idempotency_key="k-2", memo="x")),
    ("other actor", lambda w: w.bank.payments.transfer(w.teller, w.a1, w.b1, "7.00",
                                                       idempotency_key="k-2")),
    ("other kind", lambda w: w.bank.payments.withdraw(w.teller, w.a1, "7.00",
                                                      idempotency_key="k-2")),
]


@pytest.mark.parametrize("call", [c[1] for c in CONFLICTS], ids=[c[0] for c in CONFLICTS])
def test_same_key_other_content_conflicts(w, call):
    w.bank.payments.transfer(w.alice, w.a1, w.b1, "7.00", idempotency_key="k-2")
    before = snapshot(w.bank)
    with pytest.raises(IdempotencyConflict):
        call(w)
    assert snapshot(w.bank) == before


def test_refused_request_does_not_burn_its_key(w):
    b = w.bank
    with pytest.raises(InsufficientFunds):
        b.payments.withdraw(w.teller, w.a2, "150.00", idempotency_key="k-3")
    b.payments.deposit(w.teller, w.a2, "50.00")
    receipt = b.payments.withdraw(w.teller, w.a2, "150.00", idempotency_key="k-3")
    assert receipt.replayed is False and cents(b, w.a2) == 0


# -- reversals ---------------------------------------------------------------------------------

def test_reversal_is_a_linked_reversing_entry(w):
    b = w.bank
    original = w.transfer
    legs_before = b.read("SELECT account_id, amount_cents FROM postings WHERE transaction_id = ? "
                         "ORDER BY id", [original.transaction_id])
    balances_before = (cents(b, w.a1), cents(b, w.b1))
    r = b.payments.reverse(w.manager, original.transaction_id, "wrong payee")
    assert r.kind == "reversal" and r.amount_cents == 1000
    assert (r.source_account, r.target_account) == (w.b1, w.a1)
    assert r.transaction_id != original.transaction_id
    row = b.read_one("SELECT reverses_id, memo, actor FROM transactions WHERE id = ?",
                     [r.transaction_id])
    assert row[0] == original.transaction_id
    assert "wrong payee" in row[1] and row[2] == w.manager.username
    legs = b.read("SELECT account_id, amount_cents FROM postings WHERE transaction_id = ? "
                  "ORDER BY id", [r.transaction_id])
    assert legs == [(acc, -amount) for acc, amount in legs_before]
    # The original is untouched: append-only.
    assert b.read("SELECT account_id, amount_cents FROM postings WHERE transaction_id = ? "
                  "ORDER BY id", [original.transaction_id]) == legs_before
    assert (cents(b, w.a1), cents(b, w.b1)) == (balances_before[0] + 1000,
                                               balances_before[1] - 1000)
    assert b.audit.verify() == []


def test_reversal_cannot_be_applied_twice(w):
    b = w.bank
    tid = w.transfer.transaction_id
    first = b.payments.reverse(w.manager, tid, "wrong payee")
    before = snapshot(b)
    # Retried as it was (same default key, same content): the first receipt, nothing posted.
    again = b.payments.reverse(w.manager, tid, "wrong payee")
    assert again.replayed is True and again.transaction_id == first.transaction_id
    # Under a fresh key: refused as already reversed.
    with pytest.raises(AlreadyReversed):
        b.payments.reverse(w.manager, tid, "wrong payee", idempotency_key="another")
    with pytest.raises(AlreadyReversed):
        b.payments.reverse(w.system, tid, "by another manager", idempotency_key="third")
    # A reversal is final; a new transaction corrects it.
    with pytest.raises(InvalidInput):
        b.payments.reverse(w.manager, first.transaction_id, "undo the undo")
    assert snapshot(b) == before
    assert b.read_one("SELECT count(*) FROM transactions WHERE reverses_id = ?", [tid]) == (1,)


def test_reversal_twice_in_one_batch_posts_once(w):
    """Reversals of one transaction that reach the writer together: one wins."""
    b = w.bank
    tid = w.transfer.transaction_id
    outcomes = in_one_batch(b, [
        lambda i=i: b.payments.reverse(w.manager, tid, "dup", idempotency_key=f"rev-{i}")
        for i in range(4)])
    assert [type(o).__name__ for o in outcomes].count("Receipt") == 1
    assert all(isinstance(o, (bankms.Receipt, AlreadyReversed)) for o in outcomes)
    assert b.read_one("SELECT count(*) FROM transactions WHERE reverses_id = ?", [tid]) == (1,)
    assert b.audit.verify() == []


def test_same_key_twice_in_one_batch_posts_once_and_says_replayed(w):
    b = w.bank
    before = cents(b, w.a1)
    outcomes = in_one_batch(b, [
        lambda: b.payments.transfer(w.alice, w.a1, w.b1, "2.00", idempotency_key="twin")] * 3)
    assert len({o.transaction_id for o in outcomes}) == 1
    assert sorted(o.replayed for o in outcomes) == [False, True, True]
    assert cents(b, w.a1) == before - 200
    assert b.read_one("SELECT count(*) FROM transactions WHERE idempotency_key = 'twin'") == (1,)


def test_same_key_other_content_in_one_batch_conflicts(w):
    b = w.bank
    outcomes = in_one_batch(b, [
        lambda: b.payments.transfer(w.alice, w.a1, w.b1, "2.00", idempotency_key="twin"),
        lambda: b.payments.transfer(w.alice, w.a1, w.b1, "3.00", idempotency_key="twin")])
    # Whichever reached the writer first wins; the other is refused.
    [receipt] = [o for o in outcomes if isinstance(o, bankms.Receipt)]
    assert [type(o) for o in outcomes].count(IdempotencyConflict) == 1
    assert b.read("SELECT id, amount_cents FROM transactions WHERE idempotency_key = 'twin'") == [
        (receipt.transaction_id, receipt.amount_cents)]


# -- customer daily limit ----------------------------------------------------------------------

def test_customer_daily_transfer_limit(w):
    b = w.bank
    b.settings.set(w.system, "customer_daily_transfer_cents_max", "10000")
    b.payments.transfer(w.alice, w.a1, w.b1, "60.00")
    before = snapshot(b)
    with pytest.raises(LimitExceeded, match=r"\$40\.00 is left"):
        b.payments.transfer(w.alice, w.a1, w.b1, "40.01")
    assert snapshot(b) == before
    b.payments.transfer(w.alice, w.a1, w.b1, "40.00")  # exactly the limit
    with pytest.raises(LimitExceeded):
        b.payments.transfer(w.alice, w.a1, w.b1, "0.01")
    # Moving money between one's own accounts is not spending.
    b.payments.transfer(w.alice, w.a1, w.a2, "500.00")
    # The limit is per customer and for customers only; staff are not limited.
    b.payments.transfer(w.bob, w.b1, w.a1, "100.00")
    b.payments.transfer(w.teller, w.a1, w.b1, "200.00")
    assert b.audit.verify() == []


def test_customer_daily_limit_in_one_batch(w):
    """Transfers that reach the writer together still count against each other."""
    b = w.bank
    b.settings.set(w.system, "customer_daily_transfer_cents_max", "10000")
    outcomes = in_one_batch(b, [
        lambda i=i: b.payments.transfer(w.alice, w.a1, w.b1, "30.00", idempotency_key=f"l{i}")
        for i in range(5)])
    assert [type(o).__name__ for o in outcomes].count("Receipt") == 3
    assert [type(o).__name__ for o in outcomes].count("LimitExceeded") == 2
    assert cents(b, w.b1) == 6000 + 9000


# -- audit of refusals -------------------------------------------------------------------------

def refusals(bank, action):
    return bank.read("SELECT actor, actor_role, action, outcome, after FROM audit_log "
                     "WHERE action = ? AND outcome = 'refused' ORDER BY id", [action])


# (case id, refused call, action audited, actor name audited)
AUDITED = [
    ("customer deposit", lambda w: w.bank.payments.deposit(w.alice, w.a1, "1"),
     "payment.deposit", "alice"),
    ("teller reversal",
     lambda w: w.bank.payments.reverse(w.teller, w.transfer.transaction_id, "x"),
     "payment.reverse", None),
    ("no actor", lambda w: w.bank.payments.withdraw(None, w.a1, "1"), "payment.withdraw",
     "anonymous"),
    ("someone else's account", lambda w: w.bank.payments.transfer(w.alice, w.b1, w.a1, "1"),
     "payment.transfer", "alice"),
]


@pytest.mark.parametrize("call,action,username", [a[1:] for a in AUDITED],
                         ids=[a[0] for a in AUDITED])
def test_permission_denied_is_audited(w, call, action, username):
    username = username or w.teller.username
    before = len(refusals(w.bank, action))
    with pytest.raises(PermissionDenied):
        call(w)
    rows = refusals(w.bank, action)
    assert len(rows) == before + 1
    actor, _, _, outcome, after = rows[-1]
    assert (actor, outcome) == (username, "refused")
    assert "PermissionDenied" in after


def test_guard_refusals_are_audited(w):
    with pytest.raises(InsufficientFunds):
        w.bank.payments.withdraw(w.teller, w.a2, "1000", idempotency_key="audit-me")
    rows = refusals(w.bank, "payment.withdraw")
    assert any("InsufficientFunds" in after and "audit-me" in after for *_, after in rows)


def test_accepted_payment_is_audited_with_balances(w):
    r = w.bank.payments.transfer(w.teller, w.a1, w.b1, "1.00")
    row = w.bank.read_one("SELECT actor, action, outcome, after FROM audit_log "
                          "WHERE entity = 'transaction' AND entity_id = ?",
                          [str(r.transaction_id)])
    assert row[:3] == (w.teller.username, "payment.transfer", "ok")
    assert '"balances_before"' in row[3] and '"balances_after"' in row[3]


def test_a_batch_audits_its_requests_in_the_order_they_came(w):
    """One batch with refusals among successes (ledger.BatchPoster): audit ids follow the
    requests' order, refusals included, although the refused keys are looked up once after the
    loop; a refused request whose key an earlier success used answers as a conflict (a
    different request) and is not audited as refused."""
    b = w.bank
    cash = INTERNAL["teller_cash"]

    def deposit(key, cents):
        return PostingRequest(kind="deposit", actor=w.teller, action="payment.deposit",
                              legs=[(cash, -cents), (w.a1, cents)], amount_cents=cents,
                              idempotency_key=key, internal_ok=True, target_account=w.a1)

    def withdrawal(key, cents):
        return PostingRequest(kind="withdrawal", actor=w.teller, action="payment.withdraw",
                              legs=[(w.a1, -cents), (cash, cents)], amount_cents=cents,
                              idempotency_key=key, internal_ok=True, source_account=w.a1)

    b.payments._post_or_queue(withdrawal("k-earlier", 100))
    too_much = 10 ** 12
    batch = [withdrawal("k-refused-1", too_much), deposit("k-ok-1", 500),
             withdrawal("k-earlier", too_much), withdrawal("k-refused-2", too_much),
             deposit("k-ok-2", 700)]
    last_id = b.read_one("SELECT max(id) FROM audit_log")[0]
    outcomes = b.write(lambda uow: b._writer._post_batch(uow, batch))
    kinds = [type(o).__name__ for o in outcomes]
    assert kinds == ["InsufficientFunds", "Receipt", "IdempotencyConflict", "InsufficientFunds",
                     "Receipt"]
    rows = b.read("SELECT outcome, json_extract_string(after, '$.idempotency_key') "
                  "FROM audit_log WHERE id > ? ORDER BY id", [last_id])
    assert rows == [("refused", "k-refused-1"), ("ok", "k-ok-1"), ("refused", "k-refused-2"),
                    ("ok", "k-ok-2")]
    assert b.audit.verify() == []


def test_a_closed_bank_has_no_busy_writer(w):
    b = w.bank
    b.payments.deposit(w.teller, w.a1, "1.00")
    b.close()
    assert b._writer.busy is False
