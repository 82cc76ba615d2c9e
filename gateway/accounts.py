"""The configured accounts, each with its channel adapter, built once at start-up."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from gateway.channels.base import ChannelAdapter
from gateway.channels.registry import CHANNELS
from gateway.channels.settings import AccountSettings
from gateway.channels.transport import VendorTransport
from gateway.tokens.manager import TokenManager


class Accounts(Mapping[str, ChannelAdapter]):
    """Account id -> adapter. Adapters hold no per-request state, so one per account serves all calls."""

    def __init__(
        self, settings: Mapping[str, AccountSettings], transport: VendorTransport, tokens: TokenManager
    ) -> None:
        self._adapters = {
            account_id: CHANNELS[s.channel](account_id, s, transport, tokens)
            for account_id, s in settings.items()
        }

    def __getitem__(self, account_id: str) -> ChannelAdapter:
        return self._adapters[account_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._adapters)

    def __len__(self) -> int:
        return len(self._adapters)
