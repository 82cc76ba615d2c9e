"""Runs the gateway's CLI under cProfile: `python -m bench.profile_gateway --out FILE -- serve ...`.

The fallback when py-spy cannot attach (no ptrace): the gateway itself is not changed, its CLI
is imported and called here. On SIGTERM the CLI drains and returns, and the stats are dumped to
FILE (pstats format) for `bench.profiling` to summarise. cProfile slows the process down a lot,
so a profiled run's timings are for finding hot spots only, never for the table.
"""

from __future__ import annotations

import argparse
import cProfile
import sys

from gateway import cli


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_gateway")
    parser.add_argument("--out", required=True, help="where to write the pstats file")
    parser.add_argument("cli_args", nargs=argparse.REMAINDER, help="-- then notify-gateway's arguments")
    args = parser.parse_args()
    cli_args = args.cli_args[1:] if args.cli_args[:1] == ["--"] else args.cli_args
    profiler = cProfile.Profile()
    try:
        status: int = profiler.runcall(cli.main, cli_args)
    finally:
        profiler.dump_stats(args.out)
    return status


if __name__ == "__main__":
    sys.exit(main())
