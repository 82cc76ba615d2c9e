"""A live vendor sandbox and gateway for tests written in other languages (the Node client's).

Starts the sandbox and a gateway on free loopback ports, with the accounts of tests/conftest.py
plus ``flaky-wecom`` (a WeCom robot of its own whose vendor calls time out after 0.5 s, for tests
that make the vendor answer too late), and two tenants whose API keys are required on every call
(the second, ``other_api_key``, to check that one tenant cannot read another's messages); prints
one JSON line::

    {"address": "127.0.0.1:41234", "sandbox": "http://127.0.0.1:41235", "api_key": "...",
     "other_api_key": "..."}

(with ``--tls``, the gateway serves TLS with a fresh self-signed certificate for "localhost", made
with the openssl CLI, and the line adds ``"ca"``: the certificate's path, for the client to trust)
then serves until its standard input closes or it gets SIGTERM/SIGINT, so a test runner that dies
without cleaning up still takes the servers down with it (its end of the pipe closes). The key is
random per run unless NOTIFY_API_KEY is set (the other tenant's always is). Logs go to stderr as
JSON lines, warnings and up (``--log-level`` to change). Run it with the project's venv:
``.venv/bin/python tests/clients/serve_for_node.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from gateway.config import Config, TenantSettings  # noqa: E402 - after the path set-up above
from gateway.logs import configure_logging  # noqa: E402
from gateway.sandbox import SandboxServer, SandboxState  # noqa: E402
from gateway.server import GatewayServer  # noqa: E402
from gateway.tenants import hash_key  # noqa: E402
from tests.conftest import gateway_config, seed_sandbox, with_tls  # noqa: E402

TENANT = "client-tests"
OTHER_TENANT = "client-tests-other"
FLAKY_ACCOUNT = "flaky-wecom"
FLAKY_KEY = "wecom-key-flaky-5e7d"
FLAKY_TIMEOUT_SECONDS = 0.5


def with_tenants(config: Config, api_key: str, other_api_key: str) -> Config:
    """The config with two tenants, each allowed every account, so every call must carry a key."""
    tenants = [
        TenantSettings(name=TENANT, api_keys=[hash_key(api_key)], accounts=["*"]),
        TenantSettings(name=OTHER_TENANT, api_keys=[hash_key(other_api_key)], accounts=["*"]),
    ]
    return config.model_copy(update={"auth": "api_keys", "tenants": tenants})


def flaky_account(sandbox_url: str) -> str:
    """A WeCom robot account of its own, so faults and rate limits aimed at it touch no other test."""
    return f"""
        {FLAKY_ACCOUNT}:
          channel: wecom_robot
          key: {FLAKY_KEY}
          base_url: {sandbox_url}
          timeout_seconds: {FLAKY_TIMEOUT_SECONDS}
        """


async def serve(api_key: str, other_api_key: str, tls_dir: Path | None) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    def watch_stdin() -> None:  # a blocking read in a thread: EOF means our parent is gone
        try:
            while sys.stdin.buffer.read(4096):
                pass
        finally:
            loop.call_soon_threadsafe(stop.set)

    state = SandboxState()
    seed_sandbox(state)
    state.add_wecom_robot(FLAKY_ACCOUNT, FLAKY_KEY)
    async with SandboxServer(state) as sandbox:
        accounts = gateway_config(sandbox.url, extra_accounts=flaky_account(sandbox.url))
        config = with_tenants(accounts, api_key, other_api_key)
        ca: Path | None = None
        if tls_dir is not None:
            config, ca = with_tls(config, tls_dir)
        async with GatewayServer(config) as gateway:
            line: dict[str, str] = {
                "address": gateway.address,
                "sandbox": sandbox.url,
                "api_key": api_key,
                "other_api_key": other_api_key,
            }
            if ca is not None:
                line["ca"] = str(ca)
            sys.stdout.write(json.dumps(line) + "\n")
            sys.stdout.flush()
            threading.Thread(target=watch_stdin, name="stdin-watch", daemon=True).start()
            await stop.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description="sandbox + gateway for cross-language client tests")
    parser.add_argument("--log-level", default="WARNING")
    parser.add_argument("--tls", action="store_true", help="serve TLS with a self-signed certificate")
    args = parser.parse_args()
    configure_logging(args.log_level.upper())
    api_key = os.environ.get("NOTIFY_API_KEY") or secrets.token_urlsafe(24)
    other_api_key = secrets.token_urlsafe(24)
    if not args.tls:
        asyncio.run(serve(api_key, other_api_key, None))
        return 0
    with tempfile.TemporaryDirectory(prefix="notify-tls-") as directory:
        asyncio.run(serve(api_key, other_api_key, Path(directory)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
