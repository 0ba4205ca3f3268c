"""Storage: schema and unit of work (db), the writer thread (writer), hash-chain tables (chains) and
the bank's files. The only layer that imports duckdb."""
