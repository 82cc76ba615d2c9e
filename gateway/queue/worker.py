"""Queue workers: take each account's jobs in order, pace them to its rate limit, deliver them
through the same adapters as a sync Send, and record every attempt and state change.

The record, not the job, is the truth. A job is acknowledged only after the record holds the
message's outcome, so a worker that dies leaves its jobs pending, and another worker reclaims them
(XAUTOCLAIM) once they have gone unrenewed for the visibility timeout. The reclaiming worker reads
the record first: a message that was SENDING when its worker died reads UNKNOWN (its lease ran
out), and is resent only where the account's vendor drops repeats, exactly as for a sync Send.
Nothing that reached the vendor is ever sent again blindly, and nothing is dropped silently: a
message its expire_after overtakes becomes EXPIRED.

A delivery costs two Redis round trips, plus its share of a read of several jobs: the job carries
its record as the accept wrote it, so the worker takes the message over by a compare-and-set on
that version without reading it first, and takes the account's rate slot in the same script (the
record, the stream and the account's rate window share a hash slot); the outcome is then written
and the job ended in one script. Any change to the record since its accept (a Recall, another
worker, an expiry) fails the compare-and-set, takes no slot, and the record is then read as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import os
import secrets
import socket
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from gateway.background import cancel_and_wait
from gateway.chain.context import CallContext
from gateway.chain.steps.upload_inline_media import upload_inline_media
from gateway.channels.attempts import AttemptLog
from gateway.channels.base import ChannelAdapter
from gateway.channels.deliveries import Outgoing
from gateway.config import QueueSettings
from gateway.errors import (
    Unavailable,
)
from gateway.lifecycle.ledger import Ledger, Mutation, busy, overdue
from gateway.lifecycle.outcomes import retry_later, sending, sent
from gateway.lifecycle.reports import DeliveryReports
from gateway.lifecycle.states import SENDING, UNKNOWN, state_name
from gateway.queue.jobs import Job
from gateway.queue.metrics import accept_to_final, queue_deliveries, record_backlogs
from gateway.queue.retries import RetryPolicy, deliverable, unknown
from gateway.queue.streams import JobQueue
from gateway.store.media_cache import MediaCache
from gateway.store.rate_limits import RateLimit, RateLimiter, RedisRateLimiter
from gateway.store.records import StoredRecord
from gateway.telemetry import UNRECORDED, RedisTally, redis_tally, tally_for, tracer
from generated.notify.v1 import notification_service_pb2 as pb

log = logging.getLogger("gateway.queue")
T = TypeVar("T")

READ_BLOCK_MS = 800  # below the Redis client's socket timeout (1 s), so a blocked read never times out
BACKLOG_EVERY = 5.0  # seconds between reads of each queue's depth and age, for the gauges


class Worker:
    """One worker process's consumer: a loop per account, plus renewal of the jobs it holds."""

    def __init__(
        self,
        queue: JobQueue,
        ledger: Ledger,
        accounts: Mapping[str, ChannelAdapter],
        limiter: RateLimiter,
        media_cache: MediaCache,
        reports: DeliveryReports,
        settings: QueueSettings,
        *,
        name: str | None = None,
    ) -> None:
        self.queue, self.ledger, self.accounts = queue, ledger, accounts
        self.limiter, self.reports, self.settings = limiter, reports, settings
        self.consumer = name or f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self.policy = RetryPolicy(settings)
        self._upload = upload_inline_media(media_cache)
        self._idle_ms = int(settings.visibility_timeout_seconds * 1000)
        self._stopping = asyncio.Event()
        self._loops: list[asyncio.Task[None]] = []
        self._delivering: set[asyncio.Task[None]] = set()
        self._giving_back: set[asyncio.Future[None]] = set()
        # account -> entry id -> job: every job this worker holds, renewed until it is finished
        self._in_hand: dict[str, dict[str, Job]] = {account: {} for account in accounts}
        self._room: dict[str, asyncio.Event] = {account: asyncio.Event() for account in accounts}

    def start(self) -> None:
        for account in self.accounts:
            self._loops.append(asyncio.create_task(self._consume(account), name=f"queue-{account}"))
        self._loops.append(asyncio.create_task(self._renew(), name="queue-renew"))
        self._loops.append(asyncio.create_task(self._watch_backlog(), name="queue-backlog"))
        log.info("queue worker started", extra={"consumer": self.consumer, "accounts": sorted(self.accounts)})

    async def stop(self, grace: float) -> None:
        """Takes no new job; lets deliveries in progress finish within ``grace``, then cancels the
        rest (each records where it stands); hands every job not finished back for others at once."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        if self._delivering:
            await asyncio.wait(set(self._delivering), timeout=grace)
        for task in list(self._delivering):
            task.cancel()
        if self._delivering:
            await asyncio.wait(set(self._delivering), timeout=5.0)
        # Cancelled rather than awaited: a loop blocked in XREADGROUP would hold shutdown for up to
        # a whole blocking read. A job it took and had not started is handed back below; one a
        # cancelled read had just taken is reclaimed by another worker after the visibility timeout.
        for task in self._loops:
            await cancel_and_wait(task, timeout=2.0)
        if self._giving_back:
            await asyncio.wait(set(self._giving_back), timeout=5.0)
        for account, jobs in self._in_hand.items():
            with contextlib.suppress(Unavailable):  # not handed back: reclaimed after the timeout
                await self.queue.renew(account, self.consumer, list(jobs), idle_ms=self._idle_ms)
        log.info("queue worker stopped", extra={"consumer": self.consumer})

    # -- taking jobs ---------------------------------------------------------------------------

    async def _consume(self, account: str) -> None:
        """Reads the account's jobs and starts each in order once the account has a rate slot."""
        adapter = self.accounts[account]
        in_hand = self._in_hand[account]
        waiting: deque[Job] = deque()  # taken, in order, not yet started
        ready = False
        next_reclaim = 0.0  # a dead worker's jobs are looked for twice per visibility timeout
        pause = _Pause(account)
        refill = max(1, self.settings.in_hand_per_account // 2)
        while not self._stopping.is_set():
            try:
                if not ready:
                    await self.queue.ensure_group(account)
                    ready = True
                room = self.settings.in_hand_per_account - len(in_hand)
                # With jobs still waiting, reading waits until half the hand is free: one read then
                # takes several jobs, where reading whenever one place freed was a read per job.
                if room > 0 and (not waiting or room >= refill):
                    jobs = []
                    if time.monotonic() >= next_reclaim:
                        jobs = await self.queue.reclaim(account, self.consumer, self._idle_ms, room)
                        if len(jobs) < room:  # none left to reclaim for now
                            next_reclaim = time.monotonic() + self.settings.visibility_timeout_seconds / 2
                    if not jobs:
                        # Block for new jobs only when none waits for a rate slot.
                        block = None if waiting else READ_BLOCK_MS
                        jobs = await self.queue.read(account, self.consumer, room, block)
                    for job in jobs:
                        if job.entry_id not in in_hand:
                            in_hand[job.entry_id] = job
                            waiting.append(job)
                elif not waiting:
                    self._room[account].clear()
                    await self._wait(self._room[account].wait(), 1.0)
                if waiting:
                    await self._start_next(account, adapter, waiting)
                pause.resumed()
            except Unavailable:
                ready = False  # a Redis that restarted without its data has lost the group too
                await self._sleep(pause.next_delay())

    async def _start_next(self, account: str, adapter: ChannelAdapter, waiting: deque[Job]) -> None:
        job = waiting[0]
        if job.accepted:
            started = await self._start_as_accepted(account, adapter, job)
            if started is None:  # no slot yet: the head of the queue waits, in order
                return
            if started:
                waiting.popleft()
                return
            # Changed since its accept (or not for this path): read the record as it is now.
            waiting[0] = job = dataclasses.replace(job, accepted=b"")
        stored = await self.ledger.get(job.message_id)
        if not deliverable(stored, adapter):
            waiting.popleft()
            await self._done_with(account, job, stored)
            return
        ticket = ""
        if adapter.rate_limit is not None:
            # Pacing instead of refusal: the head of the account's queue waits for its slot, in order.
            admission = await self.limiter.acquire(f"account:{account}", adapter.rate_limit)
            if admission.wait > 0:
                await self._sleep(min(admission.wait, 1.0))
                return
            ticket = admission.ticket
        waiting.popleft()
        task = asyncio.create_task(self._deliver(account, adapter, job, ticket, stored))
        self._delivering.add(task)
        task.add_done_callback(self._delivering.discard)

    async def _start_as_accepted(self, account: str, adapter: ChannelAdapter, job: Job) -> bool | None:
        """Takes the job's message over from the record the job carries, as the accept wrote it,
        and starts its delivery: the take-over is a compare-and-set on that version, so it fails
        if anyone changed the record since, and it takes the account's rate slot in the same
        script. One round trip where reading the record, taking a slot and taking the record over
        were three. True: started; None: no slot yet (wait); False: take the usual path."""
        rate = adapter.rate_limit
        pacing: tuple[RedisRateLimiter, str, RateLimit] | None = None
        if rate is not None:
            if not isinstance(self.limiter, RedisRateLimiter):
                return False
            pacing = (self.limiter, f"account:{account}", rate)
        accepted = StoredRecord(pb.MessageRecord.FromString(job.accepted), version=1)
        if overdue(accepted):
            return False  # the usual read makes it EXPIRED
        outgoing = _prepared(adapter, job)
        mark = sending(False) if outgoing is not None and outgoing.pending_media is None else None
        wait = 0.0

        async def write(candidate: StoredRecord) -> bool:
            nonlocal wait
            written, wait = await self.queue.take(candidate, pacing)
            return written

        # The take-over is the delivery's first Redis operation: counted for the delivery's span
        # (which starts only once it succeeded) rather than given a client span of its own.
        tally = RedisTally()
        outer = redis_tally.set(tally)
        try:  # the task copies the context as it is now
            writing = asyncio.ensure_future(self.ledger.take_over(accepted, self.consumer, mark, write=write))
        finally:
            redis_tally.reset(outer)
        try:
            taken = await asyncio.shield(writing)
        except asyncio.CancelledError:
            # Stopping with the write in flight: a record it took over goes back to ACCEPTED (as a
            # delivery cancelled before its vendor call does), not left SENDING for a lease to end
            # as UNKNOWN although nothing was sent.
            task = asyncio.ensure_future(self._give_back(writing))
            self._giving_back.add(task)
            task.add_done_callback(self._giving_back.discard)
            raise
        if taken is None:
            if wait > 0:
                await self._sleep(min(wait, 1.0))
                return None
            return False
        task = asyncio.create_task(
            self._deliver(account, adapter, job, "", None, _Taken(taken, outgoing, tally))
        )
        self._delivering.add(task)
        task.add_done_callback(self._delivering.discard)
        return True

    async def _give_back(self, writing: asyncio.Future[StoredRecord | None]) -> None:
        with contextlib.suppress(Exception):  # not given back: its lease ends, and a reader resolves it
            taken = await writing
            if taken is not None:
                await self.ledger.settle(
                    taken,
                    retry_later(AttemptLog(), "the worker stopped before the vendor call", expired=False),
                )

    async def _done_with(self, account: str, job: Job, stored: StoredRecord | None) -> None:
        """A job whose message needs nothing more from this worker: finish it, or let it go."""
        if stored is not None and stored.record.state == UNKNOWN and not stored.record.final:
            # A resend was planned and its expiry came first: the message stays UNKNOWN, for good.
            stored = await self.ledger.change(
                stored, unknown(AttemptLog(), "past its expire_after", final=True)
            )
        if stored is None or not busy(stored):  # done, or its record is gone: nothing to deliver
            await self.queue.finish(account, job.entry_id)
        # A live owner elsewhere (another worker reclaimed it): leave the job to that worker.
        self._release(account, job)

    def _release(self, account: str, job: Job) -> None:
        self._in_hand[account].pop(job.entry_id, None)
        self._room[account].set()

    # -- delivering ----------------------------------------------------------------------------

    async def _deliver(
        self,
        account: str,
        adapter: ChannelAdapter,
        job: Job,
        ticket: str,
        first: StoredRecord | None,
        taken: _Taken | None = None,
    ) -> None:
        links = _links(job.traceparent)
        span = tracer.start_span(
            "queue.deliver",
            kind=SpanKind.CONSUMER,
            links=links,
            attributes={
                "notify.message_id": job.message_id,
                "notify.account": account,
                "messaging.system": "redis",
                "messaging.operation.type": "process",
                "messaging.destination.name": f"queue:{account}",
            },
        )
        # Its own task, so the tally is this delivery's alone: its Redis operations, counted on its span.
        tally = tally_for(span)
        if taken is not None and tally is not UNRECORDED:
            tally.calls += taken.tally.calls
            tally.seconds += taken.tally.seconds
        redis_tally.set(tally)
        try:
            with trace.use_span(span, end_on_exit=False):
                await self._deliver_until_final(account, adapter, job, ticket, first, taken)
        except asyncio.CancelledError:
            pass  # shutdown: the record says where it stands, and the job is handed back
        except Exception:
            log.exception("queued delivery failed", extra={"message_id": job.message_id})
        finally:
            if tally is not UNRECORDED:
                tally.record_on(span)
            span.end()
            if not self._stopping.is_set():  # stopping: stop() hands it back, unless it finished
                self._release(account, job)

    async def _deliver_until_final(
        self,
        account: str,
        adapter: ChannelAdapter,
        job: Job,
        ticket: str,
        first: StoredRecord | None,
        taken_first: _Taken | None = None,
    ) -> None:
        """``first``: the record as the job's start read it (a stale copy only fails the take-over);
        ``taken_first``: the record already taken over (with its slot) and the payload, if it was."""
        tries = 0
        if taken_first is not None:
            outgoing = taken_first.outgoing
            tries = 1
            retry_in, finished = await self._attempt(adapter, job, taken_first.stored, tries, False, outgoing)
            if not await self._after_attempt(account, job, retry_in, finished):
                return
        else:
            outgoing = _prepared(adapter, job)
        while True:
            stored = first or await self._store_call(lambda: self.ledger.get(job.message_id))
            first = None
            if not deliverable(stored, adapter):
                if ticket:
                    await self.limiter.release(f"account:{account}", ticket)
                await self._store_call(functools.partial(self._done_with, account, job, stored))
                return
            assert stored is not None
            if not ticket and adapter.rate_limit is not None:  # a retry waits for a slot again
                ticket = await self._slot(account, adapter)
            resend = stored.record.state == UNKNOWN
            # With nothing to upload first, taking the job and marking it SENDING is one write.
            mark = sending(resend) if outgoing is not None and outgoing.pending_media is None else None
            taken = await self._store_call(
                functools.partial(self.ledger.take_over, stored, self.consumer, mark)
            )
            if taken is None:  # changed meanwhile (a Recall, another worker): read it again
                continue
            tries += 1
            retry_in, finished = await self._attempt(adapter, job, taken, tries, resend, outgoing)
            ticket = ""
            if not await self._after_attempt(account, job, retry_in, finished):
                return

    async def _after_attempt(self, account: str, job: Job, retry_in: float | None, finished: bool) -> bool:
        """Ends the job after an attempt whose outcome is final, or waits out the backoff: whether
        to try again."""
        if retry_in is None:
            if not finished:  # its outcome's write did not finish it (someone else's outcome stood)
                await self._store_call(lambda: self.queue.finish(account, job.entry_id))
            return False
        # Stopping: the record is ACCEPTED (or UNKNOWN), the job goes back.
        return not await self._sleep(retry_in)

    async def _slot(self, account: str, adapter: ChannelAdapter) -> str:
        rate = adapter.rate_limit
        assert rate is not None
        while True:
            admission = await self._store_call(
                functools.partial(self.limiter.acquire, f"account:{account}", rate)
            )
            if admission.wait <= 0:
                return admission.ticket
            if await self._sleep(admission.wait):
                raise asyncio.CancelledError  # stopping: the job goes back, its record ACCEPTED

    async def _attempt(
        self,
        adapter: ChannelAdapter,
        job: Job,
        taken: StoredRecord,
        tries: int,
        resend: bool,
        outgoing: Outgoing | None,
    ) -> tuple[float | None, bool]:
        """One delivery of the message, its outcome recorded; the seconds until the next try, or
        None when the record is final, and whether the job was finished with the outcome's write."""
        record = taken.record
        expires = record.expire_time.ToNanoseconds() / 1e9
        ctx: CallContext[pb.SendRequest] = CallContext(
            "queue",
            job.request,
            deadline=time.monotonic()
            + min(self.settings.attempt_timeout_seconds, max(0.0, expires - time.time())),
            tenant=job.tenant,
            account_id=adapter.account_id,
            message_id=job.message_id,
            adapter=adapter,
            record=taken,
        )
        attempts = AttemptLog()
        async with self.ledger.hold(taken):
            try:
                ctx.outgoing = outgoing or adapter.prepare(job.request, job.message_id)
                await self._upload(ctx, _nothing)
                if ctx.require_record().record.state != SENDING:
                    ctx.record = await self.ledger.change(ctx.require_record(), sending(resend))
                delivery = await adapter.deliver(ctx.outgoing, deadline=ctx.deadline, attempts=attempts)
            except BaseException as exc:
                state = ctx.require_record().record.state
                mutate, retry_in = self.policy.after_failure(
                    adapter, exc, attempts, state=state, expires=expires, tries=tries, resend=resend
                )
                final, finished = await self._settle(ctx, mutate, job, _final)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                return (None, finished) if final.record.final else (retry_in, False)
        awaits_report = adapter.reports_delivery and bool(delivery.vendor_message_id)
        recallable = adapter.recallable and bool(delivery.vendor_message_id)
        _, finished = await self._settle(
            ctx, sent(delivery, attempts, recallable, awaits_report), job, _always
        )
        if awaits_report:
            with contextlib.suppress(Unavailable):  # the message is out; only its report is lost
                await self.reports.expect(job.message_id)
        return None, finished

    async def _settle(
        self,
        ctx: CallContext[pb.SendRequest],
        mutate: Mutation,
        job: Job,
        done: Callable[[StoredRecord], bool],
    ) -> tuple[StoredRecord, bool]:
        """Writes the outcome, waiting out a Redis outage: what the vendor did must not be lost.

        When ``done`` says the record written leaves the job nothing to do, the same write finishes
        the job (True): one round trip, and the job never ends without its outcome recorded.
        """
        finished = False

        async def write(candidate: StoredRecord) -> bool:
            nonlocal finished
            if not done(candidate):
                return await self.ledger.store.put(candidate)
            finished = await self.queue.settle(candidate, ctx.account_id, job.entry_id)
            return finished

        stored = await self._store_call(lambda: self.ledger.settle(ctx.require_record(), mutate, write=write))
        ctx.record = stored
        record = stored.record
        if record.final:
            outcome = state_name(record.state).removeprefix("MESSAGE_STATE_").lower()
            queue_deliveries.add(1, {"notify.account": record.account, "outcome": outcome})
            accept_to_final.record(
                max(0.0, time.time() - record.create_time.ToNanoseconds() / 1e9),
                {"notify.account": record.account, "outcome": outcome},
            )
        return stored, finished

    async def _store_call(self, call: Callable[[], Awaitable[T]]) -> T:
        """A store call that waits for Redis to come back rather than giving up on a job in hand."""
        pause = _Pause("records")
        while True:
            try:
                return await call()
            except Unavailable:
                await asyncio.sleep(pause.next_delay())

    # -- upkeep --------------------------------------------------------------------------------

    async def _renew(self) -> None:
        """Keeps the jobs in hand from looking abandoned while they wait for a slot or a vendor."""
        while not await self._sleep(self.settings.visibility_timeout_seconds / 3):
            for account, jobs in self._in_hand.items():
                with contextlib.suppress(Unavailable):
                    await self.queue.renew(account, self.consumer, list(jobs))

    async def _watch_backlog(self) -> None:
        while True:
            with contextlib.suppress(Unavailable):
                record_backlogs(await self.queue.backlog(self.accounts))
            if await self._sleep(BACKLOG_EVERY):
                return

    async def _sleep(self, seconds: float) -> bool:
        """Sleeps, or returns early (True) when the worker is stopping."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=max(0.0, seconds))
        return self._stopping.is_set()

    async def _wait(self, waiter: Awaitable[Any], timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(waiter, timeout=timeout)


_PROPAGATOR = TraceContextTextMapPropagator()


def _links(traceparent: str) -> list[Link]:
    if not traceparent:
        return []
    context = _PROPAGATOR.extract({"traceparent": traceparent})
    span_context = trace.get_current_span(context).get_span_context()
    return [Link(span_context)] if span_context.is_valid else []


def _prepared(adapter: ChannelAdapter, job: Job) -> Outgoing | None:
    """The vendor payload, or None if it cannot be made (the attempt then fails and says why)."""
    try:
        return adapter.prepare(job.request, job.message_id)
    except Exception:
        return None


async def _nothing() -> None:
    return None


def _final(stored: StoredRecord) -> bool:
    """A failed attempt leaves the job nothing to do when it made the record final."""
    return stored.record.final


def _always(stored: StoredRecord) -> bool:
    """A delivery the vendor accepted leaves the job nothing to do (a report is another queue's)."""
    return True


@dataclasses.dataclass(frozen=True, slots=True)
class _Taken:
    """A job's record taken over as its job was started (with its slot): the delivery begins there."""

    stored: StoredRecord
    outgoing: Outgoing | None  # the vendor payload, prepared for the take-over's mark
    tally: RedisTally  # the take-over's Redis operation, for the delivery's span


class _Pause:
    """Backs off while Redis is unreachable, and says once that the queue paused and resumed."""

    def __init__(self, what: str) -> None:
        self._what = what
        self._delay = 0.0

    def next_delay(self) -> float:
        if not self._delay:
            log.warning("queue paused: the store is unreachable", extra={"queue": self._what})
        self._delay = min(5.0, max(0.25, self._delay * 2))
        return self._delay

    def resumed(self) -> None:
        if self._delay:
            log.info("queue resumed", extra={"queue": self._what})
            self._delay = 0.0
