"""The README's curl examples ("From curl and scripts"), run with the real curl against `make run`'s gateway.

Each ``sh`` block marked ``<!-- readme-example: NAME -->`` runs in bash against a gateway with the
embedded example config and the sandbox seeded from it; only the address differs (and the
message id the send example printed, which the next example uses). What curl prints is checked.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from collections.abc import AsyncIterator

import pytest

from tests.e2e.test_readme_examples import example_server
from tests.gateway_process import REPO

README = REPO / "README.md"
_EXAMPLE = re.compile(r"<!-- readme-example: ([\w-]+) -->\n```sh\n(.*?)```", re.DOTALL)
README_HTTP = "127.0.0.1:8080"
README_MESSAGE_ID = "01KBDZQ8V3F4T9C2H6K0M5N7P8"

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")


def examples() -> dict[str, str]:
    return dict(_EXAMPLE.findall(README.read_text(encoding="utf-8")))


@pytest.fixture
async def http_address() -> AsyncIterator[str]:
    async with example_server() as server:
        assert server.http is not None, "the example config serves HTTP"
        yield server.http.address


async def run_example(name: str, address: str, message_id: str = README_MESSAGE_ID) -> str:
    script = examples()[name].replace(README_HTTP, address).replace(README_MESSAGE_ID, message_id)
    child = await asyncio.create_subprocess_exec(
        "bash", "-euo", "pipefail", "-c", script, cwd=REPO,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(child.communicate(), timeout=30)
    assert child.returncode == 0, f"README example {name!r} failed:\n{err.decode()}"
    return out.decode()


def test_the_readme_marks_its_curl_examples() -> None:
    assert {"curl-send", "curl-get-recall", "curl-error"} <= set(examples())
    assert len(README_MESSAGE_ID) == 26, "the placeholder looks like a message id"


async def test_send_then_get_and_recall_with_curl(http_address: str) -> None:
    sent = json.loads(await run_example("curl-send", http_address))
    assert sent["state"] == "MESSAGE_STATE_SENT" and len(sent["messageId"]) == 26
    again = json.loads(await run_example("curl-send", http_address))
    assert again["messageId"] == sent["messageId"] and again["duplicate"] is True

    got, recalled = (await run_example("curl-get-recall", http_address, sent["messageId"])).splitlines()
    record = json.loads(got)["message"]
    assert record["messageId"] == sent["messageId"] and record["state"] == "MESSAGE_STATE_SENT"
    assert json.loads(recalled) == {"messageId": sent["messageId"], "state": "MESSAGE_STATE_RECALLED"}


async def test_an_error_with_curl_is_a_status_with_its_details(http_address: str) -> None:
    out = await run_example("curl-error", http_address)
    body, code = out.splitlines()
    assert code == "HTTP 400"
    status = json.loads(body)
    assert status["code"] == 3 and status["message"] == "message.text.content: is required"
    assert status["details"][0]["fieldViolations"] == [
        {"field": "message.text.content", "description": "is required"}
    ]
