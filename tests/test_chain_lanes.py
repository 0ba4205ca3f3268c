"""The hash chains per writer lane (issue 14): every check must hold when other lanes' writers
have written rows of their own, each lane its own chain. The bank's own writer posts in its lane
(0 on DuckDB; on PostgreSQL the lane its writer session took, 1 here); rows of other lanes are
written here directly through the store, hashed as their writer would, between the bank's own
rows (ids interleave). Tests name lanes by label (lane_names): 0 is the bank's own lane, 1..3
three others (1..3 on DuckDB; 0, 2 and 3 on PostgreSQL). On both engines."""
from __future__ import annotations

import datetime as dt

import pytest

from bankms.domain import chain
from bankms.domain.dates import utcnow
from bankms.domain.errors import AlreadyReversed
from bankms.reporting import export_check as fmt
from bankms.services import ledger
from bankms.store import chains as chain_store
from bankms.store.db import REVERSAL_INDEX
from bankms.store.port import DuplicateKey
from conftest import Clock, funded_account
from test_chain import same_as_the_walk

pytestmark = pytest.mark.engines

DAY = dt.timedelta(days=1)
TX_INSERT = ("INSERT INTO transactions (id, kind, amount_cents, memo, source_account, "
             "target_account, actor, actor_role, idempotency_key, reverses_id, posted_at, "
             "business_date, channel, lane, chain_hash) "
             "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
AUDIT_INSERT = ("INSERT INTO audit_log (id, ts, actor, actor_role, action, entity, entity_id, "
                "before, after, outcome, lane, chain_hash) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")


def _previous(uow, table, lane):
    row = uow.fetchall(f"SELECT chain_hash FROM {table} WHERE lane = ? ORDER BY id DESC "
                       "LIMIT 1", [lane])
    return row[0][0] if row else chain.GENESIS


def write_in_lane(bank, lane, source, target, cents=100, *, day=None, reverses_id=None):
    """One transfer (its two postings, the balances) and one audit row in `lane`, each chained
    on the last row of its lane, as that lane's writer would write them. Returns the
    transaction id."""
    def write(uow):
        state = bank.state
        # Ids as the writers take them (uow.take_ids: DuckDB's counters, PostgreSQL's
        # sequences).
        tid = int(uow.take_ids("transaction_id_seq", 1).ids[0])
        first_posting, second_posting = uow.take_ids("posting_id_seq", 2).ids.tolist()
        aid = int(uow.take_ids("audit_id_seq", 1).ids[0])
        now = utcnow()
        ids = dict(uow.fetchall("SELECT account_number, id FROM accounts WHERE account_number "
                                "IN (?, ?)", [source, target]))
        tx = (tid, "transfer", cents, f"lane {lane}", source, target, "system", "system",
              None, reverses_id, now, day or state.business_date, None, lane)
        postings = [(first_posting, tid, ids[source], -cents, now),
                    (second_posting, tid, ids[target], cents, now)]
        uow.execute(TX_INSERT, [*tx, chain.entry_hash(
            _previous(uow, "transactions", lane), chain.ledger_content(tx, postings))])
        for posting in postings:
            uow.execute("INSERT INTO postings (id, transaction_id, account_id, amount_cents, "
                        "posted_at) VALUES (?, ?, ?, ?, ?)", list(posting))
            uow.execute("UPDATE accounts SET balance_cents = balance_cents + ? WHERE id = ?",
                        [posting[3], posting[2]])
        audit = (aid, now, "system", "system", "payment.transfer", "transaction", str(tid),
                 None, "{}", "ok", lane)
        uow.execute(AUDIT_INSERT, [*audit, chain.entry_hash(
            _previous(uow, "audit_log", lane), chain.audit_content(audit))])
        return tid
    return bank.write(write)


def lane_names(bank) -> dict:
    """{label: lane}: label 0 is the bank's own writer lane, labels 1..3 three other lanes."""
    own = bank.chain.lane
    others = [n for n in range(5) if n != own and (own != 0 or n != 0)][:3]
    return {0: own, 1: others[0], 2: others[1], 3: others[2]}


@pytest.fixture
def lanes(bank):
    """The bank's own transfers (label 0) with lanes labelled 1 and 2 between them. Returns
    {label: [transaction ids]}, the two accounts and the labels' lanes (lane_names)."""
    system = bank.system_actor()
    a, b = funded_account(bank, "1000.00"), funded_account(bank, "1000.00")
    names = lane_names(bank)
    out = {0: [], 1: [], 2: []}
    for lane in (1, 0, 2, 1, 0, 2, 1):
        if lane == 0:
            out[0].append(bank.payments.transfer(system, a, b, "1.00").transaction_id)
        else:
            out[lane].append(write_in_lane(bank, names[lane], b, a))
    return {"ids": out, "a": a, "b": b, "L": names}


def test_interleaved_lanes_verify_and_recompute(bank, lanes):
    ids = lanes["ids"]
    # Interleaved by id: lane 1, then 0, then 2, ...
    assert ids[1][0] < ids[0][0] < ids[2][0] < ids[1][1] < ids[0][1]
    L = lanes["L"]
    assert bank.audit.verify() == []
    walked = bank.chain.recompute()
    for name in chain.CHAINS:
        assert walked[name]["bad"] is None and bank.chain._checked(name, set())["bad"] is None
        assert set(walked[name]["lanes"]) == {L[0], L[1], L[2]}
    assert walked["ledger"]["lanes"][L[1]]["last_id"] == ids[1][-1]
    same_as_the_walk(bank)
    # The own lane's head in memory is its own last row, not another lane's.
    assert bank.chain._heads["ledger"][0] == ids[0][-1]


def test_a_nonzero_lane_is_hashed_and_lane_0_is_not():
    row = (7, "transfer", 100, "", "1", "2", "s", "system", None, None, "t", "d")
    postings = [(1, 7, 1, -100, "t"), (2, 7, 2, 100, "t")]
    plain = chain.ledger_content(row, postings)
    assert chain.ledger_content((*row, None, 0), postings) == plain
    assert chain.ledger_content((*row, "card", 0), postings) == \
        chain.ledger_content((*row, "card"), postings)
    contents = {chain.ledger_content((*row, channel, lane), postings)
                for channel in (None, "1", "card") for lane in (0, 1, 2)}
    assert len(contents) == 9  # channel "1" without a lane never reads as lane 1
    audit = (3, "t", "s", "system", "x", None, None, None, None, "ok")
    assert chain.audit_content((*audit, 0)) == chain.canonical(audit)
    assert chain.audit_content((*audit, 1)) == chain.canonical((*audit, 1))


def _tamper_cases():
    # (id, chain, which row, the SQL done to it)
    return [
        ("a lane-1 transaction moved to lane 2", "ledger", (1, 0),
         "UPDATE transactions SET lane = {L2} WHERE id = ?"),
        ("a lane-1 transaction moved to lane 0", "ledger", (1, 1),
         "UPDATE transactions SET lane = {L0} WHERE id = ?"),
        ("a lane-2 transaction's memo", "ledger", (2, 0),
         "UPDATE transactions SET memo = 'changed' WHERE id = ?"),
        ("a lane-1 audit row moved to lane 0", "audit", (1, 1),
         "UPDATE audit_log SET lane = {L0} WHERE entity_id = CAST(? AS VARCHAR)"),
    ]


@pytest.mark.parametrize("case, name, which, sql", _tamper_cases(),
                         ids=[c[0] for c in _tamper_cases()])
def test_a_changed_lane_or_content_breaks_its_lane(bank, lanes, case, name, which, sql):
    lane, index = which
    tid = lanes["ids"][lane][index]
    sql = sql.format(L0=lanes["L"][0], L2=lanes["L"][2])
    bank.write(lambda uow: uow.execute(sql, [tid]))
    target = tid if name == "ledger" else bank.read_one(
        "SELECT id FROM audit_log WHERE entity_id = CAST(? AS VARCHAR) AND "
        "action = 'payment.transfer' AND actor_role = 'system' AND after = '{}'", [tid])[0]
    problems = bank.chain.verify()
    assert any(f"breaks at {'transaction' if name == 'ledger' else 'audit row'} {target}:"
               in p for p in problems), problems
    walked = bank.chain.recompute()
    assert walked[name]["bad"] == target == bank.chain._checked(name, set())["bad"]


def _close(bank, day):
    bank.clock = Clock(dt.datetime.combine(day + 2 * DAY, dt.time(9, 0)))
    bank.end_of_day(bank.system_actor(), until=day)


def test_end_of_day_records_every_lane_and_kept_heads_are_checked(bank, lanes):
    system = bank.system_actor()
    L = lanes["L"]
    day = bank.business_date
    _close(bank, day)
    heads = bank.chain.heads(system)
    for name, table in (("ledger", "transactions"), ("audit", "audit_log")):
        last = dict(bank.read(f"SELECT lane, max(id) FROM {table} GROUP BY lane"))
        mine = {h["lane"]: h for h in heads if h["chain"] == name}
        assert {lane: h["last_id"] for lane, h in mine.items()} == last, name
        for lane, h in mine.items():
            assert bank.read_one(f"SELECT chain_hash FROM {table} WHERE id = ?",
                                 [h["last_id"]]) == (h["head_hash"],)
    # The next day only lane 1 writes: every lane still gets its head.
    write_in_lane(bank, L[1], lanes["b"], lanes["a"])
    _close(bank, day + DAY)
    second = [h for h in bank.chain.heads(system) if h["business_date"] == day + DAY]
    assert {(h["chain"], h["lane"]) for h in second} == {
        (n, L[label]) for n in chain.CHAINS for label in (0, 1, 2)}
    assert bank.audit.verify() == []
    kept = bank.chain.heads_csv(system)
    assert kept.splitlines()[0] == "business_date,chain,lane,last_id,head_hash"
    assert bank.chain.check_heads(system, kept) == []
    # A kept copy from before lanes (no lane column) is lane 0's heads.
    old = "business_date,chain,last_id,head_hash\n" + "".join(
        f"{h['business_date']},{h['chain']},{h['last_id']},{h['head_hash']}\n"
        for h in bank.chain.heads(system) if h["lane"] == 0)
    assert bank.chain.check_heads(system, old) == []
    # A changed head of lane 2 in the kept copy, then in the bank.
    lane2 = next(h for h in second if h["chain"] == "ledger" and h["lane"] == L[2])
    forged = kept.replace(lane2["head_hash"], "0" * 64)
    found = bank.chain.check_heads(system, forged)
    assert any(f"ledger chain (lane {L[2]}): the kept head" in p for p in found), found
    bank.write(lambda uow: uow.execute(
        "UPDATE chain_heads SET head_hash = ? WHERE chain = 'ledger' AND lane = ?",
        ["0" * 64, L[2]]))
    found = bank.chain.verify()
    assert any(f"ledger chain (lane {L[2]}): the recorded head" in p for p in found), found


def test_an_old_heads_csv_parses_as_lane_0():
    head = "ab" * 32
    assert chain_store.parse_heads(f"business_date,chain,last_id,head_hash\n"
                                   f"2026-01-02,ledger,5,{head}\n") == [
        (dt.date(2026, 1, 2), "ledger", 0, 5, head)]
    assert chain_store.parse_heads(f"business_date,chain,lane,last_id,head_hash\n"
                                   f"2026-01-02,audit,3,9,{head}\n") == [
        (dt.date(2026, 1, 2), "audit", 3, 9, head)]


def test_a_back_dated_entry_is_found_in_any_lane(bank, lanes):
    day = bank.business_date
    _close(bank, day)
    L = lanes["L"]
    later = write_in_lane(bank, L[1], lanes["b"], lanes["a"])  # dated the open day: fine
    assert bank.chain.verify() == []
    back = [write_in_lane(bank, L[label], lanes["b"], lanes["a"], day=day)
            for label in (1, 3)]
    found = bank.chain.verify()
    assert [tid for tid in (later, *back) if any(
        f"transaction {tid} is dated {day}" in p and "back-dated" in p for p in found)] == back


def test_the_offline_checker_recomputes_each_lane(bank, lanes):
    day = bank.business_date
    _close(bank, day)
    manager = bank.system_actor()
    pem = bank.export.public_key_pem(manager)

    def chain_check():
        bundle = bank.export.auditor_bundle(manager, from_date=day, to_date=day)
        [check] = [c for c in fmt.check_bundle(bundle, pem) if c.name == "chain"]
        return check

    check = chain_check()
    assert check.ok, check.detail
    tid = lanes["ids"][1][1]
    bank.write(lambda uow: uow.execute("UPDATE transactions SET lane = ? WHERE id = ?",
                                       [lanes["L"][2], tid]))
    check = chain_check()
    assert not check.ok and f"ledger entry {tid} does not chain" in check.detail, check.detail


def test_a_second_reversal_is_refused_even_past_the_guard(bank, monkeypatch):
    system = bank.system_actor()
    # b can pay a second reversal back: only the reversal rule may refuse it.
    a, b = funded_account(bank, "100.00"), funded_account(bank, "100.00")
    original = bank.payments.transfer(system, a, b, "10.00").transaction_id
    bank.payments.reverse(system, original, "typo")
    # Written past the bank: the index refuses it.
    with pytest.raises(DuplicateKey) as caught:
        write_in_lane(bank, 1, b, a, reverses_id=original)
    assert caught.value.constraint == REVERSAL_INDEX
    # The guard bypassed (as two lanes passing it at once would): the ledger still refuses.
    check = ledger.check_accounts
    monkeypatch.setattr(ledger, "check_accounts",
                        lambda req, accounts, reversed_ids: check(req, accounts, set()))
    with pytest.raises(AlreadyReversed, match=f"Transaction {original} has already"):
        bank.payments.reverse(system, original, "again", idempotency_key="second-reversal")
    assert bank.read("SELECT count(*) FROM transactions WHERE reverses_id = ?",
                     [original]) == [(1,)]
    assert bank.audit.verify() == []


def test_a_bank_holding_a_doubled_reversal_opens_without_the_index(bank):
    """Written before the index (past the guard): the bank still opens, verify names the pair,
    and the index comes once the bank holds no such pair."""
    import bankms

    system = bank.system_actor()
    a, b = funded_account(bank, "100.00"), funded_account(bank, "100.00")
    original = bank.payments.transfer(system, a, b, "10.00").transaction_id
    bank.payments.reverse(system, original, "typo")
    bank.write(lambda uow: uow.execute(f"DROP INDEX {REVERSAL_INDEX}"))
    write_in_lane(bank, 0, b, a, reverses_id=original)
    path = bank.path
    bank.close()
    again = bankms.open_bank(path, bcrypt_rounds=4)
    try:
        assert f"ledger: transaction {original} is reversed 2 times" in again.chain.verify()
        # Still no index: a third one goes in too, and verify counts it.
        write_in_lane(again, 0, b, a, reverses_id=original)
        assert f"ledger: transaction {original} is reversed 3 times" in again.chain.verify()
    finally:
        again.close()


def test_a_bank_made_before_lanes_keeps_its_heads_and_a_new_banks_key(bank, engine):
    """chain_heads of a bank made before lanes (no lane, key (business_date, chain)) is made
    again with the lane in its key: the heads are kept as lane 0's, and on PostgreSQL the key
    keeps the name a new bank's has (chain_heads_pkey), not the name of the table it was
    built under."""
    import bankms

    path = bank.path
    bank.close()
    old = ("CREATE TABLE chain_heads (business_date DATE NOT NULL, chain VARCHAR NOT NULL, "
           "last_id BIGINT NOT NULL, head_hash VARCHAR NOT NULL, recorded_at TIMESTAMP "
           "NOT NULL, PRIMARY KEY (business_date, chain))")
    row = "INSERT INTO chain_heads VALUES ('2026-01-02', 'ledger', 0, '{}', '2026-01-03')"
    if engine.name == "pg":
        import psycopg
        with psycopg.connect(path, autocommit=True) as con:
            con.execute("DROP TABLE chain_heads")
            con.execute(old)
            con.execute(row.format(chain.GENESIS))
    else:
        import duckdb
        con = duckdb.connect(path)
        try:
            con.execute("DROP TABLE chain_heads")
            con.execute(old)
            con.execute(row.format(chain.GENESIS))
            con.execute("CHECKPOINT")
        finally:
            con.close()
    again = bankms.open_bank(path, bcrypt_rounds=4)
    try:
        assert again.read("SELECT business_date, chain, lane, last_id FROM chain_heads") == [
            (dt.date(2026, 1, 2), "ledger", 0, 0)]
        if engine.name == "pg":
            assert again.read("SELECT conname FROM pg_constraint WHERE conrelid = "
                              "'chain_heads'::regclass AND contype = 'p'") == [
                ("chain_heads_pkey",)]
    finally:
        again.close()
