"""What every account's settings hold; a channel module subclasses it with its credentials."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, SecretStr


class AccountSettings(BaseModel):
    """Settings every account has; a channel module subclasses it with its credentials."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    channel: str
    base_url: HttpUrl | None = None  # None: the vendor's real endpoint; the sandbox in development
    timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    max_attempts: int = Field(default=3, ge=1, le=10)
    # Sends a minute across all replicas; None: the channel's vendor limit; 0: no gateway limit.
    rate_limit_per_minute: int | None = Field(default=None, ge=0)
    # The window that count is kept over, when the vendor's is not a minute (or to keep a margin).
    rate_limit_window_seconds: float = Field(default=60.0, gt=0, le=86_400)
    # Whether a message whose delivery is UNKNOWN may be sent again (by a retry with the same
    # idempotency key, or a retry inside one Send); None: only where the vendor de-duplicates.
    resend_unknown: bool | None = None
    # No vendor attempt starts with less than this left before the caller's deadline.
    min_attempt_seconds: float = Field(default=0.2, ge=0, le=10)
    # A Send that names no delivery mode: "sync" answers with the vendor's outcome; "queued" answers
    # ACCEPTED once the message is durably queued and workers deliver it (needs a Redis token_store).
    delivery: Literal["sync", "queued"] = "sync"
    # Queued messages waiting for this account at most; past it, Send answers RESOURCE_EXHAUSTED with
    # RetryInfo computed from the depth and the rate limit.
    queue_limit: int = Field(default=10_000, gt=0, le=1_000_000)

    def secret_values(self) -> list[str]:
        """Every credential in these settings, so they can be kept out of logs and errors."""
        return [
            value.get_secret_value()
            for value in self.__dict__.values()
            if isinstance(value, SecretStr) and value.get_secret_value()
        ]
