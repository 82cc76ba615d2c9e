"""The config's accounts are registered with the sandbox, apps included, under the account's name."""

from __future__ import annotations

from pydantic import BaseModel, SecretStr

from gateway.sandbox import SandboxState
from gateway.sandbox.seed import seed_from_accounts


class WecomAppAccount(BaseModel):
    channel: str = "wecom_app"
    corp_id: str
    corp_secret: SecretStr
    agent_id: int


class DingtalkWorkAccount(BaseModel):
    channel: str = "dingtalk_work"
    app_key: str
    app_secret: SecretStr
    agent_id: int


class UnknownAccount(BaseModel):
    channel: str = "carrier_pigeon"


def test_app_accounts_are_seeded_with_their_credentials_and_agent_ids() -> None:
    state = SandboxState()

    seed_from_accounts(
        state,
        {
            "hr-app": WecomAppAccount(corp_id="ww1", corp_secret=SecretStr("s1"), agent_id=1000002),
            "ding-app": DingtalkWorkAccount(app_key="k1", app_secret=SecretStr("s2"), agent_id=42),
            "pigeon": UnknownAccount(),
        },
    )

    wecom = state.wecom_apps.get("hr-app")
    ding = state.dingtalk_apps.get("ding-app")
    assert (wecom.corp_id, wecom.corp_secret, wecom.agent_id) == ("ww1", "s1", 1000002)
    assert (ding.app_key, ding.app_secret, ding.agent_id) == ("k1", "s2", 42)
    assert "zhangsan" in wecom.users and "user01" in ding.users
