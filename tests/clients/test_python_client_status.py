"""The Python client's message records (GetMessage, ListMessages, WatchMessage) and what its retries
are worth when a Send's outcome is ambiguous, against a real gateway and sandbox.

The gateway here has two tenants, so that a record's privacy to its tenant is tested for real. The
retry-safety tests give the robot accounts a short vendor timeout and make the sandbox answer later
than that: the sandbox acts on each request on arrival and only holds the answer back, which is the
case where the gateway cannot know whether a message was delivered. The sync client's calls run in
worker threads while the gateway keeps serving on the test's loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from notify_client import (
    NO_RETRY,
    AsyncNotifyClient,
    DeadlineExceededError,
    InvalidArgumentError,
    NotFoundError,
    NotifyClient,
    RetryEvent,
    RetryPolicy,
    UnavailableError,
    pb,
)
from notify_client._common import list_messages_request, message_state

from gateway.config import Config, TenantSettings
from gateway.sandbox import SandboxServer
from gateway.tenants import hash_key
from generated.notify.v1 import notification_service_pb2 as gateway_pb
from generated.notify.v1 import notification_service_pb2_grpc as gateway_pb_grpc
from tests.conftest import Gateway, gateway_config, running_gateway

ALPHA_KEY = "status-tests-alpha-key-91d2"
BETA_KEY = "status-tests-beta-key-3c7e"
DING_USER = pb.Recipients(user_ids=["user01"])  # in the sandbox's DingTalk app directory

# Vendor calls give up after ACCOUNT_TIMEOUT; injected delays answer FAULT_DELAY later than that,
# long after the gateway has stopped waiting, yet the sandbox has already delivered.
ACCOUNT_TIMEOUT = 0.5
FAULT_DELAY = ACCOUNT_TIMEOUT + 1.0


def two_tenants(config: Config) -> Config:
    """Tenants alpha and beta, each allowed every account, each with its own key."""
    tenants = [
        TenantSettings(name="alpha", api_keys=[hash_key(ALPHA_KEY)], accounts=["*"]),
        TenantSettings(name="beta", api_keys=[hash_key(BETA_KEY)], accounts=["*"]),
    ]
    return config.model_copy(update={"auth": "api_keys", "tenants": tenants})


class Recorder:
    """Collects the client's RetryEvents (RetryPolicy.on_retry)."""

    def __init__(self) -> None:
        self.events: list[RetryEvent] = []

    def __call__(self, event: RetryEvent) -> None:
        self.events.append(event)


def fast_retry(recorder: Recorder | None = None) -> RetryPolicy:
    """Retries that wait milliseconds, never a vendor's 60 s."""
    return RetryPolicy(
        max_attempts=3, initial_backoff=0.01, max_backoff=0.05, max_total=5.0, on_retry=recorder
    )


@pytest.fixture
def retries() -> Recorder:
    return Recorder()


@pytest.fixture
async def tenants_gateway(sandbox: SandboxServer) -> AsyncIterator[Gateway]:
    async with running_gateway(two_tenants(gateway_config(sandbox.url)), sandbox.state) as gateway:
        yield gateway


@pytest.fixture
async def client(tenants_gateway: Gateway, retries: Recorder) -> AsyncIterator[AsyncNotifyClient]:
    """Tenant alpha's client."""
    address = tenants_gateway.server.address
    async with AsyncNotifyClient(address, ALPHA_KEY, insecure=True, retry=fast_retry(retries)) as client:
        yield client


@pytest.fixture
async def beta(tenants_gateway: Gateway) -> AsyncIterator[AsyncNotifyClient]:
    """Tenant beta's client: the same gateway, another tenant."""
    address = tenants_gateway.server.address
    async with AsyncNotifyClient(address, BETA_KEY, insecure=True, retry=fast_retry()) as client:
        yield client


@pytest.fixture
async def short_timeout_gateway(sandbox: SandboxServer) -> AsyncIterator[Gateway]:
    """Every account gives up on the vendor after ACCOUNT_TIMEOUT seconds."""
    config = two_tenants(gateway_config(sandbox.url, timeout=ACCOUNT_TIMEOUT))
    async with running_gateway(config, sandbox.state) as gateway:
        yield gateway


def unique_label() -> dict[str, str]:
    """A label no other message carries, so a listing sees only this test's messages."""
    return {"run": uuid.uuid4().hex[:12]}


# -- the package itself, without a gateway ---------------------------------------------------------


def test_states_are_taken_as_enum_values_or_names() -> None:
    assert message_state("sent") == pb.MESSAGE_STATE_SENT
    assert message_state("DELIVERED") == pb.MESSAGE_STATE_DELIVERED
    assert message_state("MESSAGE_STATE_UNKNOWN") == pb.MESSAGE_STATE_UNKNOWN
    assert message_state(pb.MESSAGE_STATE_EXPIRED) == pb.MESSAGE_STATE_EXPIRED
    for wrong in ("sending-ish", "unspecified", pb.MESSAGE_STATE_UNSPECIFIED, 99):
        with pytest.raises(ValueError, match="not one of"):
            message_state(wrong)


def test_a_list_filter_becomes_the_request_the_gateway_expects() -> None:
    start = datetime(2026, 1, 2, 11, 0, tzinfo=UTC) + timedelta(hours=1)
    request = list_messages_request(
        account="team-wecom",
        states="sent",  # one state where a collection was meant: taken as that one state
        labels={"team": "payments"},
        start_time=start,
        end_time=None,
        page_size=2,
        page_token=None,
    )
    assert list(request.states) == [pb.MESSAGE_STATE_SENT]
    assert request.start_time.ToDatetime(tzinfo=UTC) == start and not request.HasField("end_time")
    assert (request.account, dict(request.labels), request.page_size) == (
        "team-wecom",
        {"team": "payments"},
        2,
    )


def test_a_naive_datetime_is_refused_rather_than_guessed_at() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        list_messages_request(
            account=None,
            states=(),
            labels=None,
            start_time=datetime(2026, 1, 2, 12, 0),  # naive: the point of the test
            end_time=None,
            page_size=None,
            page_token=None,
        )


def test_an_ambiguous_send_error_exposes_the_message_and_its_state() -> None:
    error = UnavailableError(
        "no answer from the vendor",
        reason="VENDOR_TIMEOUT",
        metadata={"message_id": "01JABCDEFGHJKMNPQRSTVWXYZ0", "message_state": "MESSAGE_STATE_UNKNOWN"},
    )
    assert error.message_id == "01JABCDEFGHJKMNPQRSTVWXYZ0"
    assert error.message_state == pb.MESSAGE_STATE_UNKNOWN
    plain = UnavailableError("gateway down")
    assert plain.message_id is None and plain.message_state is None
    newer = UnavailableError("x", metadata={"message_state": "MESSAGE_STATE_FROM_THE_FUTURE"})
    assert newer.message_state is None, "a state this client does not know is not guessed at"


# -- reads retried and watches resumed, against a scripted server ----------------------------------


class Scripted(gateway_pb_grpc.NotificationServiceServicer):
    """Answers GetMessage and WatchMessage from a script, to break calls where a test wants."""

    def __init__(self) -> None:
        self.get_calls = 0
        self.watch_calls = 0

    @staticmethod
    def record(
        state: gateway_pb.MessageState.ValueType, *, final: bool = False, seconds: int = 0
    ) -> gateway_pb.MessageRecord:
        record = gateway_pb.MessageRecord(message_id="m-1", state=state, final=final)
        record.update_time.FromSeconds(1_800_000_000 + seconds)
        return record

    async def GetMessage(
        self, request: gateway_pb.GetMessageRequest, context: grpc.aio.ServicerContext
    ) -> gateway_pb.GetMessageResponse:
        self.get_calls += 1
        if self.get_calls == 1:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "restarting")
        return gateway_pb.GetMessageResponse(message=self.record(gateway_pb.MESSAGE_STATE_SENT))

    async def WatchMessage(
        self, request: gateway_pb.WatchMessageRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[gateway_pb.WatchMessageResponse]:
        self.watch_calls += 1
        sent = self.record(gateway_pb.MESSAGE_STATE_SENT)
        yield gateway_pb.WatchMessageResponse(message=sent)
        if self.watch_calls == 1:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "gateway shutting down")
        delivered = self.record(gateway_pb.MESSAGE_STATE_DELIVERED, final=True, seconds=5)
        yield gateway_pb.WatchMessageResponse(message=delivered)


@contextlib.asynccontextmanager
async def scripted_server(servicer: Scripted) -> AsyncIterator[str]:
    server = grpc.aio.server()
    gateway_pb_grpc.add_NotificationServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(0)


async def test_a_read_is_retried_when_the_gateway_is_unavailable(retries: Recorder) -> None:
    servicer = Scripted()
    async with (
        scripted_server(servicer) as address,
        AsyncNotifyClient(address, insecure=True, retry=fast_retry(retries)) as client,
    ):
        record = await client.get_message("m-1")
    assert record.state == pb.MESSAGE_STATE_SENT and servicer.get_calls == 2
    [event] = retries.events
    assert event.method == "GetMessage" and isinstance(event.error, UnavailableError)


async def test_a_broken_watch_is_resumed_without_repeating_a_record(retries: Recorder) -> None:
    """The reopened stream starts with the record as it stands, which the caller already has."""
    servicer = Scripted()
    async with (
        scripted_server(servicer) as address,
        AsyncNotifyClient(address, insecure=True, retry=fast_retry(retries)) as client,
    ):
        states = [record.state async for record in client.watch_message("m-1", timeout=5)]
    assert states == [pb.MESSAGE_STATE_SENT, pb.MESSAGE_STATE_DELIVERED]
    assert servicer.watch_calls == 2
    [event] = retries.events
    assert event.method == "WatchMessage" and isinstance(event.error, UnavailableError)


class Stalled(Scripted):
    """A message that stays SENDING: the stream sends its record and then nothing."""

    async def WatchMessage(
        self, request: gateway_pb.WatchMessageRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[gateway_pb.WatchMessageResponse]:
        self.watch_calls += 1
        yield gateway_pb.WatchMessageResponse(message=self.record(gateway_pb.MESSAGE_STATE_SENDING))
        await asyncio.sleep(30)


async def test_a_watch_past_its_deadline_raises_deadline_exceeded(retries: Recorder) -> None:
    servicer = Stalled()
    seen: list[int] = []
    async with (
        scripted_server(servicer) as address,
        AsyncNotifyClient(address, insecure=True, retry=fast_retry(retries)) as client,
    ):
        with pytest.raises(DeadlineExceededError) as caught:
            async for record in client.watch_message("m-1", timeout=0.3):
                seen.append(record.state)
    assert seen == [pb.MESSAGE_STATE_SENDING], "the last record yielded is where the message stood"
    assert "MESSAGE_STATE_SENDING" in str(caught.value)
    assert servicer.watch_calls == 1 and retries.events == [], "a deadline is not retried"


async def test_the_sync_client_resumes_a_broken_watch_too() -> None:
    servicer = Scripted()
    async with scripted_server(servicer) as address:

        def watch() -> list[int]:
            with NotifyClient(address, insecure=True, retry=fast_retry()) as client:
                return [record.state for record in client.watch_message("m-1", timeout=5)]

        states = await asyncio.to_thread(watch)
    assert states == [pb.MESSAGE_STATE_SENT, pb.MESSAGE_STATE_DELIVERED]


# -- GetMessage -----------------------------------------------------------------------------------


async def test_get_message_after_a_send_returns_its_record(client: AsyncNotifyClient) -> None:
    key = f"get-{uuid.uuid4().hex}"
    labels = {"team": "payments", **unique_label()}
    sent = await client.send_text("team-wecom", "deploy finished", labels=labels, idempotency_key=key)

    record = await client.get_message(sent.message_id)

    assert record.message_id == sent.message_id and record.tenant == "alpha"
    assert (record.account, record.channel, record.kind) == ("team-wecom", "wecom_robot", "text")
    assert record.state == pb.MESSAGE_STATE_SENT
    assert dict(record.labels) == labels and record.idempotency_key == key
    [attempt] = record.attempts
    assert attempt.outcome == pb.DeliveryAttempt.OUTCOME_ACCEPTED and attempt.http_status == 200
    assert record.history[-1].state == pb.MESSAGE_STATE_SENT
    assert record.create_time.seconds > 0


async def test_another_tenants_message_is_not_found(
    client: AsyncNotifyClient, beta: AsyncNotifyClient
) -> None:
    """Beta cannot tell alpha's message from one that does not exist, by any of the three reads."""
    labels = unique_label()
    sent = await client.send_text("team-wecom", "alpha only", labels=labels)

    with pytest.raises(NotFoundError):
        await beta.get_message(sent.message_id)
    with pytest.raises(NotFoundError):
        async for _ in beta.watch_message(sent.message_id, timeout=5):
            pass
    assert list((await beta.list_messages(labels=labels)).messages) == []
    assert (await client.get_message(sent.message_id)).message_id == sent.message_id


async def test_an_unknown_message_id_is_not_found(client: AsyncNotifyClient, retries: Recorder) -> None:
    with pytest.raises(NotFoundError):
        await client.get_message("01J0000000000000000000000Z")
    with pytest.raises(NotFoundError):
        async for _ in client.watch_message("01J0000000000000000000000Z", timeout=5):
            pass
    assert retries.events == [], "NOT_FOUND is an answer, not a reason to retry"


async def test_an_empty_message_id_is_invalid(client: AsyncNotifyClient) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        await client.get_message("")
    assert "message_id" in caught.value.violations


# -- ListMessages ---------------------------------------------------------------------------------


async def test_list_messages_pages_newest_first_with_filters(client: AsyncNotifyClient) -> None:
    labels = unique_label()
    sent = [await client.send_text("team-wecom", f"page test {i}", labels=labels) for i in range(3)]
    newest_first = [response.message_id for response in reversed(sent)]

    first = await client.list_messages(labels=labels, page_size=2)
    assert [m.message_id for m in first.messages] == newest_first[:2] and first.next_page_token
    second = await client.list_messages(labels=labels, page_size=2, page_token=first.next_page_token)
    assert [m.message_id for m in second.messages] == newest_first[2:] and not second.next_page_token

    everything = [m.message_id async for m in client.iter_messages(labels=labels, page_size=2)]
    assert everything == newest_first
    by_state = await client.list_messages(labels=labels, states=["sent"], account="team-wecom")
    assert [m.message_id for m in by_state.messages] == newest_first
    assert list((await client.list_messages(labels=labels, states=[pb.MESSAGE_STATE_FAILED])).messages) == []
    assert list((await client.list_messages(labels=labels, account="ops-dingtalk")).messages) == []
    window = await client.list_messages(labels=labels, start_time=datetime.now(UTC) + timedelta(hours=1))
    assert list(window.messages) == [], "nothing was created in the future"


async def test_a_bad_page_token_or_page_size_names_the_field(client: AsyncNotifyClient) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        await client.list_messages(page_token="not-a-token")
    assert "page_token" in caught.value.violations
    with pytest.raises(InvalidArgumentError) as caught:
        await client.list_messages(page_size=-1)
    assert "page_size" in caught.value.violations


# -- WatchMessage ---------------------------------------------------------------------------------


async def test_watch_follows_a_dingtalk_work_notification_until_delivered(
    client: AsyncNotifyClient,
) -> None:
    sent = await client.send_text("ding-app", "please read", recipients=DING_USER)
    assert sent.state == pb.MESSAGE_STATE_SENT

    records = [record async for record in client.watch_message(sent.message_id, timeout=60)]

    assert records[0].state == pb.MESSAGE_STATE_SENT and not records[0].final
    last = records[-1]
    assert last.final and last.state == pb.MESSAGE_STATE_DELIVERED
    assert all(not record.final for record in records[:-1]), "the stream ends at the final record"
    report = last.delivery_report
    assert "user01" in [*report.read_user_ids, *report.unread_user_ids]
    assert (await client.get_message(sent.message_id)).state == pb.MESSAGE_STATE_DELIVERED


async def test_watch_of_a_message_already_final_yields_it_once(client: AsyncNotifyClient) -> None:
    sent = await client.send_text("team-wecom", "robots report no delivery")
    records = [record async for record in client.watch_message(sent.message_id, timeout=10)]
    [record] = records
    assert record.final and record.state == pb.MESSAGE_STATE_SENT


async def test_a_watch_left_early_can_be_closed(client: AsyncNotifyClient) -> None:
    sent = await client.send_text("ding-app", "closed early", recipients=DING_USER)
    async with contextlib.aclosing(client.watch_message(sent.message_id, timeout=60)) as records:
        async for record in records:
            assert record.message_id == sent.message_id
            break
    # The call is cancelled, not left running: the client still works and the record is there.
    assert (await client.get_message(sent.message_id)).message_id == sent.message_id


# -- retry safety under injected timeouts ---------------------------------------------------------

K = 8  # messages sent
N = 3  # of which the vendor answers this many too late


Send = Callable[[str, str], Awaitable[pb.SendResponse]]


@contextlib.asynccontextmanager
async def sender(gateway: Gateway, kind: str, recorder: Recorder) -> AsyncIterator[Send]:
    """Sends one text through tenant alpha's async client, or its sync client in a worker thread."""
    address = gateway.server.address
    policy = fast_retry(recorder)
    if kind == "async":
        async with AsyncNotifyClient(address, ALPHA_KEY, insecure=True, retry=policy) as client:

            async def send_async(account: str, content: str) -> pb.SendResponse:
                return await client.send_text(account, content)

            yield send_async
        return
    with NotifyClient(address, ALPHA_KEY, insecure=True, retry=policy) as sync_client:

        async def send_sync(account: str, content: str) -> pb.SendResponse:
            return await asyncio.to_thread(sync_client.send_text, account, content)

        yield send_sync


@pytest.mark.parametrize("kind", ["async", "sync"])
async def test_retries_never_deliver_twice_when_wecom_robot_answers_too_late(
    short_timeout_gateway: Gateway, retries: Recorder, kind: str
) -> None:
    """WeCom's robot does not de-duplicate, so an ambiguous Send must never be sent again.

    The first N requests reach the robot and are delivered, but their answers come after the
    gateway stopped waiting: the gateway answers UNAVAILABLE (message UNKNOWN), the client retries
    under the same key, and the retry answers with the record's state instead of sending again.
    """
    gateway = short_timeout_gateway
    gateway.sandbox.inject_fault("wecom_robot", "team-wecom", delay=FAULT_DELAY, times=N)
    contents = [f"wecom {kind} retry-safety {i} {uuid.uuid4().hex[:8]}" for i in range(K)]
    async with sender(gateway, kind, retries) as send:
        responses = await asyncio.gather(*(send("team-wecom", content) for content in contents))
    delivered = Counter(e.body["text"]["content"] for e in gateway.sandbox.delivered("wecom_robot"))
    records = {r.message_id: await get_record(gateway, r.message_id) for r in responses}

    assert max(delivered.values()) == 1, f"a message was delivered twice: {delivered}"
    assert len(gateway.sandbox.received("wecom_robot", "team-wecom")) == K, "nothing was sent again"
    states = Counter(pb.MessageState.Name(r.state) for r in responses)
    assert states == {"MESSAGE_STATE_SENT": K - N, "MESSAGE_STATE_UNKNOWN": N}
    for content, response in zip(contents, responses, strict=True):
        record = records[response.message_id]
        if response.state == pb.MESSAGE_STATE_SENT:
            assert delivered[content] == 1 and not response.duplicate
            assert record.state == pb.MESSAGE_STATE_SENT
        else:
            assert response.duplicate, "the UNKNOWN state came from the retry's replay"
            assert record.state == pb.MESSAGE_STATE_UNKNOWN
            [attempt] = record.attempts
            assert attempt.outcome == pb.DeliveryAttempt.OUTCOME_AMBIGUOUS
    assert len(retries.events) == N
    unknown_ids = {r.message_id for r in responses if r.state == pb.MESSAGE_STATE_UNKNOWN}
    for event in retries.events:
        assert isinstance(event.error, UnavailableError) and event.method == "Send"
        assert event.error.message_state == pb.MESSAGE_STATE_UNKNOWN
        assert event.error.message_id in unknown_ids


async def test_a_5xx_from_the_wecom_robot_is_retried_without_sending_again(
    client: AsyncNotifyClient, tenants_gateway: Gateway, retries: Recorder
) -> None:
    """A 502 may come from a proxy after WeCom acted on the request, and WeCom's robot does not
    de-duplicate: the retry learns that the message is UNKNOWN instead of sending it a second time."""
    tenants_gateway.sandbox.inject_fault("wecom_robot", "team-wecom", http_status=502)

    response = await client.send_text("team-wecom", "maybe delivered")

    assert response.state == pb.MESSAGE_STATE_UNKNOWN and response.duplicate
    [event] = retries.events
    assert event.error.message_id == response.message_id
    assert event.error.message_state == pb.MESSAGE_STATE_UNKNOWN
    assert len(tenants_gateway.sandbox.received("wecom_robot", "team-wecom")) == 1


async def get_record(gateway: Gateway, message_id: str) -> pb.MessageRecord:
    async with AsyncNotifyClient(gateway.server.address, ALPHA_KEY, insecure=True) as reader:
        return await reader.get_message(message_id)


async def test_an_ambiguous_send_without_retries_says_which_message_and_that_it_is_unknown(
    short_timeout_gateway: Gateway,
) -> None:
    """With retries off the caller gets the error; its message_id and state tell what to do next."""
    gateway = short_timeout_gateway
    gateway.sandbox.inject_fault("wecom_robot", "team-wecom", delay=FAULT_DELAY)
    address = gateway.server.address
    async with AsyncNotifyClient(address, ALPHA_KEY, insecure=True, retry=NO_RETRY) as client:
        with pytest.raises(UnavailableError) as caught:
            await client.send_text("team-wecom", "did it arrive?")
        error = caught.value
        assert error.message_state == pb.MESSAGE_STATE_UNKNOWN and error.message_id
        assert (await client.get_message(error.message_id)).state == pb.MESSAGE_STATE_UNKNOWN

        again = await client.send_text("team-wecom", "did it arrive?", idempotency_key=error.idempotency_key)

    assert again.duplicate and again.message_id == error.message_id
    assert again.state == pb.MESSAGE_STATE_UNKNOWN
    assert len(gateway.sandbox.received("wecom_robot", "team-wecom")) == 1
    assert len(gateway.sandbox.delivered("wecom_robot", "team-wecom")) == 1


async def test_dingtalk_robot_retries_resend_and_the_vendor_drops_the_repeat(
    short_timeout_gateway: Gateway, retries: Recorder
) -> None:
    """The DingTalk robot de-duplicates by msgUuid, so there the gateway does send again."""
    gateway = short_timeout_gateway
    gateway.sandbox.inject_fault("dingtalk_robot", "plain-dingtalk", delay=FAULT_DELAY, times=N)
    contents = [f"dingtalk retry-safety {i} {uuid.uuid4().hex[:8]}" for i in range(K)]
    async with sender(gateway, "async", retries) as send:
        responses = await asyncio.gather(*(send("plain-dingtalk", content) for content in contents))

    delivered = Counter(e.body["text"]["content"] for e in gateway.sandbox.delivered("dingtalk_robot"))
    assert max(delivered.values()) == 1, f"a message was delivered twice: {delivered}"
    for content, response in zip(contents, responses, strict=True):
        assert response.state in (pb.MESSAGE_STATE_SENT, pb.MESSAGE_STATE_UNKNOWN)
        if response.state == pb.MESSAGE_STATE_SENT:
            assert delivered[content] == 1
    assert all(r.state == pb.MESSAGE_STATE_SENT for r in responses), "a resend settles the outcome"


# -- the sync client ------------------------------------------------------------------------------


async def test_sync_client_reads_records_like_the_async_one(tenants_gateway: Gateway) -> None:
    labels = unique_label()

    def use_it() -> tuple[
        list[str], pb.MessageRecord, pb.ListMessagesResponse, list[str], list[int], Exception
    ]:
        address = tenants_gateway.server.address
        with NotifyClient(address, ALPHA_KEY, insecure=True, retry=fast_retry()) as client:
            sent = [client.send_text("team-wecom", f"sync {i}", labels=labels) for i in range(3)]
            ids = [response.message_id for response in sent]
            record = client.get_message(sent[0].message_id)
            page = client.list_messages(labels=labels, states=["sent"], page_size=2)
            listed = [m.message_id for m in client.iter_messages(labels=labels, page_size=2)]
            with contextlib.closing(client.watch_message(sent[0].message_id, timeout=10)) as watch:
                watched = [r.state for r in watch]
            try:
                client.get_message("01J0000000000000000000000Z")
            except NotFoundError as error:
                return ids, record, page, listed, watched, error
        raise AssertionError("an unknown message_id must be NOT_FOUND")

    ids, record, page, listed, watched, error = await asyncio.to_thread(use_it)

    assert record.state == pb.MESSAGE_STATE_SENT and dict(record.labels) == labels
    assert len(page.messages) == 2 and page.next_page_token
    assert listed == ids[::-1], "newest first"
    assert watched == [pb.MESSAGE_STATE_SENT]
    assert isinstance(error, NotFoundError)
