"""No caller's API key reaches the gateway's log, whoever writes the line: grpc's own loggers too.

grpc's Python layer logs a metadata value it cannot decode as UTF-8, whole, at error level, three
times per call: an authorization header with one stray byte would put the caller's key in the
log. The gateway cannot know a caller's key in advance, so the log masks whatever follows
``Bearer`` or ``authorization`` and every bytes repr. Proved on the gateway as operators run it, a
child process whose stderr is the log, with the header written byte for byte over raw HTTP/2.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from gateway.tenants import hash_key
from generated.notify.v1 import notification_service_pb2 as pb
from tests import raw_grpc
from tests.gateway_process import free_port, gateway_process

KEY = "kq7Zt-api-key-R2wX9vLm"  # the tenant's real key
STRANGER = "Hx4pN-never-issued-Q8sJ3y"  # a key the gateway has never heard of
SEND = "/notify.v1.NotificationService/Send"
FRAGMENT = 6  # no run of this many characters of a key may appear in the log


def tenant_config(directory: Path, port: int) -> Path:
    path = directory / "gateway.yaml"
    path.write_text(
        textwrap.dedent(
            f"""
            server:
              listen: 127.0.0.1:{port}
              grace_period_seconds: 1
              drain_delay_seconds: 0
            tenants:
              - name: payments
                api_keys: ["{hash_key(KEY)}"]
                accounts: ["*"]
            accounts:
              team-wecom:
                channel: wecom_robot
                key: ${{TEST_WECOM_KEY}}
                base_url: http://127.0.0.1:9
            """
        ),
        encoding="utf-8",
    )
    return path


def fragments(secret: str) -> set[str]:
    return {secret[i : i + FRAGMENT] for i in range(len(secret) - FRAGMENT + 1)}


HEADERS = [
    pytest.param(b"Bearer " + KEY.encode() + b"\xff", id="bearer-key-then-a-stray-byte"),
    pytest.param(b"Bearer \xff" + KEY.encode(), id="bearer-a-stray-byte-then-the-key"),
    pytest.param(b"bearer " + KEY[:9].encode() + b"\xc3" + KEY[9:].encode(), id="a-stray-byte-mid-key"),
    pytest.param(KEY.encode() + b"\xff", id="key-without-a-scheme"),
    pytest.param(b"Bearer " + STRANGER.encode() + b"\xfe\xff", id="a-key-never-issued"),
]


@pytest.mark.parametrize("header", HEADERS)
async def test_an_authorization_header_with_invalid_utf8_never_puts_the_key_in_the_log(
    tmp_path: Path, header: bytes
) -> None:
    port = free_port()
    request = pb.SendRequest(account="team-wecom", message=pb.Message(text=pb.Text(content="x")))
    async with gateway_process(tenant_config(tmp_path, port), port) as gateway:
        ending = await raw_grpc.call(port, SEND, request.SerializeToString(), [(b"authorization", header)])
        await gateway.stop()
    log = await gateway.log()

    assert ending.trailers, "the server answers the call with a status"
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    grpc_lines = [line for line in lines if line["logger"].startswith("grpc")]
    assert grpc_lines, "grpc logged the header it could not decode, through the gateway's JSON logger"
    assert all("***" in line["msg"] for line in grpc_lines)
    assert [line["status"] for line in lines if line["logger"] == "gateway.access"] == ["UNAUTHENTICATED"]
    for secret in (KEY, STRANGER):
        assert secret not in log
        leaked = sorted(part for part in fragments(secret) if part in log)
        assert not leaked, f"parts of an API key in the log: {leaked}"
