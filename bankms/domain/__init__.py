"""Pure rules of the bank, no I/O: money, account numbers, dates, ids, errors, roles and permissions,
labels, text, hash chains, the chart of accounts, validation, keys, schedules and the loan replay."""
