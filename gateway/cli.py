"""``notify-gateway``: serve the gateway, run the vendor sandbox, check a config file, make API keys."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import logging
import os
import secrets
import signal
import sys
from collections.abc import AsyncIterator

from gateway.config import Config, ConfigError, load_config, parse_listen
from gateway.event_loop import EVENT_LOOPS, EventLoopUnavailable, loop_factory, resolve
from gateway.gc_tuning import tune_for_serving
from gateway.logs import configure_logging, route_native_stderr
from gateway.tenants import hash_key

log = logging.getLogger("gateway.cli")
DEFAULT_SANDBOX_LISTEN = "127.0.0.1:8480"
TRACE_URL_ENV = "NOTIFY_SANDBOX_TRACE_URL"
TRACE_URL_HELP = (
    "link each message in the sandbox inbox to the gateway's trace: a URL with {trace_id}, "
    f"e.g. http://localhost:16686/trace/{{trace_id}} for Jaeger (default: ${TRACE_URL_ENV})"
)


CONFIG_HELP = "YAML config file (default: $NOTIFY_GATEWAY_CONFIG, else the embedded example config)"
EVENT_LOOP_HELP = (
    "the asyncio event loop: uvloop (faster), asyncio (the standard one), or auto, uvloop where "
    "installed (default: the config's server.event_loop, which defaults to auto)"
)
PROCESSES_HELP = (
    "run N gateway processes sharing the config's ports (SO_REUSEPORT), each on its own core; this "
    "process supervises them: restarts one that dies, passes SIGTERM/SIGINT on, exits when all have. "
    "Needs fixed ports; child I serves /metrics on telemetry.prometheus_listen's port + I. Size N to "
    "the cores left after Redis and the rest of the machine (README, For SREs) (default: 1)"
)
HASH_KEY_DESCRIPTION = """\
Reads an API key from standard input (not from the command line, where it would
land in the shell history and the process list) and prints its hash, the form
tenants[].api_keys wants in the config file:

  echo -n "$KEY" | notify-gateway hash-key
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="notify-gateway", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument(
        "--log-level",
        default="INFO",
        type=str.upper,
        choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
        help="least severe log records written to stderr, as JSON lines (default: INFO)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the gRPC gateway")
    serve.add_argument("--config", help=CONFIG_HELP)
    serve.add_argument(
        "--sandbox",
        nargs="?",
        const=DEFAULT_SANDBOX_LISTEN,
        type=_listen,
        metavar="HOST:PORT",
        help="also run the vendor sandbox in this process, seeded with the config's accounts "
        f"(default {DEFAULT_SANDBOX_LISTEN})",
    )
    serve.add_argument(
        "--trace-url", default=os.environ.get(TRACE_URL_ENV), type=_trace_url, help=TRACE_URL_HELP
    )
    serve.add_argument("--processes", type=_processes, default=1, metavar="N", help=PROCESSES_HELP)
    serve.add_argument("--event-loop", choices=EVENT_LOOPS, help=EVENT_LOOP_HELP)
    # Set by the --processes parent for each child it starts: bind with SO_REUSEPORT, tag the logs.
    serve.add_argument("--process-index", type=int, help=argparse.SUPPRESS)

    sandbox = commands.add_parser("sandbox", help="run the vendor sandbox alone")
    sandbox.add_argument("--config", help=f"seed the sandbox with this config's accounts; {CONFIG_HELP}")
    sandbox.add_argument(
        "--listen",
        default=DEFAULT_SANDBOX_LISTEN,
        type=_listen,
        metavar="HOST:PORT",
        help="where the sandbox serves HTTP; port 0 takes any free port, which is logged "
        f"(default {DEFAULT_SANDBOX_LISTEN})",
    )
    sandbox.add_argument(
        "--trace-url", default=os.environ.get(TRACE_URL_ENV), type=_trace_url, help=TRACE_URL_HELP
    )

    worker = commands.add_parser(
        "worker",
        help="run queue workers only: deliver queued Sends, without serving the API",
        description="Delivers queued Sends from Redis Streams through the config's accounts, paced "
        "to their rate limits. Run as many as delivery needs, beside `serve` processes (set "
        "queue.workers_in_serve: false there to keep delivery out of the API).",
    )
    worker.add_argument("--config", help=CONFIG_HELP)
    worker.add_argument("--event-loop", choices=EVENT_LOOPS, help=EVENT_LOOP_HELP)

    check = commands.add_parser(
        "check-config", help="validate a config file, print every problem in it, and exit"
    )
    check.add_argument("--config", help=CONFIG_HELP)

    commands.add_parser(
        "hash-key",
        help="read an API key on stdin, print the hash to put in tenants.api_keys",
        description=HASH_KEY_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands.add_parser(
        "new-key",
        help="print a new random API key and its hash for tenants.api_keys",
        description="Prints a new random API key (give it to the caller) and its sha256: hash "
        "(put it in the tenant's api_keys), on two labelled lines.",
    )

    args = parser.parse_args(argv)
    if args.command == "hash-key":
        key = sys.stdin.readline().strip()
        if not key:
            print("notify-gateway: hash-key: give the API key on standard input", file=sys.stderr)
            return 2
        print(hash_key(key))
        return 0
    if args.command == "new-key":
        key = secrets.token_urlsafe(32)  # 256 bits from the OS's CSPRNG
        print(f"key:  {key}")
        print(f"hash: {hash_key(key)}")
        return 0
    configure_logging(args.log_level)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        for line in exc.lines:
            print(f"notify-gateway: config error: {line}", file=sys.stderr)
        return 2
    if args.command == "check-config":
        print(f"config ok: {len(config.accounts)} accounts ({', '.join(sorted(config.accounts))})")
        return 0
    if args.command == "serve" and args.processes > 1:
        return _serve_processes(args, config)
    reuse_port = False
    if args.command == "serve" and args.process_index is not None:
        from gateway.processes import child_config, tag_logs

        tag_logs(args.process_index)
        config, reuse_port = child_config(config, args.process_index), True
    route_native_stderr()  # grpc core writes to fd 2 itself: its lines become JSON too
    if args.command == "sandbox":
        return asyncio.run(_run_sandbox(config, args.listen, args.trace_url))
    try:
        event_loop = resolve(args.event_loop or config.server.event_loop)
    except EventLoopUnavailable as exc:
        print(f"notify-gateway: {exc}", file=sys.stderr)
        return 2
    log.info("event loop", extra={"event_loop": event_loop})
    with asyncio.Runner(loop_factory=loop_factory(event_loop)) as runner:
        if args.command == "worker":
            return runner.run(_work(config))
        return runner.run(_serve(config, args.sandbox, args.trace_url, reuse_port=reuse_port))


def _serve_processes(args: argparse.Namespace, config: Config) -> int:
    """The --processes parent: refuses what cannot work, then starts and supervises the children."""
    from gateway.processes import ports_in_use, refusal, supervise

    reason = refusal(config, args.processes, sandbox=args.sandbox is not None)
    if reason is not None:
        print(f"notify-gateway: {reason}", file=sys.stderr)
        return 2
    taken = ports_in_use(config, args.processes)
    for problem in taken:
        print(f"notify-gateway: cannot start: {problem}", file=sys.stderr)
    if taken:
        return 1

    def command(index: int) -> list[str]:
        argv = [sys.executable, "-m", "gateway", "--log-level", args.log_level, "serve"]
        argv += ["--process-index", str(index)]
        if args.config is not None:
            argv += ["--config", args.config]
        if args.event_loop is not None:
            argv += ["--event-loop", args.event_loop]
        return argv

    return asyncio.run(supervise(command, args.processes))


def _version() -> str:
    """The installed distribution's version, so --version cannot drift from pyproject.toml."""
    try:
        return importlib.metadata.version("notify-gateway")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def _listen(value: str) -> str:
    """A ``HOST:PORT`` argument, refused by argparse (exit 2, usage) when it could not be bound."""
    try:
        parse_listen(value, allow_port_zero=True)  # the sandbox logs the port it got
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{value!r}: {exc}") from None
    return value


def _processes(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= 256:
        raise argparse.ArgumentTypeError(f"{value!r}: expected a number of processes from 1 to 256")
    return int(value)


def _trace_url(value: str) -> str | None:
    """A trace UI URL template: http(s), with the {trace_id} placeholder ("" means none)."""
    if not value:
        return None
    if not value.startswith(("http://", "https://")) or "{trace_id}" not in value:
        raise argparse.ArgumentTypeError(f"{value!r}: expected an http(s) URL containing {{trace_id}}")
    return value


async def _serve(
    config: Config, sandbox_listen: str | None, trace_url: str | None = None, *, reuse_port: bool = False
) -> int:
    from gateway.server import GatewayServer, run_until_signalled

    if not _telemetry_started(config):
        return 1
    async with contextlib.AsyncExitStack() as stack:
        if sandbox_listen is not None:
            await stack.enter_async_context(_sandbox(config, sandbox_listen, trace_url))
        try:
            server = GatewayServer(config, reuse_port=reuse_port)
        except (OSError, RuntimeError) as exc:
            print(f"notify-gateway: cannot start: {exc}", file=sys.stderr)
            return 1
        tune_for_serving()  # what start-up made stays: out of every collection from here on
        await run_until_signalled(server)
    return 0


async def _work(config: Config) -> int:
    from gateway.queue.role import run_worker_until_signalled

    if not _telemetry_started(config):
        return 1
    tune_for_serving()
    return await run_worker_until_signalled(config)


def _telemetry_started(config: Config) -> bool:
    """Installs telemetry; False, said on stderr, when its /metrics port cannot be bound (taken,
    or an address this host does not have), which would otherwise end the process in a traceback."""
    from gateway.telemetry import TelemetryOptions, setup_telemetry

    try:
        setup_telemetry(TelemetryOptions(**config.telemetry.model_dump()))
    except OSError as exc:
        listen = config.telemetry.prometheus_listen
        print(
            f"notify-gateway: cannot start: telemetry.prometheus_listen {listen}: {exc.strerror or exc}",
            file=sys.stderr,
        )
        return False
    return True


async def _run_sandbox(config: Config, listen: str, trace_url: str | None = None) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with _sandbox(config, listen, trace_url):
        await stop.wait()
    return 0


@contextlib.asynccontextmanager
async def _sandbox(config: Config, listen: str, trace_url: str | None = None) -> AsyncIterator[None]:
    from gateway.sandbox import SandboxServer, SandboxState
    from gateway.sandbox.seed import seed_from_accounts

    host, _, port = listen.rpartition(":")
    state = SandboxState()
    seed_from_accounts(state, config.accounts)
    async with SandboxServer(state, host=host, port=int(port), trace_url=trace_url) as server:
        log.info(
            "vendor sandbox listening",
            extra={
                "url": server.url,
                "inbox": f"{server.url}/",
                "inspect": f"{server.url}/_sandbox/messages",
            },
        )
        yield


if __name__ == "__main__":
    sys.exit(main())
