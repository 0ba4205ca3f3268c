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
