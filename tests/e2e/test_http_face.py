"""The HTTP/JSON face gives the answers gRPC gives: one business path, two transports.

The parity table runs each case over gRPC and over HTTP against one real gateway (real Redis, the
sandbox behind it) and compares status and JSON; the tests after it cover what only HTTP has:
headers, body limits, routes, the OpenAPI document.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from google.protobuf import json_format
from openapi_spec_validator import validate

from gateway.sandbox import SandboxServer
from gateway.server import GatewayServer
from generated.notify.v1 import notification_service_pb2 as pb
from tests.conftest import gateway_config, with_tls
from tests.e2e.http_face import ALPHA_KEY, KEYS, LIMITED_KEY, OPS_KEY, Faces, faces, http_config

SERVICE = pb.DESCRIPTOR.services_by_name["NotificationService"]
PDF = b"%PDF-1.4\n% a stand-in for a report\n%%EOF\n"


@pytest.fixture
async def both(sandbox: SandboxServer, redis_url: str, namespace: str) -> AsyncIterator[Faces]:
    async with faces(http_config(gateway_config(sandbox.url), redis_url, namespace), sandbox.state) as f:
        yield f


def send_json(account: str, content: str, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"account": account, "message": {"text": {"content": content}}, **fields}
    if account == "corp-app":
        body["recipients"] = {"userIds": ["zhangsan"]}
    return body


def send_request(body: dict[str, Any]) -> pb.SendRequest:
    return json_format.ParseDict(body, pb.SendRequest())


def fresh_ids(answer: dict[str, Any]) -> dict[str, Any]:
    """A new message's ids differ per call; what the caller is told about it must not."""
    return {k: ("<new>" if k in ("messageId", "vendorMessageId") else v) for k, v in answer.items()}


def retry_normalized(answer: dict[str, Any]) -> dict[str, Any]:
    """The time until a slot frees shrinks between the two calls; that it is there must not change."""
    text = json.dumps(answer)
    text = re.sub(r"retry in [\d.]+ s", "retry in <t> s", text)
    text = re.sub(r'"retryDelay": "[\d.]+s"', '"retryDelay": "<t>"', text)
    text = re.sub(r'"message_id": "\w+"', '"message_id": "<new>"', text)  # each refused Send is recorded
    return dict(json.loads(text))


NO_SUCH = "01NOSUCHMESSAGE0000000000"
SENT = "MESSAGE_STATE_SENT"
REPLAY = send_json("ops-dingtalk", "made for get", idempotencyKey="parity-replay")


@dataclass
class Case:
    name: str
    rpc: str
    grpc_request: Callable[[dict[str, str]], Any]  # built from what setup made (ids)
    http: Callable[[Faces, dict[str, str]], Awaitable[tuple[int, dict[str, Any]]]]
    key: str | None
    status: int
    normalize: Callable[[dict[str, Any]], dict[str, Any]] = lambda answer: answer


async def setup(f: Faces) -> dict[str, str]:
    """What the cases refer to: a robot message, an app message, a used key, an upload, a spent quota."""
    made: dict[str, str] = {}
    robot = await f.gateway.stub.Send(
        send_request(REPLAY),
        metadata=(("authorization", f"Bearer {OPS_KEY}"),),
        timeout=10,
    )
    made["robot"] = robot.message_id
    app = await f.gateway.stub.Send(
        send_request(send_json("corp-app", "made for recall")),
        metadata=(("authorization", f"Bearer {OPS_KEY}"),),
        timeout=10,
    )
    made["app"] = app.message_id
    assert (await f.grpc("UploadMedia", upload_parts(), OPS_KEY))[0] == 200
    assert (await f.grpc("Send", send_request(send_json("team-wecom", "quota")), LIMITED_KEY))[0] == 200
    return made


def upload_parts() -> list[pb.UploadMediaRequest]:
    info = pb.MediaInfo(account="corp-app", type=pb.MEDIA_TYPE_FILE, filename="report.pdf", size=len(PDF))
    return [pb.UploadMediaRequest(info=info), pb.UploadMediaRequest(chunk=PDF)]


def post(path: str, body: Any, key: str | None, **kw: Any) -> Callable[[Faces, dict[str, str]], Any]:
    return lambda f, made: f.http("POST", path.format(**made), key, body=body, **kw)


def get(path: str, key: str | None, params: Any = None) -> Callable[[Faces, dict[str, str]], Any]:
    return lambda f, made: f.http("GET", path.format(**made), key, params=params)


CASES = [
    Case(
        "send ok", "Send", lambda m: send_request(send_json("ops-dingtalk", "deploy finished")),
        post("/v1/messages:send", send_json("ops-dingtalk", "deploy finished"), OPS_KEY),
        OPS_KEY, 200, fresh_ids,
    ),
    Case(
        "send invalid names the field", "Send", lambda m: send_request(send_json("ops-dingtalk", "")),
        post("/v1/messages:send", send_json("ops-dingtalk", ""), OPS_KEY), OPS_KEY, 400,
    ),
    Case(
        "no API key", "Send", lambda m: send_request(send_json("ops-dingtalk", "x")),
        post("/v1/messages:send", send_json("ops-dingtalk", "x"), None), None, 401,
    ),
    Case(
        "a wrong API key", "Send", lambda m: send_request(send_json("ops-dingtalk", "x")),
        post("/v1/messages:send", send_json("ops-dingtalk", "x"), "not-a-key"), "not-a-key", 401,
    ),
    Case(
        "an account the tenant may not use", "Send", lambda m: send_request(send_json("corp-app", "x")),
        post("/v1/messages:send", send_json("corp-app", "x"), ALPHA_KEY), ALPHA_KEY, 403,
    ),
    Case(
        "an account not configured", "Send", lambda m: send_request(send_json("no-such-account", "x")),
        post("/v1/messages:send", send_json("no-such-account", "x"), OPS_KEY), OPS_KEY, 404,
    ),
    Case(
        "a message that does not exist", "GetMessage", lambda m: pb.GetMessageRequest(message_id=NO_SUCH),
        get(f"/v1/messages/{NO_SUCH}", OPS_KEY), OPS_KEY, 404,
    ),
    Case(
        "an idempotent replay answers the first message", "Send",
        lambda m: send_request(REPLAY), post("/v1/messages:send", REPLAY, OPS_KEY), OPS_KEY, 200,
    ),
    Case(
        "over the tenant's quota", "Send", lambda m: send_request(send_json("team-wecom", "again")),
        post("/v1/messages:send", send_json("team-wecom", "again"), LIMITED_KEY), LIMITED_KEY, 429,
        retry_normalized,
    ),
    Case(
        "get", "GetMessage", lambda m: pb.GetMessageRequest(message_id=m["robot"]),
        get("/v1/messages/{robot}", OPS_KEY), OPS_KEY, 200,
    ),
    Case(
        "list, filtered and paged", "ListMessages",
        lambda m: pb.ListMessagesRequest(account="ops-dingtalk", page_size=5, states=[pb.MESSAGE_STATE_SENT]),
        get("/v1/messages", OPS_KEY, [("account", "ops-dingtalk"), ("pageSize", "5"), ("states", SENT)]),
        OPS_KEY, 200,
    ),
    Case(
        "recall", "Recall", lambda m: pb.RecallRequest(message_id=m["app"]),
        post("/v1/messages/{app}:recall", {}, OPS_KEY), OPS_KEY, 200,
    ),
    Case(
        "a robot message cannot be recalled", "Recall", lambda m: pb.RecallRequest(message_id=m["robot"]),
        post("/v1/messages/{robot}:recall", None, OPS_KEY), OPS_KEY, 400,
    ),
    Case(
        "upload (the same bytes again: reused)", "UploadMedia", lambda m: upload_parts(),
        lambda f, m: f.http(
            "POST", "/v1/media:upload", OPS_KEY, data=PDF,
            params={"info.account": "corp-app", "info.type": "MEDIA_TYPE_FILE", "info.filename": "report.pdf"}
        ),
        OPS_KEY, 200,
    ),
]  # fmt: skip


async def test_http_and_grpc_give_the_same_answers(both: Faces) -> None:
    made = await setup(both)
    for case in CASES:
        over_grpc = await both.grpc(case.rpc, case.grpc_request(made), case.key)
        over_http = await case.http(both, made)
        assert over_grpc[0] == case.status, f"{case.name}: gRPC answered {over_grpc}"
        assert over_http[0] == case.status, f"{case.name}: HTTP answered {over_http}"
        assert case.normalize(over_http[1]) == case.normalize(over_grpc[1]), case.name


async def test_errors_carry_their_details_as_json(both: Faces) -> None:
    status, body = await both.http("POST", "/v1/messages:send", OPS_KEY, body=send_json("ops-dingtalk", ""))
    assert status == 400 and body["code"] == 3
    kinds = {detail["@type"].rsplit("/", 1)[1]: detail for detail in body["details"]}
    assert kinds["google.rpc.BadRequest"]["fieldViolations"] == [
        {"field": "message.text.content", "description": "is required"}
    ]
    assert kinds["google.rpc.ErrorInfo"]["domain"] == "notify-gateway"

    await both.grpc("Send", send_request(send_json("team-wecom", "spend")), LIMITED_KEY)
    async with both.session.post(
        both.base_url + "/v1/messages:send",
        json=send_json("team-wecom", "over"),
        headers={"Authorization": f"Bearer {LIMITED_KEY}"},
    ) as response:
        body = await response.json()
        assert response.status == 429
        assert 1 <= int(response.headers["Retry-After"]) <= 60
    assert any(detail["@type"].endswith("google.rpc.RetryInfo") for detail in body["details"])


async def test_a_body_that_is_not_the_request_is_refused_naming_the_field(both: Faces) -> None:
    status, body = await both.http("POST", "/v1/messages:send", OPS_KEY, data=b"{not json")
    assert status == 400 and body["details"][0]["fieldViolations"][0]["field"] == "body"
    status, body = await both.http("POST", "/v1/messages:send", OPS_KEY, body={"acount": "ops-dingtalk"})
    assert status == 400 and body["details"][0]["fieldViolations"][0] == {
        "field": "acount",
        "description": "no such field",
    }
    status, body = await both.http("GET", "/v1/messages", OPS_KEY, params={"pageSize": "many"})
    assert status == 400 and body["details"][0]["fieldViolations"][0]["field"] == "page_size"


async def test_without_a_valid_key_the_answer_is_401_whatever_else_is_wrong(both: Faces) -> None:
    # As over gRPC, where authentication runs before the request is looked at: a caller without a
    # valid key learns that first, not what is wrong with a body it may not send at all.
    for key in (None, "not-a-key"):
        status, body = await both.http("POST", "/v1/messages:send", key, data=b"{not json")
        assert (status, body["details"][0]["reason"]) == (
            401,
            "API_KEY_MISSING" if key is None else "API_KEY_INVALID",
        )
        status, _ = await both.http("GET", "/v1/messages", key, params={"pageSize": "many"})
        assert status == 401


async def test_the_idempotency_key_header_makes_a_retry_safe(both: Faces) -> None:
    headers = {"Idempotency-Key": "deploy-42"}
    first = await both.http(
        "POST", "/v1/messages:send", OPS_KEY, body=send_json("ops-dingtalk", "once"), headers=headers
    )
    again = await both.http(
        "POST", "/v1/messages:send", OPS_KEY, body=send_json("ops-dingtalk", "once"), headers=headers
    )
    assert first[0] == again[0] == 200
    assert again[1]["messageId"] == first[1]["messageId"] and again[1]["duplicate"] is True
    over_grpc = await both.grpc(
        "Send", send_request(send_json("ops-dingtalk", "once", idempotencyKey="deploy-42")), OPS_KEY
    )
    assert over_grpc[1]["messageId"] == first[1]["messageId"], "the header is the request's idempotency_key"
    assert len(both.gateway.sandbox.delivered()) == 1

    status, body = await both.http(
        "POST", "/v1/messages:send", OPS_KEY,
        body=send_json("ops-dingtalk", "once", idempotencyKey="another"), headers=headers,
    )  # fmt: skip
    assert status == 400
    assert body["details"][0]["fieldViolations"][0]["field"] == "idempotency_key"


async def test_the_callers_traceparent_reaches_the_span_and_the_access_log(
    both: Faces, spans: Any, caplog: pytest.LogCaptureFixture
) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    caplog.set_level(logging.INFO, logger="gateway.access")
    status, _ = await both.http(
        "POST", "/v1/messages:send", OPS_KEY, body=send_json("ops-dingtalk", "traced"),
        headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"},
    )  # fmt: skip
    assert status == 200
    rpc_lines = [
        r
        for r in caplog.records
        if r.name == "gateway.access" and r.__dict__.get("rpc", "").endswith("/Send")
    ]
    assert [r.__dict__["trace_id"] for r in rpc_lines] == [trace_id]
    server = [s for s in spans.get_finished_spans() if s.name == "notify.v1.NotificationService/Send"]
    assert [format(s.context.trace_id, "032x") for s in server] == [trace_id]
    http_span = next(s for s in spans.get_finished_spans() if s.name == "POST /v1/messages:send")
    assert server[0].parent is not None and server[0].parent.span_id == http_span.context.span_id


async def test_a_body_over_the_limit_is_413(sandbox: SandboxServer, redis_url: str, namespace: str) -> None:
    config = http_config(gateway_config(sandbox.url), redis_url, namespace, max_body_bytes=1024)
    async with faces(config, sandbox.state) as f:
        small = await f.http("POST", "/v1/messages:send", OPS_KEY, body=send_json("ops-dingtalk", "x" * 500))
        status, body = await f.http(
            "POST", "/v1/messages:send", OPS_KEY, body=send_json("ops-dingtalk", "x" * 2000)
        )
        unauthenticated = await f.http(
            "POST", "/v1/messages:send", None, body=send_json("ops-dingtalk", "x" * 2000)
        )
    assert small[0] == 200
    assert unauthenticated[0] == 401, "the key is checked before the body is read"
    assert status == 413
    assert body["code"] == 8 and body["details"][0]["reason"] == "BODY_TOO_LARGE"
    assert len(sandbox.state.delivered()) == 1, "only the request under the limit was delivered"


async def test_unknown_routes_and_wrong_methods_answer_status_json(both: Faces) -> None:
    status, body = await both.http("GET", "/v1/nothing-here", OPS_KEY)
    assert status == 404 and body["code"] == 5
    async with both.session.delete(both.base_url + "/v1/messages/01ABC") as response:
        assert response.status == 405 and response.headers["Allow"] == "GET"
        assert (await response.json())["code"] == 12
    status, _ = await both.http("GET", "/v1/messages:send", OPS_KEY)
    assert status == 405, "a custom method's path is its route, whatever the method"


async def test_an_upload_as_a_multipart_form(both: Faces) -> None:
    form = aiohttp.FormData()
    form.add_field("info.account", "corp-app")
    form.add_field("info.type", "MEDIA_TYPE_FILE")
    form.add_field("chunk", PDF, filename="report.pdf", content_type="application/pdf")
    status, body = await both.http("POST", "/v1/media:upload", OPS_KEY, data=form)
    assert status == 200, body
    assert body["size"] == str(len(PDF)) and body["mediaId"]


async def test_watch_streams_newline_delimited_json(both: Faces) -> None:
    _, sent = await both.http(
        "POST", "/v1/messages:send", OPS_KEY, body=send_json("ops-dingtalk", "watch me")
    )
    async with both.session.get(
        f"{both.base_url}/v1/messages/{sent['messageId']}:watch",
        headers={"Authorization": f"Bearer {OPS_KEY}"},
    ) as response:
        assert response.status == 200 and response.content_type == "application/x-ndjson"
        lines = [json.loads(line) for line in (await response.read()).splitlines()]
    assert lines[-1]["result"]["message"]["state"] == "MESSAGE_STATE_SENT"
    status, body = await both.http("GET", "/v1/messages/01NOSUCHMESSAGE0000000000:watch", OPS_KEY)
    assert status == 404 and body["code"] == 5


async def test_a_bad_timeout_header_is_refused(both: Faces) -> None:
    status, body = await both.http("GET", "/v1/messages", OPS_KEY, headers={"grpc-timeout": "soon"})
    assert status == 400 and body["details"][0]["fieldViolations"][0]["field"] == "grpc-timeout"


async def test_no_api_key_reaches_a_log_line(both: Faces, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for key in KEYS:
        await both.http("POST", "/v1/messages:send", key, body=send_json("ops-dingtalk", "x"))
    await both.http("POST", "/v1/messages:send", "wrong-secret-key-77", body=send_json("ops-dingtalk", "x"))
    text = caplog.text + "".join(json.dumps(r.__dict__, default=str) for r in caplog.records)
    for key in (*KEYS, "wrong-secret-key-77"):
        assert key not in text


async def test_the_http_face_works_when_the_grpc_port_requires_tls(
    sandbox: SandboxServer, redis_url: str, namespace: str, tmp_path: Path
) -> None:
    config, _ = with_tls(http_config(gateway_config(sandbox.url), redis_url, namespace), tmp_path)
    async with faces(config, sandbox.state) as f:
        status, body = await f.http(
            "POST", "/v1/messages:send", OPS_KEY, body=send_json("ops-dingtalk", "tls")
        )
    assert status == 200 and body["state"] == "MESSAGE_STATE_SENT"


async def test_the_openapi_document_is_valid_and_lists_every_route(both: Faces) -> None:
    async with both.session.get(both.base_url + "/openapi.json") as response:
        assert response.status == 200
        document = await response.json()
    validate(document)
    routes = {(path, method) for path, ops in document["paths"].items() for method in ops}
    assert routes == {
        ("/v1/messages:send", "post"),
        ("/v1/messages/{message_id}:recall", "post"),
        ("/v1/media:upload", "post"),
        ("/v1/messages/{message_id}", "get"),
        ("/v1/messages", "get"),
        ("/v1/messages/{message_id}:watch", "get"),
    }
    send = document["paths"]["/v1/messages:send"]["post"]
    assert send["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "notify.v1.SendRequest"
    )
    schema = document["components"]["schemas"]["notify.v1.SendRequest"]["properties"]
    assert "idempotencyKey" in schema and schema["labels"]["additionalProperties"] == {"type": "string"}


async def test_a_body_that_stalls_is_refused_within_the_deadline(
    sandbox: SandboxServer, redis_url: str, namespace: str
) -> None:
    config = http_config(gateway_config(sandbox.url), redis_url, namespace, request_timeout_seconds=0.3)
    async with faces(config, sandbox.state) as f:
        host, port = f.base_url.removeprefix("http://").rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(
            b"POST /v1/messages:send HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Authorization: Bearer {OPS_KEY}\r\n".encode()
            + b'Content-Length: 100\r\n\r\n{"account": '
        )  # and then nothing more
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
        writer.close()
    assert head.startswith(b"HTTP/1.1 408 ")


async def test_a_taken_http_port_stops_start_up_naming_it(
    sandbox: SandboxServer, redis_url: str, namespace: str
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        listen = f"127.0.0.1:{taken.getsockname()[1]}"
        config = http_config(gateway_config(sandbox.url), redis_url, namespace, listen=listen)
        with pytest.raises(OSError, match=f"cannot listen on {listen} \\(http\\)"):
            GatewayServer(config)
