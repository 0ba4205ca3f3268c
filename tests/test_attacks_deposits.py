"""Issue 10 attacked: a customer moving or reading others' money, a teller and a manager beating
limits and the four-eyes rule, through the new deposit services (standing orders, term
deposits, charges, deposit products). Each hole found has its rows here (they failed before
the fix in bankms); the rows marked "held" are attacks that were refused before and must stay
refused. Every refusal must leave the ledger and the registers as they were."""
from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal

import pytest
from conftest import Clock, employee, funded_account, login_for, make_customer
from test_term_deposits import set_terms

from bankms.services.approvals import PendingApproval
from bankms.domain.errors import (
    AccountNotFound,
    IdempotencyConflict,
    InvalidInput,
    InvalidState,
    LimitExceeded,
    PermissionDenied,
    TermDepositLocked,
)

D = Decimal
DAY = dt.timedelta(days=1)
COUNTED = ("transactions", "postings", "standing_orders", "term_deposits", "charges",
           "deposit_product_versions", "idempotency_keys")


def state(bank):
    return ({t: bank.read_one(f"SELECT count(*) FROM {t}")[0] for t in COUNTED},
            bank.read("SELECT account_number, balance_cents, holds_cents, status FROM accounts "
                      "ORDER BY 1"))


def healthy(bank):
    assert bank.audit.verify() == []
    assert bank.read_one("SELECT sum(balance_cents) FROM accounts")[0] == 0


@pytest.fixture
def people(bank):
    """Alice (customer, two accounts), Bob (another customer), a teller and two managers."""
    alice_id, bob_id = make_customer(bank, name="Alice Doe"), make_customer(bank, name="Bob Roe")
    facts = {
        "alice_id": alice_id, "bob_id": bob_id,
        "a1": funded_account(bank, "60000.00", customer_id=alice_id),
        "a2": funded_account(bank, "0", kind="savings", customer_id=alice_id),
        "b1": funded_account(bank, "60000.00", customer_id=bob_id),
        "customer": login_for(bank, alice_id, "alice"),
        "bob": login_for(bank, bob_id, "bobby"),
        "teller": employee(bank, "teller", "teller9"),
        "manager": employee(bank, "manager", "boss1"),
        "manager2": employee(bank, "manager", "boss2"),
        "system": bank.system_actor(),
    }
    return facts


# -- hole 1: standing orders that together pay more than a day's limit --------------------------
# Before: each order was checked alone against the customer's daily limit (staff: nothing), and
# end of day runs orders without a limit, so three orders of 5,000.00 moved 15,000.00 a day to
# another customer, and a teller's order of 50,000.00 bypassed the four-eyes threshold.
# who sets up the new order, (who, amount, to own account, cancelled) of orders already there,
# the new order's amount, to an own account?, the refusal expected (None: it is set up)
SO_CAP_CASES = [
    pytest.param("customer", [("customer", "5000.00", False, False)], "0.01", False,
                 LimitExceeded, id="customer-second-order-over-daily-limit"),
    pytest.param("customer", [("customer", "2500.00", False, False)], "2500.01", False,
                 LimitExceeded, id="customer-sum-one-cent-over"),
    pytest.param("customer", [("customer", "2500.00", False, False)], "2500.00", False,
                 None, id="customer-sum-exactly-the-limit"),
    pytest.param("customer", [("customer", "5000.00", False, True)], "5000.00", False,
                 None, id="customer-cancelled-order-does-not-count"),
    pytest.param("customer", [("customer", "5000.00", False, False)], "9000.00", True,
                 None, id="customer-own-account-not-capped"),
    pytest.param("customer", [("customer", "4000.00", True, False)], "5000.00", False,
                 None, id="customer-own-orders-do-not-count"),
    pytest.param("customer", [("teller", "6000.00", False, False)], "1.00", False,
                 LimitExceeded, id="customer-after-teller-order"),
    pytest.param("teller", [], "10000.01", False, LimitExceeded,
                 id="teller-order-above-four-eyes-threshold"),
    pytest.param("teller", [("teller", "6000.00", False, False)], "4000.01", False,
                 LimitExceeded, id="teller-orders-sum-above-threshold"),
    pytest.param("manager", [("customer", "5000.00", False, False)], "5000.00", False,
                 None, id="manager-sum-exactly-threshold"),
    pytest.param("manager", [], "50000.00", False, LimitExceeded,
                 id="manager-order-above-threshold"),
    pytest.param("system", [("customer", "5000.00", False, False)], "50000.00", False,
                 None, id="system-not-capped"),
]


@pytest.mark.parametrize("who, existing, amount, own, error", SO_CAP_CASES)
def test_standing_orders_to_others_are_capped_together(bank, people, who, existing, amount,
                                                       own, error):
    p = people
    today = bank.business_date
    fields = dict(frequency="monthly", day_of_month=5, start_date=today)
    for n, (maker, cents, to_own, cancelled) in enumerate(existing):
        order = bank.standing_orders.create(
            p[maker], source_account=p["a1"], target_account=p["a2"] if to_own else p["b1"],
            amount=cents, idempotency_key=f"old-{n}", **fields)
        if cancelled:
            bank.standing_orders.cancel(p["customer"], order["id"], "no longer needed")
    before = state(bank)
    new = dict(source_account=p["a1"], target_account=p["a2"] if own else p["b1"],
               amount=amount, idempotency_key="new", **fields)
    if error is None:
        assert bank.standing_orders.create(p[who], **new)["amount"] == D(amount)
    else:
        with pytest.raises(error):
            bank.standing_orders.review(p[who], **{k: v for k, v in new.items()
                                                   if k != "idempotency_key"})
        with pytest.raises(error):
            bank.standing_orders.create(p[who], **new)
        assert state(bank) == before
        assert bank.read("SELECT actor, outcome FROM audit_log WHERE action = "
                         "'standing_order.create' AND outcome <> 'ok'")[-1][0] == \
            p[who].username
    healthy(bank)


def test_one_day_of_capped_orders_moves_at_most_the_daily_limit(tmp_path):
    """Five weekly orders on five weekdays, each failing for want of money, are all retried
    on the day the money arrives: what that day moves to the other customer stays within the
    customer's daily limit, since the orders together are capped."""
    import bankms
    from test_standing_orders import open_on
    bank = open_on(tmp_path / "b.duckdb", dt.date(2027, 3, 1))  # a Monday
    try:
        alice_id, bob_id = make_customer(bank), make_customer(bank)
        source = funded_account(bank, "0", customer_id=alice_id)
        target = funded_account(bank, "0", customer_id=bob_id)
        alice = login_for(bank, alice_id, "alice")
        for weekday in range(5):
            bank.standing_orders.create(alice, source_account=source, target_account=target,
                                        amount="1000.00", frequency="weekly", weekday=weekday,
                                        start_date=dt.date(2027, 3, 1), retry_days=5,
                                        idempotency_key=f"wk-{weekday}")
        with pytest.raises(LimitExceeded):
            bank.standing_orders.create(alice, source_account=source, target_account=target,
                                        amount="0.01", frequency="weekly", weekday=5,
                                        start_date=dt.date(2027, 3, 1),
                                        idempotency_key="wk-5")
        bank.end_of_day(bank.system_actor(), until=dt.date(2027, 3, 5), confirm=True)
        bank.payments.deposit(bank.system_actor(), source, "20000.00")
        bank.end_of_day(bank.system_actor(), until=dt.date(2027, 3, 6), confirm=True)
        moved = bank.read_one("SELECT coalesce(sum(amount_cents), 0) FROM standing_order_runs "
                              "WHERE outcome = 'executed' AND attempt_date = ?",
                              [dt.date(2027, 3, 6)])[0]
        assert 0 < moved <= bankms.to_cents("5000.00")
        healthy(bank)
    finally:
        bank.close()


# -- hole 2: a product edit takes the early-closure penalty off deposits already open ----------
# Before: close_early read the penalty of the product version in force on the closing day, so
# one manager (a penalty is no rate: no second manager) could set the product's penalty to
# 'none' from tomorrow and then close a customer's deposit early with no penalty at all, or
# put a harsher penalty on deposits opened under a milder one. The penalty is now the one in
# force on the deposit's first day, like its rate.
# penalty at opening (rule, months), the product's penalty from the next day, penalty expected
# (as a share of the gross interest: the deposit is closed after 40 days, less than 3 months
# of accrual, so 'interest_months' with 3 months takes all of it)
PENALTY_CASES = [
    pytest.param(("interest_months", 3), ("none", 0), "all", id="penalty-removed-after-opening"),
    pytest.param(("none", 0), ("interest_months", 3), "none",
                 id="penalty-added-after-opening"),
    pytest.param(("interest_months", 3), ("interest_months", 1), "all",
                 id="penalty-shortened-after-opening"),
]


@pytest.mark.parametrize("at_open, later, expected", PENALTY_CASES)
def test_early_closure_penalty_is_the_one_agreed_at_opening(bank, people, at_open, later,
                                                            expected):
    p = people
    bank.clock = Clock(dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=3660))
    bank.settings.set(p["system"], "eod_catchup_days_confirm", "366")
    set_terms(bank, early_closure_penalty=at_open[0], penalty_months=at_open[1],
              interest_rate_percent="1.5000")
    today = bank.business_date
    number = bank.term_deposits.open(p["teller"], customer_id=p["alice_id"],
                                     linked_account=p["a1"], amount="10000.00", term_months=12,
                                     idempotency_key="td")["account_number"]
    changed = bank.deposit_products.change(
        p["manager"], "term_deposit", effective_date=today + DAY,
        terms={"early_closure_penalty": later[0], "penalty_months": later[1]})
    assert not isinstance(changed, PendingApproval)  # one manager alone may change penalties
    bank.end_of_day(p["system"], until=today + 40 * DAY)
    result = bank.term_deposits.close_early(p["teller"], number, reason="customer needs it",
                                            idempotency_key="close")
    days = (bank.business_date - today).days  # the closing day itself earns nothing
    assert 40 < days < 92  # less than the 3 months of 'interest_months'
    gross = (D("10000") * D("1.5") / 100 * days / 365).quantize(D("0.01"), ROUND_HALF_UP)
    assert result["interest"] == gross
    assert result["penalty"] == (gross if expected == "all" else D("0.00"))
    healthy(bank)


# -- hole 3: an early-closure key replayed for another deposit -------------------------------
# Before: the second call answered with the first deposit's result and closed nothing, so the
# teller's screen said "closed, paid out" for a deposit that was still running.
def test_an_early_closure_key_is_refused_for_another_deposit(bank, people):
    p = people
    set_terms(bank)
    first, second = (bank.term_deposits.open(
        p["customer"], linked_account=p["a1"], amount=amount, term_months=12,
        idempotency_key=f"td-{amount}")["account_number"] for amount in ("1000.00", "2000.00"))
    done = bank.term_deposits.close_early(p["teller"], first, reason="customer needs it",
                                          idempotency_key="close-1")
    before = state(bank)
    assert bank.term_deposits.close_early(p["teller"], first, reason="customer needs it",
                                          idempotency_key="close-1") == done
    with pytest.raises(IdempotencyConflict):
        bank.term_deposits.close_early(p["teller"], second, reason="customer needs it",
                                       idempotency_key="close-1")
    assert state(bank) == before
    assert bank.term_deposits.get(p["teller"], second)["status"] == "active"
    healthy(bank)


# -- hole 4: deposit product rates reshuffled past the four-eyes rule ------------------------
# Before: a change waited for a second manager only if it brought in a rate above the
# four-eyes rate (2.00 %) that the product did not have at all, so once a second manager had
# approved 5 % for balances from 1,000,000.00, one manager alone could move that tier down to
# 0.01 or make 5 % the base rate: every balance earned 5 %.
# the product's rates before (base, tiers), the change, whether it waits for a second manager
RATE_CASES = [
    pytest.param(("1", [(100_000_000, "5")]), ("1", [(1, "5")]), True, id="tier-moved-down"),
    pytest.param(("1", [(100_000_000, "5")]), ("5", [(100_000_000, "5")]), True,
                 id="base-raised-to-approved-tier-rate"),
    pytest.param(("1", [(100_000_000, "5")]), ("1", [(50_000_000, "3"), (100_000_000, "5")]),
                 True, id="new-tier-above-limit"),
    pytest.param(("1", [(100_000_000, "5")]), ("1", [(200_000_000, "5")]), False,
                 id="tier-moved-up-pays-less"),
    pytest.param(("1", [(100_000_000, "5")]), ("1", [(100_000_000, "4")]), False,
                 id="tier-lowered"),
    pytest.param(("1", [(100_000_000, "5")]), ("2", [(100_000_000, "5")]), False,
                 id="base-raised-within-limit"),
    pytest.param(("3", []), ("3", [(100_000, "2")]), False, id="tier-below-old-base"),
]


@pytest.mark.parametrize("before, after, waits", RATE_CASES)
def test_a_rate_a_balance_did_not_earn_waits_for_a_second_manager(bank, people, before, after,
                                                                  waits):
    p = people
    today = bank.business_date
    bank.deposit_products.change(p["system"], "savings", effective_date=today + DAY,
                                 terms={"interest_rate_percent": before[0]}, tiers=before[1])
    versions = state(bank)[0]["deposit_product_versions"]
    result = bank.deposit_products.change(p["manager"], "savings",
                                          effective_date=today + 2 * DAY,
                                          terms={"interest_rate_percent": after[0]},
                                          tiers=after[1])
    assert isinstance(result, PendingApproval) is waits
    assert (state(bank)[0]["deposit_product_versions"] == versions) is waits
    if waits:
        with pytest.raises(PermissionDenied):  # the maker signed in again is still the maker
            bank.approvals.approve(bank.auth.login("boss1", "a long test password 1"),
                                   result.request_id)
        bank.approvals.approve(p["manager2"], result.request_id)
        on = bank.deposit_products.get(p["manager"], "savings", on=today + 2 * DAY)
        assert (on["interest_rate_percent"], on["tiers"]) == (
            D(after[0]), [(c, D(r)) for c, r in sorted(after[1])])


# -- what held ---------------------------------------------------------------------------------
def _td(bank, p):
    set_terms(bank)
    return bank.term_deposits.open(p["customer"], linked_account=p["a1"], amount="1000.00",
                                   term_months=12, idempotency_key="td")


def _charge(bank, p):
    bank.charges.define(p["manager"], "copy_fee", name="Statement copy", calc="flat",
                        amount="5.00")
    return bank.charges.apply(p["teller"], p["a1"], "copy_fee", reason="copy asked for",
                              idempotency_key="ch")


def _charge_above_threshold(bank, p):
    bank.settings.set(p["system"], "four_eyes_threshold_cents", "100")
    return _charge(bank, p)


def _nothing(bank, p):
    return None


def _order(actor, p, **changes):
    fields = dict(source_account=p["a1"], target_account=p["b1"], amount="1.00",
                  frequency="monthly", day_of_month=1, idempotency_key="x")
    return {**fields, **changes}


# setup(bank, people) -> what the attack uses, attack(bank, people, setup's result), refusal
HELD_CASES = [
    pytest.param(_nothing, lambda b, p, s: b.standing_orders.create(
        p["bob"], start_date=b.business_date, **_order("bob", p)), PermissionDenied,
        id="so-from-anothers-account"),
    pytest.param(_nothing, lambda b, p, s: b.standing_orders.list(p["bob"], p["alice_id"]),
                 PermissionDenied, id="so-read-anothers"),
    pytest.param(_td, lambda b, p, s: b.standing_orders.create(
        p["customer"], start_date=b.business_date,
        **_order("customer", p, source_account=s["account_number"], target_account=p["a1"])),
        InvalidInput, id="so-from-term-deposit"),
    pytest.param(_nothing, lambda b, p, s: b.standing_orders.create(
        p["customer"], start_date=b.business_date - DAY, **_order("customer", p)),
        InvalidInput, id="so-start-in-the-past-no-catch-up"),
    pytest.param(_nothing, lambda b, p, s: (set_terms(b), b.term_deposits.open(
        p["bob"], linked_account=p["a1"], amount="1.00", term_months=12,
        idempotency_key="x")), PermissionDenied, id="td-from-anothers-account"),
    pytest.param(_td, lambda b, p, s: b.term_deposits.get(p["bob"], s["account_number"]),
                 PermissionDenied, id="td-read-anothers"),
    # Hole 5: "no term deposit" for another customer's checking account but "not allowed" for
    # their term deposit told a customer which account numbers are term deposits.
    pytest.param(_td, lambda b, p, s: b.term_deposits.get(p["bob"], p["a1"]),
                 PermissionDenied, id="td-read-anothers-checking-same-refusal"),
    pytest.param(_td, lambda b, p, s: b.term_deposits.get(p["customer"], p["a1"]),
                 AccountNotFound, id="td-read-own-checking-not-a-term-deposit"),
    pytest.param(_td, lambda b, p, s: b.charges.apply(
        p["manager"], s["account_number"], "overdraft", reason="charge the deposit",
        amount="10.00", idempotency_key="x"), TermDepositLocked, id="td-charged"),
    pytest.param(_td, lambda b, p, s: b.payments.transfer(
        p["customer"], s["account_number"], p["a1"], "10.00", idempotency_key="x"),
        TermDepositLocked, id="td-transfer-out"),
    pytest.param(_td, lambda b, p, s: b.payments.reverse(
        p["manager"], b.read_one("SELECT open_transaction_id FROM term_deposits")[0],
        reason="undo the deposit"), TermDepositLocked, id="td-reverse-its-funding"),
    pytest.param(_td, lambda b, p, s: b.accounts.close(p["system"], p["a1"]), InvalidState,
                 id="td-close-the-linked-account"),
    pytest.param(_td, lambda b, p, s: b.term_deposits.close_early(
        p["customer"], s["account_number"], reason="mine", idempotency_key="x"),
        PermissionDenied, id="td-customer-closes-early"),
    pytest.param(_td, lambda b, p, s: b.term_deposits.open(
        p["customer"], linked_account=p["a1"], amount="999.00", term_months=12,
        idempotency_key="td"), IdempotencyConflict, id="td-key-replayed-other-amount"),
    pytest.param(_charge, lambda b, p, s: b.charges.list(p["bob"], p["a1"]), PermissionDenied,
                 id="charge-read-anothers"),
    pytest.param(_charge, lambda b, p, s: b.charges.waive(
        p["teller"], s["charge_id"], reason="goodwill", idempotency_key="w"),
        PermissionDenied, id="charge-teller-waives"),
    pytest.param(_charge, lambda b, p, s: b.charges.apply(
        p["teller"], p["b1"], "copy_fee", reason="copy asked for", idempotency_key="ch"),
        IdempotencyConflict, id="charge-key-replayed-other-account"),
    pytest.param(_charge, lambda b, p, s: b.charges.apply(
        p["teller"], p["a1"], "copy_fee", reason="  ", idempotency_key="y"), InvalidInput,
        id="charge-without-reason"),
    pytest.param(_nothing, lambda b, p, s: b.charges.define(
        p["teller"], "t_fee", name="Teller fee", calc="flat", amount="1.00"),
        PermissionDenied, id="charge-defined-by-teller"),
    pytest.param(_nothing, lambda b, p, s: b.charges.define(
        p["manager"], "big_fee", name="Big", calc="percent", rate_bp=10001), InvalidInput,
        id="charge-percent-over-100"),
    pytest.param(_charge_above_threshold, lambda b, p, s: b.approvals.approve(
        b.auth.login("boss1", "a long test password 1"), b.charges.waive(
            p["manager"], s["charge_id"], reason="goodwill", idempotency_key="w").request_id),
        PermissionDenied, id="waiver-approved-by-makers-second-login"),
    pytest.param(_nothing, lambda b, p, s: b.deposit_products.change(
        p["manager"], "savings", terms={"withholding_tax_bp": 0},
        effective_date=b.business_date), InvalidInput, id="product-tax-change-dated-today"),
    pytest.param(_nothing, lambda b, p, s: b.deposit_products.change(
        p["manager"], "savings", terms={"interest_rate_percent": "1000"},
        effective_date=b.business_date + DAY), InvalidInput, id="product-rate-1000-percent"),
    pytest.param(_nothing, lambda b, p, s: b.deposit_products.create(
        p["teller"], code="t_save", name="Teller saver", kind="savings", terms={}),
        PermissionDenied, id="product-created-by-teller"),
]


@pytest.mark.parametrize("setup, attack, error", HELD_CASES)
def test_attacks_that_held(bank, people, setup, attack, error):
    made = setup(bank, people)
    before = state(bank)
    with pytest.raises(error):
        attack(bank, people, made)
    if error is not PermissionDenied or setup is not _charge_above_threshold:
        assert state(bank)[0]["transactions"] == before[0]["transactions"]
    assert state(bank)[1] == before[1] or setup is _charge_above_threshold
    healthy(bank)
