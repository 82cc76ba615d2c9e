"""Vendor emulators over real HTTP, so the gateway runs end to end without real credentials.

Emulates the four vendor channels as docs/vendors.md describes them: the WeCom and DingTalk group
robots (validation with the vendor's errcodes, signatures, rate limits, throttles, robot media)
and the WeCom application and DingTalk work-notification apps (access tokens that expire and can
be revoked, directories with invalid recipients, media upload, recall). It records what arrived
and lets tests move time and inject faults::

    state = SandboxState()
    state.add_wecom_robot("ops", key="k1")
    state.add_wecom_app("hr", corp_id="ww1", corp_secret="s1", agent_id=1000002)
    async with SandboxServer(state) as sandbox:
        ...  # point the account's base_url at sandbox.url
    assert state.delivered("wecom_robot", "ops")[0].body == {...}
    assert state.gettoken_calls("hr") == 1
"""

from gateway.sandbox.app import SandboxServer, build_app
from gateway.sandbox.clock import SandboxClock
from gateway.sandbox.media import MediaRecord
from gateway.sandbox.recording import Received
from gateway.sandbox.state import SandboxState

__all__ = ["MediaRecord", "Received", "SandboxClock", "SandboxServer", "SandboxState", "build_app"]
