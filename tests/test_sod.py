"""Segregation of duties (issue 12): the attacks a dishonest employee would try, through the
public API. Each refusal is checked together with what must not have changed: balances, limits
and rates, users, and the audit record of the refusal."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import pytest

import bankms
from bankms.services.approvals import PendingApproval
from bankms.domain.errors import (
    AuthenticationError,
    ContactRecentlyChanged,
    NoContactOnFile,
    PermissionDenied,
)
from conftest import employee, funded_account, login_for, make_customer, sent_code

# Money moves or rules are checked here: each test runs on DuckDB and on PostgreSQL.
pytestmark = pytest.mark.engines

PASSWORD = "a long test password 1"  # what conftest.employee gives everyone

NEW_PASSWORD = "my own new password 1"


@pytest.fixture
def w(bank):
    """Four managers and a teller made by the system (nobody handled another's login), and
    a customer with 100,000.00 in checking."""
    class World:
        pass
    x = World()
    x.bank = bank
    x.mara = employee(bank, "manager", username="mara")
    x.max = employee(bank, "manager", username="max")
    x.mia = employee(bank, "manager", username="mia")
    x.moe = employee(bank, "manager", username="moe")
    x.tom = employee(bank, "teller", username="tom")
    x.cid = make_customer(bank, name="Carl Customer")
    x.acc = funded_account(bank, "100000.00", customer_id=x.cid)
    return x


def snapshot(bank):
    """What a refused attack must leave as it was."""
    return {
        "accounts": bank.read("SELECT account_number, balance_cents, holds_cents, "
                              "overdraft_limit_cents, interest_rate_percent, status "
                              "FROM accounts ORDER BY 1"),
        "users": bank.read("SELECT username, role, password_hash, must_change_password, "
                           "active FROM users ORDER BY 1"),
        "transactions": bank.read("SELECT count(*) FROM transactions")[0][0],
        "approvals": bank.read("SELECT id, status FROM approval_requests ORDER BY 1"),
        "codes": bank.read("SELECT username, code_hash, used_at FROM activation_codes "
                           "ORDER BY 1, 2"),
        "outbox": bank.read("SELECT id, sent_at FROM outbox ORDER BY 1"),
    }


def refusals(bank, actor, action):
    return bank.read("SELECT count(*) FROM audit_log WHERE actor = ? AND action = ? "
                     "AND outcome = 'refused'", [actor, action])[0][0]


def sign_in_and_change(bank, username, temporary):
    actor = bank.auth.login(username, temporary)
    bank.users.change_password(actor, temporary, NEW_PASSWORD)
    return bank.auth.login(username, NEW_PASSWORD)


def refused_unchanged(bank, call, username, action, error=PermissionDenied):
    before = snapshot(bank)
    audited = refusals(bank, username, action)
    with pytest.raises(error):
        call()
    assert snapshot(bank) == before
    assert refusals(bank, username, action) == audited + 1


def cannot_approve_before_or_after_change(bank, username, temporary, request_id):
    """Sign in with a temporary password: approving is refused (nothing changes), and again
    once the password is changed; returns the signed-in actor."""
    actor = bank.auth.login(username, temporary)
    for step in ("temporary", "changed"):
        if step == "changed":
            actor = sign_in_and_change(bank, username, temporary)
        refused_unchanged(bank, lambda: bank.approvals.approve(actor, request_id), username,
                          "payment.approve")
    return actor


# -- the two-login bypass and the colleague-reset bypass ---------------------------------------
def test_a_manager_cannot_approve_their_own_withdrawal_through_a_login_they_made(w):
    bank = w.bank
    pending = bank.payments.withdraw(w.mara, w.acc, "50000.00")
    assert isinstance(pending, PendingApproval)
    # Creating a manager is itself a request: no login exists until another manager agrees.
    made = bank.users.create(w.mara, username="ghost", role="manager", full_name="G Host")
    assert isinstance(made, PendingApproval) and bank.users.get("ghost") is None
    refused_unchanged(bank, lambda: bank.approvals.approve(w.mara, made.request_id), "mara",
                      "payment.approve")
    created = bank.approvals.approve(w.max, made.request_id)
    ghost_user = bank.users.get("ghost")
    assert ghost_user["role"] == "manager" and ghost_user["must_change_password"]
    # While it must change its password, and after, the new login cannot approve its maker's
    # request, nor (since max approved its creation) max's.
    ghost = cannot_approve_before_or_after_change(bank, "ghost", created["temporary_password"],
                                                  pending.request_id)
    by_max = bank.payments.withdraw(w.max, w.acc, "20000.00")
    refused_unchanged(bank, lambda: bank.approvals.approve(ghost, by_max.request_id), "ghost",
                      "payment.approve")
    # A manager who handled neither login approves, and the money moves once.
    receipt = bank.approvals.approve(w.mia, pending.request_id)
    assert receipt.amount == D("50000.00")
    assert bank.accounts.balance(w.mia, w.acc) == D("50000.00")
    assert bank.audit.verify() == []


def test_a_colleague_whose_password_the_maker_reset_cannot_approve(w):
    bank = w.bank
    pending = bank.payments.withdraw(w.mara, w.acc, "50000.00")
    reset = bank.users.reset_password(w.mara, "max")
    assert isinstance(reset, PendingApproval)
    # Nobody approves a request about their own login.
    refused_unchanged(bank, lambda: bank.approvals.approve(w.max, reset.request_id), "max",
                      "payment.approve")
    # Nothing changed yet: max still signs in with his own password.
    assert bank.auth.login("max", PASSWORD).username == "max"
    done = bank.approvals.approve(w.mia, reset.request_id)
    assert bank.users.get("max")["must_change_password"]
    max_now = cannot_approve_before_or_after_change(bank, "max", done["temporary_password"],
                                                    pending.request_id)
    # And the other way round: mara's requests are not for max either, nor max's for mara.
    by_max = bank.payments.withdraw(max_now, w.acc, "20000.00")
    refused_unchanged(bank, lambda: bank.approvals.approve(w.mara, by_max.request_id), "mara",
                      "payment.approve")
    # mia approved the reset, so she saw max's temporary password: not her either.
    refused_unchanged(bank, lambda: bank.approvals.approve(w.mia, by_max.request_id), "mia",
                      "payment.approve")
    assert bank.approvals.approve(w.moe, by_max.request_id).amount == D("20000.00")


def test_resetting_a_tellers_password_bars_approving_that_tellers_requests(w):
    bank = w.bank
    temporary = bank.users.reset_password(w.mara, "tom")
    tom = sign_in_and_change(bank, "tom", temporary)
    pending = bank.payments.withdraw(tom, w.acc, "30000.00")
    refused_unchanged(bank, lambda: bank.approvals.approve(w.mara, pending.request_id), "mara",
                      "payment.approve")
    assert bank.approvals.approve(w.max, pending.request_id).amount == D("30000.00")


def test_raising_a_role_waits_for_a_second_manager(w):
    bank = w.bank
    raised = bank.users.set_role(w.mara, "tom", "manager")
    assert isinstance(raised, PendingApproval)
    assert bank.users.get("tom")["role"] == "teller"
    refused_unchanged(bank, lambda: bank.approvals.approve(w.mara, raised.request_id), "mara",
                      "payment.approve")
    bank.approvals.approve(w.max, raised.request_id)
    assert bank.users.get("tom")["role"] == "manager"
    # Lowering needs nobody else.
    assert bank.users.set_role(w.mara, "tom", "teller") is None
    assert bank.users.get("tom")["role"] == "teller"


def test_the_system_actor_and_tellers_are_not_four_eyes_makers_of_logins(w):
    bank = w.bank
    assert isinstance(bank.users.create(bank.system_actor(), username="boss2",
                                        password=PASSWORD, role="manager", full_name="B"), int)
    assert isinstance(bank.users.create(w.mara, username="tina", password=PASSWORD,
                                        role="teller", full_name="T"), int)
    assert bank.users.get("tina")["role"] == "teller"
    refused_unchanged(bank, lambda: bank.users.create(w.tom, username="boss3", role="manager",
                                                      full_name="B"), "tom",
                      "user.create_employee")


# -- other routes for large sums: each waits for a second manager ------------------------------
def _loan(bank, cid, account, principal="20000.00"):
    system = bank.system_actor()
    lid = bank.loans.apply(system, cid, product="personal", principal=principal, term_months=24,
                           purpose="new kitchen", monthly_income="9000.00")
    bank.loans.approve(system, lid, annual_rate_percent="12")
    bank.loans.disburse(system, lid, account)
    return lid


def _reversal(w):
    receipt = w.bank.payments.withdraw(w.bank.system_actor(), w.acc, "50000.00")
    return lambda: w.bank.payments.reverse(w.mara, receipt.transaction_id, "wrong account")


def _overdraft(w):
    empty = funded_account(w.bank, "0", customer_id=w.cid)
    return lambda: w.bank.accounts.set_overdraft_limit(w.mara, empty, "1000000.00")


def _rate(w):
    savings = funded_account(w.bank, "0", kind="savings", customer_id=w.cid)
    return lambda: w.bank.accounts.set_interest_rate(w.mara, savings, "99.9")


def _write_off(w):
    lid = _loan(w.bank, w.cid, w.acc)
    return lambda: w.bank.loans.write_off(w.mara, lid, reason="borrower unreachable")


def _teller_repay(w):
    lid = _loan(w.bank, w.cid, w.acc)
    return lambda: w.bank.loans.repay(w.tom, lid, "15000.00", w.acc, idempotency_key="repay-1")


def _reverse_loan_repayment(w):
    lid = _loan(w.bank, w.cid, w.acc, principal="40000.00")
    paid = w.bank.loans.repay(w.bank.system_actor(), lid, "30000.00", w.acc)
    return lambda: w.bank.loans.reverse_repayment(w.mara, lid, paid.transaction_id, "wrong loan")


def _undo_disbursement(w):
    lid = _loan(w.bank, w.cid, w.acc, principal="40000.00")
    return lambda: w.bank.loans.undo_disbursement(w.mara, lid, "wrong borrower")


def _check_reversal(bank, w):
    assert bank.accounts.balance(w.mara, w.acc) == D("100000.00")


def _check_overdraft(bank, w):
    assert bank.read("SELECT max(overdraft_limit_cents) FROM accounts")[0][0] == 100000000


def _check_rate(bank, w):
    assert bank.read("SELECT max(interest_rate_percent) FROM accounts")[0][0] == D("99.9")


def _check_write_off(bank, w):
    assert bank.read("SELECT status FROM loans")[0][0] == "written_off"


def _check_loan_reversal(bank, w):
    assert bank.accounts.balance(w.mara, w.acc) == D("140000.00")


def _check_undo_disbursement(bank, w):
    assert bank.read("SELECT status FROM loans")[0][0] == "approved"


def _check_repay(bank, w):
    assert bank.read("SELECT count(*) FROM loan_payments")[0][0] == 1


# (name, make the call, check after approval)
WAITS = [
    ("reversal of 50,000.00", _reversal, _check_reversal),
    ("overdraft of 1,000,000.00", _overdraft, _check_overdraft),
    ("savings rate of 99.9 %", _rate, _check_rate),
    ("write-off of 20,000.00", _write_off, _check_write_off),
    ("teller's loan repayment of 15,000.00", _teller_repay, _check_repay),
    ("reversal of a 30,000.00 loan repayment", _reverse_loan_repayment, _check_loan_reversal),
    ("undoing a 40,000.00 loan payout", _undo_disbursement, _check_undo_disbursement),
]


@pytest.mark.parametrize("name, make, check", WAITS, ids=[r[0] for r in WAITS])
def test_large_operations_wait_and_the_maker_cannot_release_them(w, name, make, check):
    bank = w.bank
    call = make(w)
    before = snapshot(bank)
    pending = call()
    assert isinstance(pending, PendingApproval), name
    after = snapshot(bank)
    assert after["accounts"] == before["accounts"] and after["users"] == before["users"]
    assert after["transactions"] == before["transactions"]
    assert call().request_id == pending.request_id  # a repeat is the same request
    maker = bank.read("SELECT maker FROM approval_requests WHERE id = ?",
                      [pending.request_id])[0][0]
    maker_actor = bank.auth.actor_for(maker)
    refused_unchanged(bank, lambda: bank.approvals.approve(maker_actor, pending.request_id),
                      maker, "payment.approve")
    bank.approvals.approve(w.mia, pending.request_id)
    check(bank, w)
    assert bank.approvals.get(w.mia, pending.request_id)["status"] == "approved"
    assert bank.audit.verify() == []


def test_small_operations_need_nobody_else(w):
    bank = w.bank
    receipt = bank.payments.withdraw(bank.system_actor(), w.acc, "500.00")
    assert not isinstance(bank.payments.reverse(w.mara, receipt.transaction_id, "typo"),
                          PendingApproval)
    assert bank.accounts.set_overdraft_limit(w.mara, w.acc, "10000.00") is None
    savings = funded_account(bank, "0", kind="savings", customer_id=w.cid)
    assert bank.accounts.set_interest_rate(w.mara, savings, "1.5") is None
    assert bank.approvals.list(w.mara, "pending").empty


# -- splitting: one staff member's payments for one customer count together ---------------------
# (who, amounts one after another, which of them wait)
SPLITS = [
    ("teller", ["10000.00", "10000.00", "10000.00"], [False, True, True]),
    ("teller", ["6000.00", "4000.00", "0.01"], [False, False, True]),
    ("teller", ["10000.01"], [True]),
    ("manager", ["9000.00", "9000.00"], [False, True]),
    ("system", ["10000.00", "10000.00", "50000.00"], [False, False, False]),
]


@pytest.mark.parametrize("who, amounts, waits", SPLITS)
def test_one_staff_members_payments_for_one_customer_count_together(w, who, amounts, waits):
    bank = w.bank
    actor = {"teller": w.tom, "manager": w.mara, "system": bank.system_actor()}[who]
    got = [isinstance(bank.payments.withdraw(actor, w.acc, a), PendingApproval)
           for a in amounts]
    assert got == waits
    posted = sum(D(a) for a, wait in zip(amounts, waits) if not wait)
    held = sum(D(a) for a, wait in zip(amounts, waits) if wait)
    info = bank.accounts.get(w.mara, w.acc)
    assert (info["balance"], info["holds"]) == (D("100000.00") - posted, held)


# A teller's loan repayments out of a customer's account are payments from that customer too.
# (steps one after another: repay from the account, withdraw, or repay in cash; which wait)
LOAN_SPLITS = [
    ([("repay", "10000.00"), ("repay", "10000.00")], [False, True]),
    ([("repay", "10000.00"), ("withdraw", "10000.00")], [False, True]),
    ([("withdraw", "6000.00"), ("repay", "5000.00")], [False, True]),
    ([("repay", "4000.00"), ("withdraw", "6000.00")], [False, False]),
    ([("cash", "10000.00"), ("withdraw", "10000.00")], [False, False]),
]


@pytest.mark.parametrize("steps, waits", LOAN_SPLITS)
def test_a_tellers_loan_repayments_count_in_the_daily_total(w, steps, waits):
    bank = w.bank
    lid = _loan(bank, w.cid, w.acc, principal="40000.00")
    calls = {"repay": lambda a, k: bank.loans.repay(w.tom, lid, a, w.acc, idempotency_key=k),
             "cash": lambda a, k: bank.loans.repay(w.tom, lid, a, "cash", idempotency_key=k),
             "withdraw": lambda a, k: bank.payments.withdraw(w.tom, w.acc, a,
                                                             idempotency_key=k)}
    got = [isinstance(calls[kind](amount, f"step-{i}"), PendingApproval)
           for i, (kind, amount) in enumerate(steps)]
    assert got == waits


def test_a_managers_reversals_for_one_customer_count_together(w):
    """Withdrawals paid out over several days, each reversed by one manager on one day: the
    customer keeps the cash and gets the money back; the second reversal waits."""
    bank = w.bank
    system = bank.system_actor()
    paid = [bank.payments.withdraw(system, w.acc, "10000.00") for _ in range(2)]
    got = [isinstance(bank.payments.reverse(w.mara, r.transaction_id, "teller error"),
                      PendingApproval) for r in paid]
    assert got == [False, True]
    assert bank.accounts.balance(w.mara, w.acc) == D("90000.00")


def test_the_daily_total_is_per_customer_and_skips_what_was_approved(w):
    bank = w.bank
    other = funded_account(bank, "100000.00", customer_id=make_customer(bank, name="Olga"))
    assert not isinstance(bank.payments.withdraw(w.tom, w.acc, "9000.00"), PendingApproval)
    assert not isinstance(bank.payments.withdraw(w.tom, other, "9000.00"), PendingApproval)
    big = bank.payments.withdraw(w.tom, other, "20000.00")
    bank.approvals.approve(w.mara, big.request_id)
    # What a second person approved does not count again; the 9,000.00 before it does.
    assert not isinstance(bank.payments.withdraw(w.tom, other, "1000.00"), PendingApproval)
    assert isinstance(bank.payments.withdraw(w.tom, other, "0.01"), PendingApproval)


# -- tellers, rates and customers' passwords ---------------------------------------------------
def test_a_teller_cannot_set_a_rate(w):
    bank = w.bank
    refused_unchanged(bank, lambda: bank.accounts.open(w.tom, w.cid, kind="savings",
                                                       interest_rate="99.9"),
                      "tom", "account.set_interest_rate")
    number = bank.accounts.open(w.tom, w.cid, kind="savings")
    assert bank.accounts.get(w.tom, number)["interest_rate_percent"] == D("2.00")


def test_a_managers_high_rate_at_opening_waits(w):
    bank = w.bank
    number = bank.accounts.open(w.mara, w.cid, kind="savings", interest_rate="7.5")
    assert bank.accounts.get(w.mara, number)["interest_rate_percent"] == D("2.00")
    waiting = bank.approvals.list(w.mara, "pending", account=number)
    assert list(waiting["kind"]) == ["account.set_interest_rate"]
    bank.approvals.approve(w.max, int(waiting["request_id"].iloc[0]))
    assert bank.accounts.get(w.mara, number)["interest_rate_percent"] == D("7.5")


def test_staff_cannot_choose_a_customers_password(w):
    bank = w.bank
    refused_unchanged(bank, lambda: bank.users.create(
        w.tom, username="carl", password=PASSWORD, role="customer", customer_id=w.cid),
        "tom", "user.create_customer_login")
    refused_unchanged(bank, lambda: bank.users.create(
        w.mara, username="carl", password=PASSWORD, role="customer", customer_id=w.cid),
        "mara", "user.create_customer_login")
    bank.users.create_customer_login(w.tom, w.cid, "carl")
    code = sent_code(bank, "carl")
    # Nobody can sign in until the customer sets a password with the code.
    with pytest.raises(AuthenticationError):
        bank.auth.login("carl", PASSWORD)
    # (username, code, refused)
    for username, given in [("carl", "AAAA-BBBB-CCCC-DDDD"), ("nobody", code), ("carl", "")]:
        refused_unchanged(bank, lambda: bank.users.activate_login(username, given, NEW_PASSWORD),
                          username or "anonymous", "user.activate", AuthenticationError)
    bank.users.activate_login("carl", code.lower(), NEW_PASSWORD)
    carl = bank.auth.login("carl", NEW_PASSWORD)
    assert carl.customer_id == w.cid
    # Single use.
    refused_unchanged(bank, lambda: bank.users.activate_login("carl", code,
                                                        "another password 22"),
                      "carl", "user.activate", AuthenticationError)


def test_an_activation_code_expires(w):
    bank = w.bank
    bank.users.create_customer_login(w.tom, w.cid, "carl")
    code = sent_code(bank, "carl")
    bank.write(lambda uow: uow.execute(
        "UPDATE activation_codes SET expires_at = ?",
        [bankms.services.ledger.utcnow() - dt.timedelta(seconds=1)]))
    refused_unchanged(bank, lambda: bank.users.activate_login("carl", code, NEW_PASSWORD),
                      "carl", "user.activate", AuthenticationError)
    bank.users.new_activation_code(w.tom, "carl")
    bank.users.activate_login("carl", sent_code(bank, "carl"), NEW_PASSWORD)
    assert bank.auth.login("carl", NEW_PASSWORD).username == "carl"


# (made by, how, contact on file (email, phone), expected channel, recipient, sent_to)
CODE_DELIVERY = [
    ("tom", "create", ("carl@example.com", "+1 555 0100"), "email", "carl@example.com",
     "c***@example.com"),
    ("mara", "create", (None, "+1 555 0199"), "sms", "+1 555 0199", "***0199"),
    ("tom", "new code", ("carl@example.com", None), "email", "carl@example.com",
     "c***@example.com"),
]


@pytest.mark.parametrize("maker,how,contact,channel,recipient,sent_to", CODE_DELIVERY)
def test_an_activation_code_goes_only_to_the_customer(w, maker, how, contact, channel,
                                                      recipient, sent_to):
    bank = w.bank
    staff = getattr(w, maker)
    bank.write(lambda uow: uow.execute("UPDATE customers SET email = ?, phone = ? WHERE id = ?",
                                       [*contact, w.cid]))
    made = bank.users.create_customer_login(staff, w.cid, "carl")
    if how == "new code":
        made = bank.users.new_activation_code(staff, "carl")
    code = sent_code(bank, "carl")
    assert set(made) == {"username", "sent_to", "expires_at"}
    assert made["sent_to"] == sent_to and code not in repr(made)
    message = bank.outbox.pending(bank.system_actor())[-1]
    assert (message["customer_id"], message["channel"], message["recipient"]) == (
        w.cid, channel, recipient)
    audit = bank.read("SELECT coalesce(before, '') || coalesce(after, '') FROM audit_log")
    assert audit and not [row for row in audit if code in row[0]]
    queued = bank.read("SELECT after FROM audit_log WHERE action = 'outbox.add'")
    assert len(queued) == (2 if how == "new code" else 1)
    assert sent_to in queued[-1][0] and recipient not in queued[-1][0]


@pytest.mark.parametrize("reader", ["tom", "mara"])
def test_staff_cannot_read_the_outbox(w, reader):
    bank = w.bank
    bank.users.create_customer_login(w.tom, w.cid, "carl")
    staff = getattr(w, reader)
    refused_unchanged(bank, lambda: bank.outbox.pending(staff), reader, "outbox.relay")
    message_id = bank.outbox.pending(bank.system_actor())[0]["id"]
    refused_unchanged(bank, lambda: bank.outbox.mark_sent(staff, [message_id]), reader,
                      "outbox.relay")
    assert bank.outbox.mark_sent(bank.system_actor(), [message_id, message_id]) == 1
    assert bank.outbox.pending(bank.system_actor()) == []


def test_a_teller_cannot_take_over_a_working_login_with_a_new_code(w):
    bank = w.bank
    bank.users.create_customer_login(w.tom, w.cid, "carl")
    first = sent_code(bank, "carl")
    bank.users.activate_login("carl", first, NEW_PASSWORD)
    made = bank.users.new_activation_code(w.tom, "carl")
    # The teller has only what the call returned and what they could guess or reuse.
    # (code the teller tries)
    for tried in [first, "AAAA-BBBB-CCCC-DDDD", made["sent_to"], str(made["expires_at"])]:
        refused_unchanged(bank, lambda: bank.users.activate_login("carl", tried,
                                                                  "teller chosen pw 12"),
                          "carl", "user.activate", AuthenticationError)
    with pytest.raises(AuthenticationError):
        bank.auth.login("carl", "teller chosen pw 12")
    # Only the customer, with the code sent to them, gets back in.
    bank.users.activate_login("carl", sent_code(bank, "carl"), "carl back again 12")
    assert bank.auth.login("carl", "carl back again 12").customer_id == w.cid


# (email, phone) on file: each refused, nothing written
@pytest.mark.parametrize("how", ["create", "new code"])
@pytest.mark.parametrize("email,phone", [(None, None), ("", ""), ("  ", None)])
def test_no_email_or_phone_means_no_login_code(w, how, email, phone):
    bank = w.bank
    if how == "new code":
        bank.users.create_customer_login(w.tom, w.cid, "carl")
    bank.write(lambda uow: uow.execute("UPDATE customers SET email = ?, phone = ? WHERE id = ?",
                                       [email, phone, w.cid]))
    before = snapshot(bank)
    call = (lambda: bank.users.create_customer_login(w.tom, w.cid, "carl")) if how == "create" \
        else (lambda: bank.users.new_activation_code(w.tom, "carl"))
    with pytest.raises(NoContactOnFile, match="no email address or phone number"):
        call()
    assert snapshot(bank) == before


def test_staff_cannot_reset_a_customers_password(w):
    login_for(w.bank, w.cid, "carl")
    refused_unchanged(w.bank, lambda: w.bank.users.reset_password(w.mara, "carl",
                                                                  "staff chosen pw 1"),
                      "mara", "user.reset_password")


# -- structuring alerts ------------------------------------------------------------------------
def test_structuring_alert_lists_payments_just_under_the_threshold_with_their_trail(w):
    bank = w.bank
    other = funded_account(bank, "100000.00", customer_id=make_customer(bank, name="Olga"))
    tellers = [w.tom, employee(bank, "teller", username="tess"), w.mara]
    for teller in tellers:  # three people, so no one's daily total catches it
        assert not isinstance(bank.payments.deposit(teller, other, "9500.00"), PendingApproval)
    bank.payments.deposit(w.tom, w.acc, "9500.00")  # two for carl: below the count
    bank.payments.deposit(tellers[1], w.acc, "5000.00")
    alerts = bank.approvals.structuring_alerts(w.mara)
    assert list(alerts["holder"]) == ["Olga"]
    alert = alerts.iloc[0]
    assert (alert["payments"], alert["total"]) == (3, D("28500.00"))
    assert alert["actors"] == "mara, tess, tom"
    trail = bank.approvals.alert_trail(w.mara, alert["transaction_ids"])
    assert sorted(trail["actor"]) == ["mara", "tess", "tom"]
    assert set(trail["action"]) == {"payment.deposit"}
    with pytest.raises(PermissionDenied):
        bank.approvals.structuring_alerts(w.tom)


def test_the_review_step_warns_when_the_daily_total_would_wait(w):
    bank = w.bank
    review = bank.payments.review(w.tom, "withdrawal", amount="10000.00", source=w.acc)
    assert review["needs_approval"] is False
    bank.payments.withdraw(w.tom, w.acc, "10000.00")
    review = bank.payments.review(w.tom, "withdrawal", amount="10000.00", source=w.acc)
    assert review["needs_approval"] is True


@pytest.mark.parametrize("key", ["four_eyes_threshold_cents", "four_eyes_rate_bp",
                                 "structuring_count_min", "activation_code_ttl_s"])
def test_a_manager_cannot_loosen_the_controls_alone(w, key):
    before = w.bank.settings.get(key)
    refused_unchanged(w.bank, lambda: w.bank.settings.set(w.mara, key, "999999999"), "mara",
                      "bank.admin")
    assert w.bank.settings.get(key) == before
    w.bank.settings.set(w.bank.system_actor(), key, before)  # the command line may


# -- a teller cannot redirect a customer's activation code to themselves ------------------------
def messages(bank, subject_word):
    return [(m["channel"], m["recipient"]) for m in bank.outbox.pending(bank.system_actor())
            if subject_word in m["subject"]]


def sign_in_carl(w):
    w.bank.users.create_customer_login(w.tom, w.cid, "carl")
    w.bank.users.activate_login("carl", sent_code(w.bank, "carl"), NEW_PASSWORD)
    return w.bank.auth.login("carl", NEW_PASSWORD)


# (changed by, contact before (email, phone), change, notices expected (channel, recipient))
CHANGE_NOTICES = [
    ("tom", ("carl@example.com", "+1 555 0100"), {"email": "tom@example.com"},
     [("email", "carl@example.com")]),
    ("tom", (None, "+1 555 0100"), {"email": "tom@example.com"}, [("sms", "+1 555 0100")]),
    ("mara", ("carl@example.com", "+1 555 0100"),
     {"email": "mara@example.com", "phone": "+1 555 0999"},
     [("email", "carl@example.com"), ("sms", "+1 555 0100")]),
    ("tom", ("carl@example.com", None), {"address": "1 New Street"}, []),
    ("carl", ("carl@example.com", None), {"email": "carl@new.example.com"}, []),
]


@pytest.mark.parametrize("who,contact,change,notices", CHANGE_NOTICES)
def test_staff_changing_a_contact_tells_the_customer_at_the_old_one(w, who, contact, change,
                                                                      notices):
    bank = w.bank
    bank.write(lambda uow: uow.execute("UPDATE customers SET email = ?, phone = ? WHERE id = ?",
                                       [*contact, w.cid]))
    actor = sign_in_carl(w) if who == "carl" else getattr(w, who)
    assert bank.customers.update_contact(actor, w.cid, **change) == change
    assert messages(bank, "contact details") == notices
    assert not [m for m in bank.outbox.pending(bank.system_actor())
                if "contact details" in m["subject"]
                and any(v in m["body"] for v in change.values())]


# (contact changed by, hours later, how the code is asked for, expected)
COOLING_OFF = [
    ("tom", 0, "new code", "refused"),
    ("tom", 0, "create", "refused"),
    ("mara", 71, "new code", "refused"),
    ("tom", 73, "new code", "sent"),
    ("mara", 73, "create", "sent"),
    ("carl", 0, "new code", "sent"),   # the customer's own change starts no cooling-off
    (None, 0, "create", "sent"),       # contact never changed by staff: at once
]


@pytest.mark.parametrize("who,hours_later,how,expected", COOLING_OFF)
def test_no_activation_code_to_a_contact_staff_just_changed(w, monkeypatch, who, hours_later,
                                                             how, expected):
    bank = w.bank
    bank.write(lambda uow: uow.execute("UPDATE customers SET email = ?, phone = NULL "
                                       "WHERE id = ?", ["carl@example.com", w.cid]))
    carl = sign_in_carl(w) if how == "new code" else None
    if who is not None:
        actor = carl if who == "carl" else getattr(w, who)
        bank.customers.update_contact(actor, w.cid, email=f"{who}@elsewhere.example.com")
    later = bankms.services.ledger.utcnow() + dt.timedelta(hours=hours_later)
    monkeypatch.setattr(bankms.services.users, "utcnow", lambda: later)
    codes_before = len(messages(bank, "activation code"))
    call = (lambda: bank.users.create_customer_login(w.tom, w.cid, "carl")) if how == "create" \
        else (lambda: bank.users.new_activation_code(w.tom, "carl"))
    action = "user.create_customer_login" if how == "create" else "user.new_activation_code"
    if expected == "refused":
        refused_unchanged(bank, call, "tom", action, ContactRecentlyChanged)
        assert messages(bank, "activation code")[codes_before:] == []
        if who != "carl":
            assert messages(bank, "contact details") == [("email", "carl@example.com")]
        with pytest.raises(ContactRecentlyChanged, match=r"before \d{4}-\d\d-\d\d \d\d:\d\d UTC"):
            call()
    else:
        call()
        assert messages(bank, "activation code")[codes_before:] == [
            ("email", f"{who}@elsewhere.example.com" if who else "carl@example.com")]
