"""Every channel under every vendor fault: what the caller is told, what a retry is told, what the
vendor delivered and what the record says. The table below is the specification.

Each cell runs a real in-process gateway with Redis records (its own key namespace) in front of a
fresh sandbox, with a short account timeout. It sends with an idempotency key while the fault is
injected (for every attempt, unless the fault says "once"), then clears the fault and retries the
same request with the same key, then counts the sandbox's real deliveries of that message (its
content is the cell's own) and reads the record with GetMessage.

Invariants checked in every cell, whatever the table says:
- the vendor delivered the message at most once;
- a caller told SENT means the vendor delivered it exactly once;
- an ambiguous outcome is never recorded FAILED (which would free the key for a second delivery).

The observed figures are written as a markdown table to ``.pytest_cache/fault_matrix.md``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest

from gateway.sandbox import SandboxServer, SandboxState
from gateway.sandbox.recording import CALL_MSGTYPES
from generated.notify.v1 import notification_service_pb2 as pb
from tests.conftest import Gateway, configured, gateway_config, running_gateway
from tests.rich_status import rich_error

ACCOUNT_TIMEOUT = 0.5  # seconds: the account's vendor timeout in every cell
VENDOR_DELAY = 1.0  # seconds the sandbox holds its answer in the "delay" cells (past the timeout)
MAX_ATTEMPTS = 3  # the accounts' default max_attempts
CALL_TIMEOUT = 10.0  # the caller's deadline: long enough for every attempt and backoff


# -- the channels and the faults --------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    channel: str
    account: str
    send_path: str | None  # app channels: faults aim at the send path only, never at gettoken
    recipients: pb.Recipients | None = None


TARGETS = {
    "wecom_robot": Target("wecom_robot", "team-wecom", None),
    "wecom_app": Target(
        "wecom_app", "corp-app", "/cgi-bin/message/send", pb.Recipients(department_ids=["1"])
    ),
    "dingtalk_robot": Target("dingtalk_robot", "ops-dingtalk", None),
    "dingtalk_work": Target(
        "dingtalk_work",
        "ding-app",
        "/topapi/message/corpconversation/asyncsend_v2",
        pb.Recipients(user_ids=["user01"]),
    ),
}


@dataclass(frozen=True)
class Fault:
    name: str
    fault: dict[str, Any]  # keyword arguments of SandboxState.inject_fault
    times: int = MAX_ATTEMPTS  # how many vendor requests it spoils
    ambiguous: bool = False  # whether the gateway cannot tell if the vendor acted on the request


DELAY = Fault("delay past timeout", {"delay": VENDOR_DELAY}, ambiguous=True)
DROP_BEFORE = Fault("drop before", {"drop": "before"}, ambiguous=True)
DROP_AFTER = Fault("drop after", {"drop": "after"}, ambiguous=True)
HTTP_500 = Fault("HTTP 500", {"http_status": 500}, ambiguous=True)
HTTP_502 = Fault("HTTP 502", {"http_status": 502}, ambiguous=True)
HTTP_503 = Fault("HTTP 503", {"http_status": 503})
BUSY = Fault("errcode busy -1", {"errcode": -1, "errmsg": "system busy"})
TOKEN_TWICE = Fault("token invalid twice", {"errcode": 40014, "errmsg": "invalid access_token"}, times=2)
# The same faults on the first vendor request only: the retries inside one Send see none.
DELAY_ONCE = Fault("delay past timeout (once)", DELAY.fault, times=1, ambiguous=True)
DROP_BEFORE_ONCE = Fault("drop before (once)", DROP_BEFORE.fault, times=1, ambiguous=True)
DROP_AFTER_ONCE = Fault("drop after (once)", DROP_AFTER.fault, times=1, ambiguous=True)
HTTP_500_ONCE = Fault("HTTP 500 (once)", HTTP_500.fault, times=1, ambiguous=True)
HTTP_502_ONCE = Fault("HTTP 502 (once)", HTTP_502.fault, times=1, ambiguous=True)
HTTP_503_ONCE = Fault("HTTP 503 (once)", HTTP_503.fault, times=1)
BUSY_ONCE = Fault("errcode busy -1 (once)", BUSY.fault, times=1)
TOKEN_ONCE = Fault("token invalid once", TOKEN_TWICE.fault, times=1)


# -- what each caller is told -----------------------------------------------------------------

SENT = pb.MESSAGE_STATE_SENT
FAILED = pb.MESSAGE_STATE_FAILED
UNKNOWN = pb.MESSAGE_STATE_UNKNOWN
UNAVAILABLE = grpc.StatusCode.UNAVAILABLE
FAILED_PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION
OK = grpc.StatusCode.OK


@dataclass(frozen=True)
class Told:
    """One Send's answer: OK with a state and duplicate flag, or an error whose ErrorInfo names the state."""

    code: grpc.StatusCode
    state: pb.MessageState.ValueType
    duplicate: bool = False

    def __str__(self) -> str:
        state = pb.MessageState.Name(self.state).removeprefix("MESSAGE_STATE_")
        if self.code == OK:
            return f"OK {state}" + (" (duplicate)" if self.duplicate else " (new message)")
        return f"{self.code.name} ({state})"


def error(code: grpc.StatusCode, state: pb.MessageState.ValueType) -> Told:
    return Told(code, state)


def ok(state: pb.MessageState.ValueType, *, duplicate: bool) -> Told:
    return Told(OK, state, duplicate)


AMBIGUOUS_FIRST = error(UNAVAILABLE, UNKNOWN)  # "may have been delivered"
REPLAYED_UNKNOWN = ok(UNKNOWN, duplicate=True)  # the retry sends nothing and says so
RESENT_SENT = ok(SENT, duplicate=True)  # DingTalk robot: resent with the same msgUuid
NOT_PROCESSED_FIRST = error(UNAVAILABLE, FAILED)  # nothing reached the vendor: the key is free
NEW_SENT = ok(SENT, duplicate=False)  # the retry delivered it as a new message
TOKEN_FIRST = error(FAILED_PRECONDITION, FAILED)


@dataclass(frozen=True)
class Cell:
    channel: str
    fault: Fault
    first: Told  # what the first Send is told
    retry: Told  # what the retry with the same key is told, the fault cleared
    deliveries: int  # real deliveries of the message at the sandbox (duplicates dropped by msgUuid excluded)

    @property
    def id(self) -> str:
        return f"{self.channel}-{self.fault.name}".replace(" ", "_")


def cell(channel: str, fault: Fault, first: Told, retry: Told, deliveries: int) -> Cell:
    return Cell(channel, fault, first, retry, deliveries)


# The specification. Robots have no access token, so "token invalid" has no robot cells.
# A vendor "delay" and a "drop after" deliver before the gateway gives up; "drop before" and the bare
# HTTP 500/502 deliver nothing, but the gateway cannot tell (the request was written), so it must
# not guess: UNKNOWN, and the retry sends nothing -- except on the DingTalk robot, whose msgUuid
# makes a resend harmless, so the retry resends the same message and ends SENT with one delivery.
CELLS = [
    # -- WeCom group robot: no vendor de-duplication ------------------------------------------
    cell("wecom_robot", DELAY, AMBIGUOUS_FIRST, REPLAYED_UNKNOWN, 1),
    cell("wecom_robot", DROP_BEFORE, AMBIGUOUS_FIRST, REPLAYED_UNKNOWN, 0),
    cell("wecom_robot", DROP_AFTER, AMBIGUOUS_FIRST, REPLAYED_UNKNOWN, 1),
    cell("wecom_robot", HTTP_500, AMBIGUOUS_FIRST, REPLAYED_UNKNOWN, 0),
    cell("wecom_robot", HTTP_502, AMBIGUOUS_FIRST, REPLAYED_UNKNOWN, 0),
    cell("wecom_robot", HTTP_503, NOT_PROCESSED_FIRST, NEW_SENT, 1),
    cell("wecom_robot", BUSY, NOT_PROCESSED_FIRST, NEW_SENT, 1),
    # -- WeCom application --------------------------------------------------------------------
    cell("wecom_app", DELAY, AMBIGUOUS_FIRST, REPLAYED_UNKNOWN, 1),
    cell("wecom_app", DROP_BEFORE, AMBIGUOUS_FIRST, REPLAYED_UNKNOWN, 0),
    cell("wecom_app", DROP_AFTER, AMBIGUOUS_FIRST, REPLAYED_UNKNOWN, 1),
    cell("wecom_app", HTTP_500, AMBIGUOUS_FIRST, REPLAYED_UNKNOWN, 0),
    cell("wecom_app", HTTP_502, AMBIGUOUS_FIRST, REPLAYED_UNKNOWN, 0),
    cell("wecom_app", HTTP_503, NOT_PROCESSED_FIRST, NEW_SENT, 1),
    cell("wecom_app", BUSY, NOT_PROCESSED_FIRST, NEW_SENT, 1),
    cell("wecom_app", TOKEN_TWICE, TOKEN_FIRST, NEW_SENT, 1),
    # -- DingTalk group robot: msgUuid = message_id, the vendor drops a repeat -----------------
    cell("dingtalk_robot", DELAY, AMBIGUOUS_FIRST, RESENT_SENT, 1),
    cell("dingtalk_robot", DROP_BEFORE, AMBIGUOUS_FIRST, RESENT_SENT, 1),
    cell("dingtalk_robot", DROP_AFTER, AMBIGUOUS_FIRST, RESENT_SENT, 1),
    cell("dingtalk_robot", HTTP_500, AMBIGUOUS_FIRST, RESENT_SENT, 1),
    cell("dingtalk_robot", HTTP_502, AMBIGUOUS_FIRST, RESENT_SENT, 1),
    cell("dingtalk_robot", HTTP_503, NOT_PROCESSED_FIRST, NEW_SENT, 1),
    cell("dingtalk_robot", BUSY, NOT_PROCESSED_FIRST, NEW_SENT, 1),
    # -- DingTalk work notification -----------------------------------------------------------
    cell("dingtalk_work", DELAY, AMBIGUOUS_FIRST, REPLAYED_UNKNOWN, 1),
    cell("dingtalk_work", DROP_BEFORE, AMBIGUOUS_FIRST, REPLAYED_UNKNOWN, 0),
    cell("dingtalk_work", DROP_AFTER, AMBIGUOUS_FIRST, REPLAYED_UNKNOWN, 1),
    cell("dingtalk_work", HTTP_500, AMBIGUOUS_FIRST, REPLAYED_UNKNOWN, 0),
    cell("dingtalk_work", HTTP_502, AMBIGUOUS_FIRST, REPLAYED_UNKNOWN, 0),
    cell("dingtalk_work", HTTP_503, NOT_PROCESSED_FIRST, NEW_SENT, 1),
    cell("dingtalk_work", BUSY, NOT_PROCESSED_FIRST, NEW_SENT, 1),
    cell("dingtalk_work", TOKEN_TWICE, TOKEN_FIRST, NEW_SENT, 1),
    # -- the fault on the first vendor request only ---------------------------------------------
    # The DingTalk robot retries an ambiguous attempt inside the Send (same msgUuid): SENT, once.
    cell("dingtalk_robot", DELAY_ONCE, ok(SENT, duplicate=False), ok(SENT, duplicate=True), 1),
    cell("dingtalk_robot", DROP_BEFORE_ONCE, ok(SENT, duplicate=False), ok(SENT, duplicate=True), 1),
    cell("dingtalk_robot", DROP_AFTER_ONCE, ok(SENT, duplicate=False), ok(SENT, duplicate=True), 1),
    cell("dingtalk_robot", HTTP_500_ONCE, ok(SENT, duplicate=False), ok(SENT, duplicate=True), 1),
    cell("dingtalk_robot", HTTP_502_ONCE, ok(SENT, duplicate=False), ok(SENT, duplicate=True), 1),
    # Not processed: every channel retries inside the Send; the token is refreshed once.
    *(
        cell(channel, fault, ok(SENT, duplicate=False), ok(SENT, duplicate=True), 1)
        for channel in TARGETS
        for fault in (HTTP_503_ONCE, BUSY_ONCE)
    ),
    cell("wecom_app", TOKEN_ONCE, ok(SENT, duplicate=False), ok(SENT, duplicate=True), 1),
    cell("dingtalk_work", TOKEN_ONCE, ok(SENT, duplicate=False), ok(SENT, duplicate=True), 1),
]

# -- the observed matrix ----------------------------------------------------------------------


@dataclass
class Observed:
    first: str = ""
    retry: str = ""
    deliveries: int = -1
    vendor_requests: int = -1  # message requests that reached the sandbox, delivered or not
    record_after_first: str = ""
    record_at_end: str = ""  # the first message's record; and the retry's, when it is another message
    attempts: list[str] = field(default_factory=list)
    verdict: str = "not run"


MATRIX: dict[str, tuple[Cell, Observed]] = {}


@pytest.fixture(scope="session")
def fault_matrix(request: pytest.FixtureRequest) -> Iterator[dict[str, tuple[Cell, Observed]]]:
    """The observed figures of the cells run in this session, written out as a markdown table at its end."""
    yield MATRIX
    if not MATRIX:
        return
    lines = [
        "| channel | fault | first call told | retry (same key) told | deliveries | vendor requests "
        "| record after first call | first call's attempts | record at end | result |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for cell_, seen in MATRIX.values():
        lines.append(
            f"| {cell_.channel} | {cell_.fault.name} | {seen.first} | {seen.retry} | {seen.deliveries} "
            f"| {seen.vendor_requests} | {seen.record_after_first} | {', '.join(seen.attempts)} "
            f"| {seen.record_at_end} | {seen.verdict} |"
        )
    text = "\n".join(lines) + "\n"
    path = Path(request.config.rootpath) / ".pytest_cache" / "fault_matrix.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    print(f"\nfault matrix ({path}):\n{text}")


# -- running one cell -------------------------------------------------------------------------


def send_request(target: Target, marker: str) -> pb.SendRequest:
    request = pb.SendRequest(
        account=target.account,
        message=pb.Message(text=pb.Text(content=f"fault matrix {marker}")),
        idempotency_key=f"key-{marker}",
    )
    if target.recipients is not None:
        request.recipients.CopyFrom(target.recipients)
    return request


async def send(gateway: Gateway, request: pb.SendRequest) -> tuple[Told, str]:
    """What the caller was told, and the message_id (from the answer or the error's ErrorInfo)."""
    try:
        response = await gateway.stub.Send(request, timeout=CALL_TIMEOUT)
    except grpc.aio.AioRpcError as exc:
        found = rich_error(exc)
        metadata = found.error_info.metadata if found.error_info is not None else {}
        state = pb.MessageState.Value(metadata.get("message_state", "MESSAGE_STATE_UNSPECIFIED"))
        return Told(found.code, state), metadata.get("message_id", "")
    return Told(OK, response.state, response.duplicate), response.message_id


async def record_of(gateway: Gateway, message_id: str) -> pb.MessageRecord | None:
    if not message_id:
        return None
    reply = await gateway.stub.GetMessage(pb.GetMessageRequest(message_id=message_id), timeout=5)
    return reply.message


def state_name(record: pb.MessageRecord | None) -> str:
    if record is None:
        return "(no message_id)"
    return pb.MessageState.Name(record.state).removeprefix("MESSAGE_STATE_")


def outcomes(record: pb.MessageRecord | None) -> list[str]:
    """The record's vendor attempts, e.g. ["REFUSED 503", "REFUSED -1", "AMBIGUOUS"]."""
    if record is None:
        return []
    found = []
    for attempt in record.attempts:
        outcome = pb.DeliveryAttempt.Outcome.Name(attempt.outcome).removeprefix("OUTCOME_")
        if attempt.vendor_errcode:
            outcome += f" {attempt.vendor_errcode}"
        elif attempt.http_status not in (0, 200):
            outcome += f" {attempt.http_status}"
        found.append(outcome)
    return found


def message_requests(state: SandboxState, target: Target, marker: str) -> list[Any]:
    """The message requests carrying this cell's content (never gettoken or delivery-report calls)."""
    return [
        entry
        for entry in state.received(target.channel, target.account)
        if entry.msgtype not in CALL_MSGTYPES and marker in json.dumps(entry.body, ensure_ascii=False)
    ]


def told_sent(told: Told) -> bool:
    return told.code == OK and told.state in (SENT, pb.MESSAGE_STATE_DELIVERED)


def sent_is_delivered(state: pb.MessageState.ValueType, channel: str) -> pb.MessageState.ValueType:
    """DingTalk work notifications move on from SENT to DELIVERED once the gateway polls the vendor."""
    return SENT if channel == "dingtalk_work" and state == pb.MESSAGE_STATE_DELIVERED else state


def as_told(told: Told, channel: str) -> Told:
    return Told(told.code, sent_is_delivered(told.state, channel), told.duplicate)


@pytest.fixture
async def matrix_gateway(sandbox: SandboxServer, redis_url: str, namespace: str) -> AsyncIterator[Gateway]:
    config = configured(
        gateway_config(sandbox.url, timeout=ACCOUNT_TIMEOUT), token_store=redis_url, key_namespace=namespace
    )
    async with running_gateway(config, sandbox.state) as gateway:
        yield gateway


@pytest.mark.parametrize("spec", CELLS, ids=[c.id for c in CELLS])
async def test_fault_cell(
    spec: Cell, matrix_gateway: Gateway, fault_matrix: dict[str, tuple[Cell, Observed]]
) -> None:
    gateway, target = matrix_gateway, TARGETS[spec.channel]
    seen = Observed()
    fault_matrix[spec.id] = (spec, seen)
    marker = spec.id
    request = send_request(target, marker)

    gateway.sandbox.inject_fault(
        target.channel, target.account, times=spec.fault.times, path=target.send_path, **spec.fault.fault
    )
    first, first_id = await send(gateway, request)
    seen.first = str(first)
    after_first = await record_of(gateway, first_id)
    seen.record_after_first = state_name(after_first)

    gateway.sandbox.clear_faults()
    retry, retry_id = await send(gateway, request)
    seen.retry = str(retry)

    requests = message_requests(gateway.sandbox, target, marker)
    seen.vendor_requests = len(requests)
    seen.deliveries = sum(1 for entry in requests if entry.delivered)  # excludes msgUuid duplicates
    first_record = await record_of(gateway, first_id)
    seen.record_at_end = state_name(first_record)
    if retry_id and retry_id != first_id:
        seen.record_at_end += f"; retry's message {state_name(await record_of(gateway, retry_id))}"
    seen.attempts = outcomes(after_first)
    seen.verdict = "FAIL"

    # The invariants, whatever the cell.
    assert seen.deliveries <= 1, f"delivered {seen.deliveries} times: {seen}"
    if told_sent(first) or told_sent(retry):
        assert seen.deliveries == 1, f"a caller was told SENT but the vendor delivered nothing: {seen}"
    if spec.fault.ambiguous:
        assert after_first is not None and after_first.state != FAILED, (
            f"an ambiguous outcome was recorded FAILED: {seen}"
        )
    assert first_id, "the caller must learn the message_id, from the answer or the ErrorInfo"
    if target.channel == "dingtalk_robot":
        # msgUuid is the message_id: the first message's, then (after FAILED) the retry's new message's.
        assert {entry.body.get("msgUuid") for entry in requests} == {first_id, retry_id}, seen

    # The specification.
    assert as_told(first, spec.channel) == spec.first, f"first call: {seen}"
    assert after_first is not None, f"record: {seen}"
    assert sent_is_delivered(after_first.state, spec.channel) == spec.first.state, f"record: {seen}"
    assert as_told(retry, spec.channel) == spec.retry, f"retry: {seen}"
    assert seen.deliveries == spec.deliveries, f"deliveries: {seen}"
    if spec.retry.duplicate:
        assert retry_id == first_id, "a replay answers the same message"
    else:
        assert retry_id != first_id, "after FAILED the retry delivers as a new message"
    assert first_record is not None
    expected_end = spec.retry.state if retry_id == first_id else spec.first.state
    assert sent_is_delivered(first_record.state, spec.channel) == expected_end, f"record: {seen}"
    if spec.fault.times == MAX_ATTEMPTS:
        # Every vendor attempt of the first Send met the fault, and its record says so.
        assert after_first.attempts, f"attempts: {seen}"
        if spec.fault.ambiguous:
            assert all(a.outcome == pb.DeliveryAttempt.OUTCOME_AMBIGUOUS for a in after_first.attempts), seen
        else:
            assert all(a.outcome == pb.DeliveryAttempt.OUTCOME_REFUSED for a in after_first.attempts), seen
    seen.verdict = "ok"
