"""Regenerate (or, with --check, verify) the message classes notify_client ships.

The package carries its generated code instead of generating it at install time, so that
``pip install clients/python`` works from a clean checkout, from an sdist or wheel built anywhere,
and on machines without protoc or grpcio-tools. The cost is drift: when
``protos/notify/v1/notification_service.proto`` changes, run this script (from the project's dev
venv, which has the pinned grpcio-tools and mypy-protobuf) and commit the result;
``--check`` (run by the test suite) fails while the shipped copy differs from what the protos give.

Only the message classes (``*_pb2.py`` and their ``.pyi`` for mypy) are generated: the client builds
its three RPC callables itself, so it does not need the ``*_pb2_grpc.py`` module, whose version
check would pin callers to a grpcio at least as new as the one that generated it.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROTOS = HERE.parent.parent.parent / "protos"
PROTO = "notify/v1/notification_service.proto"
TARGET = HERE.parent / "src" / "notify_client" / "_proto"
OUTPUTS = ("notification_service_pb2.py", "notification_service_pb2.pyi")


def generate(out: Path) -> None:
    import grpc_tools  # the project's dev dependency; not needed to install or use the client
    from grpc_tools import protoc

    include = Path(grpc_tools.__file__).parent / "_proto"
    plugin = Path(sys.executable).parent / "protoc-gen-mypy"  # mypy-protobuf, beside this interpreter
    rc = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{PROTOS}",
            f"-I{include}",
            f"--plugin=protoc-gen-mypy={plugin}",
            f"--python_out={out}",
            f"--mypy_out={out}",
            PROTO,
        ]
    )
    if rc != 0:
        raise SystemExit(f"protoc failed ({rc}) on {PROTOS / PROTO}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the shipped code is stale")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        generate(out)
        produced = out / Path(PROTO).parent
        stale = [
            name
            for name in OUTPUTS
            if not (TARGET / name).exists() or (TARGET / name).read_bytes() != (produced / name).read_bytes()
        ]
        if args.check:
            if stale:
                print(
                    f"notify_client's generated code is stale ({', '.join(stale)}): "
                    "run clients/python/scripts/generate_stubs.py with the project's venv and commit",
                    file=sys.stderr,
                )
                return 1
            return 0
        TARGET.mkdir(parents=True, exist_ok=True)
        (TARGET / "__init__.py").write_text(
            '"""Generated from protos/ by scripts/generate_stubs.py; never edit."""\n'
        )
        for name in OUTPUTS:
            (TARGET / name).write_bytes((produced / name).read_bytes())
        print(f"wrote {', '.join(OUTPUTS)} to {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
