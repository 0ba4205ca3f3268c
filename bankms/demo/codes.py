"""The demo bank's codes and fixed people: transaction kind codes, customer segments and the
demo logins. A leaf shared by demo.py and demo_loans.py, so that neither imports the other
for them (demo.py builds the bank and uses demo_loans.LoanBook for the loan book).
"""
from __future__ import annotations

KINDS = ["deposit", "withdrawal", "transfer", "interest", "fee", "loan_disbursement",
         "loan_repayment", "loan_write_off"]
(DEPOSIT, WITHDRAWAL, TRANSFER, INTEREST, FEE, LOAN_DISBURSEMENT, LOAN_REPAYMENT,
 LOAN_WRITE_OFF) = range(8)

# Customer segments (index into SEGMENTS).
SEGMENTS = ["student", "professional", "retiree", "small_business"]
STUDENT, PROFESSIONAL, RETIREE, BUSINESS = range(4)

# The demo logins. Passwords are public on purpose: this is a demo bank, and the sign-in page
# shows them. Customers with logins get fixed, interesting profiles (see _pin_demo_customers).
DEMO_STAFF = [
    {"role": "manager", "username": "manager", "password": "manager-demo-pass",
     "full_name": "Morgan Reyes", "email": "morgan.reyes@bank.example"},
    {"role": "teller", "username": "teller", "password": "teller-demo-pass",
     "full_name": "Taylor Brooks", "email": "taylor.brooks@bank.example"},
    # A second manager, because a manager's own large payment waits for another manager
    # (four-eyes), and with one manager the demo could never approve it.
    {"role": "manager", "username": "manager2", "password": "manager2-demo-pass",
     "full_name": "Jordan Lee", "email": "jordan.lee@bank.example"},
]
DEMO_CUSTOMERS = [
    {"role": "customer", "username": "alice", "password": "alice-demo-pass",
     "full_name": "Alice Martin", "segment": PROFESSIONAL, "status": "active"},
    {"role": "customer", "username": "bob", "password": "bob-demo-pass",
     "full_name": "Bob Okafor", "segment": BUSINESS, "status": "active"},
    {"role": "customer", "username": "carol", "password": "carol-demo-pass",
     "full_name": "Carol Jensen", "segment": RETIREE, "status": "active"},
    {"role": "customer", "username": "dave", "password": "dave-demo-pass",
     "full_name": "Dave Rossi", "segment": STUDENT, "status": "pending"},
]
N_DEMO = len(DEMO_CUSTOMERS)
N_DEMO_ACTIVE = sum(1 for c in DEMO_CUSTOMERS if c["status"] == "active")
