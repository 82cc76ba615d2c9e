"""The READMEs' runnable examples, run as a newcomer would: against the embedded example config.

Each Python block marked ``<!-- readme-example: NAME -->`` in README.md and clients/python/README.md
runs in a child process against a gateway with the example config (the one ``make run`` uses) and
the vendor sandbox seeded from it; only the address differs. A README example that breaks fails
here. (The Node blocks run in clients/node/test/readme.test.js.)
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sys
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path

import pytest

from gateway.config import EXAMPLE_CONFIG, parse_config
from gateway.sandbox import SandboxServer, SandboxState
from gateway.sandbox.seed import seed_from_accounts
from gateway.server import GatewayServer
from tests.gateway_process import REPO

README = REPO / "README.md"
CLIENT_README = REPO / "clients" / "python" / "README.md"
_EXAMPLE = re.compile(r"<!-- readme-example: ([\w-]+) -->\n```python\n(.*?)```", re.DOTALL)
README_ADDRESS = "127.0.0.1:50051"


def examples(readme: Path = README) -> dict[str, str]:
    return dict(_EXAMPLE.findall(readme.read_text(encoding="utf-8")))


@contextlib.asynccontextmanager
async def example_server(**environment: str) -> AsyncIterator[GatewayServer]:
    """The gateway `make run` starts (example config, sandbox seeded from it), on free ports;
    ``environment`` sets more of the config's ${VAR}s."""
    text = resources.files("gateway").joinpath(EXAMPLE_CONFIG).read_text(encoding="utf-8")
    state = SandboxState()
    async with SandboxServer(state) as sandbox:
        environ = {
            **os.environ,
            "NOTIFY_SANDBOX_URL": sandbox.url,
            "NOTIFY_GATEWAY_LISTEN": "127.0.0.1:0",
            "NOTIFY_HTTP_LISTEN": "127.0.0.1:0",
            **environment,
        }
        config = parse_config(text, source=EXAMPLE_CONFIG, environ=environ)
        seed_from_accounts(state, config.accounts)
        async with GatewayServer(config) as server:
            yield server


@pytest.fixture
async def example_gateway() -> AsyncIterator[str]:
    async with example_server() as server:
        yield server.address


@pytest.fixture
async def example_gateway_on_redis(redis_url: str, namespace: str) -> AsyncIterator[str]:
    """The same, with the token store on Redis (NOTIFY_TOKEN_STORE), as queued delivery needs."""
    async with example_server(NOTIFY_TOKEN_STORE=redis_url, NOTIFY_KEY_NAMESPACE=namespace) as server:
        yield server.address


async def run_example(name: str, address: str, cwd: Path = REPO, readme: Path = README) -> str:
    code = examples(readme)[name].replace(README_ADDRESS, address)
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(child.communicate(), timeout=60)
    assert child.returncode == 0, f"README example {name!r} failed:\n{err.decode()}"
    return out.decode()


def test_the_readme_marks_its_runnable_examples() -> None:
    assert {"first-send", "lifecycle", "python-client", "queued"} <= set(examples())


async def test_the_first_send_example_sends_a_message(example_gateway: str) -> None:
    out = await run_example("first-send", example_gateway)
    message_id, state = out.split()
    assert len(message_id) == 26 and state == "MESSAGE_STATE_SENT"


async def test_the_lifecycle_example_follows_a_message_to_delivered(example_gateway: str) -> None:
    out = await run_example("lifecycle", example_gateway)
    assert out.splitlines() == [
        "MESSAGE_STATE_SENT",
        "MESSAGE_STATE_DELIVERED",
        "['user01']",
        "1 delivered lately",
    ]


async def test_the_python_client_example_sends_uploads_and_reports_violations(
    example_gateway: str, tmp_path: Path
) -> None:
    # In a directory of its own: the example writes the report.pdf it uploads where it runs.
    out = await run_example("python-client", example_gateway, cwd=tmp_path)
    sent, uploaded, violations = out.splitlines()
    message_id, state = sent.split()
    assert len(message_id) == 26 and state == "MESSAGE_STATE_SENT"
    report = (tmp_path / "report.pdf").read_bytes()
    assert report.startswith(b"%PDF-")
    words = uploaded.split()
    assert words[:4] == ["uploaded", str(len(report)), "bytes", "as"] and len(words) == 5 and words[4]
    assert violations == "{'message.text.content': 'is required'}"


def test_every_python_block_of_the_client_readme_is_a_runnable_example() -> None:
    text = CLIENT_README.read_text(encoding="utf-8")
    assert text.count("```python\n") == len(examples(CLIENT_README)) == 2


async def test_the_client_readme_sends_every_kind_recalls_and_reports_violations(
    example_gateway: str, tmp_path: Path
) -> None:
    out = await run_example("python-client-send", example_gateway, cwd=tmp_path, readme=CLIENT_README)
    size = (tmp_path / "report.pdf").stat().st_size
    assert out.splitlines() == [
        "robot MESSAGE_STATE_SENT",
        "card MESSAGE_STATE_SENT",
        "image MESSAGE_STATE_SENT",
        "recall MESSAGE_STATE_RECALLED",
        f"uploaded {size} bytes",
        "refused recipients",
    ]


async def test_the_client_readme_reads_lists_and_watches_a_message(example_gateway: str) -> None:
    out = await run_example("python-client-records", example_gateway, readme=CLIENT_README)
    assert out.splitlines() == [
        "MESSAGE_STATE_SENT ['OUTCOME_ACCEPTED']",
        "listed True",
        "iterated True",
        "watch MESSAGE_STATE_SENT",
        "watch MESSAGE_STATE_DELIVERED",
    ]


async def test_the_queued_example_is_accepted_then_sent_by_a_worker(example_gateway_on_redis: str) -> None:
    out = await run_example("queued", example_gateway_on_redis)
    assert out.splitlines() == ["MESSAGE_STATE_ACCEPTED", "MESSAGE_STATE_SENT"]
