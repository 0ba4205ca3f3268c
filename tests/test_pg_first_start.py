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


def test_a_demo_build_that_stopped_halfway_is_not_taken_for_a_bank(pg_database):
    """The process building the demo let go of the first-start lock before the demo was marked
    built (it died halfway): the process that waited refuses to start on part of a demo rather
    than serving it as a bank (found in review: it returned as if the bank were ready)."""
    import threading

    from bankms import demo
    from bankms.domain.errors import InvalidState
    from bankms.store.postgres import PostgresEngine
    from conftest import employee

    with bankms.open_bank(pg_database, bcrypt_rounds=4) as bank:
        other = PostgresEngine(pg_database)  # the builder's process
        waiting = threading.Event()
        try:
            with other.job_lock("first_start") as held:
                assert held
                outcome = []

                def start():
                    try:
                        outcome.append(demo.build_once(bank, customers=10, months=1,
                                                       on_wait=waiting.set))
                    except Exception as exc:  # noqa: BLE001 - asserted below
                        outcome.append(exc)
                thread = threading.Thread(target=start)
                thread.start()
                assert waiting.wait(10)
                employee(bank, "teller")  # the builder's first rows, then it dies
            thread.join(10)
        finally:
            other.close()
        assert len(outcome) == 1 and isinstance(outcome[0], InvalidState), outcome
        assert "stopped before it finished" in str(outcome[0])


def test_the_app_refuses_a_half_built_demo_on_every_run(monkeypatch):
    """The first run's refusal (build_once) holds for the process's later runs, which would
    otherwise find the bank not empty and serve it."""
    import types

    import pytest

    from bankms.domain.errors import InvalidState
    from pages import common

    def half_built(bank, **kwargs):
        raise InvalidState("Another app process began building the demo bank and stopped")
    fake = types.SimpleNamespace(demo_exists=lambda bank: False, is_empty=lambda bank: True,
                                 build_once=half_built)
    monkeypatch.setattr(common, "demo_module", lambda: fake)
    monkeypatch.delenv("BANKMS_NO_DEMO", raising=False)
    bank = types.SimpleNamespace(path="postgresql:///half_built")
    common._new_files.add(bank.path)
    try:
        for _ in range(2):
            with pytest.raises(InvalidState, match="stopped"):
                common.build_demo_on_first_start(bank)
    finally:
        common._new_files.discard(bank.path)
        common._first_start_refused.pop(bank.path, None)
