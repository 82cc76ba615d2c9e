"""What each vendor call made to deliver a message came to, and what the call loop does next.

The question that matters: could the vendor have acted on an attempt? Refused and never-sent
attempts are safe to repeat and let a message end FAILED; ambiguous ones are repeated only where
the vendor drops repeats (DingTalk robot's msgUuid, or an account's ``resend_unknown: true``).

The adapters are the real ones; only the transport is scripted: it answers with the replies it is
given, or raises the transport errors it is given, and marks the attempt written as the real
transport does once a request is handed to a connection.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

import pytest
from opentelemetry.trace import Span

from gateway.channels.attempts import (
    ACCEPTED,
    AMBIGUOUS,
    IN_FLIGHT,
    NOT_SENT,
    REFUSED,
    Attempt,
    AttemptLog,
)
from gateway.channels.base import ChannelAdapter
from gateway.channels.dingtalk_robot import DingTalkRobot
from gateway.channels.transport import (
    FilePart,
    TransportError,
    TransportTimeout,
    VendorReply,
)
from gateway.channels.wecom_robot import WeComRobot
from gateway.errors import DeadlineExceeded, VendorError, VendorOutcome, VendorUnavailable
from generated.notify.v1 import notification_service_pb2 as pb

# -- the attempt record --------------------------------------------------------------------------


def test_an_attempt_that_failed_in_transit_after_writing_is_ambiguous() -> None:
    attempt = Attempt(written=True)
    attempt.failed_in_transit("the vendor closed the connection without an answer")
    assert attempt.outcome == AMBIGUOUS
    assert attempt.detail == "the vendor closed the connection without an answer"


def test_an_attempt_that_failed_in_transit_before_writing_was_not_sent() -> None:
    attempt = Attempt()
    attempt.failed_in_transit("cannot connect: Connection refused")
    assert attempt.outcome == NOT_SENT


def test_after_a_cancellation_only_attempts_still_waiting_are_settled() -> None:
    log = AttemptLog()
    refused = log.begin()
    refused.settle(REFUSED, "HTTP 503", http_status=503)
    waiting_for_answer = log.begin()
    waiting_for_answer.written = True
    not_yet_written = log.begin()

    log.settle_in_flight("cancelled while waiting for the vendor")

    assert (refused.outcome, waiting_for_answer.outcome, not_yet_written.outcome) == (
        REFUSED,
        AMBIGUOUS,
        NOT_SENT,
    )
    assert refused.detail == "HTTP 503"
    assert waiting_for_answer.detail == "cancelled while waiting for the vendor"


def test_a_log_is_ambiguous_when_an_attempt_may_have_reached_the_vendor() -> None:
    log = AttemptLog()
    log.begin().settle(REFUSED, "HTTP 429", http_status=429)
    log.begin().failed_in_transit("no answer")  # never written
    assert not log.ambiguous

    in_flight = log.begin()
    in_flight.written = True  # written, no answer yet
    assert in_flight.outcome == IN_FLIGHT
    assert log.ambiguous

    in_flight.settle(AMBIGUOUS, "HTTP 504", http_status=504)
    assert log.ambiguous


def test_a_log_is_accepted_when_any_attempt_was_accepted() -> None:
    log = AttemptLog()
    log.begin().settle(REFUSED, "errcode -1", errcode=-1)
    assert not log.accepted
    log.begin().settle(ACCEPTED, "accepted", http_status=200)
    assert log.accepted
    assert log.last_detail == "accepted"


def test_an_attempt_becomes_the_delivery_attempt_shown_on_the_record() -> None:
    attempt = Attempt(started_at=1_700_000_000.0)
    attempt.settle(REFUSED, "errcode 93000", http_status=200, errcode=93000, errmsg="invalid webhook url")

    shown = attempt.to_proto()

    assert shown.start_time.seconds == 1_700_000_000
    assert shown.outcome == pb.DeliveryAttempt.OUTCOME_REFUSED
    assert (shown.http_status, shown.vendor_errcode) == (200, 93000)
    assert (shown.vendor_errmsg, shown.detail) == ("invalid webhook url", "errcode 93000")
    assert shown.duration_ms >= 0


# -- the call loop over a scripted vendor -----------------------------------------------------


class ScriptedVendor:
    """A VendorTransport answering from a script: a VendorReply is an answer to a written request,
    a TransportError is raised (after marking the attempt written when ``sent``)."""

    def __init__(self, *script: VendorReply | TransportError) -> None:
        self.script = list(script)
        self.requests = 0

    async def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        file: FilePart | None = None,
        timeout: float,
        attempt: Attempt | None = None,
        span: Span | None = None,
    ) -> VendorReply:
        self.requests += 1
        if not self.script:
            raise AssertionError(f"request {self.requests} was not expected")
        step = self.script.pop(0)
        if isinstance(step, TransportError):
            if step.sent and attempt is not None:
                attempt.written = True
            raise step
        if attempt is not None:
            attempt.written = True
        return step

    async def close(self) -> None:
        pass


class HangingVendor:
    """Never answers; ``write`` says whether it hands the request to a connection first."""

    def __init__(self, *, write: bool) -> None:
        self.write = write
        self.reached = asyncio.Event()

    async def request(
        self, method: str, url: str, *, attempt: Attempt | None = None, **_: Any
    ) -> VendorReply:
        if self.write and attempt is not None:
            attempt.written = True
        self.reached.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def close(self) -> None:
        pass


def accepted() -> VendorReply:
    return VendorReply(200, {"errcode": 0, "errmsg": "ok"}, '{"errcode":0,"errmsg":"ok"}')


def http(status: int) -> VendorReply:
    return VendorReply(status, None, f"<html>HTTP {status}</html>")


def not_json() -> VendorReply:
    return VendorReply(200, None, "<html>upstream said hello</html>")


def errcode(code: int, errmsg: str = "error") -> VendorReply:
    return VendorReply(200, {"errcode": code, "errmsg": errmsg}, f'{{"errcode":{code}}}')


def wecom_robot(vendor: Any, **settings: Any) -> WeComRobot:
    raw = {"channel": "wecom_robot", "key": "wecom-key", "base_url": "http://vendor.test", **settings}
    return WeComRobot("team-wecom", WeComRobot.Settings.model_validate(raw), vendor)


def dingtalk_robot(vendor: Any, **settings: Any) -> DingTalkRobot:
    raw = {"channel": "dingtalk_robot", "access_token": "ding-token", "base_url": "http://vendor.test"}
    return DingTalkRobot("ops-dingtalk", DingTalkRobot.Settings.model_validate({**raw, **settings}), vendor)


ADAPTERS = {"wecom_robot": wecom_robot, "dingtalk_robot": dingtalk_robot}


async def deliver(adapter: ChannelAdapter, log: AttemptLog, deadline: float | None = None) -> None:
    request = pb.SendRequest(account=adapter.account_id, message=pb.Message(text=pb.Text(content="hi")))
    outgoing = adapter.prepare(request, "01HZXTESTMESSAGE0000000000")
    await adapter.deliver(outgoing, deadline=deadline, attempts=log)


def outcomes(log: AttemptLog) -> list[int]:
    return [a.outcome for a in log.attempts]


@pytest.mark.parametrize("status", [503, 429])
async def test_an_answer_saying_the_request_was_not_processed_is_refused_and_retried(status: int) -> None:
    vendor = ScriptedVendor(http(status), accepted())
    log = AttemptLog()

    await deliver(wecom_robot(vendor), log)

    assert vendor.requests == 2
    assert outcomes(log) == [REFUSED, ACCEPTED]
    assert log.attempts[0].http_status == status
    assert log.accepted and not log.ambiguous


@pytest.mark.parametrize("status", [503, 429])
async def test_not_processed_on_every_attempt_fails_with_nothing_ambiguous(status: int) -> None:
    vendor = ScriptedVendor(http(status), http(status), http(status))
    log = AttemptLog()

    with pytest.raises(VendorUnavailable) as failed:
        await deliver(wecom_robot(vendor, max_attempts=3), log)

    assert failed.value.reason == "VENDOR_HTTP_ERROR"
    assert failed.value.metadata["http_status"] == str(status)
    assert outcomes(log) == [REFUSED, REFUSED, REFUSED]
    assert not log.ambiguous  # the message may end FAILED: nothing can have been delivered


AMBIGUOUS_ANSWERS = [
    pytest.param(http(500), id="HTTP-500"),
    pytest.param(http(502), id="HTTP-502"),
    pytest.param(http(504), id="HTTP-504"),
    pytest.param(not_json(), id="HTTP-200-not-JSON"),
]


@pytest.mark.parametrize("answer", AMBIGUOUS_ANSWERS)
async def test_an_answer_a_proxy_may_have_sent_after_delivery_is_ambiguous_and_not_resent_on_wecom_robot(
    answer: VendorReply,
) -> None:
    vendor = ScriptedVendor(answer, accepted())
    log = AttemptLog()

    with pytest.raises(VendorUnavailable) as failed:
        await deliver(wecom_robot(vendor), log)

    assert vendor.requests == 1
    assert failed.value.reason == "VENDOR_HTTP_ERROR"
    assert outcomes(log) == [AMBIGUOUS]
    assert log.attempts[0].http_status == answer.status
    assert log.ambiguous


@pytest.mark.parametrize("answer", AMBIGUOUS_ANSWERS)
async def test_an_ambiguous_answer_is_resent_on_dingtalk_robot_whose_vendor_drops_repeats(
    answer: VendorReply,
) -> None:
    vendor = ScriptedVendor(answer, accepted())
    log = AttemptLog()

    await deliver(dingtalk_robot(vendor), log)

    assert vendor.requests == 2
    assert outcomes(log) == [AMBIGUOUS, ACCEPTED]
    assert log.accepted and log.ambiguous


async def test_an_account_with_resend_unknown_true_resends_after_an_ambiguous_answer() -> None:
    vendor = ScriptedVendor(http(502), accepted())
    log = AttemptLog()

    await deliver(wecom_robot(vendor, resend_unknown=True), log)

    assert vendor.requests == 2
    assert outcomes(log) == [AMBIGUOUS, ACCEPTED]


@pytest.mark.parametrize("answer", AMBIGUOUS_ANSWERS)
async def test_a_dingtalk_robot_account_with_resend_unknown_false_does_not_resend(
    answer: VendorReply,
) -> None:
    vendor = ScriptedVendor(answer, accepted())
    log = AttemptLog()

    with pytest.raises(VendorUnavailable):
        await deliver(dingtalk_robot(vendor, resend_unknown=False), log)

    assert vendor.requests == 1
    assert outcomes(log) == [AMBIGUOUS]


@pytest.mark.parametrize("make", ADAPTERS.values(), ids=ADAPTERS.keys())
async def test_a_connection_never_made_was_not_sent_and_is_retried_on_every_channel(make: Any) -> None:
    vendor = ScriptedVendor(TransportError("cannot connect: Connection refused", sent=False), accepted())
    log = AttemptLog()

    await deliver(make(vendor, resend_unknown=False), log)

    assert vendor.requests == 2
    assert outcomes(log) == [NOT_SENT, ACCEPTED]
    assert "(request not sent)" in log.attempts[0].detail
    assert not log.ambiguous


async def test_no_connection_on_any_attempt_fails_unreachable_with_nothing_ambiguous() -> None:
    refused = [TransportError("cannot connect: Connection refused", sent=False) for _ in range(2)]
    log = AttemptLog()

    with pytest.raises(VendorUnavailable) as failed:
        await deliver(wecom_robot(ScriptedVendor(*refused), max_attempts=2), log)

    assert failed.value.reason == "VENDOR_UNREACHABLE"
    assert outcomes(log) == [NOT_SENT, NOT_SENT]
    assert not log.ambiguous


async def test_a_timeout_after_writing_is_ambiguous_and_not_resent_on_wecom_robot() -> None:
    vendor = ScriptedVendor(TransportTimeout("no answer within 5.0s", sent=True), accepted())
    log = AttemptLog()

    with pytest.raises(VendorUnavailable) as failed:
        await deliver(wecom_robot(vendor), log)

    assert failed.value.reason == "VENDOR_TIMEOUT"
    assert vendor.requests == 1
    assert outcomes(log) == [AMBIGUOUS]
    assert log.attempts[0].detail == "no answer within 5.0s"
    assert log.ambiguous


async def test_a_timeout_after_writing_is_resent_on_dingtalk_robot() -> None:
    vendor = ScriptedVendor(TransportTimeout("no answer within 5.0s", sent=True), accepted())
    log = AttemptLog()

    await deliver(dingtalk_robot(vendor), log)

    assert outcomes(log) == [AMBIGUOUS, ACCEPTED]


async def test_a_timeout_before_anything_was_written_was_not_sent_and_is_retried() -> None:
    vendor = ScriptedVendor(TransportTimeout("no answer within 5.0s", sent=False), accepted())
    log = AttemptLog()

    await deliver(wecom_robot(vendor), log)

    assert outcomes(log) == [NOT_SENT, ACCEPTED]


async def test_errcode_minus_one_means_busy_and_is_retried() -> None:
    vendor = ScriptedVendor(errcode(-1, "system busy"), accepted())
    log = AttemptLog()

    await deliver(wecom_robot(vendor), log)

    assert outcomes(log) == [REFUSED, ACCEPTED]
    assert (log.attempts[0].errcode, log.attempts[0].errmsg) == (-1, "system busy")


async def test_busy_on_every_attempt_raises_the_vendor_error_with_nothing_ambiguous() -> None:
    vendor = ScriptedVendor(errcode(-1, "system busy"), errcode(-1, "system busy"))
    log = AttemptLog()

    with pytest.raises(VendorError) as failed:
        await deliver(wecom_robot(vendor, max_attempts=2), log)

    assert failed.value.outcome is VendorOutcome.RETRY
    assert outcomes(log) == [REFUSED, REFUSED]
    assert not log.ambiguous


@pytest.mark.parametrize(
    ("code", "outcome"),
    [
        (93000, VendorOutcome.CREDENTIAL_REVOKED),
        (45009, VendorOutcome.RATE_LIMITED),
        (40008, VendorOutcome.INVALID_REQUEST),
        (123456, VendorOutcome.UNKNOWN),  # not in the table: never success, never retried
    ],
)
async def test_any_other_errcode_is_refused_at_once_and_raised(code: int, outcome: VendorOutcome) -> None:
    vendor = ScriptedVendor(errcode(code, "nope"), accepted())
    log = AttemptLog()

    with pytest.raises(VendorError) as failed:
        await deliver(wecom_robot(vendor), log)

    assert vendor.requests == 1
    assert (failed.value.outcome, failed.value.errcode, failed.value.errmsg) == (outcome, code, "nope")
    assert outcomes(log) == [REFUSED]
    assert (log.attempts[0].errcode, log.attempts[0].errmsg) == (code, "nope")


async def test_a_deadline_leaving_less_than_min_attempt_seconds_sends_nothing() -> None:
    vendor = ScriptedVendor(accepted())
    log = AttemptLog()
    adapter = wecom_robot(vendor, min_attempt_seconds=0.5)

    with pytest.raises(DeadlineExceeded) as failed:
        await deliver(adapter, log, deadline=time.monotonic() + 0.1)

    assert failed.value.reason == "DEADLINE_TOO_SHORT"
    assert "nothing was sent" in failed.value.message
    assert vendor.requests == 0
    assert log.attempts == []


@pytest.mark.parametrize(("written", "outcome"), [(True, AMBIGUOUS), (False, NOT_SENT)])
async def test_a_call_cancelled_while_waiting_for_the_vendor_settles_its_attempt(
    written: bool, outcome: int
) -> None:
    vendor = HangingVendor(write=written)
    log = AttemptLog()
    call = asyncio.create_task(deliver(wecom_robot(vendor), log))
    await vendor.reached.wait()

    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call

    assert outcomes(log) == [outcome]
    assert log.attempts[0].detail == "cancelled while waiting for the vendor"
    assert log.ambiguous is written


# A front end (an API gateway, a WAF) often answers 4xx with a JSON body of its own that has no
# errcode. docs/vendors.md: 429 is "not processed" and retried; any other 4xx "not processed; not
# retried". Neither may be taken as the vendor accepting the message.


async def test_http_429_with_a_json_body_is_refused_and_retried_not_accepted() -> None:
    throttled = VendorReply(429, {"message": "Too Many Requests"}, '{"message":"Too Many Requests"}')
    vendor = ScriptedVendor(throttled, accepted())
    log = AttemptLog()

    await deliver(wecom_robot(vendor), log)

    assert outcomes(log) == [REFUSED, ACCEPTED]
    assert vendor.requests == 2


async def test_an_http_4xx_with_a_json_body_is_refused_not_accepted() -> None:
    not_found = VendorReply(404, {"message": "no route"}, '{"message":"no route"}')
    vendor = ScriptedVendor(not_found)
    log = AttemptLog()

    with pytest.raises(VendorUnavailable):
        await deliver(wecom_robot(vendor), log)

    assert outcomes(log) == [REFUSED]
    assert not log.accepted
