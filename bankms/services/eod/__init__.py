"""End of day: the run and its steps' order (run), the automatic close (auto) and the ledger checks
(checks)."""
