"""Configuration: ${ENV} values, one line naming the field when a file is bad, and open only if asked."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gateway.config import CONFIG_ENV, ConfigError, load_config, parse_config
from gateway.redaction import redact

REPO = Path(__file__).resolve().parents[2]
SECRET = "SECunit-test-secret-8d41c0"
TOKEN = "unit-test-token-51fe77"


def config_text(body: str) -> str:
    return textwrap.dedent(body)


def config_error(text: str, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(config_text(text), environ=environ or {})
    return str(caught.value)


def test_env_references_are_replaced_by_the_environment_value() -> None:
    config = parse_config(
        config_text(
            """
            server:
              listen: ${LISTEN}
            auth: none
            accounts:
              ops:
                channel: dingtalk_robot
                access_token: ${DING_TOKEN}
                secret: ${DING_SECRET}
                base_url: http://${SANDBOX_HOST}:8480
            """
        ),
        environ={
            "LISTEN": "0.0.0.0:7000",
            "DING_TOKEN": TOKEN,
            "DING_SECRET": SECRET,
            "SANDBOX_HOST": "sandbox.internal",
        },
    )
    account = config.accounts["ops"]
    assert config.server.listen == "0.0.0.0:7000"
    assert account.access_token.get_secret_value() == TOKEN  # type: ignore[attr-defined]
    assert account.secret.get_secret_value() == SECRET  # type: ignore[attr-defined]
    assert str(account.base_url) == "http://sandbox.internal:8480/"


def test_env_reference_with_default_uses_the_default_only_when_the_variable_is_unset() -> None:
    text = config_text(
        """
        server:
          listen: ${LISTEN:-127.0.0.1:6000}
        auth: none
        accounts:
          ops:
            channel: wecom_robot
            key: ${WECOM_KEY:-default-key-0001}
            timeout_seconds: ${TIMEOUT:-2.5}
        """
    )
    defaults = parse_config(text, environ={})
    assert defaults.server.listen == "127.0.0.1:6000"
    assert defaults.accounts["ops"].key.get_secret_value() == "default-key-0001"  # type: ignore[attr-defined]
    assert defaults.accounts["ops"].timeout_seconds == 2.5

    overridden = parse_config(text, environ={"LISTEN": "0.0.0.0:7000", "WECOM_KEY": "env-key-0002"})
    assert overridden.server.listen == "0.0.0.0:7000"
    assert overridden.accounts["ops"].key.get_secret_value() == "env-key-0002"  # type: ignore[attr-defined]


def test_missing_env_variable_names_the_field_and_the_variable() -> None:
    message = config_error(
        """
        accounts:
          ops:
            channel: dingtalk_robot
            access_token: ${DING_TOKEN}
        """
    )
    assert "accounts.ops.access_token" in message
    assert "DING_TOKEN" in message
    assert "\n" not in message


def test_unknown_channel_names_the_field_and_lists_known_channels() -> None:
    message = config_error(
        """
        accounts:
          pager:
            channel: fax_machine
        """
    )
    assert "accounts.pager.channel" in message
    assert "fax_machine" in message
    assert "dingtalk_robot" in message
    assert "wecom_robot" in message


BAD_FIELDS = {
    "secret without SEC prefix": (
        f"""
        accounts:
          x:
            channel: dingtalk_robot
            access_token: {TOKEN}
            secret: not-a-sec-{SECRET}
        """,
        "accounts.x.secret",
    ),
    "negative timeout": (
        f"""
        accounts:
          x:
            channel: dingtalk_robot
            access_token: {TOKEN}
            timeout_seconds: -1
        """,
        "accounts.x.timeout_seconds",
    ),
    "unknown account field": (
        f"""
        accounts:
          x:
            channel: wecom_robot
            key: {TOKEN}
            secrte: {SECRET}
        """,
        "accounts.x.secrte",
    ),
    "credential of the wrong type": (
        f"""
        accounts:
          x:
            channel: wecom_robot
            key: [{TOKEN}]
        """,
        "accounts.x.key",
    ),
    "unknown top-level section": (
        """
        servre:
          listen: 127.0.0.1:50051
        """,
        "servre",
    ),
    "bad listen address": (
        """
        server:
          listen: localhost
        """,
        "server.listen",
    ),
    "unknown token store": (
        """
        token_store: memcached://127.0.0.1
        """,
        "token_store",
    ),
    "unknown auth mode": (
        """
        auth: open
        """,
        "auth",
    ),
}


@pytest.mark.parametrize(("text", "field"), BAD_FIELDS.values(), ids=BAD_FIELDS.keys())
def test_bad_field_is_one_line_naming_the_field_without_the_secret(text: str, field: str) -> None:
    message = config_error(text)
    assert "\n" not in message
    assert field in message
    assert SECRET not in message
    assert TOKEN not in message


def test_yaml_syntax_error_is_one_line_without_the_secret() -> None:
    message = config_error(
        f"""
        accounts:
          x:
            channel: dingtalk_robot
            access_token: [{TOKEN}
        """
    )
    assert "\n" not in message
    assert TOKEN not in message


def test_empty_credential_is_a_config_error() -> None:
    message = config_error(
        """
        accounts:
          x:
            channel: dingtalk_robot
            access_token: ${DING_TOKEN:-}
        """
    )
    assert "accounts.x.access_token" in message


def test_loaded_credentials_are_masked_by_redaction() -> None:
    token, key = "redaction-check-token-3a9e", "redaction-check-key-7c21"
    parse_config(
        config_text(
            f"""
            auth: none
            accounts:
              ding:
                channel: dingtalk_robot
                access_token: {token}
              wecom:
                channel: wecom_robot
                key: {key}
            """
        )
    )
    cleaned = redact(f"failed with {token} and {key}")
    assert token not in cleaned
    assert key not in cleaned


# -- who may call: tenants with API keys, or auth: none asked for in so many words -------------------

OPEN_BY_ACCIDENT = (
    "config: tenants: none configured; add tenants with api_keys, "
    "or set auth: none to serve without authentication (development only)"
)
ONE_ACCOUNT = """
accounts:
  ops:
    channel: wecom_robot
    key: auth-test-key-9d02
"""
ONE_TENANT = f"""
tenants:
  - name: payments
    api_keys: ["sha256:{"0" * 64}"]
    accounts: [ops]
"""


def test_a_config_without_tenants_refuses_to_start_unless_it_asks_to_run_open() -> None:
    assert config_error(ONE_ACCOUNT) == OPEN_BY_ACCIDENT
    assert config_error("auth: api_keys\n" + ONE_ACCOUNT) == OPEN_BY_ACCIDENT


def test_an_empty_config_refuses_to_start_for_the_same_reason() -> None:
    assert config_error("") == OPEN_BY_ACCIDENT


def test_auth_none_without_tenants_runs_open() -> None:
    assert parse_config("auth: none\n" + ONE_ACCOUNT).auth == "none"


def test_tenants_authenticate_by_default() -> None:
    config = parse_config(ONE_ACCOUNT + ONE_TENANT)
    assert config.auth == "api_keys"
    assert [tenant.name for tenant in config.tenants] == ["payments"]


def test_auth_none_with_tenants_is_refused_as_ambiguous() -> None:
    message = config_error("auth: none\n" + ONE_ACCOUNT + ONE_TENANT)
    assert message.startswith("config: auth: none conflicts with the configured tenants (payments);")
    assert "\n" not in message


def test_the_embedded_example_config_authenticates_its_demo_tenant(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    config = load_config(None)
    assert config.auth == "api_keys"
    assert [tenant.name for tenant in config.tenants] == ["demo"]


def test_embedded_example_config_loads_when_no_path_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    config = load_config(None)
    assert {"ops-dingtalk", "ops-wecom"} <= set(config.accounts)
    assert config.accounts["ops-dingtalk"].channel == "dingtalk_robot"
    assert config.accounts["ops-wecom"].channel == "wecom_robot"


def test_config_path_comes_from_the_environment_when_not_given(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(
        "auth: none\naccounts:\n  only-one:\n    channel: wecom_robot\n    key: env-path-key-11\n"
    )
    monkeypatch.setenv(CONFIG_ENV, str(path))
    assert set(load_config(None).accounts) == {"only-one"}


def test_unreadable_config_file_is_a_config_error_naming_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as caught:
        load_config(missing)
    assert str(missing) in str(caught.value)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != CONFIG_ENV}
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_check_config_exits_2_with_one_error_line_on_stderr(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        config_text(
            f"""
            auth: none
            accounts:
              x:
                channel: dingtalk_robot
                access_token: {TOKEN}
                secret: wrong-{SECRET}
            """
        )
    )
    result = run_cli("check-config", "--config", str(bad))
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("notify-gateway: config error:")
    assert "accounts.x.secret" in lines[0]
    assert SECRET not in result.stderr
    assert TOKEN not in result.stderr + result.stdout


def test_check_config_accepts_a_good_file(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("auth: none\naccounts:\n  ops:\n    channel: wecom_robot\n    key: good-key-1234\n")
    result = run_cli("check-config", "--config", str(good))
    assert result.returncode == 0, result.stderr
    assert "ops" in result.stdout
    assert "good-key-1234" not in result.stdout + result.stderr


def test_check_config_refuses_a_file_without_tenants_or_auth_none(tmp_path: Path) -> None:
    open_by_accident = tmp_path / "open.yaml"
    open_by_accident.write_text(ONE_ACCOUNT)
    result = run_cli("check-config", "--config", str(open_by_accident))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"notify-gateway: config error: {open_by_accident}: {OPEN_BY_ACCIDENT.removeprefix('config: ')}"
    ]


# -- every problem in one run, tenants by name, ports in range ----------------------------------------


@pytest.mark.parametrize(
    ("section", "field"),
    [
        ("server: {listen: '127.0.0.1:99999'}", "server.listen: port 99999 is out of range"),
        ("telemetry: {prometheus_listen: '127.0.0.1:99999'}", "telemetry.prometheus_listen: port 99999"),
        ("telemetry: {prometheus_listen: '127.0.0.1:0'}", "telemetry.prometheus_listen: port 0"),
    ],
    ids=["server", "prometheus", "prometheus-any-port"],
)
def test_a_port_out_of_range_is_a_config_error_naming_the_field(section: str, field: str) -> None:
    assert field in config_error("auth: none\n" + section)


def test_server_listen_may_ask_for_any_free_port() -> None:
    assert parse_config("auth: none\nserver: {listen: '127.0.0.1:0'}\n").server.listen == "127.0.0.1:0"


def test_every_problem_in_a_file_is_reported_at_once_one_line_each() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(
            config_text(
                """
                server: {listen: '127.0.0.1:99999'}
                token_store: memcached://127.0.0.1
                tenants:
                  - name: payments
                    api_keys: ["sha256:short"]
                    accounts: [ops, nowhere]
                accounts:
                  ops:
                    channel: wecom_robot
                    key: ${WECOM_KEY}
                  pager:
                    channel: fax_machine
                """
            ),
            environ={},
        )
    lines = caught.value.lines
    assert [line.split(": ")[1] for line in lines] == [
        "accounts.ops.key",
        "accounts.pager.channel",
        "server.listen",
        "token_store",
        "tenants[payments].api_keys",
        "tenants[payments].accounts",
    ]
    assert all(line.startswith("config: ") and "\n" not in line for line in lines)
    assert "'nowhere' is not a configured account" in lines[-1]
    assert str(caught.value) == "; ".join(lines)


def test_tenants_are_named_by_name_in_cross_checks() -> None:
    message = config_error(
        ONE_ACCOUNT
        + config_text(
            f"""
            tenants:
              - name: payments
                api_keys: ["sha256:{"0" * 64}"]
                accounts: [ops]
              - name: payments
                api_keys: ["sha256:{"1" * 64}"]
                accounts: [billing]
            """
        )
    )
    assert message == (
        "config: tenants[payments].name: 'payments' is used twice; "
        "config: tenants[payments].accounts: 'billing' is not a configured account"
    )
