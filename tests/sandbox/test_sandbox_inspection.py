"""The `/_sandbox/` API shows what arrived and steers the sandbox, without revealing secrets."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.sandbox import SandboxState

from .harness import (
    CORP_SECRET,
    DING_AGENT_ID,
    DING_APP,
    DING_APP_SECRET,
    DING_KEYWORD_TOKEN,
    DING_SECRET,
    DING_SIGNED_TOKEN,
    DING_TOKEN,
    WECOM_AGENT_ID,
    WECOM_APP,
    WECOM_KEY,
    AppClient,
    RobotClient,
)

pytestmark = pytest.mark.asyncio

HELLO: dict[str, Any] = {"msgtype": "text", "text": {"content": "hello"}}


async def call(robots: RobotClient, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    async with robots.session.request(method, f"{robots.base_url}{path}", json=body) as response:
        text = await response.text()
        return response.status, (await response.json() if text else None)


async def test_messages_lists_every_received_request_with_what_was_answered(robots: RobotClient) -> None:
    await robots.wecom(HELLO)
    await robots.dingtalk({"msgtype": "text", "text": {}})

    status, messages = await call(robots, "GET", "/_sandbox/messages")

    assert status == 200
    assert [(m["channel"], m["robot"], m["errcode"], m["body"]) for m in messages] == [
        ("wecom_robot", "ops", 0, HELLO),
        ("dingtalk_robot", "alerts", 40035, {"msgtype": "text", "text": {}}),
    ]
    assert set(messages[0]) == {
        "channel",
        "robot",
        "msgtype",
        "body",
        "errcode",
        "errmsg",
        "at",
        "duplicate",
        "http_status",
        "dropped",
        "answer",
        "trace_id",
    }


async def test_messages_can_be_filtered_by_channel_robot_and_delivery(robots: RobotClient) -> None:
    await robots.wecom(HELLO)
    await robots.dingtalk(HELLO)
    await robots.dingtalk({"msgtype": "text", "text": {}})

    _, wecom = await call(robots, "GET", "/_sandbox/messages?channel=wecom_robot")
    _, alerts = await call(robots, "GET", "/_sandbox/messages?robot=alerts")
    _, delivered = await call(robots, "GET", "/_sandbox/messages?channel=dingtalk_robot&delivered=true")

    assert [m["robot"] for m in wecom] == ["ops"]
    assert [m["errcode"] for m in alerts] == [0, 40035]
    assert [m["errcode"] for m in delivered] == [0]


async def test_deleting_messages_clears_them_and_the_rate_windows(
    robots: RobotClient, state: SandboxState
) -> None:
    for _ in range(21):
        await robots.dingtalk(HELLO)

    status, _ = await call(robots, "DELETE", "/_sandbox/messages")

    assert status == 204
    assert state.received() == []
    assert (await robots.dingtalk(HELLO)).errcode == 0


async def test_robots_lists_names_and_channels_but_no_credentials(robots: RobotClient) -> None:
    async with robots.session.get(f"{robots.base_url}/_sandbox/robots") as response:
        raw = await response.text()
        listed = await response.json()

    assert sorted((r["channel"], r["name"]) for r in listed) == [
        ("dingtalk_robot", "alerts"),
        ("dingtalk_robot", "keywords"),
        ("dingtalk_robot", "signed"),
        ("wecom_robot", "ops"),
    ]
    assert next(r for r in listed if r["name"] == "signed")["signed"] is True
    for secret in (WECOM_KEY, DING_TOKEN, DING_SIGNED_TOKEN, DING_SECRET, DING_KEYWORD_TOKEN):
        assert secret not in raw


async def test_advancing_the_clock_moves_sandbox_time(robots: RobotClient, state: SandboxState) -> None:
    before = state.clock.now()

    status, answer = await call(robots, "POST", "/_sandbox/clock", {"advance": 3600})

    assert status == 200
    assert answer["now"] >= before + 3600
    assert state.clock.now() >= before + 3600


@pytest.mark.parametrize("body", [{}, {"advance": "soon"}, {"advance": True}, [1]])
async def test_a_malformed_clock_request_is_refused(robots: RobotClient, body: Any) -> None:
    status, answer = await call(robots, "POST", "/_sandbox/clock", body)

    assert status == 400
    assert "error" in answer


async def test_a_fault_injected_over_http_is_played(robots: RobotClient) -> None:
    status, _ = await call(
        robots,
        "POST",
        "/_sandbox/faults",
        {"channel": "wecom_robot", "robot": "ops", "errcode": -1, "errmsg": "system busy"},
    )

    assert status == 201
    assert (await robots.wecom(HELLO)).json == {"errcode": -1, "errmsg": "system busy"}


async def test_pending_faults_can_be_dropped(robots: RobotClient) -> None:
    await call(
        robots, "POST", "/_sandbox/faults", {"channel": "wecom_robot", "robot": "ops", "http_status": 500}
    )

    status, _ = await call(robots, "DELETE", "/_sandbox/faults")

    assert status == 204
    assert (await robots.wecom(HELLO)).errcode == 0


@pytest.mark.parametrize(
    ("body", "expected_status"),
    [
        ({"channel": "wecom_robot", "robot": "nobody", "http_status": 500}, 404),
        ({"channel": "wecom_robot", "robot": "ops"}, 400),
        ({"channel": "wecom_robot", "robot": "ops", "http_status": "500"}, 400),
        ({"channel": "wecom_robot", "robot": "ops", "http_status": 500, "colour": "red"}, 400),
        ({"robot": "ops", "http_status": 500}, 400),
    ],
    ids=["unknown robot", "no fault", "status as text", "unknown field", "no channel"],
)
async def test_a_malformed_fault_request_is_refused(
    robots: RobotClient, body: dict[str, Any], expected_status: int
) -> None:
    status, answer = await call(robots, "POST", "/_sandbox/faults", body)

    assert status == expected_status
    assert "error" in answer


async def test_apps_lists_names_channels_and_agent_ids_but_no_secrets(
    robots: RobotClient, apps: AppClient
) -> None:
    token = await apps.wecom_token()
    async with robots.session.get(f"{robots.base_url}/_sandbox/apps") as response:
        raw = await response.text()
        listed = await response.json()

    assert sorted((a["channel"], a["name"], a["agent_id"]) for a in listed) == [
        ("dingtalk_work", DING_APP, DING_AGENT_ID),
        ("wecom_app", WECOM_APP, WECOM_AGENT_ID),
    ]
    for secret in (CORP_SECRET, DING_APP_SECRET, token):
        assert secret not in raw


async def test_gettoken_calls_are_counted_over_http(robots: RobotClient, apps: AppClient) -> None:
    await apps.wecom_token()
    await apps.wecom_token()

    status, answer = await call(robots, "GET", f"/_sandbox/apps/{WECOM_APP}/gettoken-calls")

    assert (status, answer) == (200, {"calls": 2})


async def test_tokens_can_be_expired_and_revoked_over_http(robots: RobotClient, apps: AppClient) -> None:
    body = {
        "agent_id": DING_AGENT_ID,
        "userid_list": "user01",
        "msg": {"msgtype": "text", "text": {"content": "x"}},
    }
    first = await apps.ding_token()

    expired, _ = await call(robots, "POST", f"/_sandbox/apps/{DING_APP}/expire-tokens")
    assert expired == 204
    assert (await apps.ding_send(body, token=first)).errcode == 42001

    second = await apps.ding_token()
    revoked, _ = await call(robots, "POST", f"/_sandbox/apps/{DING_APP}/revoke-token", {"legacy": True})
    assert revoked == 204
    assert (await apps.ding_send(body, token=second)).errcode == 40014

    third = await apps.ding_token()
    async with robots.session.post(f"{robots.base_url}/_sandbox/apps/{DING_APP}/revoke-token") as response:
        assert response.status == 204
    assert (await apps.ding_send(body, token=third)).errcode == 88


async def test_recalled_ids_are_listed_over_http(robots: RobotClient, apps: AppClient) -> None:
    body = {"touser": "zhangsan", "agentid": WECOM_AGENT_ID, "msgtype": "text", "text": {"content": "x"}}
    msgid = (await apps.wecom_send(body)).json["msgid"]
    await apps.wecom_recall(msgid)

    status, answer = await call(robots, "GET", f"/_sandbox/apps/{WECOM_APP}/recalled")

    assert (status, answer) == (200, {"recalled": [msgid]})


async def test_media_lists_records_without_content(robots: RobotClient, apps: AppClient) -> None:
    media_id = (await apps.wecom_upload("file", b"%PDF-1.7 report", "report.pdf")).json["media_id"]

    status, for_app = await call(robots, "GET", f"/_sandbox/media?app={WECOM_APP}")
    _, everything = await call(robots, "GET", "/_sandbox/media")

    assert status == 200
    [entry] = for_app
    assert entry["owner"] == WECOM_APP and entry["media_id"] == media_id
    assert set(entry) == {
        "owner",
        "media_id",
        "type",
        "filename",
        "size",
        "sha256",
        "content_type",
        "created_at",
    }
    assert everything == for_app


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/_sandbox/apps/nobody/gettoken-calls"),
        ("POST", "/_sandbox/apps/nobody/expire-tokens"),
        ("POST", "/_sandbox/apps/nobody/revoke-token"),
        ("GET", "/_sandbox/apps/nobody/recalled"),
        ("GET", "/_sandbox/media?app=nobody"),
    ],
)
async def test_an_unknown_app_is_404(robots: RobotClient, method: str, path: str) -> None:
    status, answer = await call(robots, method, path)

    assert status == 404
    assert "error" in answer


async def test_a_fault_with_a_path_can_be_injected_over_http(robots: RobotClient, apps: AppClient) -> None:
    fault = {"channel": "wecom_app", "robot": WECOM_APP, "errcode": 45009, "path": "/cgi-bin/media/upload"}
    bad = {**fault, "path": "/nowhere"}

    assert (await call(robots, "POST", "/_sandbox/faults", fault))[0] == 201
    assert (await call(robots, "POST", "/_sandbox/faults", bad))[0] == 400
    assert (await apps.wecom_gettoken()).errcode == 0
    assert (await apps.wecom_upload("file", b"%PDF-1.7 report")).errcode == 45009
