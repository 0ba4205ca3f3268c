"""Attack suite (issue 12, sign-in and inputs): each row does what an attacker would, through
the public API or AppTest, and asserts the refusal and that nothing changed.

Covered: lock-out of a real user by an attacker, enumeration by the sign-in message and by
registration, walking account numbers, 40-digit and other malformed ids, reserved idempotency
keys, non-ASCII digits in amounts, the sign-up limit per address, the payee look-up limit, and
refusals that would describe another customer.
"""
from __future__ import annotations

import datetime as dt

import pytest
from streamlit.testing.v1 import AppTest

import bankms
from bankms.domain import accountnum
from bankms.services import throttle
from bankms.domain.errors import (
    AccountLocked,
    AuthenticationError,
    BankError,
    InvalidAmount,
    InvalidInput,
    LimitExceeded,
)
from conftest import employee, funded_account, login_for, make_customer

PASSWORD = "a long test password 1"
FAILED = "The username or password is wrong."
ATTACKER = "203.0.113.66"
OFFICE = "198.51.100.10"
HOME = "198.51.100.77"


def snapshot(bank) -> dict:
    """Everything an attack must leave alone (the audit log and the counters are meant to
    grow: they record the attempt)."""
    tables = ("customers", "users", "accounts", "transactions", "postings", "idempotency_keys",
              "request_keys", "approval_requests", "holds", "loans", "sessions")
    counts = {t: bank.read(f"SELECT count(*) FROM {t}")[0][0] for t in tables}
    counts["balances"] = bank.read("SELECT account_number, balance_cents, holds_cents, status "
                                   "FROM accounts ORDER BY id")
    counts["customer_status"] = bank.read("SELECT id, status FROM customers ORDER BY id")
    return counts


def fail_login(bank, username, password, address, clock=None):
    """One failed attempt; with a clock, wait out any back-off first so the attempt counts."""
    try:
        bank.auth.login(username, password, client_address=address)
    except AccountLocked as exc:
        if clock is None:
            return exc
        clock.advance(exc.retry_after_s + 0.1)
        return fail_login(bank, username, password, address, clock)
    except AuthenticationError as exc:
        return exc
    raise AssertionError("the attempt signed in")


# -- lock-out of a real user ------------------------------------------------------------------

def test_an_attackers_failures_do_not_keep_the_manager_out(bank, clock):
    employee(bank, "manager", username="boss")
    before = snapshot(bank)
    for i in range(5):
        fail_login(bank, "boss", f"guess number {i}", ATTACKER, clock)
    # The attacker's address backs off; the next guess is refused without a password check.
    with pytest.raises(AccountLocked) as info:
        bank.auth.login("boss", PASSWORD, client_address=ATTACKER)
    assert str(info.value).startswith(FAILED) and "Try again in" in str(info.value)
    assert snapshot(bank) == {**before, "sessions": before["sessions"]}
    # The manager, from another address, signs in at once.
    assert bank.auth.login("boss", PASSWORD, client_address=OFFICE).username == "boss"


def test_the_username_backoff_is_short_and_spares_known_addresses(bank, clock):
    employee(bank, "manager", username="boss")
    bank.auth.login("boss", PASSWORD, client_address=OFFICE)  # a known address
    # A botnet: every guess from a new address, so no address backs off.
    waits = [fail_login(bank, "boss", "botnet guess", f"10.9.{i}.1", clock).retry_after_s
             for i in range(40)]
    cap_s = bank.settings.get_int("login_backoff_user_cap_s")
    assert cap_s <= 120 and max(waits) == cap_s
    assert bank.users.get("boss")["locked_until"] <= clock.now + dt.timedelta(seconds=cap_s)
    # From a new address the manager waits at most the cap...
    with pytest.raises(AccountLocked) as info:
        bank.auth.login("boss", PASSWORD, client_address=HOME)
    assert info.value.retry_after_s <= cap_s
    # ...and from an address they signed in from before, not at all.
    assert bank.auth.login("boss", PASSWORD, client_address=OFFICE).username == "boss"


def test_unlock_clears_the_backoff(bank, clock):
    manager = employee(bank, "manager", username="boss")
    employee(bank, "teller", username="tess")
    for i in range(12):
        fail_login(bank, "tess", "guess", f"10.8.{i}.1", clock)
    with pytest.raises(AccountLocked):
        bank.auth.login("tess", PASSWORD, client_address=HOME)
    assert list(bank.users.locked(manager)["username"]) == ["tess"]
    bank.users.unlock(manager, "tess")
    assert bank.users.locked(manager).empty
    assert bank.auth.login("tess", PASSWORD, client_address=HOME).username == "tess"


# -- enumeration --------------------------------------------------------------------------------

def test_sign_in_answers_the_same_for_every_kind_of_failure(bank, clock):
    employee(bank, "teller", username="tess")
    employee(bank, "teller", username="gone")
    bank.users.deactivate(bank.system_actor(), "gone")
    transcripts = {}
    # (username, password): each makes eight attempts from its own address.
    for username, password in [("tess", "wrong password"), ("nobody", PASSWORD),
                               ("gone", PASSWORD), ("tess", "")]:
        address = f"10.7.{len(transcripts)}.1"
        seen = []
        for _ in range(8):
            with pytest.raises(AuthenticationError) as info:
                bank.auth.login(username, password, client_address=address)
            seen.append((type(info.value).__name__, str(info.value)))
        transcripts[(username, password)] = seen
    assert len({tuple(t) for t in transcripts.values()}) == 1
    assert all(message.startswith(FAILED) for _, message in transcripts[("tess", "")])


@pytest.mark.parametrize("duplicate", ["username", "national id", "both"])
def test_registration_answers_the_same_for_a_duplicate(bank, duplicate):
    taken = dict(full_name="Owen Owner", email="owen@example.com", phone="+1 555 0101",
                 date_of_birth="1980-01-01", national_id="TAKEN-1", address="1 Old Road")
    bank.customers.register(**taken, username="owen", password=PASSWORD)
    before = snapshot(bank)
    attempt = dict(taken, full_name="Eve Prober", national_id="FRESH-9")
    username = "eve.prober"
    if duplicate in ("username", "both"):
        username = "owen"
    if duplicate in ("national id", "both"):
        attempt["national_id"] = "taken-1"
    assert bank.customers.register(**attempt, username=username, password=PASSWORD) is None
    assert snapshot(bank) == before
    refused = bank.read("SELECT after FROM audit_log WHERE action = 'customer.register' AND "
                        "outcome = 'refused'")
    assert len(refused) == 1
    # The sign-up never verifies: Eve cannot sign in with what she chose.
    with pytest.raises(AuthenticationError):
        bank.auth.login(username, "not owens password 1")


def register_on_page(values) -> AppTest:
    from streamlit.util import calc_hash

    from apptest_util import APP

    at = AppTest.from_file(APP, default_timeout=30).run()
    at._page_hash = calc_hash("sign-up")
    at.run()
    for widget in at.text_input:
        if widget.label in values:
            widget.input(values[widget.label])
    at.date_input[0].set_value(dt.date(1990, 1, 1))
    at.button[0].click().run()
    assert not at.exception and not at.error
    return at


def test_the_register_page_says_the_same_for_new_and_taken_details(tmp_path, monkeypatch):
    monkeypatch.setenv("BANKMS_DB", str(tmp_path / "page.duckdb"))
    monkeypatch.setenv("BANKMS_COOKIE_KEY_FILE", str(tmp_path / "cookie.key"))
    values = {"Full name": "Rita Register", "Email": "rita@example.com",
              "Phone": "+1 555 0199", "National id": "REG777", "Address": "7 New Road",
              "Username": "rita", "Password": "rita long password 1",
              "Repeat the password": "rita long password 1"}
    first = register_on_page(values)
    again = register_on_page({**values, "Full name": "Someone Else", "Username": "rita2"})
    answers = [[s.value for s in at.success] for at in (first, again)]
    assert answers[0] == answers[1] and "We received your sign-up" in answers[0][0]
    from pages.common import _open_bank
    bank = _open_bank(str(tmp_path / "page.duckdb"))
    assert bank.users.get("rita") is not None and bank.users.get("rita2") is None


# -- walking account numbers -------------------------------------------------------------------

def test_new_account_numbers_are_random_valid_and_unique(bank, system):
    cid = make_customer(bank)
    numbers = [bank.accounts.open(system, cid) for _ in range(30)]
    assert all(accountnum.is_valid(n) and n.startswith(accountnum.PREFIX) for n in numbers)
    assert len(set(numbers)) == len(numbers)
    steps = {int(b[2:10]) - int(a[2:10]) for a, b in zip(numbers, numbers[1:])}
    assert len(steps) > 1, "consecutive numbers must not differ by a fixed step"
    # Knowing one number and its neighbours finds nobody.
    body = int(numbers[0][2:10])
    neighbours = {accountnum.make(body + d) for d in range(-5, 6) if d}
    assert neighbours.isdisjoint(numbers)


def test_a_taken_number_is_drawn_again(bank, system, monkeypatch):
    cid = make_customer(bank)
    first = bank.accounts.open(system, cid)
    draws = iter([first, first, accountnum.make(12345678)])
    monkeypatch.setattr(accountnum, "random_number", lambda: next(draws))
    assert bank.accounts.open(system, cid) == accountnum.make(12345678)


# -- malformed ids ------------------------------------------------------------------------------

BAD_IDS = ["1" * 40, "1e3", " 12 ", "-5", "0", "\u0661\u0662", "１２", "12.0", "", None, True,
           1.0, -3, 0, 10 ** 40]


@pytest.mark.parametrize("value", BAD_IDS, ids=repr)
def test_every_typed_id_is_refused_clearly(bank, system, value):
    manager = employee(bank, "manager")
    before = snapshot(bank)
    calls = {
        "customer": lambda: bank.customers.get(manager, value),
        "verify": lambda: bank.customers.verify(manager, value),
        "loan": lambda: bank.loans.get(manager, value),
        "request": lambda: bank.approvals.approve(manager, value),
        "transaction": lambda: bank.payments.receipt_details(manager, value),
        "reversal": lambda: bank.payments.reverse(manager, value, "typo"),
    }
    if value is not None:  # accounts.list(actor, None) lists every account
        calls["accounts of"] = lambda: bank.accounts.list(manager, value)
    for name, call in calls.items():
        with pytest.raises(InvalidInput) as info:
            call()
        assert "id" in str(info.value) or "number" in str(info.value), name
    assert snapshot(bank) == before


@pytest.mark.parametrize("value, expected", [("12", 12), (12, 12), ("007", 7),
                                             (10 ** 15 - 1, 10 ** 15 - 1)])
def test_good_ids_parse(value, expected):
    from bankms.domain.ids import parse_id
    assert parse_id(value, "customer id") == expected


# -- reserved keys ------------------------------------------------------------------------------

def test_nobody_can_take_a_key_bankms_makes_itself(bank, system):
    manager, teller = employee(bank, "manager"), employee(bank, "teller")
    cid = make_customer(bank, name="Kim Key")
    own = funded_account(bank, "500.00", customer_id=cid)
    other = funded_account(bank, "0", customer_id=make_customer(bank, name="Lee Key"))
    kim = login_for(bank, cid, "kimkey")
    lid = bank.loans.apply(kim, cid, product="personal", principal="1000.00", term_months=12,
                           purpose="a bicycle", monthly_income="3000.00")
    bank.loans.approve(manager, lid, annual_rate_percent="10")
    before = snapshot(bank)
    taken = f"sys:loan-{lid}-disbursement"
    attacks = [
        lambda: bank.payments.transfer(kim, own, other, "1.00", idempotency_key=taken),
        lambda: bank.payments.transfer(kim, own, other, "1.00", idempotency_key=" sys:x"),
        lambda: bank.payments.deposit(teller, own, "1.00", idempotency_key="sys:reversal-of-1"),
        lambda: bank.payments.reverse(manager, 1, "x", idempotency_key="sys:mine"),
        lambda: bank.loans.repay(kim, lid, "1.00", own, idempotency_key=taken),
        lambda: bank.accounts.open(teller, cid, idempotency_key="sys:open"),
        lambda: make_customer(bank, teller, idempotency_key="sys:onboard"),
        lambda: bank.loans.apply(kim, cid, product="personal", principal="1000.00",
                                 term_months=12, purpose="another bicycle",
                                 monthly_income="3000.00", idempotency_key="sys:apply"),
    ]
    for attack in attacks:
        with pytest.raises(InvalidInput, match="reserved"):
            attack()
    assert snapshot(bank) == before
    receipt = bank.loans.disburse(teller, lid, own)
    assert receipt.idempotency_key == taken and not receipt.replayed


# -- non-ASCII digits ---------------------------------------------------------------------------

@pytest.mark.parametrize("amount", ["\u09ea", "\u0664\u0660.00", "１０", "1\u0660", "\u0967,000"])
def test_amounts_in_other_digits_are_refused(bank, system, amount):
    source = funded_account(bank, "100.00")
    target = funded_account(bank, "0")
    before = snapshot(bank)
    with pytest.raises(InvalidAmount):
        bankms.to_cents(amount)
    with pytest.raises(InvalidAmount):
        bank.payments.transfer(system, source, target, amount)
    assert snapshot(bank) == before


# -- rate limits --------------------------------------------------------------------------------

def sign_up(bank, n, address):
    bank.customers.register(full_name=f"Bot Number {n}", email=f"bot{n}@example.com",
                            phone="+1 555 0100", date_of_birth="1990-01-01",
                            national_id=f"BOT{n:04d}", address="1 Bot Road",
                            username=f"bot{n:04d}", password=PASSWORD, client_address=address)


def test_sign_ups_are_limited_per_address(bank, system, clock):
    limit = bank.settings.get_int("signups_per_address_max")
    for n in range(limit):
        sign_up(bank, n, ATTACKER)
    before = snapshot(bank)
    with pytest.raises(LimitExceeded):
        sign_up(bank, limit, ATTACKER)
    assert snapshot(bank) == before
    sign_up(bank, limit + 1, HOME)  # somebody else is not held up
    clock.advance(bank.settings.get_int("signup_window_s") + 1)
    sign_up(bank, limit + 2, ATTACKER)  # and the window ends
    assert bank.read("SELECT count(*) FROM customers WHERE status = 'pending'")[0][0] == \
        limit + 2


def test_payee_look_ups_are_audited_and_limited(bank, system):
    bank.settings.set(system, "payee_lookups_per_customer_max", "3")
    cid = make_customer(bank, name="Wally Walker")
    own = funded_account(bank, "100.00", customer_id=cid)
    payee = funded_account(bank, "0", customer_id=make_customer(bank, name="Pam Payee"))
    wally = login_for(bank, cid, "wally")
    for _ in range(2):
        review = bank.payments.review(wally, "transfer", amount="1.00", source=own, target=payee)
        assert review["target_holder"] == "P** P****"
    with pytest.raises(BankError):  # a number nobody holds counts too
        bank.payments.review(wally, "transfer", amount="1.00", source=own,
                             target=accountnum.make(99999998))
    before = snapshot(bank)
    with pytest.raises(LimitExceeded):
        bank.payments.review(wally, "transfer", amount="1.00", source=own, target=payee)
    assert snapshot(bank) == before
    audited = bank.read("SELECT outcome FROM audit_log WHERE action = 'account.payee_lookup' "
                        "ORDER BY id")
    assert audited == [("ok",), ("ok",), ("ok",), ("refused",)]
    # Their own accounts are no look-up and are not limited.
    other_own = funded_account(bank, "0", customer_id=cid)
    assert bank.payments.review(wally, "transfer", amount="1.00", source=own,
                                target=other_own)["own_target"]


# -- refusals that would describe another customer ---------------------------------------------

@pytest.mark.parametrize("change", ["suspended", "closed customer", "account closed"])
def test_a_refusal_says_nothing_about_the_payee(bank, system, change):
    cid = make_customer(bank, name="Carl Customer")
    own = funded_account(bank, "100.00", customer_id=cid)
    payee_cid = make_customer(bank, name="Sue Secret")
    payee = funded_account(bank, "0", customer_id=payee_cid)
    carl = login_for(bank, cid, "carl")
    if change == "suspended":
        bank.customers.set_status(system, payee_cid, "suspended", "fraud check")
    elif change == "closed customer":
        bank.accounts.close(system, payee)
        bank.customers.set_status(system, payee_cid, "closed", "moved away")
    else:
        bank.accounts.close(system, payee)
    before = snapshot(bank)
    with pytest.raises(BankError) as info:
        bank.payments.transfer(carl, own, payee, "5.00")
    message = str(info.value).lower()
    for secret in ("suspended", "closed", "sue", "secret", "holder", "fraud", "moved"):
        assert secret not in message
    assert snapshot(bank) == before


def test_a_success_neither_counts_nor_prolongs_an_address_backoff(bank, clock):
    employee(bank, "teller", username="tess")
    for _ in range(3):
        fail_login(bank, "nobody", "guess", OFFICE, clock)
    clock.advance(1.1)  # the address waited out its 1 s
    row = throttle.read(bank.read_one, throttle.LOGIN_ADDRESS, OFFICE)
    assert bank.auth.login("tess", PASSWORD, client_address=OFFICE).username == "tess"
    assert throttle.read(bank.read_one, throttle.LOGIN_ADDRESS, OFFICE) == row
    assert bank.auth.login("tess", PASSWORD, client_address=OFFICE).username == "tess"


# (BANKMS_CLIENT_IP_HEADER, request headers, Streamlit's ip_address, expected address)
CLIENT_ADDRESSES = [
    (None, {}, "192.0.2.1", "192.0.2.1"),
    (None, {"X-Forwarded-For": "10.0.0.1"}, "192.0.2.1", "192.0.2.1"),  # not trusted
    ("X-Forwarded-For", {"X-Forwarded-For": "6.6.6.6, 203.0.113.9"}, "10.0.0.2",
     "203.0.113.9"),  # the entry the proxy added, not the one the client forged
    ("X-Forwarded-For", {}, "10.0.0.2", "10.0.0.2"),
    (None, {}, None, None),  # localhost: Streamlit gives no address
]


@pytest.mark.parametrize("header, headers, ip_address, expected", CLIENT_ADDRESSES)
def test_the_client_address_pages_pass_to_bankms(monkeypatch, header, headers, ip_address,
                                                 expected):
    import types

    import streamlit as st

    from pages import common

    if header:
        monkeypatch.setenv("BANKMS_CLIENT_IP_HEADER", header)
    else:
        monkeypatch.delenv("BANKMS_CLIENT_IP_HEADER", raising=False)
    monkeypatch.setattr(st, "context", types.SimpleNamespace(headers=headers,
                                                             ip_address=ip_address))
    assert common.client_address() == expected
