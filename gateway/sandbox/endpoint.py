"""The life of one request to an emulated vendor endpoint, shared by every vendor module.

Play a pending fault, let the vendor module handle the request, record what arrived and what was
answered, answer (late, or not at all, if the fault says so). Vendor modules supply only the
handling and their errmsg style, so faults and recording behave the same on every channel and
every endpoint.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from http import HTTPStatus
from typing import Any

from aiohttp import web

from gateway.sandbox.answers import Answer, Rejection
from gateway.sandbox.delays import pause
from gateway.sandbox.recording import Received
from gateway.sandbox.state import SandboxState
from gateway.sandbox.trace_context import trace_id_of

ErrmsgStyle = Callable[[int, str, web.Request], str]
"""Turns (errcode, text, request) into the vendor's errmsg."""


@dataclass(frozen=True)
class Delivery:
    """A JSON request body: raw bytes, and the JSON object they hold (None if they hold none)."""

    raw: bytes
    body: dict[str, Any] | None

    @classmethod
    def parse(cls, raw: bytes) -> Delivery:
        """Both vendors take UTF-8 JSON; anything else is kept raw for the vendor to refuse."""
        try:
            loaded = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return cls(raw, None)
        return cls(raw, loaded if isinstance(loaded, dict) else None)

    @property
    def msgtype(self) -> str:
        """The body's msgtype when it is a string, else ""."""
        value = self.body.get("msgtype") if self.body is not None else None
        return value if isinstance(value, str) else ""


@dataclass
class Call:
    """How the journal will describe one request.

    Mutable on purpose: an upload learns its filename and size only while the handler reads it,
    and a refused upload should still be recorded with what was read.
    """

    msgtype: str
    body: dict[str, Any] = field(default_factory=dict)


Handle = Callable[[Call], Awaitable[Answer]]
"""A vendor module's handling of one request: returns success or raises Rejection."""

_dumps = partial(json.dumps, ensure_ascii=False)


async def serve_call(
    request: web.Request,
    *,
    state: SandboxState,
    channel: str,
    name: str | None,
    call: Call,
    handle: Handle,
    style: ErrmsgStyle,
) -> web.Response:
    """Answer one vendor request; `name` is the robot or app its credential belongs to, if any.

    Faults are looked up by `name` and the request's path, so a fault aimed at one endpoint
    (say gettoken) leaves the app's other endpoints alone.
    """
    fault = state.faults.take(channel, name, request.path) if name is not None else None
    drop = fault.drop if fault is not None else None

    def record(answer: Answer | None, http_status: int | None, text: str) -> None:
        state.record(
            Received(
                channel=channel,
                robot=name,
                msgtype=call.msgtype,
                body=call.body,
                errcode=answer.errcode if answer is not None else None,
                errmsg=answer.errmsg if answer is not None else text,
                at=state.clock.now(),
                duplicate=answer.duplicate if answer is not None else False,
                http_status=http_status,
                dropped=drop is not None,
                answer=_shown_fields(answer),
                trace_id=trace_id_of(request.headers.get("traceparent")),
            )
        )

    if drop == "before":
        # Not handled at all: the journal shows only that it arrived, and no vendor state moves,
        # so the test can check that the gateway's retry is the one and only delivery.
        record(None, None, "connection dropped before the request was handled")
        return await _hang_up(request)
    if fault is not None and fault.http_status is not None:
        text = fault.errmsg or _status_line(fault.http_status)
        record(None, fault.http_status, text)
        response = web.Response(status=fault.http_status, text=text)
    else:
        if fault is not None and fault.errcode is not None:
            errmsg = fault.errmsg
            answer = Answer(
                fault.errcode,
                errmsg if errmsg is not None else style(fault.errcode, "injected fault", request),
                fields={} if fault.sub_code is None else {"sub_code": fault.sub_code},
            )
        else:
            try:
                answer = await handle(call)
            except Rejection as rejection:
                answer = Answer(
                    rejection.errcode,
                    style(rejection.errcode, rejection.text, request),
                    fields=rejection.fields,
                )
        record(answer, 200, answer.errmsg)
        payload = {"errcode": answer.errcode, "errmsg": answer.errmsg, **answer.fields}
        response = web.json_response(payload, dumps=_dumps)

    if drop == "after":
        # Handled and recorded exactly as on success; only the answer is lost on the way back.
        return await _hang_up(request)
    # The request is handled (and recorded) on arrival and only the answer is held back: the
    # vendor acted but the client gave up waiting, the case DingTalk's msgUuid exists for.
    if fault is not None and fault.delay and not await pause(request.app, fault.delay):
        return web.Response(status=503, text="sandbox stopping")
    return response


async def _hang_up(request: web.Request) -> web.Response:
    """Close the connection without writing an answer; the client sees the server disconnect.

    The rest of the body is read first: closing a socket with unread input makes the kernel send
    a reset, which the client would see as a different error (and for a large upload, mid-send).
    The returned response is never written: aiohttp finds the transport closed, treats it as a
    client gone away (logged at debug, not as an error) and logs the access line with its status,
    444 as nginx logs a connection it closed without answering.
    """
    while await request.content.readany():
        pass
    request.protocol.force_close()
    return web.Response(status=444, reason="Connection Closed Without Response")


_CREDENTIAL_FIELDS = frozenset({"access_token", "media_id"})
"""Answer fields that grant access, kept out of the journal: gettoken's token, and an upload's
unguessable media_id (the journal records an upload as what was sent, never a handle to it)."""


def _shown_fields(answer: Answer | None) -> dict[str, Any]:
    if answer is None:
        return {}
    return {key: value for key, value in answer.fields.items() if key not in _CREDENTIAL_FIELDS}


def _status_line(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)
