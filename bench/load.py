"""The load generator process: `python -m bench.load SPEC.json` prints one LoadResult JSON line.

A process of its own, apart from every server it loads, so the client's CPU (gRPC stubs,
aiohttp, Apprise's threads) is never charged to the process being measured. Floor B and
Apprise run their vendor calls here, so for them this process *is* the measured one.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from bench.spec import LoadResult, LoadSpec, dump, load
from gateway.event_loop import loop_factory, resolve


def run(spec: LoadSpec) -> LoadResult:
    if spec.driver == "grpc":
        from bench import drive_grpc

        return asyncio.run(drive_grpc.drive(spec))
    if spec.driver == "http":
        from bench import drive_http

        # Floor B is measured here: on the gateway's event loop (uvloop where installed), as the
        # gateway makes its vendor calls, so the floor is not inflated by asyncio's own loop.
        with asyncio.Runner(loop_factory=loop_factory(resolve("auto"))) as runner:
            return runner.run(drive_http.drive(spec))
    from bench import drive_apprise

    return drive_apprise.drive(spec)


def main() -> int:
    spec = load(LoadSpec, Path(sys.argv[1]).read_text())
    print(dump(run(spec)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
