"""WeCom application access tokens behave like the vendor's
(docs/vendors.md, WeCom application messages and Access tokens)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from gateway.sandbox import SandboxState

from .harness import CORP_ID, CORP_SECRET, WECOM_AGENT_ID, WECOM_APP, AppClient

HELLO: dict[str, Any] = {
    "touser": "zhangsan",
    "agentid": WECOM_AGENT_ID,
    "msgtype": "text",
    "text": {"content": "hi"},
}


async def test_gettoken_answers_a_token_and_its_lifetime(apps: AppClient) -> None:
    reply = await apps.wecom_gettoken()

    assert reply.status == 200
    assert reply.json["errcode"] == 0 and reply.json["errmsg"] == "ok"
    assert reply.json["expires_in"] == 7200
    assert re.fullmatch(r"[A-Za-z0-9_-]{40,}", reply.json["access_token"])


async def test_asking_again_while_valid_returns_the_same_token_and_what_is_left(
    apps: AppClient, state: SandboxState
) -> None:
    first = await apps.wecom_gettoken()
    state.clock.advance(1000)

    second = await apps.wecom_gettoken()

    assert second.json["access_token"] == first.json["access_token"]
    assert 6199 <= second.json["expires_in"] <= 6200


async def test_an_expired_token_answers_42001_and_gettoken_issues_a_new_one(
    apps: AppClient, state: SandboxState
) -> None:
    old = await apps.wecom_token()
    state.clock.advance(7200)

    refused = await apps.wecom_send(HELLO, token=old)
    new = await apps.wecom_token()

    assert refused.errcode == 42001
    assert "access_token expired" in refused.errmsg
    assert new != old
    assert (await apps.wecom_send(HELLO, token=new)).errcode == 0


async def test_the_token_lifetime_is_settable(apps: AppClient, state: SandboxState) -> None:
    state.set_token_lifetime(60)

    reply = await apps.wecom_gettoken()
    state.clock.advance(61)

    assert reply.json["expires_in"] == 60
    assert (await apps.wecom_send(HELLO, token=reply.json["access_token"])).errcode == 42001


def test_a_token_lifetime_must_be_positive(state: SandboxState) -> None:
    with pytest.raises(ValueError):
        state.set_token_lifetime(0)
    with pytest.raises(ValueError):
        state.token_lifetime = float("inf")


async def test_expire_tokens_makes_every_issued_token_answer_42001(
    apps: AppClient, state: SandboxState
) -> None:
    old = await apps.wecom_token()

    state.expire_tokens(WECOM_APP)

    assert (await apps.wecom_send(HELLO, token=old)).errcode == 42001
    new = await apps.wecom_token()
    assert new != old
    assert (await apps.wecom_send(HELLO, token=new)).errcode == 0


async def test_a_revoked_token_answers_40014_while_cached_and_gettoken_replaces_it(
    apps: AppClient, state: SandboxState
) -> None:
    old = await apps.wecom_token()

    state.revoke_token(WECOM_APP)

    refused = await apps.wecom_send(HELLO, token=old)
    assert refused.errcode == 40014
    assert "invalid access_token" in refused.errmsg
    new = await apps.wecom_token()
    assert new != old
    assert (await apps.wecom_send(HELLO, token=new)).errcode == 0


@pytest.mark.parametrize(
    ("token", "errcode"),
    [(None, 41001), ("", 41001), ("never-issued-token", 40014)],
    ids=["no token", "empty token", "unknown token"],
)
async def test_calls_without_a_valid_token_are_refused(
    apps: AppClient, state: SandboxState, token: str | None, errcode: int
) -> None:
    reply = await apps.post("/cgi-bin/message/send", token, HELLO)

    assert reply.errcode == errcode
    [entry] = state.received("wecom_app")
    assert entry.robot is None and entry.errcode == errcode
    assert state.delivered() == []


@pytest.mark.parametrize(
    ("corp_id", "secret", "errcode"),
    [("ww-other-corp", CORP_SECRET, 40013), (CORP_ID, "wrong-secret", 40001)],
    ids=["wrong corpid", "wrong secret"],
)
async def test_gettoken_refuses_wrong_credentials(
    apps: AppClient, corp_id: str, secret: str, errcode: int
) -> None:
    reply = await apps.wecom_gettoken(corp_id, secret)

    assert reply.errcode == errcode
    assert "access_token" not in reply.json
    assert secret not in reply.text


async def test_apps_of_one_corp_each_get_their_own_token(apps: AppClient, state: SandboxState) -> None:
    state.add_wecom_app("finance", CORP_ID, "corp-secret-finance", 1000003)

    hr = await apps.wecom_gettoken()
    finance = await apps.wecom_gettoken(secret="corp-secret-finance")

    assert hr.json["access_token"] != finance.json["access_token"]
    body = {**HELLO, "agentid": 1000003}
    assert (await apps.wecom_send(body, token=finance.json["access_token"])).errcode == 0
    assert [entry.robot for entry in state.delivered("wecom_app")] == ["finance"]


async def test_gettoken_calls_are_counted_refused_or_not_and_never_record_credentials(
    apps: AppClient, state: SandboxState
) -> None:
    token = await apps.wecom_token()
    await apps.wecom_token()
    await apps.wecom_gettoken(secret="wrong-secret")

    assert state.gettoken_calls(WECOM_APP) == 3
    calls = state.received("wecom_app", WECOM_APP)
    assert [(entry.msgtype, entry.errcode) for entry in calls] == [
        ("gettoken", 0),
        ("gettoken", 0),
        ("gettoken", 40001),
    ]
    assert all(entry.body == {} for entry in calls)
    assert token not in repr(calls) and CORP_SECRET not in repr(calls)
    assert state.delivered() == []


def test_gettoken_calls_of_an_unknown_app_raise(state: SandboxState) -> None:
    with pytest.raises(KeyError):
        state.gettoken_calls("nobody")
    with pytest.raises(KeyError):
        state.revoke_token("nobody")
