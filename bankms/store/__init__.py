"""Storage: the port services use (port: unit of work, readers, errors, ids), the DuckDB engine
behind it (duckdb), schema and migrations (db), the writer thread (writer), hash-chain tables
(chains) and the bank's files. The only layer that imports duckdb."""
