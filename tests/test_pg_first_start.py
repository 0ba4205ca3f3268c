"""The app's first start on PostgreSQL (issue 14, step G): a database is new only until it holds
a bank, so first-start work (the demo bank) runs once, not at every process start."""
from __future__ import annotations

import bankms


def test_the_app_knows_a_server_database_is_new_only_until_it_holds_a_bank(pg_database):
    """pages.common._open_bank runs first-start work (the demo bank) for a database that has
    no bank yet, and for a URL asks bankms instead of looking for a file."""
    from pages import common

    assert not bankms.bank_exists(pg_database)
    common._open_bank.clear()
    try:
        common._open_bank(pg_database).close()
        assert pg_database in common._new_files
        common._new_files.discard(pg_database)
        common._open_bank.clear()
        assert bankms.bank_exists(pg_database)
        common._open_bank(pg_database).close()
        assert pg_database not in common._new_files
    finally:
        common._open_bank.clear()
        common._new_files.discard(pg_database)


def test_processes_starting_together_on_a_new_database_build_the_demo_once(pg_database):
    """Two app processes (two Banks, each with its own connections) find the database new at
    the same moment; both ask for the demo; one builds it, the other waits and builds nothing.
    Without the first-start lock both found the bank empty and both built."""
    import threading

    from bankms import demo

    banks = [bankms.open_bank(pg_database, bcrypt_rounds=4) for _ in range(2)]
    try:
        assert all(demo.is_empty(bank) for bank in banks)  # each would build
        go = threading.Barrier(2)
        results, waited = [None, None], [False, False]

        def start(i):
            go.wait()
            def on_wait():
                waited[i] = True
            try:
                results[i] = demo.build_once(banks[i], customers=10, months=1, seed=3,
                                             on_wait=on_wait)
            except Exception as exc:  # noqa: BLE001 (asserted below: a second build refused)
                results[i] = exc

        threads = [threading.Thread(target=start, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not any(isinstance(r, Exception) for r in results), results
        built = [r for r in results if r is not None]
        assert len(built) == 1 and built[0]  # one list of demo logins
        assert waited.count(True) <= 1
        assert banks[0].read("SELECT count(*) FROM customers") == [(10,)]
        assert banks[0].audit.verify() == []
        # Started again later, both find the demo there.
        assert demo.build_once(banks[1], customers=10, months=1, seed=3) is None
    finally:
        for bank in banks:
            bank.close()
