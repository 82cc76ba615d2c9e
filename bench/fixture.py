"""Who exists in the sandbox for one run: one robot or app per scenario and channel, never shared.

Each scenario gets its own credentials, so the sandbox's journal tells per scenario what
arrived and what was refused, and the gateway's app account's gettoken calls are counted
apart from the floor's. Tokens are lower-case hex: Apprise's DingTalk plugin accepts only
`[a-z0-9]+` as a token.
"""

from __future__ import annotations

import secrets
from dataclasses import asdict, dataclass, field
from typing import Any

WECOM_USER = "zhangsan"
"""The WeCom app recipient: a member of the sandbox app's default directory."""


def _hex() -> str:
    return secrets.token_hex(16)


@dataclass(frozen=True)
class DingtalkRobot:
    name: str
    access_token: str = field(default_factory=_hex)


@dataclass(frozen=True)
class WecomRobot:
    name: str
    key: str = field(default_factory=_hex)


@dataclass(frozen=True)
class WecomApp:
    name: str
    agent_id: int
    corp_id: str = field(default_factory=lambda: "ww" + secrets.token_hex(8))
    corp_secret: str = field(default_factory=_hex)


@dataclass(frozen=True)
class Fixture:
    """Everything registered in the sandbox; the names are what its journal records."""

    floor_b_dingtalk: DingtalkRobot = field(default_factory=lambda: DingtalkRobot("floor-b-dingtalk"))
    floor_b_app: WecomApp = field(default_factory=lambda: WecomApp("floor-b-wecom-app", 1000101))
    gateway_dingtalk: DingtalkRobot = field(default_factory=lambda: DingtalkRobot("gateway-dingtalk"))
    gateway_app: WecomApp = field(default_factory=lambda: WecomApp("gateway-wecom-app", 1000102))
    sampled_dingtalk: DingtalkRobot = field(default_factory=lambda: DingtalkRobot("sampled-dingtalk"))
    sampled_app: WecomApp = field(default_factory=lambda: WecomApp("sampled-wecom-app", 1000104))
    minimal_dingtalk: DingtalkRobot = field(default_factory=lambda: DingtalkRobot("minimal-dingtalk"))
    minimal_app: WecomApp = field(default_factory=lambda: WecomApp("minimal-wecom-app", 1000105))
    procs_dingtalk: DingtalkRobot = field(default_factory=lambda: DingtalkRobot("processes-dingtalk"))
    procs_app: WecomApp = field(default_factory=lambda: WecomApp("processes-wecom-app", 1000106))
    queued_dingtalk: DingtalkRobot = field(default_factory=lambda: DingtalkRobot("queued-dingtalk"))
    queued_app: WecomApp = field(default_factory=lambda: WecomApp("queued-wecom-app", 1000103))
    apprise_dingtalk: DingtalkRobot = field(default_factory=lambda: DingtalkRobot("apprise-dingtalk"))
    apprise_wecom: WecomRobot = field(default_factory=lambda: WecomRobot("apprise-wecom-bot"))
    api_key: str = field(default_factory=lambda: "bench-" + secrets.token_hex(16))

    def sandbox_spec(self) -> dict[str, Any]:
        """What the sandbox process registers (see `bench.sandbox_proc`)."""
        return {
            "dingtalk_robots": [
                asdict(r)
                for r in (
                    self.floor_b_dingtalk,
                    self.gateway_dingtalk,
                    self.sampled_dingtalk,
                    self.minimal_dingtalk,
                    self.procs_dingtalk,
                    self.queued_dingtalk,
                    self.apprise_dingtalk,
                )
            ],
            "wecom_robots": [asdict(self.apprise_wecom)],
            "wecom_apps": [asdict(a) for a in self.apps],
            "users": [WECOM_USER],
        }

    def floor_b_wecom_app(self) -> dict[str, Any]:
        """Floor B's WeCom app, as its load spec carries it (`LoadSpec.wecom_app`)."""
        app = self.floor_b_app
        return {"corp_id": app.corp_id, "corp_secret": app.corp_secret, "agent_id": app.agent_id}

    @property
    def apps(self) -> tuple[WecomApp, ...]:
        return (
            self.floor_b_app,
            self.gateway_app,
            self.sampled_app,
            self.minimal_app,
            self.procs_app,
            self.queued_app,
        )

    @property
    def app_names(self) -> tuple[str, ...]:
        return tuple(app.name for app in self.apps)
