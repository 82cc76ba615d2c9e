"""``notify-gateway``: serve the gateway, run the vendor sandbox, or check a config file."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import AsyncIterator

from gateway.config import Config, ConfigError, load_config
from gateway.logs import configure_logging
from gateway.tenants import hash_key

log = logging.getLogger("gateway.cli")
DEFAULT_SANDBOX_LISTEN = "127.0.0.1:8480"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="notify-gateway", description=__doc__)
    parser.add_argument("--log-level", default="INFO")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the gRPC gateway")
    serve.add_argument(
        "--config", help="YAML config (default: $NOTIFY_GATEWAY_CONFIG, else the embedded example)"
    )
    serve.add_argument(
        "--sandbox",
        nargs="?",
        const=DEFAULT_SANDBOX_LISTEN,
        metavar="HOST:PORT",
        help="also run the vendor sandbox in this process, seeded with the config's accounts "
        f"(default {DEFAULT_SANDBOX_LISTEN})",
    )

    sandbox = commands.add_parser("sandbox", help="run the vendor sandbox alone")
    sandbox.add_argument("--config", help="seed the sandbox with this config's accounts")
    sandbox.add_argument("--listen", default=DEFAULT_SANDBOX_LISTEN, metavar="HOST:PORT")

    check = commands.add_parser("check-config", help="validate a config file and exit")
    check.add_argument("--config")

    commands.add_parser(
        "hash-key", help="read an API key on stdin, print the hash to put in tenants.api_keys"
    )

    args = parser.parse_args(argv)
    if args.command == "hash-key":
        key = sys.stdin.readline().strip()
        if not key:
            print("notify-gateway: hash-key: give the API key on standard input", file=sys.stderr)
            return 2
        print(hash_key(key))
        return 0
    configure_logging(args.log_level.upper())
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"notify-gateway: config error: {exc}", file=sys.stderr)
        return 2
    if args.command == "check-config":
        print(f"config ok: {len(config.accounts)} accounts ({', '.join(sorted(config.accounts))})")
        return 0
    if args.command == "sandbox":
        return asyncio.run(_run_sandbox(config, args.listen))
    return asyncio.run(_serve(config, args.sandbox))


async def _serve(config: Config, sandbox_listen: str | None) -> int:
    from gateway.server import GatewayServer, run_until_signalled
    from gateway.telemetry import TelemetryOptions, setup_telemetry

    setup_telemetry(TelemetryOptions(**config.telemetry.model_dump()))
    async with contextlib.AsyncExitStack() as stack:
        if sandbox_listen is not None:
            await stack.enter_async_context(_sandbox(config, sandbox_listen))
        try:
            server = GatewayServer(config)
        except (OSError, RuntimeError) as exc:
            print(f"notify-gateway: cannot start: {exc}", file=sys.stderr)
            return 1
        await run_until_signalled(server)
    return 0


async def _run_sandbox(config: Config, listen: str) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with _sandbox(config, listen):
        await stop.wait()
    return 0


@contextlib.asynccontextmanager
async def _sandbox(config: Config, listen: str) -> AsyncIterator[None]:
    from gateway.sandbox import SandboxServer, SandboxState
    from gateway.sandbox.seed import seed_from_accounts

    host, _, port = listen.rpartition(":")
    state = SandboxState()
    seed_from_accounts(state, config.accounts)
    async with SandboxServer(state, host=host, port=int(port)) as server:
        log.info(
            "vendor sandbox listening",
            extra={"url": server.url, "inspect": f"{server.url}/_sandbox/messages"},
        )
        yield


if __name__ == "__main__":
    sys.exit(main())
