"""Registers the config's accounts with the sandbox, so `make run` works without real credentials."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from pydantic import BaseModel, SecretStr

from gateway.sandbox.state import SandboxState


def _secret(settings: BaseModel, name: str) -> str | None:
    value = getattr(settings, name, None)
    return value.get_secret_value() if isinstance(value, SecretStr) else None


def _wecom_robot(state: SandboxState, name: str, settings: BaseModel) -> None:
    state.add_wecom_robot(name, _secret(settings, "key") or "")


def _dingtalk_robot(state: SandboxState, name: str, settings: BaseModel) -> None:
    state.add_dingtalk_robot(
        name, _secret(settings, "access_token") or "", secret=_secret(settings, "secret")
    )


def _wecom_app(state: SandboxState, name: str, settings: BaseModel) -> None:
    state.add_wecom_app(
        name,
        corp_id=str(getattr(settings, "corp_id", "")),
        corp_secret=_secret(settings, "corp_secret") or "",
        agent_id=int(getattr(settings, "agent_id", 0)),
    )


def _dingtalk_work(state: SandboxState, name: str, settings: BaseModel) -> None:
    state.add_dingtalk_app(
        name,
        app_key=str(getattr(settings, "app_key", "")),
        app_secret=_secret(settings, "app_secret") or "",
        agent_id=int(getattr(settings, "agent_id", 0)),
    )


SEEDERS: dict[str, Callable[[SandboxState, str, BaseModel], None]] = {
    "wecom_robot": _wecom_robot,
    "dingtalk_robot": _dingtalk_robot,
    "wecom_app": _wecom_app,
    "dingtalk_work": _dingtalk_work,
}


def seed_from_accounts(state: SandboxState, accounts: Mapping[str, BaseModel]) -> None:
    """Register every account whose channel the sandbox emulates, under the account's name.

    Apps get the default directory (see `SandboxState.add_wecom_app` / `add_dingtalk_app`).
    """
    for name, settings in accounts.items():
        seeder = SEEDERS.get(str(getattr(settings, "channel", "")))
        if seeder is not None:
            seeder(state, name, settings)
