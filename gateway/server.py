"""Builds and runs the grpc.aio server: interceptors, servicer, health, reflection, graceful stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import signal
import tempfile
from types import TracebackType

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc

from gateway.background import cancel_and_wait
from gateway.chain.chains import Dependencies, build_chains
from gateway.channels.transport import VendorTransport
from gateway.config import Config
from gateway.handlers import GenericOnly, add_service
from gateway.http import HttpFace
from gateway.interceptors.access_log import AccessLogInterceptor
from gateway.interceptors.auth import AuthInterceptor
from gateway.interceptors.errors import ErrorInterceptor
from gateway.interceptors.tracing import TracingInterceptor
from gateway.runtime import Runtime
from gateway.service import NotificationService
from gateway.tenants import Tenant, Tenants, parse_key_hash
from generated.notify.v1 import notification_service_pb2 as pb

log = logging.getLogger("gateway.server")
SERVICE = pb.DESCRIPTOR.services_by_name["NotificationService"]
SERVICE_NAME = SERVICE.full_name


class GatewayServer:
    """One gateway: ``await start()``, ``port``, ``await stop()``; also an async context manager."""

    def __init__(
        self, config: Config, *, transport: VendorTransport | None = None, reuse_port: bool = False
    ) -> None:
        """``reuse_port``: share the ports with sibling processes (``serve --processes N``, SO_REUSEPORT).

        Off by default, so a second gateway on a port already taken fails to start instead of
        silently taking half of the connections.
        """
        self.config = config
        self._reuse_port = reuse_port
        self.runtime = runtime = Runtime.build(config, transport)
        self.transport, self.stores, self.store_health = (
            runtime.transport,
            runtime.stores,
            runtime.store_health,
        )
        self.tokens, self.accounts, self.ledger = runtime.tokens, runtime.accounts, runtime.ledger
        self.reports = runtime.reports
        self._store_watch: asyncio.Task[None] | None = None
        # Queue workers beside the API unless the config leaves delivery to `notify-gateway worker`.
        self.worker = runtime.worker() if config.queue.workers_in_serve else None
        self.tenants = Tenants(
            (
                Tenant(
                    name=t.name,
                    key_hashes=tuple(parse_key_hash(k) for k in t.api_keys),
                    accounts=frozenset(t.accounts),
                    sends_per_minute=t.quotas.sends_per_minute,
                )
                for t in config.tenants
            ),
            auth=config.auth,
        )
        if not self.tenants.enabled:
            log.warning(
                "auth: none: calls are not authenticated and may use every account (development only)"
            )
        # Outermost first: the server span covers everything; the access log sees the status the
        # error interceptor produced (and the trace id); the error interceptor maps what
        # authentication raises.
        self._server = grpc.aio.server(
            interceptors=[
                TracingInterceptor(),
                AccessLogInterceptor(),
                ErrorInterceptor(),
                AuthInterceptor(self.tenants),
            ],
            options=[
                ("grpc.max_receive_message_length", config.server.max_receive_message_bytes),
                ("grpc.so_reuseport", 1 if reuse_port else 0),
                # A fixed receive window per stream: with BDP probing, grpc lets each stream run at
                # least 4 MB ahead of what the handler has read, buffered in the gateway's memory.
                ("grpc.http2.bdp_probe", 0),
                ("grpc.http2.lookahead_bytes", config.server.receive_window_bytes),
            ],
        )
        # Registered from the descriptor with deserializers that never raise (gateway.handlers), so
        # bytes that do not decode are refused with INVALID_ARGUMENT, after authentication.
        add_service(
            self._server,
            NotificationService(
                build_chains(
                    Dependencies(
                        self.accounts,
                        self.stores,
                        self.ledger,
                        self.reports,
                        config.uploads,
                        runtime.queue,
                        config.queue,
                    )
                )
            ),
            SERVICE,
        )
        self._health = health.aio.HealthServicer()
        # Both generically, as the gateway's own service (gateway.handlers.add_service says why).
        health_pb2_grpc.add_HealthServicer_to_server(self._health, GenericOnly(self._server))
        reflection_pb2_grpc.add_ServerReflectionServicer_to_server(
            reflection.aio.ReflectionServicer((SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME)),
            GenericOnly(self._server),
        )
        self.port = self._bind(config.server.listen)
        self._internal_dir: str | None = None
        self.http = self._http_face(config)
        self._stopped = asyncio.Event()

    def _bind(self, listen: str) -> int:
        tls = self.config.server.tls
        if tls is None:
            port = self._server.add_insecure_port(listen)
        else:
            credentials = grpc.ssl_server_credentials(
                [(tls.key_file.read_bytes(), tls.cert_file.read_bytes())],
                root_certificates=tls.client_ca_file.read_bytes() if tls.client_ca_file else None,
                require_client_auth=tls.client_ca_file is not None,
            )
            port = self._server.add_secure_port(listen, credentials)
        if port == 0:
            raise OSError(f"cannot listen on {listen}")
        return int(port)

    def _http_face(self, config: Config) -> HttpFace | None:
        """The HTTP/JSON face (config ``http``), calling this server on a unix socket of its own.

        Insecure, so it works whatever the public port's TLS (mTLS included), and in a directory
        only this user may enter (mkdtemp's 0700); API keys are checked on it like anywhere else.
        """
        if config.http.listen is None:
            return None
        self._internal_dir = tempfile.mkdtemp(prefix="notify-gateway-")
        target = f"unix:{self._internal_dir}/grpc.sock"
        try:
            if self._server.add_insecure_port(target) == 0:
                raise OSError(f"cannot listen on {target}")
            return HttpFace(
                config.http,
                SERVICE,
                upstream=target,
                max_body_bytes=config.server.max_receive_message_bytes,
                grace_seconds=config.server.grace_period_seconds,
                reuse_port=self._reuse_port,
                tenants=self.tenants,
            )
        except OSError:
            shutil.rmtree(self._internal_dir, ignore_errors=True)  # start-up stops here: leave nothing
            raise

    @property
    def address(self) -> str:
        host = self.config.server.listen.rpartition(":")[0]
        return f"{host}:{self.port}"

    async def start(self) -> None:
        """Starts even if the store is down (Redis may come later): only its health says so.

        "" stays SERVING while the process is up, so a liveness probe does not restart a gateway
        that can do nothing about Redis; the service's name follows the store, for readiness.
        """
        reachable = await self.store_health.check_at_start()
        await self._health.set("", health_pb2.HealthCheckResponse.SERVING)
        await self._set_service_health(reachable)
        await self._server.start()
        if self.http is not None:
            await self.http.start()
        self.runtime.start()
        if self.worker is not None:
            self.worker.start()
        self._store_watch = asyncio.create_task(
            self.store_health.watch(self.config.server.health_check_seconds, self._set_service_health),
            name="store-health",
        )
        log.info("gateway listening", extra={"address": self.address, "accounts": sorted(self.accounts)})

    async def _set_service_health(self, store_reachable: bool) -> None:
        status = health_pb2.HealthCheckResponse
        await self._health.set(SERVICE_NAME, status.SERVING if store_reachable else status.NOT_SERVING)

    async def drain(self, delay: float | None = None, interrupted: asyncio.Event | None = None) -> None:
        """Says NOT_SERVING for ``delay`` s (default: the config's) while the port still accepts.

        Load balancers poll health every few seconds: closing the port at once would fail calls
        routed here before they noticed. ``interrupted`` (a second signal) cuts the wait short.
        Not part of ``stop``, so tests and embedders that stop a gateway do not wait for it.
        """
        delay = self.config.server.drain_delay_seconds if delay is None else delay
        await self._health.enter_graceful_shutdown()
        if delay > 0:
            log.info("draining: health NOT_SERVING before the port closes", extra={"drain_seconds": delay})
            waiter = interrupted or asyncio.Event()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiter.wait(), timeout=delay)

    async def stop(self, grace: float | None = None) -> None:
        """Reports NOT_SERVING, lets in-flight calls finish within the grace period, closes sessions."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        grace = self.config.server.grace_period_seconds if grace is None else grace
        if self._store_watch is not None:
            await cancel_and_wait(self._store_watch)
        await self._health.enter_graceful_shutdown()
        if self.http is not None:
            await self.http.stop()  # first: its requests in flight are calls to the server below
        # Calls still running at the end of the grace period are cancelled; each records its
        # message's outcome (UNKNOWN if a vendor call was in flight) before the store closes.
        await self._server.stop(grace)
        if self._internal_dir is not None:
            shutil.rmtree(self._internal_dir, ignore_errors=True)
        if self.worker is not None:  # deliveries in progress finish within the same grace period
            await self.worker.stop(grace)
        await self.runtime.close()
        log.info("gateway stopped")

    async def wait_for_termination(self) -> None:
        await self._server.wait_for_termination()

    async def __aenter__(self) -> GatewayServer:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop(grace=0)


async def run_until_signalled(server: GatewayServer) -> None:
    """Serves until SIGTERM or SIGINT, then stops gracefully.

    SIGTERM (an orchestrator) first drains for ``server.drain_delay_seconds``; SIGINT (Ctrl-C at a
    terminal, where no load balancer is watching) and a second signal skip the drain.
    """
    loop = asyncio.get_running_loop()
    signalled = asyncio.Event()
    received: list[signal.Signals] = []

    def on_signal(sig: signal.Signals) -> None:
        received.append(sig)
        signalled.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    await server.start()
    await signalled.wait()
    settings = server.config.server
    drain = settings.drain_delay_seconds if received[0] == signal.SIGTERM else 0.0
    log.info(
        "signal received; draining",
        extra={
            "signal": received[0].name,
            "drain_seconds": drain,
            "grace_seconds": settings.grace_period_seconds,
        },
    )
    signalled.clear()  # a second signal ends the drain delay early
    await server.drain(drain, interrupted=signalled)
    await server.stop()
