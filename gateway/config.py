"""The gateway's configuration: one YAML file, ``${ENV}`` values, validated once at start-up.

A bad file stops start-up with one line per problem, each naming its field, all of them at once
(``ConfigError``), so fixing a file takes one round; nothing downstream re-checks configuration.
Account sections are validated by the settings model that their channel module declares, so
adding a channel never touches this file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from gateway.channels.registry import CHANNELS
from gateway.channels.settings import AccountSettings
from gateway.redaction import register_secrets
from gateway.tenants import ALL_ACCOUNTS, AuthMode, parse_key_hash

CONFIG_ENV = "NOTIFY_GATEWAY_CONFIG"
EXAMPLE_CONFIG = "example-config.yaml"
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ConfigError(Exception):
    """Every problem found in a config file, one line each naming its field.

    ``lines`` keeps them apart for a terminal (check-config prints one per line); the message joins
    them with "; " so a log record of the error stays a single line.
    """

    def __init__(self, *lines: str) -> None:
        super().__init__("; ".join(lines))
        self.lines = lines


def parse_listen(value: str, *, allow_port_zero: bool = False) -> tuple[str, int]:
    """Splits ``host:port`` and checks the port's range.

    Checked here because the servers do not: grpc given 127.0.0.1:99999 binds a random port and
    says nothing. Port 0 (any free port) only where the caller can learn the port it got.
    """
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError("must be host:port, for example 127.0.0.1:50051")
    lowest = 0 if allow_port_zero else 1
    if not lowest <= int(port) <= 65535:
        raise ValueError(f"port {port} is out of range ({lowest}-65535)")
    return host, int(port)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TlsSettings(_Strict):
    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None  # set to require client certificates (mTLS)


class ServerSettings(_Strict):
    listen: str = "127.0.0.1:50051"
    grace_period_seconds: float = Field(default=10.0, ge=0)
    # On SIGTERM, health says NOT_SERVING this long while the port still accepts, so load
    # balancers stop routing here before it closes; then the grace period.
    drain_delay_seconds: float = Field(default=5.0, ge=0)
    # How often the store (Redis) is pinged; the service's health is NOT_SERVING while it fails.
    health_check_seconds: float = Field(default=5.0, gt=0)
    max_receive_message_bytes: int = Field(default=4 * 1024 * 1024, gt=0)
    # What a caller may send on a stream ahead of what the gateway has read (HTTP/2 window): the
    # memory an upload costs in gRPC's buffers. Larger helps uploads over high-latency links.
    receive_window_bytes: int = Field(default=1024 * 1024, ge=64 * 1024, le=64 * 1024 * 1024)
    tls: TlsSettings | None = None
    # The loop `serve` and `worker` run on (gateway/event_loop.py): auto is uvloop where installed.
    event_loop: Literal["auto", "uvloop", "asyncio"] = "auto"

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        parse_listen(value, allow_port_zero=True)  # 0: tests bind any free port and read it back
        return value


class TelemetrySettings(_Strict):
    exporter: Literal["none", "console", "otlp"] = "none"  # where traces (and, for otlp, metrics) go
    endpoint: str | None = None  # OTLP collector; the exporter's default when unset
    protocol: Literal["grpc", "http"] = "grpc"  # OTLP over gRPC (4317) or HTTP/protobuf (4318)
    prometheus_listen: str | None = None  # host:port to serve /metrics for Prometheus
    sample_ratio: float = Field(default=1.0, ge=0, le=1)  # share of traces recorded (a caller's choice wins)
    service_name: str = "notify-gateway"

    @field_validator("prometheus_listen")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        if value is not None:
            parse_listen(value)  # no port 0: a scraper needs to know where /metrics is
        return value


class HttpSettings(_Strict):
    """The HTTP/JSON face (gateway/http): off unless ``listen`` is set.

    It calls the gateway's own gRPC server, so auth, limits and logs are the gRPC ones; these
    settings only bound what the HTTP side itself holds: a request body and how long it waits.
    """

    listen: str | None = None  # host:port; beyond loopback always with tls (API keys cross it)
    # The largest JSON body; server.max_receive_message_bytes when unset. Uploads stream instead.
    max_body_bytes: int | None = Field(default=None, gt=0)
    # The deadline of a unary call; a caller's grpc-timeout header may shorten it, never lengthen it.
    request_timeout_seconds: float = Field(default=30.0, gt=0, le=3600)
    # The deadline of an upload or a watch (uploads.max_seconds still bounds an upload).
    stream_timeout_seconds: float = Field(default=300.0, gt=0, le=24 * 3600)
    tls: TlsSettings | None = None

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        if value is not None:
            parse_listen(value, allow_port_zero=True)  # 0: tests bind any free port and read it back
        return value


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


class QueueSettings(_Strict):
    """Queued delivery: how workers take jobs from Redis Streams and how long they keep trying."""

    # Whether `serve` runs workers beside the API; `notify-gateway worker` runs them alone.
    workers_in_serve: bool = True
    # A job taken by a worker that stops renewing it (the worker died) is reclaimed after this.
    visibility_timeout_seconds: float = Field(default=30.0, ge=1, le=3600)
    # Options.expire_after when a Send gives none: then the message is EXPIRED, never dropped.
    expire_after_seconds: float = Field(default=3600.0, gt=0, le=7 * 24 * 3600)
    # Jobs one worker process holds per account at once (waiting for a rate slot or in delivery).
    in_hand_per_account: int = Field(default=8, ge=1, le=1000)
    # Each vendor attempt's deadline; retries back off from retry_base to retry_max, with jitter.
    attempt_timeout_seconds: float = Field(default=15.0, gt=0, le=300)
    retry_base_seconds: float = Field(default=1.0, gt=0, le=600)
    retry_max_seconds: float = Field(default=60.0, gt=0, le=3600)


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
    http: HttpSettings = HttpSettings()
    messages: MessageSettings = MessageSettings()
    uploads: UploadSettings = UploadSettings()
    queue: QueueSettings = QueueSettings()
    auth: AuthMode = "api_keys"  # "none" serves every caller unauthenticated: development only
    tenants: list[TenantSettings] = Field(default_factory=list)
    accounts: dict[str, AccountSettings] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _sections_agree(self, info: ValidationInfo) -> Config:
        """The checks across sections, for a Config built directly; parse_config runs them itself."""
        if info.context and info.context.get(_CROSS_CHECKED):
            return self
        tenants = [(tenant.name, tenant.accounts) for tenant in self.tenants]
        problems = _cross_problems(self.auth, tenants, self.accounts)
        if problems:
            raise ValueError("; ".join(problems))
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
    unset: dict[tuple[str, ...], str] = {}
    raw = _substitute(raw, os.environ if environ is None else environ, (), unset)
    problems = [
        f"{_field(where, raw)}: environment variable {name} is not set" for where, name in unset.items()
    ]

    def report(loc: Sequence[str | int], message: str) -> None:
        path = tuple(str(part) for part in loc)
        if not any(path[: len(where)] == where for where in unset):  # already reported as unset
            problems.append(f"{_field(path, raw)}: {message}" if path else message)

    accounts_raw = raw.pop("accounts", None) or {}
    accounts: dict[str, AccountSettings] = {}
    if isinstance(accounts_raw, dict):
        for account_id, account_raw in accounts_raw.items():
            try:
                accounts[str(account_id)] = _account(account_raw)
            except ValidationError as exc:
                for loc, message in _errors(exc):
                    report(("accounts", str(account_id), *loc), message)
            except _FieldError as exc:
                report(("accounts", str(account_id), *exc.loc), exc.message)
    else:
        report(("accounts",), "must be a mapping of account id to settings")
    config: Config | None = None
    try:
        config = Config.model_validate({**raw, "accounts": accounts}, context={_CROSS_CHECKED: True})
    except ValidationError as exc:
        for loc, message in _errors(exc):
            report(loc, message)
    tenants = raw.get("tenants") or []
    if isinstance(tenants, list):  # else the tenants field error says so, and there is nothing to cross
        declared = [str(account_id) for account_id in accounts_raw] if isinstance(accounts_raw, dict) else []
        pairs = [(t.get("name"), t.get("accounts")) if isinstance(t, dict) else (None, None) for t in tenants]
        for problem in _cross_problems(raw.get("auth", "api_keys"), pairs, declared):
            problems.append(problem)
    if config is not None and not config.token_store.startswith(("redis://", "rediss://", "unix://")):
        # The queue is Redis Streams: a memory store would lose every queued message with the process.
        problems.extend(
            f"accounts.{account_id}.delivery: queued delivery needs a Redis token_store"
            for account_id, account in config.accounts.items()
            if account.delivery == "queued"
        )
    if problems or config is None:
        raise ConfigError(*(f"{source}: {problem}" for problem in problems))
    register_secrets(s for account in config.accounts.values() for s in account.secret_values())
    redis_password = urlsplit(config.token_store).password
    if redis_password:
        register_secrets([redis_password])
    return config


_CROSS_CHECKED = "cross_checked"  # validation context: parse_config runs _cross_problems itself


def _cross_problems(
    auth: object, tenants: Sequence[tuple[object, object]], accounts: Collection[str]
) -> list[str]:
    """The checks between sections: tenants named once, naming declared accounts; auth agrees with tenants.

    Plain values, so that parse_config can run them on the file's raw sections: pydantic skips model
    validators once any field fails, and these problems would then show only on the next run. A
    tenant naming an account that is declared but invalid is not reported again.
    """
    problems: list[str] = []
    seen: set[str] = set()
    for i, (name, tenant_accounts) in enumerate(tenants):
        where = _tenant(i, name)
        if isinstance(name, str):
            if name in seen:
                problems.append(f"{where}.name: {name!r} is used twice")
            seen.add(name)
        for account in tenant_accounts if isinstance(tenant_accounts, list) else []:
            if isinstance(account, str) and account != ALL_ACCOUNTS and account not in accounts:
                problems.append(f"{where}.accounts: {account!r} is not a configured account")
    # Open must be asked for: a file that merely lacks tenants would otherwise serve everyone.
    if auth == "api_keys" and not tenants:
        problems.append(
            "tenants: none configured; add tenants with api_keys, "
            "or set auth: none to serve without authentication (development only)"
        )
    if auth == "none" and tenants:
        names = ", ".join(str(name) for name, _ in tenants)
        problems.append(
            f"auth: none conflicts with the configured tenants ({names}); "
            "remove auth: none to require their API keys, or remove the tenants"
        )
    return problems


def _tenant(index: int, name: object) -> str:
    """Tenants by name, as people know them; by position only when the name itself is missing."""
    return f"tenants[{name}]" if isinstance(name, str) and name else f"tenants.{index}"


def _field(loc: Sequence[str], raw: Mapping[str, Any]) -> str:
    """The dotted field name, with a tenant's position replaced by its name."""
    tenants = raw.get("tenants")
    if len(loc) >= 2 and loc[0] == "tenants" and loc[1].isdigit() and isinstance(tenants, list):
        index = int(loc[1])
        if index < len(tenants):
            name = tenants[index].get("name") if isinstance(tenants[index], dict) else None
            return ".".join([_tenant(index, name), *loc[2:]])
    return ".".join(loc)


class _FieldError(Exception):
    def __init__(self, loc: tuple[str, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc
        self.message = message


def _account(raw: Any) -> AccountSettings:
    if not isinstance(raw, dict):
        raise _FieldError((), "must be a mapping with a channel")
    channel = raw.get("channel")
    adapter = CHANNELS.get(str(channel))
    if adapter is None:
        known = ", ".join(sorted(CHANNELS))
        raise _FieldError(("channel",), f"{channel!r} is not a channel; known: {known}")
    return adapter.Settings.model_validate(raw)


def _errors(exc: ValidationError) -> list[tuple[tuple[str, ...], str]]:
    """Every error pydantic found, as (field path, message), not only the first."""
    found = []
    for error in exc.errors():
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown field"
        found.append((tuple(str(part) for part in error["loc"]), message))
    return found


def _substitute(
    value: Any, environ: Mapping[str, str], where: tuple[str, ...], unset: dict[tuple[str, ...], str]
) -> Any:
    """Replaces ``${VAR}`` / ``${VAR:-default}`` in every string, so secrets stay out of the file.

    A variable that is not set is recorded in ``unset`` (field -> variable) and left as written, so
    the rest of the file is still checked in the same run.
    """
    if isinstance(value, dict):
        return {k: _substitute(v, environ, (*where, str(k)), unset) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, environ, (*where, str(i)), unset) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def lookup(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in environ:
            return environ[name]
        if default is not None:
            return default
        unset.setdefault(where, name)
        return match.group(0)

    return _ENV_REF.sub(lookup, value)
