"""deploy/compose.yaml and the gateway config its containers mount: valid, complete, no secret.

Docker does not run here, so `docker compose up` is not: the file is checked against the
compose-spec schema (the copy check-jsonschema ships) and for what the services need of each other.
"""

from __future__ import annotations

import json
import re
from importlib import resources
from typing import Any

import jsonschema

from gateway.config import parse_config
from gateway.tenants import hash_key
from tests.deploy.deploy_files import DEPLOY, compose, env_example

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:?[-?][^}]*)?\}")
SERVICES = {"gateway", "worker", "redis", "otel-collector", "jaeger", "prometheus", "grafana", "sandbox"}


def compose_spec() -> dict[str, Any]:
    schema = resources.files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json")
    loaded: dict[str, Any] = json.loads(schema.read_text(encoding="utf-8"))
    return loaded


def services() -> dict[str, Any]:
    found: dict[str, Any] = compose()["services"]
    return found


def test_the_compose_file_follows_the_compose_spec() -> None:
    schema = compose_spec()
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(compose()), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


def test_the_schema_check_catches_a_broken_file() -> None:
    broken = compose()
    broken["services"]["gateway"]["ports"] = "50051"  # a string where a list belongs
    broken["services"]["redis"]["restart_policy"] = "always"  # no such key
    messages = [e.message for e in jsonschema.Draft202012Validator(compose_spec()).iter_errors(broken)]
    assert any("'50051' is not of type 'array'" in m for m in messages), messages
    assert any("'restart_policy' was unexpected" in m for m in messages), messages


def test_it_runs_the_gateway_the_worker_and_what_they_report_to() -> None:
    found = services()
    assert set(found) == SERVICES
    assert found["gateway"]["command"][0] == "serve"
    assert found["worker"]["command"][0] == "worker"
    assert found["worker"]["healthcheck"] == {"disable": True}  # it serves no gRPC health
    assert found["sandbox"]["profiles"] == ["sandbox"]
    for role in ("gateway", "worker"):
        assert found[role]["depends_on"]["redis"]["condition"] == "service_healthy"


def test_redis_keeps_an_append_only_file_on_a_volume() -> None:
    redis = services()["redis"]
    command = redis["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert "redis-data:/data" in redis["volumes"]
    assert "redis-data" in compose()["volumes"]


def test_every_mounted_file_exists_and_every_port_stays_on_loopback() -> None:
    for name, service in services().items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (DEPLOY / source).exists(), f"{name} mounts {source}, which is not in deploy/"
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond the host's loopback"


def test_no_secret_is_written_in_the_compose_file() -> None:
    for name, service in services().items():
        for key, value in (service.get("environment") or {}).items():
            if any(word in key for word in ("SECRET", "TOKEN", "KEY", "PASSWORD", "HASH")):
                assert _VAR.fullmatch(str(value)), f"{name}.{key} must come from the environment"


def test_the_mounted_gateway_config_is_valid_with_the_environment_compose_passes() -> None:
    environment = {k: str(v) for k, v in services()["gateway"]["environment"].items()}
    example = env_example()
    # The example holds placeholders: a key hash of the right shape stands in for the real one.
    example["NOTIFY_API_KEY_HASH"] = hash_key("a key made by notify-gateway new-key")
    resolved = {}
    for name, value in environment.items():
        match = _VAR.fullmatch(value)
        if match is None:
            resolved[name] = value
        elif match.group(1) in example:
            resolved[name] = example[match.group(1)]
        elif (match.group(2) or "").startswith(":-"):
            resolved[name] = match.group(2)[2:]
    text = (DEPLOY / "gateway.yaml").read_text(encoding="utf-8")
    config = parse_config(text, source="deploy/gateway.yaml", environ=resolved)
    assert config.token_store == "redis://redis:6379/0"
    assert config.telemetry.exporter == "otlp" and config.telemetry.endpoint == "http://otel-collector:4317"
    assert config.telemetry.prometheus_listen == "0.0.0.0:9464"
    assert config.queue.workers_in_serve is False  # the worker service delivers queued messages
    assert set(config.accounts) == {"ops-dingtalk", "ops-wecom", "corp-app", "ding-app"}


def test_every_variable_the_gateway_config_needs_is_passed_by_compose_and_in_the_example() -> None:
    text = (DEPLOY / "gateway.yaml").read_text(encoding="utf-8")
    required = {name for name, default in _VAR.findall(text) if not default}
    passed = set(services()["gateway"]["environment"])
    assert required <= passed, f"compose does not pass {sorted(required - passed)}"
    asked = {
        name
        for service in services().values()
        for value in (service.get("environment") or {}).values()
        for name, default in _VAR.findall(str(value))
        if default.startswith(":?")
    }
    assert asked <= set(env_example()), f".env.example lacks {sorted(asked - set(env_example()))}"
