"""The `/_sandbox/` API shows what arrived and steers the sandbox, without revealing secrets."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.sandbox import SandboxState

from .harness import DING_KEYWORD_TOKEN, DING_SECRET, DING_SIGNED_TOKEN, DING_TOKEN, WECOM_KEY, RobotClient

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
