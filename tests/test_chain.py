"""The hash chains (issue 15): tamper tests on a real database file, written with the bank
closed through raw duckdb and then reopened, as someone holding the file would; the kept heads;
the upgrade of a bank made before the chain; and the pure functions the offline checker uses."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import duckdb
import pytest

import bankms
from bankms.domain import chain
from bankms.domain.errors import InvalidInput, PermissionDenied
from conftest import Clock, funded_account, make_customer

DAY = dt.timedelta(days=1)


@pytest.fixture
def built(tmp_path):
    """A bank with two closed days (heads recorded) and a few transactions after them, closed.
    Returns (path, facts)."""
    path = str(tmp_path / "bank.duckdb")
    bank = bankms.open_bank(path, bcrypt_rounds=4)
    # The days closed below have ended by this clock.
    bank.clock = Clock(dt.datetime.now(dt.timezone.utc) + 30 * DAY)
    try:
        system = bank.system_actor()
        a = funded_account(bank, "1000.00")
        b = funded_account(bank, "500.00", customer_id=make_customer(bank, name="Bo Li"))
        for amount in ("10.00", "20.00"):
            bank.payments.transfer(system, a, b, amount, memo="rent")
        first_day = bank.business_date
        bank.end_of_day(system, until=first_day)
        for amount in ("30.00", "40.00"):
            bank.payments.transfer(system, b, a, amount, memo="zurück für März – ü")
        bank.end_of_day(system, until=first_day + DAY)
        for amount in ("1.00", "2.00", "3.00"):
            bank.payments.transfer(system, a, b, amount)
        assert bank.audit.verify() == []
        facts = {"first_day": first_day, "a": a, "b": b,
                 "heads": bank.chain.heads(system),
                 "kept": bank.chain.heads_csv(system)}
    finally:
        bank.close()
    return path, facts


def problems_after(path, tamper):
    con = duckdb.connect(path)
    try:
        tamper(con)
    finally:
        con.close()
    bank = bankms.open_bank(path, bcrypt_rounds=4)
    try:
        same_as_the_walk(bank)
        return bank.audit.verify()
    finally:
        bank.close()


def same_as_the_walk(bank):
    """verify() checks set-based in SQL; the offline checker walks the chain in Python
    (chain.py). Both must build the same content and find the same first bad entry."""
    walked = bank.chain.recompute()
    for name in chain.CHAINS:
        assert bank.chain._checked(name, set())["bad"] == walked[name]["bad"], name
        in_sql = bank.read(bank.chain.content_sql(name) + " ORDER BY id")
        if name == "audit":
            rows = bank.read(f"SELECT {', '.join(chain.CHAIN_COLUMNS['audit']['audit_log'])} "
                             "FROM audit_log ORDER BY id")
            in_python = [chain.audit_content(r) for r in rows]
        else:
            cols = chain.CHAIN_COLUMNS["ledger"]
            txs = bank.read(f"SELECT {', '.join(cols['transactions'])} FROM transactions "
                            "ORDER BY id")
            posts = bank.read(f"SELECT {', '.join(cols['postings'])} FROM postings")
            in_python = [chain.ledger_content(t, [p for p in posts if p[1] == t[0]])
                         for t in txs]
        assert [c.encode() for _, c, _, _ in in_sql] == in_python, name


def transfers(con):
    """Transfer transaction ids, in id order."""
    return [r[0] for r in con.execute(
        "SELECT id FROM transactions WHERE kind = 'transfer' ORDER BY id").fetchall()]


def rehash_ledger_entry(con, tid):
    """What a careful forger does: store the hash that entry `tid` has over its new content,
    chained on the stored hash of the entry before it."""
    prev = con.execute("SELECT chain_hash FROM transactions WHERE id < ? ORDER BY id DESC "
                       "LIMIT 1", [tid]).fetchone()
    cols = chain.CHAIN_COLUMNS["ledger"]
    row = con.execute(f"SELECT {', '.join(cols['transactions'])} FROM transactions "
                      "WHERE id = ?", [tid]).fetchone()
    posts = con.execute(f"SELECT {', '.join(cols['postings'])} FROM postings "
                        "WHERE transaction_id = ?", [tid]).fetchall()
    new = chain.entry_hash(prev[0] if prev else chain.GENESIS, chain.ledger_content(row, posts))
    con.execute("UPDATE transactions SET chain_hash = ? WHERE id = ?", [new, tid])


# Each tamper keeps every sum equal (postings per transaction, balances, trial balance), so
# that only the chain can tell. Returns the text verify() must name.
def change_posting_amounts(con):
    tid = transfers(con)[1]
    (src, dst) = con.execute("SELECT id, account_id FROM postings WHERE transaction_id = ? "
                             "ORDER BY amount_cents", [tid]).fetchall()
    con.execute("UPDATE postings SET amount_cents = amount_cents - 500 WHERE id = ?", [src[0]])
    con.execute("UPDATE postings SET amount_cents = amount_cents + 500 WHERE id = ?", [dst[0]])
    con.execute("UPDATE accounts SET balance_cents = balance_cents - 500 WHERE id = ?", [src[1]])
    con.execute("UPDATE accounts SET balance_cents = balance_cents + 500 WHERE id = ?", [dst[1]])
    return f"ledger chain breaks at transaction {tid}:"


def delete_audit_row(con):
    ids = [r[0] for r in con.execute("SELECT id FROM audit_log ORDER BY id").fetchall()]
    con.execute("DELETE FROM audit_log WHERE id = ?", [ids[3]])
    return f"audit chain breaks at audit row {ids[4]}: its stored hash"


def insert_back_dated(con):
    (tid,) = con.execute("SELECT max(id) + 1 FROM transactions").fetchone()
    (pid,) = con.execute("SELECT max(id) + 1 FROM postings").fetchone()
    (day,) = con.execute("SELECT min(business_date) FROM eod_runs").fetchone()
    a, b = con.execute("SELECT id, account_number FROM accounts WHERE customer_id IS NOT NULL "
                       "ORDER BY id LIMIT 2").fetchall()
    stamp = dt.datetime.combine(day, dt.time(12))
    con.execute("INSERT INTO transactions (id, kind, amount_cents, memo, source_account, "
                "target_account, actor, actor_role, posted_at, business_date) VALUES "
                "(?, 'transfer', 700, 'fees', ?, ?, 'system', 'system', ?, ?)",
                [tid, a[1], b[1], stamp, day])
    con.execute("INSERT INTO postings VALUES (?, ?, ?, -700, ?), (?, ?, ?, 700, ?)",
                [pid, tid, a[0], stamp, pid + 1, tid, b[0], stamp])
    con.execute("UPDATE accounts SET balance_cents = balance_cents - 700 WHERE id = ?", [a[0]])
    con.execute("UPDATE accounts SET balance_cents = balance_cents + 700 WHERE id = ?", [b[0]])
    return (tid, day)


def insert_back_dated_unhashed(con):
    tid, _ = insert_back_dated(con)
    return f"ledger chain breaks at transaction {tid}:"


def insert_back_dated_with_its_hash(con):
    tid, day = insert_back_dated(con)
    rehash_ledger_entry(con, tid)
    return f"transaction {tid} is dated {day} but comes after the head recorded when {day}"


def swap_transaction_ids(con):
    first, second = transfers(con)[:2]
    for old, new in ((first, -1), (second, first), (-1, second)):
        con.execute("UPDATE transactions SET id = ? WHERE id = ?", [new, old])
        con.execute("UPDATE postings SET transaction_id = ? WHERE transaction_id = ?", [new, old])
    return f"ledger chain breaks at transaction {first}:"


def swap_audit_contents(con):
    cols = [c for c in chain.CHAIN_COLUMNS["audit"]["audit_log"] if c != "id"]
    one, two = con.execute("SELECT id FROM audit_log WHERE action = 'payment.transfer' "
                           "ORDER BY id LIMIT 2").fetchall()
    values = {i: con.execute(f"SELECT {', '.join(cols)} FROM audit_log WHERE id = ?",
                             [i]).fetchone() for i in (one[0], two[0])}
    for target, source in ((one[0], two[0]), (two[0], one[0])):
        con.execute(f"UPDATE audit_log SET {', '.join(c + ' = ?' for c in cols)} WHERE id = ?",
                    [*values[source], target])
    return f"audit chain breaks at audit row {one[0]}:"


def change_memo_and_its_hash(con):
    tid = transfers(con)[0]
    con.execute("UPDATE transactions SET memo = 'gift' WHERE id = ?", [tid])
    rehash_ledger_entry(con, tid)
    (after,) = con.execute("SELECT min(id) FROM transactions WHERE id > ?", [tid]).fetchone()
    return f"ledger chain breaks at transaction {after}:"


def change_last_entry_of_a_day_and_its_hash(con):
    # The last transaction before the first recorded head: no later entry of the same day,
    # but the head recorded at the close of the day still tells.
    (tid, day) = con.execute("SELECT last_id, business_date FROM chain_heads WHERE "
                             "chain = 'ledger' ORDER BY business_date LIMIT 1").fetchone()
    con.execute("UPDATE transactions SET memo = 'changed' WHERE id = ?", [tid])
    rehash_ledger_entry(con, tid)
    return f"ledger chain: the recorded head for {day} (up to transaction {tid}) does not match"


def change_business_date(con):
    tid = transfers(con)[2]
    con.execute("UPDATE transactions SET business_date = business_date - 1 WHERE id = ?", [tid])
    return f"ledger chain breaks at transaction {tid}:"


def change_audit_after_json(con):
    (aid,) = con.execute("SELECT min(id) FROM audit_log WHERE action = 'payment.transfer'"
                         ).fetchone()
    con.execute("UPDATE audit_log SET after = replace(after, '1', '2') WHERE id = ?", [aid])
    return f"audit chain breaks at audit row {aid}:"


def change_audit_before_json_and_its_hash(con):
    (aid,) = con.execute("SELECT min(id) FROM audit_log WHERE action = 'payment.transfer'"
                         ).fetchone()
    con.execute("UPDATE audit_log SET before = '{}' WHERE id = ?", [aid])
    cols = chain.CHAIN_COLUMNS["audit"]["audit_log"]
    row = con.execute(f"SELECT {', '.join(cols)} FROM audit_log WHERE id = ?", [aid]).fetchone()
    (prev,) = con.execute("SELECT chain_hash FROM audit_log WHERE id < ? ORDER BY id DESC "
                          "LIMIT 1", [aid]).fetchone()
    con.execute("UPDATE audit_log SET chain_hash = ? WHERE id = ?",
                [chain.entry_hash(prev, chain.audit_content(row)), aid])
    (after,) = con.execute("SELECT min(id) FROM audit_log WHERE id > ?", [aid]).fetchone()
    return f"audit chain breaks at audit row {after}:"


def delete_the_newest_transaction_of_a_closed_day(con):
    # The last entry a recorded head covers, its postings and its effect on the balances.
    (tid,) = con.execute("SELECT last_id FROM chain_heads WHERE chain = 'ledger' "
                         "ORDER BY business_date DESC LIMIT 1").fetchone()
    for account, cents in con.execute("SELECT account_id, amount_cents FROM postings "
                                      "WHERE transaction_id = ?", [tid]).fetchall():
        con.execute("UPDATE accounts SET balance_cents = balance_cents - ? WHERE id = ?",
                    [cents, account])
    con.execute("DELETE FROM postings WHERE transaction_id = ?", [tid])
    con.execute("DELETE FROM idempotency_keys WHERE transaction_id = ?", [tid])
    con.execute("DELETE FROM transactions WHERE id = ?", [tid])
    return f"ends at transaction {tid}, which is no longer there"


def give_an_old_entry_a_channel(con):
    """A transfer posted without a channel (as every entry before channels) made to look like
    a card payment: the channel is chained as soon as it holds a value."""
    tid = transfers(con)[0]
    con.execute("UPDATE transactions SET channel = 'card' WHERE id = ?", [tid])
    return f"ledger chain breaks at transaction {tid}:"


def change_a_channel(con):
    (tid,) = con.execute("SELECT min(id) FROM transactions WHERE channel = 'cash'").fetchone()
    con.execute("UPDATE transactions SET channel = 'salary' WHERE id = ?", [tid])
    return f"ledger chain breaks at transaction {tid}:"


def remove_a_channel(con):
    (tid,) = con.execute("SELECT max(id) FROM transactions WHERE channel = 'cash'").fetchone()
    con.execute("UPDATE transactions SET channel = NULL WHERE id = ?", [tid])
    return f"ledger chain breaks at transaction {tid}:"


def change_posting_amounts_and_forget_the_chain(con):
    # Were the bank to take a file without its chain_started setting for a bank made before
    # the chain, it would hash every row again at its next open, over the changed content, and
    # launder the change: the stored hashes must tell instead.
    expected = change_posting_amounts(con)
    con.execute("DELETE FROM settings WHERE key = 'chain_started'")
    con.execute("DELETE FROM chain_heads")
    return expected


@pytest.mark.parametrize("tamper", [
    change_posting_amounts_and_forget_the_chain,
    change_business_date,
    change_audit_after_json,
    change_audit_before_json_and_its_hash,
    delete_the_newest_transaction_of_a_closed_day,
    change_posting_amounts,
    delete_audit_row,
    insert_back_dated_unhashed,
    insert_back_dated_with_its_hash,
    swap_transaction_ids,
    swap_audit_contents,
    change_memo_and_its_hash,
    change_last_entry_of_a_day_and_its_hash,
    give_an_old_entry_a_channel,
    change_a_channel,
    remove_a_channel,
], ids=lambda f: f.__name__)
def test_verify_names_the_tampered_entry(built, tamper):
    path, _ = built
    expected = []
    problems = problems_after(path, lambda con: expected.append(tamper(con)))
    assert any(expected[0] in p for p in problems), problems
    # The sums were kept equal: only the chain tells.
    assert all("chain" in p for p in problems), problems


def test_an_untouched_bank_verifies_after_reopening(built):
    path, facts = built
    assert problems_after(path, lambda con: None) == []
    assert [(h["chain"], h["business_date"]) for h in facts["heads"]] == [
        ("audit", facts["first_day"]), ("ledger", facts["first_day"]),
        ("audit", facts["first_day"] + DAY), ("ledger", facts["first_day"] + DAY)]


def rewrite_whole_chain(con):
    """A forger with the code: change an old posting pair, then recompute every hash and every
    recorded head, so that the file is consistent in itself."""
    change_posting_amounts(con)
    ids = [r[0] for r in con.execute("SELECT id FROM transactions ORDER BY id").fetchall()]
    for tid in ids:
        rehash_ledger_entry(con, tid)
    for day, last_id in con.execute("SELECT business_date, last_id FROM chain_heads "
                                    "WHERE chain = 'ledger'").fetchall():
        (head,) = con.execute("SELECT chain_hash FROM transactions WHERE id = ?",
                              [last_id]).fetchone()
        con.execute("UPDATE chain_heads SET head_hash = ? WHERE business_date = ? "
                    "AND chain = 'ledger'", [head, day])


def test_a_rewrite_of_the_whole_chain_is_caught_by_the_kept_heads(built):
    path, facts = built
    assert problems_after(path, rewrite_whole_chain) == []
    bank = bankms.open_bank(path, bcrypt_rounds=4)
    try:
        system = bank.system_actor()
        found = bank.chain.check_heads(system, facts["kept"])
        heads_now = bank.chain.heads_csv(system)
    finally:
        bank.close()
    day = facts["first_day"]
    assert any(f"the kept head for {day} (up to transaction" in p for p in found), found
    assert any(f"the ledger head recorded in the bank for {day} differs" in p
               for p in found), found
    assert heads_now != facts["kept"]


def test_kept_heads_of_an_untouched_bank_match(built):
    path, facts = built
    bank = bankms.open_bank(path, bcrypt_rounds=4)
    try:
        assert bank.chain.check_heads(bank.system_actor(), facts["kept"]) == []
    finally:
        bank.close()


@pytest.mark.parametrize("text, expected", [
    ("", InvalidInput),
    ("day,chain\n2026-01-01,ledger", InvalidInput),
    ("business_date,chain,last_id,head_hash\n2026-01-01,ledger,5,abc", InvalidInput),
    ("business_date,chain,last_id,head_hash\n2026-01-01,other,5," + "0" * 64, InvalidInput),
    ("business_date,chain,last_id,head_hash\n2026-13-01,audit,5," + "0" * 64, InvalidInput),
])
def test_check_heads_refuses_text_that_is_not_kept_heads(bank, system, text, expected):
    with pytest.raises(expected):
        bank.chain.check_heads(system, text)


def test_heads_are_for_managers_only(bank):
    from conftest import employee
    teller = employee(bank, "teller")
    with pytest.raises(PermissionDenied):
        bank.chain.heads(teller)
    with pytest.raises(PermissionDenied):
        bank.chain.check_heads(teller, "business_date,chain,last_id,head_hash\n")


def test_a_bank_made_before_the_chain_gets_it_at_the_first_open(built):
    path, _ = built
    con = duckdb.connect(path)
    try:
        before = {t: con.execute(f"SELECT id, chain_hash FROM {t} ORDER BY id").fetchall()
                  for t in ("transactions", "audit_log")}
        # Banks made before the chain had no index on transactions either (DuckDB refuses
        # DROP COLUMN on an indexed table); the migration makes it again.
        con.execute("DROP INDEX transactions_reverses_id")
        for table in ("transactions", "audit_log"):
            con.execute(f"ALTER TABLE {table} DROP COLUMN chain_hash")
        con.execute("DROP TABLE chain_heads")
        con.execute("DELETE FROM settings WHERE key = 'chain_started'")
    finally:
        con.close()
    bank = bankms.open_bank(path, bcrypt_rounds=4)
    try:
        assert bank.audit.verify() == []
        after = {t: bank.read(f"SELECT id, chain_hash FROM {t} ORDER BY id")
                 for t in ("transactions", "audit_log")}
        (started,) = bank.read("SELECT after FROM audit_log WHERE "
                               "action = 'ledger.chain_started'")
    finally:
        bank.close()
    # The same content gives the same chain; the upgrade adds its own audit row at the end.
    assert after["transactions"] == before["transactions"]
    assert after["audit_log"][:-1] == before["audit_log"]
    assert f'"transactions": {len(before["transactions"])}' in started[0]
    # Only once: the next open finds the chain and writes nothing.
    bank = bankms.open_bank(path, bcrypt_rounds=4)
    try:
        assert bank.read("SELECT id, chain_hash FROM audit_log ORDER BY id") == \
            after["audit_log"]
    finally:
        bank.close()


def legacy_content(transaction, postings) -> bytes:
    """A ledger entry's content as the bank hashed it before transactions.channel existed,
    written out here on its own: the 12 columns of the transaction, then its postings sorted
    by (account_id, amount_cents, id), joined by U+001F."""
    values = list(transaction)
    for posting in sorted(postings, key=lambda p: (p[2], p[3], p[0])):
        values.extend(posting)
    return "\x1f".join(chain.text(v) for v in values).encode("utf-8")


LEGACY_COLUMNS = ("id, kind, amount_cents, memo, source_account, target_account, actor, "
                  "actor_role, idempotency_key, reverses_id, posted_at, business_date")


def test_a_bank_sealed_before_channels_keeps_its_hashes_and_verifies(built):
    """A file from before transactions.channel and lanes (every entry hashed over its 12
    columns, no channel or lane column, chain_heads keyed by day and chain) migrates at open,
    verifies, keeps every stored hash and recorded head, and chains new entries with their
    channel on it."""
    path, facts = built
    con = duckdb.connect(path)
    try:
        # Make the file one the bank wrote before channels: no channel anywhere, every ledger
        # hash over the legacy content, the recorded heads to match, then no column at all.
        con.execute("UPDATE transactions SET channel = NULL")
        posts = con.execute("SELECT id, transaction_id, account_id, amount_cents, posted_at "
                            "FROM postings").fetchall()
        head = chain.GENESIS
        for row in con.execute(f"SELECT {LEGACY_COLUMNS} FROM transactions ORDER BY id"
                               ).fetchall():
            head = chain.entry_hash(head, legacy_content(
                row, [p for p in posts if p[1] == row[0]]))
            con.execute("UPDATE transactions SET chain_hash = ? WHERE id = ?", [head, row[0]])
        con.execute("UPDATE chain_heads SET head_hash = t.chain_hash FROM transactions t "
                    "WHERE chain_heads.chain = 'ledger' AND t.id = chain_heads.last_id")
        # Before lanes: no reversal index (DuckDB refuses DROP COLUMN on an indexed table),
        # no lane columns, chain_heads without a lane.
        con.execute("DROP INDEX transactions_reverses_id")
        con.execute("ALTER TABLE transactions DROP COLUMN lane")
        con.execute("ALTER TABLE audit_log DROP COLUMN lane")
        con.execute("ALTER TABLE transactions DROP COLUMN channel")
        con.execute("ALTER TABLE approval_requests DROP COLUMN channel")
        con.execute("CREATE TABLE old_heads (business_date DATE NOT NULL, chain VARCHAR NOT "
                    "NULL, last_id BIGINT NOT NULL, head_hash VARCHAR NOT NULL, recorded_at "
                    "TIMESTAMP NOT NULL, PRIMARY KEY (business_date, chain))")
        con.execute("INSERT INTO old_heads SELECT business_date, chain, last_id, head_hash, "
                    "recorded_at FROM chain_heads")
        con.execute("DROP TABLE chain_heads")
        con.execute("ALTER TABLE old_heads RENAME TO chain_heads")
        heads = con.execute("SELECT * FROM chain_heads ORDER BY ALL").fetchall()
        before = con.execute("SELECT id, chain_hash FROM transactions ORDER BY id").fetchall()
    finally:
        con.close()
    bank = bankms.open_bank(path, bcrypt_rounds=4)
    try:
        assert bank.audit.verify() == []
        assert bank.read("SELECT id, chain_hash FROM transactions ORDER BY id") == before
        assert bank.read("SELECT count(*) FROM transactions WHERE channel IS NOT NULL") == [(0,)]
        assert bank.read("SELECT business_date, chain, last_id, head_hash, recorded_at "
                         "FROM chain_heads WHERE lane = 0 ORDER BY ALL") == heads
        assert bank.read("SELECT DISTINCT lane FROM transactions UNION "
                         "SELECT DISTINCT lane FROM audit_log") == [(0,)]
        same_as_the_walk(bank)
        receipt = bank.payments.withdraw(bank.system_actor(), facts["a"], "5.00",
                                         memo="Card payment FreshMart", channel="card")
        assert bank.read("SELECT channel FROM transactions WHERE id = ?",
                         [receipt.transaction_id]) == [("card",)]
        assert bank.audit.verify() == []
        same_as_the_walk(bank)
    finally:
        bank.close()


def test_an_entry_without_a_channel_has_the_content_it_had_before_channels(bank, system):
    number = funded_account(bank, "100.00")
    other = funded_account(bank, "0")
    bank.payments.transfer(system, number, other, "1.00")
    bank.payments.withdraw(system, number, "2.00", channel="atm")
    cols = chain.CHAIN_COLUMNS["ledger"]
    posts = bank.read(f"SELECT {', '.join(cols['postings'])} FROM postings")
    rows = bank.read(f"SELECT {', '.join(cols['transactions'])} FROM transactions ORDER BY id")
    for row in rows:
        mine = [p for p in posts if p[1] == row[0]]
        # The columns end with channel and lane; taken as lane 0 (a DuckDB bank's; on
        # PostgreSQL the writer's lane, 1 here, is chained too: test_chain_lanes.py).
        row = (*row[:-1], 0)  # the loop's rows; `rows` keeps the stored lanes
        legacy = legacy_content(row[:-2], mine)
        if row[-2] is None:
            assert chain.ledger_content(row, mine) == legacy
        else:
            assert chain.ledger_content(row, mine) != legacy
            assert row[-2].encode() in chain.ledger_content(row, mine)
    lane = bank.chain.lane
    assert [r[-2:] for r in rows] == [("cash", lane), (None, lane), ("atm", lane)]


def test_a_rolled_back_write_leaves_the_chain_whole(bank, system):
    a = funded_account(bank, "100.00")

    def fails(uow):
        bank.audit_row(uow, system, "test.write", "test", None, after={"x": 1})
        raise RuntimeError("boom")
    with pytest.raises(RuntimeError):
        bank.write(fails)
    bank.payments.withdraw(system, a, "5.00")
    bank.write(lambda uow: bank.audit_row(uow, system, "test.write", "test", None))
    assert bank.audit.verify() == []


@pytest.mark.parametrize("value, expected", [
    (None, ""),
    (True, "true"),
    (False, "false"),
    (0, "0"),
    (-12345, "-12345"),
    (Decimal("1.50"), "1.50"),
    (dt.date(2026, 1, 31), "2026-01-31"),
    (dt.datetime(2026, 1, 31, 8, 5, 3, 120), "2026-01-31T08:05:03.000120"),
    ("memo ü", "memo ü"),
])
def test_text(value, expected):
    assert chain.text(value) == expected


def test_text_refuses_floats():
    with pytest.raises(TypeError):
        chain.text(1.5)


def test_verify_rows_names_the_first_bad_entry():
    contents = [chain.canonical([i, "x"]) for i in range(1, 5)]
    head, stored = chain.GENESIS, []
    for content in contents:
        head = chain.entry_hash(head, content)
        stored.append(head)
    entries = list(zip(range(1, 5), contents, stored))
    assert chain.verify_rows("audit", entries, chain.GENESIS) == (stored[-1], None)
    entries[2] = (3, chain.canonical([3, "y"]), stored[2])
    last, bad = chain.verify_rows("audit", entries, chain.GENESIS)
    assert bad == 3 and last != stored[-1]
    assert chain.canonical([1, None, "a"]) == b"1\x1f\x1fa"
    assert chain.entry_hash(chain.GENESIS, b"") == \
        "66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925"


# The posting batch hashes with the batch functions (chain_hashes, ledger_contents,
# canonicals); each case must give the bytes and hashes of the one-entry functions.
_AT = dt.datetime(2026, 3, 1, 9, 30, 0, 250000)
_DAY = dt.date(2026, 3, 1)
# (transaction rows, posting rows, audit rows)
BATCH_CASES = [
    ([], [], []),
    ([(7, "transfer", 500, "", "A1", "B2", "system", "system", "k", None, _AT, _DAY)],
     [(20, 7, 101, -500, _AT), (21, 7, 100, 500, _AT)],
     [(3, _AT, "system", "system", "payment.transfer", "transaction", "7", None, "{}", "ok")]),
    # Postings given out of order, a tie on account and amount, three legs, none at all,
    # and the types text() knows besides str and int.
    ([(8, "reversal", 1, None, None, "B", "ann", "manager", "r", 7, _AT, _DAY),
      (9, "fee", 300, "memo ü", "A", None, "bob", "teller", "f", None,
       dt.datetime(2026, 3, 1), _DAY),
      (10, "deposit", 5, "", None, "A", "c", "system", "d", None, _AT, _DAY)],
     [(30, 8, 5, 1, _AT), (31, 8, 5, -1, _AT), (33, 9, 9, 100, _AT), (32, 9, 9, 100, _AT),
      (34, 9, 1, -200, _AT)],
     [(4, _AT, "ann", "manager", "x", None, None, None, None, "refused"),
      (5, _DAY, True, False, Decimal("1.50"), "e", "1", "b", "a", "ok")]),
]


@pytest.mark.parametrize("transactions, postings, audit", BATCH_CASES)
def test_batch_functions_equal_the_one_entry_functions(transactions, postings, audit):
    grouped = {}
    for posting in postings:
        grouped.setdefault(posting[1], []).append(posting)
    contents = [chain.ledger_content(t, grouped.get(t[0], ())) for t in transactions]
    assert chain.ledger_contents(transactions, grouped) == contents
    assert chain.canonicals(audit) == [chain.canonical(row) for row in audit]
    head, hashes = "ab" * 32, []
    for content in contents:
        head = chain.entry_hash(head, content)
        hashes.append(head)
    assert chain.chain_hashes("ab" * 32, contents) == hashes


# -- the separator (review of issue 15) --------------------------------------------------------
# The canonical content joins values with U+001F. Were that character allowed inside a chained
# text value, text could move across a field boundary without changing the content: (actor_role
# "system", key "k\x1fx") and ("system\x1fk", "x") hash alike. So no chained text may hold it:
# the bank refuses it where people type it, and verify() names any entry that holds one.

@pytest.mark.parametrize("call, expected", [
    (lambda bank, s, a, b: bank.payments.transfer(s, a, b, "1.00", idempotency_key="k\x1fx"),
     InvalidInput),
    (lambda bank, s, a, b: bank.payments.deposit(s, a, "1.00", idempotency_key="k\x1ex"),
     InvalidInput),
    (lambda bank, s, a, b: bank.payments.withdraw(s, a, "1.00", idempotency_key="k\x00x"),
     InvalidInput),
    (lambda bank, s, a, b: bank.payments.transfer(s, a, b, "1.00", memo="a\x1fb",
                                                  idempotency_key="memo-sep"), "a b"),
], ids=["key with U+001F", "key with U+001E", "key with NUL", "memo with U+001F"])
def test_no_separator_reaches_a_chained_column(bank, system, call, expected):
    a = funded_account(bank, "100.00")
    b = funded_account(bank, "100.00", customer_id=make_customer(bank, name="Cy Sep"))
    if isinstance(expected, type):
        with pytest.raises(expected):
            call(bank, system, a, b)
        return
    call(bank, system, a, b)
    (memo,) = bank.read_one("SELECT memo FROM transactions ORDER BY id DESC LIMIT 1")
    assert memo == expected


def shift_text_across_the_separator(con):
    """A row written before the cleaning (its key holds U+001F, its hash is right), then the
    forger moves text across the separator: the content, and so every hash, stays the same."""
    tid = transfers(con)[0]
    con.execute("UPDATE transactions SET idempotency_key = 'k' || chr(31) || 'x' WHERE id = ?",
                [tid])
    ids = [r[0] for r in con.execute("SELECT id FROM transactions WHERE id >= ? ORDER BY id",
                                     [tid]).fetchall()]
    for i in ids:
        rehash_ledger_entry(con, i)
    con.execute("UPDATE chain_heads SET head_hash = t.chain_hash FROM transactions t "
                "WHERE chain_heads.chain = 'ledger' AND t.id = chain_heads.last_id")
    before = con.execute("SELECT chain_hash FROM transactions ORDER BY id").fetchall()
    con.execute("UPDATE transactions SET actor_role = actor_role || chr(31) || 'k', "
                "idempotency_key = 'x' WHERE id = ?", [tid])
    for i in ids:
        rehash_ledger_entry(con, i)
    assert con.execute("SELECT chain_hash FROM transactions ORDER BY id").fetchall() == before
    return tid


def test_text_moved_across_the_separator_is_named(built):
    path, _ = built
    found = []
    problems = problems_after(path, lambda con: found.append(
        shift_text_across_the_separator(con)))
    assert any(f"transaction {found[0]} holds U+001F" in p for p in problems), problems


@pytest.mark.parametrize("values, expected", [
    (["a", "b", None, 3], False),
    (["a\x1fb", "c"], True),
    (["a", "b\x1f"], True),
    ([1, dt.date(2026, 1, 1), "ü"], False),
], ids=["plain", "inside", "at the end", "not text"])
def test_ambiguous(values, expected):
    assert chain.ambiguous(values) is expected


def test_a_catch_up_run_records_heads_for_every_day_it_closes(tmp_path):
    bank = bankms.open_bank(str(tmp_path / "bank.duckdb"), bcrypt_rounds=4)
    bank.clock = Clock(dt.datetime.now(dt.timezone.utc) + 30 * DAY)
    try:
        system = bank.system_actor()
        funded_account(bank, "10.00")
        first = bank.business_date
        bank.end_of_day(system, until=first + 3 * DAY, confirm=True)
        days = sorted({h["business_date"] for h in bank.chain.heads(system)})
        kept = bank.chain.heads_csv(system)
        assert bank.chain.check_heads(system, kept) == []
        assert bank.audit.verify() == []
    finally:
        bank.close()
    assert days == [first + i * DAY for i in range(4)]


@pytest.mark.parametrize("username, expected", [
    ("ev\x1fil", []),
    ("\x1f", []),
    ("plain", []),
])
def test_a_typed_username_with_the_separator_leaves_verify_empty(bank, username, expected):
    # Anyone may type a username at sign-in; the refusal is audited with the text as typed, in
    # the chained actor and entity_id columns.
    with pytest.raises(bankms.BankError):
        bank.auth.login(username, "wrong password")
    (stored,) = bank.read_one("SELECT entity_id FROM audit_log ORDER BY id DESC LIMIT 1")
    assert chain.SEPARATOR not in (stored or "")
    assert bank.audit.verify() == expected
