"""Helpers shared by the posting benchmarks on PostgreSQL (bench_pg_processes.py,
bench_pages_under_load.py): the bank they post in, the posting plans, per-process CPU from
/proc, and the busy loop that stands for a process using a core without any database.

A benchmark run as a script has its own folder on sys.path, so `import _common` finds this
file; it puts the repository and tests/ on sys.path itself before importing bankms.
"""
from __future__ import annotations

import os
import random
import subprocess
import sys

HERE = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
for _path in (HERE, os.path.join(HERE, "tests")):
    if _path not in sys.path:
        sys.path.insert(0, _path)
os.environ.setdefault("BANKMS_BCRYPT_ROUNDS", "4")

import bankms  # noqa: E402
import pgcluster  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")

# One Python process spinning on one core: no I/O, no database, no lock shared with anyone.
BUSY_LOOP = "while True:\n    pass\n"


def build(url, n_accounts, roles=()):
    """`n_accounts` funded checking accounts (100,000.00 each) in the bank at url, and a user
    `bench_<role>` for each of `roles`; the account numbers."""
    bank = bankms.open_bank(url, bcrypt_rounds=4)
    system = bank.system_actor()
    accounts = []
    for i in range(n_accounts):
        cid = bank.customers.create(system, full_name=f"Bench Customer {i}",
                                    email=f"c{i}@example.com", phone="+1 555 0100",
                                    date_of_birth="1980-01-01", national_id=f"B{i:06d}",
                                    address="1 Bench Road")
        number = bank.accounts.open(system, cid)
        bank.payments.deposit(system, number, "100000.00")
        accounts.append(number)
    for role in roles:
        bank.users.create(system, username=f"bench_{role}", password="a long bench password 1",
                          role=role, full_name=f"Bench {role}")
    bank.close()
    return accounts


def plan(accounts, process, threads, per_thread, tag, cash=0.0):
    """Random transfers among `accounts` for one posting process (tests/pg_process_worker.py);
    `tag` keeps the idempotency keys new in every round. A share `cash` (0 to 1) of the
    requests are cash at a teller instead, deposits and withdrawals in turn (source or target
    "cash": the worker posts them against the bank's one teller cash account)."""
    out = []
    for t in range(threads):
        rng = random.Random(f"{tag}-{process}-{t}")
        rows = []
        for k in range(per_thread):
            pair = rng.sample(accounts, 2)
            if rng.random() < cash:
                pair[k % 2] = "cash"
            rows.append([f"{tag}-p{process}-t{t}-{k}", *pair,
                         f"{rng.randint(1, 500)}.{rng.randint(0, 99):02d}"])
        out.append(rows)
    return {"threads": out}


def create_database(server_url, name, template=None):
    """A new, empty database `name` (or a copy of `template`, which nobody may be connected
    to) on the server at server_url; its URL."""
    admin = pgcluster._connect(server_url)
    try:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {name}"
                      + (f" TEMPLATE {template}" if template else ""))
    finally:
        admin.close()
    return pgcluster.database_url(server_url, name)


def drop_database(server_url, name):
    admin = pgcluster._connect(server_url)
    try:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        admin.close()


def cpu_s(pid) -> float:
    """User + system CPU seconds of a process (all its threads) so far; 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def lowered(niceness):
    """A preexec_fn that lowers a child's CPU priority by `niceness` (0: unchanged)."""
    return (lambda: os.nice(niceness)) if niceness else None


def start_busy_loops(n, niceness=0):
    """`n` Python processes that each spin on a core until killed, `niceness` lower."""
    return [subprocess.Popen([sys.executable, "-c", BUSY_LOOP], preexec_fn=lowered(niceness))
            for _ in range(n)]


def stop(procs):
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
