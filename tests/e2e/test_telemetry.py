"""What an SRE sees: one trace per Send from the caller's span down to the vendor's HTTP call, errors
and retries on the spans, the metrics that count them, and never a credential anywhere.

The session installs in-memory OpenTelemetry providers (conftest), the way start-up installs real
ones; the gateway records into them as it would into an exporter.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import textwrap
from collections.abc import Callable, Iterable, Iterator

import grpc
import pytest
import yaml
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader, Metric
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from gateway.sandbox import SandboxServer, SandboxState
from gateway.tenants import hash_key
from generated.notify.v1 import notification_service_pb2 as pb
from tests.conftest import (
    DINGTALK_PLAIN_TOKEN,
    DINGTALK_SECRET,
    DINGTALK_TOKEN,
    SECRETS,
    WECOM_KEY,
    Gateway,
    configured,
    gateway_config,
    running_gateway,
    wait_until,
)

SERVER_SPAN = "notify.v1.NotificationService/Send"
SEND_STEPS = (
    "assign_message_id",
    "validate_send",
    "resolve_account",
    "authorize_account",
    "check_message",
    "deduplicate",
    "limit_rate",
    "upload_inline_media",
    "record_message",
    "deliver",
)
TENANT_KEY = "telemetry-tenant-key-60b1e4"
TEXT = pb.Message(text=pb.Text(content="disk almost full"))
RECIPIENTS = {"corp-app": ["zhangsan"], "ding-app": ["user01"]}
# A credential parameter with a value that is not the mask.
CREDENTIAL_PARAM = re.compile(
    r"(?i)\b(sign|timestamp|access_token|key|corpsecret|appsecret)=(?!\*\*\*)[^&\s\"']"
)


def send_request(account: str, **fields: object) -> pb.SendRequest:
    recipients = pb.Recipients(user_ids=RECIPIENTS.get(account, []))
    return pb.SendRequest(account=account, message=TEXT, recipients=recipients, **fields)  # type: ignore[arg-type]


async def server_span_of(
    spans: InMemorySpanExporter, message_id: str = "", *, failed: bool = False
) -> ReadableSpan:
    """The finished server span of a Send (by its message_id, or the only failed one)."""

    def matches(span: ReadableSpan) -> bool:
        if span.name != SERVER_SPAN or span.kind != SpanKind.SERVER:
            return False
        if failed:
            return span.status.status_code == StatusCode.ERROR
        return (span.attributes or {}).get("notify.message_id") == message_id

    for _ in range(250):
        found = [span for span in spans.get_finished_spans() if matches(span)]
        if found:
            assert len(found) == 1, found
            return found[0]
        await asyncio.sleep(0.02)
    raise AssertionError(f"no finished server span for {message_id or 'the failed Send'}")


def trace_of(spans: InMemorySpanExporter, root: ReadableSpan) -> list[ReadableSpan]:
    assert root.context is not None
    return [
        s
        for s in spans.get_finished_spans()
        if s.context is not None and s.context.trace_id == root.context.trace_id
    ]


def descendants(trace: list[ReadableSpan], ancestor: ReadableSpan) -> list[ReadableSpan]:
    assert ancestor.context is not None
    children = [s for s in trace if s.parent is not None and s.parent.span_id == ancestor.context.span_id]
    return children + [d for child in children for d in descendants(trace, child)]


def named(trace: Iterable[ReadableSpan], predicate: Callable[[str], bool]) -> list[ReadableSpan]:
    return [span for span in trace if predicate(span.name)]


def one(trace: Iterable[ReadableSpan], name: str) -> ReadableSpan:
    found = named(trace, lambda n: n == name)
    assert len(found) == 1, (name, [s.name for s in trace])
    return found[0]


# -- the span tree ----------------------------------------------------------------------------


def steps_event(server: ReadableSpan) -> dict[str, object]:
    """The attributes of the server span's one ``send.steps`` event: each step's own time, in ms."""
    (event,) = [e for e in server.events if e.name == "send.steps"]
    return dict(event.attributes or {})


def parent_of(trace: list[ReadableSpan], span: ReadableSpan) -> ReadableSpan | None:
    assert span.parent is not None
    found = [s for s in trace if s.context is not None and s.context.span_id == span.parent.span_id]
    return found[0] if found else None


async def test_a_send_is_one_small_trace_the_server_span_with_its_steps_timed_then_the_vendor_call(
    gateway: Gateway, spans: InMemorySpanExporter
) -> None:
    reply = await gateway.stub.Send(send_request("ops-dingtalk"), timeout=5)

    server = await server_span_of(spans, reply.message_id)
    attributes = dict(server.attributes or {})
    assert attributes["rpc.system"] == "grpc"
    assert attributes["rpc.service"] == "notify.v1.NotificationService"
    assert attributes["rpc.method"] == "Send"
    assert attributes["rpc.grpc.status_code"] == 0
    assert attributes["notify.account"] == "ops-dingtalk"
    assert attributes["notify.channel"] == "dingtalk_robot"
    assert attributes["notify.message_kind"] == "text"
    assert server.status.status_code != StatusCode.ERROR

    # What an SRE opens: the server span and the vendor's HTTP attempt. No span per step or per
    # Redis operation: those are counted on the server span.
    trace = trace_of(spans, server)
    assert sorted(s.name for s in trace) == sorted([SERVER_SPAN, "vendor dingtalk_robot /robot/send"])
    vendor = one(trace, "vendor dingtalk_robot /robot/send")
    assert parent_of(trace, vendor) is server
    assert vendor.kind == SpanKind.CLIENT
    vendor_attributes = dict(vendor.attributes or {})
    assert vendor_attributes["notify.channel"] == "dingtalk_robot"
    assert vendor_attributes["notify.account"] == "ops-dingtalk"
    assert vendor_attributes["notify.vendor.path"] == "/robot/send"
    assert vendor_attributes["http.response.status_code"] == 200
    assert isinstance(attributes["notify.redis.calls"], int)
    assert isinstance(attributes["notify.redis.duration_ms"], float)

    # The steps, in the order they ran, each with its own time (not the rest of the call's).
    steps = steps_event(server)
    names = [key.removesuffix("_ms") for key in steps]
    assert set(SEND_STEPS) <= set(names)
    assert (names[0], names[-1]) == ("assign_message_id", "deliver")
    assert all(isinstance(ms, float) and ms >= 0 for ms in steps.values())
    call_ms = ((server.end_time or 0) - (server.start_time or 0)) / 1e6
    assert sum(ms for ms in steps.values() if isinstance(ms, float)) <= call_ms
    vendor_ms = ((vendor.end_time or 0) - (vendor.start_time or 0)) / 1e6
    assert steps["deliver_ms"] >= vendor_ms * 0.9, "the vendor call is deliver's own work"


async def test_a_vendor_failure_marks_error_only_on_the_vendor_span_and_the_server_span(
    gateway: Gateway, spans: InMemorySpanExporter
) -> None:
    gateway.sandbox.inject_fault("dingtalk_robot", "plain-dingtalk", errcode=400102, errmsg="robot disabled")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await gateway.stub.Send(send_request("plain-dingtalk"), timeout=5)

    server = await server_span_of(spans, failed=True)
    trace = trace_of(spans, server)
    failed = sorted(s.name for s in trace if s.status.status_code == StatusCode.ERROR)
    assert failed == sorted([SERVER_SPAN, "vendor dingtalk_robot /robot/send"])
    assert caught.value.code().name in (server.status.description or "")
    steps = steps_event(server)
    assert (steps["failed_step"], steps["error.type"]) == ("deliver", "VendorError")
    assert "record_message_ms" in steps, "the steps before the failure are timed too"


async def test_a_failed_token_fetch_is_an_error_on_the_gettoken_http_span_only(
    gateway: Gateway, spans: InMemorySpanExporter
) -> None:
    gateway.sandbox.inject_fault("dingtalk_work", "ding-app", http_status=403, path="/gettoken")
    with pytest.raises(grpc.aio.AioRpcError):
        await gateway.stub.Send(send_request("ding-app"), timeout=5)

    server = await server_span_of(spans, failed=True)
    trace = trace_of(spans, server)
    fetch = one(trace, "token.fetch")
    assert fetch.status.status_code != StatusCode.ERROR
    assert dict(fetch.attributes or {})["notify.token.outcome"] == "error"
    gettoken = one(descendants(trace, fetch), "vendor dingtalk_work /gettoken")
    assert parent_of(trace, gettoken) is fetch
    assert gettoken.kind == SpanKind.CLIENT
    assert gettoken.status.status_code == StatusCode.ERROR  # HTTP 403: where it happened
    assert dict(gettoken.attributes or {})["http.response.status_code"] == 403


async def test_the_send_labels_are_on_the_server_span_bounded(
    gateway: Gateway, spans: InMemorySpanExporter
) -> None:
    labels = {"team": "payments", "ticket": "key=not-a-secret-but-looks-like-one"}
    labels |= {f"zz{i:02d}": "x" * 500 for i in range(20)}  # past the 16 kept: first keys first
    labels["k" * 300] = "long key"

    reply = await gateway.stub.Send(send_request("team-wecom", labels=labels), timeout=5)

    attributes = dict((await server_span_of(spans, reply.message_id)).attributes or {})
    on_span = {
        k.removeprefix("notify.label."): v for k, v in attributes.items() if k.startswith("notify.label.")
    }
    assert on_span["team"] == "payments"
    assert on_span["ticket"] == "key=***", "label values are redacted like any text"
    assert 0 < len(on_span) <= 16
    assert all(len(key) <= 64 and len(str(value)) <= 128 for key, value in on_span.items())


async def test_the_vendor_request_carries_the_trace_context_of_its_http_span(
    gateway: Gateway, spans: InMemorySpanExporter
) -> None:
    reply = await gateway.stub.Send(send_request("team-wecom"), timeout=5)

    server = await server_span_of(spans, reply.message_id)
    assert server.context is not None
    (received,) = gateway.sandbox.received("wecom_robot", "team-wecom")
    assert received.trace_id == format(server.context.trace_id, "032x")


async def test_the_vendor_call_is_one_http_client_span_with_a_redacted_url(
    gateway: Gateway, spans: InMemorySpanExporter
) -> None:
    reply = await gateway.stub.Send(send_request("ops-dingtalk"), timeout=5)

    server = await server_span_of(spans, reply.message_id)
    trace = trace_of(spans, server)
    vendor = one(trace, "vendor dingtalk_robot /robot/send")
    assert vendor.kind == SpanKind.CLIENT
    assert not descendants(trace, vendor)
    attributes = dict(vendor.attributes or {})
    assert attributes.get("http.request.method") == "POST"
    assert attributes.get("server.address") == "127.0.0.1"
    assert isinstance(attributes.get("server.port"), int)
    assert attributes.get("http.response.status_code") == 200
    url = str(attributes.get("url.full", ""))
    assert "/robot/send" in url
    assert DINGTALK_TOKEN not in url and not CREDENTIAL_PARAM.search(url)


async def test_no_url_with_a_credential_reaches_a_span(gateway: Gateway, spans: InMemorySpanExporter) -> None:
    # Each channel's credential in the query: key, access_token, a signature with its timestamp.
    for account in ("team-wecom", "ops-dingtalk", "corp-app", "ding-app"):
        await gateway.stub.Send(send_request(account), timeout=5)

    urls = [
        str(value)
        for span in spans.get_finished_spans()
        for key, value in (span.attributes or {}).items()
        if "://" in str(value)
    ]
    assert len(urls) >= 6, "every vendor attempt records its URL (gettoken included)"
    for url in urls:
        assert not CREDENTIAL_PARAM.search(url), url
        assert not [secret for secret in SECRETS if secret in url], url
    assert any("access_token=***" in url for url in urls) and any("sign=***" in url for url in urls)


async def test_a_send_with_a_tenant_names_the_tenant_on_its_server_span(
    sandbox: SandboxServer, spans: InMemorySpanExporter
) -> None:
    tenants = yaml.safe_load(
        textwrap.dedent(
            f"""
            - name: observability
              api_keys: ["{hash_key(TENANT_KEY)}"]
              accounts: ["*"]
            """
        )
    )
    config = configured(gateway_config(sandbox.url), tenants=tenants)
    async with running_gateway(config, sandbox.state) as gateway:
        reply = await gateway.stub.Send(
            send_request("team-wecom"), metadata=(("authorization", f"Bearer {TENANT_KEY}"),), timeout=5
        )

    server = await server_span_of(spans, reply.message_id)
    assert dict(server.attributes or {}).get("notify.tenant") == "observability"


async def test_a_vendor_refusal_marks_the_server_span_failed_with_the_vendor_errcode(
    gateway: Gateway, spans: InMemorySpanExporter
) -> None:
    gateway.sandbox.inject_fault("dingtalk_robot", "plain-dingtalk", errcode=400102, errmsg="robot disabled")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await gateway.stub.Send(send_request("plain-dingtalk"), timeout=5)

    server = await server_span_of(spans, failed=True)
    attributes = dict(server.attributes or {})
    assert attributes["rpc.grpc.status_code"] == caught.value.code().value[0] != 0
    assert attributes["notify.vendor.errcode"] == 400102
    assert attributes["notify.account"] == "plain-dingtalk"
    vendor = one(trace_of(spans, server), "vendor dingtalk_robot /robot/send")
    assert vendor.status.status_code == StatusCode.ERROR
    assert dict(vendor.attributes or {})["notify.vendor.errcode"] == 400102


async def test_an_invalid_send_is_an_error_span_with_invalid_argument(
    gateway: Gateway, spans: InMemorySpanExporter
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await gateway.stub.Send(pb.SendRequest(account="team-wecom"), timeout=5)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    server = await server_span_of(spans, failed=True)
    assert dict(server.attributes or {})["rpc.grpc.status_code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert not named(trace_of(spans, server), lambda n: n.startswith("vendor "))


async def test_the_callers_trace_context_is_continued(gateway: Gateway, spans: InMemorySpanExporter) -> None:
    trace_id, parent_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"

    reply = await gateway.stub.Send(
        send_request("team-wecom"), metadata=(("traceparent", f"00-{trace_id}-{parent_id}-01"),), timeout=5
    )

    server = await server_span_of(spans, reply.message_id)
    assert server.context is not None and server.parent is not None
    assert server.context.trace_id == int(trace_id, 16)
    assert server.parent.span_id == int(parent_id, 16)
    assert server.parent.is_remote
    assert named(trace_of(spans, server), lambda n: n.startswith("vendor wecom_robot"))


async def test_an_application_send_shows_the_token_fetch_in_its_trace(
    gateway: Gateway, spans: InMemorySpanExporter
) -> None:
    reply = await gateway.stub.Send(send_request("corp-app"), timeout=5)

    server = await server_span_of(spans, reply.message_id)
    trace = trace_of(spans, server)
    fetch = one(trace, "token.fetch")
    assert dict(fetch.attributes or {})["notify.account"] == "corp-app"
    assert fetch in descendants(trace, server)
    assert one(descendants(trace, fetch), "vendor wecom_app /cgi-bin/gettoken")
    assert one(trace, "vendor wecom_app /cgi-bin/message/send")


async def test_a_retried_vendor_call_is_a_span_per_attempt_and_a_retry_event(
    gateway: Gateway, spans: InMemorySpanExporter
) -> None:
    gateway.sandbox.inject_fault("wecom_robot", "team-wecom", http_status=503)

    reply = await gateway.stub.Send(send_request("team-wecom"), timeout=5)

    server = await server_span_of(spans, reply.message_id)
    trace = trace_of(spans, server)
    attempts = sorted(
        named(trace, lambda n: n == "vendor wecom_robot /cgi-bin/webhook/send"),
        key=lambda s: s.start_time or 0,
    )
    assert [dict(s.attributes or {})["http.response.status_code"] for s in attempts] == [503, 200]
    assert [s.status.status_code for s in attempts] == [StatusCode.ERROR, StatusCode.UNSET]
    assert all(parent_of(trace, s) is server for s in attempts)
    retries = [event for event in server.events if event.name == "vendor.retry"]
    assert len(retries) == 1
    assert dict(retries[0].attributes or {})["attempt"] == 1
    assert "503" in str(dict(retries[0].attributes or {})["reason"])
    assert len(gateway.sandbox.delivered("wecom_robot", "team-wecom")) == 1


async def test_a_sends_redis_operations_are_counted_on_its_server_span_not_spanned(
    sandbox: SandboxServer, redis_url: str, namespace: str, spans: InMemorySpanExporter
) -> None:
    config = configured(gateway_config(sandbox.url), token_store=redis_url, key_namespace=namespace)
    async with running_gateway(config, sandbox.state) as gateway:
        reply = await gateway.stub.Send(send_request("corp-app", idempotency_key="redis-trace"), timeout=5)

    server = await server_span_of(spans, reply.message_id)
    trace = trace_of(spans, server)
    assert not [s for s in trace if (s.attributes or {}).get("db.system") == "redis"]
    attributes = dict(server.attributes or {})
    # The idempotency key, the record and the admission; the token's read, lock, write and unlock.
    calls = attributes["notify.redis.calls"]
    assert isinstance(calls, int) and calls >= 4
    duration = attributes["notify.redis.duration_ms"]
    assert (
        isinstance(duration, float)
        and 0 < duration < ((server.end_time or 0) - (server.start_time or 0)) / 1e6
    )
    assert one(trace, "token.fetch"), "the token fetch inside the Send stays a span"


# -- no credential anywhere -------------------------------------------------------------------


def current_app_token(state: SandboxState, app: str) -> str:
    """The access token the sandbox holds current for `app` (the one the gateway was just given).

    ``issue`` hands back the current token while it is valid, so right after a successful Send
    this reads the gateway's token without changing anything.
    """
    book = state.wecom_apps.tokens if app in state.wecom_apps else state.dingtalk_apps.tokens
    return book.issue(app, state.clock.now(), state.token_lifetime).value


async def drive_every_account(gateway: Gateway) -> set[str]:
    """Sends through every account, successes and failures; returns the app tokens issued."""
    state, stub = gateway.sandbox, gateway.stub
    tokens: set[str] = set()

    async def attempt(req: pb.SendRequest) -> None:
        with contextlib.suppress(grpc.aio.AioRpcError):
            await stub.Send(req, timeout=5)

    for account in ("team-wecom", "ops-dingtalk", "plain-dingtalk", "corp-app", "ding-app"):
        await stub.Send(send_request(account), timeout=5)
    for app in ("corp-app", "ding-app"):
        tokens.add(current_app_token(state, app))

    # Vendors echoing the credential in errmsg; bare HTTP failures; retries.
    state.inject_fault(
        "wecom_robot", "team-wecom", errcode=93000, errmsg=f"invalid webhook url, key={WECOM_KEY}"
    )
    await attempt(send_request("team-wecom"))
    state.inject_fault("wecom_robot", "team-wecom", http_status=503, times=3)
    await attempt(send_request("team-wecom"))
    state.inject_fault(
        "dingtalk_robot",
        "ops-dingtalk",
        errcode=310000,
        errmsg=f"sign not match for secret {DINGTALK_SECRET}",
    )
    await attempt(send_request("ops-dingtalk"))
    state.inject_fault("dingtalk_robot", "ops-dingtalk", http_status=502)
    await attempt(send_request("ops-dingtalk"))
    state.inject_fault(
        "dingtalk_robot",
        "plain-dingtalk",
        errcode=300001,
        errmsg=f"token {DINGTALK_PLAIN_TOKEN} is not exist",
    )
    await attempt(send_request("plain-dingtalk"))
    await attempt(pb.SendRequest(account="plain-dingtalk"))  # INVALID_ARGUMENT

    # Applications: a revoked token is replaced (the old one is rejected on the wire), an expired
    # one too, and a vendor refusal on the send itself.
    for app in ("corp-app", "ding-app"):
        state.revoke_token(app)
        await stub.Send(send_request(app), timeout=5)
        tokens.add(current_app_token(state, app))
    state.inject_fault("wecom_app", "corp-app", errcode=60020, errmsg="not allow to access from your ip")
    await attempt(send_request("corp-app"))
    state.inject_fault(
        "dingtalk_work",
        "ding-app",
        errcode=88,
        errmsg="invalid token",
        path="/topapi/message/corpconversation/asyncsend_v2",
    )
    await attempt(send_request("ding-app"))
    tokens.add(current_app_token(state, "ding-app"))
    return tokens


def span_texts(span: ReadableSpan) -> Iterator[tuple[str, str]]:
    yield "name", span.name
    yield "status", span.status.description or ""
    for key, value in (span.attributes or {}).items():
        yield f"attribute {key}", f"{key}={value}"
    for event in span.events:
        yield "event", event.name
        for key, value in (event.attributes or {}).items():
            yield f"event {event.name} {key}", f"{key}={value}"


def record_texts(record: logging.LogRecord) -> Iterator[tuple[str, str]]:
    yield "message", record.getMessage()
    for key, value in record.__dict__.items():
        yield f"field {key}", str(value)
    if record.exc_info:
        yield "exception", logging.Formatter().formatException(record.exc_info)


def leaks(text: str, secrets: Iterable[str]) -> list[str]:
    found = [secret for secret in secrets if secret in text]
    found += [match.group(0) for match in CREDENTIAL_PARAM.finditer(text)]
    return found


@pytest.mark.parametrize("store", ["memory", "redis"])
async def test_no_credential_or_access_token_appears_in_any_span_or_log_record(
    sandbox: SandboxServer,
    spans: InMemorySpanExporter,
    caplog: pytest.LogCaptureFixture,
    request: pytest.FixtureRequest,
    store: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    stores = (
        {}
        if store == "memory"
        else {
            "token_store": request.getfixturevalue("redis_url"),
            "key_namespace": request.getfixturevalue("namespace"),
        }
    )
    config = configured(gateway_config(sandbox.url), **stores)
    async with running_gateway(config, sandbox.state) as gateway:
        app_tokens = await drive_every_account(gateway)

    secrets = (*SECRETS, *app_tokens)
    assert len(app_tokens) >= 4, "each app got a first and a replacement token"
    finished = spans.get_finished_spans()
    assert len(named(finished, lambda n: n.startswith("vendor "))) >= 15, "the Sends were traced"
    for span in finished:
        for where, text in span_texts(span):
            assert not leaks(text, secrets), f"span {span.name!r}, {where}"
    assert caplog.records, "the gateway logged the calls"
    for record in caplog.records:
        for where, text in record_texts(record):
            assert not leaks(text, secrets), f"log record {record.name} {record.getMessage()!r}, {where}"


# -- metrics ----------------------------------------------------------------------------------


def points(reader: InMemoryMetricReader, name: str) -> list[object]:
    data = reader.get_metrics_data()
    found: list[object] = []
    for resource in data.resource_metrics if data is not None else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == name:
                    found.extend(metric.data.data_points)
    return found


def total(reader: InMemoryMetricReader, name: str, **attributes: object) -> float:
    """The sum (counters) or count (histograms) of the data points carrying these attributes."""
    result = 0.0
    for point in points(reader, name):
        if all((point.attributes or {}).get(k) == v for k, v in attributes.items()):  # type: ignore[attr-defined]
            result += getattr(point, "value", None) or getattr(point, "count", 0)
    return result


async def test_sends_are_counted_by_method_and_status(
    gateway: Gateway, metric_reader: InMemoryMetricReader
) -> None:
    ok_before = total(metric_reader, "notify.rpc.calls", **{"rpc.method": "Send", "rpc.grpc.status_code": 0})
    bad_before = total(metric_reader, "notify.rpc.calls", **{"rpc.method": "Send", "rpc.grpc.status_code": 3})

    await gateway.stub.Send(send_request("team-wecom"), timeout=5)
    await gateway.stub.Send(send_request("plain-dingtalk"), timeout=5)
    with pytest.raises(grpc.aio.AioRpcError):
        await gateway.stub.Send(pb.SendRequest(account="team-wecom"), timeout=5)

    # A refused call is counted just after its status is on the wire (grpc's abort sends it, then
    # the interceptors unwind): the client can see the status first. Once counted, it is exact.
    await wait_until(
        lambda: (
            total(metric_reader, "notify.rpc.calls", **{"rpc.method": "Send", "rpc.grpc.status_code": 3})
            > bad_before
        ),
        "the refused Send to be counted",
    )
    ok = total(metric_reader, "notify.rpc.calls", **{"rpc.method": "Send", "rpc.grpc.status_code": 0})
    bad = total(metric_reader, "notify.rpc.calls", **{"rpc.method": "Send", "rpc.grpc.status_code": 3})
    assert ok - ok_before == 2
    assert bad - bad_before == 1


async def test_an_application_send_counts_its_token_fetch(
    gateway: Gateway, metric_reader: InMemoryMetricReader
) -> None:
    labels = {"notify.account": "ding-app", "outcome": "ok"}
    before = total(metric_reader, "notify.token.fetches", **labels)

    await gateway.stub.Send(send_request("ding-app"), timeout=5)
    await gateway.stub.Send(send_request("ding-app"), timeout=5)  # the token is reused

    assert total(metric_reader, "notify.token.fetches", **labels) - before == 1


async def test_vendor_call_latency_is_recorded(gateway: Gateway, metric_reader: InMemoryMetricReader) -> None:
    before = total(metric_reader, "notify.vendor.duration", **{"notify.channel": "wecom_robot"})

    await gateway.stub.Send(send_request("team-wecom"), timeout=5)

    assert total(metric_reader, "notify.vendor.duration", **{"notify.channel": "wecom_robot"}) - before >= 1


def metric_of(reader: InMemoryMetricReader, name: str) -> Metric:
    data = reader.get_metrics_data()
    for resource in data.resource_metrics if data is not None else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == name:
                    return metric
    raise AssertionError(f"no metric {name}")


def histogram_points(
    reader: InMemoryMetricReader, name: str, **attributes: object
) -> list[HistogramDataPoint]:
    found = [p for p in points(reader, name) if isinstance(p, HistogramDataPoint)]
    return [p for p in found if all((p.attributes or {}).get(k) == v for k, v in attributes.items())]


GATEWAY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]
VENDOR_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]


async def test_vendor_latency_has_buckets_in_seconds(
    gateway: Gateway, metric_reader: InMemoryMetricReader
) -> None:
    await gateway.stub.Send(send_request("team-wecom"), timeout=5)

    metric = metric_of(metric_reader, "notify.vendor.duration")
    assert metric.unit == "s"
    (point,) = histogram_points(
        metric_reader,
        "notify.vendor.duration",
        **{"notify.channel": "wecom_robot", "notify.vendor.path": "/cgi-bin/webhook/send", "outcome": "200"},
    )
    assert list(point.explicit_bounds) == VENDOR_BUCKETS


async def test_every_rpc_has_a_duration_labelled_as_the_rpc_semantic_conventions_say(
    gateway: Gateway, metric_reader: InMemoryMetricReader
) -> None:
    rpc = {"rpc.system": "grpc", "rpc.service": "notify.v1.NotificationService", "rpc.method": "Send"}
    ok = {**rpc, "rpc.grpc.status_code": 0, "notify.status": "OK"}
    not_found = {**rpc, "rpc.grpc.status_code": 5, "notify.status": "NOT_FOUND"}
    ok_before = total(metric_reader, "rpc.server.call.duration", **ok, **{"notify.account": "team-wecom"})
    not_found_before = total(metric_reader, "rpc.server.call.duration", **not_found)

    await gateway.stub.Send(send_request("team-wecom"), timeout=5)
    with pytest.raises(grpc.aio.AioRpcError):
        await gateway.stub.Send(send_request("nobody"), timeout=5)

    await wait_until(  # the refusal is recorded just after its status is sent (see above)
        lambda: total(metric_reader, "rpc.server.call.duration", **not_found) > not_found_before,
        "the NOT_FOUND call to be recorded",
    )
    assert metric_of(metric_reader, "rpc.server.call.duration").unit == "s"
    delivered = histogram_points(
        metric_reader, "rpc.server.call.duration", **ok, **{"notify.account": "team-wecom"}
    )
    assert sum(p.count for p in delivered) - ok_before == 1
    assert {p.attributes["notify.channel"] for p in delivered if p.attributes} == {"wecom_robot"}
    assert all(list(p.explicit_bounds) == GATEWAY_BUCKETS for p in delivered)
    unknown = histogram_points(metric_reader, "rpc.server.call.duration", **not_found)
    assert sum(p.count for p in unknown) - not_found_before == 1
    assert all("notify.account" not in (p.attributes or {}) for p in unknown), (
        "an account the gateway does not know is not a label: callers could make up any number"
    )


async def test_duration_samples_lead_to_the_trace_of_the_call_they_timed(
    gateway: Gateway, metric_reader: InMemoryMetricReader, spans: InMemorySpanExporter
) -> None:
    """Exemplars: a histogram bucket names the trace and span of a call in it, for an SRE to open."""
    metric_reader.get_metrics_data()  # exemplars are those sampled since the reader last collected
    reply = await gateway.stub.Send(send_request("ops-dingtalk"), timeout=5)
    server = await server_span_of(spans, reply.message_id)
    vendor = one(trace_of(spans, server), "vendor dingtalk_robot /robot/send")
    data = metric_reader.get_metrics_data()
    exemplars = {
        metric.name: [(e.trace_id, e.span_id) for p in metric.data.data_points for e in p.exemplars]
        for resource in (data.resource_metrics if data is not None else ())
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name in ("rpc.server.call.duration", "notify.vendor.duration")
    }
    assert (server.context.trace_id, server.context.span_id) in exemplars["rpc.server.call.duration"]
    assert (vendor.context.trace_id, vendor.context.span_id) in exemplars["notify.vendor.duration"]


async def test_rpc_counts_name_the_status_and_the_tenant(
    sandbox: SandboxServer, metric_reader: InMemoryMetricReader
) -> None:
    tenants = [{"name": "counted", "api_keys": [hash_key(TENANT_KEY)], "accounts": ["*"]}]
    labels = {
        "rpc.method": "Send",
        "notify.status": "OK",
        "notify.tenant": "counted",
        "notify.account": "plain-dingtalk",
        "notify.channel": "dingtalk_robot",
    }
    before = total(metric_reader, "notify.rpc.calls", **labels)

    async with running_gateway(
        configured(gateway_config(sandbox.url), tenants=tenants), sandbox.state
    ) as gateway:
        await gateway.stub.Send(
            send_request("plain-dingtalk"), metadata=(("authorization", f"Bearer {TENANT_KEY}"),), timeout=5
        )

    assert total(metric_reader, "notify.rpc.calls", **labels) - before == 1


async def test_a_call_not_sampled_is_counted_with_its_account_and_its_failure_code(
    gateway: Gateway, metric_reader: InMemoryMetricReader, caplog: pytest.LogCaptureFixture
) -> None:
    # The caller's traceparent says "not sampled": the span keeps nothing, the call's facts still
    # label its metrics and its access log line.
    unsampled = (("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"),)
    labels = {"rpc.method": "Send", "notify.channel": "dingtalk_robot", "notify.account": "plain-dingtalk"}
    ok_before = total(metric_reader, "notify.rpc.calls", **labels, **{"rpc.grpc.status_code": 0})
    failed_before = total(
        metric_reader, "notify.rpc.calls", **labels, **{"notify.status": "FAILED_PRECONDITION"}
    )

    reply = await gateway.stub.Send(send_request("plain-dingtalk"), metadata=unsampled, timeout=5)
    gateway.sandbox.inject_fault("dingtalk_robot", "plain-dingtalk", errcode=400102, errmsg="robot disabled")
    with (
        caplog.at_level(logging.INFO, logger="gateway.access"),
        pytest.raises(grpc.aio.AioRpcError) as caught,
    ):
        await gateway.stub.Send(send_request("plain-dingtalk"), metadata=unsampled, timeout=5)
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    await wait_until(
        lambda: (
            total(metric_reader, "notify.rpc.calls", **labels, **{"notify.status": "FAILED_PRECONDITION"})
            > failed_before
        ),
        "the refused Send to be counted with its account and code",
    )
    assert total(metric_reader, "notify.rpc.calls", **labels, **{"rpc.grpc.status_code": 0}) - ok_before == 1
    assert reply.message_id
    (line,) = [r for r in caplog.records if r.name == "gateway.access" and r.levelno > logging.INFO]
    assert line.__dict__["account"] == "plain-dingtalk" and line.__dict__["message_id"]
    assert line.__dict__["vendor_errcode"] == 400102


async def test_rate_limit_refusals_are_counted_by_scope_and_account(
    sandbox: SandboxServer, metric_reader: InMemoryMetricReader
) -> None:
    tenants = [
        {
            "name": "thrifty",
            "api_keys": [hash_key(TENANT_KEY)],
            "accounts": ["*"],
            "quotas": {"sends_per_minute": 1},
        }
    ]
    labels = {"notify.rate_limit.scope": "tenant", "notify.account": "team-wecom"}
    before = total(metric_reader, "notify.rate_limit.refusals", **labels)

    async with running_gateway(
        configured(gateway_config(sandbox.url), tenants=tenants), sandbox.state
    ) as gateway:
        as_tenant = (("authorization", f"Bearer {TENANT_KEY}"),)
        await gateway.stub.Send(send_request("team-wecom"), metadata=as_tenant, timeout=5)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await gateway.stub.Send(send_request("team-wecom"), metadata=as_tenant, timeout=5)

    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert total(metric_reader, "notify.rate_limit.refusals", **labels) - before == 1


async def test_vendor_retries_are_counted_by_channel_and_reason(
    gateway: Gateway, metric_reader: InMemoryMetricReader
) -> None:
    labels = {"notify.channel": "wecom_robot", "reason": "http_503"}
    before = total(metric_reader, "notify.vendor.retries", **labels)
    gateway.sandbox.inject_fault("wecom_robot", "team-wecom", http_status=503)

    await gateway.stub.Send(send_request("team-wecom"), timeout=5)

    assert total(metric_reader, "notify.vendor.retries", **labels) - before == 1


async def test_a_failed_token_fetch_is_counted_as_an_error(
    gateway: Gateway, metric_reader: InMemoryMetricReader
) -> None:
    labels = {"notify.account": "ding-app", "outcome": "error"}
    before = total(metric_reader, "notify.token.fetches", **labels)
    gateway.sandbox.inject_fault("dingtalk_work", "ding-app", http_status=403, path="/gettoken")

    with pytest.raises(grpc.aio.AioRpcError):
        await gateway.stub.Send(send_request("ding-app"), timeout=5)

    assert total(metric_reader, "notify.token.fetches", **labels) - before == 1
