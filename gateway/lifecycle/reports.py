"""Asks vendors that report delivery (DingTalk work notifications) what became of SENT messages.

A sent task is polled first after ``first_poll`` seconds, then at intervals that grow with the
message's age (never longer than ``max_interval``), until the vendor says the task is done: the
record then becomes DELIVERED with the read / unread / failed / forbidden user lists. After
``give_up_after`` seconds without a report the record stays SENT and is marked final; the bound
is the vendors' 24-hour window, after which they may have forgotten the task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

from gateway.background import cancel_and_wait
from gateway.channels.base import ChannelAdapter
from gateway.errors import GatewayError
from gateway.lifecycle.ledger import Ledger
from gateway.lifecycle.states import DELIVERED, SENT, IllegalTransition, advance, timestamp
from gateway.store.records import StoredRecord
from gateway.store.report_queue import ReportQueue
from gateway.telemetry import current_span
from generated.notify.v1 import notification_service_pb2 as pb

log = logging.getLogger("gateway.reports")


@dataclass(frozen=True)
class ReportPolicy:
    first_poll: float = 1.0
    max_interval: float = 300.0
    give_up_after: float = 24 * 3600.0
    tick: float = 0.5  # how often the poller looks for due messages
    batch: int = 20
    call_timeout: float = 10.0


class DeliveryReports:
    def __init__(
        self,
        ledger: Ledger,
        queue: ReportQueue,
        accounts: Mapping[str, ChannelAdapter],
        policy: ReportPolicy = ReportPolicy(),
    ) -> None:
        self._ledger = ledger
        self._queue = queue
        self._accounts = accounts
        self.policy = policy
        self._task: asyncio.Task[None] | None = None

    async def expect(self, message_id: str) -> None:
        await self._queue.schedule(message_id, time.time() + self.policy.first_poll)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                due = await self._queue.take_due(self.policy.batch, hold=self.policy.call_timeout * 3)
                await asyncio.gather(*(self.poll(message_id) for message_id in due))
            except Exception:  # the store is down, or a bug: keep polling, never die silently
                log.exception("delivery report poll failed")
            await asyncio.sleep(self.policy.tick)

    async def poll(self, message_id: str) -> None:
        with current_span("delivery_report.poll", attributes={"notify.message_id": message_id}):
            stored = await self._ledger.get(message_id)
            adapter = self._accounts.get(stored.record.account) if stored is not None else None
            if stored is None or adapter is None or stored.record.state != SENT or stored.record.final:
                await self._queue.remove(message_id)
                return
            record = stored.record
            age = time.time() - record.create_time.ToNanoseconds() / 1e9
            try:
                report = await adapter.delivery_report(
                    record.vendor_message_id, deadline=time.monotonic() + self.policy.call_timeout
                )
            except GatewayError as error:
                log.warning(
                    "delivery report not available", extra={"message_id": message_id, "error": error.message}
                )
                report = None
            if report is None:
                if age > self.policy.give_up_after:
                    await self._give_up(stored)
                    return
                interval = min(self.policy.max_interval, max(self.policy.first_poll, age / 2))
                await self._queue.schedule(message_id, time.time() + interval)
                return
            report.report_time.CopyFrom(timestamp(time.time()))

            def delivered(current: pb.MessageRecord) -> None:
                current.delivery_report.CopyFrom(report)
                advance(current, DELIVERED, "the vendor reported the task done")

            with contextlib.suppress(IllegalTransition):  # recalled meanwhile: the report no longer matters
                await self._ledger.change(stored, delivered)
            await self._queue.remove(message_id)

    async def _give_up(self, stored: StoredRecord) -> None:
        log.warning("no delivery report; giving up", extra={"message_id": stored.message_id})

        def final(current: pb.MessageRecord) -> None:
            current.final = True
            current.update_time.CopyFrom(timestamp(time.time()))

        await self._ledger.change(stored, final)
        await self._queue.remove(stored.message_id)
