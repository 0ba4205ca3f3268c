"""Which engine holds a bank: `open_engine(url)` (store/port.py declares what it returns)."""
from __future__ import annotations

from .port import Engine

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def open_engine(url: str, **options) -> Engine:
    """The engine for `url`: 'postgresql://...' or 'postgres://...' -> PostgreSQL
    (store/postgres.py); a file path or ':memory:' -> DuckDB (store/duckdb.py). The store is
    opened and migrated. `options` go to the engine's constructor; port errors when the store
    cannot be opened (DuckDB: StoreLocked, NotAStore; PostgreSQL: StoreUnavailable)."""
    if url.startswith(POSTGRES_SCHEMES):
        from .postgres import PostgresEngine
        return PostgresEngine(url, **options)
    from .duckdb import DuckDBEngine
    return DuckDBEngine(url, **options)
