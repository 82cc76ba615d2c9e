"""The life of one request to a robot webhook: a JSON body, decided synchronously.

Robot vendor modules supply a `Decide` over the parsed body; faults, recording and answering are
`endpoint.serve_call`'s, the same as for every other emulated endpoint.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from gateway.sandbox.answers import Answer
from gateway.sandbox.endpoint import Call, Delivery, ErrmsgStyle, serve_call
from gateway.sandbox.state import SandboxState

Decide = Callable[[Delivery], Answer]
"""A vendor module's handling of one delivery: returns success or raises Rejection."""


async def serve_robot_call(
    request: web.Request,
    *,
    state: SandboxState,
    channel: str,
    robot: str | None,
    decide: Decide,
    style: ErrmsgStyle,
) -> web.Response:
    """Answer one robot webhook request; `robot` is the name its credential belongs to."""
    delivery = Delivery.parse(await request.read())

    async def handle(_: Call) -> Answer:
        return decide(delivery)

    return await serve_call(
        request,
        state=state,
        channel=channel,
        name=robot,
        call=Call(delivery.msgtype, delivery.body if delivery.body is not None else {}),
        handle=handle,
        style=style,
    )
