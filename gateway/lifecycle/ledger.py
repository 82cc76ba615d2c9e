"""The one place message records change: the state machine applied to the record store.

Every write is a compare-and-set on the record's version, so a Recall, the delivery-report
poller and a Send never overwrite each other. A Send in progress owns its record under a lease
that a heartbeat renews; a record whose owner's lease ran out (the replica died) is resolved by
whoever reads it next: ACCEPTED becomes FAILED (no vendor call had started), SENDING becomes
UNKNOWN (one may have reached the vendor). So a crashed replica's claim ends one lease after its
last heartbeat, and its messages never stay "in progress" forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from gateway.lifecycle.states import ACCEPTED, EXPIRED, IllegalTransition, abandon, advance, not_sent
from gateway.store.admission import Admit, Admitted, SendAdmission
from gateway.store.records import RecordStore, StoredRecord
from generated.notify.v1 import notification_service_pb2 as pb

log = logging.getLogger("gateway.lifecycle")

DEFAULT_LEASE = 30.0
Mutation = Callable[[pb.MessageRecord], None]
Write = Callable[[StoredRecord], Awaitable[bool]]  # a compare-and-set write, as RecordStore.put
T = TypeVar("T")


class LeaseLost(Exception):
    """Someone else resolved this Send's record (its lease ran out): the Send must not go on."""

    def __init__(self, current: StoredRecord) -> None:
        super().__init__(f"message {current.message_id}: lease lost")
        self.current = current


class Ledger:
    def __init__(self, store: RecordStore, *, lease_seconds: float = DEFAULT_LEASE, watch_poll: float = 0.5):
        self.store = store
        self.lease_seconds = lease_seconds
        self._watch_poll = watch_poll  # how often a watch re-reads a record another replica may change
        # message_id -> (set when this process changes the record, how many watch it)
        self._changed: dict[str, tuple[asyncio.Event, int]] = {}
        self._settling: set[asyncio.Future[StoredRecord] | asyncio.Future[StoredRecord | None]] = set()
        self._working = 0  # Sends holding a record: shutdown waits for them to write their outcome
        self._idle = asyncio.Event()
        self._idle.set()

    # -- reading -----------------------------------------------------------------------------

    async def get(self, message_id: str) -> StoredRecord | None:
        """The record, with an owner that is gone resolved first, and a queued message past its
        expiry made EXPIRED (so it reads right even while no worker runs)."""
        for _ in range(3):
            stored = await self.store.get(message_id)
            if stored is None:
                return stored
            resolved = stored.copy()
            if stale(stored):
                abandon(
                    resolved.record,
                    before_call="the gateway replica handling it stopped before calling the vendor",
                    during_call="the gateway replica handling it stopped during the vendor call",
                )
                resolved.owner, resolved.lease_until = "", 0.0
            if overdue(resolved):
                advance(resolved.record, EXPIRED, "not delivered before its expire_after")
            elif not stale(stored):
                return stored
            if await self.store.put(resolved):
                log.warning(
                    "message resolved on read (its owner is gone, or it expired in the queue)",
                    extra={"message_id": message_id, "state": pb.MessageState.Name(resolved.record.state)},
                )
                self._notify(message_id)
                return resolved
        return await self.store.get(message_id)

    async def watch(
        self, message_id: str, first: StoredRecord, *, until: float
    ) -> AsyncIterator[StoredRecord]:
        """The record now and after each change, until it is final or ``until`` (monotonic) passes.

        A change made by this process wakes the watch at once; one made by another replica is seen
        at the next poll. The watch ends at ``until`` by itself rather than trusting the transport
        to cancel it, so a watch whose caller went away never polls on.
        """
        event, watchers = self._changed.get(message_id, (asyncio.Event(), 0))
        self._changed[message_id] = (event, watchers + 1)
        stored: StoredRecord | None = first
        seen = 0
        try:
            while stored is not None:
                if stored.version != seen:
                    seen = stored.version
                    yield stored
                left = until - time.monotonic()
                if stored.record.final or left <= 0:
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), min(self._watch_poll, left))
                event.clear()  # before the read: a change after it sets the event again
                stored = await self.get(message_id)
        finally:
            event, watchers = self._changed[message_id]
            if watchers > 1:
                self._changed[message_id] = (event, watchers - 1)
            else:  # the last watcher gone: the map holds only watched messages
                del self._changed[message_id]

    # -- writing -----------------------------------------------------------------------------

    async def open(self, record: pb.MessageRecord, owner: str) -> StoredRecord:
        """Writes a new record owned by ``owner``. If the call is cancelled while the write is in
        flight, the record, once written, is marked FAILED (no vendor call can follow), rather
        than left ACCEPTED until its lease runs out."""
        stored = StoredRecord(record, owner=owner, lease_until=time.time() + self.lease_seconds)
        written = await self._write_new(self.store.put(stored), lambda ok: stored if ok else None)
        if not written:
            raise RuntimeError(f"message {record.message_id} exists already")  # ids are unique: a bug
        return stored

    async def admit(self, admission: SendAdmission, admit: Admit) -> Admitted:
        """A sync Send's key, rate slot and record in one write (gateway.store.admission). Cancelled
        while it is in flight, the record, once written, is marked FAILED: no vendor call follows."""
        return await self._write_new(admission.admit(admit), lambda admitted: admitted.stored)

    async def _write_new(
        self, write: Coroutine[Any, Any, T], written: Callable[[T], StoredRecord | None]
    ) -> T:
        """Runs a write of a new record to its end even if the Send is cancelled meanwhile; the
        record it wrote (``written``), if any, is then marked FAILED, since no vendor call follows."""
        writing = asyncio.ensure_future(write)
        try:
            return await asyncio.shield(writing)
        except asyncio.CancelledError:
            self._track(asyncio.ensure_future(self._abandon(writing, written)))
            raise

    async def _abandon(
        self, writing: asyncio.Future[T], written: Callable[[T], StoredRecord | None]
    ) -> StoredRecord | None:
        stored = written(await writing)
        if stored is None:
            return None
        return await self.change(stored, _never_called, release=True)

    async def take_over(
        self, stored: StoredRecord, owner: str, mutate: Mutation | None = None, *, write: Write | None = None
    ) -> StoredRecord | None:
        """Makes ``owner`` the owner of an unowned record (a resend of an UNKNOWN message, a queued
        job), with ``mutate`` applied in the same write; None if someone changed it first (or
        ``write``, a compare-and-set that does more in the same round trip, wrote nothing)."""
        mine = stored.copy()
        if mutate is not None:
            mutate(mine.record)
        mine.owner, mine.lease_until = owner, time.time() + self.lease_seconds
        return mine if await (write or self.store.put)(mine) else None

    async def change(
        self, stored: StoredRecord, mutate: Mutation, *, release: bool = False, write: Write | None = None
    ) -> StoredRecord:
        """Applies ``mutate`` to the record and writes it; on a concurrent change, to the fresh copy.

        A Send's own writes keep its ownership (``release`` ends it); if the record has meanwhile
        been resolved by someone else, LeaseLost. ``mutate`` may raise IllegalTransition. ``write``
        replaces the store's compare-and-set ``put`` with one that does more in the same round trip
        (a queue worker finishing its job).
        """
        put = write or self.store.put
        for _ in range(5):
            candidate = stored.copy()
            mutate(candidate.record)
            if release:
                candidate.owner, candidate.lease_until = "", 0.0
            elif candidate.owner:
                candidate.lease_until = time.time() + self.lease_seconds
            if await put(candidate):
                self._notify(stored.message_id)
                return candidate
            fresh = await self.store.get(stored.message_id)
            if fresh is None:
                raise RuntimeError(f"message {stored.message_id}: record vanished")
            if fresh.owner != stored.owner:
                raise LeaseLost(fresh)
            stored = fresh
        raise RuntimeError(f"message {stored.message_id}: too many concurrent changes")

    async def settle(
        self, stored: StoredRecord, mutate: Mutation, *, write: Write | None = None
    ) -> StoredRecord:
        """A Send's last write, ending its ownership. It runs to the end even when the Send is
        cancelled (the caller's deadline, a client gone, shutdown), and ``drain`` waits for it.
        ``write``: as for ``change``."""
        task = asyncio.ensure_future(self._settle(stored, mutate, write))
        self._track(task)
        return await asyncio.shield(task)

    async def _settle(self, stored: StoredRecord, mutate: Mutation, write: Write | None) -> StoredRecord:
        try:
            return await self.change(stored, mutate, release=True, write=write)
        except LeaseLost as lost:
            # Our lease ran out (the store was unreachable for a whole lease) and a reader resolved
            # the record: what we learned still counts where the state machine allows it (a late
            # SENT after UNKNOWN); otherwise the resolved record stands.
            log.warning("message resolved while its Send worked", extra={"message_id": stored.message_id})
            try:
                return await self.change(lost.current, mutate, release=True, write=write)
            except IllegalTransition:
                return lost.current

    def _track(self, task: asyncio.Future[StoredRecord] | asyncio.Future[StoredRecord | None]) -> None:
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)

    def hold(self, stored: StoredRecord) -> Hold:
        """Keeps the lease of a working Send alive, however long it waits (rate limits, slow vendors)."""
        return Hold(self, stored)

    def _enter(self) -> None:
        self._working += 1
        self._idle.clear()

    def _leave(self) -> None:
        self._working -= 1
        if not self._working:
            self._idle.set()

    async def drain(self, timeout: float) -> None:
        """Waits, before the store closes, until every Send has written its outcome: grpc's stop
        returns once it has cancelled the calls, before their handlers have recorded anything."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._idle.wait()
                while self._settling:
                    await asyncio.wait(set(self._settling))

    def _notify(self, message_id: str) -> None:
        watched = self._changed.get(message_id)
        if watched is not None:
            watched[0].set()


class Hold:
    """``async with ledger.hold(stored)``: the lease renewed every third of it while the block runs.

    A timer rather than a task that sleeps: most Sends end long before their first beat, and a task
    per Send (created, cancelled, stepped once more to end) cost ~10 µs of CPU each. A class rather
    than ``contextlib.asynccontextmanager``, whose async generator and its loop hooks cost a Send
    ~5 µs more.
    """

    __slots__ = ("_every", "_extending", "_ledger", "_stored", "_timer")

    def __init__(self, ledger: Ledger, stored: StoredRecord) -> None:
        self._ledger = ledger
        self._stored = stored
        self._every = ledger.lease_seconds / 3
        self._timer: asyncio.TimerHandle | None = None
        self._extending: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> None:
        self._timer = asyncio.get_running_loop().call_later(self._every, self._beat)
        self._ledger._enter()

    async def __aexit__(self, *exc_info: object) -> None:
        if self._timer is not None:
            self._timer.cancel()
        for task in self._extending:
            task.cancel()
        self._ledger._leave()

    def _beat(self) -> None:
        loop = asyncio.get_running_loop()
        task = loop.create_task(self._extend())
        self._extending.add(task)
        task.add_done_callback(self._extending.discard)
        self._timer = loop.call_later(self._every, self._beat)

    async def _extend(self) -> None:
        ledger, stored = self._ledger, self._stored
        with contextlib.suppress(Exception):  # a missed beat is retried; the lease has margin
            await ledger.store.extend_lease(
                stored.message_id, stored.owner, time.time() + ledger.lease_seconds
            )


def stale(stored: StoredRecord, now: float | None = None) -> bool:
    return bool(stored.owner) and stored.lease_until < (time.time() if now is None else now)


def overdue(stored: StoredRecord, now: float | None = None) -> bool:
    """A queued message no worker holds, past its expiry: it can only become EXPIRED now."""
    record = stored.record
    return (
        record.state == ACCEPTED
        and not busy(stored)
        and record.HasField("expire_time")
        and record.expire_time.ToNanoseconds() < (time.time() if now is None else now) * 1e9
    )


def busy(stored: StoredRecord) -> bool:
    """A live Send owns it."""
    return bool(stored.owner) and not stale(stored)


def _never_called(record: pb.MessageRecord) -> None:
    """The Send was cancelled before its record's write returned: no vendor call can have started."""
    not_sent(record, "not sent: the call ended first")
