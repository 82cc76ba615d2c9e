"""Only a guard: the build is configured in pyproject.toml.

The message classes (package notify_client_proto) are not committed: the project's `make generate`
writes them from ../../protos into ../../generated/python_client. Without them the build would fail
with an obscure setuptools error, so say what to do instead.
"""

from pathlib import Path

from setuptools import setup

_MESSAGES = Path(__file__).resolve().parent / "../../generated/python_client/notify_client_proto"

if not (_MESSAGES / "notification_service_pb2.py").is_file():
    raise SystemExit(
        "notify-client: the generated message classes are missing "
        f"({_MESSAGES.resolve()}/notification_service_pb2.py).\n"
        "Run `make generate` (or `make install`) in the repository root first, then install again."
    )

setup()
