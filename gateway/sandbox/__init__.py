"""Vendor emulators over real HTTP, so the gateway runs end to end without real credentials.

Emulates the WeCom group robot and the DingTalk custom group robot as vendor-apis.md describes
them (validation with the vendor's errcodes, signatures, rate limits, throttles), records what
arrived, and lets tests move time and inject faults::

    state = SandboxState()
    state.add_wecom_robot("ops", key="k1")
    async with SandboxServer(state) as sandbox:
        ...  # point the account's base_url at sandbox.url
    assert state.delivered("wecom_robot", "ops")[0].body == {...}
"""

from gateway.sandbox.app import SandboxServer, build_app
from gateway.sandbox.clock import SandboxClock
from gateway.sandbox.recording import Received
from gateway.sandbox.state import SandboxState

__all__ = ["Received", "SandboxClock", "SandboxServer", "SandboxState", "build_app"]
