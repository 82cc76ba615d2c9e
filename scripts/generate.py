"""Generate Python code and typed stubs for protos/ into generated/.

protoc writes imports relative to the proto root (``from notify.v1 import ...``); we rewrite them
to ``generated.notify.v1`` so the output is one importable package and nothing else needs to sit
on sys.path. The output depends only on the .proto files and the pinned tool versions.
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
from pathlib import Path

import grpc_tools
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
OUT = ROOT / "generated"
PACKAGE = "generated"
CLIENT_PACKAGE = "notify_client_proto"
_IMPORT = re.compile(r"^(from|import) notify\.", re.MULTILINE)


def main() -> int:
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir()
    # protos/google holds vendored imports (google/api/annotations.proto): resolved from -I, never
    # generated, since googleapis-common-protos already ships their Python modules.
    protos = sorted(
        str(p.relative_to(PROTOS))
        for p in PROTOS.rglob("*.proto")
        if p.relative_to(PROTOS).parts[0] != "google"
    )
    include = Path(grpc_tools.__file__).parent / "_proto"
    bin_dir = _plugin_dir()
    rc = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{PROTOS}",
            f"-I{include}",
            f"--plugin=protoc-gen-mypy={bin_dir / 'protoc-gen-mypy'}",
            f"--plugin=protoc-gen-mypy_grpc={bin_dir / 'protoc-gen-mypy_grpc'}",
            f"--python_out={OUT}",
            f"--grpc_python_out={OUT}",
            f"--mypy_out={OUT}",
            f"--mypy_grpc_out={OUT}",
            *protos,
        ]
    )
    if rc != 0:
        return rc
    rc = _client_messages(include, bin_dir, protos)
    if rc != 0:
        return rc
    for path in OUT.rglob("*.py*"):
        text = path.read_text()
        fixed = _IMPORT.sub(rf"\1 {PACKAGE}.notify.", text)
        if fixed != text:
            path.write_text(fixed)
    for directory in [OUT, *(d for d in OUT.rglob("*") if d.is_dir())]:
        if not (directory / "__init__.py").exists():
            (directory / "__init__.py").touch()
    (OUT / "py.typed").touch()
    return 0


def _client_messages(include: Path, bin_dir: Path, protos: list[str]) -> int:
    """The Python client's copy: message classes only, as top-level package ``notify_client_proto``.

    clients/python maps that package onto generated/python_client/notify_client_proto, so the
    client installs from this checkout with no generated code committed anywhere. It binds its
    three RPCs itself, so it needs no *_pb2_grpc module (whose version check would pin grpcio).
    """
    target = OUT / "python_client" / CLIENT_PACKAGE
    with tempfile.TemporaryDirectory() as tmp:
        rc = protoc.main(
            [
                "grpc_tools.protoc",
                f"-I{PROTOS}",
                f"-I{include}",
                f"--plugin=protoc-gen-mypy={bin_dir / 'protoc-gen-mypy'}",
                f"--python_out={tmp}",
                f"--mypy_out={tmp}",
                *protos,
            ]
        )
        if rc != 0:
            return int(rc)
        target.mkdir(parents=True)
        for path in (Path(tmp) / "notify" / "v1").glob("*_pb2.py*"):
            shutil.copy(path, target / path.name)
    (target / "__init__.py").write_text('"""Generated from protos/ by scripts/generate.py; never edit."""\n')
    (target / "py.typed").touch()
    return 0


def _plugin_dir() -> Path:
    """Where mypy-protobuf's protoc plugins are: beside this interpreter (a venv), else on PATH.

    A package build (setup.py, in pip's isolated build environment) runs under the caller's
    interpreter while the plugins it installed for the build sit in a directory put on PATH.
    """
    beside = Path(sys.executable).parent
    if (beside / "protoc-gen-mypy").exists():
        return beside
    found = shutil.which("protoc-gen-mypy")
    return Path(found).parent if found else beside


if __name__ == "__main__":
    sys.exit(main())
