"""Access tokens as the vendor sees them: fetched once per account however many Sends and replicas
ask, replaced once when the vendor expires or revokes them, never fetched in a storm when the
secret is wrong, and served from the hot cache while Redis is down (docs/vendors.md,
Access tokens)."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import grpc
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from gateway.sandbox import SandboxServer
from gateway.sandbox.recording import CALL_MSGTYPES
from generated.notify.v1 import notification_service_pb2 as pb
from generated.notify.v1 import notification_service_pb2_grpc as pb_grpc
from tests.conftest import (
    DINGTALK_AGENT_ID,
    DINGTALK_APP_KEY,
    DINGTALK_APP_SECRET,
    SECRETS,
    WECOM_AGENT_ID,
    WECOM_CORP_ID,
    WECOM_CORP_SECRET,
    Gateway,
    running_gateway,
    wait_until,
)
from tests.e2e.app_support import (
    APPS,
    DINGTALK_APP,
    WECOM_APP,
    App,
    app_config,
    app_config_text,
    refused,
    sends,
    text_request,
    upload,
)
from tests.gateway_process import free_port, gateway_process
from tests.media_samples import PDF
from tests.redis_server import RedisProcess

APP_IDS = [app.channel for app in APPS]


@pytest.fixture(params=["memory", "redis"])
def token_store(request: pytest.FixtureRequest, redis_url: str) -> str:
    return "memory://" if request.param == "memory" else redis_url


@pytest.fixture
async def app_gateway(sandbox: SandboxServer, token_store: str, namespace: str) -> AsyncIterator[Gateway]:
    config = app_config(sandbox.url, token_store=token_store, namespace=namespace)
    async with running_gateway(config, sandbox.state) as gateway:
        yield gateway


async def send_many(
    stub: pb_grpc.NotificationServiceStub, app: App, count: int, start: int = 0
) -> list[pb.SendResponse]:
    return list(
        await asyncio.gather(*(stub.Send(text_request(app, start + n), timeout=20) for n in range(count)))
    )


# -- single flight ----------------------------------------------------------------------------------


@pytest.mark.parametrize("app", APPS, ids=APP_IDS)
async def test_200_concurrent_sends_on_a_cold_account_cause_one_gettoken(
    app_gateway: Gateway, app: App
) -> None:
    replies = await send_many(app_gateway.stub, app, 200)

    assert len(replies) == 200
    assert len({reply.message_id for reply in replies}) == 200
    assert all(reply.vendor_message_id for reply in replies)
    assert app_gateway.sandbox.gettoken_calls(app.account) == 1
    assert len(app_gateway.sandbox.delivered(app.channel, app.account)) == 200


@pytest.mark.parametrize("app", APPS, ids=APP_IDS)
async def test_two_gateway_processes_sharing_redis_fetch_one_token_between_them(
    sandbox: SandboxServer, redis_url: str, namespace: str, tmp_path: Path, app: App
) -> None:
    state = sandbox.state
    port = free_port()
    config_file = tmp_path / "gateway.yaml"
    config_file.write_text(
        app_config_text(
            sandbox.url,
            token_store=redis_url,
            namespace=namespace,
            listen=f"127.0.0.1:{port}",
            secrets_from_env=True,
        ),
        encoding="utf-8",
    )
    config = app_config(sandbox.url, token_store=redis_url, namespace=namespace)
    async with gateway_process(config_file, port) as remote:
        async with running_gateway(config, state) as local:
            # The first gettoken answers slowly, so the other replica asks while it is under way.
            state.inject_fault(app.channel, app.account, delay=0.5, path=app.gettoken_path)
            here, there = await asyncio.gather(
                send_many(local.stub, app, 100), send_many(remote.stub, app, 100, start=100)
            )
        remote.send_signal(signal.SIGTERM)
        assert await remote.wait(timeout=10) == 0
    log = await remote.log()

    assert len(here) == len(there) == 100
    assert state.gettoken_calls(app.account) == 1
    assert len(state.delivered(app.channel, app.account)) == 200
    for secret in SECRETS:
        assert secret not in log


# -- the vendor expires or revokes a token ----------------------------------------------------------


@pytest.mark.parametrize("app", APPS, ids=APP_IDS)
async def test_a_token_expiring_mid_run_is_replaced_once_and_no_send_is_lost(
    app_gateway: Gateway, app: App
) -> None:
    state = app_gateway.sandbox
    await app_gateway.stub.Send(text_request(app), timeout=10)  # the token is now hot
    assert state.gettoken_calls(app.account) == 1

    # Ten Sends reach the vendor with the old token and are held there, in flight...
    state.inject_fault(app.channel, app.account, delay=0.5, times=10, path=app.send_path)
    in_flight = asyncio.ensure_future(send_many(app_gateway.stub, app, 10, start=1))
    await wait_until(
        lambda: len(sends(state, app)) == 11, "ten Sends to be in flight at the vendor", attempts=500
    )
    # ...when the vendor expires the token; ten more Sends arrive with it while those are held.
    state.expire_tokens(app.account)
    during = await send_many(app_gateway.stub, app, 10, start=11)
    held = await in_flight
    after = await send_many(app_gateway.stub, app, 10, start=21)

    assert len(held) == len(during) == len(after) == 10
    assert state.gettoken_calls(app.account) == 2
    assert len(state.delivered(app.channel, app.account)) == 31
    assert {r.errcode for r in sends(state, app) if not r.delivered} == {42001}


REVOCATIONS = [
    pytest.param(WECOM_APP, False, 40014, id="wecom_app-40014"),
    pytest.param(DINGTALK_APP, False, 88, id="dingtalk_work-88-sub_code-40014"),
    pytest.param(DINGTALK_APP, True, 40014, id="dingtalk_work-legacy-40014"),
]


@pytest.mark.parametrize(("app", "legacy", "errcode"), REVOCATIONS)
async def test_a_token_revoked_while_cached_is_refetched_once_and_the_send_retried(
    app_gateway: Gateway, app: App, legacy: bool, errcode: int
) -> None:
    state = app_gateway.sandbox
    await app_gateway.stub.Send(text_request(app), timeout=10)
    state.revoke_token(app.account, legacy=legacy)

    replies = await send_many(app_gateway.stub, app, 20, start=1)

    assert len(replies) == 20
    assert state.gettoken_calls(app.account) == 2
    assert len(state.delivered(app.channel, app.account)) == 21
    rejected = [r for r in sends(state, app) if not r.delivered]
    assert rejected, "the vendor must have refused the revoked token at least once"
    assert {r.errcode for r in rejected} == {errcode}


@pytest.mark.parametrize("app", APPS, ids=APP_IDS)
async def test_a_token_rejected_again_after_a_refetch_is_an_error_not_a_loop(
    app_gateway: Gateway, app: App
) -> None:
    state = app_gateway.sandbox
    state.inject_fault(app.channel, app.account, errcode=40014, times=2, path=app.send_path)

    error = await refused(app_gateway.stub.Send(text_request(app), timeout=10))

    assert error.code == grpc.StatusCode.FAILED_PRECONDITION
    assert error.error_info is not None
    assert error.error_info.metadata["vendor_errcode"] == "40014"
    assert error.error_info.metadata["account"] == app.account
    assert len(sends(state, app)) == 2, "one try and one retry with a fresh token, no more"
    assert state.gettoken_calls(app.account) == 2
    # The vendor has stopped refusing: the next Send goes through.
    await app_gateway.stub.Send(text_request(app, 1), timeout=10)
    assert len(state.delivered(app.channel, app.account)) == 1


# -- wrong credentials ------------------------------------------------------------------------------

WRONG_SECRET = "not-the-right-secret-8d1c"
WRONG_CREDENTIALS = [
    pytest.param(WECOM_APP, "40001", id="wecom_app-wrong-corp-secret"),
    pytest.param(DINGTALK_APP, "40096", id="dingtalk_work-wrong-app-secret"),
]


def wrong_secret_account(app: App, sandbox_url: str) -> str:
    """An account "bad-credentials" with the app's real id or key and a wrong secret."""
    if app is WECOM_APP:
        credentials = f"channel: wecom_app\n  corp_id: {WECOM_CORP_ID}\n  corp_secret: {WRONG_SECRET}"
    else:
        credentials = f"channel: dingtalk_work\n  app_key: {DINGTALK_APP_KEY}\n  app_secret: {WRONG_SECRET}"
    return f"bad-credentials:\n  {credentials}\n  agent_id: 1\n  base_url: {sandbox_url}\n"


def bad_request(app: App) -> pb.SendRequest:
    return pb.SendRequest(
        account="bad-credentials", recipients=app.recipients, message=pb.Message(text=pb.Text(content="x"))
    )


@pytest.mark.parametrize(("app", "errcode"), WRONG_CREDENTIALS)
async def test_a_wrong_secret_fails_clearly_with_one_gettoken_and_no_retry_storm(
    sandbox: SandboxServer, token_store: str, namespace: str, app: App, errcode: str
) -> None:
    state = sandbox.state
    bad = wrong_secret_account(app, sandbox.url)
    config = app_config(sandbox.url, token_store=token_store, namespace=namespace, extra_accounts=bad)
    request = bad_request(app)
    async with running_gateway(config, state) as gateway:
        errors = await asyncio.gather(
            *(refused(gateway.stub.Send(request, timeout=10), WRONG_SECRET) for _ in range(20))
        )
        # The sandbox records a gettoken with a wrong secret under the app it was meant for.
        assert state.gettoken_calls(app.account) == 1

        again = await refused(gateway.stub.Send(request, timeout=10), WRONG_SECRET)
        assert state.gettoken_calls(app.account) == 1, "a failed gettoken is not repeated at once"

    for error in [*errors, again]:
        assert error.code == grpc.StatusCode.FAILED_PRECONDITION
        assert "'bad-credentials'" in error.message
        assert error.error_info is not None
        assert error.error_info.metadata["account"] == "bad-credentials"
        assert error.error_info.metadata["vendor_errcode"] == errcode
    assert state.delivered() == []


# -- Redis stops ------------------------------------------------------------------------------------


async def test_redis_down_refuses_sends_before_any_vendor_call_and_recovery_needs_no_restart(
    sandbox: SandboxServer, namespace: str
) -> None:
    # Without its record a message's fate could not be asked for, nor a retry kept from
    # delivering twice: with the store down, nothing is sent, and the caller is told so.
    state = sandbox.state
    redis_process = RedisProcess().start()
    try:
        config = app_config(sandbox.url, token_store=redis_process.url, namespace=namespace)
        async with running_gateway(config, state) as gateway:
            await gateway.stub.Send(text_request(WECOM_APP), timeout=10)  # corp-app's token is hot

            redis_process.stop()
            for request in (text_request(WECOM_APP, 1), text_request(DINGTALK_APP)):
                error = await refused(gateway.stub.Send(request, timeout=10))
                assert error.code == grpc.StatusCode.UNAVAILABLE
                assert "unavailable" in error.message
            assert state.gettoken_calls("ding-app") == 0
            assert len(state.delivered("wecom_app", "corp-app")) == 1

            redis_process.start()  # the same port
            cold = await gateway.stub.Send(text_request(DINGTALK_APP, 1), timeout=10)
            assert cold.state == pb.MESSAGE_STATE_SENT
            await gateway.stub.Send(text_request(WECOM_APP, 2), timeout=10)
    finally:
        redis_process.cleanup()

    assert len(state.delivered("wecom_app", "corp-app")) == 2
    assert len(state.delivered("dingtalk_work", "ding-app")) == 1
    assert state.gettoken_calls("corp-app") == 1
    assert state.gettoken_calls("ding-app") == 1


# -- credentials stay secret ------------------------------------------------------------------------


ECHO = (
    f"invalid credential {WECOM_CORP_SECRET} corpsecret={DINGTALK_APP_SECRET} appsecret={WECOM_CORP_SECRET}"
)
ECHOED = [
    pytest.param(app, call, errcode, status, id=f"{app.channel}-{call}")
    for app in APPS
    for call, errcode, status in (
        ("gettoken", 40013, grpc.StatusCode.FAILED_PRECONDITION),
        ("send", 60011, grpc.StatusCode.PERMISSION_DENIED),
    )
]


@pytest.mark.parametrize(("app", "call", "errcode", "status"), ECHOED)
async def test_vendor_answers_echoing_app_secrets_never_reach_the_caller(
    app_gateway: Gateway, app: App, call: str, errcode: int, status: grpc.StatusCode
) -> None:
    path = app.gettoken_path if call == "gettoken" else app.send_path
    app_gateway.sandbox.inject_fault(app.channel, app.account, errcode=errcode, errmsg=ECHO, path=path)

    error = await refused(app_gateway.stub.Send(text_request(app), timeout=10))  # checks every secret

    assert error.code == status
    assert error.error_info is not None
    assert error.error_info.metadata["vendor_errcode"] == str(errcode)
    assert "invalid credential" in error.error_info.metadata["vendor_errmsg"]


async def vendor_token(sandbox_url: str, app: App) -> str:
    """The app's current access token, asked of the vendor as the gateway asks for it: while it is
    valid the vendor hands out the same one, so this is the token the gateway holds."""
    if app is WECOM_APP:
        query = {"corpid": WECOM_CORP_ID, "corpsecret": WECOM_CORP_SECRET}
    else:
        query = {"appkey": DINGTALK_APP_KEY, "appsecret": DINGTALK_APP_SECRET}
    async with (
        aiohttp.ClientSession() as http,
        http.get(sandbox_url + app.gettoken_path, params=query) as reply,
    ):
        answer = await reply.json(content_type=None)
    return str(answer["access_token"])


TOKEN_ECHOES = [
    pytest.param(app, errcode, id=f"{app.channel}-{errcode}")
    for app in APPS
    for errcode in (60011, 40014)  # a refusal the caller sees; a token rejection retried out of sight
]


@pytest.mark.parametrize(("app", "errcode"), TOKEN_ECHOES)
async def test_a_vendor_answer_echoing_the_access_token_never_reaches_caller_record_or_span(
    app_gateway: Gateway, sandbox: SandboxServer, spans: InMemorySpanExporter, app: App, errcode: int
) -> None:
    # The vendor names the token in its own words, not as access_token=...: only knowing it masks it.
    await app_gateway.stub.Send(text_request(app), timeout=10)
    token = await vendor_token(sandbox.url, app)
    echo = f"invalid access_token: {token}"
    app_gateway.sandbox.inject_fault(
        app.channel, app.account, errcode=errcode, errmsg=echo, path=app.send_path
    )

    if errcode == 40014:
        sent = await app_gateway.stub.Send(text_request(app, 1), timeout=10)
        message_id = sent.message_id
    else:
        error = await refused(app_gateway.stub.Send(text_request(app, 1), timeout=10), token)
        assert error.code == grpc.StatusCode.PERMISSION_DENIED
        assert error.error_info is not None
        assert error.error_info.metadata["vendor_errmsg"] == "invalid access_token: ***"
        message_id = error.error_info.metadata["message_id"]
    record = await app_gateway.stub.GetMessage(pb.GetMessageRequest(message_id=message_id), timeout=10)

    assert record.message.attempts[0].vendor_errcode == errcode
    assert token not in str(record)
    assert "invalid access_token" in str(record)
    for span in spans.get_finished_spans():
        assert token not in span.to_json(), span.name


# -- every "token invalid" answer (docs/vendors.md, Access tokens) ----------------------------------

TOKEN_INVALID_ANSWERS = [
    pytest.param(app, errcode, id=f"{app.channel}-{errcode}")
    for app, codes in (
        (WECOM_APP, (40014, 42001, 41001, 40001)),
        (DINGTALK_APP, (40014, 42001, 40001, 33001)),
    )
    for errcode in codes
]


@pytest.mark.parametrize(("app", "errcode"), TOKEN_INVALID_ANSWERS)
async def test_every_token_invalid_answer_refreshes_the_token_and_retries_once(
    app_gateway: Gateway, app: App, errcode: int
) -> None:
    state = app_gateway.sandbox
    await app_gateway.stub.Send(text_request(app), timeout=10)
    state.inject_fault(app.channel, app.account, errcode=errcode, path=app.send_path)

    response = await app_gateway.stub.Send(text_request(app, 1), timeout=10)

    assert response.vendor_message_id
    assert state.gettoken_calls(app.account) == 2
    assert [r.errcode for r in sends(state, app)] == [0, errcode, 0]


@pytest.mark.parametrize("sub_code", ["40014", "40000", "42001"])
async def test_dingtalk_errcode_88_with_a_token_sub_code_refreshes_the_token_and_retries_once(
    app_gateway: Gateway, sub_code: str
) -> None:
    # DingTalk's newer answers say "token invalid" (40014, 40000) or "expired" (42001) as a sub_code.
    state, app = app_gateway.sandbox, DINGTALK_APP
    await app_gateway.stub.Send(text_request(app), timeout=10)
    state.inject_fault(app.channel, app.account, errcode=88, sub_code=sub_code, path=app.send_path)

    response = await app_gateway.stub.Send(text_request(app, 1), timeout=10)

    assert response.vendor_message_id
    assert state.gettoken_calls(app.account) == 2
    assert [r.errcode for r in sends(state, app)] == [0, 88, 0]


@pytest.mark.parametrize("app", APPS, ids=APP_IDS)
async def test_a_token_the_vendor_says_expires_at_once_is_used_once_and_never_cached(
    app_gateway: Gateway, app: App
) -> None:
    # A token issued with less than a second to live: gettoken answers expires_in 0 (whole seconds).
    state = app_gateway.sandbox
    state.set_token_lifetime(0.9)

    first = await app_gateway.stub.Send(text_request(app), timeout=10)
    state.clock.advance(1)  # the vendor has let it expire: sent again, it would be refused (42001)
    second = await app_gateway.stub.Send(text_request(app, 1), timeout=10)

    assert first.vendor_message_id and second.vendor_message_id
    assert state.gettoken_calls(app.account) == 2, "one token per Send: the first was not kept"
    assert 42001 not in [r.errcode for r in sends(state, app)], "an expired token was sent"


# -- several replicas on one Redis ------------------------------------------------------------------


@pytest.mark.parametrize("app", APPS, ids=APP_IDS)
@pytest.mark.parametrize("how", ["expire", "revoke"])
async def test_replicas_sharing_redis_replace_a_broken_token_once_between_them(
    sandbox: SandboxServer, redis_url: str, namespace: str, app: App, how: str
) -> None:
    state = sandbox.state
    config = app_config(sandbox.url, token_store=redis_url, namespace=namespace)
    async with running_gateway(config, state) as first, running_gateway(config, state) as second:
        await first.stub.Send(text_request(app), timeout=10)
        await second.stub.Send(text_request(app, 1), timeout=10)  # hot in both, from Redis
        assert state.gettoken_calls(app.account) == 1

        if how == "expire":
            state.expire_tokens(app.account)
        else:
            state.revoke_token(app.account)
        replies = await asyncio.gather(send_many(first.stub, app, 20, 2), send_many(second.stub, app, 20, 22))

    assert [len(r) for r in replies] == [20, 20]
    assert state.gettoken_calls(app.account) == 2
    assert len(state.delivered(app.channel, app.account)) == 42


@pytest.mark.parametrize(("app", "errcode"), WRONG_CREDENTIALS)
async def test_a_wrong_secret_fails_clearly_on_every_replica_sharing_redis(
    sandbox: SandboxServer, redis_url: str, namespace: str, app: App, errcode: str
) -> None:
    state = sandbox.state
    bad = wrong_secret_account(app, sandbox.url)
    config = app_config(sandbox.url, token_store=redis_url, namespace=namespace, extra_accounts=bad)
    request = bad_request(app)
    # The refused gettoken answers slowly, so the other replica finds the fetch lock taken and waits.
    state.inject_fault(app.channel, app.account, delay=0.5, path=app.gettoken_path)
    async with running_gateway(config, state) as first, running_gateway(config, state) as second:
        errors = await asyncio.gather(
            *(refused(replica.stub.Send(request, timeout=3), WRONG_SECRET) for replica in (first, second))
        )

    for error in errors:
        assert error.code == grpc.StatusCode.FAILED_PRECONDITION, error.message
        assert "'bad-credentials'" in error.message
    assert state.gettoken_calls(app.account) <= 2, "at most one gettoken per replica"


# -- other calls that carry a token -----------------------------------------------------------------


@pytest.mark.parametrize("app", APPS, ids=APP_IDS)
async def test_uploads_and_recalls_with_a_revoked_token_are_retried_with_a_fresh_one(
    app_gateway: Gateway, app: App
) -> None:
    state = app_gateway.sandbox
    sent = await app_gateway.stub.Send(text_request(app), timeout=10)

    state.revoke_token(app.account)
    media_id = await upload(app_gateway.stub, app.account, pb.MEDIA_TYPE_FILE, "report.pdf", PDF)
    state.revoke_token(app.account)
    recalled = await app_gateway.stub.Recall(pb.RecallRequest(message_id=sent.message_id), timeout=10)

    assert media_id in state.media(app.account)
    assert recalled.state == pb.MESSAGE_STATE_RECALLED
    assert state.recalled(app.account) == [sent.vendor_message_id]
    assert state.gettoken_calls(app.account) == 3


ROTATIONS = [
    pytest.param(WECOM_APP, "40001", id="wecom_app"),
    pytest.param(DINGTALK_APP, "40096", id="dingtalk_work"),
]


@pytest.mark.parametrize(("app", "errcode"), ROTATIONS)
async def test_a_secret_rotated_at_the_vendor_fails_clearly_after_one_refetch(
    app_gateway: Gateway, app: App, errcode: str
) -> None:
    state = app_gateway.sandbox
    await app_gateway.stub.Send(text_request(app), timeout=10)
    # The vendor app gets a new secret: the cached token stops working and the configured secret too.
    if app is WECOM_APP:
        state.add_wecom_app(app.account, WECOM_CORP_ID, "rotated-corp-secret", WECOM_AGENT_ID)
    else:
        state.add_dingtalk_app(app.account, DINGTALK_APP_KEY, "rotated-app-secret", DINGTALK_AGENT_ID)

    error = await refused(app_gateway.stub.Send(text_request(app, 1), timeout=10))

    assert error.code == grpc.StatusCode.FAILED_PRECONDITION
    assert f"'{app.account}'" in error.message
    assert error.error_info is not None and error.error_info.metadata["vendor_errcode"] == errcode
    # The forgotten token is recorded under no app name: count the channel's sends.
    on_channel = [r for r in state.received(app.channel) if r.msgtype not in CALL_MSGTYPES]
    assert len(on_channel) == 2, "the refused token is not retried once gettoken is refused"
    assert state.gettoken_calls(app.account) == 2


@pytest.mark.parametrize("app", APPS, ids=APP_IDS)
async def test_a_gettoken_answer_without_a_token_is_a_vendor_failure_naming_the_account(
    app_gateway: Gateway, app: App
) -> None:
    app_gateway.sandbox.inject_fault(app.channel, app.account, errcode=0, path=app.gettoken_path)

    error = await refused(app_gateway.stub.Send(text_request(app), timeout=10))

    assert error.code not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN)
    assert f"'{app.account}'" in error.message
    assert app_gateway.sandbox.delivered() == []
