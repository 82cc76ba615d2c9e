"""``serve --processes N``: N gateway processes serving one port, kept running by a parent.

One gateway process uses one core at most (asyncio and the GIL). With SO_REUSEPORT every child
binds the same gRPC port (and the HTTP face's), and the kernel spreads new connections across
them by a hash of each connection's addresses: a client's channel stays on the child it reached,
and many channels spread out. The parent serves nothing. It checks that the ports are free (with
SO_REUSEPORT a taken port would not be an error), starts the children
(``python -m gateway serve --process-index I``), restarts one that dies, forwards SIGTERM and
SIGINT to them all (each drains and stops as a single gateway does) and exits when they all have.

Prometheus: child I serves ``/metrics`` on ``telemetry.prometheus_listen``'s port + I, because
each child has its own counters and one port can only show one process's; scrape them all.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Sequence

from gateway.config import Config, parse_listen

log = logging.getLogger("gateway.processes")
#: A child that ran this long before dying was healthy: it is restarted after the first delay.
STABLE_SECONDS = 30.0
RESTART_MAX_DELAY = 30.0


def refusal(config: Config, processes: int, *, sandbox: bool) -> str | None:
    """Why ``serve --processes N`` cannot run with this config and these flags, or None."""
    if processes == 1:
        return None
    if not hasattr(socket, "SO_REUSEPORT"):
        return "--processes needs SO_REUSEPORT, which this platform does not have"
    if sandbox:
        return "--processes cannot run the sandbox in each process; run `notify-gateway sandbox` apart"
    for field, listen in (("server.listen", config.server.listen), ("http.listen", config.http.listen)):
        if listen is not None and parse_listen(listen, allow_port_zero=True)[1] == 0:
            return f"--processes needs a fixed port: {field} is {listen} (each process would get another)"
    prometheus = config.telemetry.prometheus_listen
    if prometheus is not None and parse_listen(prometheus)[1] + processes - 1 > 65535:
        last = f"{prometheus} + {processes - 1}"
        return f"--processes {processes}: telemetry.prometheus_listen {last} is past port 65535"
    return None


def ports_in_use(config: Config, processes: int) -> list[str]:
    """The addresses the children would bind that something already holds (``cannot listen`` lines).

    A plain bind (no SO_REUSEPORT) fails on a port any listener holds, this user's SO_REUSEPORT
    gateways included, so a second ``--processes`` gateway on the same port is refused instead
    of joining the first one's group.
    """
    wanted = [config.server.listen]
    if config.http.listen is not None:
        wanted.append(config.http.listen)
    wanted.extend(prometheus_listens(config, processes))
    problems = []
    for listen in wanted:
        host, port = parse_listen(listen)
        try:
            family, kind, proto, _, address = socket.getaddrinfo(
                host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )[0]
            with socket.socket(family, kind, proto) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as grpc and aiohttp set it
                probe.bind(address)
        except OSError as exc:
            problems.append(f"cannot listen on {listen}: {exc.strerror or exc}")
    return problems


def prometheus_listens(config: Config, processes: int) -> list[str]:
    """Where each child serves /metrics: the configured port + the child's index."""
    listen = config.telemetry.prometheus_listen
    if listen is None:
        return []
    host, port = parse_listen(listen)
    return [f"{host}:{port + index}" for index in range(processes)]


def child_config(config: Config, index: int) -> Config:
    """The config child ``index`` serves: its own /metrics port, the rest as configured."""
    if config.telemetry.prometheus_listen is None:
        return config
    telemetry = config.telemetry.model_copy(
        update={"prometheus_listen": prometheus_listens(config, index + 1)[index]}
    )
    return config.model_copy(update={"telemetry": telemetry})


class ProcessTag(logging.Filter):
    """Adds ``process_index`` and ``pid`` to each line of a child: the children share one stderr."""

    def __init__(self, index: int) -> None:
        super().__init__()
        self.index = index
        self.pid = os.getpid()

    def filter(self, record: logging.LogRecord) -> bool:
        record.process_index = self.index
        record.pid = self.pid
        return True


def tag_logs(index: int) -> None:
    for handler in logging.getLogger().handlers:
        handler.addFilter(ProcessTag(index))


async def supervise(command: Callable[[int], Sequence[str]], processes: int) -> int:
    """Runs ``command(i)`` for each child until SIGTERM or SIGINT; 0 if every child then exited 0."""
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    received: list[signal.Signals] = []
    children: dict[int, asyncio.subprocess.Process] = {}

    def on_signal(sig: signal.Signals) -> None:
        if not received:
            log.info("signal received; stopping every gateway process", extra={"signal": sig.name})
        received.append(sig)
        stopping.set()
        for process in children.values():  # a second signal is forwarded too: it ends their drain
            if process.returncode is None:
                process.send_signal(sig)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)

    async def keep(index: int) -> int:
        quick_deaths = 0
        while True:
            process = await asyncio.create_subprocess_exec(*command(index), preexec_fn=_die_with_parent)
            children[index] = process
            if received:  # the signal came while this child was being started
                process.send_signal(received[-1])
            log.info("gateway process started", extra={"process_index": index, "child_pid": process.pid})
            started = loop.time()
            code = await process.wait()
            if stopping.is_set():
                return code
            quick_deaths = 0 if loop.time() - started >= STABLE_SECONDS else quick_deaths + 1
            delay = min(RESTART_MAX_DELAY, 2.0 ** max(quick_deaths - 1, 0))
            log.error(
                "gateway process exited; restarting it",
                extra={
                    "process_index": index,
                    "child_pid": process.pid,
                    "exit_code": code,
                    "restart_in_seconds": delay,
                },
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), timeout=delay)
            if stopping.is_set():
                return code

    log.info("starting gateway processes", extra={"processes": processes, "parent_pid": os.getpid()})
    codes = await asyncio.gather(*(keep(index) for index in range(processes)))
    log.info("gateway processes stopped", extra={"exit_codes": codes})
    return 0 if all(code == 0 for code in codes) else 1


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGTERM it if the parent dies (SIGKILL, OOM), so no orphan
    keeps serving the port. Linux's prctl(PR_SET_PDEATHSIG) through ctypes: no library wraps it."""
    if sys.platform == "linux":
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
