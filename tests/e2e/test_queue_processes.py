"""Queued delivery across real processes: one API gateway (`serve`, workers off), two
`notify-gateway worker` processes, a Redis, and the in-test sandbox.

- Kill: SIGKILL a worker holding jobs. Every message reaches a final state; none is lost, none
  delivered twice; those that were in the vendor call when it died are UNKNOWN and never resent
  where the vendor does not drop repeats (WeCom), resent as the same msgUuid where it does (DingTalk).
- Burst: 100 queued Sends to one robot are all delivered, never more than 20 in any 60 s of the
  sandbox's clock, which runs 10x faster than the wall here (the gateway's window is scaled alike).
- Redis restart: Redis (with an append-only file) stops and comes back mid-stream; the workers pause
  and resume; nothing is lost or delivered twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import textwrap
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis.asyncio as redis
from redis.exceptions import ResponseError

from gateway.ids import slot_tag
from gateway.sandbox import SandboxServer, SandboxState
from gateway.sandbox.clock import SandboxClock
from gateway.sandbox.faults import Fault
from gateway.sandbox.rate import SlidingWindowLimit
from generated.notify.v1 import notification_service_pb2 as pb
from tests.conftest import seed_sandbox
from tests.gateway_process import REPO, GatewayProcess, free_port, gateway_environment, gateway_process
from tests.redis_server import RedisProcess

QUEUED = pb.SendOptions(delivery=pb.DELIVERY_MODE_QUEUED)
LEASE = 2.0
VISIBILITY = 2.0


def write_config(
    directory: Path,
    *,
    sandbox_url: str,
    port: int,
    redis_url: str,
    namespace: str,
    wecom_rate: str = "rate_limit_per_minute: 0",
    dingtalk_rate: str = "rate_limit_per_minute: 0",
    visibility: float = VISIBILITY,
    in_hand: int = 100,
) -> Path:
    path = directory / f"gateway-{port}.yaml"
    path.write_text(
        textwrap.dedent(
            f"""
            server:
              listen: 127.0.0.1:{port}
              grace_period_seconds: 1
              drain_delay_seconds: 0
            auth: none
            token_store: {redis_url}
            key_namespace: {namespace}
            messages:
              owner_lease_seconds: {LEASE}
            queue:
              workers_in_serve: false
              visibility_timeout_seconds: {visibility}
              in_hand_per_account: {in_hand}
              retry_base_seconds: 0.2
              retry_max_seconds: 1
            accounts:
              team-wecom:
                channel: wecom_robot
                key: ${{TEST_WECOM_KEY}}
                base_url: {sandbox_url}
                timeout_seconds: 10
                delivery: queued
                queue_limit: 1000
                {wecom_rate}
              ops-dingtalk:
                channel: dingtalk_robot
                access_token: ${{TEST_DINGTALK_TOKEN}}
                secret: ${{TEST_DINGTALK_SECRET}}
                base_url: {sandbox_url}
                timeout_seconds: 10
                delivery: queued
                queue_limit: 1000
                {dingtalk_rate}
            """
        ),
        encoding="utf-8",
    )
    return path


@dataclass
class WorkerProcess:
    process: asyncio.subprocess.Process
    stderr: asyncio.Task[bytes]

    @property
    def pid(self) -> int:
        return self.process.pid


@contextlib.asynccontextmanager
async def worker_process(config: Path) -> AsyncIterator[WorkerProcess]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "worker", "--config", str(config), cwd=REPO,
        env=gateway_environment(), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stderr is not None
    stderr = asyncio.create_task(process.stderr.read())
    try:
        yield WorkerProcess(process, stderr)
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), timeout=10)
            except TimeoutError:
                process.kill()
                await process.wait()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(stderr), timeout=5)


@dataclass
class Deployment:
    gateway: GatewayProcess
    workers: list[WorkerProcess]
    sandbox: SandboxState


@contextlib.asynccontextmanager
async def deployment(config: Path, port: int, sandbox: SandboxState) -> AsyncIterator[Deployment]:
    async with (
        gateway_process(config, port) as gateway,
        worker_process(config) as first,
        worker_process(config) as second,
    ):
        yield Deployment(gateway, [first, second], sandbox)


def unlimited(state: SandboxState) -> None:
    """Lifts the robots' 20-a-minute: these tests count deliveries, not the vendor's limit."""
    for book in (state.wecom_robots, state.dingtalk_robots):
        for robot in book:
            robot.rate = SlidingWindowLimit(100_000, 60.0)


@pytest.fixture
def state() -> SandboxState:
    sandbox = SandboxState()
    seed_sandbox(sandbox)
    return sandbox


@contextlib.asynccontextmanager
async def serving(state: SandboxState) -> AsyncIterator[SandboxServer]:
    async with SandboxServer(state) as server:
        yield server


async def send_all(gateway: GatewayProcess, account: str, tag: str, count: int) -> list[str]:
    async def one(n: int) -> str:
        request = pb.SendRequest(
            account=account, message=pb.Message(text=pb.Text(content=f"{tag} {n}")), options=QUEUED
        )
        reply = await gateway.stub.Send(request, timeout=10)
        assert reply.state == pb.MESSAGE_STATE_ACCEPTED
        return reply.message_id

    return list(await asyncio.gather(*(one(n) for n in range(count))))


async def records(gateway: GatewayProcess, ids: list[str]) -> dict[str, pb.MessageRecord]:
    found: dict[str, pb.MessageRecord] = {}
    for message_id in ids:
        reply = await gateway.stub.GetMessage(pb.GetMessageRequest(message_id=message_id), timeout=5)
        found[message_id] = reply.message
    return found


async def all_final(gateway: GatewayProcess, ids: list[str], seconds: float) -> dict[str, pb.MessageRecord]:
    loop = asyncio.get_running_loop()
    give_up = loop.time() + seconds
    while True:
        found = await records(gateway, ids)
        if all(r.final for r in found.values()):
            return found
        if loop.time() > give_up:
            open_ = Counter(pb.MessageState.Name(r.state) for r in found.values() if not r.final)
            raise AssertionError(f"not every message reached a final state: {open_}")
        await asyncio.sleep(0.25)


def contents(state: SandboxState, robot: str, *, delivered_only: bool) -> Counter[str]:
    """How many times each text reached the robot (every request, or only deliveries)."""
    return Counter(
        r.body.get("text", {}).get("content", "")
        for r in state.received(robot=robot)
        if r.msgtype == "text" and (r.delivered or not delivered_only)
    )


def by_content(
    found: dict[str, pb.MessageRecord], ids: list[str], tag: str
) -> Iterator[tuple[str, pb.MessageRecord]]:
    for n, message_id in enumerate(ids):
        yield f"{tag} {n}", found[message_id]


async def pending_by_consumer(client: redis.Redis, namespace: str) -> Counter[str]:
    counts: Counter[str] = Counter()
    for account in ("team-wecom", "ops-dingtalk"):
        key = f"{namespace}:{{s:{slot_tag(account)}}}:queue:{account}"
        try:
            entries = await client.xpending_range(key, "workers", "-", "+", 1000)
        except ResponseError:  # the workers have not created their group yet
            continue
        for entry in entries:
            counts[entry["consumer"].decode()] += 1
    return counts


async def test_a_killed_worker_loses_nothing_and_doubles_nothing(
    tmp_path: Path, state: SandboxState, redis_url: str
) -> None:
    namespace = f"notify-test-{uuid.uuid4().hex[:12]}"
    unlimited(state)
    # Both robots answer late (each message is delivered on arrival): the killed worker's jobs that
    # were in the vendor call are ambiguous. DingTalk is also paced at 10 a second, so most of its
    # jobs are still waiting in the workers' hands when one dies.
    state.faults.add("wecom_robot", "team-wecom", Fault(delay=4.0), times=100)
    state.faults.add("dingtalk_robot", "ops-dingtalk", Fault(delay=2.0), times=100)
    client = redis.Redis.from_url(redis_url)
    async with serving(state) as sandbox:
        port = free_port()
        config = write_config(
            tmp_path, sandbox_url=sandbox.url, port=port, redis_url=redis_url, namespace=namespace,
            dingtalk_rate="rate_limit_per_minute: 600", in_hand=60,
        )  # fmt: skip
        async with gateway_process(config, port) as gateway:
            # Queued before the workers start, so that both take their share at once (60 per account
            # each at most: both hold jobs when one dies).
            wecom, dingtalk = await asyncio.gather(
                send_all(gateway, "team-wecom", "kill wecom", 100),
                send_all(gateway, "ops-dingtalk", "kill dingtalk", 100),
            )
            async with worker_process(config) as first, worker_process(config) as second:
                for _ in range(400):  # every job read by a worker, and WeCom's in the vendor call
                    held = await pending_by_consumer(client, namespace)
                    calls = sum(contents(state, "team-wecom", delivered_only=False).values())
                    if sum(held.values()) == 200 and calls >= 40:
                        break
                    await asyncio.sleep(0.025)
                assert sum(held.values()) == 200 and len(held) == 2, (
                    held
                )  # 200 jobs in the two workers' hands

                def holds(worker: WorkerProcess) -> int:
                    return sum(n for consumer, n in held.items() if f"-{worker.pid}-" in consumer)

                victim = max((first, second), key=holds)
                victim.process.send_signal(signal.SIGKILL)
                await victim.process.wait()
                found = await all_final(gateway, wecom + dingtalk, seconds=60)
                # A record can read final before its job is acknowledged: GetMessage resolves a dead
                # worker's SENDING to UNKNOWN at once; the job waits for a reclaim to be acked.
                for _ in range(400):
                    left = sum((await pending_by_consumer(client, namespace)).values())
                    if not left:
                        break
                    await asyncio.sleep(0.05)
    await client.aclose()

    states = Counter(pb.MessageState.Name(r.state) for r in found.values())
    assert set(states) <= {"MESSAGE_STATE_SENT", "MESSAGE_STATE_UNKNOWN"}, states
    assert left == 0, "every job is acknowledged once its record is final"
    # WeCom does not drop repeats: nothing reaches it twice, an UNKNOWN message is never sent again,
    # and a SENT one arrived exactly once. UNKNOWN ones arrived once, or not at all if the worker
    # died between recording SENDING and writing the request: the record cannot tell, so it says so.
    wecom_requests = contents(state, "team-wecom", delivered_only=False)
    assert max(wecom_requests.values()) == 1, "a WeCom message was sent twice"
    wecom_records = dict(by_content(found, wecom, "kill wecom"))
    unknown = [text for text, r in wecom_records.items() if r.state == pb.MESSAGE_STATE_UNKNOWN]
    assert unknown, "no job was in a vendor call"
    for text, record in wecom_records.items():
        if record.state == pb.MESSAGE_STATE_SENT:
            assert wecom_requests[text] == 1, f"{text} is SENT but did not arrive"
    # DingTalk drops a repeated msgUuid: an ambiguous message is resent as itself and arrives once.
    dingtalk_delivered = contents(state, "ops-dingtalk", delivered_only=True)
    for text, record in by_content(found, dingtalk, "kill dingtalk"):
        assert record.state == pb.MESSAGE_STATE_SENT, (text, record)
        assert dingtalk_delivered[text] == 1, f"{text} delivered {dingtalk_delivered[text]} times"


async def test_a_burst_to_one_robot_is_paced_not_refused(tmp_path: Path, redis_url: str) -> None:
    namespace = f"notify-test-{uuid.uuid4().hex[:12]}"
    # Sandbox time runs 10x: the robot's 20 a minute is 20 per 6 s of wall time, and the gateway's
    # window for the account is scaled alike, with a margin of 5 sandbox seconds (0.5 s of wall
    # time) for the time between the gateway's admission and the sandbox's clock on a busy machine.
    state = SandboxState(clock=SandboxClock(speed=10))
    seed_sandbox(state)
    async with serving(state) as sandbox:
        port = free_port()
        config = write_config(
            tmp_path, sandbox_url=sandbox.url, port=port, redis_url=redis_url, namespace=namespace,
            wecom_rate="rate_limit_per_minute: 20\n" + " " * 16 + "rate_limit_window_seconds: 6.5",
        )  # fmt: skip
        async with deployment(config, port, state) as running:
            ids = await send_all(running.gateway, "team-wecom", "burst", 100)  # none RESOURCE_EXHAUSTED
            found = await all_final(running.gateway, ids, seconds=120)

    assert {pb.MessageState.Name(r.state) for r in found.values()} == {"MESSAGE_STATE_SENT"}
    received = [r for r in state.received(robot="team-wecom") if r.msgtype == "text"]
    assert [r.errcode for r in received] == [0] * 100, "the robot refused some (rate limited)"
    times = sorted(r.at for r in received)
    busiest = max(sum(1 for t in times if start <= t < start + 60.0) for start in times)
    assert busiest <= 20, f"{busiest} messages in one 60 s window of the sandbox"
    assert times[-1] - times[0] >= 4 * 60.0, "100 messages at 20 a minute take at least 4 minutes"


async def test_a_redis_restart_mid_stream_loses_and_doubles_nothing(
    tmp_path: Path, state: SandboxState
) -> None:
    unlimited(state)
    store = RedisProcess(persistent=True).start()
    try:
        async with serving(state) as sandbox:
            port = free_port()
            config = write_config(
                tmp_path, sandbox_url=sandbox.url, port=port, redis_url=store.url, namespace="restart",
                # 5 a second, so the 60 messages take about 12 s and Redis stops among them.
                wecom_rate="rate_limit_per_minute: 5\n" + " " * 16 + "rate_limit_window_seconds: 1",
            )  # fmt: skip
            async with deployment(config, port, state) as running:
                ids = await send_all(running.gateway, "team-wecom", "restart", 60)
                for _ in range(400):
                    if sum(contents(state, "team-wecom", delivered_only=True).values()) >= 20:
                        break
                    await asyncio.sleep(0.05)
                store.stop()  # SIGTERM: Redis writes its append-only file and exits
                await asyncio.sleep(2.0)
                stalled = sum(contents(state, "team-wecom", delivered_only=True).values())
                store.start()
                found = await all_final(running.gateway, ids, seconds=60)
    finally:
        store.stop()
        store.cleanup()

    assert 20 <= stalled < 60, "Redis stopped mid-stream"
    assert {pb.MessageState.Name(r.state) for r in found.values()} == {"MESSAGE_STATE_SENT"}
    requests = contents(state, "team-wecom", delivered_only=False)
    assert len(requests) == 60 and max(requests.values()) == 1, "a message was lost or sent twice"


async def test_a_stopped_worker_finishes_or_hands_back_what_it_holds(
    tmp_path: Path, state: SandboxState, redis_url: str
) -> None:
    namespace = f"notify-test-{uuid.uuid4().hex[:12]}"
    unlimited(state)
    async with serving(state) as sandbox:
        port = free_port()
        # Two a second, so the worker holds most of the 30 jobs when it is stopped; a visibility
        # timeout far beyond the test's wait, so only a hand-back lets the next worker take them.
        config = write_config(
            tmp_path, sandbox_url=sandbox.url, port=port, redis_url=redis_url, namespace=namespace,
            wecom_rate="rate_limit_per_minute: 2\n" + " " * 16 + "rate_limit_window_seconds: 1",
            visibility=600,
        )  # fmt: skip
        async with gateway_process(config, port) as gateway:
            ids = await send_all(gateway, "team-wecom", "handback", 30)
            async with worker_process(config) as first:
                for _ in range(400):
                    if sum(contents(state, "team-wecom", delivered_only=True).values()) >= 5:
                        break
                    await asyncio.sleep(0.025)
                first.process.send_signal(signal.SIGTERM)
                assert await asyncio.wait_for(first.process.wait(), timeout=15) == 0
                log = (await first.stderr).decode()
            stopped_at = sum(contents(state, "team-wecom", delivered_only=True).values())
            between = await records(gateway, ids)
            async with worker_process(config):
                found = await all_final(gateway, ids, seconds=60)

    assert stopped_at < 30, "the worker was stopped with jobs in hand"
    # Nothing half-recorded: a message not delivered by the first worker is still plainly queued.
    assert {pb.MessageState.Name(r.state) for r in between.values()} <= {
        "MESSAGE_STATE_ACCEPTED",
        "MESSAGE_STATE_SENT",
    }
    assert "queue worker stopped" in log
    assert {pb.MessageState.Name(r.state) for r in found.values()} == {"MESSAGE_STATE_SENT"}
    requests = contents(state, "team-wecom", delivered_only=False)
    assert len(requests) == 30 and max(requests.values()) == 1
