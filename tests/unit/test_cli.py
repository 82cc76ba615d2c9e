"""The command line: what `notify-gateway` prints and exits with, run in-process through cli.main."""

from __future__ import annotations

import importlib.metadata
import io
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.config import CONFIG_ENV
from gateway.tenants import hash_key

COMMANDS = ["serve", "sandbox", "check-config", "hash-key", "new-key"]


@pytest.fixture(autouse=True)
def _no_config_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CONFIG_ENV, raising=False)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        code = main(list(args))
    except SystemExit as exit_:  # argparse's --help, --version and usage errors
        code = int(exit_.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_version_prints_the_installed_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--version")
    assert code == 0
    assert out.strip() == f"notify-gateway {importlib.metadata.version('notify-gateway')}"


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_and_flag_has_help_text(capsys: pytest.CaptureFixture[str], command: str) -> None:
    code, top, _ = run(capsys, "--help")
    assert code == 0
    for line in top.splitlines():
        if line.strip().startswith(f"{command} "):
            assert len(line.split()) > 1, f"{command} has no help in: {line!r}"
            break
    else:
        pytest.fail(f"{command} missing from --help")
    code, out, _ = run(capsys, command, "--help")
    assert code == 0
    options = out.split("options:", 1)[1]
    for flag in ("--config", "--listen", "--sandbox"):
        if flag in options:
            after = options.split(flag, 1)[1].split("\n  -")[0]
            assert len(after.split()) > 2, f"{command} {flag} has no help"


def test_hash_key_help_says_the_key_is_read_from_stdin_and_how(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(capsys, "hash-key", "--help")
    assert "standard input" in out
    assert 'echo -n "$KEY" | notify-gateway hash-key' in out


def test_hash_key_prints_the_hash_of_the_key_on_stdin(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("demo-key-not-secret"))
    code, out, _ = run(capsys, "hash-key")
    assert code == 0
    assert out == hash_key("demo-key-not-secret") + "\n"


def test_new_key_prints_a_random_key_and_its_hash_on_two_labelled_lines(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(capsys, "new-key")
    assert code == 0
    key_line, hash_line = out.splitlines()
    key = key_line.removeprefix("key:").strip()
    assert key_line.startswith("key:") and len(key) >= 43  # token_urlsafe(32): 256 bits
    assert hash_line == f"hash: {hash_key(key)}"
    _, again, _ = run(capsys, "new-key")
    assert again.splitlines()[0] != key_line


def test_sandbox_listen_out_of_range_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "sandbox", "--listen", "127.0.0.1:99999")
    assert code == 2
    assert "--listen" in err
    assert "port 99999 is out of range" in err


def test_check_config_prints_every_problem_on_its_own_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "auth: none\nserver: {listen: '127.0.0.1:99999'}\ntelemetry: {prometheus_listen: 'localhost:70000'}\n"
    )
    code, out, err = run(capsys, "check-config", "--config", str(bad))
    assert code == 2
    assert out == ""
    assert err.splitlines() == [
        f"notify-gateway: config error: {bad}: server.listen: port 99999 is out of range (0-65535)",
        f"notify-gateway: config error: {bad}: telemetry.prometheus_listen: "
        "port 70000 is out of range (1-65535)",
    ]


def serve_config(tmp_path: Path, listen: str, extra: str = "") -> Path:
    path = tmp_path / "serve.yaml"
    path.write_text(f"auth: none\nserver: {{listen: '{listen}'}}\n{extra}", encoding="utf-8")
    return path


@pytest.mark.parametrize("count", ["0", "-1", "two", "257"])
def test_processes_takes_a_count_from_1_to_256(capsys: pytest.CaptureFixture[str], count: str) -> None:
    code, _, err = run(capsys, "serve", "--processes", count)
    assert code == 2
    assert "--processes" in err and "from 1 to 256" in err


def test_processes_refuses_the_sandbox_in_each_process(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = serve_config(tmp_path, "127.0.0.1:50051")
    code, _, err = run(capsys, "serve", "--config", str(path), "--processes", "2", "--sandbox")
    assert code == 2
    assert "cannot run the sandbox" in err


@pytest.mark.parametrize(
    ("listen", "extra", "field"),
    [
        ("127.0.0.1:0", "", "server.listen"),
        ("127.0.0.1:50051", "http: {listen: '127.0.0.1:0'}\n", "http.listen"),
    ],
)
def test_processes_refuses_port_0_where_each_process_would_get_another_port(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, listen: str, extra: str, field: str
) -> None:
    path = serve_config(tmp_path, listen, extra)
    code, _, err = run(capsys, "serve", "--config", str(path), "--processes", "2")
    assert code == 2
    assert f"--processes needs a fixed port: {field} is 127.0.0.1:0" in err


def test_processes_refuses_a_port_something_already_listens_on(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # With SO_REUSEPORT the children could join another gateway's port: the parent checks first.
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        listen = f"127.0.0.1:{taken.getsockname()[1]}"
        code, _, err = run(
            capsys, "serve", "--config", str(serve_config(tmp_path, listen)), "--processes", "2"
        )
    assert code == 1
    assert f"notify-gateway: cannot start: cannot listen on {listen}: Address already in use" in err


def test_each_process_serves_metrics_on_the_configured_port_plus_its_index(tmp_path: Path) -> None:
    from gateway.config import load_config
    from gateway.processes import child_config

    config = load_config(
        serve_config(tmp_path, "127.0.0.1:50051", "telemetry: {prometheus_listen: '0.0.0.0:9464'}\n")
    )
    assert [child_config(config, i).telemetry.prometheus_listen for i in range(3)] == [
        "0.0.0.0:9464",
        "0.0.0.0:9465",
        "0.0.0.0:9466",
    ]
    assert child_config(config, 1).server == config.server


def test_serve_with_its_metrics_port_taken_says_so_instead_of_a_traceback(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        metrics = f"127.0.0.1:{taken.getsockname()[1]}"
        path = serve_config(tmp_path, "127.0.0.1:0", f"telemetry: {{prometheus_listen: '{metrics}'}}\n")
        done = subprocess.run(
            [sys.executable, "-m", "gateway", "serve", "--config", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 1, done.stderr
    assert (
        f"notify-gateway: cannot start: telemetry.prometheus_listen {metrics}: Address already in use"
        in done.stderr
    )
    assert "Traceback" not in done.stderr
