"""Set-up shared by the application-channel end-to-end tests (WeCom app, DingTalk work notification).

Configs with a token store and key namespace of the test's own, media uploaded through the
gateway's UploadMedia RPC (the sandbox refuses media ids it never issued), and the refusal helper
that also checks no credential leaks into what a caller sees.
"""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass

import grpc
import pytest

from gateway.config import Config, parse_config
from gateway.sandbox import SandboxState
from gateway.sandbox.recording import CALL_MSGTYPES, Received
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
)
from tests.rich_status import RichError, rich_error


@dataclass(frozen=True)
class App:
    """One application account as both the gateway config and the sandbox name it."""

    account: str
    channel: str
    send_path: str
    gettoken_path: str
    recipients: pb.Recipients  # whom the token tests send to (inside the vendor's rate limits)


# WeCom limits each member to 30 messages a minute, so bulk sends go to a department instead.
WECOM_APP = App(
    "corp-app", "wecom_app", "/cgi-bin/message/send", "/cgi-bin/gettoken", pb.Recipients(department_ids=["1"])
)
DINGTALK_APP = App(
    "ding-app",
    "dingtalk_work",
    "/topapi/message/corpconversation/asyncsend_v2",
    "/gettoken",
    pb.Recipients(user_ids=["user01"]),
)
APPS = (WECOM_APP, DINGTALK_APP)


def app_config_text(
    sandbox_url: str,
    *,
    token_store: str = "memory://",
    namespace: str = "notify",
    listen: str = "127.0.0.1:0",
    extra_accounts: str = "",
    secrets_from_env: bool = False,
) -> str:
    """The two application accounts of conftest; secrets inline, or as ${ENV} (a real deployment)."""
    corp_secret = "${TEST_WECOM_CORP_SECRET}" if secrets_from_env else WECOM_CORP_SECRET
    app_secret = "${TEST_DINGTALK_APP_SECRET}" if secrets_from_env else DINGTALK_APP_SECRET
    text = textwrap.dedent(
        f"""
        server:
          listen: {listen}
          grace_period_seconds: 5
          drain_delay_seconds: 0
        auth: none
        token_store: {token_store}
        key_namespace: {namespace}
        accounts:
          corp-app:
            channel: wecom_app
            corp_id: {WECOM_CORP_ID}
            corp_secret: {corp_secret}
            agent_id: {WECOM_AGENT_ID}
            base_url: {sandbox_url}
            timeout_seconds: 5
          ding-app:
            channel: dingtalk_work
            app_key: {DINGTALK_APP_KEY}
            app_secret: {app_secret}
            agent_id: {DINGTALK_AGENT_ID}
            base_url: {sandbox_url}
            timeout_seconds: 5
        """
    )
    return text + textwrap.indent(textwrap.dedent(extra_accounts), "  ")


def app_config(sandbox_url: str, **options: str) -> Config:
    return parse_config(app_config_text(sandbox_url, **options))


def text_request(app: App, n: int = 0) -> pb.SendRequest:
    return pb.SendRequest(
        account=app.account,
        recipients=app.recipients,
        message=pb.Message(text=pb.Text(content=f"notice {n}")),
    )


async def upload(
    stub: pb_grpc.NotificationServiceStub,
    account: str,
    media_type: pb.MediaType.ValueType,
    filename: str,
    data: bytes,
) -> str:
    """Uploads through the gateway (UploadMedia streams info, then chunks) and returns the media_id."""

    async def parts() -> AsyncIterator[pb.UploadMediaRequest]:
        yield pb.UploadMediaRequest(info=pb.MediaInfo(account=account, type=media_type, filename=filename))
        yield pb.UploadMediaRequest(chunk=data)

    response = await stub.UploadMedia(parts(), timeout=10)
    assert response.media_id
    return response.media_id


def assert_no_credentials(error: RichError, *extra: str) -> None:
    for secret in (*SECRETS, *extra):
        assert secret not in error.message
        if error.error_info is not None:
            for value in error.error_info.metadata.values():
                assert secret not in value


async def refused(call: Awaitable[object], *extra_secrets: str) -> RichError:
    """The status a refused call got, after checking it carries no credential."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    error = rich_error(caught.value)
    assert_no_credentials(error, *extra_secrets)
    return error


def sends(state: SandboxState, app: App) -> list[Received]:
    """Message requests (not gettoken, uploads, ...) the app's vendor endpoint received."""
    return [r for r in state.received(app.channel, app.account) if r.msgtype not in CALL_MSGTYPES]
