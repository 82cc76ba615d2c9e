"""The vendor sandbox in a process of its own: `python -m bench.sandbox_proc SPEC.json`.

In its own process so that the vendor's work (parsing, validating, recording each message) is
never charged to the gateway or to the floor. It prints `READY <url>`, then answers commands
on stdin, one per line: `stats` prints one JSON line (gettoken calls per app, accepted and
refused messages per robot or app), `quit` (or end of input, or SIGTERM) stops it.

The vendors' rate limits (20 messages a minute per robot, 30 a minute per WeCom member) would
refuse almost every benchmark message. The sandbox has no switch for them, but its robots and
apps keep their windows in public attributes (`rate`, `member_rates`), so this process puts an
`Unlimited` window there after registering them. Nothing in `gateway/sandbox` is changed; every
other check (credentials, payload validation, tokens, msgUuid) still runs on every message.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

from gateway.sandbox import SandboxServer, SandboxState
from gateway.sandbox.rate import SlidingWindowLimit


class Unlimited(SlidingWindowLimit):
    """A rate window that always has room and keeps nothing (so it costs nothing per message)."""

    def __init__(self) -> None:
        super().__init__(limit=1, window=60.0)

    def has_room(self, now: float, count: int = 1) -> bool:
        return True

    def try_acquire(self, now: float, count: int = 1) -> bool:
        return True


def build_state(spec: dict[str, Any]) -> SandboxState:
    """Registers the spec's robots and apps, with the vendors' rate windows lifted."""
    state = SandboxState()
    for robot in spec["dingtalk_robots"]:
        state.add_dingtalk_robot(robot["name"], access_token=robot["access_token"])
    for robot in spec["wecom_robots"]:
        state.add_wecom_robot(robot["name"], key=robot["key"])
    for app in spec["wecom_apps"]:
        state.add_wecom_app(
            app["name"], corp_id=app["corp_id"], corp_secret=app["corp_secret"], agent_id=app["agent_id"]
        )
    for dingtalk in state.dingtalk_robots:
        dingtalk.rate = Unlimited()
    for wecom in state.wecom_robots:
        wecom.rate = Unlimited()
    for wecom_app in state.wecom_apps:
        for user in spec["users"]:
            wecom_app.member_rates[user.lower()] = Unlimited()
    return state


async def _stats(state: SandboxState, app_names: list[str]) -> dict[str, Any]:
    """`stats`, read on the event loop's thread so the journal is not read while it is appended to."""
    return stats(state, app_names)


def stats(state: SandboxState, app_names: list[str]) -> dict[str, Any]:
    """What the vendors saw: gettoken calls per app; accepted / refused messages per robot or app."""
    accepted: Counter[str] = Counter()
    refused: Counter[str] = Counter()
    refusals: Counter[str] = Counter()
    for entry in state.received():
        if entry.msgtype == "gettoken":
            continue
        who = entry.robot or "(unknown credential)"
        if entry.delivered or entry.duplicate:
            accepted[who] += 1
        else:
            refused[who] += 1
            refusals[f"{who}: {entry.http_status} {entry.errcode} {entry.errmsg}"[:160]] += 1
    return {
        "gettoken_calls": {name: state.gettoken_calls(name) for name in app_names},
        "accepted": dict(accepted),
        "refused": dict(refused),
        "refusals": dict(refusals.most_common(10)),
    }


async def serve(spec: dict[str, Any]) -> None:
    state = build_state(spec)
    app_names = [app["name"] for app in spec["wecom_apps"]]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    def commands() -> None:
        # A daemon thread, not asyncio.to_thread: a blocked readline must not hold up the exit.
        for raw in sys.stdin:
            line = raw.strip()
            if line == "stats":
                answer = asyncio.run_coroutine_threadsafe(_stats(state, app_names), loop).result()
                print(json.dumps(answer), flush=True)
            elif line == "quit":
                break
        loop.call_soon_threadsafe(stop.set)  # "quit", or end of input: the runner is gone

    async with SandboxServer(state, host="127.0.0.1", port=0, shutdown_timeout=1.0) as server:
        print(f"READY {server.url}", flush=True)
        threading.Thread(target=commands, name="commands", daemon=True).start()
        await stop.wait()


def main() -> int:
    spec = json.loads(Path(sys.argv[1]).read_text())
    asyncio.run(serve(spec))
    return 0


if __name__ == "__main__":
    sys.exit(main())
