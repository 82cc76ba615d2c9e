"""Each robot's and app's live state for the inbox's side panel: tokens, rate window, faults.

Read from `SandboxState` at request time; nothing here is a credential (a token shows as its
state and time left, never its value).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from gateway.sandbox.access_tokens import TokenBook
from gateway.sandbox.applications import DINGTALK_RECIPIENTS_PER_MINUTE, WECOM_MESSAGES_PER_MEMBER_MINUTE
from gateway.sandbox.channels import DINGTALK_ROBOT, DINGTALK_WORK, WECOM_APP, WECOM_ROBOT
from gateway.sandbox.faults import Fault
from gateway.sandbox.robots import ROBOT_MESSAGES_PER_MINUTE
from gateway.sandbox.state import SandboxState


def accounts(state: SandboxState) -> list[dict[str, Any]]:
    """Every robot and app, robots first, each with what the vendor knows of it right now."""
    now = state.clock.now()
    counts: dict[tuple[str, str | None], int] = {}
    for entry in state.delivered():
        counts[(entry.channel, entry.robot)] = counts.get((entry.channel, entry.robot), 0) + 1
    shown: list[dict[str, Any]] = []
    for wecom_robot in state.wecom_robots:
        shown.append(
            {
                **_common(state, WECOM_ROBOT, wecom_robot.name, counts),
                "rate": _rate(wecom_robot.rate.used(now), ROBOT_MESSAGES_PER_MINUTE, "a minute"),
            }
        )
    for dingtalk_robot in state.dingtalk_robots:
        throttled = dingtalk_robot.throttled_until
        shown.append(
            {
                **_common(state, DINGTALK_ROBOT, dingtalk_robot.name, counts),
                "rate": _rate(dingtalk_robot.rate.used(now), ROBOT_MESSAGES_PER_MINUTE, "a minute"),
                "throttled_for": max(0.0, throttled - now)
                if throttled is not None and throttled > now
                else None,
                "signed": dingtalk_robot.secret is not None,
                "disabled": dingtalk_robot.disabled,
            }
        )
    for wecom_app in state.wecom_apps:
        busiest = max((rate.used(now) for rate in wecom_app.member_rates.values()), default=0)
        shown.append(
            {
                **_common(state, WECOM_APP, wecom_app.name, counts),
                "agent_id": wecom_app.agent_id,
                "rate": _rate(busiest, WECOM_MESSAGES_PER_MEMBER_MINUTE, "a minute to one member"),
                "token": _token(state.wecom_apps.tokens, wecom_app.name, now),
                "gettoken_calls": state.gettoken_calls(wecom_app.name),
            }
        )
    for dingtalk_app in state.dingtalk_apps:
        shown.append(
            {
                **_common(state, DINGTALK_WORK, dingtalk_app.name, counts),
                "agent_id": dingtalk_app.agent_id,
                "rate": _rate(
                    dingtalk_app.rate.used(now), DINGTALK_RECIPIENTS_PER_MINUTE, "recipients a minute"
                ),
                "token": _token(state.dingtalk_apps.tokens, dingtalk_app.name, now),
                "gettoken_calls": state.gettoken_calls(dingtalk_app.name),
            }
        )
    return shown


def _common(
    state: SandboxState, channel: str, name: str, counts: dict[tuple[str, str | None], int]
) -> dict[str, Any]:
    return {
        "channel": channel,
        "name": name,
        "delivered": counts.get((channel, name), 0),
        "faults": [_fault(fault) for fault in state.faults.pending(channel, name)],
    }


def _rate(used: int, limit: int, unit: str) -> dict[str, Any]:
    return {"used": used, "limit": limit, "window_seconds": 60, "unit": unit}


def _token(book: TokenBook, owner: str, now: float) -> dict[str, Any]:
    token = book.current(owner)
    if token is None:
        return {"state": "none", "expires_in": None}
    return {"state": token.state(now).value, "expires_in": token.expires_in(now)}


def _fault(fault: Fault) -> dict[str, Any]:
    return {key: value for key, value in asdict(fault).items() if value is not None}
