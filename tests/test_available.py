"""One meaning of `available` (issue 13): balance - holds + overdraft limit, 0 for a frozen or
closed account, the same in accounts.available/get/list, the teller's customer overview and the
posting guard; and the review step's warnings, from the checks posting runs."""
from __future__ import annotations

from decimal import Decimal

import pytest
from conftest import customer_account, employee, funded_account, login_for

from bankms.domain.errors import AccountClosed, AccountFrozen, InsufficientFunds, LimitExceeded
from bankms.services.ledger import available_cents, available_sql


@pytest.fixture
def staff(bank):
    return {"teller": employee(bank, "teller"), "manager": employee(bank, "manager")}


def every_available(bank, actor, number, customer_id) -> set:
    """`available` of one account as each reader gives it (Decimal)."""
    listed = bank.accounts.list(actor, customer_id)
    row = listed[listed["account_number"] == number].iloc[0]
    overview = bank.customers.overview(actor, customer_id)["accounts"]
    return {bank.accounts.available(actor, number), bank.accounts.get(actor, number)["available"],
            row["available"], Decimal(int(row["available_cents"])) / 100,
            overview[overview["account_number"] == number]["available"].iloc[0]}


# (case, balance, overdraft limit, held by a waiting teller withdrawal, status, available)
AVAILABLE_CASES = [
    ("plain", "1,000.00", "0", None, "active", "1000.00"),
    ("overdraft", "1,000.00", "500.00", None, "active", "1500.00"),
    ("holds", "30,000.00", "0", "12,000.00", "active", "18000.00"),
    ("overdraft and holds", "30,000.00", "1,000.00", "12,000.00", "active", "19000.00"),
    ("overdrawn into the limit", "0", "500.00", None, "active", "500.00"),
    ("frozen: nothing can leave", "1,000.00", "500.00", None, "frozen", "0.00"),
    ("closed with a limit left set", "0", "500.00", None, "closed", "0.00"),
]


@pytest.mark.parametrize("case, balance, overdraft, held, status, expected", AVAILABLE_CASES,
                         ids=[c[0] for c in AVAILABLE_CASES])
def test_available_means_one_thing_everywhere(bank, staff, case, balance, overdraft, held,
                                              status, expected):
    manager = staff["manager"]
    cid, number = customer_account(bank, "Ann Available", balance)
    if overdraft != "0":
        bank.accounts.set_overdraft_limit(manager, number, overdraft)
    if held:
        assert bank.payments.withdraw(staff["teller"], number, held).status == "pending"
    if status == "frozen":
        bank.accounts.freeze(manager, number, "court order")
    if status == "closed":
        bank.accounts.close(manager, number)
    assert every_available(bank, manager, number, cid) == {Decimal(expected)}
    if status == "active":
        # The guard agrees: a cent more than available is refused and names the same figure.
        over = Decimal(expected) + Decimal("0.01")
        with pytest.raises(InsufficientFunds, match=rf"has \${Decimal(expected):,} available"):
            bank.payments.withdraw(bank.system_actor(), number, over)
        bank.payments.withdraw(bank.system_actor(), number, expected)
        assert bank.accounts.available(manager, number) == 0


def test_a_term_deposit_has_nothing_available_before_maturity(bank, staff):
    # Its money leaves only at maturity or by an early closure at the bank: the guard refuses
    # any other debit (TermDepositLocked), so no reader may call its balance available.
    from bankms.domain.errors import TermDepositLocked
    cid, linked = customer_account(bank, "Terry Term", "20,000.00")
    number = bank.term_deposits.open(staff["teller"], customer_id=cid, linked_account=linked,
                                     amount="10000.00", term_months=12)["account_number"]
    assert every_available(bank, staff["manager"], number, cid) == {Decimal("0.00")}
    with pytest.raises(TermDepositLocked):
        bank.payments.withdraw(bank.system_actor(), number, "0.01")


# (balance, holds, overdraft limit, status, kind, available cents)
AVAILABLE_RULE = [
    (10_000, 0, 0, "active", "checking", 10_000),
    (10_000, 2_500, 0, "dormant", "savings", 7_500),
    (10_000, 2_500, 5_000, "active", "checking", 12_500),
    # overdraft interest past the limit shows as it is
    (-7_000, 0, 5_000, "active", "checking", -2_000),
    (10_000, 0, 5_000, "frozen", "checking", 0),
    (0, 0, 5_000, "closed", "checking", 0),
    (10_000, 0, 0, "active", "term_deposit", 0),
]


@pytest.mark.parametrize("balance, holds, overdraft, status, kind, expected", AVAILABLE_RULE)
def test_the_sql_and_python_forms_of_available_agree(bank, balance, holds, overdraft, status,
                                                     kind, expected):
    sql = bank.read_one(f"SELECT {available_sql('a')} FROM (SELECT ? AS balance_cents, "
                        "? AS holds_cents, ? AS overdraft_limit_cents, ? AS status, "
                        "? AS kind) a", [balance, holds, overdraft, status, kind])[0]
    assert (available_cents(balance, holds, overdraft, status, kind), sql) == (expected,
                                                                               expected)


# -- review warnings ----------------------------------------------------------------------------
def outcome_of(call):
    """'posted', 'pending' or the refusal's class name."""
    try:
        result = call()
    except (InsufficientFunds, LimitExceeded, AccountFrozen, AccountClosed) as refusal:
        return type(refusal).__name__
    return "pending" if getattr(result, "status", None) == "pending" else "posted"


def test_the_issue_example_warns_before_confirm_and_names_only_the_payers_account(bank):
    cid, a = customer_account(bank, "Paula Payer", "165.70")
    _, b = customer_account(bank, "Private Payee", "9,876.54")
    payer = login_for(bank, cid, "paula")
    review = bank.payments.review(payer, "transfer", amount="6,000.00", source=a, target=b)
    assert (f"Only $165.70 is available on {a}; this transfer of $6,000.00 would be refused."
            in review["warnings"])
    said = " ".join(review["warnings"])
    assert "Private" not in said and "9,876.54" not in said and b not in said
    assert outcome_of(lambda: bank.payments.transfer(payer, a, b, "6,000.00")) == "LimitExceeded"


def test_a_frozen_source_and_a_closed_payee_are_said_as_posting_says_them(bank, staff):
    cid, a = customer_account(bank, "Fran Frozen", "500.00")
    bank.accounts.freeze(staff["manager"], a, "check")
    review = bank.payments.review(staff["teller"], "withdrawal", amount="50", source=a)
    assert review["warnings"] == [f"Account {a} is frozen; no money can leave it. Confirming "
                                  "this withdrawal of $50.00 would be refused."]
    _, c = customer_account(bank, "Cleo Closer", "0")
    sam, d = customer_account(bank, "Sam Sender", "500.00")
    bank.accounts.close(staff["manager"], c)
    sender = login_for(bank, sam, "sam")
    review = bank.payments.review(sender, "transfer", amount="50", source=d, target=c)
    assert review["warnings"] == [f"Account {c} cannot receive this payment; please check the "
                                  "account number with the payee. Confirming this transfer of "
                                  "$50.00 would be refused."]


# (case, who, kind, payer's balance, payer's overdraft, sent to others before, amount,
#  to own account, expected warnings (with {src} for the source), what Confirm then does)
WARNING_CASES = [
    ("normal transfer", "customer", "transfer", "1,000.00", "0", None, "100.00", False,
     [], "posted"),
    ("funds with the overdraft counted", "customer", "transfer", "100.00", "200.00", None,
     "300.01", False,
     ["Only $300.00 is available on {src} (including an overdraft limit of $200.00); this "
      "transfer of $300.01 would be refused."], "InsufficientFunds"),
    ("overdraft makes it fit", "customer", "transfer", "100.00", "200.00", None, "300.00", False,
     [], "posted"),
    ("daily limit", "customer", "transfer", "10,000.00", "0", None, "6,000.00", False,
     ["This is over your daily transfer limit of $5,000.00: $5,000.00 is left today, so this "
      "transfer of $6,000.00 would be refused."], "LimitExceeded"),
    ("daily limit after earlier transfers", "customer", "transfer", "10,000.00", "0",
     "4,000.00", "1,500.00", False,
     ["This is over your daily transfer limit of $5,000.00: $1,000.00 is left today, so this "
      "transfer of $1,500.00 would be refused."], "LimitExceeded"),
    ("no daily limit between own accounts", "customer", "transfer", "10,000.00", "0", None,
     "6,000.00", True, [], "posted"),
    ("both limit and funds", "customer", "transfer", "165.70", "0", None, "6,000.00", False,
     ["This is over your daily transfer limit of $5,000.00: $5,000.00 is left today, so this "
      "transfer of $6,000.00 would be refused.",
      "Only $165.70 is available on {src}; this transfer of $6,000.00 would be refused."],
     "LimitExceeded"),
    ("four-eyes withdrawal", "teller", "withdrawal", "30,000.00", "0", None, "12,000.00", False,
     ["Above $10,000.00 a second manager must approve it; the money will be held on the "
      "account until then."], "pending"),
    ("four-eyes deposit", "teller", "deposit", "0", "0", None, "12,000.00", False,
     ["Above $10,000.00 a second manager must approve it; it is posted only then."], "pending"),
    ("four-eyes with the day's total", "teller", "withdrawal", "30,000.00", "0", "6,000.00",
     "5,000.00", False,
     ["With the $6,000.00 you moved for this customer today, this is above $10,000.00: a "
      "second manager must approve it; the money will be held on the account until then."],
     "pending"),
    ("funds beat four-eyes", "teller", "withdrawal", "5,000.00", "0", None, "12,000.00", False,
     ["Only $5,000.00 is available on {src}; this withdrawal of $12,000.00 would be refused."],
     "InsufficientFunds"),
    ("teller under the threshold", "teller", "transfer", "30,000.00", "0", None, "9,000.00",
     False, [], "posted"),
]


@pytest.mark.parametrize("case, who, kind, balance, overdraft, before, amount, own, expected, "
                         "then", WARNING_CASES, ids=[c[0] for c in WARNING_CASES])
def test_review_warns_with_the_checks_posting_runs(bank, staff, case, who, kind, balance,
                                                   overdraft, before, amount, own, expected,
                                                   then):
    cid, src = customer_account(bank, "Rita Review", balance, overdraft_limit=overdraft)
    other = (funded_account(bank, "0", customer_id=cid) if own else
             customer_account(bank, "Oscar Other", "0")[1])
    actor = login_for(bank, cid, "rita") if who == "customer" else staff["teller"]
    if before:
        if who == "customer":
            bank.payments.transfer(actor, src, other, before)
        else:
            bank.payments.deposit(actor, src, before)
    source, target = {"deposit": (None, src), "withdrawal": (src, None),
                      "transfer": (src, other)}[kind]
    review = bank.payments.review(actor, kind, amount=amount, source=source, target=target)
    assert review["warnings"] == [w.format(src=src) for w in expected]
    if then in ("posted", "pending"):  # a refused payment may still be over the threshold
        assert review["needs_approval"] == (then == "pending")
    post = {"deposit": lambda: bank.payments.deposit(actor, src, amount),
            "withdrawal": lambda: bank.payments.withdraw(actor, src, amount),
            "transfer": lambda: bank.payments.transfer(actor, src, other, amount)}[kind]
    assert outcome_of(post) == then
