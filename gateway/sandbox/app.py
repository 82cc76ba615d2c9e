"""Assembles the sandbox's aiohttp app from its parts, and runs it on a real TCP port."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Final, Self

from aiohttp import web

from gateway.sandbox import delays, dingtalk_robot, dingtalk_work, inbox, inspection, wecom_app, wecom_robot
from gateway.sandbox.access_log import RedactedAccessLogger
from gateway.sandbox.state import SandboxState

RoutesFactory = Callable[[SandboxState], list[web.RouteDef]]
"""What each vendor module exposes: its routes, bound to the shared state."""

# One line per emulated vendor channel: a new channel is a new module plus one line here.
VENDOR_CHANNELS: Final[tuple[RoutesFactory, ...]] = (
    wecom_robot.routes,
    dingtalk_robot.routes,
    wecom_app.routes,
    dingtalk_work.routes,
)

# Robot images are 2 MB raw (~2.7 MB as base64) inside a JSON body; the body must reach the
# emulator so it can answer the vendor's size errcode instead of aiohttp's HTTP 413. (Media uploads
# are streamed by `media_upload`, which stops at each type's own limit; this cap does not apply.)
CLIENT_MAX_SIZE: Final = 32 * 1024 * 1024


def build_app(
    state: SandboxState,
    vendors: Sequence[RoutesFactory] = VENDOR_CHANNELS,
    *,
    trace_url: str | None = None,
) -> web.Application:
    """The sandbox app: every vendor channel in `vendors`, the `/_sandbox/` API and the inbox page.

    `trace_url` links each message to the gateway's trace, e.g.
    "http://localhost:16686/trace/{trace_id}" for Jaeger.
    """
    app = web.Application(client_max_size=CLIENT_MAX_SIZE)
    delays.install(app)
    for routes in (*vendors, inspection.routes):
        app.add_routes(routes(state))
    inbox.install(app, state, inbox.CardOptions(trace_url=trace_url))
    return app


class SandboxServer:
    """Serves `build_app(state)` on a real TCP port: `async with SandboxServer(state) as s:`.

    `port=0` takes a free port; `url` says which. Loopback by default: the sandbox has no auth
    and its `/_sandbox/` API can rewrite its behaviour.
    """

    def __init__(
        self,
        state: SandboxState,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        shutdown_timeout: float = 5.0,
        trace_url: str | None = None,
    ) -> None:
        self.state = state
        self.trace_url = trace_url
        self.host = host
        self._port = port
        self._shutdown_timeout = shutdown_timeout
        self._runner: web.AppRunner | None = None
        self._bound_port: int | None = None

    @property
    def port(self) -> int:
        """The port actually listened on."""
        if self._bound_port is None:
            raise RuntimeError("the sandbox server is not running")
        return self._bound_port

    @property
    def url(self) -> str:
        """Base URL, e.g. "http://127.0.0.1:43211"; point an account's base_url here."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        """Start listening; the port is known when this returns."""
        if self._runner is not None:
            raise RuntimeError("the sandbox server is already running")
        runner = web.AppRunner(
            build_app(self.state, trace_url=self.trace_url),
            access_log_class=RedactedAccessLogger,
            shutdown_timeout=self._shutdown_timeout,
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self._port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._bound_port = int(runner.addresses[0][1])

    async def stop(self) -> None:
        """Stop listening and end in-flight requests (injected delays are cut short)."""
        runner, self._runner, self._bound_port = self._runner, None, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()
