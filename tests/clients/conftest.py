"""Makes ``notify_client`` importable for these tests even where it is not installed yet.

``make install`` installs the package (``pip install -e clients/python``); a venv made before the
client existed does not have it, and these tests then use the source tree, which needs nothing the
gateway's venv lacks (grpcio, protobuf, googleapis-common-protos).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

if importlib.util.find_spec("notify_client") is None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "clients" / "python" / "src"))
