"""Prints the trace of one successful Send and one Send the vendor refuses, as an indented table.

A gateway and the vendor sandbox run in this process with an in-memory span exporter, so the
table shows exactly what an exporter would receive: each span's name, kind, duration and status,
indented under its parent, with the server span's step events below it. Used to show a trace's
shape before and after a change (issue 13): ``.venv/bin/python scripts/trace_dump.py``. With
``--redis redis://HOST:PORT/DB`` the gateway keeps its tokens and records there (under a key
namespace of its own), so the server span shows the Redis operations it counted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path

import grpc
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.config import parse_config
from gateway.sandbox import SandboxServer, SandboxState
from gateway.sandbox.seed import seed_from_accounts
from gateway.server import GatewayServer
from generated.notify.v1 import notification_service_pb2 as pb
from generated.notify.v1 import notification_service_pb2_grpc as pb_grpc

CONFIG = """
server:
  listen: 127.0.0.1:0
auth: none
token_store: {store}
key_namespace: trace-dump-{pid}
accounts:
  corp-app:
    channel: wecom_app
    corp_id: ww-trace-dump
    corp_secret: trace-dump-corp-secret
    agent_id: 1000002
    base_url: {url}
  ops-dingtalk:
    channel: dingtalk_robot
    access_token: trace-dump-robot-token
    base_url: {url}
"""


#: Span attributes the table shows (the rest are in the exporter's output).
SHOWN_ATTRIBUTES = (
    "notify.label.",
    "notify.redis.",
    "notify.vendor.errcode",
    "rpc.grpc.status_code",
    "http.response.status_code",
    "error.type",
)


def table(spans: Sequence[ReadableSpan]) -> str:
    """The spans of the Send's trace, children indented under their parent, in start order.

    Others (a queue worker's Redis polling, with ``--redis``) are traces of their own, left out.
    """
    sends = [s.context.trace_id for s in spans if s.name.endswith("/Send") and s.context is not None]
    spans = [s for s in spans if s.context is not None and s.context.trace_id in sends]
    by_parent: dict[int | None, list[ReadableSpan]] = {}
    ids = {s.context.span_id for s in spans if s.context is not None}
    for span in sorted(spans, key=lambda s: s.start_time or 0):
        parent = span.parent.span_id if span.parent is not None and span.parent.span_id in ids else None
        by_parent.setdefault(parent, []).append(span)
    lines = [f"{'span':<64} {'kind':<8} {'ms':>8}  status"]

    def walk(parent: int | None, depth: int) -> None:
        for span in by_parent.get(parent, []):
            ms = ((span.end_time or 0) - (span.start_time or 0)) / 1e6
            status = span.status.status_code.name
            if span.status.description:
                status += f" ({span.status.description[:40]})"
            name = "  " * depth + span.name
            lines.append(f"{name:<64} {span.kind.name:<8} {ms:8.2f}  {status}")
            pad = "  " * (depth + 1)
            for key, value in (span.attributes or {}).items():
                if key.startswith(SHOWN_ATTRIBUTES):
                    lines.append(f"{pad}{key} = {value}")
            for event in span.events:
                lines.append(f"{pad + '· event ' + event.name:<64} {'event':<8}")
                for key, value in (event.attributes or {}).items():
                    if isinstance(value, float):
                        lines.append(f"{pad + '    ' + key.removesuffix('_ms'):<64} {'step':<8} {value:8.3f}")
                    else:
                        lines.append(f"{pad}    {key} = {value}")
            assert span.context is not None
            walk(span.context.span_id, depth + 1)

    walk(None, 0)
    return "\n".join(lines)


async def dump(store: str) -> str:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    state = SandboxState()
    async with SandboxServer(state) as sandbox:
        config = parse_config(textwrap.dedent(CONFIG.format(url=sandbox.url, store=store, pid=os.getpid())))
        seed_from_accounts(state, config.accounts)
        async with GatewayServer(config) as server, grpc.aio.insecure_channel(server.address) as channel:
            stub = pb_grpc.NotificationServiceStub(channel)
            text = pb.Message(text=pb.Text(content="disk almost full"))
            ok = pb.SendRequest(
                account="corp-app",
                message=text,
                recipients=pb.Recipients(user_ids=["zhangsan"]),
                labels={"team": "payments"},
            )
            await stub.Send(ok, timeout=5)
            exporter_spans = list(exporter.get_finished_spans())
            exporter.clear()
            state.inject_fault("dingtalk_robot", "ops-dingtalk", errcode=400102, errmsg="robot disabled")
            try:
                await stub.Send(pb.SendRequest(account="ops-dingtalk", message=text), timeout=5)
            except grpc.aio.AioRpcError as error:
                refused = f"{error.code().name}: {error.details()}"
            else:
                refused = "OK (the fault did not fire)"
            await asyncio.sleep(0.05)  # spans of the call end after its answer is sent
            failed_spans = list(exporter.get_finished_spans())
    return (
        "== a successful Send (wecom_app: token fetch, then message/send) ==\n"
        + table(exporter_spans)
        + f"\n\n== a Send the vendor refuses (dingtalk_robot errcode 400102) -> {refused} ==\n"
        + table(failed_spans)
        + "\n"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", default="memory://", help="a redis:// URL for tokens and records")
    print(asyncio.run(dump(parser.parse_args().redis)))
