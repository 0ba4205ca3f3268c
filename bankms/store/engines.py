"""Which engine holds a bank: `open_engine(url)` (store/port.py declares what it returns)."""
from __future__ import annotations

from .port import Engine


def open_engine(url: str, **options) -> Engine:
    """The engine for `url`: a file path or ':memory:' -> DuckDB (store/duckdb.py);
    'postgresql://...' -> PostgreSQL, which is not built yet (NotImplementedError naming
    issue 14). `options` go to the engine's constructor; port errors (StoreLocked, NotAStore)
    when the store cannot be opened."""
    if url.startswith(("postgresql://", "postgres://")):
        raise NotImplementedError(
            "PostgreSQL is not available yet (issue 14, landing L2): set BANKMS_DB to a "
            "DuckDB file path, e.g. data/bank.duckdb.")
    from .duckdb import DuckDBEngine
    return DuckDBEngine(url, **options)
