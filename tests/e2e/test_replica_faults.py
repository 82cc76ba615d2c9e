"""Replicas that stop or die with Sends in flight: no message is delivered twice, none is called
FAILED that may have been delivered, and a retry with the same key on another replica is told so.

Real gateway child processes share a real Redis (a key namespace of the test's own) in front of an
in-test sandbox. The vendor holds its answers (a delay fault: each message is delivered on arrival
and only the answer is late), so when the replica stops, every Send has written its request.
The SIGKILL case also has Sends that had not called the vendor yet (waiting for a rate-limit slot,
ACCEPTED): once the dead replica's lease runs out they are FAILED, and their retries deliver them.
"""

from __future__ import annotations

import asyncio
import json
import signal
import textwrap
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from gateway.sandbox import SandboxServer, SandboxState
from generated.notify.v1 import notification_service_pb2 as pb
from generated.notify.v1 import notification_service_pb2_grpc as pb_grpc
from tests.conftest import seed_sandbox, wait_until
from tests.gateway_process import GatewayProcess, free_port, gateway_environment, gateway_process
from tests.rich_status import rich_error

IN_FLIGHT = 10
VENDOR_DELAY = 3.0  # seconds the sandbox holds each answer (the message is delivered on arrival)
LEASE = 2.0  # messages.owner_lease_seconds
GRACE = 0.5  # server.grace_period_seconds
HELD_KEY = "held-wecom-key-5a7e21"  # a second WeCom robot, behind a gateway-side rate limit of 1/min
HELD_WAITING = 3


@dataclass(frozen=True)
class Robot:
    channel: str
    account: str
    resends_unknown: bool  # the vendor drops a repeated msgUuid, so the gateway resends UNKNOWN


WECOM = Robot("wecom_robot", "team-wecom", resends_unknown=False)
DINGTALK = Robot("dingtalk_robot", "ops-dingtalk", resends_unknown=True)


def environment() -> dict[str, str]:
    """The gateway's environment, with faulthandler on: a hung replica can be asked for its stacks."""
    return {**gateway_environment(), "PYTHONFAULTHANDLER": "1"}


def write_config(
    directory: Path,
    name: str,
    *,
    sandbox_url: str,
    port: int,
    redis_url: str,
    namespace: str,
    held_rate_limit: int,
) -> Path:
    """A replica's config: the shared Redis and namespace, a short lease and grace, the robots."""
    path = directory / f"{name}.yaml"
    path.write_text(
        textwrap.dedent(
            f"""
            server:
              listen: 127.0.0.1:{port}
              grace_period_seconds: {GRACE}
              drain_delay_seconds: 0
            auth: none
            token_store: {redis_url}
            key_namespace: {namespace}
            messages:
              owner_lease_seconds: {LEASE}
            accounts:
              team-wecom:
                channel: wecom_robot
                key: ${{TEST_WECOM_KEY}}
                base_url: {sandbox_url}
                timeout_seconds: 10
              ops-dingtalk:
                channel: dingtalk_robot
                access_token: ${{TEST_DINGTALK_TOKEN}}
                secret: ${{TEST_DINGTALK_SECRET}}
                base_url: {sandbox_url}
                timeout_seconds: 10
              held-wecom:
                channel: wecom_robot
                key: {HELD_KEY}
                base_url: {sandbox_url}
                rate_limit_per_minute: {held_rate_limit}
            """
        ),
        encoding="utf-8",
    )
    return path


@pytest.fixture
async def sandbox_server() -> AsyncIterator[SandboxServer]:
    state = SandboxState()
    seed_sandbox(state)
    state.add_wecom_robot("held-wecom", HELD_KEY)
    async with SandboxServer(state) as server:
        yield server


def request(robot: Robot | str, tag: str, n: int) -> pb.SendRequest:
    account = robot if isinstance(robot, str) else robot.account
    return pb.SendRequest(
        account=account,
        message=pb.Message(text=pb.Text(content=f"replica fault {tag} {n}")),
        idempotency_key=f"{tag}-{n}",
    )


def deliveries(state: SandboxState, channel: str, account: str, content: str) -> tuple[int, int]:
    """(real deliveries, repeats the vendor dropped by msgUuid) of the message with this content."""
    entries = [
        e for e in state.received(channel, account) if content in json.dumps(e.body, ensure_ascii=False)
    ]
    return sum(e.delivered for e in entries), sum(e.duplicate for e in entries)


async def send(
    stub: pb_grpc.NotificationServiceStub, message: pb.SendRequest, timeout: float | None = None
) -> pb.SendResponse:
    return await stub.Send(message, timeout=timeout)


async def outcome(call: asyncio.Task[pb.SendResponse]) -> str:
    """What a caller was told, in words: "OK SENT (duplicate)" or "UNAVAILABLE (UNKNOWN)"."""
    try:
        reply = await call
    except grpc.aio.AioRpcError as exc:
        found = rich_error(exc)
        info = found.error_info
        if info is None:
            return f"{found.code.name} ({found.message})"
        state = info.metadata.get("message_state", "").removeprefix("MESSAGE_STATE_")
        return f"{found.code.name} {info.reason} ({state})" if state else f"{found.code.name} {info.reason}"
    kind = "duplicate" if reply.duplicate else "new message"
    return f"OK {pb.MessageState.Name(reply.state).removeprefix('MESSAGE_STATE_')} ({kind})"


async def exited(replica: GatewayProcess, timeout: float) -> int | None:
    """The exit code; None if the process was still running after `timeout` s. It is then sent
    SIGABRT, so faulthandler writes every thread's stack to its log, and killed."""
    try:
        return await replica.wait(timeout=timeout)
    except TimeoutError:
        replica.send_signal(signal.SIGABRT)
        try:
            await replica.wait(timeout=5)
        except TimeoutError:
            replica.process.kill()
            await replica.process.wait()
        return None


async def get_message(stub: pb_grpc.NotificationServiceStub, message_id: str) -> pb.MessageRecord:
    return (await stub.GetMessage(pb.GetMessageRequest(message_id=message_id), timeout=5)).message


async def listed(stub: pb_grpc.NotificationServiceStub, account: str) -> list[pb.MessageRecord]:
    reply = await stub.ListMessages(pb.ListMessagesRequest(account=account, page_size=100), timeout=5)
    return list(reply.messages)


async def held_until_recorded(stub: pb_grpc.NotificationServiceStub) -> list[pb.MessageRecord]:
    """held-wecom's records once the waiting Sends have all been recorded (bounded: 5 s)."""
    for _ in range(100):
        records = await listed(stub, "held-wecom")
        if len(records) == HELD_WAITING + 1:
            return records
        await asyncio.sleep(0.05)
    raise AssertionError("the waiting Sends were never recorded")


def states(records: list[pb.MessageRecord]) -> list[str]:
    return sorted(pb.MessageState.Name(r.state).removeprefix("MESSAGE_STATE_") for r in records)


def resolved_by_lease(records: list[pb.MessageRecord]) -> int:
    """Records whose state was decided by another replica once the owner's lease ran out (their
    Send never wrote its own outcome): the reason the ledger gives is recorded in the history."""
    return sum(
        any(change.reason.startswith("the gateway replica handling it stopped") for change in r.history)
        for r in records
    )


def tally(told: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in told:
        counts[item] = counts.get(item, 0) + 1
    return counts


@pytest.mark.parametrize("robot", [WECOM, DINGTALK], ids=["wecom_robot", "dingtalk_robot"])
async def test_sigterm_with_sends_in_flight_leaves_them_unknown_and_a_second_replica_never_duplicates(
    robot: Robot, tmp_path: Path, sandbox_server: SandboxServer, redis_url: str, namespace: str
) -> None:
    state = sandbox_server.state
    config = {"sandbox_url": sandbox_server.url, "redis_url": redis_url, "namespace": namespace}
    port_a, port_b = free_port(), free_port()
    path_a = write_config(tmp_path, "a", port=port_a, held_rate_limit=0, **config)
    path_b = write_config(tmp_path, "b", port=port_b, held_rate_limit=0, **config)
    tag = f"sigterm-{robot.channel}"
    state.inject_fault(robot.channel, robot.account, delay=VENDOR_DELAY, times=IN_FLIGHT)

    async with gateway_process(path_a, port_a, environment()) as replica_a:
        calls = [
            asyncio.create_task(send(replica_a.stub, request(robot, tag, n), timeout=20))
            for n in range(IN_FLIGHT)
        ]
        await wait_until(
            lambda: len(state.received(robot.channel, robot.account)) == IN_FLIGHT, "every Send at the vendor"
        )
        stopped_at = time.monotonic()
        replica_a.send_signal(signal.SIGTERM)
        first_told = [await outcome(call) for call in calls]
        exit_code = await exited(replica_a, timeout=10)
        stopped_in = time.monotonic() - stopped_at
        log_a = await replica_a.log()
    assert exit_code is not None, f"replica A did not exit within 10 s of SIGTERM; its log:\n{log_a}"
    state.clear_faults()

    async with gateway_process(path_b, port_b, environment()) as replica_b:
        before_retry = await listed(replica_b.stub, robot.account)
        retries_started = time.monotonic()
        retries = [
            asyncio.create_task(send(replica_b.stub, request(robot, tag, n), timeout=10))
            for n in range(IN_FLIGHT)
        ]
        retry_told = [await outcome(call) for call in retries]
        retries_took = time.monotonic() - retries_started
        replies = [call.result() for call in retries if call.exception() is None]
        records = [await get_message(replica_b.stub, r.message_id) for r in replies]
    counts = [
        deliveries(state, robot.channel, robot.account, f"replica fault {tag} {n}") for n in range(IN_FLIGHT)
    ]

    figures = {
        "first callers told": tally(first_told),
        "exit code / seconds to exit": (exit_code, round(stopped_in, 2)),
        "records before the retries": tally(states(before_retry)),
        "retries told": tally(retry_told),
        "seconds the retries took": round(retries_took, 2),
        "GetMessage after the retries": tally(states(records)),
        "records resolved by the lease, not by A": resolved_by_lease(records),
        "deliveries per message": tally([str(d) for d, _ in counts]),
        "repeats dropped by the vendor": sum(dup for _, dup in counts),
    }
    print(f"\nSIGTERM ({robot.channel}): {figures}")

    assert exit_code == 0, log_a
    assert stopped_in < GRACE + 5, "the grace period bounds the stop"
    assert all(not told.startswith("OK") for told in first_told), figures
    # Each cancelled Send wrote its outcome before the store closed: SENDING became UNKNOWN (never
    # FAILED), so the other replica answers at once instead of waiting for A's lease to run out.
    assert resolved_by_lease(records) == 0 and states(before_retry) == ["UNKNOWN"] * IN_FLIGHT, (
        "records left SENDING by the stopped replica (their outcome was not written before it "
        f"closed the store): {figures}\nreplica A's log:\n{log_a}"
    )
    assert all(d == 1 for d, _ in counts), f"every message delivered exactly once: {figures}"
    assert len(replies) == IN_FLIGHT, figures
    assert all(r.duplicate for r in replies), figures
    if robot.resends_unknown:
        # Resent with the same msgUuid: the vendor drops the repeat, and says it has the message.
        assert retry_told == ["OK SENT (duplicate)"] * IN_FLIGHT, figures
        assert states(records) == ["SENT"] * IN_FLIGHT, figures
        assert sum(dup for _, dup in counts) == IN_FLIGHT, figures
    else:
        assert retry_told == ["OK UNKNOWN (duplicate)"] * IN_FLIGHT, figures
        assert states(records) == ["UNKNOWN"] * IN_FLIGHT, figures
        assert len(state.received(robot.channel, robot.account)) == IN_FLIGHT, "nothing was resent"


async def test_sigkill_with_sends_in_flight_another_replica_answers_the_retries_after_the_lease(
    tmp_path: Path, sandbox_server: SandboxServer, redis_url: str, namespace: str
) -> None:
    state = sandbox_server.state
    config = {"sandbox_url": sandbox_server.url, "redis_url": redis_url, "namespace": namespace}
    port_a, port_b = free_port(), free_port()
    # Replica A lets one message a minute through held-wecom, so the later ones wait ACCEPTED (no
    # vendor call yet) when it dies; replica B has no such limit, so their retries can go out.
    path_a = write_config(tmp_path, "a", port=port_a, held_rate_limit=1, **config)
    path_b = write_config(tmp_path, "b", port=port_b, held_rate_limit=0, **config)
    robot = WECOM
    tag, held_tag = "sigkill", "sigkill-held"

    async with (
        gateway_process(path_a, port_a, environment()) as replica_a,
        gateway_process(path_b, port_b, environment()) as replica_b,
    ):
        # held-wecom's one slot of the minute goes to a message delivered before the test starts.
        await replica_a.stub.Send(request("held-wecom", held_tag, 0), timeout=5)
        state.inject_fault(robot.channel, robot.account, delay=VENDOR_DELAY, times=IN_FLIGHT)
        in_flight = [
            asyncio.create_task(send(replica_a.stub, request(robot, tag, n), timeout=20))
            for n in range(IN_FLIGHT)
        ]
        waiting_requests = [request("held-wecom", held_tag, n) for n in range(1, HELD_WAITING + 1)]
        for waiting in waiting_requests:
            waiting.options.wait_for_rate_limit = True  # no deadline: it would wait the minute out
        waiting_calls = [asyncio.create_task(send(replica_a.stub, w)) for w in waiting_requests]
        await wait_until(
            lambda: len(state.received(robot.channel, robot.account)) == IN_FLIGHT, "every Send at the vendor"
        )
        on_a = await held_until_recorded(replica_b.stub)
        assert states(on_a) == ["ACCEPTED"] * HELD_WAITING + ["SENT"], "the held Sends wait ACCEPTED"

        replica_a.process.kill()
        killed_at = time.monotonic()
        await replica_a.wait(timeout=10)
        first_told = [await outcome(call) for call in in_flight + waiting_calls]
        state.clear_faults()

        # Within A's lease: the key is still owned; a retry with a short deadline is told to come back.
        all_requests = [request(robot, tag, n) for n in range(IN_FLIGHT)] + waiting_requests
        early = [asyncio.create_task(send(replica_b.stub, r, timeout=0.5)) for r in all_requests]
        early_told = [await outcome(call) for call in early]
        early_done = time.monotonic() - killed_at

        # A retry with time to wait is answered once the lease has run out.
        retries = [asyncio.create_task(send(replica_b.stub, r, timeout=10)) for r in all_requests]
        retry_told = [await outcome(call) for call in retries]
        answered_after = time.monotonic() - killed_at
        replies = [call.result() for call in retries if call.exception() is None]
        records = [await get_message(replica_b.stub, r.message_id) for r in replies]
        held_records = await listed(replica_b.stub, "held-wecom")

    counts = [
        deliveries(state, robot.channel, robot.account, f"replica fault {tag} {n}") for n in range(IN_FLIGHT)
    ]
    held_counts = [
        deliveries(state, "wecom_robot", "held-wecom", f"replica fault {held_tag} {n}")
        for n in range(HELD_WAITING + 1)
    ]
    in_flight_retries, held_retries = retry_told[:IN_FLIGHT], retry_told[IN_FLIGHT:]
    figures = {
        "first callers told": tally(first_told),
        "retries within the lease told": tally(early_told),
        "seconds from kill to the early answers": round(early_done, 2),
        "retries told (in flight at the kill)": tally(in_flight_retries),
        "retries told (waiting ACCEPTED at the kill)": tally(held_retries),
        "seconds from kill to the last answer": round(answered_after, 2),
        "GetMessage after the retries": tally(states(records)),
        "records resolved by the lease": resolved_by_lease(records),
        "held-wecom records": tally(states(held_records)),
        "deliveries per in-flight message": tally([str(d) for d, _ in counts]),
        "deliveries per held message": tally([str(d) for d, _ in held_counts]),
    }
    print(f"\nSIGKILL: {figures}")

    assert all(not told.startswith("OK") for told in first_told), figures
    assert early_told == ["ABORTED IDEMPOTENCY_KEY_IN_PROGRESS"] * len(all_requests), figures
    # Those in flight at the kill had written their request: UNKNOWN, not resent, not FAILED.
    assert in_flight_retries == ["OK UNKNOWN (duplicate)"] * IN_FLIGHT, figures
    assert answered_after >= LEASE - 1.0, "the retries waited for A's lease to run out"
    # Those that had not called the vendor yet were FAILED by the lease: the retry delivers them.
    assert held_retries == ["OK SENT (new message)"] * HELD_WAITING, figures
    assert states(records) == ["SENT"] * HELD_WAITING + ["UNKNOWN"] * IN_FLIGHT, figures
    assert states(held_records) == ["FAILED"] * HELD_WAITING + ["SENT"] * (HELD_WAITING + 1), figures
    assert all(d == 1 for d, _ in counts), f"every in-flight message delivered exactly once: {figures}"
    assert all(d == 1 for d, _ in held_counts), f"every held message delivered exactly once: {figures}"
    assert len(state.received(robot.channel, robot.account)) == IN_FLIGHT, "nothing was resent"
