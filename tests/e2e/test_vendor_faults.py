"""When the vendor says no, is slow or breaks, callers get the right status and the vendor's errcode."""

from __future__ import annotations

import grpc
import pytest

from gateway.sandbox import SandboxServer
from gateway.server import GatewayServer
from generated.notify.v1 import notification_service_pb2 as pb
from generated.notify.v1 import notification_service_pb2_grpc as pb_grpc
from tests.conftest import DINGTALK_SECRET, SECRETS, WECOM_KEY, Gateway, gateway_config
from tests.rich_status import RichError, rich_error

TEXT = pb.Message(text=pb.Text(content="hello"))


async def send_refused(stub: pb_grpc.NotificationServiceStub, account: str) -> RichError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Send(pb.SendRequest(account=account, message=TEXT))
    error = rich_error(caught.value)
    for secret in SECRETS:
        assert secret not in error.message
        assert error.error_info is None or all(secret not in v for v in error.error_info.metadata.values())
    return error


async def test_wrong_signing_secret_is_a_configuration_error(sandbox: SandboxServer) -> None:
    wrong = f"""
        wrong-secret:
          channel: dingtalk_robot
          access_token: {sandbox_token(sandbox)}
          secret: SECnot-the-robots-secret
          base_url: {sandbox.url}
        """
    async with (
        GatewayServer(gateway_config(sandbox.url, extra_accounts=wrong)) as server,
        grpc.aio.insecure_channel(server.address) as channel,
    ):
        error = await send_refused(pb_grpc.NotificationServiceStub(channel), "wrong-secret")
    assert error.code == grpc.StatusCode.FAILED_PRECONDITION
    assert error.error_info is not None
    assert error.error_info.metadata["vendor_errcode"] == "310000"
    assert "sign" in error.error_info.metadata["vendor_errmsg"]
    assert error.error_info.reason == "VENDOR_CONFIGURATION"
    assert sandbox.state.delivered() == []


def sandbox_token(sandbox: SandboxServer) -> str:
    sandbox.state.add_dingtalk_robot("signed-robot", "signed-robot-token", secret=DINGTALK_SECRET)
    return "signed-robot-token"


async def test_removed_webhook_key_is_a_permanent_credential_error(gateway: Gateway) -> None:
    gateway.sandbox.remove_wecom_robot("team-wecom")
    error = await send_refused(gateway.stub, "team-wecom")
    assert error.code == grpc.StatusCode.FAILED_PRECONDITION
    assert error.error_info is not None
    assert error.error_info.reason == "VENDOR_CREDENTIAL_REVOKED"
    assert error.error_info.metadata["vendor_errcode"] == "93000"
    assert len(gateway.sandbox.received("wecom_robot")) == 1, "a revoked key is not retried"


async def test_removed_dingtalk_robot_token(gateway: Gateway) -> None:
    gateway.sandbox.remove_dingtalk_robot("plain-dingtalk")
    error = await send_refused(gateway.stub, "plain-dingtalk")
    assert error.code == grpc.StatusCode.FAILED_PRECONDITION
    assert error.error_info is not None and error.error_info.metadata["vendor_errcode"] == "300001"


# The gateway's own limiter keeps robots under their limits (test_rate_limits.py); these answers
# still come when something else sends through the same robot, so they are injected here.
async def test_wecom_rate_limit_is_resource_exhausted_with_retry_info(gateway: Gateway) -> None:
    gateway.sandbox.inject_fault("wecom_robot", "team-wecom", errcode=45009, errmsg="api freq out of limit")
    error = await send_refused(gateway.stub, "team-wecom")
    assert error.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error.retry_delay == 60
    assert error.error_info is not None and error.error_info.metadata["vendor_errcode"] == "45009"


async def test_dingtalk_throttle_asks_to_retry_after_ten_minutes(gateway: Gateway) -> None:
    gateway.sandbox.inject_fault("dingtalk_robot", "plain-dingtalk", errcode=130101, errmsg="send too fast")
    error = await send_refused(gateway.stub, "plain-dingtalk")
    assert error.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error.retry_delay == 600
    assert error.error_info is not None and error.error_info.metadata["vendor_errcode"] == "130101"


async def test_vendor_timeout_on_a_non_idempotent_robot_is_unavailable_without_retry(
    sandbox: SandboxServer,
) -> None:
    sandbox.state.inject_fault("wecom_robot", "team-wecom", delay=1.0, times=3)
    async with (
        GatewayServer(gateway_config(sandbox.url, timeout=0.2)) as server,
        grpc.aio.insecure_channel(server.address) as channel,
    ):
        error = await send_refused(pb_grpc.NotificationServiceStub(channel), "team-wecom")
    assert error.code == grpc.StatusCode.UNAVAILABLE
    assert error.error_info is not None and error.error_info.reason == "VENDOR_TIMEOUT"
    # The WeCom robot has no idempotency key: a second try could post the message twice.
    assert len(sandbox.state.received("wecom_robot")) == 1


async def test_vendor_timeout_on_dingtalk_is_retried_safely_with_msg_uuid(sandbox: SandboxServer) -> None:
    sandbox.state.inject_fault("dingtalk_robot", "plain-dingtalk", delay=1.0, times=1)
    async with (
        GatewayServer(gateway_config(sandbox.url, timeout=0.3)) as server,
        grpc.aio.insecure_channel(server.address) as channel,
    ):
        stub = pb_grpc.NotificationServiceStub(channel)
        response = await stub.Send(pb.SendRequest(account="plain-dingtalk", message=TEXT))
    received = sandbox.state.received("dingtalk_robot", "plain-dingtalk")
    assert len(received) >= 2
    assert {r.body["msgUuid"] for r in received} == {response.message_id}
    assert len(sandbox.state.delivered("dingtalk_robot", "plain-dingtalk")) == 1


async def test_vendor_http_500_is_unavailable_with_the_http_status(gateway: Gateway) -> None:
    gateway.sandbox.inject_fault("wecom_robot", "team-wecom", http_status=500, times=5)
    error = await send_refused(gateway.stub, "team-wecom")
    assert error.code == grpc.StatusCode.UNAVAILABLE
    assert error.error_info is not None
    assert error.error_info.reason == "VENDOR_HTTP_ERROR"
    assert error.error_info.metadata["http_status"] == "500"


async def test_vendor_503_is_retried_and_then_delivered(gateway: Gateway) -> None:
    gateway.sandbox.inject_fault("wecom_robot", "team-wecom", http_status=503, times=1)
    response = await gateway.stub.Send(pb.SendRequest(account="team-wecom", message=TEXT))
    assert response.state == pb.MESSAGE_STATE_SENT
    assert len(gateway.sandbox.delivered("wecom_robot")) == 1


async def test_vendor_busy_is_retried_then_reported_unavailable(gateway: Gateway) -> None:
    gateway.sandbox.inject_fault("wecom_robot", "team-wecom", errcode=-1, errmsg="system busy", times=3)
    error = await send_refused(gateway.stub, "team-wecom")
    assert error.code == grpc.StatusCode.UNAVAILABLE
    assert error.error_info is not None and error.error_info.metadata["vendor_errcode"] == "-1"
    assert len(gateway.sandbox.received("wecom_robot")) == 3


async def test_unknown_vendor_errcode_is_never_success(gateway: Gateway) -> None:
    gateway.sandbox.inject_fault("wecom_robot", "team-wecom", errcode=77777, errmsg="something new")
    error = await send_refused(gateway.stub, "team-wecom")
    assert error.code == grpc.StatusCode.FAILED_PRECONDITION
    assert error.error_info is not None and error.error_info.reason == "VENDOR_UNKNOWN"


async def test_vendor_errmsg_echoing_a_credential_is_redacted(gateway: Gateway) -> None:
    gateway.sandbox.inject_fault(
        "wecom_robot", "team-wecom", errcode=40058, errmsg=f"bad request for key={WECOM_KEY}"
    )
    error = await send_refused(gateway.stub, "team-wecom")
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.error_info is not None and "***" in error.error_info.metadata["vendor_errmsg"]
