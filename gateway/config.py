"""The gateway's configuration: one YAML file, ``${ENV}`` values, validated once at start-up.

A bad file stops start-up with one line naming the field (``ConfigError``); nothing downstream
re-checks configuration. Account sections are validated by the settings model that their
channel module declares, so adding a channel never touches this file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from gateway.channels.registry import CHANNELS
from gateway.channels.settings import AccountSettings
from gateway.redaction import register_secrets
from gateway.tenants import ALL_ACCOUNTS, AuthMode, parse_key_hash

CONFIG_ENV = "NOTIFY_GATEWAY_CONFIG"
EXAMPLE_CONFIG = "example-config.yaml"
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ConfigError(Exception):
    """A configuration problem, worded as one line that names the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TlsSettings(_Strict):
    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None  # set to require client certificates (mTLS)


class ServerSettings(_Strict):
    listen: str = "127.0.0.1:50051"
    grace_period_seconds: float = Field(default=10.0, ge=0)
    max_receive_message_bytes: int = Field(default=4 * 1024 * 1024, gt=0)
    # What a caller may send on a stream ahead of what the gateway has read (HTTP/2 window): the
    # memory an upload costs in gRPC's buffers. Larger helps uploads over high-latency links.
    receive_window_bytes: int = Field(default=1024 * 1024, ge=64 * 1024, le=64 * 1024 * 1024)
    tls: TlsSettings | None = None

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError("must be host:port, for example 127.0.0.1:50051")
        return value


class TelemetrySettings(_Strict):
    exporter: Literal["none", "console", "otlp"] = "none"  # where traces (and, for otlp, metrics) go
    endpoint: str | None = None  # OTLP collector; the exporter's default when unset
    protocol: Literal["grpc", "http"] = "grpc"  # OTLP over gRPC (4317) or HTTP/protobuf (4318)
    prometheus_listen: str | None = None  # host:port to serve /metrics for Prometheus
    sample_ratio: float = Field(default=1.0, ge=0, le=1)  # share of traces recorded (a caller's choice wins)
    service_name: str = "notify-gateway"


class MessageSettings(_Strict):
    """How long the gateway remembers messages, and how it follows them after Send."""

    retention_hours: float = Field(default=7 * 24, gt=0)  # records, GetMessage and ListMessages
    # A Send in progress renews its claim this often x3; a replica that dies holds its messages
    # this long at most before they are resolved (ACCEPTED -> FAILED, SENDING -> UNKNOWN).
    owner_lease_seconds: float = Field(default=30.0, ge=1, le=3600)
    report_first_poll_seconds: float = Field(default=1.0, gt=0)  # first delivery-report poll after a send
    report_max_interval_seconds: float = Field(default=300.0, gt=0)
    report_poll_hours: float = Field(default=24.0, gt=0)  # then the record stays SENT, marked final


class UploadSettings(_Strict):
    """What one replica spends on UploadMedia streams, so slow or abusive callers cannot exhaust it."""

    max_concurrent: int = Field(default=32, gt=0)  # streams at once; beyond: RESOURCE_EXHAUSTED
    memory_bytes: int = Field(default=256 * 1024, ge=0)  # held in memory per upload; the rest is spooled
    spool_directory: Path | None = None  # where spool files go (unnamed); the system temp dir when unset
    idle_timeout_seconds: float = Field(default=30.0, gt=0)  # longest wait for the stream's next part
    max_seconds: float = Field(default=300.0, gt=0)  # the whole stream must arrive within this

    @field_validator("spool_directory")
    @classmethod
    def _writable_directory(cls, value: Path | None) -> Path | None:
        # Checked now: found missing at the first large upload, it would fail that upload instead.
        if value is not None and not (value.is_dir() and os.access(value, os.W_OK | os.X_OK)):
            raise ValueError(f"{value} is not a directory the gateway can write to")
        return value


class QuotaSettings(_Strict):
    sends_per_minute: int | None = Field(default=None, gt=0)  # across all replicas


class TenantSettings(_Strict):
    name: str = Field(min_length=1)
    api_keys: list[str] = Field(min_length=1)  # sha256:<hex> hashes, never keys in clear
    accounts: list[str] = Field(min_length=1)  # account ids this tenant may use, or "*"
    quotas: QuotaSettings = QuotaSettings()

    @field_validator("api_keys")
    @classmethod
    def _hashes(cls, values: list[str]) -> list[str]:
        for value in values:
            parse_key_hash(value)
        return values


class Config(_Strict):
    server: ServerSettings = ServerSettings()
    token_store: str = "memory://"
    key_namespace: str = Field(default="notify", pattern=r"^[A-Za-z0-9_.-]+$")  # prefix of every Redis key
    telemetry: TelemetrySettings = TelemetrySettings()
    messages: MessageSettings = MessageSettings()
    uploads: UploadSettings = UploadSettings()
    auth: AuthMode = "api_keys"  # "none" serves every caller unauthenticated: development only
    tenants: list[TenantSettings] = Field(default_factory=list)
    accounts: dict[str, AccountSettings] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _tenants_name_known_accounts(self) -> Config:
        names: set[str] = set()
        for i, tenant in enumerate(self.tenants):
            if tenant.name in names:
                raise ValueError(f"tenants.{i}.name: {tenant.name!r} is used twice")
            names.add(tenant.name)
            for account in tenant.accounts:
                if account != ALL_ACCOUNTS and account not in self.accounts:
                    raise ValueError(f"tenants.{i}.accounts: {account!r} is not a configured account")
        return self

    @model_validator(mode="after")
    def _auth_is_chosen(self) -> Config:
        """Open must be asked for: a file that merely lacks tenants would otherwise serve everyone."""
        if self.auth == "api_keys" and not self.tenants:
            raise ValueError(
                "tenants: none configured; add tenants with api_keys, "
                "or set auth: none to serve without authentication (development only)"
            )
        if self.auth == "none" and self.tenants:
            names = ", ".join(tenant.name for tenant in self.tenants)
            raise ValueError(
                f"auth: none conflicts with the configured tenants ({names}); "
                "remove auth: none to require their API keys, or remove the tenants"
            )
        return self

    @field_validator("token_store")
    @classmethod
    def _store_url(cls, value: str) -> str:
        if not value.startswith(("memory://", "redis://", "rediss://", "unix://")):
            raise ValueError("must be memory:// or a redis:// URL")
        return value


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Loads the file at path, else $NOTIFY_GATEWAY_CONFIG, else the embedded example config."""
    if path is None:
        path = os.environ.get(CONFIG_ENV) or None
    if path is None:
        text = resources.files("gateway").joinpath(EXAMPLE_CONFIG).read_text(encoding="utf-8")
        source = f"(embedded {EXAMPLE_CONFIG})"
    else:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"config {path}: cannot read: {exc.strerror}") from None
        source = str(path)
    return parse_config(text, source=source)


def parse_config(text: str, *, source: str = "config", environ: Mapping[str, str] | None = None) -> Config:
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        # PyYAML's own text quotes the offending line, which may hold a credential: name the place only.
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise ConfigError(f"{source}: not valid YAML{where}: {problem}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of sections")
    try:
        raw = _substitute(raw, os.environ if environ is None else environ, ())
        accounts_raw = raw.pop("accounts", None) or {}
        if not isinstance(accounts_raw, dict):
            raise _FieldError("accounts: must be a mapping of account id to settings")
        accounts = {str(k): _account(str(k), v) for k, v in accounts_raw.items()}
        config = Config.model_validate({**raw, "accounts": accounts})
    except ValidationError as exc:
        raise ConfigError(f"{source}: {_first_error(exc)}") from None
    except _FieldError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    register_secrets(s for account in config.accounts.values() for s in account.secret_values())
    redis_password = urlsplit(config.token_store).password
    if redis_password:
        register_secrets([redis_password])
    return config


class _FieldError(Exception):
    pass


def _account(account_id: str, raw: Any) -> AccountSettings:
    where = f"accounts.{account_id}"
    if not isinstance(raw, dict):
        raise _FieldError(f"{where}: must be a mapping with a channel")
    channel = raw.get("channel")
    adapter = CHANNELS.get(str(channel))
    if adapter is None:
        known = ", ".join(sorted(CHANNELS))
        raise _FieldError(f"{where}.channel: {channel!r} is not a channel; known: {known}")
    try:
        return adapter.Settings.model_validate(raw)
    except ValidationError as exc:
        raise _FieldError(f"{where}.{_first_error(exc)}") from None


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    field = ".".join(str(part) for part in error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown field"
    return f"{field}: {message}" if field else message


def _substitute(value: Any, environ: Mapping[str, str], where: tuple[str, ...]) -> Any:
    """Replaces ``${VAR}`` / ``${VAR:-default}`` in every string, so secrets stay out of the file."""
    if isinstance(value, dict):
        return {k: _substitute(v, environ, (*where, str(k))) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, environ, (*where, str(i))) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def lookup(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in environ:
            return environ[name]
        if default is not None:
            return default
        raise _FieldError(f"{'.'.join(where)}: environment variable {name} is not set")

    return _ENV_REF.sub(lookup, value)
