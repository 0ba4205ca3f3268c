"""Deposit products, term deposits, their end-of-day steps and withholding tax."""
