"""A vendor's errcodes and what each means for the gateway, declared per channel."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gateway.errors import VendorOutcome


@dataclass(frozen=True)
class ErrorTable:
    """A vendor's errcodes and what each means (docs/vendors.md, each channel's error codes); codes
    not listed are UNKNOWN."""

    codes: Mapping[int, VendorOutcome]
    rate_limit_retry_after: float = 60.0

    def classify(self, errcode: int, errmsg: str) -> VendorOutcome:
        return self.codes.get(errcode, VendorOutcome.UNKNOWN)
