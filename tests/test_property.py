"""Stateful property test: random deposits, withdrawals, transfers, reversals, freezes, closes and
retries, valid and invalid, against a small in-memory model of the rules. After every step each
balance and status equals the model and `verify()` finds nothing.

On DuckDB each example gets a fresh in-memory bank. On PostgreSQL the examples of a test share
the test's database, since a fresh database per example would cost about a second each. So that
they can share, each example opens customers and accounts of its own and uses idempotency keys
of its own: the examples before it are other customers' business, the model only compares its
own accounts, and its before/after checks compare the whole bank."""
from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    run_state_machine_as_test,
    invariant,
    precondition,
    rule,
)

import bankms
from bankms.domain import accountnum
from bankms.domain.errors import (
    AccountClosed,
    AccountFrozen,
    AccountNotFound,
    AlreadyReversed,
    InsufficientFunds,
    InvalidAccountNumber,
    InvalidAmount,
    InvalidState,
    PermissionDenied,
    SameAccount,
)
from bankms.domain.money import format_cents

pytestmark = pytest.mark.engines

# Account slots: 0 and 1 belong to customer A (0 has a 100.00 overdraft), 2 and 3 to B.
OWNER = ["A", "A", "B", "B"]
OVERDRAFT_CENTS = [10000, 0, 0, 0]
TYPO = -1  # a number whose check digits are wrong
UNKNOWN = -2  # a well-formed number that no account has

slots = st.sampled_from([0, 1, 2, 3, 0, 1, 2, 3, TYPO, UNKNOWN])
valid_amount = st.integers(min_value=1, max_value=30000).flatmap(
    lambda c: st.sampled_from([format_cents(c).replace("$", ""), f"{c // 100}.{c % 100:02d}"]))
invalid_amount = st.sampled_from(["0", "-5", "1.001", "abc", 12.5, None, "1,2345", "NaN",
                                  "1; DROP TABLE postings"])
amounts = st.one_of(valid_amount, valid_amount, valid_amount, invalid_amount)
actors = st.sampled_from(["system", "system", "A", "B"])
# Examples per test, by engine: each example is up to 30 steps, and every step runs verify().
# On PostgreSQL the examples share one growing database; 25 of them took 12 s there (and 25
# fresh in-memory DuckDB banks 110 s, on a loaded machine), so PostgreSQL runs fewer.
MAX_EXAMPLES = {"duckdb": 25, "pg": 10}
# Numbers the examples of a session apart (their national ids and idempotency keys).
_examples = itertools.count(1)


def parse(amount):
    try:
        return bankms.to_cents(amount), None
    except InvalidAmount:
        return None, InvalidAmount


class BankMachine(RuleBasedStateMachine):
    def __init__(self, bank, *, owned):
        super().__init__()
        self.bank = bank
        self.owned = owned  # closed after the example (DuckDB's in-memory bank per example)

    def teardown(self):
        if self.owned:
            self.bank.close()

    @initialize()
    def open_accounts(self):
        run = next(_examples)
        self.system = self.bank.system_actor()
        self.bank.settings.set(self.system, "customer_daily_transfer_cents_max", str(10 ** 12))
        ids = {}
        for name in ("A", "B"):
            ids[name] = self.bank.customers.create(
                self.system, full_name=f"Customer {name}", email=f"{name.lower()}@example.com",
                phone="+1 555 0100", date_of_birth="1980-01-01", national_id=f"N{name}{run}",
                address="1 Road")
        self.actors = {"system": self.system,
                       "A": bankms.Actor("a", "customer", customer_id=ids["A"]),
                       "B": bankms.Actor("b", "customer", customer_id=ids["B"])}
        self.numbers = [self.bank.accounts.open(self.system, ids[owner],
                                                overdraft_limit=str(od // 100))
                        for owner, od in zip(OWNER, OVERDRAFT_CENTS)]
        self.balance = [0, 0, 0, 0]
        self.status = ["active"] * 4
        # Successful, reversible transactions: id -> (legs as (slot, delta), reversed?)
        self.reversible = {}
        self.tx_ids = []
        self.last = None  # (call, receipt) of the last success, to retry with its key
        self.keys = (f"ex{run}-key-{i}" for i in itertools.count())

    # -- the model of the rules ------------------------------------------------------------
    def number(self, slot):
        if slot == TYPO:
            good = self.numbers[0]
            return good[:-1] + str((int(good[-1]) + 1) % 10)
        if slot == UNKNOWN:
            return accountnum.make(77_777_777)
        return self.numbers[slot]

    def leg_errors(self, legs, internal_ok=True):
        """The guard's order: statuses leg by leg, then funds leg by leg."""
        for slot, delta in legs:
            if slot is None:
                continue
            if self.status[slot] == "closed":
                return AccountClosed
            if self.status[slot] == "frozen" and delta < 0:
                return AccountFrozen
        for slot, delta in legs:
            if slot is not None and delta < 0 and \
                    self.balance[slot] + delta < -OVERDRAFT_CENTS[slot]:
                return InsufficientFunds
        return None

    def attempt(self, call, expected, legs, *, reversible=True, reverses=None):
        before = self.read_state()
        if expected is not None:
            with pytest.raises(expected):
                call(next(self.keys))
            assert self.read_state() == before
            return
        key = next(self.keys)
        receipt = call(key)
        assert receipt.replayed is False
        for slot, delta in legs:
            if slot is not None:
                self.balance[slot] += delta
        if reversible:
            self.reversible[receipt.transaction_id] = (legs, False)
        if reverses is not None:
            self.reversible[reverses] = (self.reversible[reverses][0], True)
        self.tx_ids.append(receipt.transaction_id)
        self.last = (call, key, receipt)

    def read_state(self):
        return (self.bank.read("SELECT account_number, balance_cents, status FROM accounts "
                               "ORDER BY account_number"),
                self.bank.read_one("SELECT count(*) FROM postings")[0])

    # -- rules -----------------------------------------------------------------------------
    @rule(slot=slots, amount=amounts)
    def deposit(self, slot, amount):
        cents, error = parse(amount)
        if error is None and slot == TYPO:
            error = InvalidAccountNumber
        if error is None and slot == UNKNOWN:
            error = AccountNotFound
        legs = [(None, -cents), (slot, cents)] if error is None else []
        error = error or self.leg_errors(legs)
        self.attempt(lambda key: self.bank.payments.deposit(
            self.system, self.number(slot), amount, idempotency_key=key), error, legs)

    @rule(slot=slots, amount=amounts)
    def withdraw(self, slot, amount):
        cents, error = parse(amount)
        if error is None and slot == TYPO:
            error = InvalidAccountNumber
        if error is None and slot == UNKNOWN:
            error = AccountNotFound
        legs = [(slot, -cents), (None, cents)] if error is None else []
        error = error or self.leg_errors(legs)
        self.attempt(lambda key: self.bank.payments.withdraw(
            self.system, self.number(slot), amount, idempotency_key=key), error, legs)

    @rule(slot=st.integers(0, 3), extra_cents=st.sampled_from([0, 1]))
    def withdraw_everything_available(self, slot, extra_cents):
        """The boundary: exactly what is available (with the overdraft) passes, a cent more not."""
        cents = self.balance[slot] + OVERDRAFT_CENTS[slot] + extra_cents
        if cents <= 0:
            return
        amount = format_cents(cents).replace("$", "")
        legs = [(slot, -cents), (None, cents)]
        self.attempt(lambda key: self.bank.payments.withdraw(
            self.system, self.numbers[slot], amount, idempotency_key=key),
            self.leg_errors(legs), legs)

    @rule(actor=actors, source=slots, dest=slots, amount=amounts)
    def transfer(self, actor, source, dest, amount):
        target = dest  # `target` is a reserved argument name of @rule
        cents, error = parse(amount)
        for slot in (source, target):
            if error is None and slot == TYPO:
                error = InvalidAccountNumber
        if error is None and source == target:
            error = SameAccount
        for slot in (source, target):
            if error is None and slot == UNKNOWN:
                error = AccountNotFound
        if error is None and actor != "system" and OWNER[source] != actor:
            error = PermissionDenied
        legs = [(source, -cents), (target, cents)] if error is None else []
        error = error or self.leg_errors(legs)
        self.attempt(lambda key: self.bank.payments.transfer(
            self.actors[actor], self.number(source), self.number(target), amount,
            idempotency_key=key), error, legs)

    @precondition(lambda self: self.reversible)
    @rule(data=st.data())
    def reverse(self, data):
        tid = data.draw(st.sampled_from(sorted(self.reversible)))
        legs, done = self.reversible[tid]
        undo = [(slot, -delta) for slot, delta in legs]
        error = AlreadyReversed if done else self.leg_errors(undo)
        self.attempt(lambda key: self.bank.payments.reverse(
            self.system, tid, "property test", idempotency_key=key), error, undo,
            reversible=False, reverses=tid)

    @rule(slot=st.integers(0, 3))
    def freeze(self, slot):
        error = None if self.status[slot] == "active" else InvalidState
        self.change(lambda: self.bank.accounts.freeze(self.system, self.numbers[slot]), error,
                    slot, "frozen")

    @rule(slot=st.integers(0, 3))
    def unfreeze(self, slot):
        error = None if self.status[slot] == "frozen" else InvalidState
        self.change(lambda: self.bank.accounts.unfreeze(self.system, self.numbers[slot]), error,
                    slot, "active")

    @rule(slot=st.integers(0, 3))
    def close(self, slot):
        closable = self.status[slot] != "closed" and self.balance[slot] == 0
        self.change(lambda: self.bank.accounts.close(self.system, self.numbers[slot]),
                    None if closable else InvalidState, slot, "closed")

    def change(self, call, error, slot, new_status):
        before = self.read_state()
        if error is not None:
            with pytest.raises(error):
                call()
            assert self.read_state() == before
        else:
            call()
            self.status[slot] = new_status

    @precondition(lambda self: self.last is not None)
    @rule()
    def retry_last_success(self):
        """A retry with the same key, whatever happened since, posts nothing."""
        call, key, receipt = self.last
        before = self.read_state()
        again = call(key)
        assert again.replayed is True
        assert again.transaction_id == receipt.transaction_id
        assert self.read_state() == before

    # -- invariants ------------------------------------------------------------------------
    @invariant()
    def matches_the_model(self):
        if not hasattr(self, "numbers"):
            return
        rows = dict((n, (b, s)) for n, b, s in self.bank.read(
            "SELECT account_number, balance_cents, status FROM accounts "
            "WHERE customer_id IS NOT NULL"))
        assert [rows[n] for n in self.numbers] == list(zip(self.balance, self.status))
        assert self.bank.audit.verify() == []
        (count,) = self.bank.read_one(
            "SELECT count(*) FROM transactions WHERE "
            + self.bank.engine.dialect.in_list("id", "BIGINT"), [self.tx_ids])
        assert count == len(set(self.tx_ids)) == len(self.tx_ids)


def test_bank_against_model(engine, request):
    if engine.name == "pg":
        shared = request.getfixturevalue("bank")
        machine = lambda: BankMachine(shared, owned=False)  # noqa: E731
    else:
        machine = lambda: BankMachine(  # noqa: E731
            bankms.open_bank(":memory:", bcrypt_rounds=4), owned=True)
    run_state_machine_as_test(machine, settings=settings(
        max_examples=MAX_EXAMPLES[engine.name], stateful_step_count=30, deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]))
