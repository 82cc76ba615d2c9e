"""The build step that writes generated/: setuptools reads everything else from pyproject.toml.

generated/ (the protobuf and gRPC stubs) is never committed. Before setuptools looks for packages,
this runs scripts/generate.py when generated/ is missing or older than protos/ or the script, with
grpcio-tools and mypy-protobuf from [build-system] requires. So `pip install .`, `pip wheel .`,
`pip install -e .` and the Dockerfile all get working stubs from a fresh clone.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

from setuptools import setup

ROOT = Path(__file__).resolve().parent
STUB = ROOT / "generated" / "notify" / "v1" / "notification_service_pb2.py"


def _stale() -> bool:
    if not STUB.is_file():
        return True
    sources = [ROOT / "scripts" / "generate.py", *(ROOT / "protos").rglob("*.proto")]
    return max(path.stat().st_mtime for path in sources) > STUB.stat().st_mtime


if _stale():
    generate = runpy.run_path(str(ROOT / "scripts" / "generate.py"))["main"]
    if generate() != 0:
        sys.exit("notify-gateway: generating the stubs from protos/ failed (see protoc's message above)")

setup()
