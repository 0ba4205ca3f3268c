"""The single writer: one thread owns every write to the database, in arrival order.

DuckDB's per-statement CPU cost, not the disk, bounds a small transaction (field notes: about
300 one-transfer transactions a second). So postings that arrive together are committed together
(group commit): the writer drains its queue and applies up to `batch_size_max` posting requests
in one transaction with a handful of set-based statements. Because only this thread writes, no
two transactions can conflict, and guards read balances that nobody else can change before the
commit, which rules out lost updates and write skew. A queue, unlike a lock, serves requests in
the order they came, which keeps the tail latency short.

Readers do not wait for the writer (issue 13): an earlier version made every read wait while
postings flowed, at most BANKMS_READER_WAIT_MS; off by default, it cost every read after a write
a few milliseconds and a review found it a net loss, so it was removed. Posting under reads is
kept fast by making reads cheap instead (accounts.list built once from plain rows and, after a
posting batch, reading only balances again while `calls_seq` has not moved; dashboard answers
kept up to dashboard_max_age_s: benchmarks/bench_posting_under_read.py).

Every unit of work the writer ends (committed or not) raises `version` before its callers hear
back, so an answer kept for a version (Bank.kept) is never older than a write its reader saw
finish.

Several processes on one store (engine.shared_writers, PostgreSQL; issue 14, step F): each has
its own writer, so "only this thread writes" becomes "only the writer holding the store's writer
lock writes". Every unit of work is opened exclusive (store/port.py): it waits for the lock, and
when another process may have committed since (uow.others_wrote), or this writer's previous unit
of work did not commit, the writer first reads again what it mirrors in memory (`refresh`: id
counters, chain heads, business date) and forgets the poster's cached account rows, so guards
read balances under the lock. Each committed unit of work is announced to the other processes
("post" for a posting batch, "call" for any other job), whose listeners then forget what they
keep in memory (bank.py, Bank._others_committed). A unit of work refused with WriteConflict (a serialization
failure or deadlock with a transaction outside the writers) saved nothing and is run again, up
to CONFLICT_ATTEMPTS times in all, so callers do not see a conflict that a retry would clear. On
DuckDB (one process owns the file) none of this runs: the writer behaves as before.

Writer lanes (issue 14, PostgreSQL): posting batches are the exception to "every unit of work is
exclusive". Each writer session holds a lane of its own (store/postgres.py, writer_session) and
chains its rows in it; a posting batch holds the writer lock SHARED in READ COMMITTED, so the
batches of several processes run at once, each locking the accounts it changes FOR UPDATE in id
order (ledger.BatchPoster) and taking its ids from sequences. Its `others_wrote` says whether an
exclusive job of another process ran since (CALLS_CLOCK): only then is memory (the business
date) read again; its own lane's chain heads are its own, read again only after a failure.
"""
from __future__ import annotations

import _thread
import collections
import contextlib
import queue
import threading
import time

from .port import DuplicateKey, StoreUnavailable, WriteConflict


# How long a read served from memory pauses while the writer has work (Writer.give_way).
# Measured paired in one process (benchmarks/bench_posting_under_read.py's docstring): a zero
# sleep (about 60 microseconds with Linux's timer slack) kept posting at 0.76 of idle under
# two looping readers, 0.2 ms at 0.83, for a quarter fewer reads; a person never sees 0.2 ms.
GIVE_WAY_S = 0.0002

# How many times in all a unit of work refused with WriteConflict is tried, on an engine that
# other processes write (module docstring). Writers take turns under the store's writer lock,
# so only a transaction outside the writers can conflict with one: a retry or two clears it.
CONFLICT_ATTEMPTS = 5


def _yield_gil() -> None:
    # A sleep releases the GIL and the CPU; tests count the calls through this name.
    time.sleep(GIVE_WAY_S)


class _Job:
    """One request to the writer and the caller waiting for it. The wait is a bare lock, held
    from creation until the writer finishes the job: creating and releasing one costs a
    fraction of a threading.Event's set(), and the writer finishes every posting this way."""

    __slots__ = ("kind", "payload", "_pending", "result", "error")

    def __init__(self, kind, payload):
        self.kind = kind
        self.payload = payload
        self._pending = _thread.allocate_lock()
        self._pending.acquire()
        self.result = None
        self.error = None

    def finish(self, result=None, error=None):
        # Only the writer thread finishes jobs; a second finish changes nothing.
        if not self._pending.locked():
            return
        self.result = result
        self.error = error
        self._pending.release()

    def wait(self):
        self._pending.acquire()
        if self.error is not None:
            raise self.error
        return self.result


class Writer:
    def __init__(self, engine, post_batch, batch_size_max: int = 512, chains=None,
                 refresh=None):
        # The engine (store/port.py) and the writer's own session on it (a DuckDB cursor, a
        # PostgreSQL connection: engine.writer_session): every unit of work of the writer runs
        # there, and the posting batch's writer (engine.batch_writer) sits on it.
        self._engine = engine
        self._cur = engine.writer_session()
        # The chains hash the writer session's lane (PostgreSQL: the lane it took; 0 on DuckDB).
        if chains is not None:
            chains.lane = getattr(engine, "lane", 0)
        # Called with the new session when the writer had to open one (_session): the posting
        # batch's writer sits on the session and must move with it.
        self.on_new_session = None
        # The hash chains (chain_store.Chains): every unit of work is sealed before its
        # COMMIT, and the heads go back to where they were if it rolls back.
        self._chains = chains
        self._post_batch = post_batch
        # Other processes may write the store (store/port.py): take the writer lock in every
        # unit of work, read memory again after theirs (refresh(uow): the id counters, chain
        # heads and business date) and retry on WriteConflict. False on DuckDB.
        self._shared = bool(getattr(engine, "shared_writers", False))
        self._refresh = refresh
        # True until a unit of work commits after a failed one: memory may then be ahead of
        # the store (counters taken, a business date moved before a refused COMMIT).
        self._stale = True
        self.conflict_retries = 0
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._batch_size_max = batch_size_max
        self.linger_s = 0.002
        self.gap_s = 0.0005
        self._thread = threading.Thread(target=self._run, name="bankms-writer", daemon=True)
        self._stopped = False
        self._closing = threading.Lock()
        self.batches = 0
        self.batched_requests = 0
        # Raised after every unit of work, before any of its callers is released.
        self.version = 0
        # Raised when a job other than a posting batch starts and again when it ends, so it
        # is odd while one runs (a sequence lock). Posting batches change only balances and
        # last activity of accounts (and append ledger rows), so a reader that sees the same
        # even value before and after its query knows every other column is as it was when
        # it last saw that value (Accounts.list keeps the slow columns this way).
        self.calls_seq = 0
        # True while the writer has a job in hand or queued (set by every submit, cleared when
        # the writer finds its queue empty); read without a lock by give_way, for which a
        # stale answer only means one pause too many or too few.
        self.busy = False
        self._thread.start()

    @property
    def cursor(self):
        return self._cur

    def _next(self):
        """The next job, waiting as long as it takes."""
        try:
            return self._queue.get_nowait()
        except queue.Empty:
            self.busy = False
        job = self._queue.get()
        self.busy = True
        return job

    def give_way(self) -> None:
        """While the writer has work, let any thread waiting for the GIL run before the caller
        goes on: a short sleep (GIVE_WAY_S) releases the GIL and yields the CPU. Reads served
        from memory call it (Bank.kept, the dashboard's kept answers), since they never
        release the GIL otherwise.

        Why (issue 13, benchmarks/bench_posting_under_read.py): the writer hands the GIL back
        on every DuckDB call of a batch (BEGIN, five appender flushes, COMMIT) and each posting
        thread on its wait for a receipt; each needs it again after. CPython lets a thread
        running Python keep the GIL until a waiter has waited a whole switch interval (5 ms),
        so a reader looping over answers kept in memory made every hand-off cost up to 5 ms:
        with two threads listing accounts in a loop, posting fell to 2 % of its idle
        throughput and its batches took 420 ms instead of 7. A smaller switch interval did not
        cure it (17 % at 0.5 ms, 33 % at 0.1 ms); giving way on every kept read brought it to
        64 %. When the writer is idle nobody waits, and a kept read costs nothing more. The
        writer thread itself never gives way (it may read kept answers inside a job)."""
        if self.busy and threading.current_thread() is not self._thread:
            _yield_gil()

    def call(self, fn):
        """Run fn(uow) in its own transaction on the writer thread; commit if it returns."""
        return self._submit("call", fn)

    def post(self, request):
        """Queue one posting request; returns its Receipt once its batch has committed."""
        return self._submit("post", request)

    def _submit(self, kind, payload):
        if threading.current_thread() is self._thread:
            raise RuntimeError("the writer thread cannot wait on itself")
        job = _Job(kind, payload)
        # The check and the put happen under one lock with stop(), so no job can be queued
        # behind the stop marker and wait forever.
        with self._closing:
            if self._stopped:
                raise RuntimeError("the bank is closed")
            # Before the put: the writer needs the GIL as soon as it wakes for this job.
            self.busy = True
            self._queue.put(job)
        return job.wait()

    def stop(self):
        with self._closing:
            if self._stopped:
                return
            self._stopped = True
            self._queue.put(None)
        self._thread.join()
        # No work is left: a kept read after close must not pause for a writer that is gone.
        self.busy = False
        try:
            self._cur.close()
        except Exception:
            pass

    def _run(self):
        waiting: collections.deque = collections.deque()
        while True:
            job = waiting.popleft() if waiting else self._next()
            if job is None:
                # Fail whatever is still queued rather than leaving callers hanging.
                for leftover in list(waiting):
                    if leftover is not None:
                        leftover.finish(error=RuntimeError("the bank is closed"))
                while True:
                    try:
                        leftover = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if leftover is not None:
                        leftover.finish(error=RuntimeError("the bank is closed"))
                return
            if job.kind == "call":
                self._run_call(job)
                continue
            self._run_batch(self._gather(job, waiting))

    def _gather(self, first, waiting):
        """Collect posting requests for one batch. While requests keep arriving less than
        `gap_s` apart, wait for more, up to `linger_s` in all: the callers of the previous
        batch resubmit within a millisecond, and taking them too halves the commits."""
        batch = [first]
        deadline = time.perf_counter() + self.linger_s
        while len(batch) < self._batch_size_max:
            try:
                nxt = self._queue.get_nowait()
            except queue.Empty:
                remaining = deadline - time.perf_counter()
                if remaining <= 0 or self._batch_size_max == 1:
                    break
                try:
                    nxt = self._queue.get(timeout=min(self.gap_s, remaining))
                except queue.Empty:
                    break
            if nxt is not None and nxt.kind == "post":
                batch.append(nxt)
            else:
                waiting.append(nxt)
                break
        return batch

    def _invalidate(self):
        invalidate = getattr(self._post_batch, "invalidate", None)
        if invalidate is not None:
            invalidate()

    def _run_call(self, job):
        self.calls_seq += 1
        result = error = None
        try:
            result = self._retrying(lambda: self._call_once(job.payload))
        except BaseException as exc:  # noqa: BLE001 - every failure goes back to its caller
            # Refusals are audited by the services (Bank.require, record_refusal) in a job of
            # their own, since this job's writes are rolled back.
            error = exc
        finally:
            # Any job may have changed account rows that the poster caches.
            self._invalidate()
            self.calls_seq += 1
        job.finish(result=result, error=error)

    def _call_once(self, fn):
        with self._unit("call") as uow:
            result = fn(uow)
            uow.commit()
        return result

    def _commit_batch(self, requests, lookup_keys):
        return self._retrying(lambda: self._batch_once(requests, lookup_keys))

    def _batch_once(self, requests, lookup_keys):
        with self._unit("post") as uow:
            outcomes = self._post_batch(uow, requests, lookup_keys=lookup_keys)
            uow.commit()
        return outcomes

    def _retrying(self, attempt):
        """attempt(), run again while it fails with WriteConflict on a store that other
        processes write, CONFLICT_ATTEMPTS times in all. The failed unit of work saved
        nothing and the next one reads memory again (_stale), so a retry starts clean."""
        tries = 1
        while True:
            try:
                return attempt()
            except WriteConflict:
                if not self._shared or tries >= CONFLICT_ATTEMPTS:
                    raise
                tries += 1
                self.conflict_retries += 1
                self._invalidate()

    def _session(self) -> None:
        """Open a new writer session when the server ended the old one (a restart, a
        terminated backend) or the engine closed it (store/postgres.py closes a connection
        whose advisory unlock failed). Without this every later write of the process failed
        until it restarted. The unit of work that met the dead session failed and saved
        nothing of its own; memory is read again before the next (_stale)."""
        cur = self._cur
        if not self._session_lost():
            return
        with contextlib.suppress(Exception):
            cur.close()
        self._cur = self._engine.writer_session()
        self._stale = True
        if self._chains is not None:
            # Perhaps another lane than before (its lock went with the old session): the next
            # unit of work reads this lane's heads (_stale).
            self._chains.lane = getattr(self._engine, "lane", 0)
        if self.on_new_session is not None:
            self.on_new_session(self._cur)

    def _session_lost(self) -> bool:
        cur = self._cur
        return bool(getattr(cur, "closed", False) or getattr(cur, "broken", False))

    @contextlib.contextmanager
    def _unit(self, kind):
        """A unit of work whose COMMIT first seals the hash chains; if it rolls back, the
        chains' heads go back to where they were. On a store other processes write, it holds
        the writer lock, memory is read again first when someone else may have written, and
        its COMMIT is announced to the other processes' listeners as `kind` ("post": a
        posting batch, "call": anything else; store/port.py)."""
        chains = self._chains
        shared = self._shared
        self._session()
        marked = chains.mark() if chains is not None else None
        # Only where others listen: DuckDB (and test doubles of engines) never see the keyword.
        extra = {"announce": kind} if shared else {}
        if shared and kind == "post":
            # Writer lanes: posting batches of several processes run at once, each holding the
            # writer lock shared, in READ COMMITTED; each locks the accounts it changes (FOR
            # UPDATE in id order, ledger.BatchPoster) and writes only its own lane's chain.
            # Every other job holds it exclusive: no batch runs meanwhile.
            mode = {"shared": True, "isolation": "read_committed"}
        else:
            mode = {"exclusive": shared}
        try:
            with self._engine.unit_of_work(
                    cursor=self._cur, before_commit=chains.seal if chains else None,
                    **mode, **extra) as uow:
                if shared:
                    stale = self._stale or uow.others_wrote
                    # Stale until this unit commits: taking the lock noted the other writers'
                    # clock, so if the refresh below fails, only this flag tells the next unit
                    # that memory (the business date, chain heads) must be read again.
                    self._stale = True
                    if stale:
                        self._invalidate()
                        if self._refresh is not None:
                            self._refresh(uow)
                        # What to go back to is now what was just read.
                        marked = chains.mark() if chains is not None else None
                yield uow
        except BaseException:
            if chains is not None:
                chains.restore(marked)
            raise
        finally:
            # Committed or rolled back, kept answers are forgotten before anyone hears back.
            self.version += 1
        if chains is not None and not uow.committed:
            chains.restore(marked)
        if shared and uow.committed:
            self._stale = False

    def _run_batch(self, batch, *, again_if_lost=True):
        requests = [job.payload for job in batch]
        # Whether the session looked alive: only a session lost during this attempt calls for
        # another one; one already lost that could not be opened again would only be tried
        # again (a connect of up to its timeout each time).
        alive = not self._session_lost()
        try:
            try:
                outcomes = self._commit_batch(requests, lookup_keys=False)
            except DuplicateKey:
                # A repeated idempotency key: rerun with the keys looked up first.
                self._invalidate()
                outcomes = self._commit_batch(requests, lookup_keys=True)
        except BaseException as exc:  # noqa: BLE001
            self._invalidate()
            if len(batch) == 1:
                if again_if_lost and alive and isinstance(exc, StoreUnavailable) \
                        and self._session_lost():
                    # The session died under this request, perhaps after the server committed
                    # it (COMMIT sent, answer lost): its outcome is unknown to us. Tried once
                    # more on a new session, its idempotency key finds a committed posting
                    # (DuplicateKey, then its receipt) or it posts now, so the caller learns
                    # what happened and the money moves once. Never done for "call" jobs,
                    # which carry no such key.
                    self._run_batch(batch, again_if_lost=False)
                    return
                batch[0].finish(error=exc)
                return
            # Something unexpected broke the whole batch: retry each request alone so that one
            # bad request cannot fail its neighbours.
            for i, job in enumerate(batch):
                self._run_batch([job])
                if isinstance(job.error, StoreUnavailable) and self._session_lost():
                    # No new session could be opened (the server is down or out of reach):
                    # the others would each try again, up to the connect timeout apiece, while
                    # every caller waits. They fail now; their keys make a repeat harmless.
                    for rest in batch[i + 1:]:
                        rest.finish(error=StoreUnavailable(str(job.error)))
                    return
            return
        self.batches += 1
        self.batched_requests += len(batch)
        for job, outcome in zip(batch, outcomes):
            if isinstance(outcome, BaseException):
                job.finish(error=outcome)
            else:
                job.finish(result=outcome)
