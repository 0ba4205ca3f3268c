"""Crash-test worker: opens a file bank and streams transfers until it is killed.

Run by tests/test_crash.py as `python tests/crash_worker.py DB START0 START1 ...`: one thread per
START, thread t sending the transfers t/START, t/START+1, ... With `--first-thread=F` after DB
the threads are numbered F, F+1, ..., so that several workers on one database (as
tests/test_crash_processes.py runs them) send different transfers; with `-` for the STARTs the
worker opens the bank, prints `ready` and reads the STARTs from a line of stdin (a spare process
made ready while others run). Each transfer is fully determined by (thread, index), including
its idempotency key, so the parent can resubmit it exactly. After
each receipt the worker prints `ok THREAD INDEX TRANSACTION_ID REPLAYED` (flushed), so a printed
line is an acknowledged transfer. The parent kills it with SIGKILL at a random moment.
"""
from __future__ import annotations

import os
import random
import sys
import threading

import bankms
from bankms.domain.errors import InsufficientFunds


def account_numbers(bank) -> list[str]:
    return [n for (n,) in bank.read("SELECT account_number FROM accounts "
                                    "WHERE customer_id IS NOT NULL ORDER BY account_number")]


def request_for(thread: int, index: int, numbers: list[str]):
    """(key, source, target, amount) of transfer `index` of `thread`: the same every time."""
    rng = random.Random(thread * 1_000_003 + index)
    source, target = rng.sample(numbers, 2)
    return f"crash-t{thread}-{index}", source, target, bankms.to_money(rng.randint(1, 5_000))


def main(argv):
    path, args = argv[1], argv[2:]
    first = 0
    if args and args[0].startswith("--first-thread="):
        first = int(args.pop(0).split("=", 1)[1])
    from_stdin = args == ["-"]
    starts = [] if from_stdin else [int(s) for s in args]
    parent = os.getppid()
    bank = bankms.open_bank(path, bcrypt_rounds=4)
    system = bank.system_actor()
    numbers = account_numbers(bank)
    out = threading.Lock()

    def say(line):
        with out:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    def stream(thread, index):
        while os.getppid() == parent:  # never outlive the test that started us
            key, source, target, amount = request_for(thread, index, numbers)
            try:
                receipt = bank.payments.transfer(system, source, target, amount,
                                                 idempotency_key=key)
            except InsufficientFunds:
                say(f"refused {thread} {index}")
            else:
                say(f"ok {thread} {index} {receipt.transaction_id} {int(receipt.replayed)}")
            index += 1

    say("ready")
    if from_stdin:
        starts = [int(s) for s in sys.stdin.readline().split()]
    threads = [threading.Thread(target=stream, args=(first + t, start), daemon=True)
               for t, start in enumerate(starts)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    bank.close()


if __name__ == "__main__":
    main(sys.argv)
