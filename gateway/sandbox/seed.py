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


SEEDERS: dict[str, Callable[[SandboxState, str, BaseModel], None]] = {
    "wecom_robot": _wecom_robot,
    "dingtalk_robot": _dingtalk_robot,
}


def seed_from_accounts(state: SandboxState, accounts: Mapping[str, BaseModel]) -> None:
    for name, settings in accounts.items():
        seeder = SEEDERS.get(str(getattr(settings, "channel", "")))
        if seeder is not None:
            seeder(state, name, settings)
