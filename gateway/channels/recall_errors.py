"""The vendors' refusal of a recall past its 24-hour window, told apart from other refusals.

The vendors give no dedicated errcode for it (docs/vendors.md, WeCom application messages and
DingTalk work notifications); the answer says so in errmsg. The gateway checks the window from
its own records first, so this is the fallback when clocks disagree.
"""

from __future__ import annotations

from gateway.errors import FailedPrecondition, GatewayError, VendorError

_WINDOW_WORDS = ("time limit", "recall time", "exceed", "24 hours", "超过")


def recall_refused(error: VendorError, vendor: str) -> GatewayError:
    if any(word in error.errmsg.lower() for word in _WINDOW_WORDS):
        return FailedPrecondition(
            f"{vendor} refused the recall: the 24-hour window has passed (errcode {error.errcode})",
            reason="RECALL_WINDOW_PASSED",
            metadata=error.metadata,
        )
    return error
