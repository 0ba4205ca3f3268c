"""Reads beside posting (issue 13): kept answers of accounts.list are never older than a write
that finished before the call (bankms/store/writer.py, Bank.kept, Bank.read)."""
from __future__ import annotations

import threading
from decimal import Decimal

import pytest

from bankms.domain.security import Actor
from conftest import funded_account, make_customer

# Kept answers and the writer's version work alike on both engines' writers (store/writer.py).
pytestmark = pytest.mark.engines

MANAGER = Actor(username="m", role="manager")


def _balance(bank, number, actor=MANAGER, customer_id=None):
    df = bank.accounts.list(actor, customer_id)
    return df.loc[df["account_number"] == number, "balance"].iloc[0]


@pytest.mark.parametrize("write, expected_balance", [
    ("deposit", Decimal("105.00")),
    ("withdrawal", Decimal("95.00")),
    ("refused withdrawal", Decimal("100.00")),
    ("nothing", Decimal("100.00")),
])
def test_a_kept_list_shows_every_write_that_finished_before_it(bank, system, write,
                                                                 expected_balance):
    number = funded_account(bank, "100.00", kind="savings")
    assert _balance(bank, number) == Decimal("100.00")  # now kept
    if write == "deposit":
        bank.payments.deposit(system, number, "5.00")
    elif write == "withdrawal":
        bank.payments.withdraw(system, number, "5.00")
    elif write == "refused withdrawal":
        with pytest.raises(Exception):
            bank.payments.withdraw(system, number, "500.00")
    assert _balance(bank, number) == expected_balance


def test_a_customer_sees_their_own_transfer_at_once(bank, system):
    cid = make_customer(bank)
    source = funded_account(bank, "100.00", customer_id=cid)
    target = funded_account(bank, "0", customer_id=cid)
    me = Actor(username="jane", role="customer", customer_id=cid)
    assert _balance(bank, target, me) == Decimal("0.00")
    bank.payments.transfer(me, source, target, "12.34")
    assert _balance(bank, source, me) == Decimal("87.66")
    assert _balance(bank, target, me) == Decimal("12.34")


def test_an_account_opened_after_a_kept_list_appears(bank, system):
    cid = make_customer(bank)
    funded_account(bank, "10.00", customer_id=cid)
    assert len(bank.accounts.list(MANAGER, cid)) == 1
    bank.accounts.open(system, cid)
    assert len(bank.accounts.list(MANAGER, cid)) == 2


def test_changing_a_listed_frame_does_not_change_the_next_answer(bank):
    number = funded_account(bank, "100.00")
    first = bank.accounts.list(MANAGER)
    first["balance"] = Decimal("0")
    first.loc[0, "account_number"] = "tampered"
    first["extra"] = 1
    again = bank.accounts.list(MANAGER)
    assert list(again["account_number"]) == [number]
    assert again["balance"].iloc[0] == Decimal("100.00")
    assert "extra" not in again.columns


def test_kept_answers_are_per_key_and_refusals_still_checked(bank):
    mine = make_customer(bank)
    other = make_customer(bank, name="Other Person")
    funded_account(bank, "1.00", customer_id=mine)
    funded_account(bank, "2.00", customer_id=other)
    me = Actor(username="jane", role="customer", customer_id=mine)
    assert len(bank.accounts.list(MANAGER)) == 2
    assert list(bank.accounts.list(me)["customer_id"]) == [mine]
    with pytest.raises(Exception) as refused:
        bank.accounts.list(me, other)
    assert type(refused.value).__name__ == "PermissionDenied"


@pytest.mark.parametrize("outcome", ["commit", "error"])
def test_the_writer_version_moves_before_the_caller_hears_back(bank, outcome):
    before = bank._writer.version

    def job(uow):
        uow.execute("UPDATE settings SET value = value WHERE key = 'business_date'")
        if outcome == "error":
            raise ValueError("no")
        return bank._writer.version

    if outcome == "error":
        with pytest.raises(ValueError):
            bank.write(job)
    else:
        assert bank.write(job) == before  # inside the job, not yet moved
    assert bank._writer.version > before


@pytest.mark.parametrize("cents, text", [
    (0, "0.00"), (1, "0.01"), (-5, "-0.05"), (100, "1.00"), (-12345, "-123.45"),
    (9_223_372_036_854_775_807, "92233720368547758.07"),
])
def test_money_column_gives_what_to_money_gives(cents, text):
    from bankms.services.accounts import money_column
    from bankms.domain.money import to_money
    [value] = money_column([cents])
    assert str(value) == text == str(to_money(cents))
    assert value.as_tuple() == to_money(cents).as_tuple()


# -- Reads served from memory give way to a busy writer (Writer.give_way) ----------------------

def _count_yields(monkeypatch):
    from bankms.store import writer as writer_module
    yields = []
    monkeypatch.setattr(writer_module, "_yield_gil", lambda: yields.append(1))
    return yields


def _while_writer_busy(bank, fn):
    """Run fn() on this thread while a writer job is in hand (it waits for fn to finish)."""
    started, release = threading.Event(), threading.Event()

    def job(uow):
        started.set()
        assert release.wait(30)

    worker = threading.Thread(target=bank.write, args=(job,))
    worker.start()
    try:
        assert started.wait(30)
        return fn()
    finally:
        release.set()
        worker.join(30)


def _until_writer_idle(bank):
    # The writer clears `busy` when it next finds its queue empty, just after its callers
    # hear back; wait for that condition (bounded), not for a time.
    gone = threading.Event()
    for _ in range(10_000):
        if not bank._writer.busy:
            return
        gone.wait(0.001)
    raise AssertionError("the writer never went idle")


@pytest.mark.parametrize("writer, read, yields_expected", [
    ("idle", "kept answer", 0),
    ("busy", "kept answer", 1),
    ("busy", "computed answer", 0),
    ("busy", "kept answer on the writer thread", 0),
])
def test_a_read_served_from_memory_gives_way_only_to_a_busy_writer(bank, monkeypatch, writer,
                                                                    read, yields_expected):
    bank.kept(("test", "warm"), lambda: 1)
    yields = _count_yields(monkeypatch)

    def reads():
        if read == "kept answer":
            bank.kept(("test", "k"), lambda: 1)
            del yields[:]  # the first call computed; only the second one is served from memory
            assert bank.kept(("test", "k"), lambda: 2) == 1
        elif read == "computed answer":
            bank.kept(("test", "fresh"), lambda: 1)
        else:
            def inside(uow):
                bank.kept(("test", "w"), lambda: 1)
                del yields[:]
                return bank.kept(("test", "w"), lambda: 2)
            assert bank.write(inside) == 1
        return len(yields)

    if writer == "busy" and read != "kept answer on the writer thread":
        assert _while_writer_busy(bank, reads) == yields_expected
    else:
        _until_writer_idle(bank)
        assert reads() == yields_expected


def test_the_kept_dashboard_gives_way_to_a_busy_writer(bank, monkeypatch):
    filters = bank.reports.filters()
    bank.reports.dashboard(MANAGER, filters)  # computed, now kept for dashboard_max_age_s
    yields = _count_yields(monkeypatch)
    _until_writer_idle(bank)
    bank.reports.dashboard(MANAGER, filters)
    assert yields == []
    _while_writer_busy(bank, lambda: bank.reports.dashboard(MANAGER, filters))
    assert len(yields) >= 1


@pytest.mark.parametrize("change, value_expected", [
    ("set by a manager", 45),
    ("written by a job that failed", 30),
    ("nothing", 30),
])
def test_a_kept_setting_is_never_older_than_a_finished_write(bank, change, value_expected):
    key = "dashboard_max_age_s"
    assert bank.settings.value(key) == 30  # now kept
    if change == "set by a manager":
        bank.settings.set(MANAGER, key, "45")
    elif change == "written by a job that failed":
        def job(uow):
            uow.execute("INSERT INTO settings VALUES (?, '45') ON CONFLICT (key) DO UPDATE "
                        "SET value = excluded.value", [key])
            raise ValueError("no")
        with pytest.raises(ValueError):
            bank.write(job)
    assert bank.settings.value(key) == value_expected
