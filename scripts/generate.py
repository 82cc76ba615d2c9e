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
from google.protobuf import descriptor_pb2
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
    rc = _comments(include, protos)
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


def _comments(include: Path, protos: list[str]) -> int:
    """``<file>_comments.py`` beside each ``<file>_pb2.py``: the proto's comments by full name.

    Python descriptors drop comments; the OpenAPI document (gateway/http/openapi.py) describes
    operations, messages and fields with them, so they are kept here, generated like the rest.
    """
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "set.binpb"
        rc = protoc.main(
            ["grpc_tools.protoc", f"-I{PROTOS}", f"-I{include}", "--include_source_info",
             f"--descriptor_set_out={out}", *protos]
        )  # fmt: skip
        if rc != 0:
            return int(rc)
        files = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file
    for file in files:
        comments = _file_comments(file)
        target = OUT / file.name.replace(".proto", "_comments.py")
        target.write_text(
            f'"""Comments of {file.name}, by full name; generated by scripts/generate.py, never edit."""\n\n'
            f"COMMENTS: dict[str, str] = {comments!r}\n"
        )
    return 0


def _file_comments(file: descriptor_pb2.FileDescriptorProto) -> dict[str, str]:
    """Leading comments of services, methods, messages, fields, enums and values, by full name.

    A location's path is field numbers and indexes into FileDescriptorProto (descriptor.proto):
    4 message_type, 5 enum_type, 6 service; in a message 2 field, 3 nested_type, 4 enum_type; in an
    enum or a service 2 value or method.
    """
    names: dict[tuple[int, ...], str] = {}

    def message(path: tuple[int, ...], proto: descriptor_pb2.DescriptorProto, scope: str) -> None:
        name = f"{scope}.{proto.name}"
        names[path] = name
        for i, field in enumerate(proto.field):
            names[(*path, 2, i)] = f"{name}.{field.name}"
        for i, nested in enumerate(proto.nested_type):
            message((*path, 3, i), nested, name)
        for i, nested_enum in enumerate(proto.enum_type):
            enum((*path, 4, i), nested_enum, name)

    def enum(path: tuple[int, ...], proto: descriptor_pb2.EnumDescriptorProto, scope: str) -> None:
        names[path] = f"{scope}.{proto.name}"
        for i, value in enumerate(proto.value):
            names[(*path, 2, i)] = f"{scope}.{proto.name}.{value.name}"

    for i, proto in enumerate(file.message_type):
        message((4, i), proto, file.package)
    for i, enum_proto in enumerate(file.enum_type):
        enum((5, i), enum_proto, file.package)
    for i, service in enumerate(file.service):
        names[(6, i)] = f"{file.package}.{service.name}"
        for j, method in enumerate(service.method):
            names[(6, i, 2, j)] = f"{file.package}.{service.name}.{method.name}"
    found: dict[str, str] = {}
    for location in file.source_code_info.location:
        name = names.get(tuple(location.path))
        text = " ".join(line.strip() for line in location.leading_comments.strip().splitlines())
        if name and text:
            found[name] = text
    return dict(sorted(found.items()))


if __name__ == "__main__":
    sys.exit(main())
