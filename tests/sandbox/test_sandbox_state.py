"""SandboxState keeps robots and records the way the gateway's tests rely on."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.sandbox import SandboxState

from .harness import (
    CORP_ID,
    CORP_SECRET,
    DING_APP,
    DING_APP_KEY,
    WECOM_AGENT_ID,
    WECOM_APP,
    WECOM_KEY,
    AppClient,
    RobotClient,
)

HELLO: dict[str, Any] = {"msgtype": "text", "text": {"content": "hello"}}


def test_two_robots_cannot_share_a_credential(state: SandboxState) -> None:
    with pytest.raises(ValueError):
        state.add_wecom_robot("copycat", WECOM_KEY)


def test_keywords_must_be_a_sequence_of_strings_not_one_string(state: SandboxState) -> None:
    with pytest.raises(TypeError):
        state.add_dingtalk_robot("typo", "token-typo", keywords="告警")


def test_unknown_robot_names_raise_key_error(state: SandboxState) -> None:
    with pytest.raises(KeyError):
        state.remove_wecom_robot("nobody")
    with pytest.raises(KeyError):
        state.disable_dingtalk_robot("nobody")
    with pytest.raises(KeyError):
        state.add_robot_media("nobody", "m1")


@pytest.mark.asyncio
async def test_re_adding_a_robot_with_a_new_key_retires_the_old_key(
    robots: RobotClient, state: SandboxState
) -> None:
    state.add_wecom_robot("ops", "wecom-key-rotated")

    assert (await robots.wecom(HELLO)).errcode == 93000
    assert (await robots.wecom(HELLO, key="wecom-key-rotated")).errcode == 0
    assert [entry.robot for entry in state.received()] == ["ops", "ops"]


@pytest.mark.asyncio
async def test_a_re_enabled_robot_delivers_again(robots: RobotClient, state: SandboxState) -> None:
    state.disable_dingtalk_robot("alerts")
    state.enable_dingtalk_robot("alerts")

    assert (await robots.dingtalk(HELLO)).errcode == 0


@pytest.mark.asyncio
async def test_records_are_stamped_with_sandbox_time(robots: RobotClient, state: SandboxState) -> None:
    state.clock.advance(86400)
    before = state.clock.now()

    await robots.wecom(HELLO)

    [entry] = state.received()
    assert before <= entry.at <= state.clock.now()


@pytest.mark.asyncio
async def test_clear_forgets_traffic_but_keeps_robots_and_media(
    robots: RobotClient, state: SandboxState
) -> None:
    state.add_robot_media("ops", "media-1")
    for index in range(20):
        await robots.wecom({"msgtype": "text", "text": {"content": f"m{index}"}})
    await robots.dingtalk({**HELLO, "msgUuid": "uuid-1"})

    state.clear()

    assert state.received() == []
    assert (await robots.wecom({"msgtype": "file", "file": {"media_id": "media-1"}})).errcode == 0
    assert (await robots.dingtalk({**HELLO, "msgUuid": "uuid-1"})).errcode == 0
    assert [entry.duplicate for entry in state.received("dingtalk_robot")] == [False]


def test_an_app_name_cannot_be_shared_with_another_app_or_a_wecom_robot(state: SandboxState) -> None:
    with pytest.raises(ValueError):
        state.add_dingtalk_app(WECOM_APP, "another-key", "another-secret", 1)
    with pytest.raises(ValueError):
        state.add_wecom_app("ops", "ww-x", "secret-x", 1)
    with pytest.raises(ValueError):
        state.add_wecom_robot(DING_APP, "wecom-key-new")


def test_two_apps_cannot_share_credentials(state: SandboxState) -> None:
    with pytest.raises(ValueError):
        state.add_wecom_app("copycat", CORP_ID, CORP_SECRET, 1)
    with pytest.raises(ValueError):
        state.add_dingtalk_app("copycat", DING_APP_KEY, "other-secret", 1)


def test_directories_must_be_iterables_of_ids_not_one_string(state: SandboxState) -> None:
    with pytest.raises(TypeError):
        state.add_wecom_app("typo", "ww-typo", "secret", 1, users="zhangsan")


@pytest.mark.asyncio
async def test_re_adding_an_app_voids_its_tokens(apps: AppClient, state: SandboxState) -> None:
    token = await apps.wecom_token()

    state.add_wecom_app(WECOM_APP, CORP_ID, "rotated-secret", WECOM_AGENT_ID)

    body = {"touser": "zhangsan", "agentid": WECOM_AGENT_ID, "msgtype": "text", "text": {"content": "x"}}
    assert (await apps.wecom_send(body, token=token)).errcode == 40014
    assert (await apps.wecom_gettoken()).errcode == 40001
    assert (await apps.wecom_gettoken(secret="rotated-secret")).errcode == 0


@pytest.mark.asyncio
async def test_clear_forgets_app_traffic_but_keeps_tokens_and_media(
    apps: AppClient, state: SandboxState
) -> None:
    token = await apps.wecom_token()
    media_id = (await apps.wecom_upload("file", b"%PDF-1.7 report")).json["media_id"]
    body = {
        "touser": "zhangsan",
        "agentid": WECOM_AGENT_ID,
        "msgtype": "file",
        "file": {"media_id": media_id},
    }
    msgid = (await apps.wecom_send(body, token=token)).json["msgid"]
    await apps.wecom_recall(msgid, token=token)

    state.clear()

    assert state.received() == [] and state.recalled(WECOM_APP) == []
    assert (await apps.wecom_send(body, token=token)).errcode == 0
    assert media_id in state.media(WECOM_APP)
