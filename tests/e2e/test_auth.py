"""Who may call the gateway: API keys name a tenant, a tenant uses only its accounts, probes need no key.

The gateway runs with tenants configured (keys kept as sha256 hashes), or open only when its config
says ``auth: none``; every call goes over real gRPC to a real server in front of the sandbox.
"""

from __future__ import annotations

import logging
import textwrap
from collections.abc import AsyncIterator, Iterable

import grpc
import pytest
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from gateway.config import Config
from gateway.sandbox import SandboxServer
from gateway.tenants import hash_key
from generated.notify.v1 import notification_service_pb2 as pb
from tests.conftest import Gateway, gateway_config, running_gateway
from tests.rich_status import RichError, rich_error

SERVICE = "notify.v1.NotificationService"
ALPHA_KEY = "alpha-api-key-3f9c2d71e8"  # tenant alpha: the two robots only
OPS_KEY = "ops-api-key-b41d7e09aa"  # tenant ops: every account ("*")
AUDIT_KEY = "audit-api-key-5ac2e81f33"  # tenant audit: every account ("*")
API_KEYS = (ALPHA_KEY, OPS_KEY, AUDIT_KEY)
ALL_ACCOUNTS = ("team-wecom", "ops-dingtalk", "plain-dingtalk", "corp-app", "ding-app")
TEXT = pb.Message(text=pb.Text(content="hello"))


def with_tenants(base: Config) -> Config:
    tenants = yaml.safe_load(
        textwrap.dedent(
            f"""
            - name: alpha
              api_keys: ["{hash_key(ALPHA_KEY)}"]
              accounts: [team-wecom, plain-dingtalk]
            - name: ops
              api_keys: ["{hash_key("an-old-ops-key-retired")}", "{hash_key(OPS_KEY)}"]
              accounts: ["*"]
            - name: audit
              api_keys: ["{hash_key(AUDIT_KEY)}"]
              accounts: ["*"]
            """
        )
    )
    fields = {name: getattr(base, name) for name in Config.model_fields}
    return Config.model_validate({**fields, "auth": "api_keys", "tenants": tenants})


@pytest.fixture
async def tenant_gateway(sandbox: SandboxServer) -> AsyncIterator[Gateway]:
    async with running_gateway(with_tenants(gateway_config(sandbox.url)), sandbox.state) as gateway:
        yield gateway


def bearer(key: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {key}"),)


def request_to(account: str) -> pb.SendRequest:
    """A text Send every channel takes (applications need someone to deliver to)."""
    recipients = {
        "corp-app": pb.Recipients(user_ids=["zhangsan"]),
        "ding-app": pb.Recipients(user_ids=["user01"]),
    }.get(account, pb.Recipients())
    return pb.SendRequest(account=account, message=TEXT, recipients=recipients)


async def send_refused(
    gateway: Gateway, request: pb.SendRequest, metadata: Iterable[tuple[str, str]] | None
) -> RichError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await gateway.stub.Send(request, metadata=metadata, timeout=5)
    return rich_error(caught.value)


# -- authentication ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "metadata",
    [
        pytest.param(None, id="no-authorization"),
        pytest.param(bearer("not-a-configured-key"), id="wrong-key"),
        pytest.param((("authorization", "Bearer "),), id="bearer-empty-key"),
        pytest.param((("authorization", "Bearer"),), id="bearer-no-key"),
        pytest.param((("authorization", OPS_KEY),), id="key-without-scheme"),
        pytest.param(bearer(hash_key(OPS_KEY)), id="the-stored-hash-is-not-a-key"),
    ],
)
async def test_a_send_without_a_valid_api_key_is_unauthenticated_and_reaches_no_vendor(
    tenant_gateway: Gateway, metadata: tuple[tuple[str, str], ...] | None
) -> None:
    error = await send_refused(tenant_gateway, request_to("team-wecom"), metadata)

    assert error.code == grpc.StatusCode.UNAUTHENTICATED
    assert tenant_gateway.sandbox.received() == []


async def test_a_valid_key_is_accepted_whatever_the_case_of_the_bearer_scheme(
    tenant_gateway: Gateway,
) -> None:
    reply = await tenant_gateway.stub.Send(
        request_to("team-wecom"), metadata=(("authorization", f"bearer {ALPHA_KEY}"),), timeout=5
    )
    assert reply.state == pb.MESSAGE_STATE_SENT
    assert len(tenant_gateway.sandbox.delivered("wecom_robot", "team-wecom")) == 1


async def test_any_of_a_tenants_keys_authenticates_it(tenant_gateway: Gateway) -> None:
    """A tenant rotating keys lists old and new; the second hash in the list works too."""
    reply = await tenant_gateway.stub.Send(request_to("corp-app"), metadata=bearer(OPS_KEY), timeout=5)
    assert reply.state == pb.MESSAGE_STATE_SENT


# -- authorization ----------------------------------------------------------------------------


async def test_a_tenant_may_not_send_through_an_account_it_is_not_given(tenant_gateway: Gateway) -> None:
    for account in ("ops-dingtalk", "corp-app", "ding-app"):
        error = await send_refused(tenant_gateway, request_to(account), bearer(ALPHA_KEY))

        assert error.code == grpc.StatusCode.PERMISSION_DENIED, account
        assert "alpha" in error.message and account in error.message
        assert error.error_info is not None
        assert error.error_info.reason == "ACCOUNT_NOT_ALLOWED"
    assert tenant_gateway.sandbox.received() == [], "a refused Send never reaches the vendor"


async def test_a_tenant_may_not_upload_media_through_an_account_it_is_not_given(
    tenant_gateway: Gateway,
) -> None:
    async def parts() -> AsyncIterator[pb.UploadMediaRequest]:
        yield pb.UploadMediaRequest(
            info=pb.MediaInfo(
                account="corp-app", type=pb.MEDIA_TYPE_FILE, filename="report.txt", content_type="text/plain"
            )
        )
        yield pb.UploadMediaRequest(chunk=b"quarterly numbers")

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await tenant_gateway.stub.UploadMedia(parts(), metadata=bearer(ALPHA_KEY), timeout=5)

    error = rich_error(caught.value)
    assert error.code == grpc.StatusCode.PERMISSION_DENIED
    assert "corp-app" in error.message
    assert tenant_gateway.sandbox.received() == []


async def test_an_upload_without_a_key_is_unauthenticated(tenant_gateway: Gateway) -> None:
    async def parts() -> AsyncIterator[pb.UploadMediaRequest]:
        yield pb.UploadMediaRequest(
            info=pb.MediaInfo(account="team-wecom", type=pb.MEDIA_TYPE_FILE, filename="report.txt")
        )
        yield pb.UploadMediaRequest(chunk=b"quarterly numbers")

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await tenant_gateway.stub.UploadMedia(parts(), timeout=5)

    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert tenant_gateway.sandbox.received() == []


async def test_a_tenant_allowed_every_account_reaches_each_of_them(tenant_gateway: Gateway) -> None:
    for account in ALL_ACCOUNTS:
        reply = await tenant_gateway.stub.Send(request_to(account), metadata=bearer(OPS_KEY), timeout=5)
        assert reply.state == pb.MESSAGE_STATE_SENT, account

    reached = {entry.robot for entry in tenant_gateway.sandbox.delivered()}
    assert reached == set(ALL_ACCOUNTS)


async def test_a_tenant_uses_the_accounts_it_is_given(tenant_gateway: Gateway) -> None:
    for account in ("team-wecom", "plain-dingtalk"):
        reply = await tenant_gateway.stub.Send(request_to(account), metadata=bearer(ALPHA_KEY), timeout=5)
        assert reply.state == pb.MESSAGE_STATE_SENT
    assert {entry.robot for entry in tenant_gateway.sandbox.delivered()} == {"team-wecom", "plain-dingtalk"}


async def test_a_tenant_cannot_recall_a_message_another_tenant_sent(tenant_gateway: Gateway) -> None:
    sent = await tenant_gateway.stub.Send(request_to("corp-app"), metadata=bearer(OPS_KEY), timeout=5)
    assert sent.recallable

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await tenant_gateway.stub.Recall(
            pb.RecallRequest(message_id=sent.message_id), metadata=bearer(AUDIT_KEY), timeout=5
        )

    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert tenant_gateway.sandbox.recalled("corp-app") == []


async def test_a_tenant_recalls_its_own_message(tenant_gateway: Gateway) -> None:
    sent = await tenant_gateway.stub.Send(request_to("corp-app"), metadata=bearer(OPS_KEY), timeout=5)

    recalled = await tenant_gateway.stub.Recall(
        pb.RecallRequest(message_id=sent.message_id), metadata=bearer(OPS_KEY), timeout=5
    )

    assert recalled.state == pb.MESSAGE_STATE_RECALLED
    assert tenant_gateway.sandbox.recalled("corp-app") == [sent.vendor_message_id]


# -- what needs no key ------------------------------------------------------------------------


async def test_health_checks_answer_without_an_api_key(tenant_gateway: Gateway) -> None:
    health = health_pb2_grpc.HealthStub(tenant_gateway.channel)
    for service in ("", SERVICE):
        reply = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING, service


async def test_reflection_answers_without_an_api_key(tenant_gateway: Gateway) -> None:
    reflection = reflection_pb2_grpc.ServerReflectionStub(tenant_gateway.channel)
    call = reflection.ServerReflectionInfo(
        iter(
            [
                reflection_pb2.ServerReflectionRequest(list_services=""),
                reflection_pb2.ServerReflectionRequest(file_containing_symbol=SERVICE),
            ]
        ),
        timeout=5,
    )
    replies = [reply async for reply in call]

    services = {s.name for s in replies[0].list_services_response.service}
    assert {SERVICE, "grpc.health.v1.Health"} <= services
    assert replies[1].file_descriptor_response.file_descriptor_proto, "the API's descriptors are served"


# -- running open: only when the config says auth: none ---------------------------------------

OPEN_WARNING = "auth: none: calls are not authenticated and may use every account (development only)"


async def test_with_auth_none_a_send_without_a_key_is_served_and_start_up_warns(
    sandbox: SandboxServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="gateway.server")
    open_config = gateway_config(sandbox.url)
    assert (open_config.auth, open_config.tenants) == ("none", [])

    async with running_gateway(open_config, sandbox.state) as gateway:
        reply = await gateway.stub.Send(request_to("team-wecom"), timeout=5)

    assert reply.state == pb.MESSAGE_STATE_SENT
    assert len(sandbox.state.delivered("wecom_robot", "team-wecom")) == 1
    warnings = [
        r.getMessage() for r in caplog.records if r.name == "gateway.server" and r.levelno >= logging.WARNING
    ]
    assert warnings == [OPEN_WARNING]


async def test_a_config_made_in_code_that_skips_validation_fails_closed_not_open(
    sandbox: SandboxServer,
) -> None:
    """model_copy does not validate: no tenant without auth: none, or tenants with it, still needs a key."""
    base = gateway_config(sandbox.url)
    no_one = base.model_copy(update={"auth": "api_keys"})
    ambiguous = with_tenants(base).model_copy(update={"auth": "none"})

    for config in (no_one, ambiguous):
        async with running_gateway(config, sandbox.state) as gateway:
            error = await send_refused(gateway, request_to("team-wecom"), None)
        assert error.code == grpc.StatusCode.UNAUTHENTICATED
    assert sandbox.state.received() == []


# -- keys stay secret -------------------------------------------------------------------------


async def test_api_keys_never_appear_in_the_log(
    tenant_gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    await tenant_gateway.stub.Send(request_to("team-wecom"), metadata=bearer(ALPHA_KEY), timeout=5)
    await send_refused(tenant_gateway, request_to("corp-app"), bearer(ALPHA_KEY))
    await send_refused(tenant_gateway, request_to("team-wecom"), bearer(OPS_KEY + "-typo"))
    await send_refused(tenant_gateway, request_to("team-wecom"), (("authorization", AUDIT_KEY),))
    await tenant_gateway.stub.Send(request_to("ding-app"), metadata=bearer(OPS_KEY), timeout=5)

    assert any(record.name == "gateway.access" for record in caplog.records), "the RPCs were logged"
    for record in caplog.records:
        texts = [record.getMessage(), *(str(value) for value in record.__dict__.values())]
        for key in API_KEYS:
            assert not any(key in text for text in texts), (record.name, record.getMessage())
