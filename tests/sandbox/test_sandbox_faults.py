"""Injected faults let the gateway's error paths run against the sandbox."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import aiohttp
import pytest

from gateway.sandbox import SandboxServer, SandboxState

from .harness import DING_AGENT_ID, DING_APP, WECOM_AGENT_ID, WECOM_APP, WECOM_KEY, AppClient, RobotClient

HELLO: dict[str, Any] = {"msgtype": "text", "text": {"content": "告警 hello"}}


async def inject(robots: RobotClient, channel: str, robot: str, **fault: Any) -> None:
    async with robots.session.post(
        f"{robots.base_url}/_sandbox/faults", json={"channel": channel, "robot": robot, **fault}
    ) as response:
        assert response.status == 201


@pytest.mark.asyncio
async def test_an_http_status_fault_answers_that_status_once_then_recovers(
    robots: RobotClient, state: SandboxState
) -> None:
    state.inject_fault("wecom_robot", "ops", http_status=502)

    failed = await robots.wecom(HELLO)
    recovered = await robots.wecom(HELLO)

    assert (failed.status, failed.text) == (502, "502 Bad Gateway")
    assert recovered.errcode == 0
    [faulted, delivered] = state.received()
    assert (faulted.http_status, faulted.errcode, faulted.body) == (502, None, HELLO)
    assert not faulted.delivered
    assert state.delivered() == [delivered]


@pytest.mark.asyncio
async def test_an_http_200_fault_can_answer_a_body_that_is_not_json(
    robots: RobotClient, state: SandboxState
) -> None:
    state.inject_fault("wecom_robot", "ops", http_status=200, errmsg="<html>upstream busy</html>")

    reply = await robots.wecom(HELLO)

    assert (reply.status, reply.text) == (200, "<html>upstream busy</html>")
    assert state.received()[0].errcode is None
    assert state.delivered() == []


@pytest.mark.asyncio
async def test_a_fault_repeats_for_the_given_number_of_requests(robots: RobotClient) -> None:
    await inject(robots, "dingtalk_robot", "alerts", http_status=500, times=3)

    statuses = [(await robots.dingtalk(HELLO)).status for _ in range(4)]

    assert statuses == [500, 500, 500, 200]


@pytest.mark.asyncio
async def test_an_errcode_fault_answers_http_200_with_that_vendor_error(
    robots: RobotClient, state: SandboxState
) -> None:
    state.inject_fault("dingtalk_robot", "alerts", errcode=-1, errmsg="系统繁忙")

    reply = await robots.dingtalk(HELLO)

    assert reply.status == 200
    assert reply.json == {"errcode": -1, "errmsg": "系统繁忙"}
    assert state.received()[0].errcode == -1
    assert state.delivered() == []


@pytest.mark.asyncio
async def test_a_wecom_errcode_fault_without_errmsg_gets_a_vendor_style_errmsg(
    robots: RobotClient, state: SandboxState
) -> None:
    state.inject_fault("wecom_robot", "ops", errcode=45009)

    reply = await robots.wecom(HELLO)

    assert reply.errcode == 45009
    assert reply.errmsg.endswith("more info at https://open.work.weixin.qq.com/devtool/query?e=45009")


@pytest.mark.asyncio
async def test_faults_apply_only_to_the_robot_they_were_injected_for(
    robots: RobotClient, state: SandboxState
) -> None:
    state.inject_fault("dingtalk_robot", "keywords", http_status=500)

    assert (await robots.dingtalk(HELLO)).errcode == 0
    assert state.faults.take("dingtalk_robot", "keywords") is not None


@pytest.mark.asyncio
async def test_a_delay_makes_the_client_time_out_after_the_vendor_delivered(
    robots: RobotClient, state: SandboxState
) -> None:
    state.inject_fault("dingtalk_robot", "alerts", delay=0.5)
    body = {**HELLO, "msgUuid": "uuid-timeout-1"}

    with pytest.raises(asyncio.TimeoutError):
        await robots.dingtalk(body, timeout=aiohttp.ClientTimeout(total=0.1))
    assert [entry.body for entry in state.delivered()] == [body]

    retry = await robots.dingtalk(body)
    assert retry.errcode == 0
    assert [entry.duplicate for entry in state.received()] == [False, True]


@pytest.mark.asyncio
async def test_a_delay_holds_back_an_injected_error_too(robots: RobotClient, state: SandboxState) -> None:
    state.inject_fault("wecom_robot", "ops", http_status=504, delay=0.5)

    with pytest.raises(asyncio.TimeoutError):
        await robots.wecom(HELLO, timeout=aiohttp.ClientTimeout(total=0.1))
    assert [entry.http_status for entry in state.received()] == [504]


@pytest.mark.asyncio
async def test_stopping_the_server_cuts_an_injected_delay_short(state: SandboxState) -> None:
    state.inject_fault("wecom_robot", "ops", delay=60)
    server = SandboxServer(state)
    await server.start()

    async with aiohttp.ClientSession() as session:
        request = asyncio.ensure_future(
            RobotClient(session, server.url).wecom(HELLO, timeout=aiohttp.ClientTimeout(total=30))
        )
        await asyncio.sleep(0.3)  # let the request arrive; it is recorded, then held back
        assert len(state.received()) == 1
        started = time.monotonic()
        await server.stop()
        stopped_in = time.monotonic() - started
        await asyncio.gather(request, return_exceptions=True)

    assert stopped_in < 5


def test_injecting_a_fault_for_an_unknown_robot_or_channel_raises(state: SandboxState) -> None:
    with pytest.raises(KeyError):
        state.inject_fault("wecom_robot", "nobody", http_status=500)
    with pytest.raises(KeyError):
        state.inject_fault("smoke_signal", "ops", http_status=500)


@pytest.mark.parametrize(
    "fault",
    [
        {},
        {"http_status": 99},
        {"delay": -1.0},
        {"errmsg": "alone"},
        {"http_status": 500, "times": 0},
        {"drop": "during"},
        {"drop": "after", "delay": 0.5},
        {"sub_code": "42001"},
    ],
    ids=[
        "nothing to do",
        "bad status",
        "negative delay",
        "errmsg without errcode",
        "zero times",
        "unknown drop",
        "drop with delay",
        "sub_code without errcode",
    ],
)
def test_a_meaningless_fault_is_refused(state: SandboxState, fault: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        state.inject_fault("wecom_robot", "ops", **fault)


WECOM_HELLO: dict[str, Any] = {
    "touser": "zhangsan",
    "agentid": WECOM_AGENT_ID,
    "msgtype": "text",
    "text": {"content": "hi"},
}


@pytest.mark.asyncio
async def test_an_app_fault_applies_to_any_of_its_endpoints(apps: AppClient, state: SandboxState) -> None:
    state.inject_fault("wecom_app", WECOM_APP, errcode=-1, errmsg="system busy")

    busy = await apps.wecom_gettoken()
    token = await apps.wecom_token()

    assert busy.json == {"errcode": -1, "errmsg": "system busy"}
    assert (await apps.wecom_send(WECOM_HELLO, token=token)).errcode == 0
    assert state.gettoken_calls(WECOM_APP) == 2


@pytest.mark.asyncio
async def test_a_dingtalk_errcode_88_fault_can_carry_a_sub_code(apps: AppClient) -> None:
    # DingTalk's newer answers say what errcode 88 means in a sub_code ("42001": token expired).
    async with apps.session.post(
        f"{apps.base_url}/_sandbox/faults",
        json={
            "channel": "dingtalk_work",
            "robot": DING_APP,
            "errcode": 88,
            "sub_code": "42001",
            "path": "/topapi/message/corpconversation/asyncsend_v2",
        },
    ) as response:
        assert response.status == 201

    refused = await apps.ding_send({"agent_id": DING_AGENT_ID, "userid_list": "user01"})

    assert (refused.json["errcode"], refused.json["sub_code"]) == (88, "42001")


@pytest.mark.asyncio
async def test_a_fault_aimed_at_a_path_skips_the_other_endpoints(
    apps: AppClient, state: SandboxState
) -> None:
    token = await apps.wecom_token()
    state.inject_fault("wecom_app", WECOM_APP, errcode=42001, path="/cgi-bin/message/send")

    again = await apps.wecom_gettoken()
    refused = await apps.wecom_send(WECOM_HELLO, token=token)
    retried = await apps.wecom_send(WECOM_HELLO, token=token)

    assert again.errcode == 0
    assert refused.errcode == 42001
    assert refused.errmsg.endswith("devtool/query?e=42001")
    assert retried.errcode == 0


@pytest.mark.asyncio
async def test_a_gettoken_fault_leaves_sends_with_a_cached_token_alone(
    apps: AppClient, state: SandboxState
) -> None:
    token = await apps.ding_token()
    state.inject_fault("dingtalk_work", DING_APP, http_status=503, path="/gettoken", times=2)
    body = {
        "agent_id": DING_AGENT_ID,
        "userid_list": "user01",
        "msg": {"msgtype": "text", "text": {"content": "x"}},
    }

    sent = await apps.ding_send(body, token=token)
    failed = await apps.ding_gettoken()

    assert sent.errcode == 0
    assert failed.status == 503
    assert state.faults.take("dingtalk_work", DING_APP, "/gettoken") is not None
    assert state.faults.take("dingtalk_work", DING_APP, "/gettoken") is None


def test_a_fault_for_a_path_the_channel_does_not_serve_is_refused(state: SandboxState) -> None:
    with pytest.raises(ValueError):
        state.inject_fault("wecom_app", WECOM_APP, http_status=500, path="/cgi-bin/gettokn")
    with pytest.raises(ValueError):
        state.inject_fault("wecom_robot", "ops", http_status=500, path="/gettoken")
    with pytest.raises(KeyError):
        state.inject_fault("dingtalk_work", "nobody", http_status=500)


@pytest.mark.asyncio
async def test_a_robot_upload_can_be_faulted_alone(
    robots: RobotClient, apps: AppClient, state: SandboxState
) -> None:
    state.inject_fault("wecom_robot", "ops", http_status=502, path="/cgi-bin/webhook/upload_media")

    sent = await robots.wecom(HELLO)
    upload = await apps.upload(
        "/cgi-bin/webhook/upload_media", {"key": WECOM_KEY, "type": "file"}, b"%PDF-1.7 x", "a.pdf"
    )

    assert sent.errcode == 0
    assert upload.status == 502


# -- dropped connections ----------------------------------------------------------------------

# A hang would fail as a timeout, never as the disconnect the tests expect.
PROMPTLY = aiohttp.ClientTimeout(total=5)
DING_WORK_SEND = "/topapi/message/corpconversation/asyncsend_v2"
DING_WORK_TEXT: dict[str, Any] = {
    "agent_id": DING_AGENT_ID,
    "userid_list": "user01",
    "msg": {"msgtype": "text", "text": {"content": "发布完成"}},
}


@pytest.mark.asyncio
async def test_a_dingtalk_robot_drop_before_delivers_nothing_so_a_retry_is_the_delivery(
    robots: RobotClient, state: SandboxState
) -> None:
    await inject(robots, "dingtalk_robot", "alerts", drop="before")
    body = {**HELLO, "msgUuid": "uuid-drop-before-1"}

    with pytest.raises(aiohttp.ServerDisconnectedError):
        await robots.dingtalk(body, timeout=PROMPTLY)
    [dropped] = state.received()
    assert (dropped.dropped, dropped.errcode, dropped.http_status, dropped.body) == (True, None, None, body)
    assert state.delivered() == []
    assert state.dingtalk_robots.get("alerts").msg_uuids == set()

    retry = await robots.dingtalk(body)

    assert retry.errcode == 0
    [_, delivered] = state.received()
    assert (delivered.duplicate, delivered.dropped) == (False, False)
    assert state.delivered() == [delivered]


@pytest.mark.asyncio
async def test_a_dingtalk_robot_drop_after_delivers_so_a_retry_is_a_duplicate(
    robots: RobotClient, state: SandboxState
) -> None:
    await inject(robots, "dingtalk_robot", "alerts", drop="after")
    body = {**HELLO, "msgUuid": "uuid-drop-after-1"}

    with pytest.raises(aiohttp.ServerDisconnectedError):
        await robots.dingtalk(body, timeout=PROMPTLY)
    [dropped] = state.delivered()
    assert (dropped.dropped, dropped.errcode, dropped.body) == (True, 0, body)

    retry = await robots.dingtalk(body)

    assert retry.errcode == 0
    assert [(entry.dropped, entry.duplicate) for entry in state.received()] == [(True, False), (False, True)]
    assert state.delivered() == [dropped]


@pytest.mark.asyncio
async def test_the_messages_api_shows_which_requests_were_dropped(robots: RobotClient) -> None:
    await inject(robots, "wecom_robot", "ops", drop="before")

    with pytest.raises(aiohttp.ServerDisconnectedError):
        await robots.wecom(HELLO, timeout=PROMPTLY)
    await robots.wecom(HELLO)
    async with robots.session.get(f"{robots.base_url}/_sandbox/messages") as response:
        messages = await response.json()

    assert [(m["dropped"], m["errcode"], m["http_status"]) for m in messages] == [
        (True, None, None),
        (False, 0, 200),
    ]


@pytest.mark.asyncio
@pytest.mark.parametrize(("drop", "delivered"), [("before", 0), ("after", 1)])
async def test_a_wecom_robot_drop_disconnects_and_delivers_only_when_after(
    robots: RobotClient, state: SandboxState, drop: str, delivered: int
) -> None:
    state.inject_fault("wecom_robot", "ops", drop=drop)

    with pytest.raises(aiohttp.ServerDisconnectedError):
        await robots.wecom(HELLO, timeout=PROMPTLY)

    [entry] = state.received()
    assert entry.dropped
    assert len(state.delivered()) == delivered
    # Only a handled request uses up the robot's 20 a minute.
    rate = state.wecom_robots.get("ops").rate
    assert rate.has_room(state.clock.now(), 20) is (drop == "before")


@pytest.mark.asyncio
@pytest.mark.parametrize(("drop", "tasks"), [("before", 0), ("after", 1)])
async def test_a_dingtalk_work_send_drop_disconnects_and_creates_a_task_only_when_after(
    apps: AppClient, state: SandboxState, drop: str, tasks: int
) -> None:
    token = await apps.ding_token()
    state.inject_fault("dingtalk_work", DING_APP, drop=drop, path=DING_WORK_SEND)

    with pytest.raises(aiohttp.ServerDisconnectedError):
        await apps.ding_send(DING_WORK_TEXT, token=token)

    [_, sent] = state.received("dingtalk_work")
    assert (sent.dropped, sent.body) == (True, DING_WORK_TEXT)
    assert len(state.delivered()) == tasks
    assert len(state.dingtalk_apps.get(DING_APP).tasks) == tasks
    assert (await apps.ding_send(DING_WORK_TEXT, token=token)).errcode == 0, "the connection recovers"


@pytest.mark.asyncio
async def test_a_drop_before_an_unread_upload_still_disconnects_cleanly(
    apps: AppClient, state: SandboxState
) -> None:
    # The sandbox reads the body it did not handle: closing on unread input would reset the
    # connection mid-upload, a different error from the one a drop stands for.
    state.inject_fault("wecom_robot", "ops", drop="before", path="/cgi-bin/webhook/upload_media")
    content = b"%PDF-1.7 " + b"\x00" * (16 * 1024 * 1024)

    with pytest.raises(aiohttp.ServerDisconnectedError):
        await apps.upload(
            "/cgi-bin/webhook/upload_media", {"key": WECOM_KEY, "type": "file"}, content, "big.pdf"
        )

    [entry] = state.received()
    assert (entry.dropped, entry.errcode, entry.body) == (True, None, {"type": "file"})


@pytest.mark.asyncio
async def test_a_dropped_connection_is_not_logged_as_a_server_error(
    robots: RobotClient, state: SandboxState, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    state.inject_fault("dingtalk_robot", "alerts", drop="before")
    state.inject_fault("wecom_robot", "ops", drop="after")

    for send in (robots.dingtalk, robots.wecom):
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await send(HELLO, timeout=PROMPTLY)
    await robots.wecom(HELLO)

    assert [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING] == []
    assert not [record for record in caplog.records if record.exc_info]


@pytest.mark.parametrize(
    "fault",
    [
        {"drop": "after", "http_status": 502},
        {"drop": "after", "delay": 1.0},
        {"drop": "before", "errcode": -1},
        {"drop": "before", "errmsg": "gone"},
        {"drop": "sideways"},
        {"drop": True},
    ],
    ids=["with http_status", "with delay", "with errcode", "with errmsg", "unknown value", "not a string"],
)
@pytest.mark.asyncio
async def test_a_drop_combined_with_an_answer_or_badly_named_is_refused_with_400(
    robots: RobotClient, state: SandboxState, fault: dict[str, Any]
) -> None:
    async with robots.session.post(
        f"{robots.base_url}/_sandbox/faults", json={"channel": "wecom_robot", "robot": "ops", **fault}
    ) as response:
        assert response.status == 400
        assert "error" in await response.json()
    assert state.faults.take("wecom_robot", "ops") is None
