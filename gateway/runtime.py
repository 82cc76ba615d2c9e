"""What a gateway process runs on, whatever its role: stores, tokens, accounts, records, reports,
and the job queue. ``serve`` puts the gRPC API (and, by default, queue workers) on top of it;
``worker`` runs only queue workers on it, so delivery can scale apart from the API."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from gateway.accounts import Accounts
from gateway.channels.transport import AiohttpTransport, VendorTransport
from gateway.config import Config
from gateway.lifecycle.ledger import Ledger
from gateway.lifecycle.reports import DeliveryReports, ReportPolicy
from gateway.queue.streams import JobQueue
from gateway.queue.worker import Worker
from gateway.store.health import StoreHealth
from gateway.store.records import RedisRecordStore
from gateway.store.stores import Stores, open_stores
from gateway.tokens import TokenManager

log = logging.getLogger("gateway.runtime")


@dataclass
class Runtime:
    config: Config
    transport: VendorTransport
    stores: Stores
    store_health: StoreHealth
    tokens: TokenManager
    accounts: Accounts
    ledger: Ledger
    reports: DeliveryReports
    queue: JobQueue | None  # None with a memory store: queued delivery needs Redis

    @classmethod
    def build(cls, config: Config, transport: VendorTransport | None = None) -> Runtime:
        transport = transport or AiohttpTransport()
        messages = config.messages
        stores = open_stores(
            config.token_store, config.key_namespace, retention=messages.retention_hours * 3600
        )
        tokens = TokenManager(stores.tokens)
        accounts = Accounts(config.accounts, transport, tokens)
        ledger = Ledger(stores.records, lease_seconds=messages.owner_lease_seconds)
        reports = DeliveryReports(
            ledger,
            stores.reports,
            accounts,
            ReportPolicy(
                first_poll=messages.report_first_poll_seconds,
                max_interval=messages.report_max_interval_seconds,
                give_up_after=messages.report_poll_hours * 3600,
            ),
        )
        queue = None
        if stores.redis is not None and isinstance(stores.records, RedisRecordStore):
            queue = JobQueue(stores.redis, config.key_namespace, stores.records)
        return cls(
            config,
            transport,
            stores,
            StoreHealth(config.token_store, stores.redis),
            tokens,
            accounts,
            ledger,
            reports,
            queue,
        )

    def worker(self, name: str | None = None) -> Worker | None:
        """Queue workers for every account, or None where there is no queue (a memory store)."""
        if self.queue is None:
            return None
        return Worker(
            self.queue,
            self.ledger,
            self.accounts,
            self.stores.rate_limiter,
            self.stores.media_cache,
            self.reports,
            self.config.queue,
            name=name,
        )

    def start(self) -> None:
        self.tokens.start()
        self.reports.start()

    async def close(self) -> None:
        """After the API and the workers stopped: waits for outcomes being written, then closes."""
        await self.ledger.drain(timeout=5.0)
        await self.reports.stop()
        await self.tokens.close()
        await self.stores.close()
        await self.transport.close()
