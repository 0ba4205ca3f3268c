"""How long a failed sign-in takes for an unknown username and for a known one.

Prints the median of each and their ratio; a ratio far from 1.0 would let an attacker tell
which usernames exist. A third pair measures attempts refused while backing off (no password
check at all) for both. Run: python benchmarks/login_timing.py [--rounds 12] [--tries 15]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import bankms  # noqa: E402
from bankms.domain.errors import AuthenticationError  # noqa: E402


def median_ms(bank, username, tries):
    times = []
    for _ in range(tries):
        started = time.perf_counter()
        try:
            bank.auth.login(username, "not the right password")
        except AuthenticationError:
            pass
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--tries", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        bank = bankms.open_bank(f"{folder}/bank.duckdb", bcrypt_rounds=args.rounds)
        try:
            system = bank.system_actor()
            # Measure the password check, not the back-off refusals that would follow.
            bank.settings.set(system, "login_backoff_user_after_failures", 1000)  # the most
            bank.users.create(system, username="known", password="the known password 1",
                              role="teller", full_name="Known User")
            unknown = median_ms(bank, "unknown", args.tries)
            known = median_ms(bank, "known", args.tries)
            bank.settings.set(system, "login_backoff_user_after_failures", 1)
            bank.settings.set(system, "login_backoff_base_s", 60)
            for username in ("unknown", "known"):
                median_ms(bank, username, 1)  # starts the back-off
            unknown_off = median_ms(bank, "unknown", args.tries)
            known_off = median_ms(bank, "known", args.tries)
        finally:
            bank.close()
    print(f"bcrypt cost {args.rounds}, {args.tries} tries each")
    print(f"unknown username: median {unknown:8.1f} ms")
    print(f"known username:   median {known:8.1f} ms")
    print(f"ratio known/unknown: {known / unknown:.2f}")
    print(f"backing off, unknown: median {unknown_off:6.1f} ms; known: {known_off:6.1f} ms; "
          f"ratio {known_off / unknown_off:.2f}")


if __name__ == "__main__":
    main()
