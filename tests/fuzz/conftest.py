"""The fuzzed gateway, how many cases to run, and the count of answers per status code.

``NOTIFY_FUZZ_EXAMPLES`` is the number of cases across the suite (1,000 by default, the slice
``make test`` runs; ``make fuzz`` asks for 10,000). Without ``NOTIFY_FUZZ_SEED`` the cases are
derandomized, the same on every run; with it they come from that seed, which the summary prints so
a run can be repeated. The summary at the end of the session counts the answers per status code.
"""

from __future__ import annotations

import logging
import math
import os
import zlib
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc
import pytest
import redis.asyncio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, seed, settings

from gateway.config import Config
from gateway.sandbox import SandboxServer
from gateway.tenants import hash_key
from generated.notify.v1 import notification_service_pb2 as pb
from tests.conftest import Gateway, configured, gateway_config, running_gateway, wait_until

SERVICE = pb.DESCRIPTOR.services_by_name["NotificationService"]
EXAMPLES = int(os.environ.get("NOTIFY_FUZZ_EXAMPLES") or 1000)
SEED = os.environ.get("NOTIFY_FUZZ_SEED") or None
TIMEOUT = 5.0  # seconds per call: the sandbox answers at once, so only a hung call would reach it
REFUSED = {"INTERNAL", "UNKNOWN"}  # never an answer to caller input

FUZZ_KEY = "fuzz-tenant-key-0d5b8e21"  # every account
ROBOTS_KEY = "fuzz-robots-key-7a9c3f14"  # two robots only: the other accounts are PERMISSION_DENIED
CALLERS: dict[str, tuple[tuple[str, str], ...]] = {
    "tenant": (("authorization", f"Bearer {FUZZ_KEY}"),),
    "robots tenant": (("authorization", f"bearer   {ROBOTS_KEY} "),),
    "wrong key": (("authorization", "Bearer not-a-key"),),
    "no key": (),
    "empty bearer": (("authorization", "Bearer "),),
    "another scheme": (("authorization", f"Basic {FUZZ_KEY}"),),
    "two keys": (("authorization", "Bearer not-a-key"), ("authorization", f"Bearer {FUZZ_KEY}")),
}

F = TypeVar("F", bound=Callable[..., Any])

# (rpc, status) -> answers, over the whole session; printed by pytest_terminal_summary.
TALLY: Counter[tuple[str, str]] = Counter()
CLIENT_WRITE_RACES: Counter[str] = Counter()  # rpc -> calls the caller saw as INTERNAL (see Fuzzed.call)


def fuzz_settings(share: float) -> Callable[[F], F]:
    """A test's part of the run: ``share`` of NOTIFY_FUZZ_EXAMPLES, fixed or from NOTIFY_FUZZ_SEED."""

    def apply(test: F) -> F:
        configured_test = settings(
            max_examples=math.ceil(EXAMPLES * share),
            derandomize=SEED is None,
            deadline=None,  # a call's time is the server's business; no timing assertions
            database=None,  # nothing written to .hypothesis/ in the work tree
            print_blob=True,
            # The gateway fixture is shared by a test's cases on purpose; huge values are the point.
            suppress_health_check=list(HealthCheck),
        )(test)
        if SEED is None:
            return configured_test
        # One seed for the run, a different stream of cases for each test.
        return seed(int(SEED) ^ zlib.crc32(test.__name__.encode()))(configured_test)

    return apply


class AccessLog(logging.Handler):
    """The status of each call as the gateway's access log records it: the gateway's own answer."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.statuses: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.statuses.append(str(getattr(record, "status", "")))


@dataclass
class Fuzzed:
    """A running gateway, the message ids it has already sent, and how to call it with raw bytes."""

    gateway: Gateway
    access_log: AccessLog
    known_ids: list[str] = field(default_factory=list)
    page_tokens: list[str] = field(default_factory=list)
    cases: int = 0

    async def call(self, method_name: str, parts: list[bytes], caller: str) -> str:
        """Sends the bytes as the request (or stream) and returns the gateway's answer, counted.

        Fails if the gateway answered INTERNAL or UNKNOWN, or if the caller saw either, except
        for one flaw of grpc's Python aio client: a request-stream write that fails because the
        gateway has already answered makes the call INTERNAL "Internal error from Core" on the
        caller's side (grpc/grpc#36066), whatever the gateway sent. Such a call is counted by the
        gateway's answer, and in ``CLIENT_WRITE_RACES``.
        """
        method = SERVICE.methods_by_name[method_name]
        path = f"/{SERVICE.full_name}/{method.name}"
        channel, metadata = self.gateway.channel, CALLERS[caller]
        logged = len(self.access_log.statuses)
        seen, details = grpc.StatusCode.OK, ""
        try:
            if method.client_streaming:
                await channel.stream_unary(path)(iter(parts), metadata=metadata, timeout=TIMEOUT)
            elif method.server_streaming:
                async for _ in channel.unary_stream(path)(parts[0], metadata=metadata, timeout=TIMEOUT):
                    pass
            else:
                await channel.unary_unary(path)(parts[0], metadata=metadata, timeout=TIMEOUT)
        except grpc.aio.AioRpcError as error:
            seen, details = error.code(), error.details() or ""
        if seen == grpc.StatusCode.RESOURCE_EXHAUSTED and "larger than max" in details:
            answered = seen.name  # grpc refused the oversized message before any handler: no log line
        else:
            await wait_until(lambda: len(self.access_log.statuses) > logged, "the call's access log line")
            [answered] = self.access_log.statuses[logged:]
        self.cases += 1
        TALLY[(method.name, answered)] += 1
        assert answered not in REFUSED, (
            f"{method.name}: the gateway answered {answered}; the caller saw {details!r}"
        )
        if seen.name in REFUSED:
            assert method.client_streaming and details == "Internal error from Core", (
                f"{method.name}: the gateway answered {answered} but the caller saw {seen.name}: {details}"
            )
            CLIENT_WRITE_RACES[method.name] += 1
        else:
            assert seen.name == answered, (
                f"{method.name}: the gateway answered {answered}, the caller saw {seen.name}"
            )
        return answered

    async def assert_serving(self) -> None:
        health = health_pb2_grpc.HealthStub(self.gateway.channel)
        reply = await health.Check(health_pb2.HealthCheckRequest(service=SERVICE.full_name), timeout=TIMEOUT)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


def fuzz_config(sandbox_url: str, redis_url: str, namespace: str) -> Config:
    """The test accounts with no gateway rate limit (the sandbox keeps the vendors'), two tenants, Redis."""
    base = gateway_config(sandbox_url)
    accounts = {
        name: account.model_copy(update={"rate_limit_per_minute": 0})
        for name, account in base.accounts.items()
    }
    tenants = [
        {"name": "fuzz", "api_keys": [hash_key(FUZZ_KEY)], "accounts": ["*"]},
        {"name": "robots", "api_keys": [hash_key(ROBOTS_KEY)], "accounts": ["team-wecom", "ops-dingtalk"]},
    ]
    return configured(
        base,
        accounts=accounts,
        tenants=tenants,
        token_store=redis_url,
        key_namespace=namespace,
        messages=base.messages.model_copy(update={"retention_hours": 1.0}),
    )


@pytest.fixture
async def fuzzed(sandbox: SandboxServer, redis_url: str, namespace: str) -> AsyncIterator[Fuzzed]:
    """One gateway for all of a test's cases; two messages sent (for Recall, Get, Watch) and a page token."""
    config = fuzz_config(sandbox.url, redis_url, namespace)
    access = logging.getLogger("gateway.access")
    level, access_log = access.level, AccessLog()
    access.setLevel(logging.INFO)
    access.addHandler(access_log)
    async with running_gateway(config, sandbox.state) as gateway:
        fuzzed = Fuzzed(gateway, access_log)
        for account, recipients in (("team-wecom", pb.Recipients()), ("corp-app", pb.Recipients(all=True))):
            sent = await gateway.stub.Send(
                pb.SendRequest(
                    account=account, recipients=recipients, message=pb.Message(text=pb.Text(content="seed"))
                ),
                metadata=CALLERS["tenant"],
                timeout=TIMEOUT,
            )
            fuzzed.known_ids.append(sent.message_id)
        first_page = await gateway.stub.ListMessages(
            pb.ListMessagesRequest(page_size=1), metadata=CALLERS["tenant"], timeout=TIMEOUT
        )
        fuzzed.page_tokens.append(first_page.next_page_token)
        yield fuzzed
        await fuzzed.assert_serving()
    access.removeHandler(access_log)
    access.setLevel(level)
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        keys = [key async for key in client.scan_iter(f"{namespace}*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not TALLY:
        return
    write = terminalreporter.write_line
    terminalreporter.section("fuzz: answers per status code")
    codes: Counter[str] = Counter()
    for (_, code), count in TALLY.items():
        codes[code] += count
    origin = f"seed {SEED}" if SEED is not None else "derandomized (fixed)"
    write(f"{sum(codes.values())} cases, {origin}")
    for code, count in sorted(codes.items(), key=lambda item: -item[1]):
        write(f"  {code:<20} {count:>7}")
    if CLIENT_WRITE_RACES:
        races = ", ".join(f"{rpc} {count}" for rpc, count in sorted(CLIENT_WRITE_RACES.items()))
        write(f"  (seen as INTERNAL by grpc's Python client after the gateway had answered: {races})")
    for rpc in sorted({rpc for rpc, _ in TALLY}):
        per_rpc = ", ".join(f"{code} {count}" for (r, code), count in sorted(TALLY.items()) if r == rpc)
        write(f"  {rpc}: {per_rpc}")
