"""DingTalk work-notification access tokens behave like the vendor's
(docs/vendors.md, DingTalk work notifications and Access tokens)."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.sandbox import SandboxState

from .harness import DING_AGENT_ID, DING_APP, DING_APP_KEY, DING_APP_SECRET, AppClient

HELLO: dict[str, Any] = {
    "agent_id": DING_AGENT_ID,
    "userid_list": "user01",
    "msg": {"msgtype": "text", "text": {"content": "hi"}},
}


async def test_gettoken_answers_the_same_token_while_it_is_valid(
    apps: AppClient, state: SandboxState
) -> None:
    first = await apps.ding_gettoken()
    state.clock.advance(200)
    second = await apps.ding_gettoken()

    assert first.json["errcode"] == 0 and first.json["expires_in"] == 7200
    assert second.json["access_token"] == first.json["access_token"]
    assert 6999 <= second.json["expires_in"] <= 7000


@pytest.mark.parametrize(
    ("app_key", "secret"),
    [("unknown-key", DING_APP_SECRET), (DING_APP_KEY, "wrong-secret"), ("", "")],
    ids=["unknown appkey", "wrong secret", "nothing"],
)
async def test_bad_credentials_answer_40096(apps: AppClient, app_key: str, secret: str) -> None:
    reply = await apps.ding_gettoken(app_key, secret)

    assert reply.json == {"errcode": 40096, "errmsg": "invalid appkey or appsecret"}


async def test_an_expired_token_answers_42001_and_a_new_one_is_issued(
    apps: AppClient, state: SandboxState
) -> None:
    old = await apps.ding_token()
    state.clock.advance(7201)

    refused = await apps.ding_send(HELLO, token=old)
    new = await apps.ding_token()

    assert refused.errcode == 42001
    assert new != old
    assert (await apps.ding_send(HELLO, token=new)).errcode == 0


async def test_expire_tokens_expires_them_now(apps: AppClient, state: SandboxState) -> None:
    old = await apps.ding_token()

    state.expire_tokens(DING_APP)

    assert (await apps.ding_send(HELLO, token=old)).errcode == 42001


async def test_a_revoked_token_answers_errcode_88_with_sub_code_40014(
    apps: AppClient, state: SandboxState
) -> None:
    old = await apps.ding_token()

    state.revoke_token(DING_APP)

    refused = await apps.ding_send(HELLO, token=old)
    assert refused.json["errcode"] == 88
    assert refused.json["sub_code"] == "40014"
    assert refused.json["sub_msg"] == "不合法的access_token"
    new = await apps.ding_token()
    assert new != old
    assert (await apps.ding_send(HELLO, token=new)).errcode == 0


async def test_a_token_revoked_the_legacy_way_answers_plain_40014(
    apps: AppClient, state: SandboxState
) -> None:
    old = await apps.ding_token()

    state.revoke_token(DING_APP, legacy=True)

    refused = await apps.ding_send(HELLO, token=old)
    assert refused.json == {"errcode": 40014, "errmsg": "不合法的access_token"}


@pytest.mark.parametrize("token", [None, "never-issued"], ids=["missing", "unknown"])
async def test_a_missing_or_unknown_token_answers_errcode_88(apps: AppClient, token: str | None) -> None:
    reply = await apps.post("/topapi/message/corpconversation/asyncsend_v2", token, HELLO)

    assert (reply.json["errcode"], reply.json["sub_code"]) == (88, "40014")


async def test_gettoken_calls_count_every_call_under_the_apps_name(
    apps: AppClient, state: SandboxState
) -> None:
    await apps.ding_token()
    await apps.ding_gettoken(secret="wrong-secret")
    await apps.ding_gettoken("unknown-key")

    assert state.gettoken_calls(DING_APP) == 2
    assert [entry.robot for entry in state.received("dingtalk_work")] == [DING_APP, DING_APP, None]
    assert DING_APP_SECRET not in repr(state.received())


async def test_clear_restarts_the_gettoken_count_but_keeps_the_token(
    apps: AppClient, state: SandboxState
) -> None:
    token = await apps.ding_token()

    state.clear()

    assert state.gettoken_calls(DING_APP) == 0
    assert (await apps.ding_send(HELLO, token=token)).errcode == 0
